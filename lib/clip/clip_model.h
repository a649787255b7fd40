/* CLIP's two towers, for inference, written against the op interface.
 *
 * Image: the image is cut into patch x patch squares, each projected to the
 * vision width (conv1, which has no bias: one matrix product over the
 * flattened patches), a class token is put in front, the positional
 * embedding added, then pre-LN, the transformer blocks, post-LN of the class
 * token, and the projection to the embedding.
 *
 * Text: token plus positional embedding, causal transformer blocks, the
 * final LN, the row of the first end-of-text token (argmax of the ids, the
 * largest id), and the projection.
 *
 * Only the pooled row of each sequence leaves a tower, so the last block
 * computes its query, residual and MLP for that row alone (keys and values
 * still for every row), and the text tower stops at the batch's last
 * end-of-text token.
 *
 * Parameters use the Hugging Face names (clip_config.h maps the OpenAI
 * naming to them); the transformer blocks are nn_block (nn/layers). The
 * features returned are the projections before normalisation, as the
 * reference's encode_image / encode_text give them. */
#ifndef KNND_CLIP_CLIP_MODEL_H
#define KNND_CLIP_CLIP_MODEL_H

#include <stdint.h>

#include "clip/clip_config.h"
#include "nn/arena.h"
#include "nn/layers/norm.h"
#include "nn/layers/transformer.h"
#include "nn/params.h"

struct clip_vision {
	int patch_embedding, class_embedding, position_embedding; /* parameter indices */
	struct nn_layernorm pre_layrnorm, post_layernorm;         /* HF's spelling */
	struct nn_block *layers;
	int projection;                                           /* [embed, width] */
};

struct clip_text {
	int token_embedding, position_embedding;
	struct nn_block *layers;
	struct nn_layernorm final_layer_norm;
	int projection;                                           /* [embed, width] */
};

struct clip_model {
	struct clip_config cfg;
	struct nn_params params;
	struct clip_vision vision;
	struct clip_text text;
	int logit_scale;   /* the stored log scale, a 0-dimensional tensor */
	/* Activations: consecutive blocks alternate between the two, so that
	 * inference holds two blocks' worth, not the whole network's. */
	struct nn_arena arena[2];
	void *host;        /* staging for inputs on their way to the backend */
	size_t host_cap;
};

/* Intermediate values of the first item of a batch, for tests: the model
 * calls fn with names like "image0.ln_pre" or "text0.block1" (the golden
 * file's debug.* names without "debug.") and rows x cols floats in backend
 * memory, valid during the call. With taps the last block runs on every
 * row, so that all of them can be seen. */
struct clip_taps {
	void (*fn)(void *ctx, const char *name, const float *x, int rows, int cols);
	void *ctx;
};

/* Registers the parameters for cfg and allocates them (zeroed); the
 * trainable variant also allocates their gradients (clip_train.h). */
void clip_model_init(struct clip_model *m, const struct clip_config *cfg);
void clip_model_init_trainable(struct clip_model *m, const struct clip_config *cfg);
void clip_model_free(struct clip_model *m);

/* Opens a checkpoint of either naming, reads its config (clip_config_read,
 * with o, which may be NULL) and loads every parameter, upcasting F16/BF16.
 * Returns 0, or -1 with errorf: a missing, extra or mis-shaped tensor is
 * named. m is untouched on failure. */
int clip_model_load(struct clip_model *m, const char *path, const struct clip_config_options *o);

/* Copies every parameter from f (of naming cfg.naming) into m, converting
 * the layout; every tensor in f must be used, except position_ids. */
int clip_model_load_tensors(struct clip_model *m, const struct st_file *f);

/* features[B, embed] (host memory) of images pixels[B, 3, R, R] (host
 * memory, normalised as CLIP's preprocessing leaves them; R = cfg.resolution). */
void clip_encode_image(struct clip_model *m, const float *pixels, int B, float *features,
                       const struct clip_taps *taps);

/* features[B, embed] of token ids[B, cfg.context] (host memory). Positions
 * after the batch's last end-of-text token are not computed: the mask is
 * causal, so they cannot change the pooled rows. Returns 0, or -1 (errorf)
 * if an id is outside the vocabulary. */
int clip_encode_text(struct clip_model *m, const int32_t *ids, int B, float *features,
                     const struct clip_taps *taps);

/* Pixels [B, 3, R, R] (host) -> patches [B * grid * grid, 3 * patch *
 * patch] (host), each row one patch flattened as (channel, y, x): the patch
 * embedding (a convolution with stride = kernel) is then one product with
 * its weight viewed as [width, 3 * patch * patch]. */
void clip_patchify(float *patches, const float *pixels, int B, int grid, int patch);

/* The pooled position of each sequence: the first index of its largest id. */
int clip_eot_index(const int32_t *ids, int context);

/* exp(logit_scale), the factor between cosine similarities and logits. */
float clip_logit_scale(const struct clip_model *m);

/* Scales each of n rows of d floats to unit L2 norm (a zero row stays zero). */
void clip_normalize(float *x, int n, int d);

#endif
