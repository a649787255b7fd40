/* A CLIP checkpoint's hyperparameters, read from the checkpoint itself.
 *
 * Shapes give almost everything: widths, layer counts, MLP widths, the patch
 * size (conv1's kernel), the resolution (patch * sqrt(positions - 1)), the
 * context length, the vocabulary and the embedding width. What shapes cannot
 * give is the number of attention heads, and the MLP's activation and layer
 * norm epsilon. Those come, per tower, from the first of:
 *
 *   1. options (clip_config_options.heads_text / heads_vision);
 *   2. a config file given by the caller: Hugging Face's config.json
 *      (text_config / vision_config: num_attention_heads, hidden_act,
 *      layer_norm_eps) or an open_clip config (model_cfg, or its contents at
 *      the top level: text_cfg.heads, vision heads = vision_cfg.width /
 *      vision_cfg.head_width, quick_gelu);
 *   3. the safetensors __metadata__ key "open_clip_config" (the same JSON);
 *   4. a config beside the model file: open_clip_config.json, or for the
 *      HF naming config.json;
 *   5. the reference's rule heads = width / 64 (at least 1), QuickGELU and
 *      eps 1e-5, which is right for every released OpenAI CLIP.
 *
 * A config whose widths or layer counts disagree with the tensors is an
 * error: it belongs to another model. */
#ifndef KNND_CLIP_CLIP_CONFIG_H
#define KNND_CLIP_CLIP_CONFIG_H

#include <stdint.h>

#include "nn/layers/layer.h"
#include "nn/ops.h"
#include "nn/params.h"
#include "nn/safetensors.h"

/* The two state-dict namings in the wild (see the golden README). */
enum clip_naming {
	CLIP_NAMING_OPENAI, /* OpenAI / open_clip: visual.conv1.weight, transformer.resblocks.N... */
	CLIP_NAMING_HF,     /* transformers CLIPModel: vision_model..., text_model... */
};

/* Where a tower's head count came from (the order of precedence above). */
enum clip_heads_from {
	CLIP_HEADS_OPTION,
	CLIP_HEADS_CONFIG_FILE,
	CLIP_HEADS_METADATA,
	CLIP_HEADS_BESIDE_MODEL,
	CLIP_HEADS_WIDTH_64,
};

struct clip_tower_config {
	int width, layers, heads, mlp_dim;
	enum nn_act act;  /* the MLP's activation */
	float ln_eps;
	enum clip_heads_from heads_from;
};

struct clip_config {
	enum clip_naming naming;
	struct clip_tower_config vision, text;
	int patch, grid, resolution; /* vision input: patch side, patches per side, pixels per side */
	int context, vocab;          /* text input */
	int embed_dim;               /* width of the joint embedding */
};

struct clip_config_options {
	const char *config_path;       /* a config file (step 2), or NULL */
	int heads_text, heads_vision;  /* > 0: overrides (step 1) */
};

/* Fills c from an opened checkpoint. model_path (may be NULL) locates the
 * configs beside the model. Returns 0, or -1 with errorf saying what is
 * wrong: not a CLIP checkpoint, a tensor missing or mis-shaped (named), an
 * unreadable or contradicting config, heads that do not divide a width. */
int clip_config_read(struct clip_config *c, const struct st_file *f, const char *model_path,
                     const struct clip_config_options *o);

/* ---- The namings (clip_load.c) ----
 * The model's parameters carry HF names. In an OpenAI-named checkpoint each
 * of them is stored under another name and maybe in another layout: the
 * projections transposed ([width, embed] for x @ proj, where HF keeps a
 * Linear weight [embed, width]), and q, k, v as the three row blocks of one
 * in_proj tensor. */
enum clip_layout {
	CLIP_AS_IS,
	CLIP_TRANSPOSED, /* a 2-D tensor stored transposed */
	CLIP_ROWS_Q,     /* row block 0, 1 or 2 of three along dim 0 */
	CLIP_ROWS_K,
	CLIP_ROWS_V,
};

/* The stored form of the parameter hf_name: the name (into buf, NN_NAME_MAX
 * bytes; returned) and layout. Returns NULL if hf_name is no CLIP parameter. */
const char *clip_stored_name(enum clip_naming naming, const char *hf_name, char *buf,
                             enum clip_layout *layout);

/* The tensor holding hf_name in f, and the parameter's shape as the model
 * sees it (shape[NN_PARAM_MAX_DIMS]); NULL (errorf naming the stored
 * tensor) if it is missing, not a float tensor, or cannot be in the given
 * layout. */
const struct st_entry *clip_find_param(const struct st_file *f, enum clip_naming naming, const char *hf_name,
                                       enum clip_layout *layout, int *ndim, int64_t *shape);

/* "[a,b,c]" into buf, for messages. */
void clip_format_shape(char *buf, size_t size, int ndim, const int64_t *shape);

/* "option", "config file", ... for messages. */
const char *clip_heads_from_name(enum clip_heads_from from);

#endif
