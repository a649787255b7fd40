/* vq_codec: times the VQGAN tokenizer (lib/vqgan) encoding images to tokens
 * and decoding tokens to images, at batch 1 and 16, for the mid-size config
 * of bench/vq_codec.sh (64x64 RGB, ch_mult 1,2,2,4 so f = 8, two residual
 * blocks per level, attention at 8x8, 512 codes).
 *
 * --model loads the weights through vqgan_load, as vq-encode does: those
 * that bench/vq_codec_torch.py --write made, so that PyTorch runs the same
 * model. --check DIR then encodes that script's 16 check images and decodes
 * its tokens, and compares both with what PyTorch gave. Without --model the
 * weights are vqgan_init_random's (ch and z from --ch, --z; no PyTorch).
 *
 * Output: readable lines starting with "#", and for bench/vq_codec.sh
 *   result PASS BATCH THREADS BEST_MS MEDIAN_MS GFLOP
 *   peak GFLOPS THREADS
 *   check TOKENS_AGREE TOKENS MAX_DECODE_DIFF
 * where GFLOP counts one batch's convolutions, attention products and
 * nearest-code distances (vq_gflop). With --breakdown it also times every
 * op a pass calls, through a copy of the op table whose entries time the
 * real ones, with each convolution shape on its own row.
 *
 * Built by `make bench` into build/release/bench/vq_codec; threads from
 * OMP_NUM_THREADS as usual. */
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
#include "nn/ops.h"
#include "vqgan/vqgan.h"

static const char help[] =
	"Usage: vq_codec [--model PATH [--check DIR]] [--ch N] [--z N] [-r RUNS] [-w WARMUP]\n"
	"                [--only encode|decode] [--breakdown]\n"
	"Time the VQGAN tokenizer's encode (image -> tokens) and decode (tokens -> image)\n"
	"at batch 1 and 16 on 64x64 RGB images.\n"
	"  --model PATH      weights (safetensors, taming names) from vq_codec_torch.py --write;\n"
	"                    default: random weights of the mid-size config\n"
	"  --check DIR       compare tokens and decoded images with PyTorch's (DIR from --write)\n"
	"  --ch N, --z N     without --model: base channels (64) and z/embed channels (64)\n"
	"  -r, --runs N      timed runs of each case (default 3); best and median are reported\n"
	"  -w, --warmup N    untimed runs first (default 1)\n"
	"      --only NAME   one pass: encode or decode\n"
	"  -b, --breakdown   also print the time of every op, per case\n"
	"Example: OMP_NUM_THREADS=2 vq_codec --model /tmp/vq/model.safetensors --check /tmp/vq\n";

enum { SIZE = 64, CHECK_IMAGES = 16 };

/* ---- FLOPs of a pass, from the architecture ---- */

static double conv_flop(int B, int IC, int OC, int OH, int OW, int k)
{
	return 2.0 * B * OC * OH * OW * IC * k * k;
}

/* GroupNorm, 1x1 q, k, v, proj_out, and the two products over HW positions. */
static double attn_flop(int B, int C, int HW)
{
	return 4 * conv_flop(B, C, C, HW, 1, 1) + 4.0 * B * HW * HW * C;
}

static double resblock_flop(int B, int cin, int cout, int H)
{
	return conv_flop(B, cin, cout, H, H, 3) + conv_flop(B, cout, cout, H, H, 3) +
	       (cin != cout ? conv_flop(B, cin, cout, H, H, 1) : 0);
}

/* The matrix-product FLOPs of encoding (to tokens) or decoding (from
 * tokens) B square images of side S, as taming's Encoder and Decoder
 * compute them. */
static double vq_gflop(const struct vqgan_config *c, int B, int S, int encode)
{
	int L = c->levels, nrb = c->num_res_blocks, H = S, h = S / vqgan_factor(c);
	double f = 0;
	int cin = c->ch * c->ch_mult[L - 1];
	double mid = 2 * resblock_flop(B, cin, cin, h) + attn_flop(B, cin, h * h);
	if (encode) {
		f += conv_flop(B, c->in_channels, c->ch, H, H, 3);
		cin = c->ch;
		for (int i = 0; i < L; i++) {
			int cout = c->ch * c->ch_mult[i];
			for (int j = 0; j < nrb; j++, cin = cout)
				f += resblock_flop(B, cin, cout, H) + (c->attn[i] ? attn_flop(B, cout, H * H) : 0);
			if (i < L - 1) {
				H /= 2;
				f += conv_flop(B, cin, cin, H, H, 3);
			}
		}
		f += mid + conv_flop(B, cin, c->z_channels, h, h, 3) + conv_flop(B, c->z_channels, c->embed_dim, h, h, 1);
		f += 2.0 * B * h * h * c->n_embed * c->embed_dim; /* distances to every code */
	} else {
		H = h;
		f += conv_flop(B, c->embed_dim, c->z_channels, h, h, 1) + conv_flop(B, c->z_channels, cin, h, h, 3) + mid;
		for (int i = L - 1; i >= 0; i--) {
			int cout = c->ch * c->ch_mult[i];
			for (int j = 0; j <= nrb; j++, cin = cout)
				f += resblock_flop(B, cin, cout, H) + (c->attn[i] ? attn_flop(B, cout, H * H) : 0);
			if (i > 0) {
				H *= 2;
				f += conv_flop(B, cin, cin, H, H, 3);
			}
		}
		f += conv_flop(B, cin, c->out_ch, H, H, 3);
	}
	return f / 1e9;
}

