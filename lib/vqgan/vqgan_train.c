/* Training a VQGAN: losses, the quantiser's training, codebook upkeep and
 * the trainer's checkpoints (see vqgan_train.h). */
#include "vqgan/vqgan_train.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/tool.h"
#include "nn/ops.h"
#include "nn/philox.h"
#include "vqgan/vqgan_io.h"

/* Laplace smoothing of the EMA cluster sizes, as in VQ-VAE-2. */
#define EMA_EPS 1e-5f
/* taming's clamp of the adaptive adversarial weight. */
#define MAX_ADAPTIVE_WEIGHT 1e4f
/* Keys the restarts' random stream apart from the data's (same seed). */
#define RESTART_STREAM 0x7265737461727473ull
/* The discriminator's initialisation apart from the model's. */
#define DISC_STREAM 0x64697363ull

struct vqgan_train_config vqgan_train_defaults(void)
{
	struct vqgan_train_config c = {
		.l1_weight = 1.0f, .l2_weight = 1.0f, .ema_decay = 0.99f, .restart_after = 200,
		.disc_start = -1, .disc_weight = 0.8f, .disc_adaptive = 1, .disc_ch = 64, .seed = 1,
	};
	return c;
}

/* Host buffers of a step, grown to the largest batch seen. */
struct vqgan_scratch {
	size_t nx, nz, npos, nlogits;
	float *y, *dy;          /* [B, C, H, W] */
	float *z, *zq, *dz;     /* [B, D, h, w] */
	int32_t *idx;           /* [B*h*w] */
	float *logits, *dlogits;
	float *dcode, *row;     /* [K, D], [D] */
	int64_t *counts;        /* [K] */
	double *sums;           /* [K, D] */
};

/* Resizes each of the n buffers in ps to `want` elements of `size` bytes
 * when *cap is smaller. */
static void grow(void **ps[], int n, size_t size, size_t *cap, size_t want)
{
	if (want <= *cap)
		return;
	for (int i = 0; i < n; i++)
		*ps[i] = xrealloc(*ps[i], want * size);
	*cap = want;
}

static void scratch_reserve(struct vqgan_scratch *s, size_t nx, size_t nz, size_t npos)
{
	grow((void **[]){ (void **)&s->y, (void **)&s->dy }, 2, sizeof(float), &s->nx, nx);
	grow((void **[]){ (void **)&s->z, (void **)&s->zq, (void **)&s->dz }, 3, sizeof(float), &s->nz, nz);
	grow((void **[]){ (void **)&s->idx }, 1, sizeof(int32_t), &s->npos, npos);
}

static void scratch_free(struct vqgan_scratch *s)
{
	if (!s)
		return;
	free(s->y);
	free(s->dy);
	free(s->z);
	free(s->zq);
	free(s->dz);
	free(s->idx);
	free(s->logits);
	free(s->dlogits);
	free(s->dcode);
	free(s->row);
	free(s->counts);
	free(s->sums);
	free(s);
}

/* ---- set-up ---- */

