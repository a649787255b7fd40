/* clip_towers: times CLIP's two towers (lib/clip) at ViT-B/32's shapes with
 * random weights: images/s and texts/s at batch 1 and 32.
 *
 *   vision  width 768, 12 layers, 12 heads, patch 32, 224 px (50 tokens)
 *   text    width 512, 12 layers, 8 heads, context 77, vocabulary 49408
 *   embed   512
 *
 * The texts are caption-like: SOT, 8 to 24 random tokens, EOT, padding, so
 * a batch's last EOT is at most at position 25 and the text tower runs 26
 * positions of 77 (clip_encode_text skips the rest, which the causal mask
 * keeps from reaching the pooled rows). A second text case, "text77", puts
 * one text of the full context in each batch, so every position is
 * computed: the tower's speed without that skip.
 *
 * Output: readable lines starting with "#", and for bench/clip_towers.sh
 *   result TOWER BATCH BEST_MS MEDIAN_MS GFLOP POSITIONS
 *   peak GFLOPS THREADS
 * where GFLOP counts the matrix products of one batch as computed (text at
 * POSITIONS positions; the last block for the pooled rows only, see
 * clip_model.h). With --breakdown it also prints where the time of
 * each case goes, per op.
 *
 * Built by `make bench` into build/release/bench/clip_towers; threads from
 * OMP_NUM_THREADS as usual. */
#include <cblas.h>
#include <getopt.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/clip_model.h"
#include "core/tool.h"
#include "common/bench_util.h"
#include "nn/ops.h"

static const char help[] =
	"Usage: clip_towers [-r RUNS] [-w WARMUP] [--only vision|text|text77] [--breakdown]\n"
	"Time CLIP ViT-B/32's image and text towers (random weights) at batch 1 and 32.\n"
	"  -r, --runs N      timed runs of each case (default 5); best and median are reported\n"
	"  -w, --warmup N    untimed runs first (default 1)\n"
	"      --only NAME   one case: vision, text or text77\n"
	"  -b, --breakdown   also print the time of every op, per case\n"
	"Example: OMP_NUM_THREADS=2 clip_towers --breakdown\n";

/* ---- per-op timing through a copy of the op table ---- */

enum op_id { OP_LINEAR, OP_ATTENTION, OP_LAYERNORM, OP_ACT, OP_ADD, OP_COPY, OP_EMBEDDING, OP_COUNT };
static const char *const op_names[OP_COUNT] = {
	"linear_forward", "attention_forward", "layernorm_forward", "act_forward", "add", "scale (copy)",
	"embedding_forward",
};
static const struct nn_ops *real;
static struct nn_ops timed;
static double op_seconds[OP_COUNT], op_flops[OP_COUNT];
static long op_calls[OP_COUNT];

#define TIME_OP(id, flops, call) do { \
		double t0_ = bench_now(); \
		call; \
		real->sync(); \
		op_seconds[id] += bench_now() - t0_; \
		op_flops[id] += (flops); \
		op_calls[id]++; \
	} while (0)

static void t_linear(float *out, const float *inp, const float *w, const float *b, int N, int IN, int OUT)
{
	TIME_OP(OP_LINEAR, 2.0 * N * IN * OUT, real->linear_forward(out, inp, w, b, N, IN, OUT));
}

static void t_attention(float *out, float *lse, const float *q, const float *k, const float *v,
                        const struct nn_attention *a)
{
	TIME_OP(OP_ATTENTION, 4.0 * a->B * a->H * a->Tq * a->Tk * a->D,
	        real->attention_forward(out, lse, q, k, v, a));
}

static void t_layernorm(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                        int N, int C, float eps)
{
	TIME_OP(OP_LAYERNORM, 0, real->layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps));
}

static void t_act(float *out, const float *inp, size_t n, enum nn_act act)
{
	TIME_OP(OP_ACT, 0, real->act_forward(out, inp, n, act));
}

static void t_add(float *out, const float *a, const float *b, size_t n)
{
	TIME_OP(OP_ADD, 0, real->add(out, a, b, n));
}

static void t_scale(float *out, const float *x, float s, size_t n)
{
	TIME_OP(OP_COPY, 0, real->scale(out, x, s, n));
}

