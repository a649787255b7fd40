/* CPU backend: normalisation, activations, softmax, attention, losses and
 * random ops. Every backward pass is checked against central differences of
 * its forward pass (nn/gradcheck.h), every forward pass against a plain
 * double-precision loop, and the random ops for determinism, counter layout
 * and statistics. */
#include <math.h>
#include <omp.h>
#include <stdint.h>

#include "core/error.h"
#include "nn/cpu/cpu.h"
#include "nn/cpu/cpu_math.h"
#include "nn/gradcheck.h"
#include "nn/philox.h"
#include "test.h"

/* ---- helpers ---- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;

/* uniform in [-1, 1) from a fixed xorshift stream */
static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 40) * (2.0 / 16777216.0) - 1.0);
}

static float *rand_buf(size_t n, float scale)
{
	float *x = malloc(n * sizeof *x);
	for (size_t i = 0; i < n; i++)
		x[i] = scale * frand();
	return x;
}

static float *const_buf(size_t n, float v)
{
	float *x = malloc(n * sizeof *x);
	for (size_t i = 0; i < n; i++)
		x[i] = v;
	return x;
}

static double max_abs_diff(const float *a, const double *b, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs(a[i] - b[i]);
		if (!(d <= m))
			m = d;
	}
	return m;
}

#define CHECK_GRAD(g, ...) CHECK_MSG(gradcheck(g) == 0, __VA_ARGS__)

/* ---- activations ---- */

static double act_ref(double x, enum nn_act act)
{
	switch (act) {
	case NN_GELU_ERF: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
	case NN_GELU_TANH: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
	case NN_QUICK_GELU: return x / (1 + exp(-1.702 * x));
	case NN_SILU: return x / (1 + exp(-x));
	default: return x;
	}
}

static void test_expf(void)
{
	double worst = 0;
	for (float x = -87.0f; x < 88.0f; x += 0.01173f) {
		double rel = fabs(cpu_expf(x) - exp(x)) / exp(x);
		if (rel > worst)
			worst = rel;
	}
	CHECK_MSG(worst < 3e-7, "relative error %g", worst);
	CHECK(cpu_expf(-INFINITY) == 0.0f);
	CHECK(cpu_expf(-200.0f) == 0.0f);
	CHECK(isnan(cpu_expf(NAN)));
	CHECK(cpu_expf(0.0f) == 1.0f);
}

static const enum nn_act all_acts[] = {NN_GELU_ERF, NN_GELU_TANH, NN_QUICK_GELU, NN_SILU, NN_IDENTITY};

static void test_activation_forward(void)
{
	enum { N = 4001 };
	float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
	for (int i = 0; i < N; i++)
		x[i] = -20.0f + 40.0f * i / (N - 1);
	for (size_t a = 0; a < sizeof all_acts / sizeof *all_acts; a++) {
		cpu_act_forward(y, x, N, all_acts[a]);
		for (int i = 0; i < N; i++) {
			double want = act_ref(x[i], all_acts[a]);
			/* relative near zero too: GELU's tail is tiny but not zero */
			CHECK_MSG(fabs(y[i] - want) <= 2e-6 * fabs(want) + 1e-7,
			          "act %d at %g: %.9g, want %.9g", (int)all_acts[a], x[i], y[i], want);
		}
	}
	free(x);
	free(y);
}

struct act_case {
	float *x;
	size_t n;
	enum nn_act act;
};

static void act_fwd(void *p, float *out)
{
	struct act_case *c = p;
	cpu_act_forward(out, c->x, c->n, c->act);
}

static void act_bwd(void *p, float *const *grad, const float *dout)
{
	struct act_case *c = p;
	cpu_act_backward(grad[0], c->x, dout, c->n, c->act);
}

static void test_activation_backward(void)
{
	enum { N = 64 };
	for (size_t a = 0; a < sizeof all_acts / sizeof *all_acts; a++) {
		struct act_case c = {rand_buf(N, 4), N, all_acts[a]};
		struct gradcheck g = {act_fwd, act_bwd, &c, .n_out = N, .in = {{"x", c.x, N}}};
		CHECK_GRAD(&g, "activation %d: %s", (int)all_acts[a], error_message());
		free(c.x);
	}
}

/* ---- softmax ---- */

struct softmax_case {
	float *x, *y; /* y: the forward output, which backward takes */
	int N, C, log_space;
};

static void softmax_fwd(void *p, float *out)
{
	struct softmax_case *c = p;
	if (c->log_space)
		cpu_log_softmax_forward(c->y, c->x, c->N, c->C);
	else
		cpu_softmax_forward(c->y, c->x, c->N, c->C);
	memcpy(out, c->y, (size_t)c->N * c->C * sizeof *out);
}

