/* clip-embed: CLIP embeddings of image records or texts. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clip/clip_encode_batch.h"
#include "clip/clip_model.h"
#include "clip/clip_tool.h"
#include "core/tool.h"
#include "stream/record_batch.h"
#include "stream/stream.h"
#include "text/clip_tokenizer.h"

static const char help[] =
	"Usage: clip-embed --model PATH (--image | --text) [OPTION...] [FILE...]\n"
	"Adds CLIP embeddings to a stream (stdin by default, files one after another).\n"
	"\n"
	"  --image  reads image records: field 'image', uint8 [H,W,C] as decoded by\n"
	"           'img-read --keep-alpha' (C = 1, 2, 3 or 4; alpha is dropped, not\n"
	"           composited, as CLIP's reference does; a 'mode' of P or 1 resizes\n"
	"           with NEAREST, as Pillow does). Adds 'emb', float32 [d],\n"
	"           L2-normalised; every other field passes through.\n"
	"  --text   reads texts: records with a string field 'text' (other fields pass\n"
	"           through), or plain UTF-8 text, one text per line, when the input\n"
	"           does not start like a tensor stream (a msgpack map). Writes a record\n"
	"           per text with 'text' and 'emb'.\n"
	"\n"
	"Options:\n"
	"  -m, --model PATH        CLIP weights (.safetensors), OpenAI/open_clip or Hugging\n"
	"                          Face naming, F32/F16/BF16\n"
	"  -c, --config FILE       HF config.json or open_clip config for the head counts and\n"
	"                          activation (default: the checkpoint's metadata, then\n"
	"                          open_clip_config.json or, for HF naming, config.json\n"
	"                          beside the model, then heads = width/64)\n"
	"      --heads-text N      text attention heads (overrides any config)\n"
	"      --heads-vision N    vision attention heads (overrides any config)\n"
	"  -v, --vocab PATH        BPE vocabulary for --text: bpe_simple_vocab_16e6.txt.gz, a\n"
	"                          merges file learned by clip-train, or HF vocab.json\n"
	"                          (merges.txt beside it) or their directory (default: the\n"
	"                          vocabulary stored in the model by clip-train, else\n"
	"                          $KNND_CLIP_VOCAB, else bpe_simple_vocab_16e6.txt.gz or\n"
	"                          vocab.json beside the model)\n"
	"  -l, --lines             --text input is lines of text, whatever its first byte\n"
	"  -r, --keep-raw          also write 'emb_raw', the projection before normalising\n"
	"  -b, --batch N           items per forward pass (default 32); memory is bounded\n"
	"                          by this, whatever the stream's length\n"
	"  -t, --threads N         CPU threads (default: OpenMP's, all cores)\n"
	"      --backend NAME      cpu (default), cuda or auto\n"
	"  -p, --progress          progress on stderr every few seconds (default: when\n"
	"                          stderr is a terminal)\n"
	"  -h, --help              show this help\n"
	"      --version           show the version\n"
	"\n"
	"Examples:\n"
	"  img-read --keep-alpha photos/*.png | clip-embed -m ViT-B-32.safetensors --image > emb.ts\n"
	"  printf 'a dog\\na cat\\n' | clip-embed -m ViT-B-32.safetensors --text | ts-cat\n";

enum { OPT_HEADS_TEXT = 256, OPT_HEADS_VISION };

struct options {
	struct clip_tool_options clip;
	bool image, text, lines, keep_raw;
};

/* The work of one run, shared by the batch callbacks. */
struct embedder {
	const struct options *o;
	struct clip_model model;
	struct clip_tokenizer *tok;
	float *inputs;   /* pixels [batch, 3, R, R] */
	int32_t *ids;    /* [batch, context] */
	float *features; /* [batch, embed] */
};

/* ---- the batch ---- */

static void set_embedding(struct record *r, const char *key, const float *x, int d)
{
	int64_t shape[1] = { d };
	struct tensor *t = record_new_tensor(r, key, DT_FLOAT32, 1, shape);
	memcpy(t->data, x, (size_t)d * sizeof *x);
}

/* Adds the embeddings to the batch's records. */
static int embed_batch(void *ctx, struct record_batch *b)
{
	struct embedder *e = ctx;
	int E = e->model.cfg.embed_dim;
	int rc = e->o->image ? clip_encode_image_batch(&e->model, b, "image", e->inputs, e->features)
	                     : clip_encode_text_batch(&e->model, e->tok, b, "text", e->ids, e->features);
	if (rc < 0)
		return -1;
	for (int i = 0; i < b->n; i++) {
		float *f = e->features + (size_t)i * E;
		if (e->o->keep_raw)
			set_embedding(&b->recs[i], "emb_raw", f, E);
		clip_normalize(f, 1, E);
		set_embedding(&b->recs[i], "emb", f, E);
	}
	return 0;
}

/* ---- text inputs ---- */

/* A record {text} per line of fd, which the caller keeps; first is a byte
 * already read from it, or EOF. */
