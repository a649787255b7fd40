/* The training step driver (see optim.h). */
#include "nn/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"
#include "nn/ops.h"

struct nn_optim_config nn_optim_defaults(void)
{
	struct nn_optim_config c = {
		.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 1e-2f,
		.accum_steps = 1,
	};
	return c;
}

int64_t nn_default_warmup(int64_t steps)
{
	return steps / 20 < 1000 ? steps / 20 : 1000;
}

float nn_lr_at(const struct nn_optim_config *c, int64_t t)
{
	if (t < c->warmup_steps)
		return (float)((double)c->lr * (double)(t + 1) / (double)c->warmup_steps);
	if (c->decay_steps <= 0)
		return c->lr;
	if (t >= c->decay_steps)
		return c->min_lr;
	const double pi = 3.14159265358979323846;
	double ratio = (double)(t - c->warmup_steps) / (double)(c->decay_steps - c->warmup_steps);
	return (float)(c->min_lr + 0.5 * (1.0 + cos(pi * ratio)) * ((double)c->lr - c->min_lr));
}

static int check_config(const struct nn_optim_config *c)
{
	if (!(c->lr >= 0) || !(c->min_lr >= 0))
		return errorf("learning rates must be >= 0 (lr %g, min_lr %g)", c->lr, c->min_lr);
	if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1))
		return errorf("betas must be in [0, 1) (%g, %g)", c->beta1, c->beta2);
	if (!(c->eps >= 0) || !(c->weight_decay >= 0) || !(c->clip_norm >= 0))
		return errorf("eps, weight decay and clip norm must be >= 0");
	if (!(c->ema_decay >= 0 && c->ema_decay < 1))
		return errorf("EMA decay must be in [0, 1) (%g)", c->ema_decay);
	if (c->accum_steps < 1)
		return errorf("accumulation needs at least 1 micro-batch per step (%d)", c->accum_steps);
	if (c->warmup_steps < 0 || c->decay_steps < 0 ||
	    (c->decay_steps > 0 && c->decay_steps <= c->warmup_steps))
		return errorf("schedule: warm-up %lld steps, decay until step %lld (decay must end after warm-up)",
		              (long long)c->warmup_steps, (long long)c->decay_steps);
	return 0;
}

static float *alloc_zeroed(size_t floats, const char *what)
{
	size_t bytes = (floats ? floats : 1) * sizeof(float);
	float *p = nn->alloc(bytes);
	if (!p)
		die("out of %s memory for %zu bytes of %s", nn->name, bytes, what);
	nn->zero(p, bytes);
	return p;
}

int nn_optim_init(struct nn_optim *o, struct nn_params *p, const struct nn_optim_config *cfg)
{
	memset(o, 0, sizeof *o);
	if (check_config(cfg) < 0)
		return -1;
	if (!p->data || !p->grad)
		return errorf("the optimiser needs parameters allocated with gradients");
	o->cfg = *cfg;
	o->params = p;
	o->m = alloc_zeroed(p->total, "AdamW moments");
	o->v = alloc_zeroed(p->total, "AdamW moments");
	if (cfg->ema_decay > 0)
		o->ema = alloc_zeroed(p->total, "EMA weights");
	o->scratch = alloc_zeroed(1, "optimiser scratch");
	o->no_decay = xcalloc((size_t)(p->n ? p->n : 1), 1);
	return 0;
}

void nn_optim_free(struct nn_optim *o)
{
	if (o->m)
		nn->free(o->m);
	if (o->v)
		nn->free(o->v);
	if (o->ema)
		nn->free(o->ema);
	if (o->scratch)
		nn->free(o->scratch);
	free(o->no_decay);
	memset(o, 0, sizeof *o);
}

void nn_optim_set_decay(struct nn_optim *o, int index, int decay)
{
	o->no_decay[index] = !decay;
}

void nn_optim_decay_matrices_only(struct nn_optim *o)
{
	for (int i = 0; i < o->params->n; i++)
		o->no_decay[i] = o->params->items[i].ndim < 2;
}

/* The global L2 norm of the gradient buffer, after scaling by `scale`.
 * The alignment gaps between parameters hold zeros and add nothing. */
static float grad_norm(struct nn_optim *o, float scale)
{
	struct nn_params *p = o->params;
	float ss;
	nn->sum_squares(o->scratch, p->grad, p->total);
	nn->download(&ss, o->scratch, sizeof ss);
	return (float)(sqrt((double)ss) * scale);
}

/* AdamW over maximal runs of parameters that share a weight-decay setting.
 * A run spans from its first parameter's offset to the next run's, gaps
 * included: there weights, gradients and moments are all zero and stay so. */
static void adamw_all(struct nn_optim *o, float lr, float grad_scale, int t)
{
	struct nn_params *p = o->params;
	const struct nn_optim_config *c = &o->cfg;
	for (int i = 0; i < p->n;) {
		int j = i + 1;
		while (j < p->n && o->no_decay[j] == o->no_decay[i])
			j++;
		size_t begin = i == 0 ? 0 : p->items[i].offset;
		size_t end = j < p->n ? p->items[j].offset : p->total;
		nn->adamw_update(p->data + begin, p->grad + begin, o->m + begin, o->v + begin, end - begin,
		                 lr, c->beta1, c->beta2, c->eps, o->no_decay[i] ? 0.0f : c->weight_decay,
		                 grad_scale, t);
		i = j;
	}
}

enum nn_step_result nn_optim_step(struct nn_optim *o)
{
	struct nn_params *p = o->params;
	const struct nn_optim_config *c = &o->cfg;
	if (++o->micro_step < c->accum_steps)
		return NN_STEP_ACCUMULATED;
	o->micro_step = 0;

	/* The gradient is the mean over micro-batches, clipped like
	 * clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied when < 1. */
	float grad_scale = 1.0f / (float)c->accum_steps;
	float norm = grad_norm(o, grad_scale);
	o->last_grad_norm = norm;
	if (!isfinite(norm)) {
		o->skipped_steps++;
		nn_params_zero_grad(p);
		return NN_STEP_SKIPPED;
	}
	if (c->clip_norm > 0) {
		float coef = c->clip_norm / (norm + 1e-6f);
		if (coef < 1.0f)
			grad_scale *= coef;
	}
	if (o->ema && o->step == 0)
		nn->scale(o->ema, p->data, 1.0f, p->total);
	float lr = nn_lr_at(c, o->step);
	o->last_lr = lr;
	adamw_all(o, lr, grad_scale, (int)(o->step + 1));
	if (o->ema)
		nn->ema_update(o->ema, p->data, p->total, c->ema_decay);
	nn_params_zero_grad(p);
	o->step++;
	return NN_STEP_TAKEN;
}