static void softmax_bwd(void *p, float *const *grad, const float *dout)
{
	struct softmax_case *c = p;
	if (c->log_space)
		cpu_log_softmax_backward(grad[0], c->y, dout, c->N, c->C);
	else
		cpu_softmax_backward(grad[0], c->y, dout, c->N, c->C);
}

static void test_softmax(void)
{
	enum { N = 5, C = 37 };
	float *x = rand_buf(N * C, 30), *y = malloc(N * C * sizeof *y), *ly = malloc(N * C * sizeof *ly);
	x[3] = 1000.0f; /* stability: a huge logit must not overflow */
	cpu_softmax_forward(y, x, N, C);
	cpu_log_softmax_forward(ly, x, N, C);
	for (int i = 0; i < N; i++) {
		double m = -INFINITY, s = 0, sum = 0;
		for (int j = 0; j < C; j++)
			m = fmax(m, x[i * C + j]);
		for (int j = 0; j < C; j++)
			s += exp(x[i * C + j] - m);
		for (int j = 0; j < C; j++) {
			double p = exp(x[i * C + j] - m) / s;
			CHECK_NEAR(y[i * C + j], p, 1e-6);
			CHECK_NEAR(ly[i * C + j], x[i * C + j] - m - log(s), 2e-5 + 1e-7 * fabs(x[i * C + j] - m));
			sum += y[i * C + j];
		}
		CHECK_NEAR(sum, 1.0, 1e-5);
	}
	free(x), free(y), free(ly);

	for (int log_space = 0; log_space < 2; log_space++) {
		struct softmax_case c = {rand_buf(N * C, 2), malloc(N * C * sizeof(float)), N, C, log_space};
		struct gradcheck g = {softmax_fwd, softmax_bwd, &c, .n_out = N * C, .in = {{"x", c.x, N * C}}};
		CHECK_GRAD(&g, "%s: %s", log_space ? "log_softmax" : "softmax", error_message());
		free(c.x), free(c.y);
	}
}

/* ---- layer norm, group norm, modulation ---- */

struct norm_case {
	float *x, *weight, *bias, *mean, *rstd;
	int N, C;       /* layer norm rows */
	int B, HW, G;   /* group norm */
	int group_norm;
};

static size_t norm_size(const struct norm_case *c)
{
	return c->group_norm ? (size_t)c->B * c->C * c->HW : (size_t)c->N * c->C;
}

static void norm_fwd(void *p, float *out)
{
	struct norm_case *c = p;
	if (c->group_norm)
		cpu_groupnorm_forward(out, c->mean, c->rstd, c->x, c->weight, c->bias, c->B, c->C, c->HW, c->G, 1e-5f);
	else
		cpu_layernorm_forward(out, c->mean, c->rstd, c->x, c->weight, c->bias, c->N, c->C, 1e-5f);
}

static void norm_bwd(void *p, float *const *grad, const float *dout)
{
	struct norm_case *c = p;
	float *dw = c->weight ? grad[1] : NULL, *db = c->weight ? grad[2] : NULL;
	if (c->group_norm)
		cpu_groupnorm_backward(grad[0], dw, db, dout, c->x, c->weight, c->mean, c->rstd, c->B, c->C, c->HW, c->G);
	else
		cpu_layernorm_backward(grad[0], dw, db, dout, c->x, c->weight, c->mean, c->rstd, c->N, c->C);
}

/* Normalises `len` floats of x starting at x0, stride 1, like PyTorch. */
static void norm_ref(double *out, const float *x, long len, double eps)
{
	double m = 0, v = 0;
	for (long i = 0; i < len; i++)
		m += x[i];
	m /= len;
	for (long i = 0; i < len; i++)
		v += (x[i] - m) * (x[i] - m);
	v /= len;
	for (long i = 0; i < len; i++)
		out[i] = (x[i] - m) / sqrt(v + eps);
}

