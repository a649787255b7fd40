#include "image/contact_sheet.h"

#include <string.h>

#include "core/error.h"
#include "core/tool.h"
#include "image/font.h"

#define GAP_GRAY 208
#define CELL_WHITE 255
#define CAPTION_INK 0
#define CAPTION_PAD 2 /* rows above and below the caption text */

static int row_height(const struct contact_sheet *s)
{
	return s->cell + s->caption_height + SHEET_GAP;
}

static int sheet_width(int cols, int cell)
{
	return SHEET_GAP + cols * (cell + SHEET_GAP);
}

int sheet_init(struct contact_sheet *s, int cols, int cell, bool captions)
{
	memset(s, 0, sizeof *s);
	if (cols < 1 || cell < SHEET_MIN_CELL)
		return errorf("contact sheet needs at least 1 column and cells of %d pixels", SHEET_MIN_CELL);
	s->cols = cols;
	s->cell = cell;
	s->caption_height = captions ? FONT_HEIGHT + 2 * CAPTION_PAD : 0;
	if (image_check_size((int64_t)SHEET_GAP + (int64_t)cols * (cell + SHEET_GAP), SHEET_GAP + row_height(s), 3) < 0)
		return error_prefix("contact sheet of %d columns of %d pixels", cols, cell);
	return 0;
}

void sheet_free(struct contact_sheet *s)
{
	image_free(&s->canvas);
}

static void fill_rect(struct image *img, int x, int y, int w, int h, uint8_t gray)
{
	for (int row = y; row < y + h; row++)
		memset(img->pixels + ((size_t)row * img->width + x) * img->channels, gray, (size_t)w * img->channels);
}

/* Adds a row of cells at the bottom; realloc keeps the rows above in place,
 * and doubling the allocation keeps the copying linear in the sheet size. */
static int grow_one_row(struct contact_sheet *s)
{
	struct image *c = &s->canvas;
	int64_t width = sheet_width(s->cols, s->cell);
	int64_t height = (c->height ? c->height : SHEET_GAP) + (int64_t)row_height(s);
	if (image_check_size(width, height, 3) < 0)
		return error_prefix("contact sheet at image %d", s->count + 1);
	int old_height = c->height;
	c->width = (int)width;
	c->height = (int)height;
	c->channels = 3;
	if (image_bytes(c) > s->capacity) {
		size_t grown = s->capacity * 2 < (size_t)IMAGE_MAX_BYTES ? s->capacity * 2 : (size_t)IMAGE_MAX_BYTES;
		s->capacity = grown > image_bytes(c) ? grown : image_bytes(c);
		c->pixels = xrealloc(c->pixels, s->capacity);
	}
	fill_rect(c, 0, old_height, c->width, c->height - old_height, GAP_GRAY);
	return 0;
}

struct sheet_fit sheet_fit(int w, int h, int cell)
{
	struct sheet_fit f;
	if (w <= cell && h <= cell) {
		int k = cell / w < cell / h ? cell / w : cell / h;
		f.width = w * k;
		f.height = h * k;
	} else if (w >= h) {
		f.width = cell;
		f.height = (int)(((int64_t)h * cell + w / 2) / w);
	} else {
		f.height = cell;
		f.width = (int)(((int64_t)w * cell + h / 2) / h);
	}
	f.width += !f.width;
	f.height += !f.height;
	f.x = (cell - f.width) / 2;
	f.y = (cell - f.height) / 2;
	return f;
}

/* Source span [*lo, *hi) that output index i of n covers in a side of size. */
static void box_span(int i, int n, int size, int *lo, int *hi)
{
	*lo = (int)((int64_t)i * size / n);
	*hi = (int)((int64_t)(i + 1) * size / n);
	if (*hi <= *lo)
		*hi = *lo + 1;
}

/* Writes img scaled to f.width x f.height at (x, y) of the RGB canvas. Each
 * output pixel averages the source box it covers (after putting alpha onto
 * white); when enlarging that box is a single pixel. */
static void blit_scaled(struct image *canvas, int x, int y, const struct image *img, struct sheet_fit f)
{
	int c = img->channels;
	bool has_alpha = c == 2 || c == 4;
	for (int oy = 0; oy < f.height; oy++) {
		int y0, y1;
		box_span(oy, f.height, img->height, &y0, &y1);
		uint8_t *out = canvas->pixels + ((size_t)(y + oy) * canvas->width + x) * 3;
		for (int ox = 0; ox < f.width; ox++, out += 3) {
			int x0, x1;
			box_span(ox, f.width, img->width, &x0, &x1);
			uint64_t sum[3] = { 0, 0, 0 };
			for (int sy = y0; sy < y1; sy++)
				for (int sx = x0; sx < x1; sx++) {
					const uint8_t *p = img->pixels + ((size_t)sy * img->width + sx) * c;
					uint8_t a = has_alpha ? p[c - 1] : 255;
					for (int k = 0; k < 3; k++)
						sum[k] += composite_on_white(p[c >= 3 ? k : 0], a);
				}
			uint64_t n = (uint64_t)(y1 - y0) * (x1 - x0);
			for (int k = 0; k < 3; k++)
				out[k] = (uint8_t)((sum[k] + n / 2) / n);
		}
	}
}

int sheet_add(struct contact_sheet *s, const struct image *img, const char *caption)
{
	if (s->count % s->cols == 0 && grow_one_row(s) < 0)
		return -1;
	int row = s->count / s->cols, col = s->count % s->cols;
	int x = SHEET_GAP + col * (s->cell + SHEET_GAP);
	int y = SHEET_GAP + row * row_height(s);
	fill_rect(&s->canvas, x, y, s->cell, s->cell + s->caption_height, CELL_WHITE);
	struct sheet_fit f = sheet_fit(img->width, img->height, s->cell);
	blit_scaled(&s->canvas, x + f.x, y + f.y, img, f);
	if (s->caption_height && caption && *caption) {
		int w = font_text_width(caption, s->cell);
		font_draw_text(&s->canvas, x + (s->cell - w) / 2, y + s->cell + CAPTION_PAD, s->cell, caption, CAPTION_INK);
	}
	s->count++;
	return 0;
}

void sheet_finish(struct contact_sheet *s)
{
	struct image *c = &s->canvas;
	if (s->count == 0 || s->count >= s->cols)
		return;
	int width = sheet_width(s->count, s->cell);
	for (int row = 0; row < c->height; row++)
		memmove(c->pixels + (size_t)row * width * 3, c->pixels + (size_t)row * c->width * 3, (size_t)width * 3);
	c->width = width;
}
