/* Training a CLIP: see clip_train.h. */
#include "clip/clip_train.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"
#include "nn/ops.h"

#define LOG_SCALE_MAX 4.6051702f /* ln 100 */

/* ---- initialisation ---- */

/* Parameter seeds: the seed plus the parameter's index, so each tensor has
 * its own stream whatever the others' sizes. */
static void normal(struct clip_model *m, int index, double std, uint64_t seed)
{
	nn_param_init_normal(&m->params, index, (float)std, seed + (uint64_t)index * 0x9e3779b97f4a7c15ull);
}

static void init_layernorm(struct clip_model *m, const struct nn_layernorm *ln)
{
	nn_param_init_const(&m->params, ln->weight, 1.0f);
}

static void init_blocks(struct clip_model *m, const struct nn_block *layers, const struct clip_tower_config *c,
                        uint64_t seed)
{
	double w = c->width, attn_std = pow(w, -0.5), proj_std = pow(w, -0.5) * pow(2.0 * c->layers, -0.5),
	       fc_std = pow(2.0 * w, -0.5);
	for (int l = 0; l < c->layers; l++) {
		const struct nn_block *b = &layers[l];
		init_layernorm(m, &b->ln1);
		init_layernorm(m, &b->ln2);
		normal(m, b->self_attn.q_proj.weight, attn_std, seed);
		normal(m, b->self_attn.k_proj.weight, attn_std, seed);
		normal(m, b->self_attn.v_proj.weight, attn_std, seed);
		normal(m, b->self_attn.out_proj.weight, proj_std, seed);
		normal(m, b->mlp.fc1.weight, fc_std, seed);
		normal(m, b->mlp.fc2.weight, proj_std, seed);
	}
}

void clip_init_random(struct clip_model *m, uint64_t seed)
{
	const struct clip_config *c = &m->cfg;
	struct nn_params *p = &m->params;
	nn->zero(p->data, p->total * sizeof(float));
	double vs = pow(c->vision.width, -0.5), ts = pow(c->text.width, -0.5);
	double fan_in = 3.0 * c->patch * c->patch;
	nn_param_init_uniform(p, m->vision.patch_embedding, (float)-pow(fan_in, -0.5), (float)pow(fan_in, -0.5),
	                      seed + (uint64_t)m->vision.patch_embedding * 0x9e3779b97f4a7c15ull);
	normal(m, m->vision.class_embedding, vs, seed);
	normal(m, m->vision.position_embedding, vs, seed);
	init_layernorm(m, &m->vision.pre_layrnorm);
	init_blocks(m, m->vision.layers, &c->vision, seed);
	init_layernorm(m, &m->vision.post_layernorm);
	normal(m, m->vision.projection, vs, seed);

	normal(m, m->text.token_embedding, 0.02, seed);
	normal(m, m->text.position_embedding, 0.01, seed);
	init_blocks(m, m->text.layers, &c->text, seed);
	init_layernorm(m, &m->text.final_layer_norm);
	normal(m, m->text.projection, ts, seed);
	nn_param_init_const(p, m->logit_scale, logf(1 / 0.07f));
}

char *clip_open_clip_config_json(const struct clip_config *c)
{
	char *s = xmalloc(1024);
	snprintf(s, 1024,
	         "{\"model_cfg\": {\"embed_dim\": %d, \"quick_gelu\": %s, "
	         "\"vision_cfg\": {\"image_size\": %d, \"patch_size\": %d, \"width\": %d, \"layers\": %d, "
	         "\"head_width\": %d, \"mlp_ratio\": %.9g}, "
	         "\"text_cfg\": {\"context_length\": %d, \"vocab_size\": %d, \"width\": %d, \"heads\": %d, "
	         "\"layers\": %d, \"mlp_ratio\": %.9g}}}",
	         c->embed_dim, c->vision.act == NN_QUICK_GELU ? "true" : "false", c->resolution, c->patch,
	         c->vision.width, c->vision.layers, c->vision.width / c->vision.heads,
	         (double)c->vision.mlp_dim / c->vision.width, c->context, c->vocab, c->text.width, c->text.heads,
	         c->text.layers, (double)c->text.mlp_dim / c->text.width);
	return s;
}

static int group_root(int *parent, int i)
{
	while (parent[i] != i)
		i = parent[i] = parent[parent[i]];
	return i;
}

