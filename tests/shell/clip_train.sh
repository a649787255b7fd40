#!/usr/bin/env bash
# clip-train on a tiny CLIP (width 32, 2+2 layers, 8x8 images): drawings of
# coloured shapes captioned "red square", "blue circle", ... are learned
# well enough that zero-shot retrieval on held-out drawings is far above
# chance; the model loads in clip-embed, which reproduces the trainer's
# figure; a stopped run resumed ends byte for byte where an uninterrupted
# one does; bad inputs and options get one clear line.
source "$(dirname "$0")/lib.sh"
if ! "$PY" -c 'import msgpack, numpy' 2>/dev/null; then
	skip clip_train "$PY lacks msgpack or numpy"
	exit 0
fi
export PYTHONPATH=$KNND_ROOT/tests/shell

"$PY" - <<'EOF2'
import numpy as np, tensor_stream
colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 60, 230), "yellow": (230, 220, 30)}
shapes = ["square", "circle", "triangle"]
def drawings(n, seed, side=8):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        cn = list(colours)[rng.integers(len(colours))]
        sh = shapes[rng.integers(len(shapes))]
        im = np.zeros((side, side, 3), np.uint8) + rng.integers(0, 60, size=3).astype(np.uint8)
        r = side * rng.uniform(0.25, 0.42)
        cx, cy = side / 2 + rng.uniform(-1, 1, 2) * side * 0.1
        y, x = np.mgrid[0:side, 0:side] + 0.5
        if sh == "square":
            m = (abs(x - cx) < r * 0.85) & (abs(y - cy) < r * 0.85)
        elif sh == "circle":
            m = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        else:
            m = (y - cy < r * 0.8) & (y - cy > -r) & (abs(x - cx) < (y - cy + r) * 0.6)
        im[m] = colours[cn]
        out.append({"id": f"d{i}", "image": im, "text": f"{cn} {sh}"})
    return out
def write(path, recs):
    with open(path, "wb") as f:
        tensor_stream.write(recs, f)
write("train.ts", drawings(600, 1))
write("val.ts", drawings(120, 2))
good = drawings(3, 3)
write("notext.ts", good + [{"id": "x", "image": good[0]["image"]}])
write("numtext.ts", good + [{"id": "x", "image": good[0]["image"], "text": 7}])
write("flat.ts", good + [{"id": "x", "image": np.zeros((8, 8), np.uint8), "text": "red square"}])
write("floatimg.ts", good + [{"id": "x", "image": np.zeros((8, 8, 3), np.float32), "text": "red square"}])
write("fivech.ts", good + [{"id": "x", "image": np.zeros((8, 8, 5), np.uint8), "text": "red square"}])
write("gray.ts", [{"image": r["image"][:, :, :1].copy(), "text": r["text"]} for r in good] +
      [{"image": np.concatenate([r["image"], np.full((8, 8, 1), 255, np.uint8)], 2), "text": r["text"]} for r in good])
open("empty.ts", "wb").close()
open("junk.safetensors", "wb").write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
EOF2

TINY=(-t 1 --image-size 8 --patch 4 --vision-width 32 --vision-layers 2 --text-width 32 --text-layers 2
      --embed-dim 32 --context 8 --batch 32 --buffer 256 --lr 2e-3)
# Figures of the last zero-shot line: text->image, image->text, chance.
zero_shot() { sed -n 's/.*zero-shot top-1 text->image \([0-9.]*\), image->text \([0-9.]*\), chance \([0-9.]*\).*/\1 \2 \3/p' "$1" | tail -1; }
at_least() { "$PY" -c 'import sys; sys.exit(not float(sys.argv[1]) >= float(sys.argv[2]))' "$1" "$2"; }

clip-train "${TINY[@]}" -o m.safetensors --steps 300 --val val.ts --val-every 100 --log log.json train.ts 2>train.log
check trains test -s m.safetensors -a -s m.state.safetensors
read -r t2i i2t chance <<<"$(zero_shot train.log)"
echo "# zero-shot top-1 on 120 held-out drawings: text->image ${t2i:-?}, image->text ${i2t:-?}, chance ${chance:-?}"
check zero_shot_text_to_image_3x_chance at_least "${t2i:-0}" "$("$PY" -c "print(3 * ${chance:-1})")"
check zero_shot_image_to_text_3x_chance at_least "${i2t:-0}" "$("$PY" -c "print(3 * ${chance:-1})")"
check log_json "$PY" -c "
import json
rows = [json.loads(l) for l in open('log.json')]
assert rows[-1]['step'] == 300 and 'val_t2i' in rows[-1], rows[-1]
assert all(k in rows[0] for k in ('step', 'loss', 'logit_scale', 'lr', 'steps_per_s')), rows[0]"
check stored_config "$PY" -c "
import json, struct
f = open('m.safetensors', 'rb'); n = struct.unpack('<Q', f.read(8))[0]; meta = json.loads(f.read(n))['__metadata__']
cfg = json.loads(meta['open_clip_config'])['model_cfg']
assert cfg['text_cfg']['heads'] == 1 and cfg['vision_cfg']['width'] == 32, cfg
assert meta['knnd_bpe_merges'].startswith('#'), meta['knnd_bpe_merges'][:40]"

