/* The optimiser driver: AdamW against PyTorch and a double-precision
 * reference, clipping, the learning-rate schedule, EMA, gradient
 * accumulation and skipped non-finite steps. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/tool.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/params.h"
#include "test.h"

static void upload_floats(float *dst, const float *src, size_t n) { nn->upload(dst, src, n * sizeof *src); }
static void download_floats(float *dst, const float *src, size_t n) { nn->download(dst, src, n * sizeof *dst); }

/* Two parameters: "w" [5] and "b" [3] (at offset 16: offsets are aligned). */
static void make_two_params(struct nn_params *p, const float *w, const float *b)
{
	memset(p, 0, sizeof *p);
	int64_t s5[1] = { 5 }, s3[1] = { 3 };
	nn_params_add(p, "w", 1, s5);
	nn_params_add(p, "b", 1, s3);
	nn_params_alloc(p, 1);
	upload_floats(nn_param(p, 0), w, 5);
	upload_floats(nn_param(p, 1), b, 3);
}

/* Gradients of exact binary fractions, so C and PyTorch see the same input. */
static void torch_case_grads(int t, float *g1, float *g2)
{
	const float a[5] = { 0.25f, -0.5f, 1.5f, -2.0f, 0.125f }, c[3] = { 3.0f, -0.75f, 0.5f };
	for (int i = 0; i < 5; i++)
		g1[i] = a[i] * (float)(t + 1) - 0.0625f * (float)t;
	for (int i = 0; i < 3; i++)
		g2[i] = c[i] / (float)(t + 1);
}

/* Expected values from torch 1.13 (/usr/bin/python3), weight decay 0.1 on
 * "w" only, clip_grad_norm_(max_norm=2) before each step:
 *
 *   p1 = torch.tensor([0.5, -1.25, 2.0, 0.0, 3.5], requires_grad=True)
 *   p2 = torch.tensor([0.1, -0.2, 0.3], requires_grad=True)
 *   opt = torch.optim.AdamW([{'params': [p1], 'weight_decay': 0.1},
 *                            {'params': [p2], 'weight_decay': 0.0}],
 *                           lr=0.01, betas=(0.9, 0.999), eps=1e-8)
 *   for t in range(4):
 *       g1 = torch.tensor([0.25, -0.5, 1.5, -2.0, 0.125]) * (t + 1) - 0.0625 * t
 *       g2 = torch.tensor([3.0, -0.75, 0.5]) / (t + 1)
 *       p1.grad, p2.grad = g1.clone(), g2.clone()
 *       norm = torch.nn.utils.clip_grad_norm_([p1, p2], max_norm=2.0)
 *       opt.step()
 *       print(torch.cat([p1, p2]).tolist(), norm.item())
 */
static const float torch_expected[4][8] = {
	{ 0.489500016f, -1.23874998f, 1.98800004f, 0.00999999978f, 3.48650002f, 0.0900000036f, -0.189999998f, 0.290000021f },
	{ 0.479032129f, -1.22764969f, 1.97609246f, 0.0198850986f, 3.47300029f, 0.081107296f, -0.181107283f, 0.281107306f },
	{ 0.468541324f, -1.21648157f, 1.96413672f, 0.0298287645f, 3.45952916f, 0.0732996985f, -0.173299685f, 0.273299694f },
	{ 0.45804745f, -1.20526445f, 1.95215166f, 0.0398122929f, 3.44610691f, 0.0664062351f, -0.166406229f, 0.266406238f },
};
static const float torch_norms[4] = { 4.04853392f, 5.37972164f, 7.80001831f, 10.342947f };