static void run_norm_case(struct norm_case *c, int affine)
{
	size_t n = norm_size(c);
	int rows = c->group_norm ? c->B * c->G : c->N;
	c->x = rand_buf(n, 3);
	for (size_t i = 0; i < n; i++)
		c->x[i] += 5.0f; /* a large mean tests the two-pass variance */
	c->weight = affine ? rand_buf(c->C, 1) : NULL;
	c->bias = affine ? rand_buf(c->C, 1) : NULL;
	c->mean = malloc(rows * sizeof(float));
	c->rstd = malloc(rows * sizeof(float));
	const char *what = c->group_norm ? "groupnorm" : "layernorm";

	/* forward against the definition */
	float *y = malloc(n * sizeof *y);
	norm_fwd(c, y);
	double *ref = malloc(n * sizeof *ref);
	long group = c->group_norm ? (long)(c->C / c->G) * c->HW : c->C;
	for (int r = 0; r < rows; r++)
		norm_ref(ref + r * group, c->x + r * group, group, 1e-5);
	for (size_t i = 0; i < n; i++) {
		int ch = c->group_norm ? (int)(i / c->HW % c->C) : (int)(i % c->C);
		if (affine)
			ref[i] = ref[i] * c->weight[ch] + c->bias[ch];
	}
	CHECK_MSG(max_abs_diff(y, ref, n) < 2e-5, "%s forward differs by %g", what, max_abs_diff(y, ref, n));
	free(ref);
	free(y);

	struct gradcheck g = {norm_fwd, norm_bwd, c, .n_out = n,
	                      .in = {{"x", c->x, n}, {"weight", c->weight, c->C}, {"bias", c->bias, c->C}}};
	CHECK_GRAD(&g, "%s%s: %s", what, affine ? "" : " (no affine)", error_message());
	free(c->x), free(c->weight), free(c->bias), free(c->mean), free(c->rstd);
}

static void test_layernorm(void)
{
	for (int affine = 0; affine < 2; affine++) {
		struct norm_case c = {.N = 6, .C = 19};
		run_norm_case(&c, affine);
	}
	/* wider than one parameter-gradient task (64 columns) */
	struct norm_case c = {.N = 3, .C = 70};
	run_norm_case(&c, 1);
}

static void test_groupnorm(void)
{
	for (int affine = 0; affine < 2; affine++) {
		struct norm_case c = {.group_norm = 1, .B = 2, .C = 6, .HW = 5, .G = 3};
		run_norm_case(&c, affine);
	}
	struct norm_case c = {.group_norm = 1, .B = 3, .C = 4, .HW = 9, .G = 1};
	run_norm_case(&c, 1);
}

struct modulate_case {
	float *x, *ss; /* ss: [B, 2C], scale then shift in each row */
	int B, T, C;
};

static void modulate_fwd(void *p, float *out)
{
	struct modulate_case *c = p;
	cpu_modulate_forward(out, c->x, c->ss, c->ss + c->C, 2 * c->C, c->B, c->T, c->C);
}

static void modulate_bwd(void *p, float *const *grad, const float *dout)
{
	struct modulate_case *c = p;
	cpu_modulate_backward(grad[0], grad[1], grad[1] + c->C, dout, c->x, c->ss, 2 * c->C, c->B, c->T, c->C);
}

static void test_modulate(void)
{
	enum { B = 2, T = 3, C = 5 };
	struct modulate_case c = {rand_buf(B * T * C, 2), rand_buf(B * 2 * C, 1), B, T, C};
	float y[B * T * C];
	modulate_fwd(&c, y);
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++)
			for (int k = 0; k < C; k++) {
				int i = (b * T + t) * C + k;
				CHECK_NEAR(y[i], c.x[i] * (1 + c.ss[b * 2 * C + k]) + c.ss[b * 2 * C + C + k], 1e-6);
			}
	struct gradcheck g = {modulate_fwd, modulate_bwd, &c, .n_out = B * T * C,
	                      .in = {{"x", c.x, B * T * C}, {"scale,shift", c.ss, B * 2 * C}}};
	CHECK_GRAD(&g, "modulate: %s", error_message());
	free(c.x), free(c.ss);
}

/* ---- losses ---- */

struct loss_case {
	float *a, *b;
	const int32_t *targets;
	int N, C, kind; /* 0 cross-entropy (a = logits), 1 mse, 2 kl (a = logp, b = logq) */
};

static void loss_fwd(void *p, float *out)
{
	struct loss_case *c = p;
	if (c->kind == 0)
		cpu_cross_entropy_forward(out, c->a, c->targets, c->N, c->C);
	else if (c->kind == 1)
		cpu_mse_forward(out, c->a, c->b, c->N, c->C);
	else
		cpu_kl_forward(out, c->a, c->b, c->N, c->C);
}

static void loss_bwd(void *p, float *const *grad, const float *dout)
{
	struct loss_case *c = p;
	if (c->kind == 0)
		cpu_cross_entropy_backward(grad[0], c->a, c->targets, dout, c->N, c->C);
	else if (c->kind == 1)
		cpu_mse_backward(grad[0], c->a, c->b, dout, c->N, c->C);
	else
		cpu_kl_backward(grad[0], grad[1], c->a, c->b, dout, c->N, c->C);
}

