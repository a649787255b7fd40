#!/usr/bin/env bash
# CLIP ViT-B/32's towers against PyTorch (issue 4, Performance): images/s and
# texts/s at batch 1 and 32, timed by bench/clip_towers.c (ours, lib/clip)
# and bench/clip_towers_torch.py (the reference's architecture in plain
# torch) in the same invocation with the same thread count, the ratio
# ours/torch in items per second, and each side's fraction of the sgemm
# peak.
#   bash bench/clip_towers.sh      (or: make bench)
# Settings (environment): BENCH_THREADS (2), BENCH_RUNS (5), BENCH_WARMUP (1),
# BENCH_ROUNDS (2: each program runs this many times, taking turns),
# BENCH_BREAKDOWN (1: per-op time of ours), BENCH_ONLY (vision, text or
# text77), KNND_BENCH_BIN (build/release/bench), KNND_PYTHON
# (/usr/bin/python3, which has torch). See bench/README.md.
set -euo pipefail
NAME=clip_towers TORCH_SCRIPT=clip_towers_torch.py DEFAULT_RUNS=5 DEFAULT_WARMUP=1 DEFAULT_THREADS=2
# shellcheck source=common/peer.sh
source "$(dirname "$0")/common/peer.sh"
[ "$BREAKDOWN" = 1 ] && ours_opts+=(--breakdown)

peer_header "CLIP ViT-B/32 towers vs PyTorch ($THREADS threads; per case the best of $RUNS runs after $WARMUP warm-up, best over $ROUNDS rounds)"
peer_rounds "$THREADS"
peer_notes

# One row per tower and batch: items/s, GFLOP/s and fraction of the sgemm
# peak for each side (each side's FLOPs as computed: PyTorch's text tower
# always runs 77 positions, ours up to the batch's last end token), and the
# ratio of items per second against the issue's target.
say ""
peer_table 2 '
	/^peak / && file == 1 && $2 > peak { peak = $2 }
	/^result / && file == 1 { ogflop[key] = $6; opos[key] = $7 }
	/^result / && file == 2 { tgflop[key] = $6 }
	END {
		target["vision 1"] = 2.0; target["vision 32"] = 1.25; target["text 32"] = 2.0
		printf "%-7s %5s %5s %10s %7s %6s %10s %7s %6s %11s %6s\n", "tower", "batch", "pos", "ours/s", "GFLOP/s",
		       "peak", "torch/s", "GFLOP/s", "peak", "ours/torch", "target"
		missed = 0; checked = 0
		for (i = 1; i <= n; i++) {
			k = order[i]; split(k, kp, " ")
			ogf = ogflop[k] / (ours[k] / 1e3)
			line = sprintf("%-7s %5d %5d %10.2f %7.1f %5.1f%%", kp[1], kp[2], opos[k], 1e3 * kp[2] / ours[k], ogf,
			               100 * ogf / peak)
			if (have_torch && (k in torch)) {
				tgf = tgflop[k] / (torch[k] / 1e3); ratio = torch[k] / ours[k]
				line = line sprintf(" %10.2f %7.1f %5.1f%% %10.2fx", 1e3 * kp[2] / torch[k], tgf, 100 * tgf / peak, ratio)
				if (k in target) {
					line = line sprintf(" %5.2fx", target[k]); checked++
					if (ratio < target[k]) { missed++; line = line " MISSED" }
				}
			}
			print line
		}
		printf "sgemm peak (2048^3 cblas_sgemm, best over rounds): %.1f GFLOP/s\n", peak
		if (checked) printf "targets (images 2x at batch 1, 1.25x at 32; texts 2x at 32): %d of %d met\n", checked - missed, checked
	}'
