/* Reading a CLIP's hyperparameters from its tensors and configs (see
 * clip_config.h for the order of precedence). */
#include "clip/clip_config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tool.h"
#include "stream/json.h"
#include "stream/msgpack.h"

/* Config files are a few kB; anything this large is not one. */
#define CONFIG_MAX_BYTES (1 << 20)

const char *clip_heads_from_name(enum clip_heads_from from)
{
	switch (from) {
	case CLIP_HEADS_OPTION: return "option";
	case CLIP_HEADS_CONFIG_FILE: return "config file";
	case CLIP_HEADS_METADATA: return "checkpoint metadata";
	case CLIP_HEADS_BESIDE_MODEL: return "config beside the model";
	case CLIP_HEADS_WIDTH_64: return "width/64";
	}
	return "?";
}

/* ---- shapes ---- */

void clip_format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
	int at = snprintf(buf, size, "[");
	for (int d = 0; d < ndim && at < (int)size - 24; d++)
		at += snprintf(buf + at, size - at, d ? ",%lld" : "%lld", (long long)shape[d]);
	snprintf(buf + at, size - at, "]");
}

/* The model-view shape of hf_name, which must have `ndim` dimensions. */
static const struct st_entry *param_shape(const struct st_file *f, enum clip_naming naming, const char *hf_name,
                                          int want_ndim, int64_t *shape)
{
	enum clip_layout layout;
	int ndim;
	const struct st_entry *e = clip_find_param(f, naming, hf_name, &layout, &ndim, shape);
	if (e && ndim != want_ndim) {
		char got[128];
		clip_format_shape(got, sizeof got, e->ndim, e->shape);
		errorf("tensor '%s' has shape %s: expected %d dimensions", e->name, got, want_ndim);
		return NULL;
	}
	for (int d = 0; e && d < ndim; d++)
		if (shape[d] <= 0 || shape[d] > INT32_MAX / 4) {
			char got[128];
			clip_format_shape(got, sizeof got, e->ndim, e->shape);
			errorf("tensor '%s' has shape %s", e->name, got);
			return NULL;
		}
	return e;
}

static int has_param(const struct st_file *f, enum clip_naming naming, const char *hf_name)
{
	char buf[NN_NAME_MAX];
	enum clip_layout layout;
	const char *stored = clip_stored_name(naming, hf_name, buf, &layout);
	return stored && st_find(f, stored);
}

/* Blocks 0, 1, ... as long as they exist. A gap would leave tensors the
 * loader does not use, which it reports. */
static int count_layers(const struct st_file *f, enum clip_naming naming, const char *tower)
{
	char name[NN_NAME_MAX];
	int n = 0;
	for (;; n++) {
		snprintf(name, sizeof name, "%s.encoder.layers.%d.layer_norm1.weight", tower, n);
		if (!has_param(f, naming, name))
			return n;
	}
}

static int detect_naming(const struct st_file *f, enum clip_naming *naming)
{
	if (st_find(f, "vision_model.embeddings.patch_embedding.weight")) {
		*naming = CLIP_NAMING_HF;
		return 0;
	}
	if (st_find(f, "visual.conv1.weight")) {
		if (st_find(f, "visual.layer1.0.conv1.weight") || st_find(f, "visual.attnpool.positional_embedding"))
			return errorf("a CLIP with a ResNet image tower: only ViT towers are supported");
		*naming = CLIP_NAMING_OPENAI;
		return 0;
	}
	return errorf("not a CLIP checkpoint: it has neither visual.conv1.weight (OpenAI / open_clip naming) "
	              "nor vision_model.embeddings.patch_embedding.weight (Hugging Face naming)");
}

static int tower_shapes(const struct st_file *f, enum clip_naming naming, const char *tower,
                        struct clip_tower_config *t, const char *what)
{
	char name[NN_NAME_MAX];
	int64_t shape[NN_PARAM_MAX_DIMS];
	t->layers = count_layers(f, naming, tower);
	if (t->layers == 0) {
		snprintf(name, sizeof name, "%s.encoder.layers.0.layer_norm1.weight", tower);
		char buf[NN_NAME_MAX];
		enum clip_layout layout;
		return errorf("the %s tower has no blocks (no tensor '%s')", what,
		              clip_stored_name(naming, name, buf, &layout));
	}
	snprintf(name, sizeof name, "%s.encoder.layers.0.mlp.fc1.weight", tower);
	const struct st_entry *e = param_shape(f, naming, name, 2, shape);
	if (!e)
		return -1;
	if (shape[1] != t->width)
		return errorf("tensor '%s' has %lld inputs, but the %s width is %d", e->name, (long long)shape[1],
		              what, t->width);
	t->mlp_dim = (int)shape[0];
	return 0;
}

