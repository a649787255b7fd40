/* ts-mean: means of numeric fields with 95% confidence intervals. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/tool.h"
#include "eval/summary.h"
#include "stream/json.h"
#include "stream/stream.h"

static const char help[] =
	"Usage: ts-mean [--by FIELD] [--bootstrap N] [--seed S] [--json] FIELD... [FILE...]\n"
	"The mean of each numeric FIELD over tensor streams (stdin by default, files one\n"
	"after another), with a 95% confidence interval, as TSV:\n"
	"  group<TAB>field<TAB>mean<TAB>ci95_low<TAB>ci95_high<TAB>n\n"
	"after a header line. A field is a bool, int or float scalar, or a numeric\n"
	"tensor of shape [] or [1]; every record must have every FIELD. The first\n"
	"argument that is '-', an existing file, or has a '/' or ends in .ts starts\n"
	"the FILEs.\n"
	"\n"
	"  -b, --by FIELD        one line per group of records with equal FIELD (a string\n"
	"                        or int), groups in order of first appearance (default:\n"
	"                        one group, 'all')\n"
	"  -B, --bootstrap N     percentile bootstrap interval from N resamples (keeps\n"
	"                        every value in memory); default: mean +- 1.96 sd/sqrt(n)\n"
	"                        (memory does not grow with the stream)\n"
	"  -s, --seed S          the bootstrap's seed (default 0); the same seed and data\n"
	"                        give the same interval\n"
	"  -j, --json            one JSON object per line instead of TSV\n"
	"  -h, --help            show this help\n"
	"      --version         show the version\n"
	"\n"
	"Example:\n"
	"  clip-score -m clip.safetensors samples.ts | ts-mean --by k clip_score\n";

struct options {
	const char *by;
	int resamples;
	uint64_t seed;
	bool json;
	char **fields, **files;
	int nfields, nfiles;
};

/* Where the FIELDs end: a field name is rarely a path, so '-', an existing
 * file, or a name with a '/' or ending in .ts is an input (a missing file
 * then fails to open, instead of being taken for a field). */
static bool is_input(const char *arg)
{
	struct stat st;
	size_t len = strlen(arg);
	return !strcmp(arg, "-") || strchr(arg, '/') || (len > 3 && !strcmp(arg + len - 3, ".ts")) ||
	       stat(arg, &st) == 0;
}

static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' },   { "by", 1, 0, 'b' }, { "bootstrap", 1, 0, 'B' },
		{ "seed", 1, 0, 's' }, { "json", 0, 0, 'j' },      { 0 },
	};
	*o = (struct options){ 0 };
	int c;
	while ((c = getopt_long(argc, argv, "hVb:B:s:j", opts, NULL)) != -1) {
		if (tool_common_option(c, help))
			continue;
		switch (c) {
		case 'b': o->by = optarg; break;
		case 'B': o->resamples = (int)parse_int_option("--bootstrap", optarg, 1, 1000000); break;
		case 's': o->seed = (uint64_t)parse_int_option("--seed", optarg, 0, INT64_MAX); break;
		case 'j': o->json = true; break;
		default: usage_error("unknown option");
		}
	}
	o->fields = argv + optind;
	while (optind < argc && !is_input(argv[optind]))
		optind++;
	o->nfields = (int)(argv + optind - o->fields);
	o->files = argv + optind;
	o->nfiles = argc - optind;
	if (o->nfields == 0)
		usage_error("no FIELD given (the first argument that is '-', an existing file, or has a '/' or ends "
		            "in .ts starts the inputs)");
}

/* Adds one record to its group's summaries; -1 (errorf) for a missing or
 * non-numeric field. */
static int add_record(struct summary_groups *g, const struct options *o, const struct record *r)
{
	const char *group = "all";
	char *name = NULL;
	if (o->by) {
		const struct value *v = record_get(r, o->by);
		if (!v)
			return errorf("no field '%s' (--by)", o->by);
		if (group_name(v, &name) < 0)
			return error_prefix("field '%s' (--by)", o->by);
		group = name;
	}
	struct summary *s = summary_groups_get(g, group);
	free(name);
	for (int f = 0; f < o->nfields; f++) {
		const struct value *v = record_get(r, o->fields[f]);
		double x;
		if (!v)
			return errorf("no field '%s'", o->fields[f]);
		if (value_number(v, &x) < 0)
			return error_prefix("field '%s'", o->fields[f]);
		summary_add(&s[f], x);
	}
	return 0;
}

static void read_inputs(struct summary_groups *g, const struct options *o)
{
	static char *stdin_only[] = { "-" };
	char **files = o->nfiles ? o->files : stdin_only;
	int nfiles = o->nfiles ? o->nfiles : 1;
	struct record r = RECORD_INIT;
	for (int i = 0; i < nfiles; i++) {
		struct ts_reader *rd = ts_open(files[i]);
		if (!rd)
			die("%s", error_message());
		int rc;
		while ((rc = ts_read(rd, &r)) == 1)
			if (add_record(g, o, &r) < 0)
				die("%s: record %lld: %s", ts_name(rd), (long long)ts_record_index(rd), error_message());
		if (rc < 0)
			die("%s", error_message());
		ts_close(rd);
	}
	record_free(&r);
}

/* A group name in a TSV cell: tabs and line breaks would split the table. */
static void print_cell(const char *s)
{
	for (; *s; s++)
		putchar(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s);
}

static void print_line(const struct options *o, const char *group, const char *field, double mean, double lo,
                       double hi, int64_t n, struct mp_buf *buf)
{
	if (!o->json) {
		print_cell(group);
		putchar('\t');
		print_cell(field);
		printf("\t%.6g\t%.6g\t%.6g\t%lld\n", mean, lo, hi, (long long)n);
		return;
	}
	struct record r = RECORD_INIT;
	record_set_str(&r, "group", group);
	record_set_str(&r, "field", field);
	record_set_float(&r, "mean", mean);
	record_set_float(&r, "ci95_low", lo);
	record_set_float(&r, "ci95_high", hi);
	record_set_int(&r, "n", n);
	buf->len = 0;
	if (json_write_record(buf, &r, &(struct json_options){ 0 }) < 0)
		die("%s", error_message());
	fwrite(buf->data, 1, buf->len, stdout);
	record_free(&r);
}

int main(int argc, char **argv)
{
	tool_init("ts-mean", argc, argv, help);
	struct options o;
	parse_options(argc, argv, &o);

	struct summary_groups g;
	summary_groups_init(&g, o.nfields, o.resamples > 0);
	read_inputs(&g, &o);
	if (g.n == 0)
		die("%s: no records", o.nfiles == 1 ? o.files[0] : o.nfiles ? "inputs" : "stdin");

	struct mp_buf buf = { 0 };
	if (!o.json)
		printf("group\tfield\tmean\tci95_low\tci95_high\tn\n");
	for (int i = 0; i < g.n; i++) {
		for (int f = 0; f < o.nfields; f++) {
			const struct summary *s = &g.stats[i][f];
			double lo, hi;
			if (o.resamples > 0) {
				if (summary_ci_bootstrap(s, o.resamples, o.seed, &lo, &hi) < 0)
					die("%s", error_message());
			} else {
				summary_ci_normal(s, &lo, &hi);
			}
			print_line(&o, g.names[i], o.fields[f], s->mean, lo, hi, s->n, &buf);
		}
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		die("stdout: write error");
	mp_buf_free(&buf);
	summary_groups_free(&g);
	return EXIT_OK;
}
