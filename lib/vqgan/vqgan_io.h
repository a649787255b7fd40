/* What the VQGAN tools share: image records to the model's float batches
 * and back, token grids in records, and the options of a tool that runs a
 * VQGAN. (Their record batches are stream/record_batch.h.)
 *
 * Pixels map to the model as x/127.5 - 1 and back as
 * round(clamp((y + 1) * 127.5, 0, 255)), as the taming and VQ-Diffusion data
 * pipelines do. */
#ifndef KNND_VQGAN_VQGAN_IO_H
#define KNND_VQGAN_VQGAN_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/image.h"
#include "stream/record.h"

/* ---- images ---- */

/* The model input for one image: float [channels, H, W] in [-1, 1], where
 * channels is the model's (1 or 3). Alpha (C = 2 or 4) is composited onto
 * white first; then gray is replicated to RGB, or RGB becomes gray as
 * Pillow's convert("L") does; then, when side > 0, the image is resized to
 * side x side with Pillow's bicubic filter (as Image.resize, exactly).
 * H x W is side x side, else the image's own size. Returns 0 or -1 (errorf). */
int vqgan_input_from_image(const struct image *img, int channels, int side, float *out);

/* Pixels of a model output y [channels, H, W]: uint8 [H, W, channels],
 * round(clamp((y + 1) * 127.5, 0, 255)). */
void vqgan_pixels_from_output(const float *y, int channels, int H, int W, uint8_t *pixels);

/* ---- token grids ---- */

/* The grid of a record's token field: an integer tensor [h,w] (any integer
 * dtype; vq-encode writes int32), or a flat [h*w] shaped as grid_h x grid_w
 * when those are > 0, else as a square. Every id must be in [0, n_embed).
 * Returns 0 with *h and *w, or -1 (errorf naming the problem, e.g. the
 * first id out of range and where it is). */
int vqgan_token_grid(const struct record *r, const char *key, int grid_h, int grid_w, int n_embed, int *h,
                     int *w);
/* The ids of a token tensor that vqgan_token_grid accepted, as int32. */
void vqgan_tokens_to_int32(const struct tensor *t, int32_t *out);

/* ---- tool options ---- */

struct vqgan_tool_options {
	const char *model, *config;
	int batch;
	bool progress;
};

enum { VQGAN_OPT_BACKEND = 0x100, VQGAN_OPT_FIRST_FREE };

/* For getopt_long: the options every VQGAN tool has, and their help. */
#define VQGAN_TOOL_SHORTOPTS "m:c:b:t:p"
#define VQGAN_TOOL_LONGOPTS                                                                            \
	{ "model", 1, 0, 'm' }, { "config", 1, 0, 'c' }, { "batch", 1, 0, 'b' }, { "threads", 1, 0, 't' }, \
		{ "progress", 0, 0, 'p' }, { "backend", 1, 0, VQGAN_OPT_BACKEND }
/* Their help, for the tool's usage text under "Options:". */
#define VQGAN_TOOL_OPTIONS_HELP \
	"  -m, --model PATH      VQGAN weights in taming's naming (.safetensors);\n"    \
	"                        required\n"                                            \
	"  -c, --config FILE     taming config (JSON) that the checkpoint must agree\n" \
	"                        with; the architecture comes from the tensors\n"       \
	"  -b, --batch N         images per model pass (default 16); memory is\n"       \
	"                        bounded by this, whatever the stream's length\n"       \
	"  -t, --threads N       CPU threads (default: OpenMP's, all cores); results\n" \
	"                        do not depend on it\n"                                 \
	"      --backend NAME    cpu (default), cuda or auto\n"                         \
	"  -p, --progress        progress on stderr every few seconds (default:\n"      \
	"                        when stderr is a terminal)\n"

void vqgan_tool_defaults(struct vqgan_tool_options *o);
/* Handles one of those options (selecting the backend and thread count as
 * it goes); returns false for any other. A bad value is a usage error. */
bool vqgan_tool_option(struct vqgan_tool_options *o, int opt, const char *arg);

#endif
