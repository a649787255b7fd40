// Softmax and log-softmax over the last dimension on the GPU, one block per
// row; the formulas of cpu/cpu_softmax.c (row maximum subtracted first; in
// place allowed: each thread reads its elements before the last pass writes
// them, and the reductions' barriers separate the passes).
//   softmax:     dx += y * (dy - sum(dy * y))
//   log-softmax: dx += dy - exp(y) * sum(dy)
#include <math.h>

#include "nn/cuda/cuda.h"

enum { ROW_THREADS = 128 };

__global__ static void softmax_kernel(float *out, const float *inp, int C, int log_space)
{
	const float *x = inp + (size_t)blockIdx.x * C;
	float *y = out + (size_t)blockIdx.x * C;
	float m = -INFINITY;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		m = fmaxf(m, x[c]);
	m = block_max(m);
	float s = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		s += expf(x[c] - m);
	s = block_sum(s);
	if (log_space) {
		float lse = m + logf(s);
		for (int c = threadIdx.x; c < C; c += blockDim.x)
			y[c] = x[c] - lse;
	} else {
		float inv = 1.0f / s;
		for (int c = threadIdx.x; c < C; c += blockDim.x)
			y[c] = expf(x[c] - m) * inv;
	}
}

__global__ static void softmax_backward_kernel(float *dinp, const float *out, const float *dout, int C,
                                               int log_space)
{
	size_t off = (size_t)blockIdx.x * C;
	const float *y = out + off, *dy = dout + off;
	float s = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		s += log_space ? dy[c] : dy[c] * y[c];
	s = block_sum(s);
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		dinp[off + c] += log_space ? dy[c] - expf(y[c]) * s : y[c] * (dy[c] - s);
}

void cuda_softmax_forward(float *out, const float *inp, int N, int C)
{
	if (N > 0)
		softmax_kernel<<<N, ROW_THREADS>>>(out, inp, C, 0);
}

void cuda_log_softmax_forward(float *out, const float *inp, int N, int C)
{
	if (N > 0)
		softmax_kernel<<<N, ROW_THREADS>>>(out, inp, C, 1);
}

void cuda_softmax_backward(float *dinp, const float *out, const float *dout, int N, int C)
{
	if (N > 0)
		softmax_backward_kernel<<<N, ROW_THREADS>>>(dinp, out, dout, C, 0);
}

void cuda_log_softmax_backward(float *dinp, const float *out, const float *dout, int N, int C)
{
	if (N > 0)
		softmax_backward_kernel<<<N, ROW_THREADS>>>(dinp, out, dout, C, 1);
}