static int read_shapes(struct clip_config *c, const struct st_file *f)
{
	int64_t s[NN_PARAM_MAX_DIMS];
	enum clip_naming nm = c->naming;
	char got[128];

	const struct st_entry *e = param_shape(f, nm, "vision_model.embeddings.patch_embedding.weight", 4, s);
	if (!e)
		return -1;
	if (s[1] != 3 || s[2] != s[3]) {
		clip_format_shape(got, sizeof got, e->ndim, e->shape);
		return errorf("tensor '%s' has shape %s: expected [width, 3, patch, patch]", e->name, got);
	}
	c->vision.width = (int)s[0];
	c->patch = (int)s[2];

	e = param_shape(f, nm, "vision_model.embeddings.position_embedding.weight", 2, s);
	if (!e)
		return -1;
	int grid = (int)lround(sqrt((double)(s[0] - 1)));
	if (s[1] != c->vision.width || s[0] < 2 || (int64_t)grid * grid != s[0] - 1) {
		clip_format_shape(got, sizeof got, e->ndim, e->shape);
		return errorf("tensor '%s' has shape %s: expected [1 + grid*grid, %d]", e->name, got, c->vision.width);
	}
	c->grid = grid;
	c->resolution = grid * c->patch;
	if (tower_shapes(f, nm, "vision_model", &c->vision, "vision") < 0)
		return -1;

	e = param_shape(f, nm, "text_model.embeddings.token_embedding.weight", 2, s);
	if (!e)
		return -1;
	c->vocab = (int)s[0];
	c->text.width = (int)s[1];
	e = param_shape(f, nm, "text_model.embeddings.position_embedding.weight", 2, s);
	if (!e)
		return -1;
	if (s[1] != c->text.width) {
		clip_format_shape(got, sizeof got, e->ndim, e->shape);
		return errorf("tensor '%s' has shape %s: the text width is %d", e->name, got, c->text.width);
	}
	c->context = (int)s[0];
	if (tower_shapes(f, nm, "text_model", &c->text, "text") < 0)
		return -1;

	e = param_shape(f, nm, "text_projection.weight", 2, s);
	if (!e)
		return -1;
	c->embed_dim = (int)s[0];
	if (s[1] != c->text.width) {
		clip_format_shape(got, sizeof got, e->ndim, e->shape);
		return errorf("tensor '%s' has shape %s: the text width is %d", e->name, got, c->text.width);
	}
	e = param_shape(f, nm, "visual_projection.weight", 2, s);
	if (!e)
		return -1;
	if (s[0] != c->embed_dim || s[1] != c->vision.width) {
		clip_format_shape(got, sizeof got, e->ndim, e->shape);
		return errorf("tensor '%s' has shape %s: the vision width is %d and the text projection's %d",
		              e->name, got, c->vision.width, c->embed_dim);
	}
	return 0;
}

/* ---- configs ---- */

/* What one config says; -1 (or 0 for eps) where it says nothing. */
struct tower_values {
	int heads, width, layers, mlp_dim, act;
	float eps;
};

struct config_values {
	struct tower_values vision, text;
	int embed_dim, patch, resolution, context, vocab;
};

static const uint8_t *json_field(const uint8_t *map, const uint8_t *end, const char *key)
{
	if (!map)
		return NULL;
	const uint8_t *p = map;
	return mp_map_find(&p, end, key) == 0 ? p : NULL;
}

/* A number field, or NULL-safe "absent" (returns 0 and leaves *v). -1 if
 * present but not a number. */
static int json_number(const uint8_t *map, const uint8_t *end, const char *key, double *v)
{
	const uint8_t *p = json_field(map, end, key);
	if (!p)
		return 0;
	struct mp_header h;
	if (mp_decode_header(p, (size_t)(end - p), &h) <= 0)
		return -1;
	switch (h.type) {
	case MP_INT: *v = (double)h.i; return 1;
	case MP_UINT: *v = (double)h.u; return 1;
	case MP_FLOAT32:
	case MP_FLOAT64: *v = h.f; return 1;
	case MP_NIL: return 0;
	default: return -1;
	}
}

/* A positive integer field into *v (kept if absent). Lists (a ResNet's
 * per-stage layers) count as absent. */
