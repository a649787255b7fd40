/* Loading CLIP checkpoints of both namings into the model's HF-named
 * parameters. The mapping is transformers' convert_clip_original_pytorch_to_hf
 * (see the golden README): blocks are renamed sublayer by sublayer, q, k and
 * v are the three row blocks of in_proj, and the two projections, which the
 * OpenAI code applies as x @ proj, are stored transposed relative to HF's
 * Linear weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/clip_config.h"
#include "clip/clip_model.h"
#include "core/tool.h"
#include "nn/ops.h"

struct rename {
	const char *hf, *openai;
	enum clip_layout layout;
};

/* Parameters outside the blocks. */
static const struct rename outer[] = {
	{ "text_model.embeddings.token_embedding.weight", "token_embedding.weight", CLIP_AS_IS },
	{ "text_model.embeddings.position_embedding.weight", "positional_embedding", CLIP_AS_IS },
	{ "text_model.final_layer_norm.weight", "ln_final.weight", CLIP_AS_IS },
	{ "text_model.final_layer_norm.bias", "ln_final.bias", CLIP_AS_IS },
	{ "text_projection.weight", "text_projection", CLIP_TRANSPOSED },
	{ "vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight", CLIP_AS_IS },
	{ "vision_model.embeddings.class_embedding", "visual.class_embedding", CLIP_AS_IS },
	{ "vision_model.embeddings.position_embedding.weight", "visual.positional_embedding", CLIP_AS_IS },
	{ "vision_model.pre_layrnorm.weight", "visual.ln_pre.weight", CLIP_AS_IS },
	{ "vision_model.pre_layrnorm.bias", "visual.ln_pre.bias", CLIP_AS_IS },
	{ "vision_model.post_layernorm.weight", "visual.ln_post.weight", CLIP_AS_IS },
	{ "vision_model.post_layernorm.bias", "visual.ln_post.bias", CLIP_AS_IS },
	{ "visual_projection.weight", "visual.proj", CLIP_TRANSPOSED },
	{ "logit_scale", "logit_scale", CLIP_AS_IS },
};

/* Towers' block prefixes, and the sublayers within a block. */
static const struct rename towers[] = {
	{ "text_model.encoder.layers.", "transformer.resblocks.", CLIP_AS_IS },
	{ "vision_model.encoder.layers.", "visual.transformer.resblocks.", CLIP_AS_IS },
};

static const struct rename sublayers[] = {
	{ "self_attn.q_proj.weight", "attn.in_proj_weight", CLIP_ROWS_Q },
	{ "self_attn.q_proj.bias", "attn.in_proj_bias", CLIP_ROWS_Q },
	{ "self_attn.k_proj.weight", "attn.in_proj_weight", CLIP_ROWS_K },
	{ "self_attn.k_proj.bias", "attn.in_proj_bias", CLIP_ROWS_K },
	{ "self_attn.v_proj.weight", "attn.in_proj_weight", CLIP_ROWS_V },
	{ "self_attn.v_proj.bias", "attn.in_proj_bias", CLIP_ROWS_V },
	{ "self_attn.out_proj.weight", "attn.out_proj.weight", CLIP_AS_IS },
	{ "self_attn.out_proj.bias", "attn.out_proj.bias", CLIP_AS_IS },
	{ "layer_norm1.weight", "ln_1.weight", CLIP_AS_IS },
	{ "layer_norm1.bias", "ln_1.bias", CLIP_AS_IS },
	{ "layer_norm2.weight", "ln_2.weight", CLIP_AS_IS },
	{ "layer_norm2.bias", "ln_2.bias", CLIP_AS_IS },
	{ "mlp.fc1.weight", "mlp.c_fc.weight", CLIP_AS_IS },
	{ "mlp.fc1.bias", "mlp.c_fc.bias", CLIP_AS_IS },
	{ "mlp.fc2.weight", "mlp.c_proj.weight", CLIP_AS_IS },
	{ "mlp.fc2.bias", "mlp.c_proj.bias", CLIP_AS_IS },
};

