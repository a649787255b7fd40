/* img-read: image files become image records. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "image/image.h"
#include "stream/stream.h"

static const char help[] =
	"Usage: img-read [--keep-alpha] [--skip-bad] [PATH...]\n"
	"Reads PNG and binary PGM/PPM (P5/P6) files and writes one record per file\n"
	"to stdout: 'path' (as given), 'id' (the file name without directory and\n"
	"extension), 'mode' (Pillow's name for the file's mode: 1, L, I, LA, P, RGB\n"
	"or RGBA) and 'image' (uint8 [H,W,C]). With no PATH, reads paths from\n"
	"stdin, one per line. The format comes from the file's first bytes.\n"
	"\n"
	"By default alpha is composited onto white and palettes become RGB, so C is\n"
	"1 (gray) or 3 (RGB). 16-bit samples keep their high byte; PNM samples are\n"
	"scaled to 0..255 as round(v*255/maxval).\n"
	"\n"
	"Options:\n"
	"  -a, --keep-alpha  keep the file's channels, samples exactly as decoded:\n"
	"                    gray 1, gray+alpha 2, RGB 3, RGBA 4 (a palette with\n"
	"                    transparency gives 4, without it 3)\n"
	"  -k, --skip-bad    warn about an unreadable file and go on (exit 0)\n"
	"  -h, --help        show this help\n"
	"      --version     show the version\n"
	"\n"
	"Example:\n"
	"  img-read photos/*.png | img-write --sheet sheet.png --cols 8\n";

struct read_options {
	enum image_alpha alpha;
	bool skip_bad;
};

/* Reads one file and writes its record, reusing r. */
static void emit_image(struct ts_writer *out, struct record *r, const char *path, const struct read_options *o)
{
	struct image img;
	if (image_read_file(path, o->alpha, &img) < 0) {
		if (!o->skip_bad)
			die("%s: %s", path, error_message());
		warnx_tool("%s: %s (skipped)", path, error_message());
		return;
	}
	record_clear(r);
	record_set_str(r, "path", path);
	char *id = image_id_from_path(path);
	record_set_str(r, "id", id);
	free(id);
	record_set_str(r, "mode", img.mode);
	image_to_record(r, "image", &img);
	if (ts_write(out, r) < 0)
		die("%s", error_message());
}

int main(int argc, char **argv)
{
	tool_init("img-read", argc, argv, help);
	static const struct option opts[] = {
		{ "help", no_argument, 0, 'h' },
		{ "version", no_argument, 0, 'V' },
		{ "keep-alpha", no_argument, 0, 'a' },
		{ "skip-bad", no_argument, 0, 'k' },
		{ 0 },
	};
	struct read_options o = { IMAGE_ON_WHITE, false };
	int c;
	while ((c = getopt_long(argc, argv, "hak", opts, NULL)) != -1) {
		if (tool_common_option(c, help))
			continue;
		switch (c) {
		case 'a': o.alpha = IMAGE_KEEP_ALPHA; break;
		case 'k': o.skip_bad = true; break;
		default: usage_error("unknown option");
		}
	}

	struct ts_writer *out = ts_writer_fd(1, "stdout");
	struct record r = RECORD_INIT;
	if (optind < argc) {
		for (int i = optind; i < argc; i++)
			emit_image(out, &r, argv[i], &o);
	} else {
		char *line = NULL;
		size_t cap = 0;
		ssize_t len;
		for (long lineno = 1; (len = getline(&line, &cap, stdin)) > 0; lineno++) {
			if (line[len - 1] == '\n')
				line[--len] = 0;
			if (strlen(line) != (size_t)len)
				die("stdin: line %ld holds a NUL byte: expected file names, one per line", lineno);
			if (len > 0)
				emit_image(out, &r, line, &o);
		}
		if (ferror(stdin))
			die("stdin: read error");
		free(line);
	}
	if (ts_writer_close(out) < 0)
		die("%s", error_message());
	record_free(&r);
	return EXIT_OK;
}