static void test_losses(void)
{
	enum { N = 4, C = 7 };
	static const char *names[] = {"cross_entropy", "mse", "kl"};
	int32_t targets[N] = {2, -1, 6, 0};
	for (int kind = 0; kind < 3; kind++) {
		struct loss_case c = {rand_buf(N * C, 2), rand_buf(N * C, 2), targets, N, C, kind};
		if (kind == 2) { /* make both rows log-probabilities */
			cpu_log_softmax_forward(c.a, c.a, N, C);
			cpu_log_softmax_forward(c.b, c.b, N, C);
		}
		float loss[N];
		loss_fwd(&c, loss);
		for (int i = 0; i < N; i++) {
			double want = 0, m = -INFINITY, s = 0;
			const float *a = c.a + i * C, *b = c.b + i * C;
			for (int j = 0; j < C; j++) {
				if (kind == 1)
					want += (double)(a[j] - b[j]) * (a[j] - b[j]) / C;
				else if (kind == 2)
					want += exp(a[j]) * (a[j] - b[j]);
				m = fmax(m, a[j]);
			}
			if (kind == 0) {
				for (int j = 0; j < C; j++)
					s += exp(a[j] - m);
				want = targets[i] < 0 ? 0 : m + log(s) - a[targets[i]];
			}
			CHECK_NEAR(loss[i], want, 2e-6 * (1 + fabs(want)));
		}
		/* mse's target and cross-entropy's targets get no gradient */
		struct gradcheck g = {loss_fwd, loss_bwd, &c, .n_out = N,
		                      .in = {{"first", c.a, N * C}, {"second", kind == 2 ? c.b : NULL, N * C}}};
		CHECK_GRAD(&g, "%s: %s", names[kind], error_message());
		if (kind == 0) { /* the ignored row got nothing */
			float dl[N] = {1, 1, 1, 1}, dx[N * C] = {0};
			cpu_cross_entropy_backward(dx, c.a, targets, dl, N, C);
			for (int j = 0; j < C; j++)
				CHECK(dx[1 * C + j] == 0.0f);
		}
		free(c.a), free(c.b);
	}
}

/* ---- attention ---- */

/* Plain double-precision attention: forward (out, lse) and, given dout, the
 * gradients, straight from the definitions. */
static void attention_ref(double *out, double *lse, double *dq, double *dk, double *dv, const float *q,
                          const float *k, const float *v, const float *dout, const struct nn_attention *a)
{
	const int B = a->B, H = a->H, Tq = a->Tq, Tk = a->Tk, D = a->D;
	const int ld = H * D;
	double *p = malloc(Tk * sizeof *p), *dp = malloc(Tk * sizeof *dp);
	for (int b = 0; b < B; b++)
		for (int h = 0; h < H; h++)
			for (int i = 0; i < Tq; i++) {
				const float *qi = q + ((size_t)b * Tq + i) * ld + h * D;
				double m = -INFINITY, s = 0;
				for (int j = 0; j < Tk; j++) {
					int visible = (!a->causal || j <= i) && (!a->key_valid || a->key_valid[b * Tk + j]);
					const float *kj = k + ((size_t)b * Tk + j) * ld + h * D;
					double sc = 0;
					for (int d = 0; d < D; d++)
						sc += (double)qi[d] * kj[d];
					p[j] = visible ? sc * a->scale : -INFINITY;
					m = fmax(m, p[j]);
				}
				for (int j = 0; j < Tk; j++) {
					p[j] = m == -INFINITY ? 0 : exp(p[j] - m);
					s += p[j];
				}
				for (int j = 0; j < Tk; j++)
					p[j] = s > 0 ? p[j] / s : 0;
				lse[((size_t)b * H + h) * Tq + i] = s > 0 ? m + log(s) : -INFINITY;
				double *oi = out + ((size_t)b * Tq + i) * ld + h * D;
				for (int d = 0; d < D; d++) {
					oi[d] = 0;
					for (int j = 0; j < Tk; j++)
						oi[d] += p[j] * v[((size_t)b * Tk + j) * ld + h * D + d];
				}
				if (!dout)
					continue;
				const float *doi = dout + ((size_t)b * Tq + i) * ld + h * D;
				double di = 0;
				for (int j = 0; j < Tk; j++) {
					const float *vj = v + ((size_t)b * Tk + j) * ld + h * D;
					dp[j] = 0;
					for (int d = 0; d < D; d++)
						dp[j] += (double)doi[d] * vj[d];
					di += p[j] * dp[j];
				}
				for (int j = 0; j < Tk; j++) {
					double ds = p[j] * (dp[j] - di) * a->scale;
					size_t kj = ((size_t)b * Tk + j) * ld + h * D, qi_off = ((size_t)b * Tq + i) * ld + h * D;
					for (int d = 0; d < D; d++) {
						dq[qi_off + d] += ds * k[kj + d];
						dk[kj + d] += ds * q[qi_off + d];
						dv[kj + d] += p[j] * doi[d];
					}
				}
			}
	free(p);
	free(dp);
}