int vqgan_trainer_init(struct vqgan_trainer *t, struct vqgan *m, const struct vqgan_train_config *cfg,
                       const struct nn_optim_config *opt)
{
	memset(t, 0, sizeof *t);
	if (!m->params.grad)
		return errorf("the model was built without gradients");
	if (!(cfg->l1_weight >= 0) || !(cfg->l2_weight >= 0) || cfg->l1_weight + cfg->l2_weight <= 0)
		return errorf("reconstruction weights must be >= 0 and not both 0 (L1 %g, L2 %g)", cfg->l1_weight,
		              cfg->l2_weight);
	if (cfg->ema_codebook && !(cfg->ema_decay > 0 && cfg->ema_decay < 1))
		return errorf("the EMA decay must be in (0, 1), not %g", cfg->ema_decay);
	if (cfg->restart_after < 0)
		return errorf("codes restart after %lld unused steps: must be >= 0", (long long)cfg->restart_after);
	if (cfg->disc_start >= 0 && !(cfg->disc_weight >= 0))
		return errorf("the adversarial weight must be >= 0, not %g", cfg->disc_weight);
	if (opt->accum_steps != 1)
		return errorf("the trainer takes whole batches (accumulation %d)", opt->accum_steps);
	t->m = m;
	t->cfg = *cfg;
	t->codebook = nn_params_find(&m->params, "quantize.embedding.weight");
	t->last_layer = nn_params_find(&m->params, "decoder.conv_out.weight");
	if (t->codebook < 0 || t->last_layer < 0)
		return errorf("the model has no quantize.embedding.weight or decoder.conv_out.weight");
	t->K = m->cfg.n_embed;
	t->D = m->cfg.embed_dim;
	if (nn_optim_init(&t->opt, &m->params, opt) < 0)
		return -1;
	nn_optim_decay_matrices_only(&t->opt);
	nn_optim_set_decay(&t->opt, t->codebook, 0);

	size_t K = (size_t)t->K, D = (size_t)t->D;
	t->age = xcalloc(K, sizeof *t->age);
	/* Codes the first batch leaves unchosen restart at once, onto its
	 * latents: a data-dependent start instead of a random codebook far
	 * from where the encoder puts its outputs. */
	for (size_t k = 0; k < K; k++)
		t->age[k] = cfg->restart_after > 0 ? cfg->restart_after - 1 : 0;
	t->usage = xcalloc(K, sizeof *t->usage);
	if (cfg->ema_codebook) {
		/* Each code starts as a mean over a count of 1 at its current
		 * value, so that a code nothing is assigned to stays where it is
		 * (sum and count decay alike) instead of growing as a bare sum
		 * divided by a vanishing count would. */
		t->cluster_size = xmalloc(K * sizeof *t->cluster_size);
		t->embed_sum = xmalloc(K * D * sizeof *t->embed_sum);
		for (size_t k = 0; k < K; k++)
			t->cluster_size[k] = 1.0f;
		nn->download(t->embed_sum, nn_param(&m->params, t->codebook), K * D * sizeof(float));
	}
	struct vqgan_scratch *s = xcalloc(1, sizeof *s);
	s->dcode = xmalloc(K * D * sizeof *s->dcode);
	s->row = xmalloc(D * sizeof *s->row);
	s->counts = xmalloc(K * sizeof *s->counts);
	s->sums = xmalloc(K * D * sizeof *s->sums);
	t->scratch = s;

	if (cfg->disc_start >= 0) {
		struct vqgan_disc_config dc = {
			.in_channels = m->cfg.out_ch, .ch = cfg->disc_ch,
			.layers = cfg->disc_layers > 0 ? cfg->disc_layers : vqgan_disc_default_layers(m->cfg.resolution),
		};
		t->cfg.disc_layers = dc.layers;
		t->disc = xcalloc(1, sizeof *t->disc);
		if (vqgan_disc_init(t->disc, &dc, cfg->seed ^ DISC_STREAM) < 0 || nn_optim_init(&t->disc_opt, &t->disc->params, opt) < 0) {
			vqgan_trainer_free(t);
			return -1;
		}
		nn_optim_decay_matrices_only(&t->disc_opt);
		if (cfg->disc_adaptive) {
			size_t bytes = m->params.total * sizeof(float);
			t->grad_save = nn->alloc(bytes);
			if (!t->grad_save)
				die("out of %s memory for %zu bytes of gradients", nn->name, bytes);
		}
	}
	return 0;
}

void vqgan_trainer_free(struct vqgan_trainer *t)
{
	nn_optim_free(&t->opt);
	nn_arena_free(&t->arena);
	free(t->age);
	free(t->cluster_size);
	free(t->embed_sum);
	free(t->usage);
	if (t->disc) {
		nn_optim_free(&t->disc_opt);
		vqgan_disc_free(t->disc);
		free(t->disc);
	}
	if (t->grad_save)
		nn->free(t->grad_save);
	scratch_free(t->scratch);
	memset(t, 0, sizeof *t);
}

void vqgan_trainer_take_usage(struct vqgan_trainer *t, int64_t *counts)
{
	if (counts)
		memcpy(counts, t->usage, (size_t)t->K * sizeof *counts);
	memset(t->usage, 0, (size_t)t->K * sizeof *t->usage);
}

/* ---- measures ---- */

static int pixel_value(float v)
{
	uint8_t p;
	vqgan_pixels_from_output(&v, 1, 1, 1, &p);
	return p;
}

double vqgan_pixel_sq_err(const float *x, const float *y, size_t n)
{
	double sum = 0;
	for (size_t i = 0; i < n; i++) {
		int d = pixel_value(y[i]) - pixel_value(x[i]);
		sum += (double)(d * d);
	}
	return sum;
}

double vqgan_psnr(double sq_err, int64_t pixels)
{
	if (pixels <= 0 || sq_err <= 0)
		return 99.0;
	return 10.0 * log10(255.0 * 255.0 * (double)pixels / sq_err);
}

double vqgan_perplexity(const int64_t *counts, int K, int *used)
{
	int64_t total = 0;
	int n = 0;
	for (int k = 0; k < K; k++) {
		total += counts[k];
		n += counts[k] > 0;
	}
	if (used)
		*used = n;
	if (total == 0)
		return 0;
	double entropy = 0;
	for (int k = 0; k < K; k++)
		if (counts[k] > 0) {
			double p = (double)counts[k] / (double)total;
			entropy -= p * log(p);
		}
	return exp(entropy);
}

