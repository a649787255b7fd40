#!/usr/bin/env bash
# Engine blocks against PyTorch: the transformer block and the conv residual
# block of issue 3, forward and forward+backward, timed by bench/nn_blocks.c
# (ours) and bench/nn_blocks_torch.py (PyTorch) in the same invocation with
# the same thread count, and the ratio torch_time / our_time (above 1: ours
# is faster).
#   bash bench/nn_blocks.sh      (or: make bench)
# Settings (environment): BENCH_THREADS (2), BENCH_RUNS (10), BENCH_WARMUP (2),
# BENCH_ROUNDS (2: each program runs this many times, taking turns),
# BENCH_BREAKDOWN (1: per-op time of ours and torch's profiler table),
# BENCH_ONLY (transformer or conv), KNND_BENCH_BIN (build/release/bench),
# KNND_PYTHON (/usr/bin/python3, which has torch). See bench/README.md.
set -euo pipefail
NAME=nn_blocks TORCH_SCRIPT=nn_blocks_torch.py DEFAULT_RUNS=10 DEFAULT_WARMUP=2 DEFAULT_THREADS=2
# shellcheck source=common/peer.sh
source "$(dirname "$0")/common/peer.sh"
[ "$BREAKDOWN" = 1 ] && ours_opts+=(--breakdown) torch_opts+=(--profile)

peer_header "engine blocks vs PyTorch ($THREADS threads; per pass the best of $RUNS runs after $WARMUP warm-up, best over $ROUNDS rounds)"
peer_rounds "$THREADS"
peer_notes

# One row per block and pass: times, GFLOP/s, fraction of our measured sgemm
# peak, and the ratio torch/ours against the issue's targets.
say ""
peer_table 2 '
	/^peak / && file == 1 && $2 > peak { peak = $2 }
	/^result / && file == 1 { gflop[key] = $6 }
	/^result / && better && file == 1 { ours_med[key] = $5 }
	/^result / && better && file == 2 { torch_med[key] = $5 }
	END {
		target["transformer"] = 1.5; target["conv"] = 1.0
		printf "%-11s %-16s %8s %8s %7s %6s %8s %8s %7s %6s %10s %6s\n", "block", "pass", "ours ms", "median",
		       "GFLOP/s", "peak", "torch ms", "median", "GFLOP/s", "peak", "torch/ours", "target"
		for (i = 1; i <= n; i++) {
			k = order[i]; split(k, kp, " ")
			ogf = gflop[k] / (ours[k] / 1e3)
			line = sprintf("%-11s %-16s %8.2f %8.2f %7.1f %5.1f%%", kp[1], kp[2], ours[k], ours_med[k], ogf,
			               100 * ogf / peak)
			if (have_torch && (k in torch)) {
				tgf = gflop[k] / (torch[k] / 1e3); ratio = torch[k] / ours[k]
				line = line sprintf(" %8.2f %8.2f %7.1f %5.1f%% %10.2f %5.1fx", torch[k], torch_med[k], tgf,
				                    100 * tgf / peak, ratio, target[kp[1]])
				if (!(kp[1] in verdict)) verdict[kp[1]] = 1
				if (ratio < target[kp[1]]) verdict[kp[1]] = 0
			}
			print line
		}
		printf "sgemm peak (2048^3 cblas_sgemm, best over rounds): %.1f GFLOP/s\n", peak
		for (b in target)
			if (b in verdict) printf "target %s >= %.1fx PyTorch on both passes: %s\n", b, target[b], verdict[b] ? "met" : "MISSED"
	}'
