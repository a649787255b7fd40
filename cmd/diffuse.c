/* diffuse: trains the discrete kNN-Diffusion backbone on token grids with
 * their CLIP conditions, and samples token grids for new conditions. */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "nn/optim.h"
#include "diffusion/diffuse_sample.h"
#include "diffusion/diffuse_train.h"
#include "nn/checkpoint.h"
#include "nn/ops.h"
#include "nn/train_options.h"
#include "stream/record_batch.h"
#include "stream/record_cycle.h"
#include "stream/stream.h"

static const char help[] =
	"Usage: diffuse train --model CKPT.safetensors [OPTION...] [FILE...]\n"
	"       diffuse sample --model CKPT.safetensors [OPTION...] [FILE...]\n"
	"The discrete kNN-Diffusion backbone: a VQ-Diffusion transformer over token\n"
	"grids, conditioned on a CLIP embedding and its k nearest neighbours.\n"
	"\n"
	"diffuse train reads records with 'tokens' (int32 [h,w]), 'emb' (float32 [D])\n"
	"and 'knn' (float32 [k,D]) from stdin (read to its end and spooled to $TMPDIR)\n"
	"or files (re-read for as long as training runs), through a shuffle buffer.\n"
	"The condition is [emb; knn rows], k+1 embeddings (just emb with --no-knn).\n"
	"The weights go to CKPT (the model config as JSON in its metadata), the\n"
	"optimiser state and EMA weights to CKPT.state.safetensors beside it; with\n"
	"--resume a run continues from them bit for bit (same options, data and\n"
	"thread count).\n"
	"\n"
	"diffuse sample reads records with 'emb' and, unless --no-knn, 'knn', and adds\n"
	"'tokens' (int32 [h,w]) sampled by the reverse chain from all-[MASK].\n"
	"\n"
	"Common:\n"
	"  -m, --model PATH       the checkpoint (required)\n"
	"      --backbone NAME    discrete (the only one so far)\n"
	"      --no-knn           condition on 'emb' alone (the paper's no-kNN baseline)\n"
	"  -k, --neighbours N     use the first N rows of 'knn' (train: default all of\n"
	"                         the first record's; sample: default the model's k;\n"
	"                         missing rows are masked)\n"
	"  -b, --batch N          records per step / per model pass (default 16)\n"
	"      --seed S           random seed (default 1)\n"
	"  -t, --threads N        CPU threads (default: all cores)\n"
	"      --backend NAME     cpu (default), cuda or auto\n"
	"\n"
	"Train (model options are taken from --resume's checkpoint):\n"
	"      --codes K          codebook size (required unless --resume); every\n"
	"                         token must be < K\n"
	"      --depth N          transformer blocks (default 12)\n"
	"      --width W          model width (default 512)\n"
	"      --heads N          attention heads (default 8)\n"
	"      --steps-diffusion T  diffusion steps (default 100)\n"
	"      --cond-self-attn   a self-attention layer over the k+1 embeddings\n"
	"      --cond-knn-mean    the neighbours enter as their mean (one slot)\n"
	"  -s, --steps N          optimiser steps in all (default 10000)\n"
	"      --lr LR            peak AdamW learning rate (default 4.5e-4)\n"
	"      --min-lr LR        end of the cosine decay (default lr/10)\n"
	"      --warmup N         linear warm-up steps (default steps/20, at most 1000)\n"
	"      --weight-decay W   AdamW weight decay of matrices (default 0.045)\n"
	"      --ema D            decay of the EMA weights (default 0.99; 0: none)\n"
	"      --cond-drop P      train this fraction of samples with the null\n"
	"                         condition (zeros), for classifier-free guidance\n"
	"                         (default 0)\n"
	"      --query-noise XI   move the query embedding by random noise of XI times\n"
	"                         its norm (then rescale), so that a text query, only\n"
	"                         near its images, reads like an image's (default 0)\n"
	"      --aux-weight W     weight of VQ-Diffusion's auxiliary x0 loss (5e-4)\n"
	"      --buffer N         records in the shuffle buffer (default 256)\n"
	"      --save-every N     checkpoint every N steps (default 1000; 0: at the end)\n"
	"      --progress-every N report every N steps (default 100)\n"
	"      --log FILE         append one JSON object per report: step, loss, lr,\n"
	"                         steps_per_s\n"
	"      --resume           continue the run whose checkpoint is at --model\n"
	"      --stop-after N     stop (with a checkpoint) after N steps of this run\n"
	"\n"
	"Sample:\n"
	"      --steps N          reverse steps (default: the model's T); fewer skip\n"
	"                         steps, evenly spaced\n"
	"      --truncation R     keep the classes of the top R probability mass of\n"
	"                         each x0 prediction (default 0.86; 1: off)\n"
	"      --guidance G       classifier-free guidance scale (default 1: off;\n"
	"                         the paper uses 8)\n"
	"      --ema              use the EMA weights from the training state\n"
	"      --query-nearest    condition the query slot on the nearest neighbour's\n"
	"                         embedding instead of 'emb' (an image embedding for\n"
	"                         a text prompt: not the paper's; see diffuse(1))\n"
	"  -h, --help             show this help\n"
	"      --version          show the version\n"
	"\n"
	"Examples:\n"
	"  img-read photos/ | clip-embed --image -m clip.safetensors \\\n"
	"    | knn-query search --exclude-self -i index | vq-encode -m vq.safetensors \\\n"
	"    > train.ts\n"
	"  diffuse train -m dif.safetensors --codes 1024 --steps 100000 train.ts\n"
	"  echo 'a red car' | clip-embed --text -m clip.safetensors | knn-query search \\\n"
	"    -i index | diffuse sample -m dif.safetensors --guidance 8 \\\n"
	"    | vq-decode -m vq.safetensors | img-write -o out/\n";

