# train: images -> clip-embed --image -> knn-query search --exclude-self
#        -> vq-encode -> diffuse train.
# Each image is conditioned on its own CLIP embedding and on the embeddings
# of its k nearest neighbours in the index (never itself); the generator
# never sees a caption.
#   TRAIN_IMAGES   the training images (a tensor stream; repeat or shuffle
#                  it beforehand to weigh collections, e.g. with ts-shuffle)
#   CLIP_MODEL, INDEX (from index.mk), VQ_MODEL (a vq-train or taming VQGAN)
#   DIFFUSE_MODEL  the checkpoint to write (default $(WORK)/diffuse.safetensors)
#   K              neighbours (default 10)
#   DIFFUSE_TRAIN_FLAGS  model and training options of diffuse train
#   VQ_ENCODE_FLAGS      e.g. --resize 32
# Outputs: $(WORK)/train.ts (tokens, emb, knn per image: inspect it with
# ts-cat) and DIFFUSE_MODEL. The run checkpoints in run/ beside it, and an
# interrupted `make` resumes it (common.mk).
include $(dir $(lastword $(MAKEFILE_LIST)))common.mk
WORK ?= work
INDEX ?= $(WORK)/index
DIFFUSE_MODEL ?= $(WORK)/diffuse.safetensors
K ?= 10
DIFFUSE_TRAIN_FLAGS ?=
VQ_ENCODE_FLAGS ?=

$(WORK)/train.ts: SHELL := $(knnd_shell)
$(WORK)/train.ts: .SHELLFLAGS := $(knnd_shellflags)
$(WORK)/train.ts: $(TRAIN_IMAGES) $(CLIP_MODEL) $(INDEX)/manifest.msgpack $(VQ_MODEL)
	@mkdir -p $(@D)
	$(call knnd_atomic,$(call knnd_tool,clip-embed) -m $(CLIP_MODEL) --image $(EMBED_FLAGS) $(TRAIN_IMAGES) \
	  | $(call knnd_tool,knn-query) search --index $(INDEX) -k $(K) --exclude-self \
	  | $(call knnd_tool,vq-encode) -m $(VQ_MODEL) $(VQ_ENCODE_FLAGS))

$(DIFFUSE_MODEL): $(WORK)/train.ts
	$(call knnd_tool,diffuse) train -m $(knnd_run) $(knnd_resume) $(DIFFUSE_TRAIN_FLAGS) $<
	$(knnd_publish)