void clip_caption_groups(const char *const *texts, const char *const *ids, int n, int *group)
{
	for (int i = 0; i < n; i++)
		group[i] = i;
	/* Union by smaller index, so that a root is its group's first item. */
	for (int i = 0; i < n; i++)
		for (int j = 0; j < i; j++) {
			bool same = !strcmp(texts[i], texts[j]) || (ids && ids[i] && ids[j] && !strcmp(ids[i], ids[j]));
			int ri = group_root(group, i), rj = group_root(group, j);
			if (same && ri != rj)
				group[ri > rj ? ri : rj] = ri < rj ? ri : rj;
		}
	for (int i = 0; i < n; i++)
		group[i] = group_root(group, i);
}

/* ---- the loss ---- */

/* Unit rows of x [n, d] into u (double), their norms into norm. */
static void unit_rows(const float *x, int n, int d, double *u, double *norm)
{
	for (int i = 0; i < n; i++) {
		double ss = 0;
		for (int k = 0; k < d; k++)
			ss += (double)x[(size_t)i * d + k] * x[(size_t)i * d + k];
		norm[i] = ss > 0 ? sqrt(ss) : 1;
		for (int k = 0; k < d; k++)
			u[(size_t)i * d + k] = x[(size_t)i * d + k] / norm[i];
	}
}

/* Cross-entropy of softmax over the entries at stride `step` of logits
 * against uniform targets over the row's group; adds (p - q) * w to d. */
static double soft_ce(const double *logits, long step, const int *group, int self, int B, double w, double *d)
{
	double mx = -INFINITY;
	for (int j = 0; j < B; j++)
		if (logits[j * step] > mx)
			mx = logits[j * step];
	double z = 0;
	for (int j = 0; j < B; j++)
		z += exp(logits[j * step] - mx);
	double lse = mx + log(z);
	int same = 0;
	for (int j = 0; j < B; j++)
		same += group[j] == group[self];
	double loss = 0;
	for (int j = 0; j < B; j++) {
		double q = group[j] == group[self] ? 1.0 / same : 0;
		if (q > 0)
			loss -= q * (logits[j * step] - lse);
		if (d)
			d[j * step] += w * (exp(logits[j * step] - lse) - q);
	}
	return loss;
}

/* d(unit x)/dx applied to du: (du - u (u . du)) / |x|, into dx (float). */
static void unit_backward(const double *u, const double *norm, const double *du, int n, int d, float *dx)
{
	for (int i = 0; i < n; i++) {
		const double *ui = u + (size_t)i * d, *dui = du + (size_t)i * d;
		double dot = 0;
		for (int k = 0; k < d; k++)
			dot += ui[k] * dui[k];
		for (int k = 0; k < d; k++)
			dx[(size_t)i * d + k] = (float)((dui[k] - ui[k] * dot) / norm[i]);
	}
}

double clip_contrastive_loss(const float *img, const float *txt, const int *group, int B, int E,
                             float logit_scale, float *dimg, float *dtxt, float *dlog_scale)
{
	int clamped = logit_scale > LOG_SCALE_MAX;
	double s = exp(clamped ? LOG_SCALE_MAX : logit_scale);
	double *ui = xmalloc((size_t)B * E * sizeof *ui), *ut = xmalloc((size_t)B * E * sizeof *ut);
	double *ni = xmalloc((size_t)B * sizeof *ni), *nt = xmalloc((size_t)B * sizeof *nt);
	double *logits = xmalloc((size_t)B * B * sizeof *logits);
	double *dl = dimg ? xcalloc((size_t)B * B, sizeof *dl) : NULL;
	unit_rows(img, B, E, ui, ni);
	unit_rows(txt, B, E, ut, nt);
	for (int i = 0; i < B; i++)
		for (int j = 0; j < B; j++) {
			double dot = 0;
			for (int k = 0; k < E; k++)
				dot += ui[(size_t)i * E + k] * ut[(size_t)j * E + k];
			logits[(size_t)i * B + j] = s * dot;
		}
	/* rows: image i against every text; columns: text j against every image */
	double loss = 0, w = 0.5 / B;
	for (int i = 0; i < B; i++) {
		loss += soft_ce(logits + (size_t)i * B, 1, group, i, B, w, dl ? dl + (size_t)i * B : NULL);
		loss += soft_ce(logits + i, B, group, i, B, w, dl ? dl + i : NULL);
	}
	loss *= 0.5 / B;
	if (dl) {
		double dscale = 0;
		double *dui = xcalloc((size_t)B * E, sizeof *dui), *dut = xcalloc((size_t)B * E, sizeof *dut);
		for (int i = 0; i < B; i++)
			for (int j = 0; j < B; j++) {
				double g = dl[(size_t)i * B + j];
				dscale += g * logits[(size_t)i * B + j];
				for (int k = 0; k < E; k++) {
					dui[(size_t)i * E + k] += s * g * ut[(size_t)j * E + k];
					dut[(size_t)j * E + k] += s * g * ui[(size_t)i * E + k];
				}
			}
		unit_backward(ui, ni, dui, B, E, dimg);
		unit_backward(ut, nt, dut, B, E, dtxt);
		if (dlog_scale)
			*dlog_scale = clamped ? 0 : (float)dscale;
		free(dui);
		free(dut);
	}
	free(ui);
	free(ut);
	free(ni);
	free(nt);
	free(logits);
	free(dl);
	return loss;
}

