/* classify: trains the judge, a small image classifier used only for
 * evaluation, and applies it to image records (predictions, class
 * probabilities and the features a Fréchet distance is measured in). */
#include <getopt.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "image/image_set.h"
#include "judge/judge_model.h"
#include "judge/judge_train.h"
#include "nn/checkpoint.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/train_options.h"
#include "stream/record_batch.h"
#include "stream/record_cycle.h"
#include "stream/stream.h"

static const char help[] =
	"Usage: classify train -m JUDGE.safetensors --classes N [OPTION...] [FILE...]\n"
	"       classify apply -m JUDGE.safetensors [OPTION...] [FILE...]\n"
	"The judge: a small convolutional image classifier trained only to evaluate\n"
	"generated images (never the CLIP that conditions the generator).\n"
	"\n"
	"classify train reads records with 'image' (uint8 [H,W,C], any size) and\n"
	"'label' (an integer class, 0 to N-1), as idx-read writes them, from stdin\n"
	"(read to its end and spooled to $TMPDIR) or files (re-read for as long as\n"
	"training runs), through a shuffle buffer. Every image is resized to\n"
	"--image-size (Pillow's bicubic) and scaled to [-1, 1]. The weights go to\n"
	"JUDGE.safetensors (the config as JSON in its metadata), the optimiser state\n"
	"beside it; with --resume a run continues from them bit for bit (same\n"
	"options, data and thread count).\n"
	"\n"
	"classify apply reads records with 'image' and adds 'pred' (int: the most\n"
	"likely class), 'prob' (float32 [N]: softmax), 'feat' (float32 [F]: the\n"
	"penultimate features) and, when the record has 'label', 'correct' (int 0/1).\n"
	"Every other field passes through.\n"
	"\n"
	"Common:\n"
	"  -m, --model PATH       the judge checkpoint (required)\n"
	"  -b, --batch N          images per step (default 32) / per model pass (64)\n"
	"  -t, --threads N        CPU threads (default: all cores)\n"
	"      --backend NAME     cpu (default), cuda or auto\n"
	"\n"
	"Train (model options are taken from --resume's checkpoint; any given must\n"
	"agree with it):\n"
	"      --classes N        number of classes (required unless --resume)\n"
	"      --image-size S     side the images are resized to (default 32)\n"
	"      --channels C       1 (gray) or 3 (RGB) (default: by the first image)\n"
	"      --width W          channels of the first layer, a multiple of 16; the\n"
	"                         two lower levels have 2W and 4W (default 16)\n"
	"      --features F       width of the penultimate features (default 128)\n"
	"      --pool P           average-pool the last feature map (image-size/4 on a\n"
	"                         side) to P x P before the features (1: global;\n"
	"                         default: 2x2 windows, or none if the side is odd)\n"
	"  -s, --steps N          optimiser steps in all (default 3000)\n"
	"      --lr LR            peak AdamW learning rate (default 2e-3)\n"
	"      --min-lr LR        end of the cosine decay (default lr/100)\n"
	"      --warmup N         linear warm-up steps (default steps/20, at most 1000)\n"
	"      --weight-decay W   AdamW weight decay of kernels and matrices (0.01)\n"
	"      --shift N          shift each training image by up to N pixels in x\n"
	"                         and y, at random (default 0)\n"
	"      --seed S           random seed of initialisation, data order and shifts\n"
	"                         (default 1)\n"
	"      --buffer N         records in the shuffle buffer (default 2048)\n"
	"      --val FILE         labelled held-out records: accuracy on them at every\n"
	"                         report\n"
	"      --val-count N      use at most the first N of them (default 10000)\n"
	"      --progress-every N report every N steps (default 100; 0: at the end)\n"
	"      --save-every N     checkpoint every N steps (default 500; 0: at the end)\n"
	"      --resume           continue the run whose checkpoint is at --model\n"
	"      --stop-after N     stop (with a checkpoint) after N steps of this run\n"
	"\n"
	"Apply:\n"
	"  -p, --progress         progress on stderr every few seconds\n"
	"  -h, --help             show this help\n"
	"      --version          show the version\n"
	"\n"
	"Examples:\n"
	"  idx-read train-images-idx3-ubyte.gz > fashion.ts\n"
	"  idx-read t10k-images-idx3-ubyte.gz > fashion-test.ts\n"
	"  classify train -m judge.safetensors --classes 10 --val fashion-test.ts \\\n"
	"      fashion.ts\n"
	"  classify apply -m judge.safetensors fashion-test.ts | ts-cat -k correct\n";

