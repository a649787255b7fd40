/* safetensors reading and writing, parameters to and from files, and
 * training checkpoints that resume exactly and survive a save cut short. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/tool.h"
#include "nn/checkpoint.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/params.h"
#include "nn/philox.h"
#include "nn/safetensors.h"
#include "stream/json.h"
#include "test.h"

static char tmpdir[64];

static char *tmp_path(const char *name)
{
	static char bufs[4][256];
	static int next;
	char *b = bufs[next++ % 4];
	snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
	return b;
}

static uint8_t *read_all(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*size = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = xmalloc(*size ? *size : 1);
	if (fread(b, 1, *size, f) != *size)
		*size = 0;
	fclose(f);
	return b;
}

static void write_all(const char *path, const void *b, size_t size)
{
	FILE *f = fopen(path, "wb");
	fwrite(b, 1, size, f);
	fclose(f);
}

static void copy_file(const char *from, const char *to)
{
	size_t n;
	uint8_t *b = read_all(from, &n);
	write_all(to, b, n);
	free(b);
}

static int file_exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

/* ---- safetensors ---- */

/* One tensor of every dtype, with a scalar and an empty tensor. */
static void test_roundtrip_all_dtypes(void)
{
	static const enum dtype dts[] = { DT_BOOL, DT_UINT8, DT_INT8, DT_UINT16, DT_INT16, DT_UINT32, DT_INT32,
	                                  DT_UINT64, DT_INT64, DT_FLOAT16, DT_BFLOAT16, DT_FLOAT32, DT_FLOAT64 };
	enum { ND = sizeof dts / sizeof *dts };
	struct st_tensor t[ND + 2];
	uint8_t bytes[ND][6 * 8];
	char names[ND][16];
	for (int i = 0; i < ND; i++) {
		memset(&t[i], 0, sizeof t[i]);
		for (size_t j = 0; j < sizeof bytes[i]; j++)
			bytes[i][j] = (uint8_t)(j * 37 + i * 11 + 1);
		if (dts[i] == DT_BOOL)
			for (size_t j = 0; j < 6; j++)
				bytes[i][j] = j & 1;
		snprintf(names[i], sizeof names[i], "t.%s", st_dtype_name(dts[i]));
		t[i].name = names[i];
		t[i].dtype = dts[i];
		t[i].ndim = 2;
		t[i].shape[0] = 2;
		t[i].shape[1] = 3;
		t[i].data = bytes[i];
	}
	float scalar = 3.4011974f;
	memset(&t[ND], 0, 2 * sizeof t[0]);
	t[ND] = (struct st_tensor){ .name = "scalar", .dtype = DT_FLOAT32, .ndim = 0, .data = &scalar };
	t[ND + 1] = (struct st_tensor){ .name = "empty", .dtype = DT_INT32, .ndim = 2, .shape = { 0, 3 } };
	struct st_meta meta[3] = {
		{ "config", "{\"width\": 32, \"name\": \"quote \\\" and \\\\ and \\n\"}" },
		{ "tab\tkey", "line\nbreak \xc3\xa9 \xe2\x82\xac" },
		{ "empty", "" },
	};
	const char *path = tmp_path("all.safetensors");
	CHECK(st_write(path, t, ND + 2, meta, 3) == 0);
	struct st_file *f = st_open(path);
	CHECK_MSG(f, "%s", error_message());
	if (!f)
		return;
	CHECK(st_count(f) == ND + 2);
	for (int i = 0; i < ND; i++) {
		const struct st_entry *e = st_find(f, names[i]);
		CHECK_MSG(e, "%s missing", names[i]);
		if (!e)
			continue;
		CHECK(e->dtype == dts[i] && e->ndim == 2 && e->shape[0] == 2 && e->shape[1] == 3);
		CHECK(e->numel == 6 && e->nbytes == 6 * dtype_size(dts[i]));
		CHECK(!memcmp(e->data, bytes[i], e->nbytes));
		/* widest first: every tensor is aligned for its dtype */
		CHECK(((uintptr_t)e->data - (uintptr_t)st_entry_at(f, 0)->data) % dtype_size(dts[i]) == 0);
	}
	const struct st_entry *s = st_find(f, "scalar"), *e = st_find(f, "empty");
	CHECK(s && s->ndim == 0 && s->numel == 1);
	float v = 0;
	CHECK(s && st_read_f32(s, &v, 1) == 0 && v == scalar);
	CHECK(e && e->ndim == 2 && e->numel == 0 && e->shape[0] == 0 && e->shape[1] == 3);
	CHECK(!st_find(f, "nothing") && !st_find(f, "__metadata__"));
	CHECK(st_metadata_count(f) == 3);
	for (int i = 0; i < 3; i++) {
		const char *got = st_metadata(f, meta[i].key);
		CHECK_MSG(got && !strcmp(got, meta[i].value), "metadata %s = %s", meta[i].key, got ? got : "(null)");
	}
	CHECK(!st_metadata(f, "absent"));
	/* float conversions */
	float out[6];
	const struct st_entry *f64 = st_find(f, "t.F64"), *i64 = st_find(f, "t.I64");
	CHECK(st_read_f32(f64, out, 6) == 0);
	double d0;
	memcpy(&d0, bytes[ND - 1], 8);
	CHECK(out[0] == (float)d0);
	CHECK(st_read_f32(i64, out, 6) < 0 && strstr(error_message(), "t.I64"));
	CHECK(st_read_f32(f64, out, 5) < 0);
	st_close(f);

	/* The header: 8-byte aligned, space padded, starts with '{'. */
	size_t size;
	uint8_t *b = read_all(path, &size);
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | b[i];
	CHECK((8 + hlen) % 8 == 0 && b[8] == '{');
	CHECK(b[8 + hlen - 1] == '}' || b[8 + hlen - 1] == ' ');
	struct mp_buf mp = { 0 };
	CHECK(json_to_msgpack((const char *)b + 8, hlen, &mp) == 0);
	mp_buf_free(&mp);
	free(b);
}

