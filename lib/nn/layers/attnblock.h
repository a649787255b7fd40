/* Self-attention over the pixels of an image, taming's AttnBlock:
 *
 *     h   = norm(x)                               group norm
 *     q, k, v = 1x1 convolutions of h             "q", "k", "v"
 *     a   = softmax(q^T k / sqrt(C / heads)) v    over the H*W keys
 *     out = x + proj_out(a)                       1x1 convolution
 *
 * Sublayers use taming's names: "<prefix>.norm", "<prefix>.{q,k,v,proj_out}"
 * with convolution weights [C, C, 1, 1] and biases [C]. taming has one head
 * (scale C^-0.5); more heads split the channels as the attention op does.
 *
 * The image stays NCHW outside; inside, q, k, v and the attention output
 * are [B, HW, C] rows, the layout of the fused attention op (nn/ops.h),
 * which keeps one log-sum-exp per query instead of the HW x HW scores. The
 * transposes cost nothing: they are folded into the projections' matrix
 * products. */
#ifndef KNND_NN_LAYERS_ATTNBLOCK_H
#define KNND_NN_LAYERS_ATTNBLOCK_H

#include "nn/arena.h"
#include "nn/layers/conv.h"
#include "nn/layers/norm.h"
#include "nn/ops.h"
#include "nn/params.h"

struct nn_attnblock {
	struct nn_groupnorm norm;
	struct nn_conv q, k, v, proj_out; /* 1x1; only their parameters are used */
	int channels, heads;
};

struct nn_attnblock_act {
	const float *x;
	struct nn_groupnorm_act norm;
	float *q, *k, *v;  /* [B, HW, C] */
	float *attn;       /* the attention output, proj_out's input: [B, HW, C] */
	float *lse;        /* [B, heads, HW] */
	float *ones;       /* B*HW ones, for the biases' outer products */
	float *out;        /* [B, C, HW] */
	struct nn_attention geom;
	int B, HW;
};

/* channels must be a multiple of groups and of heads. */
void nn_attnblock_init(struct nn_attnblock *b, struct nn_params *p, const char *prefix, int channels,
                       int groups, float eps, int heads);

/* x [B, C, HW] -> out [B, C, HW] from the arena. */
float *nn_attnblock_forward(const struct nn_attnblock *b, const struct nn_params *p, struct nn_arena *a,
                            struct nn_attnblock_act *act, const float *x, int B, int HW);

/* Accumulates into dx (NULL: not needed) and the parameter gradients;
 * scratch gradients come from the arena. */
void nn_attnblock_backward(const struct nn_attnblock *b, const struct nn_params *p, struct nn_arena *a,
                           const struct nn_attnblock_act *act, float *dx, const float *dout);

#endif
