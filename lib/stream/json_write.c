/* Record -> one line of JSON (see json.h for the mapping). */
#include "stream/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"

static void put_lit(struct mp_buf *out, const char *s)
{
	mp_put_bytes(out, s, strlen(s));
}

static void put_char(struct mp_buf *out, char c)
{
	mp_buf_reserve(out, 1);
	out->data[out->len++] = (uint8_t)c;
}

static void put_uint(struct mp_buf *out, uint64_t v)
{
	char digits[20];
	int n = 0;
	do {
		digits[sizeof digits - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	mp_put_bytes(out, digits + sizeof digits - n, n);
}

static void put_int(struct mp_buf *out, int64_t v)
{
	if (v < 0) {
		put_char(out, '-');
		put_uint(out, -(uint64_t)v);
	} else {
		put_uint(out, (uint64_t)v);
	}
}

/* Whether decimal text that parses as `parsed` gives back `v` once stored
 * as dtype dt: the test for "printed with enough digits". */
static bool reads_back(double parsed, double v, enum dtype dt)
{
	switch (dt) {
	case DT_FLOAT16: return float_to_half((float)parsed) == float_to_half((float)v);
	case DT_BFLOAT16: return float_to_bfloat16((float)parsed) == float_to_bfloat16((float)v);
	case DT_FLOAT32: return (float)parsed == (float)v;
	default: return parsed == v;
	}
}

/* Significant digits for %g: at least prec, and all of v's integer digits
 * (up to 17), so that 65504 never turns into 6.55e+04. */
static int g_precision(double v, int prec)
{
	int int_digits = v == 0 ? 1 : (int)floor(log10(fabs(v))) + 1;
	return int_digits > prec && int_digits <= 17 ? int_digits : prec;
}

/* The shortest %g text that reads back as the same dtype value. */
static int format_float(char *s, size_t size, double v, enum dtype dt)
{
	for (int prec = dt == DT_FLOAT64 ? 15 : dt == DT_FLOAT32 ? 6 : 3;; prec++) {
		int p = g_precision(v, prec);
		int n = snprintf(s, size, "%.*g", p, v);
		if (p >= 17 || reads_back(strtod(s, NULL), v, dt))
			return n;
	}
}

/* A float always carries '.' or 'e', so that ts-pack reads it back as a
 * float and not an int; non-finite values are strings, as JSON has none. */
static void put_float(struct mp_buf *out, double v, enum dtype dt)
{
	if (isnan(v)) {
		put_lit(out, "\"nan\"");
		return;
	}
	if (isinf(v)) {
		put_lit(out, v > 0 ? "\"inf\"" : "\"-inf\"");
		return;
	}
	char s[48];
	int n = format_float(s, sizeof s - 2, v, dt);
	if (!strpbrk(s, ".e")) {
		memcpy(s + n, ".0", 2);
		n += 2;
	}
	mp_put_bytes(out, s, n);
}

int utf8_sequence_length(const uint8_t *s, size_t avail)
{
	uint8_t c = s[0];
	int n;
	uint32_t cp, min;
	if (c < 0x80) return 1;
	if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; min = 0x80; }
	else if ((c & 0xf0) == 0xe0) { n = 3; cp = c & 0x0f; min = 0x800; }
	else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; min = 0x10000; }
	else return 0;
	if (avail < (size_t)n)
		return 0;
	for (int i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void json_write_string(struct mp_buf *out, const char *str, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *s = (const uint8_t *)str;
	put_char(out, '"');
	size_t run = 0; /* start of bytes that need no escaping, copied in one go */
	for (size_t i = 0; i < len;) {
		uint8_t c = s[i];
		int n = c >= 0x20 && c != '"' && c != '\\' ? utf8_sequence_length(s + i, len - i) : 0;
		if (n > 0) {
			i += n;
			continue;
		}
		mp_put_bytes(out, s + run, i - run);
		char esc[6] = { '\\', 0 };
		int elen = 2;
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		default: /* control character or a byte of invalid UTF-8 */
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		}
		mp_put_bytes(out, esc, elen);
		run = ++i;
	}
	mp_put_bytes(out, s + run, len - run);
	put_char(out, '"');
}

static void put_base64(struct mp_buf *out, const uint8_t *p, size_t len)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	mp_buf_reserve(out, (len + 2) / 3 * 4);
	char *o = (char *)out->data + out->len;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t w = (uint32_t)p[i] << 16;
		if (i + 1 < len) w |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len) w |= p[i + 2];
		*o++ = alphabet[w >> 18];
		*o++ = alphabet[w >> 12 & 63];
		*o++ = i + 1 < len ? alphabet[w >> 6 & 63] : '=';
		*o++ = i + 2 < len ? alphabet[w & 63] : '=';
	}
	out->len = (uint8_t *)o - out->data;
}

static void put_bin(struct mp_buf *out, const void *p, size_t len)
{
	put_lit(out, "{\"$bin\":\"");
	put_base64(out, p, len);
	put_lit(out, "\"}");
}