# clip-embed loads the model with no other file and reproduces the figures.
clip-embed -m m.safetensors --image val.ts >img.ts 2>embed.err
check embed_image test -s img.ts
clip-embed -m m.safetensors --text val.ts >txt.ts 2>>embed.err
check embed_reproduces_zero_shot "$PY" -c "
import sys, numpy as np, tensor_stream
img = list(tensor_stream.read(open('img.ts', 'rb'))); txt = list(tensor_stream.read(open('txt.ts', 'rb')))
I = np.stack([r['emb'] for r in img]).astype(np.float64); T = np.stack([r['emb'] for r in txt]).astype(np.float64)
cap = np.array([r['text'] for r in img])
t2i = np.mean(cap[np.argmax(T @ I.T, 1)] == cap); i2t = np.mean(cap[np.argmax(I @ T.T, 1)] == cap)
sys.exit(not (abs(t2i - float(sys.argv[1])) < 1e-4 and abs(i2t - float(sys.argv[2])) < 1e-4))" "$t2i" "$i2t"

# Exact resume: stopped after 7 steps, resumed (from stdin this time), the
# files equal an uninterrupted run's; augmentation with flips included.
RUN=("${TINY[@]}" --steps 20 --save-every 5 --flip --crop-min 0.5 --buffer 64)
clip-train "${RUN[@]}" -o full.safetensors train.ts 2>/dev/null
clip-train "${RUN[@]}" -o part.safetensors --stop-after 7 train.ts 2>/dev/null
clip-train "${RUN[@]}" -o part.safetensors --resume <train.ts 2>/dev/null
check resume_exact_weights cmp full.safetensors part.safetensors
check resume_exact_state cmp full.state.safetensors part.state.safetensors
check_fails resume_other_batch 'differ from the run' clip-train "${RUN[@]}" -o part.safetensors --resume --batch 16 train.ts
check gray_and_alpha clip-train "${TINY[@]}" -o g.safetensors --steps 2 --batch 4 --merges 10 gray.ts

# Bad inputs and options.
check_fails missing_text "notext.ts: record 3: no 'text'" clip-train "${TINY[@]}" -o x.safetensors --steps 2 notext.ts
check_fails text_not_string "no 'text' string" clip-train "${TINY[@]}" -o x.safetensors --steps 2 numtext.ts
check_fails image_2d "flat.ts: record 3: .*image" clip-train "${TINY[@]}" -o x.safetensors --steps 2 flat.ts
check_fails image_float "floatimg.ts: record 3: .*image" clip-train "${TINY[@]}" -o x.safetensors --steps 2 floatimg.ts
check_fails image_5_channels "fivech.ts: record 3: .*image" clip-train "${TINY[@]}" -o x.safetensors --steps 2 fivech.ts
check_fails empty_input "no image\+text records" clip-train "${TINY[@]}" -o x.safetensors --steps 2 empty.ts
check_fails empty_stdin "no image\+text records" clip-train "${TINY[@]}" -o x.safetensors --steps 2 </dev/null
check_fails missing_file "nothere.ts" clip-train "${TINY[@]}" -o x.safetensors --steps 2 nothere.ts
check no_partial_output test ! -e x.safetensors
cp junk.safetensors bad.safetensors
check_fails corrupt_resume "bad.safetensors" clip-train "${TINY[@]}" -o bad.safetensors --resume train.ts
check_fails resume_nothing "none.safetensors" clip-train "${TINY[@]}" -o none.safetensors --resume train.ts
check_fails patch_not_dividing "--patch 3 does not divide" clip-train -o x.safetensors --image-size 8 --patch 3 train.ts
check_fails heads_not_dividing "not a multiple of --vision-heads" clip-train -o x.safetensors --vision-heads 5 train.ts
check_fails crop_min_range "--crop-min: must be in" clip-train -o x.safetensors --crop-min 0 train.ts
check_fails batch_of_one "--batch" clip-train -o x.safetensors --batch 1 train.ts
check_fails warmup_too_long "--warmup 10 must be shorter" clip-train -o x.safetensors --steps 10 --warmup 10 train.ts
check_fails bad_act "--act: quick_gelu or gelu" clip-train -o x.safetensors --act relu train.ts
check_fails no_out "--out PATH is required" clip-train train.ts
check_fails val_missing_text "notext.ts: record 3: no 'text'" clip-train "${TINY[@]}" -o x.safetensors --steps 2 --val notext.ts train.ts
check help clip-train --help
