#!/usr/bin/env bash
# classify on a tiny judge: it learns three easily told classes of
# synthetic images (held-out accuracy > 0.9), apply adds pred, prob, feat
# and correct with the right shapes and passes the rest through, a stopped
# and resumed run ends byte for byte where an uninterrupted one does, and
# bad inputs and options get one clear line.
source "$(dirname "$0")/lib.sh"
if ! "$PY" -c 'import msgpack, numpy' 2>/dev/null; then
	skip classify "$PY lacks msgpack or numpy"
	exit 0
fi
export PYTHONPATH=$KNND_ROOT/tests/shell

# Class 0: horizontal stripes, 1: vertical stripes, 2: a bright square in a
# dark field; random phase, size and noise; most images 12x12, some 16x16
# (resized).
"$PY" - <<'EOF'
import numpy as np, tensor_stream
rng = np.random.default_rng(3)
def image(label, side):
    y, x = np.mgrid[0:side, 0:side]
    p = rng.integers(0, 4)
    if label == 0:
        im = ((y + p) // 2 % 2) * 200.0
    elif label == 1:
        im = ((x + p) // 2 % 2) * 200.0
    else:
        im = np.zeros((side, side))
        s = rng.integers(3, side // 2)
        o = rng.integers(0, side - s)
        im[o:o + s, o:o + s] = 230
    im += rng.normal(0, 20, im.shape)
    return np.clip(im, 0, 255).astype(np.uint8)[:, :, None]
def recs(n, prefix):
    out = []
    for i in range(n):
        label = i % 3
        side = 16 if i % 5 == 0 else 12
        out.append({"id": f"{prefix}{i}", "image": image(label, side), "label": label, "text": f"class {label}"})
    return out
def write(path, r):
    with open(path, "wb") as f:
        tensor_stream.write(r, f)
train = recs(210, "t")
write("train.ts", train)
write("val.ts", recs(60, "v"))
write("nolabel.ts", [{"id": "u", "image": image(1, 12)}])
write("missing-label.ts", train[:5] + [{"id": "x", "image": image(0, 12)}])
write("missing-image.ts", train[:5] + [{"id": "x", "label": 1}])
write("bad-label.ts", train[:5] + [{"id": "x", "image": image(0, 12), "label": 7}])
write("text-label.ts", train[:2] + [{"id": "x", "image": image(0, 12), "label": "shirt"}])
open("junk.safetensors", "wb").write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
EOF

TINY=(-t 1 --classes 3 --image-size 12 --width 16 --features 8 --batch 16 --buffer 64 --lr 3e-3)
classify train "${TINY[@]}" -m j.safetensors --steps 80 --progress-every 40 --val val.ts train.ts 2>train.log
check train_ran test -s j.safetensors -a -s j.state.safetensors
check train_reports_val grep -q 'step 80/80: .* val accuracy [0-9.]* (60)' train.log

classify apply -m j.safetensors val.ts > val-out.ts
check apply_fields "$PY" - <<'EOF'
import numpy as np, tensor_stream
r = list(tensor_stream.read(open("val-out.ts", "rb")))
assert len(r) == 60, len(r)
for i, x in enumerate(r):
    assert x["id"] == f"v{i}" and x["text"] == f"class {x['label']}", x.keys()
    assert x["image"].dtype == np.uint8
    assert isinstance(x["pred"], int) and 0 <= x["pred"] < 3
    assert x["prob"].dtype == np.float32 and x["prob"].shape == (3,), x["prob"].shape
    assert abs(x["prob"].sum() - 1) < 1e-5 and x["pred"] == int(np.argmax(x["prob"]))
    assert x["feat"].dtype == np.float32 and x["feat"].shape == (8,)
    assert x["correct"] == int(x["pred"] == x["label"])
acc = np.mean([x["correct"] for x in r])
assert acc > 0.9, f"held-out accuracy {acc}"
EOF
# The reported held-out accuracy is apply's.
check val_report_matches_apply "$PY" - <<'EOF'
import re, tensor_stream
acc = sum(x["correct"] for x in tensor_stream.read(open("val-out.ts", "rb"))) / 60
rep = float(re.search(r"step 80/80: .*val accuracy ([0-9.]+)", open("train.log").read()).group(1))
assert abs(acc - rep) < 1e-4, (acc, rep)
EOF
check apply_without_label "$PY" -c '
import sys, tensor_stream
r = list(tensor_stream.read(sys.stdin.buffer))
assert len(r) == 1 and "correct" not in r[0] and r[0]["prob"].shape == (3,), r' \
	< <(classify apply -m j.safetensors -b 7 nolabel.ts)
# Batch size does not change the outputs.
classify apply -m j.safetensors -b 7 val.ts > val-out7.ts
check apply_batch_independent cmp val-out.ts val-out7.ts

# Stopped after 30 steps and resumed: the same bytes as 50 steps at once.
classify train "${TINY[@]}" --shift 1 -m a.safetensors --steps 50 --save-every 0 train.ts 2>/dev/null
classify train "${TINY[@]}" --shift 1 -m b.safetensors --steps 50 --save-every 0 --stop-after 30 train.ts 2>/dev/null
classify train -t 1 --batch 16 --buffer 64 --shift 1 --lr 3e-3 -m b.safetensors --steps 50 --resume train.ts 2>/dev/null
check resume_same_weights cmp a.safetensors b.safetensors
check resume_same_state cmp a.state.safetensors b.state.safetensors
check_fails resume_other_batch 'batch.*differ' \
	classify train -t 1 --batch 8 --buffer 64 --shift 1 -m b.safetensors --steps 60 --resume train.ts
check_fails resume_other_classes 'classes 4 differs' \
	classify train -t 1 --classes 4 --batch 16 --buffer 64 --shift 1 -m b.safetensors --steps 60 --resume train.ts

# Bad inputs and options.
check_fails label_out_of_range 'record 5: label 7 is not a class of 3' \
	classify train "${TINY[@]}" -m x.safetensors --steps 2 bad-label.ts
check_fails wrong_classes 'label 2 is not a class of 2' \
	classify train -t 1 --classes 2 --image-size 12 -m x.safetensors --steps 2 train.ts
check_fails missing_label "record 5: no 'label'" classify train "${TINY[@]}" -m x.safetensors --steps 2 missing-label.ts
check_fails missing_image 'record 5: .*image' classify train "${TINY[@]}" -m x.safetensors --steps 2 missing-image.ts
check_fails text_label "not an integer" classify train "${TINY[@]}" -m x.safetensors --steps 2 text-label.ts
check no_partial_model test ! -e x.safetensors
check_fails no_classes 'classes N is required' classify train -m x.safetensors train.ts
check_fails pool_not_dividing 'pool 2 does not divide 3' \
	classify train "${TINY[@]}" --pool 2 -m x.safetensors --steps 2 train.ts
check_fails no_command 'give a command' classify
check_fails train_option_in_apply 'for classify train' classify apply -m j.safetensors --steps 3 val.ts
check_fails apply_missing_image 'record 5: .*image' classify apply -m j.safetensors missing-image.ts
check_fails apply_label_out_of_range 'record 5: label 7 is not a class of 3' classify apply -m j.safetensors bad-label.ts
check_fails apply_corrupt_model 'junk.safetensors' classify apply -m junk.safetensors val.ts
check_fails apply_missing_model 'nothing.safetensors' classify apply -m nothing.safetensors val.ts
head -c 3000 j.safetensors > cut.safetensors
check_fails apply_truncated_model 'cut.safetensors' classify apply -m cut.safetensors val.ts
check_fails apply_not_a_judge 'not a judge' classify apply -m a.state.safetensors val.ts
