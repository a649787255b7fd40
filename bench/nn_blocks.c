/* nn_blocks: times the engine's composed layers on the issue's two blocks.
 *
 *   transformer  pre-LN block, d=512, 8 heads, 256 tokens, batch 8, with
 *                self-attention, cross-attention over 11 condition tokens
 *                (width 512) and a 4x GELU MLP
 *   conv         residual block, 128 channels, 32x32, batch 8: group norm,
 *                SiLU, 3x3 conv, group norm, SiLU, 3x3 conv, identity skip
 *
 * Each is timed forward only, and forward + backward (gradients of the
 * input, the condition and every parameter, with the gradient zeroing a
 * training step does). It first measures this machine's sgemm peak (a
 * 2048^3 cblas_sgemm) and reports each block's GFLOP/s as a fraction of it.
 * FLOPs count the matrix products only: the linear layers, the attention's
 * two products per head (score and value) and the convolutions; a backward
 * pass counts twice its forward pass.
 *
 * Output: readable lines starting with "#", and one machine-readable line
 * per measurement for bench/nn_blocks.sh:
 *   result BLOCK PASS BEST_MS MEDIAN_MS GFLOP
 *   peak GFLOPS THREADS
 * With --breakdown it also times every op the block calls (through a copy of
 * the op table whose entries time the real ones) and prints where each
 * pass's time goes.
 *
 * Built by `make bench` into build/release/bench/nn_blocks; thread count
 * from OMP_NUM_THREADS and OPENBLAS_NUM_THREADS as usual. */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "common/bench_util.h"
#include "common/op_timing.h"
#include "nn/arena.h"
#include "nn/layers/resblock.h"
#include "nn/layers/transformer.h"
#include "nn/ops.h"
#include "nn/params.h"

static const char help[] =
	"Usage: nn_blocks [-r RUNS] [-w WARMUP] [--only transformer|conv] [--breakdown]\n"
	"Time the transformer block and the conv residual block of the engine,\n"
	"forward and forward+backward, and the machine's sgemm peak.\n"
	"  -r, --runs N      timed runs of each pass (default 10); best and median are reported\n"
	"  -w, --warmup N    untimed runs first (default 2)\n"
	"      --only NAME   one block: transformer or conv\n"
	"  -b, --breakdown   also print the time of every op, per pass\n"
	"Example: OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 nn_blocks --breakdown\n";

/* The issue's shapes. */
enum { TB = 8, TT = 256, TD = 512, TH = 8, TC = 11, TCD = 512, TMLP = 4 * TD };
enum { CB = 8, CC = 128, CHW = 32 };

/* ---- per-op timing (--breakdown) ---- */

static const struct bench_op_row op_rows[] = {
	{ "linear_forward", "linear_forward" },
	{ "linear_backward", "linear_backward" },
	{ "conv2d_forward", "conv2d_forward" },
	{ "conv2d_backward", "conv2d_backward" },
	{ "layernorm_forward", "layernorm_forward" },
	{ "layernorm_backward", "layernorm_backward" },
	{ "groupnorm_forward", "groupnorm_forward" },
	{ "groupnorm_backward", "groupnorm_backward" },
	{ "act_forward", "act_forward" },
	{ "act_backward", "act_backward" },
	{ "attention_forward", "attention_forward" },
	{ "attention_backward", "attention_backward" },
	{ "add", "add" },
	{ "accumulate", "accumulate" },
	{ "scale (copy)", "scale" },
	{ "zero", "zero" },
	{ NULL },
};

static void print_breakdown(const char *block, const char *pass, int runs, double pass_ms, double peak)
{
	printf("# breakdown %s %s (per run; timed ops sum to %.2f ms of %.2f ms):\n", block, pass,
	       1e3 * bench_ops_seconds() / runs, pass_ms);
	static const struct bench_op_table_layout layout = {
		.name_width = 20, .calls_width = 6, .rate_width = 9, .ms_decimals = 2, .share_of_pass = 0,
	};
	bench_print_op_table(runs, pass_ms, peak, &layout);
}

/* ---- the blocks ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float *random_buffer(size_t n, float scale)
{
	float *host = xmalloc(n * sizeof *host), *dev = nn->alloc(n * sizeof *dev);
	if (!dev)
		die("out of memory");
	for (size_t i = 0; i < n; i++) {
		rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
		host[i] = scale * ((float)(rng_state >> 40) / (float)(1 << 24) * 2 - 1);
	}
	nn->upload(dev, host, n * sizeof *host);
	free(host);
	return dev;
}

struct bench {
	const char *name;
	struct nn_params p;
	struct nn_arena arena;
	double fwd_gflop;
	/* one pass: forward, and backward too when `backward` */
	void (*run)(struct bench *b, int backward);
	/* block-specific state */
	struct nn_block block;
	struct nn_resblock resblock;
	float *x, *cond, *dout;
};

static void transformer_run(struct bench *b, int backward)
{
	struct nn_arena *a = &b->arena;
	struct nn_block_act act;
	nn_arena_reset(a);
	nn_block_forward(&b->block, &b->p, a, &act, b->x, TB, TT, b->cond, NULL, TC);
	if (backward) {
		nn_params_zero_grad(&b->p);
		float *dx = nn_arena_zeros(a, (size_t)TB * TT * TD);
		float *dcond = nn_arena_zeros(a, (size_t)TB * TC * TCD);
		nn_block_backward(&b->block, &b->p, a, &act, dx, dcond, b->dout);
	}
	nn->sync();
}

