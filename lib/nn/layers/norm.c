#include "nn/layers/norm.h"

#include "nn/layers/layer.h"
#include "nn/ops.h"

void nn_layernorm_init(struct nn_layernorm *l, struct nn_params *p, const char *prefix, int dim, float eps)
{
	l->dim = dim;
	l->eps = eps;
	l->weight = nn_layer_param(p, prefix, "weight", 1, (int64_t[]){dim});
	l->bias = nn_layer_param(p, prefix, "bias", 1, (int64_t[]){dim});
}

float *nn_layernorm_forward(const struct nn_layernorm *l, const struct nn_params *p, struct nn_arena *a,
                            struct nn_layernorm_act *act, const float *inp, int N)
{
	act->inp = inp;
	act->N = N;
	act->out = nn_arena_floats(a, (size_t)N * l->dim);
	act->mean = nn_arena_floats(a, N);
	act->rstd = nn_arena_floats(a, N);
	nn->layernorm_forward(act->out, act->mean, act->rstd, inp, nn_param(p, l->weight),
	                      nn_param(p, l->bias), N, l->dim, l->eps);
	return act->out;
}

void nn_layernorm_backward(const struct nn_layernorm *l, const struct nn_params *p,
                           const struct nn_layernorm_act *act, float *dinp, const float *dout)
{
	nn->layernorm_backward(dinp, nn_param_grad(p, l->weight), nn_param_grad(p, l->bias), dout, act->inp,
	                       nn_param(p, l->weight), act->mean, act->rstd, act->N, l->dim);
}

void nn_groupnorm_init(struct nn_groupnorm *g, struct nn_params *p, const char *prefix, int channels,
                       int groups, float eps)
{
	g->channels = channels;
	g->groups = groups;
	g->eps = eps;
	g->weight = nn_layer_param(p, prefix, "weight", 1, (int64_t[]){channels});
	g->bias = nn_layer_param(p, prefix, "bias", 1, (int64_t[]){channels});
}

float *nn_groupnorm_forward(const struct nn_groupnorm *g, const struct nn_params *p, struct nn_arena *a,
                            struct nn_groupnorm_act *act, const float *inp, int B, int HW)
{
	act->inp = inp;
	act->B = B;
	act->HW = HW;
	act->out = nn_arena_floats(a, (size_t)B * g->channels * HW);
	act->mean = nn_arena_floats(a, (size_t)B * g->groups);
	act->rstd = nn_arena_floats(a, (size_t)B * g->groups);
	nn->groupnorm_forward(act->out, act->mean, act->rstd, inp, nn_param(p, g->weight),
	                      nn_param(p, g->bias), B, g->channels, HW, g->groups, g->eps);
	return act->out;
}

void nn_groupnorm_backward(const struct nn_groupnorm *g, const struct nn_params *p,
                           const struct nn_groupnorm_act *act, float *dinp, const float *dout)
{
	nn->groupnorm_backward(dinp, nn_param_grad(p, g->weight), nn_param_grad(p, g->bias), dout, act->inp,
	                       nn_param(p, g->weight), act->mean, act->rstd, act->B, g->channels, act->HW,
	                       g->groups);
}
