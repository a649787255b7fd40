/* Normalisation layers with a learned per-channel affine ("<prefix>.weight",
 * "<prefix>.bias"): layer norm over the last dimension of [N, C] rows, and
 * group norm over channel groups of [B, C, HW] images. */
#ifndef KNND_NN_LAYERS_NORM_H
#define KNND_NN_LAYERS_NORM_H

#include "nn/arena.h"
#include "nn/params.h"

struct nn_layernorm {
	int weight, bias;
	int dim;
	float eps;
};

struct nn_layernorm_act {
	const float *inp;
	float *out, *mean, *rstd; /* mean and rstd: [N] */
	int N;
};

void nn_layernorm_init(struct nn_layernorm *l, struct nn_params *p, const char *prefix, int dim, float eps);
float *nn_layernorm_forward(const struct nn_layernorm *l, const struct nn_params *p, struct nn_arena *a,
                            struct nn_layernorm_act *act, const float *inp, int N);
void nn_layernorm_backward(const struct nn_layernorm *l, const struct nn_params *p,
                           const struct nn_layernorm_act *act, float *dinp, const float *dout);

struct nn_groupnorm {
	int weight, bias;
	int channels, groups;
	float eps;
};

struct nn_groupnorm_act {
	const float *inp;
	float *out, *mean, *rstd; /* mean and rstd: [B, groups] */
	int B, HW;
};

void nn_groupnorm_init(struct nn_groupnorm *g, struct nn_params *p, const char *prefix, int channels,
                       int groups, float eps);
float *nn_groupnorm_forward(const struct nn_groupnorm *g, const struct nn_params *p, struct nn_arena *a,
                            struct nn_groupnorm_act *act, const float *inp, int B, int HW);
void nn_groupnorm_backward(const struct nn_groupnorm *g, const struct nn_params *p,
                           const struct nn_groupnorm_act *act, float *dinp, const float *dout);

#endif
