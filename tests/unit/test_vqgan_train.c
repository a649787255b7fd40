/* VQGAN training (lib/vqgan/vqgan_train.c, vqgan_disc.c): the loss falls,
 * checkpoints resume bit for bit and load like any VQGAN, the codebook's
 * upkeep (EMA updates, dead-code restarts, the codebook gradient) does
 * what it says, the discriminator's gradients match finite differences,
 * and bad set-ups are refused with clear messages. Tiny models (8x8
 * images, factor 2) keep the whole file fast under the sanitizers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "nn/gradcheck.h"
#include "nn/ops.h"
#include "nn/philox.h"
#include "test.h"
#include "vqgan/vqgan.h"
#include "vqgan/vqgan_disc.h"
#include "vqgan/vqgan_train.h"

#define SIDE 8
#define BATCH 4
#define PER_IMAGE (3 * SIDE * SIDE)
#define DATA_BATCHES 2 /* the training set: 8 images */

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
	return test_join(tmpdir, name);
}

static struct vqgan_config tiny_config(void)
{
	struct vqgan_config c = {
		.in_channels = 3, .out_ch = 3, .ch = 32, .levels = 2, .ch_mult = { 1, 2 }, .num_res_blocks = 1,
		.z_channels = 8, .embed_dim = 8, .n_embed = 16, .resolution = SIDE, .beta = 0.25f,
	};
	return c;
}

static struct nn_optim_config tiny_optim(int64_t steps)
{
	struct nn_optim_config o = nn_optim_defaults();
	o.lr = 2e-3f;
	o.beta1 = 0.5f;
	o.beta2 = 0.9f;
	o.weight_decay = 0;
	o.warmup_steps = 2;
	o.decay_steps = steps;
	o.min_lr = 2e-4f;
	return o;
}

/* Batch `index` of smooth colour ramps: each channel is tanh of a random
 * plane, the kind of structure a small autoencoder can learn quickly. */
static void synthetic_batch(float *x, int index)
{
	for (int b = 0; b < BATCH; b++)
		for (int c = 0; c < 3; c++) {
			float z[4];
			philox_normal4(77, (uint64_t)((index * BATCH + b) * 3 + c) * 4, z);
			for (int y = 0; y < SIDE; y++)
				for (int i = 0; i < SIDE; i++) {
					float v = z[0] + z[1] * (i - 3.5f) / 4 + z[2] * (y - 3.5f) / 4;
					x[((size_t)b * 3 + c) * SIDE * SIDE + y * SIDE + i] = tanhf(v);
				}
		}
}

static void make_model(struct vqgan *m, uint64_t seed)
{
	struct vqgan_config c = tiny_config();
	vqgan_init(m, &c, 1);
	vqgan_init_random(m, seed);
}

/* Runs steps [first, last) of the synthetic data. */
static int train_steps(struct vqgan_trainer *t, int first, int last, double *first_loss, double *last_loss)
{
	float x[BATCH * PER_IMAGE];
	for (int i = first; i < last; i++) {
		struct vqgan_step_stats s;
		synthetic_batch(x, i % DATA_BATCHES);
		if (vqgan_trainer_step(t, x, BATCH, SIDE, SIDE, &s) < 0)
			return -1;
		if (i == first && first_loss)
			*first_loss = s.loss;
		if (last_loss)
			*last_loss = i == first ? s.loss : *last_loss + s.loss;
	}
	if (last_loss)
		*last_loss /= last - first;
	return 0;
}

/* PSNR of the model's reconstructions (through the tokens) of batch 0. */
static double psnr_of(struct vqgan *m)
{
	float x[BATCH * PER_IMAGE];
	double sq = 0;
	int64_t counts[16] = { 0 };
	synthetic_batch(x, 0);
	if (vqgan_evaluate(m, x, BATCH, SIDE, SIDE, &sq, counts) < 0)
		return -1;
	return vqgan_psnr(sq, BATCH * PER_IMAGE);
}

