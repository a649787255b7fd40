#!/usr/bin/env bash
# sample: prompts -> clip-embed --text -> knn-query search -> diffuse sample
#         -> vq-decode -> img-write.
#   pipelines/sample.sh CLIP_MODEL INDEX_DIR DIFFUSE_MODEL VQ_MODEL PROMPTS.txt OUT_DIR [diffuse sample option...]
# Writes OUT_DIR/samples.ts (each prompt with its neighbours, tokens and
# image), OUT_DIR/png/*.png and OUT_DIR/sheet.png, a contact sheet with one
# row per prompt captioned with it. Environment: SAMPLES per prompt
# (default 4), K neighbours (default 10). Tools from PATH.
set -euo pipefail
[ $# -ge 6 ] || { echo "usage: $0 CLIP_MODEL INDEX_DIR DIFFUSE_MODEL VQ_MODEL PROMPTS.txt OUT_DIR [diffuse sample option...]" >&2; exit 2; }
clip=$1 index=$2 diffuse=$3 vq=$4 prompts=$5 out=$6
shift 6
samples=${SAMPLES:-4}
mkdir -p "$out"
trap 'rm -rf "$out/samples.ts.tmp" "$out/png.tmp"' EXIT
awk -v n="$samples" 'NF { for (i = 0; i < n; i++) print }' "$prompts" \
	| clip-embed -m "$clip" --text --lines \
	| knn-query search --index "$index" -k "${K:-10}" \
	| diffuse sample -m "$diffuse" "$@" \
	| vq-decode -m "$vq" > "$out/samples.ts.tmp"
mv -f "$out/samples.ts.tmp" "$out/samples.ts"
img-write --dir "$out/png.tmp" "$out/samples.ts"
rm -rf "$out/png" && mv "$out/png.tmp" "$out/png"
img-write --sheet "$out/sheet.png" --cols "$samples" --caption text "$out/samples.ts"
