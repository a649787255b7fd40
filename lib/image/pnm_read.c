/* Binary PGM (P5) and PPM (P6) decoding.
 *
 * The header is the magic, width, height and maxval as decimal numbers
 * separated by whitespace and '#' comments, then exactly one whitespace byte
 * before the samples. Samples are one byte when maxval < 256, else two bytes
 * big-endian; either way they are scaled to 0..255 as round(v * 255 / maxval),
 * which leaves maxval 255 unchanged. Bytes after the first image are ignored. */
#include "image/image.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

struct pnm_cursor {
	const uint8_t *p;
	size_t len, pos;
};

static void skip_space_and_comments(struct pnm_cursor *c)
{
	while (c->pos < c->len) {
		if (c->p[c->pos] == '#') {
			while (c->pos < c->len && c->p[c->pos] != '\n' && c->p[c->pos] != '\r')
				c->pos++;
		} else if (isspace(c->p[c->pos])) {
			c->pos++;
		} else {
			break;
		}
	}
}

/* Parses one header number into *out, refusing anything above max. */
static int header_number(struct pnm_cursor *c, const char *what, long max, long *out)
{
	skip_space_and_comments(c);
	if (c->pos >= c->len)
		return errorf("PNM header is truncated before the %s", what);
	if (!isdigit(c->p[c->pos]))
		return errorf("PNM header has '%c' where the %s should be", isprint(c->p[c->pos]) ? c->p[c->pos] : '?', what);
	long v = 0;
	while (c->pos < c->len && isdigit(c->p[c->pos])) {
		v = v * 10 + (c->p[c->pos++] - '0');
		if (v > max)
			return errorf("PNM %s exceeds %ld", what, max);
	}
	*out = v;
	return 0;
}

int pnm_decode(const void *data, size_t len, struct image *img)
{
	struct pnm_cursor c = { data, len, 2 };
	memset(img, 0, sizeof *img);
	if (len < 2 || c.p[0] != 'P')
		return errorf("not a PNM image");
	if (c.p[1] != '5' && c.p[1] != '6')
		return errorf("unsupported PNM format P%c (only binary P5 and P6 are read)", c.p[1]);
	int channels = c.p[1] == '5' ? 1 : 3;
	long width, height, maxval;
	/* Sides are capped a little above the limit so the size check names them. */
	if (header_number(&c, "width", 10L * IMAGE_MAX_SIDE, &width) < 0 ||
	    header_number(&c, "height", 10L * IMAGE_MAX_SIDE, &height) < 0 ||
	    header_number(&c, "maxval", 65535, &maxval) < 0)
		return -1;
	if (maxval < 1)
		return errorf("PNM maxval is 0 (must be 1 to 65535)");
	if (c.pos >= len || !isspace(c.p[c.pos]))
		return errorf("PNM header does not end in whitespace after the maxval");
	c.pos++;
	if (image_check_size(width, height, channels) < 0)
		return -1;
	size_t nsamples = (size_t)width * height * channels;
	size_t sample_bytes = maxval < 256 ? 1 : 2;
	if (len - c.pos < nsamples * sample_bytes)
		return errorf("PNM data is truncated: %zu of %zu bytes", len - c.pos, nsamples * sample_bytes);

	image_alloc(img, width, height, channels);
	snprintf(img->mode, sizeof img->mode, "%s", channels == 3 ? "RGB" : maxval > 255 ? "I" : "L");
	const uint8_t *in = c.p + c.pos;
	for (size_t i = 0; i < nsamples; i++) {
		unsigned v = sample_bytes == 1 ? in[i] : (unsigned)in[2 * i] << 8 | in[2 * i + 1];
		if (v > maxval) {
			image_free(img);
			return errorf("PNM sample %u exceeds maxval %ld", v, maxval);
		}
		img->pixels[i] = (uint8_t)((v * 255u + (unsigned)maxval / 2) / (unsigned)maxval);
	}
	return 0;
}
