# The whole chain through pipelines/: datasets -> default models (tiny) ->
# index -> samples and a contact sheet, as `make default-models` and
# `make demo` run it, on a few dozen images with tiny models.
source "$(dirname "$0")/lib.sh"
FONT=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
NAMES=/usr/share/unicode/emoji/emoji-test.txt
FMNIST=/usr/share/datasets/fashion-mnist
for f in "$FONT" "$NAMES" "$FMNIST/train-images-idx3-ubyte.gz"; do
	[ -r "$f" ] || { skip pipelines_e2e "no $f (make deps installs it)"; exit 0; }
done
P=$KNND_ROOT/pipelines
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
DIFFUSE_FLAGS="--codes 32 --depth 1 --width 32 --heads 2 --steps-diffusion 10 --batch 8 --steps 6 --save-every 3 --seed 1 --progress-every 0"
tiny=(KNND_BIN="$KNND_BIN" DATA=data MODELS=models IMAGE_SIZE=16 EMOJI_COUNT=120 FASHION_COUNT=200
	FASHION_CLIP=60 FASHION_GEN=60 EMOJI_WEIGHT=2 DISTINCT_WEIGHT=3 FASHION_DISTINCT=50
	VQ_TRAIN_FLAGS="--resize 16 -f 4 --ch 32 --res-blocks 1 --codes 32 --embed-dim 8 --ema-codebook --batch 4 --steps 6 --save-every 3 --seed 1"
	CLIP_TRAIN_FLAGS="--image-size 16 --patch 4 --vision-width 32 --vision-layers 1 --text-width 32 --text-layers 1 --context 16 --embed-dim 16 --merges 50 --batch 16 --steps 6 --save-every 3 --seed 1 --progress-every 0"
	DIFFUSE_TRAIN_FLAGS="$DIFFUSE_FLAGS")

make -s -f "$P/models.mk" "${tiny[@]}" >models.out 2>models.err || tail -5 models.err >&2
check models_build test -s models/clip.safetensors -a -s models/vqgan.safetensors -a -s models/diffuse.safetensors
check_eq emoji_records 120 "$(ts-cat -k id data/emoji.ts | wc -l)"
check_eq split_is_a_partition 120 "$(( $(ts-cat -k id data/emoji-clip.ts | wc -l) + $(ts-cat -k id data/emoji-gen.ts | wc -l) ))"
check split_sides_disjoint bash -c '[ -z "$(comm -12 <(ts-cat -k id data/emoji-clip.ts | sort) <(ts-cat -k id data/emoji-gen.ts | sort))" ]'
check clip_pairs_have_captions bash -c '[ "$(ts-cat -k text data/clip-pairs.ts | grep -c "\"text\":")" -gt 0 ]'
check_eq gen_mix_weighs_stickers "$(( 2 * $(ts-cat -k id data/emoji-gen.ts | wc -l) + 60 ))" "$(ts-cat -k id data/gen-mix.ts | wc -l)"
check_eq gen_mix_distinct_weighs_stickers "$(( 3 * $(ts-cat -k id data/emoji-gen-distinct.ts | wc -l) + 50 ))" \
	"$(ts-cat -k id data/gen-mix-distinct.ts | wc -l)"
check_eq train_stream_from_distinct_mix "$(ts-cat -k id data/gen-mix-distinct.ts | wc -l)" \
	"$(ts-cat -k tokens models/work/train.ts | wc -l)"
check train_stream_has_condition bash -c 'ts-cat -k tokens,emb,knn models/work/train.ts | head -1 | grep -q "\"knn\":{\"dtype\":\"float32\",\"shape\":\[10,16\]"'
check train_stream_tokens_4x4 bash -c 'ts-cat -k tokens models/work/train.ts | head -1 | grep -q "\"shape\":\[4,4\]"'
check no_temp_files_left bash -c '[ -z "$(find data models -name "*.tmp*")" ]'
check models_up_to_date bash -c "[ -z \"\$(make -s -n -f $P/models.mk ${tiny[*]@Q})\" ]"

# Reproducible: the same run elsewhere gives the same bytes.
mkdir again && (cd again && ln -s ../data data && make -s -f "$P/models.mk" "${tiny[@]}" >/dev/null 2>&1)
check models_reproduce_exactly bash -c 'for m in clip vqgan diffuse; do cmp models/$m.safetensors again/models/$m.safetensors || exit 1; done'

# An interrupted diffusion run resumes where it stopped: the run's files
# are newer than its inputs, so make passes --resume, and the result equals
# an uninterrupted one.
rm models/diffuse.safetensors models/run/diffuse.*
diffuse train -m models/run/diffuse.safetensors $DIFFUSE_FLAGS --stop-after 3 models/work/train.ts >/dev/null 2>&1
make -s -f "$P/models.mk" "${tiny[@]}" >/dev/null 2>&1
check resumed_run_same_model cmp models/diffuse.safetensors again/models/diffuse.safetensors

# The distinct stickers drop exactly the skin-tone variants (the first 120
# emoji have none: a stream of four made here).
mkdir skin
printf '%s\n' '{"id":"a","text":"waving hand"}' '{"id":"b","text":"waving hand: dark skin tone"}' \
	'{"id":"c","text":"couple with heart: woman, man, light skin tone"}' '{"id":"d","text":"skin"}' \
	| ts-pack >skin/emoji-gen.ts