static void transformer_setup(struct bench *b)
{
	b->name = "transformer";
	struct nn_block_config cfg = {.dim = TD, .heads = TH, .mlp_dim = TMLP, .act = NN_GELU_ERF, .causal = 0,
	                              .cond_dim = TCD, .ln_eps = 1e-5f};
	nn_block_init(&b->block, &b->p, "block", &cfg);
	nn_params_alloc(&b->p, 1);
	bench_random_params(&b->p);
	b->x = random_buffer((size_t)TB * TT * TD, 1);
	b->cond = random_buffer((size_t)TB * TC * TCD, 1);
	b->dout = random_buffer((size_t)TB * TT * TD, 1);
	double N = (double)TB * TT, NC = (double)TB * TC, Dh = TD / TH;
	b->fwd_gflop = (2 * N * TD * TD * 4                 /* self-attention q, k, v, out */
	                + 2 * N * TD * TD * 2                /* cross-attention q, out */
	                + 2 * NC * TCD * TD * 2              /* cross-attention k, v */
	                + 2 * N * TD * TMLP * 2              /* MLP */
	                + 4.0 * TB * TH * TT * TT * Dh       /* self-attention scores and values */
	                + 4.0 * TB * TH * TT * TC * Dh)      /* cross-attention */
	               / 1e9;
	b->run = transformer_run;
}

static void conv_run(struct bench *b, int backward)
{
	struct nn_arena *a = &b->arena;
	struct nn_resblock_act act;
	nn_arena_reset(a);
	nn_resblock_forward(&b->resblock, &b->p, a, &act, b->x, CB, CHW, CHW);
	if (backward) {
		nn_params_zero_grad(&b->p);
		float *dx = nn_arena_zeros(a, (size_t)CB * CC * CHW * CHW);
		nn_resblock_backward(&b->resblock, &b->p, a, &act, dx, b->dout);
	}
	nn->sync();
}

static void conv_setup(struct bench *b)
{
	b->name = "conv";
	nn_resblock_init(&b->resblock, &b->p, "block", CC, CC, 1e-6f);
	nn_params_alloc(&b->p, 1);
	bench_random_params(&b->p);
	size_t n = (size_t)CB * CC * CHW * CHW;
	b->x = random_buffer(n, 1);
	b->dout = random_buffer(n, 1);
	b->fwd_gflop = 2 * 2.0 * CB * CC * CHW * CHW * CC * 9 / 1e9;
	b->run = conv_run;
}

static void bench_free(struct bench *b)
{
	nn->free(b->x);
	if (b->cond)
		nn->free(b->cond);
	nn->free(b->dout);
	nn_arena_free(&b->arena);
	nn_params_free(&b->p);
}

struct pass {
	struct bench *b;
	int backward;
};

static void run_pass(void *ctx)
{
	struct pass *p = ctx;
	p->b->run(p->b, p->backward);
}

int main(int argc, char **argv)
{
	static const char *const cases[] = { "transformer", "conv", NULL };
	struct bench_options o = { .runs = 10, .warmup = 2 };
	bench_parse_options(argc, argv, "nn_blocks", help, cases, &o);

	int threads = omp_get_max_threads();
	double peak = bench_sgemm_peak();
	printf("# backend %s, %d OpenMP threads, %d OpenBLAS threads\n", nn->name, threads,
	       openblas_get_num_threads());
	printf("# sgemm peak (2048^3 cblas_sgemm, best of 5): %.1f GFLOP/s\n", peak);
	printf("peak %.3f %d\n", peak, threads);

	void (*setups[])(struct bench *) = {transformer_setup, conv_setup};
	for (int s = 0; s < 2; s++) {
		struct bench b = {0};
		setups[s](&b);
		if (o.only && strcmp(o.only, b.name)) {
			bench_free(&b);
			continue;
		}
		for (int backward = 0; backward <= 1; backward++) {
			const char *pass = backward ? "forward+backward" : "forward";
			double gflop = b.fwd_gflop * (backward ? 3 : 1), best;
			struct pass timed_pass = { &b, backward };
			double median = bench_time_ms(run_pass, &timed_pass, o.warmup, o.runs, &best);
			double rate = gflop / (best / 1e3);
			printf("# %-11s %-16s best %8.2f ms  median %8.2f ms  %6.2f GFLOP  %6.1f GFLOP/s  %5.1f%% of peak\n",
			       b.name, pass, best, median, gflop, rate, 100 * rate / peak);
			printf("result %s %s %.3f %.3f %.4f\n", b.name, pass, best, median, gflop);
			if (o.breakdown) {
				bench_ops_timing_on(op_rows);
				for (int i = 0; i < o.runs; i++)
					b.run(&b, backward);
				bench_ops_timing_off();
				print_breakdown(b.name, pass, o.runs, median, peak);
			}
		}
		printf("# %s: activation arena high water %.1f MB\n", b.name, b.arena.high_water / 1e6);
		bench_free(&b);
	}
	return EXIT_OK;
}
