/* Record batches: grouping by size, the cap, order of output, and errors
 * that name the record and stop a failed batch before it is written. */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "core/tool.h"
#include "stream/record_batch.h"
#include "stream/stream.h"
#include "test.h"

#define MAX_BATCHES 64
#define MAX_RECORDS 256

/* A stand-in for a model: it logs the batches it is given and marks each
 * record with the number of its batch. */
struct fake_model {
	int nbatches;
	int n[MAX_BATCHES];         /* records in each batch */
	int first[MAX_BATCHES];     /* seq of each batch's first record */
	int max_n;
	bool size_mismatch;         /* a record's h x w differed from b->size */
	bool check_in_run;          /* run calls record_batch_check itself */
	bool fail_whole;            /* run fails the whole batch */
};

/* seq numbers the records; h and w, when present, are the record's size;
 * "fail" makes the model fail on it, "bad" makes check reject it. */
static void make_record(struct record *r, int seq, int h, int w, const char *flag)
{
	record_set_int(r, "seq", seq);
	if (h >= 0) {
		record_set_int(r, "h", h);
		record_set_int(r, "w", w);
	}
	if (flag)
		record_set_bool(r, flag, true);
}

static int check_size(void *ctx, const struct record *r, int size[2])
{
	(void)ctx;
	int64_t h, w;
	if (record_get(r, "bad"))
		return errorf("no image");
	if (record_int(r, "h", &h) < 0 || record_int(r, "w", &w) < 0)
		return errorf("no size");
	size[0] = (int)h;
	size[1] = (int)w;
	return 0;
}

static int run_model(void *ctx, struct record_batch *b)
{
	struct fake_model *m = ctx;
	if (m->fail_whole)
		return errorf("model out of memory");
	int k = m->nbatches++;
	if (k < MAX_BATCHES) {
		int64_t seq = -1;
		record_int(&b->recs[0], "seq", &seq);
		m->n[k] = b->n;
		m->first[k] = (int)seq;
	}
	if (b->n > m->max_n)
		m->max_n = b->n;
	for (int i = 0; i < b->n; i++) {
		struct record *r = &b->recs[i];
		int64_t h, w;
		if (record_int(r, "h", &h) == 0 && record_int(r, "w", &w) == 0 &&
		    (h != b->size[0] || w != b->size[1]))
			m->size_mismatch = true;
		if (record_get(r, "fail")) {
			errorf("model refused");
			record_batch_fail(b, i);
			continue;
		}
		record_set_int(r, "batch", k);
	}
	if (m->check_in_run && record_batch_check(b) < 0)
		return -1;
	return 0;
}

static void batch_init(struct record_batch *b, int cap, struct ts_writer *out,
                       struct fake_model *m, bool with_check)
{
	record_batch_init(b, cap, out, false);
	b->check = with_check ? check_size : NULL;
	b->run = run_model;
	b->ctx = m;
}

/* Pushes one record through the batch's slot, from origin (input, unit, index). */
static int push(struct record_batch *b, const char *input, const char *unit, long long index,
                int seq, int h, int w, const char *flag)
{
	make_record(record_batch_slot(b), seq, h, w, flag);
	return record_batch_push(b, (struct record_origin){ input, unit, index });
}

/* The seq and batch fields of every record written; returns the count. */
static int read_output(struct ts_writer *out, int *seq, int *batch, int max)
{
	size_t len;
	const void *data = ts_writer_mem_data(out, &len);
	struct ts_reader *rd = ts_open_mem(data, len, "output");
	struct record r = RECORD_INIT;
	int n = 0, rc;
	while ((rc = ts_read(rd, &r)) > 0 && n < max) {
		int64_t s = -1, k = -1;
		record_int(&r, "seq", &s);
		record_int(&r, "batch", &k);
		seq[n] = (int)s;
		if (batch)
			batch[n] = (int)k;
		n++;
	}
	record_free(&r);
	ts_close(rd);
	return rc < 0 ? -1 : n;
}

/* Encodes n records of the given sizes (h[i] < 0: no size) into a buffer. */
static void *encode_records(int n, const int *h, const int *w, const char **flags, int seq0, size_t *len)
{
	struct ts_writer *wr = ts_writer_mem();
	struct record r = RECORD_INIT;
	for (int i = 0; i < n; i++) {
		record_clear(&r);
		make_record(&r, seq0 + i, h[i], w[i], flags ? flags[i] : NULL);
		ts_write(wr, &r);
	}
	const void *d = ts_writer_mem_data(wr, len);
	void *copy = xmalloc(*len);
	memcpy(copy, d, *len);
	ts_writer_close(wr);
	record_free(&r);
	return copy;
}

