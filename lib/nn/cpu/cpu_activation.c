/* Pointwise activations: GELU (erf and tanh forms), QuickGELU, SiLU, identity.
 *
 * One loop serves every activation: act_value/act_slope switch on the
 * activation, and the loop bodies are always inlined with a constant
 * activation (act_forward_chunk's switch), so each activation gets its own
 * vectorised copy of the same source loop. erf and exp are the branch-free
 * versions below and in cpu_math.h, since libm's scalar calls would keep the
 * loops scalar. */
#include <math.h>

#include "nn/cpu/cpu.h"
#include "nn/cpu/cpu_math.h"

#define SQRT1_2 0.70710678118654752440f
#define SQRT_2_OVER_PI 0.79788456080286535588f
#define INV_SQRT_2PI 0.39894228040143267794f
#define GELU_TANH_CUBIC 0.044715f
#define QUICK_GELU_ALPHA 1.702f

/* erfc(z) for z >= 0 with relative error below 1.2e-7 everywhere, the
 * Chebyshev fit of Numerical Recipes' erfcc. Relative (not absolute)
 * accuracy matters: GELU's negative tail is x * erfc(-x/sqrt2) / 2. */
static inline float erfc_nonneg(float z)
{
	float t = 1.0f / (1.0f + 0.5f * z);
	float p = 0.17087277f;
	p = p * t - 0.82215223f;
	p = p * t + 1.48851587f;
	p = p * t - 1.13520398f;
	p = p * t + 0.27886807f;
	p = p * t - 0.18628806f;
	p = p * t + 0.09678418f;
	p = p * t + 0.37409196f;
	p = p * t + 1.00002368f;
	p = p * t - 1.26551223f;
	return t * cpu_expf(p - z * z);
}

/* The standard normal CDF, Phi(x) = (1 + erf(x / sqrt2)) / 2, from the
 * tail on either side (copysignf instead of a branch keeps it vectorisable). */
static inline float normal_cdf(float x)
{
	float tail = 0.5f * erfc_nonneg(fabsf(x) * SQRT1_2);
	return 0.5f + copysignf(0.5f - tail, x);
}

/* The tanh form of GELU, 0.5 x (1 + tanh(u)), is x * sigmoid(2u): the same
 * value, without the cancellation that 1 + tanh(u) suffers for u << 0. */
static inline float gelu_tanh_u(float x)
{
	return SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * x * x * x);
}

static inline float act_value(float x, const enum nn_act act)
{
	switch (act) {
	case NN_GELU_ERF:
		return x * normal_cdf(x);
	case NN_GELU_TANH:
		return x * cpu_sigmoidf(2.0f * gelu_tanh_u(x));
	case NN_QUICK_GELU:
		return x * cpu_sigmoidf(QUICK_GELU_ALPHA * x);
	case NN_SILU:
		return x * cpu_sigmoidf(x);
	case NN_IDENTITY:
	default:
		return x;
	}
}

/* d act(x) / dx */
static inline float act_slope(float x, const enum nn_act act)
{
	switch (act) {
	case NN_GELU_ERF:
		return normal_cdf(x) + x * INV_SQRT_2PI * cpu_expf(-0.5f * x * x);
	case NN_GELU_TANH: {
		float s = cpu_sigmoidf(2.0f * gelu_tanh_u(x));
		float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_CUBIC * x * x);
		return s + x * s * (1.0f - s) * 2.0f * du;
	}
	case NN_QUICK_GELU: {
		float s = cpu_sigmoidf(QUICK_GELU_ALPHA * x);
		return s + x * QUICK_GELU_ALPHA * s * (1.0f - s);
	}
	case NN_SILU: {
		float s = cpu_sigmoidf(x);
		return s * (1.0f + x * (1.0f - s));
	}
	case NN_IDENTITY:
	default:
		return 1.0f;
	}
}

/* No restrict: the forward pass may run in place (out == inp). */
CPU_BODY void act_forward_loop(float *out, const float *inp, size_t n, const enum nn_act act)
{
#pragma omp simd
	for (size_t i = 0; i < n; i++)
		out[i] = act_value(inp[i], act);
}

CPU_BODY void act_backward_loop(float *restrict dinp, const float *restrict inp, const float *restrict dout,
                                size_t n, const enum nn_act act)
{
#pragma omp simd
	for (size_t i = 0; i < n; i++)
		dinp[i] += dout[i] * act_slope(inp[i], act);
}

/* The switch hands each loop a constant activation to specialise on. */
#define FOR_EACH_ACT(act, CALL)                                         \
	switch (act) {                                                  \
	case NN_GELU_ERF: CALL(NN_GELU_ERF); break;                     \
	case NN_GELU_TANH: CALL(NN_GELU_TANH); break;                   \
	case NN_QUICK_GELU: CALL(NN_QUICK_GELU); break;                 \
	case NN_SILU: CALL(NN_SILU); break;                             \
	case NN_IDENTITY: default: CALL(NN_IDENTITY); break;            \
	}

CPU_BODY void act_forward_chunk_body(float *out, const float *inp, size_t n, enum nn_act act)
{
#define CALL(A) act_forward_loop(out, inp, n, A)
	FOR_EACH_ACT(act, CALL)
#undef CALL
}
CPU_DISPATCH(act_forward_chunk, (float *out, const float *inp, size_t n, enum nn_act act), (out, inp, n, act))

CPU_BODY void act_backward_chunk_body(float *dinp, const float *inp, const float *dout, size_t n, enum nn_act act)
{
#define CALL(A) act_backward_loop(dinp, inp, dout, n, A)
	FOR_EACH_ACT(act, CALL)
#undef CALL
}
CPU_DISPATCH(act_backward_chunk, (float *dinp, const float *inp, const float *dout, size_t n, enum nn_act act),
             (dinp, inp, dout, n, act))

/* Elements per parallel chunk: big enough to amortise the fork. */
#define ACT_CHUNK 16384

void cpu_act_forward(float *out, const float *inp, size_t n, enum nn_act act)
{
	long chunks = (long)((n + ACT_CHUNK - 1) / ACT_CHUNK);
#pragma omp parallel for schedule(static) if (chunks > 1)
	for (long c = 0; c < chunks; c++) {
		size_t i = (size_t)c * ACT_CHUNK, len = n - i < ACT_CHUNK ? n - i : ACT_CHUNK;
		act_forward_chunk(out + i, inp + i, len, act);
	}
}

void cpu_act_backward(float *dinp, const float *inp, const float *dout, size_t n, enum nn_act act)
{
	long chunks = (long)((n + ACT_CHUNK - 1) / ACT_CHUNK);
#pragma omp parallel for schedule(static) if (chunks > 1)
	for (long c = 0; c < chunks; c++) {
		size_t i = (size_t)c * ACT_CHUNK, len = n - i < ACT_CHUNK ? n - i : ACT_CHUNK;
		act_backward_chunk(dinp + i, inp + i, dout + i, len, act);
	}
}
