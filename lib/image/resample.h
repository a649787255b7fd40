/* Image resizing that reproduces Pillow's Image.resize bit for bit.
 *
 * Models trained on images that Pillow resized (CLIP, most torchvision
 * pipelines) see different inputs if the resampler differs by even one
 * level, and their outputs move measurably. So this is not "a good resize"
 * but Pillow 9.4's exact integer arithmetic (src/libImaging/Resample.c and
 * Geometry.c), for 8-bit images of C = 1, 2, 3, 4 channels, which Pillow
 * calls modes L, LA, RGB and RGBA. Checked against Pillow 9.4 on random
 * images of every mode and filter (tests/unit/test_clip_preprocess.c): 0
 * differing bytes.
 *
 * What Pillow does, and so what this does:
 *  - Same size in and out: a plain copy, for every filter and mode.
 *  - NEAREST: output pixel x takes input (int)xo, where xo starts at
 *    scale/2 and has scale = in/out added once per pixel (an accumulated
 *    double, as Pillow's ImagingScaleAffine does). No premultiplication.
 *  - The other filters are separable convolutions, the horizontal pass
 *    first into an 8-bit intermediate, then the vertical one; a pass whose
 *    size does not change is skipped. Per axis: scale = in/out,
 *    fs = max(scale, 1), support = filter support * fs; output i is centred
 *    at (i + 0.5) * scale and reads inputs [xmin, xmax) with
 *    xmin = max((int)(center - support + 0.5), 0) and
 *    xmax = min((int)(center + support + 0.5), in). Input x weighs
 *    K((x - center + 0.5) * (1 / fs)); the weights are divided by their sum
 *    in double, then become 22-bit fixed point, k = (int)(w * 2^22 +- 0.5)
 *    with the sign of w. An output sample is clamp((2^21 + sum in * k) >> 22,
 *    0, 255) in 32-bit integers.
 *  - LA and RGBA (filters other than NEAREST) are premultiplied first,
 *    c' = (t + (t >> 8)) >> 8 with t = c * a + 128, resized, then divided
 *    back: c = min(255 * c' / a, 255) in integers, except that c is left as
 *    it is where a is 0 or 255 (so fully transparent areas keep their
 *    resampled premultiplied colour, usually black).
 *
 * Palette ("P") and 1-bit images are not modes here: Pillow resizes them
 * with NEAREST whatever filter is asked for. Our decoders expand them to
 * L/RGB/RGBA, and NEAREST on the expansion gives the same pixels, so a
 * caller that knows its source was a palette or 1-bit image asks for
 * RESAMPLE_NEAREST. */
#ifndef KNND_IMAGE_RESAMPLE_H
#define KNND_IMAGE_RESAMPLE_H

#include "image/image.h"

/* Numbered as Pillow's Image.Resampling. */
enum resample_filter {
	RESAMPLE_NEAREST = 0,
	RESAMPLE_LANCZOS = 1,  /* windowed sinc, support 3 */
	RESAMPLE_BILINEAR = 2, /* triangle, support 1 */
	RESAMPLE_BICUBIC = 3,  /* Keys cubic with a = -0.5, support 2 */
	RESAMPLE_BOX = 4,      /* support 0.5 */
	RESAMPLE_HAMMING = 5,  /* Hamming-windowed sinc, support 1 */
};

/* The filter named "nearest", "bilinear", "bicubic", "box", "hamming" or
 * "lanczos". Returns 0, or -1 (errorf) for another name. */
int resample_filter_from_name(const char *name, enum resample_filter *filter);

/* Resizes src (C from 1 to 4) to out_w x out_h as Pillow's
 * Image.resize((out_w, out_h), filter) does for the mode of C channels.
 * dst is allocated (image_alloc) and must be freed with image_free.
 * Returns 0, or -1 (errorf) for a bad size or channel count. */
int image_resize(const struct image *src, int out_w, int out_h, enum resample_filter filter,
                 struct image *dst);

/* The crop_w x crop_h window at (crop_x, crop_y) of that resized image,
 * computing only the pixels it needs: the same bytes as image_resize
 * followed by a crop, for less work when the crop is much smaller. The
 * window must lie inside out_w x out_h. */
int image_resize_crop(const struct image *src, int out_w, int out_h, enum resample_filter filter,
                      int crop_x, int crop_y, int crop_w, int crop_h, struct image *dst);

#endif