int vqgan_evaluate(struct vqgan *m, const float *x, int B, int H, int W, double *sq_err, int64_t *counts)
{
	const struct vqgan_config *c = &m->cfg;
	int f = vqgan_factor(c), h = H / f, w = W / f;
	size_t nx = (size_t)B * c->in_channels * H * W, npos = (size_t)B * h * w;
	int32_t *tokens = xmalloc(npos * sizeof *tokens);
	float *y = xmalloc((size_t)B * c->out_ch * H * W * sizeof *y);
	int rc = vqgan_encode(m, x, B, H, W, tokens, NULL);
	if (rc == 0)
		rc = vqgan_decode(m, tokens, B, h, w, y);
	if (rc == 0) {
		*sq_err += vqgan_pixel_sq_err(x, y, nx);
		for (size_t i = 0; i < npos; i++)
			counts[tokens[i]]++;
	}
	free(tokens);
	free(y);
	return rc;
}

/* ---- the step ---- */

/* l1 mean|y - x| + l2 mean (y - x)^2 and its gradient dy. */
static void reconstruction_loss(const struct vqgan_train_config *c, const float *x, const float *y, size_t n,
                                float *dy, struct vqgan_step_stats *s)
{
	double l1 = 0, l2 = 0;
	float g1 = c->l1_weight / (float)n, g2 = 2.0f * c->l2_weight / (float)n;
	for (size_t i = 0; i < n; i++) {
		float d = y[i] - x[i];
		l1 += fabsf(d);
		l2 += (double)d * d;
		dy[i] = g1 * (float)((d > 0) - (d < 0)) + g2 * d;
	}
	s->l1 = l1 / (double)n;
	s->l2 = l2 / (double)n;
	s->sq_err = vqgan_pixel_sq_err(x, y, n);
	s->pixels = (int64_t)n;
}

/* The commitment gradient into sc->dz and, without EMA, the codebook
 * loss's gradient into sc->dcode; counts each code's latents. */
static void quantizer_terms(struct vqgan_trainer *t, int B, int hw, struct vqgan_step_stats *s)
{
	struct vqgan_scratch *sc = t->scratch;
	int K = t->K, D = t->D;
	size_t nz = (size_t)B * D * hw;
	float beta = t->m->cfg.beta;
	float gz = 2.0f * beta / (float)nz, ge = 2.0f / (float)nz;
	memset(sc->counts, 0, (size_t)K * sizeof *sc->counts);
	if (!t->cfg.ema_codebook)
		memset(sc->dcode, 0, (size_t)K * D * sizeof *sc->dcode);
	double sq = 0;
	for (int b = 0; b < B; b++)
		for (int p = 0; p < hw; p++) {
			int k = sc->idx[(size_t)b * hw + p];
			sc->counts[k]++;
			for (int d = 0; d < D; d++) {
				size_t i = ((size_t)b * D + d) * hw + p;
				float diff = sc->z[i] - sc->zq[i];
				sq += (double)diff * diff;
				sc->dz[i] = gz * diff;
				if (!t->cfg.ema_codebook)
					sc->dcode[(size_t)k * D + d] -= ge * diff;
			}
		}
	double mse = sq / (double)nz;
	s->commit = beta * mse;
	s->codebook = t->cfg.ema_codebook ? 0 : mse;
}

/* Each code moves to the smoothed running mean of its latents. */
static void ema_codebook_update(struct vqgan_trainer *t, int B, int hw)
{
	struct vqgan_scratch *sc = t->scratch;
	int K = t->K, D = t->D;
	float decay = t->cfg.ema_decay;
	memset(sc->sums, 0, (size_t)K * D * sizeof *sc->sums);
	for (int b = 0; b < B; b++)
		for (int p = 0; p < hw; p++) {
			double *sum = sc->sums + (size_t)sc->idx[(size_t)b * hw + p] * D;
			for (int d = 0; d < D; d++)
				sum[d] += sc->z[((size_t)b * D + d) * hw + p];
		}
	double total = 0;
	for (int k = 0; k < K; k++) {
		t->cluster_size[k] = decay * t->cluster_size[k] + (1.0f - decay) * (float)sc->counts[k];
		total += t->cluster_size[k];
		for (int d = 0; d < D; d++) {
			float *e = &t->embed_sum[(size_t)k * D + d];
			*e = decay * *e + (1.0f - decay) * (float)sc->sums[(size_t)k * D + d];
		}
	}
	for (int k = 0; k < K; k++) {
		float n = (float)((t->cluster_size[k] + EMA_EPS) / (total + K * EMA_EPS) * total);
		for (int d = 0; d < D; d++)
			sc->dcode[(size_t)k * D + d] = t->embed_sum[(size_t)k * D + d] / n;
	}
	nn->upload(nn_param(&t->m->params, t->codebook), sc->dcode, (size_t)K * D * sizeof(float));
}

/* Ages the codes this step did not choose, and moves those unused for
 * restart_after steps onto random latents of the batch. */
