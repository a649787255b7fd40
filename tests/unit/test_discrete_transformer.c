/* The discrete backbone's transformer (lib/diffusion/discrete_transformer.h):
 * logits and parameter gradients against PyTorch for two configs
 * (tests/golden/diffusion/dtx.safetensors, written by make_dtx_golden.py
 * beside it), the backward pass against finite differences, the loader's
 * and the forward pass's errors, and results independent of the thread
 * count. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <omp.h>

#include "core/error.h"
#include "diffusion/discrete_transformer.h"
#include "golden.h"
#include "nn/checkpoint.h"
#include "nn/gradcheck.h"
#include "nn/ops.h"
#include "nn/safetensors.h"
#include "test.h"

static struct st_file *fixture;

/* ---- helpers ---- */

static const struct st_entry *entry(const char *prefix, const char *name)
{
	char full[512];
	snprintf(full, sizeof full, "%s/%s", prefix, name);
	const struct st_entry *e = st_find(fixture, full);
	if (!e) {
		fprintf(stderr, "fixture lacks %s\n", full);
		abort();
	}
	return e;
}

static float *read_floats(const char *prefix, const char *name, size_t *n)
{
	const struct st_entry *e = entry(prefix, name);
	float *v = malloc(e->numel * sizeof *v);
	if (st_read_f32(e, v, e->numel) < 0)
		abort();
	if (n)
		*n = e->numel;
	return v;
}

static void *read_raw(const char *prefix, const char *name)
{
	const struct st_entry *e = entry(prefix, name);
	void *v = malloc(e->nbytes);
	memcpy(v, e->data, e->nbytes);
	return v;
}

/* A small config of the tests' own (not the fixture's). */
static struct dtx_config small_config(int cond_self_attn)
{
	return (struct dtx_config){ .K = 5, .h = 2, .w = 3, .width = 8, .depth = 1, .heads = 2, .mlp_hidden = 12,
	                            .cond_dim = 3, .cond_slots = 2, .cond_self_attn = cond_self_attn, .T = 4 };
}

/* Every parameter uniform in [-0.5, 0.5): large enough that all paths matter. */
static void init_uniform(struct dtx *m, uint64_t seed)
{
	for (int i = 0; i < m->params.n; i++)
		nn_param_init_uniform(&m->params, i, -0.5f, 0.5f, seed);
}

struct inputs {
	int32_t *tokens, *t;
	float *cond;
	uint8_t *valid;
	int B, S;
};

static struct inputs make_inputs(const struct dtx_config *c, int B, int S, uint64_t seed)
{
	int L = c->h * c->w;
	struct inputs in = { malloc((size_t)B * L * 4), malloc((size_t)B * 4), malloc((size_t)B * S * c->cond_dim * 4),
	                     malloc((size_t)B * S), B, S };
	srand((unsigned)seed);
	for (int i = 0; i < B * L; i++)
		in.tokens[i] = i % 3 == 0 ? c->K : rand() % c->K;
	for (int b = 0; b < B; b++)
		in.t[b] = (b * 3 + 1) % c->T;
	for (int i = 0; i < B * S * c->cond_dim; i++)
		in.cond[i] = (float)(rand() / (RAND_MAX + 1.0) * 2 - 1);
	memset(in.valid, 1, (size_t)B * S);
	if (S > 1)
		in.valid[S - 1] = 0; /* row 0's last slot is masked */
	return in;
}

static void free_inputs(struct inputs *in)
{
	free(in->tokens);
	free(in->t);
	free(in->cond);
	free(in->valid);
}

/* ---- against PyTorch ---- */