void clip_retrieval_eval(const float *img, const float *txt, const int *group, int N, int E,
                         struct clip_retrieval *r)
{
	int t2i = 0, i2t = 0;
	double chance = 0;
	for (int q = 0; q < N; q++) {
		int best_img = 0, best_txt = 0, same = 0;
		double top_img = -INFINITY, top_txt = -INFINITY;
		for (int j = 0; j < N; j++) {
			double a = 0, b = 0;
			for (int k = 0; k < E; k++) {
				a += (double)txt[(size_t)q * E + k] * img[(size_t)j * E + k];
				b += (double)img[(size_t)q * E + k] * txt[(size_t)j * E + k];
			}
			if (a > top_img) {
				top_img = a;
				best_img = j;
			}
			if (b > top_txt) {
				top_txt = b;
				best_txt = j;
			}
			same += group[j] == group[q];
		}
		t2i += group[best_img] == group[q];
		i2t += group[best_txt] == group[q];
		chance += (double)same / N;
	}
	r->t2i = N ? (double)t2i / N : 0;
	r->i2t = N ? (double)i2t / N : 0;
	r->chance = N ? chance / N : 0;
}

/* ---- the towers ---- */

int clip_trainer_init(struct clip_trainer *t, struct clip_model *m, const struct nn_optim_config *opt)
{
	*t = (struct clip_trainer){ .m = m };
	if (!m->params.grad)
		return errorf("the model must have gradients to train");
	if (nn_optim_init(&t->opt, &m->params, opt) < 0)
		return -1;
	nn_optim_decay_matrices_only(&t->opt);
	/* embeddings are tables, not maps: no decay (open_clip's rule) */
	nn_optim_set_decay(&t->opt, m->text.token_embedding, 0);
	nn_optim_set_decay(&t->opt, m->text.position_embedding, 0);
	nn_optim_set_decay(&t->opt, m->vision.position_embedding, 0);
	t->vision_acts = xcalloc(m->cfg.vision.layers, sizeof *t->vision_acts);
	t->text_acts = xcalloc(m->cfg.text.layers, sizeof *t->text_acts);
	return 0;
}

void clip_trainer_free(struct clip_trainer *t)
{
	nn_optim_free(&t->opt);
	nn_arena_free(&t->arena);
	free(t->vision_acts);
	free(t->text_acts);
	free(t->patches);
	free(t->img);
	free(t->txt);
	free(t->dimg);
	free(t->dtxt);
	free(t->ids);
	free(t->eot);
	memset(t, 0, sizeof *t);
}

static void grow(struct clip_trainer *t, int B)
{
	if (B <= t->cap)
		return;
	const struct clip_config *c = &t->m->cfg;
	size_t E = (size_t)c->embed_dim;
	t->cap = B;
	t->patches = xrealloc(t->patches, (size_t)B * c->grid * c->grid * 3 * c->patch * c->patch * sizeof(float));
	t->img = xrealloc(t->img, B * E * sizeof(float));
	t->txt = xrealloc(t->txt, B * E * sizeof(float));
	t->dimg = xrealloc(t->dimg, B * E * sizeof(float));
	t->dtxt = xrealloc(t->dtxt, B * E * sizeof(float));
	t->ids = xrealloc(t->ids, (size_t)B * c->context * sizeof(int32_t));
	t->eot = xrealloc(t->eot, (size_t)B * sizeof(int));
}

