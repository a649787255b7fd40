#include "clip/clip_tool.h"

#include <omp.h>
#include <unistd.h>

#include "clip/clip_encode_batch.h"
#include "core/tool.h"
#include "nn/ops.h"

void clip_tool_options_defaults(struct clip_tool_options *o)
{
	*o = (struct clip_tool_options){ .batch = 32, .backend = "cpu", .progress = isatty(2) };
}

int clip_tool_option(int c, const char *arg, struct clip_tool_options *o)
{
	switch (c) {
	case 'm': o->model = arg; break;
	case 'c': o->cfg.config_path = arg; break;
	case 'v': o->vocab = arg; break;
	case 'b': o->batch = (int)parse_int_option("--batch", arg, 1, 4096); break;
	case 't': o->threads = (int)parse_int_option("--threads", arg, 1, 1024); break;
	case 'p': o->progress = true; break;
	case CLIP_TOOL_OPT_BACKEND: o->backend = arg; break;
	default: return 0;
	}
	return 1;
}

void clip_tool_options_finish(const struct clip_tool_options *o)
{
	if (!o->model)
		usage_error("no model: give --model PATH");
}

void clip_tool_load(const struct clip_tool_options *o, struct clip_model *m, struct clip_tokenizer **tok)
{
	if (nn_use_backend(o->backend) < 0)
		usage_error("--backend: %s", error_message());
	if (o->threads)
		omp_set_num_threads(o->threads);
	if (clip_model_load(m, o->model, &o->cfg) < 0)
		die("%s", error_message());
	if (tok && !(*tok = clip_tokenizer_for_model(o->model, o->vocab, &m->cfg)))
		die("%s", error_message());
}
