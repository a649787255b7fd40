/* Image records <-> VQGAN batches, token grids, tool options. */
#include "vqgan/vqgan_io.h"

#include <math.h>
#include <omp.h>
#include <unistd.h>

#include "core/tool.h"
#include "image/resample.h"
#include "nn/ops.h"

/* ---- images ---- */

/* Pillow's convert("L"): ITU-R 601-2 luma in 16-bit fixed point. */
static uint8_t luma(const uint8_t *rgb)
{
	return (uint8_t)((rgb[0] * 19595u + rgb[1] * 38470u + rgb[2] * 7471u + 0x8000u) >> 16);
}

/* img with `channels` colour samples per pixel: alpha composited onto white,
 * gray replicated or RGB turned to luma. dst is allocated. */
static int convert_channels(const struct image *img, int channels, struct image *dst)
{
	if (image_alloc(dst, img->width, img->height, channels) < 0)
		return -1;
	int c = img->channels, colours = c == 2 || c == 4 ? c - 1 : c;
	size_t n = (size_t)img->width * img->height;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *px = img->pixels + i * c;
		uint8_t rgb[3];
		for (int k = 0; k < colours; k++)
			rgb[k] = colours < c ? composite_on_white(px[k], px[c - 1]) : px[k];
		uint8_t *out = dst->pixels + i * channels;
		if (channels == 1)
			out[0] = colours == 3 ? luma(rgb) : rgb[0];
		else
			for (int k = 0; k < 3; k++)
				out[k] = rgb[colours == 3 ? k : 0];
	}
	return 0;
}

int vqgan_input_from_image(const struct image *img, int channels, int side, float *out)
{
	if (channels != 1 && channels != 3)
		return errorf("the model takes %d input channels; images give 1 or 3", channels);
	struct image converted = { 0 }, resized = { 0 };
	const struct image *at = img;
	int rc = 0;
	if (img->channels != channels) {
		rc = convert_channels(img, channels, &converted);
		at = &converted;
	}
	if (rc == 0 && side > 0 && (at->width != side || at->height != side)) {
		rc = image_resize(at, side, side, RESAMPLE_BICUBIC, &resized);
		at = &resized;
	}
	if (rc == 0) {
		size_t plane = (size_t)at->width * at->height;
		for (int k = 0; k < channels; k++)
			for (size_t i = 0; i < plane; i++)
				/* In double, then rounded once: the float32 that x / 127.5 - 1
				 * is, whatever the compiler does with float expressions. */
				out[k * plane + i] = (float)(at->pixels[i * channels + k] / 127.5 - 1.0);
	}
	image_free(&converted);
	image_free(&resized);
	return rc;
}

void vqgan_pixels_from_output(const float *y, int channels, int H, int W, uint8_t *pixels)
{
	size_t plane = (size_t)H * W;
	for (int k = 0; k < channels; k++)
		for (size_t i = 0; i < plane; i++) {
			float v = (y[k * plane + i] + 1.0f) * 127.5f;
			/* NaN fails both comparisons and becomes 0. */
			v = v > 0 ? (v < 255 ? v : 255) : 0;
			pixels[i * channels + k] = (uint8_t)lrintf(v);
		}
}

/* ---- token grids ---- */

/* Element i of an integer tensor; uint64 beyond INT64_MAX saturates (it is
 * out of any codebook's range either way). */
static int64_t token_at(const struct tensor *t, size_t i)
{
	switch (t->dtype) {
	case DT_INT64: return ((const int64_t *)t->data)[i];
	case DT_UINT64: {
		uint64_t u = ((const uint64_t *)t->data)[i];
		return u > INT64_MAX ? INT64_MAX : (int64_t)u;
	}
	case DT_INT32: return ((const int32_t *)t->data)[i];
	default: return (int64_t)tensor_get(t, i); /* narrower types are exact in a double */
	}
}

static bool is_integer(enum dtype dt)
{
	return dt != DT_BOOL && !dtype_is_float(dt);
}

int vqgan_token_grid(const struct record *r, const char *key, int grid_h, int grid_w, int n_embed, int *h,
                     int *w)
{
	const struct value *v = record_get(r, key);
	if (!v)
		return errorf("no '%s' field", key);
	const struct tensor *t = &v->t;
	if (v->kind != V_TENSOR || !is_integer(t->dtype) || t->ndim < 1 || t->ndim > 2)
		return errorf("field '%s' is not an integer tensor [h,w] or [h*w]", key);
	int64_t n = tensor_numel(t);
	if (n < 1)
		return errorf("field '%s' is empty", key);
	int64_t gh, gw;
	if (t->ndim == 2) {
		gh = t->shape[0];
		gw = t->shape[1];
		if (grid_h > 0 && (gh != grid_h || gw != grid_w))
			return errorf("tokens are [%lld,%lld], not the --grid %dx%d", (long long)gh, (long long)gw, grid_h,
			              grid_w);
	} else if (grid_h > 0) {
		if (n != (int64_t)grid_h * grid_w)
			return errorf("%lld tokens do not fill a %dx%d grid", (long long)n, grid_h, grid_w);
		gh = grid_h;
		gw = grid_w;
	} else {
		gh = gw = (int64_t)llround(sqrt((double)n));
		if (gh * gw != n)
			return errorf("%lld tokens are not a square grid; give --grid HxW", (long long)n);
	}
	if (gh > IMAGE_MAX_SIDE || gw > IMAGE_MAX_SIDE)
		return errorf("token grid %lldx%lld is too large", (long long)gh, (long long)gw);
	for (int64_t i = 0; i < n; i++) {
		int64_t id = token_at(t, (size_t)i);
		if (id < 0 || id >= n_embed)
			return errorf("token id %lld at (%lld,%lld) is out of range: the codebook has %d codes",
			              (long long)id, (long long)(i / gw), (long long)(i % gw), n_embed);
	}
	*h = (int)gh;
	*w = (int)gw;
	return 0;
}

void vqgan_tokens_to_int32(const struct tensor *t, int32_t *out)
{
	int64_t n = tensor_numel(t);
	for (int64_t i = 0; i < n; i++)
		out[i] = (int32_t)token_at(t, (size_t)i);
}

/* ---- tool options ---- */

void vqgan_tool_defaults(struct vqgan_tool_options *o)
{
	*o = (struct vqgan_tool_options){ .batch = 16, .progress = isatty(2) };
}

bool vqgan_tool_option(struct vqgan_tool_options *o, int opt, const char *arg)
{
	switch (opt) {
	case 'm': o->model = arg; return true;
	case 'c': o->config = arg; return true;
	case 'b': o->batch = (int)parse_int_option("--batch", arg, 1, 4096); return true;
	case 't': omp_set_num_threads((int)parse_int_option("--threads", arg, 1, 1024)); return true;
	case 'p': o->progress = true; return true;
	case VQGAN_OPT_BACKEND:
		if (nn_use_backend(arg) < 0)
			usage_error("--backend: %s", error_message());
		return true;
	default: return false;
	}
}
