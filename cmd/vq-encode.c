/* vq-encode: VQGAN token grids of image records. */
#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "stream/record_batch.h"
#include "stream/stream.h"
#include "vqgan/vqgan.h"
#include "vqgan/vqgan_io.h"

static const char help[] =
	"Usage: vq-encode --model PATH [OPTION...] [FILE...]\n"
	"Adds VQGAN tokens to image records (stdin by default, files one after another).\n"
	"\n"
	"Each record's 'image' (uint8 [H,W,C], C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA)\n"
	"is encoded to 'tokens', int32 [H/f, W/f], the nearest codebook entry of each\n"
	"latent, f being the model's downsampling factor. Gray images are replicated\n"
	"to RGB; alpha is composited onto white. H and W must be multiples of f, or\n"
	"give --resize. Images of different sizes may follow each other. Every other\n"
	"field passes through.\n"
	"\n"
	"Options:\n" VQGAN_TOOL_OPTIONS_HELP
	"  -r, --resize N        resize every image to NxN first (Pillow's bicubic,\n"
	"                        exactly; the aspect ratio is not kept); N a\n"
	"                        multiple of f\n"
	"  -l, --latents         also write 'latent', float32 [D, H/f, W/f]: the\n"
	"                        encoder's output after quant_conv, before\n"
	"                        quantisation\n"
	"  -d, --drop-image      leave the 'image' field out of the output\n"
	"  -h, --help            show this help\n"
	"      --version         show the version\n"
	"\n"
	"Examples:\n"
	"  img-read photos/*.png | vq-encode --model vqgan.safetensors | ts-cat\n"
	"  img-read photos/*.png | vq-encode -m vqgan.safetensors --resize 256 \\\n"
	"      --drop-image > tokens.ts\n";

enum { OPT_LATENTS = VQGAN_OPT_FIRST_FREE, OPT_DROP_IMAGE };

struct options {
	struct vqgan_tool_options tool;
	int side; /* --resize */
	bool latents, drop_image;
};

/* The work of one run, shared by the batch callbacks. */
struct encoder {
	const struct options *o;
	struct vqgan model;
	int factor;
	float *inputs, *latents;       /* [batch, C, H, W], [batch, D, h, w] */
	int32_t *tokens;               /* [batch, h, w] */
	size_t inputs_cap, latents_cap, tokens_cap; /* elements, grown to the largest batch */
};

/* The size the image of r is encoded at. */
static int check_image(void *ctx, const struct record *r, int size[2])
{
	const struct encoder *e = ctx;
	struct image view;
	if (image_from_record(r, "image", &view) < 0)
		return -1;
	if (e->o->side) {
		size[0] = size[1] = e->o->side;
		return 0;
	}
	if (view.width % e->factor || view.height % e->factor)
		return errorf("image %dx%d is not a multiple of %d (see --resize)", view.width, view.height, e->factor);
	size[0] = view.height;
	size[1] = view.width;
	return 0;
}

static int encode_batch(void *ctx, struct record_batch *b)
{
	struct encoder *e = ctx;
	const struct vqgan_config *c = &e->model.cfg;
	int n = b->n, H = b->size[0], W = b->size[1], h = H / e->factor, w = W / e->factor;
	size_t per_image = (size_t)c->in_channels * H * W, per_grid = (size_t)h * w;
	e->inputs = batch_buffer_grow(e->inputs, &e->inputs_cap, n * per_image, sizeof *e->inputs);
	e->tokens = batch_buffer_grow(e->tokens, &e->tokens_cap, n * per_grid, sizeof *e->tokens);
	if (e->o->latents)
		e->latents = batch_buffer_grow(e->latents, &e->latents_cap, n * per_grid * c->embed_dim, sizeof *e->latents);

	/* Converting is per image and independent: one image per thread. */
	#pragma omp parallel for schedule(dynamic)
	for (int i = 0; i < n; i++) {
		struct image view;
		int rc = image_from_record(&b->recs[i], "image", &view);
		if (rc == 0)
			rc = vqgan_input_from_image(&view, c->in_channels, e->o->side, e->inputs + i * per_image);
		if (rc < 0)
			record_batch_fail(b, i);
	}
	if (record_batch_check(b) < 0)
		return -1;

	if (vqgan_encode(&e->model, e->inputs, n, H, W, e->tokens, e->o->latents ? e->latents : NULL) < 0)
		return error_prefix("%s", e->o->tool.model);

	for (int i = 0; i < n; i++) {
		struct record *r = &b->recs[i];
		int64_t grid[3] = { c->embed_dim, h, w };
		struct tensor *t = record_new_tensor(r, "tokens", DT_INT32, 2, grid + 1);
		memcpy(t->data, e->tokens + i * per_grid, t->nbytes);
		if (e->o->latents) {
			t = record_new_tensor(r, "latent", DT_FLOAT32, 3, grid);
			memcpy(t->data, e->latents + i * per_grid * c->embed_dim, t->nbytes);
		}
		if (e->o->drop_image)
			record_remove(r, "image");
	}
	return 0;
}

static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, VQGAN_TOOL_LONGOPTS,
		{ "resize", 1, 0, 'r' }, { "latents", 0, 0, 'l' }, { "drop-image", 0, 0, 'd' }, { 0 },
	};
	*o = (struct options){ 0 };
	vqgan_tool_defaults(&o->tool);
	int c;
	while ((c = getopt_long(argc, argv, "hV" VQGAN_TOOL_SHORTOPTS "r:ld", opts, NULL)) != -1) {
		if (tool_common_option(c, help) || vqgan_tool_option(&o->tool, c, optarg))
			continue;
		switch (c) {
		case 'r': o->side = (int)parse_int_option("--resize", optarg, 1, IMAGE_MAX_SIDE); break;
		case 'l': o->latents = true; break;
		case 'd': o->drop_image = true; break;
		default: usage_error("unknown option");
		}
	}
	if (!o->tool.model)
		usage_error("no model: give --model PATH");
}

int main(int argc, char **argv)
{
	tool_init("vq-encode", argc, argv, help);
	struct options o;
	parse_options(argc, argv, &o);

	struct encoder e = { .o = &o };
	if (vqgan_load(&e.model, o.tool.model, o.tool.config, 0) < 0)
		die("%s", error_message());
	e.factor = vqgan_factor(&e.model.cfg);
	if (e.model.cfg.in_channels != 1 && e.model.cfg.in_channels != 3)
		die("%s: the model takes %d input channels; vq-encode gives it 1 (gray) or 3 (RGB)", o.tool.model,
		    e.model.cfg.in_channels);
	if (o.side % e.factor)
		usage_error("--resize %d is not a multiple of the model's factor %d", o.side, e.factor);

	if (record_batch_filter(o.tool.batch, o.tool.progress, check_image, encode_batch, &e, argc - optind,
	                        argv + optind) < 0)
		die("%s", error_message());
	free(e.inputs);
	free(e.latents);
	free(e.tokens);
	vqgan_free(&e.model);
	return EXIT_OK;
}
