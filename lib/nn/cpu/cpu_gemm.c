/* Matrix products: the batched gemm and the linear layer.
 *
 * OpenBLAS computes each product single-threaded (cpu_scratch.h says why).
 * Parallelism comes from handing each OpenMP thread a slab of the output, a
 * range of rows or of columns of C (whichever dimension is longer), or whole
 * products of a batch. A slab never splits a dot product, and slabs are
 * never so small that OpenBLAS changes kernels (cpu_product_threads), so
 * every element of C is the same sum in the same order whatever the thread
 * count. */
#include "nn/cpu/cpu.h"

#include <cblas.h>
#include <omp.h>

#include "nn/cpu/cpu_scratch.h"

/* Slab edges fall on multiples of this, a multiple of OpenBLAS's register
 * blocking, so no slab ends in a slow partial block except the last. */
#define SLAB_ALIGN 32

/* C = alpha op(A) op(B) + beta C on the calling thread. */
static void sgemm_serial(int trans_a, int trans_b, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb,
                         float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	if (K <= 0) { /* an empty sum: only the beta term is left */
		for (int i = 0; i < M; i++)
			for (int j = 0; j < N; j++)
				C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
		return;
	}
	cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
	            trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb,
	            beta, C, ldc);
}

/* Slab i of n over a dimension of length d, in whole SLAB_ALIGN units. */
static void slab_range(int d, int i, int n, int *lo, int *hi)
{
	long units = (d + SLAB_ALIGN - 1) / SLAB_ALIGN;
	*lo = (int)(units * i / n) * SLAB_ALIGN;
	long end = units * (i + 1) / n * SLAB_ALIGN;
	*hi = end < d ? (int)end : d;
}

/* How many slabs (threads) a product of this shape is worth. */
static int slab_count(int M, int N, int K)
{
	int longest = M > N ? M : N;
	return cpu_product_threads((double)M * N * K, (longest + SLAB_ALIGN - 1) / SLAB_ALIGN);
}

/* C = alpha op(A) op(B) + beta C (+ bias[j] on every row when bias is not
 * NULL), split over threads into slabs of rows or columns of C. */
static void sgemm_parallel(int trans_a, int trans_b, int M, int N, int K, float alpha,
                           const float *A, int lda, const float *B, int ldb,
                           float beta, float *C, int ldc, const float *bias)
{
	int n = slab_count(M, N, K);
	int by_rows = M >= N;
	#pragma omp parallel for num_threads(n) schedule(static, 1) if (n > 1)
	for (int i = 0; i < n; i++) {
		int lo, hi;
		slab_range(by_rows ? M : N, i, n, &lo, &hi);
		int m0 = 0, m1 = M, n0 = 0, n1 = N;
		if (by_rows)
			m0 = lo, m1 = hi;
		else
			n0 = lo, n1 = hi;
		const float *a = trans_a ? A + m0 : A + (size_t)m0 * lda;
		const float *b = trans_b ? B + (size_t)n0 * ldb : B + n0;
		float *c = C + (size_t)m0 * ldc + n0;
		sgemm_serial(trans_a, trans_b, m1 - m0, n1 - n0, K, alpha, a, lda, b, ldb, beta, c, ldc);
		if (bias)
			for (int r = m0; r < m1; r++) {
				float *restrict row = C + (size_t)r * ldc;
				for (int j = n0; j < n1; j++)
					row[j] += bias[j];
			}
	}
}

void cpu_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, long stride_a, const float *B, int ldb, long stride_b, float beta,
              float *C, int ldc, long stride_c, int batch)
{
	cpu_blas_single_threaded();
	if (batch <= 0 || M <= 0 || N <= 0)
		return;
	double mnk = (double)M * N * K;
	int threads = omp_get_max_threads();
	/* Whole products per thread when they are too small to split or divide
	 * evenly among the threads; otherwise each product is split, so that a
	 * batch of 3 on 2 threads does not leave one thread idle half the time. */
	int whole = slab_count(M, N, K) == 1 || batch % threads == 0 || batch >= 4 * threads;
	if (batch > 1 && whole && !omp_in_parallel() && mnk * batch > CPU_SMALL_PRODUCT_MNK) {
		#pragma omp parallel for schedule(static)
		for (int b = 0; b < batch; b++)
			sgemm_serial(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda,
			             B + b * stride_b, ldb, beta, C + b * stride_c, ldc);
		return;
	}
	for (int b = 0; b < batch; b++)
		sgemm_parallel(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda,
		               B + b * stride_b, ldb, beta, C + b * stride_c, ldc, NULL);
}

void cpu_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                        int N, int IN, int OUT)
{
	cpu_blas_single_threaded();
	sgemm_parallel(0, 1, N, OUT, IN, 1, inp, IN, weight, IN, 0, out, OUT, bias);
}

/* sums[j] += sum_i x[i, j], each column summed in row order in double. */
static void add_column_sums(float *sums, const float *x, int rows, int cols)
{
	enum { CHUNK = 64 };
	int chunks = (cols + CHUNK - 1) / CHUNK;
	#pragma omp parallel for schedule(static) if ((long)rows * cols >= CPU_PARALLEL_MIN_WORK)
	for (int c = 0; c < chunks; c++) {
		int j0 = c * CHUNK, n = cols - j0 < CHUNK ? cols - j0 : CHUNK;
		double acc[CHUNK] = {0};
		for (int i = 0; i < rows; i++) {
			const float *restrict row = x + (size_t)i * cols + j0;
			for (int j = 0; j < n; j++)
				acc[j] += row[j];
		}
		for (int j = 0; j < n; j++)
			sums[j0 + j] += (float)acc[j];
	}
}

void cpu_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int N, int IN, int OUT)
{
	cpu_blas_single_threaded();
	if (dinp) /* dinp[N,IN] += dout[N,OUT] weight[OUT,IN] */
		sgemm_parallel(0, 0, N, IN, OUT, 1, dout, OUT, weight, IN, 1, dinp, IN, NULL);
	if (dweight) /* dweight[OUT,IN] += dout^T inp */
		sgemm_parallel(1, 0, OUT, IN, N, 1, dout, OUT, inp, IN, 1, dweight, IN, NULL);
	if (dbias)
		add_column_sums(dbias, dout, N, OUT);
}
