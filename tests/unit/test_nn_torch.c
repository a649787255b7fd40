/* Every deterministic op of the engine against PyTorch, forward and
 * backward, on the fixed inputs and answers in tests/golden/nn/ops.safetensors
 * (written by tests/golden/nn/make_op_goldens.py; the README beside it lists
 * the cases and says why each tolerance is what it is).
 *
 * Each case prints one line for its forward outputs and one for its
 * gradients, with the worst error over its tensors, measured as
 * max |got - want| / max |want|. Forward outputs start as NaN, so an op that
 * reads its output before assigning it fails. Gradient buffers start at a
 * known non-zero pattern and must end at pattern + PyTorch's gradient: that
 * checks the accumulate (+=) contract. Ops with parameter gradients run their
 * backward a second time with the input's gradient NULL ("not needed").
 *
 * The CPU backend always runs; the CUDA backend runs the same cases after it
 * when this build and machine have one. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"
#include "golden.h"
#include "nn/ops.h"
#include "nn/safetensors.h"
#include "test.h"

/* ---- the fixture file ---- */

static struct st_file *fixture;

/* Tensor "<case>/<name>" of the given dtype (DT_FLOAT32 or DT_INT32): its
 * data and element count, or NULL if it is not there. */
static const void *fixture_tensor(const char *cs, const char *name, enum dtype dtype, size_t *numel)
{
	char key[128];
	snprintf(key, sizeof key, "%s/%s", cs, name);
	const struct st_entry *e = st_find(fixture, key);
	/* The script aligns every tensor, so the data can be read in place. */
	if (!e || e->dtype != dtype || (uintptr_t)e->data % 4)
		return NULL;
	*numel = e->numel;
	return e->data;
}

/* ---- one line of output per case and direction ---- */

static const char *backend; /* prefixes every line: "cpu/linear forward" */

struct verdict {
	const char *cs, *what; /* case, and "forward" / "backward" / "update" */
	double tol, worst;
	int failed, skipped;
	char why[320];
};

static struct verdict verdict(const char *cs, const char *what, double tol)
{
	struct verdict v = { .cs = cs, .what = what, .tol = tol };
	return v;
}

static void fail(struct verdict *v, const char *fmt, ...) KNND_PRINTF(2, 3);
static void fail(struct verdict *v, const char *fmt, ...)
{
	if (!v->failed) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(v->why, sizeof v->why, fmt, ap);
		va_end(ap);
	}
	v->failed = 1;
}

/* Prints the line through test.h's state, as RUN() would. */
static void report(const struct verdict *v)
{
	test_failed_ = v->failed;
	test_skipped_ = v->skipped;
	snprintf(test_why_, sizeof test_why_, "%s", v->why);
	if (test_skipped_) {
		printf("skip %s/%s %s: %s\n", backend, v->cs, v->what, test_why_);
	} else if (test_failed_) {
		printf("FAIL %s/%s %s: %s\n", backend, v->cs, v->what, test_why_);
		test_total_failed_++;
	} else {
		printf("ok %s/%s %s: max error %.2g (tol %.0e)\n", backend, v->cs, v->what, v->worst,
		       v->tol);
	}
	fflush(stdout);
}

/* ---- backend buffers ----
 * Every buffer a case allocates is remembered and freed when it ends. */

static void *bufs[64];
static int nbufs;

static void *dev_alloc(size_t bytes)
{
	if (nbufs == (int)(sizeof bufs / sizeof bufs[0])) {
		fprintf(stderr, "test_nn_torch: more than %d buffers in one case\n", nbufs);
		exit(1);
	}
	void *p = nn->alloc(bytes ? bytes : 4);
	bufs[nbufs++] = p;
	return p;
}

static void dev_free_all(void)
{
	while (nbufs > 0)
		nn->free(bufs[--nbufs]);
}

static void *dev_copy(const void *host, size_t bytes)
{
	void *p = dev_alloc(bytes);
	nn->upload(p, host, bytes);
	return p;
}

/* An output buffer full of NaN: any element the op fails to assign shows. */
static float *dev_nan(size_t n)
{
	float *host = xmalloc(n * sizeof *host);
	for (size_t i = 0; i < n; i++)
		host[i] = NAN;
	float *p = dev_copy(host, n * sizeof *host);
	free(host);
	return p;
}

/* A gradient buffer's starting contents: a pattern of the size of the
 * gradient expected in it, so that "pattern + gradient" loses little to
 * rounding while a buffer that was overwritten, or zeroed, stands out. */
static float *prefill_pattern(const float *want, size_t n)
{
	double amax = 0;
	for (size_t i = 0; i < n; i++)
		amax = fmax(amax, fabs(want[i]));
	if (amax == 0)
		amax = 1;
	float *pre = xmalloc(n * sizeof *pre);
	for (size_t i = 0; i < n; i++)
		pre[i] = (float)(amax * (double)((int)(i * 7 % 11) - 5) / 5.0);
	return pre;
}

/* Compares n floats of backend memory against want (plus `prefill`, when
 * the buffer started with it) and folds the error into v. */
static void expect(struct verdict *v, const char *tensor, const float *dev, const float *want,
                   const float *prefill, size_t n)
{
	float *got = xmalloc(n * sizeof *got);
	nn->download(got, dev, n * sizeof *got);
	double amax = 0, emax = 0;
	size_t at = 0;
	for (size_t i = 0; i < n; i++)
		amax = fmax(amax, fabs(want[i]));
	if (amax == 0)
		amax = 1;
	for (size_t i = 0; i < n; i++) {
		double ref = (double)want[i] + (prefill ? (double)prefill[i] : 0.0);
		double e = fabs((double)got[i] - ref);
		if (!(e <= emax)) { /* also catches NaN */
			emax = isnan(e) ? INFINITY : e;
			at = i;
			if (isnan(e))
				break;
		}
	}
	double err = emax / amax;
	if (err > v->worst)
		v->worst = err;
	if (err > v->tol) {
		double ref = (double)want[at] + (prefill ? (double)prefill[at] : 0.0);
		fail(v, "%s: error %.3g > tol %.0e; worst at [%zu]: got %.9g, want %.9g%s", tensor, err,
		     v->tol, at, (double)got[at], ref, prefill ? " (prefill + gradient)" : "");
	}
	free(got);
}

