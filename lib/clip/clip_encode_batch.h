/* CLIP features of a batch of records (stream/record_batch.h): what a tool
 * that runs CLIP over a stream does per batch, in one place, so that
 * clip-embed and clip-score encode records the same way.
 *
 * A record that cannot be encoded (no image, a bad image, no text) is
 * marked with record_batch_fail, and the call returns -1 with the message
 * of the first such record, naming where it came from. */
#ifndef KNND_CLIP_CLIP_ENCODE_BATCH_H
#define KNND_CLIP_CLIP_ENCODE_BATCH_H

#include <stdint.h>

#include "clip/clip_model.h"
#include "stream/record_batch.h"
#include "text/clip_tokenizer.h"

/* features [b->n, embed] (not normalised) of the images in field `key` of
 * the batch's records: uint8 [H,W,C] as image_from_record takes them,
 * preprocessed as CLIP's reference does (a 'mode' of P or 1 resizes with
 * NEAREST, as Pillow does for those), one image per thread. pixels holds
 * [b->n, 3, R, R] floats. Returns 0 or -1 (errorf). */
int clip_encode_image_batch(struct clip_model *m, struct record_batch *b, const char *key, float *pixels,
                            float *features);

/* features [b->n, embed] (not normalised) of the string field `key` of the
 * batch's records; ids holds [b->n, context]. Returns 0 or -1 (errorf; also
 * for a token id outside the model's vocabulary). */
int clip_encode_text_batch(struct clip_model *m, struct clip_tokenizer *tok, struct record_batch *b,
                           const char *key, int32_t *ids, float *features);

/* The tokenizer for the text tower of the model at model_path: vocab_path
 * when given, else the one the checkpoint carries (clip-train's), else
 * $KNND_CLIP_VOCAB, else bpe_simple_vocab_16e6.txt.gz or vocab.json beside
 * the model. The environment comes after the model's own, the only one that
 * model was trained with. NULL (errorf) if there is none, it does not load,
 * or it has more tokens than cfg's vocabulary. */
struct clip_tokenizer *clip_tokenizer_for_model(const char *model_path, const char *vocab_path,
                                                const struct clip_config *cfg);

#endif
