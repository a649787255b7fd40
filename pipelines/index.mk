# index: a collection of images -> clip-embed --image -> knn-query build
# (the pipe is index.sh).
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

$(INDEX)/manifest.msgpack $(WORK)/collection.emb.ts &: $(INDEX_IMAGES) $(CLIP_MODEL)
	@mkdir -p $(WORK)
	$(call knnd_script,index.sh) $(CLIP_MODEL) $(INDEX_IMAGES) $(WORK)/collection.emb.ts $(INDEX) $(EMBED_FLAGS)