/* Uploads a gradient buffer prefilled with the pattern for `want`; the
 * pattern is returned in *pre (caller frees) for expect(). */
static float *dev_grad(const float *want, size_t n, float **pre)
{
	*pre = prefill_pattern(want, n);
	return dev_copy(*pre, n * sizeof **pre);
}

/* ---- fixture access for a case ----
 * A missing tensor is a broken fixture: the case fails naming it. */

struct case_io {
	const char *cs;
	int broken;
	char problem[128];
};

static void fixture_problem(struct case_io *c, const char *name, const char *problem)
{
	if (!c->broken)
		snprintf(c->problem, sizeof c->problem, "fixture tensor %s/%s %s", c->cs, name, problem);
	c->broken = 1;
}

static const float *fx(struct case_io *c, const char *name, size_t *n)
{
	size_t dummy;
	const float *p = fixture_tensor(c->cs, name, DT_FLOAT32, n ? n : &dummy);
	if (!p)
		fixture_problem(c, name, "is missing (or not F32)");
	return p;
}

static const int32_t *fxi(struct case_io *c, const char *name, size_t *n)
{
	size_t dummy;
	const int32_t *p = fixture_tensor(c->cs, name, DT_INT32, n ? n : &dummy);
	if (!p)
		fixture_problem(c, name, "is missing (or not I32)");
	return p;
}

/* An I32 list of exactly `count` integers (dims, geometry). */
static const int32_t *fx_dims(struct case_io *c, const char *name, size_t count)
{
	size_t n = 0;
	const int32_t *p = fxi(c, name, &n);
	if (p && n != count) {
		fixture_problem(c, name, "has the wrong length");
		return NULL;
	}
	return p;
}

/* One failed line per direction when the fixture is not what the test
 * expects (the script and the test have drifted apart). */
static int fixture_broken(struct case_io *c, int with_backward)
{
	if (!c->broken)
		return 0;
	struct verdict v = verdict(c->cs, with_backward ? "forward" : "check", 0);
	fail(&v, "%s", c->problem);
	report(&v);
	if (with_backward) {
		v.what = "backward";
		report(&v);
	}
	return 1;
}

/* One skipped line per direction for an op this backend does not have. */
static int missing_op(const char *cs, const char *what, int have)
{
	if (have)
		return 0;
	struct verdict v = verdict(cs, what, 0);
	v.skipped = 1;
	snprintf(v.why, sizeof v.why, "backend %s has no such op", backend);
	report(&v);
	return 1;
}

/* For forward/backward pairs: skips both lines unless both ops exist. */
static int missing_pair(const char *cs, int have_forward, int have_backward)
{
	if (have_forward && have_backward)
		return 0;
	missing_op(cs, "forward", 0);
	missing_op(cs, "backward", 0);
	return 1;
}

/* Checks a gradient buffer and frees its prefill copy. */
static void expect_grad(struct verdict *v, const char *tensor, const float *dev, const float *want,
                        float *pre, size_t n)
{
	expect(v, tensor, dev, want, pre, n);
	free(pre);
}

/* A line of its own for one output tensor. */
static void check_output(const char *cs, const char *what, double tol, const char *tensor, const float *dev,
                         const float *want, size_t n)
{
	struct verdict v = verdict(cs, what, tol);
	expect(&v, tensor, dev, want, NULL, n);
	report(&v);
}

/* The backward line of an op with one gradient. */
static void check_gradient(const char *cs, double tol, const char *tensor, const float *dev, const float *want,
                           float *pre, size_t n)
{
	struct verdict v = verdict(cs, "backward", tol);
	expect_grad(&v, tensor, dev, want, pre, n);
	report(&v);
}

/* The gradients of a weight and an optional bias (want_b NULL: none) as
 * PyTorch has them, and backend buffers prefilled for them. */
struct param_grads {
	const float *want_w, *want_b;
	size_t nw, nb;
	float *w, *b, *pre_w, *pre_b;
};

static void param_grads_prefill(struct param_grads *g)
{
	g->w = g->want_w ? dev_grad(g->want_w, g->nw, &g->pre_w) : NULL;
	g->b = g->want_b ? dev_grad(g->want_b, g->nb, &g->pre_b) : NULL;
}

/* note: "" or " (dinp NULL)", for the run without an input gradient. */
static void expect_param_grads(struct verdict *v, struct param_grads *g, const char *note)
{
	char name[64];
	snprintf(name, sizeof name, "dweight%s", note);
	if (g->want_w)
		expect_grad(v, name, g->w, g->want_w, g->pre_w, g->nw);
	snprintf(name, sizeof name, "dbias%s", note);
	if (g->want_b)
		expect_grad(v, name, g->b, g->want_b, g->pre_b, g->nb);
}

/* Both lines of a case fail for the same reason. */
static void fail_both(struct verdict *v)
{
	report(v);
	v->what = "backward";
	report(v);
}

/* ---- tolerances (README: "Tolerances") ---- */