static void test_adamw_matches_torch(void)
{
	const float w0[5] = { 0.5f, -1.25f, 2.0f, 0.0f, 3.5f }, b0[3] = { 0.1f, -0.2f, 0.3f };
	struct nn_params p;
	make_two_params(&p, w0, b0);
	struct nn_optim_config c = nn_optim_defaults();
	c.lr = 0.01f;
	c.weight_decay = 0.1f;
	c.clip_norm = 2.0f;
	struct nn_optim o;
	CHECK(nn_optim_init(&o, &p, &c) == 0);
	nn_optim_set_decay(&o, 1, 0);
	double worst = 0;
	for (int t = 0; t < 4; t++) {
		float g1[5], g2[3];
		torch_case_grads(t, g1, g2);
		upload_floats(nn_param_grad(&p, 0), g1, 5);
		upload_floats(nn_param_grad(&p, 1), g2, 3);
		CHECK(nn_optim_step(&o) == NN_STEP_TAKEN);
		CHECK_NEAR(o.last_grad_norm, torch_norms[t], 1e-5);
		float got[8];
		download_floats(got, nn_param(&p, 0), 5);
		download_floats(got + 5, nn_param(&p, 1), 3);
		for (int i = 0; i < 8; i++) {
			double d = fabs((double)got[i] - torch_expected[t][i]);
			worst = d > worst ? d : worst;
		}
	}
	/* PyTorch keeps lr and betas as doubles; a few float ulps apart at most. */
	CHECK_MSG(worst <= 2e-7, "max |ours - torch| = %g", worst);
	CHECK(o.step == 4);
	nn_optim_free(&o);
	nn_params_free(&p);
}

/* AdamW in double precision, straight from the definition. */
static void reference_adamw(double *p, double *m, double *v, const double *g, int n, double lr, double b1,
                            double b2, double eps, double wd, int t)
{
	for (int i = 0; i < n; i++) {
		p[i] *= 1 - lr * wd;
		m[i] = b1 * m[i] + (1 - b1) * g[i];
		v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
		double mhat = m[i] / (1 - pow(b1, t)), vhat = v[i] / (1 - pow(b2, t));
		p[i] -= lr * mhat / (sqrt(vhat) + eps);
	}
}

/* The kernel itself over a buffer longer than one block and a thread
 * chunk, with a gradient scale, against the double reference. */
static void test_adamw_kernel_reference(void)
{
	enum { N = 70001 };
	float *hp = xmalloc(N * sizeof *hp), *hg = xmalloc(N * sizeof *hg);
	double *rp = xmalloc(N * sizeof *rp), *rm = xcalloc(N, sizeof *rm), *rv = xcalloc(N, sizeof *rv),
	       *rg = xmalloc(N * sizeof *rg);
	for (int i = 0; i < N; i++)
		rp[i] = hp[i] = (float)sin(i * 0.37) * 2.0f;
	float *p = nn->alloc(N * 4), *g = nn->alloc(N * 4), *m = nn->alloc(N * 4), *v = nn->alloc(N * 4);
	upload_floats(p, hp, N);
	nn->zero(m, N * 4);
	nn->zero(v, N * 4);
	const float scale = 0.5f;
	for (int t = 1; t <= 3; t++) {
		for (int i = 0; i < N; i++) {
			hg[i] = (float)cos(i * 0.11 + t) * (i % 3 == 0 ? 1e-3f : 1.0f);
			rg[i] = (double)hg[i] * scale;
		}
		upload_floats(g, hg, N);
		nn->adamw_update(p, g, m, v, N, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.05f, scale, t);
		reference_adamw(rp, rm, rv, rg, N, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.05f, t);
	}
	download_floats(hp, p, N);
	double worst = 0;
	for (int i = 0; i < N; i++) {
		double d = fabs(hp[i] - rp[i]) / (1e-3 + fabs(rp[i]));
		worst = d > worst ? d : worst;
	}
	CHECK_MSG(worst < 1e-6, "relative error %g", worst);
	nn->free(p);
	nn->free(g);
	nn->free(m);
	nn->free(v);
	free(hp);
	free(hg);
	free(rp);
	free(rm);
	free(rv);
	free(rg);
}