static int restart_dead_codes(struct vqgan_trainer *t, int B, int hw)
{
	struct vqgan_scratch *sc = t->scratch;
	struct nn_params *P = &t->m->params;
	int K = t->K, D = t->D, restarts = 0;
	size_t npos = (size_t)B * hw, row_bytes = (size_t)D * sizeof(float);
	size_t base = P->items[t->codebook].offset;
	for (int k = 0; k < K; k++) {
		t->age[k] = sc->counts[k] ? 0 : t->age[k] + 1;
		if (t->cfg.restart_after <= 0 || t->age[k] < t->cfg.restart_after)
			continue;
		uint64_t e = (uint64_t)t->opt.step * (uint64_t)K + (uint64_t)k;
		uint32_t r = philox_block_at(t->cfg.seed ^ RESTART_STREAM, e).w[e & 3];
		size_t j = (size_t)(((uint64_t)r * npos) >> 32), b = j / hw, p = j % hw;
		for (int d = 0; d < D; d++)
			sc->row[d] = sc->z[(b * D + d) * hw + p];
		size_t at = base + (size_t)k * D;
		nn->upload(P->data + at, sc->row, row_bytes);
		nn->zero(t->opt.m + at, row_bytes);
		nn->zero(t->opt.v + at, row_bytes);
		if (t->cfg.ema_codebook) {
			t->cluster_size[k] = 1.0f;
			memcpy(t->embed_sum + (size_t)k * D, sc->row, row_bytes);
		}
		t->age[k] = 0;
		restarts++;
	}
	return restarts;
}

/* The L2 norm of one parameter's gradient. */
static double param_grad_norm(const struct nn_params *P, int index, struct nn_arena *a)
{
	float *out = nn_arena_floats(a, 1), ss;
	nn->sum_squares(out, nn_param_grad(P, index), P->items[index].numel);
	nn->download(&ss, out, sizeof ss);
	return sqrt((double)ss);
}

/* Decoder backward with the generator's adversarial loss -mean D(y) added
 * to the reconstruction gradient dy, weighed as configured. */
static int adversarial_backward(struct vqgan_trainer *t, const float *y, float *dy, float *dzq, int B, int H,
                                int W, struct vqgan_step_stats *s)
{
	struct vqgan *m = t->m;
	struct nn_arena *a = &t->arena;
	struct vqgan_scratch *sc = t->scratch;
	float *logits;
	if (vqgan_disc_forward(t->disc, a, y, B, H, W, &logits) < 0)
		return -1;
	size_t nl = (size_t)B * t->disc->OH * t->disc->OW;
	grow((void **[]){ (void **)&sc->logits, (void **)&sc->dlogits }, 2, sizeof(float), &sc->nlogits, 2 * nl);
	nn->download(sc->logits, logits, nl * sizeof(float));
	double sum = 0;
	for (size_t i = 0; i < nl; i++) {
		sum += sc->logits[i];
		sc->dlogits[i] = -1.0f / (float)nl;
	}
	s->gen = -sum / (double)nl;
	float *dlogits = nn_arena_floats(a, nl);
	nn->upload(dlogits, sc->dlogits, nl * sizeof(float));
	size_t nx = (size_t)B * m->cfg.out_ch * H * W;
	size_t nz = (size_t)B * m->cfg.embed_dim * (H / vqgan_factor(&m->cfg)) * (W / vqgan_factor(&m->cfg));
	float *dy_gen = nn_arena_zeros(a, nx);
	vqgan_disc_backward(t->disc, a, dy_gen, dlogits, 0);

	float w = t->cfg.disc_weight;
	if (!t->cfg.disc_adaptive) {
		nn->scale(dy_gen, dy_gen, w, nx);
		nn->accumulate(dy, dy_gen, nx);
		vqgan_decoder_backward(m, a, dzq, dy);
		s->disc_weight = w;
		return 0;
	}
	/* The balance needs both losses' gradients at the last layer: the
	 * generator's pass runs first and is set aside, then scaled in. */
	struct nn_params *P = &m->params;
	float *dzq_gen = nn_arena_zeros(a, nz);
	vqgan_decoder_backward(m, a, dzq_gen, dy_gen);
	double gen_norm = param_grad_norm(P, t->last_layer, a);
	nn->scale(t->grad_save, P->grad, 1.0f, P->total);
	nn_params_zero_grad(P);
	vqgan_decoder_backward(m, a, dzq, dy);
	double rec_norm = param_grad_norm(P, t->last_layer, a);
	double balance = rec_norm / (gen_norm + 1e-4);
	w *= (float)(balance < MAX_ADAPTIVE_WEIGHT ? balance : MAX_ADAPTIVE_WEIGHT);
	nn->scale(t->grad_save, t->grad_save, w, P->total);
	nn->accumulate(P->grad, t->grad_save, P->total);
	nn->scale(dzq_gen, dzq_gen, w, nz);
	nn->accumulate(dzq, dzq_gen, nz);
	s->disc_weight = w;
	return 0;
}

/* The discriminator's step on the hinge loss, real images x against the
 * reconstructions y (both backend memory, [B, C, H, W]). */
