# What the benchmarks against PyTorch share (bench/clip_towers.sh,
# bench/nn_blocks.sh, bench/vq_codec.sh): our C program and a PyTorch script
# timing the same work, in turns, in one invocation. Sourced, after setting
#   NAME            our program in KNND_BENCH_BIN, and the prefix of messages
#   TORCH_SCRIPT    PyTorch's side, a script in bench/
#   DEFAULT_RUNS, DEFAULT_WARMUP   (BENCH_RUNS, BENCH_WARMUP)
#   DEFAULT_THREADS (BENCH_THREADS: one thread count, or a list for peer_rounds)
# It reads the settings every such benchmark takes: BENCH_ROUNDS (2),
# BENCH_ONLY, BENCH_BREAKDOWN, KNND_BENCH_BIN (build/release/bench) and
# KNND_PYTHON (/usr/bin/python3, which has torch), and sets
#   root THREADS RUNS WARMUP ROUNDS BREAKDOWN PY OURS have_torch
#   tmp         a temporary directory, removed on exit
#   opts        the options both sides take (--runs, --warmup, --only)
#   ours_opts, torch_opts   empty: each side's own options, for the caller
# shellcheck disable=SC2034  # set here for the caller
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
THREADS=${BENCH_THREADS:-$DEFAULT_THREADS}
RUNS=${BENCH_RUNS:-$DEFAULT_RUNS}
WARMUP=${BENCH_WARMUP:-$DEFAULT_WARMUP}
ROUNDS=${BENCH_ROUNDS:-2}
BREAKDOWN=${BENCH_BREAKDOWN:-0}
PY=${KNND_PYTHON:-/usr/bin/python3}
OURS=${KNND_BENCH_BIN:-$root/build/release/bench}/$NAME

say() { printf '%s\n' "$*"; }
fail() { say "$NAME: $*" >&2; exit 1; }

[ -x "$OURS" ] || fail "$OURS not found; run make bench"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/knnd-$NAME.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

opts=(--runs "$RUNS" --warmup "$WARMUP")
[ -n "${BENCH_ONLY:-}" ] && opts+=(--only "$BENCH_ONLY")
ours_opts=() torch_opts=()
have_torch=1
"$PY" -c 'import torch' 2>/dev/null || have_torch=0

# peer_header TEXT: the benchmark's first line, and a note when PyTorch's
# side cannot run.
peer_header() {
	say "== $*"
	[ "$have_torch" = 1 ] || say "$NAME: $PY has no torch; PyTorch's side and the ratios are skipped"
}

# peer_rounds THREADS: runs our program and then PyTorch's script ROUNDS
# times each, taking turns, so that a burst of load from elsewhere on a
# shared machine hits both sides alike. Each round's output is in
# $tmp/ours.N and $tmp/torch.N, and all rounds' (of every call) are appended
# to $tmp/ours and $tmp/torch. PyTorch runs with OMP_WAIT_POLICY=passive,
# its best setting on two cores.
peer_rounds() {
	local threads=$1 round
	for ((round = 1; round <= ROUNDS; round++)); do
		OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads \
			"$OURS" "${opts[@]}" "${ours_opts[@]}" >"$tmp/ours.$round" || fail "$OURS failed"
		cat "$tmp/ours.$round" >>"$tmp/ours"
		if [ "$have_torch" = 1 ]; then
			OMP_WAIT_POLICY=passive OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads \
				MKL_NUM_THREADS=$threads "$PY" "$root/bench/$TORCH_SCRIPT" --threads "$threads" "${opts[@]}" \
				"${torch_opts[@]}" >"$tmp/torch.$round" || fail "bench/$TORCH_SCRIPT failed"
			cat "$tmp/torch.$round" >>"$tmp/torch"
		fi
	done
}

# peer_notes: the readable ("#") lines of the last round, each side's.
peer_notes() {
	grep '^#' "$tmp/ours.$ROUNDS" | sed 's/^# \{0,1\}/ours:  /'
	[ "$have_torch" = 0 ] || grep '^#' "$tmp/torch.$ROUNDS" | sed 's/^# \{0,1\}/torch: /'
}

: >"$tmp/ours"
: >"$tmp/torch"
