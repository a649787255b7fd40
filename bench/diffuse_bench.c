/* diffuse_bench: times the discrete backbone (lib/diffusion: the denoising
 * transformer of discrete_transformer.h and the mask-and-replace diffusion
 * of mask_diffusion.h) training and sampling, for the config of
 * bench/diffuse_bench.sh (12 blocks, width 512, 8 heads, 16x16 tokens, 1024
 * codes, k = 10 so 11 condition slots of 512, T = 100).
 *
 *   train:  one step at batch 8 = draw x_t ~ q(x_t | x_0) (md_q_pred,
 *           Philox noise, md_sample), dtx_forward, md_train_loss with its
 *           gradient, dtx_backward, nn_optim_step (AdamW, torch's defaults
 *           but lr 1e-4).
 *   sample: a chain of --steps reverse steps from all-mask at batch 1 and 8,
 *           each dtx_forward, md_predict_start, md_truncate_mass (top 0.86
 *           of the mass, VQ-Diffusion's), md_q_posterior, Philox noise and
 *           md_sample: what `diffuse sample` runs per step.
 *
 * --model loads the weights that bench/diffuse_bench_torch.py --write made
 * (our parameter names), so that PyTorch runs the same model; the config
 * comes from the options, which must match the ones the weights were made
 * with (the script passes the same to both). --check DIR then runs that
 * script's check input and compares our logits and our training loss with
 * PyTorch's. Without --model the weights are dtx_init_random's.
 *
 * Output: readable lines starting with "#", and for bench/diffuse_bench.sh
 *   result CASE BATCH THREADS BEST_MS MEDIAN_MS STEPS GFLOP
 *   peak GFLOPS THREADS
 *   check LOGITS_MAX_DIFF LOGITS_MAX_ABS LOSS_OURS LOSS_TORCH
 * where a train result is one step (STEPS 1) and a sample result a chain of
 * STEPS reverse steps; GFLOP counts the matrix products of the case. After
 * each case a "#" line splits its time into phases (transformer forward,
 * loss, backward, optimiser; or forward, x0 prediction, posterior, draw).
 * With --breakdown it also times every op the case calls, through a copy of
 * the op table whose entries time the real ones.
 *
 * Built by the Makefile's bench rule into BUILD/bench/diffuse_bench;
 * threads from OMP_NUM_THREADS as usual. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bench_util.h"
#include "common/op_timing.h"
#include "core/error.h"
#include "core/tool.h"
#include "diffusion/discrete_transformer.h"
#include "diffusion/mask_diffusion.h"
#include "nn/arena.h"
#include "nn/checkpoint.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/philox.h"

static const char help[] =
	"Usage: diffuse_bench [--model PATH [--check DIR]] [config options] [--steps N] [--truncation R]\n"
	"                     [-r RUNS] [-w WARMUP] [--only train|sample] [--breakdown]\n"
	"Time the discrete backbone's training step (batch 8) and sampling (batch 1 and 8).\n"
	"  --backend NAME    cpu (default), cuda or auto\n"
	"  --model PATH      weights (safetensors, our names) from diffuse_bench_torch.py --write;\n"
	"                    default: dtx_init_random weights\n"
	"  --check DIR       compare logits and training loss with PyTorch's (DIR from --write)\n"
	"  --depth N, --width N, --heads N, --grid N (token grid side), --codes N, --k N (neighbours),\n"
	"  --cond-dim N, --T N, --cond-self-attn 0|1\n"
	"                    the config (default 12, 512, 8, 16, 1024, 10, 512, 100, 0); must match --model's\n"
	"  --train-batch N   training batch (default 8)\n"
	"  --steps N         reverse steps per timed sampling chain (default 100, at most T)\n"
	"  --truncation R    keep the top R of the x0 mass when sampling (default 0.86; 1: none)\n"
	"  -r, --runs N      timed training steps (default 3); best and median are reported\n"
	"  --sample-runs N   timed sampling chains per batch (default 1)\n"
	"  -w, --warmup N    untimed training steps, and untimed one-step chains, first (default 1)\n"
	"      --only NAME   one case: train or sample\n"
	"  -b, --breakdown   also print the time of every op, per case\n"
	"Example: OMP_NUM_THREADS=2 diffuse_bench --model /tmp/d/model.safetensors --check /tmp/d --steps 10\n";

enum { CHECK_ROWS = 2, SAMPLE_SEED = 77, TRAIN_SEED = 78 };

/* ---- FLOPs of a forward pass, from the architecture ---- */