struct attn_case {
	struct nn_attention a;
	float *q, *k, *v, *out, *lse;
};

static size_t attn_out_size(const struct attn_case *c)
{
	return (size_t)c->a.B * c->a.Tq * c->a.H * c->a.D;
}

static void attn_fwd(void *p, float *out)
{
	struct attn_case *c = p;
	cpu_attention_forward(c->out, c->lse, c->q, c->k, c->v, &c->a);
	memcpy(out, c->out, attn_out_size(c) * sizeof *out);
}

static void attn_bwd(void *p, float *const *grad, const float *dout)
{
	struct attn_case *c = p;
	cpu_attention_backward(grad[0], grad[1], grad[2], dout, c->q, c->k, c->v, c->out, c->lse, &c->a);
}

static void attn_case_init(struct attn_case *c, int B, int H, int Tq, int Tk, int D, int causal,
                           const uint8_t *key_valid)
{
	struct nn_attention a = {B, H, Tq, Tk, D, causal, key_valid, 1.0f / sqrtf((float)D)};
	c->a = a;
	size_t nq = (size_t)B * Tq * H * D, nk = (size_t)B * Tk * H * D;
	c->q = rand_buf(nq, 1.5f);
	c->k = rand_buf(nk, 1.5f);
	c->v = rand_buf(nk, 1);
	c->out = malloc(nq * sizeof(float));
	c->lse = malloc((size_t)B * H * Tq * sizeof(float));
}

static void attn_case_free(struct attn_case *c)
{
	free(c->q), free(c->k), free(c->v), free(c->out), free(c->lse);
}

/* Forward and backward against the double reference on sizes that exercise
 * the kernel's tiles and tails: several query blocks, key counts that are
 * not multiples of 16, head sizes that are not multiples of 8. */
static void test_attention_reference(void)
{
	static const struct {
		int B, H, Tq, Tk, D, causal, pad;
	} cfg[] = {
		{2, 3, 70, 70, 16, 0, 0}, {2, 2, 70, 70, 12, 1, 0}, {2, 2, 130, 11, 64, 0, 1},
		{1, 2, 9, 23, 5, 0, 1},   {2, 1, 67, 67, 8, 1, 1},  {3, 2, 17, 17, 24, 0, 0},
	};
	for (size_t t = 0; t < sizeof cfg / sizeof *cfg; t++) {
		int B = cfg[t].B, H = cfg[t].H, Tq = cfg[t].Tq, Tk = cfg[t].Tk, D = cfg[t].D;
		uint8_t *valid = malloc((size_t)B * Tk);
		for (int i = 0; i < B * Tk; i++)
			valid[i] = !cfg[t].pad || (i % 3 != 1);
		if (cfg[t].pad && B > 1)
			for (int j = 0; j < Tk; j++) /* the last batch row sees no key at all */
				valid[(B - 1) * Tk + j] = 0;
		struct attn_case c;
		attn_case_init(&c, B, H, Tq, Tk, D, cfg[t].causal, cfg[t].pad ? valid : NULL);
		size_t nq = (size_t)B * Tq * H * D, nk = (size_t)B * Tk * H * D, nl = (size_t)B * H * Tq;
		double *out = malloc(nq * sizeof *out), *lse = malloc(nl * sizeof *lse);
		double *dq = calloc(nq, sizeof *dq), *dk = calloc(nk, sizeof *dk), *dv = calloc(nk, sizeof *dv);
		float *dout = rand_buf(nq, 1), *y = malloc(nq * sizeof *y);
		attention_ref(out, lse, dq, dk, dv, c.q, c.k, c.v, dout, &c.a);
		attn_fwd(&c, y);
		free(y);
		CHECK_MSG(max_abs_diff(c.out, out, nq) < 2e-5, "config %zu: out differs by %g", t,
		          max_abs_diff(c.out, out, nq));
		for (size_t i = 0; i < nl; i++)
			CHECK_MSG(isinf(lse[i]) ? c.lse[i] == (float)lse[i] : fabs(c.lse[i] - lse[i]) < 2e-5,
			          "config %zu: lse[%zu] = %g, want %g", t, i, c.lse[i], lse[i]);

		float *gq = const_buf(nq, 0), *gk = const_buf(nk, 0), *gv = const_buf(nk, 0);
		cpu_attention_backward(gq, gk, gv, dout, c.q, c.k, c.v, c.out, c.lse, &c.a);
		CHECK_MSG(max_abs_diff(gq, dq, nq) < 5e-5, "config %zu: dq differs by %g", t, max_abs_diff(gq, dq, nq));
		CHECK_MSG(max_abs_diff(gk, dk, nk) < 5e-5, "config %zu: dk differs by %g", t, max_abs_diff(gk, dk, nk));
		CHECK_MSG(max_abs_diff(gv, dv, nk) < 5e-5, "config %zu: dv differs by %g", t, max_abs_diff(gv, dv, nk));
		free(out), free(lse), free(dq), free(dk), free(dv), free(gq), free(gk), free(gv), free(valid), free(dout);
		attn_case_free(&c);
	}
}

