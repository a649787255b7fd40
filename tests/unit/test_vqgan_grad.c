/* The VQGAN's backward passes against finite differences (nn/gradcheck.h):
 * the attention block alone, then encoder and decoder of two small configs
 * that differ from the golden model in every structural choice (levels,
 * channel multipliers, blocks per level, where attention sits, channel
 * counts, non-square images). Then the loader's and the inference calls'
 * errors, on checkpoints written here. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <omp.h>

#include "core/error.h"
#include "core/tool.h"
#include "nn/checkpoint.h"
#include "nn/gradcheck.h"
#include "nn/layers/attnblock.h"
#include "nn/ops.h"
#include "nn/safetensors.h"
#include "test.h"
#include "vqgan/vqgan.h"
#include "vqgan/vqgan_internal.h"

/* ---- the attention block ---- */

struct attn_case {
	struct nn_attnblock blk;
	struct nn_params p;
	struct nn_arena a;
	struct nn_attnblock_act act;
	float *x;
	int B, C, HW;
};

static void attn_fwd(void *ctx, float *out)
{
	struct attn_case *c = ctx;
	nn_arena_reset(&c->a);
	const float *y = nn_attnblock_forward(&c->blk, &c->p, &c->a, &c->act, c->x, c->B, c->HW);
	memcpy(out, y, (size_t)c->B * c->C * c->HW * sizeof *out);
}

static void attn_bwd(void *ctx, float *const *grad, const float *dout)
{
	struct attn_case *c = ctx;
	nn_params_zero_grad(&c->p);
	nn_attnblock_backward(&c->blk, &c->p, &c->a, &c->act, grad[0], dout);
	for (size_t i = 0; i < c->p.total; i++)
		grad[1][i] += c->p.grad[i];
}

static void test_attnblock_grad(void)
{
	for (int heads = 1; heads <= 2; heads++) {
		struct attn_case c = { .B = 2, .C = 8, .HW = 6 };
		nn_attnblock_init(&c.blk, &c.p, "attn", c.C, 4, 1e-6f, heads);
		nn_params_alloc(&c.p, 1);
		CHECK(nn_params_find(&c.p, "attn.proj_out.weight") >= 0 && nn_params_find(&c.p, "attn.norm.bias") >= 0);
		size_t nx = (size_t)c.B * c.C * c.HW;
		c.x = xmalloc(nx * sizeof *c.x);
		struct gradcheck g = { attn_fwd, attn_bwd, &c, .n_out = nx,
		                       .in = { { "x", c.x, nx }, { "params", c.p.data, c.p.total } } };
		gradcheck_fill(&g, 11 + heads);
		CHECK_MSG(gradcheck(&g) == 0, "%d heads: %s", heads, error_message());
		free(c.x);
		nn_arena_free(&c.a);
		nn_params_free(&c.p);
	}
}

/* ---- encoder and decoder ---- */

static const struct vqgan_config config_a = {
	.in_channels = 3, .out_ch = 3, .ch = 32, .levels = 2, .ch_mult = { 1, 2 }, .attn = { 0, 1 },
	.num_res_blocks = 1, .z_channels = 4, .embed_dim = 4, .n_embed = 8, .resolution = 8, .beta = 0.25f,
};
/* Three levels, two blocks per level, attention only at full resolution,
 * one channel in and two out. */
static const struct vqgan_config config_b = {
	.in_channels = 1, .out_ch = 2, .ch = 32, .levels = 3, .ch_mult = { 1, 1, 2 }, .attn = { 1, 0, 0 },
	.num_res_blocks = 2, .z_channels = 8, .embed_dim = 3, .n_embed = 5, .resolution = 8, .beta = 0.5f,
};

/* A model with PyTorch's initialisation and group norms moved away from the
 * identity, so that their gradients are tested in general position. */
static void random_model(struct vqgan *m, const struct vqgan_config *c, uint64_t seed)
{
	vqgan_init(m, c, 1);
	vqgan_init_random(m, seed);
	uint64_t s = seed * 2654435761u + 1;
	for (int i = 0; i < m->params.n; i++) {
		const struct nn_param *it = &m->params.items[i];
		if (it->ndim != 1 || !strstr(it->name, "norm"))
			continue;
		float *x = nn_param(&m->params, i);
		for (size_t j = 0; j < it->numel; j++) {
			s = s * 6364136223846793005u + 1442695040888963407u;
			x[j] += 0.5f * ((float)(s >> 40) / (float)(1 << 24) - 0.5f);
		}
	}
}