/* Matrix products of one forward pass over B rows of L tokens and S
 * condition slots: every linear layer and attention's two products. A
 * training step counts three times this (backward: two products per one). */
static double dtx_gflop(const struct dtx_config *c, int B)
{
	double L = (double)c->h * c->w, S = c->cond_slots, W = c->width;
	double lin = 2.0 * B * W; /* times rows * out per linear of input width W */
	double block = lin * L * W * 4            /* self-attention q, k, v, out */
	               + 4.0 * B * L * L * W      /* its two products */
	               + lin * L * W * 2          /* cross-attention q, out */
	               + lin * S * W * 2          /* its k, v over the condition */
	               + 4.0 * B * L * S * W      /* its two products */
	               + 2 * lin * 2 * W          /* two AdaLN projections, one row each */
	               + 2 * lin * L * c->mlp_hidden; /* fc1 and fc2 */
	double f = c->depth * block + 2.0 * B * S * c->cond_dim * W + lin * L * c->K;
	if (c->cond_self_attn)
		f += lin * S * W * 4 + 4.0 * B * S * S * W;
	return f / 1e9;
}

/* ---- per-op timing (--breakdown) ---- */

static const struct bench_op_row op_rows[] = {
	{ "linear_forward", "linear_forward" },
	{ "linear_backward", "linear_backward" },
	{ "attention_forward", "attention_forward" },
	{ "attention_backward", "attention_backward" },
	{ "layernorm_forward", "layernorm_forward" },
	{ "layernorm_backward", "layernorm_backward" },
	{ "modulate forward + backward", "modulate_forward modulate_backward" },
	{ "act (GELU, SiLU) forward + backward", "act_forward act_backward" },
	{ "embedding forward + backward", "embedding_forward embedding_backward" },
	{ "add, accumulate, scale", "add accumulate scale" },
	{ "adamw, ema, sum_squares", "adamw_update ema_update sum_squares" },
	{ "zero, upload, download", "zero upload download" },
	{ NULL },
};

/* Ops by total time per run; what they do not cover (mask_diffusion.h's
 * host loops, the model's own code, the timing) is "outside the ops". */
static void print_breakdown(const char *name, int batch, int runs, double pass_ms, double peak)
{
	printf("# breakdown %s batch %d (per run; ops sum to %.1f ms of the run's %.1f ms):\n", name, batch,
	       1e3 * bench_ops_seconds() / runs, pass_ms);
	static const struct bench_op_table_layout layout = {
		.name_width = 38, .calls_width = 7, .rate_width = 8, .ms_decimals = 1, .share_of_pass = 1,
	};
	bench_print_op_table(runs, pass_ms, peak, &layout);
}

/* ---- the cases ---- */

/* Phases of a case, timed on every run (a sync first: the backend may run
 * ahead of the host). */
enum phase { PH_NOISE, PH_FORWARD, PH_LOSS, PH_BACKWARD, PH_OPTIM, PH_X0, PH_POSTERIOR, PH_COUNT };
static const char *const phase_names[PH_COUNT] = {
	"noise + draw", "forward", "loss", "backward", "AdamW", "x0 prediction + truncation", "posterior",
};

struct bench_case {
	struct dtx *m;
	const struct md_schedule *s;
	struct nn_arena *a;
	int B, S, L, steps;
	float truncation;
	struct md_loss_config loss;
	struct nn_optim *opt;
	const int32_t *x0;  /* train: data tokens */
	int32_t *x, *t;     /* x_t (sampled) and steps, host */
	const float *cond;  /* host [B, S, D] */
	float *log_x, *log_p, *uniform, *logits, *dlogits, *recon; /* host scratch */
	uint64_t seed, draws; /* the Philox stream of the case's noise */
	double phase_s[PH_COUNT];
	double clock;
};

static void phase_mark(struct bench_case *c, enum phase p)
{
	nn->sync();
	double now = bench_now();
	c->phase_s[p] += now - c->clock;
	c->clock = now;
}

