/* Discrete mask-and-replace diffusion over token grids (VQ-Diffusion,
 * Gu et al. 2021; kNN-Diffusion section 6.1, eq. 7): the schedule, the
 * forward process q, the posterior, the x0-parametrised reverse step, the
 * variational-bound training loss with VQ-Diffusion's auxiliary x0 loss and
 * its gradient, truncation, classifier-free guidance and the sampling loop.
 *
 * Conventions (../shared/golden/vqdiffusion/README.md): K codebook tokens,
 * C = K + 1 classes, the mask token is class K. Log-probability tensors are
 * [B, C, L] (class axis in the middle), natural log, clamped to [-70, 0];
 * a one-hot is 0 / log(1e-30). t is 0-based: t = 0 .. T-1 index the T
 * transitions. The network outputs K logits per position ([B, K, L]); the
 * mask class gets a constant -70.
 *
 * Everything here is host memory and plain C loops over [B, C, L]
 * (cheap next to the transformer); randomness is explicit: every sampler
 * takes the uniform noise it uses, so tests replay the reference's draws,
 * and callers draw it from Philox (nn/philox.h) for determinism. */
#ifndef KNND_DIFFUSION_MASK_DIFFUSION_H
#define KNND_DIFFUSION_MASK_DIFFUSION_H

#include <stdint.h>

#define MD_LOG_MIN (-70.0f)

/* The alpha1 schedule, as DiffusionTransformer's buffers: computed in
 * double, stored as float. Arrays of T (per step) and T+1 (cumulative,
 * entry T the identity used for t = -1). */
struct md_schedule {
	int T, K;
	float *at, *bt, *ct;                  /* [T] */
	float *att, *btt, *ctt;               /* [T+1] */
	float *log_at, *log_bt, *log_ct, *log_1_min_ct;              /* [T] */
	float *log_cumprod_at, *log_cumprod_bt, *log_cumprod_ct,
	      *log_1_min_cumprod_ct;                                  /* [T+1] */
};

struct md_loss_config {
	float aux_weight;      /* auxiliary x0 loss weight (VQ-Diffusion: 5e-4) */
	int adaptive_aux;      /* weight the aux loss by (1 - t/T) + 1 */
	float mask_weight[2];  /* weight of masked / unmasked positions ([1, 1]) */
};

/* VQ-Diffusion's defaults: T = 100 steps, att 0.99999 -> 0.000009,
 * ctt 0.000009 -> 0.99999. Returns 0 or -1 (errorf). */
int md_schedule_init(struct md_schedule *s, int T, int K);
void md_schedule_free(struct md_schedule *s);

/* log one-hot [B, C, L] of tokens [B, L] (each in [0, C)). */
void md_log_onehot(const struct md_schedule *s, const int32_t *tokens, int B, int L, float *log_x);

/* log q(x_t | x_0) for per-row t (t = -1 gives the identity): [B, C, L]. */
void md_q_pred(const struct md_schedule *s, const float *log_x0, const int32_t *t, int B, int L, float *out);
/* The single transition t applied to the distribution log_x. */
void md_q_pred_one_timestep(const struct md_schedule *s, const float *log_x, const int32_t *t, int B, int L,
                            float *out);
/* log q(x_{t-1} | x_t, x_0) with x_0 given as a distribution log_x0 (the
 * model's prediction, or a one-hot); clamped to [-70, 0]. */
void md_q_posterior(const struct md_schedule *s, const float *log_x0, const float *log_xt, const int32_t *t,
                    int B, int L, float *out);
/* log_softmax of the network's logits [B, K, L] (in double) with the -70
 * mask row appended, clamped: [B, C, L]. */
void md_predict_start(const struct md_schedule *s, const float *logits, int B, int L, float *log_x0);
/* Keeps, per position, the top classes whose preceding probability mass is
 * < r (always the top one); the rest become -70 ('top<r>r'). */
void md_truncate_mass(const struct md_schedule *s, float *log_x0, int B, int L, float r);
/* Keeps the n largest per position ('top<n>p'). */
void md_truncate_topn(const struct md_schedule *s, float *log_x0, int B, int L, int n);
/* Classifier-free guidance on x0 log-probabilities (mask row excluded):
 * r = u + g (c - u), renormalised over K, clamped, mask row -70. Writes
 * into cond. */
