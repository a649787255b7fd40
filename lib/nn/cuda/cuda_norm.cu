// Layer norm on the GPU: one block per row for the statistics and dx, and
// column sums for the parameter gradients. The same formulas as
// cpu/cpu_norm.c (biased variance, eps inside the square root, two passes).
// Parameter gradients are summed by a fixed tree per column, so they do not
// depend on timing.
#include <math.h>

#include "nn/cuda/cuda.h"

enum { ROW_THREADS = 256, COL_X = 32, COL_Y = 16 };

__global__ static void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                                const float *weight, const float *bias, int C, float eps)
{
	const float *x = inp + (size_t)blockIdx.x * C;
	float *y = out + (size_t)blockIdx.x * C;
	float s = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		s += x[c];
	float m = block_sum(s) / C, v = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		v += (x[c] - m) * (x[c] - m);
	float r = 1.0f / sqrtf(block_sum(v) / C + eps);
	if (threadIdx.x == 0) {
		mean[blockIdx.x] = m;
		rstd[blockIdx.x] = r;
	}
	for (int c = threadIdx.x; c < C; c += blockDim.x) {
		float t = (x[c] - m) * r;
		if (weight)
			t *= weight[c];
		if (bias)
			t += bias[c];
		y[c] = t;
	}
}

// dx += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * weight.
__global__ static void layernorm_dx_kernel(float *dinp, const float *dout, const float *inp, const float *weight,
                                           const float *mean, const float *rstd, int C)
{
	size_t off = (size_t)blockIdx.x * C;
	const float *x = inp + off, *dy = dout + off;
	float m = mean[blockIdx.x], r = rstd[blockIdx.x], sg = 0, sgx = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x) {
		float g = weight ? dy[c] * weight[c] : dy[c];
		sg += g;
		sgx += g * (x[c] - m) * r;
	}
	float mg = block_sum(sg) / C, mgx = block_sum(sgx) / C;
	for (int c = threadIdx.x; c < C; c += blockDim.x) {
		float g = weight ? dy[c] * weight[c] : dy[c];
		dinp[off + c] += r * (g - mg - (x[c] - m) * r * mgx);
	}
}

// Each block owns COL_X columns; its COL_Y rows of threads stride over the
// rows of the matrix and then add up their partials in shared memory.
// With mean == NULL: out_b[c] += sum_i x[i,c] (out_w unused); else also
// out_w[c] += sum_i x[i,c] * xhat[i,c], xhat from inp, mean and rstd.
__global__ static void column_sums_kernel(float *out_w, float *out_b, const float *x, const float *inp,
                                          const float *mean, const float *rstd, int N, int C)
{
	__shared__ float pw[COL_Y][COL_X + 1], pb[COL_Y][COL_X + 1];
	int c = blockIdx.x * COL_X + threadIdx.x;
	float sw = 0, sb = 0;
	if (c < C)
		for (int i = threadIdx.y; i < N; i += COL_Y) {
			float d = x[(size_t)i * C + c];
			sb += d;
			if (mean)
				sw += d * (inp[(size_t)i * C + c] - mean[i]) * rstd[i];
		}
	pw[threadIdx.y][threadIdx.x] = sw;
	pb[threadIdx.y][threadIdx.x] = sb;
	__syncthreads();
	if (threadIdx.y != 0 || c >= C)
		return;
	for (int y = 1; y < COL_Y; y++) {
		sw += pw[y][threadIdx.x];
		sb += pb[y][threadIdx.x];
	}
	if (out_w)
		out_w[c] += sw;
	if (out_b)
		out_b[c] += sb;
}

static void column_sums(float *out_w, float *out_b, const float *x, const float *inp, const float *mean,
                        const float *rstd, int N, int C)
{
	if (N <= 0 || C <= 0)
		return;
	dim3 threads(COL_X, COL_Y);
	column_sums_kernel<<<(C + COL_X - 1) / COL_X, threads>>>(out_w, out_b, x, inp, mean, rstd, N, C);
}

void cuda_add_column_sums(float *out, const float *x, int N, int C)
{
	column_sums(NULL, out, x, NULL, NULL, NULL, N, C);
}

void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                            const float *bias, int N, int C, float eps)
{
	if (N > 0)
		layernorm_forward_kernel<<<N, ROW_THREADS>>>(out, mean, rstd, inp, weight, bias, C, eps);
}

void cuda_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                             const float *weight, const float *mean, const float *rstd, int N, int C)
{
	if (dinp && N > 0)
		layernorm_dx_kernel<<<N, ROW_THREADS>>>(dinp, dout, inp, weight, mean, rstd, C);
	if (dweight || dbias)
		column_sums(dweight, dbias, dout, inp, mean, rstd, N, C);
}
