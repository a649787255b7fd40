/* A record: one map of a tensor stream, as an ordered list of named values.
 *
 * Tools look up the fields they use and set the ones they produce. Every
 * other field stays in the record as read, so writing it out passes it
 * through untouched. */
#ifndef KNND_STREAM_RECORD_H
#define KNND_STREAM_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/tensor.h"

enum value_kind {
	V_NIL,
	V_BOOL,
	V_INT,    /* int64, or uint64 when is_unsigned */
	V_FLOAT,  /* double; is_f32 remembers a float32 on the wire */
	V_STR,    /* UTF-8, not NUL-terminated on the wire; we keep a NUL after it */
	V_BIN,    /* raw bytes */
	V_TENSOR,
	V_RAW,    /* any other msgpack value (arrays, nested maps), kept verbatim */
};

struct value {
	enum value_kind kind;
	bool is_unsigned, is_f32;
	union {
		bool b;
		int64_t i;
		uint64_t u;
		double f;
		struct { char *ptr; size_t len; } str;   /* V_STR, V_BIN, V_RAW bytes */
		struct tensor t;
	};
};

struct field {
	char *key;  /* NUL-terminated */
	struct value v;
};

struct record {
	struct field *fields;
	int n, cap;
};

#define RECORD_INIT { 0 }

/* Frees every value and empties the record, keeping its capacity. */
void record_clear(struct record *r);
void record_free(struct record *r);

/* NULL if absent. */
struct value *record_get(const struct record *r, const char *key);
/* Typed lookups: NULL (or the fallback) if absent or of another kind. */
struct tensor *record_tensor(const struct record *r, const char *key);
const char *record_str(const struct record *r, const char *key);
/* Integer value of an int field (or an integral float); returns 0 and sets
 * *out, or -1 if absent or not an integer. */
int record_int(const struct record *r, const char *key, int64_t *out);

/* Removes key if present. */
void record_remove(struct record *r, const char *key);

/* Setters replace an existing field of the same name in place (keeping the
 * field order) or append a new one. The record owns what it is given. */
void record_set_nil(struct record *r, const char *key);
void record_set_bool(struct record *r, const char *key, bool b);
void record_set_int(struct record *r, const char *key, int64_t i);
void record_set_float(struct record *r, const char *key, double f);
void record_set_str(struct record *r, const char *key, const char *s);
void record_set_strn(struct record *r, const char *key, const char *s, size_t len);
/* Takes ownership of t's data; t is left empty. */
void record_set_tensor(struct record *r, const char *key, struct tensor *t);
/* Allocates a zeroed tensor field and returns it for filling in. */
struct tensor *record_new_tensor(struct record *r, const char *key, enum dtype dt,
                                 int ndim, const int64_t *shape);
/* Takes ownership of v (a value built by hand, e.g. V_RAW). */
void record_set_value(struct record *r, const char *key, struct value *v);

void value_free(struct value *v);
void value_copy(struct value *dst, const struct value *src);

#endif