static void test_write_converts_to_half(void)
{
	float x[5] = { 1.0f, -2.5f, 3.14159265f, 1e-5f, 65504.0f };
	struct st_tensor t[2] = {
		{ .name = "h", .dtype = DT_FLOAT32, .ndim = 1, .shape = { 5 }, .data = x, .convert = ST_TO_F16 },
		{ .name = "b", .dtype = DT_FLOAT32, .ndim = 1, .shape = { 5 }, .data = x, .convert = ST_TO_BF16 },
	};
	const char *path = tmp_path("half.safetensors");
	CHECK(st_write(path, t, 2, NULL, 0) == 0);
	struct st_file *f = st_open(path);
	CHECK(f);
	if (!f)
		return;
	const struct st_entry *h = st_find(f, "h"), *b = st_find(f, "b");
	CHECK(h && h->dtype == DT_FLOAT16 && h->nbytes == 10);
	CHECK(b && b->dtype == DT_BFLOAT16 && b->nbytes == 10);
	float y[5], z[5];
	CHECK(st_read_f32(h, y, 5) == 0 && st_read_f32(b, z, 5) == 0);
	for (int i = 0; i < 5; i++) {
		CHECK(y[i] == half_to_float(float_to_half(x[i])));
		CHECK(z[i] == bfloat16_to_float(float_to_bfloat16(x[i])));
		CHECK(fabsf(y[i] - x[i]) <= fabsf(x[i]) * 1e-3f + 1e-7f);
	}
	st_close(f);
	/* Conversion applies to float32 data only. */
	int32_t ints[1] = { 0 };
	struct st_tensor bad = { .name = "i", .dtype = DT_INT32, .ndim = 1, .shape = { 1 }, .data = ints,
		                 .convert = ST_TO_F16 };
	CHECK(st_write(path, &bad, 1, NULL, 0) < 0);
}

static void test_writer_refuses_bad_input(void)
{
	float x = 1;
	struct st_tensor t[2] = {
		{ .name = "a", .dtype = DT_FLOAT32, .ndim = 0, .data = &x },
		{ .name = "a", .dtype = DT_FLOAT32, .ndim = 0, .data = &x },
	};
	const char *path = tmp_path("bad.safetensors");
	CHECK(st_write(path, t, 2, NULL, 0) < 0 && strstr(error_message(), "twice"));
	t[1].name = "__metadata__";
	CHECK(st_write(path, t, 2, NULL, 0) < 0);
	t[1].name = "bad\xff";
	CHECK(st_write(path, t, 2, NULL, 0) < 0);
	t[1].name = "b";
	t[1].shape[0] = -1;
	t[1].ndim = 1;
	CHECK(st_write(path, t, 2, NULL, 0) < 0);
	struct st_meta m[2] = { { "k", "1" }, { "k", "2" } };
	CHECK(st_write(path, t, 1, m, 2) < 0 && strstr(error_message(), "metadata key 'k'"));
	CHECK(!file_exists(path));
	/* No temporary file left behind either. */
	int leftovers = 0;
	DIR *d = opendir(tmpdir);
	for (struct dirent *de; d && (de = readdir(d));)
		leftovers += !strncmp(de->d_name, "bad.safetensors", 15);
	if (d)
		closedir(d);
	CHECK(leftovers == 0);
}

/* A file from a header and data_size bytes of data, opened from memory. */
static struct st_file *open_crafted(const char *json, size_t data_size, uint8_t **keep)
{
	size_t hlen = strlen(json), size = 8 + hlen + data_size;
	uint8_t *b = xmalloc(size);
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
	memcpy(b + 8, json, hlen);
	memset(b + 8 + hlen, 0x3c, data_size);
	*keep = b;
	return st_open_memory(b, size, "crafted");
}

static void expect_crafted(const char *json, size_t data_size, const char *want1, const char *want2, int line)
{
	uint8_t *b;
	struct st_file *f = open_crafted(json, data_size, &b);
	if (!want1) {
		CHECK_MSG(f, "line %d: %s", line, error_message());
	} else {
		const char *msg = error_message();
		CHECK_MSG(!f && strstr(msg, want1) && (!want2 || strstr(msg, want2)) && !strncmp(msg, "crafted: ", 9),
		          "line %d: %s", line, f ? "opened" : msg);
	}
	st_close(f);
	free(b);
}

#define EXPECT(json, size, w1, w2) expect_crafted(json, size, w1, w2, __LINE__)
#define T2(name, off) "\"" name "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" off "}"

