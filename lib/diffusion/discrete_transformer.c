/* The discrete backbone's denoising network (discrete_transformer.h): the
 * embeddings, the condition path and the logits head here, the blocks in
 * dtx_block.c. */
#include "diffusion/discrete_transformer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"
#include "diffusion/dtx_block.h"
#include "nn/layers/layer.h"
#include "nn/model_file.h"
#include "nn/ops.h"
#include "stream/msgpack.h"

/* Bounds that keep every product of sizes (B * L * width, K * L, ...) far
 * from int and size_t overflow at any batch a machine can hold. */
#define MAX_CODES (1 << 20)
#define MAX_SIDE 1024
#define MAX_WIDTH (1 << 16)
#define MAX_DEPTH 1024
#define MAX_SLOTS 4096
#define MAX_STEPS (1 << 20)

#define INIT_STD 0.02f

struct dtx_state {
	/* the layers: parameter indices and sizes */
	int tok_emb, height_emb, width_emb, cond_slot;
	struct nn_linear cond_proj, to_logits;
	struct nn_layernorm cond_ln, out_ln;
	struct nn_mha cond_attn;
	struct dtx_block *blocks;

	/* the last forward pass, for the backward pass */
	int B, S;
	const int32_t *tokens;
	int32_t *rows, *cols, *slots; /* per-token grid row and column, per-slot kind */
	const uint8_t *cond_valid;
	struct nn_linear_act cond_proj_act;
	float *y0, *y; /* the condition sequence before and after its self-attention */
	struct nn_layernorm_act cond_ln_act;
	struct nn_mha_act cond_attn_act;
	struct dtx_block_act *acts;
	struct nn_layernorm_act out_ln_act;
	float *ones; /* [L] of 1, for the bias of the transposed logits */

	/* host memory: inputs read back for checking, position ids */
	int32_t *host;
	size_t host_cap;
	float *host_ones;
};

/* ---- config ---- */

int dtx_config_check(const struct dtx_config *c)
{
	const struct { const char *name; int value, min, max; } sizes[] = {
		{ "K", c->K, 2, MAX_CODES }, { "h", c->h, 1, MAX_SIDE }, { "w", c->w, 1, MAX_SIDE },
		{ "width", c->width, 1, MAX_WIDTH }, { "depth", c->depth, 1, MAX_DEPTH },
		{ "heads", c->heads, 1, MAX_WIDTH }, { "mlp_hidden", c->mlp_hidden, 1, 16 * MAX_WIDTH },
		{ "cond_dim", c->cond_dim, 1, MAX_WIDTH }, { "cond_slots", c->cond_slots, 1, MAX_SLOTS },
		{ "cond_self_attn", c->cond_self_attn, 0, 1 }, { "cond_knn_mean", c->cond_knn_mean, 0, MAX_SLOTS },
		{ "T", c->T, 1, MAX_STEPS },
	};
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
		if (sizes[i].value < sizes[i].min || sizes[i].value > sizes[i].max)
			return errorf("%s is %d: must be %d to %d", sizes[i].name, sizes[i].value, sizes[i].min,
			              sizes[i].max);
	if (c->width % c->heads)
		return errorf("width %d is not a multiple of %d heads", c->width, c->heads);
	if (c->cond_knn_mean && c->cond_slots != 2)
		return errorf("cond_knn_mean needs 2 condition slots, not %d", c->cond_slots);
	return 0;
}