static void t_embedding(float *out, const int32_t *ids, const float *table, int N, int C)
{
	TIME_OP(OP_EMBEDDING, 0, real->embedding_forward(out, ids, table, N, C));
}

static void timing_on(void)
{
	real = nn;
	timed = *nn;
	timed.linear_forward = t_linear;
	timed.attention_forward = t_attention;
	timed.layernorm_forward = t_layernorm;
	timed.act_forward = t_act;
	timed.add = t_add;
	timed.scale = t_scale;
	timed.embedding_forward = t_embedding;
	memset(op_seconds, 0, sizeof op_seconds);
	memset(op_flops, 0, sizeof op_flops);
	memset(op_calls, 0, sizeof op_calls);
	nn = &timed;
}

static void timing_off(void) { nn = real; }

static void print_breakdown(const char *name, int batch, int runs, double case_ms, double peak)
{
	double total = 0;
	for (int i = 0; i < OP_COUNT; i++)
		total += op_seconds[i];
	printf("# breakdown %s batch %d (per run; ops sum to %.2f ms of %.2f ms):\n", name, batch,
	       1e3 * total / runs, case_ms);
	printf("#   %-20s %6s %9s %6s %9s %6s\n", "op", "calls", "ms", "share", "GFLOP/s", "peak");
	for (int i = 0; i < OP_COUNT; i++) {
		if (!op_calls[i])
			continue;
		printf("#   %-20s %6ld %9.2f %5.1f%%", op_names[i], op_calls[i] / runs, 1e3 * op_seconds[i] / runs,
		       100 * op_seconds[i] / total);
		if (op_flops[i] > 0) {
			double gf = op_flops[i] / op_seconds[i] / 1e9;
			printf(" %9.1f %5.1f%%", gf, 100 * gf / peak);
		}
		printf("\n");
	}
}

/* ---- the model and its inputs ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next_random(void)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(rng >> 32);
}

static const struct clip_config vit_b32 = {
	.naming = CLIP_NAMING_OPENAI,
	.vision = { .width = 768, .layers = 12, .heads = 12, .mlp_dim = 3072, .act = NN_QUICK_GELU, .ln_eps = 1e-5f },
	.text = { .width = 512, .layers = 12, .heads = 8, .mlp_dim = 2048, .act = NN_QUICK_GELU, .ln_eps = 1e-5f },
	.patch = 32, .grid = 7, .resolution = 224, .context = 77, .vocab = 49408, .embed_dim = 512,
};

static void random_weights(struct clip_model *m)
{
	struct nn_params *p = &m->params;
	for (int i = 0; i < p->n; i++) {
		const char *name = p->items[i].name;
		size_t len = strlen(name);
		if (p->items[i].ndim == 1 && len > 7 && !strcmp(name + len - 7, ".weight"))
			nn_param_init_const(p, i, 1.0f); /* layer norm scales */
		else
			nn_param_init_normal(p, i, 0.02f, (uint64_t)i);
	}
	nn_param_init_const(p, m->logit_scale, 4.6052f);
}

/* Caption-like token ids: SOT, 8..24 tokens, EOT, zeros. With `full`, the
 * last text of the batch fills the context. Returns the positions the
 * tower computes (the last EOT + 1). */
static int make_texts(int32_t *ids, int B, int full)
{
	int ctx = vit_b32.context, T = 0;
	memset(ids, 0, (size_t)B * ctx * sizeof *ids);
	for (int b = 0; b < B; b++) {
		int32_t *row = ids + (size_t)b * ctx;
		int len = full && b == B - 1 ? ctx - 2 : 8 + (int)(next_random() % 17);
		row[0] = 49406;
		for (int i = 1; i <= len; i++)
			row[i] = 1 + (int32_t)(next_random() % 49000);
		row[len + 1] = 49407;
		if (len + 2 > T)
			T = len + 2;
	}
	return T;
}

/* Matrix-product FLOPs of one tower over B sequences of T positions, as
 * clip_model computes them: every block on all positions but the last,
 * which computes keys and values for all and the rest for one row per
 * sequence. */
