/* Training the discrete backbone, and the records it reads: see
 * diffuse_train.h. */
#include "diffusion/diffuse_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"
#include "nn/ops.h"
#include "nn/philox.h"

/* ---- records ---- */

/* The float32 tensor `key` of r with ndim dims, or NULL (errorf). */
static const struct tensor *float_field(const struct record *r, const char *key, int ndim)
{
	const struct tensor *x = record_tensor(r, key);
	if (!x) {
		errorf("no '%s' tensor (%s)", key, record_get(r, key) ? "another kind of value" : "missing");
		return NULL;
	}
	if (x->dtype != DT_FLOAT32 || x->ndim != ndim) {
		errorf("'%s' is %s with %d dimensions, expected float32 with %d", key, dtype_name(x->dtype), x->ndim,
		       ndim);
		return NULL;
	}
	return x;
}

/* want is 0 (take have) or must equal have. */
static int agree(int *want, int64_t have, const char *what, const char *from)
{
	if (*want == 0) {
		*want = (int)have;
		return 0;
	}
	if (*want != have)
		return errorf("%s is %lld, %s %d", what, (long long)have, from, *want);
	return 0;
}

static int check_tokens(struct diffuse_record_spec *spec, const struct record *r)
{
	const struct tensor *x = record_tensor(r, "tokens");
	if (!x)
		return errorf("no 'tokens' tensor (%s)", record_get(r, "tokens") ? "another kind of value" : "missing");
	if (x->dtype != DT_INT32 || x->ndim != 2)
		return errorf("'tokens' is %s with %d dimensions, expected int32 [h, w]", dtype_name(x->dtype), x->ndim);
	if (x->shape[0] < 1 || x->shape[1] < 1)
		return errorf("'tokens' is empty");
	if ((spec->h && spec->h != x->shape[0]) || (spec->w && spec->w != x->shape[1]))
		return errorf("'tokens' is a %lldx%lld grid, the model's is %dx%d", (long long)x->shape[0],
		              (long long)x->shape[1], spec->h, spec->w);
	spec->h = (int)x->shape[0];
	spec->w = (int)x->shape[1];
	const int32_t *id = x->data;
	size_t n = (size_t)x->shape[0] * (size_t)x->shape[1];
	for (size_t i = 0; i < n; i++)
		if (id[i] < 0 || (spec->K && id[i] >= spec->K))
			return errorf("token %d at position %zu is outside the codebook [0, %d)", id[i], i, spec->K);
	return 0;
}

int diffuse_record_check(struct diffuse_record_spec *spec, struct record *r, int trim)
{
	if (spec->tokens && check_tokens(spec, r) < 0)
		return -1;
	const struct tensor *emb = float_field(r, "emb", 1);
	if (!emb || agree(&spec->D, emb->shape[0], "the 'emb' dimension", "the model's is") < 0)
		return -1;
	if (spec->k > 0 || (spec->k == 0 && spec->knn_exact) || spec->query_nearest) {
		const struct tensor *knn = float_field(r, "knn", 2);
		if (!knn)
			return -1;
		if (knn->shape[1] != spec->D)
			return errorf("'knn' rows have dimension %lld, 'emb' and the model have %d", (long long)knn->shape[1],
			              spec->D);
		if (spec->knn_exact) {
			if (spec->k == 0)
				spec->k = (int)knn->shape[0];
			if (knn->shape[0] < spec->k)
				return errorf("'knn' has %lld neighbours, %d are needed", (long long)knn->shape[0], spec->k);
		}
	}
	if (trim)
		for (int i = r->n - 1; i >= 0; i--) {
			const char *key = r->fields[i].key;
			if (strcmp(key, "tokens") && strcmp(key, "emb") && strcmp(key, "knn"))
				record_remove(r, key);
		}
	return 0;
}

int diffuse_cond_slots(const struct diffuse_record_spec *spec)
{
	return spec->k <= 0 ? 1 : spec->knn_mean ? 2 : 1 + spec->k;
}

