/* clip-train: trains a CLIP from records holding an image and its caption. */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clip/clip_train.h"
#include "core/tool.h"
#include "nn/optim.h"
#include "image/augment.h"
#include "image/clip_preprocess.h"
#include "nn/checkpoint.h"
#include "nn/ops.h"
#include "nn/safetensors.h"
#include "nn/train_options.h"
#include "stream/record_cycle.h"
#include "stream/stream.h"
#include "text/bpe_learn.h"
#include "text/clip_tokenizer.h"

static const char help[] =
	"Usage: clip-train -o MODEL.safetensors [OPTION...] [FILE...]\n"
	"Trains a CLIP (the architecture and naming clip-embed loads) with the\n"
	"symmetric contrastive loss on records holding 'image' (uint8 [H,W,C], C 1..4)\n"
	"and 'text' (a string), from stdin (spooled to $TMPDIR) or files (re-read for\n"
	"as long as training runs), through a shuffle buffer. Items with equal\n"
	"captions, and the captions of one image (records with equal 'id'), count\n"
	"as positives of each other.\n"
	"\n"
	"Unless --vocab is given, a BPE vocabulary is first learned from the captions\n"
	"and stored in the model, so that clip-embed needs no other file. MODEL gets\n"
	"the weights (Hugging Face names, the config as open_clip JSON), and\n"
	"MODEL.state.safetensors beside it the optimiser state, from which --resume\n"
	"continues bit for bit (same options, data, threads).\n"
	"\n"
	"Model (ignored with --resume):\n"
	"      --image-size N     input side in pixels (default 32)\n"
	"      --patch N          patch side (default 4; must divide the image size)\n"
	"      --vision-width N   (default 128)   --vision-layers N (default 4)\n"
	"      --vision-heads N   (default width/64, at least 1)\n"
	"      --text-width N     (default 128)   --text-layers N   (default 4)\n"
	"      --text-heads N     (default width/64, at least 1)\n"
	"      --context N        tokens per caption (default 32)\n"
	"      --embed-dim N      joint embedding width (default 128)\n"
	"      --act NAME         quick_gelu (default) or gelu\n"
	"      --merges N         BPE merges to learn (default 1000)\n"
	"      --vocab PATH       use this vocabulary instead (as clip-embed --vocab)\n"
	"Training:\n"
	"  -o, --out PATH         the model file (required)\n"
	"  -s, --steps N          optimiser steps in all (default 5000)\n"
	"  -b, --batch N          pairs per step (default 128)\n"
	"      --lr LR            peak AdamW learning rate (default 5e-4)\n"
	"      --min-lr LR        end of the cosine decay (default 0)\n"
	"      --warmup N         linear warm-up steps (default steps/20, at most 1000)\n"
	"      --weight-decay W   AdamW weight decay of matrices (default 0.2)\n"
	"      --clip-grad N      clip the gradient's global norm (default 1; 0: off)\n"
	"      --no-augment       no random crops: exactly clip-embed's preprocessing\n"
	"      --crop-min F       smallest crop area fraction (default 0.6)\n"
	"      --flip             mirror half of the images (not for captions that\n"
	"                         name a side)\n"
	"      --buffer N         records in the shuffle buffer (default 1024)\n"
	"      --seed S           random seed (default 1)\n"
	"      --save-every N     checkpoint every N steps (default 1000; 0: at the end)\n"
	"      --stop-after N     stop (with a checkpoint) after N steps of this run\n"
	"      --resume           continue the run whose checkpoint is at --out\n"
	"      --val FILE         held-out image+text records: zero-shot retrieval\n"
	"                         top-1 both ways and chance, every --val-every steps\n"
	"                         and at the end\n"
	"      --val-every N      (default 500)\n"
	"      --log FILE         append one JSON object per report: step, loss,\n"
	"                         logit_scale, lr, steps_per_s (and val_* figures)\n"
	"      --progress-every N report loss, temperature and steps/s on stderr every\n"
	"                         N steps (default 50; 0: only held-out figures)\n"
	"  -t, --threads N        CPU threads (default: all cores)\n"
	"      --backend NAME     cpu (default), cuda or auto\n"
	"  -h, --help             show this help\n"
	"      --version          show the version\n"
	"\n"
	"Example:\n"
	"  idx-read train-images-idx3-ubyte.gz | ts-caption -t 'a {text}' > train.ts\n"
	"  clip-train -o clip.safetensors --steps 3000 --val val.ts train.ts\n"
	"  echo 'a sneaker' | clip-embed --text -m clip.safetensors\n";

