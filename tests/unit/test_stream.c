/* The tensor-stream codec: round trips and every class of malformed input. */
#include <string.h>
#include <unistd.h>

#include "core/tool.h"
#include "stream/msgpack.h"
#include "stream/stream.h"
#include "test.h"

/* Reads all records from a buffer; returns the count, or -1 - count on error. */
static int read_all(const void *data, size_t len, char *err, size_t errlen)
{
	struct ts_reader *rd = ts_open_mem(data, len, "buf");
	struct record r = RECORD_INIT;
	int n = 0, rc;
	while ((rc = ts_read(rd, &r)) > 0)
		n++;
	if (rc < 0 && err)
		snprintf(err, errlen, "%s", error_message());
	record_free(&r);
	ts_close(rd);
	return rc < 0 ? -1 - n : n;
}

static void build_sample(struct record *r)
{
	record_set_str(r, "id", "img-001");
	record_set_int(r, "label", -7);
	record_set_float(r, "score", 0.25);
	record_set_bool(r, "flag", true);
	record_set_nil(r, "none");
	int64_t shape[3] = { 2, 3, 1 };
	struct tensor *t = record_new_tensor(r, "image", DT_UINT8, 3, shape);
	for (int i = 0; i < 6; i++)
		((uint8_t *)t->data)[i] = (uint8_t)(i * 40);
	int64_t d[1] = { 4 };
	t = record_new_tensor(r, "emb", DT_FLOAT32, 1, d);
	for (int i = 0; i < 4; i++)
		((float *)t->data)[i] = 0.5f * i - 1;
	struct value big = { .kind = V_INT, .is_unsigned = true, .u = UINT64_MAX };
	record_set_value(r, "big", &big);
	struct value f32 = { .kind = V_FLOAT, .is_f32 = true, .f = 1.5 };
	record_set_value(r, "f32", &f32);
}

static void *encode(const struct record *r, int copies, size_t *len)
{
	struct ts_writer *w = ts_writer_mem();
	for (int i = 0; i < copies; i++)
		ts_write(w, r);
	const void *d = ts_writer_mem_data(w, len);
	void *out = xmalloc(*len);
	memcpy(out, d, *len);
	ts_writer_close(w);
	return out;
}

static void test_round_trip(void)
{
	struct record r = RECORD_INIT, back = RECORD_INIT;
	build_sample(&r);
	size_t len;
	void *buf = encode(&r, 1, &len);
	struct ts_reader *rd = ts_open_mem(buf, len, "buf");
	CHECK(ts_read(rd, &back) == 1);
	CHECK(back.n == r.n);
	for (int i = 0; i < r.n && i < back.n; i++)
		CHECK(!strcmp(r.fields[i].key, back.fields[i].key));
	CHECK(!strcmp(record_str(&back, "id"), "img-001"));
	int64_t label;
	CHECK(record_int(&back, "label", &label) == 0 && label == -7);
	CHECK(record_get(&back, "score")->f == 0.25 && !record_get(&back, "score")->is_f32);
	CHECK(record_get(&back, "f32")->is_f32 && record_get(&back, "f32")->f == 1.5);
	CHECK(record_get(&back, "big")->is_unsigned && record_get(&back, "big")->u == UINT64_MAX);
	CHECK(record_get(&back, "flag")->b && record_get(&back, "none")->kind == V_NIL);
	struct tensor *t = record_tensor(&back, "image");
	CHECK(t && t->dtype == DT_UINT8 && t->ndim == 3 && t->shape[1] == 3 && t->nbytes == 6);
	CHECK(t && ((uint8_t *)t->data)[5] == 200);
	t = record_tensor(&back, "emb");
	CHECK(t && t->dtype == DT_FLOAT32 && ((float *)t->data)[3] == 0.5f);
	/* Re-encoding what was read gives the same bytes. */
	size_t len2;
	void *buf2 = encode(&back, 1, &len2);
	CHECK(len2 == len && !memcmp(buf, buf2, len));
	CHECK(ts_read(rd, &back) == 0 && back.n == 0);
	ts_close(rd);
	free(buf);
	free(buf2);
	record_free(&r);
	record_free(&back);
}

