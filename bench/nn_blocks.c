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

enum op_id {
	OP_LINEAR_FWD, OP_LINEAR_BWD, OP_CONV_FWD, OP_CONV_BWD, OP_LAYERNORM_FWD, OP_LAYERNORM_BWD,
	OP_GROUPNORM_FWD, OP_GROUPNORM_BWD, OP_ACT_FWD, OP_ACT_BWD, OP_ATTENTION_FWD, OP_ATTENTION_BWD,
	OP_ADD, OP_ACCUMULATE, OP_SCALE, OP_ZERO, OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
	"linear_forward", "linear_backward", "conv2d_forward", "conv2d_backward", "layernorm_forward",
	"layernorm_backward", "groupnorm_forward", "groupnorm_backward", "act_forward", "act_backward",
	"attention_forward", "attention_backward", "add", "accumulate", "scale (copy)", "zero",
};

static const struct nn_ops *real;
static struct nn_ops timed;
static double op_seconds[OP_COUNT], op_flops[OP_COUNT];
static long op_calls[OP_COUNT];

#define TIME_OP(id, flops, call) do { \
		real->sync(); \
		double t0_ = bench_now(); \
		call; \
		real->sync(); \
		op_seconds[id] += bench_now() - t0_; \
		op_flops[id] += (flops); \
		op_calls[id]++; \
	} while (0)

static double conv_flops(const struct nn_conv2d *g)
{
	return 2.0 * g->B * g->OC * nn_conv2d_out_h(g) * nn_conv2d_out_w(g) * g->IC * g->KH * g->KW;
}

static double attention_flops(const struct nn_attention *a)
{
	return 4.0 * a->B * a->H * a->Tq * a->Tk * a->D * (a->causal ? 0.5 : 1.0);
}

static void t_linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int IN, int OUT)
{
	TIME_OP(OP_LINEAR_FWD, 2.0 * N * IN * OUT, real->linear_forward(out, inp, w, b, N, IN, OUT));
}

static void t_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                              const float *w, int N, int IN, int OUT)
{
	TIME_OP(OP_LINEAR_BWD, 2.0 * N * IN * OUT * (!!dinp + !!dw),
	        real->linear_backward(dinp, dw, db, dout, inp, w, N, IN, OUT));
}

static void t_conv2d_forward(float *out, const float *inp, const float *w, const float *b, const struct nn_conv2d *g)
{
	TIME_OP(OP_CONV_FWD, conv_flops(g), real->conv2d_forward(out, inp, w, b, g));
}

static void t_conv2d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                              const float *w, const struct nn_conv2d *g)
{
	TIME_OP(OP_CONV_BWD, conv_flops(g) * (!!dinp + !!dw), real->conv2d_backward(dinp, dw, db, dout, inp, w, g));
}

static void t_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                const float *b, int N, int C, float eps)
{
	TIME_OP(OP_LAYERNORM_FWD, 0, real->layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps));
}

static void t_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                 const float *w, const float *mean, const float *rstd, int N, int C)
{
	TIME_OP(OP_LAYERNORM_BWD, 0, real->layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C));
}

static void t_groupnorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                const float *b, int B, int C, int HW, int G, float eps)
{
	TIME_OP(OP_GROUPNORM_FWD, 0, real->groupnorm_forward(out, mean, rstd, inp, w, b, B, C, HW, G, eps));
}

static void t_groupnorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                 const float *w, const float *mean, const float *rstd, int B, int C, int HW, int G)
{
	TIME_OP(OP_GROUPNORM_BWD, 0, real->groupnorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, B, C, HW, G));
}

static void t_act_forward(float *out, const float *inp, size_t n, enum nn_act act)
{
	TIME_OP(OP_ACT_FWD, 0, real->act_forward(out, inp, n, act));
}

static void t_act_backward(float *dinp, const float *inp, const float *dout, size_t n, enum nn_act act)
{
	TIME_OP(OP_ACT_BWD, 0, real->act_backward(dinp, inp, dout, n, act));
}

static void t_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                                const struct nn_attention *a)
{
	TIME_OP(OP_ATTENTION_FWD, attention_flops(a), real->attention_forward(out, lse, q, k, v, a));
}

static void t_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                 const float *k, const float *v, const float *out, const float *lse,
                                 const struct nn_attention *a)
{
	TIME_OP(OP_ATTENTION_BWD, 2 * attention_flops(a),
	        real->attention_backward(dq, dk, dv, dout, q, k, v, out, lse, a));
}

