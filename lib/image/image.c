#include "image/image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/tool.h"

/* A 16-bit PNM at the pixel limit is twice as large on disk. */
#define IMAGE_MAX_FILE (2 * IMAGE_MAX_BYTES + 4096)

int image_check_size(int64_t width, int64_t height, int channels)
{
	if (width < 1 || height < 1)
		return errorf("image has zero size (%lldx%lld)", (long long)width, (long long)height);
	if (width > IMAGE_MAX_SIDE || height > IMAGE_MAX_SIDE)
		return errorf("image is %lldx%lld pixels (limit %d on a side)", (long long)width,
		              (long long)height, IMAGE_MAX_SIDE);
	if (width * height * channels > IMAGE_MAX_BYTES)
		return errorf("image of %lldx%lldx%d needs more than %lld bytes", (long long)width,
		              (long long)height, channels, (long long)IMAGE_MAX_BYTES);
	return 0;
}

int image_alloc(struct image *img, int64_t width, int64_t height, int channels)
{
	memset(img, 0, sizeof *img);
	if (image_check_size(width, height, channels) < 0)
		return -1;
	img->width = (int)width;
	img->height = (int)height;
	img->channels = channels;
	img->pixels = xcalloc(image_bytes(img), 1);
	return 0;
}

void image_free(struct image *img)
{
	free(img->pixels);
	memset(img, 0, sizeof *img);
}

size_t image_bytes(const struct image *img)
{
	return (size_t)img->width * img->height * img->channels;
}

static const uint8_t png_magic[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

int image_decode(const void *data, size_t len, enum image_alpha alpha, struct image *img)
{
	const uint8_t *p = data;
	memset(img, 0, sizeof *img);
	if (len == 0)
		return errorf("empty file");
	if (len >= sizeof png_magic && !memcmp(p, png_magic, sizeof png_magic))
		return png_decode(data, len, alpha, img);
	if (len >= 2 && p[0] == 'P' && p[1] >= '1' && p[1] <= '7')
		return pnm_decode(data, len, img);
	return errorf("not a PNG or PNM image");
}

/* Reads all of fd into a malloc'd buffer; the size of a regular file is only
 * a hint, so pipes and growing files work too. */
static int read_all(int fd, uint8_t **out, size_t *len)
{
	struct stat st;
	bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	if (regular && st.st_size > IMAGE_MAX_FILE)
		return errorf("file is larger than %lld bytes", (long long)IMAGE_MAX_FILE);
	size_t cap = regular && st.st_size > 0 ? (size_t)st.st_size + 1 : 65536;
	size_t n = 0;
	uint8_t *buf = NULL;
	for (;;) {
		if (cap > IMAGE_MAX_FILE)
			cap = IMAGE_MAX_FILE + 1;
		buf = xrealloc(buf, cap);
		ssize_t got = read(fd, buf + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int e = errno;
			free(buf);
			return errorf("read error: %s", strerror(e));
		}
		if (got == 0)
			break;
		n += (size_t)got;
		if (n > IMAGE_MAX_FILE) {
			free(buf);
			return errorf("file is larger than %lld bytes", (long long)IMAGE_MAX_FILE);
		}
		if (n == cap)
			cap *= 2;
	}
	*out = buf;
	*len = n;
	return 0;
}

int image_read_file(const char *path, enum image_alpha alpha, struct image *img)
{
	memset(img, 0, sizeof *img);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errorf("%s", strerror(errno));
	uint8_t *data = NULL;
	size_t len = 0;
	int rc = read_all(fd, &data, &len);
	close(fd);
	if (rc < 0)
		return -1;
	rc = image_decode(data, len, alpha, img);
	free(data);
	return rc;
}

char *image_id_from_path(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	const char *dot = strrchr(name, '.');
	return xstrndup(name, dot && dot != name ? (size_t)(dot - name) : strlen(name));
}
