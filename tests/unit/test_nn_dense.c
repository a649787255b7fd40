/* The dense CPU ops: memory, gemm, linear, conv2d, resampling, elementwise
 * arithmetic, reductions and embeddings. Forward passes are compared with
 * naive loops in double, backward passes with finite differences
 * (nn/gradcheck.h), and results must not change between runs or thread
 * counts. Sizes are tiny; each conv method (im2col, 1x1, Winograd) gets the
 * geometries that reach its edge cases. */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "nn/cpu/cpu.h"
#include "nn/gradcheck.h"
#include "test.h"

/* ---- helpers ---- */

static uint64_t rng_state = 12345;

static float urand(void) /* uniform in [-1, 1) */
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (float)(rng_state >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

static float *random_floats(size_t n)
{
	float *p = cpu_alloc(n * sizeof *p);
	for (size_t i = 0; i < n; i++)
		p[i] = urand();
	return p;
}

static float *copy_floats(const float *x, size_t n)
{
	float *p = cpu_alloc(n * sizeof *p);
	memcpy(p, x, n * sizeof *p);
	return p;
}

/* max |a - b| / max(1, max |b|): error relative to the data's scale */
static double rel_diff(const float *a, const double *b, size_t n)
{
	double err = 0, scale = 1;
	for (size_t i = 0; i < n; i++) {
		double d = fabs(a[i] - b[i]);
		if (!(d <= err))
			err = d;
		if (fabs(b[i]) > scale)
			scale = fabs(b[i]);
	}
	return err / scale;
}

/* rel_diff of got against base + add (a gradient accumulated onto base) */
static double rel_diff_sum(const float *got, const float *base, const double *add, size_t n)
{
	double *want = malloc((n ? n : 1) * sizeof *want);
	for (size_t i = 0; i < n; i++)
		want[i] = base[i] + add[i];
	double e = rel_diff(got, want, n);
	free(want);
	return e;
}

static int same_bits(const float *a, const float *b, size_t n)
{
	return memcmp(a, b, n * sizeof *a) == 0;
}

/* ---- memory ---- */

static void test_memory(void)
{
	float host[100], back[100];
	for (int i = 0; i < 100; i++)
		host[i] = (float)i;
	float *p = cpu_alloc(sizeof host);
	CHECK(p && ((uintptr_t)p & 63) == 0);
	cpu_upload(p, host, sizeof host);
	cpu_download(back, p, sizeof back);
	CHECK(memcmp(host, back, sizeof host) == 0);
	cpu_zero(p, 10 * sizeof *p);
	cpu_download(back, p, sizeof back);
	CHECK(back[0] == 0 && back[9] == 0 && back[10] == 10);
	cpu_sync();
	cpu_free(p);
	void *empty = cpu_alloc(0);
	CHECK(empty != NULL);
	cpu_free(empty);
	CHECK(cpu_alloc((size_t)-1) == NULL);
}

/* ---- gemm ---- */

/* C = alpha op(A) op(B) + beta C, row-major, in double. */
static void naive_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, const float *C, int ldc, double *out)
{
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++) {
			double s = 0;
			for (int k = 0; k < K; k++)
				s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) *
				     (tb ? B[j * ldb + k] : B[k * ldb + j]);
			out[i * N + j] = alpha * s + (beta == 0 ? 0 : beta * (double)C[i * ldc + j]);
		}
}

/* One batched product against the naive loop, with padded leading
 * dimensions; stride_a 0 shares A across the batch. */
