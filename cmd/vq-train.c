/* vq-train: trains a VQGAN image tokenizer on image records. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tool.h"
#include "image/image_set.h"
#include "nn/optim.h"
#include "nn/checkpoint.h"
#include "nn/ops.h"
#include "nn/philox.h"
#include "nn/train_options.h"
#include "stream/record_cycle.h"
#include "stream/stream.h"
#include "vqgan/vqgan.h"
#include "vqgan/vqgan_io.h"
#include "vqgan/vqgan_train.h"

static const char help[] =
	"Usage: vq-train --out MODEL.safetensors [OPTION...] [FILE...]\n"
	"Trains a VQGAN image tokenizer (taming-transformers' VQModel) on image records\n"
	"(stdin by default, or files, which are read over and over).\n"
	"\n"
	"Each record's 'image' (uint8 [H,W,C]; gray is replicated to RGB, alpha is\n"
	"composited onto white) is an example. All images must be square and of one\n"
	"size, or give --resize. Files are re-read in turn for as long as training\n"
	"runs, through a shuffle buffer; stdin is read to its end first and spooled\n"
	"to a temporary file under $TMPDIR, which is re-read the same way. Memory is\n"
	"bounded by --buffer and --batch, whatever the data's size.\n"
	"\n"
	"The weights go to MODEL.safetensors (taming's names, F32, the config as taming\n"
	"JSON in the metadata: vq-encode and vq-decode load it like any converted\n"
	"taming checkpoint), the optimiser state to MODEL.state.safetensors and the\n"
	"trainer's own state (codebook statistics, discriminator) to\n"
	"MODEL.train.safetensors. With --resume a run continues from them bit for bit\n"
	"(same options, data and thread count).\n"
	"\n"
	"Model (--resume and --init take the checkpoint's; any given must agree):\n"
	"      --resolution N     training image size (default: the images', or --resize)\n"
	"  -f, --factor F         downsampling factor, a power of 2 (default 8); the\n"
	"                         token grid is (N/F)x(N/F)\n"
	"      --ch-mult LIST     channel multipliers per level, e.g. 1,2,2,4 (instead\n"
	"                         of --factor: F = 2^(levels-1); default by F: 1,2 /\n"
	"                         1,2,4 / 1,2,2,4 / 1,1,2,2,4 ...)\n"
	"      --ch N             base channels, a multiple of 32 (default 64)\n"
	"      --res-blocks N     residual blocks per level (default 2)\n"
	"      --attn LIST        resolutions with attention blocks, e.g. 16,8, or none\n"
	"                         (default: the lowest, N/F)\n"
	"      --embed-dim D      code dimension, also the encoder's z channels\n"
	"                         (default 64)\n"
	"  -k, --codes K          codebook size (default 512)\n"
	"      --channels C       image channels, 3 (RGB) or 1 (gray) (default 3)\n"
	"      --beta B           commitment loss weight (default 0.25)\n"
	"      --init PATH        start from these weights (a VQGAN checkpoint) instead\n"
	"                         of a random initialisation\n"
	"\n"
	"Training:\n"
	"  -o, --out PATH         where the model goes (required)\n"
	"  -b, --batch N          images per step (default 16)\n"
	"  -s, --steps N          optimiser steps in all (default 10000)\n"
	"      --lr LR            peak learning rate of AdamW (betas 0.5, 0.9, as taming)\n"
	"                         (default 2e-4)\n"
	"      --min-lr LR        where the cosine decay ends, at the last step\n"
	"                         (default lr/10)\n"
	"      --warmup N         linear warm-up steps (default steps/20, at most 1000)\n"
	"      --weight-decay W   AdamW weight decay of conv kernels (default 0)\n"
	"      --clip-grad N      clip the gradient's global norm to N (default: off)\n"
	"      --seed S           random seed of the initialisation, data order, flips\n"
	"                         and restarts (default 1)\n"
	"      --l1 W             weight of the L1 reconstruction loss (default 1)\n"
	"      --l2 W             weight of the L2 (squared error) loss (default 1)\n"
	"      --ema-codebook     move codes by exponential moving averages of their\n"
	"                         latents instead of the codebook loss\n"
	"      --ema-decay D      decay of those averages (default 0.99)\n"
	"      --restart-after N  a code no latent chose for N steps is moved onto a\n"
	"                         random latent of the batch (default 200)\n"
	"      --no-restart       never restart dead codes\n"
	"      --disc-start STEP  add a patch discriminator (hinge loss) from this step\n"
	"                         on (default: none)\n"
	"      --disc-weight W    its weight in the autoencoder's loss (default 0.8),\n"
	"                         times taming's adaptive balance unless --disc-fixed\n"
	"      --disc-fixed       use --disc-weight as it is\n"
	"      --disc-ch N        its first layer's channels (default 64)\n"
	"      --disc-layers N    its stride-2 layers (default: up to 3, by resolution)\n"
	"  -r, --resize N         resize every image to NxN (Pillow's bicubic; the aspect\n"
	"                         ratio is not kept)\n"
	"      --flip             flip images left-right at random\n"
	"      --buffer N         records in the shuffle buffer (default 512)\n"
	"      --val FILE         held-out image records: PSNR and codebook use on them\n"
	"                         at every report and at the end\n"
	"      --val-count N      use at most the first N of them (default 256)\n"
	"      --progress-every N report every N steps (default 100; 0: only at the end)\n"
	"      --save-every N     checkpoint every N steps (default 1000; 0: only at the\n"
	"                         end)\n"
	"      --resume           continue the run whose checkpoint is at --out\n"
	"      --stop-after N     stop (with a checkpoint) after N steps of this run\n"
	"  -t, --threads N        CPU threads (default: OpenMP's, all cores); a resumed\n"
	"                         run must use the same number to continue exactly\n"
	"      --backend NAME     cpu (default), cuda or auto\n"
	"  -h, --help             show this help\n"
	"      --version          show the version\n"
	"\n"
	"Reports go to stderr: step, loss parts, reconstruction PSNR (dB, on 8-bit\n"
	"pixels), codebook perplexity and codes used/total over the steps since the\n"
	"last report, the same measures on --val, and speed.\n"
	"\n"
	"Examples:\n"
	"  idx-read train-images-idx3-ubyte.gz | vq-train -o fmnist.safetensors \\\n"
	"      --resize 32 -f 4 --codes 256 --steps 5000 --val val.ts\n"
	"  vq-train -o vqgan.safetensors --resume photos.ts     # after a crash\n";

enum {
	OPT_RESOLUTION = VQGAN_OPT_FIRST_FREE, OPT_CH_MULT, OPT_CH, OPT_RES_BLOCKS, OPT_ATTN, OPT_EMBED_DIM,
	OPT_CHANNELS, OPT_BETA, OPT_INIT, OPT_L1, OPT_L2, OPT_EMA, OPT_EMA_DECAY, OPT_RESTART_AFTER, OPT_NO_RESTART,
	OPT_DISC_START, OPT_DISC_WEIGHT, OPT_DISC_FIXED, OPT_DISC_CH, OPT_DISC_LAYERS, OPT_FLIP,
};

/* Which architecture options the command line set (they must agree with
 * a checkpoint that is resumed or started from). */