static void golden_case(const char *prefix)
{
	char key[64];
	snprintf(key, sizeof key, "%s.config", prefix);
	const char *json = st_metadata(fixture, key);
	struct dtx_config c;
	CHECK_MSG(json && dtx_config_from_json(&c, json) == 0, "config %s: %s", prefix, error_message());
	if (test_failed_)
		return;
	struct dtx m;
	dtx_init(&m, &c, 1);
	for (int i = 0; i < m.params.n; i++) {
		char name[512];
		snprintf(name, sizeof name, "param/%s", m.params.items[i].name);
		size_t n;
		float *v = read_floats(prefix, name, &n);
		CHECK(n == m.params.items[i].numel);
		nn->upload(nn_param(&m.params, i), v, n * sizeof *v);
		free(v);
	}
	const struct st_entry *te = entry(prefix, "tokens"), *ce = entry(prefix, "cond");
	int B = (int)te->shape[0], S = (int)ce->shape[1];
	int32_t *tokens = read_raw(prefix, "tokens"), *t = read_raw(prefix, "t");
	uint8_t *valid = read_raw(prefix, "cond_valid");
	float *cond = read_floats(prefix, "cond", NULL), *R = read_floats(prefix, "R", NULL);
	size_t nlogits;
	float *want = read_floats(prefix, "logits", &nlogits);
	CHECK(nlogits == (size_t)B * c.K * c.h * c.w);

	struct nn_arena a = {0};
	nn_params_zero_grad(&m.params);
	const float *logits = dtx_forward(&m, &a, tokens, t, cond, valid, B, S);
	CHECK_MSG(logits, "%s", error_message());
	if (!logits)
		return;
	double worst = 0;
	for (size_t i = 0; i < nlogits; i++) {
		double d = fabs((double)logits[i] - want[i]) / fmax(1.0, fabs(want[i]));
		worst = fmax(worst, d);
	}
	printf("# %s: logits max error %.2e (max |logit| scale 1)\n", prefix, worst);
	CHECK_MSG(worst <= 1e-5, "%s: logits differ by %g", prefix, worst);

	dtx_backward(&m, &a, R);
	/* Relative per element, with floors at 1% of the tensor's largest and
	 * 1e-3 of the largest of all (the key projections' biases have a zero
	 * gradient in exact arithmetic: softmax ignores a shift shared by all
	 * keys). */
	float *g[1024];
	double overall = 0;
	CHECK(m.params.n <= 1024);
	for (int i = 0; i < m.params.n && i < 1024; i++) {
		char name[512];
		snprintf(name, sizeof name, "grad/%s", m.params.items[i].name);
		size_t n;
		g[i] = read_floats(prefix, name, &n);
		CHECK(n == m.params.items[i].numel);
		for (size_t j = 0; j < n; j++)
			overall = fmax(overall, fabs(g[i][j]));
	}
	double worst_grad = 0;
	const char *worst_name = "";
	for (int i = 0; i < m.params.n && i < 1024; i++) {
		size_t n = m.params.items[i].numel;
		const float *got = nn_param_grad(&m.params, i);
		double scale = 0;
		for (size_t j = 0; j < n; j++)
			scale = fmax(scale, fabs(g[i][j]));
		double floor = fmax(1e-2 * scale, 1e-3 * overall);
		for (size_t j = 0; j < n; j++) {
			double d = fabs((double)got[j] - g[i][j]) / fmax(fabs(g[i][j]), floor);
			if (d > worst_grad) {
				worst_grad = d;
				worst_name = m.params.items[i].name;
			}
		}
		free(g[i]);
	}
	printf("# %s: gradients max relative error %.2e (%s)\n", prefix, worst_grad, worst_name);
	CHECK_MSG(worst_grad <= 1e-4, "%s: gradient of %s differs by %g relative", prefix, worst_name, worst_grad);

	nn_arena_free(&a);
	free(tokens);
	free(t);
	free(valid);
	free(cond);
	free(R);
	free(want);
	dtx_free(&m);
}

static void test_matches_torch_with_cond_self_attn(void)
{
	golden_case("A");
}

static void test_matches_torch_other_sizes(void)
{
	golden_case("B");
}

/* ---- finite differences ---- */

struct grad_case {
	struct dtx m;
	struct nn_arena a;
	struct inputs in;
	int nin;
	int index[GRADCHECK_MAX_INPUTS]; /* parameter per gradcheck input; -1: all of them */
};

static void dtx_fwd(void *ctx, float *out)
{
	struct grad_case *g = ctx;
	nn_arena_reset(&g->a);
	const float *y = dtx_forward(&g->m, &g->a, g->in.tokens, g->in.t, g->in.cond, g->in.valid, g->in.B, g->in.S);
	memcpy(out, y, (size_t)g->in.B * g->m.cfg.K * g->m.cfg.h * g->m.cfg.w * sizeof *out);
}

