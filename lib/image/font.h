/* A small bitmap font for captions: printable ASCII in 5x8 cells (capitals
 * use the top 7 rows, descenders the last). Designed for this project. */
#ifndef KNND_IMAGE_FONT_H
#define KNND_IMAGE_FONT_H

#include <stdint.h>

#include "image/image.h"

#define FONT_WIDTH 5
#define FONT_HEIGHT 8
#define FONT_ADVANCE (FONT_WIDTH + 1) /* one blank column between glyphs */

/* FONT_HEIGHT rows for byte c; bit 4 of a row is its leftmost pixel. Bytes
 * outside printable ASCII get '?'. */
const uint8_t *font_glyph(unsigned char c);

/* Width in pixels of text as font_draw_text draws it, at most max_width. */
int font_text_width(const char *text, int max_width);

/* Draws text with its top-left corner at (x, y) in gray level `ink` on every
 * color channel (alpha, if any, made opaque), stopping before the first glyph
 * that would end beyond x + max_width; pixels outside img are skipped. UTF-8
 * sequences are drawn as one '?'. Returns the width drawn. */
int font_draw_text(struct image *img, int x, int y, int max_width, const char *text, uint8_t ink);

#endif