/* A record of another size closes the batch early; batches of one size,
 * written in input order. Sizes differ in h, in w, or both. */
static void test_size_groups(void)
{
	/*               0  1  2  3  4  5  6  7  8  9  10 */
	const int h[] = { 4, 4, 4, 4, 4, 8, 8, 4, 4, 4, 4 };
	const int w[] = { 4, 4, 8, 8, 8, 8, 8, 4, 4, 4, 4 };
	const int want_n[] = { 2, 3, 2, 3, 1 };
	const int want_first[] = { 0, 2, 5, 7, 10 };
	struct fake_model m = { 0 };
	struct ts_writer *out = ts_writer_mem();
	struct record_batch b;
	batch_init(&b, 3, out, &m, true);
	for (int i = 0; i < 11; i++)
		CHECK_MSG(push(&b, "in", "record", i, i, h[i], w[i], NULL) == 0, "push %d: %s", i, error_message());
	CHECK(record_batch_finish(&b) == 0);
	CHECK_MSG(m.nbatches == 5, "%d batches", m.nbatches);
	for (int k = 0; k < 5 && k < m.nbatches; k++)
		CHECK_MSG(m.n[k] == want_n[k] && m.first[k] == want_first[k],
		          "batch %d: %d records from %d, expected %d from %d",
		          k, m.n[k], m.first[k], want_n[k], want_first[k]);
	CHECK(!m.size_mismatch);
	int seq[MAX_RECORDS], batch[MAX_RECORDS];
	int n = read_output(out, seq, batch, MAX_RECORDS);
	CHECK_MSG(n == 11, "%d records written", n);
	int k = 0;
	for (int i = 0; i < n; i++) {
		if (k + 1 < 5 && i == want_first[k + 1])
			k++;
		CHECK_MSG(seq[i] == i && batch[i] == k, "output %d: seq %d batch %d", i, seq[i], batch[i]);
	}
	record_batch_free(&b);
	ts_writer_close(out);
}

/* However long the stream, no batch holds more than cap records; every
 * record comes out once, in order. */
static void test_cap(void)
{
	for (int cap = 1; cap <= 5; cap += 2) {
		struct fake_model m = { 0 };
		struct ts_writer *out = ts_writer_mem();
		struct record_batch b;
		batch_init(&b, cap, out, &m, true);
		for (int i = 0; i < 100; i++)
			CHECK(push(&b, "in", "record", i, i, 2, 3, NULL) == 0);
		CHECK(record_batch_finish(&b) == 0);
		CHECK_MSG(m.max_n == cap, "cap %d: largest batch %d", cap, m.max_n);
		CHECK_MSG(m.nbatches == (100 + cap - 1) / cap, "cap %d: %d batches", cap, m.nbatches);
		/* All full but the last. */
		for (int k = 0; k + 1 < m.nbatches && k < MAX_BATCHES; k++)
			CHECK_MSG(m.n[k] == cap, "cap %d: batch %d has %d", cap, k, m.n[k]);
		int seq[MAX_RECORDS];
		int n = read_output(out, seq, NULL, MAX_RECORDS);
		CHECK_MSG(n == 100, "cap %d: %d records written", cap, n);
		for (int i = 0; i < n; i++)
			CHECK_MSG(seq[i] == i, "cap %d: output %d is seq %d", cap, i, seq[i]);
		record_batch_free(&b);
		ts_writer_close(out);
	}
}

/* Without check every record has one size: batches close only when full. */
static void test_no_check(void)
{
	struct fake_model m = { 0 };
	struct ts_writer *out = ts_writer_mem();
	struct record_batch b;
	batch_init(&b, 3, out, &m, false);
	for (int i = 0; i < 7; i++)
		CHECK(push(&b, "in", "record", i, i, -1, -1, NULL) == 0);
	CHECK(b.size[0] == 0 && b.size[1] == 0);
	CHECK(record_batch_finish(&b) == 0);
	CHECK_MSG(m.nbatches == 3 && m.n[0] == 3 && m.n[1] == 3 && m.n[2] == 1,
	          "%d batches: %d %d %d", m.nbatches, m.n[0], m.n[1], m.n[2]);
	int seq[MAX_RECORDS];
	int n = read_output(out, seq, NULL, MAX_RECORDS);
	CHECK_MSG(n == 7, "%d records written", n);
	for (int i = 0; i < n; i++)
		CHECK(seq[i] == i);
	/* Finishing again with nothing pending runs nothing. */
	CHECK(record_batch_finish(&b) == 0 && m.nbatches == 3);
	record_batch_free(&b);
	ts_writer_close(out);
}

