/* Per-thread resources of the CPU backend: working memory, and the rule for
 * how OpenBLAS shares the cores with OpenMP.
 *
 * Scratch: each thread owns a private buffer, and a second one it can share
 * with the team of a parallel region it starts. Both grow to the largest
 * size asked of them and are then reused, so ops that need temporary space
 * (im2col columns, transformed weights) allocate nothing after their first
 * call. Asking again may move a buffer, so an op asks once for everything
 * it needs in each and carves it up.
 *
 * Threads: all parallelism in this backend is OpenMP's. OpenBLAS runs
 * single-threaded, called from inside parallel regions on disjoint pieces
 * of a product. Letting OpenBLAS's own thread pool alternate with OpenMP's
 * made a convolution 2-3x slower on two cores (each pool spins while the
 * other works); splitting products ourselves costs nothing measurable. */
#ifndef KNND_NN_CPU_SCRATCH_H
#define KNND_NN_CPU_SCRATCH_H

#include <stddef.h>

/* The calling thread's private buffer, at least `bytes` bytes, 64-byte
 * aligned, contents undefined. Earlier pointers from cpu_scratch on the same
 * thread become invalid. Dies if memory runs out (ops have no error return). */
void *cpu_scratch(size_t bytes);

/* The calling thread's other buffer, for memory it fills before a parallel
 * region and its team then reads or writes (e.g. transformed weights). It
 * is separate from the private one, which the calling thread keeps using
 * inside the region. */
void *cpu_scratch_shared(size_t bytes);

/* Puts OpenBLAS in single-threaded mode (once; cheap afterwards). Call it
 * before calling cblas_* from OpenMP threads or from a serial loop. */
void cpu_blas_single_threaded(void);

/* OpenBLAS computes products of at most 1e6 multiply-adds (M*N*K) with a
 * separate small-matrix kernel that rounds differently from its main one.
 * Work split among threads into products that all stay above this size is
 * computed by the same kernel, so it gives the same bits whatever the
 * number of threads. */
#define CPU_SMALL_PRODUCT_MNK 1e6

/* How many threads to split products totalling `mnk` multiply-adds over,
 * when the split can be made at `pieces` equal units (rows, channels) and
 * each thread gets a contiguous share: the OpenMP thread count, fewer if
 * the smallest share would be a small product, and 1 inside a parallel
 * region. */
int cpu_product_threads(double mnk, int pieces);

/* Loops over fewer elements than this (adds, copies) run on one thread:
 * waking the others would cost more than the loop. */
#define CPU_PARALLEL_MIN_WORK 32768

#endif