static double gemm_error(int ta, int tb, int M, int N, int K, int batch, int share_a, float beta)
{
	int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
	long sa = share_a ? 0 : (long)(ta ? K : M) * lda + 5;
	long sb = (long)(tb ? N : K) * ldb + 7, sc = (long)M * ldc + 1;
	float *A = random_floats(sa * (batch - 1) + (size_t)(ta ? K : M) * lda);
	float *B = random_floats(sb * (batch - 1) + (size_t)(tb ? N : K) * ldb);
	size_t nc = sc * (batch - 1) + (size_t)M * ldc;
	float *C = random_floats(nc);
	if (beta == 0) /* beta 0 must overwrite whatever C held */
		for (size_t i = 0; i < nc; i++)
			C[i] = NAN;
	float *C0 = copy_floats(C, nc);
	cpu_gemm(ta, tb, M, N, K, 0.5f, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
	double *want = malloc((size_t)M * N * sizeof *want), worst = 0;
	for (int b = 0; b < batch; b++) {
		naive_gemm(ta, tb, M, N, K, 0.5f, A + b * sa, lda, B + b * sb, ldb, beta, C0 + b * sc,
		           ldc, want);
		for (int i = 0; i < M; i++) {
			double e = rel_diff(C + b * sc + (long)i * ldc, want + (long)i * N, N);
			if (!(e <= worst))
				worst = e;
		}
	}
	/* the padding between rows and products is left alone */
	for (int b = 0; b < batch; b++)
		for (int i = 0; i < M; i++)
			for (int j = N; j < ldc && b * sc + (long)i * ldc + j < (long)nc; j++) {
				size_t at = b * sc + (size_t)i * ldc + j;
				if (memcmp(&C[at], &C0[at], sizeof(float)))
					worst = INFINITY;
			}
	free(want);
	cpu_free(A);
	cpu_free(B);
	cpu_free(C);
	cpu_free(C0);
	return worst;
}

static void test_gemm_vs_naive(void)
{
	/* small (one thread), split over rows or columns, batch in parallel */
	const int shapes[][5] = {
		/* M, N, K, batch, share_a */
		{3, 5, 7, 1, 0}, {1, 1, 1, 1, 0}, {130, 67, 150, 1, 0}, {40, 300, 200, 1, 0},
		{17, 9, 13, 3, 0}, {64, 64, 64, 8, 1}, {96, 80, 120, 3, 0},
	};
	for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
		for (int ta = 0; ta < 2; ta++)
			for (int tb = 0; tb < 2; tb++)
				for (int z = 0; z < 2; z++) {
					const int *p = shapes[s];
					double e = gemm_error(ta, tb, p[0], p[1], p[2], p[3], p[4], z ? 0.0f : 0.75f);
					CHECK_MSG(e < 1e-5, "M%d N%d K%d batch %d ta %d tb %d beta %s: error %g",
					          p[0], p[1], p[2], p[3], ta, tb, z ? "0" : "0.75", e);
				}
}

static void test_gemm_edges(void)
{
	/* K = 0: an empty sum, C = beta C */
	float C[6] = {1, 2, 3, 4, 5, 6};
	cpu_gemm(0, 0, 2, 3, 0, 1, C, 1, 0, C, 3, 0, 2, C, 3, 0, 1);
	CHECK(C[0] == 2 && C[5] == 12);
	cpu_gemm(0, 0, 2, 3, 0, 1, C, 1, 0, C, 3, 0, 0, C, 3, 0, 1);
	CHECK(C[0] == 0 && C[5] == 0);
	/* empty shapes and batches do nothing */
	C[0] = 7;
	cpu_gemm(0, 0, 0, 3, 2, 1, C, 2, 0, C, 3, 0, 0, C, 3, 0, 1);
	cpu_gemm(0, 0, 2, 3, 2, 1, C, 2, 0, C, 3, 0, 0, C, 3, 0, 0);
	CHECK(C[0] == 7);
}

/* Products run on 1 and 2 threads give the same bits. */
static void test_gemm_threads(void)
{
	const int shapes[][4] = {{200, 150, 100, 1}, {40, 300, 200, 1}, {64, 48, 64, 6}, {96, 80, 120, 3}};
	int saved = omp_get_max_threads();
	for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
		int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], batch = shapes[s][3];
		float *A = random_floats((size_t)batch * M * K), *B = random_floats((size_t)batch * K * N);
		float *C1 = random_floats((size_t)batch * M * N), *C2 = copy_floats(C1, (size_t)batch * M * N);
		omp_set_num_threads(1);
		cpu_gemm(0, 1, M, N, K, 1, A, K, (long)M * K, B, K, (long)K * N, 1, C1, N, (long)M * N, batch);
		omp_set_num_threads(2);
		cpu_gemm(0, 1, M, N, K, 1, A, K, (long)M * K, B, K, (long)K * N, 1, C2, N, (long)M * N, batch);
		CHECK_MSG(same_bits(C1, C2, (size_t)batch * M * N), "M%d N%d K%d batch %d", M, N, K, batch);
		cpu_free(A);
		cpu_free(B);
		cpu_free(C1);
		cpu_free(C2);
	}
	omp_set_num_threads(saved);
}

