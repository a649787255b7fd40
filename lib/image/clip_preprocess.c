/* CLIP preprocessing; clip_preprocess.h gives the exact recipe. */
#include "image/clip_preprocess.h"

#include <stdint.h>

#include "core/error.h"

const float clip_pixel_mean[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
const float clip_pixel_std[3] = { 0.26862954f, 0.26130258f, 0.27577711f };

/* Python's round(d / 2) for an integer d >= 0: halves go to the even side. */
static int half_round_even(int d)
{
	int q = d / 2;
	return d % 2 && q % 2 ? q + 1 : q;
}

int clip_geometry(int width, int height, int n_px, struct clip_geometry *g)
{
	if (width < 1 || height < 1 || n_px < 1)
		return errorf("cannot preprocess a %dx%d image to %d pixels", width, height, n_px);
	int short_side = width <= height ? width : height;
	int long_side = width <= height ? height : width;
	/* torchvision: int(n * long / short), a correctly rounded double
	 * quotient (both operands are exact), then truncated. */
	double new_long = (double)((int64_t)n_px * long_side) / short_side;
	if (new_long > IMAGE_MAX_SIDE)
		return errorf("a %dx%d image resized to %d on its short side is too long", width, height, n_px);
	g->resized_w = width <= height ? n_px : (int)new_long;
	g->resized_h = width <= height ? (int)new_long : n_px;
	g->crop_x = half_round_even(g->resized_w - n_px);
	g->crop_y = half_round_even(g->resized_h - n_px);
	return 0;
}

int clip_preprocess(const struct image *img, int n_px, enum resample_filter filter, float *out)
{
	struct clip_geometry g;
	if (clip_geometry(img->width, img->height, n_px, &g) < 0)
		return -1;
	struct image crop;
	if (image_resize_crop(img, g.resized_w, g.resized_h, filter, g.crop_x, g.crop_y, n_px, n_px, &crop) < 0)
		return -1;

	/* convert("RGB"): the first channel is gray for C <= 2; alpha is dropped. */
	int C = crop.channels;
	size_t plane = (size_t)n_px * n_px;
	for (int c = 0; c < 3; c++) {
		/* A value depends only on the byte, so the float arithmetic runs
		 * once per level. Two roundings, as ToTensor's div(255) then
		 * Normalize's sub_(mean).div_(std); one multiply-add would be off
		 * by up to 5e-7. */
		float level[256];
		for (int v = 0; v < 256; v++)
			level[v] = ((float)v / 255.0f - clip_pixel_mean[c]) / clip_pixel_std[c];
		const uint8_t *p = crop.pixels + (C <= 2 ? 0 : c);
		float *o = out + c * plane;
		for (size_t i = 0; i < plane; i++)
			o[i] = level[p[i * C]];
	}
	image_free(&crop);
	return 0;
}
