/* The judge: a small convolutional classifier trained only to evaluate
 * generated images (issue 9). Its penultimate features are the space of a
 * Fréchet distance; its predictions measure how often a sample shows the
 * class it was prompted with. It never shares weights with the CLIP that
 * conditions the generator.
 *
 *   image [C, S, S] in [-1, 1]
 *     -> stem   3x3 conv C -> W, SiLU                        S x S
 *     -> down1  3x3 conv stride 2, W -> 2W                   S/2
 *     -> res1   residual block (nn/layers/resblock.h), 2W
 *     -> down2  3x3 conv stride 2, 2W -> 4W                  S/4
 *     -> res2   residual block, 4W
 *     -> average pool to a P x P grid (P = 1: global)        [4W, P, P]
 *     -> feat   linear 4W*P*P -> F, SiLU: the features        [F]
 *     -> head   linear F -> N: the logits                     [N]
 *
 * W must be a multiple of 16 (the residual blocks' group norms have 32
 * groups), and P must divide S' = ceil(S/4), the side of res2's output. A
 * pool grid finer than 1 x 1 keeps where things are in the image, which
 * tells garments apart that global pooling confuses. Written once on the op interface (nn/ops.h), so it runs on any
 * backend. Tensor names and the config: formats/judge-checkpoint.md. */
#ifndef KNND_JUDGE_JUDGE_MODEL_H
#define KNND_JUDGE_JUDGE_MODEL_H

#include <stdint.h>

#include "image/image.h"
#include "nn/arena.h"
#include "nn/layers/conv.h"
#include "nn/layers/linear.h"
#include "nn/layers/resblock.h"
#include "nn/params.h"

struct judge_config {
	int classes;    /* N */
	int channels;   /* 1 (gray) or 3 (RGB) */
	int image_size; /* S: every image is resized to S x S */
	int width;      /* W */
	int features;   /* F */
	int pool;       /* P */
};

/* From / to the JSON of the checkpoint's "config" metadata (other keys are
 * ignored on reading). */
int judge_config_from_json(struct judge_config *c, const char *json);
char *judge_config_json(const struct judge_config *c);
/* The side of res2's output, S' = ceil(S/4). */
int judge_pool_side(const struct judge_config *c);
/* 0 if this code can build c, else -1 (errorf). */
int judge_config_check(const struct judge_config *c);

/* What the backward pass needs from the forward pass. */
struct judge_act {
	struct nn_conv_act stem, down1, down2;
	struct nn_resblock_act res1, res2;
	struct nn_linear_act feat, head;
	float *stem_out;  /* silu(stem) */
	float *pooled;    /* [B, 4W, P, P] */
	float *features;  /* silu(feat): [B, F] */
	int B, side;      /* side: of res2's output, S' */
};

struct judge {
	struct judge_config cfg;
	struct nn_params params;
	struct nn_conv stem, down1, down2;
	struct nn_resblock res1, res2;
	struct nn_linear feat, head;
	struct judge_act act;
};

/* Registers and allocates the parameters (zeroed; with gradients if
 * with_grad). c must pass judge_config_check. */
void judge_init(struct judge *m, const struct judge_config *c, int with_grad);
/* PyTorch's default initialisation (uniform +-1/sqrt(fan_in) for weights
 * and biases), unit norms; deterministic in seed. */
void judge_init_random(struct judge *m, uint64_t seed);
/* The config from the metadata, then the weights. 0 or -1 (errorf naming
 * the file). */
int judge_load(struct judge *m, const char *path, int with_grad);
void judge_free(struct judge *m);

/* x [B, C, S, S] in backend memory -> logits [B, N] from the arena;
 * m->act.features holds the features [B, F] until the arena is reset. */
float *judge_forward(struct judge *m, struct nn_arena *a, const float *x, int B);
/* Accumulates the parameter gradients from dlogits [B, N]. */
void judge_backward(struct judge *m, struct nn_arena *a, const float *dlogits);

/* Host in and out, for evaluation: x [B, C, S, S] -> prob [B, N] (softmax)
 * and feat [B, F] (either may be NULL). Resets the arena. */
void judge_predict(struct judge *m, struct nn_arena *a, const float *x, int B, float *prob, float *feat);

/* The model input of an image of any size: [C, S, S] in [-1, 1], made as
 * vq-train makes its inputs (alpha onto white, gray <-> RGB, Pillow's
 * bicubic resize; vqgan/vqgan_io.h). 0 or -1 (errorf). */
int judge_input_from_image(const struct judge_config *c, const struct image *img, float *out);

/* The index of the largest of n values (the first of ties). */
int judge_argmax(const float *x, int n);

#endif