/* ---- linear ---- */

struct linear_case {
	float *inp, *w, *b;
	int N, IN, OUT;
};

static void linear_fwd(void *ctx, float *out)
{
	struct linear_case *l = ctx;
	cpu_linear_forward(out, l->inp, l->w, l->b, l->N, l->IN, l->OUT);
}

static void linear_bwd(void *ctx, float *const *grad, const float *dout)
{
	struct linear_case *l = ctx;
	cpu_linear_backward(grad[0], grad[1], l->b ? grad[2] : NULL, dout, l->inp, l->w, l->N, l->IN,
	                    l->OUT);
}

static void test_linear_grad(void)
{
	float inp[3 * 4], w[5 * 4], b[5];
	struct linear_case l = {inp, w, b, 3, 4, 5};
	struct gradcheck g = {linear_fwd, linear_bwd, &l, .n_out = 3 * 5,
	                      .in = {{"inp", inp, 12}, {"weight", w, 20}, {"bias", b, 5}}};
	gradcheck_fill(&g, 1);
	CHECK_MSG(gradcheck(&g) == 0, "%s", error_message());
	/* without a bias */
	l.b = NULL;
	g.in[2].x = NULL;
	CHECK_MSG(gradcheck(&g) == 0, "no bias: %s", error_message());
}

/* Big enough to take the threaded path; against a naive loop. */
static void test_linear_vs_naive(void)
{
	int N = 70, IN = 90, OUT = 200;
	float *inp = random_floats((size_t)N * IN), *w = random_floats((size_t)OUT * IN);
	float *b = random_floats(OUT), *out = random_floats((size_t)N * OUT);
	float *dout = random_floats((size_t)N * OUT);
	float *dinp = random_floats((size_t)N * IN), *dw = random_floats((size_t)OUT * IN);
	float *db = random_floats(OUT);
	float *dinp0 = copy_floats(dinp, (size_t)N * IN), *dw0 = copy_floats(dw, (size_t)OUT * IN);
	float *db0 = copy_floats(db, OUT);
	cpu_linear_forward(out, inp, w, b, N, IN, OUT);
	cpu_linear_backward(dinp, dw, db, dout, inp, w, N, IN, OUT);
	double *y = calloc((size_t)N * OUT, sizeof *y), *dx = calloc((size_t)N * IN, sizeof *dx);
	double *dW = calloc((size_t)OUT * IN, sizeof *dW), *dB = calloc(OUT, sizeof *dB);
	for (int n = 0; n < N; n++)
		for (int o = 0; o < OUT; o++) {
			double s = b[o], d = dout[n * OUT + o];
			for (int i = 0; i < IN; i++) {
				s += (double)inp[n * IN + i] * w[o * IN + i];
				dx[n * IN + i] += d * w[o * IN + i];
				dW[o * IN + i] += d * inp[n * IN + i];
			}
			y[n * OUT + o] = s;
			dB[o] += d;
		}
	for (size_t i = 0; i < (size_t)N * IN; i++)
		dx[i] += dinp0[i];
	for (size_t i = 0; i < (size_t)OUT * IN; i++)
		dW[i] += dw0[i];
	for (int i = 0; i < OUT; i++)
		dB[i] += db0[i];
	CHECK(rel_diff(out, y, (size_t)N * OUT) < 1e-5);
	CHECK(rel_diff(dinp, dx, (size_t)N * IN) < 1e-5);
	CHECK(rel_diff(dw, dW, (size_t)OUT * IN) < 1e-5);
	CHECK(rel_diff(db, dB, OUT) < 1e-5);
	/* NULL gradients are skipped */
	cpu_linear_backward(NULL, NULL, NULL, dout, inp, w, N, IN, OUT);
	free(y);
	free(dx);
	free(dW);
	free(dB);
	float *all[] = {inp, w, b, out, dout, dinp, dw, db, dinp0, dw0, db0};
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		cpu_free(all[i]);
}

