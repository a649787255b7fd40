# CLIP image embeddings of every image under IMAGES_DIR, in sorted path
# order, as one tensor stream with path, id, mode, image and emb fields.
# A failure anywhere in the pipe (pipefail) leaves no output behind.
#   IMAGES_DIR   folder of .png/.ppm/.pgm files (searched recursively)
#   CLIP_MODEL   a CLIP checkpoint (OpenAI/open_clip or Hugging Face naming)
#   OUT          output folder (default: .)
#   KNND_BIN     where the tools are (default: on PATH)
#   EMBED_FLAGS  extra clip-embed options, e.g. --batch 64 --progress
OUT ?= .
KNND_BIN ?=
EMBED_FLAGS ?=
knnd_tool = $(if $(KNND_BIN),$(KNND_BIN)/$(1),$(1))
EMBED_IMAGES := $(shell find $(IMAGES_DIR) -type f \( -name '*.png' -o -name '*.ppm' -o -name '*.pgm' \) 2>/dev/null | sort)

$(OUT)/images.emb.ts: $(EMBED_IMAGES) $(CLIP_MODEL)
	@mkdir -p $(OUT)
	bash -o pipefail -c "find $(IMAGES_DIR) -type f \( -name '*.png' -o -name '*.ppm' -o -name '*.pgm' \) | sort \
	  | $(call knnd_tool,img-read) --keep-alpha \
	  | $(call knnd_tool,clip-embed) --model $(CLIP_MODEL) --image $(EMBED_FLAGS) > $@.tmp" || { rm -f $@.tmp; exit 1; }
	mv $@.tmp $@
