/* A tensor as it travels in a stream: dtype, shape and raw C-order bytes. */
#ifndef KNND_STREAM_TENSOR_H
#define KNND_STREAM_TENSOR_H

#include <stddef.h>
#include <stdint.h>

enum dtype {
	DT_BOOL,
	DT_UINT8,
	DT_INT8,
	DT_UINT16,
	DT_INT16,
	DT_UINT32,
	DT_INT32,
	DT_UINT64,
	DT_INT64,
	DT_FLOAT16,
	DT_BFLOAT16,
	DT_FLOAT32,
	DT_FLOAT64,
	DT_COUNT
};

#define TENSOR_MAX_DIMS 8

struct tensor {
	enum dtype dtype;
	int ndim;
	int64_t shape[TENSOR_MAX_DIMS];
	void *data;    /* owned; nbytes long, little-endian, C order */
	size_t nbytes;
};

/* numpy's name ("float32"), and back; dtype_from_name returns -1 if unknown. */
const char *dtype_name(enum dtype dt);
int dtype_from_name(const char *name, size_t len);
size_t dtype_size(enum dtype dt);
int dtype_is_float(enum dtype dt);
int dtype_is_signed(enum dtype dt); /* signed integer types */

/* Number of elements, or -1 if the shape's product overflows size_t. */
int64_t shape_numel(int ndim, const int64_t *shape);
int64_t tensor_numel(const struct tensor *t);

/* Allocates a zeroed tensor of the given shape; dies on overflow/OOM. */
void tensor_alloc(struct tensor *t, enum dtype dt, int ndim, const int64_t *shape);
void tensor_free(struct tensor *t);
/* Deep copy. */
void tensor_copy(struct tensor *dst, const struct tensor *src);

/* Element i converted to double, for any dtype (summaries, JSON, tests). */
double tensor_get(const struct tensor *t, size_t i);
/* Stores v (rounded/saturated as C conversion would) into element i. */
void tensor_set(struct tensor *t, size_t i, double v);

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bfloat16_to_float(uint16_t b);
uint16_t float_to_bfloat16(float f);

#endif