enum {
	OPT_IMAGE_SIZE = 256, OPT_PATCH, OPT_VW, OPT_VL, OPT_VH, OPT_TW, OPT_TL, OPT_TH, OPT_CONTEXT, OPT_EMBED,
	OPT_ACT, OPT_MERGES, OPT_VOCAB, OPT_NO_AUG, OPT_CROP_MIN, OPT_FLIP, OPT_VAL_EVERY, OPT_BACKEND,
};

struct options {
	const char *out, *vocab;
	int image_size, patch, vw, vl, vh, tw, tl, th, context, embed, merges;
	enum nn_act act;
	int batch;
	int64_t steps, val_every;
	struct nn_train_options run;
	struct augment_config aug;
	char **inputs;
	int ninputs;
};

static int parse_size(const char *opt, const char *arg)
{
	return (int)parse_int_option(opt, arg, 1, 1 << 16);
}

static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { "out", 1, 0, 'o' }, { "steps", 1, 0, 's' },
		{ "batch", 1, 0, 'b' }, { "threads", 1, 0, 't' }, { "image-size", 1, 0, OPT_IMAGE_SIZE },
		{ "patch", 1, 0, OPT_PATCH }, { "vision-width", 1, 0, OPT_VW }, { "vision-layers", 1, 0, OPT_VL },
		{ "vision-heads", 1, 0, OPT_VH }, { "text-width", 1, 0, OPT_TW }, { "text-layers", 1, 0, OPT_TL },
		{ "text-heads", 1, 0, OPT_TH }, { "context", 1, 0, OPT_CONTEXT }, { "embed-dim", 1, 0, OPT_EMBED },
		{ "act", 1, 0, OPT_ACT }, { "merges", 1, 0, OPT_MERGES }, { "vocab", 1, 0, OPT_VOCAB },
		{ "no-augment", 0, 0, OPT_NO_AUG }, { "crop-min", 1, 0, OPT_CROP_MIN }, { "flip", 0, 0, OPT_FLIP },
		{ "val-every", 1, 0, OPT_VAL_EVERY }, { "backend", 1, 0, OPT_BACKEND }, NN_TRAIN_LONGOPTS,
		NN_TRAIN_LONGOPT_CLIP_GRAD, NN_TRAIN_LONGOPT_VAL, NN_TRAIN_LONGOPT_LOG, { 0 },
	};
	*o = (struct options){
		.image_size = 32, .patch = 4, .vw = 128, .vl = 4, .tw = 128, .tl = 4, .context = 32, .embed = 128,
		.merges = 1000, .act = NN_QUICK_GELU, .batch = 128, .steps = 5000, .val_every = 500,
		.aug = { .enabled = 1, .crop_min = 0.6f },
	};
	struct nn_train_options *run = &o->run;
	nn_train_options_defaults(run);
	run->buffer = 1024;
	run->save_every = 1000;
	run->progress_every = 50;
	run->optim.lr = 5e-4f;
	run->optim.beta1 = 0.9f;
	run->optim.beta2 = 0.98f;
	run->optim.eps = 1e-6f;
	run->optim.weight_decay = 0.2f;
	run->optim.clip_norm = 1.0f;
	int c;
	while ((c = getopt_long(argc, argv, "hVo:s:b:t:", opts, NULL)) != -1) {
		if (tool_common_option(c, help) || nn_train_option(c, optarg, run))
			continue;
		switch (c) {
		case 'o': o->out = optarg; break;
		case 's': o->steps = parse_int_option("--steps", optarg, 1, INT64_MAX / 4); break;
		case 'b': o->batch = (int)parse_int_option("--batch", optarg, 2, 1 << 14); break;
		case 't': omp_set_num_threads((int)parse_int_option("--threads", optarg, 1, 1024)); break;
		case OPT_IMAGE_SIZE: o->image_size = (int)parse_int_option("--image-size", optarg, 1, 4096); break;
		case OPT_PATCH: o->patch = (int)parse_int_option("--patch", optarg, 1, 4096); break;
		case OPT_VW: o->vw = parse_size("--vision-width", optarg); break;
		case OPT_VL: o->vl = (int)parse_int_option("--vision-layers", optarg, 1, 256); break;
		case OPT_VH: o->vh = (int)parse_int_option("--vision-heads", optarg, 1, 1024); break;
		case OPT_TW: o->tw = parse_size("--text-width", optarg); break;
		case OPT_TL: o->tl = (int)parse_int_option("--text-layers", optarg, 1, 256); break;
		case OPT_TH: o->th = (int)parse_int_option("--text-heads", optarg, 1, 1024); break;
		case OPT_CONTEXT: o->context = (int)parse_int_option("--context", optarg, 3, 4096); break;
		case OPT_EMBED: o->embed = parse_size("--embed-dim", optarg); break;
		case OPT_ACT:
			if (!strcmp(optarg, "quick_gelu"))
				o->act = NN_QUICK_GELU;
			else if (!strcmp(optarg, "gelu"))
				o->act = NN_GELU_ERF;
			else
				usage_error("--act: quick_gelu or gelu, not '%s'", optarg);
			break;
		case OPT_MERGES: o->merges = (int)parse_int_option("--merges", optarg, 0, 1 << 20); break;
		case OPT_VOCAB: o->vocab = optarg; break;
		case OPT_NO_AUG: o->aug.enabled = 0; break;
		case OPT_CROP_MIN: o->aug.crop_min = (float)parse_float_range("--crop-min", optarg, 0.01, 1); break;
		case OPT_FLIP: o->aug.flip = 1; break;
		case OPT_VAL_EVERY: o->val_every = parse_int_option("--val-every", optarg, 0, INT64_MAX); break;
		case OPT_BACKEND:
			if (nn_use_backend(optarg) < 0)
				usage_error("--backend: %s", error_message());
			break;
		default: usage_error("unknown option");
		}
	}
	if (!o->out)
		usage_error("--out PATH is required");
	if (o->image_size % o->patch)
		usage_error("--patch %d does not divide --image-size %d", o->patch, o->image_size);
	if (!o->vh)
		o->vh = o->vw / 64 > 0 ? o->vw / 64 : 1;
	if (!o->th)
		o->th = o->tw / 64 > 0 ? o->tw / 64 : 1;
	if (o->vw % o->vh)
		usage_error("--vision-width %d is not a multiple of --vision-heads %d", o->vw, o->vh);
	if (o->tw % o->th)
		usage_error("--text-width %d is not a multiple of --text-heads %d", o->tw, o->th);
	nn_train_options_finish(run, o->steps, 0);
	o->inputs = argv + optind;
	o->ninputs = argc - optind;
}