/* Tensors a checkpoint may hold that are no parameter: HF's position_ids
 * (older checkpoints), and the sizes OpenAI's JIT archives keep in their
 * state dict. */
static const char *const ignored[] = {
	"text_model.embeddings.position_ids", "vision_model.embeddings.position_ids",
	"input_resolution", "context_length", "vocab_size",
};

#define COUNT(a) (sizeof(a) / sizeof *(a))

const char *clip_stored_name(enum clip_naming naming, const char *hf_name, char *buf, enum clip_layout *layout)
{
	*layout = CLIP_AS_IS;
	if (naming == CLIP_NAMING_HF) {
		snprintf(buf, NN_NAME_MAX, "%s", hf_name);
		return buf;
	}
	for (size_t i = 0; i < COUNT(outer); i++)
		if (!strcmp(hf_name, outer[i].hf)) {
			*layout = outer[i].layout;
			snprintf(buf, NN_NAME_MAX, "%s", outer[i].openai);
			return buf;
		}
	for (size_t i = 0; i < COUNT(towers); i++) {
		size_t plen = strlen(towers[i].hf);
		if (strncmp(hf_name, towers[i].hf, plen))
			continue;
		const char *num = hf_name + plen, *dot = num;
		while (*dot >= '0' && *dot <= '9')
			dot++;
		if (dot == num || *dot != '.')
			return NULL;
		for (size_t j = 0; j < COUNT(sublayers); j++)
			if (!strcmp(dot + 1, sublayers[j].hf)) {
				*layout = sublayers[j].layout;
				snprintf(buf, NN_NAME_MAX, "%s%.*s.%s", towers[i].openai, (int)(dot - num), num, sublayers[j].openai);
				return buf;
			}
		return NULL;
	}
	return NULL;
}

static int is_float(enum dtype dt)
{
	return dt == DT_FLOAT32 || dt == DT_FLOAT16 || dt == DT_BFLOAT16 || dt == DT_FLOAT64;
}

const struct st_entry *clip_find_param(const struct st_file *f, enum clip_naming naming, const char *hf_name,
                                       enum clip_layout *layout, int *ndim, int64_t *shape)
{
	char buf[NN_NAME_MAX];
	const char *stored = clip_stored_name(naming, hf_name, buf, layout);
	if (!stored) {
		errorf("'%s' is not a CLIP parameter", hf_name);
		return NULL;
	}
	const struct st_entry *e = st_find(f, stored);
	if (!e) {
		errorf("tensor '%s' is missing", stored);
		return NULL;
	}
	if (!is_float(e->dtype)) {
		errorf("tensor '%s' is %s, not a float dtype", e->name, st_dtype_name(e->dtype));
		return NULL;
	}
	if (e->ndim > NN_PARAM_MAX_DIMS || (*layout == CLIP_TRANSPOSED && e->ndim != 2) ||
	    (*layout >= CLIP_ROWS_Q && (e->ndim < 1 || e->shape[0] % 3))) {
		errorf("tensor '%s' has %d dimensions%s", e->name, e->ndim,
		       *layout >= CLIP_ROWS_Q ? " or a first one not divisible by 3 (q, k, v)" : "");
		return NULL;
	}
	*ndim = e->ndim;
	for (int d = 0; d < e->ndim; d++)
		shape[d] = e->shape[d];
	if (*layout == CLIP_TRANSPOSED) {
		shape[0] = e->shape[1];
		shape[1] = e->shape[0];
	} else if (*layout >= CLIP_ROWS_Q) {
		shape[0] /= 3;
	}
	return e;
}

/* The shape a parameter must have in the file, for messages. */
static void stored_shape(char *buf, size_t size, const struct nn_param *it, enum clip_layout layout)
{
	int64_t s[NN_PARAM_MAX_DIMS];
	for (int d = 0; d < it->ndim; d++)
		s[d] = it->shape[d];
	if (layout == CLIP_TRANSPOSED) {
		s[0] = it->shape[1];
		s[1] = it->shape[0];
	} else if (layout >= CLIP_ROWS_Q) {
		s[0] *= 3;
	}
	clip_format_shape(buf, size, it->ndim, s);
}

