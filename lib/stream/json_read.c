/* One line of JSON -> record (see json.h for the mapping).
 *
 * A recursive-descent parser turns each field's JSON value into msgpack,
 * the same bytes the stream would carry; the field is then read off those
 * bytes: scalars become scalar values, objects that are tensors become
 * tensors, and other arrays and objects stay raw msgpack. */
#include "stream/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"

struct parser {
	const char *start, *p, *end;
	int depth;
	struct mp_buf text; /* a decoded string, before it is copied out */
};

/* "column N: problem", N counted in bytes from 1. */
static int fail_at(const struct parser *ps, const char *at, const char *fmt, ...) KNND_PRINTF(3, 4);
static int fail_at(const struct parser *ps, const char *at, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return errorf("column %td: %s", at - ps->start + 1, msg);
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end && is_ws(*ps->p))
		ps->p++;
}

bool json_is_blank(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_ws(text[i]))
			return false;
	return true;
}

/* What is at the cursor, for "expected X, found Y" messages. */
static const char *found(const struct parser *ps)
{
	static _Thread_local char s[16];
	if (ps->p >= ps->end)
		return "the end of the line";
	unsigned char c = (unsigned char)*ps->p;
	snprintf(s, sizeof s, c > 0x20 && c < 0x7f ? "'%c'" : "byte 0x%02x", c);
	return s;
}

static int expect(struct parser *ps, char c)
{
	skip_ws(ps);
	if (ps->p >= ps->end || *ps->p != c)
		return fail_at(ps, ps->p, "expected '%c', found %s", c, found(ps));
	ps->p++;
	return 0;
}

static void put_utf8(struct mp_buf *b, uint32_t cp)
{
	uint8_t s[4];
	int n;
	if (cp < 0x80) { s[0] = (uint8_t)cp; n = 1; }
	else if (cp < 0x800) { s[0] = 0xc0 | cp >> 6; n = 2; }
	else if (cp < 0x10000) { s[0] = 0xe0 | cp >> 12; n = 3; }
	else { s[0] = 0xf0 | cp >> 18; n = 4; }
	for (int i = 1; i < n; i++)
		s[i] = 0x80 | (cp >> (6 * (n - 1 - i)) & 0x3f);
	mp_put_bytes(b, s, n);
}

static int hex4(struct parser *ps, uint32_t *cp)
{
	*cp = 0;
	for (int i = 0; i < 4; i++) {
		char c = ps->p + i < ps->end ? ps->p[i] : 0;
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
		      : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return fail_at(ps, ps->p - 2, "\\u needs four hex digits");
		*cp = *cp << 4 | (uint32_t)d;
	}
	ps->p += 4;
	return 0;
}

/* The code point of a \u escape (cursor after "\u"), joining a surrogate pair. */
static int unicode_escape(struct parser *ps, uint32_t *cp)
{
	const char *at = ps->p - 2;
	if (hex4(ps, cp) < 0)
		return -1;
	if (*cp >= 0xdc00 && *cp <= 0xdfff)
		return fail_at(ps, at, "\\u%04X is a low surrogate without a high one before it", *cp);
	if (*cp < 0xd800 || *cp > 0xdbff)
		return 0;
	uint32_t low;
	if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
		return fail_at(ps, at, "\\u%04X is a high surrogate without a low one after it", *cp);
	ps->p += 2;
	if (hex4(ps, &low) < 0)
		return -1;
	if (low < 0xdc00 || low > 0xdfff)
		return fail_at(ps, at, "\\u%04X is a high surrogate without a low one after it", *cp);
	*cp = 0x10000 + ((*cp - 0xd800) << 10) + (low - 0xdc00);
	return 0;
}

/* Decodes the string at the cursor into ps->text. JSON text is UTF-8:
 * anything else is an error, so every string we store is valid UTF-8. */