/* 60 steps over 8 images of ramps: the loss ends well below its start
 * (about a quarter of it) and the reconstruction gains several dB. */
static void test_loss_falls(void)
{
	struct vqgan m;
	make_model(&m, 1);
	struct vqgan_trainer t;
	struct vqgan_train_config tc = vqgan_train_defaults();
	tc.restart_after = 10;
	struct nn_optim_config oc = tiny_optim(60);
	CHECK_MSG(vqgan_trainer_init(&t, &m, &tc, &oc) == 0, "%s", error_message());
	double before = psnr_of(&m), first = 0, late = 0;
	CHECK_MSG(train_steps(&t, 0, 50, &first, NULL) == 0, "%s", error_message());
	CHECK_MSG(train_steps(&t, 50, 60, NULL, &late) == 0, "%s", error_message());
	double after = psnr_of(&m);
	CHECK_MSG(late < 0.4 * first, "loss %g at the start, %g over the last 10 steps", first, late);
	CHECK_MSG(after > before + 5, "PSNR %.2f dB before, %.2f after", before, after);
	int64_t counts[16];
	int used;
	vqgan_trainer_take_usage(&t, counts);
	double ppl = vqgan_perplexity(counts, 16, &used);
	CHECK_MSG(used >= 8 && ppl > 4, "%d codes used, perplexity %.2f", used, ppl);
	vqgan_trainer_free(&t);
	vqgan_free(&m);
}

/* Training with everything that has state (EMA codebook, restarts,
 * adaptive discriminator), interrupted by a save and a fresh load,
 * ends bit for bit where an uninterrupted run does. */
static void test_resume_exact(void)
{
	struct vqgan_train_config tc = vqgan_train_defaults();
	tc.ema_codebook = 1;
	tc.restart_after = 2;
	tc.disc_start = 2;
	tc.disc_ch = 16;
	struct nn_optim_config oc = tiny_optim(8);
	struct st_meta meta[1] = { { "data_batch", "4" } };
	struct nn_train_position pos = { .rng_seed = 3, .rng_offset = 20, .data_pos = 20 }, got;

	struct vqgan a, b;
	struct vqgan_trainer ta, tb;
	make_model(&a, 5);
	CHECK_MSG(vqgan_trainer_init(&ta, &a, &tc, &oc) == 0, "%s", error_message());
	CHECK_MSG(train_steps(&ta, 0, 8, NULL, NULL) == 0, "%s", error_message());

	make_model(&b, 5);
	CHECK_MSG(vqgan_trainer_init(&tb, &b, &tc, &oc) == 0, "%s", error_message());
	CHECK_MSG(train_steps(&tb, 0, 5, NULL, NULL) == 0, "%s", error_message());
	CHECK_MSG(vqgan_trainer_save(&tb, tmp_path("r.safetensors"), &pos, meta, 1) == 0, "%s", error_message());
	vqgan_trainer_free(&tb);
	vqgan_free(&b);

	CHECK_MSG(vqgan_load(&b, tmp_path("r.safetensors"), NULL, 1) == 0, "%s", error_message());
	CHECK_MSG(vqgan_trainer_init(&tb, &b, &tc, &oc) == 0, "%s", error_message());
	CHECK_MSG(vqgan_trainer_load(&tb, tmp_path("r.safetensors"), &got, meta, 1) == 0, "%s", error_message());
	CHECK(got.data_pos == 20 && got.rng_seed == 3 && tb.opt.step == 5 && tb.disc_opt.step == 3);
	CHECK_MSG(train_steps(&tb, 5, 8, NULL, NULL) == 0, "%s", error_message());

	CHECK(a.params.total == b.params.total);
	CHECK_MSG(!memcmp(a.params.data, b.params.data, a.params.total * sizeof(float)),
	          "resumed weights differ from the uninterrupted run's");
	CHECK(!memcmp(ta.disc->params.data, tb.disc->params.data, ta.disc->params.total * sizeof(float)));
	CHECK(!memcmp(ta.embed_sum, tb.embed_sum, 16 * 8 * sizeof(float)));

	/* Options that differ from the saved run's are refused. */
	struct st_meta other[1] = { { "data_batch", "8" } };
	struct nn_train_position p2;
	CHECK(vqgan_trainer_load(&tb, tmp_path("r.safetensors"), &p2, other, 1) < 0);
	CHECK_MSG(strstr(error_message(), "data_batch=4") && strstr(error_message(), "data_batch=8"), "%s",
	          error_message());
	vqgan_trainer_free(&ta);
	vqgan_trainer_free(&tb);
	vqgan_free(&a);
	vqgan_free(&b);

	struct vqgan c;
	struct vqgan_trainer tcn;
	make_model(&c, 5);
	tc.ema_decay = 0.9f;
	CHECK(vqgan_trainer_init(&tcn, &c, &tc, &oc) == 0);
	CHECK(vqgan_trainer_load(&tcn, tmp_path("r.safetensors"), &p2, meta, 1) < 0);
	CHECK_MSG(strstr(error_message(), "ema_decay=0.99"), "%s", error_message());
	vqgan_trainer_free(&tcn);
	vqgan_free(&c);
	for (int prev = 0; prev < 2; prev++) {
		char *s = vqgan_trainer_state_path(tmp_path("r.safetensors"), prev);
		unlink(s);
		free(s);
	}
	unlink(tmp_path("r.safetensors"));
	unlink(tmp_path("r.state.safetensors"));
}