enum {
	OPT_BACKEND = 256, OPT_CLASSES, OPT_IMAGE_SIZE, OPT_CHANNELS, OPT_WIDTH, OPT_FEATURES, OPT_POOL, OPT_SHIFT,
};

struct options {
	bool progress;
	const char *model;
	struct judge_config arch; /* 0: not given */
	int batch, shift;
	int64_t steps;
	struct nn_train_options run;
	char **inputs;
	int ninputs;
};

static void parse_options(int argc, char **argv, struct options *o, bool train)
{
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { "model", 1, 0, 'm' }, { "batch", 1, 0, 'b' },
		{ "threads", 1, 0, 't' }, { "steps", 1, 0, 's' }, { "progress", 0, 0, 'p' },
		{ "backend", 1, 0, OPT_BACKEND }, { "classes", 1, 0, OPT_CLASSES },
		{ "image-size", 1, 0, OPT_IMAGE_SIZE }, { "channels", 1, 0, OPT_CHANNELS }, { "width", 1, 0, OPT_WIDTH },
		{ "features", 1, 0, OPT_FEATURES }, { "pool", 1, 0, OPT_POOL }, { "shift", 1, 0, OPT_SHIFT },
		NN_TRAIN_LONGOPTS, NN_TRAIN_LONGOPT_VAL, NN_TRAIN_LONGOPT_VAL_COUNT, { 0 },
	};
	*o = (struct options){ .batch = train ? 32 : 64, .steps = 3000 };
	struct nn_train_options *run = &o->run;
	nn_train_options_defaults(run);
	run->buffer = 2048;
	run->val_count = 10000;
	run->progress_every = 100;
	run->save_every = 500;
	run->optim.lr = 2e-3f;
	int c;
	while ((c = getopt_long(argc, argv, "hVm:b:t:s:p", opts, NULL)) != -1) {
		if (tool_common_option(c, help))
			continue;
		/* the training options are not apply's */
		if (!train && c != 'm' && c != 'b' && c != 't' && c != 'p' && c != OPT_BACKEND && c != '?')
			usage_error("this option is for classify train, not apply");
		if (train && c == 'p')
			usage_error("--progress is for classify apply (train reports every --progress-every steps)");
		if (nn_train_option(c, optarg, run))
			continue;
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'b': o->batch = (int)parse_int_option("--batch", optarg, 1, 1 << 16); break;
		case 't': omp_set_num_threads((int)parse_int_option("--threads", optarg, 1, 1024)); break;
		case 's': o->steps = parse_int_option("--steps", optarg, 1, INT64_MAX / 4); break;
		case 'p': o->progress = true; break;
		case OPT_BACKEND:
			if (nn_use_backend(optarg) < 0)
				usage_error("--backend: %s", error_message());
			break;
		case OPT_CLASSES: o->arch.classes = (int)parse_int_option("--classes", optarg, 2, 1 << 16); break;
		case OPT_IMAGE_SIZE: o->arch.image_size = (int)parse_int_option("--image-size", optarg, 4, 1024); break;
		case OPT_CHANNELS:
			o->arch.channels = (int)parse_int_option("--channels", optarg, 1, 3);
			if (o->arch.channels == 2)
				usage_error("--channels: 1 (gray) or 3 (RGB), not 2");
			break;
		case OPT_WIDTH:
			o->arch.width = (int)parse_int_option("--width", optarg, 16, 4096);
			if (o->arch.width % 16)
				usage_error("--width: %d is not a multiple of 16", o->arch.width);
			break;
		case OPT_FEATURES: o->arch.features = (int)parse_int_option("--features", optarg, 1, 4096); break;
		case OPT_POOL: o->arch.pool = (int)parse_int_option("--pool", optarg, 1, 1024); break;
		case OPT_SHIFT: o->shift = (int)parse_int_option("--shift", optarg, 0, 64); break;
		default: usage_error("unknown option");
		}
	}
	if (!o->model)
		usage_error("--model PATH is required");
	o->inputs = argv + optind;
	o->ninputs = argc - optind;
	if (!train)
		return;
	if (!run->resume && !o->arch.classes)
		usage_error("--classes N is required to start a run");
	nn_train_options_finish(run, o->steps, 100);
}

/* ---- the labelled images ---- */

/* What training records must hold; channels 0: the first image's. */
struct label_check {
	int classes, channels;
};

/* The channels a model gets for an image of C channels. */
static int model_channels(int C)
{
	return C >= 3 ? 3 : 1;
}

/* Checks the image and label of r and drops every other field, so that the
 * shuffle buffer holds only those. */
