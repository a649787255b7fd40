/* The CLIP towers against the reference's outputs on the tiny random CLIP in
 * ../shared/golden/clip (its README gives the model, the files and the
 * tolerances). The inputs are the reference's own preprocessed pixels and
 * token ids, so this tests the model alone, in both checkpoint namings and
 * with each source of the head counts; the intermediates (debug.*) say
 * where a difference starts. Loader errors are tested on checkpoints
 * written here from the golden ones.
 *
 * Each comparison prints "# NAME max-abs-error" for the record. The CPU
 * backend always runs; the CUDA backend runs the golden comparisons again
 * when this build and machine have one. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clip/clip_model.h"
#include "core/error.h"
#include "core/tool.h"
#include "nn/ops.h"
#include "nn/safetensors.h"
#include "golden.h"
#include "test.h"

/* The golden README's tolerances (max abs error). */
#define TOL_FEATURES 1e-4
#define TOL_EMBEDS 2e-5
#define TOL_LOGITS 1e-3

static char golden[400];
static struct st_file *expected;
static const char *backend = "cpu";

static int have_golden(void)
{
	return golden_open("clip", golden, sizeof golden, &expected);
}

static const char *gpath(const char *name)
{
	return test_join(golden, name);
}

/* Scratch files, removed at exit. */
static char tmpdir[256];

static const char *tmp_path(const char *name)
{
	static char buf[4][512];
	static int next;
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof tmpdir, "/tmp/test_clip_model.XXXXXX");
		if (!mkdtemp(tmpdir))
			return NULL;
	}
	char *b = buf[next++ % 4];
	snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
	return b;
}

/* Writes a small text file (a config) for a test; the test fails if it
 * cannot. */
static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* text_tokens [20, 77] I64 as int32. */
static int32_t *golden_tokens(int *n, int *context)
{
	const struct st_entry *e = st_find(expected, "text_tokens");
	if (!e || e->ndim != 2)
		return NULL;
	*n = (int)e->shape[0];
	*context = (int)e->shape[1];
	return golden_ids(expected, "text_tokens", NULL);
}

static double max_err(const float *a, const float *b, size_t n)
{
	double worst = 0;
	for (size_t i = 0; i < n; i++) {
		double d = a[i] > b[i] ? (double)a[i] - b[i] : (double)b[i] - a[i];
		if (!(d <= worst)) /* NaN counts as infinitely wrong */
			worst = d == d ? d : INFINITY;
	}
	return worst;
}

/* Compares got[n] with the golden tensor `name` (its first n elements). */
static void compare(const char *label, const char *name, const float *got, size_t n, double tol)
{
	size_t total;
	float *w = golden_f32(expected, name, &total);
	CHECK_MSG(w && total >= n, "%s: golden tensor %s missing or too small", label, name);
	if (!w || total < n) {
		free(w);
		return;
	}
	double err = max_err(got, w, n);
	printf("# %s/%s %s: max abs error %.3g (tolerance %g)\n", backend, label, name, err, tol);
	CHECK_MSG(err <= tol, "%s: %s max abs error %g > %g", label, name, err, tol);
	free(w);
}

/* ---- taps: the debug.* intermediates ---- */

struct tap_ctx {
	const char *label;
	int seen;
};

static void on_tap(void *ctx_, const char *name, const float *x, int rows, int cols)
{
	struct tap_ctx *ctx = ctx_;
	size_t n = (size_t)rows * cols;
	float *host = xmalloc(n * sizeof *host);
	nn->download(host, x, n * sizeof *host);
	char key[128];
	snprintf(key, sizeof key, "debug.%s", name);
	compare(ctx->label, key, host, n, TOL_FEATURES);
	ctx->seen++;
	free(host);
}

/* ---- the golden comparison of one loaded model ---- */

