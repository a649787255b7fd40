/* IDX files, the format of MNIST and Fashion-MNIST, read one item at a time.
 *
 * An IDX file is a magic number (0x00 0x00 TYPE NDIM), NDIM big-endian
 * uint32 dimensions, then the data in C order, big-endian. The first
 * dimension counts the items (images, labels); the others give each item's
 * shape. Files may be gzip-compressed: zlib reads plain and gzipped files
 * through the same calls, so nothing here cares which it is.
 *
 * Memory is one item, never the whole file: Fashion-MNIST's 60000 training
 * images stream through a 784-byte buffer. */
#ifndef KNND_DATA_IDX_H
#define KNND_DATA_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "stream/tensor.h"

/* The TYPE byte of the magic number. */
enum idx_type {
	IDX_UINT8 = 0x08,
	IDX_INT8 = 0x09,
	IDX_INT16 = 0x0B,
	IDX_INT32 = 0x0C,
	IDX_FLOAT32 = 0x0D,
	IDX_FLOAT64 = 0x0E,
};

#define IDX_MAX_DIMS 8
/* Larger items are a corrupt header, not data: refuse before allocating. */
#define IDX_MAX_ITEM_BYTES ((size_t)1 << 30)

struct idx_file {
	char *path;            /* as given; "stdin" for "-" */
	const char *item_noun; /* "item", or what the caller calls one ("image") */
	enum idx_type type;
	enum dtype dtype;      /* the tensor dtype of one element */
	int ndim;              /* of the whole file; each item has ndim - 1 */
	int64_t dims[IDX_MAX_DIMS];
	int64_t count;         /* dims[0]: number of items */
	size_t item_bytes;     /* one item, all its elements */
	int64_t next;          /* index of the item the next read returns */
	int at_end;            /* the end of the data has been checked */
	void *gz;              /* gzFile, kept out of this header */
};

/* Opens path ("-" for stdin) and reads its header. `item_noun` names one
 * item in messages ("truncated at image 513 of 10000"); NULL means "item".
 * Returns NULL on error (errorf, message starts with the path). */
struct idx_file *idx_open(const char *path, const char *item_noun);

/* Positions the file so that the next read returns item `index`
 * (0 <= index <= count). Returns 0 or -1 (errorf). */
int idx_seek(struct idx_file *f, int64_t index);

/* Reads the next item's item_bytes bytes into buf, converted to
 * little-endian elements as tensors hold them. Returns 1 for an item, 0
 * after the last one (once the file is checked to end there), -1 on a
 * truncated, corrupt or overlong file (errorf). */
int idx_read_item(struct idx_file *f, void *buf);

/* After the last item: checks that the file ends there (an intact gzip
 * trailer, no extra bytes). Returns 0 or -1 (errorf). */
int idx_check_end(struct idx_file *f);

/* Value of a one-element integer item (a label) read by idx_read_item. */
int64_t idx_item_int(const struct idx_file *f, const void *item);

void idx_close(struct idx_file *f);

#endif
