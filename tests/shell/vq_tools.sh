#!/usr/bin/env bash
# vq-encode and vq-decode in pipelines against the reference codec in
# ../shared/golden/vqgan (README there): codec.pixels_in as uint8 images must
# give codec.tokens exactly, and codec.tokens must decode to codec.pixels_out
# within one level; then batching, sizes, channels, resizing and the errors.
source "$(dirname "$0")/lib.sh"
G=$KNND_SHARED/golden/vqgan
M=$G/model.safetensors
if [ ! -r "$G/expected.safetensors" ] || [ ! -r "$M" ]; then
	skip vq_tools "no golden data in $G (set KNND_SHARED)"
	exit 0
fi
if ! "$PY" -c 'import msgpack, numpy' 2>/dev/null; then
	skip vq_tools "$PY lacks msgpack or numpy (python3-msgpack, python3-numpy)"
	exit 0
fi
export G M PY PYTHONPATH=$KNND_ROOT/tests/shell

# vq.py: the golden tensors, and the test streams built from them.
cat >vq.py <<'EOF'
import io, json, os, struct, subprocess
import numpy as np
import tensor_stream

G = os.environ["G"]
DTYPES = {"F32": "<f4", "I64": "<i8"}

def safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    head.pop("__metadata__", None)
    return {k: np.frombuffer(raw[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]],
                             DTYPES[e["dtype"]]).reshape(e["shape"]) for k, e in head.items()}

expected = safetensors(G + "/expected.safetensors")
codebook = safetensors(G + "/model.safetensors")["quantize.embedding.weight"]
pixels_in = expected["codec.pixels_in"].astype(np.uint8).transpose(0, 2, 3, 1)      # [3,16,16,3]
tokens = expected["codec.tokens"].reshape(-1, 8, 8)                                  # int64
pixels_out = np.round(expected["codec.pixels_out"]).transpose(0, 2, 3, 1)          # float, 0..255

def read(path):
    return list(tensor_stream.read(open(path, "rb")))

def write(path, records):
    with open(path, "wb") as f:
        tensor_stream.write(records, f)

def tool(*argv):
    return list(tensor_stream.read(io.BytesIO(subprocess.run(argv, check=True, stdout=subprocess.PIPE).stdout)))

