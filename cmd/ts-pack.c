/* ts-pack: JSON lines (as ts-cat --full prints them) -> tensor stream. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "stream/json.h"
#include "stream/stream.h"

static const char help[] =
	"Usage: ts-pack [FILE...]\n"
	"Read JSON lines (stdin by default, files one after another), one object\n"
	"per record, and write them as a tensor stream. The reverse of ts-cat --full.\n"
	"\n"
	"  {\"dtype\":D,\"shape\":[...],\"data\":[...]}  a tensor (data flat, C order)\n"
	"  {\"$bin\":\"BASE64\"}                      bytes\n"
	"  1, -2           int            1.5, 1e3    float64\n"
	"  other arrays and objects are kept as msgpack arrays and maps.\n"
	"Blank lines are skipped.\n"
	"\n"
	"  -h, --help       show this help\n"
	"      --version    show the version\n"
	"\n"
	"Example:\n"
	"  ts-cat --full x.ts | jq -c '.label = 0' | ts-pack > relabelled.ts\n";

/* Packs every line of one input; dies naming the input and line on error. */
static void pack_file(FILE *fp, const char *name, struct ts_writer *out)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long long lineno = 0;
	struct record r = RECORD_INIT;
	while ((len = getline(&line, &cap, fp)) >= 0) {
		lineno++;
		if (json_is_blank(line, (size_t)len))
			continue;
		if (json_read_record(line, (size_t)len, &r) < 0)
			die("%s: line %lld: %s", name, lineno, error_message());
		if (ts_write(out, &r) < 0)
			die("%s", error_message());
	}
	if (ferror(fp))
		die("%s: read error: %s", name, strerror(errno));
	record_free(&r);
	free(line);
}

int main(int argc, char **argv)
{
	tool_init("ts-pack", argc, argv, help);
	static const struct option opts[] = { { "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		if (!tool_common_option(c, help))
			usage_error("unknown option");
	}
	struct ts_writer *out = ts_writer_fd(1, "stdout");
	if (optind == argc)
		pack_file(stdin, "stdin", out);
	for (int i = optind; i < argc; i++) {
		bool is_stdin = !strcmp(argv[i], "-");
		FILE *fp = is_stdin ? stdin : fopen(argv[i], "r");
		if (!fp)
			die("%s: %s", argv[i], strerror(errno));
		pack_file(fp, is_stdin ? "stdin" : argv[i], out);
		if (!is_stdin)
			fclose(fp);
	}
	if (ts_writer_close(out) < 0)
		die("%s", error_message());
	return EXIT_OK;
}
