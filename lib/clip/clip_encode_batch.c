/* CLIP features of a batch of records (clip_encode_batch.h). */
#include "clip/clip_encode_batch.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clip/clip_vocab.h"
#include "core/error.h"
#include "core/tool.h"
#include "image/clip_preprocess.h"

/* Pillow resizes palette and 1-bit images with NEAREST whatever filter is
 * asked for; img-read records the file's mode, so the reference's result is
 * reproduced for those too. */
static enum resample_filter resize_filter(const struct record *r)
{
	const char *mode = record_str(r, "mode");
	if (mode && (!strcmp(mode, "P") || !strcmp(mode, "1")))
		return RESAMPLE_NEAREST;
	return RESAMPLE_BICUBIC;
}

int clip_encode_image_batch(struct clip_model *m, struct record_batch *b, const char *key, float *pixels,
                            float *features)
{
	int R = m->cfg.resolution;
	size_t per = (size_t)3 * R * R;
	/* Preprocessing is per image and independent: one image per thread. */
	#pragma omp parallel for schedule(dynamic)
	for (int i = 0; i < b->n; i++) {
		struct image view;
		int rc = image_from_record(&b->recs[i], key, &view);
		if (rc == 0)
			rc = clip_preprocess(&view, R, resize_filter(&b->recs[i]), pixels + i * per);
		if (rc < 0)
			record_batch_fail(b, i);
	}
	if (record_batch_check(b) < 0)
		return -1;
	clip_encode_image(m, pixels, b->n, features, NULL);
	return 0;
}

int clip_encode_text_batch(struct clip_model *m, struct clip_tokenizer *tok, struct record_batch *b,
                           const char *key, int32_t *ids, float *features)
{
	int ctx = m->cfg.context;
	for (int i = 0; i < b->n; i++) {
		const struct value *v = record_get(&b->recs[i], key);
		int64_t rc = v && v->kind == V_STR
		                     ? clip_tokenize(tok, v->str.ptr, v->str.len, ids + (size_t)i * ctx, ctx)
		                     : errorf("no '%s' string field", key);
		if (rc < 0)
			record_batch_fail(b, i);
	}
	if (record_batch_check(b) < 0)
		return -1;
	return clip_encode_text(m, ids, b->n, features, NULL);
}

static char *beside(const char *model_path, const char *name)
{
	const char *slash = strrchr(model_path, '/');
	size_t dir = slash ? (size_t)(slash - model_path + 1) : 0;
	char *path = xmalloc(dir + strlen(name) + 1);
	memcpy(path, model_path, dir);
	strcpy(path + dir, name);
	return path;
}

/* A vocabulary file beside the model, or NULL. */
static char *vocab_beside(const char *model_path)
{
	const char *names[] = { "bpe_simple_vocab_16e6.txt.gz", "vocab.json" };
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		char *path = beside(model_path, names[i]);
		if (!access(path, R_OK))
			return path;
		free(path);
	}
	return NULL;
}

struct clip_tokenizer *clip_tokenizer_for_model(const char *model_path, const char *vocab_path,
                                                const struct clip_config *cfg)
{
	const char *path = vocab_path;
	char *found = NULL;
	struct clip_tokenizer *t = NULL;
	if (!path) {
		int rc = clip_checkpoint_tokenizer(model_path, &t);
		if (rc < 0)
			return NULL;
		if (rc == 1)
			path = model_path;
	}
	if (!path)
		path = getenv("KNND_CLIP_VOCAB");
	if (!path || !*path) {
		path = found = vocab_beside(model_path);
		if (!found) {
			errorf("no BPE vocabulary for the texts: the model carries none; give --vocab PATH "
			       "(bpe_simple_vocab_16e6.txt.gz, or a vocab.json with merges.txt beside it), set "
			       "KNND_CLIP_VOCAB, or put bpe_simple_vocab_16e6.txt.gz beside the model");
			return NULL;
		}
	}
	if (!t)
		t = clip_tokenizer_load(path);
	if (!t) {
		free(found);
		return NULL;
	}
	/* Ids index the model's token embedding; the end token, the largest
	 * id, must have a row. */
	int n = (int)clip_tokenizer_vocab_size(t);
	if (n > cfg->vocab) {
		if (path == model_path)
			errorf("%s: the vocabulary stored in it (%s) has %d tokens, but the model has token embeddings "
			       "for %d",
			       path, CLIP_TOKENIZER_METADATA_KEY, n, cfg->vocab);
		else
			errorf("%s: vocabulary of %d tokens, but the model %s has token embeddings for %d", path, n,
			       model_path, cfg->vocab);
		clip_tokenizer_free(t);
		t = NULL;
	}
	free(found);
	return t;
}
