#include "judge/judge_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "nn/model_file.h"
#include "nn/ops.h"
#include "stream/msgpack.h"
#include "vqgan/vqgan_io.h"

#define JUDGE_NORM_EPS 1e-6f
#define MAX_CLASSES (1 << 16)
#define MAX_SIDE 1024
#define MAX_WIDTH 4096

/* ---- config ---- */

int judge_config_check(const struct judge_config *c)
{
	const struct { const char *name; int value, min, max; } sizes[] = {
		{ "classes", c->classes, 2, MAX_CLASSES }, { "channels", c->channels, 1, 3 },
		{ "image_size", c->image_size, 4, MAX_SIDE }, { "width", c->width, 16, MAX_WIDTH },
		{ "features", c->features, 1, MAX_WIDTH }, { "pool", c->pool, 1, MAX_SIDE },
	};
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
		if (sizes[i].value < sizes[i].min || sizes[i].value > sizes[i].max)
			return errorf("%s is %d: must be %d to %d", sizes[i].name, sizes[i].value, sizes[i].min,
			              sizes[i].max);
	if (c->channels == 2)
		return errorf("channels is 2: must be 1 (gray) or 3 (RGB)");
	if (c->width % 16)
		return errorf("width %d is not a multiple of 16", c->width);
	if (judge_pool_side(c) % c->pool)
		return errorf("pool %d does not divide %d, the side of the last feature map (image_size %d / 4)",
		              c->pool, judge_pool_side(c), c->image_size);
	return 0;
}

int judge_pool_side(const struct judge_config *c)
{
	/* two 3x3 convolutions of stride 2 and padding 1 */
	return ((c->image_size + 1) / 2 + 1) / 2;
}

int judge_config_from_json(struct judge_config *c, const char *json)
{
	memset(c, 0, sizeof *c);
	struct mp_buf mp;
	if (nn_model_config_map(json, &mp) < 0)
		return -1;
	const uint8_t *top = mp.data, *end = mp.data + mp.len;
	int rc = -1;
	c->pool = 1; /* absent: global pooling */
	if (mp_map_int(top, end, "classes", &c->classes, 1) < 0 || mp_map_int(top, end, "channels", &c->channels, 1) < 0 ||
	    mp_map_int(top, end, "image_size", &c->image_size, 1) < 0 || mp_map_int(top, end, "width", &c->width, 1) < 0 ||
	    mp_map_int(top, end, "features", &c->features, 1) < 0 || mp_map_int(top, end, "pool", &c->pool, 0) < 0)
		goto out;
	rc = judge_config_check(c);
out:
	mp_buf_free(&mp);
	return rc;
}

char *judge_config_json(const struct judge_config *c)
{
	char *text = NULL;
	if (asprintf(&text, "{\"model\": \"judge\", \"classes\": %d, \"channels\": %d, \"image_size\": %d, "
	             "\"width\": %d, \"features\": %d, \"pool\": %d}", c->classes, c->channels, c->image_size,
	             c->width, c->features, c->pool) < 0)
		die("out of memory");
	return text;
}

/* ---- parameters ---- */

void judge_init(struct judge *m, const struct judge_config *c, int with_grad)
{
	memset(m, 0, sizeof *m);
	m->cfg = *c;
	struct nn_params *p = &m->params;
	int W = c->width;
	nn_conv_init(&m->stem, p, "stem", c->channels, W, 3, 1, 1, 1);
	nn_conv_init(&m->down1, p, "down1", W, 2 * W, 3, 2, 1, 1);
	nn_resblock_init(&m->res1, p, "res1", 2 * W, 2 * W, JUDGE_NORM_EPS);
	nn_conv_init(&m->down2, p, "down2", 2 * W, 4 * W, 3, 2, 1, 1);
	nn_resblock_init(&m->res2, p, "res2", 4 * W, 4 * W, JUDGE_NORM_EPS);
	nn_linear_init(&m->feat, p, "feat", 4 * W * c->pool * c->pool, c->features, 1);
	nn_linear_init(&m->head, p, "head", c->features, c->classes, 1);
	nn_params_alloc(p, with_grad);
}

void judge_init_random(struct judge *m, uint64_t seed)
{
	struct nn_params *p = &m->params;
	/* A bias takes the bound of the weight registered just before it. */
	float bound = 1;
	for (int i = 0; i < p->n; i++) {
		const struct nn_param *it = &p->items[i];
		if (it->ndim >= 2) {
			int64_t fan_in = it->numel / it->shape[0];
			bound = 1.0f / sqrtf((float)fan_in);
			nn_param_init_uniform(p, i, -bound, bound, seed);
		} else if (strstr(it->name, "norm")) {
			nn_param_init_const(p, i, strstr(it->name, ".weight") ? 1.0f : 0.0f);
		} else {
			nn_param_init_uniform(p, i, -bound, bound, seed);
		}
	}
}

static int parse_config(void *c, const char *json)
{
	return judge_config_from_json(c, json);
}

int judge_load(struct judge *m, const char *path, int with_grad)
{
	struct judge_config c;
	struct st_file *f = nn_model_file_open(path, "a judge model", parse_config, &c);
	if (!f)
		return -1;
	judge_init(m, &c, with_grad);
	if (nn_model_file_load(&m->params, f, path) < 0) {
		judge_free(m);
		return -1;
	}
	return 0;
}