static void test_attention_gradients(void)
{
	static const struct {
		int Tq, Tk, causal, pad;
	} cfg[] = {{5, 5, 0, 0}, {5, 5, 1, 0}, {5, 5, 0, 1}, {5, 5, 1, 1}, {4, 3, 0, 0}, {3, 6, 0, 1}};
	for (size_t t = 0; t < sizeof cfg / sizeof *cfg; t++) {
		enum { B = 2, H = 2, D = 4 };
		int Tq = cfg[t].Tq, Tk = cfg[t].Tk;
		uint8_t valid[2 * 6];
		for (int i = 0; i < B * Tk; i++)
			valid[i] = i != 0 && i != Tk + 2; /* key 0 of batch 0 and key 2 of batch 1 are padding */
		struct attn_case c;
		attn_case_init(&c, B, H, Tq, Tk, D, cfg[t].causal, cfg[t].pad ? valid : NULL);
		size_t nq = (size_t)B * Tq * H * D, nk = (size_t)B * Tk * H * D;
		struct gradcheck g = {attn_fwd, attn_bwd, &c, .n_out = nq,
		                      .in = {{"q", c.q, nq}, {"k", c.k, nk}, {"v", c.v, nk}}};
		CHECK_GRAD(&g, "config %zu: %s", t, error_message());
		/* NULL gradients are skipped, and the others do not change */
		float *dout = rand_buf(nq, 1), *dq = const_buf(nq, 0), *dk = const_buf(nk, 0), *dv = const_buf(nk, 0);
		float *dq2 = const_buf(nq, 0), *y = malloc(nq * sizeof *y);
		attn_fwd(&c, y);
		cpu_attention_backward(dq, dk, dv, dout, c.q, c.k, c.v, c.out, c.lse, &c.a);
		cpu_attention_backward(dq2, NULL, NULL, dout, c.q, c.k, c.v, c.out, c.lse, &c.a);
		CHECK(!memcmp(dq, dq2, nq * sizeof *dq));
		free(dout), free(dq), free(dk), free(dv), free(dq2), free(y);
		attn_case_free(&c);
	}
}

/* Causal with a padded first key: query 0 of batch 0 sees nothing. Its row
 * is zeros with lse = -inf, and nothing anywhere is NaN. */
static void test_attention_empty_rows(void)
{
	enum { B = 1, H = 1, T = 4, D = 3 };
	uint8_t valid[T] = {0, 1, 1, 1};
	struct attn_case c;
	attn_case_init(&c, B, H, T, T, D, 1, valid);
	float y[T * D], dout[T * D];
	for (int i = 0; i < T * D; i++)
		dout[i] = frand();
	attn_fwd(&c, y);
	CHECK(c.lse[0] == -INFINITY);
	for (int d = 0; d < D; d++)
		CHECK(c.out[d] == 0.0f);
	float *dq = const_buf(T * D, 0), *dk = const_buf(T * D, 0), *dv = const_buf(T * D, 0);
	cpu_attention_backward(dq, dk, dv, dout, c.q, c.k, c.v, c.out, c.lse, &c.a);
	for (int i = 0; i < T * D; i++)
		CHECK(isfinite(c.out[i]) && isfinite(dq[i]) && isfinite(dk[i]) && isfinite(dv[i]));
	for (int d = 0; d < D; d++)
		CHECK(dq[d] == 0.0f && dk[d] == 0.0f && dv[d] == 0.0f);
	free(dq), free(dk), free(dv);
	attn_case_free(&c);
}