static int discriminator_step(struct vqgan_trainer *t, const float *x, const float *y, int B, int H, int W,
                              struct vqgan_step_stats *s)
{
	struct nn_arena *a = &t->arena;
	struct vqgan_scratch *sc = t->scratch;
	size_t nx = (size_t)B * t->m->cfg.out_ch * H * W;
	float *both = nn_arena_floats(a, 2 * nx), *logits;
	nn->scale(both, x, 1.0f, nx);
	nn->scale(both + nx, y, 1.0f, nx);
	if (vqgan_disc_forward(t->disc, a, both, 2 * B, H, W, &logits) < 0)
		return -1;
	size_t nl = (size_t)B * t->disc->OH * t->disc->OW;
	nn->download(sc->logits, logits, 2 * nl * sizeof(float));
	double real = 0, fake = 0;
	float g = 0.5f / (float)nl;
	for (size_t i = 0; i < nl; i++) {
		float lr = sc->logits[i], lf = sc->logits[nl + i];
		real += lr < 1 ? 1 - lr : 0;
		fake += lf > -1 ? 1 + lf : 0;
		sc->dlogits[i] = lr < 1 ? -g : 0;
		sc->dlogits[nl + i] = lf > -1 ? g : 0;
	}
	s->disc = 0.5 * (real + fake) / (double)nl;
	float *dlogits = nn_arena_floats(a, 2 * nl);
	nn->upload(dlogits, sc->dlogits, 2 * nl * sizeof(float));
	vqgan_disc_backward(t->disc, a, NULL, dlogits, 1);
	nn_optim_step(&t->disc_opt);
	return 0;
}

int vqgan_trainer_step(struct vqgan_trainer *t, const float *x, int B, int H, int W,
                       struct vqgan_step_stats *s)
{
	struct vqgan *m = t->m;
	const struct vqgan_config *c = &m->cfg;
	struct nn_arena *a = &t->arena;
	struct vqgan_scratch *sc = t->scratch;
	int f = vqgan_factor(c);
	memset(s, 0, sizeof *s);
	if (B < 1 || H < f || W < f || H % f || W % f)
		return errorf("a batch of %d images of %dx%d: the sides must be multiples of the downsampling "
		              "factor %d", B, H, W, f);
	int h = H / f, w = W / f, hw = h * w;
	size_t nx = (size_t)B * c->in_channels * H * W, nz = (size_t)B * c->embed_dim * hw;
	scratch_reserve(sc, nx, nz, (size_t)B * hw);
	nn_arena_reset(a);

	float *xd = nn_arena_floats(a, nx);
	nn->upload(xd, x, nx * sizeof(float));
	float *z = vqgan_encoder_forward(m, a, xd, B, H, W);
	int32_t *idx = nn_arena_bytes(a, (size_t)B * hw * sizeof *idx);
	float *zq = nn_arena_floats(a, nz);
	vqgan_quantize(m, z, B, h, w, idx, zq, NULL);
	float *y = vqgan_decoder_forward(m, a, zq, B, h, w);
	nn->download(sc->y, y, nx * sizeof(float));
	nn->download(sc->z, z, nz * sizeof(float));
	nn->download(sc->zq, zq, nz * sizeof(float));
	nn->download(sc->idx, idx, (size_t)B * hw * sizeof *idx);

	reconstruction_loss(&t->cfg, x, sc->y, nx, sc->dy, s);
	float *dy = nn_arena_floats(a, nx);
	nn->upload(dy, sc->dy, nx * sizeof(float));
	float *dzq = nn_arena_zeros(a, nz);
	int adversarial = t->disc && t->opt.step >= t->cfg.disc_start;
	if (adversarial) {
		if (adversarial_backward(t, y, dy, dzq, B, H, W, s) < 0)
			return -1;
	} else {
		vqgan_decoder_backward(m, a, dzq, dy);
	}

	/* Straight-through: z gets the decoder's gradient at zq, plus the
	 * commitment term; the codebook gets the codebook term. */
	quantizer_terms(t, B, hw, s);
	float *dz = nn_arena_floats(a, nz);
	nn->upload(dz, sc->dz, nz * sizeof(float));
	nn->accumulate(dzq, dz, nz);
	vqgan_encoder_backward(m, a, dzq);
	if (!t->cfg.ema_codebook) {
		size_t n = (size_t)t->K * t->D;
		float *dcode = nn_arena_floats(a, n);
		nn->upload(dcode, sc->dcode, n * sizeof(float));
		nn->accumulate(nn_param_grad(&m->params, t->codebook), dcode, n);
	}
	s->loss = t->cfg.l1_weight * s->l1 + t->cfg.l2_weight * s->l2 + s->codebook + s->commit +
	          s->disc_weight * s->gen;

