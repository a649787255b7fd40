#!/usr/bin/env bash
# knn-query end to end: build, search, add, merge, options and errors on
# generated clustered embeddings, then golden CLIP images through img-read
# and clip-embed (skipped without ../shared/golden/clip).
source "$(dirname "$0")/lib.sh"
if ! "$PY" -c 'import msgpack, numpy' 2>/dev/null; then
	skip knn_query "$PY lacks msgpack or numpy (python3-msgpack, python3-numpy)"
	exit 0
fi
export PY

# gen.py N D SEED [FIRST]: N unit vectors around 20 centres, id rFIRST+i,
# path p/i.png, numeric score i % 10.
cat >gen.py <<'PYEOF'
import sys, msgpack, numpy as np
n, d, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
first = int(sys.argv[4]) if len(sys.argv) > 4 else 0
rng = np.random.default_rng(7)
c = rng.normal(size=(20, d))
rng = np.random.default_rng(seed)
x = c[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, d))
x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("<f4")
for i in range(n):
    j = first + i
    sys.stdout.buffer.write(msgpack.packb({"id": "r%d" % j, "path": "p/%d.png" % j, "score": j % 10,
        "emb": {"dtype": "float32", "shape": [d], "data": x[i].tobytes()}}))
PYEOF
# results.py STREAM: one line per record: its id, then its neighbours' ids.
cat >results.py <<'PYEOF'
import sys, msgpack
n = 0
for n, r in enumerate(msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False), 1):
    print(r["id"], *r.get("knn_record_ids", []))
sys.exit(n == 0)
PYEOF
# check.py STREAM K: every record has knn [K,d] equal (float16) to the
# neighbours' rows, K ids/scores in descending order, paths, fields kept.
cat >check.py <<'PYEOF'
import sys, msgpack, numpy as np
k = int(sys.argv[2])
recs = list(msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False))
assert recs, "no records"
db = {r["id"]: np.frombuffer(r["emb"]["data"], "<f4") for r in recs}
for r in recs:
    knn = np.frombuffer(r["knn"]["data"], "<f4").reshape(r["knn"]["shape"])
    s = np.frombuffer(r["knn_scores"]["data"], "<f4")
    assert knn.shape == (k, len(db[r["id"]])) and r["knn_ids"]["shape"] == [k], r["knn"]["shape"]
    assert (np.diff(s) <= 1e-6).all(), s
    assert r["path"] == "p/%s.png" % r["id"][1:] and "score" in r
    for j, nid in enumerate(r["knn_record_ids"]):
        assert np.abs(knn[j] - db[nid]).max() < 1e-3
        assert r["knn_paths"][j] == "p/%s.png" % nid[1:]
PYEOF

"$PY" gen.py 1000 32 1 >all.ts
"$PY" gen.py 600 32 1 >part1.ts
"$PY" gen.py 400 32 2 600 >part2.ts
cat part1.ts part2.ts >parts.ts
check build knn-query build --index idx parts.ts
check build_reports_bytes sh -c 'knn-query build --index idx2 parts.ts 2>&1 | grep -q "bytes/vector"'
knn-query search --index idx -k 5 parts.ts >out.ts 2>/dev/null
check search_fields "$PY" check.py out.ts 5
check search_self_first sh -c '"$PY" results.py out.ts | awk "\$1 != \$2 { bad = 1 } END { exit bad }"'
# nprobe must reach the inverted lists even under a refine step (FAISS 1.7.3's
# try_extract_index_ivf does not see through IndexRefine): results differ.
knn-query build --index refined --factory IVF16,SQ8,RFlat all.ts 2>/dev/null
knn-query search --index refined -k 10 --nprobe 1 all.ts 2>/dev/null | ts-cat --full -k knn_ids >np1.txt
knn-query search --index refined -k 10 --nprobe 16 all.ts 2>/dev/null | ts-cat --full -k knn_ids >np16.txt
check nprobe_through_refine sh -c '! cmp -s np1.txt np16.txt'
knn-query search --index idx -k 5 --exclude-self parts.ts >ex.ts 2>/dev/null
check exclude_self sh -c '"$PY" results.py ex.ts | awk "{ for (i = 2; i <= NF; i++) if (\$i == \$1) bad = 1 } NF != 6 { bad = 1 } END { exit bad }"'
knn-query search --index idx -k 5 --filter score=3:5 parts.ts >f.ts 2>/dev/null
check filter sh -c '"$PY" results.py f.ts | awk "{ for (i = 2; i <= NF; i++) { s = substr(\$i, 2) % 10; if (s < 3 || s >= 5) bad = 1 } } NF != 6 { bad = 1 } END { exit bad }"'