static void fill(float *x, size_t n, uint64_t seed)
{
	uint64_t s = seed;
	for (size_t i = 0; i < n; i++) {
		s = s * 6364136223846793005u + 1442695040888963407u;
		x[i] = 2 * ((float)(s >> 40) / (float)(1 << 24)) - 1;
	}
}

#define MAX_PARTS 7

/* A whole network in float32 makes L noisy (~1e-5), which a step of 3e-3
 * turns into ~2e-3 of numeric error; a longer step meets the curvature of
 * group norms over the last level's few pixels. */
#define CODER_STEP 3e-3f
#define CODER_ATOL 4e-3f
#define CODER_RTOL 2e-2f

struct coder_case {
	struct vqgan m;
	struct nn_arena a;
	int decoder;
	float *in; /* images (encoder) or zq (decoder) */
	int B, H, W;
	size_t n_out;
	/* the gradcheck inputs after the first (zq) or from the first
	 * (encoder): parameter ranges */
	size_t offset[MAX_PARTS], count[MAX_PARTS];
	int parts;
};

static void coder_fwd(void *ctx, float *out)
{
	struct coder_case *c = ctx;
	nn_arena_reset(&c->a);
	const float *y = c->decoder ? vqgan_decoder_forward(&c->m, &c->a, c->in, c->B, c->H, c->W)
	                            : vqgan_encoder_forward(&c->m, &c->a, c->in, c->B, c->H, c->W);
	memcpy(out, y, c->n_out * sizeof *out);
}

static void coder_bwd(void *ctx, float *const *grad, const float *dout)
{
	struct coder_case *c = ctx;
	nn_params_zero_grad(&c->m.params);
	if (c->decoder)
		vqgan_decoder_backward(&c->m, &c->a, grad[0], dout);
	else
		vqgan_encoder_backward(&c->m, &c->a, dout);
	float *const *pg = grad + c->decoder;
	for (int i = 0; i < c->parts; i++)
		for (size_t j = 0; j < c->count[i]; j++)
			pg[i][j] += c->m.params.grad[c->offset[i] + j];
}

/* Adds a gradcheck input for parameter `name`, or for the range of
 * parameters from `name` up to (not including) `until` (NULL: the end). */
static void add_part(struct coder_case *c, struct gradcheck *g, int slot, const char *name, const char *until)
{
	const struct nn_params *p = &c->m.params;
	int i = nn_params_find(p, name);
	CHECK_MSG(i >= 0, "no parameter %s", name);
	if (i < 0)
		return;
	size_t begin = p->items[i].offset, end = begin + p->items[i].numel;
	if (until) {
		int j = nn_params_find(p, until);
		end = j >= 0 ? p->items[j].offset : p->total;
	}
	c->offset[c->parts] = begin;
	c->count[c->parts] = end - begin;
	g->in[slot] = (struct gradcheck_input){ name, p->data + begin, end - begin };
	c->parts++;
}

static void check_encoder_grad(const struct vqgan_config *cfg, int B, int H, int W, const char *const *names,
                               const char *label)
{
	struct coder_case c = { .B = B, .H = H, .W = W };
	random_model(&c.m, cfg, 5);
	int f = vqgan_factor(cfg);
	size_t n_in = (size_t)B * cfg->in_channels * H * W;
	c.n_out = (size_t)B * cfg->embed_dim * (H / f) * (W / f);
	c.in = xmalloc(n_in * sizeof *c.in);
	fill(c.in, n_in, 3);
	struct gradcheck g = { coder_fwd, coder_bwd, &c, .n_out = c.n_out, .max_checks = 12, .step = CODER_STEP,
	                       .atol = CODER_ATOL, .rtol = CODER_RTOL };
	/* every encoder parameter, then a few of each kind on their own */
	add_part(&c, &g, 0, "encoder.conv_in.weight", "quantize.embedding.weight");
	for (int i = 0; names[i]; i++)
		add_part(&c, &g, i + 1, names[i], NULL);
	CHECK_MSG(gradcheck(&g) == 0, "%s encoder: %s", label, error_message());
	free(c.in);
	nn_arena_free(&c.a);
	vqgan_free(&c.m);
}

