/* Optimiser updates over flat buffers: AdamW and the EMA of weights.
 *
 * Each element is independent, so the loops split across threads freely and
 * the results do not depend on the thread count. The arithmetic follows
 * torch.optim.AdamW's single-tensor path operation by operation (constants
 * computed in double and rounded to float, as PyTorch does with Python
 * scalars), so that steps agree with it to float rounding. */
#include "nn/cpu/cpu.h"

#include <math.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* `omp simd` asks for vectorisation; the -O1 sanitizer build cannot oblige,
 * and Clang would warn about each such loop. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

/* AdamW works through the buffer in blocks that stay in L1 cache. */
#define ADAMW_BLOCK 512
/* Below this many elements threads cost more than they save. */
#define OPTIM_PARALLEL_MIN 32768

/* sqrtf may set errno, which keeps compilers (without -fno-math-errno)
 * from vectorising any loop that calls it; the square roots therefore get
 * their own loop, with the SSE instruction where there is one. Both are
 * IEEE correctly rounded, so the results are the same. */
static void sqrt_in_place(float *x, size_t n)
{
	size_t i = 0;
#ifdef __SSE2__
	for (; i + 4 <= n; i += 4)
		_mm_storeu_ps(x + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
#endif
	for (; i < n; i++)
		x[i] = sqrtf(x[i]);
}

void cpu_adamw_update(float *param, const float *grad, float *m, float *v, size_t n, float lr,
                      float beta1, float beta2, float eps, float weight_decay, float grad_scale, int step)
{
	const double bias1 = 1.0 - pow(beta1, step), bias2 = 1.0 - pow(beta2, step);
	const float decay = (float)(1.0 - (double)lr * weight_decay);
	const float b1 = beta1, one_minus_b1 = (float)(1.0 - beta1);
	const float b2 = beta2, one_minus_b2 = (float)(1.0 - beta2);
	const float neg_step_size = (float)(-(double)lr / bias1);
	const float bias2_sqrt = (float)sqrt(bias2);
	const size_t nblocks = (n + ADAMW_BLOCK - 1) / ADAMW_BLOCK;
	#pragma omp parallel for schedule(static) if (n > OPTIM_PARALLEL_MIN)
	for (size_t blk = 0; blk < nblocks; blk++) {
		size_t begin = blk * ADAMW_BLOCK;
		size_t len = n - begin < ADAMW_BLOCK ? n - begin : ADAMW_BLOCK;
		float *restrict pp = param + begin, *restrict mp = m + begin, *restrict vp = v + begin;
		const float *restrict gp = grad + begin;
		float root[ADAMW_BLOCK];
		#pragma omp simd
		for (size_t i = 0; i < len; i++) {
			float g = gp[i] * grad_scale;
			float mi = mp[i] * b1 + one_minus_b1 * g;
			float vi = vp[i] * b2 + one_minus_b2 * g * g;
			mp[i] = mi;
			vp[i] = vi;
			root[i] = vi;
		}
		sqrt_in_place(root, len);
		#pragma omp simd
		for (size_t i = 0; i < len; i++) {
			float denom = root[i] / bias2_sqrt + eps;
			pp[i] = pp[i] * decay + neg_step_size * mp[i] / denom;
		}
	}
}

void cpu_ema_update(float *ema, const float *param, size_t n, float decay)
{
	const float keep = decay, take = (float)(1.0 - decay);
	float *restrict e = ema;
	const float *restrict p = param;
	#pragma omp parallel for simd schedule(static) if (parallel: n > OPTIM_PARALLEL_MIN)
	for (size_t i = 0; i < n; i++)
		e[i] = e[i] * keep + take * p[i];
}
