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
root=$(cd "$(dirname "$0")/.." && pwd)
THREADS=${BENCH_THREADS:-2}
RUNS=${BENCH_RUNS:-5}
WARMUP=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-2}
PY=${KNND_PYTHON:-/usr/bin/python3}
OURS=${KNND_BENCH_BIN:-$root/build/release/bench}/clip_towers

say() { printf '%s\n' "$*"; }
fail() { say "clip_towers: $*" >&2; exit 1; }

[ -x "$OURS" ] || fail "$OURS not found; run make bench"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/knnd-clip-towers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

opts=(--runs "$RUNS" --warmup "$WARMUP")
[ -n "${BENCH_ONLY:-}" ] && opts+=(--only "$BENCH_ONLY")
ours_opts=()
[ "${BENCH_BREAKDOWN:-0}" = 1 ] && ours_opts+=(--breakdown)

say "== CLIP ViT-B/32 towers vs PyTorch ($THREADS threads; per case the best of $RUNS runs after $WARMUP warm-up, best over $ROUNDS rounds)"
have_torch=1
"$PY" -c 'import torch' 2>/dev/null || {
	say "clip_towers: $PY has no torch; PyTorch's side and the ratios are skipped"
	have_torch=0
}
# The two programs take turns, so that a burst of load from elsewhere on a
# shared machine hits both sides alike.
: >"$tmp/ours" >"$tmp/torch"
for ((round = 1; round <= ROUNDS; round++)); do
	OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS \
		"$OURS" "${opts[@]}" "${ours_opts[@]}" >"$tmp/ours.$round" || fail "$OURS failed"
	cat "$tmp/ours.$round" >>"$tmp/ours"
	if [ "$have_torch" = 1 ]; then
		OMP_WAIT_POLICY=passive OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS \
			"$PY" "$root/bench/clip_towers_torch.py" --threads "$THREADS" "${opts[@]}" \
			>"$tmp/torch.$round" || fail "bench/clip_towers_torch.py failed"
		cat "$tmp/torch.$round" >>"$tmp/torch"
	fi
done
grep '^#' "$tmp/ours.$ROUNDS" | sed 's/^# \{0,1\}/ours:  /'
[ "$have_torch" = 0 ] || grep '^#' "$tmp/torch.$ROUNDS" | sed 's/^# \{0,1\}/torch: /'

# One row per tower and batch: items/s, GFLOP/s and fraction of the sgemm
# peak for each side (each side's FLOPs as computed: PyTorch's text tower
# always runs 77 positions, ours up to the batch's last end token), and the
# ratio of items per second against the issue's target.
say ""
awk -v have_torch="$have_torch" '
	FNR == 1 { file++ }
	/^peak / && file == 1 && $2 > peak { peak = $2 }
	/^result / {
		key = $2 " " $3
		if (file == 1) {
			if (!(key in ours)) order[++n] = key
			if (!(key in ours) || $4 < ours[key]) ours[key] = $4
			ogflop[key] = $6; opos[key] = $7
		} else {
			if (!(key in torch) || $4 < torch[key]) torch[key] = $4
			tgflop[key] = $6
		}
	}
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
	}' "$tmp/ours" "$tmp/torch"
