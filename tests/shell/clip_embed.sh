#!/usr/bin/env bash
# clip-embed in real pipelines against the reference's embeddings in
# ../shared/golden/clip (README there): PNG files through img-read, texts as
# records and as lines, both checkpoint namings, and its errors. First, with
# no ../shared: the vocabulary a checkpoint carries (clip-train's learned BPE).
source "$(dirname "$0")/lib.sh"

# ---- a tokenizer stored in the checkpoint ----
# tiny_clip.py OUT VOCAB [MERGES]: a random Hugging Face-named CLIP (widths 8,
# one layer per tower, 8x8 images, context 16, VOCAB token rows), with the
# text of the file MERGES under the metadata key knnd_bpe_merges. The same
# seed gives the same weights whatever the metadata.
cat >tiny_clip.py <<'EOF2'
import json, random, struct, sys
out, vocab = sys.argv[1], int(sys.argv[2])
W, M, E, P, G, C = 8, 16, 4, 4, 2, 16
shapes = {"vision_model.embeddings.patch_embedding.weight": [W, 3, P, P],
          "vision_model.embeddings.class_embedding": [W],
          "vision_model.embeddings.position_embedding.weight": [G * G + 1, W],
          "visual_projection.weight": [E, W], "text_projection.weight": [E, W],
          "text_model.embeddings.token_embedding.weight": [vocab, W],
          "text_model.embeddings.position_embedding.weight": [C, W], "logit_scale": []}
for ln in ("vision_model.pre_layrnorm", "vision_model.post_layernorm", "text_model.final_layer_norm"):
    shapes[ln + ".weight"] = shapes[ln + ".bias"] = [W]
for tower in ("vision_model", "text_model"):
    b = tower + ".encoder.layers.0."
    for x in ("q", "k", "v", "out"):
        shapes[b + "self_attn.%s_proj.weight" % x], shapes[b + "self_attn.%s_proj.bias" % x] = [W, W], [W]
    for x in ("layer_norm1", "layer_norm2"):
        shapes[b + x + ".weight"] = shapes[b + x + ".bias"] = [W]
    shapes[b + "mlp.fc1.weight"], shapes[b + "mlp.fc1.bias"] = [M, W], [M]
    shapes[b + "mlp.fc2.weight"], shapes[b + "mlp.fc2.bias"] = [W, M], [W]
rng, head, data = random.Random(7), {}, b""
for name in sorted(shapes):
    n = 1
    for d in shapes[name]:
        n *= d
    vals = [rng.gauss(0, 0.5) for _ in range(n)]
    if "norm" in name and name.endswith(".weight"):  # layer norm gains near 1
        vals = [1 + v / 10 for v in vals]
    head[name] = {"dtype": "F32", "shape": shapes[name], "data_offsets": [len(data), len(data) + 4 * n]}
    data += struct.pack("<%df" % n, *vals)
if len(sys.argv) > 3:
    head["__metadata__"] = {"knnd_bpe_merges": open(sys.argv[3], encoding="utf-8").read()}
h = json.dumps(head).encode()
h += b" " * (-len(h) % 8)
open(out, "wb").write(struct.pack("<Q", len(h)) + h + data)
EOF2
# Six merges as clip-train would store them: vocabulary 512 + 6 + 2 = 520.
printf '#version: 0.2 knnd-learned\nr e\nre d</w>\nh e\na r\nhe ar\nhear t</w>\n' >learned.txt
printf '#version: 0.2 knnd-learned\n' >bytes.txt
printf 'red heart\nred\nheart of red\n' >prompts.txt
mkdir -p learned plain
"$PY" tiny_clip.py learned/clip.safetensors 520 learned.txt
"$PY" tiny_clip.py plain/clip.safetensors 520
# Without --vocab, ../shared or $KNND_CLIP_VOCAB: the stored vocabulary.
env -u KNND_CLIP_VOCAB KNND_SHARED=/nonexistent clip-embed -m learned/clip.safetensors --text prompts.txt \
	>stored.ts 2>err.txt
check stored_vocab_text sh -c 'ts-cat stored.ts | grep -c "\"emb\":{\"dtype\":\"float32\",\"shape\":\[4\]" | grep -qx 3'
# The same weights with the same merges as a file give the same bytes; the
# stored vocabulary also comes before $KNND_CLIP_VOCAB.
check stored_vocab_is_learned sh -c \
	'clip-embed -m plain/clip.safetensors --vocab learned.txt --text prompts.txt | cmp - stored.ts'
check stored_vocab_before_env sh -c \
	'KNND_CLIP_VOCAB=bytes.txt clip-embed -m learned/clip.safetensors --text prompts.txt | cmp - stored.ts'
# Byte tokens alone give other embeddings, and --vocab overrides the stored one.
clip-embed -m plain/clip.safetensors --vocab bytes.txt --text prompts.txt >bytes.ts 2>err.txt
check other_vocab_differs sh -c '! cmp -s bytes.ts stored.ts'
check vocab_overrides_stored sh -c \
	'clip-embed -m learned/clip.safetensors --vocab bytes.txt --text prompts.txt | cmp - bytes.ts'
