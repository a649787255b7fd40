#!/usr/bin/env bash
# diffuse on a tiny model (4x4 tokens, 16 codes, width 32, 2 blocks): it
# overfits 8 records so that sampling with their conditions gives back
# their token grids, samples are reproducible, guidance 1 is plain
# sampling, a stopped run resumed ends byte for byte where an uninterrupted
# one does, and bad inputs get one clear line.
source "$(dirname "$0")/lib.sh"
if ! "$PY" -c 'import msgpack, numpy' 2>/dev/null; then
	skip diffuse "$PY lacks msgpack or numpy"
	exit 0
fi
export PYTHONPATH=$KNND_ROOT/tests/shell

# 8 records: random token grids; emb well separated (+-1 patterns of
# width 8), knn two other such vectors. Then inputs that must be refused.
"$PY" - <<'EOF'
import numpy as np, tensor_stream
rng = np.random.default_rng(3)
n, D = 8, 8
emb = np.sign(rng.normal(size=(n, D))).astype(np.float32)
recs = []
for i in range(n):
    knn = emb[[(i + 1) % n, (i + 3) % n]]
    recs.append({"id": f"r{i}", "tokens": rng.integers(0, 16, size=(4, 4)).astype(np.int32),
                 "emb": emb[i], "knn": knn.copy()})
def write(path, rs):
    with open(path, "wb") as f:
        tensor_stream.write(rs, f)
write("train.ts", recs)
write("cond.ts", [{k: v for k, v in r.items() if k != "tokens"} for r in recs])
write("emb_only.ts", [{"id": r["id"], "emb": r["emb"]} for r in recs])
write("no_emb.ts", [{"tokens": recs[0]["tokens"], "knn": recs[0]["knn"]}])
write("no_knn.ts", [{"tokens": recs[0]["tokens"], "emb": recs[0]["emb"]}])
write("no_tokens.ts", [{"emb": recs[0]["emb"], "knn": recs[0]["knn"]}])
write("big_token.ts", recs[:2] + [dict(recs[2], tokens=np.full((4, 4), 16, np.int32))])
write("other_grid.ts", [dict(r, tokens=np.zeros((2, 8), np.int32)) for r in recs[:2]])
write("other_dim.ts", [{"emb": np.zeros(4, np.float32), "knn": np.zeros((2, 4), np.float32)}])
write("bad_dtype.ts", [dict(recs[0], tokens=recs[0]["tokens"].astype(np.int64))])
open("empty.ts", "wb").close()
open("junk.safetensors", "wb").write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
EOF

TINY=(-t 1 --codes 16 --width 32 --depth 2 --heads 2 --steps-diffusion 10 --batch 8 --buffer 8 --lr 3e-3
	--warmup 20 --weight-decay 0 --aux-weight 0.01)
# fraction of positions where two streams' tokens agree
agree() {
	"$PY" - "$1" "$2" <<'EOF'
import sys, numpy as np, tensor_stream
a = [r["tokens"] for r in tensor_stream.read(open(sys.argv[1], "rb"))]
b = [r["tokens"] for r in tensor_stream.read(open(sys.argv[2], "rb"))]
assert len(a) == len(b) and all(x.shape == (4, 4) and x.dtype == np.int32 for x in a)
print(np.mean([np.mean(x == y) for x, y in zip(a, b)]))
EOF
}
at_least() { "$PY" -c 'import sys; sys.exit(not float(sys.argv[1]) >= float(sys.argv[2]))' "$1" "$2"; }

diffuse train "${TINY[@]}" -m m.safetensors --steps 400 --progress-every 50 --log m.log train.ts 2>train.log
check trains test -s m.safetensors -a -s m.state.safetensors
check progress_line grep -Eq 'step 400/400: loss [0-9.]+, lr .*, [0-9.]+ steps/s' train.log
check progress_eta grep -Eq 'step 50/400: .* ETA [0-9]+:[0-9]{2}:[0-9]{2}' train.log
check log_json "$PY" -c '
import json, sys
rows = [json.loads(l) for l in open("m.log")]
assert [r["step"] for r in rows] == list(range(50, 401, 50)), rows
assert all(set(r) == {"step", "loss", "lr", "steps_per_s"} for r in rows)
assert rows[-1]["loss"] < rows[0]["loss"] / 2, rows'