enum {
	OPT_BACKBONE = 256, OPT_NO_KNN, OPT_BACKEND, OPT_CODES, OPT_DEPTH, OPT_WIDTH, OPT_HEADS, OPT_TSTEPS,
	OPT_COND_ATTN, OPT_EMA, OPT_COND_DROP, OPT_AUX, OPT_TRUNC, OPT_GUIDANCE, OPT_KNN_MEAN, OPT_QUERY_NEAREST,
	OPT_QUERY_NOISE,
};

struct options {
	bool training; /* train, not sample */
	const char *model;
	bool no_knn, use_ema, cond_self_attn, knn_mean, query_nearest;
	int k; /* -1: default */
	int batch, codes, depth, width, heads, T;
	int64_t steps;
	struct nn_train_options run; /* --seed also samples */
	struct diffuse_train_config train;
	float truncation, guidance;
	char **inputs;
	int ninputs;
};

static void parse_options(int argc, char **argv, struct options *o, bool train)
{
	struct option opts[] = {
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { "model", 1, 0, 'm' }, { "batch", 1, 0, 'b' },
		{ "threads", 1, 0, 't' }, { "neighbours", 1, 0, 'k' }, { "steps", 1, 0, 's' },
		{ "backbone", 1, 0, OPT_BACKBONE }, { "no-knn", 0, 0, OPT_NO_KNN }, { "backend", 1, 0, OPT_BACKEND },
		{ "codes", 1, 0, OPT_CODES }, { "depth", 1, 0, OPT_DEPTH }, { "width", 1, 0, OPT_WIDTH },
		{ "heads", 1, 0, OPT_HEADS }, { "steps-diffusion", 1, 0, OPT_TSTEPS },
		{ "cond-self-attn", 0, 0, OPT_COND_ATTN }, { "ema", 0, 0, OPT_EMA }, { "cond-drop", 1, 0, OPT_COND_DROP },
		{ "aux-weight", 1, 0, OPT_AUX }, { "truncation", 1, 0, OPT_TRUNC }, { "guidance", 1, 0, OPT_GUIDANCE },
		{ "cond-knn-mean", 0, 0, OPT_KNN_MEAN }, { "query-nearest", 0, 0, OPT_QUERY_NEAREST },
		{ "query-noise", 1, 0, OPT_QUERY_NOISE }, NN_TRAIN_LONGOPTS, NN_TRAIN_LONGOPT_LOG, { 0 },
	};
	*o = (struct options){
		.k = -1, .batch = 16, .depth = 12, .width = 512, .heads = 8, .T = 100, .steps = -1,
		.train = diffuse_train_defaults(), .truncation = 0.86f, .guidance = 1, .training = train,
	};
	/* train: --ema DECAY; sample: --ema (use the EMA weights) */
	for (struct option *p = opts; p->name; p++)
		if (p->val == OPT_EMA)
			p->has_arg = train;
	struct nn_train_options *run = &o->run;
	nn_train_options_defaults(run);
	run->buffer = 256;
	run->save_every = 1000;
	run->progress_every = 100;
	run->optim.lr = 4.5e-4f;
	run->optim.beta1 = 0.9f;
	run->optim.beta2 = 0.96f;
	run->optim.weight_decay = 0.045f;
	run->optim.ema_decay = 0.99f;
	int c;
	while ((c = getopt_long(argc, argv, "hVm:b:t:k:s:", opts, NULL)) != -1) {
		if (tool_common_option(c, help) || nn_train_option(c, optarg, run))
			continue;
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'b': o->batch = (int)parse_int_option("--batch", optarg, 1, 1 << 16); break;
		case 't': omp_set_num_threads((int)parse_int_option("--threads", optarg, 1, 1024)); break;
		case 'k': o->k = (int)parse_int_option("-k", optarg, 0, 1 << 16); break;
		case 's': o->steps = parse_int_option("--steps", optarg, 1, INT64_MAX / 4); break;
		case OPT_BACKBONE:
			if (strcmp(optarg, "discrete"))
				usage_error("--backbone: only 'discrete' is implemented, not '%s'", optarg);
			break;
		case OPT_NO_KNN: o->no_knn = true; break;
		case OPT_BACKEND:
			if (nn_use_backend(optarg) < 0)
				usage_error("--backend: %s", error_message());
			break;
		case OPT_CODES: o->codes = (int)parse_int_option("--codes", optarg, 1, 1 << 20); break;
		case OPT_DEPTH: o->depth = (int)parse_int_option("--depth", optarg, 1, 1024); break;
		case OPT_WIDTH: o->width = (int)parse_int_option("--width", optarg, 1, 1 << 16); break;
		case OPT_HEADS: o->heads = (int)parse_int_option("--heads", optarg, 1, 1024); break;
		case OPT_TSTEPS: o->T = (int)parse_int_option("--steps-diffusion", optarg, 1, 100000); break;
		case OPT_COND_ATTN: o->cond_self_attn = true; break;
		case OPT_KNN_MEAN: o->knn_mean = true; break;
		case OPT_QUERY_NEAREST: o->query_nearest = true; break;
		case OPT_EMA:
			if (train)
				run->optim.ema_decay = (float)parse_float_range("--ema", optarg, 0, 0.999999);
			else
				o->use_ema = true;
			break;
		case OPT_COND_DROP: o->train.cond_drop = (float)parse_float_range("--cond-drop", optarg, 0, 1); break;
		case OPT_QUERY_NOISE:
			o->train.query_noise = (float)parse_float_range("--query-noise", optarg, 0, 1e3);
			break;
		case OPT_AUX: o->train.loss.aux_weight = (float)parse_float_range("--aux-weight", optarg, 0, 1e6); break;
		case OPT_TRUNC: o->truncation = (float)parse_float_range("--truncation", optarg, 1e-6, 1); break;
		case OPT_GUIDANCE: o->guidance = (float)parse_float_range("--guidance", optarg, 0, 1e6); break;
		default: usage_error("unknown option");
		}
	}
	if (!o->model)
		usage_error("--model PATH is required");
	o->inputs = argv + optind;
	o->ninputs = argc - optind;
	if (!o->training) {
		if (o->train.query_noise > 0)
			usage_error("--query-noise is an option of diffuse train");
		return;
	}
	if (o->query_nearest)
		usage_error("--query-nearest is an option of diffuse sample");
	if (o->steps < 0)
		o->steps = 10000;
	if (!run->resume && !o->codes)
		usage_error("--codes K is required to start a run");
	nn_train_options_finish(run, o->steps, 10);
	o->train.seed = run->seed;
}

