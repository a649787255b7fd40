/* Normalisation layers: layer norm over the last dimension, group norm over
 * channel groups of [B, C, HW] images, and adaptive layer norm's modulation.
 *
 * Statistics use the biased variance with eps inside the square root, as
 * PyTorch does, and are computed in two passes (mean, then squared
 * deviations) for accuracy. The forward pass saves mean and rstd = 1/std per
 * normalised group; the backward pass recomputes xhat = (x - mean) * rstd.
 *
 * Parameter gradients are sums over rows (or batch and pixels). To keep them
 * independent of the thread count, the threads split the parameter's
 * elements and each sums its elements over all rows in order, instead of
 * summing per-thread partials. */
#include <math.h>

#include "nn/cpu/cpu.h"
#include "nn/cpu/cpu_math.h"

#define PARALLEL_MIN_ELEMS 32768
#define PARALLEL_IF(n) if ((long)(n) >= PARALLEL_MIN_ELEMS)
/* Columns per task when summing parameter gradients over rows. */
#define COLS_PER_TASK 64

/* Mean and 1/sqrt(var + eps) of n contiguous floats. */
static void moments(const float *restrict x, long n, float eps, float *mean, float *rstd)
{
	float s = 0;
#pragma omp simd reduction(+ : s)
	for (long i = 0; i < n; i++)
		s += x[i];
	float m = s / n, v = 0;
#pragma omp simd reduction(+ : v)
	for (long i = 0; i < n; i++)
		v += (x[i] - m) * (x[i] - m);
	*mean = m;
	*rstd = 1.0f / sqrtf(v / n + eps);
}

void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                           const float *bias, int N, int C, float eps)
{
#pragma omp parallel for schedule(static) PARALLEL_IF((long)N * C)
	for (int i = 0; i < N; i++) {
		const float *restrict x = inp + (size_t)i * C;
		float *restrict y = out + (size_t)i * C;
		float m, r;
		moments(x, C, eps, &m, &r);
		mean[i] = m;
		rstd[i] = r;
		/* separate passes over the row (in L1) keep each loop branch-free */
#pragma omp simd
		for (int c = 0; c < C; c++)
			y[c] = (x[c] - m) * r;
		if (weight) {
#pragma omp simd
			for (int c = 0; c < C; c++)
				y[c] *= weight[c];
		}
		if (bias) {
#pragma omp simd
			for (int c = 0; c < C; c++)
				y[c] += bias[c];
		}
	}
}

/* dx for one row; has_weight is a constant at each call, so that the loops
 * have no branch in them. */
static inline __attribute__((always_inline)) void layernorm_backward_row(
	float *restrict dx, const float *restrict x, const float *restrict dy, const float *restrict weight,
	float m, float r, int C, const int has_weight)
{
	float sum_g = 0, sum_gx = 0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
	for (int c = 0; c < C; c++) {
		float g = has_weight ? dy[c] * weight[c] : dy[c];
		sum_g += g;
		sum_gx += g * (x[c] - m) * r;
	}
	float mg = sum_g / C, mgx = sum_gx / C;
#pragma omp simd
	for (int c = 0; c < C; c++) {
		float g = has_weight ? dy[c] * weight[c] : dy[c];
		dx[c] += r * (g - mg - (x[c] - m) * r * mgx);
	}
}

/* With g = dout * weight and xhat the normalised input of a row,
 *   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),
 *   dweight += sum_rows dout * xhat,  dbias += sum_rows dout. */
void cpu_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, const float *mean, const float *rstd, int N, int C)
{
	if (dinp) {
#pragma omp parallel for schedule(static) PARALLEL_IF((long)N * C)
		for (int i = 0; i < N; i++) {
			size_t off = (size_t)i * C;
			if (weight)
				layernorm_backward_row(dinp + off, inp + off, dout + off, weight, mean[i], rstd[i], C, 1);
			else
				layernorm_backward_row(dinp + off, inp + off, dout + off, NULL, mean[i], rstd[i], C, 0);
		}
	}
	if (!dweight && !dbias)
		return;
	int tasks = (C + COLS_PER_TASK - 1) / COLS_PER_TASK;
#pragma omp parallel for schedule(static) PARALLEL_IF((long)N * C)
	for (int t = 0; t < tasks; t++) {
		int c0 = t * COLS_PER_TASK, c1 = c0 + COLS_PER_TASK < C ? c0 + COLS_PER_TASK : C;
		float dw[COLS_PER_TASK] = {0}, db[COLS_PER_TASK] = {0};
		for (int i = 0; i < N; i++) {
			const float *restrict x = inp + (size_t)i * C, *restrict dy = dout + (size_t)i * C;
			float m = mean[i], r = rstd[i];
#pragma omp simd
			for (int c = c0; c < c1; c++) {
				dw[c - c0] += dy[c] * (x[c] - m) * r;
				db[c - c0] += dy[c];
			}
		}
		for (int c = c0; c < c1; c++) {
			if (dweight)
				dweight[c] += dw[c - c0];
			if (dbias)
				dbias[c] += db[c - c0];
		}
	}
}

/* Groups are contiguous: group g of image b is the (C/G)*HW floats from
 * channel g*C/G on. */
void cpu_groupnorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                           const float *bias, int B, int C, int HW, int G, float eps)
{
	const int cpg = C / G;
	const long group = (long)cpg * HW;
#pragma omp parallel for schedule(static) PARALLEL_IF((long)B * C * HW)
	for (int bg = 0; bg < B * G; bg++) {
		const float *x = inp + bg * group;
		float *y = out + bg * group;
		float m, r;
		moments(x, group, eps, &m, &r);
		mean[bg] = m;
		rstd[bg] = r;
		for (int cc = 0; cc < cpg; cc++) {
			int c = (bg % G) * cpg + cc;
			float w = weight ? weight[c] * r : r, sh = (bias ? bias[c] : 0.0f) - m * w;
			const float *restrict xc = x + (long)cc * HW;
			float *restrict yc = y + (long)cc * HW;
#pragma omp simd
			for (int p = 0; p < HW; p++)
				yc[p] = xc[p] * w + sh;
		}
	}
}

