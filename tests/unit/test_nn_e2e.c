/* The engine's end-to-end check: two tiny models built from lib/nn/layers,
 * trained for a few AdamW steps (nn/optim.h) from PyTorch's starting weights
 * on fixed data, must match the norms of PyTorch's first gradients, follow
 * its loss curve and end at its weights. The models, data and curves are in
 * tests/golden/nn/e2e.safetensors, written by
 * tests/golden/nn/make_e2e_goldens.py (which describes both models). */
#include <stdint.h>
#include <stdio.h>

#include "core/tool.h"
#include "golden.h"
#include "nn/arena.h"
#include "nn/layers/conv.h"
#include "nn/layers/linear.h"
#include "nn/layers/norm.h"
#include "nn/layers/resblock.h"
#include "nn/layers/transformer.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/params.h"
#include "nn/safetensors.h"
#include "test.h"

/* The loss may differ from PyTorch's (float64) by this much relative to
 * itself, and a final weight tensor by this much in relative L2 norm. */
#define LOSS_RTOL 1e-4
#define WEIGHT_RTOL 1e-4

/* The first step's gradient norm of each parameter, relative and absolute. */
#define GRAD_RTOL 1e-4
#define GRAD_ATOL 1e-6

#define MAX_STEPS 32

static struct st_file *fixture;

static const struct st_entry *entry(const char *name, size_t numel)
{
	const struct st_entry *e = st_find(fixture, name);
	if (!e)
		die("e2e.safetensors: no tensor %s", name);
	if (e->numel != numel)
		die("e2e.safetensors: %s has %zu elements, expected %zu", name, e->numel, numel);
	return e;
}

static void read_f32(const char *name, float *dst, size_t n)
{
	if (st_read_f32(entry(name, n), dst, n) < 0)
		die("%s", error_message());
}

static void read_i32(const char *name, int32_t *dst, size_t n)
{
	const struct st_entry *e = entry(name, n);
	if (e->dtype != DT_INT32)
		die("e2e.safetensors: %s is not I32", name);
	memcpy(dst, e->data, n * sizeof *dst);
}

/* A backend copy of an I32 or F32 fixture tensor (n elements of 4 bytes),
 * kept for the whole test. */
static void *backend_tensor(const char *name, size_t n, enum dtype dtype)
{
	void *host = xmalloc(n * 4);
	if (dtype == DT_INT32)
		read_i32(name, host, n);
	else
		read_f32(name, host, n);
	void *dev = nn->alloc(n * 4);
	nn->upload(dev, host, n * 4);
	free(host);
	return dev;
}

static int32_t *backend_i32(const char *name, size_t n) { return backend_tensor(name, n, DT_INT32); }
static float *backend_f32(const char *name, size_t n) { return backend_tensor(name, n, DT_FLOAT32); }

/* Loads every parameter the C model registered from "<model>/init/<name>":
 * this also checks that our names and shapes are PyTorch's. */
static void load_init(struct nn_params *p, const char *model)
{
	for (int i = 0; i < p->n; i++) {
		char name[300];
		snprintf(name, sizeof name, "%s/init/%s", model, p->items[i].name);
		const struct st_entry *e = entry(name, p->items[i].numel);
		CHECK_MSG(e->ndim == p->items[i].ndim, "%s: %d dims, expected %d", name, e->ndim, p->items[i].ndim);
		for (int d = 0; d < e->ndim && d < p->items[i].ndim; d++)
			CHECK_MSG(e->shape[d] == p->items[i].shape[d], "%s: dim %d is %lld, expected %lld", name, d,
			          (long long)e->shape[d], (long long)p->items[i].shape[d]);
		float *host = xmalloc(p->items[i].numel * sizeof *host);
		read_f32(name, host, p->items[i].numel);
		nn->upload(nn_param(p, i), host, p->items[i].numel * sizeof *host);
		free(host);
	}
}

/* Compares "<model>/final/<name>" with our parameter after training, as
 * the norm of the difference relative to the norm of PyTorch's tensor: a
 * weight whose gradient is mostly rounding noise may take an AdamW step of
 * the other sign (about lr) on one side, which says nothing about the rest. */