/* ---- conv2d ---- */

static size_t conv_in_size(const struct nn_conv2d *g)
{
	return (size_t)g->B * g->IC * g->H * g->W;
}

static size_t conv_w_size(const struct nn_conv2d *g)
{
	return (size_t)g->OC * g->IC * g->KH * g->KW;
}

static size_t conv_out_size(const struct nn_conv2d *g)
{
	return (size_t)g->B * g->OC * nn_conv2d_out_h(g) * nn_conv2d_out_w(g);
}

/* Direct convolution in double: y (assigned), and dx, dw, db (accumulated)
 * for output gradient dy. */
static void naive_conv(const struct nn_conv2d *g, const float *x, const float *w, const float *b,
                       const float *dy, double *y, double *dx, double *dw, double *db)
{
	int OH = nn_conv2d_out_h(g), OW = nn_conv2d_out_w(g);
	for (int n = 0; n < g->B; n++)
		for (int oc = 0; oc < g->OC; oc++)
			for (int oh = 0; oh < OH; oh++)
				for (int ow = 0; ow < OW; ow++) {
					size_t yi = (((size_t)n * g->OC + oc) * OH + oh) * OW + ow;
					double s = b ? b[oc] : 0, d = dy[yi];
					db[oc] += d;
					for (int ic = 0; ic < g->IC; ic++)
						for (int kh = 0; kh < g->KH; kh++)
							for (int kw = 0; kw < g->KW; kw++) {
								int ih = oh * g->stride - g->pad_top + kh;
								int iw = ow * g->stride - g->pad_left + kw;
								if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W)
									continue;
								size_t xi = (((size_t)n * g->IC + ic) * g->H + ih) * g->W + iw;
								size_t wi = (((size_t)oc * g->IC + ic) * g->KH + kh) * g->KW + kw;
								s += (double)x[xi] * w[wi];
								dx[xi] += d * w[wi];
								dw[wi] += d * x[xi];
							}
					y[yi] = s;
				}
}

/* Geometries: B, IC, H, W, OC, KH, KW, stride, pad top, left, bottom, right. */
static const struct nn_conv2d conv_cases[] = {
	{2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1},     /* im2col, 3x3 same */
	{2, 3, 8, 7, 5, 3, 3, 2, 0, 0, 1, 1},     /* taming's downsample: stride 2, pad (0,1,0,1) */
	{1, 4, 9, 11, 3, 4, 4, 2, 1, 1, 1, 1},    /* 4x4 stride 2 (PatchGAN) */
	{2, 5, 6, 7, 3, 1, 1, 1, 0, 0, 0, 0},     /* 1x1: straight gemm */
	{2, 3, 5, 9, 2, 2, 3, 1, 0, 2, 1, 0},     /* non-square kernel, odd padding */
	{1, 2, 3, 3, 2, 3, 3, 3, 1, 1, 1, 1},     /* stride 3, output 1x1 */
	{1, 2, 4, 5, 3, 1, 1, 2, 0, 1, 0, 0},     /* 1x1 but strided and padded: unfolded */
	{2, 64, 5, 7, 64, 3, 3, 1, 1, 1, 1, 1},   /* Winograd, odd output sizes */
	{1, 70, 6, 6, 66, 3, 3, 1, 0, 1, 0, 1},   /* Winograd, asymmetric padding */
	{2, 64, 4, 9, 65, 3, 3, 1, 2, 0, 1, 2},   /* Winograd, uneven padding */
	{3, 64, 9, 3, 64, 3, 3, 1, 0, 0, 0, 0},   /* Winograd, no padding, thin */
};

