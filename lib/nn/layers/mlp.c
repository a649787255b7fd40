#include "nn/layers/mlp.h"

#include "nn/layers/layer.h"

void nn_mlp_init(struct nn_mlp *m, struct nn_params *p, const char *prefix, int dim, int hidden,
                 enum nn_act act)
{
	char name[NN_NAME_MAX];
	nn_linear_init(&m->fc1, p, nn_layer_name(name, prefix, "fc1"), dim, hidden, 1);
	nn_linear_init(&m->fc2, p, nn_layer_name(name, prefix, "fc2"), hidden, dim, 1);
	m->act = act;
}

float *nn_mlp_forward(const struct nn_mlp *m, const struct nn_params *p, struct nn_arena *a,
                      struct nn_mlp_act *act, const float *x, int N)
{
	float *pre = nn_linear_forward(&m->fc1, p, a, &act->fc1, x, N);
	size_t n = (size_t)N * m->fc1.out;
	act->hidden = nn_arena_floats(a, n);
	nn->act_forward(act->hidden, pre, n, m->act);
	return nn_linear_forward(&m->fc2, p, a, &act->fc2, act->hidden, N);
}

void nn_mlp_backward(const struct nn_mlp *m, const struct nn_params *p, struct nn_arena *a,
                     const struct nn_mlp_act *act, float *dx, const float *dout)
{
	size_t n = (size_t)act->fc1.N * m->fc1.out;
	float *dhidden = nn_arena_zeros(a, n);
	nn_linear_backward(&m->fc2, p, &act->fc2, dhidden, dout);
	float *dpre = nn_arena_zeros(a, n);
	nn->act_backward(dpre, act->fc1.out, dhidden, n, m->act);
	nn_linear_backward(&m->fc1, p, &act->fc1, dx, dpre);
}
