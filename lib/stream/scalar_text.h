/* The text of a scalar field, for tools that build strings or keys from
 * records: a string as it is, a number in decimal, a bool as true/false. */
#ifndef KNND_STREAM_SCALAR_TEXT_H
#define KNND_STREAM_SCALAR_TEXT_H

#include "stream/msgpack.h"
#include "stream/record.h"

/* Appends v's text to out. Numbers read the same as in ts-cat's JSON
 * (3, 2.5, 1e+20, nan). Returns 0, or -1 (errorf "is a tensor, not a
 * scalar" and the like) for nil, bytes, tensors and nested values. */
int scalar_text(const struct value *v, struct mp_buf *out);

#endif