enum { ARCH_FACTOR = 1, ARCH_CH_MULT = 2, ARCH_CH = 4, ARCH_BLOCKS = 8, ARCH_ATTN = 16, ARCH_EMBED = 32,
       ARCH_CODES = 64, ARCH_CHANNELS = 128, ARCH_BETA = 256 };

struct options {
	const char *out, *init;
	struct vqgan_tool_options tool; /* batch, threads, backend */
	int resolution, factor, levels, ch_mult[VQGAN_MAX_LEVELS], ch, res_blocks, embed_dim, codes, channels;
	int attn[VQGAN_MAX_LEVELS + 1], nattn; /* resolutions; nattn -1: the default */
	float beta;
	unsigned arch_set;
	int64_t steps;
	struct nn_train_options run; /* its seed goes to train.seed */
	struct vqgan_train_config train;
	int resize;
	bool flip;
	char **inputs;
	int ninputs;
};

/* ---- options ---- */

/* "1,2,2,4" into at most max positive ints; returns the count. */
static int parse_int_list(const char *opt, const char *arg, int *out, int max)
{
	int n = 0;
	const char *p = arg;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char item[32];
		if (n == max || len == 0 || len >= sizeof item)
			usage_error("%s: expected up to %d numbers separated by commas, not '%s'", opt, max, arg);
		memcpy(item, p, len);
		item[len] = 0;
		out[n++] = (int)parse_int_option(opt, item, 1, 1 << 20);
		p += len + (comma != NULL);
	}
	if (n == 0)
		usage_error("%s: expected a list of numbers", opt);
	return n;
}