int dtx_config_from_json(struct dtx_config *c, const char *json)
{
	memset(c, 0, sizeof *c);
	struct mp_buf mp;
	if (nn_model_config_map(json, &mp) < 0)
		return -1;
	const uint8_t *top = mp.data, *end = mp.data + mp.len;
	int rc = -1;
	c->mlp_hidden = -1;
	if (mp_map_int(top, end, "K", &c->K, 1) < 0 || mp_map_int(top, end, "h", &c->h, 1) < 0 ||
	    mp_map_int(top, end, "w", &c->w, 1) < 0 || mp_map_int(top, end, "width", &c->width, 1) < 0 ||
	    mp_map_int(top, end, "depth", &c->depth, 1) < 0 || mp_map_int(top, end, "heads", &c->heads, 1) < 0 ||
	    mp_map_int(top, end, "mlp_hidden", &c->mlp_hidden, 0) < 0 ||
	    mp_map_int(top, end, "cond_dim", &c->cond_dim, 1) < 0 ||
	    mp_map_int(top, end, "cond_slots", &c->cond_slots, 1) < 0 ||
	    mp_map_int(top, end, "cond_self_attn", &c->cond_self_attn, 0) < 0 ||
	    mp_map_int(top, end, "cond_knn_mean", &c->cond_knn_mean, 0) < 0 || mp_map_int(top, end, "T", &c->T, 1) < 0)
		goto out;
	if (c->mlp_hidden < 0)
		c->mlp_hidden = c->width <= MAX_WIDTH ? 4 * c->width : 0;
	rc = dtx_config_check(c);
out:
	mp_buf_free(&mp);
	return rc;
}

char *dtx_config_json(const struct dtx_config *c)
{
	char *text = NULL, mean[48] = "";
	/* written only when set, so that older readers load the other models */
	if (c->cond_knn_mean)
		snprintf(mean, sizeof mean, "\"cond_knn_mean\": %d, ", c->cond_knn_mean);
	if (asprintf(&text, "{\"K\": %d, \"h\": %d, \"w\": %d, \"width\": %d, \"depth\": %d, \"heads\": %d, "
	             "\"mlp_hidden\": %d, \"cond_dim\": %d, \"cond_slots\": %d, \"cond_self_attn\": %d, %s\"T\": %d}",
	             c->K, c->h, c->w, c->width, c->depth, c->heads, c->mlp_hidden, c->cond_dim, c->cond_slots,
	             c->cond_self_attn, mean, c->T) < 0)
		die("out of memory");
	return text;
}

/* ---- parameters ---- */

void dtx_init(struct dtx *m, const struct dtx_config *cfg, int with_grad)
{
	memset(m, 0, sizeof *m);
	m->cfg = *cfg;
	struct dtx_state *s = xcalloc(1, sizeof *s);
	m->state = s;
	struct nn_params *p = &m->params;
	int W = cfg->width;
	s->tok_emb = nn_layer_param(p, "content_emb.emb", "weight", 2, (int64_t[]){cfg->K + 1, W});
	s->height_emb = nn_layer_param(p, "content_emb.height_emb", "weight", 2, (int64_t[]){cfg->h, W});
	s->width_emb = nn_layer_param(p, "content_emb.width_emb", "weight", 2, (int64_t[]){cfg->w, W});
	nn_linear_init(&s->cond_proj, p, "cond_proj", cfg->cond_dim, W, 1);
	s->cond_slot = nn_layer_param(p, "cond_slot", "weight", 2, (int64_t[]){2, W});
	if (cfg->cond_self_attn) {
		nn_layernorm_init(&s->cond_ln, p, "cond_attn.ln", W, DTX_LN_EPS);
		nn_mha_init(&s->cond_attn, p, "cond_attn.attn", W, W, cfg->heads, 0);
	}
	s->blocks = xcalloc((size_t)cfg->depth, sizeof *s->blocks);
	s->acts = xcalloc((size_t)cfg->depth, sizeof *s->acts);
	for (int i = 0; i < cfg->depth; i++) {
		char prefix[NN_NAME_MAX];
		snprintf(prefix, sizeof prefix, "blocks.%d", i);
		dtx_block_init(&s->blocks[i], p, prefix, W, cfg->heads, cfg->mlp_hidden, cfg->T);
	}
	nn_layernorm_init(&s->out_ln, p, "to_logits.ln", W, DTX_LN_EPS);
	nn_linear_init(&s->to_logits, p, "to_logits.linear", W, cfg->K, 1);
	nn_params_alloc(p, with_grad);

	int L = cfg->h * cfg->w;
	s->host_ones = xmalloc((size_t)L * sizeof *s->host_ones);
	for (int i = 0; i < L; i++)
		s->host_ones[i] = 1.0f;
}