static void check_final(const struct nn_params *p, const char *model, const char *param)
{
	int i = nn_params_find(p, param);
	CHECK_MSG(i >= 0, "no parameter %s", param);
	if (i < 0)
		return;
	size_t n = p->items[i].numel;
	char name[300];
	snprintf(name, sizeof name, "%s/final/%s", model, param);
	float *want = xmalloc(n * sizeof *want), *got = xmalloc(n * sizeof *got);
	read_f32(name, want, n);
	nn->download(got, nn_param(p, i), n * sizeof *got);
	double diff = 0, norm = 0, worst = 0;
	for (size_t j = 0; j < n; j++) {
		double d = (double)got[j] - want[j];
		diff += d * d;
		norm += (double)want[j] * want[j];
		if (fabs(d) > worst)
			worst = fabs(d);
	}
	double rel = sqrt(diff / norm);
	printf("# %s %s: |ours - torch| / |torch| = %.2g, max |ours - torch| = %.2g\n", model, param, rel, worst);
	CHECK_MSG(rel <= WEIGHT_RTOL, "%s: relative difference %.3g from torch", name, rel);
	free(want);
	free(got);
}

/* Compares each parameter's first gradient norm with PyTorch's. Walking
 * the parameters from the output back (reverse registration order), the
 * first mismatch reported is the one nearest the loss: the bug is in its
 * layer's backward pass or the one after it. Gradients that vanish in exact
 * arithmetic (a key bias, which softmax cannot see) are rounding noise on
 * both sides, hence the absolute floor. */
static void check_grad_norms(const struct nn_params *p, const char *model, float *scratch)
{
	double worst = 0;
	int at = 0;
	for (int i = p->n - 1; i >= 0; i--) {
		char name[300];
		snprintf(name, sizeof name, "%s/grad0_norm/%s", model, p->items[i].name);
		float want, sq;
		read_f32(name, &want, 1);
		nn->sum_squares(scratch, nn_param_grad(p, i), p->items[i].numel);
		nn->download(&sq, scratch, sizeof sq);
		double got = sqrt(sq), err = fabs(got - want) / (want + GRAD_ATOL / GRAD_RTOL);
		if (err > worst)
			worst = err, at = i;
		CHECK_MSG(fabs(got - want) <= GRAD_RTOL * want + GRAD_ATOL, "%s: gradient norm %.7g, torch %.7g",
		          p->items[i].name, got, want);
	}
	printf("# %s: first gradient norms within %.2g of torch's (worst: %s)\n", model, worst, p->items[at].name);
}

/* The mean of n backend floats, over `count` of them (ignored rows are 0). */
static double mean_of(struct nn_arena *a, const float *x, int n, int count)
{
	float *s = nn_arena_floats(a, 1), host;
	nn->sum(s, x, n);
	nn->download(&host, s, sizeof host);
	return (double)host / count;
}

/* Backend rows of `value` (the gradient of a mean loss with respect to each
 * row's loss). */
static float *filled(struct nn_arena *a, int n, float value)
{
	float *host = xmalloc(n * sizeof *host), *dev = nn_arena_floats(a, n);
	for (int i = 0; i < n; i++)
		host[i] = value;
	nn->upload(dev, host, n * sizeof *host);
	free(host);
	return dev;
}

/* Trains with the optimiser driver for the fixture's number of steps
 * (torch.optim.AdamW on every parameter, constant learning rate, clipping
 * as clip_grad_norm_) and compares the loss curve. */
