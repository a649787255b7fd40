/* A VQGAN's hyperparameters: from taming's config JSON, from a checkpoint's
 * tensors, and back to JSON (formats/vqgan-checkpoint.md).
 *
 * The tensors are the authority: every size can be read off them. A config
 * adds what they cannot tell, the training resolution and the commitment
 * weight, and is otherwise only checked against them. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"
#include "stream/json.h"
#include "stream/msgpack.h"
#include "vqgan/vqgan_internal.h"

#define MAX_CHANNELS (1 << 16)
#define MAX_BLOCKS 64
#define MAX_CODES (1 << 24)
#define TAMING_BETA 0.25f

int vqgan_factor(const struct vqgan_config *c)
{
	return 1 << (c->levels - 1);
}

int vqgan_config_check(const struct vqgan_config *c)
{
	if (c->levels < 1 || c->levels > VQGAN_MAX_LEVELS)
		return errorf("%d levels (ch_mult entries): must be 1 to %d", c->levels, VQGAN_MAX_LEVELS);
	const struct { const char *name; int value, max; } sizes[] = {
		{ "in_channels", c->in_channels, MAX_CHANNELS }, { "out_ch", c->out_ch, MAX_CHANNELS },
		{ "ch", c->ch, MAX_CHANNELS }, { "num_res_blocks", c->num_res_blocks, MAX_BLOCKS },
		{ "z_channels", c->z_channels, MAX_CHANNELS }, { "embed_dim", c->embed_dim, MAX_CHANNELS },
		{ "n_embed", c->n_embed, MAX_CODES },
	};
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
		if (sizes[i].value < 1 || sizes[i].value > sizes[i].max)
			return errorf("%s is %d: must be 1 to %d", sizes[i].name, sizes[i].value, sizes[i].max);
	for (int i = 0; i < c->levels; i++) {
		long channels = (long)c->ch * c->ch_mult[i];
		if (c->ch_mult[i] < 1 || channels > MAX_CHANNELS)
			return errorf("ch_mult[%d] is %d: must be at least 1 and keep channels under %d", i, c->ch_mult[i],
			              MAX_CHANNELS);
		if (channels % VQGAN_GROUPS)
			return errorf("level %d has %ld channels (ch %d x ch_mult %d): group norm needs a multiple of %d", i,
			              channels, c->ch, c->ch_mult[i], VQGAN_GROUPS);
		if (c->attn[i] != 0 && c->attn[i] != 1)
			return errorf("attn[%d] is %d: must be 0 or 1", i, c->attn[i]);
	}
	if (c->resolution < 0 || c->resolution % vqgan_factor(c))
		return errorf("resolution %d is not a multiple of the downsampling factor %d", c->resolution,
		              vqgan_factor(c));
	if (!(c->beta >= 0 && c->beta < 1e6f))
		return errorf("beta %g is not a non-negative number", c->beta);
	return 0;
}

/* ---- JSON ---- */

/* A parsed document: values are msgpack, walked in place. */
struct doc {
	const uint8_t *end;
};

/* The value of key in the map at `map` (NULL if map is NULL, not a map, or
 * lacks the key). */
static const uint8_t *field(const struct doc *d, const uint8_t *map, const char *key)
{
	if (!map)
		return NULL;
	const uint8_t *p = map;
	return mp_map_find(&p, d->end, key) == 0 ? p : NULL;
}

static int header(const struct doc *d, const uint8_t *p, struct mp_header *h)
{
	return mp_decode_header(p, (size_t)(d->end - p), h);
}

/* A number value; -1 if it is none. */
static int number(const struct doc *d, const uint8_t *p, double *v)
{
	struct mp_header h;
	if (header(d, p, &h) <= 0)
		return -1;
	switch (h.type) {
	case MP_INT: *v = (double)h.i; return 0;
	case MP_UINT: *v = (double)h.u; return 0;
	case MP_FLOAT32:
	case MP_FLOAT64: *v = h.f; return 0;
	default: return -1;
	}
}

static int is_count(double v)
{
	return v == floor(v) && v >= 0 && v <= 1 << 30;
}

