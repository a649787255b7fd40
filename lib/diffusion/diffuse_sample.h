/* Sampling token grids from the discrete backbone (what `diffuse sample`
 * runs): VQ-Diffusion's reverse chain.
 *
 *   x_{T-1} = all [MASK]; for t = T-1 .. 0:
 *     log x0 = md_predict_start(dtx_forward(x_t, t, cond))
 *     with guidance g != 1: the same for the null condition (zeros), then
 *       md_guidance (u + g (c - u) on the x0 log-probabilities)
 *     truncation r < 1: md_truncate_mass
 *     x_{t-1} ~ md_q_posterior(log x0, x_t, t)   (Gumbel-max, md_sample)
 *
 * With fewer steps than T the chain visits md_sample_steps' time steps and
 * jumps with md_q_posterior_skip. At t = 0 the posterior is the x0
 * prediction itself, so the last draw is the sample. The Gumbel noise of a row comes from Philox keyed by the
 * seed and counted by the row's id (its place in the input stream) and the
 * step, so a record's sample does not depend on the batch it was in. */
#ifndef KNND_DIFFUSION_DIFFUSE_SAMPLE_H
#define KNND_DIFFUSION_DIFFUSE_SAMPLE_H

#include <stdint.h>

#include "diffusion/discrete_transformer.h"
#include "diffusion/mask_diffusion.h"
#include "nn/arena.h"

struct diffuse_sample_config {
	uint64_t seed;
	float truncation; /* kept probability mass ('top<r>r'); >= 1: none */
	float guidance;   /* classifier-free scale; 1: the conditional model alone */
	int steps;        /* reverse steps, 1 .. T (0: T); fewer skip (md_sample_steps) */
};

struct diffuse_sampler {
	struct dtx *m;
	struct md_schedule sched;
	struct diffuse_sample_config cfg;
	struct nn_arena arena;
	size_t cap_rows, cap_cond;
	int32_t *xt, *t;
	float *logits, *log_x0, *log_uncond, *log_xt, *log_p, *uniform, *zeros;
};

int diffuse_sampler_init(struct diffuse_sampler *s, struct dtx *m, const struct diffuse_sample_config *cfg);
void diffuse_sampler_free(struct diffuse_sampler *s);

/* Samples tokens [B, L] for host conditions cond [B, S, D] with valid
 * [B, S] (NULL: all); row b's noise is counted by row_id[b]. 0 or -1. */
int diffuse_sample(struct diffuse_sampler *s, const float *cond, const uint8_t *valid, int B, int S,
                   const int64_t *row_id, int32_t *tokens);

/* Replaces m's weights by the EMA weights that training keeps in the
 * checkpoint's state file beside weights_path (tensors "ema.NAME").
 * 0 or -1 (errorf, e.g. a run trained without EMA). */
int diffuse_load_ema(struct dtx *m, const char *weights_path);

#endif
