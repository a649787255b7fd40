/* The patch discriminator (see vqgan_disc.h). */
#include "vqgan/vqgan_disc.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "nn/ops.h"

#define DISC_KERNEL 4
#define DISC_EPS 1e-5f

int vqgan_disc_default_layers(int resolution)
{
	int layers = 1;
	while (layers < 3 && resolution >> (layers + 1) >= 4)
		layers++;
	return layers;
}

static int gcd(int a, int b)
{
	while (b) {
		int t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* Channels after layer i of `layers` strided ones: ch doubling per layer,
 * capped at 8x as in pix2pix; the last layer gives one logit. */
static int layer_channels(const struct vqgan_disc_config *c, int i)
{
	if (i == c->layers + 1)
		return 1;
	int mult = 1;
	for (int k = 0; k < i && mult < 8; k++)
		mult *= 2;
	return c->ch * mult;
}

int vqgan_disc_init(struct vqgan_disc *d, const struct vqgan_disc_config *cfg, uint64_t seed)
{
	memset(d, 0, sizeof *d);
	if (cfg->in_channels < 1 || cfg->ch < 1)
		return errorf("discriminator: %d input channels and %d base channels: both must be positive",
		              cfg->in_channels, cfg->ch);
	if (cfg->layers < 1 || cfg->layers > VQGAN_DISC_MAX_LAYERS)
		return errorf("discriminator: %d stride-2 layers; from 1 to %d are possible", cfg->layers,
		              VQGAN_DISC_MAX_LAYERS);
	d->cfg = *cfg;
	d->n = cfg->layers + 2;
	int in = cfg->in_channels;
	for (int i = 0; i < d->n; i++) {
		struct vqgan_disc_layer *l = &d->layer[i];
		int out = layer_channels(cfg, i), last = i == d->n - 1;
		char prefix[64];
		snprintf(prefix, sizeof prefix, "layers.%d.conv", i);
		/* A bias before a norm would be cancelled by it. */
		l->has_norm = i > 0 && !last;
		l->has_act = !last;
		nn_conv_init(&l->conv, &d->params, prefix, in, out, DISC_KERNEL, i < cfg->layers ? 2 : 1, 1,
		             !l->has_norm);
		if (l->has_norm) {
			snprintf(prefix, sizeof prefix, "layers.%d.norm", i);
			nn_groupnorm_init(&l->norm, &d->params, prefix, out, gcd(out, 32), DISC_EPS);
		}
		in = out;
	}
	nn_params_alloc(&d->params, 1);
	for (int i = 0; i < d->n; i++) {
		struct vqgan_disc_layer *l = &d->layer[i];
		nn_param_init_normal(&d->params, l->conv.weight, 0.02f, seed);
		if (l->has_norm)
			nn_param_init_const(&d->params, l->norm.weight, 1.0f);
	}
	return 0;
}

void vqgan_disc_free(struct vqgan_disc *d)
{
	nn_params_free(&d->params);
	memset(d, 0, sizeof *d);
}

int vqgan_disc_forward(struct vqgan_disc *d, struct nn_arena *a, const float *x, int B, int H, int W,
                       float **logits)
{
	/* Each stride-2 layer halves the size, each stride-1 one takes 1 off. */
	int oh = H >> d->cfg.layers, ow = W >> d->cfg.layers;
	if (oh < 3 || ow < 3)
		return errorf("discriminator: %dx%d images are too small for %d stride-2 layers (at least %d pixels "
		              "across are needed)", H, W, d->cfg.layers, 3 << d->cfg.layers);
	const float *h = x;
	for (int i = 0; i < d->n; i++) {
		struct vqgan_disc_layer *l = &d->layer[i];
		l->H = H;
		l->W = W;
		float *y = nn_conv_forward(&l->conv, &d->params, a, &l->conv_act, h, B, H, W);
		H = nn_conv2d_out_h(&l->conv_act.g);
		W = nn_conv2d_out_w(&l->conv_act.g);
		size_t n = (size_t)B * l->conv.out * H * W;
		if (l->has_norm)
			y = nn_groupnorm_forward(&l->norm, &d->params, a, &l->norm_act, y, B, H * W);
		l->pre = y;
		if (l->has_act) {
			l->out = nn_arena_floats(a, n);
			nn->act_forward(l->out, y, n, NN_SILU);
		} else {
			l->out = y;
		}
		h = l->out;
	}
	d->B = B;
	d->OH = H;
	d->OW = W;
	*logits = d->layer[d->n - 1].out;
	return 0;
}

void vqgan_disc_backward(struct vqgan_disc *d, struct nn_arena *a, float *dx, const float *dlogits,
                         int param_grads)
{
	/* Without parameter gradients the layers see a parameter set whose
	 * gradient buffer is absent, which the ops skip. */
	struct nn_params p = d->params;
	if (!param_grads)
		p.grad = NULL;
	int B = d->B;
	const float *dout = dlogits;
	for (int i = d->n - 1; i >= 0; i--) {
		struct vqgan_disc_layer *l = &d->layer[i];
		int OH = nn_conv2d_out_h(&l->conv_act.g), OW = nn_conv2d_out_w(&l->conv_act.g);
		size_t n = (size_t)B * l->conv.out * OH * OW;
		if (l->has_act) {
			float *dpre = nn_arena_zeros(a, n);
			nn->act_backward(dpre, l->pre, dout, n, NN_SILU);
			dout = dpre;
		}
		if (l->has_norm) {
			float *dconv = nn_arena_zeros(a, n);
			nn_groupnorm_backward(&l->norm, &p, &l->norm_act, dconv, dout);
			dout = dconv;
		}
		float *dinp = i > 0 ? nn_arena_zeros(a, (size_t)B * l->conv.in * l->H * l->W) : dx;
		nn_conv_backward(&l->conv, &p, &l->conv_act, dinp, dout);
		dout = dinp;
	}
}