static void check_decoder_grad(const struct vqgan_config *cfg, int B, int h, int w, const char *const *names,
                               const char *label)
{
	struct coder_case c = { .decoder = 1, .B = B, .H = h, .W = w };
	random_model(&c.m, cfg, 7);
	int f = vqgan_factor(cfg);
	size_t n_in = (size_t)B * cfg->embed_dim * h * w;
	c.n_out = (size_t)B * cfg->out_ch * h * f * w * f;
	c.in = xmalloc(n_in * sizeof *c.in);
	fill(c.in, n_in, 4);
	struct gradcheck g = { coder_fwd, coder_bwd, &c, .n_out = c.n_out, .max_checks = 12, .step = CODER_STEP,
	                       .atol = CODER_ATOL, .rtol = CODER_RTOL, .in = { { "zq", c.in, n_in } } };
	add_part(&c, &g, 1, "post_quant_conv.weight", NULL);
	for (int i = 0; names[i]; i++)
		add_part(&c, &g, i + 2, names[i], NULL);
	CHECK_MSG(gradcheck(&g) == 0, "%s decoder: %s", label, error_message());
	free(c.in);
	nn_arena_free(&c.a);
	vqgan_free(&c.m);
}

static void test_coder_grad_a(void)
{
	static const char *const enc[] = {
		"encoder.down.0.downsample.conv.weight", "encoder.down.1.attn.0.q.weight", "encoder.mid.attn_1.norm.weight",
		"encoder.down.1.block.0.nin_shortcut.weight", "encoder.norm_out.bias", "quant_conv.bias", NULL,
	};
	static const char *const dec[] = {
		"decoder.up.1.upsample.conv.weight", "decoder.up.1.attn.1.k.weight", "decoder.mid.attn_1.proj_out.bias",
		"decoder.up.0.block.0.norm1.weight", "decoder.conv_out.bias", NULL,
	};
	check_encoder_grad(&config_a, 2, 8, 8, enc, "config a");
	check_decoder_grad(&config_a, 2, 4, 4, dec, "config a");
}

static void test_coder_grad_b(void)
{
	static const char *const enc[] = {
		"encoder.down.0.attn.1.v.weight", "encoder.down.1.downsample.conv.bias", "encoder.down.2.block.1.conv2.weight",
		"encoder.mid.block_2.norm2.weight", "encoder.conv_out.weight", "quant_conv.weight", NULL,
	};
	static const char *const dec[] = {
		"decoder.conv_in.weight", "decoder.up.2.block.2.conv1.weight", "decoder.up.0.attn.2.q.bias",
		"decoder.up.0.attn.0.norm.bias", "decoder.norm_out.weight", NULL,
	};
	check_encoder_grad(&config_b, 1, 8, 8, enc, "config b");
	check_decoder_grad(&config_b, 1, 2, 2, dec, "config b");
}

/* The inference calls (alternating arenas, host in and out) give what the
 * training passes give, on config b's non-square images. */
static void test_inference_matches_passes(void)
{
	struct vqgan m;
	random_model(&m, &config_b, 9);
	int B = 3, H = 8, W = 12, h = 2, w = 3, D = config_b.embed_dim;
	size_t n_in = (size_t)B * H * W, nz = (size_t)B * D * h * w, n_out = (size_t)B * 2 * H * W;
	float *x = xmalloc(n_in * sizeof *x), *latents = xmalloc(nz * sizeof *latents);
	float *images = xmalloc(n_out * sizeof *images);
	fill(x, n_in, 21);
	int32_t tokens[18], idx[18];
	CHECK_MSG(vqgan_encode(&m, x, B, H, W, tokens, latents) == 0, "%s", error_message());
	CHECK_MSG(vqgan_decode(&m, tokens, B, h, w, images) == 0, "%s", error_message());

	struct nn_arena a = {0};
	const float *z = vqgan_encoder_forward(&m, &a, x, B, H, W);
	float *zq = nn_arena_floats(&a, nz), *dist = xmalloc((size_t)B * h * w * sizeof *dist);
	vqgan_quantize(&m, z, B, h, w, idx, zq, dist);
	const float *y = vqgan_decoder_forward(&m, &a, zq, B, h, w);
	CHECK(!memcmp(tokens, idx, sizeof idx));
	CHECK(!memcmp(latents, z, nz * sizeof *z));
	CHECK(!memcmp(images, y, n_out * sizeof *y));
	/* every code is the nearest one */
	const float *E = nn_param(&m.params, m.state->embedding);
	for (int r = 0; r < B * h * w; r++)
		for (int k = 0; k < config_b.n_embed; k++) {
			float s = 0;
			for (int d = 0; d < D; d++) {
				float diff = z[(size_t)(r / (h * w)) * D * h * w + (size_t)d * h * w + r % (h * w)] - E[k * D + d];
				s += diff * diff;
			}
			CHECK_MSG(s >= dist[r] - 1e-5f, "latent %d: code %d is nearer (%g) than %d (%g)", r, k, s, idx[r], dist[r]);
		}
	nn_arena_free(&a);
	free(x);
	free(latents);
	free(images);
	free(dist);
	vqgan_free(&m);
}

