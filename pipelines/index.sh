#!/usr/bin/env bash
# index: a collection of images -> clip-embed --image -> knn-query build.
#   pipelines/index.sh CLIP_MODEL IMAGES.ts EMB_OUT.ts INDEX_DIR [clip-embed option...]
# Writes the images with their embeddings to EMB_OUT.ts (kept for
# inspection with ts-cat, and for rebuilding the index with other FAISS
# settings) and the index to INDEX_DIR. Both appear whole or not at all.
# The tools are taken from PATH.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 CLIP_MODEL IMAGES.ts EMB_OUT.ts INDEX_DIR [clip-embed option...]" >&2; exit 2; }
clip=$1 images=$2 emb=$3 index=$4
shift 4
trap 'rm -f "$emb.tmp"' EXIT
clip-embed -m "$clip" --image "$@" "$images" > "$emb.tmp"
mv -f "$emb.tmp" "$emb"
knn-query build --index "$index" "$emb"
