#!/usr/bin/env bash
# train: images -> clip-embed --image -> knn-query search --exclude-self
#        -> vq-encode -> diffuse train.
#   pipelines/train.sh CLIP_MODEL INDEX_DIR VQ_MODEL IMAGES.ts TRAIN.ts DIFFUSE_MODEL [diffuse train option...]
# TRAIN.ts, the conditioned stream, comes from condition.sh (reused when it
# is newer than the inputs); the generator never sees a caption.
# Environment: K (neighbours, default 10), VQ_ENCODE_FLAGS (e.g. --resize 32).
# Tools from PATH.
set -euo pipefail
[ $# -ge 6 ] || { echo "usage: $0 CLIP_MODEL INDEX_DIR VQ_MODEL IMAGES.ts TRAIN.ts DIFFUSE_MODEL [diffuse train option...]" >&2; exit 2; }
"$(dirname "$0")/condition.sh" "$1" "$2" "$3" "$4" "$5"
train=$5 model=$6
shift 6
diffuse train -m "$model" "$@" "$train"
