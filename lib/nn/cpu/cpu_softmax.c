/* Softmax and log-softmax over the last dimension, forward and backward.
 *
 * Both subtract the row maximum before exponentiating (so any finite input
 * is safe) and may run in place (out == inp). Both backward passes take the
 * forward output, which is all they need:
 *   softmax:     dx += y * (dy - sum(dy * y))
 *   log-softmax: dx += dy - exp(y) * sum(dy) */
#include <math.h>

#include "nn/cpu/cpu.h"
#include "nn/cpu/cpu_math.h"

/* Rows per parallel task, and the smallest problem worth a thread team. */
#define ROWS_PER_TASK 16
#define PARALLEL_MIN_ELEMS 32768

CPU_BODY void softmax_rows_body(float *out, const float *inp, int rows, int C, int log_space)
{
	for (int r = 0; r < rows; r++) {
		/* no restrict: out may be inp (each loop reads x[j] before writing y[j]) */
		const float *x = inp + (size_t)r * C;
		float *y = out + (size_t)r * C;
		if (log_space) {
			float lse = cpu_row_logsumexp(x, C);
#pragma omp simd
			for (int j = 0; j < C; j++)
				y[j] = x[j] - lse;
			continue;
		}
		float m = -INFINITY;
#pragma omp simd reduction(max : m)
		for (int j = 0; j < C; j++)
			m = x[j] > m ? x[j] : m;
		float s = 0;
#pragma omp simd reduction(+ : s)
		for (int j = 0; j < C; j++) {
			y[j] = cpu_expf(x[j] - m);
			s += y[j];
		}
		float inv = 1.0f / s;
#pragma omp simd
		for (int j = 0; j < C; j++)
			y[j] *= inv;
	}
}
CPU_DISPATCH(softmax_rows, (float *out, const float *inp, int rows, int C, int log_space),
             (out, inp, rows, C, log_space))

CPU_BODY void softmax_backward_rows_body(float *dinp, const float *out, const float *dout, int rows, int C,
                                         int log_space)
{
	for (int r = 0; r < rows; r++) {
		const float *restrict y = out + (size_t)r * C;
		const float *restrict dy = dout + (size_t)r * C;
		float *restrict dx = dinp + (size_t)r * C;
		float s = 0;
		if (log_space) {
#pragma omp simd reduction(+ : s)
			for (int j = 0; j < C; j++)
				s += dy[j];
#pragma omp simd
			for (int j = 0; j < C; j++)
				dx[j] += dy[j] - cpu_expf(y[j]) * s;
		} else {
#pragma omp simd reduction(+ : s)
			for (int j = 0; j < C; j++)
				s += dy[j] * y[j];
#pragma omp simd
			for (int j = 0; j < C; j++)
				dx[j] += y[j] * (dy[j] - s);
		}
	}
}
CPU_DISPATCH(softmax_backward_rows, (float *dinp, const float *out, const float *dout, int rows, int C, int log_space),
             (dinp, out, dout, rows, C, log_space))

static void softmax_forward_any(float *out, const float *inp, int N, int C, int log_space)
{
	int tasks = (N + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
#pragma omp parallel for schedule(static) if ((long)N * C >= PARALLEL_MIN_ELEMS)
	for (int t = 0; t < tasks; t++) {
		int r0 = t * ROWS_PER_TASK, rows = N - r0 < ROWS_PER_TASK ? N - r0 : ROWS_PER_TASK;
		softmax_rows(out + (size_t)r0 * C, inp + (size_t)r0 * C, rows, C, log_space);
	}
}

static void softmax_backward_any(float *dinp, const float *out, const float *dout, int N, int C, int log_space)
{
	int tasks = (N + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
#pragma omp parallel for schedule(static) if ((long)N * C >= PARALLEL_MIN_ELEMS)
	for (int t = 0; t < tasks; t++) {
		int r0 = t * ROWS_PER_TASK, rows = N - r0 < ROWS_PER_TASK ? N - r0 : ROWS_PER_TASK;
		size_t off = (size_t)r0 * C;
		softmax_backward_rows(dinp + off, out + off, dout + off, rows, C, log_space);
	}
}

void cpu_softmax_forward(float *out, const float *inp, int N, int C)
{
	softmax_forward_any(out, inp, N, C, 0);
}

void cpu_softmax_backward(float *dinp, const float *out, const float *dout, int N, int C)
{
	softmax_backward_any(dinp, out, dout, N, C, 0);
}

void cpu_log_softmax_forward(float *out, const float *inp, int N, int C)
{
	softmax_forward_any(out, inp, N, C, 1);
}

void cpu_log_softmax_backward(float *dinp, const float *out, const float *dout, int N, int C)
{
	softmax_backward_any(dinp, out, dout, N, C, 1);
}