static float parse_nonneg(const char *opt, const char *arg)
{
	double v = parse_float_option(opt, arg);
	if (!(v >= 0))
		usage_error("%s: must be >= 0, not %s", opt, arg);
	return (float)v;
}

static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		VQGAN_TOOL_LONGOPTS,
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { "out", 1, 0, 'o' }, { "resize", 1, 0, 'r' },
		{ "factor", 1, 0, 'f' }, { "codes", 1, 0, 'k' }, { "steps", 1, 0, 's' },
		{ "resolution", 1, 0, OPT_RESOLUTION }, { "ch-mult", 1, 0, OPT_CH_MULT }, { "ch", 1, 0, OPT_CH },
		{ "res-blocks", 1, 0, OPT_RES_BLOCKS }, { "attn", 1, 0, OPT_ATTN }, { "embed-dim", 1, 0, OPT_EMBED_DIM },
		{ "channels", 1, 0, OPT_CHANNELS }, { "beta", 1, 0, OPT_BETA }, { "init", 1, 0, OPT_INIT },
		{ "l1", 1, 0, OPT_L1 }, { "l2", 1, 0, OPT_L2 }, { "ema-codebook", 0, 0, OPT_EMA },
		{ "ema-decay", 1, 0, OPT_EMA_DECAY }, { "restart-after", 1, 0, OPT_RESTART_AFTER },
		{ "no-restart", 0, 0, OPT_NO_RESTART }, { "disc-start", 1, 0, OPT_DISC_START },
		{ "disc-weight", 1, 0, OPT_DISC_WEIGHT }, { "disc-fixed", 0, 0, OPT_DISC_FIXED },
		{ "disc-ch", 1, 0, OPT_DISC_CH }, { "disc-layers", 1, 0, OPT_DISC_LAYERS }, { "flip", 0, 0, OPT_FLIP },
		NN_TRAIN_LONGOPTS, NN_TRAIN_LONGOPT_CLIP_GRAD, NN_TRAIN_LONGOPT_VAL, NN_TRAIN_LONGOPT_VAL_COUNT,
		{ 0 },
	};
	*o = (struct options){
		.factor = 8, .ch = 64, .res_blocks = 2, .embed_dim = 64, .codes = 512, .channels = 3, .beta = 0.25f,
		.nattn = -1, .steps = 10000, .train = vqgan_train_defaults(),
	};
	vqgan_tool_defaults(&o->tool);
	struct nn_train_options *run = &o->run;
	nn_train_options_defaults(run);
	run->seed = o->train.seed;
	run->progress_every = 100;
	run->save_every = 1000;
	run->buffer = 512;
	run->val_count = 256;
	run->optim.lr = 2e-4f;
	run->optim.beta1 = 0.5f;
	run->optim.beta2 = 0.9f;
	run->optim.weight_decay = 0;
	int c;
	while ((c = getopt_long(argc, argv, "hVo:r:f:k:s:b:t:", opts, NULL)) != -1) {
		if (tool_common_option(c, help) || nn_train_option(c, optarg, run))
			continue;
		if (c == 'b' || c == 't' || c == VQGAN_OPT_BACKEND) {
			vqgan_tool_option(&o->tool, c, optarg);
			continue;
		}
		switch (c) {
		case 'o': o->out = optarg; break;
		case 'r': o->resize = (int)parse_int_option("--resize", optarg, 1, 65535); break;
		case 'f':
			o->factor = (int)parse_int_option("--factor", optarg, 1, 1 << (VQGAN_MAX_LEVELS - 1));
			if (o->factor & (o->factor - 1))
				usage_error("--factor: %d is not a power of 2", o->factor);
			o->arch_set |= ARCH_FACTOR;
			break;
		case 'k': o->codes = (int)parse_int_option("--codes", optarg, 1, 1 << 20); o->arch_set |= ARCH_CODES; break;
		case 's': o->steps = parse_int_option("--steps", optarg, 1, INT64_MAX / 4); break;
		case OPT_RESOLUTION: o->resolution = (int)parse_int_option("--resolution", optarg, 1, 65535); break;
		case OPT_CH_MULT:
			o->levels = parse_int_list("--ch-mult", optarg, o->ch_mult, VQGAN_MAX_LEVELS);
			o->arch_set |= ARCH_CH_MULT;
			break;
		case OPT_CH: o->ch = (int)parse_int_option("--ch", optarg, 1, 1 << 16); o->arch_set |= ARCH_CH; break;
		case OPT_RES_BLOCKS:
			o->res_blocks = (int)parse_int_option("--res-blocks", optarg, 0, 64);
			o->arch_set |= ARCH_BLOCKS;
			break;
		case OPT_ATTN:
			o->nattn = !strcmp(optarg, "none") ? 0 : parse_int_list("--attn", optarg, o->attn, VQGAN_MAX_LEVELS);
			o->arch_set |= ARCH_ATTN;
			break;
		case OPT_EMBED_DIM:
			o->embed_dim = (int)parse_int_option("--embed-dim", optarg, 1, 1 << 16);
			o->arch_set |= ARCH_EMBED;
			break;
		case OPT_CHANNELS:
			o->channels = (int)parse_int_option("--channels", optarg, 1, 3);
			if (o->channels == 2)
				usage_error("--channels: 1 (gray) or 3 (RGB), not 2");
			o->arch_set |= ARCH_CHANNELS;
			break;
		case OPT_BETA: o->beta = parse_nonneg("--beta", optarg); o->arch_set |= ARCH_BETA; break;
		case OPT_INIT: o->init = optarg; break;
		case OPT_L1: o->train.l1_weight = parse_nonneg("--l1", optarg); break;
		case OPT_L2: o->train.l2_weight = parse_nonneg("--l2", optarg); break;
		case OPT_EMA: o->train.ema_codebook = 1; break;
		case OPT_EMA_DECAY:
			o->train.ema_decay = (float)parse_float_option("--ema-decay", optarg);
			if (!(o->train.ema_decay > 0 && o->train.ema_decay < 1))
				usage_error("--ema-decay: must be between 0 and 1, not %s", optarg);
			break;
		case OPT_RESTART_AFTER:
			o->train.restart_after = parse_int_option("--restart-after", optarg, 0, INT64_MAX / 4);
			break;
		case OPT_NO_RESTART: o->train.restart_after = 0; break;
		case OPT_DISC_START: o->train.disc_start = parse_int_option("--disc-start", optarg, 0, INT64_MAX / 4); break;
		case OPT_DISC_WEIGHT: o->train.disc_weight = parse_nonneg("--disc-weight", optarg); break;
		case OPT_DISC_FIXED: o->train.disc_adaptive = 0; break;
		case OPT_DISC_CH: o->train.disc_ch = (int)parse_int_option("--disc-ch", optarg, 1, 4096); break;
		case OPT_DISC_LAYERS:
			o->train.disc_layers = (int)parse_int_option("--disc-layers", optarg, 1, VQGAN_DISC_MAX_LAYERS);
			break;
		case OPT_FLIP: o->flip = true; break;
		default: usage_error("unknown option");
		}
	}
	if (!o->out)
		usage_error("--out PATH is required");
	if (run->resume && o->init)
		usage_error("--resume continues --out's run; --init starts a new one: give one of them");
	if ((o->arch_set & ARCH_CH_MULT) && (o->arch_set & ARCH_FACTOR) && o->factor != 1 << (o->levels - 1))
		usage_error("--ch-mult has %d levels (factor %d), --factor says %d", o->levels, 1 << (o->levels - 1),
		            o->factor);
	if (!(o->arch_set & ARCH_CH_MULT)) {
		static const int mult[VQGAN_MAX_LEVELS][VQGAN_MAX_LEVELS] = {
			{ 1 }, { 1, 2 }, { 1, 2, 4 }, { 1, 2, 2, 4 }, { 1, 1, 2, 2, 4 }, { 1, 1, 2, 2, 4, 4 },
			{ 1, 1, 2, 2, 4, 4, 4 }, { 1, 1, 2, 2, 4, 4, 4, 4 },
		};
		o->levels = __builtin_ctz((unsigned)o->factor) + 1;
		memcpy(o->ch_mult, mult[o->levels - 1], sizeof o->ch_mult);
	}
	nn_train_options_finish(run, o->steps, 10);
	o->train.seed = run->seed;
	if (o->train.disc_start >= 0 && o->train.disc_start >= o->steps)
		warnx_tool("--disc-start %lld is at or after the last step: the discriminator never comes in",
		           (long long)o->train.disc_start);
	o->inputs = argv + optind;
	o->ninputs = argc - optind;
}

