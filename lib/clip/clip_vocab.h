/* The text tokenizer that a CLIP checkpoint carries with it: clip-train
 * stores the merges text of the BPE it learned from its captions under the
 * safetensors metadata key CLIP_TOKENIZER_METADATA_KEY (text/clip_tokenizer.h),
 * so that such a model needs no vocabulary file beside it. */
#ifndef KNND_CLIP_CLIP_VOCAB_H
#define KNND_CLIP_CLIP_VOCAB_H

#include "text/clip_tokenizer.h"

/* Reads the tokenizer from the checkpoint at path into *out. Returns 1,
 * 0 (*out NULL) if the checkpoint carries none, or -1 (errorf naming the
 * file, and the metadata key for bad merges text). */
int clip_checkpoint_tokenizer(const char *path, struct clip_tokenizer **out);

#endif
