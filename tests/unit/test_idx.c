/* IDX reading and (Fashion-)MNIST records, on small files made here. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "data/fashion_mnist.h"
#include "data/idx.h"
#include "test.h"

static char dir[64];

static const char *path_in_dir(const char *name)
{
	static char bufs[4][256];
	static int next;
	char *p = bufs[next++ % 4];
	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

/* Writes an IDX file: the header from type and dims, then `data` as
 * given (already big-endian). "wbT" makes zlib write it uncompressed, so
 * both kinds go through the same calls as the reader's. */
static void write_idx_raw(const char *name, int gzip, const void *head, size_t headlen,
                          const void *data, size_t len)
{
	gzFile gz = gzopen(path_in_dir(name), gzip ? "wb" : "wbT");
	if (!gz) {
		perror(name);
		exit(1);
	}
	gzwrite(gz, head, (unsigned)headlen);
	if (len)
		gzwrite(gz, data, (unsigned)len);
	gzclose(gz);
}

static void write_idx(const char *name, int gzip, int type, int ndim, const uint32_t *dims,
                      const void *data, size_t len)
{
	uint8_t head[4 + 4 * 16] = { 0, 0, (uint8_t)type, (uint8_t)ndim };
	for (int i = 0; i < ndim; i++)
		for (int b = 0; b < 4; b++)
			head[4 + 4 * i + b] = (uint8_t)(dims[i] >> (24 - 8 * b));
	write_idx_raw(name, gzip, head, 4 + 4 * (size_t)ndim, data, len);
}

/* Three 2x3 images with pixel (i, y, x) = i*31 + y*7 + x, and labels. */
enum { N = 3, ROWS = 2, COLS = 3 };
static const uint8_t labels[N] = { 0, 9, 3 };

static uint8_t pixel(int i, int y, int x)
{
	return (uint8_t)(i * 31 + y * 7 + x);
}

static void write_dataset(const char *stem, int gzip)
{
	uint8_t px[N * ROWS * COLS];
	for (int i = 0; i < N; i++)
		for (int y = 0; y < ROWS; y++)
			for (int x = 0; x < COLS; x++)
				px[(i * ROWS + y) * COLS + x] = pixel(i, y, x);
	char name[128];
	const char *gz = gzip ? ".gz" : "";
	snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", stem, gz);
	write_idx(name, gzip, IDX_UINT8, 3, (uint32_t[]){ N, ROWS, COLS }, px, sizeof px);
	snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", stem, gz);
	write_idx(name, gzip, IDX_UINT8, 1, (uint32_t[]){ N }, labels, sizeof labels);
}

static int image_matches(const struct tensor *t, int i)
{
	if (!t || t->dtype != DT_UINT8 || t->ndim != 3 || t->shape[0] != ROWS ||
	    t->shape[1] != COLS || t->shape[2] != 1)
		return 0;
	const uint8_t *p = t->data;
	for (int y = 0; y < ROWS; y++)
		for (int x = 0; x < COLS; x++)
			if (p[y * COLS + x] != pixel(i, y, x))
				return 0;
	return 1;
}

/* Reads every record of images/labels and checks them against the
 * dataset above, starting at image `first`. */