/* ---- the data ----
 * An endless sequence of images (stream/record_cycle.h): the input files
 * over and over, stdin spooled, through a shuffle buffer. Every image is
 * checked as it is read. */

struct image_check {
	int resize; /* the images' required side, 0: their own */
	int side;   /* every image's side (once the first is read, without resize) */
};

/* Checks the image of r and drops every other field, so that a buffer of
 * records holds only pixels. */
static int check_record(void *ctx, struct record *r)
{
	struct image_check *s = ctx;
	struct image view;
	if (image_from_record(r, "image", &view) < 0)
		return -1;
	if (!s->resize) {
		if (view.width != view.height)
			return errorf("image %dx%d is not square (see --resize)", view.width, view.height);
		if (!s->side)
			s->side = view.width;
		if (view.width != s->side)
			return errorf("image %dx%d, the others are %dx%d (all must be the same size; see --resize)",
			              view.width, view.height, s->side, s->side);
	}
	for (int i = r->n - 1; i >= 0; i--)
		if (strcmp(r->fields[i].key, "image"))
			record_remove(r, r->fields[i].key);
	return 0;
}

/* Draws one image as model input [channels, side, side]; r holds the
 * drawn record. */
static int draw_image(struct record_shuffle *sh, struct record *r, int channels, int resize, int side,
                      bool flip_ok, float *out)
{
	uint32_t spare;
	struct image view;
	if (record_shuffle_draw(sh, r, &spare) < 0 || image_from_record(r, "image", &view) < 0 ||
	    vqgan_input_from_image(&view, channels, resize, out) < 0)
		return -1;
	if ((spare >> 31) && flip_ok)
		for (int row = 0; row < channels * side; row++) {
			float *p = out + (size_t)row * side;
			for (int x = 0; x < side / 2; x++) {
				float t = p[x];
				p[x] = p[side - 1 - x];
				p[side - 1 - x] = t;
			}
		}
	return 0;
}

