#include "nn/layers/attention.h"

#include <math.h>

#include "core/tool.h"
#include "nn/layers/layer.h"

void nn_mha_init(struct nn_mha *m, struct nn_params *p, const char *prefix, int dim, int kv_dim, int heads,
                 int causal)
{
	if (heads <= 0 || dim % heads)
		die("attention %s: dim %d is not a multiple of %d heads", prefix, dim, heads);
	char name[NN_NAME_MAX];
	nn_linear_init(&m->q_proj, p, nn_layer_name(name, prefix, "q_proj"), dim, dim, 1);
	nn_linear_init(&m->k_proj, p, nn_layer_name(name, prefix, "k_proj"), kv_dim, dim, 1);
	nn_linear_init(&m->v_proj, p, nn_layer_name(name, prefix, "v_proj"), kv_dim, dim, 1);
	nn_linear_init(&m->out_proj, p, nn_layer_name(name, prefix, "out_proj"), dim, dim, 1);
	m->dim = dim;
	m->kv_dim = kv_dim;
	m->heads = heads;
	m->causal = causal;
}

float *nn_mha_forward(const struct nn_mha *m, const struct nn_params *p, struct nn_arena *a,
                      struct nn_mha_act *act, const float *x, const float *kv, const uint8_t *key_valid,
                      int B, int Tq, int Tk)
{
	int D = m->dim / m->heads;
	act->geom = (struct nn_attention){
		.B = B, .H = m->heads, .Tq = Tq, .Tk = Tk, .D = D,
		.causal = m->causal, .key_valid = key_valid, .scale = 1.0f / sqrtf((float)D),
	};
	const float *q = nn_linear_forward(&m->q_proj, p, a, &act->q, x, B * Tq);
	const float *k = nn_linear_forward(&m->k_proj, p, a, &act->k, kv, B * Tk);
	const float *v = nn_linear_forward(&m->v_proj, p, a, &act->v, kv, B * Tk);
	act->heads_out = nn_arena_floats(a, (size_t)B * Tq * m->dim);
	act->lse = nn_arena_floats(a, (size_t)B * m->heads * Tq);
	nn->attention_forward(act->heads_out, act->lse, q, k, v, &act->geom);
	return nn_linear_forward(&m->out_proj, p, a, &act->out, act->heads_out, B * Tq);
}

void nn_mha_backward(const struct nn_mha *m, const struct nn_params *p, struct nn_arena *a,
                     const struct nn_mha_act *act, float *dx, float *dkv, const float *dout)
{
	size_t nq = (size_t)act->q.N * m->dim, nk = (size_t)act->k.N * m->dim;
	float *dheads = nn_arena_zeros(a, nq);
	nn_linear_backward(&m->out_proj, p, &act->out, dheads, dout);
	float *dq = nn_arena_zeros(a, nq);
	float *dk = nn_arena_zeros(a, nk);
	float *dv = nn_arena_zeros(a, nk);
	nn->attention_backward(dq, dk, dv, dheads, act->q.out, act->k.out, act->v.out, act->heads_out, act->lse,
	                       &act->geom);
	nn_linear_backward(&m->q_proj, p, &act->q, dx, dq);
	nn_linear_backward(&m->k_proj, p, &act->k, dkv, dk);
	nn_linear_backward(&m->v_proj, p, &act->v, dkv, dv);
}
