/* Training a CLIP (what clip-train runs): both towers' forward passes with
 * their activations kept, the contrastive loss, and the backward passes,
 * on the op interface; the model is exactly clip_model's, so a trained
 * checkpoint loads in clip-embed like any other.
 *
 * A step, for images pixels [B, 3, R, R] (CLIP-normalised) and token ids
 * [B, context] whose captions fall into groups (equal captions, equal
 * group):
 *
 *   img = clip image tower (patch embedding as one product over flattened
 *         patches, class token, positions, pre-LN, blocks, post-LN of the
 *         class row, projection)
 *   txt = clip text tower (token + position embedding, causal blocks over
 *         the positions up to the batch's last end token, final LN of each
 *         end row, projection)
 *   loss = symmetric InfoNCE of s * cos(img_i, txt_j), s = exp(logit_scale)
 *          with logit_scale clamped to ln 100; the targets of row i are
 *          uniform over the items j of i's group (equal captions, or
 *          captions of one image, are not negatives of each other), and
 *          likewise for columns
 *   backward through both towers; AdamW step (weight decay on matrices
 *   only), warm-up + cosine, clipping.
 *
 * Everything runs in one arena per step; a step allocates nothing once the
 * first has set the arena's size. */
#ifndef KNND_CLIP_CLIP_TRAIN_H
#define KNND_CLIP_CLIP_TRAIN_H

#include <stdint.h>

#include "clip/clip_model.h"
#include "nn/arena.h"
#include "nn/optim.h"

/* open_clip's initialisation with Philox seed `seed`: token embedding
 * N(0, 0.02), text positions N(0, 0.01), class token and image positions
 * N(0, width^-0.5), patch embedding U(+-fan_in^-0.5), attention and MLP
 * weights N(0, width^-0.5) (q, k, v), N(0, width^-0.5 (2 layers)^-0.5)
 * (out_proj, fc2), N(0, (2 width)^-0.5) (fc1), projections N(0,
 * width^-0.5), biases 0, layer-norm gains 1, logit_scale ln(1/0.07). */
void clip_init_random(struct clip_model *m, uint64_t seed);

/* The model's hyperparameters as an open_clip config (JSON, malloc'd), the
 * form clip_config_read finds under the metadata key "open_clip_config". */
char *clip_open_clip_config_json(const struct clip_config *c);

/* Groups of items that are positives of each other: linked when their
 * captions are equal or, where ids is not NULL and both have one, their
 * ids are (one image with several captions), and grouped transitively.
 * group[i] = the smallest index in i's group. */
void clip_caption_groups(const char *const *texts, const char *const *ids, int n, int *group);

/* The loss on raw (unnormalised) features img, txt [B, E] (host) and, when
 * dimg, dtxt are not NULL, its gradients with respect to them and to
 * logit_scale (*dlog_scale; 0 while the scale is clamped). */
double clip_contrastive_loss(const float *img, const float *txt, const int *group, int B, int E,
                             float logit_scale, float *dimg, float *dtxt, float *dlog_scale);

/* Zero-shot retrieval over N pairs of unit features [N, E]: the fraction
 * of texts whose most similar image has an equal caption (text->image),
 * the same for images (image->text), and chance: the mean over items of
 * (items with an equal caption) / N. */
struct clip_retrieval {
	double t2i, i2t, chance;
};
void clip_retrieval_eval(const float *img, const float *txt, const int *group, int N, int E,
                         struct clip_retrieval *r);

struct clip_trainer {
	struct clip_model *m;
	struct nn_optim opt;
	struct nn_arena arena;
	struct nn_block_act *vision_acts, *text_acts;
	/* host scratch, grown to the largest batch */
	int cap;
	float *patches, *img, *txt, *dimg, *dtxt;
	int32_t *ids;
	int *eot;
	float last_logit_scale; /* exp(logit_scale) of the latest step */
};

/* m must be trainable (clip_model_init_trainable). 0 or -1 (errorf). */
int clip_trainer_init(struct clip_trainer *t, struct clip_model *m, const struct nn_optim_config *opt);
void clip_trainer_free(struct clip_trainer *t);

/* Forward and backward for one batch: *loss gets the loss, the parameter
 * gradients get its gradient added. -1 (errorf) for a token id outside
 * the vocabulary. */
int clip_trainer_loss(struct clip_trainer *t, const float *pixels, const int32_t *ids, const int *group, int B,
                      float *loss);

/* clip_trainer_loss, then nn_optim_step and the clamp of logit_scale to
 * [0, ln 100] (open_clip's). Returns the nn_optim_step result or -1. */
int clip_trainer_step(struct clip_trainer *t, const float *pixels, const int32_t *ids, const int *group, int B,
                      float *loss);

/* The features the training forward computes, img, txt [B, E] (host), for
 * checks against clip_encode_image / clip_encode_text. */
int clip_trainer_features(struct clip_trainer *t, const float *pixels, const int32_t *ids, int B, float *img,
                          float *txt);

#endif
