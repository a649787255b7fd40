#include "stream/record.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"

void value_free(struct value *v)
{
	switch (v->kind) {
	case V_STR: case V_BIN: case V_RAW:
		free(v->str.ptr);
		break;
	case V_TENSOR:
		tensor_free(&v->t);
		break;
	default:
		break;
	}
	memset(v, 0, sizeof *v);
}

void value_copy(struct value *dst, const struct value *src)
{
	*dst = *src;
	switch (src->kind) {
	case V_STR: case V_BIN: case V_RAW:
		dst->str.ptr = xmalloc(src->str.len + 1);
		memcpy(dst->str.ptr, src->str.ptr, src->str.len);
		dst->str.ptr[src->str.len] = 0;
		break;
	case V_TENSOR:
		tensor_copy(&dst->t, &src->t);
		break;
	default:
		break;
	}
}

void record_clear(struct record *r)
{
	for (int i = 0; i < r->n; i++) {
		free(r->fields[i].key);
		value_free(&r->fields[i].v);
	}
	r->n = 0;
}

void record_free(struct record *r)
{
	record_clear(r);
	free(r->fields);
	r->fields = NULL;
	r->cap = 0;
}

static struct field *find(const struct record *r, const char *key)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->fields[i].key, key))
			return &r->fields[i];
	return NULL;
}

struct value *record_get(const struct record *r, const char *key)
{
	struct field *f = find(r, key);
	return f ? &f->v : NULL;
}

struct tensor *record_tensor(const struct record *r, const char *key)
{
	struct value *v = record_get(r, key);
	return v && v->kind == V_TENSOR ? &v->t : NULL;
}

const char *record_str(const struct record *r, const char *key)
{
	struct value *v = record_get(r, key);
	return v && v->kind == V_STR ? v->str.ptr : NULL;
}

int record_int(const struct record *r, const char *key, int64_t *out)
{
	struct value *v = record_get(r, key);
	if (!v)
		return -1;
	if (v->kind == V_INT && !(v->is_unsigned && v->u > INT64_MAX)) {
		*out = v->i;
		return 0;
	}
	if (v->kind == V_FLOAT && v->f == floor(v->f) && fabs(v->f) < 9.2e18) {
		*out = (int64_t)v->f;
		return 0;
	}
	return -1;
}

void record_remove(struct record *r, const char *key)
{
	struct field *f = find(r, key);
	if (!f)
		return;
	free(f->key);
	value_free(&f->v);
	int i = (int)(f - r->fields);
	memmove(f, f + 1, sizeof *f * (r->n - i - 1));
	r->n--;
}

/* The slot for key: the existing field (value freed) or a new one at the end. */
static struct value *slot(struct record *r, const char *key)
{
	struct field *f = find(r, key);
	if (f) {
		value_free(&f->v);
		return &f->v;
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 8;
		r->fields = xrealloc(r->fields, sizeof *r->fields * r->cap);
	}
	f = &r->fields[r->n++];
	f->key = xstrdup(key);
	memset(&f->v, 0, sizeof f->v);
	return &f->v;
}

void record_set_value(struct record *r, const char *key, struct value *v)
{
	struct value *s = slot(r, key);
	*s = *v;
	memset(v, 0, sizeof *v);
}

void record_set_nil(struct record *r, const char *key)
{
	slot(r, key)->kind = V_NIL;
}

void record_set_bool(struct record *r, const char *key, bool b)
{
	struct value *v = slot(r, key);
	v->kind = V_BOOL;
	v->b = b;
}

void record_set_int(struct record *r, const char *key, int64_t i)
{
	struct value *v = slot(r, key);
	v->kind = V_INT;
	v->i = i;
}

void record_set_float(struct record *r, const char *key, double f)
{
	struct value *v = slot(r, key);
	v->kind = V_FLOAT;
	v->f = f;
}

void record_set_strn(struct record *r, const char *key, const char *s, size_t len)
{
	char *copy = xstrndup(s, len); /* s may be the value being replaced */
	struct value *v = slot(r, key);
	v->kind = V_STR;
	v->str.ptr = copy;
	v->str.len = len;
}

void record_set_str(struct record *r, const char *key, const char *s)
{
	record_set_strn(r, key, s, strlen(s));
}

void record_set_tensor(struct record *r, const char *key, struct tensor *t)
{
	struct value *v = slot(r, key);
	v->kind = V_TENSOR;
	v->t = *t;
	memset(t, 0, sizeof *t);
}

struct tensor *record_new_tensor(struct record *r, const char *key, enum dtype dt,
                                 int ndim, const int64_t *shape)
{
	struct tensor t;
	tensor_alloc(&t, dt, ndim, shape);
	record_set_tensor(r, key, &t);
	return record_tensor(r, key);
}