static uint64_t load_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

/* Element i of an integer or bool tensor, exactly (a double would round
 * 64-bit values); two's complement bits when the dtype is signed. */
static uint64_t load_integer(const struct tensor *t, size_t i)
{
	size_t size = dtype_size(t->dtype);
	uint64_t v = load_le((const uint8_t *)t->data + i * size, size);
	if (dtype_is_signed(t->dtype)) {
		int shift = 64 - 8 * (int)size;
		v = (uint64_t)((int64_t)(v << shift) >> shift);
	}
	return v;
}

static void put_element(struct mp_buf *out, const struct tensor *t, size_t i)
{
	if (t->dtype == DT_BOOL)
		put_lit(out, load_integer(t, i) ? "true" : "false");
	else if (dtype_is_signed(t->dtype))
		put_int(out, (int64_t)load_integer(t, i));
	else if (!dtype_is_float(t->dtype))
		put_uint(out, load_integer(t, i));
	else
		put_float(out, tensor_get(t, i), t->dtype);
}

static void put_dtype_and_shape(struct mp_buf *out, const struct tensor *t)
{
	put_lit(out, "{\"dtype\":\"");
	put_lit(out, dtype_name(t->dtype));
	put_lit(out, "\",\"shape\":[");
	for (int d = 0; d < t->ndim; d++) {
		if (d)
			put_char(out, ',');
		put_int(out, t->shape[d]);
	}
	put_char(out, ']');
}

static void put_tensor_full(struct mp_buf *out, const struct tensor *t)
{
	put_dtype_and_shape(out, t);
	put_lit(out, ",\"data\":[");
	size_t n = (size_t)tensor_numel(t);
	for (size_t i = 0; i < n; i++) {
		if (i)
			put_char(out, ',');
		put_element(out, t, i);
	}
	put_lit(out, "]}");
}

/* Indices of the smallest and largest of n elements, NaNs left out; false
 * if there are none. Integers compare exactly, not as doubles. */
static bool find_extremes(const struct tensor *t, size_t n, size_t *lo, size_t *hi)
{
	bool found = false;
	if (dtype_is_float(t->dtype)) {
		double min = 0, max = 0;
		for (size_t i = 0; i < n; i++) {
			double v = tensor_get(t, i);
			if (isnan(v))
				continue;
			if (!found || v < min) { min = v; *lo = i; }
			if (!found || v > max) { max = v; *hi = i; }
			found = true;
		}
		return found;
	}
	/* Flipping the sign bit orders two's complement values as unsigned. */
	uint64_t flip = dtype_is_signed(t->dtype) ? (uint64_t)1 << 63 : 0, min = 0, max = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t key = load_integer(t, i) ^ flip;
		if (i == 0 || key < min) { min = key; *lo = i; }
		if (i == 0 || key > max) { max = key; *hi = i; }
	}
	return n > 0;
}

/* dtype, shape, min, max and mean over all elements. NaNs are left out of
 * min/max and counted, and make the mean "nan". */
static void put_tensor_summary(struct mp_buf *out, const struct tensor *t)
{
	put_dtype_and_shape(out, t);
	size_t n = (size_t)tensor_numel(t), lo = 0, hi = 0, nans = 0;
	if (find_extremes(t, n, &lo, &hi)) {
		put_lit(out, ",\"min\":");
		put_element(out, t, lo);
		put_lit(out, ",\"max\":");
		put_element(out, t, hi);
	}
	if (n > 0) {
		double sum = 0;
		for (size_t i = 0; i < n; i++) {
			double v = tensor_get(t, i);
			if (isnan(v))
				nans++;
			else
				sum += v;
		}
		double mean = nans ? NAN : sum / (double)n;
		put_lit(out, ",\"mean\":");
		if (isfinite(mean)) {
			char s[32];
			mp_put_bytes(out, s, snprintf(s, sizeof s, "%.*g", g_precision(mean, 4), mean));
		} else {
			put_float(out, mean, DT_FLOAT64);
		}
	}
	if (nans) {
		put_lit(out, ",\"nans\":");
		put_uint(out, nans);
	}
	put_char(out, '}');
}

static int put_raw(struct mp_buf *out, const uint8_t **p, const uint8_t *end, int depth);

/* JSON object keys are strings: a raw map's other scalar keys are written as
 * their JSON text, quoted. Array and map keys are refused: quoting text that
 * holds quoted keys doubles the escapes at every level. */
static int put_raw_key(struct mp_buf *out, const uint8_t **p, const uint8_t *end, int depth)
{
	struct mp_header h;
	int n = mp_decode_header(*p, (size_t)(end - *p), &h);
	if (n > 0 && h.type == MP_STR && h.len <= (uint64_t)(end - *p - n)) {
		json_write_string(out, (const char *)*p + n, h.len);
		*p += n + h.len;
		return 0;
	}
	if (n > 0 && (h.type == MP_ARRAY || h.type == MP_MAP || h.type == MP_EXT))
		return errorf("a map key of type %s, which JSON cannot show", mp_type_name(h.type));
	struct mp_buf key = { 0 };
	int rc = put_raw(&key, p, end, depth);
	if (rc == 0)
		json_write_string(out, (const char *)key.data, key.len);
	mp_buf_free(&key);
	return rc;
}

