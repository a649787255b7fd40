/* ts-caption: set a string field from templates over the record's fields. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdnoreturn.h>

#include "core/tool.h"
#include "nn/philox.h"
#include "stream/stream.h"
#include "stream/template.h"

static const char help[] =
	"Usage: ts-caption -t TEMPLATE... [--templates FILE] [--field NAME] [--seed N]\n"
	"                  [--all] [FILE...]\n"
	"Set a string field of every record of tensor streams (stdin by default) from\n"
	"a template that uses the record's own fields, and write the records to stdout.\n"
	"\n"
	"  -t, --template TEXT   a template: {NAME} is field NAME (a string as it is,\n"
	"                        a number in decimal); {{ and }} are literal braces.\n"
	"                        Repeat for several; each record gets one of them,\n"
	"                        chosen at random from --seed and its record number\n"
	"  -T, --templates FILE  more templates, one a line (blank lines skipped)\n"
	"  -f, --field NAME      the field written (default text); a template that\n"
	"                        reads it gets the old value\n"
	"  -s, --seed N          seed of the choice (default 0)\n"
	"  -a, --all             write one copy of each record per template, in\n"
	"                        template order, instead of choosing one\n"
	"  -h, --help            show this help\n"
	"      --version         show the version\n"
	"\n"
	"Example:\n"
	"  idx-read train-images-idx3-ubyte.gz |\n"
	"    ts-caption -t 'a photo of a {text}' -t 'a {text}' > captioned.ts\n";

struct templates {
	struct template **list;
	int n;
};

static void add_template(struct templates *ts, const char *text, const char *where)
{
	struct template *t = template_parse(text);
	if (!t)
		usage_error("%s: template '%s': %s", where, text, error_message());
	ts->list = xrealloc(ts->list, (ts->n + 1) * sizeof *ts->list);
	ts->list[ts->n++] = t;
}

static void read_template_file(struct templates *ts, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		die("%s: cannot open: %s", path, strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (strspn(line, " \t") < (size_t)len)
			add_template(ts, line, path);
	}
	if (ferror(f))
		die("%s: read error", path);
	free(line);
	fclose(f);
}

/* Which template record number n gets: a pure function of (seed, n), so
 * the same record always gets the same caption however the input arrives. */
static int choose_template(uint64_t seed, uint64_t n, int count)
{
	uint32_t bits = philox_block_at(seed, n).w[n & 3];
	return (int)(((uint64_t)bits * (uint64_t)count) >> 32);
}

/* Dies with the current error, after passing on the records written so
 * far: they are good, and the next tool may as well have them. */
static noreturn void die_after_flush(struct ts_writer *out)
{
	char why[512];
	snprintf(why, sizeof why, "%s", error_message());
	ts_flush(out);
	die("%s", why);
}

/* Expands template t for record r (number n) into text, or dies naming both. */
static void expand(const struct template *t, const struct record *r, uint64_t n, struct mp_buf *text,
                   struct ts_writer *out)
{
	text->len = 0;
	if (template_expand(t, r, text) < 0) {
		error_prefix("record %" PRIu64 ": template '%s'", n, template_text(t));
		die_after_flush(out);
	}
}

int main(int argc, char **argv)
{
	tool_init("ts-caption", argc, argv, help);
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' },  { "version", 0, 0, 'V' },   { "template", 1, 0, 't' },
		{ "templates", 1, 0, 'T' }, { "field", 1, 0, 'f' }, { "seed", 1, 0, 's' },
		{ "all", 0, 0, 'a' },   { 0 },
	};
	struct templates ts = { 0 };
	const char *field = "text";
	uint64_t seed = 0;
	bool all = false;
	int c;
	while ((c = getopt_long(argc, argv, "hVt:T:f:s:a", opts, NULL)) != -1) {
		if (tool_common_option(c, help))
			continue;
		switch (c) {
		case 't': add_template(&ts, optarg, "-t"); break;
		case 'T': read_template_file(&ts, optarg); break;
		case 'f': field = optarg; break;
		case 's': seed = (uint64_t)parse_int_option("--seed", optarg, 0, INT64_MAX); break;
		case 'a': all = true; break;
		default: usage_error("unknown option");
		}
	}
	if (ts.n == 0)
		usage_error("no templates: give -t TEMPLATE or --templates FILE");
	if (!*field)
		usage_error("--field: empty name");

	struct ts_inputs *in = ts_inputs_open(argc - optind, argv + optind);
	struct ts_writer *out = ts_writer_fd(1, "stdout");
	/* One caption buffer per template, so that --all expands every template
	 * from the original record before any copy overwrites the field. */
	struct mp_buf *text = xcalloc(ts.n, sizeof *text);
	struct record r = RECORD_INIT;
	uint64_t n = 0;
	int rc;
	while ((rc = ts_inputs_read(in, &r)) > 0) {
		int first = all ? 0 : choose_template(seed, n, ts.n);
		int last = all ? ts.n - 1 : first;
		for (int i = first; i <= last; i++)
			expand(ts.list[i], &r, n, &text[i], out);
		for (int i = first; i <= last; i++) {
			record_set_strn(&r, field, (const char *)text[i].data, text[i].len);
			if (ts_write(out, &r) < 0)
				die("%s", error_message());
		}
		n++;
	}
	if (rc < 0)
		die_after_flush(out);
	if (ts_writer_close(out) < 0)
		die("%s", error_message());
	record_free(&r);
	ts_inputs_close(in);
	for (int i = 0; i < ts.n; i++) {
		template_free(ts.list[i]);
		mp_buf_free(&text[i]);
	}
	free(text);
	free(ts.list);
	return EXIT_OK;
}