/* A crash between the trainer state and the weights leaves the next
 * step's state beside the old weights, the old state kept as .prev;
 * loading picks the one that matches and makes it current again. */
static void test_resume_after_crash_between_files(void)
{
	struct vqgan_train_config tc = vqgan_train_defaults();
	tc.ema_codebook = 1;
	struct nn_optim_config oc = tiny_optim(6);
	struct nn_train_position pos = { 0 }, got;
	struct vqgan m;
	struct vqgan_trainer t;
	make_model(&m, 9);
	CHECK(vqgan_trainer_init(&t, &m, &tc, &oc) == 0);
	CHECK(train_steps(&t, 0, 2, NULL, NULL) == 0);
	const char *path = tmp_path("c.safetensors"), *later = tmp_path("d.safetensors");
	CHECK_MSG(vqgan_trainer_save(&t, path, &pos, NULL, 0) == 0, "%s", error_message());
	CHECK(train_steps(&t, 2, 3, NULL, NULL) == 0);
	CHECK(vqgan_trainer_save(&t, later, &pos, NULL, 0) == 0);
	char *cur = vqgan_trainer_state_path(path, 0), *prev = vqgan_trainer_state_path(path, 1);
	char *later_state = vqgan_trainer_state_path(later, 0);
	/* What the save of step 3 leaves had it died before the weights. */
	CHECK(rename(cur, prev) == 0 && rename(later_state, cur) == 0);
	vqgan_trainer_free(&t);
	vqgan_free(&m);

	make_model(&m, 9);
	CHECK(vqgan_trainer_init(&t, &m, &tc, &oc) == 0);
	CHECK_MSG(vqgan_trainer_load(&t, path, &got, NULL, 0) == 0, "%s", error_message());
	CHECK(t.opt.step == 2 && access(prev, F_OK) != 0);
	struct st_file *f = st_open(cur);
	CHECK(f && !strcmp(st_metadata(f, "step"), "2"));
	if (f)
		st_close(f);
	vqgan_trainer_free(&t);
	vqgan_free(&m);
	const char *files[] = { cur, path, tmp_path("c.state.safetensors"), later, tmp_path("d.state.safetensors") };
	for (size_t i = 0; i < sizeof files / sizeof *files; i++)
		unlink(files[i]);
	free(cur);
	free(prev);
	free(later_state);
}

/* The weights file is an ordinary VQGAN checkpoint: loaded with vqgan_load
 * it tokenizes exactly as the trained model does. */