static void test_corrupt_headers(void)
{
	EXPECT("{" T2("a", "[0,8]") "}", 8, NULL, NULL);
	EXPECT("{}", 0, NULL, NULL);
	EXPECT("{\"__metadata__\":{\"k\":\"v\"}," T2("a", "[0,8]") "}   ", 8, NULL, NULL);
	EXPECT("{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]}," T2("a", "[0,8]") "}", 8, NULL, NULL);
	EXPECT("{" T2("a", "[0,8]") "}", 7, "tensor 'a'", "past the end");
	EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12, "tensor 'w'", "needs 8");
	EXPECT("{" T2("a", "[0,8]") "," T2("b", "[4,12]") "}", 12, "overlap", "'a'");
	EXPECT("{" T2("a", "[0,8]") "," T2("b", "[12,20]") "}", 20, "tensor 'b'", "belong to no tensor");
	EXPECT("{" T2("a", "[0,8]") "}", 12, "after the last tensor", NULL);
	EXPECT("{" T2("a", "[8,0]") "}", 8, "tensor 'a'", "reversed");
	EXPECT("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, "tensor 'a'", "not supported");
	EXPECT("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor 'a'", "dtype");
	EXPECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "tensor 'a'", "shape[0]");
	EXPECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, "tensor 'a'", "shape[0]");
	EXPECT("{\"a\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8, "tensor 'a'", "shape");
	EXPECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "tensor 'a'",
	       "dimensions");
	EXPECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
	       "tensor 'a'", "too large");
	EXPECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "tensor 'a'", "data_offsets");
	EXPECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "tensor 'a'", "data_offsets");
	EXPECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]}}", 8, "tensor 'a'", "data_offsets");
	EXPECT("{" T2("a", "[0,8]") "," T2("a", "[8,16]") "}", 16, "'a' appears twice", NULL);
	EXPECT("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__", "not a string");
	EXPECT("{\"__metadata__\":[]}", 0, "__metadata__", "not an object");
	EXPECT("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "__metadata__ appears twice", NULL);
	EXPECT("{\"a\":5}", 0, "tensor 'a'", "not an object");
	EXPECT("{\"a\\u0000b\":{}}", 0, "NUL", NULL);
	EXPECT("{\"a\":", 0, "not valid JSON", NULL);
	EXPECT("{\"a\":{} garbage", 0, "not valid JSON", NULL);
	EXPECT("[1,2]", 0, "not a JSON object", NULL);
	EXPECT("", 0, "not valid JSON", NULL);

	/* Header length past the end; too short for a header at all. */
	uint8_t b[16] = { 100, 0, 0, 0, 0, 0, 0, 0, '{', '}' };
	struct st_file *f = st_open_memory(b, 10, "short");
	CHECK(!f && strstr(error_message(), "header length 100 runs past the end"));
	b[0] = 0xff;
	b[7] = 0xff;
	f = st_open_memory(b, 16, "huge");
	CHECK(!f && strstr(error_message(), "runs past the end"));
	f = st_open_memory(b, 5, "tiny");
	CHECK(!f && strstr(error_message(), "too short"));
}

static void test_corrupt_files(void)
{
	float x[4] = { 1, 2, 3, 4 };
	struct st_tensor t[2] = {
		{ .name = "first", .dtype = DT_FLOAT32, .ndim = 1, .shape = { 4 }, .data = x },
		{ .name = "last", .dtype = DT_FLOAT32, .ndim = 2, .shape = { 2, 2 }, .data = x },
	};
	const char *path = tmp_path("trunc.safetensors");
	CHECK(st_write(path, t, 2, NULL, 0) == 0);
	size_t size;
	uint8_t *b = read_all(path, &size);
	write_all(path, b, size - 1);
	struct st_file *f = st_open(path);
	CHECK(!f && strstr(error_message(), path) && strstr(error_message(), "tensor 'last'") &&
	      strstr(error_message(), "truncated"));
	write_all(path, b, 40);
	f = st_open(path);
	CHECK(!f && strstr(error_message(), "header length"));
	write_all(path, b, 0);
	f = st_open(path);
	CHECK(!f && strstr(error_message(), "too short"));
	/* a flipped byte in the header's JSON */
	b[8] = '[';
	write_all(path, b, size);
	f = st_open(path);
	CHECK(!f && strstr(error_message(), "JSON"));
	free(b);
	CHECK(!st_open(tmp_path("does-not-exist")) && strstr(error_message(), "No such file"));
	CHECK(!st_open(tmpdir) && strstr(error_message(), "directory"));
}

static char *golden(const char *rel)
{
	static char buf[512];
	snprintf(buf, sizeof buf, "%s/golden/%s", test_shared_dir(), rel);
	return buf;
}