/* n uniforms in (0, 1) from the case's Philox stream (4 per block). */
static void draw_uniform(struct bench_case *c, float *u, size_t n)
{
	uint64_t base = c->draws;
	size_t blocks = (n + 3) / 4;
	#pragma omp parallel for schedule(static)
	for (size_t b = 0; b < blocks; b++) {
		struct philox_block w = philox_block_at(c->seed, base + 4 * b);
		for (size_t j = 0; j < 4 && 4 * b + j < n; j++)
			u[4 * b + j] = philox_uniform(w.w[j]);
	}
	c->draws += 4 * blocks;
}

/* The inputs in backend memory from the arena, then the network. */
static float *forward(struct bench_case *c)
{
	size_t ntok = (size_t)c->B * c->L, ncond = (size_t)c->B * c->S * c->m->cfg.cond_dim;
	int32_t *x = nn_arena_bytes(c->a, ntok * sizeof *x), *t = nn_arena_bytes(c->a, c->B * sizeof *t);
	float *cond = nn_arena_floats(c->a, ncond);
	nn->upload(x, c->x, ntok * sizeof *x);
	nn->upload(t, c->t, c->B * sizeof *t);
	nn->upload(cond, c->cond, ncond * sizeof *cond);
	float *logits = dtx_forward(c->m, c->a, x, t, cond, NULL, c->B, c->S);
	if (!logits)
		die("dtx_forward: %s", error_message());
	nn->download(c->logits, logits, (size_t)c->B * c->m->cfg.K * c->L * sizeof(float));
	return logits;
}

static void train_step(void *ctx)
{
	struct bench_case *c = ctx;
	const struct md_schedule *s = c->s;
	int B = c->B, L = c->L, C = s->K + 1;
	size_t nlog = (size_t)B * C * L, nlogits = (size_t)B * s->K * L;
	c->clock = bench_now();
	nn_arena_reset(c->a);
	md_log_onehot(s, c->x0, B, L, c->log_x);
	md_q_pred(s, c->log_x, c->t, B, L, c->log_p);
	draw_uniform(c, c->uniform, nlog);
	md_sample(s, c->log_p, c->uniform, B, L, c->x);
	phase_mark(c, PH_NOISE);
	forward(c);
	phase_mark(c, PH_FORWARD);
	md_train_loss(s, &c->loss, c->x0, c->x, c->t, c->logits, B, L, c->dlogits, NULL);
	float *dlogits = nn_arena_floats(c->a, nlogits);
	nn->upload(dlogits, c->dlogits, nlogits * sizeof *dlogits);
	phase_mark(c, PH_LOSS);
	dtx_backward(c->m, c->a, dlogits);
	phase_mark(c, PH_BACKWARD);
	if (nn_optim_step(c->opt) != NN_STEP_TAKEN)
		die("the optimiser step was not taken (gradient not finite?)");
	phase_mark(c, PH_OPTIM);
}

static void sample_chain(void *ctx)
{
	struct bench_case *c = ctx;
	const struct md_schedule *s = c->s;
	int B = c->B, L = c->L, K = s->K;
	size_t nlog = (size_t)B * (K + 1) * L;
	c->clock = bench_now();
	for (size_t i = 0; i < (size_t)B * L; i++)
		c->x[i] = K; /* all mask */
	for (int step = 0; step < c->steps; step++) {
		for (int b = 0; b < B; b++)
			c->t[b] = s->T - 1 - step;
		nn_arena_reset(c->a);
		forward(c);
		phase_mark(c, PH_FORWARD);
		md_predict_start(s, c->logits, B, L, c->recon);
		if (c->truncation < 1)
			md_truncate_mass(s, c->recon, B, L, c->truncation);
		phase_mark(c, PH_X0);
		md_log_onehot(s, c->x, B, L, c->log_x);
		md_q_posterior(s, c->recon, c->log_x, c->t, B, L, c->log_p);
		phase_mark(c, PH_POSTERIOR);
		draw_uniform(c, c->uniform, nlog);
		md_sample(s, c->log_p, c->uniform, B, L, c->x);
		phase_mark(c, PH_NOISE);
	}
}