void md_guidance(const struct md_schedule *s, float *cond, const float *uncond, int B, int L, float g);
/* Gumbel-max sample per position of log_p [B, C, L] with the given uniform
 * noise [B, C, L]: argmax_c(-log(-log(u + 1e-30) + 1e-30) + log_p). */
void md_sample(const struct md_schedule *s, const float *log_p, const float *uniform, int B, int L,
               int32_t *tokens);

/* Per-position KL(p || q) and sum_c exp(log_x) * log_q, [B, L]. */
void md_kl(const struct md_schedule *s, const float *log_p, const float *log_q, int B, int L, float *out);

/* The training loss for x0 [B, L] at steps t [B] with x_t [B, L] already
 * sampled (md_q_pred + md_sample), given the network's logits [B, K, L]:
 * VQ-Diffusion's _train_loss with pt = 1/T (uniform t), summed over the
 * rows and divided by B*L. dlogits (may be NULL) receives d loss / d
 * logits [B, K, L] (assigned, not accumulated). Returns the loss. Optional
 * per-row terms go to terms (NULL, or [B] arrays named as the golden
 * README: kl_loss, kl_aux_loss, vb_loss). */
struct md_loss_terms {
	float *kl_loss, *kl_aux_loss, *vb_loss;
};
float md_train_loss(const struct md_schedule *s, const struct md_loss_config *c, const int32_t *x0,
                    const int32_t *xt, const int32_t *t, const float *logits, int B, int L, float *dlogits,
                    struct md_loss_terms *terms);

/* sum_c exp(log_x) * log_q per position, [B, L] (VQ-Diffusion's
 * log_categorical; the decoder NLL is its negative). */
void md_log_categorical(const struct md_schedule *s, const float *log_x, const float *log_q, int B, int L,
                        float *out);

/* Skip-step sampling: reverse steps that jump from x_t to x_{t-skip}.
 *
 * Mask-and-replace transitions compose into one of the same kind: from
 * step s to step t (s < t, s = -1 meaning x_0) a token is kept with
 * a = att[t] / att[s], masked with c = 1 - (1 - ctt[t]) / (1 - ctt[s]),
 * and replaced by each other token with b = (1 - a - c) / K (att[-1] = 1,
 * ctt[-1] = 0; skip = 1 gives the per-step at, ct, bt). The posterior
 * q(x_s | x_t, x_0) is then q_posterior with that transition in place of
 * step t and the cumulative q_pred at s in place of t - 1:
 *   log q(x_s = j | x_t, x_0) = log sum_k x_0(k) q(x_s = j | x_0 = k)
 *                               q(x_t | x_s = j) / q(x_t | x_0 = k).
 * t is per row (0 <= t < T), 1 <= skip <= t + 1 (skip = t + 1 goes to
 * x_0 itself); skip = 1 equals md_q_posterior bit for bit. Returns 0 or
 * -1 (errorf) for a t or skip out of range. */
int md_q_posterior_skip(const struct md_schedule *s, const float *log_x0, const float *log_xt, const int32_t *t,
                        int skip, int B, int L, float *out);

/* The n time steps of an n-step sampling chain over a T-step schedule:
 * steps[n + 1], steps[0] = T - 1 down to steps[n] = -1 (x_0), spaced as
 * evenly as T allows; step i runs at t = steps[i] with skip = steps[i] -
 * steps[i + 1]. n = T gives T-1, ..., 0, -1. Returns 0 or -1 (errorf)
 * unless 1 <= n <= T. */
int md_sample_steps(int T, int n, int32_t *steps);

/* One reverse step: log_p [B, C, L] = md_q_posterior_skip(log_x0,
 * log_xt, t, skip), then tokens [B, L] = md_sample(log_p, uniform).
 * Returns 0 or -1 (errorf). */
int md_p_step(const struct md_schedule *s, const float *log_x0, const float *log_xt, const int32_t *t, int skip,
              const float *uniform, int B, int L, float *log_p, int32_t *tokens);

#endif