/* ---- per-op timing (--breakdown) ---- */

static const struct bench_op_row op_rows[] = {
	{ "conv2d_forward", "conv2d_forward" },
	{ "groupnorm_forward", "groupnorm_forward" },
	{ "act_forward", "act_forward" },
	{ "attention_forward", "attention_forward" },
	{ "gemm", "gemm" },
	{ "linear_forward", "linear_forward" },
	{ "softmax_forward", "softmax_forward" },
	{ "upsample_forward", "upsample_forward" },
	{ "embedding_forward", "embedding_forward" },
	{ "add, accumulate, scale", "add accumulate scale" },
	{ "zero, upload, download", "zero upload download" },
	{ NULL },
};

/* Ops by total time, then every convolution shape by time; pass_ms is the
 * mean time of the same timed passes. What the ops do not cover (the
 * quantiser's argmin, the model's own loops, the timing itself) is the
 * difference, shown as "outside the ops". */
static void print_breakdown(const char *pass, int batch, int runs, double pass_ms, double peak)
{
	printf("# breakdown %s batch %d (per run; ops sum to %.2f ms of the pass's %.2f ms):\n", pass, batch,
	       1e3 * bench_ops_seconds() / runs, pass_ms);
	static const struct bench_op_table_layout layout = {
		.name_width = 38, .calls_width = 6, .rate_width = 8, .ms_decimals = 2, .share_of_pass = 1,
	};
	bench_print_op_table(runs, pass_ms, peak, &layout);
	bench_print_conv_shapes(runs, pass_ms, peak);
}

/* ---- inputs and the check against PyTorch ---- */

/* Our tokens for PyTorch's check images, and our decoding of PyTorch's
 * tokens against PyTorch's. */
static void check_against_torch(struct vqgan *m, const char *dir)
{
	int B = CHECK_IMAGES, S = m->cfg.resolution, C = m->cfg.in_channels, h = S / vqgan_factor(&m->cfg);
	size_t npix = (size_t)B * C * S * S, ntok = (size_t)B * h * h, nout = (size_t)B * m->cfg.out_ch * S * S;
	float *images = xmalloc(npix * sizeof *images), *theirs = xmalloc(nout * sizeof *theirs);
	float *ours = xmalloc(nout * sizeof *ours);
	int32_t *their_tokens = xmalloc(ntok * sizeof *their_tokens), *our_tokens = xmalloc(ntok * sizeof *our_tokens);
	bench_read_raw(dir, "check_images.f32", images, npix * sizeof *images);
	bench_read_raw(dir, "check_tokens.i32", their_tokens, ntok * sizeof *their_tokens);
	bench_read_raw(dir, "check_decoded.f32", theirs, nout * sizeof *theirs);
	if (vqgan_encode(m, images, B, S, S, our_tokens, NULL) < 0 ||
	    vqgan_decode(m, their_tokens, B, h, h, ours) < 0)
		die("%s", error_message());
	size_t agree = 0;
	for (size_t i = 0; i < ntok; i++)
		agree += our_tokens[i] == their_tokens[i];
	double max_diff = 0;
	for (size_t i = 0; i < nout; i++)
		max_diff = fmax(max_diff, fabs((double)ours[i] - theirs[i]));
	printf("# check: tokens of PyTorch's %d random images agree on %zu of %zu (%.2f%%); decoding its tokens: "
	       "max |ours - torch| %.2e\n", B, agree, ntok, 100.0 * agree / ntok, max_diff);
	printf("check %zu %zu %.3e\n", agree, ntok, max_diff);
	free(images);
	free(theirs);
	free(ours);
	free(their_tokens);
	free(our_tokens);
}

/* ---- the model ---- */

static void random_model(struct vqgan *m, int ch, int z)
{
	struct vqgan_config c = {
		.in_channels = 3, .out_ch = 3, .ch = ch, .levels = 4, .ch_mult = {1, 2, 2, 4}, .attn = {0, 0, 0, 1},
		.num_res_blocks = 2, .z_channels = z, .embed_dim = z, .n_embed = 512, .resolution = SIZE, .beta = 0.25f,
	};
	vqgan_init(m, &c, 0);
	vqgan_init_random(m, 20240611);
}