/* What a tower's backward pass needs from its forward pass. */
struct tower_pass {
	int B, T, W;
	const int *rows;                   /* pooled row per sequence; NULL: row 0 */
	struct nn_layernorm_act ln_in;     /* the vision tower's pre-LN */
	struct nn_layernorm_act ln_out;    /* over the pooled rows */
	const float *inp;                  /* patches [B*P, K] or ids [B, T] */
	const float *pooled;               /* ln_out's output [B, W] */
	float *features;                   /* [B, E] */
};

/* x [B, T, W] rows -> out [B, W] (rows[b], or 0), or the reverse (added). */
static void gather(float *out, const float *x, const int *rows, int B, int T, int W)
{
	for (int b = 0; b < B; b++)
		nn->scale(out + (size_t)b * W, x + ((size_t)b * T + (rows ? rows[b] : 0)) * W, 1.0f, W);
}

static void scatter_add(float *dx, const float *dout, const int *rows, int B, int T, int W)
{
	for (int b = 0; b < B; b++)
		nn->accumulate(dx + ((size_t)b * T + (rows ? rows[b] : 0)) * W, dout + (size_t)b * W, W);
}

/* The blocks, then the pooled rows' layer norm and projection. */
static void tower_top(struct clip_trainer *t, struct tower_pass *tp, const struct nn_block *layers, int n,
                      struct nn_block_act *acts, const float *h, const struct nn_layernorm *ln, int proj)
{
	const struct nn_params *p = &t->m->params;
	struct nn_arena *a = &t->arena;
	for (int l = 0; l < n; l++)
		h = nn_block_forward(&layers[l], p, a, &acts[l], h, tp->B, tp->T, NULL, NULL, 0);
	float *rows = nn_arena_floats(a, (size_t)tp->B * tp->W);
	gather(rows, h, tp->rows, tp->B, tp->T, tp->W);
	tp->pooled = nn_layernorm_forward(ln, p, a, &tp->ln_out, rows, tp->B);
	int E = t->m->cfg.embed_dim;
	tp->features = nn_arena_floats(a, (size_t)tp->B * E);
	nn->linear_forward(tp->features, tp->pooled, nn_param(p, proj), NULL, tp->B, tp->W, E);
}

/* The reverse of tower_top, given dfeatures [B, E] (backend): returns the
 * gradient of the blocks' input [B, T, W]. */
static float *tower_top_backward(struct clip_trainer *t, const struct tower_pass *tp, const struct nn_block *layers,
                                 int n, const struct nn_block_act *acts, const struct nn_layernorm *ln, int proj,
                                 const float *dfeatures)
{
	const struct nn_params *p = &t->m->params;
	struct nn_arena *a = &t->arena;
	int B = tp->B, W = tp->W, E = t->m->cfg.embed_dim;
	size_t nx = (size_t)B * tp->T * W;
	float *dpooled = nn_arena_zeros(a, (size_t)B * W), *drows = nn_arena_zeros(a, (size_t)B * W);
	nn->linear_backward(dpooled, nn_param_grad(p, proj), NULL, dfeatures, tp->pooled, nn_param(p, proj), B, W, E);
	nn_layernorm_backward(ln, p, &tp->ln_out, drows, dpooled);
	float *dh = nn_arena_zeros(a, nx);
	scatter_add(dh, drows, tp->rows, B, tp->T, W);
	for (int l = n - 1; l >= 0; l--) {
		float *dx = nn_arena_zeros(a, nx);
		nn_block_backward(&layers[l], p, a, &acts[l], dx, NULL, dh);
		dh = dx;
	}
	return dh;
}