# add and merge give the results of one build.
knn-query build --index added part1.ts 2>/dev/null
knn-query add --index added part2.ts 2>/dev/null
knn-query build --index shard2 part2.ts 2>/dev/null
knn-query build --index merged part1.ts 2>/dev/null
knn-query merge --index merged shard2 2>/dev/null
knn-query search --index added -k 5 parts.ts 2>/dev/null | "$PY" results.py /dev/stdin >added.txt
knn-query search --index merged -k 5 parts.ts 2>/dev/null | "$PY" results.py /dev/stdin >merged.txt
"$PY" results.py out.ts >whole.txt
check whole_has_results test -s whole.txt
check add_same_as_build cmp whole.txt added.txt
check merge_same_as_build cmp whole.txt merged.txt

# Shards of an IVF index, filled from copies of one trained empty index,
# merge into what one filled index gives.
check train_empty knn-query train --index trained --factory IVF8,Flat parts.ts
cp -r trained ivf_whole && cp -r trained ivf_a && cp -r trained ivf_b
knn-query add --index ivf_whole parts.ts 2>/dev/null
knn-query add --index ivf_a part1.ts 2>/dev/null
knn-query add --index ivf_b part2.ts 2>/dev/null
check merge_trained_shards knn-query merge --index ivf_a ivf_b
knn-query search --index ivf_whole -k 5 --nprobe 2 parts.ts 2>/dev/null | "$PY" results.py /dev/stdin >ivf_whole.txt
knn-query search --index ivf_a -k 5 --nprobe 2 parts.ts 2>/dev/null | "$PY" results.py /dev/stdin >ivf_merged.txt
check merge_trained_same cmp ivf_whole.txt ivf_merged.txt

# A compressed (8-bit scalar quantised) index, rescored with the stored
# vectors, finds each record itself.
check ivfpq_build knn-query build --index pq --factory IVF16,SQ8 parts.ts
check ivfpq_self sh -c 'knn-query search --index pq -k 3 --nprobe 16 parts.ts 2>/dev/null >pq.ts &&
	"$PY" results.py pq.ts | awk "\$1 != \$2 { bad++ } END { exit bad > 0 }"'
# --refine 0 returns FAISS's own (quantised) scores, which differ from the
# exact ones.
knn-query search --index pq -k 3 --nprobe 16 --refine 0 parts.ts 2>/dev/null | ts-cat --full -k knn_scores >raw.txt
ts-cat --full -k knn_scores pq.ts >exact.txt
check refine_off sh -c 'test -s raw.txt && ! cmp -s raw.txt exact.txt'

# Unnormalised input is normalised, with one warning.
"$PY" - >big.ts <<'PYEOF'
import sys, msgpack, numpy as np
for i in range(3):
    v = np.full(8, 2.0 + i, "<f4")
    sys.stdout.buffer.write(msgpack.packb({"id": str(i), "emb": {"dtype": "float32", "shape": [8], "data": v.tobytes()}}))
PYEOF
check unnormalised_warns sh -c 'knn-query build --index norm big.ts 2>&1 | grep -c normalising | grep -qx 1'

"$PY" gen.py 3 16 1 >d16.ts
check_fails bad_dimension 'dimension 16.*index has 32' knn-query search --index idx d16.ts
check_fails add_bad_dimension 'dimension 16.*index has 32' knn-query add --index idx d16.ts
check_fails missing_index 'nope' knn-query search --index nope parts.ts
mkdir foreign && echo hi >foreign/x
check_fails foreign_index 'not a knn index' knn-query search --index foreign parts.ts
check_fails foreign_overwrite 'not a knn index' knn-query build --index foreign parts.ts
cp -r idx corrupt && head -c 100 idx/emb.f16 >corrupt/emb.f16
check_fails corrupt_index 'emb.f16' knn-query search --index corrupt parts.ts
check_fails empty_input 'no records' knn-query build --index e /dev/null
"$PY" -c 'import sys, msgpack; sys.stdout.buffer.write(msgpack.packb({"id": "x"}))' >noemb.ts
check_fails no_emb 'no `emb`' knn-query build --index e noemb.ts
check_fails bad_factory 'Nope' knn-query build --index e --factory Nope parts.ts
check_fails unknown_filter_field "no numeric attribute 'zz'" knn-query search --index idx --filter zz=0:1 parts.ts
check_fails bad_filter 'FIELD=L:H' knn-query search --index idx --filter score parts.ts
check_fails no_subcommand 'subcommand' knn-query --index idx
check_fails no_index 'index' knn-query search parts.ts
check no_partial_dirs sh -c '! ls -d e e.tmp-* foreign.tmp-* 2>/dev/null | grep -q .'

# Golden CLIP images: each image's nearest neighbour is itself.
G=$KNND_SHARED/golden/clip
if [ ! -r "$G/openai.safetensors" ]; then
	skip knn_query_clip "no golden data in $G (set KNND_SHARED)"
	exit 0
fi
img-read --keep-alpha "$G"/images/*.png | clip-embed --model "$G/openai.safetensors" --image >emb.ts 2>/dev/null
check clip_build knn-query build --index clip emb.ts
check clip_search_self sh -c 'knn-query search --index clip -k 3 emb.ts >clip_out.ts &&
	"$PY" results.py clip_out.ts | awk "NF != 4 || \$1 != \$2 { bad = 1 } END { exit bad || NR < 2 }"'
