/* Multi-head attention with its projections, as HF names them:
 * "<prefix>.{q,k,v,out}_proj.{weight,bias}", weights [out, in].
 *
 * Queries come from x [B, Tq, dim]; keys and values from kv [B, Tk, kv_dim],
 * which is x itself for self-attention and the condition for
 * cross-attention. The fused attention op (nn->attention_forward) never
 * materialises the score matrix; it keeps one log-sum-exp per query row. */
#ifndef KNND_NN_LAYERS_ATTENTION_H
#define KNND_NN_LAYERS_ATTENTION_H

#include <stdint.h>

#include "nn/arena.h"
#include "nn/layers/linear.h"
#include "nn/ops.h"
#include "nn/params.h"

struct nn_mha {
	struct nn_linear q_proj, k_proj, v_proj, out_proj;
	int dim, kv_dim, heads;
	int causal; /* mask keys after the query (self-attention only) */
};

struct nn_mha_act {
	struct nn_linear_act q, k, v, out;
	float *heads_out; /* attention output before out_proj: [B, Tq, dim] */
	float *lse;       /* [B, heads, Tq] */
	struct nn_attention geom;
};

/* kv_dim is dim for self-attention. dim must be a multiple of heads. */
void nn_mha_init(struct nn_mha *m, struct nn_params *p, const char *prefix, int dim, int kv_dim, int heads,
                 int causal);

/* key_valid [B, Tk] marks keys that may be attended (NULL: all); it must
 * stay alive until the backward pass. Returns out [B, Tq, dim]. */
float *nn_mha_forward(const struct nn_mha *m, const struct nn_params *p, struct nn_arena *a,
                      struct nn_mha_act *act, const float *x, const float *kv, const uint8_t *key_valid,
                      int B, int Tq, int Tk);

/* Accumulates into dx and dkv (either NULL: not needed; for self-attention
 * pass the same buffer twice) and into the parameter gradients. */
void nn_mha_backward(const struct nn_mha *m, const struct nn_params *p, struct nn_arena *a,
                     const struct nn_mha_act *act, float *dx, float *dkv, const float *dout);

#endif
