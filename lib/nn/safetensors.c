/* safetensors reading and writing (see safetensors.h).
 *
 * The header is turned into msgpack by the project's JSON parser and walked
 * with the msgpack helpers, so there is one JSON parser in the codebase. All
 * validation happens in st_open; after it an entry's offsets, size and dtype
 * can be trusted. */
#include "nn/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "core/file_map.h"
#include "core/tool.h"
#include "stream/json.h"
#include "stream/msgpack.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this code assumes a little-endian host"
#endif

static const struct {
	const char *name;
	enum dtype dtype;
} st_dtypes[] = {
	{ "BOOL", DT_BOOL },   { "U8", DT_UINT8 },    { "I8", DT_INT8 },     { "U16", DT_UINT16 },
	{ "I16", DT_INT16 },   { "U32", DT_UINT32 },  { "I32", DT_INT32 },   { "U64", DT_UINT64 },
	{ "I64", DT_INT64 },   { "F16", DT_FLOAT16 }, { "BF16", DT_BFLOAT16 }, { "F32", DT_FLOAT32 },
	{ "F64", DT_FLOAT64 },
};
#define N_ST_DTYPES (int)(sizeof st_dtypes / sizeof *st_dtypes)

const char *st_dtype_name(enum dtype dt)
{
	for (int i = 0; i < N_ST_DTYPES; i++)
		if (st_dtypes[i].dtype == dt)
			return st_dtypes[i].name;
	return NULL;
}

static int st_dtype_from_name(const uint8_t *s, size_t len)
{
	for (int i = 0; i < N_ST_DTYPES; i++)
		if (strlen(st_dtypes[i].name) == len && !memcmp(st_dtypes[i].name, s, len))
			return (int)st_dtypes[i].dtype;
	return -1;
}

struct st_file {
	const uint8_t *base;
	size_t size;
	struct file_map map; /* empty for st_open_memory's caller-owned bytes */
	const uint8_t *data; /* first byte after the header */
	size_t data_size;
	struct st_entry *entries; /* in data order */
	int n;
	int *by_name; /* entry indices sorted by name */
	char **meta_keys, **meta_values;
	int nmeta;
};

/* ---- Reading ---- */

static uint64_t read_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* A msgpack string at *p, advanced past it. Returns 0, or -1 if *p is not a
 * string (no errorf: callers say what they expected). */
static int take_str(const uint8_t **p, const uint8_t *end, const uint8_t **s, size_t *len)
{
	struct mp_header h;
	int n = mp_decode_header(*p, (size_t)(end - *p), &h);
	if (n <= 0 || h.type != MP_STR || h.len > (uint64_t)(end - *p - n))
		return -1;
	*s = *p + n;
	*len = (size_t)h.len;
	*p += n + h.len;
	return 0;
}

/* A non-negative JSON integer (json_to_msgpack gives MP_UINT for those). */
static int take_uint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	struct mp_header h;
	int n = mp_decode_header(*p, (size_t)(end - *p), &h);
	if (n <= 0 || h.type != MP_UINT)
		return -1;
	*v = h.u;
	*p += n;
	return 0;
}

static char *copy_cstr(const uint8_t *s, size_t len, const char *what)
{
	if (memchr(s, 0, len)) {
		errorf("%s contains a NUL character", what);
		return NULL;
	}
	return xstrndup((const char *)s, len);
}