/* A non-negative integer field; absent fields keep *v unless required. */
static int get_int(const struct doc *d, const uint8_t *map, const char *where, const char *key, int *v,
                   int required)
{
	const uint8_t *p = field(d, map, key);
	double x;
	if (!p)
		return required ? errorf("%s'%s' is missing", where, key) : 0;
	if (number(d, p, &x) < 0 || !is_count(x))
		return errorf("%s'%s' is not a non-negative integer", where, key);
	*v = (int)x;
	return 0;
}

/* A list of non-negative integers (at most max; absent: n = 0). */
static int get_int_list(const struct doc *d, const uint8_t *map, const char *where, const char *key, int *v,
                        int max, int *n)
{
	*n = 0;
	const uint8_t *p = field(d, map, key);
	struct mp_header h;
	if (!p)
		return 0;
	int len = header(d, p, &h);
	if (len <= 0 || h.type != MP_ARRAY)
		return errorf("%s'%s' is not a list", where, key);
	if (h.len > (uint64_t)max)
		return errorf("%s'%s' has %llu entries: at most %d are supported", where, key, (unsigned long long)h.len,
		              max);
	p += len;
	for (uint64_t i = 0; i < h.len; i++) {
		double x;
		if (number(d, p, &x) < 0 || !is_count(x))
			return errorf("%s'%s' holds something other than non-negative integers", where, key);
		v[(*n)++] = (int)x;
		if (mp_skip_value(&p, d->end, 4) < 0)
			return -1;
	}
	return 0;
}

/* A boolean field (absent or null: *v kept). */
static int get_bool(const struct doc *d, const uint8_t *map, const char *where, const char *key, int *v)
{
	const uint8_t *p = field(d, map, key);
	struct mp_header h;
	if (!p)
		return 0;
	if (header(d, p, &h) <= 0 || (h.type != MP_BOOL && h.type != MP_NIL))
		return errorf("%s'%s' is not true or false", where, key);
	if (h.type == MP_BOOL)
		*v = h.b;
	return 0;
}

/* Whether a field is present and not null. */
static int given(const struct doc *d, const uint8_t *map, const char *key)
{
	const uint8_t *p = field(d, map, key);
	struct mp_header h;
	return p && header(d, p, &h) > 0 && h.type != MP_NIL;
}

/* Options of taming's Encoder/Decoder that change the architecture in ways
 * this model does not implement. */
static int refuse_variants(const struct doc *d, const uint8_t *dd)
{
	const char *flags[][2] = {
		{ "double_z", "that is taming's KL autoencoder, not a VQGAN" },
		{ "tanh_out", "the decoder has no final tanh here" },
		{ "give_pre_end", "the decoder always ends with norm_out and conv_out" },
		{ "use_linear_attn", "only taming's vanilla attention is implemented" },
	};
	for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
		int on = 0;
		if (get_bool(d, dd, "ddconfig: ", flags[i][0], &on) < 0)
			return -1;
		if (on)
			return errorf("ddconfig: %s is true: %s", flags[i][0], flags[i][1]);
	}
	int resamp = 1;
	if (get_bool(d, dd, "ddconfig: ", "resamp_with_conv", &resamp) < 0)
		return -1;
	if (!resamp)
		return errorf("ddconfig: resamp_with_conv is false: only convolutional resampling is implemented");
	const uint8_t *p = field(d, dd, "attn_type");
	struct mp_header h;
	int n;
	if (p && (n = header(d, p, &h)) > 0 && h.type == MP_STR &&
	    !(h.len == 7 && (size_t)(d->end - p - n) >= 7 && !memcmp(p + n, "vanilla", 7)))
		return errorf("ddconfig: attn_type is not \"vanilla\": only taming's vanilla attention is implemented");
	return 0;
}

static int read_quantizer(const struct doc *d, const uint8_t *params, struct vqgan_config *c)
{
	const uint8_t *q = field(d, params, "quantizer");
	if (given(d, q, "remap"))
		return errorf("quantizer: remap is set: remapped code indices are not supported");
	const uint8_t *p = field(d, q, "beta");
	double beta;
	if (p && (number(d, p, &beta) < 0 || !(beta >= 0 && beta < 1e6)))
		return errorf("quantizer: 'beta' is not a non-negative number");
	if (p)
		c->beta = (float)beta;
	return 0;
}

