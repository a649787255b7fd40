/* The judge (lib/judge): the whole network's loss against finite
 * differences, its config JSON, its checkpoint loader's errors, the label
 * and shift helpers, and a few training steps that learn a trivial task. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <omp.h>

#include "core/error.h"
#include "core/tool.h"
#include "judge/judge_model.h"
#include "judge/judge_train.h"
#include "nn/checkpoint.h"
#include "nn/gradcheck.h"
#include "nn/ops.h"
#include "test.h"

static char tmpdir[256];

/* A tiny judge: images of 1 x 16 x 16, width 16 (res blocks of 32 and
 * 64 channels at 8x8 and 4x4), pooled to 2x2, 5 features, 3 classes. */
static const struct judge_config tiny = { .classes = 3, .channels = 1, .image_size = 16, .width = 16,
	                                      .features = 5, .pool = 2 };

static void fill(float *x, size_t n, uint64_t seed)
{
	uint64_t s = seed;
	for (size_t i = 0; i < n; i++) {
		s = s * 6364136223846793005u + 1442695040888963407u;
		x[i] = 2 * ((float)(s >> 40) / (float)(1 << 24)) - 1;
	}
}

/* ---- the loss against finite differences ---- */

struct loss_case {
	struct judge m;
	struct nn_arena a;
	float *x;
	int32_t labels[2];
	float *logits; /* of the last forward pass, kept for the backward one */
	int B;
};

/* out: the cross-entropy of each row */
static void loss_fwd(void *ctx, float *out)
{
	struct loss_case *c = ctx;
	nn_arena_reset(&c->a);
	c->logits = judge_forward(&c->m, &c->a, c->x, c->B);
	nn->cross_entropy_forward(out, c->logits, c->labels, c->B, c->m.cfg.classes);
}

static void loss_bwd(void *ctx, float *const *grad, const float *dout)
{
	struct loss_case *c = ctx;
	float *dlogits = nn_arena_zeros(&c->a, (size_t)c->B * c->m.cfg.classes);
	nn->cross_entropy_backward(dlogits, c->logits, c->labels, dout, c->B, c->m.cfg.classes);
	nn_params_zero_grad(&c->m.params);
	judge_backward(&c->m, &c->a, dlogits);
	for (size_t i = 0; i < c->m.params.total; i++)
		grad[0][i] += c->m.params.grad[i];
}

static void test_loss_grad(void)
{
	struct loss_case c = { .B = 2, .labels = { 0, 2 } };
	judge_init(&c.m, &tiny, 1);
	judge_init_random(&c.m, 3);
	/* norms away from the identity, so their gradients are tested in
	 * general position */
	for (int i = 0; i < c.m.params.n; i++)
		if (strstr(c.m.params.items[i].name, "norm")) {
			float *p = nn_param(&c.m.params, i);
			size_t n = c.m.params.items[i].numel;
			float *d = xmalloc(n * sizeof *d);
			fill(d, n, 100 + (uint64_t)i);
			for (size_t j = 0; j < n; j++)
				p[j] += 0.3f * d[j];
			free(d);
		}
	size_t nx = (size_t)c.B * tiny.channels * tiny.image_size * tiny.image_size;
	c.x = xmalloc(nx * sizeof *c.x);
	fill(c.x, nx, 5);
	/* L is a sum of two float32 losses through five layers: steps and
	 * tolerances as the VQGAN's whole-coder checks */
	struct gradcheck g = { loss_fwd, loss_bwd, &c, .n_out = (size_t)c.B, .step = 3e-3f, .atol = 4e-3f,
		                   .rtol = 2e-2f, .max_checks = 400,
		                   .in = { { "params", c.m.params.data, c.m.params.total } } };
	CHECK_MSG(gradcheck(&g) == 0, "%s", error_message());
	free(c.x);
	nn_arena_free(&c.a);
	judge_free(&c.m);
}

