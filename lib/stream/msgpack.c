#include "stream/msgpack.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int sized(struct mp_header *h, enum mp_type t, const uint8_t *p, size_t avail, int n)
{
	if (avail < (size_t)1 + n)
		return 0;
	h->type = t;
	h->len = be(p + 1, n);
	return 1 + n;
}

int mp_decode_header(const uint8_t *p, size_t avail, struct mp_header *h)
{
	if (avail < 1)
		return 0;
	uint8_t c = p[0];
	if (c <= 0x7f) { h->type = MP_UINT; h->u = c; return 1; }
	if (c >= 0xe0) { h->type = MP_INT; h->i = (int8_t)c; return 1; }
	if ((c & 0xf0) == 0x80) { h->type = MP_MAP; h->len = c & 0x0f; return 1; }
	if ((c & 0xf0) == 0x90) { h->type = MP_ARRAY; h->len = c & 0x0f; return 1; }
	if ((c & 0xe0) == 0xa0) { h->type = MP_STR; h->len = c & 0x1f; return 1; }
	switch (c) {
	case 0xc0: h->type = MP_NIL; return 1;
	case 0xc2: h->type = MP_BOOL; h->b = false; return 1;
	case 0xc3: h->type = MP_BOOL; h->b = true; return 1;
	case 0xc4: return sized(h, MP_BIN, p, avail, 1);
	case 0xc5: return sized(h, MP_BIN, p, avail, 2);
	case 0xc6: return sized(h, MP_BIN, p, avail, 4);
	case 0xd9: return sized(h, MP_STR, p, avail, 1);
	case 0xda: return sized(h, MP_STR, p, avail, 2);
	case 0xdb: return sized(h, MP_STR, p, avail, 4);
	case 0xdc: return sized(h, MP_ARRAY, p, avail, 2);
	case 0xdd: return sized(h, MP_ARRAY, p, avail, 4);
	case 0xde: return sized(h, MP_MAP, p, avail, 2);
	case 0xdf: return sized(h, MP_MAP, p, avail, 4);
	case 0xcc: case 0xcd: case 0xce: case 0xcf: {
		int n = 1 << (c - 0xcc);
		if (avail < (size_t)1 + n) return 0;
		h->type = MP_UINT; h->u = be(p + 1, n);
		return 1 + n;
	}
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
		int n = 1 << (c - 0xd0);
		if (avail < (size_t)1 + n) return 0;
		uint64_t v = be(p + 1, n);
		int shift = 64 - 8 * n;
		h->type = MP_INT; h->i = (int64_t)(v << shift) >> shift;
		return 1 + n;
	}
	case 0xca: {
		if (avail < 5) return 0;
		uint32_t u = (uint32_t)be(p + 1, 4);
		float f;
		memcpy(&f, &u, 4);
		h->type = MP_FLOAT32; h->f = f;
		return 5;
	}
	case 0xcb: {
		if (avail < 9) return 0;
		uint64_t u = be(p + 1, 8);
		memcpy(&h->f, &u, 8);
		h->type = MP_FLOAT64;
		return 9;
	}
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
		if (avail < 2) return 0;
		h->type = MP_EXT; h->ext_type = (int8_t)p[1]; h->len = 1u << (c - 0xd4);
		return 2;
	case 0xc7: case 0xc8: case 0xc9: {
		int n = 1 << (c - 0xc7);
		if (avail < (size_t)2 + n) return 0;
		h->type = MP_EXT; h->len = be(p + 1, n); h->ext_type = (int8_t)p[1 + n];
		return 2 + n;
	}
	}
	return -1; /* 0xc1 is never used */
}

const char *mp_type_name(enum mp_type t)
{
	static const char *names[] = { "nil", "bool", "int", "uint", "float32", "float64",
	                               "str", "bin", "array", "map", "ext" };
	return names[t];
}