static int parse_string(struct parser *ps)
{
	const char *open = ps->p++;
	ps->text.len = 0;
	for (;;) {
		const char *run = ps->p;
		while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' && (unsigned char)*ps->p >= 0x20) {
			int n = (unsigned char)*ps->p < 0x80 ? 1
			      : utf8_sequence_length((const uint8_t *)ps->p, (size_t)(ps->end - ps->p));
			if (n == 0)
				return fail_at(ps, ps->p, "invalid UTF-8 (byte 0x%02x) in a string", (unsigned char)*ps->p);
			ps->p += n;
		}
		mp_put_bytes(&ps->text, run, ps->p - run);
		if (ps->p >= ps->end)
			return fail_at(ps, open, "string is not closed");
		if (*ps->p == '"') {
			ps->p++;
			return 0;
		}
		if (*ps->p != '\\')
			return fail_at(ps, ps->p, "control character 0x%02x in a string (write it as \\u%04x)",
			               *ps->p, *ps->p);
		if (++ps->p >= ps->end)
			return fail_at(ps, open, "string is not closed");
		char c = *ps->p++, out;
		switch (c) {
		case '"': case '\\': case '/': out = c; break;
		case 'b': out = '\b'; break;
		case 'f': out = '\f'; break;
		case 'n': out = '\n'; break;
		case 'r': out = '\r'; break;
		case 't': out = '\t'; break;
		case 'u': {
			uint32_t cp;
			if (unicode_escape(ps, &cp) < 0)
				return -1;
			put_utf8(&ps->text, cp);
			continue;
		}
		default:
			return fail_at(ps, ps->p - 2, "invalid escape '\\%c'", c);
		}
		mp_put_bytes(&ps->text, &out, 1);
	}
}

static int is_digit(const struct parser *ps)
{
	return ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9';
}

static int digits(struct parser *ps, const char *start)
{
	if (!is_digit(ps))
		return fail_at(ps, start, "invalid number");
	while (is_digit(ps))
		ps->p++;
	return 0;
}

/* An integer (no '.' or exponent) becomes a msgpack int, anything else a
 * float64. */
static int parse_number(struct parser *ps, struct mp_buf *out)
{
	const char *start = ps->p;
	bool negative = *ps->p == '-', is_float = false;
	if (negative)
		ps->p++;
	if (ps->p < ps->end && *ps->p == '0')
		ps->p++;
	else if (digits(ps, start) < 0)
		return -1;
	if (ps->p < ps->end && *ps->p == '.') {
		ps->p++;
		if (digits(ps, start) < 0)
			return -1;
		is_float = true;
	}
	if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
		ps->p++;
		if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
			ps->p++;
		if (digits(ps, start) < 0)
			return -1;
		is_float = true;
	}
	size_t len = (size_t)(ps->p - start);
	if (!is_float) {
		uint64_t mag = 0;
		for (const char *d = start + negative; d < ps->p; d++) {
			unsigned digit = (unsigned)(*d - '0');
			if (mag > (UINT64_MAX - digit) / 10)
				return fail_at(ps, start, "integer %.*s is out of range (write it with a '.' for a float)",
				               (int)len, start);
			mag = mag * 10 + digit;
		}
		if (!negative)
			mp_put_uint(out, mag);
		else if (mag <= (uint64_t)INT64_MAX + 1)
			mp_put_int(out, mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag);
		else
			return fail_at(ps, start, "integer %.*s is out of range (write it with a '.' for a float)",
			               (int)len, start);
		return 0;
	}
	/* strtod wants a terminated string; the line is not. */
	char small[64], *copy = len < sizeof small ? small : xmalloc(len + 1);
	memcpy(copy, start, len);
	copy[len] = 0;
	double v = strtod(copy, NULL);
	if (copy != small)
		free(copy);
	if (isinf(v))
		return fail_at(ps, start, "number %.*s is out of range", (int)(len < 40 ? len : 40), start);
	mp_put_f64(out, v);
	return 0;
}

