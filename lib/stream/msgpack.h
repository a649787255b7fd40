/* The msgpack wire format: one encoder and one header decoder, shared by the
 * stream reader/writer and by anything that builds or walks raw values. */
#ifndef KNND_STREAM_MSGPACK_H
#define KNND_STREAM_MSGPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mp_type {
	MP_NIL, MP_BOOL, MP_INT, MP_UINT, MP_FLOAT32, MP_FLOAT64,
	MP_STR, MP_BIN, MP_ARRAY, MP_MAP, MP_EXT,
};

/* One decoded header. For STR/BIN/EXT `len` bytes of payload follow it; for
 * ARRAY/MAP `len` elements (pairs) follow. */
struct mp_header {
	enum mp_type type;
	int8_t ext_type;
	union { bool b; int64_t i; uint64_t u; double f; uint64_t len; };
};

/* Decodes the header at p (avail bytes). Returns its size in bytes, 0 if more
 * bytes are needed, or -1 for a byte that starts no msgpack value (0xc1). */
int mp_decode_header(const uint8_t *p, size_t avail, struct mp_header *h);
const char *mp_type_name(enum mp_type t);

/* Walks a complete value in memory: on success advances *p past it. Returns
 * 0, or -1 (errorf) if it is truncated, invalid or nested deeper than
 * max_depth. */
int mp_skip_value(const uint8_t **p, const uint8_t *end, int max_depth);

/* In the map that starts at *p, finds the value of string key `key`: on
 * success points *p at that value and returns 0; returns -1 if the value at
 * *p is not a map, is malformed, or lacks the key. */
int mp_map_find(const uint8_t **p, const uint8_t *end, const char *key);
/* The non-negative integer (at most 2^30; an integral float or a bool
 * counts) at `key` of the map at `map`, for model configs. An absent key
 * leaves *v alone, or is an error when `required`. 0 or -1 (errorf). */
int mp_map_int(const uint8_t *map, const uint8_t *end, const char *key, int *v, int required);

/* A growable output buffer. */
struct mp_buf {
	uint8_t *data;
	size_t len, cap;
};

void mp_buf_reserve(struct mp_buf *b, size_t extra);
void mp_buf_free(struct mp_buf *b);
void mp_put_bytes(struct mp_buf *b, const void *p, size_t n);
void mp_put_nil(struct mp_buf *b);
void mp_put_bool(struct mp_buf *b, bool v);
void mp_put_int(struct mp_buf *b, int64_t v);
void mp_put_uint(struct mp_buf *b, uint64_t v);
void mp_put_f32(struct mp_buf *b, float v);
void mp_put_f64(struct mp_buf *b, double v);
void mp_put_str_header(struct mp_buf *b, uint64_t len);
void mp_put_bin_header(struct mp_buf *b, uint64_t len);
void mp_put_str(struct mp_buf *b, const char *s, size_t len);
void mp_put_array_header(struct mp_buf *b, uint32_t n);
void mp_put_map_header(struct mp_buf *b, uint32_t n);
void mp_put_ext_header(struct mp_buf *b, int8_t type, uint32_t len);
/* Re-encodes any decoded header in its smallest form. */
void mp_put_header(struct mp_buf *b, const struct mp_header *h);

#endif