static void test_conv_vs_naive(void)
{
	for (size_t c = 0; c < sizeof conv_cases / sizeof *conv_cases; c++) {
		const struct nn_conv2d *g = &conv_cases[c];
		size_t nx = conv_in_size(g), nw = conv_w_size(g), ny = conv_out_size(g);
		float *x = random_floats(nx), *w = random_floats(nw), *b = random_floats(g->OC);
		float *dy = random_floats(ny), *y = random_floats(ny);
		/* gradients accumulate onto what was there */
		float *dx = random_floats(nx), *dw = random_floats(nw), *db = random_floats(g->OC);
		float *dx0 = copy_floats(dx, nx), *dw0 = copy_floats(dw, nw), *db0 = copy_floats(db, g->OC);
		double *wy = calloc(ny, sizeof *wy), *gx = calloc(nx, sizeof *gx);
		double *gw = calloc(nw, sizeof *gw), *gb = calloc(g->OC, sizeof *gb);
		naive_conv(g, x, w, b, dy, wy, gx, gw, gb);
		cpu_conv2d_forward(y, x, w, b, g);
		cpu_conv2d_backward(dx, dw, db, dy, x, w, g);
		double ey = rel_diff(y, wy, ny), ex = rel_diff_sum(dx, dx0, gx, nx);
		double ew = rel_diff_sum(dw, dw0, gw, nw), eb = rel_diff_sum(db, db0, gb, g->OC);
		CHECK_MSG(ey < 2e-6 && ex < 2e-6 && ew < 2e-6 && eb < 2e-6,
		          "case %zu: errors out %g dinp %g dweight %g dbias %g", c, ey, ex, ew, eb);
		/* each gradient alone, the others NULL */
		cpu_upload(dx, dx0, nx * 4);
		cpu_upload(dw, dw0, nw * 4);
		cpu_conv2d_backward(dx, NULL, NULL, dy, x, w, g);
		cpu_conv2d_backward(NULL, dw, NULL, dy, x, w, g);
		CHECK_MSG(rel_diff_sum(dx, dx0, gx, nx) < 2e-6 && rel_diff_sum(dw, dw0, gw, nw) < 2e-6,
		          "case %zu: gradients computed alone differ", c);
		/* without a bias */
		cpu_conv2d_forward(y, x, w, NULL, g);
		for (size_t i = 0; i < ny; i++)
			wy[i] -= b[i / ((size_t)nn_conv2d_out_h(g) * nn_conv2d_out_w(g)) % g->OC];
		CHECK_MSG(rel_diff(y, wy, ny) < 2e-6, "case %zu: without bias", c);
		float *all[] = {x, w, b, dy, y, dx, dw, db, dx0, dw0, db0};
		for (size_t i = 0; i < sizeof all / sizeof *all; i++)
			cpu_free(all[i]);
		free(wy);
		free(gx);
		free(gw);
		free(gb);
	}
}

struct conv_case {
	const struct nn_conv2d *g;
	float *x, *w, *b;
};

static void conv_fwd(void *ctx, float *out)
{
	struct conv_case *c = ctx;
	cpu_conv2d_forward(out, c->x, c->w, c->b, c->g);
}

static void conv_bwd(void *ctx, float *const *grad, const float *dout)
{
	struct conv_case *c = ctx;
	cpu_conv2d_backward(grad[0], grad[1], grad[2], dout, c->x, c->w, c->g);
}

static void test_conv_grad(void)
{
	/* one geometry per method: unfolded with stride and odd padding, 1x1,
	 * Winograd (checked on a sample of its many weights) */
	const struct nn_conv2d *pick[] = {&conv_cases[1], &conv_cases[3], &conv_cases[8]};
	for (size_t k = 0; k < sizeof pick / sizeof *pick; k++) {
		const struct nn_conv2d *g = pick[k];
		size_t nx = conv_in_size(g), nw = conv_w_size(g);
		struct conv_case c = {g, cpu_alloc(nx * 4), cpu_alloc(nw * 4), cpu_alloc(g->OC * 4)};
		struct gradcheck gc = {conv_fwd, conv_bwd, &c, .n_out = conv_out_size(g),
		                       .in = {{"inp", c.x, nx}, {"weight", c.w, nw}, {"bias", c.b, g->OC}},
		                       .max_checks = 60};
		gradcheck_fill(&gc, 7 + k);
		CHECK_MSG(gradcheck(&gc) == 0, "geometry %zu: %s", k, error_message());
		cpu_free(c.x);
		cpu_free(c.w);
		cpu_free(c.b);
	}
}