static void check_outputs(struct clip_model *m, const char *label)
{
	const struct clip_config *c = &m->cfg;
	CHECK(c->embed_dim == 32 && c->resolution == 32 && c->patch == 8 && c->context == 77 && c->vocab == 49408);
	CHECK(c->vision.width == 128 && c->vision.layers == 2 && c->vision.heads == 2 && c->vision.mlp_dim == 512);
	CHECK(c->text.width == 32 && c->text.layers == 2 && c->text.heads == 4 && c->text.mlp_dim == 128);
	CHECK(c->vision.act == NN_QUICK_GELU && c->text.act == NN_QUICK_GELU);
	CHECK(c->vision.ln_eps == 1e-5f && c->text.ln_eps == 1e-5f);

	size_t npix;
	float *pixels = golden_f32(expected, "image_pixels", &npix);
	int nt, ctx;
	int32_t *ids = golden_tokens(&nt, &ctx);
	CHECK(pixels && ids && ctx == c->context);
	if (!pixels || !ids || ctx != c->context) {
		free(pixels);
		free(ids);
		return;
	}
	int ni = (int)(npix / (3 * 32 * 32)), E = c->embed_dim;

	float *img = xmalloc((size_t)ni * E * sizeof *img), *txt = xmalloc((size_t)nt * E * sizeof *txt);
	struct tap_ctx tc = { label, 0 };
	struct clip_taps taps = { on_tap, &tc };
	clip_encode_image(m, pixels, ni, img, &taps);
	CHECK(tc.seen == 3 + c->vision.layers);
	/* Text 16 is exactly 77 tokens long, so this batch runs all 77
	 * positions and every debug row is computed. */
	tc.seen = 0;
	CHECK(clip_encode_text(m, ids, nt, txt, &taps) == 0);
	CHECK(tc.seen == 3 + c->text.layers);
	compare(label, "image_features", img, (size_t)ni * E, TOL_FEATURES);
	compare(label, "text_features", txt, (size_t)nt * E, TOL_FEATURES);
	/* Without taps the last block computes the pooled rows only. */
	char pooled_label[128];
	snprintf(pooled_label, sizeof pooled_label, "%s,pooled", label);
	float *img2 = xmalloc((size_t)ni * E * sizeof *img2), *txt2 = xmalloc((size_t)nt * E * sizeof *txt2);
	clip_encode_image(m, pixels, ni, img2, NULL);
	CHECK(clip_encode_text(m, ids, nt, txt2, NULL) == 0);
	compare(pooled_label, "image_features", img2, (size_t)ni * E, TOL_FEATURES);
	compare(pooled_label, "text_features", txt2, (size_t)nt * E, TOL_FEATURES);
	free(img2);
	free(txt2);

	clip_normalize(img, ni, E);
	clip_normalize(txt, nt, E);
	compare(label, "image_embeds", img, (size_t)ni * E, TOL_EMBEDS);
	compare(label, "text_embeds", txt, (size_t)nt * E, TOL_EMBEDS);

	float scale = clip_logit_scale(m);
	CHECK_NEAR(scale, 30.000002, 1e-4);
	float *per_image = xmalloc((size_t)ni * nt * sizeof *per_image);
	float *per_text = xmalloc((size_t)ni * nt * sizeof *per_text);
	for (int i = 0; i < ni; i++)
		for (int t = 0; t < nt; t++) {
			float dot = 0;
			for (int d = 0; d < E; d++)
				dot += img[i * E + d] * txt[t * E + d];
			per_image[i * nt + t] = per_text[t * ni + i] = scale * dot;
		}
	compare(label, "logits_per_image", per_image, (size_t)ni * nt, TOL_LOGITS);
	compare(label, "logits_per_text", per_text, (size_t)ni * nt, TOL_LOGITS);

	/* One at a time, as a pipeline with small batches would run them: the
	 * short first text now runs on its own few positions only. */
	float one[64];
	clip_encode_image(m, pixels + 3 * 32 * 32, 1, one, NULL);
	clip_normalize(one, 1, E);
	CHECK_MSG(max_err(one, img + E, E) <= TOL_EMBEDS, "%s: image 1 alone differs from the batch", label);
	for (int t = 0; t < nt; t += 5) {
		CHECK(clip_encode_text(m, ids + (size_t)t * ctx, 1, one, NULL) == 0);
		clip_normalize(one, 1, E);
		CHECK_MSG(max_err(one, txt + (size_t)t * E, E) <= TOL_EMBEDS, "%s: text %d alone differs from the batch",
		          label, t);
	}
	free(per_image);
	free(per_text);
	free(img);
	free(txt);
	free(pixels);
	free(ids);
}