/* Fills c from the map holding embed_dim, n_embed and ddconfig. */
static int read_params(const struct doc *d, const uint8_t *params, struct vqgan_config *c)
{
	const uint8_t *dd = field(d, params, "ddconfig");
	struct mp_header h;
	if (!dd || header(d, dd, &h) <= 0 || h.type != MP_MAP)
		return errorf("'ddconfig' is missing or not an object");
	const char *where = "ddconfig: ";
	int attn_res[64], n_attn;
	c->in_channels = c->out_ch = 3;
	c->beta = TAMING_BETA;
	if (refuse_variants(d, dd) < 0 || get_int(d, params, "", "embed_dim", &c->embed_dim, 1) < 0 ||
	    get_int(d, params, "", "n_embed", &c->n_embed, 1) < 0 ||
	    get_int(d, dd, where, "ch", &c->ch, 1) < 0 ||
	    get_int_list(d, dd, where, "ch_mult", c->ch_mult, VQGAN_MAX_LEVELS, &c->levels) < 0 ||
	    get_int(d, dd, where, "num_res_blocks", &c->num_res_blocks, 1) < 0 ||
	    get_int(d, dd, where, "z_channels", &c->z_channels, 1) < 0 ||
	    get_int(d, dd, where, "in_channels", &c->in_channels, 0) < 0 ||
	    get_int(d, dd, where, "out_ch", &c->out_ch, 0) < 0 ||
	    get_int(d, dd, where, "resolution", &c->resolution, 0) < 0 ||
	    get_int_list(d, dd, where, "attn_resolutions", attn_res, 64, &n_attn) < 0 ||
	    read_quantizer(d, params, c) < 0)
		return -1;
	if (c->levels == 0)
		return errorf("ddconfig: 'ch_mult' is missing or empty");
	if (n_attn && c->resolution <= 0)
		return errorf("ddconfig: attn_resolutions needs 'resolution' to place the attention blocks");
	/* taming halves curr_res from `resolution` at each level and puts
	 * attention wherever it is one of attn_resolutions. */
	for (int i = 0; i < c->levels; i++)
		for (int j = 0; j < n_attn; j++)
			if (c->resolution >> i == attn_res[j])
				c->attn[i] = 1;
	return 0;
}

int vqgan_config_from_json(struct vqgan_config *c, const char *json)
{
	memset(c, 0, sizeof *c);
	struct mp_buf mp = {0};
	int rc = -1;
	if (json_to_msgpack(json, strlen(json), &mp) < 0)
		goto out;
	struct doc d = { mp.data + mp.len };
	const uint8_t *top = mp.data;
	struct mp_header h;
	if (header(&d, top, &h) <= 0 || h.type != MP_MAP) {
		errorf("not a JSON object");
		goto out;
	}
	/* taming's YAML keeps the model under model.params; a model section
	 * alone has them under params. */
	const uint8_t *params = top;
	if (!field(&d, params, "ddconfig")) {
		const uint8_t *model = field(&d, top, "model");
		params = field(&d, model ? model : top, "params");
	}
	if (!params || !field(&d, params, "ddconfig")) {
		errorf("not a taming VQGAN config: no 'ddconfig' at the top, under 'params' or under 'model.params'");
		goto out;
	}
	rc = read_params(&d, params, c);
	if (rc == 0)
		rc = vqgan_config_check(c);
out:
	mp_buf_free(&mp);
	return rc;
}