/* ---- the held-out set ---- */

struct val_set {
	float *x; /* [n, C, side, side] */
	int n;
	int64_t *counts;
};

/* What reading the held-out set needs per record. */
struct val_reader {
	int channels, side, resize;
};

static int val_record(void *ctx, const struct record *r, const struct image *view, int i, float *out)
{
	(void)r;
	(void)i;
	const struct val_reader *vr = ctx;
	if (!vr->resize && (view->width != vr->side || view->height != vr->side))
		return errorf("image %dx%d, the training images are %dx%d (see --resize)", view->width, view->height,
		              vr->side, vr->side);
	return vqgan_input_from_image(view, vr->channels, vr->resize, out);
}

static void val_read(struct val_set *v, const struct options *o, int channels, int side)
{
	struct val_reader vr = { .channels = channels, .side = side, .resize = o->resize };
	v->n = image_set_read(o->run.val, o->run.val_count, (size_t)channels * side * side, val_record, &vr, &v->x);
	if (v->n < 0)
		die("%s", error_message());
}

/* PSNR and codebook use of the model on the held-out set. */
static void val_measure(struct val_set *v, struct vqgan *m, int batch, int side, double *psnr, double *ppl,
                        int *used)
{
	size_t per = (size_t)m->cfg.in_channels * side * side;
	double sq = 0;
	memset(v->counts, 0, (size_t)m->cfg.n_embed * sizeof *v->counts);
	for (int i = 0; i < v->n; i += batch) {
		int n = v->n - i < batch ? v->n - i : batch;
		if (vqgan_evaluate(m, v->x + i * per, n, side, side, &sq, v->counts) < 0)
			die("%s", error_message());
	}
	*psnr = vqgan_psnr(sq, (int64_t)v->n * (int64_t)per);
	*ppl = vqgan_perplexity(v->counts, m->cfg.n_embed, used);
}