static void check_all_records(const char *images, const char *labels_file, int first)
{
	struct mnist_reader m;
	int rc = mnist_reader_open(&m, path_in_dir(images), labels_file ? path_in_dir(labels_file) : NULL,
	                           fashion_mnist_class_names, FASHION_MNIST_CLASSES);
	CHECK_MSG(rc == 0, "%s", error_message());
	if (rc)
		return;
	CHECK(mnist_reader_seek(&m, first) == 0);
	struct record r = RECORD_INIT;
	int i = first;
	while ((rc = mnist_reader_read(&m, &r)) > 0) {
		char id[32];
		snprintf(id, sizeof id, "%s-%06d", m.id_prefix, i);
		CHECK_MSG(record_str(&r, "id") && !strcmp(record_str(&r, "id"), id), "id %s", id);
		CHECK_MSG(!strcmp(r.fields[0].key, "id"), "id is not the first field");
		CHECK_MSG(image_matches(record_tensor(&r, "image"), i), "image %d", i);
		int64_t label;
		if (labels_file) {
			CHECK(record_int(&r, "label", &label) == 0 && label == labels[i]);
			const char *text = record_str(&r, "text");
			CHECK_MSG(text && !strcmp(text, fashion_mnist_class_names[labels[i]]),
			          "text of %d: %s", i, text ? text : "(none)");
		} else {
			CHECK(!record_get(&r, "label") && !record_get(&r, "text"));
		}
		i++;
	}
	CHECK_MSG(rc == 0, "%s", error_message());
	CHECK_MSG(i == (first < N ? N : first), "read up to %d from %d", i, first);
	CHECK(mnist_reader_read(&m, &r) == 0);
	record_free(&r);
	mnist_reader_close(&m);
}

static void test_plain_records(void)
{
	write_dataset("plain", 0);
	check_all_records("plain-images-idx3-ubyte", "plain-labels-idx1-ubyte", 0);
	check_all_records("plain-images-idx3-ubyte", NULL, 0);
}

static void test_gzip_records(void)
{
	write_dataset("zipped", 1);
	check_all_records("zipped-images-idx3-ubyte.gz", "zipped-labels-idx1-ubyte.gz", 0);
}

static void test_start_in_range(void)
{
	write_dataset("range", 1);
	write_dataset("range", 0);
	check_all_records("range-images-idx3-ubyte.gz", "range-labels-idx1-ubyte.gz", 1);
	check_all_records("range-images-idx3-ubyte", "range-labels-idx1-ubyte", 2);
	check_all_records("range-images-idx3-ubyte", "range-labels-idx1-ubyte", N);
	check_all_records("range-images-idx3-ubyte.gz", NULL, N + 5);
}

static void test_seek_back(void)
{
	write_dataset("back", 1);
	struct idx_file *f = idx_open(path_in_dir("back-images-idx3-ubyte.gz"), "image");
	CHECK_MSG(f, "%s", error_message());
	if (!f)
		return;
	uint8_t item[ROWS * COLS];
	CHECK(idx_seek(f, 2) == 0 && idx_read_item(f, item) == 1 && item[0] == pixel(2, 0, 0));
	CHECK(idx_seek(f, 0) == 0 && idx_read_item(f, item) == 1 && item[0] == pixel(0, 0, 0));
	CHECK(idx_seek(f, N + 1) < 0);
	idx_close(f);
}

/* Multi-byte types arrive big-endian and leave as little-endian elements. */
static void test_element_types(void)
{
	const uint8_t i16[] = { 0x01, 0x02, 0xff, 0xfe };            /* 258, -2 */
	const uint8_t i32[] = { 0x00, 0x01, 0x00, 0x00, 0xff, 0xff, 0xff, 0xfd }; /* 65536, -3 */
	const uint8_t f32[] = { 0x3f, 0xc0, 0, 0, 0xc0, 0x20, 0, 0 }; /* 1.5, -2.5 */
	const uint8_t f64[] = { 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x40, 0x59, 0, 0, 0, 0, 0, 0 }; /* 1.5, 100 */
	const uint8_t i8[] = { 0x80, 0x7f };                          /* -128, 127 */
	const struct { int type; const void *data; size_t len; double want[2]; } cases[] = {
		{ IDX_INT16, i16, sizeof i16, { 258, -2 } },
		{ IDX_INT32, i32, sizeof i32, { 65536, -3 } },
		{ IDX_FLOAT32, f32, sizeof f32, { 1.5, -2.5 } },
		{ IDX_FLOAT64, f64, sizeof f64, { 1.5, 100 } },
		{ IDX_INT8, i8, sizeof i8, { -128, 127 } },
	};
	for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
		write_idx("types", c % 2, cases[c].type, 2, (uint32_t[]){ 1, 2 }, cases[c].data, cases[c].len);
		struct idx_file *f = idx_open(path_in_dir("types"), NULL);
		CHECK_MSG(f, "type 0x%02x: %s", cases[c].type, error_message());
		if (!f)
			continue;
		struct tensor t = { .dtype = f->dtype, .ndim = 1, .shape = { 2 } };
		t.data = malloc(f->item_bytes);
		t.nbytes = f->item_bytes;
		CHECK(f->count == 1 && f->item_bytes == cases[c].len);
		CHECK(idx_read_item(f, t.data) == 1);
		for (int i = 0; i < 2; i++)
			CHECK_MSG(tensor_get(&t, i) == cases[c].want[i], "type 0x%02x element %d: %g",
			          cases[c].type, i, tensor_get(&t, i));
		CHECK_MSG(idx_read_item(f, t.data) == 0, "%s", error_message());
		free(t.data);
		idx_close(f);
	}
}