struct vq_case {
	struct vqgan *m;
	int encode, batch, S, h;
	float *images;
	int32_t *tokens;
};

static void run_case(void *ctx)
{
	struct vq_case *c = ctx;
	int rc = c->encode ? vqgan_encode(c->m, c->images, c->batch, c->S, c->S, c->tokens, NULL)
	                   : vqgan_decode(c->m, c->tokens, c->batch, c->h, c->h, c->images);
	if (rc < 0)
		die("%s", error_message());
}

int main(int argc, char **argv)
{
	tool_init("vq_codec", argc, argv, help);
	const char *model_path = bench_take_option(&argc, argv, "--model");
	const char *check_dir = bench_take_option(&argc, argv, "--check");
	const char *ch_arg = bench_take_option(&argc, argv, "--ch"), *z_arg = bench_take_option(&argc, argv, "--z");
	static const char *const cases[] = { "encode", "decode", NULL };
	struct bench_options o = { .runs = 3, .warmup = 1 };
	bench_parse_options(argc, argv, "vq_codec", help, cases, &o);
	if (check_dir && !model_path)
		usage_error("--check needs --model (the weights the check data was made with)");

	struct vqgan m;
	if (model_path) {
		if (vqgan_load(&m, model_path, NULL, 0) < 0)
			die("%s", error_message());
	} else {
		random_model(&m, ch_arg ? (int)parse_int_option("--ch", ch_arg, 32, 1024) : 64,
		             z_arg ? (int)parse_int_option("--z", z_arg, 1, 4096) : 64);
	}
	int threads = omp_get_max_threads();
	double peak = bench_sgemm_peak();
	printf("# backend %s, %d threads; sgemm peak %.1f GFLOP/s (2048^3 cblas_sgemm)\n", nn->name, threads, peak);
	printf("peak %.3f %d\n", peak, threads);

	const struct vqgan_config *c = &m.cfg;
	size_t nparams = 0;
	for (int i = 0; i < m.params.n; i++)
		nparams += m.params.items[i].numel;
	int S = c->resolution > 0 ? c->resolution : SIZE, h = S / vqgan_factor(c);
	printf("# model: ch %d, ch_mult", c->ch);
	for (int i = 0; i < c->levels; i++)
		printf("%s%d", i ? "," : " ", c->ch_mult[i]);
	printf(", %d res blocks, z %d, embed %d, %d codes, %dx%d images -> %dx%d tokens, %.1f M parameters\n",
	       c->num_res_blocks, c->z_channels, c->embed_dim, c->n_embed, S, S, h, h,
	       nparams / 1e6);
	if (check_dir)
		check_against_torch(&m, check_dir);

	const int batches[2] = { 1, 16 };
	for (int encode = 1; encode >= 0; encode--) {
		const char *pass = encode ? "encode" : "decode";
		if (o.only && strcmp(o.only, pass))
			continue;
		for (int bi = 0; bi < 2; bi++) {
			int B = batches[bi];
			struct vq_case vc = { .m = &m, .encode = encode, .batch = B, .S = S, .h = h };
			size_t npix = (size_t)B * 3 * S * S, ntok = (size_t)B * h * h;
			vc.images = xmalloc(npix * sizeof *vc.images);
			vc.tokens = xmalloc(ntok * sizeof *vc.tokens);
			for (size_t i = 0; i < npix; i++)
				vc.images[i] = (float)(bench_random() % 4096) / 2048.0f - 1.0f;
			for (size_t i = 0; i < ntok; i++)
				vc.tokens[i] = (int32_t)(bench_random() % (uint32_t)c->n_embed);
			double gflop = vq_gflop(c, B, S, encode), best;
			double median = bench_time_ms(run_case, &vc, o.warmup, o.runs, &best);
			double rate = gflop / (best / 1e3);
			printf("# %s batch %2d: best %9.2f ms, median %9.2f ms: %8.2f images/s, %6.1f GFLOP/s (%4.1f%% of peak)\n",
			       pass, B, best, median, 1e3 * B / best, rate, 100 * rate / peak);
			printf("result %s %d %d %.3f %.3f %.4f\n", pass, B, threads, best, median, gflop);
			fflush(stdout);
			if (o.breakdown) {
				bench_ops_timing_on(op_rows);
				double t0 = bench_now();
				for (int i = 0; i < o.runs; i++)
					run_case(&vc);
				double pass_ms = 1e3 * (bench_now() - t0) / o.runs;
				bench_ops_timing_off();
				print_breakdown(pass, B, o.runs, pass_ms, peak);
			}
			free(vc.images);
			free(vc.tokens);
		}
	}
	vqgan_free(&m);
	return EXIT_OK;
}