static void load_and_check(const char *model, const char *config, enum clip_heads_from from, const char *label)
{
	if (!have_golden())
		SKIP("no golden data at %s (set KNND_SHARED)", golden);
	struct clip_model m;
	struct clip_config_options o = { .config_path = config ? gpath(config) : NULL };
	int rc = clip_model_load(&m, gpath(model), &o);
	CHECK_MSG(rc == 0, "%s: %s", label, error_message());
	if (rc < 0)
		return;
	CHECK(m.cfg.text.heads_from == from && m.cfg.vision.heads_from == from);
	check_outputs(&m, label);
	clip_model_free(&m);
}

static void test_openai_metadata(void)
{
	load_and_check("openai.safetensors", NULL, CLIP_HEADS_METADATA, "openai+metadata");
}

static void test_openai_config_file(void)
{
	load_and_check("openai.safetensors", "openai-config.json", CLIP_HEADS_CONFIG_FILE, "openai+config");
}

static void test_hf_config_file(void)
{
	load_and_check("hf.safetensors", "hf-config.json", CLIP_HEADS_CONFIG_FILE, "hf+config");
}

/* An open_clip config describes the model whatever the naming. */
static void test_hf_with_open_clip_config(void)
{
	load_and_check("hf.safetensors", "openai-config.json", CLIP_HEADS_CONFIG_FILE, "hf+open_clip-config");
}

/* Without a config the heads are width/64 (at least 1): right for real
 * OpenAI models, wrong for this one's text tower (4 heads of 8). */
static void test_no_config_falls_back(void)
{
	if (!have_golden())
		SKIP("no golden data at %s", golden);
	struct st_file *f = st_open(gpath("hf.safetensors"));
	CHECK(f != NULL);
	if (!f)
		return;
	struct clip_config c;
	CHECK_MSG(clip_config_read(&c, f, NULL, NULL) == 0, "%s", error_message());
	CHECK(c.naming == CLIP_NAMING_HF);
	CHECK(c.text.heads == 1 && c.text.heads_from == CLIP_HEADS_WIDTH_64);
	CHECK(c.vision.heads == 2 && c.vision.heads_from == CLIP_HEADS_WIDTH_64);
	CHECK(c.text.act == NN_QUICK_GELU && c.text.ln_eps == 1e-5f);

	/* Options win over everything, per tower. */
	struct clip_config_options o = { .config_path = gpath("hf-config.json"), .heads_text = 8 };
	CHECK_MSG(clip_config_read(&c, f, NULL, &o) == 0, "%s", error_message());
	CHECK(c.text.heads == 8 && c.text.heads_from == CLIP_HEADS_OPTION);
	CHECK(c.vision.heads == 2 && c.vision.heads_from == CLIP_HEADS_CONFIG_FILE);
	o.heads_text = 5;
	CHECK(clip_config_read(&c, f, NULL, &o) < 0);
	CHECK_MSG(strstr(error_message(), "not a multiple of 5 heads"), "%s", error_message());

	/* Older HF files: *_config_dict overrides *_config, key by key. */
	const char *old_hf = tmp_path("old-hf.json");
	write_text(old_hf, "{\"text_config\": {\"num_attention_heads\": 8, \"hidden_act\": \"gelu\"},"
	                   " \"text_config_dict\": {\"num_attention_heads\": 4, \"layer_norm_eps\": 1e-6},"
	                   " \"vision_config_dict\": {\"num_attention_heads\": 2}}");
	o = (struct clip_config_options){ .config_path = old_hf };
	CHECK_MSG(clip_config_read(&c, f, NULL, &o) == 0, "%s", error_message());
	CHECK(c.text.heads == 4 && c.text.act == NN_GELU_ERF && c.text.ln_eps == 1e-6f);
	CHECK(c.vision.heads == 2 && c.vision.act == NN_QUICK_GELU && c.vision.ln_eps == 1e-5f);
	st_close(f);
}

/* A config.json beside an HF-named model (a Hugging Face snapshot
 * directory) is found and used. */
