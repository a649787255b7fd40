/* Elementwise arithmetic, reductions, and embedding lookups.
 *
 * Reductions are deterministic whatever the thread count: the input is cut
 * into fixed blocks of REDUCE_BLOCK elements, each block is summed in
 * double, and the block sums are added in block order. */
#include "nn/cpu/cpu.h"

#include <string.h>

#include "nn/cpu/cpu_math.h" /* the omp simd conventions */
#include "nn/cpu/cpu_scratch.h"

/* Elements per partial sum. Fixed, so the order of additions is too. */
#define REDUCE_BLOCK 16384

void cpu_add(float *out, const float *a, const float *b, size_t n)
{
	#pragma omp parallel for simd schedule(static) if (n >= CPU_PARALLEL_MIN_WORK)
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

void cpu_accumulate(float *dst, const float *src, size_t n)
{
	#pragma omp parallel for simd schedule(static) if (n >= CPU_PARALLEL_MIN_WORK)
	for (size_t i = 0; i < n; i++)
		dst[i] += src[i];
}

void cpu_scale(float *out, const float *x, float s, size_t n)
{
	#pragma omp parallel for simd schedule(static) if (n >= CPU_PARALLEL_MIN_WORK)
	for (size_t i = 0; i < n; i++)
		out[i] = x[i] * s;
}

/* sum(x) or sum(x^2) of one block, in double. */
static double block_sum(const float *restrict x, size_t n, int squares)
{
	double s = 0;
	if (squares) {
		#pragma omp simd reduction(+:s)
		for (size_t i = 0; i < n; i++)
			s += (double)x[i] * x[i];
	} else {
		#pragma omp simd reduction(+:s)
		for (size_t i = 0; i < n; i++)
			s += x[i];
	}
	return s;
}

static void reduce(float *out, const float *x, size_t n, int squares)
{
	size_t blocks = (n + REDUCE_BLOCK - 1) / REDUCE_BLOCK;
	if (blocks <= 1) {
		*out = (float)block_sum(x, n, squares);
		return;
	}
	double *partial = cpu_scratch_shared(blocks * sizeof *partial);
	#pragma omp parallel for schedule(static)
	for (size_t b = 0; b < blocks; b++) {
		size_t lo = b * REDUCE_BLOCK, len = n - lo < REDUCE_BLOCK ? n - lo : REDUCE_BLOCK;
		partial[b] = block_sum(x + lo, len, squares);
	}
	double s = 0;
	for (size_t b = 0; b < blocks; b++)
		s += partial[b];
	*out = (float)s;
}

void cpu_sum(float *out, const float *x, size_t n)
{
	reduce(out, x, n, 0);
}

void cpu_sum_squares(float *out, const float *x, size_t n)
{
	reduce(out, x, n, 1);
}

void cpu_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int C)
{
	#pragma omp parallel for schedule(static) if ((long)N * C >= CPU_PARALLEL_MIN_WORK)
	for (int i = 0; i < N; i++)
		memcpy(out + (size_t)i * C, table + (size_t)ids[i] * C, (size_t)C * sizeof *out);
}

/* dtable[ids[i], :] += dout[i, :]. Rows may repeat ids, so threads split
 * the columns instead of the rows: each thread adds every row's slice of its
 * columns, in row order, and no two threads touch the same element. */
void cpu_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C)
{
	enum { CHUNK = 64 }; /* columns per unit of work: whole cache lines */
	int chunks = (C + CHUNK - 1) / CHUNK;
	#pragma omp parallel for schedule(static) if ((long)N * C >= CPU_PARALLEL_MIN_WORK)
	for (int c = 0; c < chunks; c++) {
		int j0 = c * CHUNK, n = C - j0 < CHUNK ? C - j0 : CHUNK;
		for (int i = 0; i < N; i++) {
			float *restrict dst = dtable + (size_t)ids[i] * C + j0;
			const float *restrict src = dout + (size_t)i * C + j0;
			for (int j = 0; j < n; j++)
				dst[j] += src[j];
		}
	}
}
