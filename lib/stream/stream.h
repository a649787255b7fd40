/* Reading and writing tensor streams (formats/tensor-stream.md).
 *
 * A reader pulls one record at a time from a file descriptor or a memory
 * buffer, in memory bounded by the largest record. Every malformed input is
 * reported as "NAME: record N: problem" through error_message(). */
#ifndef KNND_STREAM_STREAM_H
#define KNND_STREAM_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "stream/record.h"

/* Hard limits that turn absurd headers into errors instead of allocations. */
#define TS_MAX_FIELDS 4096            /* keys per record */
#define TS_MAX_KEY_LEN 1024           /* bytes per key */
#define TS_MAX_DEPTH 64               /* nesting of arrays/maps in a raw value */
#define TS_MAX_BYTES ((uint64_t)1 << 36) /* 64 GiB: one str/bin/tensor */

struct ts_reader;

/* Opens a file, or stdin for NULL or "-". NULL on error (errorf). */
struct ts_reader *ts_open(const char *path);
/* Reads from an fd that the caller keeps; `name` is used in messages. */
struct ts_reader *ts_open_fd(int fd, const char *name);
/* As ts_open_fd, for a caller that already read the first n bytes of the
 * input (to sniff its format): those bytes are read first. */
struct ts_reader *ts_open_fd_prefixed(int fd, const char *name, const void *prefix, size_t n);
/* Reads from memory the caller keeps alive until ts_close. */
struct ts_reader *ts_open_mem(const void *data, size_t len, const char *name);

/* Reads the next record into r (cleared first). Returns 1 for a record,
 * 0 at a clean end of stream, -1 on error. */
int ts_read(struct ts_reader *rd, struct record *r);
/* Index of the last record read (0-based), for messages. */
int64_t ts_record_index(const struct ts_reader *rd);
const char *ts_name(const struct ts_reader *rd);
void ts_close(struct ts_reader *rd);

/* Reads the named inputs one after another as one stream ("-" = stdin; no
 * names = stdin). Errors name the file. */
struct ts_inputs;
struct ts_inputs *ts_inputs_open(int nfiles, char **files);
int ts_inputs_read(struct ts_inputs *in, struct record *r);
void ts_inputs_close(struct ts_inputs *in);

struct ts_writer;

/* Writes to an fd the caller keeps (usually 1). */
struct ts_writer *ts_writer_fd(int fd, const char *name);
/* Appends to a growable memory buffer (tests, fuzzing). */
struct ts_writer *ts_writer_mem(void);
/* The bytes written so far to a memory writer. */
const void *ts_writer_mem_data(struct ts_writer *w, size_t *len);

int ts_write(struct ts_writer *w, const struct record *r);
/* Writes one msgpack value (any kind) — building block for raw output. */
int ts_write_value(struct ts_writer *w, const struct value *v);
int ts_flush(struct ts_writer *w);
/* Flushes and frees; returns -1 if anything failed to write. */
int ts_writer_close(struct ts_writer *w);

#endif