static void print_phases(const struct bench_case *c, int runs_total)
{
	double total = 0;
	for (int p = 0; p < PH_COUNT; p++)
		total += c->phase_s[p];
	printf("#   phases (mean over %d runs):", runs_total);
	for (int p = 0; p < PH_COUNT; p++)
		if (c->phase_s[p] > 0)
			printf(" %s %.1f ms (%.0f%%),", phase_names[p], 1e3 * c->phase_s[p] / runs_total,
			       100 * c->phase_s[p] / total);
	printf("\n");
}

/* ---- inputs and the check against PyTorch ---- */

/* CLIP-like condition rows: random unit vectors. */
static float *random_cond(int B, int S, int D)
{
	float *cond = xmalloc((size_t)B * S * D * sizeof *cond);
	for (int r = 0; r < B * S; r++) {
		double norm = 0;
		for (int i = 0; i < D; i++) {
			float v = (float)(bench_random() % 4096) / 2048.0f - 1.0f;
			cond[(size_t)r * D + i] = v;
			norm += (double)v * v;
		}
		for (int i = 0; i < D; i++)
			cond[(size_t)r * D + i] /= (float)sqrt(norm);
	}
	return cond;
}

/* Our logits for PyTorch's check input, and our training loss for its x_0,
 * x_t and t, against PyTorch's. */
static void check_against_torch(struct dtx *m, const struct md_schedule *s, const char *dir)
{
	const struct dtx_config *cfg = &m->cfg;
	int B = CHECK_ROWS, S = cfg->cond_slots, L = cfg->h * cfg->w;
	size_t ntok = (size_t)B * L, nlogits = (size_t)B * cfg->K * L, ncond = (size_t)B * S * cfg->cond_dim;
	int32_t *x0 = xmalloc(ntok * sizeof *x0), *xt = xmalloc(ntok * sizeof *xt), t[CHECK_ROWS];
	float *cond = xmalloc(ncond * sizeof *cond), *theirs = xmalloc(nlogits * sizeof *theirs), their_loss;
	float *ours = xmalloc(nlogits * sizeof *ours);
	bench_read_raw(dir, "check_x0.i32", x0, ntok * sizeof *x0);
	bench_read_raw(dir, "check_tokens.i32", xt, ntok * sizeof *xt);
	bench_read_raw(dir, "check_t.i32", t, sizeof t);
	bench_read_raw(dir, "check_cond.f32", cond, ncond * sizeof *cond);
	bench_read_raw(dir, "check_logits.f32", theirs, nlogits * sizeof *theirs);
	bench_read_raw(dir, "check_loss.f32", &their_loss, sizeof their_loss);
	struct nn_arena a = {0};
	int32_t *xd = nn_arena_bytes(&a, ntok * sizeof *xd), *td = nn_arena_bytes(&a, sizeof t);
	float *cd = nn_arena_floats(&a, ncond);
	nn->upload(xd, xt, ntok * sizeof *xd);
	nn->upload(td, t, sizeof t);
	nn->upload(cd, cond, ncond * sizeof *cd);
	float *logits = dtx_forward(m, &a, xd, td, cd, NULL, B, S);
	if (!logits)
		die("dtx_forward: %s", error_message());
	nn->download(ours, logits, nlogits * sizeof *ours);
	double max_diff = 0, max_abs = 0;
	for (size_t i = 0; i < nlogits; i++) {
		max_diff = fmax(max_diff, fabs((double)ours[i] - theirs[i]));
		max_abs = fmax(max_abs, fabs((double)theirs[i]));
	}
	struct md_loss_config lc = { .aux_weight = 5e-4f, .adaptive_aux = 1, .mask_weight = {1, 1} };
	float loss = md_train_loss(s, &lc, x0, xt, t, ours, B, L, NULL, NULL);
	float loss_their_logits = md_train_loss(s, &lc, x0, xt, t, theirs, B, L, NULL, NULL);
	printf("# check: logits of PyTorch's %d check rows (t = %d, %d): max |ours - torch| %.2e (max |logit| %.2f); "
	       "training loss ours %.6f, torch %.6f (ours on torch's logits %.6f)\n", B, t[0], t[1], max_diff,
	       max_abs, loss, their_loss, loss_their_logits);
	printf("check %.3e %.3e %.6f %.6f\n", max_diff, max_abs, loss, their_loss);
	nn_arena_free(&a);
	free(x0);
	free(xt);
	free(cond);
	free(theirs);
	free(ours);
}

