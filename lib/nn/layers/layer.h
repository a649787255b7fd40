/* What every composed layer shares: parameter naming.
 *
 * A layer registers its tensors under "<prefix>.<name>" (the checkpoint's
 * naming, e.g. "encoder.layers.0.self_attn.q_proj.weight"), and a layer made
 * of sublayers hands each one the prefix "<prefix>.<sublayer>". An empty
 * prefix registers bare names. */
#ifndef KNND_NN_LAYERS_LAYER_H
#define KNND_NN_LAYERS_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "nn/params.h"

#define NN_NAME_MAX 256

/* Registers "<prefix>.<name>" with the given shape; returns its index. */
int nn_layer_param(struct nn_params *p, const char *prefix, const char *name, int ndim,
                   const int64_t *shape);

/* Writes "<prefix>.<name>" into buf (NN_NAME_MAX bytes) and returns buf. */
const char *nn_layer_name(char *buf, const char *prefix, const char *name);

#endif