static void test_clipping(void)
{
	const float w0[5] = { 1, 1, 1, 1, 1 }, b0[3] = { 0, 0, 0 };
	struct nn_params p;
	make_two_params(&p, w0, b0);
	struct nn_optim_config c = nn_optim_defaults();
	c.clip_norm = 1.0f;
	struct nn_optim o;
	CHECK(nn_optim_init(&o, &p, &c) == 0);
	/* norm 5 across both parameters -> factor 1 / (5 + 1e-6) */
	const float g1[5] = { 3, 0, 0, 0, 0 }, g2[3] = { 0, 0, 4 };
	upload_floats(nn_param_grad(&p, 0), g1, 5);
	upload_floats(nn_param_grad(&p, 1), g2, 3);
	CHECK(nn_optim_step(&o) == NN_STEP_TAKEN);
	CHECK_NEAR(o.last_grad_norm, 5.0, 1e-6);
	float m[24];
	download_floats(m, o.m, 24);
	CHECK_NEAR(m[0], 0.1 * 3 / (5 + 1e-6), 1e-7);
	CHECK_NEAR(m[18], 0.1 * 4 / (5 + 1e-6), 1e-7);
	/* Gradients were zeroed for the next step. */
	float g[24];
	download_floats(g, p.grad, 24);
	int zero = 1;
	for (int i = 0; i < 24; i++)
		zero &= g[i] == 0;
	CHECK(zero);
	/* Under the threshold, nothing is scaled. */
	const float small[5] = { 0.3f, 0, 0, 0, 0 };
	upload_floats(nn_param_grad(&p, 0), small, 5);
	nn_optim_step(&o);
	download_floats(m, o.m, 24);
	CHECK_NEAR(m[0], 0.9 * (0.1 * 3 / (5 + 1e-6)) + 0.1f * 0.3f, 1e-7);
	nn_optim_free(&o);
	nn_params_free(&p);
}

static void test_schedule(void)
{
	struct nn_optim_config c = nn_optim_defaults();
	c.lr = 1.0f;
	c.min_lr = 0.1f;
	c.warmup_steps = 4;
	c.decay_steps = 10;
	CHECK_NEAR(nn_lr_at(&c, 0), 0.25, 1e-7);
	CHECK_NEAR(nn_lr_at(&c, 1), 0.5, 1e-7);
	CHECK_NEAR(nn_lr_at(&c, 3), 1.0, 1e-7);
	CHECK_NEAR(nn_lr_at(&c, 4), 1.0, 1e-7);
	CHECK_NEAR(nn_lr_at(&c, 7), 0.55, 1e-7); /* half way: (lr + min) / 2 */
	CHECK_NEAR(nn_lr_at(&c, 5), 0.1 + 0.45 * (1 + cos(M_PI / 6)), 1e-6);
	CHECK_NEAR(nn_lr_at(&c, 10), 0.1, 1e-7);
	CHECK_NEAR(nn_lr_at(&c, 1000), 0.1, 1e-7);
	/* monotone after warm-up */
	int monotone = 1;
	for (int t = 4; t < 12; t++)
		monotone &= nn_lr_at(&c, t + 1) <= nn_lr_at(&c, t);
	CHECK(monotone);
	c.decay_steps = 0;
	CHECK_NEAR(nn_lr_at(&c, 500), 1.0, 0);
	c.warmup_steps = 0;
	CHECK_NEAR(nn_lr_at(&c, 0), 1.0, 0);
	/* The driver uses it: step t runs at nn_lr_at(t). */
	const float w0[5] = { 0 }, b0[3] = { 0 };
	struct nn_params p;
	make_two_params(&p, w0, b0);
	c = nn_optim_defaults();
	c.warmup_steps = 2;
	struct nn_optim o;
	CHECK(nn_optim_init(&o, &p, &c) == 0);
	nn_optim_step(&o);
	CHECK_NEAR(o.last_lr, 0.5e-3, 1e-10);
	nn_optim_step(&o);
	CHECK_NEAR(o.last_lr, 1e-3, 1e-10);
	nn_optim_free(&o);
	/* Bad settings are refused. */
	c.decay_steps = 1;
	CHECK(nn_optim_init(&o, &p, &c) < 0 && strstr(error_message(), "warm-up"));
	c = nn_optim_defaults();
	c.accum_steps = 0;
	CHECK(nn_optim_init(&o, &p, &c) < 0);
	c = nn_optim_defaults();
	c.beta2 = 1.0f;
	CHECK(nn_optim_init(&o, &p, &c) < 0);
	nn_params_free(&p);
}

