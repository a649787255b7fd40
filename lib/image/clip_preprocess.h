/* CLIP's image preprocessing, bit-exact with the reference.
 *
 * The reference is OpenAI CLIP's `_transform(n_px)` on Pillow 9.4 and
 * torchvision 0.14: Resize(n_px, BICUBIC) -> CenterCrop(n_px) ->
 * convert("RGB") -> ToTensor() -> Normalize(mean, std). CLIP's features move
 * by about 1e-2 when every pixel moves by one level, so "close" is not
 * enough; every step below reproduces the reference's integer and float
 * arithmetic exactly (../shared/golden/clip/README.md, "Preprocessing"):
 *
 *  1. Geometry: the short side becomes n_px and the long side
 *     (int)(n_px * long / short), truncated. A side that already has its
 *     size is not resampled.
 *  2. Resize in the image's own mode (resample.h: Pillow's fixed-point
 *     separable resampler, horizontal pass first, 8-bit in between, alpha
 *     premultiplied and divided back for LA/RGBA).
 *  3. Center crop at left = round((w - n_px) / 2), top likewise, rounding
 *     halves to even as Python's round() does (2.5 -> 2).
 *  4. To RGB: gray is replicated, alpha is dropped, never composited.
 *  5. p = ((float)u8 / 255.0f - mean[c]) / std[c] in float32, in that
 *     order, CHW.
 * The result equals the golden `image_pixels` with max abs error 0.
 *
 * Input is the image as decoded with IMAGE_KEEP_ALPHA, in the file's own
 * channels: C = 1 (L), 2 (LA), 3 (RGB), 4 (RGBA). Where that differs from
 * what Pillow opens, so does the result:
 *  - Palette and 1-bit files: Pillow keeps them as "P"/"1" and resizes with
 *    NEAREST whatever was asked; our decoder expands them, so pass
 *    RESAMPLE_NEAREST when the source is known to be one (exact then;
 *    RESAMPLE_BICUBIC gives a smoother, non-reference result).
 *  - 16-bit gray files: Pillow opens them as 32-bit "I" and resamples in
 *    floating point; our decoder keeps the high byte. 16-bit RGB, RGBA and
 *    gray+alpha agree (Pillow keeps the high byte too). */
#ifndef KNND_IMAGE_CLIP_PREPROCESS_H
#define KNND_IMAGE_CLIP_PREPROCESS_H

#include "image/image.h"
#include "image/resample.h"

/* CLIP's normalisation constants (float32, as torchvision uses them). */
extern const float clip_pixel_mean[3], clip_pixel_std[3];

/* Where an image of width x height goes for a side of n_px: its size after
 * Resize and the crop's top-left corner in the resized image. */
struct clip_geometry {
	int resized_w, resized_h;
	int crop_x, crop_y;
};

/* Fills g; -1 (errorf) if a size is not positive or the resized long side
 * exceeds IMAGE_MAX_SIDE. */
int clip_geometry(int width, int height, int n_px, struct clip_geometry *g);

/* Preprocesses img into out, float32 [3, n_px, n_px] (CHW), with `filter`
 * for the resize: RESAMPLE_BICUBIC is the reference's; RESAMPLE_NEAREST
 * reproduces it for palette and 1-bit sources (see above). Returns 0, or -1
 * (errorf) for a bad image or size. */
int clip_preprocess(const struct image *img, int n_px, enum resample_filter filter, float *out);

#endif
