#include "nn/train_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"

/* Rates and weight decay: non-negative, and bounded so that a typo (5e4
 * for 5e-4) is caught. */
#define MAX_RATE 1e3

void nn_train_options_defaults(struct nn_train_options *t)
{
	*t = (struct nn_train_options){ .optim = nn_optim_defaults(), .seed = 1 };
}

int nn_train_option(int c, const char *arg, struct nn_train_options *t)
{
	switch (c) {
	case NN_TRAIN_OPT_LR: t->optim.lr = (float)parse_float_range("--lr", arg, 0, MAX_RATE); break;
	case NN_TRAIN_OPT_MIN_LR:
		t->optim.min_lr = (float)parse_float_range("--min-lr", arg, 0, MAX_RATE);
		t->min_lr_set = true;
		break;
	case NN_TRAIN_OPT_WARMUP:
		t->optim.warmup_steps = parse_int_option("--warmup", arg, 0, INT64_MAX / 4);
		t->warmup_set = true;
		break;
	case NN_TRAIN_OPT_WEIGHT_DECAY:
		t->optim.weight_decay = (float)parse_float_range("--weight-decay", arg, 0, MAX_RATE);
		break;
	case NN_TRAIN_OPT_CLIP_GRAD: t->optim.clip_norm = (float)parse_float_range("--clip-grad", arg, 0, 1e6); break;
	case NN_TRAIN_OPT_SEED: t->seed = (uint64_t)parse_int_option("--seed", arg, 0, INT64_MAX); break;
	case NN_TRAIN_OPT_BUFFER: t->buffer = (int)parse_int_option("--buffer", arg, 1, 1 << 24); break;
	case NN_TRAIN_OPT_VAL: t->val = arg; break;
	case NN_TRAIN_OPT_VAL_COUNT: t->val_count = (int)parse_int_option("--val-count", arg, 1, 1 << 24); break;
	case NN_TRAIN_OPT_SAVE_EVERY: t->save_every = parse_int_option("--save-every", arg, 0, INT64_MAX); break;
	case NN_TRAIN_OPT_PROGRESS_EVERY:
		t->progress_every = parse_int_option("--progress-every", arg, 0, INT64_MAX);
		break;
	case NN_TRAIN_OPT_LOG: t->log = arg; break;
	case NN_TRAIN_OPT_RESUME: t->resume = true; break;
	case NN_TRAIN_OPT_STOP_AFTER: t->stop_after = parse_int_option("--stop-after", arg, 1, INT64_MAX); break;
	default: return 0;
	}
	return 1;
}

void nn_train_options_finish(struct nn_train_options *t, int64_t steps, int min_lr_divisor)
{
	struct nn_optim_config *o = &t->optim;
	if (!t->min_lr_set)
		o->min_lr = min_lr_divisor ? o->lr / (float)min_lr_divisor : 0;
	if (!t->warmup_set)
		o->warmup_steps = nn_default_warmup(steps);
	if (o->warmup_steps >= steps)
		usage_error("--warmup %lld must be shorter than --steps %lld", (long long)o->warmup_steps,
		            (long long)steps);
	if (o->min_lr > o->lr)
		usage_error("--min-lr must not exceed --lr");
	o->decay_steps = steps;
}

bool nn_train_more(const struct nn_train_options *t, int64_t step, int64_t steps, int64_t this_run)
{
	return step < steps && (!t->stop_after || this_run < t->stop_after);
}

bool nn_train_due(int64_t every, int64_t step)
{
	return every && step % every == 0;
}

char *nn_train_config_json(char *model, const char *train)
{
	char *json = xmalloc(strlen(model) + strlen(train) + 8), *end = strrchr(model, '}');
	*end = 0;
	sprintf(json, "%s, %s}", model, train);
	free(model);
	return json;
}

void nn_train_check_resume(const char *path, const char *config, const char *train, const char *options)
{
	if (!config || !strstr(config, train))
		die("%s: %s differ from the run's (%s)", path, options,
		    config && strstr(config, "\"train\"") ? strstr(config, "\"train\"") : "not recorded");
}

noreturn void nn_train_resume_failed(void)
{
	die("%s%s", error_message(), strstr(error_message(), "trained with") ?
	    " (a resumed run needs the options it was started with)" : "");
}
