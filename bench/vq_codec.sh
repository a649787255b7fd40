#!/usr/bin/env bash
# The VQGAN tokenizer against PyTorch (issue 6, Performance): images/s
# encoding (image -> tokens) and decoding (tokens -> image) at batch 1 and 16
# for a mid-size config (64x64 RGB, f = 8, 512 codes), on one thread and on
# all, timed by bench/vq_codec.c (ours, lib/vqgan) and
# bench/vq_codec_torch.py (taming's architecture in plain torch) in the same
# invocation on the same random weights, with the ratio ours/torch in images
# per second and a check that both sides give the same tokens.
#   bash bench/vq_codec.sh      (or: make bench)
# Settings (environment): BENCH_THREADS ("1 NPROC"), BENCH_RUNS (3),
# BENCH_WARMUP (1), BENCH_ROUNDS (2: each program runs this many times per
# thread count, taking turns), BENCH_BREAKDOWN (1: per-op time of ours and
# torch's profiler table), BENCH_ONLY (encode or decode), BENCH_VQ_CH (64:
# base channels), BENCH_VQ_Z (64: z_channels and embed_dim),
# KNND_BENCH_BIN (build/release/bench), KNND_PYTHON (/usr/bin/python3,
# which has torch). See bench/README.md.
set -euo pipefail
all=$(nproc)
NAME=vq_codec TORCH_SCRIPT=vq_codec_torch.py DEFAULT_RUNS=3 DEFAULT_WARMUP=1
DEFAULT_THREADS=$([ "$all" -gt 1 ] && echo "1 $all" || echo 1)
# shellcheck source=common/peer.sh
source "$(dirname "$0")/common/peer.sh"
CH=${BENCH_VQ_CH:-64}
Z=${BENCH_VQ_Z:-64}
[ "$BREAKDOWN" = 1 ] && ours_opts+=(--breakdown) torch_opts+=(--profile)

peer_header "VQGAN tokenizer vs PyTorch (ch $CH, ch_mult 1,2,2,4, z $Z, 512 codes, 64x64 images;" \
	"threads $THREADS; per case the best of $RUNS runs after $WARMUP warm-up, best over $ROUNDS rounds)"
# PyTorch makes the weights (taming's names; ours loads them through
# vqgan_load) and the check data; without torch, ours runs on its own random
# weights of the same config.
peer_torch_model --ch "$CH" --z "$Z"
[ "$have_torch" = 1 ] || ours_opts+=(--ch "$CH" --z "$Z")
peer_each_thread_count

# One row per pass, batch and thread count: images/s, GFLOP/s and fraction
# of the sgemm peak on that many threads for each side (FLOPs as ours counts
# them, the same work on both sides), and the ratio ours/torch in images/s.
say ""
peer_table 3 '
	/^peak / && file == 1 && $2 > peak[$3] { peak[$3] = $2 }
	/^check / { agree = $2; tokens = $3; maxdiff = $4 }
	/^result / && file == 1 { gflop[key] = $7 }
	END {
		printf "%-6s %5s %7s %9s %7s %6s %9s %7s %6s %10s\n", "pass", "batch", "threads", "ours/s", "GFLOP/s",
		       "peak", "torch/s", "GFLOP/s", "peak", "ours/torch"
		missed = 0; checked = 0
		for (i = 1; i <= n; i++) {
			k = order[i]; split(k, kp, " ")
			ogf = gflop[k] / (ours[k] / 1e3)
			line = sprintf("%-6s %5d %7d %9.2f %7.1f %5.1f%%", kp[1], kp[2], kp[3], 1e3 * kp[2] / ours[k], ogf,
			               100 * ogf / peak[kp[3]])
			if (have_torch && (k in torch)) {
				tgf = gflop[k] / (torch[k] / 1e3); ratio = torch[k] / ours[k]
				line = line sprintf(" %9.2f %7.1f %5.1f%% %9.2fx", 1e3 * kp[2] / torch[k], tgf,
				                    100 * tgf / peak[kp[3]], ratio)
				checked++
				if (ratio < 1) { missed++; line = line " MISSED" }
			}
			print line
		}
		for (t in peak)
			printf "sgemm peak on %d thread(s) (2048^3 cblas_sgemm, best over rounds): %.1f GFLOP/s\n", t, peak[t]
		if (tokens)
			printf "same tokens (PyTorch'"'"'s 16 random images): %d of %d agree (%.2f%%, sanity >= 99%%): %s; " \
			       "decoding its tokens: max |ours - torch| %s\n", agree, tokens, 100 * agree / tokens,
			       (agree >= 0.99 * tokens) ? "ok" : "FAILED", maxdiff
		if (checked)
			printf "target (ours at least PyTorch'"'"'s images/s in every case): %d of %d met\n", checked - missed,
			       checked
		if (tokens && agree < 0.99 * tokens) exit 1
	}' || fail "our tokens differ from PyTorch's: the two sides do not run the same model"