static int json_int(const uint8_t *map, const uint8_t *end, const char *key, int *v, const char *label)
{
	const uint8_t *p = json_field(map, end, key);
	struct mp_header h;
	if (p && mp_decode_header(p, (size_t)(end - p), &h) > 0 && h.type == MP_ARRAY)
		return 0;
	double d;
	int r = json_number(map, end, key, &d);
	if (r < 0 || (r && (d != floor(d) || d < 1 || d > INT32_MAX)))
		return errorf("%s: '%s' is not a positive integer", label, key);
	if (r)
		*v = (int)d;
	return 0;
}

static int json_bool(const uint8_t *map, const uint8_t *end, const char *key, int *v, const char *label)
{
	const uint8_t *p = json_field(map, end, key);
	if (!p)
		return 0;
	struct mp_header h;
	if (mp_decode_header(p, (size_t)(end - p), &h) <= 0 || (h.type != MP_BOOL && h.type != MP_NIL))
		return errorf("%s: '%s' is not true or false", label, key);
	if (h.type == MP_BOOL)
		*v = h.b;
	return 0;
}

/* A string field copied into buf (kept if absent). */
static int json_string(const uint8_t *map, const uint8_t *end, const char *key, char *buf, size_t size,
                       const char *label)
{
	const uint8_t *p = json_field(map, end, key);
	if (!p)
		return 0;
	struct mp_header h;
	int n = mp_decode_header(p, (size_t)(end - p), &h);
	if (n <= 0 || h.type != MP_STR || h.len >= size || h.len > (uint64_t)(end - p - n))
		return errorf("%s: '%s' is not a short string", label, key);
	memcpy(buf, p + n, h.len);
	buf[h.len] = 0;
	return 0;
}

/* transformers' names for the activations CLIP uses. */
static int hf_activation(const char *name, int *act, const char *label)
{
	if (!strcmp(name, "quick_gelu"))
		*act = NN_QUICK_GELU;
	else if (!strcmp(name, "gelu"))
		*act = NN_GELU_ERF;
	else if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh") || !strcmp(name, "gelu_fast"))
		*act = NN_GELU_TANH;
	else
		return errorf("%s: hidden_act '%s' is not one of quick_gelu, gelu, gelu_new, gelu_pytorch_tanh", label,
		              name);
	return 0;
}

/* The keys of HF's CLIPTextConfig / CLIPVisionConfig that map holds; the
 * others keep their values. */
static int read_hf_tower(const uint8_t *map, const uint8_t *end, const char *label, struct tower_values *t,
                         int *context, int *vocab, int *patch, int *resolution)
{
	char act[64] = "";
	double eps;
	int r;
	if (json_int(map, end, "num_attention_heads", &t->heads, label) < 0 ||
	    json_int(map, end, "hidden_size", &t->width, label) < 0 ||
	    json_int(map, end, "num_hidden_layers", &t->layers, label) < 0 ||
	    json_int(map, end, "intermediate_size", &t->mlp_dim, label) < 0 ||
	    json_int(map, end, "max_position_embeddings", context, label) < 0 ||
	    json_int(map, end, "vocab_size", vocab, label) < 0 ||
	    json_int(map, end, "patch_size", patch, label) < 0 ||
	    json_int(map, end, "image_size", resolution, label) < 0 ||
	    json_string(map, end, "hidden_act", act, sizeof act, label) < 0 ||
	    (*act && hf_activation(act, &t->act, label) < 0))
		return -1;
	if ((r = json_number(map, end, "layer_norm_eps", &eps)) < 0 || (r && !(eps > 0 && eps < 1)))
		return errorf("%s: layer_norm_eps is not a small positive number", label);
	if (r)
		t->eps = (float)eps;
	return 0;
}

/* HF's CLIPConfig, with transformers' defaults for what the file leaves
 * out. Older files also hold text_config_dict / vision_config_dict, which
 * transformers lets override text_config / vision_config. */
static int read_hf_config(const uint8_t *top, const uint8_t *end, const char *label, struct config_values *v)
{
	struct tower_values *towers[2] = { &v->text, &v->vision };
	const char *keys[2][2] = { { "text_config", "text_config_dict" }, { "vision_config", "vision_config_dict" } };
	int unused = -1;
	for (int i = 0; i < 2; i++) {
		struct tower_values *t = towers[i];
		t->heads = i ? 12 : 8;
		t->act = NN_QUICK_GELU;
		t->eps = 1e-5f;
		for (int k = 0; k < 2; k++) {
			const uint8_t *map = json_field(top, end, keys[i][k]);
			if (read_hf_tower(map, end, label, t, i ? &unused : &v->context, i ? &unused : &v->vocab,
			                  i ? &v->patch : &unused, i ? &v->resolution : &unused) < 0)
				return -1;
		}
	}
	return json_int(top, end, "projection_dim", &v->embed_dim, label);
}