static void test_output_loads(void)
{
	struct vqgan m, back;
	struct vqgan_trainer t;
	make_model(&m, 2);
	struct vqgan_train_config tc = vqgan_train_defaults();
	struct nn_optim_config oc = tiny_optim(3);
	CHECK(vqgan_trainer_init(&t, &m, &tc, &oc) == 0);
	CHECK(train_steps(&t, 0, 3, NULL, NULL) == 0);
	struct nn_train_position pos = { 0 };
	CHECK_MSG(vqgan_trainer_save(&t, tmp_path("o.safetensors"), &pos, NULL, 0) == 0, "%s", error_message());
	CHECK_MSG(vqgan_load(&back, tmp_path("o.safetensors"), NULL, 0) == 0, "%s", error_message());
	struct vqgan_config a = m.cfg, b = back.cfg;
	CHECK(a.n_embed == b.n_embed && a.embed_dim == b.embed_dim && a.ch == b.ch && a.levels == b.levels &&
	      a.num_res_blocks == b.num_res_blocks && a.resolution == b.resolution && a.beta == b.beta);
	float x[BATCH * PER_IMAGE], y1[BATCH * PER_IMAGE], y2[BATCH * PER_IMAGE];
	int32_t k1[BATCH * 16], k2[BATCH * 16];
	synthetic_batch(x, 3);
	CHECK(vqgan_encode(&m, x, BATCH, SIDE, SIDE, k1, NULL) == 0);
	CHECK(vqgan_encode(&back, x, BATCH, SIDE, SIDE, k2, NULL) == 0);
	CHECK(!memcmp(k1, k2, sizeof k1));
	CHECK(vqgan_decode(&m, k1, BATCH, 4, 4, y1) == 0);
	CHECK(vqgan_decode(&back, k2, BATCH, 4, 4, y2) == 0);
	CHECK(!memcmp(y1, y2, sizeof y1));
	vqgan_free(&back);
	vqgan_trainer_free(&t);
	vqgan_free(&m);
	char *s = vqgan_trainer_state_path(tmp_path("o.safetensors"), 0);
	unlink(s);
	free(s);
	unlink(tmp_path("o.safetensors"));
	unlink(tmp_path("o.state.safetensors"));
}

/* What the encoder and quantiser make of batch 0 before a step. */
static void latents_of(struct vqgan *m, const float *x, float *z, int32_t *idx)
{
	struct nn_arena a = { 0 };
	float *zd = vqgan_encoder_forward(m, &a, x, BATCH, SIDE, SIDE);
	float zq[BATCH * 8 * 16];
	memcpy(z, zd, sizeof zq);
	vqgan_quantize(m, zd, BATCH, 4, 4, idx, zq, NULL);
	nn_arena_free(&a);
}

/* Code k's row, moved far from every latent so that nothing chooses it. */
static void banish_code(struct vqgan *m, int k)
{
	float *E = nn_param(&m->params, nn_params_find(&m->params, "quantize.embedding.weight"));
	for (int d = 0; d < 8; d++)
		E[k * 8 + d] = 100.0f + d;
}

/* Whether row [8] is exactly one of the latents z [BATCH, 8, 4, 4]. */
static int on_a_latent(const float *row, const float *z)
{
	for (int i = 0; i < BATCH * 16; i++) {
		int same = 1;
		for (int d = 0; d < 8; d++)
			same &= row[d] == z[((i / 16) * 8 + d) * 16 + i % 16];
		if (same)
			return 1;
	}
	return 0;
}

/* One EMA step moves each chosen code to the smoothed mean of its
 * latents; the codes the first batch leaves unchosen start over on its
 * latents. Later an unused code stays put until it has been unused for
 * restart_after steps, then moves onto a latent. */