enum {
	TOL_COPY,  /* data movement and sums of a few terms */
	TOL_ELEM,  /* elementwise functions (exp, erf, tanh) */
	TOL_ROW,   /* reductions over a row: linear, softmax, losses */
	TOL_NORM,  /* normalisation: a mean, a variance, and their gradients */
	TOL_SUMS,  /* convolution and attention: long products and sums */
};
static const double tol[] = {
	[TOL_COPY] = 1e-6,
	[TOL_ELEM] = 2e-6,
	[TOL_ROW] = 1e-5,
	[TOL_NORM] = 2e-5,
	[TOL_SUMS] = 1e-5,
};

/* ---- the cases, one function per op ---- */

static void case_gemm(const char *cs)
{
	struct case_io c = { cs };
	size_t na, nb, nc;
	const int32_t *d = fx_dims(&c, "dims", 12);
	const float *alpha = fx(&c, "alpha", NULL), *beta = fx(&c, "beta", NULL);
	const float *A = fx(&c, "A", &na), *B = fx(&c, "B", &nb), *C = fx(&c, "C", &nc);
	const float *want = fx(&c, "out", NULL);
	if (fixture_broken(&c, 0) || missing_op(cs, "forward", nn->gemm != NULL))
		return;
	int ta = d[0], tb = d[1], M = d[2], N = d[3], K = d[4], lda = d[5], ldb = d[6], ldc = d[7];
	long sa = d[8], sb = d[9], sc = d[10];
	int batch = d[11];

	/* With beta = 0, C is output only: the product's elements start as NaN.
	 * The padding columns and the gaps between batches must stay as they were. */
	float *c0 = xmalloc(nc * sizeof *c0);
	memcpy(c0, C, nc * sizeof *c0);
	if (*beta == 0)
		for (int b = 0; b < batch; b++)
			for (int i = 0; i < M; i++)
				for (int j = 0; j < N; j++)
					c0[b * sc + (long)i * ldc + j] = NAN;
	float *dA = dev_copy(A, na * 4), *dB = dev_copy(B, nb * 4), *dC = dev_copy(c0, nc * 4);
	free(c0);
	nn->gemm(ta, tb, M, N, K, *alpha, dA, lda, sa, dB, ldb, sb, *beta, dC, ldc, sc, batch);
	check_output(cs, "forward", tol[TOL_ROW], "C", dC, want, nc);
	dev_free_all();
}

/* linear and conv2d: an input, a weight and an optional bias. forward and
 * backward call the op with the case's geometry. */
struct weighted_op {
	const char *cs;
	double tol;
	const void *geometry;
	void (*forward)(float *out, const float *inp, const float *w, const float *b, const void *geometry);
	void (*backward)(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
	                 const void *geometry);
};

/* The fixture of such a case: its tensors and PyTorch's answers. */
struct weighted_fixture {
	const float *inp, *w, *bias, *out, *dout, *dinp;
	size_t nin, nw, nb, nout;
	struct param_grads grads;
};

static void fx_weighted(struct case_io *c, struct weighted_fixture *f)
{
	f->inp = fx(c, "inp", &f->nin);
	f->w = fx(c, "weight", &f->nw);
	f->out = fx(c, "out", &f->nout);
	f->dout = fx(c, "dout", NULL);
	f->dinp = fx(c, "dinp", NULL);
	f->grads.want_w = fx(c, "dweight", NULL);
	f->nb = 0;
	f->bias = fixture_tensor(c->cs, "bias", DT_FLOAT32, &f->nb);
	f->grads.want_b = f->bias ? fx(c, "dbias", NULL) : NULL;
	f->grads.nw = f->nw;
	f->grads.nb = f->nb;
}

/* The forward line (v: its verdict), then the backward line, whose second
 * run leaves out the input gradient, as the first layer on the data does. */
static void check_weighted(const struct weighted_op *op, struct weighted_fixture *f, struct verdict *v)
{
	float *x = dev_copy(f->inp, f->nin * 4), *W = dev_copy(f->w, f->nw * 4);
	float *b = f->bias ? dev_copy(f->bias, f->nb * 4) : NULL;
	float *y = dev_nan(f->nout);
	op->forward(y, x, W, b, op->geometry);
	expect(v, "out", y, f->out, NULL, f->nout);
	report(v);

	*v = verdict(op->cs, "backward", op->tol);
	struct param_grads *pg = &f->grads;
	float *gy = dev_copy(f->dout, f->nout * 4), *pi, *gi = dev_grad(f->dinp, f->nin, &pi);
	param_grads_prefill(pg);
	op->backward(gi, pg->w, pg->b, gy, x, W, op->geometry);
	expect_grad(v, "dinp", gi, f->dinp, pi, f->nin);
	expect_param_grads(v, pg, "");
	param_grads_prefill(pg);
	op->backward(NULL, pg->w, pg->b, gy, x, W, op->geometry);
	expect_param_grads(v, pg, " (dinp NULL)");
	report(v);
	dev_free_all();
}

/* dims: N, IN, OUT */
static void linear_forward(float *out, const float *inp, const float *w, const float *b, const void *dims)
{
	const int32_t *d = dims;
	nn->linear_forward(out, inp, w, b, d[0], d[1], d[2]);
}

static void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const void *dims)
{
	const int32_t *d = dims;
	nn->linear_backward(dinp, dw, db, dout, inp, w, d[0], d[1], d[2]);
}

static void case_linear(const char *cs)
{
	struct case_io c = { cs };
	struct weighted_fixture f;
	const int32_t *d = fx_dims(&c, "dims", 3);
	fx_weighted(&c, &f);
	if (fixture_broken(&c, 1) ||
	    missing_pair(cs, nn->linear_forward != NULL, nn->linear_backward != NULL))
		return;
	struct weighted_op op = { cs, tol[TOL_ROW], d, linear_forward, linear_backward };
	struct verdict v = verdict(cs, "forward", op.tol);
	check_weighted(&op, &f, &v);
}

static void conv2d_forward(float *out, const float *inp, const float *w, const float *b, const void *geo)
{
	nn->conv2d_forward(out, inp, w, b, geo);
}

