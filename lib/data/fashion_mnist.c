#include "data/fashion_mnist.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/tool.h"

/* Zalando's class list, in label order. */
const char *const fashion_mnist_class_names[FASHION_MNIST_CLASSES] = {
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

static int check_images(struct mnist_reader *m)
{
	struct idx_file *f = m->images;
	if (f->type != IDX_UINT8)
		return errorf("%s: images must be unsigned bytes (IDX type 0x08), not %s",
		              f->path, dtype_name(f->dtype));
	if (f->ndim != 3 && f->ndim != 4)
		return errorf("%s: images need 3 dimensions (count, rows, cols), not %d",
		              f->path, f->ndim);
	int64_t channels = f->ndim == 4 ? f->dims[3] : 1;
	if (channels > 4)
		return errorf("%s: images have %" PRId64 " channels (1 to 4 supported)",
		              f->path, channels);
	m->shape[0] = f->dims[1];
	m->shape[1] = f->dims[2];
	m->shape[2] = channels;
	return 0;
}

static int check_labels(struct mnist_reader *m)
{
	struct idx_file *f = m->labels;
	if (f->ndim != 1)
		return errorf("%s: labels need 1 dimension, not %d", f->path, f->ndim);
	if (f->type == IDX_FLOAT32 || f->type == IDX_FLOAT64)
		return errorf("%s: labels must be integers, not %s", f->path, dtype_name(f->dtype));
	if (f->count != m->images->count)
		return errorf("%s: %" PRId64 " labels for %" PRId64 " images in %s",
		              f->path, f->count, m->images->count, m->images->path);
	return 0;
}

int mnist_reader_open(struct mnist_reader *m, const char *images_path, const char *labels_path,
                      const char *const *class_names, int nclasses)
{
	memset(m, 0, sizeof *m);
	m->class_names = class_names;
	m->nclasses = class_names ? nclasses : 0;
	m->images = idx_open(images_path, "image");
	if (!m->images || check_images(m) < 0)
		goto fail;
	if (labels_path) {
		m->labels = idx_open(labels_path, "label");
		if (!m->labels || check_labels(m) < 0)
			goto fail;
	}
	m->id_prefix = mnist_id_prefix(images_path);
	return 0;
fail:
	mnist_reader_close(m);
	return -1;
}

int mnist_reader_seek(struct mnist_reader *m, int64_t index)
{
	if (index > m->images->count)
		index = m->images->count;
	if (idx_seek(m->images, index) < 0)
		return -1;
	return m->labels ? idx_seek(m->labels, index) : 0;
}

/* Adds label and text for the image just read. */
static int read_label(struct mnist_reader *m, struct record *r)
{
	int rc = idx_read_item(m->labels, m->label_item);
	if (rc <= 0) /* 0 cannot happen: the counts were checked to match */
		return rc < 0 ? -1 : errorf("%s: fewer labels than images", m->labels->path);
	int64_t label = idx_item_int(m->labels, m->label_item);
	record_set_int(r, "label", label);
	if (!m->class_names)
		return 0;
	if (label < 0 || label >= m->nclasses)
		return errorf("%s: label %" PRId64 " of image %" PRId64 " has no class name (%d classes)",
		              m->labels->path, label, m->labels->next - 1, m->nclasses);
	record_set_str(r, "text", m->class_names[label]);
	return 0;
}

/* Both files must end where the images do. */
static int check_ends(struct mnist_reader *m)
{
	if (idx_check_end(m->images) < 0)
		return -1;
	return m->labels ? idx_check_end(m->labels) : 0;
}

int mnist_reader_read(struct mnist_reader *m, struct record *r)
{
	record_clear(r);
	int64_t index = m->images->next;
	if (index >= m->images->count)
		return check_ends(m) < 0 ? -1 : 0;

	size_t idlen = strlen(m->id_prefix) + 32;
	char *id = xmalloc(idlen);
	snprintf(id, idlen, "%s-%06" PRId64, m->id_prefix, index);
	record_set_str(r, "id", id);
	free(id);
	struct tensor *img = record_new_tensor(r, "image", DT_UINT8, 3, m->shape);
	if (idx_read_item(m->images, img->data) < 0)
		return -1;
	if (m->labels && read_label(m, r) < 0)
		return -1;
	return 1;
}

void mnist_reader_close(struct mnist_reader *m)
{
	idx_close(m->images);
	idx_close(m->labels);
	free(m->id_prefix);
	memset(m, 0, sizeof *m);
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* Where "-images-idx3-" (or "-images.idx3-", as some mirrors name it)
 * starts in the file name, or NULL. */
static const char *images_marker(const char *path)
{
	const char *base = base_name(path);
	for (const char *p = strstr(base, "-images"); p; p = strstr(p + 1, "-images"))
		if ((p[7] == '-' || p[7] == '.') && !strncmp(p + 8, "idx3-", 5))
			return p;
	return NULL;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

char *mnist_labels_path(const char *images_path)
{
	const char *mark = images_marker(images_path);
	if (!mark)
		return NULL;
	/* Same name with "labels" and "idx1"; then the other compression. */
	size_t len = strlen(images_path), at = mark - images_path;
	char *same = xmalloc(len + 4);
	memcpy(same, images_path, len + 1);
	memcpy(same + at + 1, "labels", 6);
	memcpy(same + at + 8, "idx1", 4);
	if (access(same, F_OK) == 0)
		return same;
	if (ends_with(same, ".gz"))
		same[strlen(same) - 3] = 0;
	else
		strcat(same, ".gz");
	if (access(same, F_OK) == 0)
		return same;
	free(same);
	return NULL;
}

char *mnist_id_prefix(const char *images_path)
{
	if (!strcmp(images_path, "-"))
		return xstrdup("stdin");
	const char *mark = images_marker(images_path);
	const char *base = base_name(images_path);
	if (mark)
		return xstrndup(base, mark - base);
	char *name = xstrdup(base);
	if (ends_with(name, ".gz"))
		name[strlen(name) - 3] = 0;
	char *dot = strrchr(name, '.');
	if (dot && dot != name)
		*dot = 0;
	return name;
}

int mnist_load_class_names(const char *path, char ***names)
{
	FILE *fp = fopen(path, "r");
	if (!fp)
		return errorf("%s: %s", path, strerror(errno));
	char **list = NULL, *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int n = 0;
	while ((len = getline(&line, &cap, fp)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		list = xrealloc(list, (n + 1) * sizeof *list);
		list[n++] = xstrndup(line, len);
	}
	free(line);
	int failed = ferror(fp);
	fclose(fp);
	if (failed || n == 0) {
		mnist_free_class_names(list, n);
		return errorf("%s: %s", path, failed ? "read error" : "no class names");
	}
	*names = list;
	return n;
}

void mnist_free_class_names(char **names, int n)
{
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
}