/* The parameter's values from the stored tensor (host memory, float32
 * already): as is, transposed, or one row block. */
static void convert(float *dst, const float *src, const struct nn_param *it, enum clip_layout layout)
{
	if (layout == CLIP_TRANSPOSED) {
		int64_t rows = it->shape[0], cols = it->shape[1]; /* dst [rows, cols] = src^T */
		for (int64_t i = 0; i < rows; i++)
			for (int64_t j = 0; j < cols; j++)
				dst[i * cols + j] = src[j * rows + i];
	} else if (layout >= CLIP_ROWS_Q) {
		memcpy(dst, src + (size_t)(layout - CLIP_ROWS_Q) * it->numel, it->numel * sizeof *dst);
	} else {
		memcpy(dst, src, it->numel * sizeof *dst);
	}
}

static int was_used(const struct st_entry *e, const struct st_entry **used, int n)
{
	for (int i = 0; i < n; i++)
		if (used[i] == e)
			return 1;
	return 0;
}

int clip_model_load_tensors(struct clip_model *m, const struct st_file *f)
{
	const struct nn_params *p = &m->params;
	const struct st_entry **entry = xcalloc(p->n, sizeof *entry);
	enum clip_layout *layout = xcalloc(p->n, sizeof *layout);
	const struct st_entry **used = xcalloc(p->n, sizeof *used);
	int nused = 0, rc = -1;
	size_t largest = 1;

	/* Check everything before changing anything. */
	for (int i = 0; i < p->n; i++) {
		const struct nn_param *it = &p->items[i];
		int ndim;
		int64_t shape[NN_PARAM_MAX_DIMS];
		const struct st_entry *e = clip_find_param(f, m->cfg.naming, it->name, &layout[i], &ndim, shape);
		if (!e)
			goto out;
		int same = ndim == it->ndim;
		for (int d = 0; same && d < ndim; d++)
			same = shape[d] == it->shape[d];
		if (!same) {
			char want[128], got[128];
			stored_shape(want, sizeof want, it, layout[i]);
			clip_format_shape(got, sizeof got, e->ndim, e->shape);
			errorf("tensor '%s' has shape %s, but this model needs %s", e->name, got, want);
			goto out;
		}
		entry[i] = e;
		if (!was_used(e, used, nused))
			used[nused++] = e;
		if (e->numel > largest)
			largest = e->numel;
	}
	for (int i = 0; i < st_count(f); i++) {
		const struct st_entry *e = st_entry_at(f, i);
		int skip = was_used(e, used, nused);
		for (size_t j = 0; !skip && j < COUNT(ignored); j++)
			skip = !strcmp(e->name, ignored[j]);
		if (!skip) {
			errorf("tensor '%s' is not part of a CLIP this loader knows (another architecture?)", e->name);
			goto out;
		}
	}

	float *src = xmalloc(largest * sizeof *src), *dst = xmalloc(largest * sizeof *dst);
	rc = 0;
	for (int i = 0; i < p->n && rc == 0; i++) {
		const struct nn_param *it = &p->items[i];
		rc = st_read_f32(entry[i], src, entry[i]->numel);
		if (rc == 0) {
			convert(dst, src, it, layout[i]);
			nn->upload(nn_param(p, i), dst, it->numel * sizeof *dst);
		}
	}
	free(src);
	free(dst);
out:
	free(entry);
	free(layout);
	free(used);
	return rc;
}

int clip_model_load(struct clip_model *m, const char *path, const struct clip_config_options *o)
{
	struct st_file *f = st_open(path);
	if (!f)
		return -1; /* the message names the file */
	struct clip_config cfg;
	struct clip_model tmp;
	int rc = clip_config_read(&cfg, f, path, o);
	if (rc == 0) {
		clip_model_init(&tmp, &cfg);
		rc = clip_model_load_tensors(&tmp, f);
		if (rc == 0)
			*m = tmp;
		else
			clip_model_free(&tmp);
	}
	if (rc < 0)
		error_prefix("%s", path);
	st_close(f);
	return rc;
}