static void test_config_beside_model(void)
{
	if (!have_golden())
		SKIP("no golden data at %s", golden);
	const char *model = tmp_path("model.safetensors"), *config = tmp_path("config.json");
	char *target = realpath(gpath("hf.safetensors"), NULL); /* the link lives elsewhere */
	CHECK(target && symlink(target, model) == 0);
	free(target);
	FILE *in = fopen(gpath("hf-config.json"), "rb"), *out = fopen(config, "wb");
	CHECK(in && out);
	char buf[4096];
	size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;
	if (out)
		CHECK(fwrite(buf, 1, n, out) == n);
	if (in)
		fclose(in);
	if (out)
		fclose(out);
	struct clip_model m;
	int rc = clip_model_load(&m, model, NULL);
	CHECK_MSG(rc == 0, "%s", error_message());
	if (rc == 0) {
		CHECK(m.cfg.text.heads == 4 && m.cfg.text.heads_from == CLIP_HEADS_BESIDE_MODEL);
		check_outputs(&m, "hf+config.json beside");
		clip_model_free(&m);
	}
	/* An explicit config still wins. */
	struct clip_config_options o = { .config_path = gpath("openai-config.json") };
	rc = clip_model_load(&m, model, &o);
	CHECK_MSG(rc == 0, "%s", error_message());
	if (rc == 0) {
		CHECK(m.cfg.text.heads_from == CLIP_HEADS_CONFIG_FILE);
		clip_model_free(&m);
	}
}

/* The heads given as options alone give the reference's outputs. */
static void test_heads_from_options(void)
{
	if (!have_golden())
		SKIP("no golden data at %s", golden);
	struct clip_model m;
	struct clip_config_options o = { .heads_text = 4, .heads_vision = 2 };
	int rc = clip_model_load(&m, gpath("hf.safetensors"), &o);
	CHECK_MSG(rc == 0, "%s", error_message());
	if (rc == 0) {
		check_outputs(&m, "hf+options");
		clip_model_free(&m);
	}
}

/* ---- loader errors, on checkpoints written from the golden one ---- */

/* Writes the tensors of openai.safetensors to path, with `drop` left out,
 * `reshape` given a wrong first dimension, everything in F16 if `half`, and
 * the metadata kept. */
static int write_variant(const char *path, const char *drop, const char *reshape, int half)
{
	struct st_file *f = st_open(gpath("openai.safetensors"));
	if (!f)
		return -1;
	int n = st_count(f), k = 0;
	struct st_tensor *t = xcalloc(n, sizeof *t);
	for (int i = 0; i < n; i++) {
		const struct st_entry *e = st_entry_at(f, i);
		if (drop && !strcmp(e->name, drop))
			continue;
		t[k] = (struct st_tensor){ .name = e->name, .dtype = e->dtype, .ndim = e->ndim, .data = e->data,
		                           .convert = half ? ST_TO_F16 : ST_AS_IS };
		memcpy(t[k].shape, e->shape, sizeof e->shape);
		if (reshape && !strcmp(e->name, reshape)) {
			/* same bytes, another shape: [a, b] as [a/2, 2b] */
			t[k].shape[0] /= 2;
			t[k].shape[1] *= 2;
		}
		k++;
	}
	const char *meta_value = st_metadata(f, "open_clip_config");
	struct st_meta meta = { "open_clip_config", meta_value };
	int rc = st_write(path, t, k, &meta, meta_value ? 1 : 0);
	free(t);
	st_close(f);
	return rc;
}

static void expect_load_error(const char *path, const struct clip_config_options *o, const char *pattern)
{
	struct clip_model m;
	int rc = clip_model_load(&m, path, o);
	CHECK_MSG(rc < 0, "%s loaded, expected an error like '%s'", path, pattern);
	if (rc == 0) {
		clip_model_free(&m);
		return;
	}
	CHECK_MSG(strstr(error_message(), pattern), "message '%s' lacks '%s'", error_message(), pattern);
	CHECK_MSG(strstr(error_message(), path) == error_message(), "message '%s' does not start with the path",
	          error_message());
}