void judge_free(struct judge *m)
{
	nn_params_free(&m->params);
	memset(m, 0, sizeof *m);
}

/* ---- forward and backward ---- */

float *judge_forward(struct judge *m, struct nn_arena *a, const float *x, int B)
{
	struct judge_act *act = &m->act;
	const struct nn_params *p = &m->params;
	int S = m->cfg.image_size, W = m->cfg.width;
	act->B = B;

	float *h = nn_conv_forward(&m->stem, p, a, &act->stem, x, B, S, S);
	size_t n = (size_t)B * W * S * S;
	act->stem_out = nn_arena_floats(a, n);
	nn->act_forward(act->stem_out, h, n, NN_SILU);

	h = nn_conv_forward(&m->down1, p, a, &act->down1, act->stem_out, B, S, S);
	int s1 = nn_conv2d_out_h(&act->down1.g);
	h = nn_resblock_forward(&m->res1, p, a, &act->res1, h, B, s1, s1);
	h = nn_conv_forward(&m->down2, p, a, &act->down2, h, B, s1, s1);
	int s2 = nn_conv2d_out_h(&act->down2.g);
	h = nn_resblock_forward(&m->res2, p, a, &act->res2, h, B, s2, s2);

	/* [B, 4W, P, P] is [B, 4W*P*P] rows for the linear layer */
	act->side = s2;
	int P = m->cfg.pool;
	act->pooled = nn_arena_floats(a, (size_t)B * 4 * W * P * P);
	nn->avgpool_forward(act->pooled, h, B * 4 * W, s2, s2, s2 / P);

	h = nn_linear_forward(&m->feat, p, a, &act->feat, act->pooled, B);
	n = (size_t)B * m->cfg.features;
	act->features = nn_arena_floats(a, n);
	nn->act_forward(act->features, h, n, NN_SILU);
	return nn_linear_forward(&m->head, p, a, &act->head, act->features, B);
}

void judge_backward(struct judge *m, struct nn_arena *a, const float *dlogits)
{
	const struct judge_act *act = &m->act;
	const struct nn_params *p = &m->params;
	int B = act->B, S = m->cfg.image_size, W = m->cfg.width, s1 = nn_conv2d_out_h(&act->down1.g),
	    s2 = act->side, P = m->cfg.pool;

	size_t n = (size_t)B * m->cfg.features;
	float *dfeat = nn_arena_zeros(a, n);
	nn_linear_backward(&m->head, p, &act->head, dfeat, dlogits);
	float *dpre = nn_arena_zeros(a, n);
	nn->act_backward(dpre, act->feat.out, dfeat, n, NN_SILU);
	float *dpooled = nn_arena_zeros(a, (size_t)B * 4 * W * P * P);
	nn_linear_backward(&m->feat, p, &act->feat, dpooled, dpre);

	float *dres2 = nn_arena_zeros(a, (size_t)B * 4 * W * s2 * s2);
	nn->avgpool_backward(dres2, dpooled, B * 4 * W, s2, s2, s2 / P);
	float *ddown2 = nn_arena_zeros(a, (size_t)B * 4 * W * s2 * s2);
	nn_resblock_backward(&m->res2, p, a, &act->res2, ddown2, dres2);
	float *dres1 = nn_arena_zeros(a, (size_t)B * 2 * W * s1 * s1);
	nn_conv_backward(&m->down2, p, &act->down2, dres1, ddown2);
	float *ddown1 = nn_arena_zeros(a, (size_t)B * 2 * W * s1 * s1);
	nn_resblock_backward(&m->res1, p, a, &act->res1, ddown1, dres1);

	n = (size_t)B * W * S * S;
	float *dstem_out = nn_arena_zeros(a, n);
	nn_conv_backward(&m->down1, p, &act->down1, dstem_out, ddown1);
	float *dstem = nn_arena_zeros(a, n);
	nn->act_backward(dstem, act->stem.out, dstem_out, n, NN_SILU);
	/* the input image needs no gradient */
	nn_conv_backward(&m->stem, p, &act->stem, NULL, dstem);
}

void judge_predict(struct judge *m, struct nn_arena *a, const float *x, int B, float *prob, float *feat)
{
	const struct judge_config *c = &m->cfg;
	size_t nx = (size_t)B * c->channels * c->image_size * c->image_size;
	float *d_x = nn_arena_floats(a, nx);
	nn->upload(d_x, x, nx * sizeof *x);
	float *logits = judge_forward(m, a, d_x, B);
	if (prob) {
		float *d_prob = nn_arena_floats(a, (size_t)B * c->classes);
		nn->softmax_forward(d_prob, logits, B, c->classes);
		nn->download(prob, d_prob, (size_t)B * c->classes * sizeof *prob);
	}
	if (feat)
		nn->download(feat, m->act.features, (size_t)B * c->features * sizeof *feat);
	nn_arena_reset(a);
}

int judge_input_from_image(const struct judge_config *c, const struct image *img, float *out)
{
	return vqgan_input_from_image(img, c->channels, c->image_size, out);
}

int judge_argmax(const float *x, int n)
{
	int best = 0;
	for (int i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}