static int parse_literal(struct parser *ps, struct mp_buf *out)
{
	static const char *const words[] = { "null", "false", "true" };
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(words[i]);
		if ((size_t)(ps->end - ps->p) >= n && !memcmp(ps->p, words[i], n)) {
			ps->p += n;
			if (i == 0)
				mp_put_nil(out);
			else
				mp_put_bool(out, i == 2);
			return 0;
		}
	}
	return fail_at(ps, ps->p, "expected a JSON value, found %s", found(ps));
}

/* Arrays and maps are written before their length is known: a 5-byte gap
 * (the largest header) is left, then closed up around the real header. */
static size_t open_container(struct mp_buf *out)
{
	size_t at = out->len;
	mp_buf_reserve(out, 5);
	out->len += 5;
	return at;
}

static void close_container(struct mp_buf *out, size_t at, uint32_t n, bool is_map)
{
	uint8_t header[5];
	struct mp_buf h = { header, 0, sizeof header }; /* never grows: cap fits any header */
	if (is_map)
		mp_put_map_header(&h, n);
	else
		mp_put_array_header(&h, n);
	memmove(out->data + at + h.len, out->data + at + 5, out->len - at - 5);
	memcpy(out->data + at, header, h.len);
	out->len -= 5 - h.len;
}

static int b64_digit(uint8_t c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

/* Standard base64 with '=' padding, as ts-cat writes it. */
static int put_base64_as_bin(struct mp_buf *out, const uint8_t *s, size_t len)
{
	if (len % 4)
		return -1;
	size_t pad = len && s[len - 1] == '=' ? (s[len - 2] == '=' ? 2 : 1) : 0;
	size_t n = len / 4 * 3 - pad;
	mp_put_bin_header(out, n);
	mp_buf_reserve(out, n + 3);
	uint8_t *o = out->data + out->len;
	for (size_t i = 0; i < len; i += 4) {
		uint32_t w = 0;
		for (size_t j = 0; j < 4; j++) {
			int d = b64_digit(s[i + j]);
			if (d < 0 && !(s[i + j] == '=' && i + j >= len - pad))
				return -1;
			w = w << 6 | (uint32_t)(d < 0 ? 0 : d);
		}
		*o++ = (uint8_t)(w >> 16);
		*o++ = (uint8_t)(w >> 8);
		*o++ = (uint8_t)w;
	}
	out->len += n;
	return 0;
}

static int parse_value(struct parser *ps, struct mp_buf *out);

/* The rest of {"$bin": "..."}, the cursor after the key. */
static int parse_bin(struct parser *ps, struct mp_buf *out, const char *open)
{
	if (expect(ps, ':') < 0)
		return -1;
	skip_ws(ps);
	const char *at = ps->p;
	if (ps->p >= ps->end || *ps->p != '"')
		return fail_at(ps, at, "\"$bin\" needs a base64 string");
	if (parse_string(ps) < 0)
		return -1;
	if (put_base64_as_bin(out, ps->text.data, ps->text.len) < 0)
		return fail_at(ps, at, "invalid base64 in \"$bin\"");
	skip_ws(ps);
	if (ps->p >= ps->end || *ps->p != '}')
		return fail_at(ps, open, "a {\"$bin\": ...} object has no other keys");
	ps->p++;
	return 0;
}

/* Arrays and objects nest as deep as the stream reader allows. A {"$bin"}
 * object is exempt: it stands for bin, which is no container. */
static int check_depth(const struct parser *ps, const char *open)
{
	if (ps->depth > JSON_MAX_DEPTH)
		return fail_at(ps, open, "arrays and objects nested deeper than %d", JSON_MAX_DEPTH);
	return 0;
}

static int parse_object(struct parser *ps, struct mp_buf *out)
{
	const char *open = ps->p++;
	size_t at = open_container(out);
	uint32_t n = 0;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == '}') {
		if (check_depth(ps, open) < 0)
			return -1;
		ps->p++;
		close_container(out, at, 0, true);
		return 0;
	}
	for (;; n++) {
		skip_ws(ps);
		if (ps->p >= ps->end || *ps->p != '"')
			return fail_at(ps, ps->p, "expected a string key, found %s", found(ps));
		if (parse_string(ps) < 0)
			return -1;
		if (n == 0 && ps->text.len == 4 && !memcmp(ps->text.data, "$bin", 4)) {
			out->len = at;
			return parse_bin(ps, out, open);
		}
		if (n == 0 && check_depth(ps, open) < 0)
			return -1;
		mp_put_str(out, (const char *)ps->text.data, ps->text.len);
		if (expect(ps, ':') < 0 || parse_value(ps, out) < 0)
			return -1;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (expect(ps, '}') < 0)
			return -1;
		break;
	}
	close_container(out, at, n + 1, true);
	return 0;
}

