/* vq-decode: images of VQGAN token grids. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "stream/record_batch.h"
#include "stream/stream.h"
#include "vqgan/vqgan.h"
#include "vqgan/vqgan_io.h"

static const char help[] =
	"Usage: vq-decode --model PATH [OPTION...] [FILE...]\n"
	"Decodes the VQGAN token grids of a stream (stdin by default, files one after\n"
	"another) into images.\n"
	"\n"
	"Each record's 'tokens' (an integer tensor [h,w], as vq-encode writes, or a\n"
	"flat [h*w] grid: square, or shaped by --grid) is decoded to 'image', uint8\n"
	"[h*f, w*f, 3] (f the model's downsampling factor), replacing any 'image'\n"
	"there; a 'mode' field becomes RGB. Every other field passes through. Grids\n"
	"of different sizes may follow each other.\n"
	"\n"
	"Options:\n" VQGAN_TOOL_OPTIONS_HELP
	"  -g, --grid HxW        the grid of flat token lists (default: square)\n"
	"  -h, --help            show this help\n"
	"      --version         show the version\n"
	"\n"
	"Examples:\n"
	"  vq-decode --model vqgan.safetensors tokens.ts | img-write --dir out\n"
	"  img-read a.png | vq-encode -m vqgan.safetensors \\\n"
	"      | vq-decode -m vqgan.safetensors | img-write --sheet recon.png\n";

struct options {
	struct vqgan_tool_options tool;
	int grid_h, grid_w; /* --grid; 0: square */
};

/* The work of one run, shared by the batch callbacks. */
struct decoder {
	const struct options *o;
	struct vqgan model;
	int factor;
	int32_t *tokens;                /* [batch, h, w] */
	float *images;                  /* [batch, C, H, W] */
	size_t tokens_cap, images_cap;  /* elements, grown to the largest batch */
};

/* The grid size of r's tokens. */
static int check_tokens(void *ctx, const struct record *r, int size[2])
{
	const struct decoder *d = ctx;
	const struct vqgan_config *c = &d->model.cfg;
	if (vqgan_token_grid(r, "tokens", d->o->grid_h, d->o->grid_w, c->n_embed, &size[0], &size[1]) < 0)
		return -1;
	if (image_check_size((int64_t)size[1] * d->factor, (int64_t)size[0] * d->factor, c->out_ch) < 0)
		return error_prefix("tokens %dx%d decode to too large an image", size[0], size[1]);
	return 0;
}

static int decode_batch(void *ctx, struct record_batch *b)
{
	struct decoder *d = ctx;
	int n = b->n, h = b->size[0], w = b->size[1], H = h * d->factor, W = w * d->factor, C = d->model.cfg.out_ch;
	size_t per_grid = (size_t)h * w, per_image = (size_t)C * H * W;
	d->tokens = batch_buffer_grow(d->tokens, &d->tokens_cap, n * per_grid, sizeof *d->tokens);
	d->images = batch_buffer_grow(d->images, &d->images_cap, n * per_image, sizeof *d->images);
	for (int i = 0; i < n; i++)
		vqgan_tokens_to_int32(record_tensor(&b->recs[i], "tokens"), d->tokens + i * per_grid);

	if (vqgan_decode(&d->model, d->tokens, n, h, w, d->images) < 0)
		return error_prefix("%s", d->o->tool.model);

	uint8_t **pixels = xmalloc(n * sizeof *pixels);
	for (int i = 0; i < n; i++) {
		struct record *r = &b->recs[i];
		pixels[i] = record_new_tensor(r, "image", DT_UINT8, 3, (int64_t[]){ H, W, C })->data;
		if (record_get(r, "mode"))
			record_set_str(r, "mode", C == 1 ? "L" : "RGB");
	}
	#pragma omp parallel for
	for (int i = 0; i < n; i++)
		vqgan_pixels_from_output(d->images + i * per_image, C, H, W, pixels[i]);
	free(pixels);
	return 0;
}

/* "HxW" with both from 1 to the largest side. */
static void parse_grid(const char *arg, int *h, int *w)
{
	const char *x = strchr(arg, 'x');
	if (!x)
		usage_error("--grid '%s': expected HxW, e.g. 32x32", arg);
	char *hs = xstrndup(arg, (size_t)(x - arg));
	*h = (int)parse_int_option("--grid", hs, 1, IMAGE_MAX_SIDE);
	*w = (int)parse_int_option("--grid", x + 1, 1, IMAGE_MAX_SIDE);
	free(hs);
}

static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, VQGAN_TOOL_LONGOPTS, { "grid", 1, 0, 'g' }, { 0 },
	};
	*o = (struct options){ 0 };
	vqgan_tool_defaults(&o->tool);
	int c;
	while ((c = getopt_long(argc, argv, "hV" VQGAN_TOOL_SHORTOPTS "g:", opts, NULL)) != -1) {
		if (tool_common_option(c, help) || vqgan_tool_option(&o->tool, c, optarg))
			continue;
		switch (c) {
		case 'g': parse_grid(optarg, &o->grid_h, &o->grid_w); break;
		default: usage_error("unknown option");
		}
	}
	if (!o->tool.model)
		usage_error("no model: give --model PATH");
}

int main(int argc, char **argv)
{
	tool_init("vq-decode", argc, argv, help);
	struct options o;
	parse_options(argc, argv, &o);

	struct decoder d = { .o = &o };
	if (vqgan_load(&d.model, o.tool.model, o.tool.config, 0) < 0)
		die("%s", error_message());
	d.factor = vqgan_factor(&d.model.cfg);
	if (d.model.cfg.out_ch != 1 && d.model.cfg.out_ch != 3)
		die("%s: the model makes images of %d channels; vq-decode writes 1 (gray) or 3 (RGB)", o.tool.model,
		    d.model.cfg.out_ch);

	if (record_batch_filter(o.tool.batch, o.tool.progress, check_tokens, decode_batch, &d, argc - optind,
	                        argv + optind) < 0)
		die("%s", error_message());
	free(d.tokens);
	free(d.images);
	vqgan_free(&d.model);
	return EXIT_OK;
}
