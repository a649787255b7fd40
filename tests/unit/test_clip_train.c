/* clip_train: the whole contrastive loss's gradient against finite
 * differences for every parameter tensor of a tiny CLIP (logit_scale
 * included), the training forward against the inference forward, the loss
 * with equal captions, retrieval figures, the augmentation, and a few
 * optimiser steps that lower the loss. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "clip/clip_train.h"
#include "core/error.h"
#include "image/augment.h"
#include "image/clip_preprocess.h"
#include "nn/gradcheck.h"
#include "nn/ops.h"
#include "nn/philox.h"
#include "test.h"

/* width 32, 2 layers each, 8x8 images in 2x2 patches of 4, context 8 */
static struct clip_config tiny_config(void)
{
	struct clip_tower_config t = { .width = 32, .layers = 2, .heads = 2, .mlp_dim = 128, .act = NN_QUICK_GELU,
	                               .ln_eps = 1e-5f };
	struct clip_config c = { .naming = CLIP_NAMING_HF, .vision = t, .text = t, .patch = 4, .grid = 2,
	                         .resolution = 8, .context = 8, .vocab = 20, .embed_dim = 16 };
	c.text.act = NN_GELU_ERF;
	return c;
}

#define B 6

struct batch {
	float pixels[B * 3 * 8 * 8];
	int32_t ids[B * 8];
	int group[B];
};

/* Random pixels; token rows of different lengths ending in the largest
 * id (19, the end token); items 1 and 4 share a caption. */
static void make_batch(struct batch *b)
{
	philox_uniform_fill(b->pixels, sizeof b->pixels / sizeof *b->pixels, 5, 0);
	for (size_t i = 0; i < sizeof b->pixels / sizeof *b->pixels; i++)
		b->pixels[i] = 4 * b->pixels[i] - 2;
	static const int len[B] = { 3, 5, 2, 6, 5, 4 };
	memset(b->ids, 0, sizeof b->ids);
	for (int i = 0; i < B; i++) {
		int src = i == 4 ? 1 : i;
		b->ids[i * 8] = 18;
		for (int k = 1; k < len[src] - 1; k++)
			b->ids[i * 8 + k] = (src * 7 + k * 3) % 18;
		b->ids[i * 8 + len[src] - 1] = 19;
	}
	const char *texts[B] = { "a", "b", "c", "d", "b", "f" };
	clip_caption_groups(texts, NULL, B, b->group);
}

struct grad_case {
	struct clip_model m;
	struct clip_trainer t;
	struct batch b;
	int index;   /* the parameter under test */
	double scale; /* of the loss, so that gradients are well above float noise */
};

static void loss_fwd(void *ctx, float *out)
{
	struct grad_case *c = ctx;
	float loss;
	nn_params_zero_grad(&c->m.params);
	if (clip_trainer_loss(&c->t, c->b.pixels, c->b.ids, c->b.group, B, &loss) < 0)
		loss = NAN;
	out[0] = (float)(loss * c->scale);
}

static void loss_bwd(void *ctx, float *const *grad, const float *dout)
{
	struct grad_case *c = ctx;
	float loss;
	nn_params_zero_grad(&c->m.params);
	clip_trainer_loss(&c->t, c->b.pixels, c->b.ids, c->b.group, B, &loss);
	const struct nn_param *it = &c->m.params.items[c->index];
	const float *g = nn_param_grad(&c->m.params, c->index);
	for (size_t i = 0; i < it->numel; i++)
		grad[0][i] += (float)(dout[0] * c->scale * g[i]);
}

static void setup(struct grad_case *c, uint64_t seed)
{
	struct clip_config cfg = tiny_config();
	clip_model_init_trainable(&c->m, &cfg);
	clip_init_random(&c->m, seed);
	struct nn_optim_config o = nn_optim_defaults();
	CHECK(clip_trainer_init(&c->t, &c->m, &o) == 0);
	make_batch(&c->b);
}

static void teardown(struct grad_case *c)
{
	clip_trainer_free(&c->t);
	clip_model_free(&c->m);
}

static void test_loss_grad_every_parameter(void)
{
	struct grad_case c = { .scale = 100 };
	setup(&c, 3);
	/* Weights at init are so small that the loss hardly depends on most of
	 * them; larger ones make every path count. */
	for (int i = 0; i < c.m.params.n; i++) {
		const struct nn_param *it = &c.m.params.items[i];
		if (it->ndim >= 2)
			nn_param_init_normal(&c.m.params, i, 0.3f, 100 + (uint64_t)i);
	}
	int checked = 0;
	for (int i = 0; i < c.m.params.n && !test_failed_; i++) {
		c.index = i;
		const struct nn_param *it = &c.m.params.items[i];
		struct gradcheck g = { loss_fwd, loss_bwd, &c, .n_out = 1, .step = 1e-2f, .rtol = 3e-2f, .atol = 2e-3f,
		                       .max_checks = 6,
		                       .in = { { it->name, nn_param(&c.m.params, i), it->numel } } };
		CHECK_MSG(gradcheck(&g) == 0, "%s: %s", it->name, error_message());
		checked++;
	}
	CHECK(checked == c.m.params.n);
	teardown(&c);
}