static void conv2d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const void *geo)
{
	nn->conv2d_backward(dinp, dw, db, dout, inp, w, geo);
}

static void case_conv2d(const char *cs)
{
	struct case_io c = { cs };
	struct weighted_fixture f;
	const int32_t *g = fx_dims(&c, "geom", 12);
	fx_weighted(&c, &f);
	if (fixture_broken(&c, 1) ||
	    missing_pair(cs, nn->conv2d_forward != NULL, nn->conv2d_backward != NULL))
		return;
	struct nn_conv2d geo = { .B = g[0], .IC = g[1], .H = g[2], .W = g[3], .OC = g[4],
	                         .KH = g[5], .KW = g[6], .stride = g[7], .pad_top = g[8],
	                         .pad_left = g[9], .pad_bottom = g[10], .pad_right = g[11] };
	struct weighted_op op = { cs, tol[TOL_SUMS], &geo, conv2d_forward, conv2d_backward };
	struct verdict v = verdict(cs, "forward", op.tol);
	size_t expect_out = (size_t)geo.B * geo.OC * nn_conv2d_out_h(&geo) * nn_conv2d_out_w(&geo);
	if (expect_out != f.nout) {
		fail(&v, "nn_conv2d_out_h/w give %d x %d, PyTorch's output has %zu elements",
		     nn_conv2d_out_h(&geo), nn_conv2d_out_w(&geo), f.nout);
		fail_both(&v);
		return;
	}
	check_weighted(&op, &f, &v);
}

/* upsample_* and avgpool_* cases: the same shape of test. */
static void case_resample(const char *cs)
{
	struct case_io c = { cs };
	size_t nin, nout;
	const int32_t *d = fx_dims(&c, "dims", 4);
	const float *inp = fx(&c, "inp", &nin), *out = fx(&c, "out", &nout);
	const float *dout = fx(&c, "dout", NULL), *dinp = fx(&c, "dinp", NULL);
	if (fixture_broken(&c, 1))
		return;
	int up = !strncmp(cs, "upsample", 8);
	void (*fwd)(float *, const float *, int, int, int, int) =
		up ? nn->upsample_forward : nn->avgpool_forward;
	void (*bwd)(float *, const float *, int, int, int, int) =
		up ? nn->upsample_backward : nn->avgpool_backward;
	if (missing_pair(cs, fwd != NULL, bwd != NULL))
		return;
	int N = d[0], H = d[1], W = d[2], factor = d[3];

	float *x = dev_copy(inp, nin * 4), *y = dev_nan(nout);
	fwd(y, x, N, H, W, factor);
	check_output(cs, "forward", tol[TOL_COPY], "out", y, out, nout);

	float *gy = dev_copy(dout, nout * 4), *pi, *gi = dev_grad(dinp, nin, &pi);
	bwd(gi, gy, N, H, W, factor);
	check_gradient(cs, tol[TOL_COPY], "dinp", gi, dinp, pi, nin);
	dev_free_all();
}

static void case_layernorm(const char *cs)
{
	struct case_io c = { cs };
	size_t n, nrow;
	const int32_t *d = fx_dims(&c, "dims", 2);
	const float *eps = fx(&c, "eps", NULL);
	const float *inp = fx(&c, "inp", &n), *out = fx(&c, "out", NULL), *dout = fx(&c, "dout", NULL);
	const float *mean = fx(&c, "mean", &nrow), *rstd = fx(&c, "rstd", NULL);
	const float *dinp = fx(&c, "dinp", NULL);
	size_t nc = 0;
	const float *w = fixture_tensor(cs, "weight", DT_FLOAT32, &nc);
	const float *bias = w ? fx(&c, "bias", NULL) : NULL;
	const float *dw = w ? fx(&c, "dweight", NULL) : NULL, *db = w ? fx(&c, "dbias", NULL) : NULL;
	if (fixture_broken(&c, 1) ||
	    missing_pair(cs, nn->layernorm_forward != NULL, nn->layernorm_backward != NULL))
		return;
	int N = d[0], C = d[1];

	float *x = dev_copy(inp, n * 4);
	float *W = w ? dev_copy(w, nc * 4) : NULL, *B = w ? dev_copy(bias, nc * 4) : NULL;
	float *y = dev_nan(n), *m = dev_nan(nrow), *r = dev_nan(nrow);
	nn->layernorm_forward(y, m, r, x, W, B, N, C, *eps);
	struct verdict v = verdict(cs, "forward", tol[TOL_NORM]);
	expect(&v, "out", y, out, NULL, n);
	expect(&v, "mean", m, mean, NULL, nrow);
	expect(&v, "rstd", r, rstd, NULL, nrow);
	report(&v);

	/* From PyTorch's mean and rstd, so that the backward is checked alone. */
	v = verdict(cs, "backward", tol[TOL_NORM]);
	float *gy = dev_copy(dout, n * 4), *m0 = dev_copy(mean, nrow * 4), *r0 = dev_copy(rstd, nrow * 4);
	struct param_grads pg = { .want_w = dw, .want_b = db, .nw = nc, .nb = nc };
	float *pi, *gi = dev_grad(dinp, n, &pi);
	param_grads_prefill(&pg);
	nn->layernorm_backward(gi, pg.w, pg.b, gy, x, W, m0, r0, N, C);
	expect_grad(&v, "dinp", gi, dinp, pi, n);
	expect_param_grads(&v, &pg, "");
	if (w) {
		param_grads_prefill(&pg);
		nn->layernorm_backward(NULL, pg.w, pg.b, gy, x, W, m0, r0, N, C);
		expect_param_grads(&v, &pg, " (dinp NULL)");
	}
	report(&v);
	dev_free_all();
}

