/* Record batches: gathered, run by the caller, written in order. */
#include "stream/record_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/tool.h"
#include "stream/stream.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void record_batch_init(struct record_batch *b, int cap, struct ts_writer *out, bool progress)
{
	*b = (struct record_batch){ .cap = cap, .out = out, .progress = progress, .tty = isatty(2) };
	b->recs = xcalloc(cap, sizeof *b->recs);
	b->origin = xcalloc(cap, sizeof *b->origin);
	b->error = xcalloc(cap, sizeof *b->error);
	b->start = b->last_report = now();
}

void record_batch_free(struct record_batch *b)
{
	for (int i = 0; i < b->cap; i++)
		record_free(&b->recs[i]);
	free(b->recs);
	free(b->origin);
	free(b->error);
	b->recs = NULL;
	b->origin = NULL;
	b->error = NULL;
}

static void report_progress(struct record_batch *b, bool final)
{
	if (!b->progress)
		return;
	double t = now();
	if (!final && t - b->last_report < 3.0)
		return;
	if (final && !b->reported)
		return; /* short runs stay quiet */
	b->last_report = t;
	b->reported = true;
	double rate = t > b->start ? b->done / (t - b->start) : 0;
	fprintf(stderr, "%s: %lld records, %.1f/s%s", tool_name, b->done, rate, b->tty && !final ? "   \r" : "\n");
	fflush(stderr);
}

void record_batch_fail(struct record_batch *b, int i)
{
	const char *msg = error_message();
	/* An empty slot means success, so a failure always says something. */
	snprintf(b->error[i], sizeof b->error[i], "%s", *msg ? msg : "failed");
}

int record_batch_check(const struct record_batch *b)
{
	for (int i = 0; i < b->n; i++)
		if (b->error[i][0]) {
			const struct record_origin *o = &b->origin[i];
			return errorf("%s: %s %lld: %s", o->input, o->unit, o->index, b->error[i]);
		}
	return 0;
}

/* Runs and writes the first n records. */
static int run_batch(struct record_batch *b)
{
	if (b->n == 0)
		return 0;
	if (b->run(b->ctx, b) < 0 || record_batch_check(b) < 0)
		return -1;
	for (int i = 0; i < b->n; i++)
		if (ts_write(b->out, &b->recs[i]) < 0)
			return -1;
	b->done += b->n;
	b->n = 0;
	report_progress(b, false);
	return 0;
}

struct record *record_batch_slot(struct record_batch *b)
{
	record_clear(&b->recs[b->n]);
	b->error[b->n][0] = '\0';
	return &b->recs[b->n];
}

int record_batch_push(struct record_batch *b, struct record_origin from)
{
	int size[2] = { 0, 0 };
	if (b->check && b->check(b->ctx, &b->recs[b->n], size) < 0)
		return error_prefix("%s: %s %lld", from.input, from.unit, from.index);
	if (b->n > 0 && (size[0] != b->size[0] || size[1] != b->size[1])) {
		/* The new record waits in slot n while the others run, then
		 * starts the next batch from slot 0. */
		int last = b->n;
		if (run_batch(b) < 0)
			return -1;
		struct record tmp = b->recs[0];
		b->recs[0] = b->recs[last];
		b->recs[last] = tmp;
	}
	b->size[0] = size[0];
	b->size[1] = size[1];
	b->origin[b->n++] = from;
	return b->n == b->cap ? run_batch(b) : 0;
}

int record_batch_read(struct record_batch *b, struct ts_reader *rd, const char *name)
{
	int rc;
	while ((rc = ts_read(rd, record_batch_slot(b))) > 0)
		if ((rc = record_batch_push(b, (struct record_origin){ name, "record", ts_record_index(rd) })) < 0)
			break;
	return rc;
}

static int read_file(struct record_batch *b, const char *path)
{
	struct ts_reader *rd = ts_open(path);
	if (!rd)
		return -1;
	int rc = record_batch_read(b, rd, strcmp(path, "-") ? path : "stdin");
	ts_close(rd);
	return rc;
}

int record_batch_read_files(struct record_batch *b, int nfiles, char **files)
{
	if (nfiles == 0)
		return read_file(b, "-");
	for (int i = 0; i < nfiles; i++)
		if (read_file(b, files[i]) < 0)
			return -1;
	return 0;
}

int record_batch_finish(struct record_batch *b)
{
	if (run_batch(b) < 0)
		return -1;
	report_progress(b, true);
	return 0;
}

void *batch_buffer_grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return p;
	*cap = need;
	return xrealloc(p, need * elem);
}

int record_batch_filter(int cap, bool progress, int (*check)(void *ctx, const struct record *r, int size[2]),
                        int (*run)(void *ctx, struct record_batch *b), void *ctx, int nfiles, char **files)
{
	struct ts_writer *out = ts_writer_fd(1, "stdout");
	struct record_batch b;
	record_batch_init(&b, cap, out, progress);
	b.check = check;
	b.run = run;
	b.ctx = ctx;
	int rc = record_batch_read_files(&b, nfiles, files) < 0 || record_batch_finish(&b) < 0 ? -1 : 0;
	if (ts_writer_close(out) < 0)
		rc = -1;
	record_batch_free(&b);
	return rc;
}