void diffuse_cond_from_record(const struct diffuse_record_spec *spec, const struct record *r, float *cond,
                              uint8_t *valid)
{
	int D = spec->D, k = spec->k > 0 ? spec->k : 0, S = diffuse_cond_slots(spec);
	memset(cond, 0, (size_t)S * D * sizeof *cond);
	memset(valid, 0, (size_t)S);
	const struct tensor *knn = k || spec->query_nearest ? record_tensor(r, "knn") : NULL;
	int have = knn ? (int)knn->shape[0] : 0, n = have < k ? have : k;
	const float *rows = knn ? knn->data : NULL;
	memcpy(cond, spec->query_nearest && have ? rows : record_tensor(r, "emb")->data, (size_t)D * sizeof *cond);
	valid[0] = 1;
	for (int j = 0; j < n; j++) {
		float *slot = cond + (size_t)(spec->knn_mean ? 1 : 1 + j) * D;
		for (int d = 0; d < D; d++)
			slot[d] += rows[(size_t)j * D + d] / (spec->knn_mean ? (float)n : 1.0f);
		valid[spec->knn_mean ? 1 : 1 + j] = 1;
	}
}

/* ---- the trainer ---- */

/* Philox streams (keys are the seed xor these), each counted by
 * step * B + row. */
#define TIME_STREAM 0x74696d65ull    /* t per row */
#define NOISE_STREAM 0x6e6f6973ull   /* q_sample's uniforms, C * L per row */
#define DROP_STREAM 0x64726f70ull    /* condition drop per row */
#define QUERY_STREAM 0x71756572ull   /* query noise, D rounded up to 4 per row */

/* The query slot e [D] moved by a random direction of size xi |e| and
 * brought back to its norm (LAFITE's pseudo text features, Zhou et al.
 * 2022): training on image embeddings, the model learns to read a query
 * that is only near its image, as a text embedding is (cosine about
 * 1/sqrt(1 + xi^2) to the unperturbed one). */
static void perturb_query(float *e, int D, float xi, uint64_t seed, uint64_t row)
{
	uint64_t stride = ((uint64_t)D + 3) & ~(uint64_t)3;
	float *n = xmalloc((size_t)D * sizeof *n);
	philox_normal_fill(n, (size_t)D, seed, row * stride);
	double ee = 0, zz = 0;
	for (int i = 0; i < D; i++) {
		ee += (double)e[i] * e[i];
		zz += (double)n[i] * n[i];
	}
	if (ee > 0 && zz > 0) {
		double scale = xi * sqrt(ee / zz), moved = 0;
		for (int i = 0; i < D; i++) {
			n[i] = (float)(e[i] + scale * n[i]);
			moved += (double)n[i] * n[i];
		}
		double back = sqrt(ee / moved);
		for (int i = 0; i < D; i++)
			e[i] = (float)(n[i] * back);
	}
	free(n);
}

struct diffuse_train_config diffuse_train_defaults(void)
{
	return (struct diffuse_train_config){
		.seed = 1, .loss = { .aux_weight = 5e-4f, .adaptive_aux = 1, .mask_weight = { 1, 1 } },
	};
}

int diffuse_trainer_init(struct diffuse_trainer *t, struct dtx *m, const struct diffuse_train_config *cfg,
                         const struct nn_optim_config *opt)
{
	*t = (struct diffuse_trainer){ .m = m, .cfg = *cfg };
	if (!m->params.grad)
		return errorf("the model must have gradients to train");
	if (md_schedule_init(&t->sched, m->cfg.T, m->cfg.K) < 0)
		return -1;
	if (nn_optim_init(&t->opt, &m->params, opt) < 0) {
		md_schedule_free(&t->sched);
		return -1;
	}
	nn_optim_decay_matrices_only(&t->opt);
	return 0;
}

void diffuse_trainer_free(struct diffuse_trainer *t)
{
	nn_optim_free(&t->opt);
	nn_arena_free(&t->arena);
	md_schedule_free(&t->sched);
	free(t->t);
	free(t->xt);
	free(t->log_x0);
	free(t->log_q);
	free(t->uniform);
	free(t->logits);
	free(t->dlogits);
	free(t->valid);
}