/* ---- train ---- */

static int check_training_record(void *ctx, struct record *r)
{
	return diffuse_record_check(ctx, r, 1);
}

static struct dtx_config config_from_options(const struct options *o, const struct diffuse_record_spec *spec)
{
	struct dtx_config c = {
		.K = o->codes, .h = spec->h, .w = spec->w, .width = o->width, .depth = o->depth, .heads = o->heads,
		.mlp_hidden = 4 * o->width, .cond_dim = spec->D, .cond_slots = diffuse_cond_slots(spec),
		.cond_self_attn = o->cond_self_attn, .cond_knn_mean = spec->knn_mean ? spec->k : 0, .T = o->T,
	};
	if (dtx_config_check(&c) < 0)
		die("%s", error_message());
	return c;
}

/* The spec of records for a model trained (or to be trained) with c. */
static struct diffuse_record_spec spec_from_config(const struct dtx_config *c)
{
	return (struct diffuse_record_spec){ .h = c->h, .w = c->w, .K = c->K, .D = c->cond_dim,
	                                     .k = c->cond_knn_mean ? c->cond_knn_mean :
	                                          c->cond_slots > 1 ? c->cond_slots - 1 : -1,
	                                     .tokens = 1, .knn_exact = 1, .knn_mean = c->cond_knn_mean > 0 };
}

