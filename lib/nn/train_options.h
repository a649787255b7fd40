/* The command-line options the trainers (clip-train, diffuse train,
 * vq-train, classify train) share: the optimiser's schedule, the seed, the
 * shuffle buffer, held-out data, reports, checkpoints and resuming. One
 * parser, so that every trainer reads them with the same ranges and
 * messages; each tool keeps its own defaults and help text.
 *
 * Use: splice NN_TRAIN_LONGOPTS (and the optional groups the tool has)
 * into the getopt_long table, set the defaults (nn_train_options_defaults,
 * then the tool's own values), call nn_train_option from the loop, and
 * nn_train_options_finish once the steps are known. Like tool.h's option
 * parsers, these die with a usage error on a bad value. */
#ifndef KNND_NN_TRAIN_OPTIONS_H
#define KNND_NN_TRAIN_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdnoreturn.h>

#include "nn/optim.h"

/* getopt values, clear of the tools' own (which count up from 256). */
enum {
	NN_TRAIN_OPT_LR = 0x200, NN_TRAIN_OPT_MIN_LR, NN_TRAIN_OPT_WARMUP, NN_TRAIN_OPT_WEIGHT_DECAY,
	NN_TRAIN_OPT_CLIP_GRAD, NN_TRAIN_OPT_SEED, NN_TRAIN_OPT_BUFFER, NN_TRAIN_OPT_VAL, NN_TRAIN_OPT_VAL_COUNT,
	NN_TRAIN_OPT_SAVE_EVERY, NN_TRAIN_OPT_PROGRESS_EVERY, NN_TRAIN_OPT_LOG, NN_TRAIN_OPT_RESUME,
	NN_TRAIN_OPT_STOP_AFTER, NN_TRAIN_OPT_FIRST_FREE,
};

/* What every trainer has. */
#define NN_TRAIN_LONGOPTS                                                                                      \
	{ "lr", 1, 0, NN_TRAIN_OPT_LR }, { "min-lr", 1, 0, NN_TRAIN_OPT_MIN_LR },                                 \
		{ "warmup", 1, 0, NN_TRAIN_OPT_WARMUP }, { "weight-decay", 1, 0, NN_TRAIN_OPT_WEIGHT_DECAY },     \
		{ "seed", 1, 0, NN_TRAIN_OPT_SEED }, { "buffer", 1, 0, NN_TRAIN_OPT_BUFFER },                     \
		{ "save-every", 1, 0, NN_TRAIN_OPT_SAVE_EVERY },                                                  \
		{ "progress-every", 1, 0, NN_TRAIN_OPT_PROGRESS_EVERY }, { "resume", 0, 0, NN_TRAIN_OPT_RESUME }, \
		{ "stop-after", 1, 0, NN_TRAIN_OPT_STOP_AFTER }
/* The groups only some have. */
#define NN_TRAIN_LONGOPT_CLIP_GRAD { "clip-grad", 1, 0, NN_TRAIN_OPT_CLIP_GRAD }
#define NN_TRAIN_LONGOPT_VAL { "val", 1, 0, NN_TRAIN_OPT_VAL }
#define NN_TRAIN_LONGOPT_VAL_COUNT { "val-count", 1, 0, NN_TRAIN_OPT_VAL_COUNT }
#define NN_TRAIN_LONGOPT_LOG { "log", 1, 0, NN_TRAIN_OPT_LOG }

struct nn_train_options {
	struct nn_optim_config optim; /* lr, min_lr, warmup_steps, weight_decay, clip_norm */
	bool min_lr_set, warmup_set;
	uint64_t seed;
	int buffer;          /* records in the shuffle buffer */
	const char *val;     /* held-out records, or NULL */
	int val_count;       /* use at most this many of them */
	int64_t save_every;  /* 0: only at the end */
	int64_t progress_every;
	const char *log;     /* JSON lines of the reports, or NULL */
	bool resume;
	int64_t stop_after;  /* steps of this run; 0: no limit */
};

/* nn_optim_defaults, seed 1, nothing else set: the tool fills in its own
 * defaults after this. */
void nn_train_options_defaults(struct nn_train_options *t);

/* Handles option c with argument arg; returns 1 if c was one of
 * NN_TRAIN_OPT_*, else 0. */
int nn_train_option(int c, const char *arg, struct nn_train_options *t);

/* After the options: a --min-lr not given is lr / min_lr_divisor (0 when
 * the divisor is 0), a --warmup not given is nn_default_warmup(steps), and
 * the cosine decays over steps. Dies with a usage error if the warm-up is
 * not shorter than the run or --min-lr exceeds --lr. */
void nn_train_options_finish(struct nn_train_options *t, int64_t steps, int min_lr_divisor);

/* ---- the run ---- */

/* Whether a run at step goes on: fewer than steps done, and fewer than
 * --stop-after steps (this_run) in this invocation. */
bool nn_train_more(const struct nn_train_options *t, int64_t step, int64_t steps, int64_t this_run);

/* Whether step is one to report or save at (--progress-every,
 * --save-every): a multiple of every, never when every is 0. */
bool nn_train_due(int64_t every, int64_t step);

/* ---- resuming ---- */

/* The checkpoint's "config": the model's JSON object (model, freed here)
 * with the member train ("\"train\": {...}") added, so that a resumed run
 * can check the options it depends on. */
char *nn_train_config_json(char *model, const char *train);

/* Dies unless config (a checkpoint's "config" metadata, or NULL) records
 * train: "PATH: OPTIONS differ from the run's (...)", options naming what
 * train holds ("--batch, --buffer or --shift"). */
void nn_train_check_resume(const char *path, const char *config, const char *train, const char *options);

/* Dies with the message of a checkpoint that did not load for resuming,
 * adding a hint when it was trained with other options. */
noreturn void nn_train_resume_failed(void);

#endif