static void test_ema_codebook_and_restart(void)
{
	struct vqgan m;
	struct vqgan_trainer t;
	make_model(&m, 4);
	struct vqgan_train_config tc = vqgan_train_defaults();
	tc.ema_codebook = 1;
	tc.ema_decay = 0.8f;
	tc.restart_after = 2;
	struct nn_optim_config oc = tiny_optim(4);
	CHECK(vqgan_trainer_init(&t, &m, &tc, &oc) == 0);
	int ci = nn_params_find(&m.params, "quantize.embedding.weight");
	float *E = nn_param(&m.params, ci), E0[16 * 8];
	memcpy(E0, E, sizeof E0);

	float x[BATCH * PER_IMAGE], z[BATCH * 8 * 16];
	int32_t idx[BATCH * 16];
	synthetic_batch(x, 0);
	latents_of(&m, x, z, idx);
	double cs[16], sum[16][8], total = 0;
	memset(sum, 0, sizeof sum);
	for (int k = 0; k < 16; k++)
		cs[k] = 0.8;
	for (int i = 0; i < BATCH * 16; i++) {
		cs[idx[i]] += 0.2;
		for (int d = 0; d < 8; d++)
			sum[idx[i]][d] += z[((i / 16) * 8 + d) * 16 + i % 16];
	}
	for (int k = 0; k < 16; k++)
		total += cs[k];
	struct vqgan_step_stats s;
	CHECK(vqgan_trainer_step(&t, x, BATCH, SIDE, SIDE, &s) == 0);
	double worst = 0;
	int used = 0, restarted = 0;
	for (int k = 0; k < 16; k++) {
		if (cs[k] == 0.8) {
			restarted += on_a_latent(E + k * 8, z);
			continue;
		}
		double n = (cs[k] + 1e-5) / (total + 16 * 1e-5) * total;
		for (int d = 0; d < 8; d++) {
			double want = (0.8 * E0[k * 8 + d] + 0.2 * sum[k][d]) / n;
			worst = fmax(worst, fabs(E[k * 8 + d] - want) / fmax(1, fabs(want)));
		}
		used++;
	}
	CHECK_MSG(worst < 1e-5, "EMA codebook off by %g (relative)", worst);
	CHECK_MSG(used >= 1 && used < 16, "%d codes used", used);
	CHECK_MSG(restarted == 16 - used && s.restarts == 16 - used, "%d unused codes, %d restarted onto latents, "
	          "%d restarts reported", 16 - used, restarted, s.restarts);
	CHECK(s.codebook == 0 && s.commit > 0);

	/* Code 5, moved far from everything, keeps its value while unused
	 * (its sum and count decay alike) ... */
	for (int d = 0; d < 8; d++)
		E[5 * 8 + d] = t.embed_sum[5 * 8 + d] = 100.0f + d;
	t.cluster_size[5] = 1;
	synthetic_batch(x, 1);
	CHECK(vqgan_trainer_step(&t, x, BATCH, SIDE, SIDE, &s) == 0);
	CHECK_NEAR(E[5 * 8 + 3], 103.0f, 1e-2);
	CHECK(t.age[5] == 1);
	/* ... until it has been unused for two steps: then it sits exactly on
	 * one latent of that step's batch. */
	synthetic_batch(x, 2);
	latents_of(&m, x, z, idx);
	CHECK(vqgan_trainer_step(&t, x, BATCH, SIDE, SIDE, &s) == 0);
	CHECK_MSG(s.restarts >= 1 && t.age[5] == 0, "%d restarts, age %lld", s.restarts, (long long)t.age[5]);
	CHECK_MSG(on_a_latent(E + 5 * 8, z), "restarted code 5 is (%g, %g, ...), no latent of the batch", E[40], E[41]);
	vqgan_trainer_free(&t);
	vqgan_free(&m);
}

/* Without EMA, the codebook loss moves the chosen codes and only those;
 * with restarts off a banished code never comes back. */