/* Every parameter gets a gradient (none is left out of the backward pass). */
static void test_every_param_has_gradient(void)
{
	struct judge m;
	struct nn_arena a = { 0 };
	judge_init(&m, &tiny, 1);
	judge_init_random(&m, 4);
	size_t nx = 3 * (size_t)tiny.image_size * tiny.image_size;
	float *x = xmalloc(nx * sizeof *x);
	fill(x, nx, 6);
	float *logits = judge_forward(&m, &a, x, 3);
	int32_t labels[3] = { 0, 1, 2 };
	float dloss[3] = { 1, 1, 1 }, *dlogits = nn_arena_zeros(&a, 9);
	nn->cross_entropy_backward(dlogits, logits, labels, dloss, 3, 3);
	judge_backward(&m, &a, dlogits);
	for (int i = 0; i < m.params.n; i++) {
		const float *gr = nn_param_grad(&m.params, i);
		double s = 0;
		for (size_t j = 0; j < m.params.items[i].numel; j++)
			s += fabs(gr[j]);
		CHECK_MSG(s > 0, "%s has no gradient", m.params.items[i].name);
	}
	free(x);
	nn_arena_free(&a);
	judge_free(&m);
}

/* ---- config, checkpoint ---- */

static void test_config_json(void)
{
	char *json = judge_config_json(&tiny);
	struct judge_config c;
	CHECK_MSG(judge_config_from_json(&c, json) == 0, "%s", error_message());
	CHECK(!memcmp(&c, &tiny, sizeof c));
	free(json);
	CHECK(judge_config_from_json(&c, "{\"classes\": 3, \"channels\": 1, \"image_size\": 12, \"width\": 24, "
	                             "\"features\": 5}") < 0);
	CHECK_MSG(strstr(error_message(), "multiple of 16"), "%s", error_message());
	CHECK(judge_config_from_json(&c, "{\"classes\": 3, \"channels\": 2, \"image_size\": 12, \"width\": 16, "
	                             "\"features\": 5}") < 0);
	CHECK(judge_config_from_json(&c, "{\"classes\": 1, \"channels\": 1, \"image_size\": 12, \"width\": 16, "
	                             "\"features\": 5}") < 0);
	CHECK(judge_config_from_json(&c, "{\"classes\": 3, \"channels\": 1, \"width\": 16, \"features\": 5}") < 0);
	CHECK_MSG(strstr(error_message(), "'image_size' is missing"), "%s", error_message());
	/* without "pool": global pooling */
	CHECK(judge_config_from_json(&c, "{\"classes\": 3, \"channels\": 1, \"image_size\": 12, \"width\": 16, "
	                             "\"features\": 5}") == 0 && c.pool == 1);
	CHECK(judge_config_from_json(&c, "{\"classes\": 3, \"channels\": 1, \"image_size\": 12, \"width\": 16, "
	                             "\"features\": 5, \"pool\": 2}") < 0);
	CHECK_MSG(strstr(error_message(), "pool 2 does not divide 3"), "%s", error_message());
	CHECK(judge_config_from_json(&c, "[1, 2]") < 0);
	CHECK(judge_config_from_json(&c, "{\"classes\": -3") < 0);
}

static void test_save_load(void)
{
	struct judge m, back;
	judge_init(&m, &tiny, 0);
	judge_init_random(&m, 9);
	char path[400], *json = judge_config_json(&tiny);
	snprintf(path, sizeof path, "%s/j.safetensors", tmpdir);
	CHECK(nn_params_save(path, &m.params, &(struct st_meta){ "config", json }, 1) == 0);
	CHECK_MSG(judge_load(&back, path, 0) == 0, "%s", error_message());
	CHECK(back.params.total == m.params.total &&
	      !memcmp(back.params.data, m.params.data, m.params.total * sizeof(float)));
	judge_free(&back);

	/* no config; a truncated file */
	CHECK(nn_params_save(path, &m.params, NULL, 0) == 0);
	CHECK(judge_load(&back, path, 0) < 0);
	CHECK_MSG(strstr(error_message(), "not a judge model"), "%s", error_message());
	CHECK(nn_params_save(path, &m.params, &(struct st_meta){ "config", json }, 1) == 0);
	CHECK(truncate(path, 100) == 0);
	CHECK(judge_load(&back, path, 0) < 0);
	CHECK_MSG(strstr(error_message(), path), "%s", error_message());
	/* another model's shapes */
	struct judge other;
	struct judge_config wide = tiny;
	wide.features = 6;
	judge_init(&other, &wide, 0);
	CHECK(nn_params_save(path, &other.params, &(struct st_meta){ "config", json }, 1) == 0);
	CHECK(judge_load(&back, path, 0) < 0);
	CHECK_MSG(strstr(error_message(), "feat.weight"), "%s", error_message());
	judge_free(&other);
	free(json);
	judge_free(&m);
	unlink(path);
}