static void train_and_compare(const char *model, struct nn_params *p,
                              double (*step_loss)(void *ctx, struct nn_arena *a, int train), void *ctx)
{
	char name[64];
	snprintf(name, sizeof name, "%s/loss", model);
	const struct st_entry *e = st_find(fixture, name);
	CHECK_MSG(e && e->ndim == 1 && e->numel >= 2 && e->numel <= MAX_STEPS + 1, "bad %s", name);
	if (!e || e->numel < 2 || e->numel > MAX_STEPS + 1)
		return;
	int steps = (int)e->numel - 1;
	float want[MAX_STEPS + 1], hp[6];
	read_f32(name, want, e->numel);
	snprintf(name, sizeof name, "%s/hparams", model);
	read_f32(name, hp, 6);
	struct nn_optim_config cfg = nn_optim_defaults();
	cfg.lr = hp[0];
	cfg.beta1 = hp[1];
	cfg.beta2 = hp[2];
	cfg.eps = hp[3];
	cfg.weight_decay = hp[4];
	cfg.clip_norm = hp[5];
	struct nn_optim opt;
	if (nn_optim_init(&opt, p, &cfg) < 0)
		die("%s", error_message());

	float *scratch = nn->alloc(sizeof(float));
	struct nn_arena a = {0};
	double worst = 0;
	for (int s = 0; s <= steps; s++) {
		int train = s < steps;
		nn_arena_reset(&a);
		double loss = step_loss(ctx, &a, train);
		if (s == 0)
			check_grad_norms(p, model, scratch);
		if (train)
			CHECK_MSG(nn_optim_step(&opt) == NN_STEP_TAKEN, "%s step %d was not taken", model, s);
		double rel = fabs(loss - want[s]) / fabs(want[s]);
		if (rel > worst)
			worst = rel;
		printf("# %s step %d: loss %.7f torch %.7f rel diff %.2g\n", model, s, loss, want[s], rel);
		CHECK_MSG(rel <= LOSS_RTOL, "%s step %d: loss %.7g, torch %.7g", model, s, loss, want[s]);
	}
	printf("# %s: worst relative loss difference %.3g over %d steps\n", model, worst, steps);
	nn_arena_free(&a);
	nn->free(scratch);
	nn_optim_free(&opt);
}

/* ---- the transformer ---- */

enum { LM_LAYERS = 2 };

struct lm {
	int V, D, H, T, B, VC, CD, TC;
	struct nn_params p;
	int tok_embed, pos_embed, cond_embed;
	struct nn_block blocks[LM_LAYERS];
	struct nn_layernorm ln_f;
	struct nn_linear head;
	int32_t *ids, *pos_ids, *targets, *cond_ids; /* backend copies of the data */
	uint8_t *cond_valid;
	int valid_targets;
};

static double lm_step(void *ctx, struct nn_arena *a, int train)
{
	struct lm *lm = ctx;
	struct nn_params *p = &lm->p;
	int N = lm->B * lm->T, NC = lm->B * lm->TC, D = lm->D, V = lm->V;

	float *tok = nn_arena_floats(a, (size_t)N * D), *pos = nn_arena_floats(a, (size_t)N * D);
	nn->embedding_forward(tok, lm->ids, nn_param(p, lm->tok_embed), N, D);
	nn->embedding_forward(pos, lm->pos_ids, nn_param(p, lm->pos_embed), N, D);
	float *x = nn_arena_floats(a, (size_t)N * D);
	nn->add(x, tok, pos, (size_t)N * D);
	float *cond = nn_arena_floats(a, (size_t)NC * lm->CD);
	nn->embedding_forward(cond, lm->cond_ids, nn_param(p, lm->cond_embed), NC, lm->CD);

	struct nn_block_act blocks[LM_LAYERS];
	const float *h = x;
	for (int l = 0; l < LM_LAYERS; l++)
		h = nn_block_forward(&lm->blocks[l], p, a, &blocks[l], h, lm->B, lm->T, cond, lm->cond_valid, lm->TC);
	struct nn_layernorm_act ln_f;
	struct nn_linear_act head;
	h = nn_layernorm_forward(&lm->ln_f, p, a, &ln_f, h, N);
	const float *logits = nn_linear_forward(&lm->head, p, a, &head, h, N);
	float *rows = nn_arena_floats(a, N);
	nn->cross_entropy_forward(rows, logits, lm->targets, N, V);
	double loss = mean_of(a, rows, N, lm->valid_targets);
	if (!train)
		return loss;

	float *dlogits = nn_arena_zeros(a, (size_t)N * V);
	nn->cross_entropy_backward(dlogits, logits, lm->targets, filled(a, N, 1.0f / lm->valid_targets), N, V);
	float *dnorm = nn_arena_zeros(a, (size_t)N * D);
	nn_linear_backward(&lm->head, p, &head, dnorm, dlogits);
	float *dh = nn_arena_zeros(a, (size_t)N * D);
	nn_layernorm_backward(&lm->ln_f, p, &ln_f, dh, dnorm);
	float *dcond = nn_arena_zeros(a, (size_t)NC * lm->CD);
	for (int l = LM_LAYERS - 1; l >= 0; l--) {
		float *dprev = nn_arena_zeros(a, (size_t)N * D);
		nn_block_backward(&lm->blocks[l], p, a, &blocks[l], dprev, dcond, dh);
		dh = dprev;
	}
	nn->embedding_backward(nn_param_grad(p, lm->tok_embed), dh, lm->ids, N, D);
	nn->embedding_backward(nn_param_grad(p, lm->pos_embed), dh, lm->pos_ids, N, D);
	nn->embedding_backward(nn_param_grad(p, lm->cond_embed), dcond, lm->cond_ids, NC, lm->CD);
	return loss;
}

