/* Sampling token grids from the discrete backbone: see diffuse_sample.h. */
#include "diffusion/diffuse_sample.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"
#include "nn/checkpoint.h"
#include "nn/ops.h"
#include "nn/philox.h"
#include "nn/safetensors.h"

/* The Gumbel noise of the chain: C * L uniforms per (row id, step). */
#define CHAIN_STREAM 0x63686169ull

int diffuse_sampler_init(struct diffuse_sampler *s, struct dtx *m, const struct diffuse_sample_config *cfg)
{
	*s = (struct diffuse_sampler){ .m = m, .cfg = *cfg };
	return md_schedule_init(&s->sched, m->cfg.T, m->cfg.K);
}

void diffuse_sampler_free(struct diffuse_sampler *s)
{
	md_schedule_free(&s->sched);
	nn_arena_free(&s->arena);
	free(s->xt);
	free(s->t);
	free(s->logits);
	free(s->log_x0);
	free(s->log_uncond);
	free(s->log_xt);
	free(s->log_p);
	free(s->uniform);
	free(s->zeros);
}

static void grow(struct diffuse_sampler *s, int B, int S)
{
	size_t L = (size_t)s->m->cfg.h * s->m->cfg.w, C = (size_t)s->m->cfg.K + 1, K = (size_t)s->m->cfg.K;
	if ((size_t)B > s->cap_rows) {
		s->cap_rows = (size_t)B;
		s->xt = xrealloc(s->xt, (size_t)B * L * sizeof *s->xt);
		s->t = xrealloc(s->t, (size_t)B * sizeof *s->t);
		s->logits = xrealloc(s->logits, (size_t)B * K * L * sizeof(float));
		s->log_x0 = xrealloc(s->log_x0, (size_t)B * C * L * sizeof(float));
		s->log_uncond = xrealloc(s->log_uncond, (size_t)B * C * L * sizeof(float));
		s->log_xt = xrealloc(s->log_xt, (size_t)B * C * L * sizeof(float));
		s->log_p = xrealloc(s->log_p, (size_t)B * C * L * sizeof(float));
		s->uniform = xrealloc(s->uniform, (size_t)B * C * L * sizeof(float));
	}
	size_t ncond = (size_t)B * S * s->m->cfg.cond_dim;
	if (ncond > s->cap_cond) {
		s->cap_cond = ncond;
		s->zeros = xrealloc(s->zeros, ncond * sizeof *s->zeros);
		memset(s->zeros, 0, ncond * sizeof *s->zeros);
	}
}

static void *to_backend(struct nn_arena *a, const void *host, size_t bytes)
{
	void *p = nn_arena_bytes(a, bytes);
	nn->upload(p, host, bytes);
	return p;
}

/* log p(x0 | x_t, t, cond) into out [B, C, L]. */
static int predict_x0(struct diffuse_sampler *s, const float *cond, const uint8_t *valid, int B, int S,
                      float *out)
{
	const struct dtx_config *c = &s->m->cfg;
	size_t L = (size_t)c->h * c->w, D = (size_t)c->cond_dim;
	struct nn_arena *a = &s->arena;
	const int32_t *d_xt = to_backend(a, s->xt, (size_t)B * L * sizeof(int32_t));
	const int32_t *d_t = to_backend(a, s->t, (size_t)B * sizeof(int32_t));
	const float *d_cond = to_backend(a, cond, (size_t)B * S * D * sizeof(float));
	const uint8_t *d_valid = valid ? to_backend(a, valid, (size_t)B * S) : NULL;
	float *logits = dtx_forward(s->m, a, d_xt, d_t, d_cond, d_valid, B, S);
	if (logits)
		nn->download(s->logits, logits, (size_t)B * c->K * L * sizeof(float));
	nn_arena_reset(a);
	if (!logits)
		return -1;
	md_predict_start(&s->sched, s->logits, B, (int)L, out);
	return 0;
}

int diffuse_sample(struct diffuse_sampler *s, const float *cond, const uint8_t *valid, int B, int S,
                   const int64_t *row_id, int32_t *tokens)
{
	const struct dtx_config *c = &s->m->cfg;
	int L = c->h * c->w, C = c->K + 1, T = c->T, n = s->cfg.steps ? s->cfg.steps : T;
	int32_t *steps = xmalloc((size_t)(n + 1) * sizeof *steps);
	if (md_sample_steps(T, n, steps) < 0) {
		free(steps);
		return -1;
	}
	grow(s, B, S);
	for (size_t i = 0; i < (size_t)B * L; i++)
		s->xt[i] = c->K;
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		int t = steps[i], skip = steps[i] - steps[i + 1];
		for (int b = 0; b < B; b++)
			s->t[b] = t;
		if ((rc = predict_x0(s, cond, valid, B, S, s->log_x0)) < 0)
			break;
		if (s->cfg.guidance != 1.0f) {
			if ((rc = predict_x0(s, s->zeros, valid, B, S, s->log_uncond)) < 0)
				break;
			md_guidance(&s->sched, s->log_x0, s->log_uncond, B, L, s->cfg.guidance);
		}
		if (s->cfg.truncation < 1.0f)
			md_truncate_mass(&s->sched, s->log_x0, B, L, s->cfg.truncation);
		md_log_onehot(&s->sched, s->xt, B, L, s->log_xt);
		/* the noise of step t, whichever steps the chain takes */
		for (int b = 0; b < B; b++) {
			uint64_t base = ((uint64_t)row_id[b] * (uint64_t)T + (uint64_t)t) * (uint64_t)C * (uint64_t)L;
			philox_uniform_fill(s->uniform + (size_t)b * C * L, (size_t)C * L, s->cfg.seed ^ CHAIN_STREAM, base);
		}
		rc = md_p_step(&s->sched, s->log_x0, s->log_xt, s->t, skip, s->uniform, B, L, s->log_p, s->xt);
	}
	free(steps);
	if (rc == 0)
		memcpy(tokens, s->xt, (size_t)B * L * sizeof *tokens);
	return rc;
}

int diffuse_load_ema(struct dtx *m, const char *weights_path)
{
	char *state = nn_checkpoint_state_path(weights_path, 0);
	struct st_file *f = st_open(state);
	if (!f) {
		error_prefix("--ema needs the training state beside the weights");
		free(state);
		return -1;
	}
	struct nn_params *p = &m->params;
	float *host = NULL;
	size_t cap = 0;
	int rc = 0;
	for (int i = 0; i < p->n && rc == 0; i++) {
		char name[512];
		snprintf(name, sizeof name, "ema.%s", p->items[i].name);
		const struct st_entry *e = st_find(f, name);
		if (!e) {
			rc = errorf("%s: no EMA weights (tensor '%s' is missing; was the model trained with --ema 0?)", state,
			            name);
			break;
		}
		if (e->numel != p->items[i].numel) {
			rc = errorf("%s: tensor '%s' has %zu values, the model's has %zu", state, name, e->numel,
			            p->items[i].numel);
			break;
		}
		if (e->numel > cap) {
			cap = e->numel;
			host = xrealloc(host, cap * sizeof *host);
		}
		if ((rc = st_read_f32(e, host, e->numel)) < 0)
			error_prefix("%s", state);
		else
			nn->upload(nn_param(p, i), host, e->numel * sizeof *host);
	}
	free(host);
	st_close(f);
	free(state);
	return rc;
}