static void test_codebook_gradient(void)
{
	struct vqgan m;
	struct vqgan_trainer t;
	make_model(&m, 6);
	banish_code(&m, 2);
	struct vqgan_train_config tc = vqgan_train_defaults();
	tc.restart_after = 0;
	struct nn_optim_config oc = tiny_optim(4);
	CHECK(vqgan_trainer_init(&t, &m, &tc, &oc) == 0);
	float *E = nn_param(&m.params, nn_params_find(&m.params, "quantize.embedding.weight")), E0[16 * 8];
	memcpy(E0, E, sizeof E0);
	float x[BATCH * PER_IMAGE], z[BATCH * 8 * 16];
	int32_t idx[BATCH * 16];
	synthetic_batch(x, 0);
	latents_of(&m, x, z, idx);
	int chosen[16] = { 0 };
	for (int i = 0; i < BATCH * 16; i++)
		chosen[idx[i]] = 1;
	struct vqgan_step_stats s;
	CHECK(vqgan_trainer_step(&t, x, BATCH, SIDE, SIDE, &s) == 0);
	CHECK(s.codebook > 0 && fabs(s.commit - 0.25 * s.codebook) < 1e-9 * (1 + s.codebook));
	for (int k = 0; k < 16; k++) {
		int moved = memcmp(E + k * 8, E0 + k * 8, 8 * sizeof *E) != 0;
		CHECK_MSG(moved == chosen[k], "code %d: chosen %d, moved %d", k, chosen[k], moved);
	}
	for (int i = 0; i < 5; i++)
		CHECK(vqgan_trainer_step(&t, x, BATCH, SIDE, SIDE, &s) == 0);
	CHECK(t.age[2] == 6 && E[2 * 8] == 100.0f);
	vqgan_trainer_free(&t);
	vqgan_free(&m);
}

/* ---- the discriminator ---- */

struct disc_check {
	struct vqgan_disc d;
	struct nn_arena a;
	float *x;
	float *logits;
	int B, H, W;
};

static void disc_fwd(void *ctx, float *out)
{
	struct disc_check *c = ctx;
	nn_arena_reset(&c->a);
	float *logits;
	if (vqgan_disc_forward(&c->d, &c->a, c->x, c->B, c->H, c->W, &logits) == 0)
		memcpy(out, logits, (size_t)c->B * c->d.OH * c->d.OW * sizeof *out);
}

static void disc_bwd(void *ctx, float *const *grad, const float *dout)
{
	struct disc_check *c = ctx;
	float *saved = c->d.params.grad;
	c->d.params.grad = grad[1];
	vqgan_disc_backward(&c->d, &c->a, grad[0], dout, 1);
	c->d.params.grad = saved;
}

static void test_disc_gradients(void)
{
	struct disc_check c = { .B = 2, .H = 12, .W = 12 };
	struct vqgan_disc_config dc = { .in_channels = 3, .ch = 16, .layers = 1 };
	CHECK_MSG(vqgan_disc_init(&c.d, &dc, 3) == 0, "%s", error_message());
	float x[2 * 3 * 12 * 12];
	c.x = x;
	/* 12 -> 6 -> 5 -> 4: 16 logits per image. */
	struct gradcheck g = { disc_fwd, disc_bwd, &c, .n_out = 2 * 16,
	                       .in = { { "image", x, sizeof x / sizeof *x }, { "params", c.d.params.data, c.d.params.total } },
	                       .max_checks = 300, .step = 1e-2f };
	gradcheck_fill(&g, 1);
	/* gradcheck_fill overwrote the weights too: back to N(0, 0.02)-sized
	 * convolutions would make every gradient tiny; uniform [-1, 1) weights
	 * saturate nothing here (SiLU and GroupNorm are smooth). */
	for (size_t i = 0; i < c.d.params.total; i++)
		c.d.params.data[i] *= 0.3f;
	CHECK_MSG(gradcheck(&g) == 0, "%s", error_message());
	CHECK(c.d.OH == 4 && c.d.OW == 4);
	/* Without parameter gradients only the input's are produced. */
	nn_params_zero_grad(&c.d.params);
	float dx[sizeof x / sizeof *x] = { 0 }, dl[32], out[32];
	for (int i = 0; i < 32; i++)
		dl[i] = 1;
	disc_fwd(&c, out);
	vqgan_disc_backward(&c.d, &c.a, dx, dl, 0);
	double gsum = 0, xsum = 0;
	for (size_t i = 0; i < c.d.params.total; i++)
		gsum += fabs(c.d.params.grad[i]);
	for (size_t i = 0; i < sizeof dx / sizeof *dx; i++)
		xsum += fabs(dx[i]);
	CHECK(gsum == 0 && xsum > 0);
	float *logits;
	CHECK(vqgan_disc_forward(&c.d, &c.a, x, 1, 4, 4, &logits) < 0);
	CHECK_MSG(strstr(error_message(), "too small"), "%s", error_message());
	CHECK(vqgan_disc_default_layers(8) == 1 && vqgan_disc_default_layers(16) == 2 &&
	      vqgan_disc_default_layers(32) == 3 && vqgan_disc_default_layers(256) == 3);
	nn_arena_free(&c.a);
	vqgan_disc_free(&c.d);
}

