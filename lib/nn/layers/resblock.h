/* Convolutional residual block (taming's and the VQGAN's ResnetBlock):
 *
 *     h = conv1(silu(norm1(x)))
 *     h = conv2(silu(norm2(h)))
 *     out = shortcut(x) + h
 *
 * with group norms of 32 groups, 3x3 convolutions (padding 1), and a 1x1
 * convolution "nin_shortcut" as the shortcut when the channel count changes
 * (identity otherwise). Sublayers: norm1, conv1, norm2, conv2, nin_shortcut. */
#ifndef KNND_NN_LAYERS_RESBLOCK_H
#define KNND_NN_LAYERS_RESBLOCK_H

#include "nn/arena.h"
#include "nn/layers/conv.h"
#include "nn/layers/norm.h"
#include "nn/params.h"

#define NN_RESBLOCK_GROUPS 32

struct nn_resblock {
	struct nn_groupnorm norm1, norm2;
	struct nn_conv conv1, conv2, shortcut;
	int in, out, has_shortcut;
};

struct nn_resblock_act {
	struct nn_groupnorm_act norm1, norm2;
	struct nn_conv_act conv1, conv2, shortcut;
	float *act1, *act2; /* silu(norm1), silu(norm2): the convolutions' inputs */
	float *out;
	int B, H, W;
};

/* in and out must be multiples of NN_RESBLOCK_GROUPS. */
void nn_resblock_init(struct nn_resblock *r, struct nn_params *p, const char *prefix, int in, int out,
                      float eps);
float *nn_resblock_forward(const struct nn_resblock *r, const struct nn_params *p, struct nn_arena *a,
                           struct nn_resblock_act *act, const float *x, int B, int H, int W);
/* Accumulates into dx (NULL: not needed) and the parameter gradients. */
void nn_resblock_backward(const struct nn_resblock *r, const struct nn_params *p, struct nn_arena *a,
                          const struct nn_resblock_act *act, float *dx, const float *dout);

#endif
