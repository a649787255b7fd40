/* The JSON view of a tensor stream: one record per line, so that grep, jq
 * and awk can read and edit a pipeline (ts-cat writes it, ts-pack reads it).
 *
 * Scalars map to JSON scalars, str to strings, bin to {"$bin": base64},
 * raw arrays and maps to JSON arrays and objects. A tensor is either a
 * summary {"dtype","shape","min","max","mean"} (not readable back) or in full
 * {"dtype","shape","data": [flat C-order list]}. Non-finite floats are the
 * strings "nan", "inf" and "-inf". */
#ifndef KNND_STREAM_JSON_H
#define KNND_STREAM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/msgpack.h"
#include "stream/record.h"
#include "stream/stream.h"

/* JSON nests at most this deep inside a record, so that whatever ts-pack
 * accepts the stream reader accepts too. */
#define JSON_MAX_DEPTH TS_MAX_DEPTH

struct json_options {
	bool full;          /* tensors with all their data, not a summary */
	int nkeys;          /* when > 0, only these fields (in record order) */
	char *const *keys;
};

/* Appends the record as one JSON object and a newline to `out`. Returns 0,
 * or -1 (errorf) if a raw value inside it is malformed. */
int json_write_record(struct mp_buf *out, const struct record *r, const struct json_options *opt);
/* Appends one value as JSON (no newline). */
int json_write_value(struct mp_buf *out, const struct value *v, bool full);
/* Appends s as a quoted JSON string; invalid UTF-8 bytes become \u00XX. */
void json_write_string(struct mp_buf *out, const char *s, size_t len);

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one:
 * overlong forms, surrogates and code points past U+10FFFF are invalid. */
int utf8_sequence_length(const uint8_t *s, size_t avail);

/* Parses one JSON object (len bytes, no NUL needed) into r, which is
 * cleared first. Returns 0, or -1 with errorf("column N: problem"). */
int json_read_record(const char *text, size_t len, struct record *r);
/* Parses any JSON document (objects nested at most JSON_MAX_DEPTH) into one
 * msgpack value appended to out, for reading config files and headers; walk
 * it with mp_map_find. Returns 0, or -1 with errorf("column N: problem"). */
int json_to_msgpack(const char *text, size_t len, struct mp_buf *out);
/* Whether a line holds only JSON whitespace (skipped by ts-pack). */
bool json_is_blank(const char *text, size_t len);

#endif
