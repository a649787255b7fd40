#include "nn/layers/linear.h"

#include "nn/layers/layer.h"
#include "nn/ops.h"

void nn_linear_init(struct nn_linear *l, struct nn_params *p, const char *prefix, int in, int out,
                    int with_bias)
{
	l->in = in;
	l->out = out;
	l->weight = nn_layer_param(p, prefix, "weight", 2, (int64_t[]){out, in});
	l->bias = with_bias ? nn_layer_param(p, prefix, "bias", 1, (int64_t[]){out}) : -1;
}

float *nn_linear_forward(const struct nn_linear *l, const struct nn_params *p, struct nn_arena *a,
                         struct nn_linear_act *act, const float *inp, int N)
{
	act->inp = inp;
	act->N = N;
	act->out = nn_arena_floats(a, (size_t)N * l->out);
	nn->linear_forward(act->out, inp, nn_param(p, l->weight), l->bias < 0 ? NULL : nn_param(p, l->bias),
	                   N, l->in, l->out);
	return act->out;
}

void nn_linear_backward(const struct nn_linear *l, const struct nn_params *p,
                        const struct nn_linear_act *act, float *dinp, const float *dout)
{
	nn->linear_backward(dinp, nn_param_grad(p, l->weight), l->bias < 0 ? NULL : nn_param_grad(p, l->bias),
	                    dout, act->inp, nn_param(p, l->weight), act->N, l->in, l->out);
}
