/* Training-time image augmentation for CLIP: a random resized crop (and an
 * optional horizontal flip) in front of CLIP's preprocessing.
 *
 * The crop is torchvision's RandomResizedCrop: up to ten tries of an area
 * fraction uniform in [crop_min, 1] and an aspect ratio log-uniform in
 * [3/4, 4/3], rounded to whole pixels and placed uniformly where it fits;
 * the whole image when no try fits. The crop is squeezed to n_px x n_px
 * by Pillow's bicubic resampler (image/resample.h), optionally mirrored,
 * then converted and normalised exactly as clip_preprocess does. With
 * augmentation off the result is clip_preprocess's, bit for bit, so that a
 * model sees in training what clip-embed will show it.
 *
 * Random numbers come from Philox keyed by the seed at counter `draw`
 * (each augmentation uses counters draw*64 .. draw*64+63), so a caller that
 * numbers its draws by (step, item) gets the same augmentations on any
 * machine and after a resume. */
#ifndef KNND_IMAGE_AUGMENT_H
#define KNND_IMAGE_AUGMENT_H

#include <stdint.h>

#include "image/image.h"

struct augment_config {
	int enabled;    /* 0: plain clip_preprocess */
	float crop_min; /* smallest area fraction of the crop, in (0, 1] */
	int flip;       /* mirror half of the images */
};

/* The crop window chosen for a width x height image: exposed for tests. */
struct augment_crop {
	int x, y, w, h;
	int flip;
};
void augment_choose(const struct augment_config *c, int width, int height, uint64_t seed, uint64_t draw,
                    struct augment_crop *out);

/* img (C = 1..4) -> out float32 [3, n_px, n_px], CLIP-normalised. Returns 0,
 * or -1 (errorf) for a bad image or size. */
int augment_clip_pixels(const struct image *img, int n_px, const struct augment_config *c, uint64_t seed,
                        uint64_t draw, float *out);

#endif