static void test_golden_clip(void)
{
	if (!file_exists(golden("clip/openai.safetensors")))
		SKIP("%s not found (set KNND_SHARED)", golden("clip/openai.safetensors"));
	struct st_file *f = st_open(golden("clip/openai.safetensors"));
	CHECK_MSG(f, "%s", error_message());
	if (!f)
		return;
	CHECK(st_count(f) == 62);
	const struct st_entry *ls = st_find(f, "logit_scale");
	float v = 0;
	CHECK(ls && ls->ndim == 0 && ls->dtype == DT_FLOAT32 && st_read_f32(ls, &v, 1) == 0);
	CHECK_NEAR(v, 3.4011974, 1e-6);
	const struct st_entry *conv = st_find(f, "visual.conv1.weight");
	CHECK(conv && conv->ndim == 4 && conv->shape[0] == 128 && conv->shape[1] == 3 && conv->shape[2] == 8 &&
	      conv->shape[3] == 8);
	const char *cfg = st_metadata(f, "open_clip_config");
	CHECK(cfg);
	if (cfg) {
		struct mp_buf mp = { 0 };
		CHECK(json_to_msgpack(cfg, strlen(cfg), &mp) == 0);
		const uint8_t *p = mp.data, *end = mp.data + mp.len;
		struct mp_header h;
		CHECK(mp_map_find(&p, end, "text_cfg") == 0 && mp_map_find(&p, end, "heads") == 0 &&
		      mp_decode_header(p, (size_t)(end - p), &h) > 0 && h.type == MP_UINT && h.u == 4);
		mp_buf_free(&mp);
	}
	st_close(f);

	f = st_open(golden("clip/hf.safetensors"));
	CHECK_MSG(f, "%s", error_message());
	if (!f)
		return;
	CHECK(st_count(f) == 80);
	const struct st_entry *ids = st_find(f, "text_model.embeddings.position_ids");
	CHECK(ids && ids->dtype == DT_INT64 && ids->ndim == 2 && ids->shape[1] == 77);
	int ok = ids != NULL;
	for (int i = 0; ok && i < 77; i++) {
		int64_t id;
		memcpy(&id, (const char *)ids->data + 8 * i, 8);
		ok = id == i;
	}
	CHECK(ok);
	CHECK(st_find(f, "text_model.embeddings.token_embedding.weight"));
	st_close(f);
}

/* The F16 copy of the VQGAN weights is the F32 one rounded to half. */
static void test_golden_vqgan_f16(void)
{
	if (!file_exists(golden("vqgan/model_f16.safetensors")))
		SKIP("%s not found (set KNND_SHARED)", golden("vqgan/model_f16.safetensors"));
	struct st_file *h = st_open(golden("vqgan/model_f16.safetensors"));
	struct st_file *f = st_open(golden("vqgan/model.safetensors"));
	CHECK_MSG(h && f, "%s", error_message());
	if (!h || !f) {
		st_close(h);
		st_close(f);
		return;
	}
	CHECK(st_count(h) == 155 && st_count(f) == 155);
	size_t checked = 0, bad = 0;
	for (int i = 0; i < st_count(h); i++) {
		const struct st_entry *a = st_entry_at(h, i), *b = st_find(f, a->name);
		CHECK_MSG(b && a->dtype == DT_FLOAT16 && b->numel == a->numel, "%s", a->name);
		if (!b || b->numel != a->numel)
			continue;
		float *x = xmalloc(a->numel * 4 + 4), *y = xmalloc(b->numel * 4 + 4);
		CHECK(st_read_f32(a, x, a->numel) == 0 && st_read_f32(b, y, b->numel) == 0);
		for (size_t j = 0; j < a->numel; j++, checked++)
			bad += x[j] != half_to_float(float_to_half(y[j]));
		free(x);
		free(y);
	}
	CHECK_MSG(bad == 0 && checked > 700000, "%zu of %zu values differ", bad, checked);
	CHECK(st_metadata(h, "format") != NULL);
	st_close(h);
	st_close(f);
}

/* ---- parameters ---- */

static void make_params(struct nn_params *p, int transpose)
{
	memset(p, 0, sizeof *p);
	int64_t w[2] = { transpose ? 3 : 2, transpose ? 2 : 3 }, b[1] = { 2 }, s[1] = { 1 };
	nn_params_add(p, "lin.weight", 2, w);
	nn_params_add(p, "lin.bias", 1, b);
	nn_params_add(p, "scale", 0, s);
	nn_params_alloc(p, 0);
}

static void fill_params(struct nn_params *p, float base)
{
	float *h = xcalloc(p->total, sizeof *h);
	for (int i = 0; i < p->n; i++)
		for (size_t j = 0; j < p->items[i].numel; j++)
			h[p->items[i].offset + j] = base + (float)(i * 10 + j) * 0.25f;
	nn->upload(p->data, h, p->total * sizeof *h);
	free(h);
}

static int params_equal(const struct nn_params *a, const struct nn_params *b)
{
	if (a->total != b->total)
		return 0;
	float *x = xmalloc(a->total * 4), *y = xmalloc(b->total * 4);
	nn->download(x, a->data, a->total * 4);
	nn->download(y, b->data, b->total * 4);
	int same = !memcmp(x, y, a->total * 4);
	free(x);
	free(y);
	return same;
}

static void test_params_registry(void)
{
	struct nn_params p;
	make_params(&p, 0);
	CHECK(p.n == 3 && p.items[1].offset == 16 && p.items[2].offset == 32 && p.total == 48);
	CHECK(p.items[2].ndim == 0 && p.items[2].numel == 1);
	CHECK(nn_params_find(&p, "lin.bias") == 1 && nn_params_find(&p, "nope") == -1);
	CHECK(nn_param(&p, 1) == p.data + 16 && nn_param_grad(&p, 1) == NULL);
	nn_params_alloc(&p, 1);
	CHECK(p.grad && nn_param_grad(&p, 2) == p.grad + 32);
	float g[48];
	nn->download(g, p.grad, sizeof g);
	int zero = 1;
	for (int i = 0; i < 48; i++)
		zero &= g[i] == 0;
	CHECK(zero);
	nn_param_init_const(&p, 1, 2.5f);
	float b[2];
	nn->download(b, nn_param(&p, 1), sizeof b);
	CHECK(b[0] == 2.5f && b[1] == 2.5f);
	nn_params_free(&p);
	CHECK(p.n == 0 && !p.data && !p.items);
}

