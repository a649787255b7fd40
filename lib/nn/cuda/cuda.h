// Shared pieces of the CUDA backend: error checks, launch sizes, block
// reductions, and the ops that live outside cuda_ops.cu (which holds the
// table). Included by .cu files only.
#ifndef KNND_NN_CUDA_H
#define KNND_NN_CUDA_H

#include <cuda_runtime.h>
#include <stddef.h>

extern "C" {
#include "nn/ops.h"
}

void cuda_check(cudaError_t e, const char *what);
void cuda_sync(void);
static inline unsigned cuda_blocks(size_t n) { return (unsigned)((n + 255) / 256); }

// Sum and maximum of one value per thread over the whole block (any size up
// to 1024); every thread gets the result. The leading barrier lets a kernel
// call them back to back.
static __device__ __forceinline__ float block_sum(float v)
{
	__shared__ float part[32];
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	__syncthreads();
	if ((threadIdx.x & 31) == 0)
		part[threadIdx.x >> 5] = v;
	__syncthreads();
	v = (threadIdx.x & 31) < ((blockDim.x + 31) >> 5) ? part[threadIdx.x & 31] : 0.0f;
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

static __device__ __forceinline__ float block_max(float v)
{
	__shared__ float part[32];
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	__syncthreads();
	if ((threadIdx.x & 31) == 0)
		part[threadIdx.x >> 5] = v;
	__syncthreads();
	v = (threadIdx.x & 31) < ((blockDim.x + 31) >> 5) ? part[threadIdx.x & 31] : -INFINITY;
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

// Parameter gradients summed over rows: out[c] += sum_i x[i, c] (cuda_norm.cu).
void cuda_add_column_sums(float *out, const float *x, int N, int C);

void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                            const float *bias, int N, int C, float eps);
void cuda_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                             const float *weight, const float *mean, const float *rstd, int N, int C);
void cuda_modulate_forward(float *out, const float *x, const float *scale, const float *shift, int ld, int B, int T,
                           int C);
void cuda_modulate_backward(float *dx, float *dscale, float *dshift, const float *dout, const float *x,
                            const float *scale, int ld, int B, int T, int C);
void cuda_softmax_forward(float *out, const float *inp, int N, int C);
void cuda_softmax_backward(float *dinp, const float *out, const float *dout, int N, int C);
void cuda_log_softmax_forward(float *out, const float *inp, int N, int C);
void cuda_log_softmax_backward(float *dinp, const float *out, const float *dout, int N, int C);
void cuda_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                            const struct nn_attention *a);
void cuda_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                             const float *v, const float *out, const float *lse, const struct nn_attention *a);

void cuda_adamw_update(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
                       float beta2, float eps, float weight_decay, float grad_scale, int step);
void cuda_ema_update(float *ema, const float *param, size_t n, float decay);
void cuda_sum(float *out, const float *x, size_t n);
void cuda_sum_squares(float *out, const float *x, size_t n);

#endif
