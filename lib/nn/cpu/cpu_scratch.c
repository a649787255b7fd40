#include "nn/cpu/cpu_scratch.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

#include "core/tool.h"

/* OpenMP keeps its worker threads alive between regions, so a thread's
 * buffer survives from one op to the next. */
struct buffer {
	void *p;
	size_t bytes;
};
static _Thread_local struct buffer private_buffer, shared_buffer;

static void *grow(struct buffer *b, size_t bytes)
{
	if (bytes <= b->bytes)
		return b->p;
	/* A quarter more, so that a slowly growing request does not reallocate
	 * on every call. */
	size_t want = bytes + bytes / 4;
	want = (want + 63) & ~(size_t)63;
	free(b->p);
	b->p = NULL;
	b->bytes = 0;
	if (posix_memalign(&b->p, 64, want))
		die("out of memory allocating %zu bytes of CPU scratch", want);
	b->bytes = want;
	return b->p;
}

void *cpu_scratch(size_t bytes)
{
	return grow(&private_buffer, bytes);
}

void *cpu_scratch_shared(size_t bytes)
{
	return grow(&shared_buffer, bytes);
}

void cpu_blas_single_threaded(void)
{
	static int done;
	if (__atomic_load_n(&done, __ATOMIC_ACQUIRE))
		return;
	openblas_set_num_threads(1);
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
}

int cpu_product_threads(double mnk, int pieces)
{
	if (omp_in_parallel() || pieces < 2)
		return 1;
	int n = omp_get_max_threads();
	if (n > pieces)
		n = pieces;
	/* the smallest share has pieces / n units */
	while (n > 1 && mnk * (pieces / n) / pieces <= CPU_SMALL_PRODUCT_MNK)
		n--;
	return n;
}