/* ---- errors ---- */

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
	return test_join(tmpdir, name);
}

static void remove_tmpdir(void)
{
	static const char *const names[] = { "model.safetensors", "variant.safetensors", "config.json", "bad.json" };
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		unlink(tmp_path(names[i]));
	rmdir(tmpdir);
}

static void save_model(const struct vqgan *m, const char *path)
{
	char *json = vqgan_config_json(&m->cfg);
	struct st_meta meta = { "config", json };
	CHECK_MSG(nn_params_save(path, &m->params, &meta, 1) == 0, "%s", error_message());
	free(json);
}

/* A copy of src without `drop`, with `reshape` flattened to one dimension,
 * plus an F32 tensor `extra` [2], all converted as `convert` says, with
 * metadata config `config` (NULL: src's). */
static void write_variant(const char *src, const char *dst, const char *drop, const char *reshape,
                          const char *extra, enum st_convert convert, const char *config)
{
	struct st_file *f = st_open(src);
	CHECK_MSG(f, "%s", error_message());
	if (!f)
		return;
	int n = st_count(f);
	struct st_tensor *t = xcalloc(n + 1, sizeof *t);
	int k = 0;
	static const float extra_data[2] = { 1, 2 };
	for (int i = 0; i < n; i++) {
		const struct st_entry *e = st_entry_at(f, i);
		if (drop && !strcmp(e->name, drop))
			continue;
		t[k] = (struct st_tensor){ e->name, e->dtype, e->ndim, {0}, e->data, convert };
		memcpy(t[k].shape, e->shape, sizeof e->shape);
		if (reshape && !strcmp(e->name, reshape)) {
			t[k].ndim = 1;
			t[k].shape[0] = (int64_t)e->numel;
		}
		k++;
	}
	if (extra)
		t[k++] = (struct st_tensor){ extra, DT_FLOAT32, 1, { 2 }, extra_data, convert };
	struct st_meta meta = { "config", config ? config : st_metadata(f, "config") };
	CHECK_MSG(st_write(dst, t, k, &meta, meta.value ? 1 : 0) == 0, "%s", error_message());
	free(t);
	st_close(f);
}

static void expect_load_error(const char *path, const char *config_path, const char *want)
{
	struct vqgan m;
	int rc = vqgan_load(&m, path, config_path, 0);
	CHECK_MSG(rc < 0, "loading %s succeeded; expected: %s", path, want);
	if (rc == 0) {
		vqgan_free(&m);
		return;
	}
	CHECK_MSG(strstr(error_message(), want) && strstr(error_message(), path), "message '%s' lacks '%s' or the path",
	          error_message(), want);
}

static void write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	CHECK(fp && fputs(text, fp) >= 0 && fclose(fp) == 0);
}

