/* PNG encoding through libpng. Errors (a failed write, say) come back as a
 * message through errorf, never on stderr. */
#include "image/image.h"

#include <png.h>
#include <setjmp.h>

#include "core/error.h"

static void on_png_error(png_structp png, png_const_charp msg)
{
	errorf("PNG encoder: %s", msg);
	png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static const int color_type_for_channels[5] = {
	[1] = PNG_COLOR_TYPE_GRAY,
	[2] = PNG_COLOR_TYPE_GRAY_ALPHA,
	[3] = PNG_COLOR_TYPE_RGB,
	[4] = PNG_COLOR_TYPE_RGB_ALPHA,
};

static int encode(png_structp png, png_infop info, FILE *fp, const struct image *img)
{
	if (setjmp(png_jmpbuf(png)))
		return -1;
	png_init_io(png, fp);
	png_set_IHDR(png, info, img->width, img->height, 8, color_type_for_channels[img->channels],
	             PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	size_t stride = (size_t)img->width * img->channels;
	for (int y = 0; y < img->height; y++)
		png_write_row(png, img->pixels + y * stride);
	png_write_end(png, NULL);
	return 0;
}

int png_write(FILE *fp, const struct image *img)
{
	if (img->channels < 1 || img->channels > 4)
		return errorf("cannot write a PNG with %d channels", img->channels);
	if (image_check_size(img->width, img->height, img->channels) < 0)
		return -1;
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, on_png_error, on_png_warning);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	if (!info) {
		png_destroy_write_struct(&png, NULL);
		return errorf("out of memory starting the PNG encoder");
	}
	int rc = encode(png, info, fp, img);
	png_destroy_write_struct(&png, &info);
	if (rc == 0 && (fflush(fp) != 0 || ferror(fp)))
		return errorf("write error");
	return rc;
}