static int int_option(int *argc, char **argv, const char *name, int dflt, int lo, int hi)
{
	const char *v = bench_take_option(argc, argv, name);
	return v ? (int)parse_int_option(name, v, lo, hi) : dflt;
}

static void load_weights(struct dtx *m, const char *path)
{
	struct st_file *f = st_open(path);
	if (!f || nn_params_load(&m->params, f, 0) < 0)
		die("%s", error_message());
	st_close(f);
}

int main(int argc, char **argv)
{
	tool_init("diffuse_bench", argc, argv, help);
	const char *model_path = bench_take_option(&argc, argv, "--model");
	const char *check_dir = bench_take_option(&argc, argv, "--check");
	const char *backend = bench_take_option(&argc, argv, "--backend");
	if (backend && nn_use_backend(backend) < 0)
		usage_error("--backend: %s", error_message());
	struct dtx_config cfg = {
		.depth = int_option(&argc, argv, "--depth", 12, 1, 256),
		.width = int_option(&argc, argv, "--width", 512, 8, 16384),
		.heads = int_option(&argc, argv, "--heads", 8, 1, 256),
		.K = int_option(&argc, argv, "--codes", 1024, 2, 1 << 20),
		.cond_dim = int_option(&argc, argv, "--cond-dim", 512, 1, 16384),
		.cond_slots = 1 + int_option(&argc, argv, "--k", 10, 0, 1024),
		.cond_self_attn = int_option(&argc, argv, "--cond-self-attn", 0, 0, 1),
		.T = int_option(&argc, argv, "--T", 100, 2, 100000),
	};
	cfg.h = cfg.w = int_option(&argc, argv, "--grid", 16, 1, 1024);
	cfg.mlp_hidden = 4 * cfg.width;
	int train_batch = int_option(&argc, argv, "--train-batch", 8, 1, 4096);
	int steps = int_option(&argc, argv, "--steps", 100, 1, 100000);
	int sample_runs = int_option(&argc, argv, "--sample-runs", 1, 1, 1000);
	const char *trunc_arg = bench_take_option(&argc, argv, "--truncation");
	float truncation = trunc_arg ? strtof(trunc_arg, NULL) : 0.86f;
	if (!(truncation > 0 && truncation <= 1))
		usage_error("--truncation must be in (0, 1]");
	static const char *const cases[] = { "train", "sample", NULL };
	struct bench_options o = { .runs = 3, .warmup = 1 };
	bench_parse_options(argc, argv, "diffuse_bench", help, cases, &o);
	if (check_dir && !model_path)
		usage_error("--check needs --model (the weights the check data was made with)");
	if (dtx_config_check(&cfg) < 0)
		die("%s", error_message());
	if (steps > cfg.T)
		steps = cfg.T;

	struct dtx m;
	dtx_init(&m, &cfg, 1);
	if (model_path)
		load_weights(&m, model_path);
	else
		dtx_init_random(&m, 20240707);
	struct md_schedule s;
	if (md_schedule_init(&s, cfg.T, cfg.K) < 0)
		die("%s", error_message());

	int threads = omp_get_max_threads();
	double peak = bench_sgemm_peak();
	printf("# backend %s, %d threads; sgemm peak %.1f GFLOP/s (2048^3 cblas_sgemm)\n", nn->name, threads, peak);
	printf("peak %.3f %d\n", peak, threads);
	size_t nparams = 0;
	for (int i = 0; i < m.params.n; i++)
		nparams += m.params.items[i].numel;
	int L = cfg.h * cfg.w, S = cfg.cond_slots;
	printf("# model: %d blocks, width %d, %d heads, %dx%d tokens, %d codes, %d condition slots of %d, T %d, "
	       "%.1f M parameters; forward %.2f GFLOP per image\n", cfg.depth, cfg.width, cfg.heads, cfg.h, cfg.w,
	       cfg.K, S, cfg.cond_dim, cfg.T, nparams / 1e6, dtx_gflop(&cfg, 1));
	if (check_dir)
		check_against_torch(&m, &s, check_dir);

	struct nn_optim_config oc = nn_optim_defaults();
	oc.lr = 1e-4f;
	struct nn_optim opt;
	if (nn_optim_init(&opt, &m.params, &oc) < 0)
		die("%s", error_message());
	struct nn_arena arena = {0};
	const int sample_batches[2] = { 1, 8 };
	for (int ci = 0; ci < 3; ci++) {
		int train = ci == 0, B = train ? train_batch : sample_batches[ci - 1];
		const char *name = train ? "train" : "sample";
		if (o.only && strcmp(o.only, name))
			continue;
		size_t ntok = (size_t)B * L, nlog = (size_t)B * (cfg.K + 1) * L, nlogits = (size_t)B * cfg.K * L;
		struct bench_case c = {
			.m = &m, .s = &s, .a = &arena, .B = B, .S = S, .L = L,
			.truncation = truncation, .opt = &opt,
			.loss = { .aux_weight = 5e-4f, .adaptive_aux = 1, .mask_weight = {1, 1} },
			.seed = train ? TRAIN_SEED : SAMPLE_SEED,
		};
		int32_t *x0 = xmalloc(ntok * sizeof *x0);
		c.x0 = x0;
		c.x = xmalloc(ntok * sizeof *c.x);
		c.t = xmalloc(B * sizeof *c.t);
		for (size_t i = 0; i < ntok; i++)
			x0[i] = (int32_t)(bench_random() % (uint32_t)cfg.K);
		for (int b = 0; b < B; b++)
			c.t[b] = (int32_t)(bench_random() % (uint32_t)cfg.T);
		float *cond = random_cond(B, S, cfg.cond_dim);
		c.cond = cond;
		c.log_x = xmalloc(nlog * sizeof(float));
		c.log_p = xmalloc(nlog * sizeof(float));
		c.uniform = xmalloc(nlog * sizeof(float));
		c.recon = xmalloc(nlog * sizeof(float));
		c.logits = xmalloc(nlogits * sizeof(float));
		c.dlogits = xmalloc(nlogits * sizeof(float));

		/* A chain's warm-up is one reverse step: it grows the arena and
		 * pages the weights in as well as a whole chain would. */
		void (*run)(void *) = train ? train_step : sample_chain;
		int runs = train ? o.runs : sample_runs;
		c.steps = 1;
		for (int i = 0; i < o.warmup; i++)
			run(&c);
		memset(c.phase_s, 0, sizeof c.phase_s);
		c.steps = train ? 1 : steps;
		double gflop = (train ? 3 : c.steps) * dtx_gflop(&cfg, B), best;
		double median = bench_time_ms(run, &c, 0, runs, &best);
		double rate = gflop / (best / 1e3);
		if (train)
			printf("# train batch %d: best %10.1f ms, median %10.1f ms per step: %.3f steps/s, "
			       "%.1f GFLOP/s (%.1f%% of peak)\n", B, best, median, 1e3 / best, rate, 100 * rate / peak);
		else
			printf("# sample batch %d: best %10.1f ms, median %10.1f ms per %d steps: %.3f s per image "
			       "(%.3f s per image per 100 steps), %.1f GFLOP/s (%.1f%% of peak)\n", B, best, median,
			       c.steps, best / 1e3 / B, best / 1e3 / B * 100 / c.steps, rate, 100 * rate / peak);
		printf("result %s %d %d %.3f %.3f %d %.4f\n", name, B, threads, best, median, c.steps, gflop);
		print_phases(&c, runs);
		fflush(stdout);
		if (o.breakdown) {
			bench_ops_timing_on(op_rows);
			double t0 = bench_now();
			for (int i = 0; i < runs; i++)
				run(&c);
			double pass_ms = 1e3 * (bench_now() - t0) / runs;
			bench_ops_timing_off();
			print_breakdown(name, B, runs, pass_ms, peak);
		}
		free(x0);
		free(c.x);
		free(c.t);
		free(cond);
		free(c.log_x);
		free(c.log_p);
		free(c.uniform);
		free(c.recon);
		free(c.logits);
		free(c.dlogits);
	}
	nn_arena_free(&arena);
	nn_optim_free(&opt);
	md_schedule_free(&s);
	dtx_free(&m);
	return EXIT_OK;
}