/* Walks one msgpack value of a V_RAW field, writing it as JSON. */
static int put_raw(struct mp_buf *out, const uint8_t **p, const uint8_t *end, int depth)
{
	struct mp_header h;
	int n = mp_decode_header(*p, (size_t)(end - *p), &h);
	if (n == 0)
		return errorf("truncated raw value");
	if (n < 0)
		return errorf("invalid msgpack byte 0x%02x in raw value", **p);
	*p += n;
	if ((h.type == MP_STR || h.type == MP_BIN || h.type == MP_EXT) && h.len > (uint64_t)(end - *p))
		return errorf("truncated %s in raw value", mp_type_name(h.type));
	if ((h.type == MP_ARRAY || h.type == MP_MAP) && depth >= JSON_MAX_DEPTH)
		return errorf("raw value nested deeper than %d", JSON_MAX_DEPTH);
	switch (h.type) {
	case MP_NIL: put_lit(out, "null"); break;
	case MP_BOOL: put_lit(out, h.b ? "true" : "false"); break;
	case MP_INT: put_int(out, h.i); break;
	case MP_UINT: put_uint(out, h.u); break;
	case MP_FLOAT32: put_float(out, h.f, DT_FLOAT32); break;
	case MP_FLOAT64: put_float(out, h.f, DT_FLOAT64); break;
	case MP_STR: json_write_string(out, (const char *)*p, h.len); *p += h.len; break;
	case MP_BIN: put_bin(out, *p, h.len); *p += h.len; break;
	case MP_EXT:
		put_lit(out, "{\"$ext\":[");
		put_int(out, h.ext_type);
		put_lit(out, ",\"");
		put_base64(out, *p, h.len);
		put_lit(out, "\"]}");
		*p += h.len;
		break;
	case MP_ARRAY:
		put_char(out, '[');
		for (uint64_t i = 0; i < h.len; i++) {
			if (i)
				put_char(out, ',');
			if (put_raw(out, p, end, depth + 1) < 0)
				return -1;
		}
		put_char(out, ']');
		break;
	case MP_MAP:
		put_char(out, '{');
		for (uint64_t i = 0; i < h.len; i++) {
			if (i)
				put_char(out, ',');
			if (put_raw_key(out, p, end, depth + 1) < 0)
				return -1;
			put_char(out, ':');
			if (put_raw(out, p, end, depth + 1) < 0)
				return -1;
		}
		put_char(out, '}');
		break;
	}
	return 0;
}

int json_write_value(struct mp_buf *out, const struct value *v, bool full)
{
	switch (v->kind) {
	case V_NIL: put_lit(out, "null"); break;
	case V_BOOL: put_lit(out, v->b ? "true" : "false"); break;
	case V_INT:
		if (v->is_unsigned)
			put_uint(out, v->u);
		else
			put_int(out, v->i);
		break;
	case V_FLOAT: put_float(out, v->f, v->is_f32 ? DT_FLOAT32 : DT_FLOAT64); break;
	case V_STR: json_write_string(out, v->str.ptr, v->str.len); break;
	case V_BIN: put_bin(out, v->str.ptr, v->str.len); break;
	case V_TENSOR:
		if (full)
			put_tensor_full(out, &v->t);
		else
			put_tensor_summary(out, &v->t);
		break;
	case V_RAW: {
		const uint8_t *p = (const uint8_t *)v->str.ptr, *end = p + v->str.len;
		if (put_raw(out, &p, end, 0) < 0)
			return -1;
		if (p != end)
			return errorf("%zu bytes after the raw value", (size_t)(end - p));
		break;
	}
	}
	return 0;
}

static bool key_selected(const char *key, const struct json_options *opt)
{
	if (opt->nkeys <= 0)
		return true;
	for (int i = 0; i < opt->nkeys; i++)
		if (!strcmp(key, opt->keys[i]))
			return true;
	return false;
}

int json_write_record(struct mp_buf *out, const struct record *r, const struct json_options *opt)
{
	size_t start = out->len;
	bool first = true;
	put_char(out, '{');
	for (int i = 0; i < r->n; i++) {
		const struct field *f = &r->fields[i];
		if (!key_selected(f->key, opt))
			continue;
		if (!first)
			put_char(out, ',');
		first = false;
		json_write_string(out, f->key, strlen(f->key));
		put_char(out, ':');
		if (json_write_value(out, &f->v, opt->full) < 0) {
			out->len = start;
			return error_prefix("field '%s'", f->key);
		}
	}
	put_lit(out, "}\n");
	return 0;
}