static void grow(struct diffuse_trainer *t, int B, int S)
{
	size_t L = (size_t)t->m->cfg.h * t->m->cfg.w, C = (size_t)t->m->cfg.K + 1, K = (size_t)t->m->cfg.K;
	if ((size_t)B > t->cap_rows) {
		t->cap_rows = (size_t)B;
		t->t = xrealloc(t->t, (size_t)B * sizeof *t->t);
		t->xt = xrealloc(t->xt, (size_t)B * L * sizeof *t->xt);
		t->log_x0 = xrealloc(t->log_x0, (size_t)B * C * L * sizeof(float));
		t->log_q = xrealloc(t->log_q, (size_t)B * C * L * sizeof(float));
		t->uniform = xrealloc(t->uniform, (size_t)B * C * L * sizeof(float));
		t->logits = xrealloc(t->logits, (size_t)B * K * L * sizeof(float));
		t->dlogits = xrealloc(t->dlogits, (size_t)B * K * L * sizeof(float));
	}
	if ((size_t)B * S > t->cap_cond) {
		t->cap_cond = (size_t)B * S;
		t->valid = xrealloc(t->valid, t->cap_cond);
	}
}

/* A copy of host bytes in backend memory from the arena. */
static void *to_backend(struct nn_arena *a, const void *host, size_t bytes)
{
	void *p = nn_arena_bytes(a, bytes);
	nn->upload(p, host, bytes);
	return p;
}

int diffuse_trainer_step(struct diffuse_trainer *t, const int32_t *x0, float *cond, const uint8_t *valid, int B,
                         int S, float *loss)
{
	const struct dtx_config *c = &t->m->cfg;
	int L = c->h * c->w, C = c->K + 1, K = c->K, D = c->cond_dim;
	grow(t, B, S);
	uint64_t seed = t->cfg.seed, row0 = (uint64_t)t->opt.step * (uint64_t)B;
	for (int b = 0; b < B; b++) {
		uint64_t row = row0 + (uint64_t)b;
		t->t[b] = (int32_t)(philox_uniform_at(seed ^ TIME_STREAM, row) * (float)c->T);
		if (t->t[b] >= c->T)
			t->t[b] = c->T - 1;
		uint8_t *v = t->valid + (size_t)b * S;
		if (valid)
			memcpy(v, valid + (size_t)b * S, (size_t)S);
		else
			memset(v, 1, (size_t)S);
		if (t->cfg.cond_drop > 0 && philox_uniform_at(seed ^ DROP_STREAM, row) < t->cfg.cond_drop) {
			memset(cond + (size_t)b * S * D, 0, (size_t)S * D * sizeof *cond);
			memset(v, 1, (size_t)S);
		} else if (t->cfg.query_noise > 0) {
			perturb_query(cond + (size_t)b * S * D, D, t->cfg.query_noise, seed ^ QUERY_STREAM, row);
		}
		philox_uniform_fill(t->uniform + (size_t)b * C * L, (size_t)C * L, seed ^ NOISE_STREAM,
		                    row * (uint64_t)C * L);
	}
	md_log_onehot(&t->sched, x0, B, L, t->log_x0);
	md_q_pred(&t->sched, t->log_x0, t->t, B, L, t->log_q);
	md_sample(&t->sched, t->log_q, t->uniform, B, L, t->xt);

	struct nn_arena *a = &t->arena;
	const int32_t *d_xt = to_backend(a, t->xt, (size_t)B * L * sizeof(int32_t));
	const int32_t *d_t = to_backend(a, t->t, (size_t)B * sizeof(int32_t));
	const float *d_cond = to_backend(a, cond, (size_t)B * S * D * sizeof(float));
	const uint8_t *d_valid = to_backend(a, t->valid, (size_t)B * S);
	float *logits = dtx_forward(t->m, a, d_xt, d_t, d_cond, d_valid, B, S);
	if (!logits) {
		nn_arena_reset(a);
		return -1;
	}
	size_t nlogits = (size_t)B * K * L;
	nn->download(t->logits, logits, nlogits * sizeof(float));
	*loss = md_train_loss(&t->sched, &t->cfg.loss, x0, t->xt, t->t, t->logits, B, L, t->dlogits, NULL);
	float *d_dlogits = to_backend(a, t->dlogits, nlogits * sizeof(float));
	dtx_backward(t->m, a, d_dlogits);
	nn_arena_reset(a);
	return nn_optim_step(&t->opt);
}
