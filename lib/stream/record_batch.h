/* Records gathered into batches for a model pass, then written in order.
 *
 * A tool that runs a model reads records into the batch's slots; when the
 * batch is full, or a record of another size comes (a model pass takes
 * inputs of one size: an image's H x W, a token grid's h x w), the caller's
 * `run` adds its fields to the pending records, which are then written in
 * their input order. Memory is bounded by `cap` records, whatever the
 * length of the stream. Progress goes to stderr every few seconds.
 *
 * Errors name the record: "INPUT: record N: problem", or "INPUT: line N:
 * problem" for a record made from a line of text. */
#ifndef KNND_STREAM_RECORD_BATCH_H
#define KNND_STREAM_RECORD_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "stream/record.h"

struct ts_reader;
struct ts_writer;

/* Where a record came from, for messages: "INPUT: UNIT N". */
struct record_origin {
	const char *input; /* outlives the batch (an argument, or "stdin") */
	const char *unit;  /* what index counts: "record" (from 0) or "line" (from 1) */
	long long index;
};

/* Room for the message of a record that failed within a batch: as much
 * as error_message() holds, so that nothing is cut that errorf kept. */
#define RECORD_BATCH_ERROR_MAX 1024

struct record_batch {
	int cap, n;
	struct record *recs;                    /* cap slots; recs[0..n) pending */
	struct record_origin *origin;           /* cap */
	char (*error)[RECORD_BATCH_ERROR_MAX];  /* cap: "" or why that record failed */
	int size[2];                            /* what the n records share */
	/* The caller's work. check (NULL: every record has one size): the
	 * size of record r, or -1 (errorf; the batch adds where r came from).
	 * run: adds fields to recs[0..n), or -1 (errorf) when the whole batch
	 * fails; a failure of one record is record_batch_fail. */
	int (*check)(void *ctx, const struct record *r, int size[2]);
	int (*run)(void *ctx, struct record_batch *b);
	void *ctx;
	struct ts_writer *out;
	/* progress on stderr, every few seconds */
	bool progress, tty, reported;
	long long done;
	double start, last_report;
};

void record_batch_init(struct record_batch *b, int cap, struct ts_writer *out, bool progress);
void record_batch_free(struct record_batch *b);

/* The cleared record that the next input record is read into. */
struct record *record_batch_slot(struct record_batch *b);
/* Takes the slot into the batch, running the pending records first if its
 * size differs and the batch when it is full. Returns 0 or -1 (errorf). */
int record_batch_push(struct record_batch *b, struct record_origin from);
/* Every record of an open reader; name is its input in messages and must
 * outlive the batch. 0 or -1 (errorf). */
int record_batch_read(struct record_batch *b, struct ts_reader *rd, const char *name);
/* Every record of the files, one after another ("-" or none: stdin).
 * The names must outlive the batch (program arguments). 0 or -1 (errorf). */
int record_batch_read_files(struct record_batch *b, int nfiles, char **files);
/* Runs what is pending and reports the final count. 0 or -1 (errorf). */
int record_batch_finish(struct record_batch *b);
/* A whole filter: every record of the files (none or "-": stdin) through
 * check and run (as in struct record_batch) in batches of cap, written to
 * stdout. 0 or -1 (errorf). */
int record_batch_filter(int cap, bool progress, int (*check)(void *ctx, const struct record *r, int size[2]),
                        int (*run)(void *ctx, struct record_batch *b), void *ctx, int nfiles, char **files);

/* For run: record i of the batch failed, with the calling thread's
 * error_message(); safe from the threads of a parallel loop over records. */
void record_batch_fail(struct record_batch *b, int i);
/* For run, after its per-record work and before the model pass: -1 (errorf,
 * naming where the record came from) for the first record of the batch that
 * failed, else 0. The batch checks again before writing, so a failed record
 * stops the run before any record of its batch is written. */
int record_batch_check(const struct record_batch *b);

/* p, reallocated to hold need elements of elem bytes if *cap (elements) is
 * less: a batch's buffers grow to the largest batch and stay there. */
void *batch_buffer_grow(void *p, size_t *cap, size_t need, size_t elem);

#endif
