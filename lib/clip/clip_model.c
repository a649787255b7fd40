/* CLIP's forward passes (see clip_model.h). */
#include "clip/clip_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "nn/layers/layer.h"
#include "nn/ops.h"

static void init_tower_blocks(struct nn_block **layers, struct nn_params *p, const char *tower,
                              const struct clip_tower_config *t, int causal)
{
	struct nn_block_config bc = {
		.dim = t->width, .heads = t->heads, .mlp_dim = t->mlp_dim, .act = t->act,
		.causal = causal, .cond_dim = 0, .ln_eps = t->ln_eps,
	};
	*layers = xcalloc(t->layers, sizeof **layers);
	char prefix[NN_NAME_MAX];
	for (int l = 0; l < t->layers; l++) {
		snprintf(prefix, sizeof prefix, "%s.encoder.layers.%d", tower, l);
		nn_block_init(&(*layers)[l], p, prefix, &bc);
	}
}

static void init_model(struct clip_model *m, const struct clip_config *cfg, int with_grad)
{
	memset(m, 0, sizeof *m);
	m->cfg = *cfg;
	struct nn_params *p = &m->params;
	struct clip_vision *v = &m->vision;
	struct clip_text *t = &m->text;
	int vw = cfg->vision.width, tw = cfg->text.width, E = cfg->embed_dim;

	int64_t patch[4] = { vw, 3, cfg->patch, cfg->patch };
	v->patch_embedding = nn_params_add(p, "vision_model.embeddings.patch_embedding.weight", 4, patch);
	v->class_embedding = nn_params_add(p, "vision_model.embeddings.class_embedding", 1, (int64_t[]){ vw });
	v->position_embedding = nn_params_add(p, "vision_model.embeddings.position_embedding.weight", 2,
	                                      (int64_t[]){ (int64_t)cfg->grid * cfg->grid + 1, vw });
	nn_layernorm_init(&v->pre_layrnorm, p, "vision_model.pre_layrnorm", vw, cfg->vision.ln_eps);
	init_tower_blocks(&v->layers, p, "vision_model", &cfg->vision, 0);
	nn_layernorm_init(&v->post_layernorm, p, "vision_model.post_layernorm", vw, cfg->vision.ln_eps);
	v->projection = nn_params_add(p, "visual_projection.weight", 2, (int64_t[]){ E, vw });

	t->token_embedding = nn_params_add(p, "text_model.embeddings.token_embedding.weight", 2,
	                                   (int64_t[]){ cfg->vocab, tw });
	t->position_embedding = nn_params_add(p, "text_model.embeddings.position_embedding.weight", 2,
	                                      (int64_t[]){ cfg->context, tw });
	init_tower_blocks(&t->layers, p, "text_model", &cfg->text, 1);
	nn_layernorm_init(&t->final_layer_norm, p, "text_model.final_layer_norm", tw, cfg->text.ln_eps);
	t->projection = nn_params_add(p, "text_projection.weight", 2, (int64_t[]){ E, tw });

	m->logit_scale = nn_params_add(p, "logit_scale", 0, NULL);
	nn_params_alloc(p, with_grad);
}

void clip_model_init(struct clip_model *m, const struct clip_config *cfg)
{
	init_model(m, cfg, 0);
}

void clip_model_init_trainable(struct clip_model *m, const struct clip_config *cfg)
{
	init_model(m, cfg, 1);
}

void clip_model_free(struct clip_model *m)
{
	nn_params_free(&m->params);
	free(m->vision.layers);
	free(m->text.layers);
	nn_arena_free(&m->arena[0]);
	nn_arena_free(&m->arena[1]);
	free(m->host);
	memset(m, 0, sizeof *m);
}

/* Host scratch for inputs on their way to the backend. */
static void *host_buffer(struct clip_model *m, size_t bytes)
{
	if (bytes > m->host_cap) {
		free(m->host);
		m->host = xmalloc(bytes);
		m->host_cap = bytes;
	}
	return m->host;
}

static void tap(const struct clip_taps *t, const char *name, const float *x, int rows, int cols)
{
	if (t && t->fn)
		t->fn(t->ctx, name, x, rows, cols);
}

/* Copies row `rows[b]` (row 0 if rows is NULL) of each sequence of
 * x [B, T, C] into out [B, C]. */
static void gather_rows(float *out, const float *x, const int *rows, int B, int T, int C)
{
	for (int b = 0; b < B; b++)
		nn->scale(out + (size_t)b * C, x + ((size_t)b * T + (rows ? rows[b] : 0)) * C, 1.0f, C);
}

/* The last block for the pooled rows only. A tower's output is one row per
 * sequence (the class token, the end token), so in the last block only the
 * keys and values need every row: the query, the residual branches and the
 * MLP run on B rows instead of B*T, which saves most of one block (about 7%
 * of ViT-B/32's towers). This is
 * nn_block_forward's composition restricted to those rows. With one query
 * per sequence the causal mask becomes a mask of keys: key j is visible to
 * sequence b's query when j <= rows[b]. */