	if (nn_optim_step(&t->opt) == NN_STEP_SKIPPED) {
		s->skipped = 1;
		return 0;
	}
	if (t->cfg.ema_codebook)
		ema_codebook_update(t, B, hw);
	for (int k = 0; k < t->K; k++)
		t->usage[k] += sc->counts[k];
	s->restarts = restart_dead_codes(t, B, hw);
	if (adversarial && discriminator_step(t, xd, y, B, H, W, s) < 0)
		return -1;
	return 0;
}

/* ---- checkpoints ---- */

#define TRAIN_STATE_FORMAT "knnd-vq-train-state"

char *vqgan_trainer_state_path(const char *weights_path, int prev)
{
	return nn_checkpoint_sibling_path(weights_path, prev ? ".train.prev.safetensors" : ".train.safetensors");
}

/* The options a resumed run must share with the saved one, as metadata. */
struct option_text {
	char key[32], value[48];
};

static int train_options(const struct vqgan_train_config *c, struct option_text *o)
{
	int n = 0;
#define OPT(k, ...) (snprintf(o[n].key, sizeof o[n].key, "%s", k), \
	             snprintf(o[n].value, sizeof o[n].value, __VA_ARGS__), n++)
	OPT("l1_weight", "%.9g", c->l1_weight);
	OPT("l2_weight", "%.9g", c->l2_weight);
	OPT("ema_codebook", "%d", c->ema_codebook);
	OPT("ema_decay", "%.9g", c->ema_codebook ? c->ema_decay : 0.0f);
	OPT("restart_after", "%lld", (long long)c->restart_after);
	OPT("disc_start", "%lld", (long long)c->disc_start);
	if (c->disc_start >= 0) {
		OPT("disc_weight", "%.9g", c->disc_weight);
		OPT("disc_adaptive", "%d", c->disc_adaptive);
		OPT("disc_ch", "%d", c->disc_ch);
		OPT("disc_layers", "%d", c->disc_layers);
	}
	OPT("seed", "%llu", (unsigned long long)c->seed);
#undef OPT
	return n;
}
#define MAX_TRAIN_OPTIONS 16

/* A tensor list with the names it owns. */
struct tensor_list {
	struct st_tensor t[64];
	int n;
};

static void list_add(struct tensor_list *l, const char *name, enum dtype dt, int ndim, const int64_t *shape,
                     const void *data)
{
	struct st_tensor *t = &l->t[l->n++];
	memset(t, 0, sizeof *t);
	t->name = xstrdup(name);
	t->dtype = dt;
	t->ndim = ndim;
	for (int d = 0; d < ndim; d++)
		t->shape[d] = shape[d];
	t->data = data;
}

static void list_free(struct tensor_list *l)
{
	for (int i = 0; i < l->n; i++)
		free((char *)l->t[i].name);
	l->n = 0;
}

/* The discriminator's weights and AdamW moments as "disc.", "disc_m." and
 * "disc_v." tensors; host copies in host[3]. */
static void list_disc(struct tensor_list *l, const struct vqgan_trainer *t, float *host[3])
{
	const struct nn_params *P = &t->disc->params;
	const float *src[3] = { P->data, t->disc_opt.m, t->disc_opt.v };
	const char *prefix[3] = { "disc.", "disc_m.", "disc_v." };
	for (int s = 0; s < 3; s++) {
		host[s] = xmalloc(P->total * sizeof(float));
		nn->download(host[s], src[s], P->total * sizeof(float));
		for (int i = 0; i < P->n; i++) {
			char name[300];
			snprintf(name, sizeof name, "%s%s", prefix[s], P->items[i].name);
			list_add(l, name, DT_FLOAT32, P->items[i].ndim, P->items[i].shape, host[s] + P->items[i].offset);
		}
	}
}

static int write_train_state(struct vqgan_trainer *t, const char *path, const struct st_meta *meta, int nmeta)
{
	struct option_text opts[MAX_TRAIN_OPTIONS];
	int nopts = train_options(&t->cfg, opts);
	struct st_meta *all = xcalloc((size_t)(nopts + nmeta + 4), sizeof *all);
	char step[32], disc_step[32], disc_skipped[32];
	snprintf(step, sizeof step, "%" PRId64, t->opt.step);
	int n = 0;
	all[n++] = (struct st_meta){ "format", TRAIN_STATE_FORMAT };
	all[n++] = (struct st_meta){ "step", step };
	if (t->disc) {
		snprintf(disc_step, sizeof disc_step, "%" PRId64, t->disc_opt.step);
		snprintf(disc_skipped, sizeof disc_skipped, "%" PRId64, t->disc_opt.skipped_steps);
		all[n++] = (struct st_meta){ "disc_step", disc_step };
		all[n++] = (struct st_meta){ "disc_skipped_steps", disc_skipped };
	}
	for (int i = 0; i < nopts; i++)
		all[n++] = (struct st_meta){ opts[i].key, opts[i].value };
	for (int i = 0; i < nmeta; i++)
		all[n++] = meta[i];

	struct tensor_list l = { .n = 0 };
	int64_t K = t->K, D = t->D;
	list_add(&l, "codebook.age", DT_INT64, 1, &K, t->age);
	if (t->cfg.ema_codebook) {
		list_add(&l, "codebook.cluster_size", DT_FLOAT32, 1, &K, t->cluster_size);
		list_add(&l, "codebook.embed_sum", DT_FLOAT32, 2, (int64_t[]){ K, D }, t->embed_sum);
	}
	float *host[3] = { NULL, NULL, NULL };
	if (t->disc)
		list_disc(&l, t, host);
	int rc = st_write(path, l.t, l.n, all, n);
	list_free(&l);
	for (int s = 0; s < 3; s++)
		free(host[s]);
	free(all);
	return rc;
}