/* ---- records ---- */

static int check_record(void *ctx, struct record *r)
{
	(void)ctx;
	struct image view;
	if (!record_get(r, "image"))
		return errorf("no 'image' field");
	if (image_from_record(r, "image", &view) < 0)
		return -1;
	if (!record_str(r, "text"))
		return errorf("no 'text' string (%s)", record_get(r, "text") ? "another kind of value" : "missing");
	/* An id ties the captions of one image together (clip_caption_groups). */
	for (int i = r->n - 1; i >= 0; i--)
		if (strcmp(r->fields[i].key, "image") && strcmp(r->fields[i].key, "text") &&
		    (strcmp(r->fields[i].key, "id") || !record_str(r, "id")))
			record_remove(r, r->fields[i].key);
	return 0;
}

/* One pass over the training captions -> the learned merges text. */
static char *learn_merges(struct record_cycle *src, int merges, int64_t *records)
{
	struct bpe_learner *l = bpe_learner_new();
	struct record r = RECORD_INIT;
	*records = 0;
	int rc;
	while ((rc = record_cycle_pass(src, &r)) > 0) {
		const struct value *v = record_get(&r, "text");
		if (bpe_learner_add(l, v->str.ptr, v->str.len) < 0)
			die("%s", error_message());
		++*records;
	}
	if (rc < 0)
		die("%s", error_message());
	if (*records == 0)
		die("%s: no image+text records", src->nfiles == 1 ? src->files ? src->files[0] : "stdin" : "the inputs");
	record_free(&r);
	size_t len;
	char *text = bpe_learner_merges(l, merges, 2, &len);
	if (!text)
		die("learning the vocabulary: %s", error_message());
	bpe_learner_free(l);
	return text;
}