/* Same bits twice, and on 1 and 2 threads, for both methods. */
static void test_conv_determinism(void)
{
	/* big enough that the backward passes split over two threads */
	const struct nn_conv2d cases[] = {
		{2, 32, 32, 32, 64, 3, 3, 2, 0, 0, 1, 1},  /* unfolded */
		{1, 64, 48, 48, 64, 3, 3, 1, 1, 1, 1, 1},  /* Winograd */
		{2, 64, 32, 32, 64, 1, 1, 1, 0, 0, 0, 0},  /* 1x1 */
		/* small: split over threads, OpenBLAS would use its small-matrix
		 * kernel for one half and not the whole, and round differently */
		{2, 64, 6, 6, 32, 1, 1, 1, 0, 0, 0, 0},
	};
	int saved = omp_get_max_threads();
	for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
		const struct nn_conv2d *g = &cases[c];
		size_t nx = conv_in_size(g), nw = conv_w_size(g), ny = conv_out_size(g);
		float *x = random_floats(nx), *w = random_floats(nw), *b = random_floats(g->OC);
		float *dy = random_floats(ny);
		float *y[3], *dx[3], *dw[3], *db[3];
		for (int r = 0; r < 3; r++) { /* runs: 2 threads, 2 threads, 1 thread */
			omp_set_num_threads(r == 2 ? 1 : 2);
			y[r] = cpu_alloc(ny * 4);
			dx[r] = cpu_alloc(nx * 4);
			dw[r] = cpu_alloc(nw * 4);
			db[r] = cpu_alloc(g->OC * 4);
			cpu_zero(dx[r], nx * 4);
			cpu_zero(dw[r], nw * 4);
			cpu_zero(db[r], g->OC * 4);
			cpu_conv2d_forward(y[r], x, w, b, g);
			cpu_conv2d_backward(dx[r], dw[r], db[r], dy, x, w, g);
		}
		for (int r = 1; r < 3; r++)
			CHECK_MSG(same_bits(y[0], y[r], ny) && same_bits(dx[0], dx[r], nx) &&
			          same_bits(dw[0], dw[r], nw) && same_bits(db[0], db[r], g->OC),
			          "case %zu: run %d differs (%s): out %d dinp %d dweight %d dbias %d", c, r,
			          r == 1 ? "same threads" : "1 thread vs 2", !same_bits(y[0], y[r], ny),
			          !same_bits(dx[0], dx[r], nx), !same_bits(dw[0], dw[r], nw),
			          !same_bits(db[0], db[r], g->OC));
		for (int r = 0; r < 3; r++) {
			cpu_free(y[r]);
			cpu_free(dx[r]);
			cpu_free(dw[r]);
			cpu_free(db[r]);
		}
		cpu_free(x);
		cpu_free(w);
		cpu_free(b);
		cpu_free(dy);
	}
	omp_set_num_threads(saved);
}

/* ---- upsampling and pooling ---- */

struct resample_case {
	float *x;
	int N, H, W, f, pool;
};

static void resample_fwd(void *ctx, float *out)
{
	struct resample_case *r = ctx;
	if (r->pool)
		cpu_avgpool_forward(out, r->x, r->N, r->H, r->W, r->f);
	else
		cpu_upsample_forward(out, r->x, r->N, r->H, r->W, r->f);
}

static void resample_bwd(void *ctx, float *const *grad, const float *dout)
{
	struct resample_case *r = ctx;
	if (r->pool)
		cpu_avgpool_backward(grad[0], dout, r->N, r->H, r->W, r->f);
	else
		cpu_upsample_backward(grad[0], dout, r->N, r->H, r->W, r->f);
}

