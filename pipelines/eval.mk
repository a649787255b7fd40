# Evaluation: the paper's claims checked at small scale (docs/results.md).
#   make -f pipelines/eval.mk KNND_BIN=bin      (or simply `make eval`)
# The committed CLIP and VQGAN condition and decode small generators trained
# here on the generator's own training stream (the default model's, but a
# smaller transformer and fewer steps: EVAL_TRAIN_FLAGS); each setting
# samples the same Fashion-MNIST test prompts with several seeds and is
# measured by judges that never condition anything: a classifier trained on
# the labelled Fashion-MNIST train split (`classify`) and a CLIP trained
# only on the generator's side of the data with another seed (clip-score).
#   EVAL               output folder (default work/eval)
#   SEEDS              sampling seeds of every setting (default 1 2)
#   PROMPTS_PER_CLASS  prompts per Fashion-MNIST class (default 10)
#   EVAL_SAMPLE_FLAGS  diffuse sample options of every setting
#   K_VALUES, SHARES   k at inference and index shares (percent) compared
#   WIDE_K, WIDE_K_VALUES  neighbour slots of a second kNN generator, and the
#                      k it is sampled with (claim 2 beyond the default k)
#   PROMPT_RANGE, JUDGE_VAL_RANGE, REFERENCE_RANGE  disjoint record ranges
#                      of the Fashion-MNIST test set: where the prompts'
#                      classes come from, the judge's held-out images, and
#                      the real images the samples are compared to
# Outputs: $(EVAL)/runs/SETTING/{metrics.tsv,sheet.png,samples-SEED.ts} and
# $(EVAL)/results.md, the tables of docs/results.md.
include $(dir $(lastword $(MAKEFILE_LIST)))datasets.mk
DEFAULT_MODELS ?= models
CLIP_MODEL := $(DEFAULT_MODELS)/clip.safetensors
VQ_MODEL := $(DEFAULT_MODELS)/vqgan.safetensors
EVAL ?= work/eval
WORK := $(EVAL)
SEEDS ?= 1 2
PROMPTS_PER_CLASS ?= 10
EVAL_SAMPLE_FLAGS ?= --guidance 3 --steps 10
EVAL_TRAIN_FLAGS ?= --codes 512 --depth 4 --width 128 --heads 4 --cond-drop 0.1 --batch 32 --steps 1500 \
                    --save-every 500 --seed 1
JUDGE_FLAGS ?= --classes 10 --seed 1
JUDGE_CLIP_FLAGS ?= --image-size $(IMAGE_SIZE) --patch 4 --vision-width 128 --vision-layers 4 --text-width 128 \
                    --text-layers 4 --context 32 --embed-dim 128 --merges 1000 --batch 128 --steps 1500 \
                    --lr 5e-4 --save-every 500 --seed 2
K ?= 10
K_VALUES ?= 0 1 3 5
WIDE_K ?= 20
WIDE_K_VALUES ?= 1 5 10 15 20
SHARES ?= 10 30 50 70
PROMPT_RANGE ?= 0:4000
JUDGE_VAL_RANGE ?= 4000:5000
REFERENCE_RANGE ?= 5000:7000

# The generator's collection and its index, as the default model's.
INDEX_IMAGES := $(DATA)/gen-images.ts
INDEX := $(EVAL)/index
include $(dir $(lastword $(MAKEFILE_LIST)))index.mk

JUDGE := $(EVAL)/judge.safetensors
JUDGE_CLIP := $(EVAL)/judge-clip.safetensors
EVAL_FILES := $(EVAL)/judge-val.ts $(EVAL)/train.ts $(EVAL)/train-k$(WIDE_K).ts $(EVAL)/prompts.ts $(EVAL)/reference.ts $(EVAL)/judge-pairs.ts \
              $(EVAL)/garments.emb.ts $(EVAL)/stickers.emb.ts $(EVAL)/garments.scored.ts
$(EVAL_FILES): SHELL := $(knnd_shell)
$(EVAL_FILES): .SHELLFLAGS := $(knnd_shellflags)

# ---- judges ----
# Its held-out figures: 1,000 test images used nowhere else.
$(EVAL)/judge-val.ts: $(DATA)/fashion-test.ts
	@mkdir -p $(@D)
	$(call knnd_atomic,$(call knnd_tool,ts-head) --range $(JUDGE_VAL_RANGE) $<)
$(JUDGE): $(DATA)/fashion.ts $(EVAL)/judge-val.ts
	$(call knnd_tool,classify) train -m $(knnd_run) $(knnd_resume) $(JUDGE_FLAGS) --val $(EVAL)/judge-val.ts $<
	$(knnd_publish)