char *vqgan_config_json(const struct vqgan_config *c)
{
	char *text = NULL;
	size_t size = 0;
	FILE *s = open_memstream(&text, &size);
	if (!s)
		die("out of memory");
	/* Without a known training resolution, one of `factor` places the
	 * attention levels exactly (its latent grid is 1x1). */
	int res = c->resolution > 0 ? c->resolution : vqgan_factor(c);
	fprintf(s, "{\"embed_dim\": %d, \"n_embed\": %d, \"ddconfig\": {\"double_z\": false, \"z_channels\": %d, "
	        "\"resolution\": %d, \"in_channels\": %d, \"out_ch\": %d, \"ch\": %d, \"ch_mult\": [",
	        c->embed_dim, c->n_embed, c->z_channels, res, c->in_channels, c->out_ch, c->ch);
	for (int i = 0; i < c->levels; i++)
		fprintf(s, "%s%d", i ? ", " : "", c->ch_mult[i]);
	fprintf(s, "], \"num_res_blocks\": %d, \"attn_resolutions\": [", c->num_res_blocks);
	for (int i = 0, first = 1; i < c->levels; i++)
		if (c->attn[i]) {
			fprintf(s, "%s%d", first ? "" : ", ", res >> i);
			first = 0;
		}
	fprintf(s, "], \"dropout\": 0.0}, \"quantizer\": {\"class\": \"VectorQuantizer2\", \"beta\": %.9g, "
	        "\"legacy\": true, \"remap\": null, \"sane_index_shape\": false}}", c->beta);
	if (fclose(s) != 0)
		die("out of memory");
	return text;
}

/* ---- From a checkpoint's tensors ---- */

static const struct st_entry *tensor(const struct st_file *f, int ndim, const char *fmt, ...) KNND_PRINTF(3, 4);
/* The tensor of that (formatted) name with ndim dimensions, or NULL with
 * errorf naming it. */
