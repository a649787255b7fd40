/* The stream reader: a pull parser over a refillable buffer.
 *
 * Memory is bounded by the record being read: nothing is allocated from a
 * size claimed in a header until the bytes actually arrive, so a corrupt
 * length costs at most the input that is really there. */
#include "stream/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tool.h"
#include "stream/msgpack.h"

#define READ_CHUNK (1 << 20)
/* Payloads larger than this grow as they arrive instead of being allocated up front. */
#define TRUST_ALLOC (16u << 20)

struct ts_reader {
	int fd, own_fd;
	char *name;
	uint8_t *buf;            /* window [pos, len) holds unread bytes */
	size_t cap, pos, len;
	int is_mem, eof;
	int64_t index;           /* record being read */
};

/* Pipes default to 64 KiB; a larger pipe lets big tensors cross in fewer syscalls. */
static void widen_pipe(int fd)
{
#ifdef F_SETPIPE_SZ
	fcntl(fd, F_SETPIPE_SZ, 1 << 20);
#else
	(void)fd;
#endif
}

struct ts_reader *ts_open_fd(int fd, const char *name)
{
	struct ts_reader *rd = xcalloc(1, sizeof *rd);
	rd->fd = fd;
	rd->name = xstrdup(name);
	rd->cap = READ_CHUNK;
	rd->buf = xmalloc(rd->cap);
	widen_pipe(fd);
	return rd;
}

struct ts_reader *ts_open_fd_prefixed(int fd, const char *name, const void *prefix, size_t n)
{
	struct ts_reader *rd = ts_open_fd(fd, name);
	if (n > rd->cap) {
		rd->cap = n;
		rd->buf = xrealloc(rd->buf, rd->cap);
	}
	memcpy(rd->buf, prefix, n);
	rd->len = n;
	return rd;
}

struct ts_reader *ts_open(const char *path)
{
	if (!path || !strcmp(path, "-"))
		return ts_open_fd(0, "stdin");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		errorf("%s: %s", path, strerror(errno));
		return NULL;
	}
	struct ts_reader *rd = ts_open_fd(fd, path);
	rd->own_fd = 1;
	return rd;
}

struct ts_reader *ts_open_mem(const void *data, size_t len, const char *name)
{
	struct ts_reader *rd = xcalloc(1, sizeof *rd);
	rd->fd = -1;
	rd->name = xstrdup(name);
	/* An empty buffer may be NULL; offsets from NULL are undefined. */
	static const uint8_t empty[1];
	rd->buf = (uint8_t *)(data ? data : empty);
	rd->len = rd->cap = data ? len : 0;
	rd->is_mem = rd->eof = 1;
	return rd;
}

void ts_close(struct ts_reader *rd)
{
	if (!rd)
		return;
	if (rd->own_fd)
		close(rd->fd);
	if (!rd->is_mem)
		free(rd->buf);
	free(rd->name);
	free(rd);
}

int64_t ts_record_index(const struct ts_reader *rd) { return rd->index - 1; }
const char *ts_name(const struct ts_reader *rd) { return rd->name; }

static size_t avail(const struct ts_reader *rd) { return rd->len - rd->pos; }