# The generator's side, captioned: what the conditioning CLIP never saw.
$(EVAL)/judge-pairs.ts: $(DATA)/emoji-gen.ts $(DATA)/fashion-gen.ts
	@mkdir -p $(@D)
	$(call knnd_atomic,{ $(call knnd_tool,ts-caption) --all $(EMOJI_TEMPLATES) $(DATA)/emoji-gen.ts; \
	  $(call knnd_tool,ts-head) -n $(FASHION_CLIP) --skip $(FASHION_GEN) $(DATA)/fashion-gen.ts \
	  | $(call knnd_tool,ts-caption) --seed $(SPLIT_SEED) $(FASHION_TEMPLATES); } \
	  | $(call knnd_tool,ts-shuffle) --seed 2)

$(JUDGE_CLIP): $(EVAL)/judge-pairs.ts
	$(call knnd_tool,clip-train) -o $(knnd_run) $(knnd_resume) $(JUDGE_CLIP_FLAGS) $<
	$(knnd_publish)

# ---- prompts and real images ----
# PROMPTS_PER_CLASS test images of each class (from PROMPT_RANGE) name the
# prompts; those of REFERENCE_RANGE are the real images the samples are
# compared to.
# (field lists in variables: a comma would split knnd_atomic's argument)
PROMPT_FIELDS := id,label,text
REFERENCE_FIELDS := feat,emb,label
$(EVAL)/prompts.ts: $(DATA)/fashion-test.ts
	@mkdir -p $(@D)
	$(call knnd_tool,ts-head) --range $(PROMPT_RANGE) $< > $@.pool
	$(call knnd_atomic,for label in 0 1 2 3 4 5 6 7 8 9; do \
	  $(call knnd_tool,ts-head) -n $(PROMPTS_PER_CLASS) --where label=$$label $@.pool; \
	done | $(call knnd_tool,ts-cat) --raw -k $(PROMPT_FIELDS) | $(call knnd_tool,ts-caption) -t 'a photo of a {text}')
	rm -f $@.pool

$(EVAL)/reference.ts: $(DATA)/fashion-test.ts $(JUDGE) $(CLIP_MODEL)
	$(call knnd_atomic,$(call knnd_tool,ts-head) --range $(REFERENCE_RANGE) $< \
	  | $(call knnd_tool,classify) apply -m $(JUDGE) | $(call knnd_tool,clip-embed) -m $(CLIP_MODEL) --image \
	  | $(call knnd_tool,ts-cat) --raw -k $(REFERENCE_FIELDS))

# ---- generators (claims 1 and 5) ----
# The training stream with K neighbours per image, and with WIDE_K.
$(EVAL)/train.ts $(EVAL)/train-k$(WIDE_K).ts: $(DATA)/gen-mix.ts $(CLIP_MODEL) $(INDEX)/manifest.msgpack $(VQ_MODEL)
	K=$(if $(filter %-k$(WIDE_K).ts,$@),$(WIDE_K),$(K)) VQ_ENCODE_FLAGS='--resize $(IMAGE_SIZE)' \
	  $(call knnd_script,condition.sh) $(CLIP_MODEL) $(INDEX) $(VQ_MODEL) $< $@

# Generator NAME: its diffuse train options, and its stream if not train.ts.
GENERATOR_FLAGS_knn :=
GENERATOR_FLAGS_selfattn := --cond-self-attn
GENERATOR_FLAGS_noknn := --no-knn
GENERATOR_FLAGS_mean := --cond-knn-mean
GENERATOR_STREAM_knn$(WIDE_K) := $(EVAL)/train-k$(WIDE_K).ts
.SECONDEXPANSION:
$(EVAL)/gen-%.safetensors: $$(or $$(GENERATOR_STREAM_$$*),$(EVAL)/train.ts)
	$(call knnd_tool,diffuse) train -m $(knnd_run) $(knnd_resume) $(EVAL_TRAIN_FLAGS) $(GENERATOR_FLAGS_$*) $<
	$(knnd_publish)

# ---- indexes (claims 3 and 4) ----
# A random share of the collection (nested: a smaller share is part of
# every larger one, as ts-split cuts one hash range).
$(EVAL)/index-p%/manifest.msgpack: $(EVAL)/collection.emb.ts
	$(call knnd_tool,ts-split) --key id --seed 3 -o $(EVAL)/share-$*.ts:$* -o $(EVAL)/rest-$*.ts:$$((100 - $*)) $<
	$(call knnd_tool,knn-query) build --index $(@D) $(EVAL)/share-$*.ts
	rm -f $(EVAL)/share-$*.ts $(EVAL)/rest-$*.ts

# The collection's two parts, garments (with a 'label') and stickers.
$(EVAL)/garments.emb.ts: $(EVAL)/collection.emb.ts
	$(call knnd_atomic,$(call knnd_tool,ts-cat) --full $< | jq -c 'select(.label != null)' | $(call knnd_tool,ts-pack))