static void case_groupnorm(const char *cs)
{
	struct case_io c = { cs };
	size_t n, ng, nc;
	const int32_t *d = fx_dims(&c, "dims", 4);
	const float *eps = fx(&c, "eps", NULL);
	const float *inp = fx(&c, "inp", &n), *out = fx(&c, "out", NULL), *dout = fx(&c, "dout", NULL);
	const float *w = fx(&c, "weight", &nc), *bias = fx(&c, "bias", NULL);
	const float *mean = fx(&c, "mean", &ng), *rstd = fx(&c, "rstd", NULL);
	const float *dinp = fx(&c, "dinp", NULL), *dw = fx(&c, "dweight", NULL);
	const float *db = fx(&c, "dbias", NULL);
	if (fixture_broken(&c, 1) ||
	    missing_pair(cs, nn->groupnorm_forward != NULL, nn->groupnorm_backward != NULL))
		return;
	int B = d[0], C = d[1], HW = d[2], G = d[3];

	float *x = dev_copy(inp, n * 4), *W = dev_copy(w, nc * 4), *Bi = dev_copy(bias, nc * 4);
	float *y = dev_nan(n), *m = dev_nan(ng), *r = dev_nan(ng);
	nn->groupnorm_forward(y, m, r, x, W, Bi, B, C, HW, G, *eps);
	struct verdict v = verdict(cs, "forward", tol[TOL_NORM]);
	expect(&v, "out", y, out, NULL, n);
	expect(&v, "mean", m, mean, NULL, ng);
	expect(&v, "rstd", r, rstd, NULL, ng);
	report(&v);

	v = verdict(cs, "backward", tol[TOL_NORM]);
	float *gy = dev_copy(dout, n * 4), *m0 = dev_copy(mean, ng * 4), *r0 = dev_copy(rstd, ng * 4);
	struct param_grads pg = { .want_w = dw, .want_b = db, .nw = nc, .nb = nc };
	float *pi, *gi = dev_grad(dinp, n, &pi);
	param_grads_prefill(&pg);
	nn->groupnorm_backward(gi, pg.w, pg.b, gy, x, W, m0, r0, B, C, HW, G);
	expect_grad(&v, "dinp", gi, dinp, pi, n);
	expect_param_grads(&v, &pg, "");
	param_grads_prefill(&pg);
	nn->groupnorm_backward(NULL, pg.w, pg.b, gy, x, W, m0, r0, B, C, HW, G);
	expect_param_grads(&v, &pg, " (dinp NULL)");
	report(&v);
	dev_free_all();
}

/* Shift and scale are columns of one [B, ld] buffer; the columns between
 * them are not theirs, and their gradient must stay at its prefill. */
static void case_modulate(const char *cs)
{
	struct case_io c = { cs };
	size_t n, nm;
	const int32_t *d = fx_dims(&c, "dims", 6);
	const float *x = fx(&c, "x", &n), *mod = fx(&c, "mod", &nm), *out = fx(&c, "out", NULL);
	const float *dout = fx(&c, "dout", NULL), *dx = fx(&c, "dx", NULL), *dmod = fx(&c, "dmod", NULL);
	if (fixture_broken(&c, 1) ||
	    missing_pair(cs, nn->modulate_forward != NULL, nn->modulate_backward != NULL))
		return;
	int B = d[0], T = d[1], C = d[2], ld = d[3], shift_col = d[4], scale_col = d[5];

	float *X = dev_copy(x, n * 4), *M = dev_copy(mod, nm * 4), *y = dev_nan(n);
	nn->modulate_forward(y, X, M + scale_col, M + shift_col, ld, B, T, C);
	check_output(cs, "forward", tol[TOL_ELEM], "out", y, out, n);

	struct verdict v = verdict(cs, "backward", tol[TOL_ROW]);
	float *gy = dev_copy(dout, n * 4), *px, *pm;
	float *gx = dev_grad(dx, n, &px), *gm = dev_grad(dmod, nm, &pm);
	nn->modulate_backward(gx, gm + scale_col, gm + shift_col, gy, X, M + scale_col, ld, B, T, C);
	expect_grad(&v, "dx", gx, dx, px, n);
	expect_grad(&v, "dmod", gm, dmod, pm, nm);
	gm = dev_grad(dmod, nm, &pm);
	nn->modulate_backward(NULL, gm + scale_col, gm + shift_col, gy, X, M + scale_col, ld, B, T, C);
	expect_grad(&v, "dmod (dx NULL)", gm, dmod, pm, nm);
	report(&v);
	dev_free_all();
}

static const struct { const char *cs; enum nn_act act; } acts[] = {
	{ "act_gelu_erf", NN_GELU_ERF },
	{ "act_gelu_tanh", NN_GELU_TANH },
	{ "act_quick_gelu", NN_QUICK_GELU },
	{ "act_silu", NN_SILU },
	{ "act_identity", NN_IDENTITY },
};

static void case_act(const char *cs)
{
	struct case_io c = { cs };
	size_t n;
	const int32_t *d = fx_dims(&c, "dims", 2);
	const float *inp = fx(&c, "inp", &n), *out = fx(&c, "out", NULL);
	const float *dout = fx(&c, "dout", NULL), *dinp = fx(&c, "dinp", NULL);
	if (fixture_broken(&c, 1) || missing_pair(cs, nn->act_forward != NULL, nn->act_backward != NULL))
		return;
	enum nn_act act = NN_IDENTITY;
	for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
		if (!strcmp(acts[i].cs, cs))
			act = acts[i].act;
	struct verdict v = verdict(cs, "forward", tol[TOL_ELEM]);
	if ((int)act != d[1]) { /* the script and enum nn_act disagree */
		fail(&v, "fixture says enum value %d, enum nn_act has %d", d[1], (int)act);
		fail_both(&v);
		return;
	}

	float *x = dev_copy(inp, n * 4), *y = dev_nan(n);
	nn->act_forward(y, x, n, act);
	check_output(cs, "forward", tol[TOL_ELEM], "out", y, out, n);

	float *gy = dev_copy(dout, n * 4), *pi, *gi = dev_grad(dinp, n, &pi);
	nn->act_backward(gi, x, gy, n, act);
	check_gradient(cs, tol[TOL_ELEM], "dinp", gi, dinp, pi, n);
	dev_free_all();
}