static void test_every_dtype(void)
{
	for (int dt = 0; dt < DT_COUNT; dt++) {
		struct record r = RECORD_INIT, back = RECORD_INIT;
		int64_t shape[2] = { 3, 2 };
		struct tensor *t = record_new_tensor(&r, "x", (enum dtype)dt, 2, shape);
		for (int i = 0; i < 6; i++)
			tensor_set(t, i, i == 0 ? 0 : (i % 2 ? 1 : 2) * i);
		size_t len;
		void *buf = encode(&r, 1, &len);
		struct ts_reader *rd = ts_open_mem(buf, len, "buf");
		CHECK_MSG(ts_read(rd, &back) == 1, "%s: %s", dtype_name(dt), error_message());
		struct tensor *b = record_tensor(&back, "x");
		CHECK_MSG(b && b->dtype == (enum dtype)dt && b->nbytes == 6 * dtype_size(dt)
		          && !memcmp(b->data, t->data, b->nbytes), "%s", dtype_name(dt));
		CHECK(dtype_from_name(dtype_name(dt), strlen(dtype_name(dt))) == dt);
		ts_close(rd);
		free(buf);
		record_free(&r);
		record_free(&back);
	}
}

static void test_half_conversions(void)
{
	float vals[] = { 0, 1, -2.5f, 65504, 1e-7f, 6.1e-5f, 0.1f, 3.14159f };
	for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
		float h = half_to_float(float_to_half(vals[i]));
		CHECK_NEAR(h, vals[i], fabs(vals[i]) * 1e-3 + 6e-8);
		float b = bfloat16_to_float(float_to_bfloat16(vals[i]));
		CHECK_NEAR(b, vals[i], fabs(vals[i]) * 8e-3 + 1e-30);
	}
	CHECK(float_to_half(1e6f) == 0x7c00);                 /* overflow to inf */
	CHECK(half_to_float(0x0001) == 5.9604645e-08f);        /* smallest subnormal */
	CHECK(float_to_half(1.0f + 1.0f / 2048) == 0x3c00);   /* tie rounds to even */
	CHECK(isnan(half_to_float(float_to_half(NAN))));
}

/* Every proper prefix of a valid stream is either a clean end (at a record
 * boundary) or a truncation error; never a crash. */
static void test_truncation_everywhere(void)
{
	struct record r = RECORD_INIT;
	build_sample(&r);
	size_t one, len;
	free(encode(&r, 1, &one));
	void *buf = encode(&r, 3, &len);
	for (size_t cut = 0; cut < len; cut++) {
		char err[512] = "";
		int n = read_all(buf, cut, err, sizeof err);
		if (cut % one == 0)
			CHECK_MSG(n == (int)(cut / one), "cut %zu: %d records, %s", cut, n, err);
		else
			CHECK_MSG(n == -1 - (int)(cut / one) && strstr(err, "truncated") &&
			          strstr(err, "record"), "cut %zu: %d, '%s'", cut, n, err);
	}
	free(buf);
	record_free(&r);
}

/* Builds a one-field record {key: <value bytes>} and expects an error
 * matching `want`. */
static void expect_error(const char *what, const void *value, size_t vlen, const char *want)
{
	struct mp_buf b = { 0 };
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "x", 1);
	mp_put_bytes(&b, value, vlen);
	char err[512] = "";
	int n = read_all(b.data, b.len, err, sizeof err);
	CHECK_MSG(n == -1 && strstr(err, want) && strstr(err, "record 0"), "%s: got %d '%s', want '%s'",
	          what, n, err, want);
	mp_buf_free(&b);
}

static void tensor_bytes(struct mp_buf *b, const char *dtype, int ndim, const int64_t *shape, size_t nbytes)
{
	mp_put_map_header(b, 3);
	mp_put_str(b, "dtype", 5);
	mp_put_str(b, dtype, strlen(dtype));
	mp_put_str(b, "shape", 5);
	mp_put_array_header(b, ndim);
	for (int i = 0; i < ndim; i++)
		mp_put_int(b, shape[i]);
	mp_put_str(b, "data", 4);
	mp_put_bin_header(b, nbytes);
	mp_buf_reserve(b, nbytes);
	memset(b->data + b->len, 7, nbytes);
	b->len += nbytes;
}