void dtx_init_random(struct dtx *m, uint64_t seed)
{
	struct nn_params *p = &m->params;
	struct dtx_state *s = m->state;
	/* 1-D tensors are biases and norm affines: zero, then unit norm scales */
	for (int i = 0; i < p->n; i++) {
		if (p->items[i].ndim == 1)
			nn_param_init_const(p, i, 0.0f);
		else
			nn_param_init_normal(p, i, INIT_STD, seed);
	}
	nn_param_init_const(p, s->out_ln.weight, 1.0f);
	if (m->cfg.cond_self_attn)
		nn_param_init_const(p, s->cond_ln.weight, 1.0f);
	for (int i = 0; i < m->cfg.depth; i++)
		nn_param_init_const(p, s->blocks[i].ln2.weight, 1.0f);
}

static int parse_config(void *c, const char *json)
{
	return dtx_config_from_json(c, json);
}

int dtx_load(struct dtx *m, const char *path, int with_grad)
{
	struct dtx_config c;
	struct st_file *f = nn_model_file_open(path, "a discrete diffusion model", parse_config, &c);
	if (!f)
		return -1;
	dtx_init(m, &c, with_grad);
	if (nn_model_file_load(&m->params, f, path) < 0) {
		dtx_free(m);
		return -1;
	}
	return 0;
}

void dtx_free(struct dtx *m)
{
	if (m->state) {
		free(m->state->blocks);
		free(m->state->acts);
		free(m->state->host);
		free(m->state->host_ones);
		free(m->state);
	}
	nn_params_free(&m->params);
	memset(m, 0, sizeof *m);
}

/* ---- forward ---- */

static int32_t *host_scratch(struct dtx_state *s, size_t n)
{
	if (n > s->host_cap) {
		s->host = xrealloc(s->host, n * sizeof *s->host);
		s->host_cap = n;
	}
	return s->host;
}

/* The ops take ids unchecked; the inputs come from data. */
static int check_inputs(struct dtx *m, const int32_t *tokens, const int32_t *t, const uint8_t *cond_valid, int B,
                        int S)
{
	const struct dtx_config *c = &m->cfg;
	if (B < 1 || S < 1 || S > MAX_SLOTS)
		return errorf("batch %d with %d condition slots: need at least one of each (at most %d slots)", B, S,
		              MAX_SLOTS);
	size_t L = (size_t)c->h * c->w;
	int32_t *host = host_scratch(m->state, (size_t)B * L + (size_t)B * S);
	nn->download(host, tokens, (size_t)B * L * sizeof *host);
	for (size_t i = 0; i < (size_t)B * L; i++)
		if (host[i] < 0 || host[i] > c->K)
			return errorf("token %d at row %zu, position %zu: ids must be 0 to %d (%d: the mask)", host[i], i / L,
			              i % L, c->K, c->K);
	nn->download(host, t, (size_t)B * sizeof *host);
	for (int b = 0; b < B; b++)
		if (host[b] < 0 || host[b] >= c->T)
			return errorf("time step %d at row %d: must be 0 to %d", host[b], b, c->T - 1);
	if (cond_valid) {
		uint8_t *valid = (uint8_t *)host;
		nn->download(valid, cond_valid, (size_t)B * S);
		for (int b = 0; b < B; b++) {
			int any = 0;
			for (int i = 0; i < S; i++)
				any |= valid[(size_t)b * S + i] != 0;
			if (!any)
				return errorf("condition row %d has no valid slot", b);
		}
	}
	return 0;
}

/* Each token's grid row and column, and each condition slot's kind (0: the
 * query, 1: a neighbour), into backend memory from the arena. */