static void test_initialisers(void)
{
	struct nn_params p = { 0 };
	int64_t big[1] = { 20001 }, small[2] = { 3, 5 };
	int a = nn_params_add(&p, "a", 1, big);
	int b = nn_params_add(&p, "b", 1, big);
	int c = nn_params_add(&p, "c", 2, small);
	nn_params_alloc(&p, 0);
	nn_param_init_normal(&p, a, 0.02f, 42);
	nn_param_init_normal(&p, b, 0.02f, 42);
	nn_param_init_uniform(&p, c, -0.5f, 0.25f, 42);
	float *x = xmalloc(20001 * 4), *y = xmalloc(20001 * 4), u[15];
	nn->download(x, nn_param(&p, a), 20001 * 4);
	nn->download(y, nn_param(&p, b), 20001 * 4);
	nn->download(u, nn_param(&p, c), sizeof u);
	double sum = 0, sq = 0;
	for (int i = 0; i < 20001; i++) {
		sum += x[i];
		sq += (double)x[i] * x[i];
	}
	double mean = sum / 20001, sd = sqrt(sq / 20001 - mean * mean);
	CHECK_NEAR(mean, 0, 0.02 * 4 / sqrt(20001.0));
	CHECK_NEAR(sd, 0.02, 0.02 * 0.03);
	CHECK(memcmp(x, y, 20001 * 4) != 0); /* each index its own stream */
	int in_range = 1;
	for (int i = 0; i < 15; i++)
		in_range &= u[i] > -0.5f && u[i] < 0.25f;
	CHECK(in_range && u[0] != u[1]);
	/* the same (seed, index) gives the same values, whatever else happened */
	nn_param_init_normal(&p, b, 0.02f, 43);
	nn_param_init_normal(&p, a, 0.02f, 42);
	nn->download(y, nn_param(&p, a), 20001 * 4);
	CHECK(!memcmp(x, y, 20001 * 4));
	nn_param_init_normal(&p, a, 0.02f, 43);
	nn->download(y, nn_param(&p, a), 20001 * 4);
	CHECK(memcmp(x, y, 20001 * 4) != 0);
	free(x);
	free(y);
	nn_params_free(&p);
}

static void test_params_save_load(void)
{
	struct nn_params p, q;
	make_params(&p, 0);
	make_params(&q, 0);
	fill_params(&p, 1.0f);
	struct st_meta meta[1] = { { "config", "{\"dim\": 3}" } };
	const char *path = tmp_path("params.safetensors");
	CHECK(nn_params_save(path, &p, meta, 1) == 0);
	struct st_file *f = st_open(path);
	CHECK_MSG(f, "%s", error_message());
	if (!f)
		return;
	CHECK(st_count(f) == 3 && !strcmp(st_metadata(f, "format"), "pt") &&
	      !strcmp(st_metadata(f, "config"), "{\"dim\": 3}"));
	CHECK(nn_params_load(&q, f, 0) == 0);
	CHECK(params_equal(&p, &q));
	st_close(f);

	/* A model with a transposed weight: refused, naming it, nothing changed. */
	struct nn_params r;
	make_params(&r, 1);
	fill_params(&r, 7.0f);
	f = st_open(path);
	CHECK(nn_params_load(&r, f, 0) < 0 && strstr(error_message(), "'lin.weight'") &&
	      strstr(error_message(), "[2,3]") && strstr(error_message(), "[3,2]"));
	float first;
	nn->download(&first, nn_param(&r, 1), 4);
	CHECK(first == 7.0f + 10 * 0.25f);
	st_close(f);
	nn_params_free(&r);

	/* Missing and extra tensors. */
	struct nn_params big = { 0 };
	int64_t w[2] = { 2, 3 }, b[1] = { 2 };
	nn_params_add(&big, "lin.weight", 2, w);
	nn_params_add(&big, "lin.bias", 1, b);
	nn_params_add(&big, "extra.bias", 1, b);
	nn_params_alloc(&big, 0);
	fill_params(&big, -1.0f);
	f = st_open(path);
	CHECK(nn_params_load(&big, f, 0) < 0 && strstr(error_message(), "'extra.bias' is missing"));
	CHECK(nn_params_load(&big, f, NN_LOAD_ALLOW_MISSING) < 0 && strstr(error_message(), "'scale'") &&
	      strstr(error_message(), "not a parameter"));
	CHECK(nn_params_load(&big, f, NN_LOAD_ALLOW_MISSING | NN_LOAD_ALLOW_EXTRA) == 0);
	float eb[2], lb[2];
	nn->download(eb, nn_param(&big, 2), 8);
	nn->download(lb, nn_param(&big, 1), 8);
	CHECK(eb[0] == -1.0f + 20 * 0.25f && lb[0] == 1.0f + 10 * 0.25f);
	st_close(f);
	nn_params_free(&big);

	/* F16, BF16 and F64 files load, upcast. */
	float wv[6] = { 0.5f, -1, 2, 0.25f, 3, -4 }, bv[2] = { 1.5f, 2.5f };
	double sv = 0.125;
	struct st_tensor t[3] = {
		{ .name = "lin.weight", .dtype = DT_FLOAT32, .ndim = 2, .shape = { 2, 3 }, .data = wv, .convert = ST_TO_F16 },
		{ .name = "lin.bias", .dtype = DT_FLOAT32, .ndim = 1, .shape = { 2 }, .data = bv, .convert = ST_TO_BF16 },
		{ .name = "scale", .dtype = DT_FLOAT64, .ndim = 0, .data = &sv },
	};
	const char *hpath = tmp_path("half_params.safetensors");
	CHECK(st_write(hpath, t, 3, NULL, 0) == 0);
	f = st_open(hpath);
	CHECK(f && nn_params_load(&q, f, 0) == 0);
	float got[48];
	nn->download(got, q.data, sizeof got);
	CHECK(!memcmp(got, wv, sizeof wv) && got[16] == 1.5f && got[17] == 2.5f && got[32] == 0.125f);
	st_close(f);
	/* An integer tensor is no parameter. */
	int32_t iv[2] = { 1, 2 };
	t[1] = (struct st_tensor){ .name = "lin.bias", .dtype = DT_INT32, .ndim = 1, .shape = { 2 }, .data = iv };
	CHECK(st_write(hpath, t, 3, NULL, 0) == 0);
	f = st_open(hpath);
	CHECK(f && nn_params_load(&q, f, 0) < 0 && strstr(error_message(), "'lin.bias' is I32"));
	st_close(f);
	nn_params_free(&p);
	nn_params_free(&q);
}

