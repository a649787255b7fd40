/* A model's parameters: named tensors in one flat float32 buffer.
 *
 * Layers register their tensors by name (the checkpoint's naming) while the
 * model is built, keep the returned index, and look up pointers once the
 * buffer exists. Because every parameter lives in one allocation, gradients,
 * optimiser moments and EMA weights are flat buffers of the same layout, and
 * optimiser steps are single passes over them. */
#ifndef KNND_NN_PARAMS_H
#define KNND_NN_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#define NN_PARAM_MAX_DIMS 4

struct nn_param {
	char *name;
	int ndim;
	int64_t shape[NN_PARAM_MAX_DIMS];
	size_t offset, numel; /* in floats, within the flat buffer */
};

struct nn_params {
	struct nn_param *items;
	int n, cap;
	size_t total;  /* floats */
	float *data;   /* backend memory, after nn_params_alloc */
	float *grad;   /* same layout; NULL unless allocated with gradients */
};

/* Registers a tensor before allocation; returns its index. Offsets are
 * 16-float aligned. Dies on a duplicate name (a bug in the model code). */
int nn_params_add(struct nn_params *p, const char *name, int ndim, const int64_t *shape);
/* Allocates data (zeroed) and, if with_grad, grad (zeroed). */
void nn_params_alloc(struct nn_params *p, int with_grad);
void nn_params_free(struct nn_params *p);

/* Index of a name, or -1. */
int nn_params_find(const struct nn_params *p, const char *name);
float *nn_param(const struct nn_params *p, int index);
float *nn_param_grad(const struct nn_params *p, int index);
void nn_params_zero_grad(struct nn_params *p);

/* Initialisers (deterministic, counter-based: (seed, index) fixes the values). */
void nn_param_init_normal(struct nn_params *p, int index, float std, uint64_t seed);
void nn_param_init_uniform(struct nn_params *p, int index, float lo, float hi, uint64_t seed);
void nn_param_init_const(struct nn_params *p, int index, float value);

#endif
