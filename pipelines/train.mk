# train: images -> clip-embed --image -> knn-query search --exclude-self
#        -> vq-encode -> diffuse train (the pipe is train.sh).
# Each image is conditioned on its own CLIP embedding and on the embeddings
# of its K nearest neighbours in the index (never itself); the generator
# never sees a caption.
#   TRAIN_IMAGES   the training images (a tensor stream; repeat or shuffle
#                  it beforehand to weigh collections, e.g. with ts-shuffle)
#   CLIP_MODEL, INDEX (from index.mk), VQ_MODEL (a vq-train or taming VQGAN)
#   DIFFUSE_MODEL  the checkpoint to write (default $(WORK)/diffuse.safetensors)
#   K              neighbours (default 10)
#   DIFFUSE_TRAIN_FLAGS  model and training options of diffuse train
#   VQ_ENCODE_FLAGS      e.g. --resize 32
# Outputs: $(WORK)/train.ts (tokens, emb, knn per image: look at it with
# ts-cat) and DIFFUSE_MODEL. The run checkpoints in run/ beside it, and an
# interrupted `make` resumes it (common.mk).
include $(dir $(lastword $(MAKEFILE_LIST)))common.mk
WORK ?= work
INDEX ?= $(WORK)/index
DIFFUSE_MODEL ?= $(WORK)/diffuse.safetensors
K ?= 10
DIFFUSE_TRAIN_FLAGS ?=
VQ_ENCODE_FLAGS ?=

$(DIFFUSE_MODEL): $(TRAIN_IMAGES) $(CLIP_MODEL) $(INDEX)/manifest.msgpack $(VQ_MODEL)
	@mkdir -p $(WORK)
	K=$(K) VQ_ENCODE_FLAGS='$(VQ_ENCODE_FLAGS)' $(call knnd_script,train.sh) $(CLIP_MODEL) $(INDEX) $(VQ_MODEL) \
	  $(TRAIN_IMAGES) $(WORK)/train.ts $(knnd_run) $(knnd_resume) $(DIFFUSE_TRAIN_FLAGS)
	$(knnd_publish)