/* ---- exact resume ---- */

/* A 2-layer MLP (4 -> 8 tanh, dropout -> 2) on synthetic data, forward and
 * backward in plain C on host copies, gradients accumulated into the
 * parameters' gradient buffer as backward ops do. The data position and a
 * dropout stream are what a trainer would checkpoint beside the weights. */
enum { IN = 4, HID = 8, OUT = 2, BATCH = 6 };

struct trainer {
	struct nn_params p;
	struct nn_optim o;
	struct nn_train_position pos;
};

static struct nn_optim_config mlp_config(void)
{
	struct nn_optim_config c = nn_optim_defaults();
	c.lr = 0.05f;
	c.weight_decay = 0.1f;
	c.warmup_steps = 3;
	c.decay_steps = 12;
	c.min_lr = 0.005f;
	c.clip_norm = 1.0f;
	c.ema_decay = 0.9f;
	c.accum_steps = 2;
	return c;
}

static void trainer_build(struct trainer *tr, int init)
{
	memset(tr, 0, sizeof *tr);
	int64_t w1[2] = { HID, IN }, b1[1] = { HID }, w2[2] = { OUT, HID }, b2[1] = { OUT };
	nn_params_add(&tr->p, "l1.weight", 2, w1);
	nn_params_add(&tr->p, "l1.bias", 1, b1);
	nn_params_add(&tr->p, "l2.weight", 2, w2);
	nn_params_add(&tr->p, "l2.bias", 1, b2);
	nn_params_alloc(&tr->p, 1);
	if (init) {
		nn_param_init_normal(&tr->p, 0, 0.5f, 7);
		nn_param_init_uniform(&tr->p, 1, -0.1f, 0.1f, 7);
		nn_param_init_normal(&tr->p, 2, 0.3f, 7);
		tr->pos.rng_seed = 99;
	}
	struct nn_optim_config c = mlp_config();
	nn_optim_init(&tr->o, &tr->p, &c);
	nn_optim_decay_matrices_only(&tr->o);
}

static void trainer_free(struct trainer *tr)
{
	nn_optim_free(&tr->o);
	nn_params_free(&tr->p);
}

static void micro_batch(struct trainer *tr)
{
	struct nn_params *p = &tr->p;
	float *w = xmalloc(p->total * 4), *g = xmalloc(p->total * 4);
	nn->download(w, p->data, p->total * 4);
	nn->download(g, p->grad, p->total * 4);
	const float *w1 = w + p->items[0].offset, *b1 = w + p->items[1].offset;
	const float *w2 = w + p->items[2].offset, *b2 = w + p->items[3].offset;
	float *gw1 = g + p->items[0].offset, *gb1 = g + p->items[1].offset;
	float *gw2 = g + p->items[2].offset, *gb2 = g + p->items[3].offset;
	for (int r = 0; r < BATCH; r++) {
		uint64_t sample = (uint64_t)tr->pos.data_pos + (uint64_t)r;
		float x[IN], y[OUT], h[HID], keep[HID], out[OUT];
		for (int j = 0; j < IN; j++)
			x[j] = 2 * philox_uniform_at(1234, sample * IN + j) - 1;
		y[0] = sinf(x[0] + x[1]);
		y[1] = x[2] * x[3];
		for (int k = 0; k < HID; k++) {
			float a = b1[k];
			for (int j = 0; j < IN; j++)
				a += w1[k * IN + j] * x[j];
			keep[k] = philox_uniform_at(tr->pos.rng_seed, tr->pos.rng_offset + (uint64_t)(r * HID + k)) < 0.9f
			                  ? 1 / 0.9f : 0;
			h[k] = tanhf(a) * keep[k];
		}
		for (int o = 0; o < OUT; o++) {
			out[o] = b2[o];
			for (int k = 0; k < HID; k++)
				out[o] += w2[o * HID + k] * h[k];
		}
		float dh[HID] = { 0 };
		for (int o = 0; o < OUT; o++) {
			float d = 2 * (out[o] - y[o]) / (BATCH * OUT);
			gb2[o] += d;
			for (int k = 0; k < HID; k++) {
				gw2[o * HID + k] += d * h[k];
				dh[k] += d * w2[o * HID + k];
			}
		}
		for (int k = 0; k < HID; k++) {
			float t = h[k] / (keep[k] ? keep[k] : 1);
			float da = keep[k] ? dh[k] * keep[k] * (1 - t * t) : 0;
			gb1[k] += da;
			for (int j = 0; j < IN; j++)
				gw1[k * IN + j] += da * x[j];
		}
	}
	nn->upload(p->grad, g, p->total * 4);
	free(w);
	free(g);
	tr->pos.data_pos += BATCH;
	tr->pos.rng_offset += BATCH * HID;
	nn_optim_step(&tr->o);
}

