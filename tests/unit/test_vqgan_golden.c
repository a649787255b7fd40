/* The VQGAN tokenizer against taming-transformers' own outputs on the tiny
 * random model in ../shared/golden/vqgan (its README gives the model, the
 * files and the tolerances): encoder, quantiser, decoder, every traced
 * submodule, decoding from code indices, VQ-Diffusion's 0..255 codec, and
 * the same with the weights stored as F16.
 *
 * Each comparison prints "# NAME max-abs-error" for the record. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/tool.h"
#include "nn/ops.h"
#include "nn/safetensors.h"
#include "golden.h"
#include "test.h"
#include "vqgan/vqgan.h"
#include "vqgan/vqgan_internal.h"

/* The README's recommended absolute tolerances. */
static const struct { const char *name; double atol; } tolerances[] = {
	{ "enc.h", 5e-5 }, { "enc.quant_conv", 2e-5 }, { "quant.z_q", 1e-5 }, { "quant.z_q_lookup", 1e-5 },
	{ "quant.dist", 1e-4 }, { "quant.loss", 1e-5 }, { "dec.post_quant_conv", 1e-5 }, { "dec.recon", 5e-5 },
	{ "codes.decoded", 1e-4 }, { "codec.pixels_out", 1e-2 }, { "trace.", 5e-4 },
};

static char golden[400];
static struct st_file *expected;

static int have_golden(void)
{
	return golden_open("vqgan", golden, sizeof golden, &expected);
}

static const char *gpath(const char *name)
{
	return test_join(golden, name);
}

static double tolerance(const char *name)
{
	const char *base = strncmp(name, "f16w.", 5) ? name : name + 5;
	for (size_t i = 0; i < sizeof tolerances / sizeof *tolerances; i++) {
		size_t n = strlen(tolerances[i].name);
		if (!strncmp(base, tolerances[i].name, n) && (tolerances[i].name[n - 1] == '.' || !base[n]))
			return tolerances[i].atol;
	}
	return 0;
}

/* Compares n floats with the expected tensor `name` (its first n values
 * when only a prefix is given, as for image 0 of a batch). */
static void check_close(const char *name, const float *got, size_t n)
{
	size_t m;
	float *want = golden_f32(expected, name, &m);
	CHECK_MSG(want, "expected tensor %s is missing", name);
	if (!want)
		return;
	CHECK_MSG(n <= m, "%s: %zu values, expected %zu", name, n, m);
	double worst = 0, atol = tolerance(name);
	size_t at = 0;
	for (size_t i = 0; i < n && i < m; i++) {
		double d = fabs((double)got[i] - want[i]);
		if (!(d <= worst)) {
			worst = d;
			at = i;
		}
	}
	printf("# %s max-abs-error %.3g (atol %g)\n", name, worst, atol);
	CHECK_MSG(worst <= atol, "%s: error %g at %zu (got %g, want %g), atol %g", name, worst, at, got[at], want[at],
	          atol);
	free(want);
}

static void check_ids(const char *name, const int32_t *got, size_t n)
{
	size_t m;
	int32_t *want = golden_ids(expected, name, &m);
	CHECK_MSG(want && m == n, "expected ids %s missing or of another size", name);
	golden_check_ids(name, got, n, want, m);
	free(want);
}

/* Backend memory to a fresh host buffer. */
static float *to_host(const float *x, size_t n)
{
	float *h = xmalloc(n * sizeof *h);
	nn->download(h, x, n * sizeof *h);
	return h;
}

static float *to_backend(struct nn_arena *a, const float *x, size_t n)
{
	float *b = nn_arena_floats(a, n);
	nn->upload(b, x, n * sizeof *x);
	return b;
}

/* ---- taps: trace.* for image 0, and the batch tensors named after units ---- */

struct tap_ctx {
	const char *prefix; /* "" or "f16w." */
	int traces;         /* units that had a trace tensor */
};

static void tap(void *ctx, const char *name, const float *x, int B, int C, int H, int W)
{
	struct tap_ctx *t = ctx;
	char key[300];
	size_t image = (size_t)C * H * W;
	if (!*t->prefix) {
		snprintf(key, sizeof key, "trace.%s", name);
		if (st_find(expected, key)) {
			float *h = to_host(x, image);
			check_close(key, h, image);
			free(h);
			t->traces++;
		}
	}
	const char *batch = !strcmp(name, "encoder.conv_out") ? "enc.h"
	                    : !strcmp(name, "post_quant_conv") ? "dec.post_quant_conv" : NULL;
	if (batch) {
		snprintf(key, sizeof key, "%s%s", t->prefix, batch);
		if (st_find(expected, key)) {
			float *h = to_host(x, (size_t)B * image);
			check_close(key, h, (size_t)B * image);
			free(h);
		}
	}
}