static void test_transformer_follows_torch(void)
{
	int32_t cfg[9];
	read_i32("lm/config", cfg, 9);
	struct lm lm = {.V = cfg[0], .D = cfg[1], .H = cfg[2], .T = cfg[3], .B = cfg[4], .VC = cfg[5],
	                .CD = cfg[6], .TC = cfg[7]};
	CHECK_MSG(cfg[8] == LM_LAYERS, "the fixture's model has %d layers", cfg[8]);
	struct nn_params *p = &lm.p;
	lm.tok_embed = nn_params_add(p, "tok_embed", 2, (int64_t[]){lm.V, lm.D});
	lm.pos_embed = nn_params_add(p, "pos_embed", 2, (int64_t[]){lm.T, lm.D});
	lm.cond_embed = nn_params_add(p, "cond_embed", 2, (int64_t[]){lm.VC, lm.CD});
	struct nn_block_config bc = {.dim = lm.D, .heads = lm.H, .mlp_dim = 4 * lm.D, .act = NN_GELU_ERF,
	                             .causal = 1, .cond_dim = lm.CD, .ln_eps = 1e-5f};
	for (int l = 0; l < LM_LAYERS; l++) {
		char prefix[32];
		snprintf(prefix, sizeof prefix, "blocks.%d", l);
		nn_block_init(&lm.blocks[l], p, prefix, &bc);
	}
	nn_layernorm_init(&lm.ln_f, p, "ln_f", lm.D, 1e-5f);
	nn_linear_init(&lm.head, p, "head", lm.D, lm.V, 1);
	nn_params_alloc(p, 1);
	load_init(p, "lm");

	int N = lm.B * lm.T, NC = lm.B * lm.TC;
	lm.ids = backend_i32("lm/data/ids", N);
	lm.targets = backend_i32("lm/data/targets", N);
	lm.cond_ids = backend_i32("lm/data/cond_ids", NC);
	int32_t *host = xmalloc(N * sizeof *host);
	read_i32("lm/data/targets", host, N);
	for (int i = 0; i < N; i++)
		lm.valid_targets += host[i] >= 0;
	for (int i = 0; i < N; i++)
		host[i] = i % lm.T;
	lm.pos_ids = nn->alloc(N * sizeof *host);
	nn->upload(lm.pos_ids, host, N * sizeof *host);
	read_i32("lm/data/cond_valid", host, NC);
	uint8_t *valid = xmalloc(NC);
	for (int i = 0; i < NC; i++)
		valid[i] = host[i] != 0;
	lm.cond_valid = nn->alloc(NC);
	nn->upload(lm.cond_valid, valid, NC);
	free(valid);
	free(host);

	train_and_compare("lm", p, lm_step, &lm);
	check_final(p, "lm", "blocks.1.mlp.fc1.weight");
	check_final(p, "lm", "tok_embed");

	nn->free(lm.ids);
	nn->free(lm.targets);
	nn->free(lm.cond_ids);
	nn->free(lm.pos_ids);
	nn->free(lm.cond_valid);
	nn_params_free(p);
}

/* ---- the conv net ---- */

struct convnet {
	int B, CIN, HW, C1, C2, OUTS;
	struct nn_params p;
	struct nn_conv conv_in, down;
	struct nn_resblock blocks[2];
	struct nn_groupnorm norm_out;
	struct nn_linear head;
	float *images, *target;
};