static const float *last_block_pooled(struct clip_model *m, const struct nn_block *blk, struct nn_arena *a,
                                      const float *x, int B, int T, const int *rows)
{
	const struct nn_params *p = &m->params;
	int W = blk->cfg.dim;
	size_t n = (size_t)B * W;
	struct nn_layernorm_act ln1, ln2;
	struct nn_mha_act attn;
	struct nn_mlp_act mlp;

	uint8_t *key_valid = NULL;
	if (blk->cfg.causal) {
		uint8_t *host = host_buffer(m, (size_t)B * T);
		for (int b = 0; b < B; b++)
			for (int j = 0; j < T; j++)
				host[(size_t)b * T + j] = j <= (rows ? rows[b] : 0);
		key_valid = nn_arena_bytes(a, (size_t)B * T);
		nn->upload(key_valid, host, (size_t)B * T);
	}
	struct nn_mha self_attn = blk->self_attn;
	self_attn.causal = 0;

	const float *h = nn_layernorm_forward(&blk->ln1, p, a, &ln1, x, B * T);
	float *hq = nn_arena_floats(a, n), *x0 = nn_arena_floats(a, n);
	gather_rows(hq, h, rows, B, T, W);
	gather_rows(x0, x, rows, B, T, W);
	const float *branch = nn_mha_forward(&self_attn, p, a, &attn, hq, h, key_valid, B, 1, T);
	float *x1 = nn_arena_floats(a, n);
	nn->add(x1, x0, branch, n);
	h = nn_layernorm_forward(&blk->ln2, p, a, &ln2, x1, B);
	branch = nn_mlp_forward(&blk->mlp, p, a, &mlp, h, B);
	float *out = nn_arena_floats(a, n);
	nn->add(out, x1, branch, n);
	return out;
}

/* Runs a tower's blocks over h [B, T, width] (in arena 0). Block l works in
 * arena (l+1)%2, which holds only what block l-2 made, so it is reset
 * first; its input, block l-1's output, lives in the other one. The result
 * is in arena n%2, which later steps go on using.
 *
 * With `pooled` the result is the pooled rows [B, width] (rows as in
 * gather_rows), the last block computing only those; otherwise it is the
 * whole output [B, T, width] and every block is tapped. */
static const float *run_blocks(struct clip_model *m, const struct nn_block *layers, int n, const float *h,
                               int B, int T, int pooled, const int *rows, const struct clip_taps *taps,
                               const char *item)
{
	char name[64];
	for (int l = 0; l < n; l++) {
		struct nn_arena *a = &m->arena[(l + 1) % 2];
		nn_arena_reset(a);
		if (pooled && l == n - 1)
			return last_block_pooled(m, &layers[l], a, h, B, T, rows);
		struct nn_block_act act;
		h = nn_block_forward(&layers[l], &m->params, a, &act, h, B, T, NULL, NULL, 0);
		snprintf(name, sizeof name, "%s.block%d", item, l);
		tap(taps, name, h, T, layers[l].cfg.dim);
	}
	return h;
}

void clip_patchify(float *patches, const float *pixels, int B, int grid, int patch)
{
	int R = grid * patch, row = 3 * patch * patch;
	for (int b = 0; b < B; b++)
		for (int gy = 0; gy < grid; gy++)
			for (int gx = 0; gx < grid; gx++) {
				float *dst = patches + (((size_t)b * grid + gy) * grid + gx) * row;
				for (int c = 0; c < 3; c++)
					for (int y = 0; y < patch; y++) {
						const float *src = pixels + (((size_t)b * 3 + c) * R + gy * patch + y) * R + gx * patch;
						memcpy(dst + (c * patch + y) * patch, src, patch * sizeof *src);
					}
			}
}

void clip_encode_image(struct clip_model *m, const float *pixels, int B, float *features,
                       const struct clip_taps *taps)
{
	const struct clip_config *c = &m->cfg;
	const struct nn_params *p = &m->params;
	const struct clip_vision *v = &m->vision;
	int W = c->vision.width, P = c->grid * c->grid, T = P + 1, K = 3 * c->patch * c->patch;
	if (B <= 0)
		return;
	struct nn_arena *a = &m->arena[0];
	nn_arena_reset(&m->arena[0]);
	nn_arena_reset(&m->arena[1]);

	size_t patch_floats = (size_t)B * P * K;
	float *host = host_buffer(m, patch_floats * sizeof(float));
	clip_patchify(host, pixels, B, c->grid, c->patch);
	float *patches = nn_arena_floats(a, patch_floats);
	nn->upload(patches, host, patch_floats * sizeof(float));
	float *embeds = nn_arena_floats(a, (size_t)B * P * W);
	nn->linear_forward(embeds, patches, nn_param(p, v->patch_embedding), NULL, B * P, K, W);
	tap(taps, "image0.patch_embeds", embeds, P, W);

	/* [class; patches] + positions */
	const float *cls = nn_param(p, v->class_embedding), *pos = nn_param(p, v->position_embedding);
	float *x = nn_arena_floats(a, (size_t)B * T * W);
	for (int b = 0; b < B; b++) {
		float *xb = x + (size_t)b * T * W;
		nn->add(xb, cls, pos, W);
		nn->add(xb + W, embeds + (size_t)b * P * W, pos + W, (size_t)P * W);
	}
	struct nn_layernorm_act ln;
	const float *h = nn_layernorm_forward(&v->pre_layrnorm, p, a, &ln, x, B * T);
	tap(taps, "image0.ln_pre", h, T, W);

	/* Taps want every row of every block; otherwise the last block
	 * computes the class tokens only. */
	int whole = taps && taps->fn;
	h = run_blocks(m, v->layers, c->vision.layers, h, B, T, !whole, NULL, taps, "image0");
	a = &m->arena[c->vision.layers % 2];
	if (whole) {
		float *cls_rows = nn_arena_floats(a, (size_t)B * W);
		gather_rows(cls_rows, h, NULL, B, T, W);
		h = cls_rows;
	}
	const float *pooled = nn_layernorm_forward(&v->post_layernorm, p, a, &ln, h, B);
	tap(taps, "image0.ln_post", pooled, 1, W);
	float *out = nn_arena_floats(a, (size_t)B * c->embed_dim);
	nn->linear_forward(out, pooled, nn_param(p, v->projection), NULL, B, W, c->embed_dim);
	nn->download(features, out, (size_t)B * c->embed_dim * sizeof(float));
}