static void t_add(float *out, const float *a, const float *b, size_t n)
{
	TIME_OP(OP_ADD, 0, real->add(out, a, b, n));
}

static void t_accumulate(float *dst, const float *src, size_t n)
{
	TIME_OP(OP_ACCUMULATE, 0, real->accumulate(dst, src, n));
}

static void t_scale(float *out, const float *x, float s, size_t n)
{
	TIME_OP(OP_SCALE, 0, real->scale(out, x, s, n));
}

static void t_zero(void *p, size_t bytes)
{
	TIME_OP(OP_ZERO, 0, real->zero(p, bytes));
}

static void timing_on(void)
{
	real = nn;
	timed = *nn;
	timed.linear_forward = t_linear_forward;
	timed.linear_backward = t_linear_backward;
	timed.conv2d_forward = t_conv2d_forward;
	timed.conv2d_backward = t_conv2d_backward;
	timed.layernorm_forward = t_layernorm_forward;
	timed.layernorm_backward = t_layernorm_backward;
	timed.groupnorm_forward = t_groupnorm_forward;
	timed.groupnorm_backward = t_groupnorm_backward;
	timed.act_forward = t_act_forward;
	timed.act_backward = t_act_backward;
	timed.attention_forward = t_attention_forward;
	timed.attention_backward = t_attention_backward;
	timed.add = t_add;
	timed.accumulate = t_accumulate;
	timed.scale = t_scale;
	timed.zero = t_zero;
	memset(op_seconds, 0, sizeof op_seconds);
	memset(op_flops, 0, sizeof op_flops);
	memset(op_calls, 0, sizeof op_calls);
	nn = &timed;
}

static void timing_off(void) { nn = real; }

static void print_breakdown(const char *block, const char *pass, int runs, double pass_ms, double peak)
{
	double total = 0;
	for (int i = 0; i < OP_COUNT; i++)
		total += op_seconds[i];
	printf("# breakdown %s %s (per run; timed ops sum to %.2f ms of %.2f ms):\n", block, pass,
	       1e3 * total / runs, pass_ms);
	printf("#   %-20s %6s %9s %6s %9s %6s\n", "op", "calls", "ms", "share", "GFLOP/s", "peak");
	for (int i = 0; i < OP_COUNT; i++) {
		if (!op_calls[i])
			continue;
		double ms = 1e3 * op_seconds[i] / runs;
		printf("#   %-20s %6ld %9.2f %5.1f%%", op_names[i], op_calls[i] / runs, ms, 100 * op_seconds[i] / total);
		if (op_flops[i] > 0) {
			double gf = op_flops[i] / op_seconds[i] / 1e9;
			printf(" %9.1f %5.1f%%", gf, 100 * gf / peak);
		}
		printf("\n");
	}
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

static void init_params(struct nn_params *p)
{
	nn_params_alloc(p, 1);
	for (int i = 0; i < p->n; i++) {
		const char *name = p->items[i].name;
		size_t len = strlen(name);
		if (p->items[i].ndim == 1 && len > 7 && !strcmp(name + len - 7, ".weight"))
			nn_param_init_const(p, i, 1.0f); /* norm scales */
		else
			nn_param_init_normal(p, i, 0.02f, (uint64_t)i);
	}
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
	init_params(&b->p);
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
	init_params(&b->p);
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
	int runs = o.runs, warmup = o.warmup, breakdown = o.breakdown;
	const char *only = o.only;

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
		if (only && strcmp(only, b.name)) {
			bench_free(&b);
			continue;
		}
		for (int backward = 0; backward <= 1; backward++) {
			const char *pass = backward ? "forward+backward" : "forward";
			double gflop = b.fwd_gflop * (backward ? 3 : 1), best;
			struct pass timed_pass = { &b, backward };
			double median = bench_time_ms(run_pass, &timed_pass, warmup, runs, &best);
			double rate = gflop / (best / 1e3);
			printf("# %-11s %-16s best %8.2f ms  median %8.2f ms  %6.2f GFLOP  %6.1f GFLOP/s  %5.1f%% of peak\n",
			       b.name, pass, best, median, gflop, rate, 100 * rate / peak);
			printf("result %s %s %.3f %.3f %.4f\n", b.name, pass, best, median, gflop);
			if (breakdown) {
				timing_on();
				for (int i = 0; i < runs; i++)
					b.run(&b, backward);
				timing_off();
				print_breakdown(b.name, pass, runs, median, peak);
			}
		}
		printf("# %s: activation arena high water %.1f MB\n", b.name, b.arena.high_water / 1e6);
		bench_free(&b);
	}
	return EXIT_OK;
}
