#!/usr/bin/env bash
# The discrete backbone end to end on the golden tiny models (issue 7):
# images -> clip-embed --image -> knn-query search --exclude-self ->
# vq-encode -> diffuse train, then captions -> clip-embed --text ->
# knn-query search -> diffuse sample -> vq-decode -> img-write.
source "$(dirname "$0")/lib.sh"

C=$KNND_SHARED/golden/clip
V=$KNND_SHARED/golden/vqgan
VOCAB=$KNND_SHARED/clip/bpe_simple_vocab_16e6.txt.gz
if [ ! -r "$C/openai.safetensors" ] || [ ! -r "$V/model.safetensors" ] || [ ! -r "$VOCAB" ]; then
	skip diffuse_pipeline "no golden CLIP/VQGAN models or BPE vocabulary under $KNND_SHARED"
	exit 0
fi
set -o pipefail
export C V VOCAB

# Six images, each indexed; every image's neighbours exclude itself.
img-read "$C"/images/*.png | clip-embed --model "$C/openai.safetensors" --image >emb.ts 2>/dev/null
check index_build knn-query build --index idx emb.ts
check train_stream sh -c 'knn-query search --index idx -k 3 --exclude-self emb.ts 2>/dev/null |
	vq-encode --model "$V/model.safetensors" --resize 16 --drop-image >train.ts'
check train_fields sh -c 'ts-cat train.ts | grep -c "\"tokens\"" | grep -qx 6 && ts-cat train.ts | grep -q "\"knn\""'

check diffuse_train diffuse train --model gen.safetensors --codes 64 --depth 1 --width 32 --heads 2 \
	--steps-diffusion 10 --steps 20 --batch 3 --seed 3 -t 1 train.ts

# Captions in, token grids and pictures out.
printf 'a red heart\na sneaker\n' >prompts.txt
check diffuse_sample sh -c 'clip-embed --model "$C/openai.safetensors" --vocab "$VOCAB" --text <prompts.txt |
	knn-query search --index idx -k 3 2>/dev/null | diffuse sample --model gen.safetensors --steps 5 --guidance 2 >samples.ts'
cat >tokens_ok.py <<'PYEOF'
import sys, msgpack, numpy as np
recs = list(msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False))
assert len(recs) == 2, len(recs)
for r in recs:
    t = r["tokens"]
    assert t["dtype"] == "int32" and t["shape"] == [8, 8], t["shape"]
    a = np.frombuffer(t["data"], "<i4")
    assert a.min() >= 0 and a.max() < 64, (a.min(), a.max())
    assert r["text"] in ("a red heart", "a sneaker")
PYEOF
check sample_tokens "$PY" tokens_ok.py samples.ts
check decode_sheet sh -c 'vq-decode --model "$V/model.safetensors" samples.ts | img-write --sheet sheet.png --caption text &&
	test -s sheet.png'

