/* The JSON view of records: writer, parser, and their round trip. */
#include <math.h>
#include <string.h>

#include "core/tool.h"
#include "stream/json.h"
#include "stream/stream.h"
#include "test.h"

/* The JSON text of one value (NUL-terminated, static). */
static const char *value_json(const struct value *v, bool full)
{
	static char text[4096];
	struct mp_buf b = { 0 };
	if (json_write_value(&b, v, full) < 0)
		snprintf(text, sizeof text, "ERROR %s", error_message());
	else
		snprintf(text, sizeof text, "%.*s", (int)b.len, (const char *)b.data);
	mp_buf_free(&b);
	return text;
}

static const char *string_json(const char *s, size_t len)
{
	static char text[1024];
	struct mp_buf b = { 0 };
	json_write_string(&b, s, len);
	snprintf(text, sizeof text, "%.*s", (int)b.len, (const char *)b.data);
	mp_buf_free(&b);
	return text;
}

static int parse(const char *json, struct record *r)
{
	return json_read_record(json, strlen(json), r);
}

/* Parses json, which must fail with a message containing `want`. */
static void check_error(const char *json, const char *want)
{
	struct record r = RECORD_INIT;
	int rc = parse(json, &r);
	CHECK_MSG(rc < 0, "accepted %s", json);
	CHECK_MSG(rc >= 0 || strstr(error_message(), want), "%s: message '%s' lacks '%s'", json,
	          error_message(), want);
	CHECK(r.n == 0);
	record_free(&r);
}

static void test_string_escapes(void)
{
	CHECK(!strcmp(string_json("a\"b\\c", 5), "\"a\\\"b\\\\c\""));
	CHECK(!strcmp(string_json("\n\r\t\b\f", 5), "\"\\n\\r\\t\\b\\f\""));
	CHECK(!strcmp(string_json("\x01\x1f\x7f", 3), "\"\\u0001\\u001f\x7f\""));
	CHECK(!strcmp(string_json("a\0b", 3), "\"a\\u0000b\""));
	CHECK(!strcmp(string_json("/", 1), "\"/\""));
}

