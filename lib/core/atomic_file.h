/* Output files that appear whole or not at all.
 *
 * Data goes to a temporary file beside the target; atomic_commit() fsyncs and
 * renames it into place. Uncommitted files are removed by atomic_abort_all(),
 * which die() calls, so a failing tool never leaves a half-written output. */
#ifndef KNND_CORE_ATOMIC_FILE_H
#define KNND_CORE_ATOMIC_FILE_H

#include <stdio.h>

struct atomic_file {
	FILE *fp;       /* write here */
	char *path;     /* final name */
	char *tmp_path; /* where the bytes are until commit */
	struct atomic_file *next;
};

/* Opens a temporary file for `path`; returns 0 or -1 (errorf). */
int atomic_open(struct atomic_file *af, const char *path);
/* Flushes, syncs and renames into place; returns 0 or -1 (errorf). */
int atomic_commit(struct atomic_file *af);
/* Closes and removes the temporary file. */
void atomic_abort(struct atomic_file *af);
/* Aborts every file still open; safe to call from die(). */
void atomic_abort_all(void);

#endif