static int check_training_record(void *ctx, struct record *r)
{
	struct label_check *lc = ctx;
	struct image view;
	int label;
	if (image_from_record(r, "image", &view) < 0)
		return -1;
	int rc = judge_record_label(r, lc->classes, &label);
	if (rc < 0)
		return -1;
	if (rc > 0)
		return errorf("no 'label' (classify train needs labelled images)");
	if (!lc->channels)
		lc->channels = model_channels(view.channels);
	for (int i = r->n - 1; i >= 0; i--)
		if (strcmp(r->fields[i].key, "image") && strcmp(r->fields[i].key, "label"))
			record_remove(r, r->fields[i].key);
	return 0;
}

struct val_set {
	float *x; /* [n, C, S, S] */
	int32_t *labels;
	int n;
};

/* What reading the held-out set needs per record. */
struct val_reader {
	struct val_set *v;
	const struct judge_config *c;
};

static int val_record(void *ctx, const struct record *r, const struct image *view, int i, float *out)
{
	struct val_reader *vr = ctx;
	int label, lr = judge_record_label(r, vr->c->classes, &label);
	if (lr != 0)
		return lr < 0 ? -1 : errorf("no 'label'");
	if (judge_input_from_image(vr->c, view, out) < 0)
		return -1;
	vr->v->labels = xrealloc(vr->v->labels, (size_t)(i + 1) * sizeof *vr->v->labels);
	vr->v->labels[i] = label;
	return 0;
}

static void val_read(struct val_set *v, const struct options *o, const struct judge_config *c)
{
	struct val_reader vr = { v, c };
	size_t per = (size_t)c->channels * c->image_size * c->image_size;
	v->n = image_set_read(o->run.val, o->run.val_count, per, val_record, &vr, &v->x);
	if (v->n < 0)
		die("%s", error_message());
}

/* The fraction of the held-out set the model classifies right. */
static double val_accuracy(const struct val_set *v, struct judge *m, struct nn_arena *a, int batch)
{
	const struct judge_config *c = &m->cfg;
	size_t per = (size_t)c->channels * c->image_size * c->image_size;
	float *prob = xmalloc((size_t)batch * c->classes * sizeof *prob);
	int right = 0;
	for (int i = 0; i < v->n; i += batch) {
		int n = v->n - i < batch ? v->n - i : batch;
		judge_predict(m, a, v->x + i * per, n, prob, NULL);
		for (int b = 0; b < n; b++)
			right += judge_argmax(prob + (size_t)b * c->classes, c->classes) == v->labels[i + b];
	}
	free(prob);
	return (double)right / v->n;
}

/* ---- train ---- */

struct report {
	double loss_sum;
	int64_t n, right, seen;
	double start;
	int64_t start_step;
};

static void report_print(struct report *r, struct judge_trainer *t, const struct val_set *v,
                         const struct options *o)
{
	int64_t step = t->opt.step;
	fprintf(stderr, "%s: step %lld/%lld", tool_name, (long long)step, (long long)o->steps);
	if (r->n)
		fprintf(stderr, ": loss %.4f, accuracy %.4f", r->loss_sum / (double)r->n, (double)r->right / r->seen);
	if (v->n)
		fprintf(stderr, " | val accuracy %.4f (%d)", val_accuracy(v, t->m, &t->arena, o->batch), v->n);
	double now = omp_get_wtime();
	if (step > r->start_step && now > r->start)
		fprintf(stderr, " | lr %.3g, %.2f steps/s", t->opt.last_lr,
		        (double)(step - r->start_step) / (now - r->start));
	fputc('\n', stderr);
	fflush(stderr);
	r->loss_sum = 0;
	r->n = r->right = r->seen = 0;
}

/* The training options that the optimiser state does not record but an
 * exact resume depends on, as a JSON member of the weights' "config". */
static void train_options_json(const struct options *o, char *buf, size_t size)
{
	snprintf(buf, size, "\"train\": {\"batch\": %d, \"buffer\": %d, \"shift\": %d}", o->batch, o->run.buffer,
	         o->shift);
}

static void save(struct judge_trainer *t, const struct options *o, const struct record_shuffle *sh)
{
	struct nn_train_position pos = { .rng_seed = o->run.seed, .rng_offset = (uint64_t)sh->draws,
	                                 .data_pos = sh->draws };
	char train[256];
	train_options_json(o, train, sizeof train);
	char *json = nn_train_config_json(judge_config_json(&t->m->cfg), train);
	if (nn_checkpoint_save(o->model, &t->m->params, &t->opt, &pos, json) < 0)
		die("%s", error_message());
	free(json);
}

