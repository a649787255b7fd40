#include "bench_util.h"

#include <cblas.h>
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "nn/ops.h"
#include "nn/params.h"

void openblas_set_num_threads(int n);

double bench_now(void)
{
	return omp_get_wtime();
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_time_ms(void (*run)(void *ctx), void *ctx, int warmup, int runs, double *best_ms)
{
	double *ms = xmalloc(runs * sizeof *ms);
	for (int i = 0; i < warmup; i++)
		run(ctx);
	for (int i = 0; i < runs; i++) {
		double t0 = bench_now();
		run(ctx);
		ms[i] = 1e3 * (bench_now() - t0);
	}
	qsort(ms, runs, sizeof *ms, cmp_double);
	*best_ms = ms[0];
	double median = runs % 2 ? ms[runs / 2] : (ms[runs / 2 - 1] + ms[runs / 2]) / 2;
	free(ms);
	return median;
}

double bench_sgemm_peak(void)
{
	const int n = 2048;
	float *a = xmalloc((size_t)n * n * sizeof *a), *b = xmalloc((size_t)n * n * sizeof *b);
	float *c = xmalloc((size_t)n * n * sizeof *c);
	for (size_t i = 0; i < (size_t)n * n; i++)
		a[i] = b[i] = (float)(i % 7) * 0.1f;
	double best = 1e30;
	for (int split = 0; split < 2; split++) {
		int threads = omp_get_max_threads();
		if (split)
			openblas_set_num_threads(1);
		for (int i = 0; i < 6; i++) {
			double t0 = bench_now();
			if (split) {
				#pragma omp parallel for num_threads(threads)
				for (int k = 0; k < threads; k++) {
					int lo = n * k / threads, hi = n * (k + 1) / threads;
					cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, hi - lo, n, n, 1,
					            a + (size_t)lo * n, n, b, n, 0, c + (size_t)lo * n, n);
				}
			} else {
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
			}
			double t = bench_now() - t0;
			if (i > 0 && t < best) /* the first run warms up */
				best = t;
		}
	}
	free(a);
	free(b);
	free(c);
	return 2.0 * n * n * n / best / 1e9;
}

void bench_parse_options(int argc, char **argv, const char *name, const char *help,
                         const char *const *cases, struct bench_options *o)
{
	tool_init(name, argc, argv, help);
	static const struct option opts[] = {
		{"help", 0, 0, 'h'}, {"version", 0, 0, 'V'}, {"runs", 1, 0, 'r'}, {"warmup", 1, 0, 'w'},
		{"only", 1, 0, 'o'}, {"breakdown", 0, 0, 'b'}, {0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "hVr:w:b", opts, NULL)) != -1) {
		if (tool_common_option(c, help))
			continue;
		switch (c) {
		case 'r': o->runs = (int)parse_int_option("--runs", optarg, 1, 10000); break;
		case 'w': o->warmup = (int)parse_int_option("--warmup", optarg, 0, 10000); break;
		case 'o': o->only = optarg; break;
		case 'b': o->breakdown = 1; break;
		default: usage_error("unknown option");
		}
	}
	if (optind < argc)
		usage_error("unexpected argument %s", argv[optind]);
	if (!o->only)
		return;
	for (const char *const *k = cases; *k; k++)
		if (!strcmp(o->only, *k))
			return;
	usage_error("--only: unknown case '%s'", o->only);
}

const char *bench_take_option(int *argc, char **argv, const char *name)
{
	size_t len = strlen(name);
	for (int i = 1; i < *argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (strncmp(argv[i], name, len) || (argv[i][len] != '=' && argv[i][len]))
			continue;
		int taken = argv[i][len] ? 1 : 2;
		if (i + taken > *argc)
			usage_error("%s needs a value", name);
		const char *value = argv[i][len] ? argv[i] + len + 1 : argv[i + 1];
		memmove(argv + i, argv + i + taken, (*argc - i - taken + 1) * sizeof *argv);
		*argc -= taken;
		return value;
	}
	return NULL;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

uint32_t bench_random(void)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(rng >> 32);
}

void bench_random_params(struct nn_params *p)
{
	for (int i = 0; i < p->n; i++) {
		const char *name = p->items[i].name;
		size_t len = strlen(name);
		if (p->items[i].ndim == 1 && len > 7 && !strcmp(name + len - 7, ".weight"))
			nn_param_init_const(p, i, 1.0f);
		else
			nn_param_init_normal(p, i, 0.02f, (uint64_t)i);
	}
}

void bench_read_raw(const char *dir, const char *name, void *dst, size_t bytes)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		die("%s: cannot open", path);
	if (fread(dst, 1, bytes, f) != bytes || fgetc(f) != EOF)
		die("%s: not %zu bytes (made for another config?)", path, bytes);
	fclose(f);
}
