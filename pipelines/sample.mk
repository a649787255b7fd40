# sample: prompts -> clip-embed --text -> knn-query search -> diffuse sample
#         -> vq-decode -> img-write (one PNG per sample and a contact sheet
#         captioned with the prompts).
#   PROMPTS        a text file, one prompt per line
#   SAMPLES        samples per prompt (default 4)
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
SHEET_COLS ?= $(SAMPLES)
OUT_DIR ?= $(WORK)/samples

$(OUT_DIR)/samples.ts $(OUT_DIR)/sheet.png: SHELL := $(knnd_shell)
$(OUT_DIR)/samples.ts $(OUT_DIR)/sheet.png: .SHELLFLAGS := $(knnd_shellflags)

# Every prompt SAMPLES times in a row: one row of the sheet per prompt.
$(OUT_DIR)/samples.ts: $(PROMPTS) $(CLIP_MODEL) $(INDEX)/manifest.msgpack $(DIFFUSE_MODEL) $(VQ_MODEL)
	@mkdir -p $(@D)
	$(call knnd_atomic,awk 'NF { for (i = 0; i < $(SAMPLES); i++) print }' $(PROMPTS) \
	  | $(call knnd_tool,clip-embed) -m $(CLIP_MODEL) --text --lines \
	  | $(call knnd_tool,knn-query) search --index $(INDEX) -k $(K) \
	  | $(call knnd_tool,diffuse) sample -m $(DIFFUSE_MODEL) $(SAMPLE_FLAGS) \
	  | $(call knnd_tool,vq-decode) -m $(VQ_MODEL))

$(OUT_DIR)/sheet.png: $(OUT_DIR)/samples.ts
	rm -rf $(OUT_DIR)/png
	$(call knnd_tool,img-write) --dir $(OUT_DIR)/png $<
	$(call knnd_tool,img-write) --sheet $@ --cols $(SHEET_COLS) --caption text $<