static int parse_metadata(struct st_file *f, const uint8_t *p, const uint8_t *end)
{
	struct mp_header h;
	int n = mp_decode_header(p, (size_t)(end - p), &h);
	if (n <= 0 || h.type != MP_MAP)
		return errorf("__metadata__ is not an object");
	p += n;
	f->meta_keys = xcalloc(h.len ? h.len : 1, sizeof *f->meta_keys);
	f->meta_values = xcalloc(h.len ? h.len : 1, sizeof *f->meta_values);
	for (uint64_t i = 0; i < h.len; i++) {
		const uint8_t *k, *v;
		size_t klen, vlen;
		if (take_str(&p, end, &k, &klen) < 0)
			return errorf("__metadata__ has a key that is not a string");
		char *key = copy_cstr(k, klen, "a __metadata__ key");
		if (!key)
			return -1;
		int rc = 0;
		if (take_str(&p, end, &v, &vlen) < 0)
			rc = errorf("__metadata__ value of '%s' is not a string", key);
		for (int j = 0; j < f->nmeta && rc == 0; j++)
			if (!strcmp(f->meta_keys[j], key))
				rc = errorf("__metadata__ key '%s' appears twice", key);
		char *value = rc ? NULL : copy_cstr(v, vlen, "a __metadata__ value");
		if (!value) {
			if (rc == 0)
				error_prefix("__metadata__ '%s'", key);
			free(key);
			return -1;
		}
		f->meta_keys[f->nmeta] = key;
		f->meta_values[f->nmeta++] = value;
	}
	return 0;
}

/* One tensor's description, checked against the data size. */
static int parse_entry(struct st_entry *e, const uint8_t *p, const uint8_t *end, size_t data_size,
                       uint64_t *begin)
{
	const uint8_t *q = p, *s;
	size_t len;
	if (mp_map_find(&q, end, "dtype") < 0 || take_str(&q, end, &s, &len) < 0)
		return errorf("no \"dtype\" string");
	int dt = st_dtype_from_name(s, len);
	if (dt < 0)
		return errorf("dtype %.*s is not supported", (int)(len < 20 ? len : 20), (const char *)s);
	e->dtype = (enum dtype)dt;

	struct mp_header h;
	q = p;
	int n;
	if (mp_map_find(&q, end, "shape") < 0 || (n = mp_decode_header(q, (size_t)(end - q), &h)) <= 0 ||
	    h.type != MP_ARRAY)
		return errorf("no \"shape\" list");
	if (h.len > TENSOR_MAX_DIMS)
		return errorf("shape has %llu dimensions, more than %d", (unsigned long long)h.len,
		              TENSOR_MAX_DIMS);
	q += n;
	e->ndim = (int)h.len;
	uint64_t numel = 1;
	for (int d = 0; d < e->ndim; d++) {
		uint64_t dim;
		if (take_uint(&q, end, &dim) < 0)
			return errorf("shape[%d] is not a non-negative integer", d);
		if (dim > INT64_MAX || (dim && numel > SIZE_MAX / dim))
			return errorf("shape is too large");
		e->shape[d] = (int64_t)dim;
		numel *= dim;
	}
	size_t item = dtype_size(e->dtype);
	if (numel > SIZE_MAX / item)
		return errorf("shape is too large");
	e->numel = (size_t)numel;
	e->nbytes = e->numel * item;

	q = p;
	uint64_t b, en;
	if (mp_map_find(&q, end, "data_offsets") < 0 || (n = mp_decode_header(q, (size_t)(end - q), &h)) <= 0 ||
	    h.type != MP_ARRAY || h.len != 2)
		return errorf("no \"data_offsets\" pair");
	q += n;
	if (take_uint(&q, end, &b) < 0 || take_uint(&q, end, &en) < 0)
		return errorf("data_offsets are not non-negative integers");
	if (b > en)
		return errorf("data_offsets [%llu, %llu] are reversed", (unsigned long long)b,
		              (unsigned long long)en);
	if (en > data_size)
		return errorf("data_offsets [%llu, %llu] run past the end of the data (%zu bytes): "
		              "the file is truncated or corrupt",
		              (unsigned long long)b, (unsigned long long)en, data_size);
	if (en - b != e->nbytes) {
		char shape[160];
		int at = snprintf(shape, sizeof shape, "[");
		for (int d = 0; d < e->ndim && at < (int)sizeof shape - 24; d++)
			at += snprintf(shape + at, sizeof shape - at, d ? ",%lld" : "%lld", (long long)e->shape[d]);
		snprintf(shape + at, sizeof shape - at, "]");
		return errorf("data_offsets [%llu, %llu] hold %llu bytes but %s %s needs %zu",
		              (unsigned long long)b, (unsigned long long)en, (unsigned long long)(en - b),
		              st_dtype_name(e->dtype), shape, e->nbytes);
	}
	*begin = b;
	return 0;
}