/* The adversarial loss comes in at disc_start, with a finite adaptive
 * weight, and the discriminator trains. */
static void test_adversarial_step(void)
{
	struct vqgan m;
	struct vqgan_trainer t;
	make_model(&m, 8);
	struct vqgan_train_config tc = vqgan_train_defaults();
	tc.disc_start = 1;
	tc.disc_ch = 16;
	struct nn_optim_config oc = tiny_optim(4);
	CHECK_MSG(vqgan_trainer_init(&t, &m, &tc, &oc) == 0, "%s", error_message());
	float x[BATCH * PER_IMAGE];
	synthetic_batch(x, 0);
	struct vqgan_step_stats s;
	CHECK(vqgan_trainer_step(&t, x, BATCH, SIDE, SIDE, &s) == 0);
	CHECK(s.disc_weight == 0 && s.disc == 0 && t.disc_opt.step == 0);
	CHECK(vqgan_trainer_step(&t, x, BATCH, SIDE, SIDE, &s) == 0);
	CHECK_MSG(s.disc_weight > 0 && isfinite(s.disc_weight) && s.disc > 0 && t.disc_opt.step == 1,
	          "weight %g, disc loss %g", s.disc_weight, s.disc);
	CHECK(isfinite(s.loss) && isfinite(s.gen));
	vqgan_trainer_free(&t);
	vqgan_free(&m);

	/* A fixed weight is used as given. */
	make_model(&m, 8);
	tc.disc_adaptive = 0;
	tc.disc_weight = 0.5f;
	tc.disc_start = 0;
	CHECK(vqgan_trainer_init(&t, &m, &tc, &oc) == 0);
	CHECK(vqgan_trainer_step(&t, x, BATCH, SIDE, SIDE, &s) == 0);
	CHECK_NEAR(s.disc_weight, 0.5, 1e-9);
	vqgan_trainer_free(&t);
	vqgan_free(&m);
}

/* ---- refusals ---- */