/* The slot handed out for the next record is empty, even where it held a
 * record already written. */
static void test_slot_cleared(void)
{
	struct fake_model m = { 0 };
	struct ts_writer *out = ts_writer_mem();
	struct record_batch b;
	batch_init(&b, 2, out, &m, true);
	CHECK(push(&b, "in", "record", 0, 0, 1, 1, NULL) == 0);
	CHECK(push(&b, "in", "record", 1, 1, 1, 1, NULL) == 0); /* full: runs */
	CHECK(b.n == 0);
	struct record *s = record_batch_slot(&b);
	CHECK(s == &b.recs[0] && s->n == 0 && b.error[0][0] == '\0');
	CHECK(push(&b, "in", "record", 2, 2, 1, 1, NULL) == 0);
	CHECK(push(&b, "in", "record", 3, 3, 5, 5, NULL) == 0); /* another size: runs 1 */
	CHECK(b.n == 1);
	s = record_batch_slot(&b);
	CHECK(s == &b.recs[1] && s->n == 0);
	CHECK(record_batch_finish(&b) == 0);
	record_batch_free(&b);
	ts_writer_close(out);
}

/* A record that fails within a batch stops the run before any record of
 * that batch is written; earlier batches are out. The message names the
 * record, whether run checks itself or leaves it to the batch. */
static void test_record_fail(void)
{
	const int h[8] = { 2, 2, 2, 2, 2, 2, 2, 2 }, w[8] = { 2, 2, 2, 2, 2, 2, 2, 2 };
	const char *flags[8] = { [5] = "fail" };
	size_t len;
	void *in = encode_records(8, h, w, flags, 0, &len);
	for (int check_in_run = 0; check_in_run <= 1; check_in_run++) {
		struct fake_model m = { .check_in_run = check_in_run };
		struct ts_writer *out = ts_writer_mem();
		struct record_batch b;
		batch_init(&b, 4, out, &m, true);
		struct ts_reader *rd = ts_open_mem(in, len, "in.ts");
		CHECK(record_batch_read(&b, rd, "in.ts") < 0);
		CHECK_MSG(!strcmp(error_message(), "in.ts: record 5: model refused"),
		          "check_in_run %d: message: %s", check_in_run, error_message());
		int seq[MAX_RECORDS];
		int n = read_output(out, seq, NULL, MAX_RECORDS);
		CHECK_MSG(n == 4, "check_in_run %d: %d records written", check_in_run, n);
		for (int i = 0; i < n; i++)
			CHECK(seq[i] == i);
		ts_close(rd);
		record_batch_free(&b);
		ts_writer_close(out);
	}
	free(in);
}

/* Records made from lines count from 1 and say "line". The failure of a
 * batch closed by a record of another size surfaces on that push. */
static void test_line_origin(void)
{
	struct fake_model m = { .check_in_run = true };
	struct ts_writer *out = ts_writer_mem();
	struct record_batch b;
	batch_init(&b, 4, out, &m, true);
	CHECK(push(&b, "words.txt", "line", 1, 0, 1, 77, NULL) == 0);
	CHECK(push(&b, "words.txt", "line", 2, 1, 1, 77, "fail") == 0);
	CHECK(push(&b, "words.txt", "line", 3, 2, 1, 77, NULL) == 0);
	CHECK(push(&b, "words.txt", "line", 4, 3, 1, 50, NULL) < 0);
	CHECK_MSG(!strcmp(error_message(), "words.txt: line 2: model refused"), "message: %s", error_message());
	size_t len;
	ts_writer_mem_data(out, &len);
	CHECK_MSG(len == 0, "%zu bytes written", len);
	record_batch_free(&b);
	ts_writer_close(out);

	/* record_batch_check alone: the first failed record, by its origin. */
	batch_init(&b, 4, NULL, &m, true);
	for (int i = 0; i < 3; i++) {
		make_record(record_batch_slot(&b), i, 1, 1, NULL);
		b.origin[b.n++] = (struct record_origin){ "words.txt", "line", 10 + i };
	}
	CHECK(record_batch_check(&b) == 0);
	errorf("too long");
	record_batch_fail(&b, 2);
	errorf("empty");
	record_batch_fail(&b, 1);
	CHECK(record_batch_check(&b) < 0);
	CHECK_MSG(!strcmp(error_message(), "words.txt: line 11: empty"), "message: %s", error_message());
	/* A failure without a message still says that the record failed. */
	errorf("%s", "");
	record_batch_fail(&b, 0);
	CHECK(record_batch_check(&b) < 0);
	CHECK_MSG(!strcmp(error_message(), "words.txt: line 10: failed"), "message: %s", error_message());
	b.n = 0;
	record_batch_free(&b);
}