static void dtx_bwd(void *ctx, float *const *grad, const float *dout)
{
	struct grad_case *g = ctx;
	nn_params_zero_grad(&g->m.params);
	dtx_backward(&g->m, &g->a, dout);
	for (int k = 0; k < g->nin; k++) {
		const float *src = g->index[k] < 0 ? g->m.params.grad : nn_param_grad(&g->m.params, g->index[k]);
		size_t n = g->index[k] < 0 ? g->m.params.total : g->m.params.items[g->index[k]].numel;
		for (size_t i = 0; i < n; i++)
			grad[k][i] += src[i];
	}
}

static void test_gradcheck(void)
{
	static const char *names[] = {
		"content_emb.emb.weight", "content_emb.width_emb.weight", "cond_slot.weight", "cond_attn.ln.bias",
		"blocks.0.ln1.emb.weight", "blocks.0.ln1_1.linear.weight", "blocks.0.attn2.k_proj.weight",
		"to_logits.linear.bias",
	};
	for (int sa = 0; sa <= 1; sa++) {
		struct grad_case g = {0};
		struct dtx_config c = small_config(sa);
		dtx_init(&g.m, &c, 1);
		init_uniform(&g.m, 11 + sa);
		g.in = make_inputs(&c, 2, 2, 5);
		struct gradcheck gc = { dtx_fwd, dtx_bwd, &g, .n_out = (size_t)2 * c.K * c.h * c.w };
		if (sa) { /* named tensors, every element */
			for (int k = 0; k < 8; k++) {
				int i = nn_params_find(&g.m.params, names[k]);
				CHECK_MSG(i >= 0, "no parameter %s", names[k]);
				g.index[k] = i;
				gc.in[k] = (struct gradcheck_input){ names[k], nn_param(&g.m.params, i), g.m.params.items[i].numel };
			}
			g.nin = 8;
		} else { /* the whole buffer, a spread of elements */
			g.index[0] = -1;
			gc.in[0] = (struct gradcheck_input){ "all parameters", g.m.params.data, g.m.params.total };
			gc.max_checks = 400;
			g.nin = 1;
		}
		CHECK_MSG(gradcheck(&gc) == 0, "cond_self_attn %d: %s", sa, error_message());
		nn_arena_free(&g.a);
		free_inputs(&g.in);
		dtx_free(&g.m);
	}
}

/* ---- loading ---- */

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
	static char buf[4][512];
	static int next;
	char *b = buf[next++ % 4];
	snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
	return b;
}

/* Saves m's parameters with `json` as the config (NULL: none). */
static void save_with_config(const struct dtx *m, const char *path, const char *json)
{
	struct st_meta meta = { "config", json };
	CHECK_MSG(nn_params_save(path, &m->params, &meta, json ? 1 : 0) == 0, "%s", error_message());
}

/* dtx_load must fail with a message naming the file and containing want. */
static void check_load_fails(const char *path, const char *want)
{
	struct dtx m;
	int rc = dtx_load(&m, path, 0);
	CHECK_MSG(rc < 0, "%s loaded", path);
	if (rc == 0) {
		dtx_free(&m);
		return;
	}
	CHECK_MSG(strstr(error_message(), path) && strstr(error_message(), want), "message '%s' lacks '%s'",
	          error_message(), want);
}

static void test_load_roundtrip(void)
{
	struct dtx_config c = small_config(1);
	c.mlp_hidden = 20;
	struct dtx m, back;
	dtx_init(&m, &c, 0);
	dtx_init_random(&m, 3);
	char *json = dtx_config_json(&c);
	const char *path = tmp_path("good.safetensors");
	save_with_config(&m, path, json);
	CHECK_MSG(dtx_load(&back, path, 1) == 0, "%s", error_message());
	CHECK(!memcmp(&back.cfg, &c, sizeof c));
	CHECK(back.params.total == m.params.total && back.params.grad);
	CHECK(!memcmp(back.params.data, m.params.data, m.params.total * sizeof(float)));
	dtx_free(&back);
	dtx_free(&m);
	free(json);

	/* a config without the optional keys: mlp_hidden 4 width, no cond attention */
	struct dtx_config d;
	CHECK(dtx_config_from_json(&d, "{\"K\": 7, \"h\": 2, \"w\": 5, \"width\": 16, \"depth\": 3, \"heads\": 4, "
	                               "\"cond_dim\": 6, \"cond_slots\": 4, \"T\": 100}") == 0);
	CHECK(d.mlp_hidden == 64 && d.cond_self_attn == 0 && d.K == 7 && d.w == 5 && d.T == 100);
}

