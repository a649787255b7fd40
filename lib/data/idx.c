#include "data/idx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "core/tool.h"

/* zlib's default 8 KiB buffer makes a syscall per ten images. */
#define IDX_GZ_BUFFER (256 * 1024)

static int idx_type_dtype(int type, enum dtype *dt)
{
	switch (type) {
	case IDX_UINT8:   *dt = DT_UINT8;   return 0;
	case IDX_INT8:    *dt = DT_INT8;    return 0;
	case IDX_INT16:   *dt = DT_INT16;   return 0;
	case IDX_INT32:   *dt = DT_INT32;   return 0;
	case IDX_FLOAT32: *dt = DT_FLOAT32; return 0;
	case IDX_FLOAT64: *dt = DT_FLOAT64; return 0;
	}
	return -1;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* IDX is big-endian; tensors are little-endian. */
static void swap_elements(uint8_t *p, size_t nbytes, size_t elem)
{
	if (elem == 1)
		return;
	for (size_t i = 0; i + elem <= nbytes; i += elem)
		for (size_t a = i, b = i + elem - 1; a < b; a++, b--) {
			uint8_t t = p[a];
			p[a] = p[b];
			p[b] = t;
		}
}

/* zlib's own message, without the "path: " it puts in front. */
static const char *zlib_problem(struct idx_file *f, int *zerr)
{
	const char *msg = gzerror(f->gz, zerr);
	if (*zerr == Z_ERRNO)
		return strerror(errno);
	const char *sep = strrchr(msg, ':');
	return sep && sep[1] == ' ' ? sep + 2 : msg;
}

/* The error for a read that returned `got` bytes too few: zlib failures
 * are corruption, an early end is truncation. `where` says at what
 * ("at image 5 of 10", "in the header"). */
static int short_read_error(struct idx_file *f, int got, const char *where)
{
	int zerr;
	const char *zmsg = zlib_problem(f, &zerr);
	if (got < 0 || (zerr != Z_OK && zerr != Z_BUF_ERROR))
		return errorf("%s: corrupt data %s: %s", f->path, where, zmsg);
	if (zerr == Z_BUF_ERROR) /* a gzip stream that stops before its end */
		return errorf("%s: truncated %s (%s)", f->path, where, zmsg);
	return errorf("%s: truncated %s", f->path, where);
}

/* Reads exactly n bytes of the header. */
static int read_header_bytes(struct idx_file *f, void *buf, size_t n)
{
	int got = gzread(f->gz, buf, (unsigned)n);
	return got == (int)n ? 0 : short_read_error(f, got, "in the header");
}

/* Reads item f->next (not yet converted) into buf. */
static int read_raw_item(struct idx_file *f, void *buf)
{
	int got = gzread(f->gz, buf, (unsigned)f->item_bytes);
	if (got == (int)f->item_bytes)
		return 0;
	char where[96];
	snprintf(where, sizeof where, "at %s %" PRId64 " of %" PRId64,
	         f->item_noun, f->next, f->count);
	return short_read_error(f, got, where);
}

static int read_header(struct idx_file *f)
{
	uint8_t magic[4];
	if (read_header_bytes(f, magic, 4) < 0)
		return -1;
	if (magic[0] || magic[1])
		return errorf("%s: not an IDX file (magic bytes %02x %02x %02x %02x)",
		              f->path, magic[0], magic[1], magic[2], magic[3]);
	f->type = magic[2];
	if (idx_type_dtype(magic[2], &f->dtype) < 0)
		return errorf("%s: unknown IDX data type 0x%02x", f->path, magic[2]);
	f->ndim = magic[3];
	if (f->ndim < 1 || f->ndim > IDX_MAX_DIMS)
		return errorf("%s: IDX header has %d dimensions (1 to %d supported)",
		              f->path, f->ndim, IDX_MAX_DIMS);

	uint8_t dims[4 * IDX_MAX_DIMS];
	if (read_header_bytes(f, dims, 4 * (size_t)f->ndim) < 0)
		return -1;
	f->item_bytes = dtype_size(f->dtype);
	for (int i = 0; i < f->ndim; i++) {
		f->dims[i] = be32(dims + 4 * i);
		if (i == 0)
			continue;
		if (f->dims[i] == 0)
			return errorf("%s: dimension %d of the IDX header is 0", f->path, i);
		if ((uint64_t)f->dims[i] > IDX_MAX_ITEM_BYTES / f->item_bytes)
			return errorf("%s: one %s would be larger than %zu bytes",
			              f->path, f->item_noun, IDX_MAX_ITEM_BYTES);
		f->item_bytes *= f->dims[i];
	}
	f->count = f->dims[0];
	return 0;
}

struct idx_file *idx_open(const char *path, const char *item_noun)
{
	int stdin_ = !strcmp(path, "-");
	gzFile gz;
	if (stdin_) {
		int fd = dup(0);
		gz = fd < 0 ? NULL : gzdopen(fd, "rb");
		if (!gz && fd >= 0)
			close(fd);
	} else {
		errno = 0;
		gz = gzopen(path, "rb");
	}
	if (!gz) {
		errorf("%s: %s", stdin_ ? "stdin" : path, errno ? strerror(errno) : "cannot open");
		return NULL;
	}
	gzbuffer(gz, IDX_GZ_BUFFER);

	struct idx_file *f = xcalloc(1, sizeof *f);
	f->path = xstrdup(stdin_ ? "stdin" : path);
	f->item_noun = item_noun ? item_noun : "item";
	f->gz = gz;
	if (read_header(f) < 0) {
		idx_close(f);
		return NULL;
	}
	return f;
}

static size_t header_bytes(const struct idx_file *f)
{
	return 4 + 4 * (size_t)f->ndim;
}

/* Forward skipping for inputs that cannot seek (a pipe on stdin). */
static int skip_items(struct idx_file *f, int64_t index)
{
	void *scratch = xmalloc(f->item_bytes);
	int rc = 0;
	while (f->next < index && (rc = read_raw_item(f, scratch)) == 0)
		f->next++;
	free(scratch);
	return rc;
}

int idx_seek(struct idx_file *f, int64_t index)
{
	if (index < 0 || index > f->count)
		return errorf("%s: cannot seek to %s %" PRId64 " of %" PRId64,
		              f->path, f->item_noun, index, f->count);
	z_off_t offset = (z_off_t)(header_bytes(f) + (uint64_t)index * f->item_bytes);
	if (gzseek(f->gz, offset, SEEK_SET) == offset) {
		f->next = index;
		f->at_end = 0;
		return 0;
	}
	gzclearerr(f->gz);
	if (index < f->next)
		return errorf("%s: cannot seek back to %s %" PRId64, f->path, f->item_noun, index);
	return skip_items(f, index);
}

/* Reading one more byte makes zlib check the gzip trailer too. */
int idx_check_end(struct idx_file *f)
{
	if (f->at_end)
		return 0;
	if (f->next < f->count)
		return errorf("%s: only %" PRId64 " of %" PRId64 " %ss read",
		              f->path, f->next, f->count, f->item_noun);
	uint8_t extra;
	int got = gzread(f->gz, &extra, 1);
	if (got > 0)
		return errorf("%s: unexpected data after the last of %" PRId64 " %ss",
		              f->path, f->count, f->item_noun);
	int zerr;
	gzerror(f->gz, &zerr);
	if (got < 0 || zerr != Z_OK) {
		char where[64];
		snprintf(where, sizeof where, "after the last %s", f->item_noun);
		return short_read_error(f, got, where);
	}
	f->at_end = 1;
	return 0;
}

int idx_read_item(struct idx_file *f, void *buf)
{
	if (f->next >= f->count)
		return idx_check_end(f) < 0 ? -1 : 0;
	if (read_raw_item(f, buf) < 0)
		return -1;
	swap_elements(buf, f->item_bytes, dtype_size(f->dtype));
	f->next++;
	return 1;
}

int64_t idx_item_int(const struct idx_file *f, const void *item)
{
	struct tensor t = { .dtype = f->dtype, .ndim = 0, .data = (void *)item,
	                    .nbytes = dtype_size(f->dtype) };
	return (int64_t)tensor_get(&t, 0);
}

void idx_close(struct idx_file *f)
{
	if (!f)
		return;
	if (f->gz)
		gzclose(f->gz);
	free(f->path);
	free(f);
}
