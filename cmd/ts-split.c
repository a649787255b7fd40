/* ts-split: split a stream into parts by a seeded hash of a key field. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic_file.h"
#include "core/tool.h"
#include "stream/key_split.h"
#include "stream/scalar_text.h"
#include "stream/stream.h"

static const char help[] =
	"Usage: ts-split --key FIELD [--seed N] -o FILE:WEIGHT -o FILE:WEIGHT... [FILE...]\n"
	"Split tensor streams (stdin by default) into parts: each record goes to one\n"
	"output, chosen by a hash of its key field and the seed alone, so a record\n"
	"stays in its part when the data grows or is reordered.\n"
	"\n"
	"  -k, --key FIELD         the key: a string or integer field every record has\n"
	"  -o, --output FILE:WEIGHT\n"
	"                          a part and its share (weights are normalised:\n"
	"                          0.4 and 0.6, or 2 and 3). FILE - is stdout (once)\n"
	"  -s, --seed N            seed of the hash (default 0)\n"
	"  -p, --progress          print each part's record count on stderr at the end\n"
	"  -h, --help              show this help\n"
	"      --version           show the version\n"
	"\n"
	"Each file appears whole when the input has been read, or not at all.\n"
	"\n"
	"Example:\n"
	"  ts-split --key id --seed 1 -o clip.ts:0.4 -o gen.ts:0.6 emoji.ts\n";

struct part {
	const char *path;
	struct atomic_file file; /* unused for stdout */
	struct ts_writer *out;
	uint64_t count;
};

/* "FILE:WEIGHT", split at the last ':' so that file names may hold one. */
static double parse_part(char *arg, struct part *p)
{
	char *colon = strrchr(arg, ':');
	if (!colon || colon == arg)
		usage_error("-o: '%s' is not FILE:WEIGHT", arg);
	*colon = 0;
	p->path = arg;
	return parse_float_option("-o weight", colon + 1);
}

static void open_part(struct part *p)
{
	if (!strcmp(p->path, "-")) {
		p->out = ts_writer_fd(1, "stdout");
		return;
	}
	if (atomic_open(&p->file, p->path) < 0)
		die("%s", error_message());
	p->out = ts_writer_fd(fileno(p->file.fp), p->path);
}

static void close_part(struct part *p)
{
	if (ts_writer_close(p->out) < 0)
		die("%s", error_message());
	if (strcmp(p->path, "-") && atomic_commit(&p->file) < 0)
		die("%s", error_message());
}

/* The key's bytes: a string as it is, an integer in decimal, so that the
 * key 7 and the key "7" land in the same part. */
static void key_bytes(const struct record *r, const char *key, uint64_t n, struct mp_buf *out)
{
	const struct value *v = record_get(r, key);
	if (!v)
		die("record %" PRIu64 ": key field '%s' is missing", n, key);
	out->len = 0;
	if ((v->kind != V_STR && v->kind != V_INT) || scalar_text(v, out) < 0)
		die("record %" PRIu64 ": key field '%s' is not a string or integer", n, key);
}

int main(int argc, char **argv)
{
	tool_init("ts-split", argc, argv, help);
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' },  { "key", 1, 0, 'k' },
		{ "seed", 1, 0, 's' }, { "output", 1, 0, 'o' },   { "progress", 0, 0, 'p' },
		{ 0 },
	};
	struct part *parts = xcalloc(argc, sizeof *parts);
	double *shares = xcalloc(argc, sizeof *shares);
	const char *key = NULL;
	uint64_t seed = 0;
	bool progress = false;
	int nparts = 0, c;
	while ((c = getopt_long(argc, argv, "hVk:s:o:p", opts, NULL)) != -1) {
		if (tool_common_option(c, help))
			continue;
		switch (c) {
		case 'k': key = optarg; break;
		case 's': seed = (uint64_t)parse_int_option("--seed", optarg, 0, INT64_MAX); break;
		case 'o': shares[nparts] = parse_part(optarg, &parts[nparts]); nparts++; break;
		case 'p': progress = true; break;
		default: usage_error("unknown option");
		}
	}
	if (!key || !*key)
		usage_error("--key FIELD is required");
	if (nparts == 0)
		usage_error("no outputs: give -o FILE:WEIGHT for each part");
	if (key_split_shares(shares, nparts) < 0)
		usage_error("-o: %s", error_message());
	for (int i = 0; i < nparts; i++)
		for (int j = 0; j < i; j++)
			if (!strcmp(parts[i].path, parts[j].path))
				usage_error("-o: '%s' is named twice", parts[i].path);

	struct ts_inputs *in = ts_inputs_open(argc - optind, argv + optind);
	for (int i = 0; i < nparts; i++)
		open_part(&parts[i]);
	struct mp_buf bytes = { 0 };
	struct record r = RECORD_INIT;
	uint64_t n = 0;
	int rc;
	while ((rc = ts_inputs_read(in, &r)) > 0) {
		key_bytes(&r, key, n, &bytes);
		struct part *p = &parts[key_split_part(shares, nparts, key_hash(bytes.data, bytes.len, seed))];
		if (ts_write(p->out, &r) < 0)
			die("%s", error_message());
		p->count++;
		n++;
	}
	if (rc < 0)
		die("%s", error_message());
	for (int i = 0; i < nparts; i++)
		close_part(&parts[i]);
	if (progress)
		for (int i = 0; i < nparts; i++)
			fprintf(stderr, "ts-split: %s: %" PRIu64 " records (%.1f%%)\n",
			        strcmp(parts[i].path, "-") ? parts[i].path : "stdout",
			        parts[i].count, n ? 100.0 * parts[i].count / n : 0.0);
	record_free(&r);
	mp_buf_free(&bytes);
	ts_inputs_close(in);
	free(parts);
	free(shares);
	return EXIT_OK;
}