static void vision_forward(struct clip_trainer *t, struct tower_pass *tp, const float *pixels, int B)
{
	struct clip_model *m = t->m;
	const struct clip_config *c = &m->cfg;
	const struct nn_params *p = &m->params;
	struct nn_arena *a = &t->arena;
	int W = c->vision.width, P = c->grid * c->grid, K = 3 * c->patch * c->patch;
	*tp = (struct tower_pass){ .B = B, .T = P + 1, .W = W };
	clip_patchify(t->patches, pixels, B, c->grid, c->patch);
	float *patches = nn_arena_floats(a, (size_t)B * P * K);
	nn->upload(patches, t->patches, (size_t)B * P * K * sizeof(float));
	tp->inp = patches;
	float *embeds = nn_arena_floats(a, (size_t)B * P * W);
	nn->linear_forward(embeds, patches, nn_param(p, m->vision.patch_embedding), NULL, B * P, K, W);
	const float *cls = nn_param(p, m->vision.class_embedding), *pos = nn_param(p, m->vision.position_embedding);
	float *x = nn_arena_floats(a, (size_t)B * tp->T * W);
	for (int b = 0; b < B; b++) {
		float *xb = x + (size_t)b * tp->T * W;
		nn->add(xb, cls, pos, W);
		nn->add(xb + W, embeds + (size_t)b * P * W, pos + W, (size_t)P * W);
	}
	const float *h = nn_layernorm_forward(&m->vision.pre_layrnorm, p, a, &tp->ln_in, x, B * tp->T);
	tower_top(t, tp, m->vision.layers, c->vision.layers, t->vision_acts, h, &m->vision.post_layernorm,
	          m->vision.projection);
}

static void vision_backward(struct clip_trainer *t, const struct tower_pass *tp, const float *dfeatures)
{
	struct clip_model *m = t->m;
	const struct clip_config *c = &m->cfg;
	const struct nn_params *p = &m->params;
	struct nn_arena *a = &t->arena;
	int B = tp->B, T = tp->T, W = tp->W, P = T - 1, K = 3 * c->patch * c->patch;
	float *dh = tower_top_backward(t, tp, m->vision.layers, c->vision.layers, t->vision_acts,
	                               &m->vision.post_layernorm, m->vision.projection, dfeatures);
	float *dx = nn_arena_zeros(a, (size_t)B * T * W);
	nn_layernorm_backward(&m->vision.pre_layrnorm, p, &tp->ln_in, dx, dh);
	float *dcls = nn_param_grad(p, m->vision.class_embedding), *dpos = nn_param_grad(p, m->vision.position_embedding);
	float *dembeds = nn_arena_floats(a, (size_t)B * P * W);
	for (int b = 0; b < B; b++) {
		const float *dxb = dx + (size_t)b * T * W;
		nn->accumulate(dcls, dxb, W);
		nn->accumulate(dpos, dxb, (size_t)T * W);
		nn->scale(dembeds + (size_t)b * P * W, dxb + W, 1.0f, (size_t)P * W);
	}
	nn->linear_backward(NULL, nn_param_grad(p, m->vision.patch_embedding), NULL, dembeds, tp->inp,
	                    nn_param(p, m->vision.patch_embedding), B * P, K, W);
}

/* -1 (errorf) for an id outside the vocabulary. */
static int text_forward(struct clip_trainer *t, struct tower_pass *tp, const int32_t *ids, int B)
{
	struct clip_model *m = t->m;
	const struct clip_config *c = &m->cfg;
	const struct nn_params *p = &m->params;
	struct nn_arena *a = &t->arena;
	int W = c->text.width, ctx = c->context, T = 1;
	for (int b = 0; b < B; b++) {
		const int32_t *row = ids + (size_t)b * ctx;
		for (int i = 0; i < ctx; i++)
			if (row[i] < 0 || row[i] >= c->vocab)
				return errorf("text %d: token id %d at position %d is outside the vocabulary of %d", b, row[i], i,
				              c->vocab);
		t->eot[b] = clip_eot_index(row, ctx);
		if (t->eot[b] + 1 > T)
			T = t->eot[b] + 1;
	}
	/* Causal attention: positions after the last end token cannot reach
	 * any pooled row, so they are not computed. */
	*tp = (struct tower_pass){ .B = B, .T = T, .W = W, .rows = t->eot };
	for (int b = 0; b < B; b++)
		memcpy(t->ids + (size_t)b * T, ids + (size_t)b * ctx, T * sizeof *t->ids);
	int32_t *dev_ids = nn_arena_bytes(a, (size_t)B * T * sizeof *dev_ids);
	nn->upload(dev_ids, t->ids, (size_t)B * T * sizeof *dev_ids);
	tp->inp = (const float *)dev_ids;
	float *x = nn_arena_floats(a, (size_t)B * T * W);
	nn->embedding_forward(x, dev_ids, nn_param(p, m->text.token_embedding), B * T, W);
	const float *pos = nn_param(p, m->text.position_embedding);
	for (int b = 0; b < B; b++)
		nn->add(x + (size_t)b * T * W, x + (size_t)b * T * W, pos, (size_t)T * W);
	tower_top(t, tp, m->text.layers, c->text.layers, t->text_acts, x, &m->text.final_layer_norm,
	          m->text.projection);
	return 0;
}