/* softmax and log_softmax; their backward passes take the forward output. */
static void case_softmax(const char *cs)
{
	struct case_io c = { cs };
	size_t n;
	const int32_t *d = fx_dims(&c, "dims", 2);
	const float *inp = fx(&c, "inp", &n), *out = fx(&c, "out", NULL);
	const float *dout = fx(&c, "dout", NULL), *dinp = fx(&c, "dinp", NULL);
	if (fixture_broken(&c, 1))
		return;
	int log = !strcmp(cs, "log_softmax");
	void (*fwd)(float *, const float *, int, int) =
		log ? nn->log_softmax_forward : nn->softmax_forward;
	void (*bwd)(float *, const float *, const float *, int, int) =
		log ? nn->log_softmax_backward : nn->softmax_backward;
	if (missing_pair(cs, fwd != NULL, bwd != NULL))
		return;
	int N = d[0], C = d[1];

	float *x = dev_copy(inp, n * 4), *y = dev_nan(n);
	fwd(y, x, N, C);
	check_output(cs, "forward", tol[TOL_ROW], "out", y, out, n);

	float *y0 = dev_copy(out, n * 4), *gy = dev_copy(dout, n * 4);
	float *pi, *gi = dev_grad(dinp, n, &pi);
	bwd(gi, y0, gy, N, C);
	check_gradient(cs, tol[TOL_ROW], "dinp", gi, dinp, pi, n);
	dev_free_all();
}

static void case_attention(const char *cs)
{
	struct case_io c = { cs };
	size_t nq, nk, nl;
	const int32_t *d = fx_dims(&c, "dims", 6);
	const float *scale = fx(&c, "scale", NULL);
	const float *q = fx(&c, "q", &nq), *k = fx(&c, "k", &nk), *v_ = fx(&c, "v", NULL);
	const float *out = fx(&c, "out", NULL), *lse = fx(&c, "lse", &nl), *dout = fx(&c, "dout", NULL);
	const float *dq = fx(&c, "dq", NULL), *dk = fx(&c, "dk", NULL), *dv = fx(&c, "dv", NULL);
	size_t nvalid = 0;
	const int32_t *valid = fixture_tensor(cs, "key_valid", DT_INT32, &nvalid);
	if (fixture_broken(&c, 1) ||
	    missing_pair(cs, nn->attention_forward != NULL, nn->attention_backward != NULL))
		return;
	struct nn_attention a = { .B = d[0], .H = d[1], .Tq = d[2], .Tk = d[3], .D = d[4],
	                          .causal = d[5], .scale = *scale };
	if (valid) {
		uint8_t *host = xmalloc(nvalid);
		for (size_t i = 0; i < nvalid; i++)
			host[i] = valid[i] != 0;
		a.key_valid = dev_copy(host, nvalid);
		free(host);
	}

	float *Q = dev_copy(q, nq * 4), *K = dev_copy(k, nk * 4), *V = dev_copy(v_, nk * 4);
	float *y = dev_nan(nq), *l = dev_nan(nl);
	nn->attention_forward(y, l, Q, K, V, &a);
	struct verdict v = verdict(cs, "forward", tol[TOL_SUMS]);
	expect(&v, "out", y, out, NULL, nq);
	expect(&v, "lse", l, lse, NULL, nl);
	report(&v);

	/* From PyTorch's output and log-sum-exp rows. */
	v = verdict(cs, "backward", tol[TOL_SUMS]);
	float *y0 = dev_copy(out, nq * 4), *l0 = dev_copy(lse, nl * 4), *gy = dev_copy(dout, nq * 4);
	float *pq, *pk, *pv;
	float *gq = dev_grad(dq, nq, &pq), *gk = dev_grad(dk, nk, &pk), *gv = dev_grad(dv, nk, &pv);
	nn->attention_backward(gq, gk, gv, gy, Q, K, V, y0, l0, &a);
	expect_grad(&v, "dq", gq, dq, pq, nq);
	expect_grad(&v, "dk", gk, dk, pk, nk);
	expect_grad(&v, "dv", gv, dv, pv, nk);
	report(&v);
	dev_free_all();
}

static void case_embedding(const char *cs)
{
	struct case_io c = { cs };
	size_t nids, nt, nout;
	const int32_t *d = fx_dims(&c, "dims", 3), *ids = fxi(&c, "ids", &nids);
	const float *table = fx(&c, "table", &nt), *out = fx(&c, "out", &nout);
	const float *dout = fx(&c, "dout", NULL), *dtable = fx(&c, "dtable", NULL);
	if (fixture_broken(&c, 1) ||
	    missing_pair(cs, nn->embedding_forward != NULL, nn->embedding_backward != NULL))
		return;
	int N = d[0], C = d[1];

	int32_t *I = dev_copy(ids, nids * 4);
	float *T = dev_copy(table, nt * 4), *y = dev_nan(nout);
	nn->embedding_forward(y, I, T, N, C);
	check_output(cs, "forward", tol[TOL_COPY], "out", y, out, nout);

	float *gy = dev_copy(dout, nout * 4), *pt, *gt = dev_grad(dtable, nt, &pt);
	nn->embedding_backward(gt, gy, I, N, C);
	check_gradient(cs, tol[TOL_COPY], "dtable", gt, dtable, pt, nt);
	dev_free_all();
}