static void test_resample(void)
{
	/* forward against the definitions */
	float x[2 * 2 * 3], up[2 * 4 * 6], down[2 * 2 * 3];
	for (int i = 0; i < 12; i++)
		x[i] = (float)i;
	cpu_upsample_forward(up, x, 2, 2, 3, 2);
	int ok = 1;
	for (int n = 0; n < 2; n++)
		for (int y = 0; y < 4; y++)
			for (int xx = 0; xx < 6; xx++)
				ok &= up[(n * 4 + y) * 6 + xx] == x[(n * 2 + y / 2) * 3 + xx / 2];
	CHECK(ok);
	cpu_avgpool_forward(down, up, 2, 4, 6, 2);
	CHECK(memcmp(down, x, sizeof x) == 0); /* pooling undoes upsampling */

	/* gradients, factors 2 and 3 */
	for (int pool = 0; pool < 2; pool++)
		for (int f = 2; f <= 3; f++) {
			int N = 2, H = pool ? 2 * f : 3, W = pool ? 3 * f : 2;
			size_t n_in = (size_t)N * H * W;
			size_t n_out = pool ? n_in / (f * f) : n_in * f * f;
			struct resample_case r = {cpu_alloc(n_in * 4), N, H, W, f, pool};
			struct gradcheck g = {resample_fwd, resample_bwd, &r, .n_out = n_out,
			                      .in = {{pool ? "pool_inp" : "upsample_inp", r.x, n_in}}};
			gradcheck_fill(&g, 3);
			CHECK_MSG(gradcheck(&g) == 0, "%s factor %d: %s", pool ? "avgpool" : "upsample", f,
			          error_message());
			cpu_free(r.x);
		}
}

/* ---- elementwise and reductions ---- */

static void test_elementwise(void)
{
	size_t n = 100003; /* threaded, odd tail */
	float *a = random_floats(n), *b = random_floats(n), *out = cpu_alloc(n * 4);
	float *acc = copy_floats(a, n);
	cpu_add(out, a, b, n);
	cpu_accumulate(acc, b, n);
	int ok = 1;
	for (size_t i = 0; i < n; i++)
		ok &= out[i] == a[i] + b[i] && acc[i] == out[i];
	CHECK(ok);
	cpu_scale(out, a, -2.5f, n);
	for (size_t i = 0; i < n; i++)
		ok &= out[i] == a[i] * -2.5f;
	CHECK(ok);
	float a0 = a[0];
	cpu_scale(a, a, 2, 3); /* in place */
	CHECK(a[0] == 2 * a0);
	cpu_free(a);
	cpu_free(b);
	cpu_free(out);
	cpu_free(acc);
}

static void test_reductions(void)
{
	const size_t sizes[] = {0, 1, 1000, 16384, 16385, 300001};
	int saved = omp_get_max_threads();
	for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
		size_t n = sizes[s];
		float *x = random_floats(n ? n : 1);
		double want = 0, want2 = 0;
		for (size_t i = 0; i < n; i++) {
			want += x[i];
			want2 += (double)x[i] * x[i];
		}
		float sum[2], sq[2];
		for (int t = 0; t < 2; t++) {
			omp_set_num_threads(t + 1);
			cpu_sum(&sum[t], x, n);
			cpu_sum_squares(&sq[t], x, n);
		}
		CHECK_MSG(fabs(sum[0] - want) <= 1e-6 * (1 + fabs(want)) + 1e-7 * sqrt((double)n),
		          "n %zu: sum %g, want %g", n, sum[0], want);
		CHECK_MSG(fabs(sq[0] - want2) <= 1e-6 * (1 + want2), "n %zu: sum of squares %g, want %g",
		          n, sq[0], want2);
		CHECK_MSG(same_bits(&sum[0], &sum[1], 1) && same_bits(&sq[0], &sq[1], 1),
		          "n %zu: 1 and 2 threads differ", n);
		cpu_free(x);
	}
	omp_set_num_threads(saved);
}

/* ---- embeddings ---- */

struct embedding_case {
	const int32_t *ids;
	float *table;
	int N, C;
};

static void embedding_fwd(void *ctx, float *out)
{
	struct embedding_case *e = ctx;
	cpu_embedding_forward(out, e->ids, e->table, e->N, e->C);
}