def on_white(rgba):
    c, a = rgba[..., :-1].astype(np.uint32), rgba[..., -1:].astype(np.uint32)
    return ((c * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)
EOF

# pyrun CODE: runs Python CODE after `from vq import *`.
pyrun() { "$PY" -c "from vq import *; $1"; }

pyrun '
write("images.ts", [{"id": "g%d" % i, "image": pixels_in[i], "label": i} for i in range(3)])
write("tokens64.ts", [{"id": "t%d" % i, "tokens": tokens[i].reshape(-1)} for i in range(3)])
write("tokens32.ts", [{"id": "t%d" % i, "tokens": tokens[i].astype(np.int32)} for i in range(3)])
'

# ---- the reference codec ----
vq-encode --model "$M" images.ts >enc.ts
check encode_tokens_exact pyrun '
out = read("enc.ts")
assert len(out) == 3
for i, r in enumerate(out):
    assert list(r) == ["id", "image", "label", "tokens"], list(r)
    assert r["id"] == "g%d" % i and r["label"] == i
    assert r["tokens"].dtype == np.int32 and r["tokens"].shape == (8, 8), r["tokens"].shape
    assert (r["tokens"] == tokens[i]).all(), "image %d: %d tokens differ" % (i, (r["tokens"] != tokens[i]).sum())
    assert (r["image"] == pixels_in[i]).all()'

vq-decode --model "$M" tokens64.ts >dec.ts
check decode_within_one_level pyrun '
out = read("dec.ts")
assert len(out) == 3
for i, r in enumerate(out):
    assert r["image"].dtype == np.uint8 and r["image"].shape == (16, 16, 3), r["image"].shape
    err = np.abs(r["image"].astype(float) - pixels_out[i]).max()
    assert err <= 1, "image %d: off by %g levels" % (i, err)'
vq-decode -m "$M" tokens32.ts >a.ts
ts-cat -k image a.ts >a.json
check decode_int32_grid_same sh -c 'ts-cat -k image dec.ts | cmp - a.json'
check decode_flat_with_grid sh -c 'vq-decode -m "$M" --grid 8x8 tokens64.ts | ts-cat -k image | cmp - a.json'

check round_trip_through_pipe sh -c 'vq-encode -m "$M" <images.ts | vq-decode -m "$M" | ts-cat -k id,image >rt.json &&
	sed "s/^{\"id\":\"g[0-9]\",/{/" rt.json | cmp - a.json'
check pipeline_ts_cat sh -c 'vq-encode -m "$M" images.ts | ts-cat | grep -c "\"tokens\":{\"dtype\":\"int32\",\"shape\":\[8,8\]" |
	grep -qx 3'
check decode_to_png_files sh -c 'vq-decode -m "$M" tokens32.ts | img-write --dir out && ls out | tr "\n" " " |
	grep -qx "t0.png t1.png t2.png "'

# --latents: z after quant_conv, whose nearest codebook rows are the tokens.
vq-encode -m "$M" --latents --drop-image images.ts >lat.ts
check latents_quantise_to_tokens pyrun '
for i, r in enumerate(read("lat.ts")):
    assert "image" not in r and list(r) == ["id", "label", "tokens", "latent"], list(r)
    z = r["latent"]
    assert z.dtype == np.float32 and z.shape == (16, 8, 8), z.shape
    d = ((z.reshape(16, -1).T[:, None, :] - codebook[None]) ** 2).sum(-1)
    assert (d.argmin(1).reshape(8, 8) == tokens[i]).all()'

# ---- batches, threads, sizes ----
check batch_and_threads_same_bytes sh -c 'vq-encode -m "$M" --latents -t 1 images.ts >t1.ts &&
	vq-encode -m "$M" --latents -t 2 --batch 2 images.ts | cmp - t1.ts &&
	vq-encode -m "$M" --latents --batch 1 - <images.ts | cmp - t1.ts'
check files_one_after_another sh -c 'vq-encode -m "$M" images.ts images.ts | ts-cat -k id | tr -d "\n" |
	grep -qx "{\"id\":\"g0\"}{\"id\":\"g1\"}{\"id\":\"g2\"}{\"id\":\"g0\"}{\"id\":\"g1\"}{\"id\":\"g2\"}"'

# Sizes change within a stream (and within a batch): 16x16, 32x16 (two
# images side by side), 16x16. Side by side, the two halves need not give
# the halves' tokens (the encoder's receptive field spans the seam), so
# this checks the grid shape, order and the unchanged images around it.
pyrun '
write("sizes.ts", [{"id": "a", "image": pixels_in[0]},
                   {"id": "wide", "image": np.concatenate([pixels_in[1], pixels_in[2]], 1)},
                   {"id": "c", "image": pixels_in[2]}])'
vq-encode -m "$M" --batch 4 sizes.ts >sizes_out.ts
check sizes_change_in_stream pyrun '
out = read("sizes_out.ts")
assert [r["id"] for r in out] == ["a", "wide", "c"]
assert out[1]["tokens"].shape == (8, 16), out[1]["tokens"].shape
assert (out[0]["tokens"] == tokens[0]).all() and (out[2]["tokens"] == tokens[2]).all()'
check decode_sizes_change pyrun '
dec = tool("vq-decode", "-m", os.environ["M"], "-b", "3", "sizes_out.ts")
assert [r["image"].shape for r in dec] == [(16, 16, 3), (16, 32, 3), (16, 16, 3)]
assert np.abs(dec[2]["image"].astype(float) - pixels_out[2]).max() <= 1'

# ---- channels ----
# Gray is replicated, alpha composited onto white: each gives exactly what
# the equivalent RGB image gives.
pyrun '
gray = pixels_in[:, :, :, 1:2]
rgba = np.concatenate([pixels_in[0], (np.arange(256) % 256).reshape(16, 16, 1).astype(np.uint8)], 2)
la = np.concatenate([gray[1], rgba[..., 3:]], 2)
write("chan.ts", [{"image": gray[0]}, {"image": rgba}, {"image": la}])
write("chan_rgb.ts", [{"image": np.repeat(gray[0], 3, 2)}, {"image": on_white(rgba)},
                      {"image": np.repeat(on_white(la), 3, 2)}])'
check gray_and_alpha_as_rgb sh -c 'vq-encode -m "$M" --latents --drop-image chan.ts >c1.ts &&
	vq-encode -m "$M" --latents --drop-image chan_rgb.ts | cmp - c1.ts'

# --resize: Pillow bicubic to NxN, the same bytes as resizing in Python.
if "$PY" -c 'import PIL' 2>/dev/null; then
	pyrun '
from PIL import Image
big = np.random.RandomState(6).randint(0, 256, (30, 23, 3)).astype(np.uint8)
write("big.ts", [{"image": big}, {"image": pixels_in[1]}])
small = np.asarray(Image.fromarray(big).resize((16, 16), Image.BICUBIC))
write("small.ts", [{"image": small}, {"image": pixels_in[1]}])'
	check resize_is_pillow_bicubic sh -c 'vq-encode -m "$M" --resize 16 --latents --drop-image big.ts >r1.ts &&
		vq-encode -m "$M" --latents --drop-image small.ts | cmp - r1.ts'
else
	skip resize_is_pillow_bicubic "$PY lacks PIL (python3-pil)"
fi

# A model of one input and one output channel (the golden weights with
# conv_in summed over its inputs and conv_out's first row): RGB images become
# gray as Pillow's convert("L") does, gray ones go in as they are and encode
# as the RGB model encodes them replicated, and images decode as [H,W,1].
pyrun '
ts = safetensors(os.environ["M"])
ts["encoder.conv_in.weight"] = ts["encoder.conv_in.weight"].sum(1, keepdims=True)
for k in ("decoder.conv_out.weight", "decoder.conv_out.bias"):
    ts[k] = ts[k][:1]
head, off, blobs = {}, 0, []
for k in sorted(ts):
    b = np.ascontiguousarray(ts[k], "<f4").tobytes()
    head[k] = {"dtype": "F32", "shape": list(ts[k].shape), "data_offsets": [off, off + len(b)]}
    off += len(b)
    blobs.append(b)
h = json.dumps(head).encode()
h += b" " * (-len(h) % 8)
open("gray.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
gray = pixels_in[:, :, :, 1:2]
write("gray.ts", [{"image": g} for g in gray])
write("gray_rgb.ts", [{"image": np.repeat(g, 3, 2)} for g in gray])'
check gray_model_gray_images sh -c 'vq-encode -m gray.safetensors gray.ts | ts-cat -k tokens >g1.json &&
	vq-encode -m "$M" gray_rgb.ts | ts-cat -k tokens | cmp - g1.json'
check gray_model_decodes_one_channel pyrun '
for g, c in zip(tool("vq-decode", "-m", "gray.safetensors", "tokens32.ts"), read("a.ts")):
    assert g["image"].shape == (16, 16, 1), g["image"].shape
    assert np.abs(g["image"].astype(int) - c["image"][:, :, :1]).max() <= 1'
if "$PY" -c 'import PIL' 2>/dev/null; then
	pyrun '
from PIL import Image
write("luma.ts", [{"image": np.asarray(Image.fromarray(p).convert("L"))[:, :, None]} for p in pixels_in])'
	check gray_model_rgb_as_pillow_luma sh -c 'vq-encode -m gray.safetensors --latents --drop-image images.ts >l1.ts &&
		vq-encode -m gray.safetensors --latents luma.ts | ts-cat -k tokens,latent >l2.json &&
		ts-cat -k tokens,latent l1.ts | cmp - l2.json'
else
	skip gray_model_rgb_as_pillow_luma "$PY lacks PIL (python3-pil)"
fi

# ---- decode input forms ----
pyrun '
write("mode.ts", [{"mode": "L", "image": pixels_in[0][:, :, :1], "tokens": tokens[0].astype(np.uint16)}])
write("flat416.ts", [{"tokens": tokens[:1].reshape(-1).astype(np.int32)}])'
check decode_replaces_image_and_mode pyrun '
r, = tool("vq-decode", "-m", os.environ["M"], "mode.ts")
assert list(r) == ["mode", "image", "tokens"] and r["mode"] == "RGB", r
assert r["image"].shape == (16, 16, 3) and np.abs(r["image"].astype(float) - pixels_out[0]).max() <= 1'
check decode_grid_not_square sh -c 'vq-decode -m "$M" --grid 4x16 flat416.ts | ts-cat -k image |
	grep -q "\"shape\":\[8,32,3\]"'
check empty_input sh -c ': | vq-encode -m "$M" | cmp - /dev/null && : | vq-decode -m "$M" | cmp - /dev/null'

# ---- errors ----
check_fails missing_model '^vq-encode: nope.safetensors: .*No such file' vq-encode --model nope.safetensors images.ts
check_fails decode_missing_model '^vq-decode: nope.safetensors: .*No such file' vq-decode -m nope.safetensors tokens32.ts
head -c 2000 "$M" >truncated.safetensors
check_fails truncated_model '^vq-encode: truncated.safetensors: ' vq-encode --model truncated.safetensors images.ts
head -c 100000 "$M" >cut.safetensors
check_fails cut_model '^vq-decode: cut.safetensors: ' vq-decode --model cut.safetensors tokens32.ts
"$PY" -c '
import json, struct
h = json.dumps({"visual.conv1.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
h += b" " * (-len(h) % 8)
open("other.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + struct.pack("<2f", 1, 2))'
check_fails not_a_vqgan '^vq-encode: other.safetensors: .*(not a VQGAN|encoder\.conv_in\.weight)' \
	vq-encode --model other.safetensors images.ts
sed 's/"n_embed": 64/"n_embed": 65/' "$G/config.json" >wrong.json
check_fails config_of_another_model '^vq-decode: .*model.safetensors: wrong.json: n_embed is 65, but 64' \
	vq-decode --model "$M" --config wrong.json tokens32.ts
check encode_with_config sh -c 'vq-encode -m "$M" -c "$G/config.json" --latents images.ts | cmp - t1.ts'
check_fails no_model 'give --model' vq-encode images.ts
check_fails bad_backend '^vq-encode: --backend: .*unknown backend' vq-encode -m "$M" --backend tpu images.ts
check_fails resize_not_multiple '^vq-encode: --resize 15 is not a multiple of the model.s factor 2' \
	vq-encode -m "$M" --resize 15 images.ts

pyrun '
write("odd.ts", [{"image": pixels_in[0]}, {"image": pixels_in[0][:15, :15]}])
write("noimage.ts", [{"id": "x"}])
t = tokens[:2].copy(); t[1, 3, 5] = 64
write("range.ts", [{"tokens": t[0]}, {"tokens": t[1]}])
write("negative.ts", [{"tokens": -tokens[0] - 1}])
write("float.ts", [{"tokens": tokens[0].astype(np.float32)}])
write("notsquare.ts", [{"tokens": tokens[0].reshape(-1)[:48]}])'
check_fails wrong_image_size '^vq-encode: odd.ts: record 1: image 15x15 is not a multiple of 2' vq-encode -m "$M" odd.ts
check_fails wrong_size_from_stdin '^vq-encode: stdin: record 1: image 15x15 is not a multiple of 2' \
	sh -c 'vq-encode -m "$M" <odd.ts'
check_fails no_image_field "^vq-encode: noimage.ts: record 0: no 'image' field" vq-encode -m "$M" noimage.ts
check_fails token_out_of_range '^vq-decode: range.ts: record 1: token id 64 at \(3,5\) is out of range: the codebook has 64 codes' \
	vq-decode -m "$M" range.ts
check_fails token_negative '^vq-decode: negative.ts: record 0: token id -[0-9]+ at \(0,0\) is out of range' \
	vq-decode -m "$M" negative.ts
check_fails tokens_not_integer "^vq-decode: float.ts: record 0: field 'tokens' is not an integer tensor" \
	vq-decode -m "$M" float.ts
check_fails tokens_not_square '^vq-decode: notsquare.ts: record 0: 48 tokens are not a square grid; give --grid HxW' \
	vq-decode -m "$M" notsquare.ts
check_fails grid_mismatch '^vq-decode: tokens32.ts: record 0: tokens are \[8,8\], not the --grid 4x16' \
	vq-decode -m "$M" --grid 4x16 tokens32.ts
check_fails bad_grid_option "^vq-decode: --grid '8': expected HxW" vq-decode -m "$M" --grid 8 tokens32.ts
check_fails no_tokens_field "^vq-decode: images.ts: record 0: no 'tokens' field" vq-decode -m "$M" images.ts
head -c 1500 images.ts >cut.ts
check_fails truncated_stream '^vq-encode: cut.ts: record 1: .*truncated' vq-encode -m "$M" cut.ts
check_fails truncated_tokens '^vq-decode: stdin: record 0: .*truncated' sh -c 'head -c 100 tokens32.ts | vq-decode -m "$M"'
check_fails missing_input '^vq-encode: nope.ts: .*No such file' vq-encode -m "$M" nope.ts

# A closed pipe ends them quietly: a passed-through field makes the output
# more than a pipe holds (the writer asks for 1 MiB pipes).
pyrun 'write("many.ts", [{"tokens": tokens[i % 3].astype(np.int32), "image": pixels_in[i % 3],
                          "pad": np.zeros(1 << 20, np.uint8)} for i in range(4)])'
check closed_pipe_quiet bash -c 'vq-decode -m "$M" many.ts 2>err | head -c 100 >/dev/null; test ! -s err &&
	vq-encode -m "$M" many.ts 2>err | head -c 100 >/dev/null; test ! -s err'
check help_and_version sh -c 'vq-encode --help | grep -q "^Usage: vq-encode" && vq-decode -h | grep -q "^Usage: vq-decode" &&
	vq-encode --version >/dev/null && vq-decode --version >/dev/null'