static void test_load_errors(void)
{
	struct dtx_config c = small_config(1);
	struct dtx m;
	dtx_init(&m, &c, 0);
	dtx_init_random(&m, 4);
	char *json = dtx_config_json(&c);

	/* a tensor missing */
	struct st_tensor t[256];
	int n = 0;
	for (int i = 0; i < m.params.n; i++) {
		const struct nn_param *it = &m.params.items[i];
		if (!strcmp(it->name, "blocks.0.attn1.v_proj.bias"))
			continue;
		t[n] = (struct st_tensor){ it->name, DT_FLOAT32, it->ndim, {0}, nn_param(&m.params, i), ST_AS_IS };
		memcpy(t[n].shape, it->shape, sizeof it->shape);
		n++;
	}
	struct st_meta meta = { "config", json };
	const char *path = tmp_path("missing.safetensors");
	CHECK(st_write(path, t, n, &meta, 1) == 0);
	check_load_fails(path, "'blocks.0.attn1.v_proj.bias' is missing");

	/* A wrong shape (the config claims another condition width), configs
	 * that do not fit the tensors, or no config at all: the weights saved
	 * with each as `file` must not load; want is part of the message. */
	struct dtx_config wide = c, no_attn = c;
	wide.cond_dim = 4;
	no_attn.cond_self_attn = 0;
	char *wide_json = dtx_config_json(&wide), *no_attn_json = dtx_config_json(&no_attn);
	const struct { const char *file, *json, *want; } configs[] = {
		{ "shape.safetensors", wide_json, "'cond_proj.weight' has shape [8,3] in the file, the model's is [8,4]" },
		{ "no_attn.safetensors", no_attn_json, "is not a parameter of the model" },
		{ "deeper.safetensors",
		  "{\"K\": 5, \"h\": 2, \"w\": 3, \"width\": 8, \"depth\": 2, \"heads\": 2, \"mlp_hidden\": 12, "
		  "\"cond_dim\": 3, \"cond_slots\": 2, \"cond_self_attn\": 1, \"T\": 4}",
		  "'blocks.1." },
		{ "heads.safetensors",
		  "{\"K\": 5, \"h\": 2, \"w\": 3, \"width\": 8, \"depth\": 1, \"heads\": 3, \"cond_dim\": 3, "
		  "\"cond_slots\": 2, \"T\": 4}",
		  "width 8 is not a multiple of 3 heads" },
		{ "no_k.safetensors",
		  "{\"h\": 2, \"w\": 3, \"width\": 8, \"depth\": 1, \"heads\": 2, \"cond_dim\": 3, \"cond_slots\": 2, "
		  "\"T\": 4}",
		  "'K' is missing" },
		{ "bad_json.safetensors", "{\"K\": 5,", "config" },
		{ "no_config.safetensors", NULL, "no \"config\"" },
	};
	for (size_t i = 0; i < sizeof configs / sizeof *configs; i++) {
		path = tmp_path(configs[i].file);
		save_with_config(&m, path, configs[i].json);
		check_load_fails(path, configs[i].want);
	}

	/* corrupt files: cut short, and not safetensors at all */
	path = tmp_path("good.safetensors");
	save_with_config(&m, path, json);
	FILE *f = fopen(path, "rb");
	char buf[1 << 16];
	size_t len = fread(buf, 1, sizeof buf, f);
	fclose(f);
	const char *cut = tmp_path("cut.safetensors");
	f = fopen(cut, "wb");
	fwrite(buf, 1, len - 100, f);
	fclose(f);
	check_load_fails(cut, "");
	const char *junk = tmp_path("junk.safetensors");
	f = fopen(junk, "wb");
	fputs("this is not a model", f);
	fclose(f);
	check_load_fails(junk, "");
	check_load_fails(tmp_path("absent.safetensors"), "");

	free(json);
	free(wide_json);
	free(no_attn_json);
	dtx_free(&m);
}

/* ---- forward input errors ---- */

