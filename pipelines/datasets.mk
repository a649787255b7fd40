# The offline datasets, from Debian packages: the Noto Color Emoji stickers
# (fonts-noto-color-emoji, named by unicode-data's emoji-test.txt) and
# Fashion-MNIST (dataset-fashion-mnist). Each collection is split by a hash
# of the record id, so that the CLIP is trained on images the generator
# never sees (the paper's premise: a pretrained CLIP, a caption-free
# collection).
#   DATA          output folder (default work/data)
#   IMAGE_SIZE    side of the stickers (default 32)
#   CLIP_PART, GEN_PART  relative sizes of the two sides of each split (1, 1)
#   FASHION_CLIP  Fashion-MNIST pairs in the CLIP's training mix (5000)
#   FASHION_GEN   Fashion-MNIST images in the generator's collection (6000)
#   EMOJI_COUNT, FASHION_COUNT  read only the first N (tests; default all)
#   EMOJI_WEIGHT  times each sticker appears in the generator's training
#                 mix, against once for each garment (default 3)
#   DISTINCT_WEIGHT, FASHION_DISTINCT  the same for gen-mix-distinct.ts (4
#                 and 3000)
# Outputs (tensor streams; look at them with ts-cat):
#   $(DATA)/emoji.ts        every fully-qualified emoji: id, image, text, group, subgroup
#   $(DATA)/fashion.ts      the 60,000 training images: id, image, label, text
#   $(DATA)/fashion-test.ts the 10,000 test images (evaluation only)
#   $(DATA)/clip-pairs.ts   the CLIP's image+caption pairs, shuffled
#   $(DATA)/gen-images.ts   the generator's collection (no captions used)
#   $(DATA)/gen-mix.ts      the generator's training images, weighted and shuffled
#   $(DATA)/emoji-gen-distinct.ts  its stickers less their skin-tone variants
#   $(DATA)/gen-mix-distinct.ts  a training mix of those and fewer garments
#   $(DATA)/heldout-images.ts  200 stickers and 200 garments from the CLIP's side
include $(dir $(lastword $(MAKEFILE_LIST)))common.mk
DATA ?= work/data
IMAGE_SIZE ?= 32
CLIP_PART ?= 1
GEN_PART ?= 1
FASHION_CLIP ?= 5000
FASHION_GEN ?= 6000
EMOJI_WEIGHT ?= 3
DISTINCT_WEIGHT ?= 4
FASHION_DISTINCT ?= 3000
SPLIT_SEED ?= 1
EMOJI_COUNT ?=
FASHION_COUNT ?=
EMOJI_FONT ?= /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
EMOJI_NAMES ?= /usr/share/unicode/emoji/emoji-test.txt
FASHION_DIR ?= /usr/share/datasets/fashion-mnist
# Captions: three per sticker (every template), one per garment (a template
# drawn per image).
EMOJI_TEMPLATES := -t '{text}' -t 'a sticker of {text}' -t '{text}, {subgroup}'
FASHION_TEMPLATES := -t 'a photo of a {text}' -t 'a {text}' -t '{text}' -t 'a picture of a {text}, clothing'

DATASET_FILES := $(addprefix $(DATA)/,emoji.ts fashion.ts fashion-test.ts emoji-clip.ts emoji-gen.ts \
                   fashion-clip.ts fashion-gen.ts clip-pairs.ts gen-images.ts gen-mix.ts heldout-images.ts \
                   emoji-gen-distinct.ts gen-mix-distinct.ts)
$(DATASET_FILES): SHELL := $(knnd_shell)
$(DATASET_FILES): .SHELLFLAGS := $(knnd_shellflags)

$(DATA)/emoji.ts: $(EMOJI_FONT) $(EMOJI_NAMES)
	@mkdir -p $(@D)
	$(call knnd_atomic,$(call knnd_tool,emoji-read) --font $(EMOJI_FONT) --names $(EMOJI_NAMES) --size $(IMAGE_SIZE) $(if $(EMOJI_COUNT),-n $(EMOJI_COUNT)))

