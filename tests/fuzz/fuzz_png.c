/* libFuzzer target for the image decoder that img-read uses (PNG and PNM, by
 * magic bytes), in both alpha modes. Beyond "no crash", it checks that the
 * channels match the mode and that a decoded image survives a trip through
 * the PNG writer unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"

static void check_round_trip(const struct image *img)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	if (!fp || png_write(fp, img) < 0)
		abort();
	fclose(fp);
	struct image again;
	if (image_decode(buf, len, IMAGE_KEEP_ALPHA, &again) < 0 || again.width != img->width ||
	    again.height != img->height || again.channels != img->channels ||
	    memcmp(again.pixels, img->pixels, image_bytes(img)))
		abort();
	image_free(&again);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int mode = IMAGE_ON_WHITE; mode <= IMAGE_KEEP_ALPHA; mode++) {
		struct image img;
		if (image_decode(data, size, mode, &img) < 0) {
			if (img.pixels)
				abort();
			continue;
		}
		int c = img.channels;
		if (mode == IMAGE_ON_WHITE ? c != 1 && c != 3 : c < 1 || c > 4)
			abort();
		check_round_trip(&img);
		image_free(&img);
	}
	return 0;
}
