/* Training data as an endless, reproducible sequence of records.
 *
 * A trainer reads its data many times over. record_cycle gives the input
 * files one after another, over and over; stdin, which cannot be re-read,
 * is first copied to an unlinked file under $TMPDIR that is then re-read
 * the same way. Every record passes the caller's check as it is read (and
 * once more when stdin is spooled), which may also drop the fields the
 * trainer does not need, so that the spool and the buffers hold only
 * those.
 *
 * record_shuffle draws from a buffer of n records over the cycle: draw k
 * takes a random slot (Philox keyed by the seed, counted by k) and refills
 * it from the cycle. The order depends only on the seed and the data, and
 * a resumed run gets back to where it was by replaying its draws
 * (record_shuffle_skip) without looking at any record.
 *
 * Memory is bounded by the buffer size, whatever the data's size. Errors
 * name the input and the record: "INPUT: record N: problem". */
#ifndef KNND_STREAM_RECORD_CYCLE_H
#define KNND_STREAM_RECORD_CYCLE_H

#include <stdint.h>

#include "stream/record.h"

struct ts_reader;

/* Checks a record just read and may trim it. Returns 0, or -1 (errorf;
 * the cycle puts "INPUT: record N: " in front). */
typedef int (*record_check_fn)(void *ctx, struct record *r);

struct record_cycle {
	char **files;
	int nfiles, cur;
	int spool_fd;            /* stdin's copy, or -1 */
	struct ts_reader *rd;
	int64_t in_cycle;        /* records read since the first file was opened last */
	record_check_fn check;
	void *ctx;
	const char *what;        /* what a record is, for "no ... records": "image", "training" */
	const char *tool;        /* names the spool file */
};

/* Opens the cycle over files (none, or the one "-": stdin, spooled now,
 * which reads all of stdin). `what` and `tool` must outlive the cycle.
 * Returns 0 or -1 (errorf). */
int record_cycle_open(struct record_cycle *c, char **files, int nfiles, record_check_fn check, void *ctx,
                      const char *what, const char *tool);
/* The next record into r (checked). 0 or -1 (errorf; also when no input
 * holds any record). */
int record_cycle_next(struct record_cycle *c, struct record *r);
/* One pass over the inputs from the start, before training reads them
 * (e.g. to learn a vocabulary): 1 with the next record, 0 after the last
 * one, when the cycle is back at its start, or -1 (errorf). Call it only
 * at the cycle's start. */
int record_cycle_pass(struct record_cycle *c, struct record *r);
void record_cycle_close(struct record_cycle *c);

struct record_shuffle {
	struct record_cycle *src;
	struct record *slot;
	int n;
	uint64_t key;
	int64_t draws; /* draws taken so far: the position to save */
};

/* Fills a buffer of n records from src. 0 or -1 (errorf). */
int record_shuffle_open(struct record_shuffle *sh, struct record_cycle *src, int n, uint64_t seed);
/* Draw number sh->draws: moves the drawn record into *out (its old
 * contents are freed) and refills its slot. *spare (may be NULL) gets a
 * second random word of this draw, for the caller's own choice (a flip).
 * 0 or -1 (errorf). */
int record_shuffle_draw(struct record_shuffle *sh, struct record *out, uint32_t *spare);
/* Replays `draws` draws without handing out records (resuming). */
int record_shuffle_skip(struct record_shuffle *sh, int64_t draws);
void record_shuffle_close(struct record_shuffle *sh);

#endif