static void test_load_errors(void)
{
	if (!have_golden())
		SKIP("no golden data at %s", golden);
	const char *p = tmp_path("missing.safetensors");
	CHECK(p && write_variant(p, "transformer.resblocks.1.ln_2.bias", NULL, 0) == 0);
	expect_load_error(p, NULL, "tensor 'transformer.resblocks.1.ln_2.bias' is missing");

	p = tmp_path("noproj.safetensors");
	CHECK(write_variant(p, "visual.proj", NULL, 0) == 0);
	expect_load_error(p, NULL, "tensor 'visual.proj' is missing");

	p = tmp_path("shape.safetensors");
	CHECK(write_variant(p, NULL, "visual.transformer.resblocks.0.mlp.c_proj.weight", 0) == 0);
	expect_load_error(p, NULL, "tensor 'visual.transformer.resblocks.0.mlp.c_proj.weight' has shape [64,1024], "
	                           "but this model needs [128,512]");

	p = tmp_path("inproj.safetensors");
	CHECK(write_variant(p, NULL, "transformer.resblocks.0.attn.in_proj_weight", 0) == 0);
	expect_load_error(p, NULL, "in_proj_weight");

	/* Not CLIP: a safetensors file of something else. */
	p = tmp_path("other.safetensors");
	float x[4] = { 1, 2, 3, 4 };
	struct st_tensor t = { .name = "encoder.conv_in.weight", .dtype = DT_FLOAT32, .ndim = 1, .shape = { 4 },
	                       .data = x };
	CHECK(st_write(p, &t, 1, NULL, 0) == 0);
	expect_load_error(p, NULL, "not a CLIP checkpoint");

	/* A CLIP with something more than this loader knows. */
	p = tmp_path("extra.safetensors");
	{
		struct st_file *f = st_open(gpath("hf.safetensors"));
		CHECK(f != NULL);
		if (f) {
			int n = st_count(f);
			struct st_tensor *all = xcalloc(n + 1, sizeof *all);
			for (int i = 0; i < n; i++) {
				const struct st_entry *e = st_entry_at(f, i);
				all[i] = (struct st_tensor){ .name = e->name, .dtype = e->dtype, .ndim = e->ndim, .data = e->data };
				memcpy(all[i].shape, e->shape, sizeof e->shape);
			}
			all[n] = (struct st_tensor){ .name = "vision_model.encoder.layers.0.ls_1.gamma", .dtype = DT_FLOAT32,
			                             .ndim = 1, .shape = { 4 }, .data = x };
			CHECK(st_write(p, all, n + 1, NULL, 0) == 0);
			free(all);
			st_close(f);
			struct clip_config_options o = { .config_path = gpath("hf-config.json") };
			expect_load_error(p, &o, "tensor 'vision_model.encoder.layers.0.ls_1.gamma' is not part of a CLIP");
		}
	}

	/* Truncated file. */
	p = tmp_path("truncated.safetensors");
	FILE *in = fopen(gpath("openai.safetensors"), "rb"), *out = fopen(p, "wb");
	CHECK(in && out);
	if (in && out) {
		char buf[1000];
		size_t got = fread(buf, 1, sizeof buf, in);
		CHECK(fwrite(buf, 1, got, out) == got);
	}
	if (in)
		fclose(in);
	if (out)
		fclose(out);
	struct clip_model m;
	CHECK(clip_model_load(&m, p, NULL) < 0);
	CHECK_MSG(strstr(error_message(), p) == error_message(), "message '%s'", error_message());

	/* A config for another model. */
	p = tmp_path("wrong-config.json");
	write_text(p, "{\"model_cfg\": {\"embed_dim\": 512, \"vision_cfg\": {\"width\": 768, \"layers\": 12, "
	              "\"patch_size\": 32, \"image_size\": 224}, \"text_cfg\": {\"width\": 512, \"heads\": 8, "
	              "\"layers\": 12}}}");
	struct clip_config_options o = { .config_path = p };
	expect_load_error(gpath("openai.safetensors"), &o, "belongs to another model");

	p = tmp_path("bad-act.json");
	write_text(p, "{\"text_config\": {\"hidden_act\": \"relu\"}, \"vision_config\": {}}");
	o.config_path = p;
	expect_load_error(gpath("hf.safetensors"), &o, "hidden_act 'relu'");

	o.config_path = tmp_path("absent.json");
	expect_load_error(gpath("hf.safetensors"), &o, "No such file");
}

/* F16 weights, as real OpenAI checkpoints store them, are upcast: every
 * parameter equals the F16 rounding of the F32 one. */
