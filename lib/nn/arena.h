/* Activation memory for one step: a bump allocator over backend memory.
 *
 * Layers take their outputs and saved values from an arena during the forward
 * pass and keep the pointers for the backward pass; nn_arena_reset() frees
 * everything at once. The first step may grow the arena in chunks; reset then
 * merges them into one block of the high-water size, so later steps allocate
 * nothing. */
#ifndef KNND_NN_ARENA_H
#define KNND_NN_ARENA_H

#include <stddef.h>

struct nn_arena_chunk;

struct nn_arena {
	struct nn_arena_chunk *chunks; /* newest first */
	size_t used, high_water;       /* bytes, over all chunks */
};

/* A float buffer of n elements (64-byte aligned, contents undefined). */
float *nn_arena_floats(struct nn_arena *a, size_t n);
/* The same, zero-filled (for gradients, which backward ops accumulate into). */
float *nn_arena_zeros(struct nn_arena *a, size_t n);
/* Raw bytes (e.g. int32 ids, uint8 masks). */
void *nn_arena_bytes(struct nn_arena *a, size_t bytes);
void nn_arena_reset(struct nn_arena *a);
void nn_arena_free(struct nn_arena *a);

#endif