static int parse_array(struct parser *ps, struct mp_buf *out)
{
	if (check_depth(ps, ps->p) < 0)
		return -1;
	ps->p++;
	size_t at = open_container(out);
	uint32_t n = 0;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == ']') {
		ps->p++;
		close_container(out, at, 0, false);
		return 0;
	}
	for (;; n++) {
		if (n == UINT32_MAX)
			return fail_at(ps, ps->p, "array is too long");
		if (parse_value(ps, out) < 0)
			return -1;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (expect(ps, ']') < 0)
			return -1;
		break;
	}
	close_container(out, at, n + 1, false);
	return 0;
}

/* Any JSON value at the cursor, appended to out as msgpack. */
static int parse_value(struct parser *ps, struct mp_buf *out)
{
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail_at(ps, ps->p, "expected a JSON value, found the end of the line");
	char c = *ps->p;
	if (c == '"') {
		if (parse_string(ps) < 0)
			return -1;
		mp_put_str(out, (const char *)ps->text.data, ps->text.len);
		return 0;
	}
	if (c == '-' || (c >= '0' && c <= '9'))
		return parse_number(ps, out);
	if (c != '[' && c != '{')
		return parse_literal(ps, out);
	ps->depth++;
	int rc = c == '[' ? parse_array(ps, out) : parse_object(ps, out);
	ps->depth--;
	return rc;
}

/* ---- msgpack of a field -> record value ---- */

/* The parts of a map that starts with a tensor key (the stream reader's
 * rule: such a map must be exactly {dtype, shape, data}). */
struct tensor_parts {
	const uint8_t *dtype, *shape, *data;
	bool other_keys;
};

/* Returns 1 if the map's first key is dtype, shape or data, 0 if not. */
static int find_tensor_parts(const uint8_t *p, const uint8_t *end, struct tensor_parts *tp)
{
	struct mp_header h, k;
	memset(tp, 0, sizeof *tp);
	p += mp_decode_header(p, (size_t)(end - p), &h);
	if (h.len == 0)
		return 0;
	for (uint64_t i = 0; i < h.len; i++) {
		int n = mp_decode_header(p, (size_t)(end - p), &k);
		const char *key = (const char *)p + n;
		const uint8_t **slot = NULL;
		if (k.type == MP_STR && k.len == 5 && !memcmp(key, "dtype", 5)) slot = &tp->dtype;
		else if (k.type == MP_STR && k.len == 5 && !memcmp(key, "shape", 5)) slot = &tp->shape;
		else if (k.type == MP_STR && k.len == 4 && !memcmp(key, "data", 4)) slot = &tp->data;
		if (i == 0 && !slot)
			return 0;
		mp_skip_value(&p, end, JSON_MAX_DEPTH + 1); /* our own bytes: cannot fail */
		if (!slot || *slot)
			tp->other_keys = true;
		else
			*slot = p;
		mp_skip_value(&p, end, JSON_MAX_DEPTH + 1);
	}
	return 1;
}

static void format_shape(char *s, size_t size, const struct tensor *t)
{
	int o = snprintf(s, size, "[");
	for (int d = 0; d < t->ndim && o < (int)size - 24; d++)
		o += snprintf(s + o, size - o, "%s%lld", d ? "," : "", (long long)t->shape[d]);
	snprintf(s + o, size - o, "]");
}

