/* Per-row losses: cross-entropy from logits, mean squared error, and KL
 * divergence between categorical distributions given as log-probabilities.
 * Each returns one loss per row; the caller reduces (and passes dloss, the
 * gradient of its reduction with respect to each row's loss, to backward).
 * Rows are independent, so they are split across threads. */
#include <math.h>

#include "nn/cpu/cpu.h"
#include "nn/cpu/cpu_math.h"

#define PARALLEL_MIN_ELEMS 32768
#define PARALLEL_IF(N, C) if ((long)(N) * (C) >= PARALLEL_MIN_ELEMS)

/* loss[i] = logsumexp(logits[i]) - logits[i, t]; 0 where t < 0 */
void cpu_cross_entropy_forward(float *loss, const float *logits, const int32_t *targets, int N, int C)
{
#pragma omp parallel for schedule(static) PARALLEL_IF(N, C)
	for (int i = 0; i < N; i++) {
		const float *x = logits + (size_t)i * C;
		loss[i] = targets[i] < 0 ? 0.0f : cpu_row_logsumexp(x, C) - x[targets[i]];
	}
}

/* dlogits[i] += dloss[i] * (softmax(logits[i]) - onehot(t)) */
void cpu_cross_entropy_backward(float *dlogits, const float *logits, const int32_t *targets,
                                const float *dloss, int N, int C)
{
#pragma omp parallel for schedule(static) PARALLEL_IF(N, C)
	for (int i = 0; i < N; i++) {
		if (targets[i] < 0)
			continue;
		const float *restrict x = logits + (size_t)i * C;
		float *restrict dx = dlogits + (size_t)i * C;
		float lse = cpu_row_logsumexp(x, C), g = dloss[i];
#pragma omp simd
		for (int j = 0; j < C; j++)
			dx[j] += g * cpu_expf(x[j] - lse);
		dx[targets[i]] -= g;
	}
}

/* loss[i] = sum_j (pred - target)^2 / C */
void cpu_mse_forward(float *loss, const float *pred, const float *target, int N, int C)
{
#pragma omp parallel for schedule(static) PARALLEL_IF(N, C)
	for (int i = 0; i < N; i++) {
		const float *restrict p = pred + (size_t)i * C, *restrict t = target + (size_t)i * C;
		float s = 0;
#pragma omp simd reduction(+ : s)
		for (int j = 0; j < C; j++)
			s += (p[j] - t[j]) * (p[j] - t[j]);
		loss[i] = s / C;
	}
}

/* dpred[i] += dloss[i] * 2 (pred - target) / C */
void cpu_mse_backward(float *dpred, const float *pred, const float *target, const float *dloss, int N, int C)
{
#pragma omp parallel for schedule(static) PARALLEL_IF(N, C)
	for (int i = 0; i < N; i++) {
		const float *restrict p = pred + (size_t)i * C, *restrict t = target + (size_t)i * C;
		float *restrict dp = dpred + (size_t)i * C;
		float g = 2.0f * dloss[i] / C;
#pragma omp simd
		for (int j = 0; j < C; j++)
			dp[j] += g * (p[j] - t[j]);
	}
}

/* loss[i] = sum_j exp(logp) (logp - logq). A class with p = 0 (logp = -inf)
 * contributes 0, as in the limit, not NaN. */
void cpu_kl_forward(float *loss, const float *logp, const float *logq, int N, int C)
{
#pragma omp parallel for schedule(static) PARALLEL_IF(N, C)
	for (int i = 0; i < N; i++) {
		const float *lp = logp + (size_t)i * C, *lq = logq + (size_t)i * C;
		float s = 0;
		for (int j = 0; j < C; j++)
			if (lp[j] != -INFINITY)
				s += expf(lp[j]) * (lp[j] - lq[j]);
		loss[i] = s;
	}
}

/* d/dlogp = p (logp - logq + 1), d/dlogq = -p, each times dloss[i]. */
void cpu_kl_backward(float *dlogp, float *dlogq, const float *logp, const float *logq,
                     const float *dloss, int N, int C)
{
#pragma omp parallel for schedule(static) PARALLEL_IF(N, C)
	for (int i = 0; i < N; i++) {
		size_t off = (size_t)i * C;
		const float *lp = logp + off, *lq = logq + off;
		float g = dloss[i];
		for (int j = 0; j < C; j++) {
			if (lp[j] == -INFINITY)
				continue;
			float p = expf(lp[j]);
			if (dlogp)
				dlogp[off + j] += g * p * (lp[j] - lq[j] + 1.0f);
			if (dlogq)
				dlogq[off + j] -= g * p;
		}
	}
}