/* ---- the model ---- */

static struct vqgan_config config_from_options(const struct options *o, int side)
{
	struct vqgan_config c = {
		.in_channels = o->channels, .out_ch = o->channels, .ch = o->ch, .levels = o->levels,
		.num_res_blocks = o->res_blocks, .z_channels = o->embed_dim, .embed_dim = o->embed_dim,
		.n_embed = o->codes, .resolution = side, .beta = o->beta,
	};
	memcpy(c.ch_mult, o->ch_mult, sizeof c.ch_mult);
	int f = vqgan_factor(&c);
	if (side % f)
		die("the images are %dx%d, not a multiple of the downsampling factor %d (see --resize)", side, side, f);
	if (o->nattn < 0) {
		c.attn[c.levels - 1] = 1;
	} else {
		for (int i = 0; i < o->nattn; i++) {
			int level = 0;
			while (level < c.levels && side >> level != o->attn[i])
				level++;
			if (level == c.levels)
				die("--attn: %d is not a resolution of the model (%d down to %d)", o->attn[i], side, side / f);
			c.attn[level] = 1;
		}
	}
	if (vqgan_config_check(&c) < 0)
		die("%s", error_message());
	return c;
}

/* Options that set the architecture must agree with a checkpoint's. */
static void check_arch(const struct options *o, const struct vqgan_config *c, const char *path, int side)
{
	struct { unsigned bit; const char *opt; long want, have; } items[] = {
		{ ARCH_FACTOR, "--factor", o->factor, vqgan_factor(c) },
		{ ARCH_CH_MULT, "--ch-mult levels", o->levels, c->levels },
		{ ARCH_CH, "--ch", o->ch, c->ch },
		{ ARCH_BLOCKS, "--res-blocks", o->res_blocks, c->num_res_blocks },
		{ ARCH_EMBED, "--embed-dim", o->embed_dim, c->embed_dim },
		{ ARCH_CODES, "--codes", o->codes, c->n_embed },
		{ ARCH_CHANNELS, "--channels", o->channels, c->in_channels },
	};
	for (size_t i = 0; i < sizeof items / sizeof *items; i++)
		if ((o->arch_set & items[i].bit) && items[i].want != items[i].have)
			die("%s: %s %ld differs from the checkpoint's %ld", path, items[i].opt, items[i].want, items[i].have);
	if ((o->arch_set & ARCH_BETA) && o->beta != c->beta)
		die("%s: --beta %g differs from the checkpoint's %g", path, o->beta, c->beta);
	if (side % vqgan_factor(c))
		die("%s: the images are %dx%d, not a multiple of the model's factor %d (see --resize)", path, side, side,
		    vqgan_factor(c));
}

/* ---- progress ---- */

