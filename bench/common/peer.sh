# What the benchmarks against PyTorch share (bench/clip_towers.sh,
# bench/diffuse_bench.sh, bench/nn_blocks.sh, bench/vq_codec.sh): our C
# program and a PyTorch script timing the same work, in turns, in one
# invocation. Sourced, after setting
#   NAME            our program in KNND_BENCH_BIN, and the prefix of messages
#   TORCH_SCRIPT    PyTorch's side, a script in bench/
#   DEFAULT_RUNS, DEFAULT_WARMUP   (BENCH_RUNS, BENCH_WARMUP)
#   DEFAULT_THREADS (BENCH_THREADS: one thread count, or a list for
#                   peer_each_thread_count)
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

# peer_table KEY_FIELDS PROGRAM: runs the awk PROGRAM that prints the
# script's table from all rounds' output, ours ($tmp/ours, file 1) and then
# PyTorch's ($tmp/torch, file 2), after rules that keep each side's best
# time per case: a result line's case (key) is its fields 2 to
# KEY_FIELDS + 1, and its best ms the next field. PROGRAM sees have_torch,
# file, key, ours[key] and torch[key] (the best ms so far), order[1..n]
# (ours' keys as they first came) and better (the line is the best so far
# of its side).
peer_table() {
	awk -v have_torch="$have_torch" -v key_fields="$1" '
	FNR == 1 { file++ }
	/^result / {
		key = $2
		for (i = 3; i <= key_fields + 1; i++)
			key = key " " $i
		ms = $(key_fields + 2) + 0
		if (file == 1) {
			if (!(key in ours)) order[++n] = key
			better = !(key in ours) || ms < ours[key]
			if (better) ours[key] = ms
		} else {
			better = !(key in torch) || ms < torch[key]
			if (better) torch[key] = ms
		}
	}'"$2" "$tmp/ours" "$tmp/torch"
}

# peer_torch_model OPTION...: where torch is here, PyTorch's script writes
# the weights both sides then run (its parameter names, the config in the
# metadata) and the check data, made with OPTION...; ours loads them and
# checks itself against PyTorch's results. Without torch nothing changes.
peer_torch_model() {
	[ "$have_torch" = 1 ] || return 0
	"$PY" "$root/bench/$TORCH_SCRIPT" --write "$tmp/model" "$@" | sed 's/^# \{0,1\}/torch: /' ||
		fail "bench/$TORCH_SCRIPT --write failed"
	ours_opts+=(--model "$tmp/model/model.safetensors" --check "$tmp/model")
	torch_opts+=(--model "$tmp/model/model.safetensors")
}

# peer_notes: the readable ("#") lines of the last round, each side's.
peer_notes() {
	grep '^#' "$tmp/ours.$ROUNDS" | sed 's/^# \{0,1\}/ours:  /'
	[ "$have_torch" = 0 ] || grep '^#' "$tmp/torch.$ROUNDS" | sed 's/^# \{0,1\}/torch: /'
}

# peer_each_thread_count: peer_rounds and then peer_notes for each thread
# count in THREADS.
peer_each_thread_count() {
	local threads
	for threads in $THREADS; do
		peer_rounds "$threads"
		peer_notes
	done
}

: >"$tmp/ours"
: >"$tmp/torch"