static const struct st_entry *tensor(const struct st_file *f, int ndim, const char *fmt, ...)
{
	char name[NN_NAME_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	const struct st_entry *e = st_find(f, name);
	if (!e) {
		errorf("tensor '%s' is missing", name);
		return NULL;
	}
	if (e->ndim != ndim) {
		errorf("tensor '%s' has %d dimensions, not %d", name, e->ndim, ndim);
		return NULL;
	}
	for (int d = 0; d < ndim; d++)
		if (e->shape[d] < 1 || e->shape[d] > MAX_CODES) {
			errorf("tensor '%s' has a dimension of %lld", name, (long long)e->shape[d]);
			return NULL;
		}
	return e;
}

static int has(const struct st_file *f, const char *fmt, int i, int j)
{
	char name[NN_NAME_MAX];
	snprintf(name, sizeof name, fmt, i, j);
	return st_find(f, name) != NULL;
}

static int read_tensor_sizes(struct vqgan_config *c, const struct st_file *f)
{
	const struct st_entry *e = tensor(f, 4, "encoder.conv_in.weight");
	if (!e)
		return -1;
	c->ch = (int)e->shape[0];
	c->in_channels = (int)e->shape[1];
	while (c->levels <= VQGAN_MAX_LEVELS && has(f, "encoder.down.%d.block.%d.conv1.weight", c->levels, 0))
		c->levels++;
	if (c->levels == 0)
		return errorf("tensor 'encoder.down.0.block.0.conv1.weight' is missing: not a taming VQGAN");
	if (c->levels > VQGAN_MAX_LEVELS)
		return errorf("tensor 'encoder.down.%d.block.0.conv1.weight': more than %d levels are not supported",
		              VQGAN_MAX_LEVELS, VQGAN_MAX_LEVELS);
	while (c->num_res_blocks <= MAX_BLOCKS && has(f, "encoder.down.%d.block.%d.conv1.weight", 0, c->num_res_blocks))
		c->num_res_blocks++;
	for (int i = 0; i < c->levels; i++) {
		if (!(e = tensor(f, 4, "encoder.down.%d.block.0.conv1.weight", i)))
			return -1;
		if (e->shape[0] % c->ch || e->shape[0] % VQGAN_GROUPS)
			return errorf("tensor '%s' has %lld output channels: not a multiple of ch %d (encoder.conv_in.weight) "
			              "and of %d groups", e->name, (long long)e->shape[0], c->ch, VQGAN_GROUPS);
		c->ch_mult[i] = (int)(e->shape[0] / c->ch);
		c->attn[i] = has(f, "encoder.down.%d.attn.%d.q.weight", i, 0);
	}
	if (!(e = tensor(f, 4, "encoder.conv_out.weight")))
		return -1;
	c->z_channels = (int)e->shape[0];
	if (!(e = tensor(f, 4, "quant_conv.weight")))
		return -1;
	c->embed_dim = (int)e->shape[0];
	if (e->shape[1] != c->z_channels)
		return errorf("tensor 'quant_conv.weight' takes %lld channels, but encoder.conv_out.weight gives %d (a "
		              "double_z encoder, i.e. taming's KL autoencoder?)", (long long)e->shape[1], c->z_channels);
	if (!st_find(f, "quantize.embedding.weight") && st_find(f, "quantize.embed.weight"))
		return errorf("tensor 'quantize.embed.weight' belongs to taming's GumbelQuantize: only VectorQuantizer2 "
		              "(quantize.embedding.weight) is supported");
	if (!(e = tensor(f, 2, "quantize.embedding.weight")))
		return -1;
	c->n_embed = (int)e->shape[0];
	if (e->shape[1] != c->embed_dim)
		return errorf("tensor 'quantize.embedding.weight' has codes of %lld dimensions, but quant_conv.weight "
		              "gives %d", (long long)e->shape[1], c->embed_dim);
	if (!(e = tensor(f, 4, "decoder.conv_out.weight")))
		return -1;
	c->out_ch = (int)e->shape[0];
	c->beta = TAMING_BETA;
	return 0;
}

static int mismatch(const char *label, const char *what, int given, int actual, const char *tensor)
{
	return errorf("%s: %s is %d, but %d in the checkpoint (tensor '%s'): the config belongs to another model",
	              label, what, given, actual, tensor);
}

int vqgan_config_adopt(struct vqgan_config *c, const struct vqgan_config *g, const char *label)
{
	const struct { const char *what; int given, actual; const char *tensor; } sizes[] = {
		{ "in_channels", g->in_channels, c->in_channels, "encoder.conv_in.weight" },
		{ "ch", g->ch, c->ch, "encoder.conv_in.weight" },
		{ "the level count (len(ch_mult))", g->levels, c->levels, "encoder.down.N.*" },
		{ "num_res_blocks", g->num_res_blocks, c->num_res_blocks, "encoder.down.0.block.M.*" },
		{ "z_channels", g->z_channels, c->z_channels, "encoder.conv_out.weight" },
		{ "embed_dim", g->embed_dim, c->embed_dim, "quant_conv.weight" },
		{ "n_embed", g->n_embed, c->n_embed, "quantize.embedding.weight" },
		{ "out_ch", g->out_ch, c->out_ch, "decoder.conv_out.weight" },
	};
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
		if (sizes[i].given != sizes[i].actual)
			return mismatch(label, sizes[i].what, sizes[i].given, sizes[i].actual, sizes[i].tensor);
	char what[64], name[NN_NAME_MAX];
	for (int i = 0; i < c->levels; i++) {
		snprintf(what, sizeof what, "ch_mult[%d]", i);
		snprintf(name, sizeof name, "encoder.down.%d.block.0.conv1.weight", i);
		if (g->ch_mult[i] != c->ch_mult[i])
			return mismatch(label, what, g->ch_mult[i], c->ch_mult[i], name);
		snprintf(name, sizeof name, "encoder.down.%d.attn.0.q.weight", i);
		if (g->attn[i] != c->attn[i])
			return errorf("%s: attn_resolutions %s attention at level %d (resolution %d), but the checkpoint %s "
			              "tensor '%s': the config belongs to another model", label, g->attn[i] ? "puts" : "puts no",
			              i, g->resolution >> i, c->attn[i] ? "has" : "has no", name);
	}
	c->resolution = g->resolution;
	c->beta = g->beta;
	return 0;
}

int vqgan_config_from_checkpoint(struct vqgan_config *c, const struct st_file *f)
{
	memset(c, 0, sizeof *c);
	if (read_tensor_sizes(c, f) < 0)
		return -1;
	const char *meta = st_metadata(f, "config");
	if (meta) {
		struct vqgan_config g;
		if (vqgan_config_from_json(&g, meta) < 0)
			return error_prefix("metadata config");
		if (vqgan_config_adopt(c, &g, "metadata config") < 0)
			return -1;
	}
	return vqgan_config_check(c);
}