int clip_eot_index(const int32_t *ids, int context)
{
	int best = 0;
	for (int i = 1; i < context; i++)
		if (ids[i] > ids[best])
			best = i;
	return best;
}

int clip_encode_text(struct clip_model *m, const int32_t *ids, int B, float *features,
                     const struct clip_taps *taps)
{
	const struct clip_config *c = &m->cfg;
	const struct nn_params *p = &m->params;
	const struct clip_text *t = &m->text;
	int W = c->text.width, ctx = c->context;
	if (B <= 0)
		return 0;

	/* The pooled rows, and the positions that can influence them. */
	int *eot = xmalloc(B * sizeof *eot);
	int T = 1;
	for (int b = 0; b < B; b++) {
		const int32_t *row = ids + (size_t)b * ctx;
		for (int i = 0; i < ctx; i++)
			if (row[i] < 0 || row[i] >= c->vocab) {
				free(eot);
				return errorf("text %d: token id %d at position %d is outside the vocabulary of %d", b, row[i], i,
				              c->vocab);
			}
		eot[b] = clip_eot_index(row, ctx);
		if (eot[b] + 1 > T)
			T = eot[b] + 1;
	}

	struct nn_arena *a = &m->arena[0];
	nn_arena_reset(&m->arena[0]);
	nn_arena_reset(&m->arena[1]);
	int32_t *host = host_buffer(m, (size_t)B * T * sizeof *host);
	for (int b = 0; b < B; b++)
		memcpy(host + (size_t)b * T, ids + (size_t)b * ctx, T * sizeof *host);
	int32_t *dev_ids = nn_arena_bytes(a, (size_t)B * T * sizeof *dev_ids);
	nn->upload(dev_ids, host, (size_t)B * T * sizeof *dev_ids);

	float *x = nn_arena_floats(a, (size_t)B * T * W);
	nn->embedding_forward(x, dev_ids, nn_param(p, t->token_embedding), B * T, W);
	const float *pos = nn_param(p, t->position_embedding);
	for (int b = 0; b < B; b++)
		nn->add(x + (size_t)b * T * W, x + (size_t)b * T * W, pos, (size_t)T * W);
	tap(taps, "text0.embeddings", x, T, W);

	int whole = taps && taps->fn;
	const float *h = run_blocks(m, t->layers, c->text.layers, x, B, T, !whole, eot, taps, "text0");
	a = &m->arena[c->text.layers % 2];

	struct nn_layernorm_act ln;
	if (whole) {
		/* the whole first sequence, which pooling does not need */
		const float *all = nn_layernorm_forward(&t->final_layer_norm, p, a, &ln, h, T);
		tap(taps, "text0.ln_final", all, T, W);
		float *eot_rows = nn_arena_floats(a, (size_t)B * W);
		gather_rows(eot_rows, h, eot, B, T, W);
		h = eot_rows;
	}
	free(eot);
	const float *pooled = nn_layernorm_forward(&t->final_layer_norm, p, a, &ln, h, B);
	tap(taps, "text0.pooled", pooled, 1, W);
	float *out = nn_arena_floats(a, (size_t)B * c->embed_dim);
	nn->linear_forward(out, pooled, nn_param(p, t->projection), NULL, B, W, c->embed_dim);
	nn->download(features, out, (size_t)B * c->embed_dim * sizeof(float));
	return 0;
}

float clip_logit_scale(const struct clip_model *m)
{
	float s;
	nn->download(&s, nn_param(&m->params, m->logit_scale), sizeof s);
	return expf(s);
}

void clip_normalize(float *x, int n, int d)
{
	for (int i = 0; i < n; i++) {
		float *row = x + (size_t)i * d;
		double ss = 0;
		for (int j = 0; j < d; j++)
			ss += (double)row[j] * row[j];
		if (ss == 0)
			continue;
		float norm = (float)sqrt(ss);
		for (int j = 0; j < d; j++)
			row[j] /= norm;
	}
}