check_fails plain_model_no_vocab '^clip-embed: no BPE vocabulary for the texts: the model carries none' \
	env -u KNND_CLIP_VOCAB clip-embed -m plain/clip.safetensors --text prompts.txt
# More tokens than the model has rows; merges text that is not valid.
mkdir -p small bad
"$PY" tiny_clip.py small/clip.safetensors 519 learned.txt
check_fails stored_vocab_too_big \
	'^clip-embed: small/clip.safetensors: the vocabulary stored in it \(knnd_bpe_merges\) has 520 tokens, but the model has token embeddings for 519$' \
	clip-embed -m small/clip.safetensors --text prompts.txt
printf '#version: 0.2 knnd-learned\nr e\nre d</w>\nhe ar\n' >bad.txt
"$PY" tiny_clip.py bad/clip.safetensors 520 bad.txt
check_fails stored_vocab_corrupt \
	'^clip-embed: bad/clip.safetensors: metadata knnd_bpe_merges: line 4: "he" is neither a byte token nor made by an earlier merge$' \
	clip-embed -m bad/clip.safetensors --text prompts.txt
# Images do not read the vocabulary: one 8x8 RGB image record, msgpack by hand.
"$PY" -c 'import sys; sys.stdout.buffer.write(b"\x81\xa5image\x83\xa5dtype\xa5uint8\xa5shape\x93\x08\x08\x03"
    b"\xa4data\xc4\xc0" + bytes(range(192)))' >image.ts
check stored_vocab_unused_for_images sh -c \
	'clip-embed -m bad/clip.safetensors --image image.ts | ts-cat | grep -q "\"emb\":{\"dtype\":\"float32\",\"shape\":\[4\]"'
G=$KNND_SHARED/golden/clip
VOCAB=$KNND_SHARED/clip/bpe_simple_vocab_16e6.txt.gz
if [ ! -r "$G/expected.safetensors" ]; then
	skip clip_embed "no golden data in $G (set KNND_SHARED)"
	exit 0
fi
if ! "$PY" -c 'import msgpack, numpy' 2>/dev/null; then
	skip clip_embed "$PY lacks msgpack or numpy (python3-msgpack, python3-numpy)"
	exit 0
fi
export G PY

# compare.py STREAM KIND FIELD TENSOR TOL: the FIELD of every record in
# STREAM against row i of TENSOR in expected.safetensors, where i comes from
# the record's image id (manifest order) or its text (manifest order); all
# rows must be there, the embeddings float32 [d], other fields kept.
cat >compare.py <<'EOF'
import json, struct, sys
import msgpack, numpy as np
path, kind, field, name, tol = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
G = __import__("os").environ["G"]
raw = open(G + "/expected.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
e = head[name]
want = np.frombuffer(raw[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]], "<f4").reshape(e["shape"])
man = json.load(open(G + "/manifest.json"))
seen = set()
for r in msgpack.Unpacker(open(path, "rb"), raw=False):
    t = r[field]
    assert t["dtype"] == "float32" and t["shape"] == [want.shape[1]], t["dtype"]
    got = np.frombuffer(t["data"], "<f4")
    if kind == "image":
        i = [m["file"].split("/")[-1][:-4] for m in man["images"]].index(r["id"])
        assert "image" in r and "path" in r, sorted(r)
    else:
        i = [m["text"] for m in man["texts"]].index(r["text"])
        if "n" in r:
            assert r["n"] == i, (r["n"], i)
    err = float(np.abs(got - want[i]).max())
    assert err <= tol, "%s %d: max abs error %g > %g" % (kind, i, err, tol)
    seen.add(i)
need = int(sys.argv[6]) if len(sys.argv) > 6 else want.shape[0]
assert len(seen) == need, "%d of %d rows" % (len(seen), need)
EOF
cmp_stream() { "$PY" compare.py "$@"; }
export -f cmp_stream