static void test_load_errors(void)
{
	struct vqgan m, back;
	random_model(&m, &config_a, 13);
	char model[400], variant[400];
	snprintf(model, sizeof model, "%s", tmp_path("model.safetensors"));
	snprintf(variant, sizeof variant, "%s", tmp_path("variant.safetensors"));
	save_model(&m, model);

	/* round trip, config from the metadata */
	CHECK_MSG(vqgan_load(&back, model, NULL, 0) == 0, "%s", error_message());
	CHECK(!memcmp(&back.cfg, &m.cfg, sizeof m.cfg));
	for (int i = 0; i < m.params.n; i++)
		CHECK_MSG(!memcmp(nn_param(&m.params, i), nn_param(&back.params, i), m.params.items[i].numel * 4),
		          "%s differs", m.params.items[i].name);
	vqgan_free(&back);

	/* a corrupt file: cut short */
	FILE *in = fopen(model, "rb"), *out = fopen(variant, "wb");
	char buf[4096];
	size_t got = fread(buf, 1, sizeof buf, in);
	fwrite(buf, 1, got, out);
	fclose(in);
	fclose(out);
	expect_load_error(variant, NULL, variant);

	write_variant(model, variant, "decoder.up.0.block.0.conv2.bias", NULL, NULL, ST_AS_IS, NULL);
	expect_load_error(variant, NULL, "tensor 'decoder.up.0.block.0.conv2.bias' is missing");
	write_variant(model, variant, "quantize.embedding.weight", NULL, NULL, ST_AS_IS, NULL);
	expect_load_error(variant, NULL, "tensor 'quantize.embedding.weight' is missing");
	write_variant(model, variant, NULL, "encoder.mid.attn_1.q.weight", NULL, ST_AS_IS, NULL);
	expect_load_error(variant, NULL, "tensor 'encoder.mid.attn_1.q.weight' has shape [4096]");
	write_variant(model, variant, NULL, "quant_conv.weight", NULL, ST_AS_IS, NULL);
	expect_load_error(variant, NULL, "tensor 'quant_conv.weight' has 1 dimensions");
	write_variant(model, variant, NULL, NULL, "decoder.up.0.block.9.conv1.bias", ST_AS_IS, NULL);
	expect_load_error(variant, NULL, "tensor 'decoder.up.0.block.9.conv1.bias' is not a parameter");

	/* config metadata or file that belongs to another model */
	struct vqgan_config other = config_a;
	other.n_embed = 9;
	char *json = vqgan_config_json(&other);
	write_variant(model, variant, NULL, NULL, NULL, ST_AS_IS, json);
	expect_load_error(variant, NULL, "n_embed is 9, but 8 in the checkpoint (tensor 'quantize.embedding.weight')");
	free(json);
	other = config_a;
	other.attn[1] = 0;
	json = vqgan_config_json(&other);
	write_text(tmp_path("config.json"), json);
	expect_load_error(model, tmp_path("config.json"), "tensor 'encoder.down.1.attn.0.q.weight'");
	free(json);
	write_text(tmp_path("bad.json"), "{\"embed_dim\": 4, \"n_embed\": 8, \"ddconfig\": {\"double_z\": true}}");
	expect_load_error(model, tmp_path("bad.json"), "double_z is true");
	write_text(tmp_path("bad.json"), "{\"model\": {\"params\": {\"embed_dim\": 4}}}");
	expect_load_error(model, tmp_path("bad.json"), "no 'ddconfig'");

	/* accepted: the losses' tensors of a real checkpoint, F16 and BF16
	 * weights, and a taming YAML turned JSON as the config file */
	write_variant(model, variant, NULL, NULL, "loss.discriminator.main.0.weight", ST_AS_IS, NULL);
	CHECK_MSG(vqgan_load(&back, variant, NULL, 0) == 0, "%s", error_message());
	vqgan_free(&back);
	enum st_convert halves[2] = { ST_TO_F16, ST_TO_BF16 };
	for (int i = 0; i < 2; i++) {
		write_variant(model, variant, NULL, NULL, NULL, halves[i], NULL);
		if (vqgan_load(&back, variant, NULL, 0) < 0) {
			CHECK_MSG(0, "%s", error_message());
			break;
		}
		const float *a = nn_param(&m.params, 0), *b = nn_param(&back.params, 0);
		for (size_t j = 0; j < m.params.items[0].numel; j++)
			CHECK_NEAR(b[j], a[j], 1e-2 * fabs(a[j]) + 1e-6);
		vqgan_free(&back);
	}
	write_text(tmp_path("config.json"),
	           "{\"model\": {\"base_learning_rate\": 4.5e-06, \"target\": \"taming.models.vqgan.VQModel\", "
	           "\"params\": {\"embed_dim\": 4, \"n_embed\": 8, \"ddconfig\": {\"double_z\": false, "
	           "\"z_channels\": 4, \"resolution\": 32, \"in_channels\": 3, \"out_ch\": 3, \"ch\": 32, "
	           "\"ch_mult\": [1, 2], \"num_res_blocks\": 1, \"attn_resolutions\": [16], \"dropout\": 0.0}, "
	           "\"lossconfig\": {\"target\": \"taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator\"}}}}");
	CHECK_MSG(vqgan_load(&back, model, tmp_path("config.json"), 0) == 0, "%s", error_message());
	CHECK(back.cfg.resolution == 32);
	vqgan_free(&back);
	vqgan_free(&m);
}

/* Configs through JSON: the round trip, a resolution the checkpoint did not
 * say (written as the factor, which keeps the attention levels), and
 * refusals. */