struct report {
	int64_t steps;
	double loss, l1, l2, codebook, commit, gen, disc, disc_weight, sq_err;
	int64_t pixels, restarts, skipped;
	double start;
	int64_t start_step;
};

static void report_add(struct report *r, const struct vqgan_step_stats *s)
{
	r->steps++;
	r->loss += s->loss;
	r->l1 += s->l1;
	r->l2 += s->l2;
	r->codebook += s->codebook;
	r->commit += s->commit;
	r->gen += s->gen;
	r->disc += s->disc;
	r->disc_weight += s->disc_weight;
	r->sq_err += s->sq_err;
	r->pixels += s->pixels;
	r->restarts += s->restarts;
	r->skipped += s->skipped;
}

static void print_val(struct val_set *v, struct vqgan *m, int batch, int side)
{
	double psnr, ppl;
	int used;
	val_measure(v, m, batch, side, &psnr, &ppl, &used);
	fprintf(stderr, " | val psnr %.2f perplexity %.1f codes %d/%d", psnr, ppl, used, m->cfg.n_embed);
}

static void report_print(struct report *r, struct vqgan_trainer *t, struct val_set *v, const struct options *o,
                         int side)
{
	int64_t step = t->opt.step;
	fprintf(stderr, "%s: step %lld/%lld", tool_name, (long long)step, (long long)o->steps);
	if (r->steps > 0) {
		double n = (double)r->steps, ppl;
		int used;
		int64_t *counts = xmalloc((size_t)t->K * sizeof *counts);
		vqgan_trainer_take_usage(t, counts);
		ppl = vqgan_perplexity(counts, t->K, &used);
		free(counts);
		fprintf(stderr, ": loss %.4f (l1 %.4f l2 %.4f codebook %.4f commit %.4f", r->loss / n, r->l1 / n,
		        r->l2 / n, r->codebook / n, r->commit / n);
		if (t->disc && step > o->train.disc_start)
			fprintf(stderr, " gen %.3f x %.3g disc %.3f", r->gen / n, r->disc_weight / n, r->disc / n);
		fprintf(stderr, ") psnr %.2f perplexity %.1f codes %d/%d", vqgan_psnr(r->sq_err, r->pixels), ppl, used,
		        t->K);
		if (r->restarts)
			fprintf(stderr, " restarts %lld", (long long)r->restarts);
		if (r->skipped)
			fprintf(stderr, " skipped %lld (gradient not finite)", (long long)r->skipped);
	}
	if (v->n)
		print_val(v, t->m, o->tool.batch, side);
	double now = omp_get_wtime();
	if (step > r->start_step && now > r->start)
		fprintf(stderr, " | lr %.3g, %.2f steps/s", t->opt.last_lr, (double)(step - r->start_step) / (now - r->start));
	fputc('\n', stderr);
	fflush(stderr);
	double start = r->start;
	int64_t start_step = r->start_step;
	*r = (struct report){ .start = start, .start_step = start_step };
}

/* ---- the run ---- */

/* The data settings a resumed run must share, as checkpoint metadata. */
struct data_meta {
	char text[4][32];
	struct st_meta meta[4];
};

static void data_meta_init(struct data_meta *d, const struct options *o)
{
	const char *keys[4] = { "data_batch", "data_buffer", "data_flip", "data_resize" };
	long values[4] = { o->tool.batch, o->run.buffer, o->flip, o->resize };
	for (int i = 0; i < 4; i++) {
		snprintf(d->text[i], sizeof d->text[i], "%ld", values[i]);
		d->meta[i] = (struct st_meta){ keys[i], d->text[i] };
	}
}

static void save(struct vqgan_trainer *t, const struct options *o, const struct record_shuffle *sh,
                 const struct data_meta *dm)
{
	struct nn_train_position pos = { .rng_seed = o->train.seed, .rng_offset = (uint64_t)sh->draws,
	                                 .data_pos = sh->draws };
	if (vqgan_trainer_save(t, o->out, &pos, dm->meta, 4) < 0)
		die("%s", error_message());
}

