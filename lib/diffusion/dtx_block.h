/* The pieces of the discrete backbone's transformer (discrete_transformer.h):
 * the timestep-conditioned adaptive layer norm and one block.
 *
 *   adaln(x, t) = layernorm(x) * (1 + scale_t) + shift_t
 *   [scale_t, shift_t] = linear(silu(emb[t]))       ("<prefix>.emb",
 *                                                    "<prefix>.linear")
 *
 *   block(x, t, y):  x += attn1(adaln ln1(x, t))            self-attention
 *                    x += attn2(adaln ln1_1(x, t), y)       cross-attention
 *                    x += mlp(ln2(x))                       GELU
 *
 * VQ-Diffusion's names (ln1, ln1_1, attn1, attn2, ln2); the attention
 * projections and the MLP are lib/nn/layers'. */
#ifndef KNND_DIFFUSION_DTX_BLOCK_H
#define KNND_DIFFUSION_DTX_BLOCK_H

#include <stdint.h>

#include "nn/arena.h"
#include "nn/layers/attention.h"
#include "nn/layers/linear.h"
#include "nn/layers/mlp.h"
#include "nn/layers/norm.h"
#include "nn/params.h"

#define DTX_LN_EPS 1e-5f

struct dtx_adaln {
	int emb; /* [T, dim] timestep embedding table */
	struct nn_linear linear; /* dim -> 2 dim: scale, then shift */
	int dim;
};

struct dtx_adaln_act {
	const float *x;
	const int32_t *t;
	float *norm, *mean, *rstd; /* layernorm(x) without affine, and its statistics */
	float *temb, *temb_silu;   /* [B, dim] */
	struct nn_linear_act proj; /* proj.out: [B, 2 dim] */
	float *out;
	int B, T;
};

void dtx_adaln_init(struct dtx_adaln *l, struct nn_params *p, const char *prefix, int dim, int steps);
/* x [B, T, dim], t [B] (backend memory, kept until backward). */
float *dtx_adaln_forward(const struct dtx_adaln *l, const struct nn_params *p, struct nn_arena *a,
                         struct dtx_adaln_act *act, const float *x, const int32_t *t, int B, int T);
/* Accumulates into dx (NULL: not needed) and the parameter gradients. */
void dtx_adaln_backward(const struct dtx_adaln *l, const struct nn_params *p, struct nn_arena *a,
                        const struct dtx_adaln_act *act, float *dx, const float *dout);

struct dtx_block {
	struct dtx_adaln ln1, ln1_1;
	struct nn_mha attn1, attn2;
	struct nn_layernorm ln2;
	struct nn_mlp mlp;
	int dim;
};

struct dtx_block_act {
	struct dtx_adaln_act ln1, ln1_1;
	struct nn_mha_act attn1, attn2;
	struct nn_layernorm_act ln2;
	struct nn_mlp_act mlp;
	float *x1, *x2, *out; /* the residual stream after each branch */
	int B, T;
};

void dtx_block_init(struct dtx_block *b, struct nn_params *p, const char *prefix, int dim, int heads,
                    int mlp_hidden, int steps);
/* x [B, T, dim]; cond [B, S, dim] with cond_valid [B, S] (NULL: all). */
float *dtx_block_forward(const struct dtx_block *b, const struct nn_params *p, struct nn_arena *a,
                         struct dtx_block_act *act, const float *x, const int32_t *t, const float *cond,
                         const uint8_t *cond_valid, int B, int T, int S);
/* Accumulates into dx and dcond (either NULL: not needed) and into the
 * parameter gradients. */
void dtx_block_backward(const struct dtx_block *b, const struct nn_params *p, struct nn_arena *a,
                        const struct dtx_block_act *act, float *dx, float *dcond, const float *dout);

#endif