static void test_int_labels(void)
{
	const uint8_t be[] = { 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 5 };
	uint8_t px[N * ROWS * COLS] = { 0 };
	write_idx("wide-images-idx3-ubyte", 0, IDX_UINT8, 3, (uint32_t[]){ N, ROWS, COLS }, px, sizeof px);
	write_idx("wide-labels-idx1-ubyte", 0, IDX_INT32, 1, (uint32_t[]){ N }, be, sizeof be);
	struct mnist_reader m;
	CHECK_MSG(mnist_reader_open(&m, path_in_dir("wide-images-idx3-ubyte"),
	                            path_in_dir("wide-labels-idx1-ubyte"),
	                            fashion_mnist_class_names, FASHION_MNIST_CLASSES) == 0,
	          "%s", error_message());
	struct record r = RECORD_INIT;
	int64_t label;
	CHECK(mnist_reader_read(&m, &r) == 1 && record_int(&r, "label", &label) == 0 && label == 7);
	CHECK(record_str(&r, "text") && !strcmp(record_str(&r, "text"), "Sneaker"));
	record_free(&r);
	mnist_reader_close(&m);
}

/* Four-dimensional files carry channels: [rows, cols, C]. */
static void test_channels(void)
{
	uint8_t px[2 * 2 * 2 * 3];
	for (size_t i = 0; i < sizeof px; i++)
		px[i] = (uint8_t)i;
	write_idx("rgb", 1, IDX_UINT8, 4, (uint32_t[]){ 2, 2, 2, 3 }, px, sizeof px);
	struct mnist_reader m;
	CHECK_MSG(mnist_reader_open(&m, path_in_dir("rgb"), NULL, NULL, 0) == 0, "%s", error_message());
	struct record r = RECORD_INIT;
	CHECK(mnist_reader_read(&m, &r) == 1 && mnist_reader_read(&m, &r) == 1);
	struct tensor *t = record_tensor(&r, "image");
	CHECK(t && t->ndim == 3 && t->shape[0] == 2 && t->shape[1] == 2 && t->shape[2] == 3);
	CHECK(t && ((uint8_t *)t->data)[0] == 12 && ((uint8_t *)t->data)[11] == 23);
	CHECK(record_str(&r, "id") && !strcmp(record_str(&r, "id"), "rgb-000001"));
	CHECK(mnist_reader_read(&m, &r) == 0);
	record_free(&r);
	mnist_reader_close(&m);
}

