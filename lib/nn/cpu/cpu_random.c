/* Random ops on the counter-based generator of nn/philox.h.
 *
 * Element i of a call draws from stream position e = offset + i, which is
 * word e % 4 of Philox block e / 4 (see philox.h). The fill helpers below
 * walk whole blocks, so each block is computed once, and any split of the
 * elements into chunks gives the same numbers: results depend only on
 * (seed, offset + i), never on n or the thread count.
 *
 * - rand_uniform: floats in the open interval (0, 1).
 * - rand_normal: standard normals by Box-Muller; element e is normal e % 4 of
 *   its block (words 0,1 and 2,3 make the two pairs).
 * - dropout: keep element e iff uniform(e) >= p, scaled by 1/(1-p); the
 *   backward pass regenerates the same mask from (seed, offset).
 * - sample_categorical: row i draws argmax_j logits[i,j] + Gumbel(u) with u
 *   the uniform at offset + i*C + j, a draw from softmax(logits[i]). */
#include <math.h>

#include "nn/cpu/cpu.h"
#include "nn/cpu/cpu_scratch.h"
#include "nn/philox.h"

/* Elements per parallel chunk (a multiple of 4, so that chunks after the
 * first start on block boundaries when offset does). */
#define RAND_CHUNK 4096

static long rand_chunks(size_t n)
{
	return (long)((n + RAND_CHUNK - 1) / RAND_CHUNK);
}

static size_t chunk_len(size_t n, long c)
{
	size_t i = (size_t)c * RAND_CHUNK;
	return n - i < RAND_CHUNK ? n - i : RAND_CHUNK;
}

void cpu_rand_uniform(float *out, size_t n, uint64_t seed, uint64_t offset)
{
	long chunks = rand_chunks(n);
#pragma omp parallel for schedule(static) if (chunks > 1)
	for (long c = 0; c < chunks; c++) {
		size_t i = (size_t)c * RAND_CHUNK;
		philox_uniform_fill(out + i, chunk_len(n, c), seed, offset + i);
	}
}

void cpu_rand_normal(float *out, size_t n, uint64_t seed, uint64_t offset)
{
	long chunks = rand_chunks(n);
#pragma omp parallel for schedule(static) if (chunks > 1)
	for (long c = 0; c < chunks; c++) {
		size_t i = (size_t)c * RAND_CHUNK;
		philox_normal_fill(out + i, chunk_len(n, c), seed, offset + i);
	}
}

/* out = inp * mask / (1 - p), or out += when accumulating (backward). With
 * p >= 1 nothing is kept (and nothing divided by zero). */
static void dropout_apply(float *out, const float *inp, size_t n, float p, uint64_t seed, uint64_t offset,
                          int accumulate)
{
	float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
	long chunks = rand_chunks(n);
#pragma omp parallel for schedule(static) if (chunks > 1)
	for (long c = 0; c < chunks; c++) {
		size_t i0 = (size_t)c * RAND_CHUNK, len = chunk_len(n, c);
		float u[RAND_CHUNK];
		philox_uniform_fill(u, len, seed, offset + i0);
		for (size_t i = 0; i < len; i++) {
			float v = u[i] >= p ? inp[i0 + i] * keep_scale : 0.0f;
			if (accumulate)
				out[i0 + i] += v;
			else
				out[i0 + i] = v;
		}
	}
}

void cpu_dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed, uint64_t offset)
{
	dropout_apply(out, inp, n, p, seed, offset, 0);
}

void cpu_dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed, uint64_t offset)
{
	dropout_apply(dinp, dout, n, p, seed, offset, 1);
}

void cpu_sample_categorical(int32_t *out, const float *logits, int N, int C, uint64_t seed, uint64_t offset)
{
#pragma omp parallel if ((long)N * C >= 32768)
	{
		float *u = cpu_scratch((size_t)C * sizeof *u);
#pragma omp for schedule(static)
		for (int i = 0; i < N; i++) {
			const float *x = logits + (size_t)i * C;
			philox_uniform_fill(u, C, seed, offset + (uint64_t)i * C);
			int best = 0;
			float best_score = -INFINITY;
			for (int j = 0; j < C; j++) {
				float score = x[j] + philox_gumbel(u[j]);
				if (score > best_score) {
					best_score = score;
					best = j;
				}
			}
			out[i] = best;
		}
	}
}
