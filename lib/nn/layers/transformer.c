#include "nn/layers/transformer.h"

#include "nn/layers/layer.h"

void nn_block_init(struct nn_block *b, struct nn_params *p, const char *prefix,
                   const struct nn_block_config *cfg)
{
	char name[NN_NAME_MAX];
	int d = cfg->dim;
	b->cfg = *cfg;
	nn_layernorm_init(&b->ln1, p, nn_layer_name(name, prefix, "layer_norm1"), d, cfg->ln_eps);
	nn_mha_init(&b->self_attn, p, nn_layer_name(name, prefix, "self_attn"), d, d, cfg->heads, cfg->causal);
	if (cfg->cond_dim > 0) {
		nn_layernorm_init(&b->ln_cross, p, nn_layer_name(name, prefix, "layer_norm_cross"), d, cfg->ln_eps);
		nn_mha_init(&b->cross_attn, p, nn_layer_name(name, prefix, "cross_attn"), d, cfg->cond_dim,
		            cfg->heads, 0);
	}
	nn_layernorm_init(&b->ln2, p, nn_layer_name(name, prefix, "layer_norm2"), d, cfg->ln_eps);
	nn_mlp_init(&b->mlp, p, nn_layer_name(name, prefix, "mlp"), d, cfg->mlp_dim, cfg->act);
}

float *nn_block_forward(const struct nn_block *b, const struct nn_params *p, struct nn_arena *a,
                        struct nn_block_act *act, const float *x, int B, int T, const float *cond,
                        const uint8_t *cond_valid, int Tc)
{
	int N = B * T;
	size_t n = (size_t)N * b->cfg.dim;
	act->x = x;
	act->B = B;
	act->T = T;
	act->cond = cond;
	act->Tc = Tc;

	const float *h = nn_layernorm_forward(&b->ln1, p, a, &act->ln1, x, N);
	const float *branch = nn_mha_forward(&b->self_attn, p, a, &act->self_attn, h, h, NULL, B, T, T);
	act->x1 = nn_arena_floats(a, n);
	nn->add(act->x1, x, branch, n);

	const float *stream = act->x1;
	if (b->cfg.cond_dim > 0) {
		h = nn_layernorm_forward(&b->ln_cross, p, a, &act->ln_cross, act->x1, N);
		branch = nn_mha_forward(&b->cross_attn, p, a, &act->cross_attn, h, cond, cond_valid, B, T, Tc);
		act->x2 = nn_arena_floats(a, n);
		nn->add(act->x2, act->x1, branch, n);
		stream = act->x2;
	}

	h = nn_layernorm_forward(&b->ln2, p, a, &act->ln2, stream, N);
	branch = nn_mlp_forward(&b->mlp, p, a, &act->mlp, h, N);
	act->out = nn_arena_floats(a, n);
	nn->add(act->out, stream, branch, n);
	return act->out;
}

void nn_block_backward(const struct nn_block *b, const struct nn_params *p, struct nn_arena *a,
                       const struct nn_block_act *act, float *dx, float *dcond, const float *dout)
{
	int N = act->B * act->T;
	size_t n = (size_t)N * b->cfg.dim;
	/* dstream is the gradient of the residual stream, walked backwards: each
	 * branch reads it as its output gradient, then its layer norm adds the
	 * branch's contribution for the stream before it. */
	float *dstream = nn_arena_floats(a, n);
	nn->scale(dstream, dout, 1.0f, n);

	float *dh = nn_arena_zeros(a, n);
	nn_mlp_backward(&b->mlp, p, a, &act->mlp, dh, dstream);
	nn_layernorm_backward(&b->ln2, p, &act->ln2, dstream, dh);

	if (b->cfg.cond_dim > 0) {
		dh = nn_arena_zeros(a, n);
		nn_mha_backward(&b->cross_attn, p, a, &act->cross_attn, dh, dcond, dstream);
		nn_layernorm_backward(&b->ln_cross, p, &act->ln_cross, dstream, dh);
	}

	dh = nn_arena_zeros(a, n);
	nn_mha_backward(&b->self_attn, p, a, &act->self_attn, dh, dh, dstream);
	nn_layernorm_backward(&b->ln1, p, &act->ln1, dx, dh);
	if (dx)
		nn->accumulate(dx, dstream, n);
}
