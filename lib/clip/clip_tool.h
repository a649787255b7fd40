/* What the tools that run a CLIP model over a stream (clip-embed,
 * clip-score) share: the options that name the model and how to run it, and
 * the setup before the first record. One parser, so that both read them with
 * the same ranges and messages; each tool keeps its own options, short
 * options string and help text.
 *
 * Use: splice CLIP_TOOL_LONGOPTS into the getopt_long table,
 * clip_tool_options_defaults, then clip_tool_option from the getopt loop
 * (for -m -c -v -b -t -p and CLIP_TOOL_OPT_BACKEND), then
 * clip_tool_options_finish after it, and clip_tool_load to start. Like
 * tool.h's option parsers, these die: with a usage error on a bad option,
 * with the library's message on a model that does not load. */
#ifndef KNND_CLIP_CLIP_TOOL_H
#define KNND_CLIP_CLIP_TOOL_H

#include <stdbool.h>

#include "clip/clip_model.h"
#include "text/clip_tokenizer.h"

/* The getopt value of --backend, clear of the tools' own (from 256). */
enum { CLIP_TOOL_OPT_BACKEND = 0x200 };

/* The getopt_long entries of these options. A tool lists them after those
 * of its own that share a prefix with one and come first in its help
 * (--text before --threads): getopt names an ambiguous abbreviation's
 * possibilities in table order. */
#define CLIP_TOOL_LONGOPTS                                                                                   \
	{ "model", 1, 0, 'm' }, { "config", 1, 0, 'c' }, { "vocab", 1, 0, 'v' }, { "batch", 1, 0, 'b' },        \
		{ "threads", 1, 0, 't' }, { "progress", 0, 0, 'p' }, { "backend", 1, 0, CLIP_TOOL_OPT_BACKEND }

struct clip_tool_options {
	const char *model, *vocab, *backend;
	struct clip_config_options cfg;
	bool progress;
	int batch, threads;
};

/* batch 32, the cpu backend, progress when stderr is a terminal. */
void clip_tool_options_defaults(struct clip_tool_options *o);

/* Handles option c with argument arg; returns 1 if c was one of
 * -m -c -v -b -t -p or CLIP_TOOL_OPT_BACKEND, else 0. */
int clip_tool_option(int c, const char *arg, struct clip_tool_options *o);

/* After the options: a usage error if no model was given. */
void clip_tool_options_finish(const struct clip_tool_options *o);

/* Selects the backend and the thread count, loads the model into m and,
 * when tok is not NULL, the tokenizer for its text tower into *tok. */
void clip_tool_load(const struct clip_tool_options *o, struct clip_model *m, struct clip_tokenizer **tok);

#endif