static void embedding_bwd(void *ctx, float *const *grad, const float *dout)
{
	struct embedding_case *e = ctx;
	cpu_embedding_backward(grad[0], dout, e->ids, e->N, e->C);
}

static void test_embedding(void)
{
	const int32_t ids[] = {3, 0, 3, 1, 3}; /* repeats must add up */
	float table[4 * 70];
	struct embedding_case e = {ids, table, 5, 70};
	struct gradcheck g = {embedding_fwd, embedding_bwd, &e, .n_out = 5 * 70,
	                      .in = {{"table", table, 4 * 70}}};
	gradcheck_fill(&g, 5);
	CHECK_MSG(gradcheck(&g) == 0, "%s", error_message());

	/* threaded: many rows hitting few ids, same bits on 1 and 2 threads */
	int N = 3000, C = 130, V = 7;
	int32_t *many = malloc(N * sizeof *many);
	for (int i = 0; i < N; i++)
		many[i] = (i * 5) % V;
	float *dout = random_floats((size_t)N * C), *d1 = cpu_alloc((size_t)V * C * 4);
	float *d2 = cpu_alloc((size_t)V * C * 4);
	cpu_zero(d1, (size_t)V * C * 4);
	cpu_zero(d2, (size_t)V * C * 4);
	int saved = omp_get_max_threads();
	omp_set_num_threads(1);
	cpu_embedding_backward(d1, dout, many, N, C);
	omp_set_num_threads(2);
	cpu_embedding_backward(d2, dout, many, N, C);
	omp_set_num_threads(saved);
	CHECK(same_bits(d1, d2, (size_t)V * C));
	double want = 0;
	for (int i = 0; i < N; i++)
		if (many[i] == 2)
			want += dout[i * C + 129];
	CHECK_NEAR(d1[2 * C + 129], want, 1e-3);
	free(many);
	cpu_free(dout);
	cpu_free(d1);
	cpu_free(d2);
}

/* ---- the checker itself catches what it should ---- */

struct broken_case {
	float *x;
	int mode; /* 0 right, 1 wrong gradient, 2 assigns instead of adding, 3 leaves out[0] unset */
};

static void square_fwd(void *ctx, float *out) /* out = x^2 */
{
	struct broken_case *c = ctx;
	for (int i = c->mode == 3 ? 1 : 0; i < 4; i++)
		out[i] = c->x[i] * c->x[i];
}

static void square_bwd(void *ctx, float *const *grad, const float *dout)
{
	struct broken_case *c = ctx;
	for (int i = 0; i < 4; i++) {
		float d = (c->mode == 1 && i == 2 ? 2.2f : 2.0f) * c->x[i] * dout[i];
		grad[0][i] = c->mode == 2 ? d : grad[0][i] + d;
	}
}

static void test_gradcheck_catches(void)
{
	float x[4];
	struct broken_case c = {x, 0};
	struct gradcheck g = {square_fwd, square_bwd, &c, .n_out = 4, .in = {{"x", x, 4}}};
	gradcheck_fill(&g, 9);
	x[2] = 0.8f; /* so that the wrong factor shows */
	CHECK_MSG(gradcheck(&g) == 0, "%s", error_message());
	for (c.mode = 1; c.mode <= 3; c.mode++)
		CHECK_MSG(gradcheck(&g) != 0, "mode %d passed", c.mode);
	c.mode = 1;
	gradcheck(&g);
	CHECK_MSG(strstr(error_message(), "dx[2]") != NULL, "%s", error_message());
}

int main(void)
{
	RUN(test_memory);
	RUN(test_gemm_vs_naive);
	RUN(test_gemm_edges);
	RUN(test_gemm_threads);
	RUN(test_linear_grad);
	RUN(test_linear_vs_naive);
	RUN(test_conv_vs_naive);
	RUN(test_conv_grad);
	RUN(test_conv_determinism);
	RUN(test_resample);
	RUN(test_elementwise);
	RUN(test_reductions);
	RUN(test_embedding);
	RUN(test_gradcheck_catches);
	TEST_EXIT();
}