/* Same bits with one thread and with several. */
static void test_attention_thread_count(void)
{
	enum { B = 2, H = 3, T = 80, D = 16 };
	struct attn_case c;
	attn_case_init(&c, B, H, T, T, D, 1, NULL);
	size_t n = (size_t)B * T * H * D;
	float *out1 = malloc(n * sizeof *out1), *dq1 = const_buf(n, 0), *dk1 = const_buf(n, 0), *dv1 = const_buf(n, 0);
	float *dq2 = const_buf(n, 0), *dk2 = const_buf(n, 0), *dv2 = const_buf(n, 0), *dout = rand_buf(n, 1);
	int threads = omp_get_max_threads();
	omp_set_num_threads(1);
	cpu_attention_forward(out1, c.lse, c.q, c.k, c.v, &c.a);
	cpu_attention_backward(dq1, dk1, dv1, dout, c.q, c.k, c.v, out1, c.lse, &c.a);
	omp_set_num_threads(threads > 1 ? threads : 2);
	cpu_attention_forward(c.out, c.lse, c.q, c.k, c.v, &c.a);
	cpu_attention_backward(dq2, dk2, dv2, dout, c.q, c.k, c.v, c.out, c.lse, &c.a);
	omp_set_num_threads(threads);
	CHECK(!memcmp(out1, c.out, n * sizeof *out1));
	CHECK(!memcmp(dq1, dq2, n * sizeof *dq1));
	CHECK(!memcmp(dk1, dk2, n * sizeof *dk1));
	CHECK(!memcmp(dv1, dv2, n * sizeof *dv1));
	free(out1), free(dq1), free(dk1), free(dv1), free(dq2), free(dk2), free(dv2), free(dout);
	attn_case_free(&c);
}

/* ---- random ---- */