static int skip(const uint8_t **p, const uint8_t *end, int depth, int max_depth)
{
	struct mp_header h;
	int n = mp_decode_header(*p, (size_t)(end - *p), &h);
	if (n == 0)
		return errorf("truncated value");
	if (n < 0)
		return errorf("invalid msgpack byte 0x%02x", **p);
	*p += n;
	switch (h.type) {
	case MP_STR: case MP_BIN: case MP_EXT:
		if (h.len > (uint64_t)(end - *p))
			return errorf("truncated %s of %llu bytes", mp_type_name(h.type),
			              (unsigned long long)h.len);
		*p += h.len;
		return 0;
	case MP_ARRAY: case MP_MAP: {
		if (depth >= max_depth)
			return errorf("values nested deeper than %d", max_depth);
		uint64_t items = h.type == MP_MAP ? 2 * h.len : h.len;
		/* Each element takes at least one byte: reject counts the data cannot hold. */
		if (items > (uint64_t)(end - *p))
			return errorf("truncated %s of %llu elements", mp_type_name(h.type),
			              (unsigned long long)h.len);
		for (uint64_t i = 0; i < items; i++)
			if (skip(p, end, depth + 1, max_depth) < 0)
				return -1;
		return 0;
	}
	default:
		return 0;
	}
}

int mp_skip_value(const uint8_t **p, const uint8_t *end, int max_depth)
{
	return skip(p, end, 0, max_depth);
}

int mp_map_find(const uint8_t **p, const uint8_t *end, const char *key)
{
	struct mp_header h;
	const uint8_t *q = *p;
	int n = mp_decode_header(q, (size_t)(end - q), &h);
	if (n <= 0 || h.type != MP_MAP)
		return -1;
	q += n;
	size_t klen = strlen(key);
	for (uint64_t i = 0; i < h.len; i++) {
		struct mp_header kh;
		n = mp_decode_header(q, (size_t)(end - q), &kh);
		if (n <= 0)
			return -1;
		int match = kh.type == MP_STR && kh.len == klen && (size_t)(end - q - n) >= klen &&
		            !memcmp(q + n, key, klen);
		if (mp_skip_value(&q, end, 64) < 0)
			return -1;
		if (match) {
			*p = q;
			return 0;
		}
		if (mp_skip_value(&q, end, 64) < 0)
			return -1;
	}
	return -1;
}

int mp_map_int(const uint8_t *map, const uint8_t *end, const char *key, int *v, int required)
{
	const uint8_t *p = map;
	if (mp_map_find(&p, end, key) != 0)
		return required ? errorf("'%s' is missing", key) : 0;
	struct mp_header h;
	if (mp_decode_header(p, (size_t)(end - p), &h) <= 0)
		return errorf("'%s' is malformed", key);
	if (h.type == MP_BOOL) {
		*v = h.b;
		return 0;
	}
	double x = h.type == MP_INT ? (double)h.i : h.type == MP_UINT ? (double)h.u :
	           h.type == MP_FLOAT32 || h.type == MP_FLOAT64 ? h.f : -1.0;
	if (!(x >= 0 && x <= 1 << 30 && x == (double)(int)x))
		return errorf("'%s' is not a non-negative integer", key);
	*v = (int)x;
	return 0;
}

