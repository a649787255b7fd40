/* Linear layer: out[N, out] = inp[N, in] W^T + b, with W stored [out, in]
 * (PyTorch's layout) as "<prefix>.weight" and b as "<prefix>.bias". */
#ifndef KNND_NN_LAYERS_LINEAR_H
#define KNND_NN_LAYERS_LINEAR_H

#include "nn/arena.h"
#include "nn/params.h"

struct nn_linear {
	int weight, bias; /* parameter indices; bias is -1 without one */
	int in, out;
};

/* What the backward pass needs: the input, kept by pointer (the caller keeps
 * it alive until backward, which it does anyway as an arena activation). */
struct nn_linear_act {
	const float *inp;
	float *out;
	int N;
};

void nn_linear_init(struct nn_linear *l, struct nn_params *p, const char *prefix, int in, int out,
                    int with_bias);

/* out [N, l->out] comes from the arena; also returned. */
float *nn_linear_forward(const struct nn_linear *l, const struct nn_params *p, struct nn_arena *a,
                         struct nn_linear_act *act, const float *inp, int N);

/* Accumulates into dinp [N, l->in] (NULL: not needed) and the parameter
 * gradients. */
void nn_linear_backward(const struct nn_linear *l, const struct nn_params *p,
                        const struct nn_linear_act *act, float *dinp, const float *dout);

#endif