static void test_philox_known_answers(void)
{
	/* Random123's known-answer vectors for philox4x32-10 */
	struct philox_block b = philox4x32_10(0, 0, 0, 0, 0, 0);
	CHECK(b.w[0] == 0x6627e8d5u && b.w[1] == 0xe169c58du && b.w[2] == 0xbc57ac4cu && b.w[3] == 0x9b00dbd8u);
	b = philox4x32_10(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
	CHECK(b.w[0] == 0x408f276du && b.w[1] == 0x41c83b0eu && b.w[2] == 0xa20bc7c6u && b.w[3] == 0x6d5451fdu);
	b = philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
	CHECK(b.w[0] == 0xd16cfe09u && b.w[1] == 0x94fdccebu && b.w[2] == 0x5001e420u && b.w[3] == 0x24126ea1u);
	CHECK(philox_uniform(0) > 0.0f && philox_uniform(0xffffffffu) < 1.0f);
}

static void test_random_layout(void)
{
	enum { N = 20000 };
	float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
	for (int normal = 0; normal < 2; normal++) {
		void (*gen)(float *, size_t, uint64_t, uint64_t) = normal ? cpu_rand_normal : cpu_rand_uniform;
		gen(a, N, 42, 0);
		gen(b, 37, 42, 0); /* independent of n */
		CHECK(!memcmp(a, b, 37 * sizeof *a));
		gen(b, 100, 42, 4099); /* element i uses stream position offset + i */
		CHECK(!memcmp(a + 4099, b, 100 * sizeof *a));
		int threads = omp_get_max_threads();
		omp_set_num_threads(1);
		gen(b, N, 42, 0);
		omp_set_num_threads(threads);
		CHECK(!memcmp(a, b, N * sizeof *a));
		gen(b, N, 43, 0); /* another seed, other numbers */
		int same = 0;
		for (int i = 0; i < N; i++)
			same += a[i] == b[i];
		CHECK(same < 10);
		/* the documented scheme, element by element */
		float z[4];
		philox_normal4(42, 4101, z);
		CHECK(a[4101] == (normal ? z[1] : philox_uniform_at(42, 4101)));
	}
	free(a), free(b);
}

static void test_random_statistics(void)
{
	enum { N = 200000 };
	float *x = malloc(N * sizeof *x);
	for (int normal = 0; normal < 2; normal++) {
		(normal ? cpu_rand_normal : cpu_rand_uniform)(x, N, 7, 123);
		double s = 0, s2 = 0, s4 = 0;
		int in_range = 1;
		for (int i = 0; i < N; i++) {
			s += x[i];
			s2 += (double)x[i] * x[i];
			s4 += (double)x[i] * x[i] * x[i] * x[i];
			if (!normal && !(x[i] > 0.0f && x[i] < 1.0f))
				in_range = 0;
		}
		double mean = s / N, var = s2 / N - mean * mean;
		CHECK(in_range);
		if (normal) {
			CHECK_NEAR(mean, 0.0, 0.01);
			CHECK_NEAR(var, 1.0, 0.015);
			CHECK_NEAR(s4 / N, 3.0, 0.08); /* fourth moment: the shape is right */
		} else {
			CHECK_NEAR(mean, 0.5, 0.003);
			CHECK_NEAR(var, 1.0 / 12, 0.001);
		}
	}
	free(x);
}

static void test_dropout(void)
{
	enum { N = 50000 };
	const float p = 0.3f;
	float *x = rand_buf(N, 1), *y = malloc(N * sizeof *y), *y2 = malloc(N * sizeof *y2);
	float *ones = const_buf(N, 1), *dx = const_buf(N, 0.25f); /* backward accumulates */
	for (int i = 0; i < N; i++)
		x[i] += 2.0f; /* nonzero, so zeros in y are dropped elements */
	cpu_dropout_forward(y, x, N, p, 99, 1000);
	cpu_dropout_forward(y2, x, N, p, 99, 1000);
	CHECK(!memcmp(y, y2, N * sizeof *y));
	cpu_dropout_backward(dx, ones, N, p, 99, 1000);
	int kept = 0;
	for (int i = 0; i < N; i++) {
		int k = y[i] != 0.0f;
		kept += k;
		CHECK(!k || y[i] == x[i] * (1.0f / (1.0f - p)));
		/* the backward pass regenerated the same mask */
		CHECK(dx[i] - 0.25f == (k ? 1.0f / (1.0f - p) : 0.0f));
		CHECK(k == (philox_uniform_at(99, 1000 + (uint64_t)i) >= p));
	}
	CHECK_NEAR((double)kept / N, 1 - p, 0.01);
	cpu_dropout_forward(y, x, N, 0.0f, 99, 0);
	CHECK(!memcmp(y, x, N * sizeof *y));
	free(x), free(y), free(y2), free(ones), free(dx);
}

static void test_sample_categorical(void)
{
	enum { N = 40000, C = 5 };
	const float row[C] = {1.0f, 0.0f, -1.0f, 2.0f, 0.5f};
	float *logits = malloc(N * C * sizeof *logits);
	int32_t *s = malloc(N * sizeof *s), *s2 = malloc(N * sizeof *s2);
	for (int i = 0; i < N; i++)
		memcpy(logits + i * C, row, sizeof row);
	cpu_sample_categorical(s, logits, N, C, 5, 77);
	cpu_sample_categorical(s2, logits, N, C, 5, 77);
	CHECK(!memcmp(s, s2, N * sizeof *s));
	int count[C] = {0};
	for (int i = 0; i < N; i++) {
		CHECK(s[i] >= 0 && s[i] < C);
		if (s[i] >= 0 && s[i] < C)
			count[s[i]]++;
	}
	double z = 0, chi2 = 0;
	for (int j = 0; j < C; j++)
		z += exp(row[j]);
	for (int j = 0; j < C; j++) {
		double expect = N * exp(row[j]) / z;
		chi2 += (count[j] - expect) * (count[j] - expect) / expect;
	}
	/* 4 degrees of freedom: P(chi2 > 18.5) < 0.001 */
	CHECK_MSG(chi2 < 18.5, "chi-square %g", chi2);
	/* row i used stream positions offset + i*C + j */
	int i = 123, best = 0;
	float best_score = -INFINITY;
	for (int j = 0; j < C; j++) {
		float score = row[j] + philox_gumbel(philox_uniform_at(5, 77 + (uint64_t)i * C + j));
		if (score > best_score)
			best_score = score, best = j;
	}
	CHECK(s[i] == best);
	free(logits), free(s), free(s2);
}

int main(void)
{
	RUN(test_expf);
	RUN(test_activation_forward);
	RUN(test_activation_backward);
	RUN(test_softmax);
	RUN(test_layernorm);
	RUN(test_groupnorm);
	RUN(test_modulate);
	RUN(test_losses);
	RUN(test_attention_reference);
	RUN(test_attention_gradients);
	RUN(test_attention_empty_rows);
	RUN(test_attention_thread_count);
	RUN(test_philox_known_answers);
	RUN(test_random_layout);
	RUN(test_random_statistics);
	RUN(test_dropout);
	RUN(test_sample_categorical);
	TEST_EXIT();
}