# ---- images ----
img-read --keep-alpha "$G"/images/*.png >images.ts
check image_pipeline_ts_cat sh -c \
	'img-read --keep-alpha "$G"/images/*.png | clip-embed --model "$G/openai.safetensors" --image | ts-cat | grep -c "\"emb\"" | grep -qx 6'
clip-embed --model "$G/openai.safetensors" --image --keep-raw <images.ts >img_openai.ts 2>err.txt
check image_embeds_openai cmp_stream img_openai.ts image emb image_embeds 2e-5
check image_features_openai_keep_raw cmp_stream img_openai.ts image emb_raw image_features 1e-4
clip-embed --model "$G/hf.safetensors" --config "$G/hf-config.json" --image --batch 4 --threads 1 images.ts \
	>img_hf.ts 2>err.txt
check image_embeds_hf_batch4 cmp_stream img_hf.ts image emb image_embeds 2e-5
check image_passes_fields_through sh -c 'ts-cat -k id,path img_hf.ts | grep -c "\"path\"" | grep -qx 6'

# ---- texts ----
if [ ! -r "$VOCAB" ]; then
	skip clip_embed_text "no BPE vocabulary at $VOCAB"
else
	# All 20 as records (some hold newlines and tabs), with a field to keep.
	"$PY" -c '
import json, os, sys, msgpack
for i, t in enumerate(json.load(open(os.environ["G"] + "/manifest.json"))["texts"]):
    sys.stdout.buffer.write(msgpack.packb({"n": i, "text": t["text"]}))' >texts.ts
	clip-embed --model "$G/openai.safetensors" --vocab "$VOCAB" --text <texts.ts >txt_records.ts
	check text_records_openai cmp_stream txt_records.ts text emb text_embeds 2e-5
	KNND_CLIP_VOCAB=$VOCAB clip-embed --model "$G/hf.safetensors" --config "$G/hf-config.json" --text --batch 7 \
		--keep-raw texts.ts >txt_hf.ts
	check text_records_hf_batch7 cmp_stream txt_hf.ts text emb text_embeds 2e-5
	check text_features_hf_keep_raw cmp_stream txt_hf.ts text emb_raw text_features 1e-4

	# The texts that fit on one line, as plain lines: from a pipe (the first
	# byte is handed back through a thread) and from a file (rewound).
	"$PY" -c '
import json, os
ts = [t["text"] for t in json.load(open(os.environ["G"] + "/manifest.json"))["texts"]]
ok = [t for t in ts if "\n" not in t and "\r" not in t]
open("lines.txt", "w", encoding="utf-8").write("".join(t + "\n" for t in ok))
open("nlines", "w").write(str(len(set(ok))))'
	nlines=$(cat nlines)
	cat lines.txt | KNND_CLIP_VOCAB=$VOCAB clip-embed -m "$G/openai.safetensors" --text >txt_pipe.ts
	check text_lines_from_pipe cmp_stream txt_pipe.ts text emb text_embeds 2e-5 "$nlines"
	KNND_CLIP_VOCAB=$VOCAB clip-embed -m "$G/openai.safetensors" --text lines.txt >txt_file.ts
	check text_lines_from_file cmp_stream txt_file.ts text emb text_embeds 2e-5 "$nlines"
	check text_lines_option sh -c 'KNND_CLIP_VOCAB=$0 clip-embed -m "$G/openai.safetensors" --text --lines <lines.txt \
		| cmp - txt_file.ts' "$VOCAB"
	check text_lines_fields sh -c 'ts-cat txt_file.ts | head -1 | grep -q "^{\"text\":.*,\"emb\":{\"dtype\":\"float32\",\"shape\":\[32\]"'
	check text_empty_input sh -c ': | KNND_CLIP_VOCAB=$0 clip-embed -m "$G/openai.safetensors" --text | cmp - /dev/null' "$VOCAB"

	mkdir -p novocab && cp "$G/openai.safetensors" novocab/
	check_fails text_no_vocab '^clip-embed: no BPE vocabulary' \
		env -u KNND_CLIP_VOCAB clip-embed -m novocab/openai.safetensors --text lines.txt
	check_fails text_record_without_text "^clip-embed: images.ts: record 0: no 'text' string field" \
		clip-embed -m "$G/openai.safetensors" --vocab "$VOCAB" --text images.ts
fi

# ---- errors ----
check_fails missing_model '^clip-embed: nope.safetensors: .*No such file' \
	clip-embed --model nope.safetensors --image images.ts
head -c 1000 "$G/openai.safetensors" >truncated.safetensors
check_fails truncated_model '^clip-embed: truncated.safetensors: ' clip-embed --model truncated.safetensors --image images.ts
"$PY" -c '
import json, struct
h = json.dumps({"encoder.conv_in.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
h += b" " * (-len(h) % 8)
open("other.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + struct.pack("<2f", 1, 2))'
check_fails not_clip '^clip-embed: other.safetensors: not a CLIP checkpoint' \
	clip-embed --model other.safetensors --image images.ts
check_fails no_mode 'exactly one of --image and --text' clip-embed --model "$G/openai.safetensors" images.ts
check_fails both_modes 'exactly one of --image and --text' clip-embed --model "$G/openai.safetensors" --image --text
check_fails no_model 'give --model' clip-embed --image images.ts
check_fails bad_heads '^clip-embed: .*openai.safetensors: the text width 32 is not a multiple of 3 heads' \
	clip-embed --model "$G/openai.safetensors" --heads-text 3 --image images.ts
check_fails image_record_without_image "^clip-embed: stdin: record 0: no 'image' field" \
	sh -c 'printf "\201\241a\001" | clip-embed --model "$G/openai.safetensors" --image'

# The thread count changes nothing.
check threads_same_bytes sh -c 'clip-embed -m "$G/openai.safetensors" --image -t 1 images.ts >t1.ts &&
	clip-embed -m "$G/openai.safetensors" --image -t 2 images.ts | cmp - t1.ts'
