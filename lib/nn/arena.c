#include "nn/arena.h"

#include <stdlib.h>

#include "core/tool.h"
#include "nn/ops.h"

#define ALIGN 64
#define MIN_CHUNK (1u << 20)

struct nn_arena_chunk {
	struct nn_arena_chunk *next;
	char *base; /* backend memory */
	size_t cap, used;
	const struct nn_ops *ops; /* the backend that allocated it */
};

static struct nn_arena_chunk *new_chunk(size_t cap)
{
	struct nn_arena_chunk *c = xcalloc(1, sizeof *c);
	c->ops = nn;
	c->cap = cap;
	c->base = nn->alloc(cap);
	if (!c->base)
		die("out of %s memory allocating %zu bytes of activations", nn->name, cap);
	return c;
}

void *nn_arena_bytes(struct nn_arena *a, size_t bytes)
{
	size_t need = (bytes + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	struct nn_arena_chunk *c = a->chunks;
	if (!c || c->ops != nn || c->cap - c->used < need) {
		size_t cap = need > MIN_CHUNK ? need : MIN_CHUNK;
		if (c && cap < 2 * c->cap)
			cap = 2 * c->cap;
		struct nn_arena_chunk *n = new_chunk(cap);
		n->next = c;
		a->chunks = c = n;
	}
	void *p = c->base + c->used;
	c->used += need;
	a->used += need;
	if (a->used > a->high_water)
		a->high_water = a->used;
	return p;
}

float *nn_arena_floats(struct nn_arena *a, size_t n)
{
	return nn_arena_bytes(a, n * sizeof(float));
}

float *nn_arena_zeros(struct nn_arena *a, size_t n)
{
	float *p = nn_arena_floats(a, n);
	nn->zero(p, n * sizeof(float));
	return p;
}

static void free_chunks(struct nn_arena_chunk *c)
{
	while (c) {
		struct nn_arena_chunk *next = c->next;
		c->ops->free(c->base);
		free(c);
		c = next;
	}
}

void nn_arena_reset(struct nn_arena *a)
{
	struct nn_arena_chunk *c = a->chunks;
	if (c && (c->next || c->ops != nn)) {
		/* Several chunks: replace them by one that holds the high-water mark. */
		free_chunks(c);
		a->chunks = new_chunk(a->high_water);
	} else if (c) {
		c->used = 0;
	}
	a->used = 0;
}

void nn_arena_free(struct nn_arena *a)
{
	free_chunks(a->chunks);
	a->chunks = NULL;
	a->used = a->high_water = 0;
}