int main(int argc, char **argv)
{
	tool_init("vq-train", argc, argv, help);
	struct options o;
	parse_options(argc, argv, &o);

	struct image_check ic = { .resize = o.resize };
	struct record_cycle src;
	struct record_shuffle sh;
	if (record_cycle_open(&src, o.inputs, o.ninputs, check_record, &ic, "image", "vq-train") < 0 ||
	    record_shuffle_open(&sh, &src, o.run.buffer, o.train.seed) < 0)
		die("%s", error_message());
	int side = o.resize ? o.resize : ic.side;
	if (o.resolution && o.resolution != side)
		die("the images are %dx%d, --resolution says %d (see --resize)", side, side, o.resolution);

	struct vqgan m;
	const char *from = o.run.resume ? o.out : o.init;
	if (from) {
		if (vqgan_load(&m, from, NULL, 1) < 0)
			die("%s", error_message());
		check_arch(&o, &m.cfg, from, side);
		if (!o.run.resume)
			m.cfg.resolution = side;
	} else {
		struct vqgan_config c = config_from_options(&o, side);
		vqgan_init(&m, &c, 1);
		vqgan_init_random(&m, o.train.seed);
	}
	struct vqgan_trainer t;
	if (vqgan_trainer_init(&t, &m, &o.train, &o.run.optim) < 0)
		die("%s", error_message());
	struct data_meta dm;
	data_meta_init(&dm, &o);
	if (o.run.resume) {
		struct nn_train_position pos;
		if (vqgan_trainer_load(&t, o.out, &pos, dm.meta, 4) < 0)
			nn_train_resume_failed();
		if (record_shuffle_skip(&sh, pos.data_pos) < 0)
			die("%s", error_message());
	}

	struct val_set val = { .counts = xcalloc((size_t)m.cfg.n_embed, sizeof(int64_t)) };
	if (o.run.val)
		val_read(&val, &o, m.cfg.in_channels, side);
	int f = vqgan_factor(&m.cfg), B = o.tool.batch;
	fprintf(stderr, "%s: %dx%d images, factor %d (%dx%d tokens), %d codes of %d, %.2fM parameters, batch %d%s\n",
	        tool_name, side, side, f, side / f, side / f, m.cfg.n_embed, m.cfg.embed_dim,
	        (double)m.params.total / 1e6, B, o.run.resume ? ", resumed" : "");

	struct report r = { .start = omp_get_wtime(), .start_step = t.opt.step };
	if (val.n && t.opt.step == 0)
		report_print(&r, &t, &val, &o, side);
	size_t per = (size_t)m.cfg.in_channels * side * side;
	float *x = xmalloc((size_t)B * per * sizeof *x);
	struct record drawn = RECORD_INIT;
	int64_t this_run = 0, saved_at = t.opt.step;
	while (nn_train_more(&o.run, t.opt.step, o.steps, this_run)) {
		for (int b = 0; b < B; b++)
			if (draw_image(&sh, &drawn, m.cfg.in_channels, o.resize, side, o.flip, x + b * per) < 0)
				die("%s", error_message());
		struct vqgan_step_stats s;
		if (vqgan_trainer_step(&t, x, B, side, side, &s) < 0)
			die("%s", error_message());
		report_add(&r, &s);
		this_run++;
		int64_t step = t.opt.step;
		if (nn_train_due(o.run.progress_every, step))
			report_print(&r, &t, &val, &o, side);
		if (nn_train_due(o.run.save_every, step)) {
			save(&t, &o, &sh, &dm);
			saved_at = step;
		}
	}
	if (saved_at != t.opt.step)
		save(&t, &o, &sh, &dm);
	/* The last line, unless a report was just printed at this step. */
	if (r.steps > 0 || this_run == 0)
		report_print(&r, &t, &val, &o, side);

	free(x);
	free(val.x);
	free(val.counts);
	vqgan_trainer_free(&t);
	vqgan_free(&m);
	record_free(&drawn);
	record_shuffle_close(&sh);
	record_cycle_close(&src);
	return EXIT_OK;
}