/* The training forward and clip_encode_* compute the same features. */
static void test_train_forward_matches_inference(void)
{
	struct grad_case c = { 0 };
	setup(&c, 4);
	float img[B * 16], txt[B * 16], ref_img[B * 16], ref_txt[B * 16];
	CHECK(clip_trainer_features(&c.t, c.b.pixels, c.b.ids, B, img, txt) == 0);
	clip_encode_image(&c.m, c.b.pixels, B, ref_img, NULL);
	CHECK(clip_encode_text(&c.m, c.b.ids, B, ref_txt, NULL) == 0);
	double worst = 0;
	for (int i = 0; i < B * 16; i++) {
		worst = fmax(worst, fabs(img[i] - ref_img[i]));
		worst = fmax(worst, fabs(txt[i] - ref_txt[i]));
	}
	CHECK_MSG(worst < 1e-5, "largest difference %g", worst);
	/* an id outside the vocabulary is refused */
	c.b.ids[3] = 20;
	CHECK(clip_trainer_features(&c.t, c.b.pixels, c.b.ids, B, img, txt) < 0);
	CHECK_MSG(strstr(error_message(), "outside the vocabulary"), "%s", error_message());
	teardown(&c);
}

/* Equal captions are positives: twins with equal features and an equal
 * caption are left alone, where as negatives of each other they would be
 * pushed apart. */
/* Equal captions or equal ids link items, transitively; a missing id
 * links nothing. */
static void test_caption_groups(void)
{
	enum { N = 6 };
	const char *texts[N] = { "red heart", "a sticker of red heart", "a bag", "a bag", "cat", "dog" };
	const char *ids[N] = { "2764", "2764", "b1", "b2", "1f408", NULL };
	int group[N];
	clip_caption_groups(texts, ids, N, group);
	int want[N] = { 0, 0, 2, 2, 4, 5 };
	for (int i = 0; i < N; i++)
		CHECK_MSG(group[i] == want[i], "item %d: group %d, want %d", i, group[i], want[i]);
	/* a chain: 0-1 by id, 1-2 by caption -> one group */
	const char *t2[3] = { "x", "y", "y" }, *i2[3] = { "a", "a", "c" };
	clip_caption_groups(t2, i2, 3, group);
	CHECK(group[0] == 0 && group[1] == 0 && group[2] == 0);
	clip_caption_groups(t2, NULL, 3, group);
	CHECK(group[0] == 0 && group[1] == 1 && group[2] == 1);
}

static void test_loss_equal_captions(void)
{
	enum { N = 3, E = 2 };
	float img[N * E] = { 1, 0, 1, 0, 0, 1 }, txt[N * E] = { 1, 0, 1, 0, 0, 1 };
	int same[N] = { 0, 0, 2 }, distinct[N] = { 0, 1, 2 };
	float s = logf(10), di[N * E], dt[N * E], dls;
	double with = clip_contrastive_loss(img, txt, same, N, E, s, di, dt, &dls);
	/* by hand: rows 0, 1 see logits (10, 10, 0) with targets (1/2, 1/2, 0),
	 * row 2 (0, 0, 10) with (0, 0, 1); columns alike */
	double z = 2 + exp(-10.0), row_last = log(1 + 2 * exp(-10.0));
	CHECK_NEAR(with, (2 * log(z) + row_last) / 3, 1e-9);
	/* twins a little apart: as positives they are drawn together gently,
	 * as negatives pushed apart hard */
	img[2] = txt[2] = 0.96f;
	img[3] = txt[3] = 0.28f;
	double push_same = 0, push_distinct = 0;
	clip_contrastive_loss(img, txt, same, N, E, s, di, dt, &dls);
	for (int i = 0; i < N * E; i++)
		push_same = fmax(push_same, fabs(di[i]));
	clip_contrastive_loss(img, txt, distinct, N, E, s, di, dt, &dls);
	for (int i = 0; i < N * E; i++)
		push_distinct = fmax(push_distinct, fabs(di[i]));
	CHECK_MSG(push_distinct > 3 * push_same, "gradients %g (equal captions), %g (distinct)", push_same,
	          push_distinct);
	/* the clamp: beyond ln 100 the scale stops and has no gradient */
	dls = 1;
	double a = clip_contrastive_loss(img, txt, distinct, N, E, 6.0f, di, dt, &dls);
	double b = clip_contrastive_loss(img, txt, distinct, N, E, logf(100), NULL, NULL, NULL);
	CHECK_NEAR(a, b, 1e-6);
	CHECK(dls == 0);
}