/* A resumed run must use the options it was started with. */
static void check_resume(const struct options *o, const struct judge_config *c)
{
	struct st_file *f = st_open(o->model);
	if (!f)
		die("%s", error_message());
	char train[256];
	train_options_json(o, train, sizeof train);
	nn_train_check_resume(o->model, st_metadata(f, "config"), train, "--batch, --buffer or --shift");
	st_close(f);
	const struct { const char *opt; int want, have; } items[] = {
		{ "--classes", o->arch.classes, c->classes }, { "--channels", o->arch.channels, c->channels },
		{ "--image-size", o->arch.image_size, c->image_size }, { "--width", o->arch.width, c->width },
		{ "--features", o->arch.features, c->features }, { "--pool", o->arch.pool, c->pool },
	};
	for (size_t i = 0; i < sizeof items / sizeof *items; i++)
		if (items[i].want && items[i].want != items[i].have)
			die("%s: %s %d differs from the checkpoint's %d", o->model, items[i].opt, items[i].want,
			    items[i].have);
}

static int run_train(int argc, char **argv)
{
	struct options opts, *o = &opts;
	parse_options(argc, argv, o, true);
	struct judge m;
	struct judge_trainer t;
	struct nn_train_position pos = { 0 };
	if (o->run.resume) {
		if (judge_load(&m, o->model, 1) < 0)
			die("%s", error_message());
		check_resume(o, &m.cfg);
		if (judge_trainer_init(&t, &m, &o->run.optim) < 0)
			die("%s", error_message());
		if (nn_checkpoint_load(o->model, &m.params, &t.opt, &pos, 0) < 0)
			nn_train_resume_failed();
		o->run.seed = pos.rng_seed;
	}
	struct label_check lc = { .classes = o->run.resume ? m.cfg.classes : o->arch.classes,
	                          .channels = o->run.resume ? m.cfg.channels : o->arch.channels };
	struct record_cycle src;
	struct record_shuffle sh;
	if (record_cycle_open(&src, o->inputs, o->ninputs, check_training_record, &lc, "labelled image",
	                      "classify") < 0 ||
	    record_shuffle_open(&sh, &src, o->run.buffer, o->run.seed) < 0 || record_shuffle_skip(&sh, pos.data_pos) < 0)
		die("%s", error_message());
	if (!o->run.resume) {
		struct judge_config c = {
			.classes = o->arch.classes, .channels = lc.channels,
			.image_size = o->arch.image_size ? o->arch.image_size : 32,
			.width = o->arch.width ? o->arch.width : 16, .features = o->arch.features ? o->arch.features : 128,
			.pool = o->arch.pool,
		};
		if (!c.pool) /* 2x2 windows where they fit */
			c.pool = judge_pool_side(&c) % 2 ? judge_pool_side(&c) : judge_pool_side(&c) / 2;
		if (judge_config_check(&c) < 0)
			die("%s", error_message());
		judge_init(&m, &c, 1);
		judge_init_random(&m, o->run.seed);
		if (judge_trainer_init(&t, &m, &o->run.optim) < 0)
			die("%s", error_message());
	}
	const struct judge_config *c = &m.cfg;
	struct val_set val = { 0 };
	if (o->run.val)
		val_read(&val, o, c);
	int B = o->batch, S = c->image_size;
	fprintf(stderr, "%s: %dx%dx%d images, %d classes, width %d, %d features, %.2fM parameters, batch %d%s\n",
	        tool_name, S, S, c->channels, c->classes, c->width, c->features, (double)m.params.total / 1e6, B,
	        o->run.resume ? ", resumed" : "");

	size_t per = (size_t)c->channels * S * S;
	float *x = xmalloc((size_t)B * per * sizeof *x);
	int32_t *labels = xmalloc((size_t)B * sizeof *labels);
	struct record drawn = RECORD_INIT;
	struct report r = { .start = omp_get_wtime(), .start_step = t.opt.step };
	int64_t this_run = 0, saved_at = t.opt.step;
	while (nn_train_more(&o->run, t.opt.step, o->steps, this_run)) {
		for (int b = 0; b < B; b++) {
			struct image view;
			uint64_t draw = (uint64_t)sh.draws;
			if (record_shuffle_draw(&sh, &drawn, NULL) < 0 || image_from_record(&drawn, "image", &view) < 0 ||
			    judge_input_from_image(c, &view, x + b * per) < 0 ||
			    judge_record_label(&drawn, c->classes, &labels[b]) != 0)
				die("%s", error_message());
			if (o->shift) {
				int dx, dy;
				judge_shift_at(o->run.seed, draw, o->shift, &dx, &dy);
				judge_shift(x + b * per, c->channels, S, dx, dy);
			}
		}
		float loss;
		int right;
		if (judge_trainer_step(&t, x, labels, B, &loss, &right) == NN_STEP_SKIPPED)
			warnx_tool("step %lld: the gradient is not finite; step skipped", (long long)t.opt.step);
		r.loss_sum += loss;
		r.n++;
		r.right += right;
		r.seen += B;
		this_run++;
		if (nn_train_due(o->run.progress_every, t.opt.step))
			report_print(&r, &t, &val, o);
		if (nn_train_due(o->run.save_every, t.opt.step)) {
			save(&t, o, &sh);
			saved_at = t.opt.step;
		}
	}
	if (saved_at != t.opt.step || this_run == 0)
		save(&t, o, &sh);
	if (r.n > 0 || this_run == 0)
		report_print(&r, &t, &val, o);
	record_free(&drawn);
	free(x);
	free(labels);
	free(val.x);
	free(val.labels);
	judge_trainer_free(&t);
	judge_free(&m);
	record_shuffle_close(&sh);
	record_cycle_close(&src);
	return EXIT_OK;
}