static int read_dtype_and_shape(const struct tensor_parts *tp, const uint8_t *end, struct tensor *t)
{
	struct mp_header h;
	int n = mp_decode_header(tp->dtype, (size_t)(end - tp->dtype), &h);
	if (h.type != MP_STR)
		return errorf("dtype must be a string such as \"float32\"");
	int dt = dtype_from_name((const char *)tp->dtype + n, h.len);
	if (dt < 0)
		return errorf("unknown dtype \"%.*s\"", (int)(h.len < 40 ? h.len : 40), tp->dtype + n);
	t->dtype = (enum dtype)dt;
	const uint8_t *p = tp->shape;
	p += mp_decode_header(p, (size_t)(end - p), &h);
	if (h.type != MP_ARRAY)
		return errorf("shape must be a list of non-negative integers");
	if (h.len > TENSOR_MAX_DIMS)
		return errorf("shape has %llu dimensions (limit %d)", (unsigned long long)h.len, TENSOR_MAX_DIMS);
	t->ndim = (int)h.len;
	for (int d = 0; d < t->ndim; d++) {
		p += mp_decode_header(p, (size_t)(end - p), &h);
		if (h.type != MP_UINT || h.u > INT64_MAX)
			return errorf("shape must be a list of non-negative integers");
		t->shape[d] = (int64_t)h.u;
	}
	int64_t numel = shape_numel(t->ndim, t->shape);
	if (numel < 0 || (uint64_t)numel > TS_MAX_BYTES / dtype_size(t->dtype))
		return errorf("shape is too large");
	return 0;
}

/* Stores an integer (two's complement bits, `negative` if below zero) into
 * element i of an integer or bool tensor, if it fits. */
static int store_integer(struct tensor *t, size_t i, uint64_t bits, bool negative)
{
	size_t size = dtype_size(t->dtype);
	int width = t->dtype == DT_BOOL ? 1 : 8 * (int)size;
	uint64_t max = dtype_is_signed(t->dtype) ? (UINT64_MAX >> (65 - width))
	             : width == 64 ? UINT64_MAX : (((uint64_t)1 << width) - 1);
	int64_t min = dtype_is_signed(t->dtype) ? -(int64_t)(max) - 1 : 0;
	if (negative ? (int64_t)bits < min : bits > max)
		return -1;
	uint8_t *p = (uint8_t *)t->data + i * size;
	for (size_t b = 0; b < size; b++)
		p[b] = (uint8_t)(bits >> (8 * b));
	return 0;
}

/* Element i from one JSON value: a number, a bool for bool tensors, or
 * "nan"/"inf"/"-inf" for float tensors. */
static int store_element(struct tensor *t, size_t i, const struct mp_header *h, const uint8_t *payload)
{
	const char *dt = dtype_name(t->dtype);
	if (dtype_is_float(t->dtype)) {
		double v;
		if (h->type == MP_INT) v = (double)h->i;
		else if (h->type == MP_UINT) v = (double)h->u;
		else if (h->type == MP_FLOAT64) v = h->f;
		else if (h->type == MP_STR && h->len == 3 && !memcmp(payload, "nan", 3)) v = NAN;
		else if (h->type == MP_STR && h->len == 3 && !memcmp(payload, "inf", 3)) v = INFINITY;
		else if (h->type == MP_STR && h->len == 4 && !memcmp(payload, "-inf", 4)) v = -INFINITY;
		else return errorf("data[%zu] is not a number (or \"nan\", \"inf\", \"-inf\")", i);
		tensor_set(t, i, v);
		if (isfinite(v) && !isfinite(tensor_get(t, i)))
			return errorf("data[%zu] = %g is out of range for %s", i, v, dt);
		return 0;
	}
	char text[32] = "";
	int rc;
	if (h->type == MP_INT) {
		rc = store_integer(t, i, (uint64_t)h->i, h->i < 0);
		snprintf(text, sizeof text, "%lld", (long long)h->i);
	} else if (h->type == MP_UINT) {
		rc = store_integer(t, i, h->u, false);
		snprintf(text, sizeof text, "%llu", (unsigned long long)h->u);
	} else if (h->type == MP_BOOL && t->dtype == DT_BOOL) {
		rc = store_integer(t, i, h->b, false);
	} else if (h->type == MP_FLOAT64 && h->f == floor(h->f) && h->f >= -0x1p63 && h->f < 0x1p64) {
		rc = h->f < 0 ? store_integer(t, i, (uint64_t)(int64_t)h->f, true)
		              : store_integer(t, i, (uint64_t)h->f, false);
		snprintf(text, sizeof text, "%.17g", h->f);
	} else {
		return errorf("data[%zu] is not an integer, as %s needs", i, dt);
	}
	if (rc < 0)
		return errorf("data[%zu] = %s does not fit %s", i, text, dt);
	return 0;
}