struct report {
	double loss_sum;
	int64_t n;
	double start;
	int64_t start_step;
	FILE *log;
};

static void report_print(struct report *r, const struct diffuse_trainer *t, const struct options *o)
{
	int64_t step = t->opt.step;
	double now = omp_get_wtime(), rate = 0;
	if (step > r->start_step && now > r->start)
		rate = (double)(step - r->start_step) / (now - r->start);
	double loss = r->n ? r->loss_sum / (double)r->n : NAN;
	fprintf(stderr, "%s: step %lld/%lld: loss %.4f, lr %.3g, %.2f steps/s", tool_name, (long long)step,
	        (long long)o->steps, loss, t->opt.last_lr, rate);
	if (rate > 0 && step < o->steps) {
		long long eta = (long long)((double)(o->steps - step) / rate);
		fprintf(stderr, ", ETA %lld:%02lld:%02lld", eta / 3600, eta / 60 % 60, eta % 60);
	}
	fputc('\n', stderr);
	if (r->log && r->n) {
		fprintf(r->log, "{\"step\": %lld, \"loss\": %.6g, \"lr\": %.6g, \"steps_per_s\": %.4g}\n", (long long)step,
		        loss, t->opt.last_lr, rate);
		fflush(r->log);
	}
	r->loss_sum = 0;
	r->n = 0;
}

/* The training options that the optimiser state does not record but an
 * exact resume depends on, as a JSON member of the weights' "config". */
static void train_options_json(const struct options *o, char *buf, size_t size)
{
	/* query_noise only when set: runs without it keep their bytes */
	char noise[64] = "";
	if (o->train.query_noise > 0)
		snprintf(noise, sizeof noise, ", \"query_noise\": %.9g", o->train.query_noise);
	snprintf(buf, size, "\"train\": {\"batch\": %d, \"buffer\": %d, \"k\": %d, \"no_knn\": %d, "
	         "\"cond_drop\": %.9g, \"aux_weight\": %.9g%s}", o->batch, o->run.buffer, o->k, o->no_knn,
	         o->train.cond_drop, o->train.loss.aux_weight, noise);
}

static void save(const struct diffuse_trainer *t, const struct options *o, const struct record_shuffle *sh)
{
	struct nn_train_position pos = { .rng_seed = t->cfg.seed, .rng_offset = (uint64_t)t->opt.step,
	                                 .data_pos = sh->draws };
	char train[512];
	train_options_json(o, train, sizeof train);
	char *json = nn_train_config_json(dtx_config_json(&t->m->cfg), train);
	if (nn_checkpoint_save(o->model, &t->m->params, &t->opt, &pos, json) < 0)
		die("%s", error_message());
	free(json);
}

/* A resumed run must use the options the run was started with. */
static void check_resume_options(const struct options *o)
{
	struct st_file *f = st_open(o->model);
	if (!f)
		die("%s", error_message());
	char train[512];
	train_options_json(o, train, sizeof train);
	nn_train_check_resume(o->model, st_metadata(f, "config"), train,
	                      "--batch, --buffer, -k, --no-knn, --cond-drop, --query-noise or --aux-weight");
	st_close(f);
}