$(EVAL)/stickers.emb.ts: $(EVAL)/collection.emb.ts
	$(call knnd_atomic,$(call knnd_tool,ts-cat) --full $< | jq -c 'select(.label == null)' | $(call knnd_tool,ts-pack))
$(EVAL)/garments.scored.ts: $(EVAL)/garments.emb.ts
	$(call knnd_atomic,$(call knnd_script,brightness.sh) $<)
# The darkest and the brightest third of the garments.
$(EVAL)/index-dark/manifest.msgpack $(EVAL)/index-bright/manifest.msgpack &: $(EVAL)/garments.scored.ts
	cuts=$$($(call knnd_tool,ts-cat) -k brightness $< | jq -s 'map(.brightness) | sort | "\(.[length / 3 | floor]) \(.[2 * length / 3 | floor])"' -r); \
	$(call knnd_tool,ts-cat) --full $< | jq -c "select(.brightness < $${cuts% *})" | $(call knnd_tool,ts-pack) \
	  | $(call knnd_tool,knn-query) build --index $(EVAL)/index-dark; \
	$(call knnd_tool,ts-cat) --full $< | jq -c "select(.brightness > $${cuts#* })" | $(call knnd_tool,ts-pack) \
	  | $(call knnd_tool,knn-query) build --index $(EVAL)/index-bright
$(EVAL)/index-garments/manifest.msgpack: $(EVAL)/garments.emb.ts
	$(call knnd_tool,knn-query) build --index $(@D) $<
$(EVAL)/index-stickers/manifest.msgpack: $(EVAL)/stickers.emb.ts
	$(call knnd_tool,knn-query) build --index $(@D) $<

# ---- settings: NAME, generator, index folder, extra diffuse sample options,
# neighbours retrieved (default K) ----
SETTINGS :=
define setting
SETTINGS += $(1)
$(EVAL)/runs/$(1)/metrics.tsv: $(EVAL)/gen-$(2).safetensors $(3)/manifest.msgpack $(EVAL)/prompts.ts \
                               $(EVAL)/reference.ts $(JUDGE) $(JUDGE_CLIP) $(VQ_MODEL)
	SEEDS='$(SEEDS)' K=$(or $(5),$(K)) JUDGE=$(JUDGE) JUDGE_CLIP=$(JUDGE_CLIP) $$(call knnd_script,evaluate.sh) $$(@D) \
	  $(CLIP_MODEL) $(3) $(EVAL)/gen-$(2).safetensors $(VQ_MODEL) $(EVAL)/prompts.ts $(EVAL)/reference.ts \
	  $(EVAL_SAMPLE_FLAGS) $(4)
endef
# 1: kNN against the no-kNN baseline
$(eval $(call setting,knn,knn,$(INDEX),))
$(eval $(call setting,noknn,noknn,$(INDEX),))
# 2: k at inference (0: the prompt's embedding alone)
$(foreach k,$(K_VALUES),$(eval $(call setting,k$(k),knn,$(INDEX),-k $(k))))
# and a generator with WIDE_K neighbour slots, sampled with fewer and all
$(foreach k,$(WIDE_K_VALUES),$(eval $(call setting,knn$(WIDE_K)-k$(k),knn$(WIDE_K),$(INDEX),-k $(k),$(WIDE_K))))
# 3: a share of the index at inference
$(foreach p,$(SHARES),$(eval $(call setting,index$(p),knn,$(EVAL)/index-p$(p),)))
# 4: the index swapped at inference
$(foreach i,garments stickers dark bright,$(eval $(call setting,index-$(i),knn,$(EVAL)/index-$(i),)))
# 5: ways of feeding the neighbours
$(eval $(call setting,mean,mean,$(INDEX),))
$(eval $(call setting,selfattn,selfattn,$(INDEX),))

# One table per claim: "title" and its settings, in row order.
TABLES := "1. kNN against the no-kNN baseline" noknn knn -- \
          "2. k at inference" $(K_VALUES:%=k%) knn -- \
          "2b. k at inference, a generator with $(WIDE_K) neighbour slots" $(WIDE_K_VALUES:%=knn$(WIDE_K)-k%) -- \
          "3. share of the index at inference" $(SHARES:%=index%) knn -- \
          "4. the index swapped at inference" knn index-garments index-stickers index-dark index-bright -- \
          "5. feeding the neighbours" noknn mean knn selfattn
$(EVAL)/results.md: $(SETTINGS:%=$(EVAL)/runs/%/metrics.tsv)
	$(call knnd_script,eval-tables.sh) $(EVAL)/runs $(TABLES) > $@.tmp && mv -f $@.tmp $@

.PHONY: eval
eval: $(EVAL)/results.md
	@echo "eval: $(EVAL)/results.md (tables), $(EVAL)/runs/*/sheet.png"
.DEFAULT_GOAL := eval