static int cmp_by_name(const void *a, const void *b, void *file)
{
	const struct st_entry *e = ((const struct st_file *)file)->entries;
	return strcmp(e[*(const int *)a].name, e[*(const int *)b].name);
}

struct span {
	uint64_t begin, end;
	int index;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return x->index - y->index;
}

/* Entries must tile the data exactly; puts them in data order. */
static int check_layout(struct st_file *f, struct span *spans)
{
	qsort(spans, (size_t)f->n, sizeof *spans, cmp_span);
	uint64_t at = 0;
	struct st_entry *sorted = xcalloc((size_t)(f->n ? f->n : 1), sizeof *sorted);
	int rc = 0;
	for (int i = 0; i < f->n && rc == 0; i++) {
		const struct st_entry *e = &f->entries[spans[i].index];
		if (spans[i].begin < at)
			rc = errorf("tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s'", e->name,
			            (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end,
			            f->entries[spans[i - 1].index].name);
		else if (spans[i].begin > at)
			rc = errorf("tensor '%s': %llu bytes before it (from offset %llu) belong to no tensor",
			            e->name, (unsigned long long)(spans[i].begin - at), (unsigned long long)at);
		sorted[i] = *e;
		at = spans[i].end;
	}
	if (rc == 0 && at != f->data_size)
		rc = errorf("%llu bytes after the last tensor belong to no tensor",
		            (unsigned long long)(f->data_size - at));
	if (rc < 0) {
		/* names stay owned by f->entries, which is freed by st_close */
		free(sorted);
		return -1;
	}
	free(f->entries);
	f->entries = sorted;
	return 0;
}

static int parse_header(struct st_file *f)
{
	if (f->size < 8)
		return errorf("%zu bytes is too short for a safetensors file", f->size);
	uint64_t hlen = read_le64(f->base);
	if (hlen > f->size - 8)
		return errorf("header length %llu runs past the end of the file (%zu bytes): "
		              "truncated or not a safetensors file",
		              (unsigned long long)hlen, f->size);
	if (hlen > ST_MAX_HEADER)
		return errorf("header length %llu is larger than the limit of %u", (unsigned long long)hlen,
		              ST_MAX_HEADER);
	f->data = f->base + 8 + hlen;
	f->data_size = f->size - 8 - (size_t)hlen;

	struct mp_buf mp = { 0 };
	if (json_to_msgpack((const char *)f->base + 8, (size_t)hlen, &mp) < 0) {
		mp_buf_free(&mp);
		return error_prefix("header is not valid JSON");
	}
	const uint8_t *p = mp.data, *end = mp.data + mp.len;
	struct mp_header h;
	int n = mp_decode_header(p, (size_t)(end - p), &h);
	if (n <= 0 || h.type != MP_MAP) {
		mp_buf_free(&mp);
		return errorf("header is not a JSON object");
	}
	p += n;
	f->entries = xcalloc(h.len ? h.len : 1, sizeof *f->entries);
	struct span *spans = xcalloc(h.len ? h.len : 1, sizeof *spans);
	int rc = 0, seen_meta = 0;
	for (uint64_t i = 0; i < h.len && rc == 0; i++) {
		const uint8_t *k, *value;
		size_t klen;
		take_str(&p, end, &k, &klen); /* JSON object keys are strings */
		value = p;
		if (mp_skip_value(&p, end, JSON_MAX_DEPTH + 1) < 0) {
			rc = -1;
			break;
		}
		if (klen == 12 && !memcmp(k, "__metadata__", 12)) {
			rc = seen_meta++ ? errorf("__metadata__ appears twice") : parse_metadata(f, value, p);
			continue;
		}
		char *name = copy_cstr(k, klen, "a tensor name");
		if (!name) {
			rc = -1;
			break;
		}
		struct st_entry *e = &f->entries[f->n];
		e->name = name;
		spans[f->n].index = f->n;
		f->n++;
		struct mp_header eh;
		n = mp_decode_header(value, (size_t)(p - value), &eh);
		if (n <= 0 || eh.type != MP_MAP)
			rc = errorf("tensor '%s': its description is not an object", name);
		else if (parse_entry(e, value, p, f->data_size, &spans[f->n - 1].begin) < 0)
			rc = error_prefix("tensor '%s'", name);
		spans[f->n - 1].end = spans[f->n - 1].begin + e->nbytes;
	}
	mp_buf_free(&mp);
	if (rc == 0)
		rc = check_layout(f, spans);
	free(spans);
	if (rc < 0)
		return -1;
	/* Data pointers: entries are in data order and tile the data. */
	size_t at = 0;
	for (int i = 0; i < f->n; i++) {
		f->entries[i].data = f->data + at;
		at += f->entries[i].nbytes;
	}
	f->by_name = xcalloc((size_t)(f->n ? f->n : 1), sizeof *f->by_name);
	for (int i = 0; i < f->n; i++)
		f->by_name[i] = i;
	qsort_r(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_by_name, f);
	for (int i = 1; i < f->n; i++)
		if (!strcmp(f->entries[f->by_name[i]].name, f->entries[f->by_name[i - 1]].name))
			return errorf("tensor '%s' appears twice", f->entries[f->by_name[i]].name);
	return 0;
}

struct st_file *st_open_memory(const void *bytes, size_t size, const char *label)
{
	struct st_file *f = xcalloc(1, sizeof *f);
	f->base = bytes;
	f->size = size;
	if (parse_header(f) < 0) {
		error_prefix("%s", label);
		st_close(f);
		return NULL;
	}
	return f;
}

struct st_file *st_open(const char *path)
{
	struct file_map map;
	if (file_map_open(&map, path) < 0) {
		error_prefix("%s", path);
		return NULL;
	}
	struct st_file *f = xcalloc(1, sizeof *f);
	f->base = map.data;
	f->size = map.size;
	f->map = map;
	if (parse_header(f) < 0) {
		error_prefix("%s", path);
		st_close(f);
		return NULL;
	}
	return f;
}

void st_close(struct st_file *f)
{
	if (!f)
		return;
	file_map_close(&f->map);
	for (int i = 0; i < f->n; i++)
		free((char *)f->entries[i].name);
	free(f->entries);
	free(f->by_name);
	for (int i = 0; i < f->nmeta; i++) {
		free(f->meta_keys[i]);
		free(f->meta_values[i]);
	}
	free(f->meta_keys);
	free(f->meta_values);
	free(f);
}

int st_count(const struct st_file *f) { return f->n; }

const struct st_entry *st_entry_at(const struct st_file *f, int i)
{
	return i >= 0 && i < f->n ? &f->entries[i] : NULL;
}

const struct st_entry *st_find(const struct st_file *f, const char *name)
{
	int lo = 0, hi = f->n - 1;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		const struct st_entry *e = &f->entries[f->by_name[mid]];
		int c = strcmp(name, e->name);
		if (!c)
			return e;
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

const char *st_metadata(const struct st_file *f, const char *key)
{
	for (int i = 0; i < f->nmeta; i++)
		if (!strcmp(f->meta_keys[i], key))
			return f->meta_values[i];
	return NULL;
}

int st_metadata_count(const struct st_file *f) { return f->nmeta; }

void st_metadata_at(const struct st_file *f, int i, const char **key, const char **value)
{
	*key = f->meta_keys[i];
	*value = f->meta_values[i];
}

const void *st_bytes(const struct st_file *f, size_t *size)
{
	*size = f->size;
	return f->base;
}

int st_read_f32(const struct st_entry *e, float *dst, size_t n)
{
	if (n != e->numel)
		return errorf("tensor '%s' has %zu elements, not %zu", e->name, e->numel, n);
	const uint8_t *src = e->data;
	switch (e->dtype) {
	case DT_FLOAT32:
		if (n)
			memcpy(dst, src, n * 4);
		return 0;
	case DT_FLOAT16:
	case DT_BFLOAT16: {
		int half = e->dtype == DT_FLOAT16;
		#pragma omp parallel for schedule(static) if (n > (1 << 18))
		for (size_t i = 0; i < n; i++) {
			uint16_t h;
			memcpy(&h, src + 2 * i, 2);
			dst[i] = half ? half_to_float(h) : bfloat16_to_float(h);
		}
		return 0;
	}
	case DT_FLOAT64:
		for (size_t i = 0; i < n; i++) {
			double d;
			memcpy(&d, src + 8 * i, 8);
			dst[i] = (float)d;
		}
		return 0;
	default:
		return errorf("tensor '%s' is %s, not a float dtype", e->name, st_dtype_name(e->dtype));
	}
}

/* ---- Writing ---- */

static size_t stored_size(const struct st_tensor *t)
{
	return t->convert == ST_AS_IS ? dtype_size(t->dtype) : 2;
}

static enum dtype stored_dtype(const struct st_tensor *t)
{
	return t->convert == ST_TO_F16 ? DT_FLOAT16 : t->convert == ST_TO_BF16 ? DT_BFLOAT16 : t->dtype;
}

static size_t tensor_numel_of(const struct st_tensor *t)
{
	size_t n = 1;
	for (int d = 0; d < t->ndim; d++)
		n *= (size_t)t->shape[d];
	return n;
}

static int is_utf8(const char *s)
{
	size_t len = strlen(s);
	for (size_t i = 0; i < len;) {
		int n = utf8_sequence_length((const uint8_t *)s + i, len - i);
		if (n <= 0)
			return 0;
		i += (size_t)n;
	}
	return 1;
}

static int cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names unique, valid and not the metadata key; shapes and dtypes sane. */
static int check_tensors(const struct st_tensor *t, int n, const struct st_meta *meta, int nmeta)
{
	if (n < 0 || nmeta < 0)
		return errorf("negative tensor or metadata count");
	for (int i = 0; i < n; i++) {
		const char *name = t[i].name;
		if (!name)
			return errorf("tensor %d has no name", i);
		if (!strcmp(name, "__metadata__") || !is_utf8(name))
			return errorf("tensor name '%s' is not allowed (reserved or not UTF-8)", name);
		if (!st_dtype_name(t[i].dtype))
			return errorf("tensor '%s': dtype has no safetensors name", name);
		if (t[i].convert != ST_AS_IS && t[i].dtype != DT_FLOAT32)
			return errorf("tensor '%s': only float32 data converts to F16 or BF16", name);
		if (t[i].ndim < 0 || t[i].ndim > TENSOR_MAX_DIMS)
			return errorf("tensor '%s': %d dimensions", name, t[i].ndim);
		uint64_t numel = 1;
		for (int d = 0; d < t[i].ndim; d++) {
			int64_t dim = t[i].shape[d];
			if (dim < 0 || (dim && numel > (SIZE_MAX / 8) / (uint64_t)dim))
				return errorf("tensor '%s': bad shape[%d] = %lld", name, d, (long long)dim);
			numel *= (uint64_t)dim;
		}
	}
	for (int i = 0; i < nmeta; i++)
		if (!meta[i].key || !meta[i].value || !is_utf8(meta[i].key) || !is_utf8(meta[i].value))
			return errorf("metadata entry %d is missing or not UTF-8", i);
	int most = n > nmeta ? n : nmeta;
	const char **names = xcalloc((size_t)(most ? most : 1), sizeof *names);
	int rc = 0;
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		int m = pass ? nmeta : n;
		for (int i = 0; i < m; i++)
			names[i] = pass ? meta[i].key : t[i].name;
		qsort(names, (size_t)m, sizeof *names, cmp_str_ptr);
		for (int i = 1; i < m && rc == 0; i++)
			if (!strcmp(names[i], names[i - 1]))
				rc = errorf("%s '%s' appears twice", pass ? "metadata key" : "tensor", names[i]);
	}
	free(names);
	return rc;
}

static void put_text(struct mp_buf *b, const char *s)
{
	mp_put_bytes(b, s, strlen(s));
}

static void put_number(struct mp_buf *b, unsigned long long v)
{
	char tmp[24];
	snprintf(tmp, sizeof tmp, "%llu", v);
	put_text(b, tmp);
}

static void build_header(struct mp_buf *b, const struct st_tensor *t, int n, const struct st_meta *meta,
                         int nmeta)
{
	put_text(b, "{");
	if (nmeta) {
		put_text(b, "\"__metadata__\":{");
		for (int i = 0; i < nmeta; i++) {
			if (i)
				put_text(b, ",");
			json_write_string(b, meta[i].key, strlen(meta[i].key));
			put_text(b, ":");
			json_write_string(b, meta[i].value, strlen(meta[i].value));
		}
		put_text(b, "}");
	}
	uint64_t at = 0;
	for (int i = 0; i < n; i++) {
		if (i || nmeta)
			put_text(b, ",");
		json_write_string(b, t[i].name, strlen(t[i].name));
		put_text(b, ":{\"dtype\":\"");
		put_text(b, st_dtype_name(stored_dtype(&t[i])));
		put_text(b, "\",\"shape\":[");
		for (int d = 0; d < t[i].ndim; d++) {
			if (d)
				put_text(b, ",");
			put_number(b, (unsigned long long)t[i].shape[d]);
		}
		uint64_t bytes = tensor_numel_of(&t[i]) * stored_size(&t[i]);
		put_text(b, "],\"data_offsets\":[");
		put_number(b, at);
		put_text(b, ",");
		put_number(b, at + bytes);
		put_text(b, "]}");
		at += bytes;
	}
	put_text(b, "}");
	/* Spaces so that the data starts on an 8-byte boundary. */
	while (b->len % 8)
		put_text(b, " ");
}

static int write_bytes(struct st_writer *w, const void *p, size_t n)
{
	if (n && fwrite(p, 1, n, w->af.fp) != n) {
		w->failed = 1;
		return errorf("%s: cannot write: %s", w->af.path, strerror(errno));
	}
	const uint8_t *b = p;
	for (size_t done = 0; done < n;) {
		size_t chunk = n - done < (1u << 30) ? n - done : (1u << 30);
		w->crc32 = (uint32_t)crc32(w->crc32, b + done, (uInt)chunk);
		done += chunk;
	}
	w->size += n;
	return 0;
}

int st_writer_open(struct st_writer *w, const char *path, const struct st_tensor *t, int n,
                   const struct st_meta *meta, int nmeta)
{
	memset(w, 0, sizeof *w);
	if (check_tensors(t, n, meta, nmeta) < 0)
		return error_prefix("%s", path);
	if (atomic_open(&w->af, path) < 0)
		return -1;
	w->crc32 = (uint32_t)crc32(0, NULL, 0);
	w->t = xcalloc((size_t)(n ? n : 1), sizeof *w->t);
	w->n = n;
	for (int i = 0; i < n; i++) {
		w->t[i] = t[i];
		w->t[i].name = xstrdup(t[i].name);
		w->t[i].data = NULL;
	}
	struct mp_buf header = { 0 };
	build_header(&header, t, n, meta, nmeta);
	uint8_t len[8];
	for (int i = 0; i < 8; i++)
		len[i] = (uint8_t)((uint64_t)header.len >> (8 * i));
	int rc = write_bytes(w, len, 8);
	if (rc == 0)
		rc = write_bytes(w, header.data, header.len);
	mp_buf_free(&header);
	if (rc < 0) {
		st_writer_abort(w);
		return -1;
	}
	return 0;
}

int st_writer_put(struct st_writer *w, const void *data)
{
	if (w->failed)
		return errorf("%s: an earlier write failed", w->af.path);
	if (w->next >= w->n)
		return errorf("%s: more tensors put than described", w->af.path);
	const struct st_tensor *t = &w->t[w->next++];
	size_t numel = tensor_numel_of(t);
	if (t->convert == ST_AS_IS)
		return write_bytes(w, data, numel * dtype_size(t->dtype));
	uint16_t buf[8192];
	const float *src = data;
	for (size_t i = 0; i < numel;) {
		size_t m = numel - i < 8192 ? numel - i : 8192;
		for (size_t j = 0; j < m; j++)
			buf[j] = t->convert == ST_TO_F16 ? float_to_half(src[i + j]) : float_to_bfloat16(src[i + j]);
		if (write_bytes(w, buf, m * 2) < 0)
			return -1;
		i += m;
	}
	return 0;
}

int st_writer_sync(struct st_writer *w)
{
	if (w->failed)
		return errorf("%s: an earlier write failed", w->af.path);
	if (w->next != w->n)
		return errorf("%s: %d of %d tensors were written", w->af.path, w->next, w->n);
	if (fflush(w->af.fp) != 0 || fsync(fileno(w->af.fp)) != 0) {
		w->failed = 1;
		return errorf("%s: cannot write: %s", w->af.path, strerror(errno));
	}
	return 0;
}

static void free_descriptions(struct st_writer *w)
{
	for (int i = 0; i < w->n; i++)
		free((char *)w->t[i].name);
	free(w->t);
	w->t = NULL;
	w->n = w->next = 0;
}

int st_writer_commit(struct st_writer *w)
{
	if (st_writer_sync(w) < 0) {
		st_writer_abort(w);
		return -1;
	}
	free_descriptions(w);
	return atomic_commit(&w->af);
}

void st_writer_abort(struct st_writer *w)
{
	free_descriptions(w);
	atomic_abort(&w->af);
}

static int cmp_wider_first(const void *a, const void *b, void *tensors)
{
	const struct st_tensor *t = tensors, *x = &t[*(const int *)a], *y = &t[*(const int *)b];
	size_t sx = stored_size(x), sy = stored_size(y);
	if (sx != sy)
		return sx > sy ? -1 : 1;
	return *(const int *)a - *(const int *)b;
}

int st_write(const char *path, const struct st_tensor *t, int n, const struct st_meta *meta, int nmeta)
{
	if (n < 0)
		return errorf("%s: negative tensor count", path);
	int *order = xcalloc((size_t)(n ? n : 1), sizeof *order);
	for (int i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, (size_t)n, sizeof *order, cmp_wider_first, (void *)t);
	struct st_tensor *sorted = xcalloc((size_t)(n ? n : 1), sizeof *sorted);
	for (int i = 0; i < n; i++)
		sorted[i] = t[order[i]];
	free(order);
	struct st_writer w;
	int rc = st_writer_open(&w, path, sorted, n, meta, nmeta);
	for (int i = 0; i < n && rc == 0; i++) {
		if (!sorted[i].data && tensor_numel_of(&sorted[i]))
			rc = errorf("%s: tensor '%s' has no data", path, sorted[i].name);
		else
			rc = st_writer_put(&w, sorted[i].data);
	}
	free(sorted);
	if (rc == 0)
		return st_writer_commit(&w);
	st_writer_abort(&w);
	return -1;
}
