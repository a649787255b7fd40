/* Training data as an endless, reproducible sequence of records: see
 * record_cycle.h. */
#include "stream/record_cycle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/tool.h"
#include "nn/philox.h"
#include "stream/stream.h"

static const char *cycle_input_name(const struct record_cycle *c)
{
	return c->spool_fd >= 0 ? "stdin" : c->files[c->cur];
}

static int check_record(struct record_cycle *c, struct record *r, const char *name, long long index)
{
	if (c->check && c->check(c->ctx, r) < 0)
		return error_prefix("%s: record %lld", name, index);
	return 0;
}

/* Copies stdin to an unlinked file under $TMPDIR, checking each record. */
static int spool_stdin(struct record_cycle *c)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/%s.XXXXXX", dir && *dir ? dir : "/tmp", c->tool);
	int fd = mkstemp(path);
	if (fd < 0)
		return errorf("%s: cannot create a spool file for stdin: %s", path, strerror(errno));
	unlink(path);
	struct ts_reader *rd = ts_open(NULL);
	struct ts_writer *w = ts_writer_fd(fd, path);
	struct record r = RECORD_INIT;
	int rc;
	long long n = 0;
	while ((rc = ts_read(rd, &r)) > 0) {
		if ((rc = check_record(c, &r, "stdin", n++)) < 0 || (rc = ts_write(w, &r)) < 0)
			break;
	}
	record_free(&r);
	ts_close(rd);
	if (ts_writer_close(w) < 0 && rc == 0)
		rc = -1;
	if (rc == 0 && n == 0)
		rc = errorf("stdin: no %s records", c->what);
	if (rc < 0) {
		close(fd);
		return -1;
	}
	c->spool_fd = fd;
	return 0;
}

int record_cycle_open(struct record_cycle *c, char **files, int nfiles, record_check_fn check, void *ctx,
                      const char *what, const char *tool)
{
	*c = (struct record_cycle){ .files = files, .nfiles = nfiles, .spool_fd = -1, .check = check, .ctx = ctx,
	                            .what = what, .tool = tool };
	if (nfiles == 0 || (nfiles == 1 && !strcmp(files[0], "-"))) {
		c->nfiles = 1;
		return spool_stdin(c);
	}
	for (int i = 0; i < nfiles; i++)
		if (!strcmp(files[i], "-"))
			return errorf("stdin ('-') can only be the one input: files are re-read, stdin cannot be");
	return 0;
}

/* Opens the current input from its start. */
static int open_current(struct record_cycle *c)
{
	if (c->cur == 0)
		c->in_cycle = 0;
	if (c->spool_fd >= 0) {
		if (lseek(c->spool_fd, 0, SEEK_SET) < 0)
			return errorf("stdin's spool file: %s", strerror(errno));
		c->rd = ts_open_fd(c->spool_fd, "stdin");
	} else {
		c->rd = ts_open(c->files[c->cur]);
	}
	return c->rd ? 0 : -1;
}

/* The next record of the inputs in order: 1 with it, or 0 when the last
 * input has ended (the cycle is back at its first), or -1 (errorf). */
static int read_in_order(struct record_cycle *c, struct record *r)
{
	for (;;) {
		if (!c->rd && open_current(c) < 0)
			return -1;
		int rc = ts_read(c->rd, r);
		if (rc < 0)
			return -1;
		if (rc > 0) {
			c->in_cycle++;
			return check_record(c, r, cycle_input_name(c), (long long)ts_record_index(c->rd)) < 0 ? -1 : 1;
		}
		ts_close(c->rd);
		c->rd = NULL;
		c->cur = (c->cur + 1) % c->nfiles;
		if (c->cur == 0)
			return 0;
	}
}

int record_cycle_pass(struct record_cycle *c, struct record *r)
{
	return read_in_order(c, r);
}

int record_cycle_next(struct record_cycle *c, struct record *r)
{
	for (;;) {
		int rc = read_in_order(c, r);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
		if (c->in_cycle == 0)
			return errorf("%s: no %s records in the input", c->nfiles == 1 ? cycle_input_name(c) : "all files",
			              c->what);
	}
}

void record_cycle_close(struct record_cycle *c)
{
	if (c->rd)
		ts_close(c->rd);
	if (c->spool_fd >= 0)
		close(c->spool_fd);
	c->rd = NULL;
	c->spool_fd = -1;
}

/* ---- the shuffle buffer ---- */

#define DATA_STREAM 0x64617461ull

int record_shuffle_open(struct record_shuffle *sh, struct record_cycle *src, int n, uint64_t seed)
{
	*sh = (struct record_shuffle){ .src = src, .n = n, .key = seed ^ DATA_STREAM };
	sh->slot = xcalloc((size_t)n, sizeof *sh->slot);
	for (int i = 0; i < n; i++)
		if (record_cycle_next(src, &sh->slot[i]) < 0)
			return -1;
	return 0;
}

/* Draw k uses the stream's words 2k (the slot) and 2k + 1 (the spare). */
static uint32_t draw_word(const struct record_shuffle *sh, uint64_t e)
{
	return philox_block_at(sh->key, e).w[e & 3];
}

static int next_slot(const struct record_shuffle *sh, uint32_t *spare)
{
	uint64_t e = 2 * (uint64_t)sh->draws;
	if (spare)
		*spare = draw_word(sh, e + 1);
	return (int)(((uint64_t)draw_word(sh, e) * (uint64_t)sh->n) >> 32);
}

static int refill(struct record_shuffle *sh, int slot)
{
	sh->draws++;
	return record_cycle_next(sh->src, &sh->slot[slot]);
}

int record_shuffle_draw(struct record_shuffle *sh, struct record *out, uint32_t *spare)
{
	int i = next_slot(sh, spare);
	struct record drawn = sh->slot[i];
	sh->slot[i] = *out; /* its old fields are cleared by the refill's read */
	*out = drawn;
	return refill(sh, i);
}

int record_shuffle_skip(struct record_shuffle *sh, int64_t draws)
{
	for (int64_t k = 0; k < draws; k++)
		if (refill(sh, next_slot(sh, NULL)) < 0)
			return -1;
	return 0;
}

void record_shuffle_close(struct record_shuffle *sh)
{
	for (int i = 0; i < sh->n; i++)
		record_free(&sh->slot[i]);
	free(sh->slot);
	sh->slot = NULL;
}