static int run_train(int argc, char **argv)
{
	struct options opts, *o = &opts;
	parse_options(argc, argv, o, true);
	struct dtx m;
	struct diffuse_trainer t;
	/* k 0: as many neighbours as the first record has */
	struct diffuse_record_spec spec = { .K = o->codes, .k = o->no_knn || o->k == 0 ? -1 : o->k < 0 ? 0 : o->k,
	                                    .tokens = 1, .knn_exact = 1, .knn_mean = o->knn_mean };
	int64_t resume_draws = 0;
	if (o->run.resume) {
		check_resume_options(o);
		if (dtx_load(&m, o->model, 1) < 0)
			die("%s", error_message());
		if (o->codes && o->codes != m.cfg.K)
			die("%s: --codes %d differs from the checkpoint's %d", o->model, o->codes, m.cfg.K);
		spec = spec_from_config(&m.cfg);
		if (diffuse_trainer_init(&t, &m, &o->train, &o->run.optim) < 0)
			die("%s", error_message());
		struct nn_train_position pos;
		if (nn_checkpoint_load(o->model, &m.params, &t.opt, &pos, 0) < 0)
			nn_train_resume_failed();
		t.cfg.seed = pos.rng_seed;
		resume_draws = pos.data_pos;
	}
	struct record_cycle src;
	struct record_shuffle sh;
	if (record_cycle_open(&src, o->inputs, o->ninputs, check_training_record, &spec, "training", "diffuse") < 0 ||
	    record_shuffle_open(&sh, &src, o->run.buffer, o->run.resume ? t.cfg.seed : o->run.seed) < 0 ||
	    record_shuffle_skip(&sh, resume_draws) < 0)
		die("%s", error_message());
	if (!o->run.resume) {
		struct dtx_config c = config_from_options(o, &spec);
		dtx_init(&m, &c, 1);
		dtx_init_random(&m, o->run.seed);
		if (diffuse_trainer_init(&t, &m, &o->train, &o->run.optim) < 0)
			die("%s", error_message());
	}
	const struct dtx_config *c = &m.cfg;
	int B = o->batch, S = c->cond_slots, L = c->h * c->w;
	fprintf(stderr, "%s: %dx%d tokens, %d codes, condition %d x %d, %d blocks of width %d, %.2fM parameters, "
	        "batch %d%s\n", tool_name, c->h, c->w, c->K, S, c->cond_dim, c->depth, c->width,
	        (double)m.params.total / 1e6, B, o->run.resume ? ", resumed" : "");

	struct report r = { .start = omp_get_wtime(), .start_step = t.opt.step };
	if (o->run.log && !(r.log = fopen(o->run.log, "a")))
		die("%s: cannot open: %m", o->run.log);
	int32_t *x0 = xmalloc((size_t)B * L * sizeof *x0);
	float *cond = xmalloc((size_t)B * S * c->cond_dim * sizeof *cond);
	uint8_t *valid = xmalloc((size_t)B * S);
	struct record drawn = RECORD_INIT;
	int64_t this_run = 0, saved_at = t.opt.step;
	while (nn_train_more(&o->run, t.opt.step, o->steps, this_run)) {
		for (int b = 0; b < B; b++) {
			if (record_shuffle_draw(&sh, &drawn, NULL) < 0)
				die("%s", error_message());
			memcpy(x0 + (size_t)b * L, record_tensor(&drawn, "tokens")->data, (size_t)L * sizeof *x0);
			diffuse_cond_from_record(&spec, &drawn, cond + (size_t)b * S * c->cond_dim, valid + (size_t)b * S);
		}
		float loss;
		int rc = diffuse_trainer_step(&t, x0, cond, valid, B, S, &loss);
		if (rc < 0)
			die("%s", error_message());
		if (rc == NN_STEP_SKIPPED)
			warnx_tool("step %lld: the gradient is not finite; step skipped", (long long)t.opt.step);
		r.loss_sum += loss;
		r.n++;
		this_run++;
		if (nn_train_due(o->run.progress_every, t.opt.step))
			report_print(&r, &t, o);
		if (nn_train_due(o->run.save_every, t.opt.step)) {
			save(&t, o, &sh);
			saved_at = t.opt.step;
		}
	}
	if (saved_at != t.opt.step || this_run == 0)
		save(&t, o, &sh);
	if (r.n > 0 || this_run == 0)
		report_print(&r, &t, o);
	if (r.log)
		fclose(r.log);
	record_free(&drawn);
	free(x0);
	free(cond);
	free(valid);
	diffuse_trainer_free(&t);
	dtx_free(&m);
	record_shuffle_close(&sh);
	record_cycle_close(&src);
	return EXIT_OK;
}