/* Pixels [3, R, R] and ids [context] of one record; draw numbers the
 * augmentation. */
static void prepare(const struct record *r, const struct clip_config *c, const struct clip_tokenizer *tok,
                    const struct augment_config *aug, uint64_t seed, uint64_t draw, float *pixels, int32_t *ids)
{
	struct image view;
	image_from_record(r, "image", &view);
	if (augment_clip_pixels(&view, c->resolution, aug, seed, draw, pixels) < 0)
		die("%s", error_message());
	const struct value *v = record_get(r, "text");
	if (clip_tokenize(tok, v->str.ptr, v->str.len, ids, c->context) < 0)
		die("%s", error_message());
}

/* ---- held-out retrieval ---- */

struct val_set {
	int n;
	float *pixels;
	int32_t *ids;
	int *group;
};

static void val_load(struct val_set *v, const char *path, const struct clip_config *c,
                     const struct clip_tokenizer *tok)
{
	struct ts_reader *rd = ts_open(path);
	if (!rd)
		die("%s", error_message());
	struct record r = RECORD_INIT;
	size_t px = (size_t)3 * c->resolution * c->resolution, cap = 0;
	char **texts = NULL;
	struct augment_config plain = { 0 };
	*v = (struct val_set){ 0 };
	int rc;
	while ((rc = ts_read(rd, &r)) > 0) {
		if (check_record(NULL, &r) < 0)
			die("%s: record %d: %s", path, v->n, error_message());
		if ((size_t)v->n == cap) {
			cap = cap ? 2 * cap : 64;
			v->pixels = xrealloc(v->pixels, cap * px * sizeof *v->pixels);
			v->ids = xrealloc(v->ids, cap * c->context * sizeof *v->ids);
			texts = xrealloc(texts, cap * sizeof *texts);
		}
		prepare(&r, c, tok, &plain, 0, 0, v->pixels + v->n * px, v->ids + (size_t)v->n * c->context);
		texts[v->n++] = xstrdup(record_str(&r, "text"));
	}
	if (rc < 0)
		die("%s", error_message());
	if (v->n == 0)
		die("%s: no image+text records", path);
	ts_close(rd);
	record_free(&r);
	v->group = xmalloc(v->n * sizeof *v->group);
	clip_caption_groups((const char *const *)texts, NULL, v->n, v->group);
	for (int i = 0; i < v->n; i++)
		free(texts[i]);
	free(texts);
}

