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
#include "common/op_timing.h"
#include "nn/ops.h"

static const char help[] =
	"Usage: clip_towers [-r RUNS] [-w WARMUP] [--only vision|text|text77] [--breakdown]\n"
	"Time CLIP ViT-B/32's image and text towers (random weights) at batch 1 and 32.\n"
	"  -r, --runs N      timed runs of each case (default 5); best and median are reported\n"
	"  -w, --warmup N    untimed runs first (default 1)\n"
	"      --only NAME   one case: vision, text or text77\n"
	"  -b, --breakdown   also print the time of every op, per case\n"
	"Example: OMP_NUM_THREADS=2 clip_towers --breakdown\n";

/* ---- per-op timing (--breakdown) ---- */

static const struct bench_op_row op_rows[] = {
	{ "linear_forward", "linear_forward" },
	{ "attention_forward", "attention_forward" },
	{ "layernorm_forward", "layernorm_forward" },
	{ "act_forward", "act_forward" },
	{ "add", "add" },
	{ "scale (copy)", "scale" },
	{ "embedding_forward", "embedding_forward" },
	{ NULL },
};

static void print_breakdown(const char *name, int batch, int runs, double case_ms, double peak)
{
	printf("# breakdown %s batch %d (per run; ops sum to %.2f ms of %.2f ms):\n", name, batch,
	       1e3 * bench_ops_seconds() / runs, case_ms);
	static const struct bench_op_table_layout layout = {
		.name_width = 20, .calls_width = 6, .rate_width = 9, .ms_decimals = 2, .share_of_pass = 0,
	};
	bench_print_op_table(runs, case_ms, peak, &layout);
}

/* ---- the model and its inputs ---- */

static const struct clip_config vit_b32 = {
	.naming = CLIP_NAMING_OPENAI,
	.vision = { .width = 768, .layers = 12, .heads = 12, .mlp_dim = 3072, .act = NN_QUICK_GELU, .ln_eps = 1e-5f },
	.text = { .width = 512, .layers = 12, .heads = 8, .mlp_dim = 2048, .act = NN_QUICK_GELU, .ln_eps = 1e-5f },
	.patch = 32, .grid = 7, .resolution = 224, .context = 77, .vocab = 49408, .embed_dim = 512,
};

static void random_weights(struct clip_model *m)
{
	bench_random_params(&m->params);
	nn_param_init_const(&m->params, m->logit_scale, 4.6052f);
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
		int len = full && b == B - 1 ? ctx - 2 : 8 + (int)(bench_random() % 17);
		row[0] = 49406;
		for (int i = 1; i <= len; i++)
			row[i] = 1 + (int32_t)(bench_random() % 49000);
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
		if (o.only && strcmp(o.only, names[k]))
			continue;
		for (int bi = 0; bi < 2; bi++) {
			int B = batches[bi];
			struct bench_case bc = { .name = names[k], .batch = B, .m = &m };
			bc.features = xmalloc((size_t)B * E * sizeof *bc.features);
			if (k == 0) {
				size_t n = (size_t)B * 3 * R * R;
				bc.pixels = xmalloc(n * sizeof *bc.pixels);
				for (size_t i = 0; i < n; i++)
					bc.pixels[i] = (float)(bench_random() % 4096) / 2048.0f - 1.0f;
				bc.positions = vit_b32.grid * vit_b32.grid + 1;
				bc.gflop = tower_gflop(&vit_b32.vision, B, bc.positions) +
				           2.0 * B * (bc.positions - 1) * 3 * 32 * 32 * vit_b32.vision.width / 1e9 +
				           2.0 * B * vit_b32.vision.width * E / 1e9;
			} else {
				bc.ids = xmalloc((size_t)B * vit_b32.context * sizeof *bc.ids);
				bc.positions = make_texts(bc.ids, B, k == 2);
				bc.gflop = tower_gflop(&vit_b32.text, B, bc.positions) + 2.0 * B * vit_b32.text.width * E / 1e9;
			}
			double best, median = bench_time_ms(run_case, &bc, o.warmup, o.runs, &best);
			const char *unit = k == 0 ? "images" : "texts";
			printf("# %-6s batch %2d: best %8.2f ms, median %8.2f ms: %7.2f %s/s, %6.1f GFLOP/s (%4.1f%% of peak), "
			       "%d positions\n", names[k], B, best, median, 1e3 * B / best, unit, bc.gflop / best * 1e3,
			       100 * bc.gflop / best * 1e3 / peak, bc.positions);
			printf("result %s %d %.3f %.3f %.4f %d\n", names[k], B, best, median, bc.gflop, bc.positions);
			fflush(stdout);
			if (o.breakdown) {
				bench_ops_timing_on(op_rows);
				for (int i = 0; i < o.runs; i++)
					run_case(&bc);
				bench_ops_timing_off();
				print_breakdown(names[k], B, o.runs, median, peak);
			}
			free(bc.features);
			free(bc.pixels);
			free(bc.ids);
		}
	}
	clip_model_free(&m);
	return 0;
}