static void test_utf8_output(void)
{
	/* Valid UTF-8 passes through: é, €, U+1F600. */
	const char *ok = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
	CHECK(!strcmp(string_json(ok, strlen(ok)), "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""));
	/* Each byte of invalid UTF-8 is escaped as \u00XX. */
	CHECK(!strcmp(string_json("\xff", 1), "\"\\u00ff\""));
	CHECK(!strcmp(string_json("\xc0\x80", 2), "\"\\u00c0\\u0080\""));          /* overlong */
	CHECK(!strcmp(string_json("\xed\xa0\x80", 3), "\"\\u00ed\\u00a0\\u0080\"")); /* surrogate */
	CHECK(!strcmp(string_json("a\xe2\x82", 3), "\"a\\u00e2\\u0082\""));          /* cut short */
	CHECK(!strcmp(string_json("\xf4\x90\x80\x80", 4), "\"\\u00f4\\u0090\\u0080\\u0080\"")); /* > U+10FFFF */
}

static void test_string_parsing(void)
{
	struct record r = RECORD_INIT;
	CHECK(parse("{\"s\":\"\\u00e9\\ud83d\\ude00\\/\\b\\u0000x\", \"k\\u00e9\":1}", &r) == 0);
	const struct value *v = record_get(&r, "s");
	CHECK(v && v->kind == V_STR && v->str.len == 10);
	CHECK(v && !memcmp(v->str.ptr, "\xc3\xa9\xf0\x9f\x98\x80/\b\0x", 10));
	CHECK(record_get(&r, "k\xc3\xa9") != NULL);
	/* Raw UTF-8 in the input is kept as it is. */
	CHECK(parse("{\"s\":\"\xe2\x82\xac\"}", &r) == 0);
	CHECK(!strcmp(record_str(&r, "s"), "\xe2\x82\xac"));
	record_free(&r);
	check_error("{\"s\":\"caf\xe9\"}", "column 10: invalid UTF-8 (byte 0xe9) in a string");
	check_error("{\"s\":\"\xed\xa0\x80\"}", "column 7: invalid UTF-8 (byte 0xed)");
	check_error("{\"\xc0\x80\":1}", "column 3: invalid UTF-8");
	check_error("{\"s\":\"\\ud83d\"}", "column 7: \\uD83D is a high surrogate");
	check_error("{\"s\":\"\\ud83dx\"}", "high surrogate without a low one");
	check_error("{\"s\":\"\\ud83d\\u0041\"}", "high surrogate without a low one");
	check_error("{\"s\":\"\\ude00\"}", "low surrogate");
	check_error("{\"s\":\"\\u12g4\"}", "four hex digits");
	check_error("{\"s\":\"\\q\"}", "column 7: invalid escape '\\q'");
	check_error("{\"s\":\"a\tb\"}", "column 8: control character 0x09");
	check_error("{\"s\":\"abc}", "column 6: string is not closed");
	check_error("{\"a\\u0000b\":1}", "column 2: key contains a NUL");
}

static void test_nesting_limit(void)
{
	char deep[1024], *p;
	struct record r = RECORD_INIT;
	for (int depth = JSON_MAX_DEPTH; depth <= JSON_MAX_DEPTH + 1; depth++) {
		p = deep + sprintf(deep, "{\"a\":");
		for (int i = 0; i < depth; i++)
			*p++ = '[';
		for (int i = 0; i < depth; i++)
			*p++ = ']';
		strcpy(p, "}");
		if (depth == JSON_MAX_DEPTH) {
			CHECK_MSG(parse(deep, &r) == 0, "depth %d: %s", depth, error_message());
			/* What we accept, the stream reader accepts too. */
			struct ts_writer *w = ts_writer_mem();
			CHECK(ts_write(w, &r) == 0);
			size_t len;
			const void *bytes = ts_writer_mem_data(w, &len);
			struct ts_reader *rd = ts_open_mem(bytes, len, "mem");
			struct record back = RECORD_INIT;
			CHECK_MSG(ts_read(rd, &back) == 1, "%s", error_message());
			ts_close(rd);
			record_free(&back);
			ts_writer_close(w);
		} else {
			check_error(deep, "nested deeper than 64");
		}
	}
	/* bin at the deepest level prints as one more object, and reads back. */
	struct mp_buf raw = { 0 }, line = { 0 };
	for (int i = 0; i < JSON_MAX_DEPTH; i++)
		mp_put_array_header(&raw, 1);
	mp_put_bin_header(&raw, 0);
	struct value v = { .kind = V_RAW };
	v.str.ptr = (char *)raw.data;
	v.str.len = raw.len;
	record_set_value(&r, "a", &v);
	struct json_options opt = { 0 };
	CHECK(json_write_record(&line, &r, &opt) == 0);
	mp_put_bytes(&line, "", 1);
	CHECK(strstr((const char *)line.data, "[[{\"$bin\":\"\"}]]") != NULL);
	CHECK_MSG(json_read_record((const char *)line.data, line.len - 1, &r) == 0, "%s", error_message());
	/* Objects count like arrays; {"$bin"} is no deeper than the bin it stands for. */
	p = deep + sprintf(deep, "{\"a\":");
	for (int i = 0; i <= JSON_MAX_DEPTH; i++)
		p += sprintf(p, "{\"k\":");
	strcpy(p, "1");
	for (int i = 0; i <= JSON_MAX_DEPTH + 1; i++)
		strcat(p, "}");
	check_error(deep, "column 326: arrays and objects nested deeper than 64");
	mp_buf_free(&line);
	record_free(&r);
}

static void test_integer_limits(void)
{
	struct record r = RECORD_INIT;
	CHECK(parse("{\"max\":9223372036854775807,\"min\":-9223372036854775808,"
	            "\"umax\":18446744073709551615,\"zero\":-0,\"f\":-0.0}", &r) == 0);
	int64_t i;
	CHECK(record_int(&r, "max", &i) == 0 && i == INT64_MAX);
	CHECK(record_int(&r, "min", &i) == 0 && i == INT64_MIN);
	const struct value *u = record_get(&r, "umax");
	CHECK(u && u->kind == V_INT && u->is_unsigned && u->u == UINT64_MAX);
	CHECK(record_int(&r, "zero", &i) == 0 && i == 0);
	const struct value *f = record_get(&r, "f");
	CHECK(f && f->kind == V_FLOAT && f->f == 0 && signbit(f->f));
	/* And they print back as they were. */
	CHECK(!strcmp(value_json(record_get(&r, "min"), false), "-9223372036854775808"));
	CHECK(!strcmp(value_json(u, false), "18446744073709551615"));
	CHECK(!strcmp(value_json(f, false), "-0.0"));
	record_free(&r);
	check_error("{\"a\":18446744073709551616}", "column 6: integer 18446744073709551616 is out of range");
	check_error("{\"a\":-9223372036854775809}", "out of range");
	check_error("{\"a\":1e999}", "column 6: number 1e999 is out of range");
}

static void test_float_text(void)
{
	struct value v = { .kind = V_FLOAT };
	static const struct { double f; bool f32; const char *text; } cases[] = {
		{ 0.1, false, "0.1" },       { 1, false, "1.0" },         { -2.5, false, "-2.5" },
		{ 1e300, false, "1e+300" },  { 1e15, false, "1000000000000000.0" },
		{ 1e17, false, "1e+17" },    { 0.1f, true, "0.1" },       { 16777216, true, "16777216.0" },
		{ 5e-324, false, "4.94065645841247e-324" },
		{ NAN, false, "\"nan\"" },   { INFINITY, true, "\"inf\"" }, { -INFINITY, false, "\"-inf\"" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		v.f = cases[i].f;
		v.is_f32 = cases[i].f32;
		const char *got = value_json(&v, false);
		CHECK_MSG(!strcmp(got, cases[i].text), "%.17g printed as %s, expected %s", cases[i].f, got,
		          cases[i].text);
	}
}

static void test_malformed(void)
{
	check_error("", "column 1: a record must be a JSON object, found the end of the line");
	check_error("[1,2]", "column 1: a record must be a JSON object, found '['");
	check_error("{\"a\":1", "column 7: expected '}', found the end of the line");
	check_error("{\"a\" 1}", "column 6: expected ':', found '1'");
	check_error("{a:1}", "column 2: expected a string key");
	check_error("{\"a\":1,}", "column 8: expected a string key, found '}'");
	check_error("{\"a\":[1,]}", "column 9: expected a JSON value, found ']'");
	check_error("{\"a\":tru}", "column 6: expected a JSON value");
	check_error("{\"a\":01}", "column 7: expected '}', found '1'");
	check_error("{\"a\":1.}", "column 6: invalid number");
	check_error("{\"a\":-}", "column 6: invalid number");
	check_error("{\"a\":1e}", "column 6: invalid number");
	check_error("{\"a\":NaN}", "column 6: expected a JSON value, found 'N'");
	check_error("{\"a\":1} x", "column 9: unexpected 'x' after the record");
	check_error("{\"a\":1}{}", "column 8: unexpected '{'");
	check_error("{\"a\":1,\"a\":2}", "column 8: duplicate key 'a'");
	check_error("{\"a\":{\"$bin\":\"AP8\"}}", "column 14: invalid base64");
	check_error("{\"a\":{\"$bin\":\"A=P8\"}}", "invalid base64");
	check_error("{\"a\":{\"$bin\":7}}", "needs a base64 string");
	check_error("{\"a\":{\"$bin\":\"\",\"b\":1}}", "column 6: a {\"$bin\": ...} object has no other keys");
	check_error("{\"a\":\"\x01\"}", "control character 0x01");
	struct record r = RECORD_INIT;
	CHECK(parse(" \t{ } \r\n", &r) == 0 && r.n == 0);
	record_free(&r);
	CHECK(json_is_blank(" \t\r\n", 4));
	CHECK(!json_is_blank(" {}", 3));
}

static void test_tensor_errors(void)
{
	check_error("{\"t\":{\"dtype\":\"uint8\",\"shape\":[2,3],\"data\":[1,2,3,4,5]}}",
	            "column 6: field 't': data has 5 values but shape [2,3] needs 6");
	check_error("{\"t\":{\"dtype\":\"uint8\",\"shape\":[2],\"data\":[1,300]}}",
	            "data[1] = 300 does not fit uint8");
	check_error("{\"t\":{\"dtype\":\"uint8\",\"shape\":[1],\"data\":[-1]}}", "data[0] = -1 does not fit uint8");
	check_error("{\"t\":{\"dtype\":\"int8\",\"shape\":[1],\"data\":[-129]}}", "-129 does not fit int8");
	check_error("{\"t\":{\"dtype\":\"int64\",\"shape\":[1],\"data\":[9223372036854775808]}}",
	            "does not fit int64");
	check_error("{\"t\":{\"dtype\":\"int32\",\"shape\":[1],\"data\":[1.5]}}", "data[0] is not an integer");
	check_error("{\"t\":{\"dtype\":\"int32\",\"shape\":[1],\"data\":[\"nan\"]}}", "not an integer");
	check_error("{\"t\":{\"dtype\":\"bool\",\"shape\":[1],\"data\":[2]}}", "2 does not fit bool");
	check_error("{\"t\":{\"dtype\":\"float16\",\"shape\":[1],\"data\":[70000]}}",
	            "data[0] = 70000 is out of range for float16");
	check_error("{\"t\":{\"dtype\":\"float32\",\"shape\":[1],\"data\":[1e39]}}", "out of range for float32");
	check_error("{\"t\":{\"dtype\":\"float32\",\"shape\":[1],\"data\":[\"NaN\"]}}", "data[0] is not a number");
	check_error("{\"t\":{\"dtype\":\"float32\",\"shape\":[1],\"data\":[true]}}", "data[0] is not a number");
	check_error("{\"t\":{\"dtype\":\"float8\",\"shape\":[1],\"data\":[1]}}", "unknown dtype \"float8\"");
	check_error("{\"t\":{\"dtype\":5,\"shape\":[1],\"data\":[1]}}", "dtype must be a string");
	check_error("{\"t\":{\"dtype\":\"uint8\",\"shape\":[-1],\"data\":[]}}", "shape must be a list of non-negative");
	check_error("{\"t\":{\"dtype\":\"uint8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data\":[1]}}",
	            "shape has 9 dimensions");
	check_error("{\"t\":{\"dtype\":\"uint8\",\"shape\":[4294967296,4294967296],\"data\":[]}}",
	            "shape is too large");
	check_error("{\"t\":{\"dtype\":\"uint8\",\"shape\":[10000000000],\"data\":[1]}}",
	            "data has 1 values but shape [10000000000] needs 10000000000");
	check_error("{\"t\":{\"dtype\":\"uint8\",\"shape\":[2],\"data\":{\"$bin\":\"AA==\"}}}",
	            "data has 1 bytes but uint8 [2] needs 2");
	check_error("{\"t\":{\"dtype\":\"uint8\",\"shape\":[2],\"data\":\"AAA=\"}}", "data must be a list");
	check_error("{\"t\":{\"dtype\":\"uint8\",\"shape\":[28,28],\"min\":0,\"max\":255,\"mean\":72.94}}",
	            "tensor summary has no data to pack: print the stream with ts-cat --full");
	check_error("{\"t\":{\"dtype\":\"uint8\",\"shape\":[1],\"data\":[1],\"x\":1}}",
	            "exactly the keys dtype, shape and data");
	check_error("{\"t\":{\"data\":[1]}}", "exactly the keys dtype, shape and data");

	/* A map that only mentions dtype later is an ordinary map; data as bin is a tensor. */
	struct record r = RECORD_INIT;
	CHECK(parse("{\"m\":{\"name\":\"x\",\"dtype\":\"uint8\"},"
	            "\"b\":{\"dtype\":\"bool\",\"shape\":[3],\"data\":[true,0,1]}}", &r) == 0);
	CHECK(record_get(&r, "m") && record_get(&r, "m")->kind == V_RAW);
	struct tensor *t = record_tensor(&r, "b");
	CHECK(t && !memcmp(t->data, "\1\0\1", 3));
	CHECK(parse("{\"e\":{}}", &r) == 0 && record_get(&r, "e")->kind == V_RAW);
	CHECK(parse("{\"t\":{\"shape\":[2],\"data\":{\"$bin\":\"AP8=\"},\"dtype\":\"uint8\"}}", &r) == 0);
	t = record_tensor(&r, "t");
	CHECK(t && t->nbytes == 2 && ((uint8_t *)t->data)[1] == 0xff);
	record_free(&r);
}

/* Element values that stress each dtype: limits, zeros, non-finite floats. */
static void fill_interesting(struct tensor *t, uint64_t seed)
{
	size_t n = (size_t)tensor_numel(t), size = dtype_size(t->dtype);
	static const double floats[] = { 0.0, -0.0, 1.0, -1.5, 0.1, 1e-40, 65504, 3.4028234663852886e38,
	                                 5e-324, 1.7976931348623157e308, NAN, INFINITY, -INFINITY };
	uint8_t *p = t->data;
	for (size_t i = 0; i < n; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		if (!dtype_is_float(t->dtype)) {
			/* Random bits, plus all-zero, all-one and sign-bit-only patterns. */
			uint64_t bits = i == 0 ? 0 : i == 1 ? UINT64_MAX : i == 2 ? (uint64_t)1 << (8 * size - 1) : seed;
			for (size_t b = 0; b < size; b++)
				p[i * size + b] = t->dtype == DT_BOOL ? (uint8_t)(bits & 1) : (uint8_t)(bits >> (8 * b));
		} else if (i < sizeof floats / sizeof *floats) {
			tensor_set(t, i, floats[i]);
		} else {
			/* Random bit patterns, NaNs aside (their payloads are not kept). */
			for (size_t b = 0; b < size; b++)
				p[i * size + b] = (uint8_t)(seed >> (8 * b + 3));
			if (isnan(tensor_get(t, i)))
				tensor_set(t, i, 1.0);
		}
	}
}

static void test_every_dtype_round_trip(void)
{
	for (int dt = 0; dt < DT_COUNT; dt++) {
		struct record r = RECORD_INIT, back = RECORD_INIT;
		int64_t shape[2] = { 25, 40 };
		struct tensor *t = record_new_tensor(&r, "t", (enum dtype)dt, 2, shape);
		fill_interesting(t, (uint64_t)dt + 1);
		int64_t empty_shape[2] = { 0, 3 };
		record_new_tensor(&r, "empty", (enum dtype)dt, 2, empty_shape);
		struct json_options opt = { .full = true };
		struct mp_buf line = { 0 };
		CHECK(json_write_record(&line, &r, &opt) == 0);
		int rc = json_read_record((const char *)line.data, line.len, &back);
		CHECK_MSG(rc == 0, "%s: %s", dtype_name(dt), error_message());
		struct tensor *b = record_tensor(&back, "t");
		CHECK_MSG(b && b->dtype == (enum dtype)dt && b->ndim == 2 && b->shape[1] == 40, "%s", dtype_name(dt));
		if (b && b->nbytes == t->nbytes)
			for (size_t i = 0; i < (size_t)tensor_numel(t); i++) {
				size_t s = dtype_size(dt);
				CHECK_MSG(!memcmp((uint8_t *)t->data + i * s, (uint8_t *)b->data + i * s, s),
				          "%s element %zu: %.17g came back as %.17g", dtype_name(dt), i,
				          tensor_get(t, i), tensor_get(b, i));
			}
		struct tensor *e = record_tensor(&back, "empty");
		CHECK(e && e->nbytes == 0 && e->shape[0] == 0 && e->shape[1] == 3);
		mp_buf_free(&line);
		record_free(&r);
		record_free(&back);
	}
}

/* Every scalar kind and a nested raw value survive JSON and back, down to the stream bytes. */
static void test_record_round_trip(void)
{
	struct record r = RECORD_INIT, back = RECORD_INIT;
	record_set_str(&r, "id", "x\"y\n");
	record_set_int(&r, "label", -3);
	record_set_float(&r, "score", 0.30000000000000004);
	record_set_bool(&r, "ok", false);
	record_set_nil(&r, "none");
	struct value big = { .kind = V_INT, .is_unsigned = true, .u = UINT64_MAX };
	record_set_value(&r, "big", &big);
	for (size_t n = 0; n <= 5; n++) {
		char key[8];
		snprintf(key, sizeof key, "bin%zu", n);
		struct value bin = { .kind = V_BIN };
		bin.str.ptr = xmalloc(n + 1);
		memcpy(bin.str.ptr, "\0\xff\x10\x80z", n);
		bin.str.len = n;
		record_set_value(&r, key, &bin);
	}
	struct mp_buf raw = { 0 };
	mp_put_array_header(&raw, 4);
	mp_put_int(&raw, INT64_MIN);
	mp_put_map_header(&raw, 2);
	mp_put_str(&raw, "k", 1);
	mp_put_array_header(&raw, 0);
	mp_put_str(&raw, "b", 1);
	mp_put_bin_header(&raw, 1);
	mp_put_bytes(&raw, "\x07", 1);
	mp_put_f64(&raw, -0.5);
	mp_put_str(&raw, "\xc3\xa9", 2);
	struct value rv = { .kind = V_RAW };
	rv.str.ptr = (char *)raw.data;
	rv.str.len = raw.len;
	record_set_value(&r, "raw", &rv);

	struct json_options opt = { 0 };
	struct mp_buf line = { 0 };
	CHECK(json_write_record(&line, &r, &opt) == 0);
	const char *want = "{\"id\":\"x\\\"y\\n\",\"label\":-3,\"score\":0.30000000000000004,\"ok\":false,"
	                   "\"none\":null,\"big\":18446744073709551615,\"bin0\":{\"$bin\":\"\"},"
	                   "\"bin1\":{\"$bin\":\"AA==\"},\"bin2\":{\"$bin\":\"AP8=\"},\"bin3\":{\"$bin\":\"AP8Q\"},"
	                   "\"bin4\":{\"$bin\":\"AP8QgA==\"},\"bin5\":{\"$bin\":\"AP8QgHo=\"},"
	                   "\"raw\":[-9223372036854775808,{\"k\":[],\"b\":{\"$bin\":\"Bw==\"}},-0.5,\"\xc3\xa9\"]}\n";
	CHECK_MSG(line.len == strlen(want) && !memcmp(line.data, want, line.len), "got %.*s", (int)line.len,
	          (const char *)line.data);
	CHECK_MSG(json_read_record((const char *)line.data, line.len, &back) == 0, "%s", error_message());

	size_t len1, len2;
	struct ts_writer *w1 = ts_writer_mem(), *w2 = ts_writer_mem();
	ts_write(w1, &r);
	ts_write(w2, &back);
	const void *b1 = ts_writer_mem_data(w1, &len1), *b2 = ts_writer_mem_data(w2, &len2);
	CHECK(len1 == len2 && !memcmp(b1, b2, len1));
	ts_writer_close(w1);
	ts_writer_close(w2);
	mp_buf_free(&line);
	record_free(&r);
	record_free(&back);
}

static void test_summary(void)
{
	struct value v = { .kind = V_TENSOR };
	int64_t shape[2] = { 2, 2 };
	tensor_alloc(&v.t, DT_UINT8, 2, shape);
	memcpy(v.t.data, "\0\x10\x20\xff", 4);
	CHECK(!strcmp(value_json(&v, false), "{\"dtype\":\"uint8\",\"shape\":[2,2],\"min\":0,\"max\":255,\"mean\":75.75}"));
	CHECK(!strcmp(value_json(&v, true), "{\"dtype\":\"uint8\",\"shape\":[2,2],\"data\":[0,16,32,255]}"));
	value_free(&v);

	v.kind = V_TENSOR;
	int64_t three[1] = { 3 };
	tensor_alloc(&v.t, DT_FLOAT32, 1, three);
	tensor_set(&v.t, 0, -0.5);
	tensor_set(&v.t, 1, NAN);
	tensor_set(&v.t, 2, 2);
	CHECK(!strcmp(value_json(&v, false),
	              "{\"dtype\":\"float32\",\"shape\":[3],\"min\":-0.5,\"max\":2.0,\"mean\":\"nan\",\"nans\":1}"));
	value_free(&v);

	/* 64-bit extremes are exact, though a double cannot tell them apart. */
	v.kind = V_TENSOR;
	int64_t two[1] = { 2 };
	tensor_alloc(&v.t, DT_UINT64, 1, two);
	memcpy(v.t.data, "\xfe\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 16);
	CHECK(!strcmp(value_json(&v, false), "{\"dtype\":\"uint64\",\"shape\":[2],"
	              "\"min\":18446744073709551614,\"max\":18446744073709551615,\"mean\":1.845e+19}"));
	v.t.dtype = DT_INT64;
	memcpy(v.t.data, "\x01\0\0\0\0\0\0\x80\0\0\0\0\0\0\0\x80", 16);
	CHECK(strstr(value_json(&v, false), "\"min\":-9223372036854775808,\"max\":-9223372036854775807,"));
	v.t.dtype = DT_INT16;
	v.t.shape[0] = 8;
	CHECK(strstr(value_json(&v, false), "\"min\":-32768,\"max\":1,\"mean\":-8192}"));
	value_free(&v);

	v.kind = V_TENSOR;
	int64_t none[2] = { 0, 512 };
	tensor_alloc(&v.t, DT_FLOAT32, 2, none);
	CHECK(!strcmp(value_json(&v, false), "{\"dtype\":\"float32\",\"shape\":[0,512]}"));
	CHECK(!strcmp(value_json(&v, true), "{\"dtype\":\"float32\",\"shape\":[0,512],\"data\":[]}"));
	value_free(&v);

	v.kind = V_TENSOR;
	tensor_alloc(&v.t, DT_FLOAT16, 0, three);
	tensor_set(&v.t, 0, 65504);
	CHECK(!strcmp(value_json(&v, true), "{\"dtype\":\"float16\",\"shape\":[],\"data\":[65504.0]}"));
	value_free(&v);
}

/* Keys of nested maps that are not strings. */
static void test_raw_map_keys(void)
{
	struct mp_buf raw = { 0 };
	mp_put_map_header(&raw, 3);
	mp_put_int(&raw, -1);
	mp_put_nil(&raw);
	mp_put_bool(&raw, true);
	mp_put_f64(&raw, 2);
	mp_put_str(&raw, "s", 1);
	mp_put_int(&raw, 3);
	struct value v = { .kind = V_RAW };
	v.str.ptr = (char *)raw.data;
	v.str.len = raw.len;
	CHECK(!strcmp(value_json(&v, false), "{\"-1\":null,\"true\":2.0,\"s\":3}"));
	/* An array as a key is refused, not quoted into ever longer text. */
	raw.len = 0;
	mp_put_map_header(&raw, 1);
	mp_put_array_header(&raw, 1);
	mp_put_int(&raw, 1);
	mp_put_int(&raw, 2);
	v.str.ptr = (char *)raw.data;
	v.str.len = raw.len;
	CHECK(!strcmp(value_json(&v, false), "ERROR a map key of type array, which JSON cannot show"));
	mp_buf_free(&raw);
}

static void test_keys_option(void)
{
	struct record r = RECORD_INIT;
	record_set_int(&r, "a", 1);
	record_set_int(&r, "b", 2);
	record_set_int(&r, "c", 3);
	char *keys[] = { "c", "a", "zz" };
	struct json_options opt = { .nkeys = 3, .keys = keys };
	struct mp_buf line = { 0 };
	json_write_record(&line, &r, &opt);
	CHECK(line.len == 14 && !memcmp(line.data, "{\"a\":1,\"c\":3}\n", 14));
	mp_buf_free(&line);
	record_free(&r);
}

int main(void)
{
	RUN(test_string_escapes);
	RUN(test_utf8_output);
	RUN(test_string_parsing);
	RUN(test_nesting_limit);
	RUN(test_integer_limits);
	RUN(test_float_text);
	RUN(test_malformed);
	RUN(test_tensor_errors);
	RUN(test_every_dtype_round_trip);
	RUN(test_record_round_trip);
	RUN(test_summary);
	RUN(test_raw_map_keys);
	RUN(test_keys_option);
	TEST_EXIT();
}
