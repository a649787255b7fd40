/* The VQGAN's encoder and decoder as lists of units (vqgan_internal.h),
 * their forward and backward passes, and batched inference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"
#include "nn/ops.h"
#include "vqgan/vqgan_internal.h"

/* ---- Building the unit lists, in taming's module order ---- */

static struct vqgan_unit *add_unit(struct vqgan_net *net, enum vqgan_unit_kind kind, const char *name, int in,
                                   int out)
{
	if (net->n == net->cap) {
		net->cap = net->cap ? 2 * net->cap : 32;
		net->units = xrealloc(net->units, (size_t)net->cap * sizeof *net->units);
	}
	struct vqgan_unit *u = &net->units[net->n++];
	memset(u, 0, sizeof *u);
	u->kind = kind;
	snprintf(u->name, sizeof u->name, "%s", name);
	u->in = in;
	u->out = out;
	return u;
}

static void add_conv(struct vqgan_net *net, struct nn_params *p, const char *name, int in, int out, int kernel)
{
	struct vqgan_unit *u = add_unit(net, VQGAN_CONV, name, in, out);
	nn_conv_init(&u->layer.conv, p, name, in, out, kernel, 1, kernel / 2, 1);
}

/* taming's Downsample: pad right and bottom by one, 3x3 stride-2 conv. */
static void add_downsample(struct vqgan_net *net, struct nn_params *p, const char *name, int ch)
{
	char prefix[NN_NAME_MAX];
	struct vqgan_unit *u = add_unit(net, VQGAN_CONV, name, ch, ch);
	nn_conv_init(&u->layer.conv, p, nn_layer_name(prefix, name, "conv"), ch, ch, 3, 2, 0, 1);
	u->layer.conv.pad_bottom = u->layer.conv.pad_right = 1;
}

static void add_upsample(struct vqgan_net *net, struct nn_params *p, const char *name, int ch)
{
	char prefix[NN_NAME_MAX];
	struct vqgan_unit *u = add_unit(net, VQGAN_UPSAMPLE, name, ch, ch);
	nn_conv_init(&u->layer.conv, p, nn_layer_name(prefix, name, "conv"), ch, ch, 3, 1, 1, 1);
}

static void add_resblock(struct vqgan_net *net, struct nn_params *p, const char *name, int in, int out)
{
	struct vqgan_unit *u = add_unit(net, VQGAN_RESBLOCK, name, in, out);
	nn_resblock_init(&u->layer.res, p, name, in, out, VQGAN_EPS);
}

static void add_attn(struct vqgan_net *net, struct nn_params *p, const char *name, int ch)
{
	struct vqgan_unit *u = add_unit(net, VQGAN_ATTN, name, ch, ch);
	nn_attnblock_init(&u->layer.attn, p, name, ch, VQGAN_GROUPS, VQGAN_EPS, 1);
}

/* "<coder>.mid": block_1, attn_1, block_2. */
static void add_mid(struct vqgan_net *net, struct nn_params *p, const char *coder, int ch)
{
	char name[NN_NAME_MAX];
	snprintf(name, sizeof name, "%s.mid.block_1", coder);
	add_resblock(net, p, name, ch, ch);
	snprintf(name, sizeof name, "%s.mid.attn_1", coder);
	add_attn(net, p, name, ch);
	snprintf(name, sizeof name, "%s.mid.block_2", coder);
	add_resblock(net, p, name, ch, ch);
}

/* norm_out, swish, conv_out. */
static void add_output(struct vqgan_net *net, struct nn_params *p, const char *coder, int in, int out)
{
	char name[NN_NAME_MAX];
	snprintf(name, sizeof name, "%s.norm_out", coder);
	struct vqgan_unit *u = add_unit(net, VQGAN_NORM, name, in, in);
	nn_groupnorm_init(&u->layer.norm, p, name, in, VQGAN_GROUPS, VQGAN_EPS);
	snprintf(name, sizeof name, "%s.nonlinearity", coder);
	add_unit(net, VQGAN_SWISH, name, in, in);
	snprintf(name, sizeof name, "%s.conv_out", coder);
	add_conv(net, p, name, in, out, 3);
}