static int read_lines(struct record_batch *b, int fd, const char *name, int first)
{
	FILE *fp = fdopen(dup(fd), "r");
	if (!fp || (first != EOF && ungetc(first, fp) == EOF)) {
		int rc = errorf("%s: %s", name, strerror(errno));
		if (fp)
			fclose(fp);
		return rc;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;
	for (long long lineno = 1; rc == 0 && (len = getline(&line, &cap, fp)) > 0; lineno++) {
		if (line[len - 1] == '\n')
			len--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		record_set_strn(record_batch_slot(b), "text", line, (size_t)len);
		rc = record_batch_push(b, (struct record_origin){ name, "line", lineno });
	}
	if (rc == 0 && ferror(fp))
		rc = errorf("%s: read error: %s", name, strerror(errno));
	free(line);
	fclose(fp);
	return rc;
}

static bool starts_record(unsigned char b)
{
	return (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf; /* fixmap, map16, map32 */
}

/* The texts of one input: records, or lines when it does not start like a
 * tensor stream (or when lines is set). path must outlive the batch. */
static int read_texts(struct record_batch *b, const char *path, bool lines)
{
	bool is_stdin = !strcmp(path, "-");
	const char *name = is_stdin ? "stdin" : path;
	int fd = is_stdin ? 0 : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errorf("%s: %s", path, strerror(errno));

	unsigned char first = 0;
	ssize_t got = 0;
	if (!lines) {
		do
			got = read(fd, &first, 1);
		while (got < 0 && errno == EINTR);
	}
	/* Sniffing the format costs the first byte: the stream reader is handed
	 * it back, and a line reader gets it through ungetc. */
	int rc;
	if (got < 0) {
		rc = errorf("%s: read error: %s", name, strerror(errno));
	} else if (got == 1 && starts_record(first)) {
		struct ts_reader *rd = ts_open_fd_prefixed(fd, name, &first, 1);
		rc = record_batch_read(b, rd, name);
		ts_close(rd);
	} else {
		rc = read_lines(b, fd, name, got == 1 ? first : EOF);
	}
	if (!is_stdin)
		close(fd);
	return rc;
}

/* Every text input, one after another ("-" or none: stdin). */
static int read_text_files(struct record_batch *b, int nfiles, char **files, bool lines)
{
	if (nfiles == 0)
		return read_texts(b, "-", lines);
	for (int i = 0; i < nfiles; i++)
		if (read_texts(b, files[i], lines) < 0)
			return -1;
	return 0;
}

/* ---- setup ---- */

static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' },   { "version", 0, 0, 'V' },  { "image", 0, 0, 'i' },
		{ "text", 0, 0, 'T' },   { "lines", 0, 0, 'l' },    { "keep-raw", 0, 0, 'r' },
		CLIP_TOOL_LONGOPTS,      { "heads-text", 1, 0, OPT_HEADS_TEXT },
		{ "heads-vision", 1, 0, OPT_HEADS_VISION }, { 0 },
	};
	*o = (struct options){ 0 };
	clip_tool_options_defaults(&o->clip);
	int c;
	while ((c = getopt_long(argc, argv, "hVm:c:v:lrb:t:p", opts, NULL)) != -1) {
		if (tool_common_option(c, help) || clip_tool_option(c, optarg, &o->clip))
			continue;
		switch (c) {
		case 'i': o->image = true; break;
		case 'T': o->text = true; break;
		case 'l': o->lines = true; break;
		case 'r': o->keep_raw = true; break;
		case OPT_HEADS_TEXT:
			o->clip.cfg.heads_text = (int)parse_int_option("--heads-text", optarg, 1, 4096);
			break;
		case OPT_HEADS_VISION:
			o->clip.cfg.heads_vision = (int)parse_int_option("--heads-vision", optarg, 1, 4096);
			break;
		default: usage_error("unknown option");
		}
	}
	clip_tool_options_finish(&o->clip);
	if (o->image == o->text)
		usage_error("give exactly one of --image and --text");
	if (o->lines && !o->text)
		usage_error("--lines goes with --text");
}

int main(int argc, char **argv)
{
	tool_init("clip-embed", argc, argv, help);
	struct options o;
	parse_options(argc, argv, &o);
	struct embedder e = { .o = &o };
	clip_tool_load(&o.clip, &e.model, o.text ? &e.tok : NULL);
	const struct clip_config *c = &e.model.cfg;
	int batch = o.clip.batch;
	e.features = xmalloc((size_t)batch * c->embed_dim * sizeof *e.features);
	if (o.image)
		e.inputs = xmalloc((size_t)batch * 3 * c->resolution * c->resolution * sizeof *e.inputs);
	else
		e.ids = xmalloc((size_t)batch * c->context * sizeof *e.ids);

	struct ts_writer *out = ts_writer_fd(1, "stdout");
	struct record_batch b;
	record_batch_init(&b, batch, out, o.clip.progress);
	b.run = embed_batch;
	b.ctx = &e;
	int nfiles = argc - optind;
	char **files = argv + optind;
	int rc = o.image ? record_batch_read_files(&b, nfiles, files) : read_text_files(&b, nfiles, files, o.lines);
	if (rc < 0 || record_batch_finish(&b) < 0 || ts_writer_close(out) < 0)
		die("%s", error_message());

	record_batch_free(&b);
	free(e.inputs);
	free(e.ids);
	free(e.features);
	if (e.tok)
		clip_tokenizer_free(e.tok);
	clip_model_free(&e.model);
	return EXIT_OK;
}