static void position_ids(struct dtx *m, struct nn_arena *a, int B, int S)
{
	struct dtx_state *s = m->state;
	int w = m->cfg.w, L = m->cfg.h * w;
	size_t ntok = (size_t)B * L, nslot = (size_t)B * S;
	int32_t *host = host_scratch(s, 2 * ntok + nslot);
	for (size_t i = 0; i < ntok; i++) {
		int pos = (int)(i % (size_t)L);
		host[i] = pos / w;
		host[ntok + i] = pos % w;
	}
	for (size_t i = 0; i < nslot; i++)
		host[2 * ntok + i] = i % (size_t)S != 0;
	s->rows = nn_arena_bytes(a, ntok * sizeof *host);
	s->cols = nn_arena_bytes(a, ntok * sizeof *host);
	s->slots = nn_arena_bytes(a, nslot * sizeof *host);
	nn->upload(s->rows, host, ntok * sizeof *host);
	nn->upload(s->cols, host + ntok, ntok * sizeof *host);
	nn->upload(s->slots, host + 2 * ntok, nslot * sizeof *host);
}

/* out [N, C] = table[ids] + out (a second embedding added to a first). */
static void add_embedding(float *out, struct nn_arena *a, const int32_t *ids, const float *table, int N, int C)
{
	float *e = nn_arena_floats(a, (size_t)N * C);
	nn->embedding_forward(e, ids, table, N, C);
	nn->add(out, out, e, (size_t)N * C);
}

/* The condition sequence y [B, S, W] the blocks attend to. */
static const float *condition_forward(struct dtx *m, struct nn_arena *a, const float *cond, int B, int S)
{
	struct dtx_state *s = m->state;
	const struct nn_params *p = &m->params;
	int W = m->cfg.width, N = B * S;
	s->y0 = nn_linear_forward(&s->cond_proj, p, a, &s->cond_proj_act, cond, N);
	add_embedding(s->y0, a, s->slots, nn_param(p, s->cond_slot), N, W);
	if (!m->cfg.cond_self_attn)
		return s->y = s->y0;
	const float *h = nn_layernorm_forward(&s->cond_ln, p, a, &s->cond_ln_act, s->y0, N);
	const float *branch = nn_mha_forward(&s->cond_attn, p, a, &s->cond_attn_act, h, h, s->cond_valid, B, S, S);
	s->y = nn_arena_floats(a, (size_t)N * W);
	nn->add(s->y, s->y0, branch, (size_t)N * W);
	return s->y;
}

/* logits [B, K, L] = to_logits(h) with the class axis in the middle: per
 * row b, weight [K, W] times h[b]^T [W, L], which a batched gemm writes in
 * that layout directly; the bias is the outer product bias 1^T. */
static float *logits_forward(struct dtx *m, struct nn_arena *a, const float *h, int B)
{
	struct dtx_state *s = m->state;
	const struct nn_params *p = &m->params;
	int K = m->cfg.K, W = m->cfg.width, L = m->cfg.h * m->cfg.w;
	long KL = (long)K * L;
	s->ones = nn_arena_floats(a, (size_t)L);
	nn->upload(s->ones, s->host_ones, (size_t)L * sizeof(float));
	float *logits = nn_arena_floats(a, (size_t)B * KL);
	nn->gemm(0, 0, K, L, 1, 1.0f, nn_param(p, s->to_logits.bias), 1, 0, s->ones, L, 0, 0.0f, logits, L, KL, B);
	nn->gemm(0, 1, K, L, W, 1.0f, nn_param(p, s->to_logits.weight), W, 0, h, W, (long)L * W, 1.0f, logits, L, KL,
	         B);
	return logits;
}

float *dtx_forward(struct dtx *m, struct nn_arena *a, const int32_t *tokens, const int32_t *t, const float *cond,
                   const uint8_t *cond_valid, int B, int S)
{
	struct dtx_state *s = m->state;
	const struct nn_params *p = &m->params;
	if (check_inputs(m, tokens, t, cond_valid, B, S) < 0)
		return NULL;
	int W = m->cfg.width, L = m->cfg.h * m->cfg.w, N = B * L;
	s->B = B;
	s->S = S;
	s->tokens = tokens;
	s->cond_valid = cond_valid;
	position_ids(m, a, B, S);

	float *x = nn_arena_floats(a, (size_t)N * W);
	nn->embedding_forward(x, tokens, nn_param(p, s->tok_emb), N, W);
	add_embedding(x, a, s->rows, nn_param(p, s->height_emb), N, W);
	add_embedding(x, a, s->cols, nn_param(p, s->width_emb), N, W);
	const float *y = condition_forward(m, a, cond, B, S);

	const float *stream = x;
	for (int i = 0; i < m->cfg.depth; i++)
		stream = dtx_block_forward(&s->blocks[i], p, a, &s->acts[i], stream, t, y, cond_valid, B, L, S);
	const float *h = nn_layernorm_forward(&s->out_ln, p, a, &s->out_ln_act, stream, N);
	return logits_forward(m, a, h, B);
}