static int buffers_equal(const float *a, const float *b, size_t n)
{
	float *x = xmalloc(n * 4), *y = xmalloc(n * 4);
	nn->download(x, a, n * 4);
	nn->download(y, b, n * 4);
	int same = !memcmp(x, y, n * 4);
	free(x);
	free(y);
	return same;
}

static int trainers_equal(const struct trainer *a, const struct trainer *b)
{
	size_t n = a->p.total;
	return buffers_equal(a->p.data, b->p.data, n) && buffers_equal(a->o.m, b->o.m, n) &&
	       buffers_equal(a->o.v, b->o.v, n) && buffers_equal(a->o.ema, b->o.ema, n) &&
	       buffers_equal(a->p.grad, b->p.grad, n) && a->o.step == b->o.step &&
	       a->o.micro_step == b->o.micro_step && a->pos.data_pos == b->pos.data_pos &&
	       a->pos.rng_offset == b->pos.rng_offset && a->pos.rng_seed == b->pos.rng_seed;
}

#define MLP_CONFIG "{\"in\": 4, \"hidden\": 8, \"out\": 2}"

/* 20 micro-batches (10 steps) straight, versus a save after `cut`, a fresh
 * process's worth of state, a load and the rest: the same bits. */
static void resume_case(int cut)
{
	struct trainer straight, first, resumed;
	trainer_build(&straight, 1);
	for (int i = 0; i < 20; i++)
		micro_batch(&straight);
	CHECK(straight.o.step == 10);

	trainer_build(&first, 1);
	for (int i = 0; i < cut; i++)
		micro_batch(&first);
	const char *path = tmp_path("mlp.safetensors");
	CHECK_MSG(nn_checkpoint_save(path, &first.p, &first.o, &first.pos, MLP_CONFIG) == 0, "%s", error_message());
	trainer_free(&first);

	struct st_file *f = st_open(path);
	CHECK(f && !strcmp(st_metadata(f, "config"), MLP_CONFIG));
	st_close(f);
	trainer_build(&resumed, 0);
	CHECK_MSG(nn_checkpoint_load(path, &resumed.p, &resumed.o, &resumed.pos, 0) == 0, "%s", error_message());
	CHECK(resumed.o.step == cut / 2 && resumed.o.micro_step == cut % 2 && resumed.pos.data_pos == cut * BATCH);
	for (int i = cut; i < 20; i++)
		micro_batch(&resumed);
	CHECK_MSG(trainers_equal(&straight, &resumed), "resume after %d micro-batches differs", cut);
	trainer_free(&straight);
	trainer_free(&resumed);
	char *prev = nn_checkpoint_state_path(path, 1);
	CHECK(!file_exists(prev)); /* removed once the save completed */
	free(prev);
}

static void test_resume_exact(void)
{
	resume_case(10); /* at a step boundary */
	resume_case(11); /* half way through an accumulation */
	resume_case(1);  /* before the first step: EMA not started */
}

/* The crash windows of a save: old weights with the new state beside them
 * and the old one as .prev; or the state moved away and the new one not yet
 * in place. Loading finds the state that belongs to the weights. */