static double convnet_step(void *ctx, struct nn_arena *a, int train)
{
	struct convnet *c = ctx;
	struct nn_params *p = &c->p;
	int B = c->B, HW = c->HW, C2 = c->C2;

	struct nn_conv_act conv_in, down;
	struct nn_resblock_act blocks[2];
	struct nn_groupnorm_act norm_out;
	struct nn_linear_act head;
	const float *h = nn_conv_forward(&c->conv_in, p, a, &conv_in, c->images, B, HW, HW);
	for (int i = 0; i < 2; i++)
		h = nn_resblock_forward(&c->blocks[i], p, a, &blocks[i], h, B, HW, HW);
	h = nn_conv_forward(&c->down, p, a, &down, h, B, HW, HW);
	int DHW = nn_conv2d_out_h(&down.g);
	size_t n_down = (size_t)B * C2 * DHW * DHW;
	const float *normed = nn_groupnorm_forward(&c->norm_out, p, a, &norm_out, h, B, DHW * DHW);
	float *act = nn_arena_floats(a, n_down);
	nn->act_forward(act, normed, n_down, NN_SILU);
	float *pooled = nn_arena_floats(a, (size_t)B * C2);
	nn->avgpool_forward(pooled, act, B * C2, DHW, DHW, DHW);
	const float *pred = nn_linear_forward(&c->head, p, a, &head, pooled, B);
	float *rows = nn_arena_floats(a, B);
	nn->mse_forward(rows, pred, c->target, B, c->OUTS);
	double loss = mean_of(a, rows, B, B);
	if (!train)
		return loss;

	float *dpred = nn_arena_zeros(a, (size_t)B * c->OUTS);
	nn->mse_backward(dpred, pred, c->target, filled(a, B, 1.0f / B), B, c->OUTS);
	float *dpooled = nn_arena_zeros(a, (size_t)B * C2);
	nn_linear_backward(&c->head, p, &head, dpooled, dpred);
	float *dact = nn_arena_zeros(a, n_down);
	nn->avgpool_backward(dact, dpooled, B * C2, DHW, DHW, DHW);
	float *dnormed = nn_arena_zeros(a, n_down);
	nn->act_backward(dnormed, normed, dact, n_down, NN_SILU);
	float *ddown = nn_arena_zeros(a, n_down);
	nn_groupnorm_backward(&c->norm_out, p, &norm_out, ddown, dnormed);
	float *dblock = nn_arena_zeros(a, (size_t)B * C2 * HW * HW);
	nn_conv_backward(&c->down, p, &down, dblock, ddown);
	float *dmid = nn_arena_zeros(a, (size_t)B * c->C1 * HW * HW);
	nn_resblock_backward(&c->blocks[1], p, a, &blocks[1], dmid, dblock);
	float *dconv_in = nn_arena_zeros(a, (size_t)B * c->C1 * HW * HW);
	nn_resblock_backward(&c->blocks[0], p, a, &blocks[0], dconv_in, dmid);
	nn_conv_backward(&c->conv_in, p, &conv_in, NULL, dconv_in);
	return loss;
}

static void test_convnet_follows_torch(void)
{
	int32_t cfg[6];
	read_i32("conv/config", cfg, 6);
	struct convnet c = {.B = cfg[0], .CIN = cfg[1], .HW = cfg[2], .C1 = cfg[3], .C2 = cfg[4], .OUTS = cfg[5]};
	struct nn_params *p = &c.p;
	nn_conv_init(&c.conv_in, p, "conv_in", c.CIN, c.C1, 3, 1, 1, 1);
	nn_resblock_init(&c.blocks[0], p, "blocks.0", c.C1, c.C1, 1e-6f);
	nn_resblock_init(&c.blocks[1], p, "blocks.1", c.C1, c.C2, 1e-6f);
	/* taming's downsampling: stride 2, padded on the right and bottom only */
	nn_conv_init(&c.down, p, "down", c.C2, c.C2, 3, 2, 0, 0);
	c.down.pad_bottom = c.down.pad_right = 1;
	nn_groupnorm_init(&c.norm_out, p, "norm_out", c.C2, 32, 1e-6f);
	nn_linear_init(&c.head, p, "head", c.C2, c.OUTS, 0);
	nn_params_alloc(p, 1);
	load_init(p, "conv");
	c.images = backend_f32("conv/data/images", (size_t)c.B * c.CIN * c.HW * c.HW);
	c.target = backend_f32("conv/data/target", (size_t)c.B * c.OUTS);

	train_and_compare("conv", p, convnet_step, &c);
	check_final(p, "conv", "norm_out.weight");
	check_final(p, "conv", "head.weight");

	nn->free(c.images);
	nn->free(c.target);
	nn_params_free(p);
}

int main(void)
{
	fixture = golden_fixture("nn/e2e.safetensors", "open_fixture");
	if (!fixture)
		return 1;
	RUN(test_transformer_follows_torch);
	RUN(test_convnet_follows_torch);
	st_close(fixture);
	TEST_EXIT();
}