/* open_clip's CLIPVisionCfg / CLIPTextCfg, with open_clip's defaults. */
static int read_open_clip_config(const uint8_t *cfg, const uint8_t *end, const char *label,
                                 struct config_values *v)
{
	const uint8_t *tc = json_field(cfg, end, "text_cfg"), *vc = json_field(cfg, end, "vision_cfg");
	int quick = 0, head_width = 64;
	v->text.heads = 8;
	if (json_bool(cfg, end, "quick_gelu", &quick, label) < 0 ||
	    json_int(cfg, end, "embed_dim", &v->embed_dim, label) < 0 ||
	    json_int(tc, end, "heads", &v->text.heads, label) < 0 ||
	    json_int(tc, end, "width", &v->text.width, label) < 0 ||
	    json_int(tc, end, "layers", &v->text.layers, label) < 0 ||
	    json_int(tc, end, "context_length", &v->context, label) < 0 ||
	    json_int(tc, end, "vocab_size", &v->vocab, label) < 0 ||
	    json_int(vc, end, "width", &v->vision.width, label) < 0 ||
	    json_int(vc, end, "layers", &v->vision.layers, label) < 0 ||
	    json_int(vc, end, "head_width", &head_width, label) < 0 ||
	    json_int(vc, end, "patch_size", &v->patch, label) < 0 ||
	    json_int(vc, end, "image_size", &v->resolution, label) < 0)
		return -1;
	/* The vision heads follow from the config's own width (open_clip's
	 * default 768 when it gives none). */
	int width = v->vision.width > 0 ? v->vision.width : 768;
	if (width % head_width)
		return errorf("%s: vision width %d is not a multiple of head_width %d", label, width, head_width);
	v->vision.heads = width / head_width;
	v->text.act = v->vision.act = quick ? NN_QUICK_GELU : NN_GELU_ERF;
	v->text.eps = v->vision.eps = 1e-5f;
	return 0;
}

/* Parses one config document of either layout into v. */
static int parse_config(const char *text, size_t len, const char *label, struct config_values *v)
{
	memset(v, 0xff, sizeof *v); /* every int -1: "not given" */
	struct mp_buf mp = {0};
	int rc = -1;
	if (json_to_msgpack(text, len, &mp) < 0) {
		error_prefix("%s", label);
		goto out;
	}
	const uint8_t *top = mp.data, *end = mp.data + mp.len;
	struct mp_header h;
	if (mp_decode_header(top, mp.len, &h) <= 0 || h.type != MP_MAP) {
		errorf("%s: not a JSON object", label);
		goto out;
	}
	if (json_field(top, end, "text_config") || json_field(top, end, "vision_config") ||
	    json_field(top, end, "text_config_dict") || json_field(top, end, "vision_config_dict")) {
		rc = read_hf_config(top, end, label, v);
	} else {
		const uint8_t *cfg = json_field(top, end, "model_cfg");
		if (!cfg)
			cfg = top;
		if (json_field(cfg, end, "text_cfg") || json_field(cfg, end, "vision_cfg"))
			rc = read_open_clip_config(cfg, end, label, v);
		else
			errorf("%s: neither a Hugging Face CLIP config (text_config, vision_config) nor an open_clip config "
			       "(model_cfg with text_cfg, vision_cfg)", label);
	}
out:
	mp_buf_free(&mp);
	return rc;
}

static int read_config_file(const char *path, struct config_values *v)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return errorf("%s: %s", path, strerror(errno));
	char *text = xmalloc(CONFIG_MAX_BYTES);
	size_t len = fread(text, 1, CONFIG_MAX_BYTES, fp);
	int bad = ferror(fp), big = len == CONFIG_MAX_BYTES;
	fclose(fp);
	int rc;
	if (bad)
		rc = errorf("%s: read error", path);
	else if (big)
		rc = errorf("%s: larger than %d bytes: not a config", path, CONFIG_MAX_BYTES);
	else
		rc = parse_config(text, len, path, v);
	free(text);
	return rc;
}

/* A config file in the model's directory, if there is one. */
static char *beside_model(const char *model_path, const char *name)
{
	if (!model_path)
		return NULL;
	const char *slash = strrchr(model_path, '/');
	size_t dirlen = slash ? (size_t)(slash - model_path + 1) : 0;
	char *path = xmalloc(dirlen + strlen(name) + 1);
	memcpy(path, model_path, dirlen);
	strcpy(path + dirlen, name);
	if (access(path, R_OK) == 0)
		return path;
	free(path);
	return NULL;
}