static void val_run(const struct val_set *v, struct clip_model *m, int batch, struct clip_retrieval *r)
{
	int E = m->cfg.embed_dim;
	size_t px = (size_t)3 * m->cfg.resolution * m->cfg.resolution;
	float *img = xmalloc((size_t)v->n * E * sizeof *img), *txt = xmalloc((size_t)v->n * E * sizeof *txt);
	for (int i = 0; i < v->n; i += batch) {
		int n = v->n - i < batch ? v->n - i : batch;
		clip_encode_image(m, v->pixels + i * px, n, img + (size_t)i * E, NULL);
		if (clip_encode_text(m, v->ids + (size_t)i * m->cfg.context, n, txt + (size_t)i * E, NULL) < 0)
			die("%s", error_message());
	}
	clip_normalize(img, v->n, E);
	clip_normalize(txt, v->n, E);
	clip_retrieval_eval(img, txt, v->group, v->n, E, r);
	free(img);
	free(txt);
}

/* ---- checkpoints ---- */


/* The options an exact resume depends on that the optimiser state does not
 * record. */
static void train_options_json(const struct options *o, char *buf, size_t size)
{
	snprintf(buf, size, "{\"batch\": %d, \"buffer\": %d, \"augment\": %d, \"crop_min\": %.9g, \"flip\": %d}",
	         o->batch, o->run.buffer, o->aug.enabled, o->aug.crop_min, o->aug.flip);
}

static void save(const struct clip_trainer *t, const struct options *o, const struct record_shuffle *sh,
                 uint64_t seed, const char *merges)
{
	struct nn_train_position pos = { .rng_seed = seed, .rng_offset = (uint64_t)t->opt.step, .data_pos = sh->draws };
	char *model = clip_open_clip_config_json(&t->m->cfg), train[512];
	train_options_json(o, train, sizeof train);
	char *json = xmalloc(strlen(model) + strlen(train) + 64);
	sprintf(json, "{\"open_clip\": %s, \"train\": %s}", model, train);
	struct st_meta meta[2] = { { "open_clip_config", model }, { CLIP_TOKENIZER_METADATA_KEY, merges } };
	if (nn_checkpoint_save_meta(o->out, &t->m->params, &t->opt, &pos, json, meta, merges ? 2 : 1) < 0)
		die("%s", error_message());
	free(model);
	free(json);
}

static struct clip_config config_from_options(const struct options *o, int vocab)
{
	struct clip_config c = {
		.naming = CLIP_NAMING_HF,
		.vision = { .width = o->vw, .layers = o->vl, .heads = o->vh, .mlp_dim = 4 * o->vw, .act = o->act,
		            .ln_eps = 1e-5f, .heads_from = CLIP_HEADS_OPTION },
		.text = { .width = o->tw, .layers = o->tl, .heads = o->th, .mlp_dim = 4 * o->tw, .act = o->act,
		          .ln_eps = 1e-5f, .heads_from = CLIP_HEADS_OPTION },
		.patch = o->patch, .grid = o->image_size / o->patch, .resolution = o->image_size,
		.context = o->context, .vocab = vocab, .embed_dim = o->embed,
	};
	return c;
}

/* Resuming: the model's config and tokenizer from MODEL, the weights and
 * state from the training checkpoint. Returns the merges text (or NULL). */
static char *resume_model(const struct options *o, struct clip_model *m, struct clip_config *cfg)
{
	struct st_file *f = st_open(o->out);
	if (!f)
		die("%s", error_message());
	if (clip_config_read(cfg, f, o->out, NULL) < 0)
		die("%s: %s", o->out, error_message());
	const char *merges = st_metadata(f, CLIP_TOKENIZER_METADATA_KEY);
	char *copy = merges ? xstrdup(merges) : NULL;
	char train[512];
	train_options_json(o, train, sizeof train);
	nn_train_check_resume(o->out, st_metadata(f, "config"), train,
	                      "--batch, --buffer, --no-augment, --crop-min or --flip");
	st_close(f);
	clip_model_init_trainable(m, cfg);
	return copy;
}

