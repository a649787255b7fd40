/* The stream writer. Headers and small values collect in a buffer; large
 * tensor payloads go straight from the tensor to the fd, so a tensor is
 * copied once on its way through a filter. */
#include "stream/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/tool.h"
#include "stream/msgpack.h"

#define FLUSH_AT (256u << 10)
#define DIRECT_AT (64u << 10)

struct ts_writer {
	int fd;          /* -1 for a memory writer */
	char *name;
	struct mp_buf buf;
	int failed;
	int at_die;      /* tool_at_die handle, or -1 */
};

/* A tool that dies on bad input still passes on what it has written. */
static void flush_at_die(void *ctx)
{
	ts_flush(ctx);
}

struct ts_writer *ts_writer_fd(int fd, const char *name)
{
	struct ts_writer *w = xcalloc(1, sizeof *w);
	w->fd = fd;
	w->name = xstrdup(name);
	w->at_die = fd >= 0 ? tool_at_die(flush_at_die, w) : -1;
#ifdef F_SETPIPE_SZ
	fcntl(fd, F_SETPIPE_SZ, 1 << 20);
#endif
	return w;
}

struct ts_writer *ts_writer_mem(void)
{
	struct ts_writer *w = ts_writer_fd(-1, "memory");
	return w;
}

const void *ts_writer_mem_data(struct ts_writer *w, size_t *len)
{
	*len = w->buf.len;
	return w->buf.data;
}

/* Writes the buffered bytes, then `extra` (may be NULL), with one writev. */
static int write_out(struct ts_writer *w, const void *extra, size_t extra_len)
{
	if (w->failed)
		return -1;
	if (w->fd < 0) {
		mp_put_bytes(&w->buf, extra, extra_len);
		return 0;
	}
	struct iovec iov[2] = { { w->buf.data, w->buf.len }, { (void *)extra, extra_len } };
	int n = 2, i = 0;
	while (i < n) {
		if (iov[i].iov_len == 0) {
			i++;
			continue;
		}
		ssize_t got = writev(w->fd, iov + i, n - i);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			w->failed = 1;
			return errorf("%s: write error: %s", w->name, strerror(errno));
		}
		while (i < n && (size_t)got >= iov[i].iov_len) {
			got -= iov[i].iov_len;
			iov[i++].iov_len = 0;
		}
		if (i < n) {
			iov[i].iov_base = (char *)iov[i].iov_base + got;
			iov[i].iov_len -= got;
		}
	}
	w->buf.len = 0;
	return 0;
}

static int put_payload(struct ts_writer *w, const void *p, size_t n)
{
	if (n >= DIRECT_AT && w->fd >= 0)
		return write_out(w, p, n);
	mp_put_bytes(&w->buf, p, n);
	return 0;
}

static void put_tensor_header(struct mp_buf *b, const struct tensor *t)
{
	mp_put_map_header(b, 3);
	mp_put_str(b, "dtype", 5);
	const char *dn = dtype_name(t->dtype);
	mp_put_str(b, dn, strlen(dn));
	mp_put_str(b, "shape", 5);
	mp_put_array_header(b, (uint32_t)t->ndim);
	for (int i = 0; i < t->ndim; i++)
		mp_put_int(b, t->shape[i]);
	mp_put_str(b, "data", 4);
	mp_put_bin_header(b, t->nbytes);
}

int ts_write_value(struct ts_writer *w, const struct value *v)
{
	struct mp_buf *b = &w->buf;
	switch (v->kind) {
	case V_NIL: mp_put_nil(b); return 0;
	case V_BOOL: mp_put_bool(b, v->b); return 0;
	case V_INT:
		if (v->is_unsigned)
			mp_put_uint(b, v->u);
		else
			mp_put_int(b, v->i);
		return 0;
	case V_FLOAT:
		if (v->is_f32)
			mp_put_f32(b, (float)v->f);
		else
			mp_put_f64(b, v->f);
		return 0;
	case V_STR:
		mp_put_str_header(b, v->str.len);
		return put_payload(w, v->str.ptr, v->str.len);
	case V_BIN:
		mp_put_bin_header(b, v->str.len);
		return put_payload(w, v->str.ptr, v->str.len);
	case V_RAW:
		return put_payload(w, v->str.ptr, v->str.len);
	case V_TENSOR:
		put_tensor_header(b, &v->t);
		return put_payload(w, v->t.data, v->t.nbytes);
	}
	return 0;
}

int ts_write(struct ts_writer *w, const struct record *r)
{
	if (w->failed)
		return -1;
	mp_put_map_header(&w->buf, (uint32_t)r->n);
	for (int i = 0; i < r->n; i++) {
		mp_put_str(&w->buf, r->fields[i].key, strlen(r->fields[i].key));
		if (ts_write_value(w, &r->fields[i].v) < 0)
			return -1;
	}
	if (w->buf.len >= FLUSH_AT && w->fd >= 0)
		return write_out(w, NULL, 0);
	return 0;
}

int ts_flush(struct ts_writer *w)
{
	if (w->fd < 0)
		return w->failed ? -1 : 0;
	return write_out(w, NULL, 0);
}

int ts_writer_close(struct ts_writer *w)
{
	tool_forget_at_die(w->at_die);
	int rc = ts_flush(w);
	mp_buf_free(&w->buf);
	free(w->name);
	free(w);
	return rc;
}
