/* Random resized crops for CLIP training (see augment.h). */
#include "image/augment.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "image/clip_preprocess.h"
#include "image/resample.h"
#include "nn/philox.h"

#define AUGMENT_STREAM 0x6175676dull /* "augm" */
#define TRIES 10

void augment_choose(const struct augment_config *c, int width, int height, uint64_t seed, uint64_t draw,
                    struct augment_crop *out)
{
	uint64_t key = seed ^ AUGMENT_STREAM, e = draw * 64;
	*out = (struct augment_crop){ 0, 0, width, height, 0 };
	double area = (double)width * height, lo = log(3.0 / 4.0), hi = log(4.0 / 3.0);
	for (int t = 0; t < TRIES; t++, e += 4) {
		double target = area * (c->crop_min + (1 - c->crop_min) * philox_uniform_at(key, e));
		double aspect = exp(lo + (hi - lo) * philox_uniform_at(key, e + 1));
		int w = (int)lround(sqrt(target * aspect)), h = (int)lround(sqrt(target / aspect));
		if (w < 1 || h < 1 || w > width || h > height)
			continue;
		int x = (int)(philox_uniform_at(key, e + 2) * (float)(width - w + 1));
		int y = (int)(philox_uniform_at(key, e + 3) * (float)(height - h + 1));
		out->x = x < width - w ? x : width - w;
		out->y = y < height - h ? y : height - h;
		out->w = w;
		out->h = h;
		break;
	}
	out->flip = c->flip && philox_uniform_at(key, draw * 64 + 63) < 0.5f;
}

/* The window's pixels as an image of their own. */
static int crop_image(const struct image *img, const struct augment_crop *k, struct image *out)
{
	if (image_alloc(out, k->w, k->h, img->channels) < 0)
		return -1;
	size_t row = (size_t)k->w * img->channels;
	for (int y = 0; y < k->h; y++)
		memcpy(out->pixels + (size_t)y * row,
		       img->pixels + ((size_t)(k->y + y) * img->width + k->x) * img->channels, row);
	return 0;
}

static void mirror(struct image *img)
{
	int C = img->channels;
	for (int y = 0; y < img->height; y++) {
		uint8_t *row = img->pixels + (size_t)y * img->width * C;
		for (int a = 0, b = img->width - 1; a < b; a++, b--)
			for (int ch = 0; ch < C; ch++) {
				uint8_t t = row[a * C + ch];
				row[a * C + ch] = row[b * C + ch];
				row[b * C + ch] = t;
			}
	}
}

int augment_clip_pixels(const struct image *img, int n_px, const struct augment_config *c, uint64_t seed,
                        uint64_t draw, float *out)
{
	if (!c->enabled)
		return clip_preprocess(img, n_px, RESAMPLE_BICUBIC, out);
	if (img->width < 1 || img->height < 1 || n_px < 1)
		return errorf("cannot augment a %dx%d image to %d pixels", img->width, img->height, n_px);
	struct augment_crop k;
	augment_choose(c, img->width, img->height, seed, draw, &k);
	struct image crop, squeezed;
	if (crop_image(img, &k, &crop) < 0)
		return -1;
	int rc = image_resize(&crop, n_px, n_px, RESAMPLE_BICUBIC, &squeezed);
	image_free(&crop);
	if (rc < 0)
		return -1;
	if (k.flip)
		mirror(&squeezed);
	/* already n_px square: only the conversion and normalisation remain */
	rc = clip_preprocess(&squeezed, n_px, RESAMPLE_BICUBIC, out);
	image_free(&squeezed);
	return rc;
}
