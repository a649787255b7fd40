#!/usr/bin/env bash
# The evaluation tools: frechet against numpy's eigh-based Fréchet distance
# on random embeddings, ts-mean's means and intervals against numpy, its
# groups and seeded bootstrap, clip-score against the dot product of
# clip-embed's image and text embeddings from a tiny trained CLIP, and the
# errors of all three on bad input.
source "$(dirname "$0")/lib.sh"
if ! "$PY" -c 'import msgpack, numpy' 2>/dev/null; then
	skip eval_tools "$PY lacks msgpack or numpy"
	exit 0
fi
export PYTHONPATH=$KNND_ROOT/tests/shell

"$PY" - <<'EOF2'
import numpy as np, tensor_stream
rng = np.random.default_rng(5)
def write(path, recs):
    with open(path, "wb") as f:
        tensor_stream.write(recs, f)
A = rng.normal(size=(300, 16)).astype(np.float32)
B = (rng.normal(size=(250, 16)) @ rng.normal(size=(16, 16)) * 0.4 + 0.2).astype(np.float32)
write("a.ts", [{"emb": x, "other": x[:8].copy(), "score": float(x[0]), "k": i % 3, "name": "xy"[i % 2],
                "t1": np.array([x[1]], np.float32), "t0": np.array(x[2], np.float64), "flag": bool(x[3] > 0)}
               for i, x in enumerate(A)])
write("b.ts", [{"emb": x} for x in B])
write("one.ts", [{"emb": A[0]}])
write("ints.ts", [{"emb": np.arange(16, dtype=np.int32)}] * 3)
write("short.ts", [{"emb": x[:8].copy()} for x in B[:5]])
write("noemb.ts", [{"emb": A[0]}, {"emb": A[1]}, {"x": 1}])
write("strscore.ts", [{"score": 1.0}, {"score": "high"}])
write("vecscore.ts", [{"score": 1.0}, {"score": np.zeros(2, np.float32)}])
write("floatby.ts", [{"score": 1.0, "k": 0.5}])

def frechet(A, B):
    A, B = A.astype(np.float64), B.astype(np.float64)
    Sa, Sb = np.cov(A, rowvar=False), np.cov(B, rowvar=False)
    w, V = np.linalg.eigh(Sa)
    r = (V * np.sqrt(np.clip(w, 0, None))) @ V.T
    m = r @ Sb @ r
    e = np.linalg.eigvalsh((m + m.T) / 2)
    return ((A.mean(0) - B.mean(0)) ** 2).sum() + np.trace(Sa) + np.trace(Sb) - 2 * np.sqrt(np.clip(e, 0, None)).sum()
open("want_frechet", "w").write(repr(frechet(A, B)))
def ci(x):
    x = np.asarray(x, np.float64)
    h = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    return x.mean(), x.mean() - h, x.mean() + h, len(x)
rows = [("all", "score") + ci(A[:, 0])]
open("want_mean", "w").write(repr(rows))
g = {k: [i for i in range(len(A)) if i % 3 == k] for k in range(3)}
rows = [(str(k), f) + ci(v) for k in range(3) for f, v in (("score", A[g[k], 0]), ("t1", A[g[k], 1]))]
open("want_by", "w").write(repr(rows))
open("want_kinds", "w").write(repr([("all", f) + ci(v) for f, v in
                                    (("t0", A[:, 2]), ("flag", (A[:, 3] > 0).astype(float)))]))
EOF2

# ---- frechet ----
# The same figure as numpy's eigh-based formula, within 1e-6 relative.
close_to() { "$PY" -c 'import sys; a, b = float(sys.argv[1]), float(open(sys.argv[2]).read()); sys.exit(not abs(a - b) <= 1e-6 * abs(b))' "$@"; }
check frechet_numpy close_to "$(frechet --json a.ts b.ts | sed 's/.*"frechet": \([^,]*\),.*/\1/')" want_frechet
check_eq frechet_json_counts '"n_a": 300, "n_b": 250, "dim": 16}' "$(frechet --json a.ts b.ts | sed 's/.*, "n_a"/"n_a"/')"
check_eq frechet_same_is_zero 0 "$(frechet a.ts a.ts)"
check_eq frechet_stdin "$(frechet a.ts b.ts)" "$(frechet - b.ts <a.ts)"
check_eq frechet_field 0 "$(frechet --field other a.ts a.ts)"
check_fails frechet_few '^frechet: one.ts: 1 records; the Frechet distance needs at least 2' frechet a.ts one.ts
check_fails frechet_dim '^frechet: short.ts: field .emb. has 8 elements, but 16 in a.ts$' frechet a.ts short.ts
check_fails frechet_dtype '^frechet: ints.ts: record 0: field .emb. is int32' frechet ints.ts a.ts
check_fails frechet_missing '^frechet: noemb.ts: record 2: no field .emb.$' frechet noemb.ts a.ts
check_fails frechet_two_stdin 'only one of the two inputs' frechet - - 
check_fails frechet_one_input 'give two inputs' frechet a.ts
head -c 700 b.ts >trunc.ts
check_fails frechet_truncated '^frechet: trunc.ts: ' frechet a.ts trunc.ts
check_fails frechet_no_file '^frechet: nothere.ts: ' frechet a.ts nothere.ts

