#!/usr/bin/env bash
# knn-query against Debian's python3-faiss (issue 5): the same factory string
# and the same clustered unit vectors (image-like queries, and text-like ones
# shifted by one constant offset, the modality gap) both ways, recall@10
# against exact search, queries/s over nprobe with 1 and all threads.
#   bash bench/knn_bench.sh      (or: make bench)
# Settings (environment): KNND_KNN_N (1000000 vectors), KNND_KNN_FACTORY
# (PCAR384,IVF<4*sqrt(N)>,SQ4,RFlat), KNND_KNN_KFACTOR (32: candidates re-ranked per
# neighbour), KNND_KNN_NPROBES (1,4,16,64,256), KNND_BIN (bin), KNND_PYTHON
# (/usr/bin/python3), TMPDIR. See bench/README.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
N=${KNND_KNN_N:-1000000}
NLIST=$(awk -v n="$N" 'BEGIN { printf "%d", 4 * sqrt(n) }')
FACTORY=${KNND_KNN_FACTORY:-PCAR384,IVF$NLIST,SQ4,RFlat}
KFACTOR=${KNND_KNN_KFACTOR:-32}
NPROBES=${KNND_KNN_NPROBES:-1,4,16,64,256}
ALL=$(nproc)
BIN=${KNND_BIN:-$root/bin}
PY=${KNND_PYTHON:-/usr/bin/python3}
# FAISS's OpenMP threads spin while waiting; on a shared 2-CPU machine that
# turns any other load into stalls of seconds.
export OMP_WAIT_POLICY=passive

say() { printf '%s\n' "$*"; }
fail() { say "knn_bench: $*" >&2; exit 1; }

"$PY" -c 'import faiss, msgpack, numpy' 2>/dev/null || { say "knn_bench: $PY lacks faiss, msgpack or numpy; skipped"; exit 0; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/knnd-knn-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
ours=0
[ -x "$BIN/knn-query" ] && ours=1

say "== knn-query vs python3-faiss: N=$N x 512, factory $FACTORY, k_factor $KFACTOR, $ALL CPUs"
streams=()
[ "$ours" = 1 ] && streams=(streams)
"$PY" "$root/bench/knn_bench.py" gen "$tmp" "$N" "${streams[@]}" || fail "generating the data failed"
: >"$tmp/results"
for t in 1 "$ALL"; do
	"$PY" "$root/bench/knn_bench.py" exact "$tmp" "$t" >>"$tmp/results" || fail "exact search failed"
done
"$PY" "$root/bench/knn_bench.py" faiss "$tmp" "$FACTORY" "$KFACTOR" "$NPROBES" "1,$ALL" 2>"$tmp/faiss.err" \
	>>"$tmp/results" || { cat "$tmp/faiss.err" >&2; fail "python3-faiss failed"; }

now() { date +%s.%N; }
if [ "$ours" = 1 ]; then
	start=$(now)
	"$BIN/knn-query" build --index "$tmp/index" --factory "$FACTORY" <"$tmp/base.ts" 2>"$tmp/build.err" ||
		{ cat "$tmp/build.err" >&2; fail "knn-query build failed"; }
	secs=$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')
	# All files in the index directory; the largest one is taken as the index,
	# the rest as side data (stored embeddings, metadata).
	read -r total largest < <(find "$tmp/index" -type f -printf '%s\n' |
		awk '{ t += $1; if ($1 > m) m = $1 } END { print t + 0, m + 0 }')
	awk -v s="$secs" -v n="$N" -v t="$total" -v m="$largest" \
		'BEGIN { printf "build ours %.1f %.1f %.1f\n", s, m / n, (t - m) / n }' >>"$tmp/results"
	for t in 1 "$ALL"; do
		for kind in image text; do
			for p in ${NPROBES//,/ }; do
				start=$(now)
				OMP_NUM_THREADS=$t "$BIN/knn-query" search --index "$tmp/index" -k 10 --nprobe "$p" \
					<"$tmp/q_$kind.ts" >"$tmp/out.ts" 2>"$tmp/search.err" ||
					{ cat "$tmp/search.err" >&2; fail "knn-query search failed"; }
				qps=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", 1000 / (b - a) }')
				r=$("$PY" "$root/bench/knn_bench.py" recall "$tmp" "$kind" "$tmp/out.ts") || fail "reading knn-query's output failed"
				say "result ours $t $kind $p ${r##* } $qps" >>"$tmp/results"
			done
		done
	done
else
	say "knn_bench: $BIN/knn-query not built; python3-faiss side only"
fi

awk -v all="$ALL" '
	$1 == "exact" { exact[$2 " " $3] = $4 }
	$1 == "build" { printf "build %-5s %8.1f s   index %6.1f bytes/vector   refine/side data %7.1f bytes/vector\n", $2, $3, $4, $5
	                if ($4 > 256) over[$2] = 1 }
	$1 == "result" {
		key = $3 " " $4 " " $5
		if (!(key in seen)) { seen[key] = 1; order[++n] = key }
		rec[$2 " " key] = $6; qps[$2 " " key] = $7
	}
	END {
		for (k in exact) { split(k, e, " "); printf "exact %s thread(s) %-5s %9.1f q/s\n", e[1], e[2], exact[k] }
		printf "\n%7s %-5s %6s | %7s %9s %7s | %7s %9s %7s | %9s\n", "threads", "kind", "nprobe", "faiss", "q/s", "/exact",
		       "ours", "q/s", "/exact", "ours/faiss"
		for (i = 1; i <= n; i++) {
			k = order[i]; split(k, f, " "); ex = exact[f[1] " " f[2]]
			line = sprintf("%7s %-5s %6s | %7.4f %9.1f %6.1fx |", f[1], f[2], f[3], rec["faiss " k], qps["faiss " k],
			               qps["faiss " k] / ex)
			if (("ours " k) in rec) line = line sprintf(" %7.4f %9.1f %6.1fx | %9.2f", rec["ours " k], qps["ours " k],
			               qps["ours " k] / ex, qps["ours " k] / qps["faiss " k])
			print line
			for (s = 1; s <= 2; s++) {
				side = s == 1 ? "faiss" : "ours"
				if (!((side " " k) in rec)) continue
				if (rec[side " " k] >= 0.9 && qps[side " " k] >= 20 * ex) met[side " " f[1] " " f[2]] = 1
				tried[side " " f[1] " " f[2]] = 1
			}
		}
		for (k in tried) {
			split(k, f, " ")
			printf "target %s, %s thread(s), %s queries: recall@10 >= 0.9 at >= 20x exact q/s%s: %s\n", f[1], f[2], f[3],
			       over[f[1]] ? " (index over 256 bytes/vector)" : "", (k in met) && !over[f[1]] ? "met" : "MISSED"
		}
	}' "$tmp/results"
