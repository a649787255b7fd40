#!/usr/bin/env bash
# brightness: adds 'brightness', the mean of an image's pixel values / 255,
# to every record of a tensor stream (stdin to stdout), the score that
# eval.mk filters an index by.
#   pipelines/brightness.sh < IMAGES.ts > SCORED.ts
set -euo pipefail
ts-cat --full "$@" | jq -c '.brightness = (.image.data | add / length / 255)' | ts-pack
