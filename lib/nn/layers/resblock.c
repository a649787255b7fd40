#include "nn/layers/resblock.h"

#include "core/tool.h"
#include "nn/layers/layer.h"

void nn_resblock_init(struct nn_resblock *r, struct nn_params *p, const char *prefix, int in, int out,
                      float eps)
{
	if (in % NN_RESBLOCK_GROUPS || out % NN_RESBLOCK_GROUPS)
		die("resblock %s: channels %d -> %d are not multiples of %d groups", prefix, in, out,
		    NN_RESBLOCK_GROUPS);
	char name[NN_NAME_MAX];
	r->in = in;
	r->out = out;
	nn_groupnorm_init(&r->norm1, p, nn_layer_name(name, prefix, "norm1"), in, NN_RESBLOCK_GROUPS, eps);
	nn_conv_init(&r->conv1, p, nn_layer_name(name, prefix, "conv1"), in, out, 3, 1, 1, 1);
	nn_groupnorm_init(&r->norm2, p, nn_layer_name(name, prefix, "norm2"), out, NN_RESBLOCK_GROUPS, eps);
	nn_conv_init(&r->conv2, p, nn_layer_name(name, prefix, "conv2"), out, out, 3, 1, 1, 1);
	r->has_shortcut = in != out;
	if (r->has_shortcut)
		nn_conv_init(&r->shortcut, p, nn_layer_name(name, prefix, "nin_shortcut"), in, out, 1, 1, 0, 1);
}

float *nn_resblock_forward(const struct nn_resblock *r, const struct nn_params *p, struct nn_arena *a,
                           struct nn_resblock_act *act, const float *x, int B, int H, int W)
{
	int HW = H * W;
	act->B = B;
	act->H = H;
	act->W = W;

	const float *h = nn_groupnorm_forward(&r->norm1, p, a, &act->norm1, x, B, HW);
	size_t n_in = (size_t)B * r->in * HW, n_out = (size_t)B * r->out * HW;
	act->act1 = nn_arena_floats(a, n_in);
	nn->act_forward(act->act1, h, n_in, NN_SILU);
	h = nn_conv_forward(&r->conv1, p, a, &act->conv1, act->act1, B, H, W);

	h = nn_groupnorm_forward(&r->norm2, p, a, &act->norm2, h, B, HW);
	act->act2 = nn_arena_floats(a, n_out);
	nn->act_forward(act->act2, h, n_out, NN_SILU);
	h = nn_conv_forward(&r->conv2, p, a, &act->conv2, act->act2, B, H, W);

	const float *skip = r->has_shortcut ? nn_conv_forward(&r->shortcut, p, a, &act->shortcut, x, B, H, W) : x;
	act->out = nn_arena_floats(a, n_out);
	nn->add(act->out, skip, h, n_out);
	return act->out;
}

void nn_resblock_backward(const struct nn_resblock *r, const struct nn_params *p, struct nn_arena *a,
                          const struct nn_resblock_act *act, float *dx, const float *dout)
{
	size_t HW = (size_t)act->H * act->W;
	size_t n_in = act->B * r->in * HW, n_out = act->B * r->out * HW;

	if (r->has_shortcut)
		nn_conv_backward(&r->shortcut, p, &act->shortcut, dx, dout);
	else if (dx)
		nn->accumulate(dx, dout, n_out);

	float *dact = nn_arena_zeros(a, n_out);
	nn_conv_backward(&r->conv2, p, &act->conv2, dact, dout);
	float *dnorm = nn_arena_zeros(a, n_out);
	nn->act_backward(dnorm, act->norm2.out, dact, n_out, NN_SILU);
	float *dh = nn_arena_zeros(a, n_out);
	nn_groupnorm_backward(&r->norm2, p, &act->norm2, dh, dnorm);

	dact = nn_arena_zeros(a, n_in);
	nn_conv_backward(&r->conv1, p, &act->conv1, dact, dh);
	dnorm = nn_arena_zeros(a, n_in);
	nn->act_backward(dnorm, act->norm1.out, dact, n_in, NN_SILU);
	nn_groupnorm_backward(&r->norm1, p, &act->norm1, dx, dnorm);
}