diffuse sample -m m.safetensors --seed 5 -t 1 cond.ts >s1.ts
check sample_adds_tokens "$PY" -c '
import tensor_stream
rs = list(tensor_stream.read(open("s1.ts", "rb")))
assert len(rs) == 8 and [r["id"] for r in rs] == [f"r{i}" for i in range(8)]
assert all(r["tokens"].shape == (4, 4) and "knn" in r and "emb" in r for r in rs)'
check overfits at_least "$(agree s1.ts train.ts)" 0.8
diffuse sample -m m.safetensors --seed 5 -t 1 --batch 3 <cond.ts >s2.ts
check same_seed_same_samples cmp s1.ts s2.ts
diffuse sample -m m.safetensors --seed 5 -t 1 --guidance 1 cond.ts >s3.ts
check guidance_1_is_plain cmp s1.ts s3.ts
diffuse sample -m m.safetensors --seed 5 -t 1 --guidance 3 cond.ts >s4.ts
check guidance_3_samples at_least "$(agree s4.ts train.ts)" 0
diffuse sample -m m.safetensors --seed 5 -t 1 --ema --truncation 1 cond.ts >s5.ts
check ema_samples at_least "$(agree s5.ts train.ts)" 0
diffuse sample -m m.safetensors --seed 5 -t 1 -k 1 cond.ts >s6.ts
check fewer_neighbours at_least "$(agree s6.ts train.ts)" 0
diffuse sample -m m.safetensors --seed 5 -t 1 --steps 4 cond.ts >s8.ts
check skip_steps_overfit at_least "$(agree s8.ts train.ts)" 0.8
diffuse sample -m m.safetensors --seed 5 -t 1 --steps 10 cond.ts >s9.ts
check steps_T_is_default cmp s1.ts s9.ts
diffuse sample -m m.safetensors --seed 5 -t 1 --no-knn emb_only.ts >s7.ts
check no_knn_samples at_least "$(agree s7.ts train.ts)" 0

# --query-nearest: the same samples as records whose emb is their first
# neighbour's embedding.
diffuse sample -m m.safetensors --seed 5 -t 1 --query-nearest cond.ts >s11.ts
"$PY" - <<'EOF'
import tensor_stream
rs = list(tensor_stream.read(open("cond.ts", "rb")))
for r in rs:
    r["emb"] = r["knn"][0].copy()
tensor_stream.write(rs, open("nearest.ts", "wb"))
EOF
diffuse sample -m m.safetensors --seed 5 -t 1 nearest.ts >s12.ts
check query_nearest_is_first_knn "$PY" -c '
import tensor_stream
a = list(tensor_stream.read(open("s11.ts", "rb"))); b = list(tensor_stream.read(open("s12.ts", "rb")))
c = list(tensor_stream.read(open("s1.ts", "rb")))
assert len(a) == 8 and all((x["tokens"] == y["tokens"]).all() for x, y in zip(a, b))
assert any((x["tokens"] != y["tokens"]).any() for x, y in zip(a, c))'
check_fails query_nearest_needs_knn "record 0: no 'knn'" diffuse sample -m m.safetensors --no-knn --query-nearest emb_only.ts
check_fails query_nearest_sampling_only 'query-nearest is an option of diffuse sample' \
	diffuse train "${TINY[@]}" -m x.safetensors --query-nearest train.ts

# The neighbours as their mean: one condition slot for them, in the config.
diffuse train "${TINY[@]}" -m mean.safetensors --cond-knn-mean --steps 300 --progress-every 0 train.ts 2>/dev/null
check knn_mean_config "$PY" -c '
import json
h = open("mean.safetensors", "rb").read()
n = int.from_bytes(h[:8], "little"); c = json.loads(json.loads(h[8:8 + n])["__metadata__"]["config"])
assert c["cond_knn_mean"] == 2 and c["cond_slots"] == 2, c'
diffuse sample -m mean.safetensors --seed 5 -t 1 cond.ts >s10.ts
check knn_mean_overfits at_least "$(agree s10.ts train.ts)" 0.8

# Resume: 12 steps straight, or 5 + 7 (stopped, then resumed; from stdin
# too), end in the same bytes.
R=("${TINY[@]}" --steps 12 --warmup 2 --save-every 4 --progress-every 0 --cond-drop 0.25 --query-noise 0.3)
diffuse train "${R[@]}" -m a.safetensors train.ts 2>/dev/null
diffuse train "${R[@]}" -m b.safetensors --stop-after 5 train.ts 2>/dev/null
check stopped_early "$PY" -c '
import json, sys
h = open("b.state.safetensors", "rb").read()
n = int.from_bytes(h[:8], "little"); m = json.loads(h[8:8 + n])["__metadata__"]
assert m["step"] == "5", m["step"]'
diffuse train "${R[@]}" -m b.safetensors --resume train.ts 2>b.log
check resume_exact cmp a.safetensors b.safetensors
check query_noise_in_config "$PY" -c '
import json
def train(p):
    h = open(p, "rb").read(); n = int.from_bytes(h[:8], "little")
    return json.loads(json.loads(h[8:8 + n])["__metadata__"]["config"])["train"]