/* ---- helpers ---- */

static void test_labels(void)
{
	struct record r = RECORD_INIT;
	int label = -1;
	CHECK(judge_record_label(&r, 3, &label) == 1);
	record_set_int(&r, "label", 2);
	CHECK(judge_record_label(&r, 3, &label) == 0 && label == 2);
	record_set_int(&r, "label", 3);
	CHECK(judge_record_label(&r, 3, &label) < 0);
	CHECK_MSG(strstr(error_message(), "label 3 is not a class of 3"), "%s", error_message());
	record_set_int(&r, "label", -1);
	CHECK(judge_record_label(&r, 3, &label) < 0);
	record_set_str(&r, "label", "shirt");
	CHECK(judge_record_label(&r, 3, &label) < 0);
	CHECK_MSG(strstr(error_message(), "not an integer"), "%s", error_message());
	record_free(&r);
}

static void test_shift(void)
{
	float x[2 * 3 * 3], want[2 * 3 * 3];
	for (int i = 0; i < 18; i++)
		x[i] = (float)i;
	/* right by one, up by one: the first column and the last row repeat */
	judge_shift(x, 2, 3, 1, -1);
	for (int c = 0; c < 2; c++)
		for (int y = 0; y < 3; y++)
			for (int xx = 0; xx < 3; xx++) {
				int sy = y + 1 > 2 ? 2 : y + 1, sx = xx - 1 < 0 ? 0 : xx - 1;
				want[c * 9 + y * 3 + xx] = (float)(c * 9 + sy * 3 + sx);
			}
	CHECK(!memcmp(x, want, sizeof x));
	int seen[5][5] = { { 0 } };
	for (uint64_t d = 0; d < 2000; d++) {
		int dx, dy;
		judge_shift_at(7, d, 2, &dx, &dy);
		CHECK(dx >= -2 && dx <= 2 && dy >= -2 && dy <= 2);
		seen[dx + 2][dy + 2]++;
	}
	for (int i = 0; i < 25; i++)
		CHECK_MSG(seen[i / 5][i % 5] > 40, "shift (%d, %d) drawn %d times of 2000", i / 5 - 2, i % 5 - 2,
		          seen[i / 5][i % 5]);
}

/* A few steps learn to tell a bright image from a dark one. */
static void test_training_learns(void)
{
	struct judge m;
	struct judge_trainer t;
	judge_init(&m, &tiny, 1);
	judge_init_random(&m, 1);
	struct nn_optim_config oc = nn_optim_defaults();
	oc.lr = 3e-3f;
	CHECK(judge_trainer_init(&t, &m, &oc) == 0);
	int B = 8, per = tiny.image_size * tiny.image_size;
	float *x = xmalloc((size_t)B * per * sizeof *x);
	int32_t labels[8];
	float loss = 0, first = 0;
	int right = 0;
	for (int step = 0; step < 30; step++) {
		fill(x, (size_t)B * per, 50 + (uint64_t)step);
		for (int b = 0; b < B; b++) {
			labels[b] = (b + step) % 3;
			for (int i = 0; i < per; i++)
				x[b * per + i] = 0.2f * x[b * per + i] + 0.7f * (float)(labels[b] - 1);
		}
		CHECK(judge_trainer_step(&t, x, labels, B, &loss, &right) == NN_STEP_TAKEN);
		if (step == 0)
			first = loss;
	}
	CHECK_MSG(loss < 0.5f * first && right >= 7, "loss %g (first %g), %d of 8 right", loss, first, right);
	free(x);
	judge_trainer_free(&t);
	judge_free(&m);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "%s/test_judge.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		printf("FAIL mkdtemp: %s\n", tmpdir);
		return 1;
	}
	/* tiny tensors: threads would only add synchronisation */
	omp_set_num_threads(1);
	RUN(test_loss_grad);
	RUN(test_every_param_has_gradient);
	RUN(test_config_json);
	RUN(test_save_load);
	RUN(test_labels);
	RUN(test_shift);
	RUN(test_training_learns);
	rmdir(tmpdir);
	TEST_EXIT();
}