static void test_ema(void)
{
	const float w0[5] = { 1, 2, 3, 4, 5 }, b0[3] = { -1, 0, 1 };
	struct nn_params p;
	make_two_params(&p, w0, b0);
	struct nn_optim_config c = nn_optim_defaults();
	c.lr = 0.1f;
	c.ema_decay = 0.75f;
	struct nn_optim o;
	CHECK(nn_optim_init(&o, &p, &c) == 0);
	float expect[24], after[24], ema[24];
	download_floats(expect, p.data, 24); /* the EMA starts as the weights before step 1 */
	for (int t = 0; t < 3; t++) {
		float g[24];
		for (int i = 0; i < 24; i++)
			g[i] = (float)(i % 5) - 2.0f;
		upload_floats(p.grad, g, 24);
		nn_optim_step(&o);
		download_floats(after, p.data, 24);
		for (int i = 0; i < 24; i++)
			expect[i] = expect[i] * 0.75f + 0.25f * after[i];
	}
	download_floats(ema, o.ema, 24);
	int same = 1;
	for (int i = 0; i < 24; i++)
		same &= fabsf(ema[i] - expect[i]) <= 1e-6f;
	CHECK(same);
	CHECK(fabsf(ema[0] - after[0]) > 1e-3f); /* it lags the weights */
	/* the kernel alone */
	nn->ema_update(o.ema, p.data, 24, 0.0f);
	download_floats(ema, o.ema, 24);
	CHECK(!memcmp(ema, after, sizeof ema));
	nn_optim_free(&o);
	nn_params_free(&p);
}

/* A linear model y = W x + b with squared error: gradients of the mean loss
 * over rows [lo, hi) of a fixed batch, accumulated into the gradient buffer
 * as backward ops do. */
enum { IN = 3, OUT = 2, ROWS = 8 };

static void batch_row(int r, float *x, float *y)
{
	for (int j = 0; j < IN; j++)
		x[j] = (float)sin(r * 1.3 + j * 0.7);
	y[0] = x[0] - 2 * x[1] + 0.5f;
	y[1] = x[2] * x[0];
}

static void accumulate_grad(struct nn_params *p, int lo, int hi)
{
	float w[OUT * IN], b[OUT], gw[OUT * IN], gb[OUT];
	download_floats(w, nn_param(p, 0), OUT * IN);
	download_floats(b, nn_param(p, 1), OUT);
	download_floats(gw, nn_param_grad(p, 0), OUT * IN);
	download_floats(gb, nn_param_grad(p, 1), OUT);
	float scale = 2.0f / (float)((hi - lo) * OUT);
	for (int r = lo; r < hi; r++) {
		float x[IN], y[OUT];
		batch_row(r, x, y);
		for (int o = 0; o < OUT; o++) {
			float pred = b[o];
			for (int j = 0; j < IN; j++)
				pred += w[o * IN + j] * x[j];
			float d = (pred - y[o]) * scale;
			gb[o] += d;
			for (int j = 0; j < IN; j++)
				gw[o * IN + j] += d * x[j];
		}
	}
	upload_floats(nn_param_grad(p, 0), gw, OUT * IN);
	upload_floats(nn_param_grad(p, 1), gb, OUT);
}

static void make_linear(struct nn_params *p)
{
	memset(p, 0, sizeof *p);
	int64_t ws[2] = { OUT, IN }, bs[1] = { OUT };
	nn_params_add(p, "w", 2, ws);
	nn_params_add(p, "b", 1, bs);
	nn_params_alloc(p, 1);
	nn_param_init_normal(p, 0, 0.5f, 11);
}

