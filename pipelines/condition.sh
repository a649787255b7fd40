#!/usr/bin/env bash
# condition: images -> clip-embed --image -> knn-query search --exclude-self
#            -> vq-encode, the generator's training stream.
#   pipelines/condition.sh CLIP_MODEL INDEX_DIR VQ_MODEL IMAGES.ts TRAIN.ts
# Each image gets its own CLIP embedding ('emb'), the embeddings of its K
# nearest neighbours in the index, never itself ('knn'), and its VQGAN
# tokens. TRAIN.ts (look at it with ts-cat) is written whole or not at all,
# and left alone when it is newer than every input. Environment: K
# (neighbours, default 10), VQ_ENCODE_FLAGS (e.g. --resize 32). Tools from PATH.
set -euo pipefail
[ $# -eq 5 ] || { echo "usage: $0 CLIP_MODEL INDEX_DIR VQ_MODEL IMAGES.ts TRAIN.ts" >&2; exit 2; }
clip=$1 index=$2 vq=$3 images=$4 train=$5
for input in "$clip" "$index/manifest.msgpack" "$vq" "$images"; do
	[ "$train" -nt "$input" ] || stale=1
done
[ -n "${stale:-}" ] || exit 0
trap 'rm -f "$train.tmp"' EXIT
clip-embed -m "$clip" --image "$images" \
	| knn-query search --index "$index" -k "${K:-10}" --exclude-self \
	| vq-encode -m "$vq" ${VQ_ENCODE_FLAGS:-} > "$train.tmp"
mv -f "$train.tmp" "$train"
