/* What the benchmark programs share: a clock, repeated timing, the
 * machine's sgemm peak that results are reported against, their options,
 * inputs and check data (the per-op timing of --breakdown is op_timing.h). */
#ifndef KNND_BENCH_UTIL_H
#define KNND_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

double bench_now(void); /* seconds */

/* The options every benchmark program takes: -r/--runs, -w/--warmup,
 * --only NAME (one of `cases`, a NULL-terminated list) and -b/--breakdown,
 * plus --help/--version. Defaults are the struct's values on entry. */
struct bench_options {
	int runs, warmup, breakdown;
	const char *only;
};
void bench_parse_options(int argc, char **argv, const char *name, const char *help,
                         const char *const *cases, struct bench_options *o);

/* Runs run(ctx) `warmup` times untimed, then `runs` times timed; returns the
 * median in ms and sets *best_ms. */
double bench_time_ms(void (*run)(void *ctx), void *ctx, int warmup, int runs, double *best_ms);

/* The best GFLOP/s of a 2048^3 product, either as one cblas_sgemm on
 * OpenBLAS's own threads or split in row bands over the OpenMP threads,
 * each a single-threaded cblas_sgemm (how the CPU backend runs products).
 * On a shared machine the two vary; the larger is the ceiling. */
double bench_sgemm_peak(void);

/* Removes "--name VALUE" or "--name=VALUE" from argv and returns VALUE
 * (NULL if absent): a program's own options, taken before
 * bench_parse_options sees the rest. */
const char *bench_take_option(int *argc, char **argv, const char *name);

/* The inputs' random numbers: one fixed sequence per run of a program. */
uint32_t bench_random(void);

/* Random weights for timing: every norm scale (a 1-D ".weight") 1, every
 * other tensor normal with std 0.02, seeded by its index. */
struct nn_params;
void bench_random_params(struct nn_params *p);

/* Reads DIR/NAME, which must hold exactly `bytes` bytes (PyTorch's side
 * wrote it), into dst; dies otherwise. */
void bench_read_raw(const char *dir, const char *name, void *dst, size_t bytes);

#endif