/* ---- sample ---- */

struct sampler_ctx {
	struct diffuse_sampler s;
	struct diffuse_record_spec spec;
	int S;
	int64_t next_row;
	float *cond;
	uint8_t *valid;
	int32_t *tokens;
	int64_t *row_id;
	size_t cap_cond, cap_valid, cap_tokens, cap_rows;
};

static int check_sample_record(void *ctx, const struct record *r, int size[2])
{
	struct sampler_ctx *e = ctx;
	size[0] = size[1] = 0;
	return diffuse_record_check(&e->spec, (struct record *)r, 0);
}

static int sample_batch(void *ctx, struct record_batch *b)
{
	struct sampler_ctx *e = ctx;
	const struct dtx_config *c = &e->s.m->cfg;
	int n = b->n, S = e->S, L = c->h * c->w;
	e->cond = batch_buffer_grow(e->cond, &e->cap_cond, (size_t)n * S * c->cond_dim, sizeof *e->cond);
	e->valid = batch_buffer_grow(e->valid, &e->cap_valid, (size_t)n * S, 1);
	e->tokens = batch_buffer_grow(e->tokens, &e->cap_tokens, (size_t)n * L, sizeof *e->tokens);
	e->row_id = batch_buffer_grow(e->row_id, &e->cap_rows, (size_t)n, sizeof *e->row_id);
	for (int i = 0; i < n; i++) {
		diffuse_cond_from_record(&e->spec, &b->recs[i], e->cond + (size_t)i * S * c->cond_dim,
		                         e->valid + (size_t)i * S);
		e->row_id[i] = e->next_row++;
	}
	if (diffuse_sample(&e->s, e->cond, e->valid, n, S, e->row_id, e->tokens) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		int64_t grid[2] = { c->h, c->w };
		struct tensor *t = record_new_tensor(&b->recs[i], "tokens", DT_INT32, 2, grid);
		memcpy(t->data, e->tokens + (size_t)i * L, t->nbytes);
	}
	return 0;
}

static int run_sample(int argc, char **argv)
{
	struct options opts, *o = &opts;
	parse_options(argc, argv, o, false);
	struct dtx m;
	if (dtx_load(&m, o->model, 0) < 0)
		die("%s", error_message());
	if (o->use_ema && diffuse_load_ema(&m, o->model) < 0)
		die("%s", error_message());
	if (o->steps > m.cfg.T)
		die("--steps %lld: the model has only %d diffusion steps", (long long)o->steps, m.cfg.T);
	struct sampler_ctx e = { .spec = spec_from_config(&m.cfg) };
	e.spec.tokens = 0;
	e.spec.knn_exact = 0;
	e.spec.query_nearest = o->query_nearest;
	if (o->no_knn)
		e.spec.k = -1;
	else if (o->k >= 0)
		e.spec.k = o->k ? o->k : -1;
	e.S = diffuse_cond_slots(&e.spec);
	struct diffuse_sample_config sc = { .seed = o->run.seed, .truncation = o->truncation, .guidance = o->guidance,
	                                    .steps = o->steps > 0 ? (int)o->steps : 0 };
	if (diffuse_sampler_init(&e.s, &m, &sc) < 0)
		die("%s", error_message());

	if (record_batch_filter(o->batch, false, check_sample_record, sample_batch, &e, o->ninputs, o->inputs) < 0)
		die("%s", error_message());
	diffuse_sampler_free(&e.s);
	free(e.cond);
	free(e.valid);
	free(e.tokens);
	free(e.row_id);
	dtx_free(&m);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct tool_command commands[] = { { "train", run_train }, { "sample", run_sample }, { 0 } };
	tool_init("diffuse", argc, argv, help);
	return tool_run_command(argc, argv, commands, help);
}