static void test_interrupted_save(void)
{
	const char *a = tmp_path("crash.safetensors"), *b = tmp_path("later.safetensors");
	char *a_state = nn_checkpoint_state_path(a, 0), *a_prev = nn_checkpoint_state_path(a, 1);
	char *b_state = nn_checkpoint_state_path(b, 0);
	CHECK(strstr(a_state, "crash.state.safetensors") && strstr(a_prev, "crash.state.prev.safetensors"));
	struct trainer tr, at5, back;
	trainer_build(&tr, 1);
	for (int i = 0; i < 10; i++)
		micro_batch(&tr);
	CHECK(nn_checkpoint_save(a, &tr.p, &tr.o, &tr.pos, MLP_CONFIG) == 0);
	CHECK(!file_exists(a_prev));
	trainer_build(&at5, 0);
	CHECK(nn_checkpoint_load(a, &at5.p, &at5.o, &at5.pos, 0) == 0);
	for (int i = 0; i < 4; i++)
		micro_batch(&tr);
	CHECK(nn_checkpoint_save(b, &tr.p, &tr.o, &tr.pos, MLP_CONFIG) == 0);

	/* killed after the state rename, before the weights rename */
	CHECK(rename(a_state, a_prev) == 0);
	copy_file(b_state, a_state);
	trainer_build(&back, 0);
	CHECK_MSG(nn_checkpoint_load(a, &back.p, &back.o, &back.pos, 0) == 0, "%s", error_message());
	CHECK(trainers_equal(&back, &at5) && back.o.step == 5);
	trainer_free(&back);

	/* killed between moving the old state away and renaming the new one */
	CHECK(unlink(a_state) == 0);
	trainer_build(&back, 0);
	CHECK_MSG(nn_checkpoint_load(a, &back.p, &back.o, &back.pos, 0) == 0, "%s", error_message());
	CHECK(trainers_equal(&back, &at5));
	trainer_free(&back);

	/* a state of another step and no previous one: refused, clearly */
	copy_file(b_state, a_state);
	CHECK(unlink(a_prev) == 0);
	trainer_build(&back, 0);
	fill_params(&back.p, 5.0f);
	CHECK(nn_checkpoint_load(a, &back.p, &back.o, &back.pos, 0) < 0);
	const char *msg = error_message();
	CHECK_MSG(strstr(msg, "step 7") && strstr(msg, "step 5") && strstr(msg, "no training state matches"), "%s", msg);
	float w0;
	nn->download(&w0, back.p.data, 4);
	CHECK(w0 == 5.0f); /* untouched */
	trainer_free(&back);

	/* a save over the broken pair repairs it */
	CHECK(nn_checkpoint_save(a, &at5.p, &at5.o, &at5.pos, MLP_CONFIG) == 0);
	trainer_build(&back, 0);
	CHECK(nn_checkpoint_load(a, &back.p, &back.o, &back.pos, 0) == 0 && trainers_equal(&back, &at5));
	trainer_free(&back);

	/* no state at all */
	CHECK(unlink(a_state) == 0);
	trainer_build(&back, 0);
	CHECK(nn_checkpoint_load(a, &back.p, &back.o, &back.pos, 0) < 0 && strstr(error_message(), "No such file"));
	trainer_free(&back);
	trainer_free(&tr);
	trainer_free(&at5);
	free(a_state);
	free(a_prev);
	free(b_state);
}

static void test_checkpoint_mismatches(void)
{
	const char *path = tmp_path("mm.safetensors");
	struct trainer tr, back;
	trainer_build(&tr, 1);
	for (int i = 0; i < 3; i++)
		micro_batch(&tr);
	CHECK(nn_checkpoint_save(path, &tr.p, &tr.o, &tr.pos, NULL) == 0);
	CHECK(nn_checkpoint_save(path, &tr.p, &tr.o, &tr.pos, "{not json") < 0 && strstr(error_message(), "JSON"));

	/* another learning rate: refused unless asked for */
	trainer_build(&back, 0);
	back.o.cfg.lr = 0.01f;
	CHECK(nn_checkpoint_load(path, &back.p, &back.o, &back.pos, 0) < 0 && strstr(error_message(), "lr 0.05") &&
	      strstr(error_message(), "0.01"));
	CHECK(nn_checkpoint_load(path, &back.p, &back.o, &back.pos, NN_CKPT_NEW_CONFIG) == 0);
	CHECK(back.o.step == 1 && back.o.micro_step == 1);
	trainer_free(&back);

	/* other weight-decay flags */
	trainer_build(&back, 0);
	nn_optim_set_decay(&back.o, 1, 1);
	CHECK(nn_checkpoint_load(path, &back.p, &back.o, &back.pos, 0) < 0 && strstr(error_message(), "weight decay"));
	trainer_free(&back);

	/* one flipped bit in the weights' data */
	size_t size;
	uint8_t *bytes = read_all(path, &size);
	bytes[size - 3] ^= 0x10;
	write_all(path, bytes, size);
	free(bytes);
	trainer_build(&back, 0);
	CHECK(nn_checkpoint_load(path, &back.p, &back.o, &back.pos, 0) < 0 && strstr(error_message(), "CRC-32"));
	trainer_free(&back);

	/* a model of another shape */
	CHECK(nn_checkpoint_save(path, &tr.p, &tr.o, &tr.pos, NULL) == 0);
	struct nn_params other = { 0 };
	int64_t w1[2] = { HID, IN + 1 };
	nn_params_add(&other, "l1.weight", 2, w1);
	nn_params_alloc(&other, 1);
	struct nn_optim oo;
	struct nn_optim_config c = mlp_config();
	nn_optim_init(&oo, &other, &c);
	struct nn_train_position pos;
	CHECK(nn_checkpoint_load(path, &other, &oo, &pos, NN_CKPT_NEW_CONFIG) < 0 &&
	      strstr(error_message(), "'l1.weight'"));
	nn_optim_free(&oo);
	nn_params_free(&other);
	trainer_free(&tr);
}

static void cleanup(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/knnd-test-ckpt-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_roundtrip_all_dtypes);
	RUN(test_write_converts_to_half);
	RUN(test_writer_refuses_bad_input);
	RUN(test_corrupt_headers);
	RUN(test_corrupt_files);
	RUN(test_golden_clip);
	RUN(test_golden_vqgan_f16);
	RUN(test_params_registry);
	RUN(test_initialisers);
	RUN(test_params_save_load);
	RUN(test_resume_exact);
	RUN(test_interrupted_save);
	RUN(test_checkpoint_mismatches);
	cleanup();
	TEST_EXIT();
}