make -s -f "$P/datasets.mk" KNND_BIN="$KNND_BIN" DATA=skin -o skin/emoji-gen.ts skin/emoji-gen-distinct.ts
check_eq distinct_drops_skin_tones '{"id":"a"}{"id":"d"}' "$(ts-cat -k id skin/emoji-gen-distinct.ts | tr -d '\n')"

# The demo's sampling pipeline on these models.
printf 'red heart\na sneaker\n' >prompts.txt
make -s -f "$P/demo.mk" KNND_BIN="$KNND_BIN" DATA=data IMAGE_SIZE=16 EMOJI_COUNT=120 FASHION_COUNT=200 \
	FASHION_GEN=60 DEFAULT_MODELS=models WORK=demo PROMPTS=prompts.txt SAMPLES=3 >demo.out 2>demo.err
check demo_sheet_written test -s demo/sheet.png
check_eq demo_samples 6 "$(ts-cat -k text demo/samples.ts | wc -l)"
check_eq demo_pngs 6 "$(ls demo/png | wc -l)"
check demo_images_decoded bash -c 'ts-cat -k image demo/samples.ts | head -1 | grep -q "\"shape\":\[16,16,3\]"'
check demo_prompts_kept bash -c '[ "$(ts-cat -k text demo/samples.ts | sort -u | wc -l)" = 2 ]'
check demo_index_built test -s demo/index/manifest.msgpack
check demo_up_to_date bash -c "[ -z \"\$(make -s -n -f $P/demo.mk KNND_BIN=$KNND_BIN DATA=data IMAGE_SIZE=16 EMOJI_COUNT=120 FASHION_COUNT=200 FASHION_GEN=60 DEFAULT_MODELS=models WORK=demo PROMPTS=prompts.txt SAMPLES=3 demo/sheet.png)\" ]"
touch prompts.txt
check demo_reruns_on_new_prompts bash -c "make -s -n -f $P/demo.mk KNND_BIN=$KNND_BIN DATA=data IMAGE_SIZE=16 EMOJI_COUNT=120 FASHION_COUNT=200 FASHION_GEN=60 DEFAULT_MODELS=models WORK=demo PROMPTS=prompts.txt SAMPLES=3 | grep -q 'sample.sh'"

# The evaluation (make eval) on these models: judges, the five generator
# variants (one with more neighbour slots), every setting, the tables.
EVAL_ARGS=(KNND_BIN="$KNND_BIN" DATA=data IMAGE_SIZE=16 EMOJI_COUNT=120 FASHION_COUNT=200 FASHION_CLIP=60
	FASHION_GEN=60 DEFAULT_MODELS=models EVAL=eval SEEDS="1 2" PROMPTS_PER_CLASS=2 K_VALUES="0 3" SHARES="50"
	WIDE_K=4 WIDE_K_VALUES="2 4"
	PROMPT_RANGE=0:100 JUDGE_VAL_RANGE=100:150 REFERENCE_RANGE=150:200 EVAL_SAMPLE_FLAGS="--steps 3"
	EVAL_TRAIN_FLAGS="$DIFFUSE_FLAGS"
	JUDGE_FLAGS="--classes 10 --image-size 16 --width 16 --features 8 --steps 6 --batch 8 --seed 1 --progress-every 0"
	JUDGE_CLIP_FLAGS="--image-size 16 --patch 4 --vision-width 32 --vision-layers 1 --text-width 32 --text-layers 1 --context 16 --embed-dim 16 --merges 50 --batch 16 --steps 6 --save-every 3 --seed 2 --progress-every 0")
make -s -f "$P/eval.mk" "${EVAL_ARGS[@]}" >eval.out 2>eval.err || tail -5 eval.err >&2
check eval_tables_written test -s eval/results.md
check_eq eval_tables 6 "$(grep -c '^### ' eval/results.md)"
check_eq eval_rows "$(( 2 + 3 + 2 + 2 + 5 + 4 ))" "$(grep '^| [a-z]' eval/results.md | grep -vc '^| setting')"
check eval_metrics_per_seed bash -c '[ "$(tail -n +2 eval/runs/knn/metrics.tsv | cut -f1 | tr "\n" " ")" = "1 2 " ]'
check eval_metrics_finite bash -c 'tail -n +2 eval/runs/*/metrics.tsv | grep -v "==>" | grep -qiv "nan\|inf"'
check eval_accuracy_in_range awk -F '\t' 'NR > 1 && ($4 < 0 || $4 > 1) { exit 1 }' eval/runs/knn/metrics.tsv
check eval_sheet test -s eval/runs/noknn/sheet.png
check eval_wide_generator python3 -c '
import json, sys
h = open("eval/gen-knn4.safetensors", "rb").read()
n = int.from_bytes(h[:8], "little"); c = json.loads(json.loads(h[8:8 + n])["__metadata__"]["config"])
sys.exit(c["cond_slots"] != 5)'
check eval_judges_independent bash -c '! cmp -s eval/judge-clip.safetensors models/clip.safetensors'
check eval_no_temp_files bash -c '[ -z "$(find eval -name "*.tmp*" -o -name ".tmp.*")" ]'
check eval_up_to_date bash -c "[ -z \"\$(make -s -n -f $P/eval.mk ${EVAL_ARGS[*]@Q} eval/results.md)\" ]"