static void test_malformed_tensors(void)
{
	struct mp_buf b = { 0 };
	static const struct {
		const char *what, *dtype;
		int ndim;
		int64_t shape[9];
		size_t nbytes;
		const char *want;
	} tensors[] = {
		{ "short data", "uint8", 2, { 28, 28 }, 783, "data has 783 bytes but uint8 [28,28] needs 784" },
		{ "bad dtype", "complex7", 2, { 28, 28 }, 784, "unknown dtype 'complex7'" },
		{ "negative dim", "uint8", 1, { -1 }, 0, "shape[0] is not a non-negative integer" },
		{ "overflowing shape", "float32", 4, { 1LL << 40, 1LL << 40, 1LL << 40, 1 }, 4, "shape is too large" },
		{ "too many dims", "uint8", 9, { 1, 1, 1, 1, 1, 1, 1, 1, 1 }, 1, "9 dimensions" },
	};
	for (size_t i = 0; i < sizeof tensors / sizeof *tensors; i++) {
		tensor_bytes(&b, tensors[i].dtype, tensors[i].ndim, tensors[i].shape, tensors[i].nbytes);
		expect_error(tensors[i].what, b.data, b.len, tensors[i].want);
		b.len = 0;
	}
	/* Tensor maps of 3 entries that hold only strings, keys and values
	 * alternating: a key of the wrong type, a repeated key. */
	static const struct { const char *what, *strs[4], *want; } maps[] = {
		{ "shape type", { "shape", "28x28" }, "shape is a str, not an array" },
		{ "data type", { "data", "abc" }, "data is a str, not bin" },
		{ "repeated key", { "dtype", "uint8", "dtype", "uint8" }, "repeated key 'dtype'" },
	};
	for (size_t i = 0; i < sizeof maps / sizeof *maps; i++) {
		mp_put_map_header(&b, 3);
		for (int j = 0; j < 4 && maps[i].strs[j]; j++)
			mp_put_str(&b, maps[i].strs[j], strlen(maps[i].strs[j]));
		expect_error(maps[i].what, b.data, b.len, maps[i].want);
		b.len = 0;
	}
	/* dtype that is not a string */
	mp_put_map_header(&b, 3);
	mp_put_str(&b, "dtype", 5);
	mp_put_int(&b, 3);
	expect_error("dtype type", b.data, b.len, "dtype is a uint, not a string");
	b.len = 0;
	/* missing key, extra key */
	mp_put_map_header(&b, 2);
	mp_put_str(&b, "dtype", 5);
	mp_put_str(&b, "uint8", 5);
	mp_put_str(&b, "shape", 5);
	mp_put_array_header(&b, 0);
	expect_error("two keys", b.data, b.len, "tensor map has 2 keys");
	b.len = 0;
	mp_put_map_header(&b, 3);
	mp_put_str(&b, "shape", 5);
	mp_put_array_header(&b, 0);
	mp_put_str(&b, "colour", 6);
	expect_error("unexpected key", b.data, b.len, "unexpected key 'colour'");
	mp_buf_free(&b);
}

static void test_malformed_records(void)
{
	char err[512];
	/* A top-level value that is not a map. */
	uint8_t arr[] = { 0x91, 0x01 };
	CHECK(read_all(arr, sizeof arr, err, sizeof err) == -1 && strstr(err, "top-level value is a array"));
	const char *json = "{\"id\": 1}\n";
	CHECK(read_all(json, strlen(json), err, sizeof err) == -1 && strstr(err, "looks like JSON"));
	/* Trailing garbage after a good record. */
	struct record r = RECORD_INIT;
	record_set_int(&r, "a", 1);
	size_t len;
	uint8_t *buf = encode(&r, 1, &len);
	buf = xrealloc(buf, len + 2);
	buf[len] = 0xc1;
	CHECK(read_all(buf, len + 1, err, sizeof err) == -2 && strstr(err, "record 1: invalid msgpack byte 0xc1"));
	buf[len] = 0x05;
	CHECK(read_all(buf, len + 1, err, sizeof err) == -2 && strstr(err, "record 1: top-level value is a uint"));
	free(buf);
	record_free(&r);
	/* A key that is not a string; a duplicate key. */
	uint8_t intkey[] = { 0x81, 0x01, 0x02 };
	CHECK(read_all(intkey, sizeof intkey, err, sizeof err) == -1 && strstr(err, "key is a uint, not a string"));
	uint8_t dup[] = { 0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02 };
	CHECK(read_all(dup, sizeof dup, err, sizeof err) == -1 && strstr(err, "duplicate key 'a'"));
	uint8_t empty[] = { 0x81, 0xa0, 0x01 };
	CHECK(read_all(empty, sizeof empty, err, sizeof err) == -1 && strstr(err, "key is empty"));
	uint8_t nul[] = { 0x81, 0xa2, 'a', 0, 0x01 };
	CHECK(read_all(nul, sizeof nul, err, sizeof err) == -1 && strstr(err, "NUL"));
	/* Absurd sizes: claimed lengths far beyond the data are truncations, not allocations. */
	uint8_t bin4g[] = { 0x81, 0xa1, 'x', 0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3 };
	CHECK(read_all(bin4g, sizeof bin4g, err, sizeof err) == -1 && strstr(err, "truncated"));
	uint8_t map4g[] = { 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'x', 1 };
	CHECK(read_all(map4g, sizeof map4g, err, sizeof err) == -1 && strstr(err, "limit"));
	uint8_t arr4g[] = { 0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2 };
	CHECK(read_all(arr4g, sizeof arr4g, err, sizeof err) == -1 && strstr(err, "truncated") && strstr(err, "field 'x'"));
	/* Nesting deeper than the limit. */
	struct mp_buf b = { 0 };
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "x", 1);
	for (int i = 0; i < 100000; i++)
		mp_put_array_header(&b, 1);
	mp_put_nil(&b);
	CHECK(read_all(b.data, b.len, err, sizeof err) == -1 && strstr(err, "nested deeper"));
	mp_buf_free(&b);
}