static int load(struct vqgan *m, const char *file, const char *config)
{
	int rc = vqgan_load(m, gpath(file), config ? gpath(config) : NULL, 0);
	CHECK_MSG(rc == 0, "%s", error_message());
	return rc;
}

/* ---- tests ---- */

static void test_config(void)
{
	if (!have_golden())
		SKIP("no golden data at %s (set KNND_SHARED)", golden);
	struct vqgan m;
	if (load(&m, "model.safetensors", NULL) < 0)
		return;
	const struct vqgan_config *c = &m.cfg;
	CHECK(c->in_channels == 3 && c->out_ch == 3 && c->ch == 32 && c->levels == 2);
	CHECK(c->ch_mult[0] == 1 && c->ch_mult[1] == 2 && !c->attn[0] && c->attn[1]);
	CHECK(c->num_res_blocks == 1 && c->z_channels == 16 && c->embed_dim == 16 && c->n_embed == 64);
	CHECK(c->resolution == 0 && vqgan_factor(c) == 2);
	vqgan_free(&m);

	/* with config.json the resolution is known too, and the JSON round-trips */
	if (load(&m, "model.safetensors", "config.json") < 0)
		return;
	CHECK(m.cfg.resolution == 16 && m.cfg.beta == 0.25f);
	char *json = vqgan_config_json(&m.cfg);
	struct vqgan_config back;
	CHECK_MSG(vqgan_config_from_json(&back, json) == 0, "%s", error_message());
	CHECK_MSG(!memcmp(&back, &m.cfg, sizeof back), "config changed through %s", json);
	free(json);
	vqgan_free(&m);
}

/* Encoder, quantiser and decoder as the training passes run them, every
 * intermediate compared. `prefix` selects the F16 model's expectations. */
static void run_passes(const char *file, const char *prefix)
{
	struct vqgan m;
	if (load(&m, file, "config.json") < 0)
		return;
	size_t n;
	float *images = golden_f32(expected, "input.images", &n);
	int B = 3, H = 16, W = 16, h = 8, w = 8, D = m.cfg.embed_dim, N = m.cfg.n_embed;
	size_t nz = (size_t)B * D * h * w;
	CHECK(images && n == (size_t)B * 3 * H * W);
	struct tap_ctx t = { prefix, 0 };
	struct vqgan_taps taps = { tap, &t };
	vqgan_set_taps(&m, &taps);
	struct nn_arena a = {0};
	char key[64];

	const float *z = vqgan_encoder_forward(&m, &a, to_backend(&a, images, n), B, H, W);
	float *zh = to_host(z, nz);
	if (!*prefix)
		check_close("enc.quant_conv", zh, nz);

	int32_t *idx = xmalloc((size_t)B * h * w * sizeof *idx);
	float *dist = xmalloc((size_t)B * h * w * sizeof *dist);
	float *zq = nn_arena_floats(&a, nz);
	vqgan_quantize(&m, z, B, h, w, idx, zq, dist);
	snprintf(key, sizeof key, "%squant.indices", prefix);
	check_ids(key, idx, (size_t)B * h * w);
	float *zqh = to_host(zq, nz);
	if (!*prefix) {
		check_close("quant.z_q_lookup", zqh, nz);
		check_close("quant.z_q", zqh, nz);
		/* the whole distance matrix, and the chosen distances */
		float *all = xmalloc((size_t)B * h * w * N * sizeof *all);
		vqgan_distances(&m, z, B, h, w, all);
		check_close("quant.dist", all, (size_t)B * h * w * N);
		float *want = golden_f32(expected, "quant.dist", &n), *mins = xmalloc((size_t)B * h * w * sizeof *mins);
		for (int r = 0; r < B * h * w; r++) {
			mins[r] = want[(size_t)r * N];
			for (int k = 1; k < N; k++)
				if (want[(size_t)r * N + k] < mins[r])
					mins[r] = want[(size_t)r * N + k];
		}
		double worst = 0;
		for (int r = 0; r < B * h * w; r++)
			worst = fmax(worst, fabs(dist[r] - mins[r]));
		printf("# quant.dist (chosen) max-abs-error %.3g\n", worst);
		CHECK_MSG(worst <= 1e-4, "chosen distances off by %g", worst);
		/* the trainer's commitment loss: mean((zq - z)^2) * (1 + beta) */
		double sum = 0, direct = 0;
		for (int r = 0; r < B * h * w; r++)
			sum += dist[r];
		for (size_t i = 0; i < nz; i++)
			direct += ((double)zqh[i] - zh[i]) * ((double)zqh[i] - zh[i]);
		float loss[2] = { (float)(sum / nz * (1 + m.cfg.beta)), (float)(direct / nz * (1 + m.cfg.beta)) };
		check_close("quant.loss", &loss[0], 1);
		check_close("quant.loss", &loss[1], 1);
		free(all);
		free(want);
		free(mins);
	}

	const float *y = vqgan_decoder_forward(&m, &a, zq, B, h, w);
	float *yh = to_host(y, (size_t)B * 3 * H * W);
	snprintf(key, sizeof key, "%sdec.recon", prefix);
	check_close(key, yh, (size_t)B * 3 * H * W);
	if (!*prefix)
		CHECK_MSG(t.traces == 23, "%d of the 23 trace tensors were compared", t.traces);

	vqgan_set_taps(&m, NULL);
	nn_arena_free(&a);
	free(images);
	free(zh);
	free(zqh);
	free(yh);
	free(idx);
	free(dist);
	vqgan_free(&m);
}

