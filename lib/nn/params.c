/* The parameter registry (see params.h). */
#include "nn/params.h"

#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "nn/ops.h"
#include "nn/philox.h"

/* Offsets are multiples of this many floats (64 bytes: a cache line, and
 * aligned for any vector load). */
#define PARAM_ALIGN 16

int nn_params_add(struct nn_params *p, const char *name, int ndim, const int64_t *shape)
{
	if (p->data)
		die("parameter '%s' registered after the parameters were allocated", name);
	if (ndim < 0 || ndim > NN_PARAM_MAX_DIMS)
		die("parameter '%s' has %d dimensions (at most %d)", name, ndim, NN_PARAM_MAX_DIMS);
	if (nn_params_find(p, name) >= 0)
		die("parameter '%s' registered twice", name);
	size_t numel = 1;
	for (int d = 0; d < ndim; d++) {
		if (shape[d] < 0 || (shape[d] && numel > SIZE_MAX / 4 / (size_t)shape[d]))
			die("parameter '%s' has a bad shape", name);
		numel *= (size_t)shape[d];
	}
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 64;
		p->items = xrealloc(p->items, (size_t)p->cap * sizeof *p->items);
	}
	struct nn_param *it = &p->items[p->n];
	memset(it, 0, sizeof *it);
	it->name = xstrdup(name);
	it->ndim = ndim;
	for (int d = 0; d < ndim; d++)
		it->shape[d] = shape[d];
	it->offset = p->total;
	it->numel = numel;
	p->total += (numel + PARAM_ALIGN - 1) / PARAM_ALIGN * PARAM_ALIGN;
	return p->n++;
}

void nn_params_alloc(struct nn_params *p, int with_grad)
{
	/* At least one block, so that an empty model still has valid pointers. */
	size_t bytes = (p->total ? p->total : PARAM_ALIGN) * sizeof(float);
	if (!p->data) {
		p->data = nn->alloc(bytes);
		if (!p->data)
			die("out of %s memory for %zu bytes of parameters", nn->name, bytes);
		nn->zero(p->data, bytes);
	}
	if (with_grad && !p->grad) {
		p->grad = nn->alloc(bytes);
		if (!p->grad)
			die("out of %s memory for %zu bytes of gradients", nn->name, bytes);
		nn->zero(p->grad, bytes);
	}
}

void nn_params_free(struct nn_params *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->items[i].name);
	free(p->items);
	if (p->data)
		nn->free(p->data);
	if (p->grad)
		nn->free(p->grad);
	memset(p, 0, sizeof *p);
}

int nn_params_find(const struct nn_params *p, const char *name)
{
	for (int i = 0; i < p->n; i++)
		if (!strcmp(p->items[i].name, name))
			return i;
	return -1;
}

float *nn_param(const struct nn_params *p, int index)
{
	return p->data + p->items[index].offset;
}

float *nn_param_grad(const struct nn_params *p, int index)
{
	return p->grad ? p->grad + p->items[index].offset : NULL;
}

void nn_params_zero_grad(struct nn_params *p)
{
	if (p->grad)
		nn->zero(p->grad, p->total * sizeof(float));
}

/* Initial values come from their own Philox streams: the counter's third word
 * is the parameter index and its fourth a tag no random op uses (ops count
 * with words 0-1 only), so parameter i's values depend on (seed, i) alone and
 * never repeat another parameter's or an op's numbers. */
#define INIT_STREAM_TAG 0x696e6974u /* "init" */

static struct philox_block init_block(uint64_t seed, int index, size_t block)
{
	return philox4x32_10((uint32_t)block, (uint32_t)((uint64_t)block >> 32), (uint32_t)index,
	                     INIT_STREAM_TAG, (uint32_t)seed, (uint32_t)(seed >> 32));
}

/* Fills host memory element by element, then uploads once. */
static void init_param(struct nn_params *p, int index, int normal, float a, float b, uint64_t seed)
{
	const struct nn_param *it = &p->items[index];
	float *host = xmalloc((it->numel ? it->numel : 1) * sizeof *host);
	size_t nblocks = (it->numel + 3) / 4;
	#pragma omp parallel for schedule(static) if (it->numel > (1 << 16))
	for (size_t k = 0; k < nblocks; k++) {
		struct philox_block blk = init_block(seed, index, k);
		float v[4];
		if (normal) {
			philox_box_muller(philox_uniform(blk.w[0]), philox_uniform(blk.w[1]), &v[0], &v[1]);
			philox_box_muller(philox_uniform(blk.w[2]), philox_uniform(blk.w[3]), &v[2], &v[3]);
			for (int j = 0; j < 4; j++)
				v[j] = a * v[j]; /* a = std */
		} else {
			for (int j = 0; j < 4; j++)
				v[j] = a + (b - a) * philox_uniform(blk.w[j]); /* a = lo, b = hi */
		}
		for (size_t j = 0; j < 4 && 4 * k + j < it->numel; j++)
			host[4 * k + j] = v[j];
	}
	nn->upload(nn_param(p, index), host, it->numel * sizeof *host);
	free(host);
}

void nn_param_init_normal(struct nn_params *p, int index, float std, uint64_t seed)
{
	init_param(p, index, 1, std, 0, seed);
}

void nn_param_init_uniform(struct nn_params *p, int index, float lo, float hi, uint64_t seed)
{
	init_param(p, index, 0, lo, hi, seed);
}

void nn_param_init_const(struct nn_params *p, int index, float value)
{
	const struct nn_param *it = &p->items[index];
	float *host = xmalloc((it->numel ? it->numel : 1) * sizeof *host);
	for (size_t i = 0; i < it->numel; i++)
		host[i] = value;
	nn->upload(nn_param(p, index), host, it->numel * sizeof *host);
	free(host);
}