/* ---- backward ---- */

/* dh [B, L, W] += dlogits^T weight, and the head's parameter gradients. */
static void logits_backward(struct dtx *m, const float *dlogits, float *dh)
{
	struct dtx_state *s = m->state;
	const struct nn_params *p = &m->params;
	int B = s->B, K = m->cfg.K, W = m->cfg.width, L = m->cfg.h * m->cfg.w;
	long KL = (long)K * L;
	const float *h = s->out_ln_act.out;
	nn->gemm(1, 0, L, W, K, 1.0f, dlogits, L, KL, nn_param(p, s->to_logits.weight), W, 0, 1.0f, dh, W, (long)L * W,
	         B);
	float *dweight = nn_param_grad(p, s->to_logits.weight), *dbias = nn_param_grad(p, s->to_logits.bias);
	/* one product per row, each adding onto the sum so far: the same
	 * order of additions at any thread count */
	for (int b = 0; dweight && b < B; b++) {
		nn->gemm(0, 0, K, W, L, 1.0f, dlogits + b * KL, L, 0, h + (long)b * L * W, W, 0, 1.0f, dweight, W, 0, 1);
		nn->gemm(0, 0, K, 1, L, 1.0f, dlogits + b * KL, L, 0, s->ones, 1, 0, 1.0f, dbias, 1, 0, 1);
	}
}

/* From the gradient of y to the condition path's parameters (the condition
 * itself is data: no gradient). */
static void condition_backward(struct dtx *m, struct nn_arena *a, float *dy)
{
	struct dtx_state *s = m->state;
	const struct nn_params *p = &m->params;
	int N = s->B * s->S, W = m->cfg.width;
	if (m->cfg.cond_self_attn) {
		/* dy is dL/dy; the layer norm adds the branch's part for y0 */
		float *dh = nn_arena_zeros(a, (size_t)N * W);
		nn_mha_backward(&s->cond_attn, p, a, &s->cond_attn_act, dh, dh, dy);
		nn_layernorm_backward(&s->cond_ln, p, &s->cond_ln_act, dy, dh);
	}
	nn_linear_backward(&s->cond_proj, p, &s->cond_proj_act, NULL, dy);
	nn->embedding_backward(nn_param_grad(p, s->cond_slot), dy, s->slots, N, W);
}

void dtx_backward(struct dtx *m, struct nn_arena *a, const float *dlogits)
{
	struct dtx_state *s = m->state;
	const struct nn_params *p = &m->params;
	if (!p->grad)
		return; /* a model without gradients has nothing to accumulate */
	int W = m->cfg.width, N = s->B * m->cfg.h * m->cfg.w;
	size_t n = (size_t)N * W;
	float *dh = nn_arena_zeros(a, n);
	logits_backward(m, dlogits, dh);
	float *dx = nn_arena_zeros(a, n);
	nn_layernorm_backward(&s->out_ln, p, &s->out_ln_act, dx, dh);

	float *dy = nn_arena_zeros(a, (size_t)s->B * s->S * W);
	for (int i = m->cfg.depth - 1; i >= 0; i--) {
		float *dprev = nn_arena_zeros(a, n);
		dtx_block_backward(&s->blocks[i], p, a, &s->acts[i], dprev, dy, dx);
		dx = dprev;
	}
	nn->embedding_backward(nn_param_grad(p, s->tok_emb), dx, s->tokens, N, W);
	nn->embedding_backward(nn_param_grad(p, s->height_emb), dx, s->rows, N, W);
	nn->embedding_backward(nn_param_grad(p, s->width_emb), dx, s->cols, N, W);
	condition_backward(m, a, dy);
}
