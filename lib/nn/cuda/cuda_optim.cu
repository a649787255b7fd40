// AdamW, the EMA of weights and the two reductions on the GPU. The updates
// follow cpu/cpu_optim.c operation by operation with round-to-nearest
// intrinsics (no fused multiply-add), so a step gives the CPU's bits from the
// same inputs. The reductions run in one block, in a fixed order.
#include <math.h>

#include "nn/cuda/cuda.h"

__global__ static void adamw_kernel(float *param, const float *grad, float *m, float *v, size_t n, float b1,
                                    float one_minus_b1, float b2, float one_minus_b2, float eps, float decay,
                                    float neg_step_size, float bias2_sqrt, float grad_scale)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= n)
		return;
	float g = __fmul_rn(grad[i], grad_scale);
	float mi = __fadd_rn(__fmul_rn(m[i], b1), __fmul_rn(one_minus_b1, g));
	float vi = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(__fmul_rn(one_minus_b2, g), g));
	m[i] = mi;
	v[i] = vi;
	float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bias2_sqrt), eps);
	param[i] = __fadd_rn(__fmul_rn(param[i], decay), __fdiv_rn(__fmul_rn(neg_step_size, mi), denom));
}

// The constants as the CPU computes them: in double, rounded to float.
void cuda_adamw_update(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
                       float beta2, float eps, float weight_decay, float grad_scale, int step)
{
	if (n == 0)
		return;
	const double bias1 = 1.0 - pow(beta1, step), bias2 = 1.0 - pow(beta2, step);
	adamw_kernel<<<cuda_blocks(n), 256>>>(param, grad, m, v, n, beta1, (float)(1.0 - beta1), beta2,
	                                      (float)(1.0 - beta2), eps, (float)(1.0 - (double)lr * weight_decay),
	                                      (float)(-(double)lr / bias1), (float)sqrt(bias2), grad_scale);
}

__global__ static void ema_kernel(float *ema, const float *param, size_t n, float keep, float take)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		ema[i] = __fadd_rn(__fmul_rn(ema[i], keep), __fmul_rn(take, param[i]));
}

void cuda_ema_update(float *ema, const float *param, size_t n, float decay)
{
	if (n > 0)
		ema_kernel<<<cuda_blocks(n), 256>>>(ema, param, n, decay, (float)(1.0 - decay));
}

__global__ static void reduce_kernel(float *out, const float *x, size_t n, int squares)
{
	float s = 0;
	for (size_t i = threadIdx.x; i < n; i += blockDim.x)
		s += squares ? x[i] * x[i] : x[i];
	s = block_sum(s);
	if (threadIdx.x == 0)
		*out = s;
}

void cuda_sum(float *out, const float *x, size_t n)
{
	reduce_kernel<<<1, 1024>>>(out, x, n, 0);
}

void cuda_sum_squares(float *out, const float *x, size_t n)
{
	reduce_kernel<<<1, 1024>>>(out, x, n, 1);
}
