/* PNG decoding through libpng, from memory.
 *
 * libpng reports errors by calling our handler, which records the message and
 * longjmps back to decode_rows(); warnings are dropped so nothing reaches
 * stderr. Samples come out 8-bit: 16-bit ones keep their high byte (as
 * Pillow does for RGB), low bit depths are scaled up to 0..255. */
#include "image/image.h"

#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

struct png_source {
	const uint8_t *data;
	size_t len, pos;
};

static void on_png_error(png_structp png, png_const_charp msg)
{
	errorf("bad PNG: %s", msg);
	png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static void read_from_memory(png_structp png, png_bytep out, size_t n)
{
	struct png_source *src = png_get_io_ptr(png);
	if (n > src->len - src->pos)
		png_error(png, "file is truncated");
	memcpy(out, src->data + src->pos, n);
	src->pos += n;
}

/* Asks libpng for 8-bit samples in the channels the caller wants. A tRNS
 * chunk becomes alpha for palettes always, and for gray and RGB only when
 * compositing: in keep-alpha mode they keep their own channels, as Pillow
 * keeps mode L or RGB and holds the transparent color aside. */
static void set_transforms(png_structp png, png_infop info, enum image_alpha alpha)
{
	int color = png_get_color_type(png, info);
	int depth = png_get_bit_depth(png, info);
	bool has_trns = png_get_valid(png, info, PNG_INFO_tRNS);
	if (color == PNG_COLOR_TYPE_PALETTE)
		png_set_palette_to_rgb(png);
	else if (depth < 8)
		png_set_expand_gray_1_2_4_to_8(png);
	if (has_trns && (color == PNG_COLOR_TYPE_PALETTE || alpha == IMAGE_ON_WHITE))
		png_set_tRNS_to_alpha(png);
	if (depth == 16)
		png_set_strip_16(png);
}

/* Pillow's mode for a PNG's colour type and bit depth. */
static const char *pillow_mode(int color, int depth)
{
	switch (color) {
	case PNG_COLOR_TYPE_GRAY: return depth == 1 ? "1" : depth == 16 ? "I" : "L";
	case PNG_COLOR_TYPE_GRAY_ALPHA: return "LA";
	case PNG_COLOR_TYPE_PALETTE: return "P";
	case PNG_COLOR_TYPE_RGB_ALPHA: return "RGBA";
	default: return "RGB";
	}
}

/* Everything between setjmp and the last libpng call lives here, and keeps
 * its state in *img, so nothing it changed is lost when libpng longjmps. */
static int decode_rows(png_structp png, png_infop info, struct png_source *src,
                       enum image_alpha alpha, struct image *img)
{
	if (setjmp(png_jmpbuf(png)))
		return -1;
	png_set_read_fn(png, src, read_from_memory);
	png_set_user_limits(png, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
	png_read_info(png, info);
	const char *mode = pillow_mode(png_get_color_type(png, info), png_get_bit_depth(png, info));
	set_transforms(png, info, alpha);
	int passes = png_set_interlace_handling(png);
	png_read_update_info(png, info);

	png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
	int channels = png_get_channels(png, info);
	if (image_alloc(img, width, height, channels) < 0)
		return -1;
	snprintf(img->mode, sizeof img->mode, "%s", mode);
	if (png_get_rowbytes(png, info) != (size_t)width * channels)
		return errorf("bad PNG: unexpected row size");
	/* Interlaced images fill in the same rows on every pass. */
	size_t stride = (size_t)width * channels;
	for (int pass = 0; pass < passes; pass++)
		for (png_uint_32 y = 0; y < height; y++)
			png_read_row(png, img->pixels + y * stride, NULL);
	png_read_end(png, NULL);
	return 0;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* IHDR must come first, right after the signature: checking its size here
 * gives a clear message before libpng sees the file. */
static int check_claimed_size(const uint8_t *p, size_t len)
{
	if (len < 24 || memcmp(p + 12, "IHDR", 4))
		return 0;
	return image_check_size(get_be32(p + 16), get_be32(p + 20), 1);
}

int png_decode(const void *data, size_t len, enum image_alpha alpha, struct image *img)
{
	memset(img, 0, sizeof *img);
	if (check_claimed_size(data, len) < 0)
		return error_prefix("bad PNG");
	png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, on_png_error, on_png_warning);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	if (!info) {
		png_destroy_read_struct(&png, NULL, NULL);
		return errorf("out of memory starting the PNG decoder");
	}
	struct png_source src = { data, len, 0 };
	int rc = decode_rows(png, info, &src, alpha, img);
	png_destroy_read_struct(&png, &info, NULL);
	if (rc < 0) {
		image_free(img);
		return -1;
	}
	if (alpha == IMAGE_ON_WHITE)
		image_composite_on_white(img);
	return 0;
}