int vqgan_trainer_save(struct vqgan_trainer *t, const char *path, const struct nn_train_position *pos,
                       const struct st_meta *meta, int nmeta)
{
	char *cur = vqgan_trainer_state_path(path, 0), *prev = vqgan_trainer_state_path(path, 1);
	char *config = vqgan_config_json(&t->m->cfg);
	int rc = 0;
	/* The old state stays (as prev) until the new weights are in place. */
	if (rename(cur, prev) < 0 && errno != ENOENT)
		rc = errorf("%s: cannot rename to %s: %s", cur, prev, strerror(errno));
	if (rc == 0 && write_train_state(t, cur, meta, nmeta) < 0)
		rc = error_prefix("%s", cur);
	if (rc == 0)
		rc = nn_checkpoint_save(path, &t->m->params, &t->opt, pos, config);
	if (rc == 0 && unlink(prev) < 0 && errno != ENOENT)
		rc = errorf("%s: cannot remove: %s", prev, strerror(errno));
	free(config);
	free(cur);
	free(prev);
	return rc;
}

/* ---- resuming ---- */

static int meta_int(const struct st_file *f, const char *key, int64_t *out)
{
	const char *v = st_metadata(f, key);
	char *end;
	if (!v)
		return -1;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || end == v || *end)
		return -1;
	*out = x;
	return 0;
}

static int check_meta(const struct st_file *f, const char *path, const char *key, const char *want)
{
	const char *have = st_metadata(f, key);
	if (!have)
		return errorf("%s: no '%s' in the trainer state", path, key);
	if (strcmp(have, want))
		return errorf("%s: the run was trained with %s=%s, this one asks for %s=%s", path, key, have, key, want);
	return 0;
}

/* Copies tensor `name` of f (dtype dt, n elements) to dst; 0 or -1. */
static int read_tensor(const struct st_file *f, const char *path, const char *name, enum dtype dt, size_t n,
                       void *dst)
{
	const struct st_entry *e = st_find(f, name);
	if (!e)
		return errorf("%s: tensor '%s' is missing", path, name);
	if (e->dtype != dt || e->numel != n)
		return errorf("%s: tensor '%s' is %s with %zu elements, expected %s with %zu", path, name,
		              st_dtype_name(e->dtype), e->numel, st_dtype_name(dt), n);
	memcpy(dst, e->data, e->nbytes);
	return 0;
}

/* A trainer state as read from its file, before it is applied. */
struct train_state {
	int64_t *age;
	float *cluster_size, *embed_sum;
	float *disc[3]; /* weights, AdamW m and v */
	int64_t disc_step, disc_skipped;
};

static void train_state_free(struct train_state *st)
{
	free(st->age);
	free(st->cluster_size);
	free(st->embed_sum);
	for (int s = 0; s < 3; s++)
		free(st->disc[s]);
	memset(st, 0, sizeof *st);
}

/* Checks the trainer state file against this trainer, its options and the
 * weights' step, and reads it into st. */