/* Arrays, nested non-tensor maps and ext values pass through verbatim. */
static void test_raw_values_pass_through(void)
{
	struct mp_buf b = { 0 };
	mp_put_map_header(&b, 3);
	mp_put_str(&b, "list", 4);
	mp_put_array_header(&b, 3);
	mp_put_int(&b, 1);
	mp_put_str(&b, "two", 3);
	mp_put_f64(&b, 3.5);
	mp_put_str(&b, "meta", 4);
	mp_put_map_header(&b, 2);
	mp_put_str(&b, "w", 1);
	mp_put_int(&b, 640);
	mp_put_int(&b, 5); /* non-string key inside a nested map is fine */
	mp_put_nil(&b);
	mp_put_str(&b, "ts", 2);
	mp_put_ext_header(&b, -1, 4);
	mp_put_bytes(&b, "\0\0\0\1", 4);
	struct ts_reader *rd = ts_open_mem(b.data, b.len, "buf");
	struct record r = RECORD_INIT;
	CHECK(ts_read(rd, &r) == 1);
	CHECK(record_get(&r, "list") && record_get(&r, "list")->kind == V_RAW);
	CHECK(record_get(&r, "meta") && record_get(&r, "meta")->kind == V_RAW);
	size_t len;
	void *out = encode(&r, 1, &len);
	CHECK(len == b.len && !memcmp(out, b.data, len));
	free(out);
	ts_close(rd);
	record_free(&r);
	mp_buf_free(&b);
}

/* Large tensors through a real pipe exercise the fd paths (refill, direct reads). */
static void test_pipe_large_tensors(void)
{
	int fds[2];
	CHECK(pipe(fds) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		struct ts_writer *w = ts_writer_fd(fds[1], "pipe");
		struct record r = RECORD_INIT;
		int64_t shape[3] = { 256, 256, 3 };
		for (int i = 0; i < 20; i++) {
			record_set_int(&r, "i", i);
			struct tensor *t = record_new_tensor(&r, "image", DT_UINT8, 3, shape);
			memset(t->data, i, t->nbytes);
			int64_t d[1] = { 512 };
			record_new_tensor(&r, "emb", DT_FLOAT32, 1, d);
			ts_write(w, &r);
		}
		_exit(ts_writer_close(w) == 0 ? 0 : 1);
	}
	close(fds[1]);
	struct ts_reader *rd = ts_open_fd(fds[0], "pipe");
	struct record r = RECORD_INIT;
	int n = 0, ok = 1;
	while (ts_read(rd, &r) > 0) {
		struct tensor *t = record_tensor(&r, "image");
		int64_t i;
		ok &= t && t->nbytes == 256 * 256 * 3 && record_int(&r, "i", &i) == 0 && i == n &&
		      ((uint8_t *)t->data)[t->nbytes - 1] == n;
		n++;
	}
	CHECK(ok && n == 20);
	ts_close(rd);
	close(fds[0]);
	record_free(&r);
}

static void test_record_api(void)
{
	struct record r = RECORD_INIT;
	record_set_str(&r, "a", "x");
	record_set_int(&r, "b", 2);
	record_set_str(&r, "a", record_str(&r, "a")); /* replacing with itself is safe */
	CHECK(r.n == 2 && !strcmp(r.fields[0].key, "a") && !strcmp(record_str(&r, "a"), "x"));
	record_remove(&r, "a");
	CHECK(r.n == 1 && !record_get(&r, "a") && !strcmp(r.fields[0].key, "b"));
	record_set_float(&r, "c", 3.0);
	int64_t v;
	CHECK(record_int(&r, "c", &v) == 0 && v == 3);
	record_set_float(&r, "c", 3.5);
	CHECK(record_int(&r, "c", &v) < 0 && record_int(&r, "zz", &v) < 0);
	record_free(&r);
}

int main(void)
{
	RUN(test_round_trip);
	RUN(test_every_dtype);
	RUN(test_half_conversions);
	RUN(test_truncation_everywhere);
	RUN(test_malformed_tensors);
	RUN(test_malformed_records);
	RUN(test_raw_values_pass_through);
	RUN(test_pipe_large_tensors);
	RUN(test_record_api);
	TEST_EXIT();
}
