#!/usr/bin/env bash
# evaluate: one generator setting, sampled from evaluation prompts and
# measured against real images.
#   pipelines/evaluate.sh OUT_DIR CLIP_MODEL INDEX_DIR DIFFUSE_MODEL VQ_MODEL PROMPTS.ts REFERENCE.ts [diffuse sample option...]
# PROMPTS.ts: one record per sample with 'text' (the prompt) and 'label'
# (the class the prompt names). REFERENCE.ts: real images with the judge's
# 'feat' and the CLIP's 'emb' (see eval.mk). For each seed of SEEDS the
# prompts go through clip-embed --text -> knn-query search -> diffuse sample
# -> vq-decode (OUT_DIR/samples-SEED.ts), then the samples through the judge
# (classify apply), the CLIP (clip-embed --image) and the judge CLIP
# (clip-score). OUT_DIR/metrics.tsv gets one line per seed:
#   seed  fd_judge  fd_clip  accuracy  clip_score  brightness  n
# fd_*: Fréchet distance to REFERENCE.ts in the judge's feature space and in
# the CLIP's image-embedding space; accuracy: the judge recognises the
# prompted class; clip_score: the judge CLIP's image-text cosine;
# brightness: mean pixel value / 255. OUT_DIR/sheet.png shows 4 samples of
# each class (first seed). Environment: SEEDS (default "1 2 3"), K (10),
# JUDGE and JUDGE_CLIP (checkpoints; required). Tools from PATH.
set -euo pipefail
[ $# -ge 7 ] || { echo "usage: $0 OUT_DIR CLIP_MODEL INDEX_DIR DIFFUSE_MODEL VQ_MODEL PROMPTS.ts REFERENCE.ts [diffuse sample option...]" >&2; exit 2; }
out=$1 clip=$2 index=$3 diffuse=$4 vq=$5 prompts=$6 reference=$7
shift 7
: "${JUDGE:?evaluate.sh: JUDGE (a classify checkpoint) is not set}"
: "${JUDGE_CLIP:?evaluate.sh: JUDGE_CLIP (a CLIP checkpoint) is not set}"
mkdir -p "$out"
tmp=$(mktemp -d "$out/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
printf 'seed\tfd_judge\tfd_clip\taccuracy\tclip_score\tbrightness\tn\n' > "$tmp/metrics.tsv"
for seed in ${SEEDS:-1 2 3}; do
	clip-embed -m "$clip" --text "$prompts" \
		| knn-query search --index "$index" -k "${K:-10}" \
		| diffuse sample -m "$diffuse" --seed "$seed" "$@" \
		| vq-decode -m "$vq" > "$tmp/samples-$seed.ts"
	classify apply -m "$JUDGE" "$tmp/samples-$seed.ts" \
		| clip-embed -m "$clip" --image \
		| clip-score -m "$JUDGE_CLIP" \
		| "$(dirname "$0")/brightness.sh" > "$tmp/measured.ts"
	fd_judge=$(frechet --field feat "$tmp/measured.ts" "$reference")
	fd_clip=$(frechet --field emb "$tmp/measured.ts" "$reference")
	# ts-mean: group field mean lo hi n, one line per field after the header
	ts-mean correct clip_score brightness "$tmp/measured.ts" \
		| awk -v s="$seed" -v fj="$fd_judge" -v fc="$fd_clip" -F '\t' \
		      'NR > 1 { m[$2] = $3; n = $6 } END { printf "%s\t%s\t%s\t%.4f\t%.4f\t%.4f\t%d\n", s, fj, fc, m["correct"], m["clip_score"], m["brightness"], n }' \
		>> "$tmp/metrics.tsv"
	mv -f "$tmp/samples-$seed.ts" "$out/samples-$seed.ts"
done
first=${SEEDS:-1 2 3}; first=${first%% *}
for label in 0 1 2 3 4 5 6 7 8 9; do
	ts-head -n 4 --where "label=$label" "$out/samples-$first.ts"
done | img-write --sheet "$tmp/sheet.png" --cols 4 --cell 64
mv -f "$tmp/sheet.png" "$out/sheet.png"
mv -f "$tmp/metrics.tsv" "$out/metrics.tsv"
