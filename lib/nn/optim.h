/* The training step driver: AdamW with decoupled weight decay, gradient
 * clipping by global norm, a warm-up + cosine learning-rate schedule, an
 * exponential moving average of the weights and gradient accumulation.
 *
 * Everything works on the flat buffers of a struct nn_params (params.h):
 * moments and EMA share the parameters' layout, so a step is one
 * nn->adamw_update per run of parameters with the same weight decay, one
 * nn->ema_update and one nn->sum_squares for the gradient norm.
 *
 * Use, per micro-batch: forward, backward (which accumulates into
 * params->grad), then nn_optim_step(). Every accum_steps-th call updates the
 * weights and zeroes the gradients; the others only count. Each micro-batch's
 * loss should be its own mean: the step scales the summed gradient by
 * 1/accum_steps, so N micro-batches of size B/N equal one batch of size B. */
#ifndef KNND_NN_OPTIM_H
#define KNND_NN_OPTIM_H

#include <stdint.h>

#include "nn/params.h"

struct nn_optim_config {
	/* torch.optim.AdamW: p -= lr*wd*p; m = b1*m + (1-b1)*g;
	 * v = b2*v + (1-b2)*g*g; p -= lr/(1-b1^t) * m / (sqrt(v/(1-b2^t)) + eps). */
	float lr; /* peak learning rate */
	float beta1, beta2, eps, weight_decay;
	/* Schedule over the optimiser step t = 0, 1, ... (see nn_lr_at). */
	int64_t warmup_steps; /* linear ramp up to lr over this many steps */
	int64_t decay_steps;  /* cosine from lr down to min_lr, ending at this step; 0: no decay */
	float min_lr;
	/* torch.nn.utils.clip_grad_norm_(max_norm = clip_norm); 0: off. */
	float clip_norm;
	/* ema = ema_decay*ema + (1-ema_decay)*param after each step; 0: no EMA. */
	float ema_decay;
	int accum_steps; /* micro-batches per optimiser step (>= 1) */
};

/* torch's AdamW defaults (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay
 * 1e-2), constant schedule, no clipping, no EMA, no accumulation. */
struct nn_optim_config nn_optim_defaults(void);

/* The learning rate of step t (0-based): lr*(t+1)/warmup during warm-up;
 * then min_lr + (lr-min_lr)*(1+cos(pi*(t-warmup)/(decay_steps-warmup)))/2
 * until decay_steps, min_lr after it; lr throughout if decay_steps is 0. */
float nn_lr_at(const struct nn_optim_config *c, int64_t t);

/* The trainers' warm-up when none is given: a twentieth of the run, at
 * most 1000 steps. */
int64_t nn_default_warmup(int64_t steps);

struct nn_optim {
	struct nn_optim_config cfg;
	struct nn_params *params;
	float *m, *v;          /* AdamW moments, backend memory, params' layout */
	float *ema;            /* EMA weights, or NULL when ema_decay is 0 */
	uint8_t *no_decay;     /* host: 1 for parameters without weight decay */
	int64_t step;          /* optimiser steps taken */
	int micro_step;        /* micro-batches accumulated towards the next step */
	int64_t skipped_steps; /* steps dropped because the gradient was not finite */
	float last_lr;         /* of the latest step */
	float last_grad_norm;  /* global norm of the latest step's gradient, before clipping */
	float *scratch;        /* backend scalar for sum_squares */
};

/* Allocates zeroed moments (and EMA) for parameters that already have their
 * data and gradients (nn_params_alloc(p, 1)). Returns 0, or -1 (errorf) for
 * a bad config. Weight decay applies to every parameter until changed. */
int nn_optim_init(struct nn_optim *o, struct nn_params *p, const struct nn_optim_config *cfg);
void nn_optim_free(struct nn_optim *o);

void nn_optim_set_decay(struct nn_optim *o, int index, int decay);
/* The usual rule: decay weight matrices and conv kernels (2+ dimensions),
 * not biases, norm scales or scalars. */
void nn_optim_decay_matrices_only(struct nn_optim *o);

enum nn_step_result {
	NN_STEP_ACCUMULATED, /* gradient kept for the next call */
	NN_STEP_TAKEN,       /* weights updated, gradients zeroed */
	NN_STEP_SKIPPED,     /* the gradient norm was inf/NaN: nothing updated, gradients zeroed */
};

/* Call once after each micro-batch's backward pass. On the last micro-batch
 * of a step: global norm of the (averaged) gradient, clipping factor, AdamW
 * at nn_lr_at(step), EMA update (the EMA starts as a copy of the weights
 * before the first step), gradients zeroed, step + 1. */
enum nn_step_result nn_optim_step(struct nn_optim *o);

#endif
