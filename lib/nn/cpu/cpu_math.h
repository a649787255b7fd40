/* What the CPU backend's hot loops share: a dispatch between an AVX2+FMA
 * and a baseline build of a function, and scalar math written so that the
 * loops calling it vectorise.
 *
 * glibc's expf is a scalar call, which stops `#pragma omp simd` loops from
 * vectorising; softmax and attention take millions of exponentials per step,
 * so this inline version (branch-free, no float-to-int conversion) is what
 * keeps those loops in vector registers. Its relative error is below 1e-7.
 * Because FMA changes rounding, the AVX2 and baseline builds can differ in
 * the last bit: results are reproducible on one machine, not across CPUs. */
#ifndef KNND_NN_CPU_MATH_H
#define KNND_NN_CPU_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The build is generic x86-64 (SSE2). CPU_DISPATCH(name, (params), (args))
 * defines `static void name(params)` that runs `name_body(args)` (a static
 * inline function) compiled for AVX2+FMA when the CPU has them and for the
 * baseline otherwise. Use it for a function that does the work, not one that
 * holds an `omp parallel` region: the outlined region would not inherit the
 * target. (GCC/Clang target_clones would do the same, but Clang 14 then
 * fails to honour `omp simd` in the clones.) */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CPU_DISPATCH(name, params, args) \
	__attribute__((target("arch=x86-64-v3"))) static void name##_avx2 params { name##_body args; } \
	static void name##_base params { name##_body args; } \
	static void name params \
	{ \
		if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) \
			name##_avx2 args; \
		else \
			name##_base args; \
	}
#else
#define CPU_DISPATCH(name, params, args) \
	static void name params { name##_body args; }
#endif
/* The bodies are inlined into each version. */
#define CPU_BODY static inline __attribute__((always_inline))

/* `omp simd` asks for vectorisation; the -O1 sanitizer build cannot always
 * oblige, and Clang would warn about each such loop. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

/* exp(x) = 2^n exp(r) with n = round(x / ln 2) and |r| <= ln(2)/2. n is read
 * from the bits of a float rounded by the 1.5*2^23 trick, which avoids a
 * float-to-int conversion (undefined on NaN) and keeps the loop vectorisable.
 * Inputs below -87 give exactly 0 (so masked scores of -inf vanish), inputs
 * above 88 saturate at exp(88); NaN stays NaN. */
static inline float cpu_expf(float x)
{
	/* Clamp x to [-88, 88] by selecting bit patterns: GCC turns a float
	 * `x > 88 ? 88 : x` into branches it then cannot vectorise (it may not
	 * speculate float ops under -ftrapping-math). NaN passes through. */
	uint32_t xb, below = -(uint32_t)(x < -88.0f), above = -(uint32_t)(x > 88.0f);
	memcpy(&xb, &x, sizeof xb);
	xb = (xb & ~(below | above)) | (0xC2B00000u & below) | (0x42B00000u & above);
	float xc;
	memcpy(&xc, &xb, sizeof xc);

	float shifted = xc * 1.44269504088896341f + 12582912.0f;
	float n = shifted - 12582912.0f;
	/* ln 2 split in two so that n * ln2_hi is exact */
	float r = xc - n * 0.693145751953125f;
	r = r - n * 1.42860682030941723212e-6f;
	float p = 1.0f / 5040.0f;
	p = p * r + 1.0f / 720.0f;
	p = p * r + 1.0f / 120.0f;
	p = p * r + 1.0f / 24.0f;
	p = p * r + 1.0f / 6.0f;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	uint32_t bits;
	memcpy(&bits, &shifted, sizeof bits);
	/* the low mantissa bits of `shifted` hold n; add the exponent bias, and
	 * make the scale 0 below -87 (the same select trick as above) */
	uint32_t scale_bits = (bits - 0x4B400000u + 127u) << 23;
	scale_bits &= -(uint32_t)((x >= -87.0f) | (x != x));
	float scale;
	memcpy(&scale, &scale_bits, sizeof scale);
	return p * scale;
}

/* 1 / (1 + exp(-x)) */
static inline float cpu_sigmoidf(float x)
{
	return 1.0f / (1.0f + cpu_expf(-x));
}

/* max_j x[j] + log(sum_j exp(x[j] - max)) over one row: the stable
 * log-sum-exp shared by log-softmax and cross-entropy. -inf for an empty or
 * all -inf row. */
static inline float cpu_row_logsumexp(const float *restrict x, int n)
{
	float m = -INFINITY;
#pragma omp simd reduction(max : m)
	for (int j = 0; j < n; j++)
		m = x[j] > m ? x[j] : m;
	if (m == -INFINITY)
		return m;
	float s = 0;
#pragma omp simd reduction(+ : s)
	for (int j = 0; j < n; j++)
		s += cpu_expf(x[j] - m);
	return m + logf(s);
}

#endif
