/* Pre-LN transformer block, optionally with cross-attention to a condition:
 *
 *     x += self_attn(layer_norm1(x))
 *     x += cross_attn(layer_norm_cross(x), cond)     (when cond_dim > 0)
 *     x += mlp(layer_norm2(x))
 *
 * Sublayer names follow HF CLIP's encoder layer (layer_norm1, self_attn,
 * layer_norm2, mlp.fc1, mlp.fc2), so CLIP's weights load as they are; the
 * cross-attention adds layer_norm_cross and cross_attn. */
#ifndef KNND_NN_LAYERS_TRANSFORMER_H
#define KNND_NN_LAYERS_TRANSFORMER_H

#include <stdint.h>

#include "nn/arena.h"
#include "nn/layers/attention.h"
#include "nn/layers/mlp.h"
#include "nn/layers/norm.h"
#include "nn/params.h"

struct nn_block_config {
	int dim, heads, mlp_dim;
	enum nn_act act;  /* the MLP's activation */
	int causal;       /* causal self-attention */
	int cond_dim;     /* width of the condition tokens; 0: no cross-attention */
	float ln_eps;
};

struct nn_block {
	struct nn_block_config cfg;
	struct nn_layernorm ln1, ln_cross, ln2;
	struct nn_mha self_attn, cross_attn;
	struct nn_mlp mlp;
};

struct nn_block_act {
	const float *x;
	struct nn_layernorm_act ln1, ln_cross, ln2;
	struct nn_mha_act self_attn, cross_attn;
	struct nn_mlp_act mlp;
	float *x1, *x2; /* the residual stream after each branch but the last */
	float *out;
	const float *cond;
	int B, T, Tc;
};

void nn_block_init(struct nn_block *b, struct nn_params *p, const char *prefix,
                   const struct nn_block_config *cfg);

/* x [B, T, dim]; cond [B, Tc, cond_dim] with cond_valid [B, Tc] (NULL: all
 * valid) are ignored without cross-attention. Returns out [B, T, dim]. */
float *nn_block_forward(const struct nn_block *b, const struct nn_params *p, struct nn_arena *a,
                        struct nn_block_act *act, const float *x, int B, int T, const float *cond,
                        const uint8_t *cond_valid, int Tc);

/* Accumulates into dx and dcond (either NULL: not needed) and into the
 * parameter gradients. */
void nn_block_backward(const struct nn_block *b, const struct nn_params *p, struct nn_arena *a,
                       const struct nn_block_act *act, float *dx, float *dcond, const float *dout);

#endif