# ---- ts-mean ----
# rows_match WANT FILE: ts-mean's TSV rows equal numpy's figures to 1e-5.
rows_match() {
	"$PY" - "$1" "$2" <<'EOF2'
import sys
want = eval(open(sys.argv[1]).read())
lines = open(sys.argv[2]).read().splitlines()
assert lines[0] == "group\tfield\tmean\tci95_low\tci95_high\tn", lines[0]
got = [l.split("\t") for l in lines[1:]]
assert len(got) == len(want), (got, want)
for g, w in zip(got, want):
    assert g[:2] == list(w[:2]) and int(g[5]) == w[5], (g, w)
    for x, y in zip(g[2:5], w[2:5]):
        assert abs(float(x) - y) <= 1e-5 * max(1, abs(y)), (g, w)
EOF2
}
ts-mean score a.ts >mean.tsv 2>&1
check ts_mean_numpy rows_match want_mean mean.tsv
ts-mean --by k score t1 <a.ts >by.tsv 2>&1
check ts_mean_by_groups rows_match want_by by.tsv
ts-mean t0 flag - <a.ts >kinds.tsv 2>&1
check ts_mean_scalar_kinds rows_match want_kinds kinds.tsv
check_eq ts_mean_string_groups_in_order "x y" "$(ts-mean --by name score a.ts | tail -n +2 | cut -f1 | tr '\n' ' ' | sed 's/ $//')"
# The bootstrap: seeded (same seed, same interval; another seed, another),
# close to the normal interval on 300 values, and containing the mean.
ts-mean -B 400 --seed 3 score a.ts >boot1.tsv
ts-mean -B 400 --seed 3 score a.ts >boot2.tsv
ts-mean -B 400 --seed 4 score a.ts >boot3.tsv
check bootstrap_deterministic cmp boot1.tsv boot2.tsv
check bootstrap_seed_matters sh -c '! cmp -s boot1.tsv boot3.tsv'
check bootstrap_near_normal "$PY" -c '
import sys
b = open("boot1.tsv").read().splitlines()[1].split("\t"); n = open("mean.tsv").read().splitlines()[1].split("\t")
m, lo, hi = map(float, b[2:5]); nlo, nhi = float(n[3]), float(n[4])
sys.exit(not (lo < m < hi and abs(lo - nlo) < 0.3 * (nhi - nlo) and abs(hi - nhi) < 0.3 * (nhi - nlo)))'
check ts_mean_json sh -c 'ts-mean --json --by name score a.ts | '"$PY"' -c "
import json, sys
rows = [json.loads(l) for l in sys.stdin]
assert [r[\"group\"] for r in rows] == [\"x\", \"y\"] and sum(r[\"n\"] for r in rows) == 300, rows
assert set(rows[0]) == {\"group\", \"field\", \"mean\", \"ci95_low\", \"ci95_high\", \"n\"}, rows[0]"'
check_eq ts_mean_one_value_nan "$(printf 'group\tfield\tmean\tci95_low\tci95_high\tn\nall\tscore\t1\tnan\tnan\t1')" \
	"$(ts-mean score strscore.ts 2>/dev/null; ts-mean score floatby.ts)"
check_fails ts_mean_missing '^ts-mean: a.ts: record 0: no field .nothere.$' ts-mean nothere a.ts
check_fails ts_mean_string '^ts-mean: strscore.ts: record 1: field .score.: is a string, not a number$' ts-mean score strscore.ts
check_fails ts_mean_vector '^ts-mean: vecscore.ts: record 1: field .score.: is a tensor of 2 elements' ts-mean score vecscore.ts
check_fails ts_mean_float_by '^ts-mean: floatby.ts: record 0: field .k. \(--by\): is a float or bool, not a string or an int$' \
	ts-mean --by k score floatby.ts
check_fails ts_mean_by_missing '^ts-mean: b.ts: record 0: no field .k. \(--by\)$' ts-mean --by k score b.ts
head -c 300 a.ts >trunc_a.ts
check_fails ts_mean_truncated '^ts-mean: trunc_a.ts: ' ts-mean score trunc_a.ts
check_fails ts_mean_empty '^ts-mean: stdin: no records$' ts-mean score </dev/null
check_fails ts_mean_no_field 'no FIELD given' ts-mean a.ts
check_fails ts_mean_bad_bootstrap '--bootstrap' ts-mean -B 0 score a.ts

# ---- clip-score ----
# A tiny CLIP trained for a few steps on captioned drawings; it carries its
# learned vocabulary.
"$PY" - <<'EOF2'
import numpy as np, tensor_stream
rng = np.random.default_rng(2)
words = ["red square", "blue circle", "green triangle", "yellow dot"]
recs = [{"id": f"d{i}", "image": rng.integers(0, 256, size=(8 + i % 3, 8, 3)).astype(np.uint8),
         "text": words[i % 4], "keep": i} for i in range(24)]
with open("pics.ts", "wb") as f:
    tensor_stream.write(recs, f)
with open("notext.ts", "wb") as f:
    tensor_stream.write(recs[:2] + [{"image": recs[0]["image"]}], f)
with open("noimage.ts", "wb") as f:
    tensor_stream.write(recs[:2] + [{"text": "red square"}], f)
EOF2
clip-train -t 1 --image-size 8 --patch 4 --vision-width 16 --vision-layers 1 --text-width 16 --text-layers 1 \
	--embed-dim 8 --context 8 --batch 8 --buffer 24 --steps 2 --merges 10 -o clip.safetensors pics.ts 2>train.log
clip-score -m clip.safetensors -t 1 --batch 5 pics.ts >scored.ts 2>score.err
clip-embed -m clip.safetensors -t 1 --image pics.ts >img.ts 2>/dev/null
clip-embed -m clip.safetensors -t 1 --text pics.ts >txt.ts 2>/dev/null
check clip_score_is_cosine "$PY" -c '
import numpy as np, tensor_stream
s = list(tensor_stream.read(open("scored.ts", "rb")))
im = list(tensor_stream.read(open("img.ts", "rb"))); tx = list(tensor_stream.read(open("txt.ts", "rb")))
assert len(s) == len(im) == len(tx) == 24
for r, a, b in zip(s, im, tx):
    assert isinstance(r["clip_score"], float) and r["keep"] == a["keep"] and r["id"] == a["id"], r
    assert r["image"].shape == a["image"].shape and r["text"] == b["text"], r
    want = float(np.dot(a["emb"].astype(np.float64), b["emb"].astype(np.float64)))
    assert abs(r["clip_score"] - want) <= 1e-5, (r["clip_score"], want)
assert len(set(round(r["clip_score"], 6) for r in s)) > 4'
# Another batch size moves a score by rounding only.
clip-score -m clip.safetensors -t 1 --batch 32 pics.ts >scored32.ts 2>&1
check clip_score_batch_size "$PY" -c '
import tensor_stream
a = list(tensor_stream.read(open("scored.ts", "rb"))); b = list(tensor_stream.read(open("scored32.ts", "rb")))
assert len(a) == len(b) == 24 and all(abs(x["clip_score"] - y["clip_score"]) <= 1e-6 for x, y in zip(a, b))'
check clip_score_field_name sh -c 'clip-score -m clip.safetensors -t 1 --field cs <pics.ts | ts-mean cs | grep -q "^all	cs	"'
check_fails clip_score_no_text '^clip-score: notext.ts: record 2: no .text. string field$' clip-score -m clip.safetensors notext.ts
check_fails clip_score_no_image '^clip-score: noimage.ts: record 2: .*image' clip-score -m clip.safetensors noimage.ts
head -c 500 pics.ts >trunc_pics.ts
check_fails clip_score_truncated '^clip-score: trunc_pics.ts: ' clip-score -m clip.safetensors trunc_pics.ts
check_fails clip_score_no_model 'no model' clip-score pics.ts
check_fails clip_score_bad_model '^clip-score: ' clip-score -m pics.ts pics.ts
check_fails ts_mean_missing_file '^ts-mean: nothere.ts: ' ts-mean score nothere.ts