/* Two micro-batches of half the rows (accum_steps 2) == one full batch. */
static void test_accumulation(void)
{
	struct nn_params full, half;
	make_linear(&full);
	make_linear(&half);
	struct nn_optim_config c = nn_optim_defaults();
	c.lr = 0.05f;
	c.clip_norm = 0.5f; /* clipping sees the averaged gradient */
	struct nn_optim of, oh;
	CHECK(nn_optim_init(&of, &full, &c) == 0);
	c.accum_steps = 2;
	CHECK(nn_optim_init(&oh, &half, &c) == 0);
	for (int step = 0; step < 5; step++) {
		accumulate_grad(&full, 0, ROWS);
		CHECK(nn_optim_step(&of) == NN_STEP_TAKEN);
		accumulate_grad(&half, 0, ROWS / 2);
		CHECK(nn_optim_step(&oh) == NN_STEP_ACCUMULATED);
		accumulate_grad(&half, ROWS / 2, ROWS);
		CHECK(nn_optim_step(&oh) == NN_STEP_TAKEN);
		CHECK_NEAR(of.last_grad_norm, oh.last_grad_norm, 1e-5);
	}
	CHECK(of.step == 5 && oh.step == 5 && oh.micro_step == 0);
	float a[64], b[64];
	CHECK(full.total <= 64);
	download_floats(a, full.data, full.total);
	download_floats(b, half.data, half.total);
	double worst = 0;
	for (size_t i = 0; i < full.total; i++)
		worst = fmax(worst, fabs((double)a[i] - b[i]));
	CHECK_MSG(worst < 1e-5, "max difference %g", worst);
	nn_optim_free(&of);
	nn_optim_free(&oh);
	nn_params_free(&full);
	nn_params_free(&half);
}

static void test_nonfinite_gradient_skipped(void)
{
	const float w0[5] = { 1, 2, 3, 4, 5 }, b0[3] = { 0 };
	struct nn_params p;
	make_two_params(&p, w0, b0);
	struct nn_optim_config c = nn_optim_defaults();
	struct nn_optim o;
	CHECK(nn_optim_init(&o, &p, &c) == 0);
	float g[5] = { 1, NAN, 0, 0, 0 };
	upload_floats(nn_param_grad(&p, 0), g, 5);
	CHECK(nn_optim_step(&o) == NN_STEP_SKIPPED);
	CHECK(o.step == 0 && o.skipped_steps == 1 && isnan(o.last_grad_norm));
	float w[5], gr[5];
	download_floats(w, nn_param(&p, 0), 5);
	download_floats(gr, nn_param_grad(&p, 0), 5);
	CHECK(!memcmp(w, w0, sizeof w));
	CHECK(gr[0] == 0 && gr[1] == 0);
	g[1] = 1;
	upload_floats(nn_param_grad(&p, 0), g, 5);
	CHECK(nn_optim_step(&o) == NN_STEP_TAKEN && o.step == 1);
	nn_optim_free(&o);
	nn_params_free(&p);
}

/* Decay runs: a parameter without decay keeps its value under a zero
 * gradient, one with decay shrinks by exactly (1 - lr*wd) on the first
 * step (the Adam term is 0 for a zero gradient). */
static void test_decay_flags(void)
{
	const float w0[5] = { 1, 1, 1, 1, 1 }, b0[3] = { 1, 1, 1 };
	struct nn_params p;
	make_two_params(&p, w0, b0);
	struct nn_optim_config c = nn_optim_defaults();
	c.lr = 0.5f;
	c.weight_decay = 0.5f;
	struct nn_optim o;
	CHECK(nn_optim_init(&o, &p, &c) == 0);
	nn_optim_decay_matrices_only(&o); /* both are vectors: no decay */
	nn_optim_step(&o);
	float w[5], b[3];
	download_floats(w, nn_param(&p, 0), 5);
	download_floats(b, nn_param(&p, 1), 3);
	CHECK(w[4] == 1.0f && b[2] == 1.0f);
	nn_optim_set_decay(&o, 0, 1);
	nn_optim_step(&o);
	download_floats(w, nn_param(&p, 0), 5);
	download_floats(b, nn_param(&p, 1), 3);
	CHECK(w[0] == 0.75f && w[4] == 0.75f && b[0] == 1.0f);
	nn_optim_free(&o);
	nn_params_free(&p);
}

int main(void)
{
	RUN(test_adamw_matches_torch);
	RUN(test_adamw_kernel_reference);
	RUN(test_clipping);
	RUN(test_schedule);
	RUN(test_ema);
	RUN(test_accumulation);
	RUN(test_nonfinite_gradient_skipped);
	RUN(test_decay_flags);
	TEST_EXIT();
}