/* A config's sizes against the checkpoint's. */
static int check_agreement(const struct clip_config *c, const struct config_values *v, const char *label)
{
	const struct { const char *what; int config, actual; } pairs[] = {
		{ "the vision width", v->vision.width, c->vision.width },
		{ "the vision layer count", v->vision.layers, c->vision.layers },
		{ "the vision MLP width", v->vision.mlp_dim, c->vision.mlp_dim },
		{ "the text width", v->text.width, c->text.width },
		{ "the text layer count", v->text.layers, c->text.layers },
		{ "the text MLP width", v->text.mlp_dim, c->text.mlp_dim },
		{ "the embedding width", v->embed_dim, c->embed_dim },
		{ "the patch size", v->patch, c->patch },
		{ "the image size", v->resolution, c->resolution },
		{ "the context length", v->context, c->context },
		{ "the vocabulary size", v->vocab, c->vocab },
	};
	for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++)
		if (pairs[i].config >= 0 && pairs[i].config != pairs[i].actual)
			return errorf("%s: %s is %d, but %d in the checkpoint: the config belongs to another model", label,
			              pairs[i].what, pairs[i].config, pairs[i].actual);
	return 0;
}

/* The first config present in the order of precedence; *from says which.
 * Returns 1 if one was read, 0 if none exists, -1 on error. */
static int find_config(const struct st_file *f, const char *model_path, const struct clip_config_options *o,
                       enum clip_naming naming, struct config_values *v, enum clip_heads_from *from,
                       char *label, size_t label_size)
{
	if (o && o->config_path) {
		*from = CLIP_HEADS_CONFIG_FILE;
		snprintf(label, label_size, "%s", o->config_path);
		return read_config_file(o->config_path, v) < 0 ? -1 : 1;
	}
	const char *meta = st_metadata(f, "open_clip_config");
	if (meta) {
		*from = CLIP_HEADS_METADATA;
		snprintf(label, label_size, "__metadata__ open_clip_config");
		return parse_config(meta, strlen(meta), label, v) < 0 ? -1 : 1;
	}
	char *path = beside_model(model_path, "open_clip_config.json");
	if (!path && naming == CLIP_NAMING_HF)
		path = beside_model(model_path, "config.json");
	if (path) {
		*from = CLIP_HEADS_BESIDE_MODEL;
		snprintf(label, label_size, "%s", path);
		int rc = read_config_file(path, v);
		free(path);
		return rc < 0 ? -1 : 1;
	}
	return 0;
}

static int default_heads(int width)
{
	return width / 64 > 0 ? width / 64 : 1;
}

static int check_heads(const struct clip_tower_config *t, const char *what)
{
	if (t->heads < 1 || t->width % t->heads)
		return errorf("the %s width %d is not a multiple of %d heads (from %s)", what, t->width, t->heads,
		              clip_heads_from_name(t->heads_from));
	return 0;
}

int clip_config_read(struct clip_config *c, const struct st_file *f, const char *model_path,
                     const struct clip_config_options *o)
{
	memset(c, 0, sizeof *c);
	if (detect_naming(f, &c->naming) < 0 || read_shapes(c, f) < 0)
		return -1;

	struct config_values v;
	enum clip_heads_from from;
	char label[1024];
	int found = find_config(f, model_path, o, c->naming, &v, &from, label, sizeof label);
	if (found < 0 || (found && check_agreement(c, &v, label) < 0))
		return -1;
	struct clip_tower_config *towers[2] = { &c->vision, &c->text };
	for (int i = 0; i < 2; i++) {
		struct clip_tower_config *t = towers[i];
		if (found) {
			int heads = i ? v.text.heads : v.vision.heads;
			t->heads = heads;
			t->act = i ? v.text.act : v.vision.act;
			t->ln_eps = i ? v.text.eps : v.vision.eps;
			t->heads_from = from;
		} else {
			t->heads = default_heads(t->width);
			t->act = NN_QUICK_GELU;
			t->ln_eps = 1e-5f;
			t->heads_from = CLIP_HEADS_WIDTH_64;
		}
		int option = o ? (i ? o->heads_text : o->heads_vision) : 0;
		if (option > 0) {
			t->heads = option;
			t->heads_from = CLIP_HEADS_OPTION;
		}
	}
	if (check_heads(&c->vision, "vision") < 0 || check_heads(&c->text, "text") < 0)
		return -1;
	return 0;
}
