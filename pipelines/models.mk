# The default models, reproduced from the datasets: a VQGAN and the
# discrete kNN diffusion model on the generator's side of the split (images
# only), and a CLIP on the CLIP's side (images with captions). Every run is
# seeded, and the engine gives the same bytes for any thread count, so the
# result is the same files on any machine.
#   MODELS   output folder (default work/models); runs in progress live in
#            $(MODELS)/run, and an interrupted `make` resumes them
#   *_TRAIN_FLAGS  the trainers' options (defaults: the committed models)
# `make default-models` in the top folder runs this and copies the three
# checkpoints into models/.
include $(dir $(lastword $(MAKEFILE_LIST)))datasets.mk
MODELS ?= work/models
WORK ?= $(MODELS)/work
VQ_TRAIN_FLAGS ?= --resize $(IMAGE_SIZE) -f 4 --ch 32 --res-blocks 1 --codes 512 --embed-dim 32 \
                  --ema-codebook --restart-after 50 --lr 1e-3 --batch 16 --steps 4000 --save-every 500 --seed 1
CLIP_TRAIN_FLAGS ?= --image-size $(IMAGE_SIZE) --patch 4 --vision-width 128 --vision-layers 4 \
                    --text-width 128 --text-layers 4 --context 32 --embed-dim 128 --merges 1000 \
                    --batch 128 --steps 9000 --lr 5e-4 --save-every 250 --seed 1
DIFFUSE_TRAIN_FLAGS ?= --codes 512 --depth 6 --width 256 --heads 4 --cond-drop 0.1 --query-noise 0.75 \
                       --lr 8e-4 --batch 32 --steps 9000 --save-every 500 --seed 1

CLIP_MODEL := $(MODELS)/clip.safetensors
VQ_MODEL := $(MODELS)/vqgan.safetensors
DIFFUSE_MODEL := $(MODELS)/diffuse.safetensors
INDEX_IMAGES := $(DATA)/gen-images.ts
# The generator trains on distinct drawings; the VQGAN on the full mix.
TRAIN_IMAGES := $(DATA)/gen-mix-distinct.ts
VQ_IMAGES := $(DATA)/gen-mix.ts
VQ_ENCODE_FLAGS := --resize $(IMAGE_SIZE)
include $(dir $(lastword $(MAKEFILE_LIST)))index.mk
include $(dir $(lastword $(MAKEFILE_LIST)))train.mk

# Held out from the VQGAN: stickers and garments of the CLIP's side.
$(VQ_MODEL): $(VQ_IMAGES) $(DATA)/heldout-images.ts
	$(call knnd_tool,vq-train) -o $(knnd_run) $(knnd_resume) $(VQ_TRAIN_FLAGS) --val $(DATA)/heldout-images.ts $<
	$(knnd_publish)

# Held out from the CLIP: the generator's stickers, named (zero-shot retrieval).
$(CLIP_MODEL): $(DATA)/clip-pairs.ts $(DATA)/emoji-gen.ts
	$(call knnd_tool,clip-train) -o $(knnd_run) $(knnd_resume) $(CLIP_TRAIN_FLAGS) --val $(DATA)/emoji-gen.ts $<
	$(knnd_publish)

.PHONY: models
models: $(VQ_MODEL) $(CLIP_MODEL) $(DIFFUSE_MODEL)
.DEFAULT_GOAL := models
