#!/usr/bin/env bash
# vq-train on tiny models (8x8 images, factor 2): the loss falls, the model
# loads in vq-encode/vq-decode and reproduces the reported held-out PSNR, a
# stopped or killed run resumed ends byte for byte where an uninterrupted
# one does, and bad inputs and options get one clear line.
source "$(dirname "$0")/lib.sh"
if ! "$PY" -c 'import msgpack, numpy, PIL' 2>/dev/null; then
	skip vq_train "$PY lacks msgpack, numpy or PIL"
	exit 0
fi
export PYTHONPATH=$KNND_ROOT/tests/shell

# Smooth colour ramps (each channel tanh of a random plane), the training
# set and a held-out set; then inputs that must be refused.
"$PY" - <<'EOF'
import numpy as np, tensor_stream
rng = np.random.default_rng(7)
def ramps(n, side=8):
    out = []
    for i in range(n):
        a = rng.normal(size=(3, 3))
        y, x = np.mgrid[0:side, 0:side] / (side / 2) - 1
        im = np.tanh(a[:, 0, None, None] + a[:, 1, None, None] * x + a[:, 2, None, None] * y)
        out.append({"id": f"r{i}", "image": np.round((im.transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)})
    return out
def write(path, recs):
    with open(path, "wb") as f:
        tensor_stream.write(recs, f)
write("train.ts", ramps(8))
write("val.ts", ramps(8))
write("mixed.ts", ramps(3) + ramps(1, 10))
write("oblong.ts", [{"image": np.zeros((8, 6, 3), np.uint8)}])
write("noimage.ts", ramps(2) + [{"id": "x", "text": "no image here"}])
write("big.ts", ramps(2, 16))
write("gray.ts", [{"image": r["image"][:, :, :1].copy()} for r in ramps(2, 12)])
open("empty.ts", "wb").close()
open("junk.safetensors", "wb").write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
EOF

# One thread: these models are so small that a second one mostly waits.
TINY=(-t 1 --ch 32 --res-blocks 1 --attn none --embed-dim 8 --codes 16 -f 2 --batch 4 --buffer 8 --lr 2e-3)

# Numbers of the report line of step N: loss, training PSNR, held-out PSNR.
loss_at() { sed -n "s/.*step $2\/[0-9]*: loss \([0-9.]*\).*/\1/p" "$1"; }
psnr_at() { sed -n "s/.*step $2\/[0-9]*: .*) psnr \([0-9.]*\).*/\1/p" "$1"; }
val_at() { sed -n "s/.*step $2\/[0-9]*.*| val psnr \([0-9.]*\) .*/\1/p" "$1"; }
# at_least A B: A >= B (decimals).
at_least() { "$PY" -c 'import sys; sys.exit(not float(sys.argv[1]) >= float(sys.argv[2]))' "$1" "$2"; }

vq-train "${TINY[@]}" -o m.safetensors --steps 60 --progress-every 10 --restart-after 10 --val val.ts \
	train.ts 2>train.log
check trains test -s m.safetensors -a -s m.state.safetensors -a -s m.train.safetensors
# Steps 1-10 average about 1.0, steps 51-60 about 0.4; 8 training images
# teach a little about the held-out ones too (about +0.9 dB).
check loss_falls at_least "$(loss_at train.log 10)" "$("$PY" -c "print(2 * $(loss_at train.log 60))")"
check train_psnr_rises at_least "$(psnr_at train.log 60)" "$("$PY" -c "print(3 + $(psnr_at train.log 10))")"
check val_psnr_rises at_least "$(val_at train.log 60)" "$("$PY" -c "print(0.5 + $(val_at train.log 0))")"
check reports_usage grep -Eq 'step 60/60: .*perplexity [0-9.]+ codes [0-9]+/16.* \| val psnr .* codes [0-9]+/16 \| lr .* steps/s' train.log

# The weights are an ordinary VQGAN checkpoint: vq-encode and vq-decode
# reconstruct the held-out set at the PSNR the trainer reported.
if command -v vq-encode >/dev/null && command -v vq-decode >/dev/null; then
	vq-encode -m m.safetensors val.ts >tok.ts && vq-decode -m m.safetensors tok.ts >rec.ts
	check codec_psnr_matches_report "$PY" -c "
import sys, numpy as np, tensor_stream
x = np.stack([r['image'] for r in tensor_stream.read(open('val.ts', 'rb'))]).astype(float)
recs = list(tensor_stream.read(open('rec.ts', 'rb')))
y = np.stack([r['image'] for r in recs]).astype(float)
assert recs[0]['tokens'].shape == (4, 4) and y.shape == x.shape, (recs[0]['tokens'].shape, y.shape)
psnr = 10 * np.log10(255 ** 2 / np.mean((x - y) ** 2))
sys.exit(not abs(psnr - float(sys.argv[1])) < 0.006)" "$(val_at train.log 60)"
else
	skip codec_psnr_matches_report "vq-encode or vq-decode not built"
fi

# Exact resume: stopped after 7 steps (--stop-after) or killed while
# saving every step, then resumed, the weights equal an uninterrupted run's
# (held-out evaluations in between change nothing).
FULL=("${TINY[@]}" --steps 16 --ema-codebook --restart-after 3 --disc-start 4 --disc-ch 16 --flip --val val.ts
      --progress-every 5)
vq-train "${FULL[@]}" -o a.safetensors train.ts 2>/dev/null
vq-train "${FULL[@]}" -o b.safetensors --stop-after 7 train.ts 2>/dev/null
check stopped_early "$PY" -c "
import json, struct, sys
raw = open('b.safetensors', 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]
sys.exit(json.loads(raw[8:8 + n])['__metadata__']['step'] != '7')"
vq-train "${FULL[@]}" -o b.safetensors --resume <train.ts 2>b.log
check resume_stdin_exact cmp a.safetensors b.safetensors
check resume_state_exact cmp a.state.safetensors b.state.safetensors
check resume_says_so grep -q 'resumed' b.log

vq-train "${FULL[@]}" -o k.safetensors --save-every 1 train.ts 2>/dev/null &
pid=$!
for _ in $(seq 200); do [ -s k.train.safetensors ] && break; sleep 0.02; done
sleep 0.1
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
vq-train "${FULL[@]}" -o k.safetensors --resume train.ts 2>k.log
check killed_resume_exact cmp a.safetensors k.safetensors

# Errors: one line naming the problem.
check_fails resume_other_options 'b.train.safetensors: the run was trained with data_batch=4, this one asks for data_batch=8' \
	vq-train "${FULL[@]}" --batch 8 -o b.safetensors --resume train.ts
check_fails resume_other_arch "b.safetensors: --codes 32 differs from the checkpoint's 16" \
	vq-train "${FULL[@]}" --codes 32 -o b.safetensors --resume train.ts
check_fails resume_missing 'nothing.safetensors: .*No such file' \
	vq-train "${TINY[@]}" -o nothing.safetensors --resume train.ts
check_fails resume_junk 'junk.safetensors' vq-train "${TINY[@]}" -o junk.safetensors --resume train.ts
check_fails mixed_sizes '^vq-train: mixed.ts: record 3: image 10x10, the others are 8x8 \(all must be the same size; see --resize\)$' \
	vq-train "${TINY[@]}" -o x.safetensors mixed.ts
check_fails mixed_sizes_stdin '^vq-train: stdin: record 3: image 10x10' vq-train "${TINY[@]}" -o x.safetensors <mixed.ts
check_fails not_square 'oblong.ts: record 0: image 6x8 is not square' vq-train "${TINY[@]}" -o x.safetensors oblong.ts
check_fails no_image 'noimage.ts: record 2: .*image' vq-train "${TINY[@]}" -o x.safetensors noimage.ts
check_fails empty 'empty.ts: no image records' vq-train "${TINY[@]}" -o x.safetensors empty.ts
check_fails empty_stdin 'stdin: no image records' vq-train "${TINY[@]}" -o x.safetensors <empty.ts
check_fails zero_codes '^vq-train: --codes' vq-train "${TINY[@]}" --codes 0 -o x.safetensors train.ts
check_fails no_out 'out PATH is required' vq-train "${TINY[@]}" train.ts
check_fails bad_factor 'not a power of 2' vq-train "${TINY[@]}" -f 3 -o x.safetensors train.ts
check_fails factor_vs_size 'not a multiple of the downsampling factor 16' \
	vq-train "${TINY[@]}" -f 16 -o x.safetensors train.ts
check_fails ch_mult_vs_factor 'ch-mult has 3 levels \(factor 4\), --factor says 2' \
	vq-train "${TINY[@]}" --ch-mult 1,2,2 -o x.safetensors train.ts
check_fails bad_attn '--attn: 5 is not a resolution of the model \(8 down to 4\)' \
	vq-train "${TINY[@]}" --attn 5 -o x.safetensors train.ts
check_fails bad_ch '^vq-train: .*48' vq-train "${TINY[@]}" --ch 48 -o x.safetensors train.ts
check_fails resolution_mismatch 'the images are 8x8, --resolution says 16' \
	vq-train "${TINY[@]}" --resolution 16 -o x.safetensors train.ts
check_fails val_size 'big.ts: record 0: image 16x16, the training images are 8x8' \
	vq-train "${TINY[@]}" --val big.ts -o x.safetensors train.ts
check_fails stdin_twice "stdin \('-'\) can only be the one input" vq-train "${TINY[@]}" -o x.safetensors train.ts -
check_fails missing_input 'absent.ts: .*No such file' vq-train "${TINY[@]}" -o x.safetensors absent.ts
check no_output_after_errors test ! -e x.safetensors

# --resize takes images of any size; gray images train an RGB model.
vq-train "${TINY[@]}" --resize 8 --steps 2 --progress-every 0 -o r.safetensors mixed.ts big.ts gray.ts 2>/dev/null
check resize_any_sizes test -s r.safetensors
