#!/usr/bin/env bash
# train: images -> clip-embed --image -> knn-query search --exclude-self
#        -> vq-encode -> diffuse train.
#   pipelines/train.sh CLIP_MODEL INDEX_DIR VQ_MODEL IMAGES.ts TRAIN.ts DIFFUSE_MODEL [diffuse train option...]
# Each image is conditioned on its own CLIP embedding and on its K nearest
# neighbours in the index (never itself); the generator never sees a
# caption. TRAIN.ts (tokens, emb, knn per image: look at it with ts-cat) is
# written whole or not at all and reused when it is newer than the inputs.
# Environment: K (neighbours, default 10), VQ_ENCODE_FLAGS (e.g. --resize 32).
# Tools from PATH.
set -euo pipefail
[ $# -ge 6 ] || { echo "usage: $0 CLIP_MODEL INDEX_DIR VQ_MODEL IMAGES.ts TRAIN.ts DIFFUSE_MODEL [diffuse train option...]" >&2; exit 2; }
clip=$1 index=$2 vq=$3 images=$4 train=$5 model=$6
shift 6
fresh=1
for input in "$clip" "$index/manifest.msgpack" "$vq" "$images"; do
	[ "$train" -nt "$input" ] || fresh=0
done
if [ "$fresh" = 0 ]; then
	trap 'rm -f "$train.tmp"' EXIT
	clip-embed -m "$clip" --image "$images" \
		| knn-query search --index "$index" -k "${K:-10}" --exclude-self \
		| vq-encode -m "$vq" ${VQ_ENCODE_FLAGS:-} > "$train.tmp"
	mv -f "$train.tmp" "$train"
fi
diffuse train -m "$model" "$@" "$train"
