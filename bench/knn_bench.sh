#!/usr/bin/env bash
# knn-query against Debian's python3-faiss (issue 5): the same factory string
# and the same clustered unit vectors (image-like queries, and text-like ones
# shifted by one constant offset, the modality gap) both ways, recall@10
# against exact search, queries/s over nprobe with 1 and all threads.
#   bash bench/knn_bench.sh      (or: make bench)
# Both sides find candidates with FACTORY and rescore k * KFACTOR of them
# exactly (FAISS: IndexRefineFlat over float32 vectors; knn-query: --refine
# over its float16 side vectors). knn-query runs as a process per search, so
# its time for one query alone (opening the index) is measured and taken off.
# Settings (environment): KNND_KNN_N (1000000 vectors), KNND_KNN_FACTORY
# (knn-query's default, IVF<4*sqrt(N)>,PQ128x4fs), KNND_KNN_KFACTOR (32),
# KNND_KNN_NPROBES (1,2,4,8,16), KNND_BIN (bin), KNND_PYTHON (/usr/bin/python3),
# TMPDIR (about 4 GB at the default N). See bench/README.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
N=${KNND_KNN_N:-1000000}
NLIST=$(awk -v n="$N" 'BEGIN { printf "%d", 4 * sqrt(n) }')
FACTORY=${KNND_KNN_FACTORY:-IVF$NLIST,PQ128x4fs}
KFACTOR=${KNND_KNN_KFACTOR:-32}
NPROBES=${KNND_KNN_NPROBES:-1,2,4,8,16}
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

say "== knn-query vs python3-faiss: N=$N x 512, factory $FACTORY, exact re-ranking of k*$KFACTOR candidates, $ALL CPUs"
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
	# faiss.index is the index; the other files are side data (float16
	# vectors for re-ranking and for the neighbours' embeddings, metadata).
	index_bytes=$(stat -c %s "$tmp/index/faiss.index")
	total=$(find "$tmp/index" -type f -printf '%s\n' | awk '{ t += $1 } END { print t + 0 }')
	awk -v s="$secs" -v n="$N" -v t="$total" -v m="$index_bytes" \
		'BEGIN { printf "build ours %.1f %.1f %.1f\n", s, m / n, (t - m) / n }' >>"$tmp/results"
	# Seconds for one knn-query search run over FILE with T threads and NPROBE.
	search_secs() {
		local start
		start=$(now)
		OMP_NUM_THREADS=$1 "$BIN/knn-query" search --index "$tmp/index" -k 10 --nprobe "$2" --refine "$KFACTOR" \
			<"$3" >"$tmp/out.ts" 2>"$tmp/search.err" || { cat "$tmp/search.err" >&2; fail "knn-query search failed"; }
		awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }'
	}
	for t in 1 "$ALL"; do
		for kind in image text; do
			for p in ${NPROBES//,/ }; do
				startup=$(search_secs "$t" "$p" "$tmp/q_one.ts")
				secs=$(search_secs "$t" "$p" "$tmp/q_$kind.ts")
				qps=$(awk -v s="$secs" -v o="$startup" 'BEGIN { printf "%.1f", 999 / (s - o) }')
				r=$("$PY" "$root/bench/knn_bench.py" recall "$tmp" "$kind" "$tmp/out.ts") || fail "reading knn-query's output failed"
				say "result ours $t $kind $p ${r##* } $qps" >>"$tmp/results"
				say "startup ours $startup" >>"$tmp/results"
			done
		done
	done
else
	say "knn_bench: $BIN/knn-query not built; python3-faiss side only"
fi

awk -v all="$ALL" '
	$1 == "exact" { exact[$2 " " $3] = $4 }
	$1 == "startup" { if (!nstart || $3 < minstart) minstart = $3; if ($3 > maxstart) maxstart = $3; nstart++ }
	$1 == "build" { printf "build %-5s %8.1f s   index %6.1f bytes/vector   refine/side data %7.1f bytes/vector\n", $2, $3, $4, $5
	                if ($4 > 256) over[$2] = 1 }
	$1 == "result" {
		key = $3 " " $4 " " $5
		if (!(key in seen)) { seen[key] = 1; order[++n] = key }
		rec[$2 " " key] = $6; qps[$2 " " key] = $7
	}
	END {
		for (k in exact) { split(k, e, " "); printf "exact %s thread(s) %-5s %9.1f q/s\n", e[1], e[2], exact[k] }
		if (nstart) printf "knn-query start-up (opening the index, one query), taken off its times: %.2f-%.2f s\n", minstart, maxstart
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
