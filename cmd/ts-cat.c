/* ts-cat: print tensor streams as JSON lines (or pass them through). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "stream/json.h"
#include "stream/stream.h"

static const char help[] =
	"Usage: ts-cat [--full] [--raw] [-k KEY,...] [FILE...]\n"
	"Print tensor streams (stdin by default, files one after another) as JSON,\n"
	"one object per record, keys in record order.\n"
	"\n"
	"  -f, --full       print tensors whole: {\"dtype\",\"shape\",\"data\": [flat list]}\n"
	"                   (default: a summary with min, max and mean)\n"
	"  -r, --raw        write the stream itself (msgpack), validated, not JSON\n"
	"  -k, --keys LIST  only these fields (comma-separated), in record order\n"
	"  -h, --help       show this help\n"
	"      --version    show the version\n"
	"\n"
	"Example:\n"
	"  ts-cat --full x.ts | jq -c 'select(.label == 3)' | ts-pack > threes.ts\n";

/* Splits "a,b,c" in place into a NULL-terminated list. */
static char **split_keys(char *list, int *n)
{
	char **keys = xcalloc(strlen(list) + 2, sizeof *keys);
	*n = 0;
	for (char *k = strtok(list, ","); k; k = strtok(NULL, ","))
		keys[(*n)++] = k;
	if (*n == 0)
		usage_error("-k: no field names in '%s'", list);
	return keys;
}

/* Drops the fields not in keys (for --raw). */
static void keep_only(struct record *r, const struct json_options *opt)
{
	for (int i = r->n - 1; i >= 0; i--) {
		bool keep = false;
		for (int k = 0; k < opt->nkeys && !keep; k++)
			keep = !strcmp(r->fields[i].key, opt->keys[k]);
		if (!keep)
			record_remove(r, r->fields[i].key);
	}
}

int main(int argc, char **argv)
{
	tool_init("ts-cat", argc, argv, help);
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { "full", 0, 0, 'f' },
		{ "raw", 0, 0, 'r' },  { "keys", 1, 0, 'k' },     { 0 },
	};
	struct json_options opt = { 0 };
	char **keys = NULL;
	bool raw = false;
	int c;
	while ((c = getopt_long(argc, argv, "hVfrk:", opts, NULL)) != -1) {
		if (tool_common_option(c, help))
			continue;
		switch (c) {
		case 'f': opt.full = true; break;
		case 'r': raw = true; break;
		case 'k': opt.keys = keys = split_keys(optarg, &opt.nkeys); break;
		default: usage_error("unknown option");
		}
	}
	struct ts_inputs *in = ts_inputs_open(argc - optind, argv + optind);
	struct ts_writer *out = raw ? ts_writer_fd(1, "stdout") : NULL;
	struct mp_buf line = { 0 };
	struct record r = RECORD_INIT;
	int rc;
	while ((rc = ts_inputs_read(in, &r)) > 0) {
		if (raw) {
			if (opt.nkeys)
				keep_only(&r, &opt);
			if (ts_write(out, &r) < 0)
				die("%s", error_message());
			continue;
		}
		line.len = 0;
		if (json_write_record(&line, &r, &opt) < 0)
			die("%s", error_message());
		if (fwrite(line.data, 1, line.len, stdout) != line.len)
			die("stdout: write error");
	}
	if (rc < 0)
		die("%s", error_message());
	if (out && ts_writer_close(out) < 0)
		die("%s", error_message());
	if (fflush(stdout) != 0)
		die("stdout: write error");
	record_free(&r);
	mp_buf_free(&line);
	ts_inputs_close(in);
	free(keys);
	return EXIT_OK;
}