/* ---- the run ---- */

struct report {
	double loss_sum, start;
	int64_t n, start_step;
	FILE *log;
};

static void report(struct report *r, const struct clip_trainer *t, const struct options *o,
                   const struct clip_retrieval *val)
{
	int64_t step = t->opt.step;
	double now = omp_get_wtime(), rate = 0;
	if (step > r->start_step && now > r->start)
		rate = (double)(step - r->start_step) / (now - r->start);
	double loss = r->n ? r->loss_sum / (double)r->n : NAN;
	fprintf(stderr, "%s: step %lld/%lld: loss %.4f, logit scale %.2f, lr %.3g, %.2f steps/s", tool_name,
	        (long long)step, (long long)o->steps, loss, t->last_logit_scale, t->opt.last_lr, rate);
	if (rate > 0 && step < o->steps) {
		long long eta = (long long)((double)(o->steps - step) / rate);
		fprintf(stderr, ", ETA %lld:%02lld:%02lld", eta / 3600, eta / 60 % 60, eta % 60);
	}
	fputc('\n', stderr);
	if (val)
		fprintf(stderr, "%s: step %lld: zero-shot top-1 text->image %.4f, image->text %.4f, chance %.4f\n",
		        tool_name, (long long)step, val->t2i, val->i2t, val->chance);
	if (r->log && (r->n || val)) {
		fprintf(r->log, "{\"step\": %lld, \"loss\": %.6g, \"logit_scale\": %.6g, \"lr\": %.6g, \"steps_per_s\": %.4g",
		        (long long)step, r->n ? loss : 0.0, t->last_logit_scale, t->opt.last_lr, rate);
		if (val)
			fprintf(r->log, ", \"val_t2i\": %.6g, \"val_i2t\": %.6g, \"val_chance\": %.6g", val->t2i, val->i2t,
			        val->chance);
		fputs("}\n", r->log);
		fflush(r->log);
	}
	r->loss_sum = 0;
	r->n = 0;
}