/* An error from check names the record; the batches before it are written. */
static void test_check_error(void)
{
	const int h[5] = { 3, 3, 3, 3, 3 }, w[5] = { 3, 3, 3, 3, 3 };
	const char *flags[5] = { [3] = "bad" };
	size_t len;
	void *in = encode_records(5, h, w, flags, 0, &len);
	struct fake_model m = { 0 };
	struct ts_writer *out = ts_writer_mem();
	struct record_batch b;
	batch_init(&b, 2, out, &m, true);
	struct ts_reader *rd = ts_open_mem(in, len, "in.ts");
	CHECK(record_batch_read(&b, rd, "in.ts") < 0);
	CHECK_MSG(!strcmp(error_message(), "in.ts: record 3: no image"), "message: %s", error_message());
	int seq[MAX_RECORDS];
	int n = read_output(out, seq, NULL, MAX_RECORDS);
	CHECK_MSG(n == 2 && seq[0] == 0 && seq[1] == 1, "%d records written", n);
	ts_close(rd);
	record_batch_free(&b);
	ts_writer_close(out);
	free(in);
}

/* A run that fails as a whole keeps its own message and writes nothing. */
static void test_whole_batch_fail(void)
{
	struct fake_model m = { .fail_whole = true };
	struct ts_writer *out = ts_writer_mem();
	struct record_batch b;
	batch_init(&b, 4, out, &m, true);
	CHECK(push(&b, "in", "record", 0, 0, 1, 1, NULL) == 0);
	CHECK(record_batch_finish(&b) < 0);
	CHECK_MSG(!strcmp(error_message(), "model out of memory"), "message: %s", error_message());
	size_t len;
	ts_writer_mem_data(out, &len);
	CHECK(len == 0);
	record_batch_free(&b);
	ts_writer_close(out);
}