/* Allocates t from meta (dtype and shape) once the data is known to match. */
static int read_tensor_data(const uint8_t *p, const uint8_t *end, const struct tensor *meta,
                            struct tensor *t)
{
	struct mp_header h;
	char shape[200];
	format_shape(shape, sizeof shape, meta);
	int64_t numel = tensor_numel(meta);
	size_t nbytes = (size_t)numel * dtype_size(meta->dtype);
	p += mp_decode_header(p, (size_t)(end - p), &h);
	if (h.type == MP_BIN) {
		if (h.len != nbytes)
			return errorf("data has %llu bytes but %s %s needs %zu", (unsigned long long)h.len,
			              dtype_name(meta->dtype), shape, nbytes);
		tensor_alloc(t, meta->dtype, meta->ndim, meta->shape);
		memcpy(t->data, p, nbytes);
		return 0;
	}
	if (h.type != MP_ARRAY)
		return errorf("data must be a list of numbers or {\"$bin\": base64}");
	if (h.len != (uint64_t)numel)
		return errorf("data has %llu values but shape %s needs %lld", (unsigned long long)h.len,
		              shape, (long long)numel);
	tensor_alloc(t, meta->dtype, meta->ndim, meta->shape);
	for (size_t i = 0; i < (size_t)numel; i++) {
		struct mp_header e;
		int n = mp_decode_header(p, (size_t)(end - p), &e);
		if (store_element(t, i, &e, p + n) < 0) {
			tensor_free(t);
			return -1;
		}
		mp_skip_value(&p, end, JSON_MAX_DEPTH + 1);
	}
	return 0;
}

/* A map whose first key is dtype, shape or data must be a whole tensor.
 * Returns 1 and sets the field, 0 if the map is not a tensor, -1 on error. */
static int set_tensor_field(struct record *r, const char *key, const uint8_t *p, const uint8_t *end)
{
	struct tensor_parts tp;
	if (!find_tensor_parts(p, end, &tp))
		return 0;
	if (tp.dtype && tp.shape && !tp.data)
		return errorf("a tensor summary has no data to pack: print the stream with ts-cat --full");
	if (!tp.dtype || !tp.shape || !tp.data || tp.other_keys)
		return errorf("a tensor is an object with exactly the keys dtype, shape and data");
	struct tensor meta = { 0 }, t = { 0 };
	if (read_dtype_and_shape(&tp, end, &meta) < 0 || read_tensor_data(tp.data, end, &meta, &t) < 0)
		return -1;
	record_set_tensor(r, key, &t);
	return 1;
}

static char *copy_bytes(const void *p, size_t len)
{
	char *s = xmalloc(len + 1);
	memcpy(s, p, len);
	s[len] = 0;
	return s;
}