void mp_buf_reserve(struct mp_buf *b, size_t extra)
{
	if (b->len + extra <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + extra)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void mp_buf_free(struct mp_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

void mp_put_bytes(struct mp_buf *b, const void *p, size_t n)
{
	mp_buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void put_be(struct mp_buf *b, uint8_t tag, uint64_t v, int n)
{
	uint8_t tmp[9];
	tmp[0] = tag;
	for (int i = 0; i < n; i++)
		tmp[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	mp_put_bytes(b, tmp, 1 + n);
}

void mp_put_nil(struct mp_buf *b) { put_be(b, 0xc0, 0, 0); }
void mp_put_bool(struct mp_buf *b, bool v) { put_be(b, v ? 0xc3 : 0xc2, 0, 0); }

void mp_put_uint(struct mp_buf *b, uint64_t v)
{
	if (v <= 0x7f) put_be(b, (uint8_t)v, 0, 0);
	else if (v <= 0xff) put_be(b, 0xcc, v, 1);
	else if (v <= 0xffff) put_be(b, 0xcd, v, 2);
	else if (v <= 0xffffffffu) put_be(b, 0xce, v, 4);
	else put_be(b, 0xcf, v, 8);
}

void mp_put_int(struct mp_buf *b, int64_t v)
{
	if (v >= 0) mp_put_uint(b, (uint64_t)v);
	else if (v >= -32) put_be(b, (uint8_t)(int8_t)v, 0, 0);
	else if (v >= INT8_MIN) put_be(b, 0xd0, (uint64_t)v, 1);
	else if (v >= INT16_MIN) put_be(b, 0xd1, (uint64_t)v, 2);
	else if (v >= INT32_MIN) put_be(b, 0xd2, (uint64_t)v, 4);
	else put_be(b, 0xd3, (uint64_t)v, 8);
}

void mp_put_f32(struct mp_buf *b, float v)
{
	uint32_t u;
	memcpy(&u, &v, 4);
	put_be(b, 0xca, u, 4);
}

void mp_put_f64(struct mp_buf *b, double v)
{
	uint64_t u;
	memcpy(&u, &v, 8);
	put_be(b, 0xcb, u, 8);
}

void mp_put_str_header(struct mp_buf *b, uint64_t len)
{
	if (len <= 31) put_be(b, (uint8_t)(0xa0 | len), 0, 0);
	else if (len <= 0xff) put_be(b, 0xd9, len, 1);
	else if (len <= 0xffff) put_be(b, 0xda, len, 2);
	else put_be(b, 0xdb, len, 4);
}

void mp_put_bin_header(struct mp_buf *b, uint64_t len)
{
	if (len <= 0xff) put_be(b, 0xc4, len, 1);
	else if (len <= 0xffff) put_be(b, 0xc5, len, 2);
	else put_be(b, 0xc6, len, 4);
}

void mp_put_str(struct mp_buf *b, const char *s, size_t len)
{
	mp_put_str_header(b, len);
	mp_put_bytes(b, s, len);
}

void mp_put_array_header(struct mp_buf *b, uint32_t n)
{
	if (n <= 15) put_be(b, (uint8_t)(0x90 | n), 0, 0);
	else if (n <= 0xffff) put_be(b, 0xdc, n, 2);
	else put_be(b, 0xdd, n, 4);
}

void mp_put_map_header(struct mp_buf *b, uint32_t n)
{
	if (n <= 15) put_be(b, (uint8_t)(0x80 | n), 0, 0);
	else if (n <= 0xffff) put_be(b, 0xde, n, 2);
	else put_be(b, 0xdf, n, 4);
}

void mp_put_ext_header(struct mp_buf *b, int8_t type, uint32_t len)
{
	static const uint8_t fixext[17] = { [1] = 0xd4, [2] = 0xd5, [4] = 0xd6, [8] = 0xd7, [16] = 0xd8 };
	if (len <= 16 && fixext[len])
		put_be(b, fixext[len], 0, 0);
	else if (len <= 0xff)
		put_be(b, 0xc7, len, 1);
	else if (len <= 0xffff)
		put_be(b, 0xc8, len, 2);
	else
		put_be(b, 0xc9, len, 4);
	mp_put_bytes(b, &type, 1);
}

void mp_put_header(struct mp_buf *b, const struct mp_header *h)
{
	switch (h->type) {
	case MP_NIL: mp_put_nil(b); break;
	case MP_BOOL: mp_put_bool(b, h->b); break;
	case MP_INT: mp_put_int(b, h->i); break;
	case MP_UINT: mp_put_uint(b, h->u); break;
	case MP_FLOAT32: mp_put_f32(b, (float)h->f); break;
	case MP_FLOAT64: mp_put_f64(b, h->f); break;
	case MP_STR: mp_put_str_header(b, h->len); break;
	case MP_BIN: mp_put_bin_header(b, h->len); break;
	case MP_ARRAY: mp_put_array_header(b, (uint32_t)h->len); break;
	case MP_MAP: mp_put_map_header(b, (uint32_t)h->len); break;
	case MP_EXT: mp_put_ext_header(b, h->ext_type, (uint32_t)h->len); break;
	}
}
