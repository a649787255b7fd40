// Layer norm and adaptive layer norm's modulation on the GPU: one block per row for the statistics and dx, and
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

// Adds up two per-thread partials over the COL_Y rows of threads; the sums
// are valid in row 0.
static __device__ __forceinline__ void sum_over_rows(float &a, float &b)
{
	__shared__ float pa[COL_Y][COL_X + 1], pb[COL_Y][COL_X + 1];
	pa[threadIdx.y][threadIdx.x] = a;
	pb[threadIdx.y][threadIdx.x] = b;
	__syncthreads();
	if (threadIdx.y == 0)
		for (int y = 1; y < COL_Y; y++) {
			a += pa[y][threadIdx.x];
			b += pb[y][threadIdx.x];
		}
}

// Each block owns COL_X columns; its COL_Y rows of threads stride over the
// rows of the matrix and then add up their partials in shared memory.
// With mean == NULL: out_b[c] += sum_i x[i,c] (out_w unused); else also
// out_w[c] += sum_i x[i,c] * xhat[i,c], xhat from inp, mean and rstd.
__global__ static void column_sums_kernel(float *out_w, float *out_b, const float *x, const float *inp,
                                          const float *mean, const float *rstd, int N, int C)
{
	int c = blockIdx.x * COL_X + threadIdx.x;
	float sw = 0, sb = 0;
	if (c < C)
		for (int i = threadIdx.y; i < N; i += COL_Y) {
			float d = x[(size_t)i * C + c];
			sb += d;
			if (mean)
				sw += d * (inp[(size_t)i * C + c] - mean[i]) * rstd[i];
		}
	sum_over_rows(sw, sb);
	if (threadIdx.y != 0 || c >= C)
		return;
	if (out_w)
		out_w[c] += sw;
	if (out_b)
		out_b[c] += sb;
}

// Adaptive layer norm's modulation, as cpu/cpu_norm.c:
// out[b,t,:] = x[b,t,:] * (1 + scale[b,:]) + shift[b,:], scale/shift rows at stride ld.
__global__ static void modulate_kernel(float *out, const float *x, const float *scale, const float *shift, int ld,
                                       int T, int C, size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= n)
		return;
	size_t row = i / C, at = row / T * ld + i % C;
	out[i] = x[i] * (1.0f + scale[at]) + shift[at];
}

__global__ static void modulate_dx_kernel(float *dx, const float *dout, const float *scale, int ld, int T, int C,
                                          size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		dx[i] += dout[i] * (1.0f + scale[i / C / T * ld + i % C]);
}

// dscale[b,c] += sum_t dout * x, dshift[b,c] += sum_t dout: block (column
// block, b), its rows of threads striding over t.
__global__ static void modulate_params_kernel(float *dscale, float *dshift, const float *dout, const float *x,
                                              int ld, int T, int C)
{
	int c = blockIdx.x * COL_X + threadIdx.x, b = blockIdx.y;
	float ss = 0, sh = 0;
	if (c < C)
		for (int t = threadIdx.y; t < T; t += COL_Y) {
			size_t r = ((size_t)b * T + t) * C + c;
			ss += dout[r] * x[r];
			sh += dout[r];
		}
	sum_over_rows(ss, sh);
	if (threadIdx.y != 0 || c >= C)
		return;
	if (dscale)
		dscale[(size_t)b * ld + c] += ss;
	if (dshift)
		dshift[(size_t)b * ld + c] += sh;
}

void cuda_modulate_forward(float *out, const float *x, const float *scale, const float *shift, int ld, int B, int T,
                           int C)
{
	size_t n = (size_t)B * T * C;
	if (n > 0)
		modulate_kernel<<<cuda_blocks(n), 256>>>(out, x, scale, shift, ld, T, C, n);
}

void cuda_modulate_backward(float *dx, float *dscale, float *dshift, const float *dout, const float *x,
                            const float *scale, int ld, int B, int T, int C)
{
	size_t n = (size_t)B * T * C;
	if (n == 0)
		return;
	if (dx)
		modulate_dx_kernel<<<cuda_blocks(n), 256>>>(dx, dout, scale, ld, T, C, n);
	if (dscale || dshift)
		modulate_params_kernel<<<dim3((C + COL_X - 1) / COL_X, B), dim3(COL_X, COL_Y)>>>(dscale, dshift, dout, x,
		                                                                                 ld, T, C);
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