/* Sets field `key` from the msgpack of its value. */
static int set_field(struct record *r, const char *key, const uint8_t *p, size_t len)
{
	struct mp_header h;
	int n = mp_decode_header(p, len, &h);
	struct value v = { 0 };
	switch (h.type) {
	case MP_NIL: record_set_nil(r, key); return 0;
	case MP_BOOL: record_set_bool(r, key, h.b); return 0;
	case MP_INT: record_set_int(r, key, h.i); return 0;
	case MP_UINT:
		v.kind = V_INT;
		v.u = h.u;
		v.is_unsigned = h.u > INT64_MAX;
		record_set_value(r, key, &v);
		return 0;
	case MP_FLOAT64: record_set_float(r, key, h.f); return 0;
	case MP_STR: record_set_strn(r, key, (const char *)p + n, h.len); return 0;
	case MP_BIN:
		v.kind = V_BIN;
		v.str.ptr = copy_bytes(p + n, h.len);
		v.str.len = h.len;
		record_set_value(r, key, &v);
		return 0;
	case MP_MAP: {
		int rc = set_tensor_field(r, key, p, p + len);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
		break; /* not a tensor: kept raw, like arrays */
	}
	default:
		break;
	}
	v.kind = V_RAW;
	v.str.ptr = copy_bytes(p, len);
	v.str.len = len;
	record_set_value(r, key, &v);
	return 0;
}

static int parse_record(struct parser *ps, struct record *r, struct mp_buf *value)
{
	skip_ws(ps);
	if (ps->p >= ps->end || *ps->p != '{')
		return fail_at(ps, ps->p, "a record must be a JSON object, found %s", found(ps));
	ps->p++;
	skip_ws(ps);
	bool empty = ps->p < ps->end && *ps->p == '}';
	if (empty)
		ps->p++;
	while (!empty) {
		skip_ws(ps);
		const char *key_at = ps->p;
		if (ps->p >= ps->end || *ps->p != '"')
			return fail_at(ps, ps->p, "expected a string key, found %s", found(ps));
		if (parse_string(ps) < 0)
			return -1;
		if (ps->text.len == 0)
			return fail_at(ps, key_at, "key is empty");
		if (ps->text.len > TS_MAX_KEY_LEN)
			return fail_at(ps, key_at, "key is longer than %d bytes", TS_MAX_KEY_LEN);
		if (memchr(ps->text.data, 0, ps->text.len))
			return fail_at(ps, key_at, "key contains a NUL character");
		if (r->n >= TS_MAX_FIELDS)
			return fail_at(ps, key_at, "record has more than %d fields", TS_MAX_FIELDS);
		char *key = copy_bytes(ps->text.data, ps->text.len);
		if (record_get(r, key)) {
			fail_at(ps, key_at, "duplicate key '%s'", key);
			free(key);
			return -1;
		}
		value->len = 0;
		skip_ws(ps);
		const char *value_at = ps->p;
		int rc = expect(ps, ':');
		if (rc == 0) {
			skip_ws(ps);
			value_at = ps->p;
			rc = parse_value(ps, value);
		}
		if (rc == 0 && set_field(r, key, value->data, value->len) < 0)
			rc = fail_at(ps, value_at, "field '%s': %s", key, error_message());
		free(key);
		if (rc < 0)
			return -1;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (expect(ps, '}') < 0)
			return -1;
		break;
	}
	skip_ws(ps);
	if (ps->p < ps->end)
		return fail_at(ps, ps->p, "unexpected %s after the record", found(ps));
	return 0;
}

int json_read_record(const char *text, size_t len, struct record *r)
{
	record_clear(r);
	struct parser ps = { text, text, text + len, 0, { 0 } };
	struct mp_buf value = { 0 };
	int rc = parse_record(&ps, r, &value);
	mp_buf_free(&value);
	mp_buf_free(&ps.text);
	if (rc < 0)
		record_clear(r);
	return rc;
}

int json_to_msgpack(const char *text, size_t len, struct mp_buf *out)
{
	struct parser ps = { text, text, text + len, 0, { 0 } };
	skip_ws(&ps);
	int rc = parse_value(&ps, out);
	if (rc == 0) {
		skip_ws(&ps);
		if (ps.p < ps.end)
			rc = fail_at(&ps, ps.p, "unexpected %s after the value", found(&ps));
	}
	mp_buf_free(&ps.text);
	return rc;
}