static void build_encoder(struct vqgan_net *net, struct nn_params *p, const struct vqgan_config *c)
{
	char name[NN_NAME_MAX];
	add_conv(net, p, "encoder.conv_in", c->in_channels, c->ch, 3);
	int block_in = c->ch;
	for (int i = 0; i < c->levels; i++) {
		int block_out = c->ch * c->ch_mult[i];
		for (int j = 0; j < c->num_res_blocks; j++) {
			snprintf(name, sizeof name, "encoder.down.%d.block.%d", i, j);
			add_resblock(net, p, name, block_in, block_out);
			block_in = block_out;
			if (c->attn[i]) {
				snprintf(name, sizeof name, "encoder.down.%d.attn.%d", i, j);
				add_attn(net, p, name, block_in);
			}
		}
		if (i != c->levels - 1) {
			snprintf(name, sizeof name, "encoder.down.%d.downsample", i);
			add_downsample(net, p, name, block_in);
		}
	}
	add_mid(net, p, "encoder", block_in);
	add_output(net, p, "encoder", block_in, c->z_channels);
	add_conv(net, p, "quant_conv", c->z_channels, c->embed_dim, 1);
}

/* The decoder has one block more per level than the encoder, and walks the
 * levels from the lowest resolution up. */
static void build_decoder(struct vqgan_net *net, struct nn_params *p, const struct vqgan_config *c)
{
	char name[NN_NAME_MAX];
	int block_in = c->ch * c->ch_mult[c->levels - 1];
	add_conv(net, p, "post_quant_conv", c->embed_dim, c->z_channels, 1);
	add_conv(net, p, "decoder.conv_in", c->z_channels, block_in, 3);
	add_mid(net, p, "decoder", block_in);
	for (int i = c->levels - 1; i >= 0; i--) {
		int block_out = c->ch * c->ch_mult[i];
		for (int j = 0; j < c->num_res_blocks + 1; j++) {
			snprintf(name, sizeof name, "decoder.up.%d.block.%d", i, j);
			add_resblock(net, p, name, block_in, block_out);
			block_in = block_out;
			if (c->attn[i]) {
				snprintf(name, sizeof name, "decoder.up.%d.attn.%d", i, j);
				add_attn(net, p, name, block_in);
			}
		}
		if (i != 0) {
			snprintf(name, sizeof name, "decoder.up.%d.upsample", i);
			add_upsample(net, p, name, block_in);
		}
	}
	add_output(net, p, "decoder", block_in, c->out_ch);
}

