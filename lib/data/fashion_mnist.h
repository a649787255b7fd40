/* (Fashion-)MNIST as image records: an images IDX file, optionally paired
 * with its labels IDX file, read one record at a time:
 *
 *   id     "t10k-000123"  (file stem and index)
 *   image  uint8 [rows, cols, 1]
 *   label  int            (with a labels file)
 *   text   class name     (with a labels file and class names)
 */
#ifndef KNND_DATA_FASHION_MNIST_H
#define KNND_DATA_FASHION_MNIST_H

#include <stdint.h>

#include "data/idx.h"
#include "stream/record.h"

#define FASHION_MNIST_CLASSES 10
extern const char *const fashion_mnist_class_names[FASHION_MNIST_CLASSES];

struct mnist_reader {
	struct idx_file *images;
	struct idx_file *labels;   /* NULL: records have no label or text */
	char *id_prefix;           /* "t10k" */
	const char *const *class_names; /* label -> text; NULL: no text */
	int nclasses;
	int64_t shape[3];          /* of one image: rows, cols, channels */
	uint8_t label_item[8];     /* one label as read */
};

/* Opens the images file and, unless labels_path is NULL, the labels file,
 * and checks that they describe the same number of items. class_names
 * (nclasses of them, kept by the caller) name the labels; NULL gives no
 * text. Returns 0 or -1 (errorf, message starts with the failing path). */
int mnist_reader_open(struct mnist_reader *m, const char *images_path, const char *labels_path,
                      const char *const *class_names, int nclasses);

/* Makes the next record the one for image `index`; an index past the end
 * leaves nothing to read. Returns 0 or -1 (errorf). */
int mnist_reader_seek(struct mnist_reader *m, int64_t index);

/* Reads the next record into r (cleared first). Returns 1, 0 at the end,
 * -1 on error (errorf). */
int mnist_reader_read(struct mnist_reader *m, struct record *r);

void mnist_reader_close(struct mnist_reader *m);

/* "dir/x-labels-idx1-ubyte.gz" for "dir/x-images-idx3-ubyte.gz" (with or
 * without .gz), the way MNIST files come in pairs; NULL (nothing
 * allocated) when images_path is not named that way. Caller frees. */
char *mnist_labels_path(const char *images_path);

/* The id prefix for a file: its name up to "-images-idx" ("t10k"), else its
 * name without ".gz" and one more extension. Caller frees. */
char *mnist_id_prefix(const char *images_path);

/* Reads class names, one per line (blank lines are names too, so line N
 * is always label N-1). Returns the number of names and sets *names (free
 * with mnist_free_class_names), or -1 (errorf). */
int mnist_load_class_names(const char *path, char ***names);
void mnist_free_class_names(char **names, int n);

#endif
