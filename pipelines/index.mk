# index: a collection of images -> clip-embed --image -> knn-query build.
#   INDEX_IMAGES   the collection: a tensor stream of image records
#   CLIP_MODEL     the CLIP checkpoint
#   WORK           output folder (default work)
#   INDEX          the index folder (default $(WORK)/index)
#   EMBED_FLAGS    extra clip-embed options (e.g. --batch 64 --progress)
# Outputs: $(WORK)/collection.emb.ts (the images with their 'emb') and the
# index, whose manifest.msgpack (written last) stands for the whole folder.
include $(dir $(lastword $(MAKEFILE_LIST)))common.mk
WORK ?= work
INDEX ?= $(WORK)/index
EMBED_FLAGS ?=

$(WORK)/collection.emb.ts $(INDEX)/manifest.msgpack: SHELL := $(knnd_shell)
$(WORK)/collection.emb.ts $(INDEX)/manifest.msgpack: .SHELLFLAGS := $(knnd_shellflags)

$(WORK)/collection.emb.ts: $(INDEX_IMAGES) $(CLIP_MODEL)
	@mkdir -p $(@D)
	$(call knnd_atomic,$(call knnd_tool,clip-embed) -m $(CLIP_MODEL) --image $(EMBED_FLAGS) $(INDEX_IMAGES))

# knn-query build writes the folder aside and renames it into place.
$(INDEX)/manifest.msgpack: $(WORK)/collection.emb.ts
	$(call knnd_tool,knn-query) build --index $(INDEX) $<