static double tower_gflop(const struct clip_tower_config *t, int B, int T)
{
	double N = (double)B * T, W = t->width, M = t->mlp_dim;
	double full = 2 * N * W * W * 4 + 2 * N * W * M * 2 + 4.0 * B * T * T * W;
	double last = 2 * N * W * W * 2 + 2.0 * B * W * W * 2 + 2.0 * B * W * M * 2 + 4.0 * B * T * W;
	return (full * (t->layers - 1) + last) / 1e9;
}

struct bench_case {
	const char *name;
	int batch, positions;
	double gflop;
	struct clip_model *m;
	float *pixels, *features;
	int32_t *ids;
};

static void run_case(void *ctx)
{
	struct bench_case *c = ctx;
	if (c->pixels)
		clip_encode_image(c->m, c->pixels, c->batch, c->features, NULL);
	else if (clip_encode_text(c->m, c->ids, c->batch, c->features, NULL) < 0)
		die("%s", error_message());
}

int main(int argc, char **argv)
{
	static const char *const cases[] = { "vision", "text", "text77", NULL };
	struct bench_options o = { .runs = 5, .warmup = 1 };
	bench_parse_options(argc, argv, "clip_towers", help, cases, &o);
	int runs = o.runs, warmup = o.warmup, breakdown = o.breakdown;
	const char *only = o.only;

	double peak = bench_sgemm_peak();
	int threads = omp_get_max_threads();
	printf("# sgemm peak: %.1f GFLOP/s (2048^3 cblas_sgemm on %d threads)\n", peak, threads);
	printf("peak %.3f %d\n", peak, threads);

	struct clip_model m;
	clip_model_init(&m, &vit_b32);
	random_weights(&m);

	const int batches[2] = { 1, 32 };
	const char *names[3] = { "vision", "text", "text77" };
	int R = vit_b32.resolution, E = vit_b32.embed_dim;
	for (int k = 0; k < 3; k++) {
		if (only && strcmp(only, names[k]))
			continue;
		for (int bi = 0; bi < 2; bi++) {
			int B = batches[bi];
			struct bench_case bc = { .name = names[k], .batch = B, .m = &m };
			bc.features = xmalloc((size_t)B * E * sizeof *bc.features);
			if (k == 0) {
				size_t n = (size_t)B * 3 * R * R;
				bc.pixels = xmalloc(n * sizeof *bc.pixels);
				for (size_t i = 0; i < n; i++)
					bc.pixels[i] = (float)(next_random() % 4096) / 2048.0f - 1.0f;
				bc.positions = vit_b32.grid * vit_b32.grid + 1;
				bc.gflop = tower_gflop(&vit_b32.vision, B, bc.positions) +
				           2.0 * B * (bc.positions - 1) * 3 * 32 * 32 * vit_b32.vision.width / 1e9 +
				           2.0 * B * vit_b32.vision.width * E / 1e9;
			} else {
				bc.ids = xmalloc((size_t)B * vit_b32.context * sizeof *bc.ids);
				bc.positions = make_texts(bc.ids, B, k == 2);
				bc.gflop = tower_gflop(&vit_b32.text, B, bc.positions) + 2.0 * B * vit_b32.text.width * E / 1e9;
			}
			double best, median = bench_time_ms(run_case, &bc, warmup, runs, &best);
			const char *unit = k == 0 ? "images" : "texts";
			printf("# %-6s batch %2d: best %8.2f ms, median %8.2f ms: %7.2f %s/s, %6.1f GFLOP/s (%4.1f%% of peak), "
			       "%d positions\n", names[k], B, best, median, 1e3 * B / best, unit, bc.gflop / best * 1e3,
			       100 * bc.gflop / best * 1e3 / peak, bc.positions);
			printf("result %s %d %.3f %.3f %.4f %d\n", names[k], B, best, median, bc.gflop, bc.positions);
			fflush(stdout);
			if (breakdown) {
				timing_on();
				for (int i = 0; i < runs; i++)
					run_case(&bc);
				timing_off();
				print_breakdown(names[k], B, runs, median, peak);
			}
			free(bc.features);
			free(bc.pixels);
			free(bc.ids);
		}
	}
	clip_model_free(&m);
	return 0;
}