/* Writes records to a new temp file; its name goes to path. */
static int write_temp(char *path, size_t size, int n, const int *h, const int *w, const char **flags, int seq0)
{
	const char *dir = getenv("TMPDIR");
	snprintf(path, size, "%s/test_record_batch.XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	size_t len;
	void *data = encode_records(n, h, w, flags, seq0, &len);
	int rc = write(fd, data, len) == (ssize_t)len ? 0 : -1;
	free(data);
	close(fd);
	return rc;
}

/* Files are read one after another as one stream: a batch spans the
 * boundary between files, and errors name the file and its own record
 * number. With no files, stdin is read and named. */
static void test_read_files(void)
{
	char p1[256], p2[256];
	const int h1[2] = { 6, 6 }, w1[2] = { 6, 6 };
	const int h2[3] = { 6, 6, 9 }, w2[3] = { 6, 9, 9 };
	const char *flags2[3] = { [1] = "fail" };
	if (write_temp(p1, sizeof p1, 2, h1, w1, NULL, 0) < 0 ||
	    write_temp(p2, sizeof p2, 3, h2, w2, NULL, 2) < 0)
		SKIP("cannot write temp files");
	char *files[2] = { p1, p2 };

	struct fake_model m = { 0 };
	struct ts_writer *out = ts_writer_mem();
	struct record_batch b;
	batch_init(&b, 3, out, &m, true);
	CHECK_MSG(record_batch_read_files(&b, 2, files) == 0, "%s", error_message());
	CHECK(record_batch_finish(&b) == 0);
	/* [0 1 | 2] share 6x6 across the files; 3 is 6x9; 4 is 9x9. */
	CHECK_MSG(m.nbatches == 3 && m.n[0] == 3 && m.n[1] == 1 && m.n[2] == 1,
	          "%d batches: %d %d %d", m.nbatches, m.n[0], m.n[1], m.n[2]);
	int seq[MAX_RECORDS];
	int n = read_output(out, seq, NULL, MAX_RECORDS);
	CHECK_MSG(n == 5, "%d records written", n);
	for (int i = 0; i < n; i++)
		CHECK(seq[i] == i);
	record_batch_free(&b);
	ts_writer_close(out);

	/* A failure in the second file names it, counting its records from 0. */
	unlink(p2);
	CHECK(write_temp(p2, sizeof p2, 3, h2, w2, flags2, 2) == 0);
	files[1] = p2;
	m = (struct fake_model){ 0 };
	out = ts_writer_mem();
	batch_init(&b, 3, out, &m, true);
	int rc = record_batch_read_files(&b, 2, files);
	if (rc == 0)
		rc = record_batch_finish(&b);
	char want[600];
	snprintf(want, sizeof want, "%s: record 1: model refused", p2);
	CHECK_MSG(rc < 0 && !strcmp(error_message(), want), "message: %s", error_message());
	n = read_output(out, seq, NULL, MAX_RECORDS);
	CHECK_MSG(n == 3, "%d records written", n); /* the 6x6 batch only */
	record_batch_free(&b);
	ts_writer_close(out);

	/* A file that cannot be opened is named. */
	char *missing[1] = { "/nonexistent/knnd-test.ts" };
	out = ts_writer_mem();
	batch_init(&b, 3, out, &m, true);
	CHECK(record_batch_read_files(&b, 1, missing) < 0);
	CHECK_MSG(strstr(error_message(), "/nonexistent/knnd-test.ts"), "message: %s", error_message());
	record_batch_free(&b);
	ts_writer_close(out);

	/* No files: stdin, named "stdin" in messages. */
	int saved = dup(0), fd = open(p2, O_RDONLY);
	if (saved >= 0 && fd >= 0 && dup2(fd, 0) == 0) {
		m = (struct fake_model){ 0 };
		out = ts_writer_mem();
		batch_init(&b, 3, out, &m, true);
		rc = record_batch_read_files(&b, 0, NULL);
		if (rc == 0)
			rc = record_batch_finish(&b);
		CHECK_MSG(rc < 0 && !strcmp(error_message(), "stdin: record 1: model refused"),
		          "message: %s", error_message());
		record_batch_free(&b);
		ts_writer_close(out);
		dup2(saved, 0);
	}
	if (fd >= 0)
		close(fd);
	if (saved >= 0)
		close(saved);
	unlink(p1);
	unlink(p2);
}

/* Progress stays quiet for a short run. */
static void test_progress_quiet(void)
{
	char path[256];
	const char *dir = getenv("TMPDIR");
	snprintf(path, sizeof path, "%s/test_record_batch_err.XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0)
		SKIP("cannot make a temp file");
	fflush(stderr);
	int saved = dup(2);
	dup2(fd, 2);
	struct fake_model m = { 0 };
	struct ts_writer *out = ts_writer_mem();
	struct record_batch b;
	record_batch_init(&b, 2, out, true);
	b.check = check_size;
	b.run = run_model;
	b.ctx = &m;
	for (int i = 0; i < 5; i++)
		CHECK(push(&b, "in", "record", i, i, 1, 1, NULL) == 0);
	CHECK(record_batch_finish(&b) == 0);
	CHECK(b.done == 5);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	CHECK_MSG(lseek(fd, 0, SEEK_END) == 0, "progress printed on a short run");
	close(fd);
	unlink(path);
	record_batch_free(&b);
	ts_writer_close(out);
}

/* Buffers grow to the largest need and keep their contents; smaller needs
 * leave them as they are. */
static void test_buffer_grow(void)
{
	size_t cap = 0;
	int *p = batch_buffer_grow(NULL, &cap, 10, sizeof *p);
	CHECK(p && cap == 10);
	for (int i = 0; i < 10; i++)
		p[i] = i * i;
	int *q = batch_buffer_grow(p, &cap, 5, sizeof *p);
	CHECK(q == p && cap == 10);
	q = batch_buffer_grow(p, &cap, 10, sizeof *p);
	CHECK(q == p && cap == 10);
	p = batch_buffer_grow(q, &cap, 1000, sizeof *p);
	CHECK(p && cap == 1000);
	for (int i = 0; i < 10; i++)
		CHECK(p[i] == i * i);
	p[999] = 1; /* the new room is there (ASan checks) */
	free(p);
}

int main(void)
{
	RUN(test_size_groups);
	RUN(test_cap);
	RUN(test_no_check);
	RUN(test_slot_cleared);
	RUN(test_record_fail);
	RUN(test_line_origin);
	RUN(test_check_error);
	RUN(test_whole_batch_fail);
	RUN(test_read_files);
	RUN(test_progress_quiet);
	RUN(test_buffer_grow);
	TEST_EXIT();
}