static void test_config_json(void)
{
	struct vqgan_config c = config_b, back;
	c.resolution = 0;
	char *json = vqgan_config_json(&c);
	CHECK_MSG(vqgan_config_from_json(&back, json) == 0, "%s", error_message());
	CHECK_MSG(back.resolution == 4 && !memcmp(back.attn, c.attn, sizeof c.attn), "%s", json);
	back.resolution = 0;
	CHECK_MSG(!memcmp(&back, &c, sizeof c), "%s", json);
	free(json);
	static const char *const bad[][2] = {
		{ "[1, 2]", "not a JSON object" },
		{ "{\"embed_dim\": 4, \"n_embed\": 8, \"ddconfig\": {\"ch\": 32, \"ch_mult\": [1, 2], "
		  "\"num_res_blocks\": 1, \"z_channels\": 4, \"attn_resolutions\": [8]}}", "needs 'resolution'" },
		{ "{\"embed_dim\": 4, \"n_embed\": 8, \"ddconfig\": {\"ch\": 24, \"ch_mult\": [1, 2], "
		  "\"num_res_blocks\": 1, \"z_channels\": 4}}", "group norm needs a multiple of 32" },
		{ "{\"embed_dim\": 4, \"n_embed\": 8, \"ddconfig\": {\"ch\": 32, \"ch_mult\": [1, 2], "
		  "\"num_res_blocks\": 1, \"z_channels\": 4, \"resolution\": 7}}", "not a multiple of the downsampling" },
		{ "{\"embed_dim\": 4, \"n_embed\": 8, \"ddconfig\": {\"ch\": 32, \"ch_mult\": [1, 2], "
		  "\"num_res_blocks\": 1, \"z_channels\": 4, \"attn_type\": \"linear\"}}", "vanilla" },
		{ "{\"embed_dim\": 4, \"n_embed\": 8, \"ddconfig\": {\"ch\": 32, \"ch_mult\": \"12\", "
		  "\"num_res_blocks\": 1, \"z_channels\": 4}}", "'ch_mult' is not a list" },
		{ "{\"embed_dim\": 4, \"n_embed\": 8, \"ddconfig\": {\"ch\": 32, \"ch_mult\": [1], "
		  "\"num_res_blocks\": 1, \"z_channels\": 4}, \"quantizer\": {\"remap\": \"x.npy\"}}", "remap" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		CHECK_MSG(vqgan_config_from_json(&back, bad[i][0]) < 0, "accepted %s", bad[i][0]);
		CHECK_MSG(strstr(error_message(), bad[i][1]), "'%s' for %s", error_message(), bad[i][0]);
	}
}

static void test_inference_errors(void)
{
	struct vqgan m;
	random_model(&m, &config_a, 17);
	int32_t tokens[2 * 4 * 4];
	float images[2 * 3 * 8 * 8];
	memset(tokens, 0, sizeof tokens);
	tokens[21] = config_a.n_embed;
	CHECK(vqgan_decode(&m, tokens, 2, 4, 4, images) < 0);
	CHECK_MSG(strstr(error_message(), "token 8 (image 1, row 1, column 1) is outside the codebook of 8 codes"),
	          "%s", error_message());
	tokens[21] = -1;
	CHECK(vqgan_decode(&m, tokens, 2, 4, 4, images) < 0 && strstr(error_message(), "token -1"));
	tokens[21] = 7;
	CHECK_MSG(vqgan_decode(&m, tokens, 2, 4, 4, images) == 0, "%s", error_message());
	fill(images, sizeof images / sizeof *images, 5);
	CHECK(vqgan_encode(&m, images, 1, 7, 8, tokens, NULL) < 0);
	CHECK_MSG(strstr(error_message(), "multiples of the model's downsampling factor 2"), "%s", error_message());
	CHECK(vqgan_encode(&m, images, 1, 8, 8, tokens, NULL) == 0);
	for (int i = 0; i < 16; i++)
		CHECK(tokens[i] >= 0 && tokens[i] < config_a.n_embed);
	vqgan_free(&m);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "%s/test_vqgan_grad.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		printf("FAIL mkdtemp: %s\n", tmpdir);
		return 1;
	}
	/* Finite differences run hundreds of forward passes over tiny tensors,
	 * where threads only add synchronisation (and a loaded machine makes
	 * that slow); the ops' threading is tested with the ops. */
	int threads = omp_get_max_threads();
	omp_set_num_threads(1);
	RUN(test_attnblock_grad);
	RUN(test_coder_grad_a);
	RUN(test_coder_grad_b);
	omp_set_num_threads(threads);
	RUN(test_inference_matches_passes);
	RUN(test_config_json);
	RUN(test_load_errors);
	RUN(test_inference_errors);
	remove_tmpdir();
	TEST_EXIT();
}