static void test_labels_path(void)
{
	write_dataset("pair", 1);
	char *p = mnist_labels_path(path_in_dir("pair-images-idx3-ubyte.gz"));
	CHECK_MSG(p && !strcmp(p, path_in_dir("pair-labels-idx1-ubyte.gz")), "%s", p ? p : "NULL");
	free(p);
	/* Only an uncompressed labels file: it is found too. */
	write_idx("half-labels-idx1-ubyte", 0, IDX_UINT8, 1, (uint32_t[]){ N }, labels, N);
	p = mnist_labels_path(path_in_dir("half-images-idx3-ubyte.gz"));
	CHECK_MSG(p && !strcmp(p, path_in_dir("half-labels-idx1-ubyte")), "%s", p ? p : "NULL");
	free(p);
	/* The dotted spelling some mirrors use. */
	write_idx("dot-labels.idx1-ubyte", 0, IDX_UINT8, 1, (uint32_t[]){ N }, labels, N);
	p = mnist_labels_path(path_in_dir("dot-images.idx3-ubyte"));
	CHECK_MSG(p && !strcmp(p, path_in_dir("dot-labels.idx1-ubyte")), "%s", p ? p : "NULL");
	free(p);
	CHECK(mnist_labels_path(path_in_dir("lonely-images-idx3-ubyte.gz")) == NULL);
	CHECK(mnist_labels_path(path_in_dir("pair.idx")) == NULL);
	CHECK(mnist_labels_path("-") == NULL);
}