void vqgan_init(struct vqgan *m, const struct vqgan_config *cfg, int with_grad)
{
	/* Configs from files and checkpoints were checked when read; one that
	 * fails here was built by code. */
	if (vqgan_config_check(cfg) < 0)
		die("vqgan_init: %s", error_message());
	memset(m, 0, sizeof *m);
	m->cfg = *cfg;
	struct vqgan_state *s = m->state = xcalloc(1, sizeof *m->state);
	struct nn_params *p = &m->params;
	build_encoder(&s->encoder, p, cfg);
	s->embedding = nn_params_add(p, "quantize.embedding.weight", 2, (int64_t[]){ cfg->n_embed, cfg->embed_dim });
	build_decoder(&s->decoder, p, cfg);
	nn_params_alloc(p, with_grad);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

/* PyTorch's defaults: a convolution's weight (kaiming_uniform, a = sqrt(5))
 * and bias both draw from +-1/sqrt(fan_in); group norms start as the
 * identity; taming's codebook draws from +-1/n_embed. */
void vqgan_init_random(struct vqgan *m, uint64_t seed)
{
	struct nn_params *p = &m->params;
	for (int i = 0; i < p->n; i++) {
		const struct nn_param *it = &p->items[i];
		if (i == m->state->embedding) {
			float bound = 1.0f / (float)m->cfg.n_embed;
			nn_param_init_uniform(p, i, -bound, bound, seed);
			continue;
		}
		int is_bias = ends_with(it->name, ".bias");
		const struct nn_param *weight = it;
		if (is_bias) {
			char name[NN_NAME_MAX];
			snprintf(name, sizeof name, "%.*s.weight", (int)(strlen(it->name) - 5), it->name);
			weight = &p->items[nn_params_find(p, name)];
		}
		if (weight->ndim == 4) {
			float bound = 1.0f / sqrtf((float)(weight->shape[1] * weight->shape[2] * weight->shape[3]));
			nn_param_init_uniform(p, i, -bound, bound, seed);
		} else {
			nn_param_init_const(p, i, is_bias ? 0.0f : 1.0f);
		}
	}
}

void vqgan_free(struct vqgan *m)
{
	nn_params_free(&m->params);
	nn_arena_free(&m->arena);
	if (m->state) {
		free(m->state->encoder.units);
		free(m->state->decoder.units);
		nn_arena_free(&m->state->spare);
		free(m->state);
	}
	memset(m, 0, sizeof *m);
}

void vqgan_set_taps(struct vqgan *m, const struct vqgan_taps *t)
{
	m->state->taps = t ? *t : (struct vqgan_taps){ 0 };
}

/* ---- Passes ---- */

static float *unit_forward(struct vqgan_unit *u, const struct nn_params *p, struct nn_arena *a, const float *x,
                           int B, int H, int W)
{
	size_t n = (size_t)B * u->in * H * W;
	u->x = x;
	u->B = B;
	u->H = u->OH = H;
	u->W = u->OW = W;
	switch (u->kind) {
	case VQGAN_CONV:
		u->y = nn_conv_forward(&u->layer.conv, p, a, &u->act.conv, x, B, H, W);
		u->OH = nn_conv2d_out_h(&u->act.conv.g);
		u->OW = nn_conv2d_out_w(&u->act.conv.g);
		break;
	case VQGAN_RESBLOCK:
		u->y = nn_resblock_forward(&u->layer.res, p, a, &u->act.res, x, B, H, W);
		break;
	case VQGAN_ATTN:
		u->y = nn_attnblock_forward(&u->layer.attn, p, a, &u->act.attn, x, B, H * W);
		break;
	case VQGAN_UPSAMPLE:
		u->up = nn_arena_floats(a, 4 * n);
		nn->upsample_forward(u->up, x, B * u->in, H, W, 2);
		u->OH = 2 * H;
		u->OW = 2 * W;
		u->y = nn_conv_forward(&u->layer.conv, p, a, &u->act.conv, u->up, B, u->OH, u->OW);
		break;
	case VQGAN_NORM:
		u->y = nn_groupnorm_forward(&u->layer.norm, p, a, &u->act.norm, x, B, H * W);
		break;
	case VQGAN_SWISH:
		u->y = nn_arena_floats(a, n);
		nn->act_forward(u->y, x, n, NN_SILU);
		break;
	}
	return u->y;
}

static void unit_backward(const struct vqgan_unit *u, const struct nn_params *p, struct nn_arena *a, float *dx,
                          const float *dy)
{
	size_t n = (size_t)u->B * u->in * u->H * u->W;
	switch (u->kind) {
	case VQGAN_CONV:
		nn_conv_backward(&u->layer.conv, p, &u->act.conv, dx, dy);
		break;
	case VQGAN_RESBLOCK:
		nn_resblock_backward(&u->layer.res, p, a, &u->act.res, dx, dy);
		break;
	case VQGAN_ATTN:
		nn_attnblock_backward(&u->layer.attn, p, a, &u->act.attn, dx, dy);
		break;
	case VQGAN_UPSAMPLE: {
		float *dup = dx ? nn_arena_zeros(a, 4 * n) : NULL;
		nn_conv_backward(&u->layer.conv, p, &u->act.conv, dup, dy);
		if (dx)
			nn->upsample_backward(dx, dup, u->B * u->in, u->H, u->W, 2);
		break;
	}
	case VQGAN_NORM:
		nn_groupnorm_backward(&u->layer.norm, p, &u->act.norm, dx, dy);
		break;
	case VQGAN_SWISH:
		if (dx)
			nn->act_backward(dx, u->x, dy, n, NN_SILU);
		break;
	}
}

/* Runs the units in order on x [B, in, H, W]. Training keeps everything in
 * arena a for the backward pass. Inference (spare != NULL) needs only each
 * unit's input: unit i works in arena i%2 == 0 ? spare : a, reset first,
 * while its input, unit i-1's output, lives in the other one (x itself in
 * a), so memory holds two units' activations instead of the network's. */
static float *net_forward(const struct vqgan_state *s, struct vqgan_net *net, const struct nn_params *p,
                          struct nn_arena *a, struct nn_arena *spare, const float *x, int B, int H, int W)
{
	float *y = NULL;
	for (int i = 0; i < net->n; i++) {
		struct vqgan_unit *u = &net->units[i];
		struct nn_arena *ua = a;
		if (spare) {
			ua = i % 2 == 0 ? spare : a;
			nn_arena_reset(ua);
		}
		y = unit_forward(u, p, ua, x, B, H, W);
		x = y;
		H = u->OH;
		W = u->OW;
		if (s->taps.fn)
			s->taps.fn(s->taps.ctx, u->name, y, B, u->out, H, W);
	}
	return y;
}

/* From the output gradient dy back through every unit; dx (NULL: not
 * needed) accumulates the input's gradient. */
static void net_backward(const struct vqgan_net *net, const struct nn_params *p, struct nn_arena *a, float *dx,
                         const float *dy)
{
	for (int i = net->n - 1; i >= 0; i--) {
		const struct vqgan_unit *u = &net->units[i];
		float *din = i > 0 ? nn_arena_zeros(a, (size_t)u->B * u->in * u->H * u->W) : dx;
		unit_backward(u, p, a, din, dy);
		dy = din;
	}
}

float *vqgan_encoder_forward(struct vqgan *m, struct nn_arena *a, const float *x, int B, int H, int W)
{
	return net_forward(m->state, &m->state->encoder, &m->params, a, NULL, x, B, H, W);
}

void vqgan_encoder_backward(struct vqgan *m, struct nn_arena *a, const float *dz)
{
	net_backward(&m->state->encoder, &m->params, a, NULL, dz);
}

float *vqgan_decoder_forward(struct vqgan *m, struct nn_arena *a, const float *zq, int B, int h, int w)
{
	return net_forward(m->state, &m->state->decoder, &m->params, a, NULL, zq, B, h, w);
}

void vqgan_decoder_backward(struct vqgan *m, struct nn_arena *a, float *dzq, const float *dimage)
{
	net_backward(&m->state->decoder, &m->params, a, dzq, dimage);
}

/* ---- Inference ----
 *
 * These reuse the units' records of the last pass, so a training step must
 * not call them between its forward and backward passes. */

int vqgan_encode(struct vqgan *m, const float *images, int B, int H, int W, int32_t *tokens, float *latents)
{
	const struct vqgan_config *c = &m->cfg;
	int f = vqgan_factor(c);
	if (B < 0 || H < f || W < f || H % f || W % f || H > 1 << 16 || W > 1 << 16)
		return errorf("images of %dx%d pixels: the sides must be multiples of the model's downsampling factor %d",
		              W, H, f);
	if (B == 0)
		return 0;
	struct vqgan_state *s = m->state;
	nn_arena_reset(&m->arena);
	nn_arena_reset(&s->spare);
	size_t n = (size_t)B * c->in_channels * H * W;
	float *x = nn_arena_floats(&m->arena, n);
	nn->upload(x, images, n * sizeof *x);
	const float *z = net_forward(s, &s->encoder, &m->params, &m->arena, &s->spare, x, B, H, W);
	int h = H / f, w = W / f;
	vqgan_quantize(m, z, B, h, w, tokens, NULL, NULL);
	if (latents)
		nn->download(latents, z, (size_t)B * c->embed_dim * h * w * sizeof *latents);
	return 0;
}

int vqgan_decode(struct vqgan *m, const int32_t *tokens, int B, int h, int w, float *images)
{
	const struct vqgan_config *c = &m->cfg;
	if (B < 0 || h < 1 || w < 1 || h > 1 << 16 || w > 1 << 16)
		return errorf("a token grid of %dx%d: both sides must be at least 1", w, h);
	size_t hw = (size_t)h * w;
	for (size_t i = 0; i < (size_t)B * hw; i++)
		if (tokens[i] < 0 || tokens[i] >= c->n_embed)
			return errorf("token %d (image %zu, row %zu, column %zu) is outside the codebook of %d codes", tokens[i],
			              i / hw, i % hw / w, i % w, c->n_embed);
	if (B == 0)
		return 0;
	struct vqgan_state *s = m->state;
	nn_arena_reset(&m->arena);
	nn_arena_reset(&s->spare);
	float *zq = nn_arena_floats(&m->arena, (size_t)B * c->embed_dim * hw);
	vqgan_lookup(m, tokens, B, h, w, zq);
	const float *y = net_forward(s, &s->decoder, &m->params, &m->arena, &s->spare, zq, B, h, w);
	int f = vqgan_factor(c);
	nn->download(images, y, (size_t)B * c->out_ch * hw * f * f * sizeof *images);
	return 0;
}
