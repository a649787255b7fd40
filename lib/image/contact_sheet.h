/* A contact sheet: many images tiled into one RGB image.
 *
 * Each image is scaled to fit a square cell (enlarged by a whole factor, so
 * pixels stay sharp, or reduced with a box filter), centered on white, with an
 * optional caption under it; gray gaps separate the cells. The sheet grows by
 * one row of cells at a time, so memory is the sheet itself, and it refuses
 * to grow beyond the image size limits. */
#ifndef KNND_IMAGE_CONTACT_SHEET_H
#define KNND_IMAGE_CONTACT_SHEET_H

#include <stdbool.h>

#include "image/image.h"

#define SHEET_GAP 4          /* pixels between cells and around the sheet */
#define SHEET_MIN_CELL 8

struct contact_sheet {
	int cols;            /* cells per row */
	int cell;            /* side of the square picture area of a cell */
	int caption_height;  /* rows under the picture for its caption; 0: none */
	int count;           /* images placed */
	struct image canvas; /* RGB; empty until the first image */
	size_t capacity;     /* bytes allocated for canvas.pixels */
};

/* Returns 0, or -1 (errorf) if even one row of cells would be too large. */
int sheet_init(struct contact_sheet *s, int cols, int cell, bool captions);
/* Places img (any C from 1 to 4; alpha goes onto white) in the next cell,
 * with caption (NULL or "" for none) clipped to the cell width. Returns 0,
 * or -1 (errorf) if the sheet would exceed the size limits. */
int sheet_add(struct contact_sheet *s, const struct image *img, const char *caption);
/* Trims a single row to the cells used, so a few images make a small sheet. */
void sheet_finish(struct contact_sheet *s);
void sheet_free(struct contact_sheet *s);

/* Where sheet_add puts an image of w x h: scaled size and offset in the cell. */
struct sheet_fit {
	int width, height, x, y;
};
struct sheet_fit sheet_fit(int w, int h, int cell);

#endif