/* ---- apply ---- */

struct applier {
	struct judge m;
	struct nn_arena arena;
	float *x, *prob, *feat;
	size_t cap_x, cap_prob, cap_feat;
};

/* Every record needs an image (of any size: all are resized) and, if it
 * has a label, one of the model's classes. */
static int check_apply_record(void *ctx, const struct record *r, int size[2])
{
	struct applier *e = ctx;
	struct image view;
	int label;
	if (image_from_record(r, "image", &view) < 0 || judge_record_label(r, e->m.cfg.classes, &label) < 0)
		return -1;
	size[0] = size[1] = e->m.cfg.image_size;
	return 0;
}

static int apply_batch(void *ctx, struct record_batch *b)
{
	struct applier *e = ctx;
	const struct judge_config *c = &e->m.cfg;
	int n = b->n, N = c->classes, F = c->features;
	size_t per = (size_t)c->channels * c->image_size * c->image_size;
	e->x = batch_buffer_grow(e->x, &e->cap_x, (size_t)n * per, sizeof *e->x);
	e->prob = batch_buffer_grow(e->prob, &e->cap_prob, (size_t)n * N, sizeof *e->prob);
	e->feat = batch_buffer_grow(e->feat, &e->cap_feat, (size_t)n * F, sizeof *e->feat);
	for (int i = 0; i < n; i++) {
		struct image view;
		if (image_from_record(&b->recs[i], "image", &view) < 0 ||
		    judge_input_from_image(c, &view, e->x + i * per) < 0)
			record_batch_fail(b, i);
	}
	if (record_batch_check(b) < 0)
		return -1;
	judge_predict(&e->m, &e->arena, e->x, n, e->prob, e->feat);
	for (int i = 0; i < n; i++) {
		struct record *r = &b->recs[i];
		const float *prob = e->prob + (size_t)i * N;
		int pred = judge_argmax(prob, N), label;
		record_set_int(r, "pred", pred);
		memcpy(record_new_tensor(r, "prob", DT_FLOAT32, 1, (int64_t[]){ N })->data, prob, (size_t)N * sizeof *prob);
		memcpy(record_new_tensor(r, "feat", DT_FLOAT32, 1, (int64_t[]){ F })->data, e->feat + (size_t)i * F,
		       (size_t)F * sizeof *e->feat);
		if (judge_record_label(r, N, &label) == 0)
			record_set_int(r, "correct", pred == label);
	}
	return 0;
}

static int run_apply(int argc, char **argv)
{
	struct options opts, *o = &opts;
	parse_options(argc, argv, o, false);
	struct applier e = { 0 };
	if (judge_load(&e.m, o->model, 0) < 0)
		die("%s", error_message());
	if (record_batch_filter(o->batch, o->progress, check_apply_record, apply_batch, &e, o->ninputs,
	                        o->inputs) < 0)
		die("%s", error_message());
	nn_arena_free(&e.arena);
	free(e.x);
	free(e.prob);
	free(e.feat);
	judge_free(&e.m);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct tool_command commands[] = { { "train", run_train }, { "apply", run_apply }, { 0 } };
	tool_init("classify", argc, argv, help);
	return tool_run_command(argc, argv, commands, help);
}
