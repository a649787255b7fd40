#!/usr/bin/env bash
# eval-tables: markdown tables of evaluate.sh's measurements, mean ± sample
# standard deviation over the seeds of each setting.
#   pipelines/eval-tables.sh RUNS_DIR "TITLE" SETTING... [-- "TITLE" SETTING...]...
# Reads RUNS_DIR/SETTING/metrics.tsv; one table per title, one row per
# setting in the order given.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 RUNS_DIR \"TITLE\" SETTING... [-- \"TITLE\" SETTING...]..." >&2; exit 2; }
runs=$1
shift
header() {
	printf '\n### %s\n\n' "$1"
	printf '| setting | FD judge ↓ | FD CLIP ↓ | judge accuracy ↑ | CLIP-score ↑ | brightness | seeds × samples |\n'
	printf '|---|---|---|---|---|---|---|\n'
}
row() {
	[ -f "$runs/$1/metrics.tsv" ] || { echo "eval-tables.sh: $runs/$1/metrics.tsv: missing" >&2; exit 1; }
	awk -F '\t' -v name="$1" '
		NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
		{ seeds++; n = $col["n"]
		  for (f in col) if (f != "seed" && f != "n") { s[f] += $col[f]; q[f] += $col[f] * $col[f] } }
		function cell(f, d,   m, v) {
			m = s[f] / seeds; v = seeds > 1 ? (q[f] - seeds * m * m) / (seeds - 1) : 0
			return sprintf("%." d "f ± %." d "f", m, v > 0 ? sqrt(v) : 0)
		}
		END { printf "| %s | %s | %s | %s | %s | %s | %d × %d |\n", name, cell("fd_judge", 2), cell("fd_clip", 3),
		             cell("accuracy", 3), cell("clip_score", 3), cell("brightness", 3), seeds, n }' "$runs/$1/metrics.tsv"
}
header "$1"
shift
while [ $# -gt 0 ]; do
	if [ "$1" = -- ]; then
		header "$2"
		shift 2
	else
		row "$1"
		shift
	fi
done