static void test_id_prefix(void)
{
	const char *cases[][2] = {
		{ "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", "t10k" },
		{ "train-images.idx3-ubyte", "train" },
		{ "dir.d/faces.idx.gz", "faces" },
		{ "faces", "faces" },
		{ ".hidden", ".hidden" },
		{ "-", "stdin" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *p = mnist_id_prefix(cases[i][0]);
		CHECK_MSG(!strcmp(p, cases[i][1]), "%s -> %s, expected %s", cases[i][0], p, cases[i][1]);
		free(p);
	}
}

static void test_class_names_file(void)
{
	FILE *fp = fopen(path_in_dir("classes.txt"), "w");
	fputs("zero\r\none\n\nthree", fp);
	fclose(fp);
	char **names;
	int n = mnist_load_class_names(path_in_dir("classes.txt"), &names);
	CHECK_MSG(n == 4, "%d names: %s", n, n < 0 ? error_message() : "");
	if (n == 4) {
		CHECK(!strcmp(names[0], "zero") && !strcmp(names[1], "one"));
		CHECK(!strcmp(names[2], "") && !strcmp(names[3], "three"));
		mnist_free_class_names(names, n);
	}
	fclose(fopen(path_in_dir("empty.txt"), "w"));
	CHECK(mnist_load_class_names(path_in_dir("empty.txt"), &names) < 0);
	CHECK(strstr(error_message(), "no class names"));
	CHECK(mnist_load_class_names(path_in_dir("absent.txt"), &names) < 0);
	CHECK(strstr(error_message(), "absent.txt: No such file"));
}

/* Opening `images` (and `labels`) must fail with a message containing `want`. */
static void expect_open_error(const char *images, const char *labels_file, const char *want)
{
	struct mnist_reader m;
	int rc = mnist_reader_open(&m, path_in_dir(images), labels_file ? path_in_dir(labels_file) : NULL,
	                           fashion_mnist_class_names, FASHION_MNIST_CLASSES);
	CHECK_MSG(rc < 0, "%s opened, expected '%s'", images, want);
	if (rc == 0)
		mnist_reader_close(&m);
	else
		CHECK_MSG(strstr(error_message(), want), "'%s' lacks '%s'", error_message(), want);
}

/* Reading every record must fail with a message containing `want`,
 * after exactly `good` records. */
static void expect_read_error(const char *images, const char *labels_file, int good, const char *want)
{
	struct mnist_reader m;
	if (mnist_reader_open(&m, path_in_dir(images), labels_file ? path_in_dir(labels_file) : NULL,
	                      fashion_mnist_class_names, FASHION_MNIST_CLASSES) < 0) {
		CHECK_MSG(0, "open %s: %s", images, error_message());
		return;
	}
	struct record r = RECORD_INIT;
	int rc, n = 0;
	while ((rc = mnist_reader_read(&m, &r)) > 0)
		n++;
	CHECK_MSG(rc < 0, "%s: read to the end, expected '%s'", images, want);
	CHECK_MSG(n == good, "%s: %d records before the error, expected %d", images, n, good);
	if (rc < 0)
		CHECK_MSG(strstr(error_message(), want), "'%s' lacks '%s'", error_message(), want);
	record_free(&r);
	mnist_reader_close(&m);
}

static void test_header_errors(void)
{
	uint8_t px[64] = { 0 };
	expect_open_error("missing-images-idx3-ubyte", NULL, "missing-images-idx3-ubyte: No such file");
	write_idx_raw("short", 0, "\0\0\x08", 3, NULL, 0);
	expect_open_error("short", NULL, "short: truncated in the header");
	write_idx_raw("magic", 1, "\x1f\x8b\x08\x03", 4, px, 12);
	expect_open_error("magic", NULL, "not an IDX file (magic bytes 1f 8b 08 03)");
	write_idx("type", 0, 0x0A, 3, (uint32_t[]){ 1, 2, 2 }, px, 4);
	expect_open_error("type", NULL, "unknown IDX data type 0x0a");
	write_idx("ndim0", 0, IDX_UINT8, 0, NULL, px, 4);
	expect_open_error("ndim0", NULL, "has 0 dimensions");
	write_idx("ndim9", 0, IDX_UINT8, 9, (uint32_t[]){ 1, 1, 1, 1, 1, 1, 1, 1, 1 }, px, 1);
	expect_open_error("ndim9", NULL, "has 9 dimensions");
	write_idx_raw("cutdims", 0, "\0\0\x08\x03\0\0\0\x01\0\0", 10, NULL, 0);
	expect_open_error("cutdims", NULL, "truncated in the header");
	write_idx("zero", 0, IDX_UINT8, 3, (uint32_t[]){ 1, 0, 28 }, px, 0);
	expect_open_error("zero", NULL, "dimension 1 of the IDX header is 0");
	write_idx("huge", 0, IDX_UINT8, 3, (uint32_t[]){ 1, 0xffffffff, 0xffffffff }, px, 4);
	expect_open_error("huge", NULL, "one image would be larger than");
	write_idx("wide", 0, IDX_INT32, 3, (uint32_t[]){ 1, 2, 2 }, px, 16);
	expect_open_error("wide", NULL, "images must be unsigned bytes (IDX type 0x08), not int32");
	write_idx("flat", 0, IDX_UINT8, 2, (uint32_t[]){ 2, 4 }, px, 8);
	expect_open_error("flat", NULL, "images need 3 dimensions (count, rows, cols), not 2");
	write_idx("five", 0, IDX_UINT8, 4, (uint32_t[]){ 1, 1, 1, 5 }, px, 5);
	expect_open_error("five", NULL, "images have 5 channels");
}

static void test_label_errors(void)
{
	write_dataset("lab", 0);
	uint8_t four[4] = { 1, 2, 3, 4 };
	write_idx("lab4", 1, IDX_UINT8, 1, (uint32_t[]){ 4 }, four, 4);
	expect_open_error("lab-images-idx3-ubyte", "lab4", "lab4: 4 labels for 3 images in");
	write_idx("lab2d", 0, IDX_UINT8, 2, (uint32_t[]){ N, 1 }, labels, N);
	expect_open_error("lab-images-idx3-ubyte", "lab2d", "labels need 1 dimension, not 2");
	uint8_t f32[4 * N] = { 0 };
	write_idx("labf", 0, IDX_FLOAT32, 1, (uint32_t[]){ N }, f32, sizeof f32);
	expect_open_error("lab-images-idx3-ubyte", "labf", "labels must be integers, not float32");
	uint8_t big[N] = { 1, 10, 2 };
	write_idx("labbig", 0, IDX_UINT8, 1, (uint32_t[]){ N }, big, N);
	expect_read_error("lab-images-idx3-ubyte", "labbig", 1, "label 10 of image 1 has no class name (10 classes)");
	/* Labels cut short though the header promises N. */
	write_idx("labcut", 1, IDX_UINT8, 1, (uint32_t[]){ N }, labels, 2);
	expect_read_error("lab-images-idx3-ubyte", "labcut", 2, "labcut: truncated at label 2 of 3");
	write_idx("labmore", 0, IDX_UINT8, 1, (uint32_t[]){ N }, four, 4);
	expect_read_error("lab-images-idx3-ubyte", "labmore", N, "labmore: unexpected data after the last of 3 labels");
}

/* A copy of file `from` cut to `len` bytes (or with a byte flipped at `flip`). */
static void copy_file(const char *from, const char *to, long len, long flip)
{
	FILE *in = fopen(path_in_dir(from), "rb"), *out = fopen(path_in_dir(to), "wb");
	int c;
	for (long i = 0; (len < 0 || i < len) && (c = getc(in)) != EOF; i++)
		putc(i == flip ? c ^ 0x55 : c, out);
	fclose(in);
	fclose(out);
}

static long file_size(const char *name)
{
	FILE *fp = fopen(path_in_dir(name), "rb");
	fseek(fp, 0, SEEK_END);
	long n = ftell(fp);
	fclose(fp);
	return n;
}

static void test_data_errors(void)
{
	write_dataset("data", 0);
	/* Plain: header (16) + one image (6) + half of the next. */
	copy_file("data-images-idx3-ubyte", "cut", 16 + 6 + 3, -1);
	expect_read_error("cut", NULL, 1, "cut: truncated at image 1 of 3");
	copy_file("data-images-idx3-ubyte", "cut0", 16, -1);
	expect_read_error("cut0", NULL, 0, "cut0: truncated at image 0 of 3");
	/* Plain with one extra byte. */
	uint8_t px[N * ROWS * COLS + 1] = { 0 };
	write_idx("extra", 0, IDX_UINT8, 3, (uint32_t[]){ N, ROWS, COLS }, px, sizeof px);
	expect_read_error("extra", NULL, N, "extra: unexpected data after the last of 3 images");

	/* Gzip cut inside the deflate data, and cut in its 8-byte trailer. */
	/* Noise does not compress, so half the file holds about half the images. */
	uint8_t noise[N * 28 * 28];
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < sizeof noise; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		noise[i] = (uint8_t)x;
	}
	write_idx("noise.gz", 1, IDX_UINT8, 3, (uint32_t[]){ N, 28, 28 }, noise, sizeof noise);
	long size = file_size("noise.gz");
	copy_file("noise.gz", "gzcut", size / 2, -1);
	expect_read_error("gzcut", NULL, 1, "gzcut: truncated at image 1 of 3");
	copy_file("noise.gz", "gztrailer", size - 4, -1);
	expect_read_error("gztrailer", NULL, N, "gztrailer: truncated after the last image");
	/* A changed byte in the compressed data: inflate or the CRC objects,
	 * wherever zlib's read-ahead finds it (even in the header). */
	copy_file("noise.gz", "gzflip", -1, size / 2);
	struct mnist_reader m;
	int rc = mnist_reader_open(&m, path_in_dir("gzflip"), NULL, NULL, 0);
	if (rc == 0) {
		struct record r = RECORD_INIT;
		while ((rc = mnist_reader_read(&m, &r)) > 0)
			;
		record_free(&r);
		mnist_reader_close(&m);
	}
	CHECK_MSG(rc < 0 && strstr(error_message(), "gzflip: corrupt data"), "rc %d: %s", rc, error_message());
}

static void remove_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			unlink(path_in_dir(e->d_name));
	if (d)
		closedir(d);
	rmdir(dir);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/test_idx.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_plain_records);
	RUN(test_gzip_records);
	RUN(test_start_in_range);
	RUN(test_seek_back);
	RUN(test_element_types);
	RUN(test_int_labels);
	RUN(test_channels);
	RUN(test_labels_path);
	RUN(test_id_prefix);
	RUN(test_class_names_file);
	RUN(test_header_errors);
	RUN(test_label_errors);
	RUN(test_data_errors);
	remove_dir();
	TEST_EXIT();
}