static void test_f16_checkpoint(void)
{
	if (!have_golden())
		SKIP("no golden data at %s", golden);
	const char *p = tmp_path("f16.safetensors");
	CHECK(write_variant(p, NULL, NULL, 1) == 0);
	struct clip_model h, f;
	int rc = clip_model_load(&h, p, NULL);
	CHECK_MSG(rc == 0, "%s", error_message());
	int rc2 = clip_model_load(&f, gpath("openai.safetensors"), NULL);
	CHECK_MSG(rc2 == 0, "%s", error_message());
	if (rc == 0 && rc2 == 0) {
		CHECK(h.params.total == f.params.total);
		size_t n = h.params.total, bad = 0;
		float *a = xmalloc(n * sizeof *a), *b = xmalloc(n * sizeof *b);
		nn->download(a, h.params.data, n * sizeof *a);
		nn->download(b, f.params.data, n * sizeof *b);
		for (size_t i = 0; i < n; i++)
			bad += a[i] != half_to_float(float_to_half(b[i]));
		CHECK_MSG(bad == 0, "%zu parameters are not the F16 rounding of the F32 ones", bad);
		free(a);
		free(b);
	}
	if (rc == 0)
		clip_model_free(&h);
	if (rc2 == 0)
		clip_model_free(&f);
}

/* The pooled position is the first largest id, as torch.argmax gives it. */
static void test_eot_index(void)
{
	int32_t a[6] = { 49406, 320, 49407, 0, 0, 0 };
	CHECK(clip_eot_index(a, 6) == 2);
	int32_t b[4] = { 49406, 49407, 49407, 0 };
	CHECK(clip_eot_index(b, 4) == 1);
	int32_t c[3] = { 0, 0, 0 };
	CHECK(clip_eot_index(c, 3) == 0);
	if (!have_golden())
		return;
	const struct st_entry *e = st_find(expected, "text_eot_index");
	int nt, ctx;
	int32_t *ids = golden_tokens(&nt, &ctx);
	CHECK(e && ids && e->numel == (size_t)nt);
	for (int t = 0; e && ids && t < nt; t++) {
		int64_t v;
		memcpy(&v, (const char *)e->data + 8 * t, 8);
		CHECK(clip_eot_index(ids + (size_t)t * ctx, ctx) == v);
	}
	free(ids);
}

static void test_bad_ids(void)
{
	if (!have_golden())
		SKIP("no golden data at %s", golden);
	struct clip_model m;
	int rc = clip_model_load(&m, gpath("openai.safetensors"), NULL);
	CHECK_MSG(rc == 0, "%s", error_message());
	if (rc < 0)
		return;
	int32_t ids[77] = { 49406, 49408, 49407 };
	float out[32];
	CHECK(clip_encode_text(&m, ids, 1, out, NULL) < 0);
	CHECK_MSG(strstr(error_message(), "outside the vocabulary"), "%s", error_message());
	clip_model_free(&m);
}

static void remove_tmpdir(void)
{
	if (!tmpdir[0])
		return;
	const char *names[] = { "missing.safetensors", "noproj.safetensors", "shape.safetensors", "inproj.safetensors",
	                        "other.safetensors", "extra.safetensors", "truncated.safetensors", "wrong-config.json",
	                        "bad-act.json", "f16.safetensors", "model.safetensors", "config.json", "old-hf.json" };
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		unlink(tmp_path(names[i]));
	rmdir(tmpdir);
}

int main(void)
{
	RUN(test_eot_index);
	RUN(test_openai_metadata);
	RUN(test_openai_config_file);
	RUN(test_hf_config_file);
	RUN(test_hf_with_open_clip_config);
	RUN(test_no_config_falls_back);
	RUN(test_heads_from_options);
	RUN(test_config_beside_model);
	RUN(test_load_errors);
	RUN(test_f16_checkpoint);
	RUN(test_bad_ids);
#ifdef KNND_CUDA
	if (have_golden() && nn_use_backend("cuda") == 0) {
		backend = "cuda";
		RUN(test_openai_metadata);
		RUN(test_hf_config_file);
		nn_use_backend("cpu");
	}
#endif
	remove_tmpdir();
	if (expected)
		st_close(expected);
	TEST_EXIT();
}