int main(int argc, char **argv)
{
	tool_init("clip-train", argc, argv, help);
	struct options o;
	parse_options(argc, argv, &o);

	struct clip_model m;
	struct clip_config cfg;
	struct clip_trainer t;
	struct nn_train_position pos = { .rng_seed = o.run.seed };
	struct record_cycle src;
	char *merges = NULL;
	struct clip_tokenizer *tok = NULL;
	if (record_cycle_open(&src, o.inputs, o.ninputs, check_record, NULL, "image+text", "clip-train") < 0)
		die("%s", error_message());
	if (o.run.resume) {
		merges = resume_model(&o, &m, &cfg);
		if (clip_trainer_init(&t, &m, &o.run.optim) < 0)
			die("%s", error_message());
		if (nn_checkpoint_load(o.out, &m.params, &t.opt, &pos, 0) < 0)
			nn_train_resume_failed();
	} else if (!o.vocab) {
		int64_t n;
		merges = learn_merges(&src, o.merges, &n);
	}
	if (merges)
		tok = clip_tokenizer_from_merges(merges, strlen(merges), "the learned vocabulary");
	else if (o.vocab)
		tok = clip_tokenizer_load(o.vocab);
	else
		die("%s: no vocabulary in the model: give --vocab", o.out);
	if (!tok)
		die("%s", error_message());
	if (!o.run.resume) {
		cfg = config_from_options(&o, clip_tokenizer_vocab_size(tok));
		clip_model_init_trainable(&m, &cfg);
		clip_init_random(&m, o.run.seed);
		if (clip_trainer_init(&t, &m, &o.run.optim) < 0)
			die("%s", error_message());
	} else if (clip_tokenizer_vocab_size(tok) > cfg.vocab) {
		die("%s: the vocabulary has %d tokens, the model %d", o.out, (int)clip_tokenizer_vocab_size(tok), cfg.vocab);
	}
	struct record_shuffle sh;
	if (record_shuffle_open(&sh, &src, o.run.buffer, pos.rng_seed) < 0 || record_shuffle_skip(&sh, pos.data_pos) < 0)
		die("%s", error_message());
	struct val_set val = { 0 };
	if (o.run.val)
		val_load(&val, o.run.val, &cfg, tok);
	fprintf(stderr, "%s: %dx%d images in %d patches, vision %dx%d, text %dx%d, context %d, vocabulary %d, "
	        "%.2fM parameters, batch %d%s\n", tool_name, cfg.resolution, cfg.resolution, cfg.grid * cfg.grid,
	        cfg.vision.layers, cfg.vision.width, cfg.text.layers, cfg.text.width, cfg.context, cfg.vocab,
	        (double)m.params.total / 1e6, o.batch, o.run.resume ? ", resumed" : "");

	int B = o.batch;
	size_t px = (size_t)3 * cfg.resolution * cfg.resolution;
	float *pixels = xmalloc(B * px * sizeof *pixels);
	int32_t *ids = xmalloc((size_t)B * cfg.context * sizeof *ids);
	int *group = xmalloc(B * sizeof *group);
	const char **texts = xmalloc(B * sizeof *texts), **image_ids = xmalloc(B * sizeof *image_ids);
	struct record *batch = xcalloc(B, sizeof *batch);
	struct report r = { .start = omp_get_wtime(), .start_step = t.opt.step };
	if (o.run.log && !(r.log = fopen(o.run.log, "a")))
		die("%s: cannot open: %m", o.run.log);
	struct clip_retrieval ret;
	int64_t this_run = 0, saved_at = t.opt.step;
	while (nn_train_more(&o.run, t.opt.step, o.steps, this_run)) {
		for (int b = 0; b < B; b++) {
			if (record_shuffle_draw(&sh, &batch[b], NULL) < 0)
				die("%s", error_message());
			prepare(&batch[b], &cfg, tok, &o.aug, pos.rng_seed, (uint64_t)t.opt.step * B + b, pixels + b * px,
			        ids + (size_t)b * cfg.context);
			texts[b] = record_str(&batch[b], "text");
			image_ids[b] = record_str(&batch[b], "id");
		}
		clip_caption_groups(texts, image_ids, B, group);
		float loss;
		int rc = clip_trainer_step(&t, pixels, ids, group, B, &loss);
		if (rc < 0)
			die("%s", error_message());
		if (rc == NN_STEP_SKIPPED)
			warnx_tool("step %lld: the gradient is not finite; step skipped", (long long)t.opt.step);
		r.loss_sum += loss;
		r.n++;
		this_run++;
		bool at_end = t.opt.step == o.steps;
		bool do_val = o.run.val && (at_end || nn_train_due(o.val_every, t.opt.step));
		if (do_val)
			val_run(&val, &m, B, &ret);
		if (do_val || nn_train_due(o.run.progress_every, t.opt.step))
			report(&r, &t, &o, do_val ? &ret : NULL);
		if (nn_train_due(o.run.save_every, t.opt.step)) {
			save(&t, &o, &sh, pos.rng_seed, merges);
			saved_at = t.opt.step;
		}
	}
	if (saved_at != t.opt.step || this_run == 0)
		save(&t, &o, &sh, pos.rng_seed, merges);
	if (r.n > 0)
		report(&r, &t, &o, NULL);
	if (r.log)
		fclose(r.log);
	for (int b = 0; b < B; b++)
		record_free(&batch[b]);
	free(batch);
	free(texts);
	free(image_ids);
	free(pixels);
	free(ids);
	free(group);
	free(val.pixels);
	free(val.ids);
	free(val.group);
	free(merges);
	clip_tokenizer_free(tok);
	clip_trainer_free(&t);
	clip_model_free(&m);
	record_shuffle_close(&sh);
	record_cycle_close(&src);
	return EXIT_OK;
}
