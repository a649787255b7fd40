/* clip-score: the CLIP cosine between each record's image and its text. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "clip/clip_encode_batch.h"
#include "clip/clip_model.h"
#include "clip/clip_tool.h"
#include "core/tool.h"
#include "stream/record_batch.h"
#include "stream/stream.h"

static const char help[] =
	"Usage: clip-score -m CLIP [-v VOCAB] [--field NAME] [--batch N] [FILE...]\n"
	"Adds to each record the cosine similarity between the CLIP embeddings of its\n"
	"'image' (uint8 [H,W,C], as clip-embed --image takes it) and its 'text' (a\n"
	"string): a float32 scalar in [-1, 1], NOT multiplied by 100 as some papers\n"
	"report it. Every other field passes through. Reads stdin by default, files\n"
	"one after another.\n"
	"\n"
	"Options:\n"
	"  -m, --model PATH     CLIP weights (.safetensors), as clip-embed takes them\n"
	"  -c, --config FILE    HF config.json or open_clip config (see clip-embed)\n"
	"  -v, --vocab PATH     BPE vocabulary (default: the model's own, else\n"
	"                       $KNND_CLIP_VOCAB, else one beside the model)\n"
	"  -f, --field NAME     the field written (default clip_score)\n"
	"  -b, --batch N        records per forward pass (default 32); memory is\n"
	"                       bounded by this, whatever the stream's length\n"
	"  -t, --threads N      CPU threads (default: OpenMP's, all cores)\n"
	"      --backend NAME   cpu (default), cuda or auto\n"
	"  -p, --progress       progress on stderr every few seconds (default: when\n"
	"                       stderr is a terminal)\n"
	"  -h, --help           show this help\n"
	"      --version        show the version\n"
	"\n"
	"Example:\n"
	"  diffuse sample ... | vq-decode -m vqgan.safetensors |\n"
	"    clip-score -m judge-clip.safetensors | ts-mean clip_score\n";

struct options {
	struct clip_tool_options clip;
	const char *field;
};

/* The work of one run, shared by the batch callback. */
struct scorer {
	const struct options *o;
	struct clip_model model;
	struct clip_tokenizer *tok;
	float *pixels;       /* [batch, 3, R, R] */
	int32_t *ids;        /* [batch, context] */
	float *image_emb, *text_emb; /* [batch, embed] */
};

static int score_batch(void *ctx, struct record_batch *b)
{
	struct scorer *s = ctx;
	int E = s->model.cfg.embed_dim;
	if (clip_encode_image_batch(&s->model, b, "image", s->pixels, s->image_emb) < 0)
		return -1;
	if (clip_encode_text_batch(&s->model, s->tok, b, "text", s->ids, s->text_emb) < 0)
		return -1;
	clip_normalize(s->image_emb, b->n, E);
	clip_normalize(s->text_emb, b->n, E);
	for (int i = 0; i < b->n; i++) {
		const float *x = s->image_emb + (size_t)i * E, *y = s->text_emb + (size_t)i * E;
		double dot = 0;
		for (int j = 0; j < E; j++)
			dot += (double)x[j] * y[j];
		record_set_float(&b->recs[i], s->o->field, (float)dot);
		record_get(&b->recs[i], s->o->field)->is_f32 = true;
	}
	return 0;
}

static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { "field", 1, 0, 'f' }, CLIP_TOOL_LONGOPTS, { 0 },
	};
	*o = (struct options){ .field = "clip_score" };
	clip_tool_options_defaults(&o->clip);
	int c;
	while ((c = getopt_long(argc, argv, "hVm:c:v:f:b:t:p", opts, NULL)) != -1) {
		if (tool_common_option(c, help) || clip_tool_option(c, optarg, &o->clip))
			continue;
		switch (c) {
		case 'f': o->field = optarg; break;
		default: usage_error("unknown option");
		}
	}
	clip_tool_options_finish(&o->clip);
	if (!*o->field)
		usage_error("--field: empty name");
}

int main(int argc, char **argv)
{
	tool_init("clip-score", argc, argv, help);
	struct options o;
	parse_options(argc, argv, &o);
	struct scorer s = { .o = &o };
	clip_tool_load(&o.clip, &s.model, &s.tok);
	const struct clip_config *c = &s.model.cfg;
	int batch = o.clip.batch;
	s.pixels = xmalloc((size_t)batch * 3 * c->resolution * c->resolution * sizeof *s.pixels);
	s.ids = xmalloc((size_t)batch * c->context * sizeof *s.ids);
	s.image_emb = xmalloc((size_t)batch * c->embed_dim * sizeof *s.image_emb);
	s.text_emb = xmalloc((size_t)batch * c->embed_dim * sizeof *s.text_emb);

	if (record_batch_filter(batch, o.clip.progress, NULL, score_batch, &s, argc - optind, argv + optind) < 0)
		die("%s", error_message());
	free(s.pixels);
	free(s.ids);
	free(s.image_emb);
	free(s.text_emb);
	clip_tokenizer_free(s.tok);
	clip_model_free(&s.model);
	return EXIT_OK;
}