assert abs(train("a.safetensors")["query_noise"] - 0.3) < 1e-6 and "query_noise" not in train("m.safetensors")'
check resume_state_exact cmp a.state.safetensors b.state.safetensors
check resume_says_so grep -q resumed b.log
diffuse train "${R[@]}" -m c.safetensors --stop-after 3 <train.ts 2>/dev/null
diffuse train "${R[@]}" -m c.safetensors --resume <train.ts 2>/dev/null
check resume_stdin_exact cmp a.safetensors c.safetensors

# Bad inputs and options: one line, exit 1 (2 for usage).
check_fails no_codes 'codes' diffuse train -m x.safetensors train.ts
check_fails no_model 'model' diffuse sample cond.ts
check_fails no_command 'train or sample' diffuse
check_fails bad_command 'unknown command' diffuse fit -m m.safetensors
check_fails bad_backbone 'discrete' diffuse train --backbone continuous -m x.safetensors --codes 16 train.ts
check_fails missing_emb "no_emb.ts: record 0: no 'emb'" diffuse train "${TINY[@]}" -m x.safetensors no_emb.ts
check_fails missing_knn "no_knn.ts: record 0: no 'knn'" diffuse train "${TINY[@]}" -m x.safetensors no_knn.ts
check_fails missing_tokens "record 0: no 'tokens'" diffuse train "${TINY[@]}" -m x.safetensors <no_tokens.ts
check_fails token_range 'record 2: token 16 .*outside the codebook' diffuse train "${TINY[@]}" -m x.safetensors big_token.ts
check_fails token_dtype "int64" diffuse train "${TINY[@]}" -m x.safetensors bad_dtype.ts
check_fails empty 'no training records' diffuse train "${TINY[@]}" -m x.safetensors empty.ts
check_fails grid_vs_checkpoint '2x8 grid, the model.s is 4x4' diffuse train "${R[@]}" -m a.safetensors --resume \
	other_grid.ts
check_fails resume_other_options 'trained with warmup_steps 2' diffuse train "${TINY[@]}" --cond-drop 0.25 \
	--query-noise 0.3 -m a.safetensors --resume train.ts
check_fails resume_other_cond_drop 'cond-drop, --query-noise or --aux-weight differ from the run.s' \
	diffuse train "${R[@]}" --cond-drop 0.5 -m a.safetensors --resume train.ts
check_fails resume_other_query_noise 'query-noise or --aux-weight differ from the run.s' \
	diffuse train "${R[@]}" --query-noise 0.5 -m a.safetensors --resume train.ts
check_fails sample_cond_dim "other_dim.ts: record 0: .*'emb' dimension is 4, the model's is 8" \
	diffuse sample -m m.safetensors other_dim.ts
check_fails sample_missing_knn "record 0: no 'knn'" diffuse sample -m m.safetensors emb_only.ts
check_fails sample_missing_emb "no 'emb'" diffuse sample -m m.safetensors no_emb.ts
check_fails missing_checkpoint 'nothere.safetensors' diffuse sample -m nothere.safetensors cond.ts
check_fails corrupt_checkpoint 'junk.safetensors' diffuse sample -m junk.safetensors cond.ts
check_fails resume_missing 'nothere.safetensors' diffuse train "${TINY[@]}" -m nothere.safetensors --resume train.ts
check_fails too_many_steps 'only 10 diffusion steps' diffuse sample -m m.safetensors --steps 11 cond.ts
check_fails bad_truncation 'truncation' diffuse sample -m m.safetensors --truncation 2 cond.ts
check_fails bad_cond_drop 'cond-drop' diffuse train "${TINY[@]}" -m x.safetensors --cond-drop 1.5 train.ts
check_fails bad_query_noise 'query-noise' diffuse train "${TINY[@]}" -m x.safetensors --query-noise -1 train.ts
check_fails query_noise_training_only 'query-noise is an option of diffuse train' \
	diffuse sample -m m.safetensors --query-noise 0.5 cond.ts
check no_output_after_errors test ! -e x.safetensors