static void test_bad_setups(void)
{
	struct vqgan m;
	struct vqgan_trainer t;
	struct vqgan_config c = tiny_config();
	struct nn_optim_config oc = tiny_optim(4);
	struct vqgan_train_config tc = vqgan_train_defaults();
	vqgan_init(&m, &c, 0);
	CHECK(vqgan_trainer_init(&t, &m, &tc, &oc) < 0);
	CHECK_MSG(strstr(error_message(), "without gradients"), "%s", error_message());
	vqgan_free(&m);

	make_model(&m, 1);
	tc.l1_weight = tc.l2_weight = 0;
	CHECK(vqgan_trainer_init(&t, &m, &tc, &oc) < 0);
	CHECK_MSG(strstr(error_message(), "reconstruction weights"), "%s", error_message());
	tc = vqgan_train_defaults();
	tc.ema_codebook = 1;
	tc.ema_decay = 1;
	CHECK(vqgan_trainer_init(&t, &m, &tc, &oc) < 0);
	CHECK_MSG(strstr(error_message(), "EMA decay"), "%s", error_message());

	tc = vqgan_train_defaults();
	CHECK(vqgan_trainer_init(&t, &m, &tc, &oc) == 0);
	float x[BATCH * 3 * 6 * 6] = { 0 };
	struct vqgan_step_stats s;
	CHECK(vqgan_trainer_step(&t, x, BATCH, 6, 5, &s) < 0);
	CHECK_MSG(strstr(error_message(), "multiples of the downsampling factor 2"), "%s", error_message());

	struct nn_train_position pos;
	CHECK(vqgan_trainer_load(&t, tmp_path("absent.safetensors"), &pos, NULL, 0) < 0);
	CHECK_MSG(strstr(error_message(), "absent.safetensors"), "%s", error_message());
	FILE *fp = fopen(tmp_path("junk.safetensors"), "w");
	fputs("not a safetensors file at all", fp);
	fclose(fp);
	CHECK(vqgan_trainer_load(&t, tmp_path("junk.safetensors"), &pos, NULL, 0) < 0);
	CHECK_MSG(strstr(error_message(), "junk.safetensors"), "%s", error_message());
	unlink(tmp_path("junk.safetensors"));

	/* Weights without a trainer state beside them. */
	struct nn_train_position p0 = { 0 };
	CHECK(vqgan_trainer_save(&t, tmp_path("w.safetensors"), &p0, NULL, 0) == 0);
	char *st = vqgan_trainer_state_path(tmp_path("w.safetensors"), 0);
	unlink(st);
	CHECK(vqgan_trainer_load(&t, tmp_path("w.safetensors"), &pos, NULL, 0) < 0);
	CHECK_MSG(strstr(error_message(), "no trainer state of step 0"), "%s", error_message());
	free(st);
	unlink(tmp_path("w.safetensors"));
	unlink(tmp_path("w.state.safetensors"));
	vqgan_trainer_free(&t);
	vqgan_free(&m);

	struct vqgan_disc d;
	struct vqgan_disc_config dc = { .in_channels = 3, .ch = 8, .layers = 0 };
	CHECK(vqgan_disc_init(&d, &dc, 1) < 0);
	CHECK_MSG(strstr(error_message(), "stride-2 layers"), "%s", error_message());
}

static void test_measures(void)
{
	int64_t counts[4] = { 5, 5, 5, 5 }, one[4] = { 0, 7, 0, 0 }, none[4] = { 0 };
	int used;
	CHECK_NEAR(vqgan_perplexity(counts, 4, &used), 4.0, 1e-12);
	CHECK(used == 4);
	CHECK_NEAR(vqgan_perplexity(one, 4, &used), 1.0, 1e-12);
	CHECK(used == 1);
	CHECK(vqgan_perplexity(none, 4, &used) == 0 && used == 0);
	/* x = -1 and +1 are pixels 0 and 255; outputs beyond [-1, 1] clamp. */
	float x[3] = { -1, 1, 0 }, y[3] = { -1.5f, 1, 0 };
	CHECK(vqgan_pixel_sq_err(x, y, 3) == 0);
	float y2[3] = { -1, -1, 0 };
	CHECK(vqgan_pixel_sq_err(x, y2, 3) == 255.0 * 255.0);
	CHECK_NEAR(vqgan_psnr(255.0 * 255.0, 3), 10 * log10(3.0), 1e-12);
	CHECK(vqgan_psnr(0, 3) == 99);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "%s", "/tmp/test_vqgan_train.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_measures);
	RUN(test_loss_falls);
	RUN(test_resume_exact);
	RUN(test_resume_after_crash_between_files);
	RUN(test_output_loads);
	RUN(test_ema_codebook_and_restart);
	RUN(test_codebook_gradient);
	RUN(test_disc_gradients);
	RUN(test_adversarial_step);
	RUN(test_bad_setups);
	rmdir(tmpdir);
	TEST_EXIT();
}