$(DATA)/fashion.ts: $(FASHION_DIR)/train-images-idx3-ubyte.gz
	@mkdir -p $(@D)
	$(call knnd_atomic,$(call knnd_tool,idx-read) $(if $(FASHION_COUNT),-n $(FASHION_COUNT)) $<)

$(DATA)/fashion-test.ts: $(FASHION_DIR)/t10k-images-idx3-ubyte.gz
	@mkdir -p $(@D)
	$(call knnd_atomic,$(call knnd_tool,idx-read) $(if $(FASHION_COUNT),-n $(FASHION_COUNT)) $<)

$(DATA)/emoji-clip.ts $(DATA)/emoji-gen.ts &: $(DATA)/emoji.ts
	$(call knnd_tool,ts-split) --key id --seed $(SPLIT_SEED) \
	  -o $(DATA)/emoji-clip.ts:$(CLIP_PART) -o $(DATA)/emoji-gen.ts:$(GEN_PART) $<

$(DATA)/fashion-clip.ts $(DATA)/fashion-gen.ts &: $(DATA)/fashion.ts
	$(call knnd_tool,ts-split) --key id --seed $(SPLIT_SEED) \
	  -o $(DATA)/fashion-clip.ts:$(CLIP_PART) -o $(DATA)/fashion-gen.ts:$(GEN_PART) $<

$(DATA)/clip-pairs.ts: $(DATA)/emoji-clip.ts $(DATA)/fashion-clip.ts
	$(call knnd_atomic,{ $(call knnd_tool,ts-caption) --all $(EMOJI_TEMPLATES) $(DATA)/emoji-clip.ts; \
	  $(call knnd_tool,ts-head) -n $(FASHION_CLIP) $(DATA)/fashion-clip.ts \
	  | $(call knnd_tool,ts-caption) --seed $(SPLIT_SEED) $(FASHION_TEMPLATES); } \
	  | $(call knnd_tool,ts-shuffle) --seed $(SPLIT_SEED))

$(DATA)/gen-images.ts: $(DATA)/emoji-gen.ts $(DATA)/fashion-gen.ts
	$(call knnd_atomic,cat $(DATA)/emoji-gen.ts; $(call knnd_tool,ts-head) -n $(FASHION_GEN) $(DATA)/fashion-gen.ts)

# $(call gen_mix,STICKERS,WEIGHT,GARMENTS): each sticker WEIGHT times and
# the first GARMENTS garments, shuffled.
gen_mix = $(call knnd_atomic,{ for i in $$(seq $(2)); do cat $(1); done; \
  $(call knnd_tool,ts-head) -n $(3) $(DATA)/fashion-gen.ts; } | $(call knnd_tool,ts-shuffle) --seed $(SPLIT_SEED))

$(DATA)/gen-mix.ts: $(DATA)/emoji-gen.ts $(DATA)/fashion-gen.ts
	$(call gen_mix,$<,$(EMOJI_WEIGHT),$(FASHION_GEN))

# Skin-tone variants are one drawing in other colours (half the stickers):
# without them each distinct drawing comes round more often.
$(DATA)/emoji-gen-distinct.ts: $(DATA)/emoji-gen.ts
	$(call knnd_atomic,$(call knnd_tool,ts-cat) --full $< | awk '!/"text":"[^"]*skin tone/' | $(call knnd_tool,ts-pack))

$(DATA)/gen-mix-distinct.ts: $(DATA)/emoji-gen-distinct.ts $(DATA)/fashion-gen.ts
	$(call gen_mix,$<,$(DISTINCT_WEIGHT),$(FASHION_DISTINCT))

$(DATA)/heldout-images.ts: $(DATA)/emoji-clip.ts $(DATA)/fashion-clip.ts
	$(call knnd_atomic,$(call knnd_tool,ts-head) -n 200 $(DATA)/emoji-clip.ts; $(call knnd_tool,ts-head) -n 200 $(DATA)/fashion-clip.ts)
