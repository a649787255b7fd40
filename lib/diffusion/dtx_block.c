#include "diffusion/dtx_block.h"

#include "nn/layers/layer.h"
#include "nn/ops.h"

void dtx_adaln_init(struct dtx_adaln *l, struct nn_params *p, const char *prefix, int dim, int steps)
{
	char name[NN_NAME_MAX];
	l->dim = dim;
	l->emb = nn_layer_param(p, nn_layer_name(name, prefix, "emb"), "weight", 2, (int64_t[]){steps, dim});
	nn_linear_init(&l->linear, p, nn_layer_name(name, prefix, "linear"), dim, 2 * dim, 1);
}

float *dtx_adaln_forward(const struct dtx_adaln *l, const struct nn_params *p, struct nn_arena *a,
                         struct dtx_adaln_act *act, const float *x, const int32_t *t, int B, int T)
{
	int C = l->dim;
	size_t n = (size_t)B * T * C;
	*act = (struct dtx_adaln_act){ .x = x, .t = t, .B = B, .T = T };
	act->temb = nn_arena_floats(a, (size_t)B * C);
	act->temb_silu = nn_arena_floats(a, (size_t)B * C);
	nn->embedding_forward(act->temb, t, nn_param(p, l->emb), B, C);
	nn->act_forward(act->temb_silu, act->temb, (size_t)B * C, NN_SILU);
	const float *proj = nn_linear_forward(&l->linear, p, a, &act->proj, act->temb_silu, B);

	act->norm = nn_arena_floats(a, n);
	act->mean = nn_arena_floats(a, (size_t)B * T);
	act->rstd = nn_arena_floats(a, (size_t)B * T);
	nn->layernorm_forward(act->norm, act->mean, act->rstd, x, NULL, NULL, B * T, C, DTX_LN_EPS);
	act->out = nn_arena_floats(a, n);
	nn->modulate_forward(act->out, act->norm, proj, proj + C, 2 * C, B, T, C);
	return act->out;
}

void dtx_adaln_backward(const struct dtx_adaln *l, const struct nn_params *p, struct nn_arena *a,
                        const struct dtx_adaln_act *act, float *dx, const float *dout)
{
	int B = act->B, T = act->T, C = l->dim;
	float *dproj = nn_arena_zeros(a, (size_t)B * 2 * C);
	float *dnorm = dx ? nn_arena_zeros(a, (size_t)B * T * C) : NULL;
	nn->modulate_backward(dnorm, dproj, dproj + C, dout, act->norm, act->proj.out, 2 * C, B, T, C);
	if (dx)
		nn->layernorm_backward(dx, NULL, NULL, dnorm, act->x, NULL, act->mean, act->rstd, B * T, C);
	float *demb_table = nn_param_grad(p, l->emb);
	if (!demb_table) /* the timestep path only leads to parameters */
		return;
	float *dsilu = nn_arena_zeros(a, (size_t)B * C);
	nn_linear_backward(&l->linear, p, &act->proj, dsilu, dproj);
	float *dtemb = nn_arena_zeros(a, (size_t)B * C);
	nn->act_backward(dtemb, act->temb, dsilu, (size_t)B * C, NN_SILU);
	nn->embedding_backward(demb_table, dtemb, act->t, B, C);
}

void dtx_block_init(struct dtx_block *b, struct nn_params *p, const char *prefix, int dim, int heads,
                    int mlp_hidden, int steps)
{
	char name[NN_NAME_MAX];
	b->dim = dim;
	dtx_adaln_init(&b->ln1, p, nn_layer_name(name, prefix, "ln1"), dim, steps);
	dtx_adaln_init(&b->ln1_1, p, nn_layer_name(name, prefix, "ln1_1"), dim, steps);
	nn_mha_init(&b->attn1, p, nn_layer_name(name, prefix, "attn1"), dim, dim, heads, 0);
	nn_mha_init(&b->attn2, p, nn_layer_name(name, prefix, "attn2"), dim, dim, heads, 0);
	nn_layernorm_init(&b->ln2, p, nn_layer_name(name, prefix, "ln2"), dim, DTX_LN_EPS);
	nn_mlp_init(&b->mlp, p, nn_layer_name(name, prefix, "mlp"), dim, mlp_hidden, NN_GELU_ERF);
}

float *dtx_block_forward(const struct dtx_block *b, const struct nn_params *p, struct nn_arena *a,
                         struct dtx_block_act *act, const float *x, const int32_t *t, const float *cond,
                         const uint8_t *cond_valid, int B, int T, int S)
{
	int N = B * T;
	size_t n = (size_t)N * b->dim;
	act->B = B;
	act->T = T;

	const float *h = dtx_adaln_forward(&b->ln1, p, a, &act->ln1, x, t, B, T);
	const float *branch = nn_mha_forward(&b->attn1, p, a, &act->attn1, h, h, NULL, B, T, T);
	act->x1 = nn_arena_floats(a, n);
	nn->add(act->x1, x, branch, n);

	h = dtx_adaln_forward(&b->ln1_1, p, a, &act->ln1_1, act->x1, t, B, T);
	branch = nn_mha_forward(&b->attn2, p, a, &act->attn2, h, cond, cond_valid, B, T, S);
	act->x2 = nn_arena_floats(a, n);
	nn->add(act->x2, act->x1, branch, n);

	h = nn_layernorm_forward(&b->ln2, p, a, &act->ln2, act->x2, N);
	branch = nn_mlp_forward(&b->mlp, p, a, &act->mlp, h, N);
	act->out = nn_arena_floats(a, n);
	nn->add(act->out, act->x2, branch, n);
	return act->out;
}

void dtx_block_backward(const struct dtx_block *b, const struct nn_params *p, struct nn_arena *a,
                        const struct dtx_block_act *act, float *dx, float *dcond, const float *dout)
{
	size_t n = (size_t)act->B * act->T * b->dim;
	/* dstream: the residual stream's gradient, walked backwards; each
	 * branch reads it as its output gradient, then the branch's norm adds
	 * what flows through the branch into the stream before it. */
	float *dstream = nn_arena_floats(a, n);
	nn->scale(dstream, dout, 1.0f, n);

	float *dh = nn_arena_zeros(a, n);
	nn_mlp_backward(&b->mlp, p, a, &act->mlp, dh, dstream);
	nn_layernorm_backward(&b->ln2, p, &act->ln2, dstream, dh);

	dh = nn_arena_zeros(a, n);
	nn_mha_backward(&b->attn2, p, a, &act->attn2, dh, dcond, dstream);
	dtx_adaln_backward(&b->ln1_1, p, a, &act->ln1_1, dstream, dh);

	dh = nn_arena_zeros(a, n);
	nn_mha_backward(&b->attn1, p, a, &act->attn1, dh, dh, dstream);
	dtx_adaln_backward(&b->ln1, p, a, &act->ln1, dx, dh);
	if (dx)
		nn->accumulate(dx, dstream, n);
}
