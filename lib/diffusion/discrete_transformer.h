/* The denoising network of the discrete backbone: VQ-Diffusion's
 * text-to-image transformer, conditioned on k+1 CLIP embeddings (the
 * query's and its k nearest neighbours') instead of text tokens.
 *
 *   tokens [B, L] (L = h*w, ids in [0, K], K = mask)
 *     -> token embedding [K+1, W] + learned row and column embeddings
 *     -> depth x block:
 *          x += self_attn(adaln1(x, t))          full attention over tokens
 *          x += cross_attn(adaln2(x, t), cond)   over the condition sequence
 *          x += mlp(layernorm(x))                GELU, 4W hidden
 *     -> layernorm -> linear -> logits [B, K, L] (class axis in the middle,
 *        as mask_diffusion.h wants them; the mask class gets no logit)
 *
 * adaln(x, t) = layernorm(x) * (1 + scale_t) + shift_t (no affine of its
 * own), [scale_t, shift_t] = linear(silu(embedding(t))), one timestep
 * embedding table per AdaLN, as VQ-Diffusion's 'adalayernorm_abs'.
 *
 * The condition: cond [B, S, D] CLIP embeddings (S = k+1, slot 0 the
 * query's own embedding, slots 1..k its neighbours), each projected to W
 * (cond_proj), plus a learned slot embedding (row 0 for the query slot,
 * row 1 for neighbour slots); optionally (cond_self_attn, the paper's
 * section 6.5 variant i) one pre-LN self-attention layer over the S
 * projected embeddings before the blocks use them. cond_valid [B, S] (NULL:
 * all) masks slots, so fewer neighbours than trained with (-k at inference)
 * or none (--no-knn: S = 1) work. With cond_knn_mean the caller averages
 * the neighbours into slot 1 (diffuse_cond_from_record), the paper's
 * "mean of the kNN" way. The classifier-free null condition is
 * all-zero cond vectors, as the paper.
 *
 * Written once on the op interface (nn/ops.h) with lib/nn/layers; runs on
 * any backend. Parameters under these names (formats/diffuse-checkpoint.md):
 * content_emb.{emb,height_emb,width_emb}.weight, cond_proj.{weight,bias},
 * cond_slot.weight, cond_attn.{ln,attn.*} (optional),
 * blocks.N.{ln1,ln1_1}.{emb.weight,linear.weight,linear.bias},
 * blocks.N.attn1.{q,k,v,out}_proj.*, blocks.N.attn2.{q,k,v,out}_proj.*,
 * blocks.N.ln2.*, blocks.N.mlp.{fc1,fc2}.*, to_logits.{ln,linear}.* */
#ifndef KNND_DIFFUSION_DISCRETE_TRANSFORMER_H
#define KNND_DIFFUSION_DISCRETE_TRANSFORMER_H

#include <stdint.h>

#include "nn/arena.h"
#include "nn/params.h"
#include "nn/safetensors.h"

struct dtx_config {
	int K;               /* codebook size (logits per position); mask id = K */
	int h, w;            /* token grid */
	int width, depth, heads;
	int mlp_hidden;      /* 4 * width by default */
	int cond_dim;        /* CLIP embedding width D */
	int cond_slots;      /* S at training: k + 1 (1 for --no-knn) */
	int cond_self_attn;  /* section 6.5 variant i */
	int cond_knn_mean;   /* k > 0: the k neighbours enter as their mean,
	                      * one slot (cond_slots 2); 0: a slot each */
	int T;               /* diffusion steps (timestep embedding rows) */
};

/* From / to the JSON stored as the checkpoint's "config" metadata. */
int dtx_config_from_json(struct dtx_config *c, const char *json);
char *dtx_config_json(const struct dtx_config *c);
/* Sizes that this code can build (0), else -1 (errorf). */
int dtx_config_check(const struct dtx_config *c);

struct dtx_state; /* activations of the last forward pass */

struct dtx {
	struct dtx_config cfg;
	struct nn_params params;
	struct dtx_state *state;
};

/* Registers and allocates the parameters (zeroed; with gradients if
 * with_grad); dtx_init_random: normal(0, 0.02) weights, zero biases, unit
 * norms, deterministic in seed. */
void dtx_init(struct dtx *m, const struct dtx_config *cfg, int with_grad);
void dtx_init_random(struct dtx *m, uint64_t seed);
/* Config from the metadata, then the weights (F32/F16/BF16). 0 or -1. */
int dtx_load(struct dtx *m, const char *path, int with_grad);
void dtx_free(struct dtx *m);

/* Backend memory in and out, activations from arena a (kept for backward
 * until the arena is reset). tokens [B, L] int32, t [B] int32 in [0, T),
 * cond [B, S, D] float, cond_valid [B, S] (NULL: all slots valid; at least
 * one valid per row). Returns logits [B, K, L]. */
float *dtx_forward(struct dtx *m, struct nn_arena *a, const int32_t *tokens, const int32_t *t,
                   const float *cond, const uint8_t *cond_valid, int B, int S);
/* Accumulates parameter gradients from dlogits [B, K, L]. */
void dtx_backward(struct dtx *m, struct nn_arena *a, const float *dlogits);

#endif