static void case_cross_entropy(const char *cs)
{
	struct case_io c = { cs };
	size_t n, nrow;
	const int32_t *d = fx_dims(&c, "dims", 2), *targets = fxi(&c, "targets", &nrow);
	const float *logits = fx(&c, "logits", &n), *loss = fx(&c, "loss", NULL);
	const float *dloss = fx(&c, "dloss", NULL), *dlogits = fx(&c, "dlogits", NULL);
	if (fixture_broken(&c, 1) ||
	    missing_pair(cs, nn->cross_entropy_forward != NULL, nn->cross_entropy_backward != NULL))
		return;
	int N = d[0], C = d[1];

	float *L = dev_copy(logits, n * 4), *y = dev_nan(nrow);
	int32_t *tg = dev_copy(targets, nrow * 4);
	nn->cross_entropy_forward(y, L, tg, N, C);
	check_output(cs, "forward", tol[TOL_ROW], "loss", y, loss, nrow);

	float *gl = dev_copy(dloss, nrow * 4), *pg, *g = dev_grad(dlogits, n, &pg);
	nn->cross_entropy_backward(g, L, tg, gl, N, C);
	check_gradient(cs, tol[TOL_ROW], "dlogits", g, dlogits, pg, n);
	dev_free_all();
}

static void case_mse(const char *cs)
{
	struct case_io c = { cs };
	size_t n, nrow;
	const int32_t *d = fx_dims(&c, "dims", 2);
	const float *pred = fx(&c, "pred", &n), *target = fx(&c, "target", NULL);
	const float *loss = fx(&c, "loss", &nrow), *dloss = fx(&c, "dloss", NULL);
	const float *dpred = fx(&c, "dpred", NULL);
	if (fixture_broken(&c, 1) || missing_pair(cs, nn->mse_forward != NULL, nn->mse_backward != NULL))
		return;
	int N = d[0], C = d[1];

	float *P = dev_copy(pred, n * 4), *T = dev_copy(target, n * 4), *y = dev_nan(nrow);
	nn->mse_forward(y, P, T, N, C);
	check_output(cs, "forward", tol[TOL_ROW], "loss", y, loss, nrow);

	float *gl = dev_copy(dloss, nrow * 4), *pp, *gp = dev_grad(dpred, n, &pp);
	nn->mse_backward(gp, P, T, gl, N, C);
	check_gradient(cs, tol[TOL_ROW], "dpred", gp, dpred, pp, n);
	dev_free_all();
}

static void case_kl(const char *cs)
{
	struct case_io c = { cs };
	size_t n, nrow;
	const int32_t *d = fx_dims(&c, "dims", 2);
	const float *logp = fx(&c, "logp", &n), *logq = fx(&c, "logq", NULL);
	const float *loss = fx(&c, "loss", &nrow), *dloss = fx(&c, "dloss", NULL);
	const float *dlogp = fx(&c, "dlogp", NULL), *dlogq = fx(&c, "dlogq", NULL);
	if (fixture_broken(&c, 1) || missing_pair(cs, nn->kl_forward != NULL, nn->kl_backward != NULL))
		return;
	int N = d[0], C = d[1];

	float *P = dev_copy(logp, n * 4), *Q = dev_copy(logq, n * 4), *y = dev_nan(nrow);
	nn->kl_forward(y, P, Q, N, C);
	check_output(cs, "forward", tol[TOL_ROW], "loss", y, loss, nrow);

	struct verdict v = verdict(cs, "backward", tol[TOL_ROW]);
	float *gl = dev_copy(dloss, nrow * 4), *pp, *pq;
	float *gp = dev_grad(dlogp, n, &pp), *gq = dev_grad(dlogq, n, &pq);
	nn->kl_backward(gp, gq, P, Q, gl, N, C);
	expect_grad(&v, "dlogp", gp, dlogp, pp, n);
	expect_grad(&v, "dlogq", gq, dlogq, pq, n);
	/* Distilling towards a fixed target p needs only dlogq, and the reverse. */
	gq = dev_grad(dlogq, n, &pq);
	nn->kl_backward(NULL, gq, P, Q, gl, N, C);
	expect_grad(&v, "dlogq (dlogp NULL)", gq, dlogq, pq, n);
	gp = dev_grad(dlogp, n, &pp);
	nn->kl_backward(gp, NULL, P, Q, gl, N, C);
	expect_grad(&v, "dlogp (dlogq NULL)", gp, dlogp, pp, n);
	report(&v);
	dev_free_all();
}

/* add, accumulate and scale: one line each. */
static void case_elementwise(const char *cs)
{
	struct case_io c = { cs };
	size_t n;
	const float *a = fx(&c, "a", &n), *b = fx(&c, "b", NULL), *s = fx(&c, "s", NULL);
	const float *sum = fx(&c, "add", NULL), *scaled = fx(&c, "scaled", NULL);
	if (fixture_broken(&c, 0))
		return;
	float *A = dev_copy(a, n * 4), *B = dev_copy(b, n * 4);
	if (!missing_op("add", "forward", nn->add != NULL)) {
		float *y = dev_nan(n);
		nn->add(y, A, B, n);
		check_output("add", "forward", tol[TOL_COPY], "out", y, sum, n);
	}
	if (!missing_op("accumulate", "forward", nn->accumulate != NULL)) {
		float *y = dev_copy(b, n * 4);
		nn->accumulate(y, A, n);
		check_output("accumulate", "forward", tol[TOL_COPY], "dst", y, sum, n);
	}
	if (!missing_op("scale", "forward", nn->scale != NULL)) {
		float *y = dev_nan(n);
		nn->scale(y, A, *s, n);
		check_output("scale", "forward", tol[TOL_COPY], "out", y, scaled, n);
	}
	dev_free_all();
}