static void test_passes(void)
{
	if (!have_golden())
		SKIP("no golden data at %s (set KNND_SHARED)", golden);
	run_passes("model.safetensors", "");
}

/* Index grids to images through vqgan_decode (the inference path). */
static void check_decode_codes(const char *file, const char *prefix)
{
	struct vqgan m;
	if (load(&m, file, NULL) < 0)
		return;
	size_t n;
	int32_t *codes = golden_ids(expected, "codes.indices", &n);
	CHECK(codes && n == 2 * 8 * 8);
	float *images = xmalloc(2 * 3 * 16 * 16 * sizeof *images);
	CHECK_MSG(vqgan_decode(&m, codes, 2, 8, 8, images) == 0, "%s", error_message());
	char key[64];
	snprintf(key, sizeof key, "%scodes.decoded", prefix);
	check_close(key, images, 2 * 3 * 16 * 16);
	free(codes);
	free(images);
	vqgan_free(&m);
}

static void test_decode_codes(void)
{
	if (!have_golden())
		SKIP("no golden data at %s (set KNND_SHARED)", golden);
	check_decode_codes("model.safetensors", "");
}

/* VQ-Diffusion's codec: 0..255 pixels in, tokens, 0..255 pixels out, all
 * through vqgan_encode / vqgan_decode, twice in a row (the arenas are
 * reused). */
static void test_codec(void)
{
	if (!have_golden())
		SKIP("no golden data at %s (set KNND_SHARED)", golden);
	struct vqgan m;
	if (load(&m, "model.safetensors", NULL) < 0)
		return;
	size_t n;
	float *pixels = golden_f32(expected, "codec.pixels_in", &n);
	float *x = xmalloc(n * sizeof *x);
	for (size_t i = 0; i < n; i++)
		x[i] = pixels[i] / 127.5f - 1;
	int B = 3, h = 8, w = 8;
	int32_t tokens[3 * 64];
	float *latents = xmalloc((size_t)B * 16 * h * w * sizeof *latents);
	float *out = xmalloc(n * sizeof *out);
	for (int round = 0; round < 2; round++) {
		memset(tokens, 0xff, sizeof tokens);
		CHECK_MSG(vqgan_encode(&m, x, B, 16, 16, tokens, latents) == 0, "%s", error_message());
		check_ids("codec.tokens", tokens, (size_t)B * h * w);
		CHECK_MSG(vqgan_decode(&m, tokens, B, h, w, out) == 0, "%s", error_message());
		for (size_t i = 0; i < n; i++)
			out[i] = (fminf(fmaxf(out[i], -1), 1) + 1) * 127.5f;
		check_close("codec.pixels_out", out, n);
	}
	/* the inference path's latents against the reference's, on its own inputs */
	float *images = golden_f32(expected, "input.images", &n);
	CHECK(vqgan_encode(&m, images, B, 16, 16, tokens, latents) == 0);
	check_close("enc.quant_conv", latents, (size_t)B * 16 * h * w);
	check_ids("quant.indices", tokens, (size_t)B * h * w);
	free(images);
	free(pixels);
	free(x);
	free(latents);
	free(out);
	vqgan_free(&m);
}

static void test_f16_weights(void)
{
	if (!have_golden())
		SKIP("no golden data at %s (set KNND_SHARED)", golden);
	run_passes("model_f16.safetensors", "f16w.");
	check_decode_codes("model_f16.safetensors", "f16w.");
}

int main(void)
{
	RUN(test_config);
	RUN(test_passes);
	RUN(test_decode_codes);
	RUN(test_codec);
	RUN(test_f16_weights);
	if (expected)
		st_close(expected);
	TEST_EXIT();
}
