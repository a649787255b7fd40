/* A held-out set of images: the image records of a stream, converted into
 * one float array, as a trainer keeps them to measure its model on. */
#ifndef KNND_IMAGE_IMAGE_SET_H
#define KNND_IMAGE_IMAGE_SET_H

#include <stddef.h>

#include "image/image.h"
#include "stream/record.h"

/* Writes the per floats of record number i (from 0), whose 'image' field
 * view shows, to out; returns 0, or -1 (errorf) to refuse the record. */
typedef int (*image_set_convert_fn)(void *ctx, const struct record *r, const struct image *view, int i,
                                    float *out);

/* Reads the first max image records (field 'image') of path into *x,
 * converting each with convert. Returns how many (at least 1), or -1 with
 * errorf: the reader's message, "PATH: record N: ..." for a record that has
 * no image or that convert refuses, or "PATH: no image records". *x (NULL
 * before the call) is the caller's to free either way. */
int image_set_read(const char *path, int max, size_t per, image_set_convert_fn convert, void *ctx, float **x);

#endif