static void case_reduce(const char *cs)
{
	struct case_io c = { cs };
	size_t n;
	const float *x = fx(&c, "x", &n), *sum = fx(&c, "sum", NULL);
	const float *sumsq = fx(&c, "sum_squares", NULL);
	if (fixture_broken(&c, 0))
		return;
	float *X = dev_copy(x, n * 4);
	if (!missing_op("sum", "forward", nn->sum != NULL)) {
		float *y = dev_nan(1);
		nn->sum(y, X, n);
		check_output("sum", "forward", tol[TOL_ROW], "sum", y, sum, 1);
	}
	if (!missing_op("sum_squares", "forward", nn->sum_squares != NULL)) {
		float *y = dev_nan(1);
		nn->sum_squares(y, X, n);
		check_output("sum_squares", "forward", tol[TOL_ROW], "sum_squares", y, sumsq, 1);
	}
	dev_free_all();
}

static void case_adamw(const char *cs)
{
	struct case_io c = { cs };
	size_t n;
	const int32_t *d = fx_dims(&c, "dims", 2);
	size_t nh = 0;
	const float *h = fx(&c, "hyper", &nh);
	if (h && nh != 6)
		fixture_problem(&c, "hyper", "has the wrong length");
	const float *param = fx(&c, "param", &n), *grad = fx(&c, "grad", NULL);
	const float *m = fx(&c, "m", NULL), *vv = fx(&c, "v", NULL);
	const float *param_out = fx(&c, "param_out", NULL), *m_out = fx(&c, "m_out", NULL);
	const float *v_out = fx(&c, "v_out", NULL);
	if (fixture_broken(&c, 0) || missing_op(cs, "update", nn->adamw_update != NULL))
		return;
	struct verdict v = verdict(cs, "update", tol[TOL_ELEM]);
	float *P = dev_copy(param, n * 4), *G = dev_copy(grad, n * 4);
	float *M = dev_copy(m, n * 4), *V = dev_copy(vv, n * 4);
	nn->adamw_update(P, G, M, V, n, h[0], h[1], h[2], h[3], h[4], h[5], d[1]);
	expect(&v, "param", P, param_out, NULL, n);
	expect(&v, "m", M, m_out, NULL, n);
	expect(&v, "v", V, v_out, NULL, n);
	report(&v);
	dev_free_all();
}

static void case_ema(const char *cs)
{
	struct case_io c = { cs };
	size_t n;
	const float *decay = fx(&c, "decay", NULL), *ema = fx(&c, "ema", &n);
	const float *param = fx(&c, "param", NULL), *out = fx(&c, "out", NULL);
	if (fixture_broken(&c, 0) || missing_op(cs, "update", nn->ema_update != NULL))
		return;
	float *E = dev_copy(ema, n * 4), *P = dev_copy(param, n * 4);
	nn->ema_update(E, P, n, *decay);
	check_output(cs, "update", tol[TOL_ELEM], "ema", E, out, n);
	dev_free_all();
}

/* Every case in the fixture file, with the function that checks it. */
static const struct { const char *cs; void (*run)(const char *); } cases[] = {
	{ "gemm_nn", case_gemm },
	{ "gemm_nt_batched", case_gemm },
	{ "gemm_tn_batched", case_gemm },
	{ "gemm_tt", case_gemm },
	{ "linear", case_linear },
	{ "linear_nobias", case_linear },
	{ "conv2d_3x3_s1", case_conv2d },
	{ "conv2d_3x3_s2_taming", case_conv2d },
	{ "conv2d_3x3_s2_odd", case_conv2d },
	{ "conv2d_1x1", case_conv2d },
	{ "conv2d_2x3_nobias", case_conv2d },
	{ "upsample_x2", case_resample },
	{ "upsample_x3", case_resample },
	{ "avgpool_x2", case_resample },
	{ "avgpool_x3", case_resample },
	{ "layernorm_affine", case_layernorm },
	{ "layernorm_plain", case_layernorm },
	{ "groupnorm", case_groupnorm },
	{ "groupnorm_g1", case_groupnorm },
	{ "modulate", case_modulate },
	{ "act_gelu_erf", case_act },
	{ "act_gelu_tanh", case_act },
	{ "act_quick_gelu", case_act },
	{ "act_silu", case_act },
	{ "act_identity", case_act },
	{ "softmax", case_softmax },
	{ "log_softmax", case_softmax },
	{ "attention_self", case_attention },
	{ "attention_causal", case_attention },
	{ "attention_keypad", case_attention },
	{ "attention_cross", case_attention },
	{ "attention_cross_keypad", case_attention },
	{ "attention_causal_keypad", case_attention },
	{ "attention_blocks_cross", case_attention },
	{ "attention_blocks_causal", case_attention },
	{ "embedding", case_embedding },
	{ "cross_entropy", case_cross_entropy },
	{ "mse", case_mse },
	{ "kl", case_kl },
	{ "elementwise", case_elementwise },
	{ "reduce", case_reduce },
	{ "adamw_first", case_adamw },
	{ "adamw_later", case_adamw },
	{ "ema", case_ema },
};

static void run_all(const char *name)
{
	backend = name;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cases[i].run(cases[i].cs);
}

int main(void)
{
	fixture = golden_fixture("nn/ops.safetensors", "fixtures");
	if (!fixture)
		return 1;

	if (nn_use_backend("cpu") < 0) {
		printf("FAIL cpu backend: %s\n", error_message());
		return 1;
	}
	run_all("cpu");
	if (nn_use_backend("cuda") == 0)
		run_all("cuda");
	else
		printf("# no CUDA run: %s\n", error_message());
	nn_use_backend("cpu");

	st_close(fixture);
	TEST_EXIT();
}
