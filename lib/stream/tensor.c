#include "stream/tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"

static const struct { const char *name; size_t size; } dtypes[DT_COUNT] = {
	[DT_BOOL] = { "bool", 1 },       [DT_UINT8] = { "uint8", 1 },
	[DT_INT8] = { "int8", 1 },       [DT_UINT16] = { "uint16", 2 },
	[DT_INT16] = { "int16", 2 },     [DT_UINT32] = { "uint32", 4 },
	[DT_INT32] = { "int32", 4 },     [DT_UINT64] = { "uint64", 8 },
	[DT_INT64] = { "int64", 8 },     [DT_FLOAT16] = { "float16", 2 },
	[DT_BFLOAT16] = { "bfloat16", 2 }, [DT_FLOAT32] = { "float32", 4 },
	[DT_FLOAT64] = { "float64", 8 },
};

const char *dtype_name(enum dtype dt) { return dtypes[dt].name; }
size_t dtype_size(enum dtype dt) { return dtypes[dt].size; }

int dtype_is_float(enum dtype dt)
{
	return dt == DT_FLOAT16 || dt == DT_BFLOAT16 || dt == DT_FLOAT32 || dt == DT_FLOAT64;
}

int dtype_is_signed(enum dtype dt)
{
	return dt == DT_INT8 || dt == DT_INT16 || dt == DT_INT32 || dt == DT_INT64;
}

int dtype_from_name(const char *name, size_t len)
{
	for (int i = 0; i < DT_COUNT; i++)
		if (strlen(dtypes[i].name) == len && !memcmp(dtypes[i].name, name, len))
			return i;
	return -1;
}

int64_t shape_numel(int ndim, const int64_t *shape)
{
	uint64_t n = 1;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0)
			return -1;
		if (shape[i] && n > (uint64_t)INT64_MAX / (uint64_t)shape[i])
			return -1;
		n *= (uint64_t)shape[i];
	}
	return (int64_t)n;
}

int64_t tensor_numel(const struct tensor *t)
{
	return shape_numel(t->ndim, t->shape);
}

void tensor_alloc(struct tensor *t, enum dtype dt, int ndim, const int64_t *shape)
{
	if (ndim < 0 || ndim > TENSOR_MAX_DIMS)
		die("tensor of rank %d exceeds the limit of %d", ndim, TENSOR_MAX_DIMS);
	int64_t n = shape_numel(ndim, shape);
	if (n < 0 || (uint64_t)n > SIZE_MAX / dtype_size(dt))
		die("tensor shape is too large");
	t->dtype = dt;
	t->ndim = ndim;
	if (ndim > 0) /* a scalar's shape may be NULL */
		memcpy(t->shape, shape, sizeof *shape * ndim);
	t->nbytes = (size_t)n * dtype_size(dt);
	t->data = xcalloc(t->nbytes ? t->nbytes : 1, 1);
}

void tensor_free(struct tensor *t)
{
	free(t->data);
	t->data = NULL;
	t->nbytes = 0;
}

void tensor_copy(struct tensor *dst, const struct tensor *src)
{
	*dst = *src;
	dst->data = xmalloc(src->nbytes);
	memcpy(dst->data, src->data, src->nbytes);
}

float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	if (exp == 0x1f)
		bits = sign | 0x7f800000u | (man << 13);
	else if (exp)
		bits = sign | ((exp + 112) << 23) | (man << 13);
	else if (!man)
		bits = sign;
	else { /* subnormal: renormalise */
		int e = -1;
		do { man <<= 1; e++; } while (!(man & 0x400));
		bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t float_to_half(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
	uint32_t ax = x & 0x7fffffffu;
	if (ax >= 0x7f800000u) /* inf or nan */
		return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0);
	if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow */
		return sign | 0x7c00;
	if (ax < 0x38800000u) { /* subnormal or zero: round to nearest even in units of 2^-24 */
		float a;
		memcpy(&a, &ax, 4);
		return sign | (uint16_t)nearbyintf(a * 16777216.0f);
	}
	uint32_t r = ax + 0xfff + ((ax >> 13) & 1); /* round to nearest even */
	return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

float bfloat16_to_float(uint16_t b)
{
	uint32_t bits = (uint32_t)b << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t float_to_bfloat16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((x >> 16) | 0x40);
	return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

double tensor_get(const struct tensor *t, size_t i)
{
	const void *p = (const char *)t->data + i * dtype_size(t->dtype);
	switch (t->dtype) {
	case DT_BOOL: return *(const uint8_t *)p != 0;
	case DT_UINT8: return *(const uint8_t *)p;
	case DT_INT8: return *(const int8_t *)p;
	case DT_UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
	case DT_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
	case DT_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
	case DT_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
	case DT_UINT64: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
	case DT_INT64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
	case DT_FLOAT16: { uint16_t v; memcpy(&v, p, 2); return half_to_float(v); }
	case DT_BFLOAT16: { uint16_t v; memcpy(&v, p, 2); return bfloat16_to_float(v); }
	case DT_FLOAT32: { float v; memcpy(&v, p, 4); return v; }
	case DT_FLOAT64: { double v; memcpy(&v, p, 8); return v; }
	default: return 0;
	}
}

/* Integer stores saturate instead of invoking undefined conversions. */
static double clampd(double v, double lo, double hi)
{
	if (isnan(v))
		return 0;
	return v < lo ? lo : v > hi ? hi : v;
}

void tensor_set(struct tensor *t, size_t i, double v)
{
	void *p = (char *)t->data + i * dtype_size(t->dtype);
	switch (t->dtype) {
	case DT_BOOL: *(uint8_t *)p = v != 0; break;
	case DT_UINT8: *(uint8_t *)p = (uint8_t)clampd(v, 0, UINT8_MAX); break;
	case DT_INT8: *(int8_t *)p = (int8_t)clampd(v, INT8_MIN, INT8_MAX); break;
	case DT_UINT16: { uint16_t x = (uint16_t)clampd(v, 0, UINT16_MAX); memcpy(p, &x, 2); break; }
	case DT_INT16: { int16_t x = (int16_t)clampd(v, INT16_MIN, INT16_MAX); memcpy(p, &x, 2); break; }
	case DT_UINT32: { uint32_t x = (uint32_t)clampd(v, 0, UINT32_MAX); memcpy(p, &x, 4); break; }
	case DT_INT32: { int32_t x = (int32_t)clampd(v, INT32_MIN, INT32_MAX); memcpy(p, &x, 4); break; }
	case DT_UINT64: { uint64_t x = (uint64_t)clampd(v, 0, 18446744073709549568.0); memcpy(p, &x, 8); break; }
	case DT_INT64: { int64_t x = (int64_t)clampd(v, -9223372036854775808.0, 9223372036854774784.0); memcpy(p, &x, 8); break; }
	case DT_FLOAT16: { uint16_t x = float_to_half((float)v); memcpy(p, &x, 2); break; }
	case DT_BFLOAT16: { uint16_t x = float_to_bfloat16((float)v); memcpy(p, &x, 2); break; }
	case DT_FLOAT32: { float x = (float)v; memcpy(p, &x, 4); break; }
	case DT_FLOAT64: memcpy(p, &v, 8); break;
	default: break;
	}
}