static int read_train_state(const struct vqgan_trainer *t, const struct st_file *f, const char *path,
                            int64_t step, const struct st_meta *meta, int nmeta, struct train_state *st)
{
	memset(st, 0, sizeof *st);
	const char *format = st_metadata(f, "format");
	if (!format || strcmp(format, TRAIN_STATE_FORMAT))
		return errorf("%s: not a vq-train state file", path);
	int64_t saved_step;
	if (meta_int(f, "step", &saved_step) < 0)
		return errorf("%s: no step in the trainer state", path);
	if (saved_step != step)
		return errorf("%s: the trainer state is of step %lld, the weights of step %lld", path,
		              (long long)saved_step, (long long)step);
	struct option_text opts[MAX_TRAIN_OPTIONS];
	int nopts = train_options(&t->cfg, opts);
	for (int i = 0; i < nopts; i++)
		if (check_meta(f, path, opts[i].key, opts[i].value) < 0)
			return -1;
	for (int i = 0; i < nmeta; i++)
		if (check_meta(f, path, meta[i].key, meta[i].value) < 0)
			return -1;
	if (t->disc && (meta_int(f, "disc_step", &st->disc_step) < 0 ||
	                meta_int(f, "disc_skipped_steps", &st->disc_skipped) < 0))
		return errorf("%s: no discriminator step in the trainer state", path);

	size_t K = (size_t)t->K, KD = K * t->D;
	st->age = xmalloc(K * sizeof *st->age);
	int rc = read_tensor(f, path, "codebook.age", DT_INT64, K, st->age);
	if (rc == 0 && t->cfg.ema_codebook) {
		st->cluster_size = xmalloc(K * sizeof(float));
		st->embed_sum = xmalloc(KD * sizeof(float));
		rc = read_tensor(f, path, "codebook.cluster_size", DT_FLOAT32, K, st->cluster_size);
		if (rc == 0)
			rc = read_tensor(f, path, "codebook.embed_sum", DT_FLOAT32, KD, st->embed_sum);
	}
	const struct nn_params *DP = t->disc ? &t->disc->params : NULL;
	const char *prefix[3] = { "disc.", "disc_m.", "disc_v." };
	for (int s = 0; s < 3 && DP && rc == 0; s++) {
		st->disc[s] = xcalloc(DP->total, sizeof(float));
		for (int i = 0; i < DP->n && rc == 0; i++) {
			char name[300];
			snprintf(name, sizeof name, "%s%s", prefix[s], DP->items[i].name);
			rc = read_tensor(f, path, name, DT_FLOAT32, DP->items[i].numel, st->disc[s] + DP->items[i].offset);
		}
	}
	if (rc < 0)
		train_state_free(st);
	return rc;
}

static void apply_train_state(struct vqgan_trainer *t, const struct train_state *st)
{
	size_t K = (size_t)t->K, KD = K * t->D;
	memcpy(t->age, st->age, K * sizeof *st->age);
	if (t->cfg.ema_codebook) {
		memcpy(t->cluster_size, st->cluster_size, K * sizeof(float));
		memcpy(t->embed_sum, st->embed_sum, KD * sizeof(float));
	}
	if (t->disc) {
		size_t bytes = t->disc->params.total * sizeof(float);
		nn->upload(t->disc->params.data, st->disc[0], bytes);
		nn->upload(t->disc_opt.m, st->disc[1], bytes);
		nn->upload(t->disc_opt.v, st->disc[2], bytes);
		t->disc_opt.step = st->disc_step;
		t->disc_opt.skipped_steps = st->disc_skipped;
		t->disc_opt.micro_step = 0;
	}
}

/* Opens whichever trainer state (current or previous) is of `step`;
 * *which says which. NULL (errorf) if neither. */
static struct st_file *open_train_state(const char *cur, const char *prev, int64_t step, int *which)
{
	const char *paths[2] = { cur, prev };
	char first[512] = "";
	for (int i = 0; i < 2; i++) {
		struct st_file *f = st_open(paths[i]);
		int64_t s;
		if (f && meta_int(f, "step", &s) == 0 && s == step) {
			*which = i;
			return f;
		}
		if (i == 0)
			snprintf(first, sizeof first, "%s", f ? "it is of another step" : error_message());
		if (f)
			st_close(f);
	}
	errorf("%s: no trainer state of step %lld (%s)", cur, (long long)step, first);
	return NULL;
}

int vqgan_trainer_load(struct vqgan_trainer *t, const char *path, struct nn_train_position *pos,
                       const struct st_meta *meta, int nmeta)
{
	struct st_file *w = st_open(path);
	if (!w)
		return -1;
	int64_t step;
	int rc = meta_int(w, "step", &step);
	st_close(w);
	if (rc < 0)
		return errorf("%s: not a vq-train checkpoint (no step in its metadata)", path);
	char *cur = vqgan_trainer_state_path(path, 0), *prev = vqgan_trainer_state_path(path, 1);
	int which = 0;
	struct train_state st = { 0 };
	struct st_file *f = open_train_state(cur, prev, step, &which);
	rc = f ? read_train_state(t, f, which ? prev : cur, step, meta, nmeta, &st) : -1;
	/* Everything is checked before the weights and optimiser state load
	 * (which change nothing when they fail); only then is it applied. */
	if (rc == 0)
		rc = nn_checkpoint_load(path, &t->m->params, &t->opt, pos, 0);
	if (rc == 0 && t->opt.step != step)
		rc = errorf("%s: the weights say step %lld, the optimiser state %lld", path, (long long)step,
		            (long long)t->opt.step);
	if (rc == 0)
		apply_train_state(t, &st);
	/* A crash between the two saves left a newer state beside the weights'
	 * (.prev): the weights' one becomes current again. */
	if (rc == 0 && which == 1 && rename(prev, cur) < 0)
		rc = errorf("%s: cannot rename to %s: %s", prev, cur, strerror(errno));
	train_state_free(&st);
	if (f)
		st_close(f);
	free(cur);
	free(prev);
	return rc;
}
