#!/usr/bin/env bash
# Stream throughput: how fast records cross chains of pass-through filters,
# as a ratio to cat moving the same bytes in the same invocation.
#   bash bench/stream_throughput.sh      (or: make bench)
# Settings (environment): BENCH_RUNS (3), BENCH_EMB_RECORDS (200000),
# BENCH_IMG_RECORDS (4000), BENCH_PNG_FILES (300, 0 skips img-read),
# BENCH_FILTER (the filter under test, default "ts-cat --raw"; "cat" checks
# the script itself), KNND_BIN (bin/), TMPDIR. See bench/README.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BIN=${KNND_BIN:-$root/bin}
RUNS=${BENCH_RUNS:-3}
EMB_RECORDS=${BENCH_EMB_RECORDS:-200000}
IMG_RECORDS=${BENCH_IMG_RECORDS:-4000}
PNG_FILES=${BENCH_PNG_FILES:-300}
FILTER=${BENCH_FILTER:-$BIN/ts-cat --raw}

say() { printf '%s\n' "$*"; }
fail() { say "stream_throughput: $*" >&2; exit 1; }

[ -x "${FILTER%% *}" ] || command -v "${FILTER%% *}" >/dev/null ||
	fail "${FILTER%% *} not found; run make first"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/knnd-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The generator is built by `make bench` like the tools.
GEN=${KNND_BENCH_BIN:-$root/build/release/bench}/gen_stream
[ -x "$GEN" ] || fail "$GEN not found; run make bench"

now() { date +%s.%N; }

# best_seconds CHAIN: the fastest of $RUNS runs of the shell pipeline CHAIN.
best_seconds() {
	local best="" t0 t1
	for ((run = 0; run < RUNS; run++)); do
		t0=$(now)
		bash -o pipefail -c "$1" || fail "failed: $1"
		t1=$(now)
		best=$(awk -v a="$t0" -v b="$t1" -v best="$best" \
			'BEGIN { s = b - a; print (best == "" || s < best) ? s : best }')
	done
	say "$best"
}

# row LABEL BYTES RECORDS SECONDS [CAT_SECONDS]
row() {
	awk -v label="$1" -v bytes="$2" -v n="$3" -v s="$4" -v cat="${5:-}" 'BEGIN {
		ratio = cat == "" ? "" : sprintf("%.2f", cat / s)
		printf "  %-44s %9.0f %7.2f %11.0f %8s\n", label, bytes / s / 1e6, bytes / s / 1e9, n / s, ratio
	}'
}

header() {
	say ""
	say "$1"
	printf '  %-44s %9s %7s %11s %8s\n' chain MB/s GB/s records/s ours/cat
}

# compare_chains FILE RECORDS: one and two filters, ours then cat; leaves
# the time of two of ours in two_filter_seconds.
compare_chains() {
	local f=$1 n=$2 bytes ours cat
	bytes=$(stat -c %s "$f")
	cat "$f" >/dev/null # into the page cache before anything is timed
	if ! bash -o pipefail -c "$FILTER <'$f' | $FILTER | cmp -s - '$f'"; then
		say "  note: two filters did not give back the same bytes"
	fi
	for depth in 1 2; do
		local chain_ours="$FILTER <'$f'" chain_cat="cat <'$f'"
		for ((k = 1; k < depth; k++)); do
			chain_ours+=" | $FILTER"
			chain_cat+=" | cat"
		done
		ours=$(best_seconds "$chain_ours >/dev/null")
		cat=$(best_seconds "$chain_cat >/dev/null")
		local name=${FILTER##*/}
		local label="$depth x $name"
		row "$label" "$bytes" "$n" "$ours" "$cat"
		row "$depth x cat" "$bytes" "$n" "$cat"
		two_filter_seconds=$ours # the last depth is 2
	done
}

say "stream throughput: best of $RUNS runs; $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
say "filter under test: $FILTER"

emb=$tmp/emb.ts
"$GEN" emb "$EMB_RECORDS" 512 >"$emb"
header "emb float32 [512]: $EMB_RECORDS records, $(($(stat -c %s "$emb") / 1000000)) MB"
compare_chains "$emb" "$EMB_RECORDS"

img=$tmp/image.ts
"$GEN" image "$IMG_RECORDS" 256 256 3 >"$img"
img_bytes=$(stat -c %s "$img")
header "image uint8 [256,256,3]: $IMG_RECORDS records, $((img_bytes / 1000000)) MB"
compare_chains "$img" "$IMG_RECORDS"
rm -f "$emb"

# img-read decodes PNG, so cat is no fair baseline: its rate is reported alone.
if [ "$PNG_FILES" -gt 0 ] && [ -x "$BIN/img-read" ] && [ -x "$BIN/img-write" ] && [ -x "$BIN/ts-head" ]; then
	"$BIN/ts-head" -n "$PNG_FILES" "$img" | "$BIN/img-write" --dir "$tmp/png"
	png_bytes=$(cat "$tmp"/png/*.png | wc -c)
	out_bytes=$("$BIN/img-read" "$tmp"/png/*.png | wc -c)
	header "img-read: $PNG_FILES PNGs of 256x256 RGB, $((png_bytes / 1000000)) MB of PNG -> $((out_bytes / 1000000)) MB of stream"
	s=$(best_seconds "'$BIN/img-read' '$tmp'/png/*.png >/dev/null")
	row "img-read (stream bytes out)" "$out_bytes" "$PNG_FILES" "$s"
	s=$(best_seconds "'$BIN/img-read' '$tmp'/png/*.png | $FILTER | $FILTER >/dev/null")
	row "img-read | 2 x ${FILTER##*/}" "$out_bytes" "$PNG_FILES" "$s"
fi

say ""
awk -v s="$two_filter_seconds" -v b="$img_bytes" 'BEGIN {
	g = b / s / 1e9
	printf "target (images through two filters >= 1 GB/s): %.2f GB/s, %s\n", g, (g >= 1 ? "met" : "MISSED")
}'
