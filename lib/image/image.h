/* Images in memory and the codecs that read and write them.
 *
 * An image holds 8-bit samples, interleaved and row-major: exactly the bytes
 * of a stream's `image` field, uint8 [H,W,C]. C is 1 (gray), 2 (gray+alpha),
 * 3 (RGB) or 4 (RGBA). Decoders pick the format from the magic bytes. */
#ifndef KNND_IMAGE_IMAGE_H
#define KNND_IMAGE_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct record;

/* Larger claims are refused before anything is allocated. */
#define IMAGE_MAX_SIDE 65535
#define IMAGE_MAX_BYTES ((int64_t)1 << 30)

struct image {
	int width, height, channels;
	uint8_t *pixels; /* height * width * channels bytes */
	/* Pillow's name for the file's own mode ("1", "L", "I", "LA", "P", "RGB",
	 * "RGBA"), set by the decoders. Pillow resizes "P" and "1" images with
	 * NEAREST whatever filter is asked for, so exact preprocessing needs it. */
	char mode[8];
};

/* What a decoder does with transparency. */
enum image_alpha {
	IMAGE_ON_WHITE,   /* composite alpha onto white: C is 1 or 3 */
	IMAGE_KEEP_ALPHA, /* the file's own channels, samples exactly as decoded */
};

/* 0 if a width x height x channels image is within the limits, else -1 (errorf). */
int image_check_size(int64_t width, int64_t height, int channels);
/* Allocates a zeroed image after image_check_size; returns 0 or -1 (errorf). */
int image_alloc(struct image *img, int64_t width, int64_t height, int channels);
void image_free(struct image *img);
size_t image_bytes(const struct image *img);

/* Decodes a PNG or binary PNM (P5/P6) from memory. Returns 0, or -1 with a
 * message (errorf) that names the problem; img is then empty. */
int image_decode(const void *data, size_t len, enum image_alpha alpha, struct image *img);
/* Reads a whole file and decodes it; messages do not repeat the path. */
int image_read_file(const char *path, enum image_alpha alpha, struct image *img);

/* The id img-read gives a file: its name without directories and without
 * the last extension ("a/b.x.png" -> "b.x"; ".png" stays ".png"). Free it. */
char *image_id_from_path(const char *path);

/* The codecs behind image_decode, for callers that know the format. */
int png_decode(const void *data, size_t len, enum image_alpha alpha, struct image *img);
int pnm_decode(const void *data, size_t len, struct image *img);
/* Writes img as an 8-bit PNG (gray, gray+alpha, RGB or RGBA by C). */
int png_write(FILE *fp, const struct image *img);

/* One sample over white, rounded to nearest: (c*a + 255*(255-a) + 127) / 255. */
static inline uint8_t composite_on_white(uint8_t c, uint8_t a)
{
	return (uint8_t)(((unsigned)c * a + 255u * (255u - a) + 127u) / 255u);
}

/* Drops the alpha channel of a C=2 or C=4 image in place, compositing every
 * pixel onto white; other images are left alone. */
void image_composite_on_white(struct image *img);

/* Moves img's pixels into a uint8 [H,W,C] tensor field; img is left empty. */
void image_to_record(struct record *r, const char *key, struct image *img);
/* Points view at the pixels of a record's image field (no copy: the record
 * keeps them). -1 (errorf) if the field is absent or not uint8 [H,W,C] with
 * C from 1 to 4. */
int image_from_record(const struct record *r, const char *key, struct image *view);

#endif
