# The main job: generated stickers and clothes for a list of prompts, from
# the committed default models (models/) on freshly prepared data.
#   make -f pipelines/demo.mk KNND_BIN=bin     (or simply `make demo`)
# Output: work/demo/sheet.png (one row per prompt) and work/demo/png/.
include $(dir $(lastword $(MAKEFILE_LIST)))datasets.mk
DEFAULT_MODELS ?= models
CLIP_MODEL := $(DEFAULT_MODELS)/clip.safetensors
VQ_MODEL := $(DEFAULT_MODELS)/vqgan.safetensors
DIFFUSE_MODEL := $(DEFAULT_MODELS)/diffuse.safetensors
WORK ?= work/demo
INDEX_IMAGES := $(DATA)/gen-images.ts
include $(dir $(lastword $(MAKEFILE_LIST)))index.mk
PROMPTS ?= $(dir $(lastword $(MAKEFILE_LIST)))demo-prompts.txt
OUT_DIR := $(WORK)
SAMPLES ?= 4
SAMPLE_FLAGS ?= --seed 1
include $(dir $(lastword $(MAKEFILE_LIST)))sample.mk

.PHONY: demo
demo: $(OUT_DIR)/sheet.png
	@echo "demo: $(OUT_DIR)/sheet.png ($(SAMPLES) samples per prompt of $(PROMPTS))"
.DEFAULT_GOAL := demo