/* Reads more input into the window. Returns bytes added, 0 at end, -1 on error. */
static ssize_t refill(struct ts_reader *rd)
{
	if (rd->eof)
		return 0;
	if (rd->pos > 0) {
		memmove(rd->buf, rd->buf + rd->pos, avail(rd));
		rd->len -= rd->pos;
		rd->pos = 0;
	}
	if (rd->len == rd->cap) {
		rd->cap *= 2;
		rd->buf = xrealloc(rd->buf, rd->cap);
	}
	for (;;) {
		ssize_t n = read(rd->fd, rd->buf + rd->len, rd->cap - rd->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errorf("read error: %s", strerror(errno));
		if (n == 0)
			rd->eof = 1;
		rd->len += n;
		return n;
	}
}

static int truncated(void)
{
	return errorf("truncated: the stream ends inside the record");
}

/* Decodes the next header. At a record boundary (`boundary`), a clean end
 * of input returns 0 instead of an error. Returns 1 on success; the header's
 * own bytes are then the `*size` bytes just before rd->pos. */
static int next_header_sized(struct ts_reader *rd, struct mp_header *h, int boundary, int *size)
{
	for (;;) {
		int n = mp_decode_header(rd->buf + rd->pos, avail(rd), h);
		if (n > 0) {
			rd->pos += n;
			*size = n;
			return 1;
		}
		if (n < 0)
			return errorf("invalid msgpack byte 0x%02x", rd->buf[rd->pos]);
		ssize_t got = refill(rd);
		if (got < 0)
			return -1;
		if (got == 0)
			return boundary && avail(rd) == 0 ? 0 : truncated();
	}
}

static int next_header(struct ts_reader *rd, struct mp_header *h)
{
	int size;
	return next_header_sized(rd, h, 0, &size) > 0 ? 0 : -1;
}

/* Copies exactly n payload bytes to dst, reading large remainders directly. */
static int read_exact(struct ts_reader *rd, void *dst, size_t n)
{
	size_t have = avail(rd) < n ? avail(rd) : n;
	memcpy(dst, rd->buf + rd->pos, have);
	rd->pos += have;
	n -= have;
	dst = (char *)dst + have;
	while (n > 0) {
		if (rd->eof)
			return truncated();
		ssize_t got = read(rd->fd, dst, n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return errorf("read error: %s", strerror(errno));
		if (got == 0)
			rd->eof = 1;
		n -= got;
		dst = (char *)dst + got;
	}
	return 0;
}

/* Reads a payload of a claimed length into a fresh buffer (NUL added). */
static int read_payload(struct ts_reader *rd, uint64_t len, char **out)
{
	if (len > TS_MAX_BYTES)
		return errorf("payload of %llu bytes exceeds the limit", (unsigned long long)len);
	if (rd->is_mem && len > avail(rd))
		return truncated();
	size_t cap = len < TRUST_ALLOC ? len : TRUST_ALLOC;
	char *p = xmalloc(cap + 1);
	size_t done = 0;
	while (done < len) {
		size_t step = len - done;
		if (step > cap - done) {
			if (rd->eof && avail(rd) == 0) {
				free(p);
				return truncated();
			}
			cap = cap * 2 < len ? cap * 2 : len;
			p = xrealloc(p, cap + 1);
			step = cap - done;
		}
		if (read_exact(rd, p + done, step) < 0) {
			free(p);
			return -1;
		}
		done += step;
	}
	p[len] = 0;
	*out = p;
	return 0;
}

static int copy_raw_items(struct ts_reader *rd, uint64_t items, struct mp_buf *b, int depth);

static int read_str(struct ts_reader *rd, const char *what, size_t max, char **out, size_t *len)
{
	struct mp_header h;
	if (next_header(rd, &h) < 0)
		return -1;
	if (h.type != MP_STR)
		return errorf("%s is a %s, not a string", what, mp_type_name(h.type));
	if (h.len > max)
		return errorf("%s is %llu bytes long (limit %zu)", what, (unsigned long long)h.len, max);
	*len = h.len;
	return read_payload(rd, h.len, out);
}

/* Copies a value whose header h was just read into b (header re-encoded,
 * payload verbatim), validating it on the way. */
static int copy_raw(struct ts_reader *rd, const struct mp_header *h, struct mp_buf *b, int depth)
{
	mp_put_header(b, h);
	switch (h->type) {
	case MP_STR: case MP_BIN: case MP_EXT: {
		char *p;
		if (read_payload(rd, h->len, &p) < 0)
			return -1;
		mp_put_bytes(b, p, h->len);
		free(p);
		return 0;
	}
	case MP_ARRAY: case MP_MAP:
		if (depth >= TS_MAX_DEPTH)
			return errorf("values nested deeper than %d", TS_MAX_DEPTH);
		return copy_raw_items(rd, h->type == MP_MAP ? 2 * h->len : h->len, b, depth + 1);
	default:
		return 0;
	}
}

static int copy_raw_items(struct ts_reader *rd, uint64_t items, struct mp_buf *b, int depth)
{
	for (uint64_t i = 0; i < items; i++) {
		struct mp_header eh;
		if (next_header(rd, &eh) < 0 || copy_raw(rd, &eh, b, depth) < 0)
			return -1;
	}
	return 0;
}

static int is_tensor_key(const char *k)
{
	return !strcmp(k, "dtype") || !strcmp(k, "shape") || !strcmp(k, "data");
}

static int read_shape(struct ts_reader *rd, struct tensor *t)
{
	struct mp_header h;
	if (next_header(rd, &h) < 0)
		return -1;
	if (h.type != MP_ARRAY)
		return errorf("shape is a %s, not an array", mp_type_name(h.type));
	if (h.len > TENSOR_MAX_DIMS)
		return errorf("shape has %llu dimensions (limit %d)", (unsigned long long)h.len, TENSOR_MAX_DIMS);
	t->ndim = (int)h.len;
	for (int i = 0; i < t->ndim; i++) {
		struct mp_header d;
		if (next_header(rd, &d) < 0)
			return -1;
		if (d.type == MP_UINT && d.u <= INT64_MAX)
			t->shape[i] = (int64_t)d.u;
		else if (d.type == MP_INT && d.i >= 0)
			t->shape[i] = d.i;
		else
			return errorf("shape[%d] is not a non-negative integer", i);
	}
	return 0;
}

static int read_dtype(struct ts_reader *rd, enum dtype *dt)
{
	char *name;
	size_t len;
	if (read_str(rd, "dtype", 64, &name, &len) < 0)
		return -1;
	int d = dtype_from_name(name, len);
	if (d < 0)
		errorf("unknown dtype '%s'", name);
	free(name);
	*dt = d < 0 ? 0 : (enum dtype)d;
	return d < 0 ? -1 : 0;
}

static int read_data(struct ts_reader *rd, struct tensor *t, uint64_t *len)
{
	struct mp_header h;
	if (next_header(rd, &h) < 0)
		return -1;
	if (h.type != MP_BIN)
		return errorf("data is a %s, not bin", mp_type_name(h.type));
	if (read_payload(rd, h.len, (char **)&t->data) < 0)
		return -1;
	*len = h.len;
	return 0;
}

/* Reads the rest of a tensor map of n entries whose first key, k0, is
 * already read. A map that starts like a tensor must be exactly one. */
static int read_tensor(struct ts_reader *rd, uint64_t n, char *k0, struct tensor *t)
{
	int seen_dtype = 0, seen_shape = 0;
	uint64_t data_len = 0;
	int rc = 0;
	char *key = k0;
	memset(t, 0, sizeof *t);
	if (n != 3)
		rc = errorf("tensor map has %llu keys, not dtype, shape and data", (unsigned long long)n);
	for (uint64_t i = 0; rc == 0 && i < n; i++) {
		size_t klen;
		if (i > 0 && read_str(rd, "tensor key", TS_MAX_KEY_LEN, &key, &klen) < 0) {
			rc = -1;
			break;
		}
		if (!strcmp(key, "dtype") && !seen_dtype) {
			rc = read_dtype(rd, &t->dtype);
			seen_dtype = 1;
		} else if (!strcmp(key, "shape") && !seen_shape) {
			rc = read_shape(rd, t);
			seen_shape = 1;
		} else if (!strcmp(key, "data") && !t->data) {
			rc = read_data(rd, t, &data_len);
		} else {
			rc = errorf("tensor map has %s key '%s'", is_tensor_key(key) ? "a repeated" : "an unexpected", key);
		}
		if (key != k0)
			free(key);
	}
	if (rc == 0 && (!seen_dtype || !seen_shape || !t->data))
		rc = errorf("tensor map lacks '%s'", !seen_dtype ? "dtype" : !seen_shape ? "shape" : "data");
	if (rc == 0) {
		int64_t numel = tensor_numel(t);
		if (numel < 0 || (uint64_t)numel > UINT64_MAX / dtype_size(t->dtype))
			rc = errorf("shape is too large");
		else if ((uint64_t)numel * dtype_size(t->dtype) != data_len) {
			char shape[160] = "";
			for (int i = 0, o = 0; i < t->ndim && o < 140; i++)
				o += snprintf(shape + o, sizeof shape - o, "%s%lld", i ? "," : "", (long long)t->shape[i]);
			rc = errorf("data has %llu bytes but %s [%s] needs %llu", (unsigned long long)data_len,
			            dtype_name(t->dtype), shape,
			            (unsigned long long)((uint64_t)numel * dtype_size(t->dtype)));
		}
	}
	t->nbytes = data_len;
	if (rc < 0)
		tensor_free(t);
	return rc;
}

static int raw_value(struct value *v, struct mp_buf *b, int rc)
{
	if (rc < 0) {
		mp_buf_free(b);
		return -1;
	}
	v->kind = V_RAW;
	v->str.ptr = (char *)b->data;
	v->str.len = b->len;
	return 0;
}

/* A non-empty map: a tensor if its first key is dtype, shape or data,
 * otherwise a raw value. */
static int read_map(struct ts_reader *rd, const struct mp_header *h, struct value *v)
{
	struct mp_buf b = { 0 };
	struct mp_header kh;
	if (next_header(rd, &kh) < 0)
		return -1;
	if (kh.type != MP_STR) {
		mp_put_header(&b, h);
		int rc = copy_raw(rd, &kh, &b, 1);
		return raw_value(v, &b, rc < 0 ? rc : copy_raw_items(rd, 2 * h->len - 1, &b, 1));
	}
	char *key;
	if (read_payload(rd, kh.len, &key) < 0)
		return -1;
	if (is_tensor_key(key)) {
		v->kind = V_TENSOR;
		int rc = read_tensor(rd, h->len, key, &v->t);
		free(key);
		return rc;
	}
	mp_put_header(&b, h);
	mp_put_str(&b, key, kh.len);
	free(key);
	return raw_value(v, &b, copy_raw_items(rd, 2 * h->len - 1, &b, 1));
}

/* Reads one field value. */
static int read_value(struct ts_reader *rd, struct value *v)
{
	struct mp_header h;
	memset(v, 0, sizeof *v);
	if (next_header(rd, &h) < 0)
		return -1;
	switch (h.type) {
	case MP_NIL: v->kind = V_NIL; return 0;
	case MP_BOOL: v->kind = V_BOOL; v->b = h.b; return 0;
	case MP_INT: v->kind = V_INT; v->i = h.i; return 0;
	case MP_UINT: v->kind = V_INT; v->u = h.u; v->is_unsigned = h.u > INT64_MAX; return 0;
	case MP_FLOAT32: v->kind = V_FLOAT; v->f = h.f; v->is_f32 = true; return 0;
	case MP_FLOAT64: v->kind = V_FLOAT; v->f = h.f; return 0;
	case MP_STR: case MP_BIN:
		v->kind = h.type == MP_STR ? V_STR : V_BIN;
		v->str.len = h.len;
		return read_payload(rd, h.len, &v->str.ptr);
	case MP_MAP:
		if (h.len > 0)
			return read_map(rd, &h, v);
		/* fall through */
	default: {
		struct mp_buf b = { 0 };
		return raw_value(v, &b, copy_raw(rd, &h, &b, 0));
	}
	}
}

static int has_key(const struct record *r, const char *key)
{
	return record_get(r, key) != NULL;
}

static int read_record(struct ts_reader *rd, struct record *r)
{
	struct mp_header h;
	int size;
	int rc = next_header_sized(rd, &h, 1, &size);
	if (rc <= 0)
		return rc;
	if (h.type != MP_MAP) {
		if (h.type == MP_UINT && h.u == '{')
			return errorf("top-level value is not a map (this looks like JSON: use ts-pack)");
		return errorf("top-level value is a %s, not a map", mp_type_name(h.type));
	}
	if (h.len > TS_MAX_FIELDS)
		return errorf("record has %llu fields (limit %d)", (unsigned long long)h.len, TS_MAX_FIELDS);
	for (uint64_t i = 0; i < h.len; i++) {
		char *key;
		size_t klen;
		if (read_str(rd, "key", TS_MAX_KEY_LEN, &key, &klen) < 0)
			return -1;
		const char *bad = klen == 0 ? "key is empty" : strlen(key) != klen ? "key contains a NUL byte"
		                : has_key(r, key) ? "duplicate key" : NULL;
		if (bad) {
			errorf("%s%s%s%s", bad, *key ? " '" : "", key, *key ? "'" : "");
			free(key);
			return -1;
		}
		struct value v;
		if (read_value(rd, &v) < 0) {
			error_prefix("field '%s'", key);
			free(key);
			return -1;
		}
		record_set_value(r, key, &v);
		free(key);
	}
	return 1;
}

int ts_read(struct ts_reader *rd, struct record *r)
{
	record_clear(r);
	int rc = read_record(rd, r);
	if (rc < 0) {
		record_clear(r);
		error_prefix("%s: record %lld", rd->name, (long long)rd->index);
		return -1;
	}
	if (rc > 0)
		rd->index++;
	return rc;
}

struct ts_inputs {
	char **files;
	int nfiles, next;
	struct ts_reader *cur;
};

struct ts_inputs *ts_inputs_open(int nfiles, char **files)
{
	static char *stdin_only[] = { "-" };
	struct ts_inputs *in = xcalloc(1, sizeof *in);
	in->files = nfiles ? files : stdin_only;
	in->nfiles = nfiles ? nfiles : 1;
	return in;
}

int ts_inputs_read(struct ts_inputs *in, struct record *r)
{
	for (;;) {
		if (!in->cur) {
			if (in->next == in->nfiles) {
				record_clear(r);
				return 0;
			}
			in->cur = ts_open(in->files[in->next++]);
			if (!in->cur)
				return -1;
		}
		int rc = ts_read(in->cur, r);
		if (rc != 0)
			return rc;
		ts_close(in->cur);
		in->cur = NULL;
	}
}

void ts_inputs_close(struct ts_inputs *in)
{
	if (!in)
		return;
	ts_close(in->cur);
	free(in);
}
