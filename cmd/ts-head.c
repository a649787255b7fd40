/* ts-head: take records from a stream by count, range or field value. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "stream/stream.h"

static const char help[] =
	"Usage: ts-head [-n N] [--skip M] [--range A:B] [--where FIELD=VALUE]... [FILE...]\n"
	"Copy the first records of tensor streams (stdin by default, files one after\n"
	"another) to stdout, and stop reading as soon as they are out.\n"
	"\n"
	"  -n, --lines N          take N records (default 10; all with --where)\n"
	"  -s, --skip M           skip the first M records first\n"
	"  -r, --range A:B        take records A to B-1 (0-based); A: runs to the end\n"
	"  -w, --where FIELD=VALUE\n"
	"                         keep only records whose scalar FIELD equals VALUE:\n"
	"                         strings exactly, numbers numerically, true/false, null.\n"
	"                         Repeat for several conditions (all must hold).\n"
	"                         -n, --skip and --range count the kept records.\n"
	"  -h, --help             show this help\n"
	"      --version          show the version\n"
	"\n"
	"Example:\n"
	"  img-read photos/*.png | ts-head -n 1 | ts-cat\n";

struct condition {
	char *key;
	const char *value;
};

/* Whether text is a whole number equal to v: integers exactly, then floats. */
static bool number_equals(const struct value *v, const char *text)
{
	char *end;
	errno = 0;
	if (v->kind == V_INT && v->is_unsigned) {
		unsigned long long u = strtoull(text, &end, 10);
		if (*text != '-' && end != text && !*end && !errno)
			return u == v->u;
	} else if (v->kind == V_INT) {
		long long i = strtoll(text, &end, 10);
		if (end != text && !*end && !errno)
			return i == v->i;
	}
	double d = strtod(text, &end);
	if (end == text || *end)
		return false;
	if (v->kind == V_FLOAT)
		return d == v->f;
	return d == (v->is_unsigned ? (double)v->u : (double)v->i);
}

static bool value_equals(const struct value *v, const char *text)
{
	switch (v->kind) {
	case V_STR: return strlen(text) == v->str.len && !memcmp(v->str.ptr, text, v->str.len);
	case V_INT: case V_FLOAT: return number_equals(v, text);
	case V_BOOL: return !strcmp(text, v->b ? "true" : "false");
	case V_NIL: return !strcmp(text, "null");
	default: return false; /* tensors, bytes and raw values never match */
	}
}

static bool matches(const struct record *r, const struct condition *where, int nwhere)
{
	for (int i = 0; i < nwhere; i++) {
		const struct value *v = record_get(r, where[i].key);
		if (!v || !value_equals(v, where[i].value))
			return false;
	}
	return true;
}

static struct condition parse_condition(const char *arg)
{
	const char *eq = strchr(arg, '=');
	if (!eq || eq == arg)
		usage_error("--where: '%s' is not FIELD=VALUE", arg);
	return (struct condition){ xstrndup(arg, eq - arg), eq + 1 };
}

/* "A:B", "A:" or ":B" -> skip A, take B-A (-1 = no limit). */
static void parse_range(const char *arg, long long *skip, long long *count)
{
	const char *colon = strchr(arg, ':');
	if (!colon)
		usage_error("--range: '%s' is not A:B", arg);
	char *a = xstrndup(arg, colon - arg);
	*skip = *a ? parse_int_option("--range", a, 0, INT64_MAX) : 0;
	*count = colon[1] ? parse_int_option("--range", colon + 1, *skip, INT64_MAX) - *skip : -1;
	free(a);
}

int main(int argc, char **argv)
{
	tool_init("ts-head", argc, argv, help);
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' },  { "version", 0, 0, 'V' }, { "lines", 1, 0, 'n' },
		{ "skip", 1, 0, 's' },  { "range", 1, 0, 'r' },   { "where", 1, 0, 'w' },
		{ 0 },
	};
	long long count = -1, skip = 0;
	bool have_count = false, have_skip = false, have_range = false;
	struct condition *where = xcalloc(argc, sizeof *where);
	int nwhere = 0, c;
	while ((c = getopt_long(argc, argv, "hVn:s:r:w:", opts, NULL)) != -1) {
		if (tool_common_option(c, help))
			continue;
		switch (c) {
		case 'n': count = parse_int_option("-n", optarg, 0, INT64_MAX); have_count = true; break;
		case 's': skip = parse_int_option("--skip", optarg, 0, INT64_MAX); have_skip = true; break;
		case 'r': parse_range(optarg, &skip, &count); have_range = true; break;
		case 'w': where[nwhere++] = parse_condition(optarg); break;
		default: usage_error("unknown option");
		}
	}
	if (have_range && (have_count || have_skip))
		usage_error("--range replaces -n and --skip; give one or the other");
	if (!have_count && !have_range && nwhere == 0)
		count = 10;

	struct ts_writer *out = ts_writer_fd(1, "stdout");
	struct ts_inputs *in = ts_inputs_open(argc - optind, argv + optind);
	struct record r = RECORD_INIT;
	int rc = 0;
	/* Stops as soon as the last wanted record is out: upstream tools then
	 * end on a closed pipe instead of producing the rest. */
	while (count != 0 && (rc = ts_inputs_read(in, &r)) > 0) {
		if (!matches(&r, where, nwhere))
			continue;
		if (skip > 0) {
			skip--;
			continue;
		}
		if (ts_write(out, &r) < 0)
			die("%s", error_message());
		if (count > 0)
			count--;
	}
	if (rc < 0)
		die("%s", error_message());
	if (ts_writer_close(out) < 0)
		die("%s", error_message());
	record_free(&r);
	ts_inputs_close(in);
	for (int i = 0; i < nwhere; i++)
		free(where[i].key);
	free(where);
	return EXIT_OK;
}