static void test_retrieval(void)
{
	enum { N = 4, E = 2 };
	/* texts 0, 1 share a caption; text 2 finds image 3 (wrong), text 3 image 3 */
	float img[N * E] = { 1, 0, 0.8f, 0.6f, 0, 1, -0.6f, 0.8f };
	float txt[N * E] = { 0.8f, 0.6f, 1, 0, -0.6f, 0.8f, -0.6f, 0.8f };
	int group[N] = { 0, 0, 2, 3 };
	struct clip_retrieval r;
	clip_retrieval_eval(img, txt, group, N, E, &r);
	CHECK_NEAR(r.t2i, 0.75, 1e-12);
	CHECK_NEAR(r.chance, (2 + 2 + 1 + 1) / 16.0, 1e-12);
	/* image 3 is as near text 2 as text 3: the first wins, which is wrong */
	CHECK_NEAR(r.i2t, 0.75, 1e-12);
}

static void test_augment(void)
{
	struct image img;
	CHECK(image_alloc(&img, 12, 9, 4) == 0);
	for (size_t i = 0; i < image_bytes(&img); i++)
		img.pixels[i] = (uint8_t)(i * 37 % 251);
	float a[3 * 8 * 8], b[3 * 8 * 8];
	struct augment_config off = { 0 }, on = { .enabled = 1, .crop_min = 0.6f, .flip = 1 };
	CHECK(augment_clip_pixels(&img, 8, &off, 1, 7, a) == 0);
	CHECK(clip_preprocess(&img, 8, RESAMPLE_BICUBIC, b) == 0);
	CHECK(memcmp(a, b, sizeof a) == 0);
	CHECK(augment_clip_pixels(&img, 8, &on, 1, 7, a) == 0);
	CHECK(augment_clip_pixels(&img, 8, &on, 1, 7, b) == 0);
	CHECK(memcmp(a, b, sizeof a) == 0);
	int flips = 0, differ = 0;
	for (uint64_t d = 0; d < 200; d++) {
		struct augment_crop k;
		augment_choose(&on, 12, 9, 1, d, &k);
		double frac = (double)k.w * k.h / (12 * 9);
		CHECK_MSG(k.x >= 0 && k.y >= 0 && k.x + k.w <= 12 && k.y + k.h <= 9, "draw %d: %d,%d %dx%d", (int)d, k.x,
		          k.y, k.w, k.h);
		CHECK_MSG(frac > 0.45 && frac <= 1.0, "draw %d: area fraction %g", (int)d, frac);
		flips += k.flip;
		CHECK(augment_clip_pixels(&img, 8, &on, 1, d, b) == 0);
		differ += memcmp(a, b, sizeof a) != 0;
	}
	CHECK_MSG(flips > 70 && flips < 130, "%d flips in 200", flips);
	CHECK(differ > 190);
	image_free(&img);
}

/* A few steps on one batch lower its loss; the scale stays clamped. */
static void test_steps_lower_loss(void)
{
	struct grad_case c = { 0 };
	struct clip_config cfg = tiny_config();
	clip_model_init_trainable(&c.m, &cfg);
	clip_init_random(&c.m, 9);
	struct nn_optim_config o = nn_optim_defaults();
	o.lr = 3e-3f;
	CHECK(clip_trainer_init(&c.t, &c.m, &o) == 0);
	make_batch(&c.b);
	float first = 0, loss = 0;
	for (int s = 0; s < 30; s++) {
		CHECK(clip_trainer_step(&c.t, c.b.pixels, c.b.ids, c.b.group, B, &loss) == NN_STEP_TAKEN);
		if (s == 0)
			first = loss;
	}
	CHECK_MSG(loss < 0.5 * first, "loss %g after 30 steps, %g at first", loss, first);
	CHECK(clip_logit_scale(&c.m) <= 100.001f);
	CHECK(clip_trainer_loss(&c.t, c.b.pixels, c.b.ids, c.b.group, 0, &loss) < 0);
	teardown(&c);
}

static void test_config_json_reads_back(void)
{
	struct clip_config cfg = tiny_config();
	char *json = clip_open_clip_config_json(&cfg);
	CHECK(strstr(json, "\"heads\": 2") && strstr(json, "\"head_width\": 16") && strstr(json, "\"quick_gelu\": true"));
	free(json);
}

int main(void)
{
	int threads = omp_get_max_threads();
	omp_set_num_threads(1);
	RUN(test_loss_grad_every_parameter);
	omp_set_num_threads(threads);
	RUN(test_train_forward_matches_inference);
	RUN(test_caption_groups);
	RUN(test_loss_equal_captions);
	RUN(test_retrieval);
	RUN(test_augment);
	RUN(test_steps_lower_loss);
	RUN(test_config_json_reads_back);
	TEST_EXIT();
}
