/* The transformer's feed-forward layer: fc2(act(fc1(x))), with sublayers
 * "<prefix>.fc1" [hidden, dim] and "<prefix>.fc2" [dim, hidden] (HF CLIP's
 * names). */
#ifndef KNND_NN_LAYERS_MLP_H
#define KNND_NN_LAYERS_MLP_H

#include "nn/arena.h"
#include "nn/layers/linear.h"
#include "nn/ops.h"
#include "nn/params.h"

struct nn_mlp {
	struct nn_linear fc1, fc2;
	enum nn_act act;
};

struct nn_mlp_act {
	struct nn_linear_act fc1, fc2; /* fc1.out is the activation's input */
	float *hidden;                 /* act(fc1.out), fc2's input */
};

void nn_mlp_init(struct nn_mlp *m, struct nn_params *p, const char *prefix, int dim, int hidden,
                 enum nn_act act);
float *nn_mlp_forward(const struct nn_mlp *m, const struct nn_params *p, struct nn_arena *a,
                      struct nn_mlp_act *act, const float *x, int N);
/* Accumulates into dx [N, dim] (NULL: not needed) and the parameter
 * gradients; scratch gradients come from the arena. */
void nn_mlp_backward(const struct nn_mlp *m, const struct nn_params *p, struct nn_arena *a,
                     const struct nn_mlp_act *act, float *dx, const float *dout);

#endif