static void test_forward_errors(void)
{
	struct dtx_config c = small_config(0);
	struct dtx m;
	dtx_init(&m, &c, 1);
	dtx_init_random(&m, 5);
	struct inputs in = make_inputs(&c, 2, 3, 6);
	struct nn_arena a = {0};
	CHECK_MSG(dtx_forward(&m, &a, in.tokens, in.t, in.cond, in.valid, 2, 3), "%s", error_message());
	nn_arena_reset(&a);

	in.tokens[4] = c.K + 1;
	CHECK(!dtx_forward(&m, &a, in.tokens, in.t, in.cond, NULL, 2, 3) && strstr(error_message(), "token 6"));
	in.tokens[4] = -1;
	CHECK(!dtx_forward(&m, &a, in.tokens, in.t, in.cond, NULL, 2, 3) && strstr(error_message(), "token -1"));
	in.tokens[4] = 0;
	nn_arena_reset(&a);
	in.t[1] = c.T;
	CHECK(!dtx_forward(&m, &a, in.tokens, in.t, in.cond, NULL, 2, 3) && strstr(error_message(), "time step 4"));
	in.t[1] = 0;
	nn_arena_reset(&a);
	memset(in.valid + 3, 0, 3);
	CHECK(!dtx_forward(&m, &a, in.tokens, in.t, in.cond, in.valid, 2, 3) &&
	      strstr(error_message(), "row 1 has no valid slot"));
	nn_arena_reset(&a);
	/* fewer slots than trained with (S = 1, the --no-knn condition) is fine */
	CHECK_MSG(dtx_forward(&m, &a, in.tokens, in.t, in.cond, NULL, 2, 1), "%s", error_message());

	nn_arena_free(&a);
	free_inputs(&in);
	dtx_free(&m);
}

/* ---- thread count ---- */

static void run_threads(struct dtx *m, const struct inputs *in, int threads, float *logits, float *grad)
{
	const struct dtx_config *c = &m->cfg;
	size_t n = (size_t)in->B * c->K * c->h * c->w;
	omp_set_num_threads(threads);
	struct nn_arena a = {0};
	nn_params_zero_grad(&m->params);
	const float *y = dtx_forward(m, &a, in->tokens, in->t, in->cond, in->valid, in->B, in->S);
	memcpy(logits, y, n * sizeof *y);
	float *d = malloc(n * sizeof *d);
	for (size_t i = 0; i < n; i++)
		d[i] = (float)((i * 7919) % 13) / 6.0f - 1.0f;
	dtx_backward(m, &a, d);
	memcpy(grad, m->params.grad, m->params.total * sizeof *grad);
	free(d);
	nn_arena_free(&a);
}

static void test_threads_bit_identical(void)
{
	/* large enough that the ops split their work across threads */
	struct dtx_config c = { .K = 40, .h = 6, .w = 10, .width = 64, .depth = 2, .heads = 4, .mlp_hidden = 256,
	                        .cond_dim = 24, .cond_slots = 5, .cond_self_attn = 1, .T = 20 };
	struct dtx m;
	dtx_init(&m, &c, 1);
	dtx_init_random(&m, 9);
	struct inputs in = make_inputs(&c, 4, 5, 10);
	size_t n = (size_t)in.B * c.K * c.h * c.w;
	float *l1 = malloc(n * 4), *l2 = malloc(n * 4);
	float *g1 = malloc(m.params.total * 4), *g2 = malloc(m.params.total * 4);
	int saved = omp_get_max_threads();
	run_threads(&m, &in, 1, l1, g1);
	run_threads(&m, &in, 2, l2, g2);
	omp_set_num_threads(saved);
	CHECK_MSG(!memcmp(l1, l2, n * 4), "logits differ between 1 and 2 threads");
	CHECK_MSG(!memcmp(g1, g2, m.params.total * 4), "gradients differ between 1 and 2 threads");
	free(l1);
	free(l2);
	free(g1);
	free(g2);
	free_inputs(&in);
	dtx_free(&m);
}

int main(void)
{
	fixture = golden_fixture("diffusion/dtx.safetensors", "open_fixture");
	if (!fixture)
		return 1;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_dtx.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		printf("FAIL mkdtemp\n");
		return 1;
	}
	RUN(test_matches_torch_with_cond_self_attn);
	RUN(test_matches_torch_other_sizes);
	RUN(test_gradcheck);
	RUN(test_load_roundtrip);
	RUN(test_load_errors);
	RUN(test_forward_errors);
	RUN(test_threads_bit_identical);
	st_close(fixture);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		return 1;
	TEST_EXIT();
}