static void text_backward(struct clip_trainer *t, const struct tower_pass *tp, const float *dfeatures)
{
	struct clip_model *m = t->m;
	const struct nn_params *p = &m->params;
	int B = tp->B, T = tp->T, W = tp->W;
	float *dx = tower_top_backward(t, tp, m->text.layers, m->cfg.text.layers, t->text_acts,
	                               &m->text.final_layer_norm, m->text.projection, dfeatures);
	nn->embedding_backward(nn_param_grad(p, m->text.token_embedding), dx, (const int32_t *)tp->inp, B * T, W);
	float *dpos = nn_param_grad(p, m->text.position_embedding);
	for (int b = 0; b < B; b++)
		nn->accumulate(dpos, dx + (size_t)b * T * W, (size_t)T * W);
}

/* Both towers' forward passes; features in t->img, t->txt (host). */
static int forward(struct clip_trainer *t, const float *pixels, const int32_t *ids, int B, struct tower_pass *vis,
                   struct tower_pass *txt)
{
	size_t E = (size_t)t->m->cfg.embed_dim;
	grow(t, B);
	nn_arena_reset(&t->arena);
	if (text_forward(t, txt, ids, B) < 0)
		return -1;
	vision_forward(t, vis, pixels, B);
	nn->download(t->img, vis->features, B * E * sizeof(float));
	nn->download(t->txt, txt->features, B * E * sizeof(float));
	return 0;
}

int clip_trainer_features(struct clip_trainer *t, const float *pixels, const int32_t *ids, int B, float *img,
                          float *txt)
{
	struct tower_pass vis, tx;
	if (B <= 0)
		return errorf("an empty batch");
	if (forward(t, pixels, ids, B, &vis, &tx) < 0)
		return -1;
	size_t E = (size_t)t->m->cfg.embed_dim;
	memcpy(img, t->img, B * E * sizeof *img);
	memcpy(txt, t->txt, B * E * sizeof *txt);
	nn_arena_reset(&t->arena);
	return 0;
}

int clip_trainer_loss(struct clip_trainer *t, const float *pixels, const int32_t *ids, const int *group, int B,
                      float *loss)
{
	struct clip_model *m = t->m;
	struct nn_params *p = &m->params;
	int E = m->cfg.embed_dim;
	struct tower_pass vis, txt;
	if (B <= 0)
		return errorf("an empty batch");
	if (forward(t, pixels, ids, B, &vis, &txt) < 0)
		return -1;
	float log_scale, dlog_scale;
	nn->download(&log_scale, nn_param(p, m->logit_scale), sizeof log_scale);
	*loss = (float)clip_contrastive_loss(t->img, t->txt, group, B, E, log_scale, t->dimg, t->dtxt, &dlog_scale);
	t->last_logit_scale = expf(log_scale < LOG_SCALE_MAX ? log_scale : LOG_SCALE_MAX);

	float *d = nn_arena_floats(&t->arena, 1);
	nn->upload(d, &dlog_scale, sizeof dlog_scale);
	nn->accumulate(nn_param_grad(p, m->logit_scale), d, 1);
	float *dimg = nn_arena_floats(&t->arena, (size_t)B * E), *dtxt = nn_arena_floats(&t->arena, (size_t)B * E);
	nn->upload(dimg, t->dimg, (size_t)B * E * sizeof(float));
	nn->upload(dtxt, t->dtxt, (size_t)B * E * sizeof(float));
	vision_backward(t, &vis, dimg);
	text_backward(t, &txt, dtxt);
	nn_arena_reset(&t->arena);
	return 0;
}

int clip_trainer_step(struct clip_trainer *t, const float *pixels, const int32_t *ids, const int *group, int B,
                      float *loss)
{
	if (clip_trainer_loss(t, pixels, ids, group, B, loss) < 0)
		return -1;
	int rc = nn_optim_step(&t->opt);
	float *s = nn_param(&t->m->params, t->m->logit_scale), v;
	nn->download(&v, s, sizeof v);
	if (v > LOG_SCALE_MAX || v < 0) {
		v = v < 0 ? 0 : LOG_SCALE_MAX;
		nn->upload(s, &v, sizeof v);
	}
	return rc;
}
