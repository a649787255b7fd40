/* Backend memory on the CPU is host memory: 64-byte aligned so that rows
 * start on cache lines and vector loads never split one. Large copies and
 * fills are shared among the threads: one core alone does not saturate the
 * memory bus (measured: an 8 MiB memset runs twice as fast on two). */
#include "nn/cpu/cpu.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

/* Below this, one thread copies or fills it all. */
#define PARALLEL_MIN_BYTES (1 << 20)

/* memcpy (src) or memset to 0 (src NULL) of `bytes`, split into one piece
 * per thread on 64-byte boundaries. */
static void copy_or_zero(void *dst, const void *src, size_t bytes)
{
	if (!bytes)
		return;
	if (bytes < PARALLEL_MIN_BYTES || omp_in_parallel()) {
		if (src)
			memcpy(dst, src, bytes);
		else
			memset(dst, 0, bytes);
		return;
	}
	#pragma omp parallel
	{
		size_t t = omp_get_thread_num(), T = omp_get_num_threads();
		size_t lo = bytes / T * t & ~(size_t)63;
		size_t hi = t == T - 1 ? bytes : bytes / T * (t + 1) & ~(size_t)63;
		if (src)
			memcpy((char *)dst + lo, (const char *)src + lo, hi - lo);
		else
			memset((char *)dst + lo, 0, hi - lo);
	}
}

void *cpu_alloc(size_t bytes)
{
	void *p;
	if (bytes > SIZE_MAX - 63)
		return NULL;
	size_t rounded = (bytes + 63) & ~(size_t)63;
	if (posix_memalign(&p, 64, rounded ? rounded : 64))
		return NULL;
	return p;
}

void cpu_free(void *p)
{
	free(p);
}

void cpu_upload(void *dst, const void *host_src, size_t bytes)
{
	copy_or_zero(dst, host_src, bytes);
}

void cpu_download(void *host_dst, const void *src, size_t bytes)
{
	copy_or_zero(host_dst, src, bytes);
}

void cpu_zero(void *p, size_t bytes)
{
	copy_or_zero(p, NULL, bytes);
}

/* CPU ops finish before they return. */
void cpu_sync(void)
{
}