/* As layer norm, over each (image, group) of cpg * HW elements, with the
 * per-channel weight; dweight/dbias sum over images and pixels. */
void cpu_groupnorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, const float *mean, const float *rstd, int B, int C, int HW,
                            int G)
{
	const int cpg = C / G;
	const long group = (long)cpg * HW;
	if (dinp) {
#pragma omp parallel for schedule(static) PARALLEL_IF((long)B * C * HW)
		for (int bg = 0; bg < B * G; bg++) {
			float m = mean[bg], r = rstd[bg], sum_g = 0, sum_gx = 0;
			for (int cc = 0; cc < cpg; cc++) {
				int c = (bg % G) * cpg + cc;
				float w = weight ? weight[c] : 1.0f;
				const float *restrict x = inp + bg * group + (long)cc * HW;
				const float *restrict dy = dout + bg * group + (long)cc * HW;
				float s = 0, sx = 0;
#pragma omp simd reduction(+ : s, sx)
				for (int p = 0; p < HW; p++) {
					s += dy[p];
					sx += dy[p] * (x[p] - m);
				}
				sum_g += w * s;
				sum_gx += w * sx * r;
			}
			float mg = sum_g / group, mgx = sum_gx / group;
			for (int cc = 0; cc < cpg; cc++) {
				int c = (bg % G) * cpg + cc;
				float w = weight ? weight[c] : 1.0f;
				const float *restrict x = inp + bg * group + (long)cc * HW;
				const float *restrict dy = dout + bg * group + (long)cc * HW;
				float *restrict dx = dinp + bg * group + (long)cc * HW;
#pragma omp simd
				for (int p = 0; p < HW; p++)
					dx[p] += r * (w * dy[p] - mg - (x[p] - m) * r * mgx);
			}
		}
	}
	if (!dweight && !dbias)
		return;
#pragma omp parallel for schedule(static) PARALLEL_IF((long)B * C * HW)
	for (int c = 0; c < C; c++) {
		float dw = 0, db = 0;
		for (int b = 0; b < B; b++) {
			int bg = b * G + c / cpg;
			float m = mean[bg], r = rstd[bg];
			const float *restrict x = inp + ((long)b * C + c) * HW;
			const float *restrict dy = dout + ((long)b * C + c) * HW;
			float s = 0, sx = 0;
#pragma omp simd reduction(+ : s, sx)
			for (int p = 0; p < HW; p++) {
				s += dy[p];
				sx += dy[p] * (x[p] - m);
			}
			dw += sx * r;
			db += s;
		}
		if (dweight)
			dweight[c] += dw;
		if (dbias)
			dbias[c] += db;
	}
}

/* out[b,t,:] = x[b,t,:] * (1 + scale[b*ld + :]) + shift[b*ld + :] */
void cpu_modulate_forward(float *out, const float *x, const float *scale, const float *shift, int ld, int B,
                          int T, int C)
{
#pragma omp parallel for schedule(static) PARALLEL_IF((long)B * T * C)
	for (long row = 0; row < (long)B * T; row++) {
		const float *restrict sc = scale + (row / T) * ld, *restrict sh = shift + (row / T) * ld;
		const float *restrict xr = x + row * C;
		float *restrict y = out + row * C;
#pragma omp simd
		for (int c = 0; c < C; c++)
			y[c] = xr[c] * (1.0f + sc[c]) + sh[c];
	}
}

/* dx += dout * (1 + scale); dscale += sum_t dout * x; dshift += sum_t dout,
 * the last two at row stride ld like scale and shift. */
void cpu_modulate_backward(float *dx, float *dscale, float *dshift, const float *dout, const float *x,
                           const float *scale, int ld, int B, int T, int C)
{
	if (dx) {
#pragma omp parallel for schedule(static) PARALLEL_IF((long)B * T * C)
		for (long row = 0; row < (long)B * T; row++) {
			const float *restrict sc = scale + (row / T) * ld, *restrict dy = dout + row * C;
			float *restrict d = dx + row * C;
#pragma omp simd
			for (int c = 0; c < C; c++)
				d[c] += dy[c] * (1.0f + sc[c]);
		}
	}
	if (!dscale && !dshift)
		return;
	int col_tasks = (C + COLS_PER_TASK - 1) / COLS_PER_TASK;
#pragma omp parallel for schedule(static) PARALLEL_IF((long)B * T * C)
	for (int task = 0; task < B * col_tasks; task++) {
		int b = task / col_tasks, c0 = task % col_tasks * COLS_PER_TASK;
		int c1 = c0 + COLS_PER_TASK < C ? c0 + COLS_PER_TASK : C;
		float ds[COLS_PER_TASK] = {0}, dsh[COLS_PER_TASK] = {0};
		for (int t = 0; t < T; t++) {
			const float *restrict xr = x + ((long)b * T + t) * C, *restrict dy = dout + ((long)b * T + t) * C;
#pragma omp simd
			for (int c = c0; c < c1; c++) {
				ds[c - c0] += dy[c] * xr[c];
				dsh[c - c0] += dy[c];
			}
		}
		for (int c = c0; c < c1; c++) {
			if (dscale)
				dscale[(long)b * ld + c] += ds[c - c0];
			if (dshift)
				dshift[(long)b * ld + c] += dsh[c - c0];
		}
	}
}
