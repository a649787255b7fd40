# sample: prompts -> clip-embed --text -> knn-query search -> diffuse sample
#         -> vq-decode -> img-write (the pipe is sample.sh): one PNG per
#         sample and a contact sheet captioned with the prompts.
#   PROMPTS        a text file, one prompt per line
#   SAMPLES        samples per prompt, one row of the sheet (default 4)
#   CLIP_MODEL, INDEX, DIFFUSE_MODEL, VQ_MODEL
#   SAMPLE_FLAGS   diffuse sample options (--seed, --guidance, --truncation,
#                  --steps, -k ...)
#   OUT_DIR        output folder (default $(WORK)/samples)
# Outputs: $(OUT_DIR)/samples.ts (prompt, emb, knn, tokens, image),
# $(OUT_DIR)/png/*.png and $(OUT_DIR)/sheet.png.
include $(dir $(lastword $(MAKEFILE_LIST)))common.mk
WORK ?= work
INDEX ?= $(WORK)/index
SAMPLES ?= 4
K ?= 10
SAMPLE_FLAGS ?=
OUT_DIR ?= $(WORK)/samples

$(OUT_DIR)/sheet.png $(OUT_DIR)/samples.ts &: $(PROMPTS) $(CLIP_MODEL) $(INDEX)/manifest.msgpack $(DIFFUSE_MODEL) $(VQ_MODEL)
	SAMPLES=$(SAMPLES) K=$(K) $(call knnd_script,sample.sh) $(CLIP_MODEL) $(INDEX) $(DIFFUSE_MODEL) $(VQ_MODEL) \
	  $(PROMPTS) $(OUT_DIR) $(SAMPLE_FLAGS)
