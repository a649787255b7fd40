#!/usr/bin/env bash
# The discrete diffusion backbone against PyTorch (issue 7, Performance):
# training steps/s (batch 8: q_sample, forward, loss, backward, AdamW) and
# sampling seconds per image (batch 1 and 8, a chain of reverse steps from
# all-mask) for 12 blocks, width 512, 8 heads, 16x16 tokens, 1024 codes,
# k = 10 (11 condition slots of 512) and T = 100, on one thread and on all,
# timed by bench/diffuse_bench.c (ours, lib/diffusion) and
# bench/diffuse_bench_torch.py (the same model and diffusion in plain torch)
# in the same invocation on the same random weights, with the ratio
# ours/torch and a check that both give the same logits.
#   bash bench/diffuse_bench.sh                  (about 3 minutes on 2 cores)
#   BENCH_STEPS=100 bash bench/diffuse_bench.sh  (whole chains, about 12 minutes)
# Settings (environment): BENCH_THREADS ("1 NPROC"), BENCH_STEPS (10:
# reverse steps per timed chain; every step costs the same, and times are
# also given scaled to 100 steps), BENCH_RUNS (3 training steps),
# BENCH_SAMPLE_RUNS (1 chain per batch), BENCH_WARMUP (1), BENCH_ROUNDS (1
# here: each program runs this many times per thread count, taking turns),
# BENCH_BREAKDOWN (1: per-op time of ours and torch's profiler table),
# BENCH_ONLY (train or sample), BENCH_DEVICE (cpu; cuda: ours on the CUDA
# backend, torch on the GPU), BENCH_DIFFUSE_CONFIG (options for both
# sides, e.g. "--depth 2 --width 64" to try the script), KNND_BENCH_BIN
# (build/release/bench), KNND_PYTHON (/usr/bin/python3, which has torch).
# See bench/README.md.
set -euo pipefail
all=$(nproc)
NAME=diffuse_bench TORCH_SCRIPT=diffuse_bench_torch.py DEFAULT_RUNS=3 DEFAULT_WARMUP=1
DEFAULT_THREADS=$([ "$all" -gt 1 ] && echo "1 $all" || echo 1)
: "${BENCH_ROUNDS:=1}" # a round at 100 steps takes minutes
# shellcheck source=common/peer.sh
source "$(dirname "$0")/common/peer.sh"
STEPS=${BENCH_STEPS:-10}
SAMPLE_RUNS=${BENCH_SAMPLE_RUNS:-1}
read -r -a config <<<"${BENCH_DIFFUSE_CONFIG:-}"
opts+=(--steps "$STEPS" --sample-runs "$SAMPLE_RUNS" ${config[@]+"${config[@]}"})
[ "$BREAKDOWN" = 1 ] && ours_opts+=(--breakdown) torch_opts+=(--profile)
# BENCH_DEVICE=cuda: ours on the CUDA backend against torch on the GPU.
[ -n "${BENCH_DEVICE:-}" ] && ours_opts+=(--backend "$BENCH_DEVICE") torch_opts+=(--device "$BENCH_DEVICE")

peer_header "discrete diffusion backbone vs PyTorch (12 blocks, width 512, 8 heads, 16x16 tokens, 1024 codes," \
	"k 10, T 100${BENCH_DIFFUSE_CONFIG:+; changed by: $BENCH_DIFFUSE_CONFIG}; threads $THREADS;" \
	"train: best of $RUNS steps after $WARMUP; sample: $STEPS steps, best of $SAMPLE_RUNS chains;" \
	"best over $ROUNDS rounds)"
# PyTorch makes the weights (our names) and the check data; without torch,
# ours runs on its own random weights of the same config.
peer_torch_model ${config[@]+"${config[@]}"}
peer_each_thread_count

# One row per case and thread count: training steps/s or sampling seconds
# per image (for the chain as run, and scaled to 100 steps), GFLOP/s and
# fraction of the sgemm peak on that many threads (FLOPs as ours counts
# them: the same work on both sides), and ours/torch in speed.
say ""
peer_table 3 '
	/^peak / && file == 1 && $2 > peak[$3] { peak[$3] = $2 }
	/^check / { diff = $2; maxabs = $3; loss = $4; tloss = $5; checked_logits = 1 }
	/^result / && file == 1 { steps[key] = $7; gflop[key] = $8 }
	function speed(k, ms) {   # steps/s for training, s per image for sampling
		split(k, kp, " ")
		return kp[1] == "train" ? 1e3 / ms : ms / 1e3 / kp[2]
	}
	END {
		printf "%-6s %5s %7s %6s %10s %10s %7s %6s %10s %10s %7s %6s %10s\n", "case", "batch", "threads",
		       "steps", "ours", "per 100", "GFLOP/s", "peak", "torch", "per 100", "GFLOP/s", "peak", "ours/torch"
		missed = 0; compared = 0
		for (i = 1; i <= n; i++) {
			k = order[i]; split(k, kp, " ")
			scale = kp[1] == "train" ? 1 : 100 / steps[k]
			unit = kp[1] == "train" ? "step/s" : "s/img"
			ogf = gflop[k] / (ours[k] / 1e3)
			line = sprintf("%-6s %5d %7d %6d %10.3f %10s %7.1f %5.1f%%", kp[1], kp[2], kp[3], steps[k],
			               speed(k, ours[k]), kp[1] == "train" ? "" : sprintf("%.2f", scale * speed(k, ours[k])),
			               ogf, 100 * ogf / peak[kp[3]])
			if (have_torch && (k in torch)) {
				tgf = gflop[k] / (torch[k] / 1e3); ratio = torch[k] / ours[k]
				line = line sprintf(" %10.3f %10s %7.1f %5.1f%% %9.2fx", speed(k, torch[k]),
				                    kp[1] == "train" ? "" : sprintf("%.2f", scale * speed(k, torch[k])),
				                    tgf, 100 * tgf / peak[kp[3]], ratio)
				compared++
				if (ratio < 1) { missed++; line = line " MISSED" }
			}
			print line
		}
		print "(train: steps/s; sample: seconds per image for the chain as run, and scaled to 100 steps;" \
		      " ours/torch > 1: ours is faster)"
		for (t in peak)
			printf "sgemm peak on %d thread(s) (2048^3 cblas_sgemm, best over rounds): %.1f GFLOP/s\n", t, peak[t]
		ok = 1
		if (checked_logits) {
			ok = diff <= 1e-3 * (maxabs > 1 ? maxabs : 1)
			dl = loss - tloss; dl = dl < 0 ? -dl : dl; at = tloss < 0 ? -tloss : tloss
			lossok = dl <= 1e-4 * (at > 1 ? at : 1)
			printf "same model (PyTorch'"'"'s check input): logits max |ours - torch| %s (max |logit| %s): %s; " \
			       "training loss ours %s, torch %s: %s\n", diff, maxabs, ok ? "ok" : "FAILED", loss, tloss,
			       lossok ? "ok" : "FAILED"
			ok = ok && lossok
		}
		if (compared)
			printf "target (ours at least PyTorch'"'"'s speed in every case): %d of %d met\n", compared - missed,
			       compared
		if (!ok) exit 1
	}' ||
	fail "our logits or loss differ from PyTorch's: the two sides do not run the same model"
