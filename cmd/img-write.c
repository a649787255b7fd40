/* img-write: image records become PNG files, or one contact sheet. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/atomic_file.h"
#include "core/tool.h"
#include "image/contact_sheet.h"
#include "image/image.h"
#include "stream/stream.h"

static const char help[] =
	"Usage: img-write --dir DIR [--passthrough] [--max N] [FILE...]\n"
	"       img-write --sheet OUT.png [--cols N] [--cell PX] [--caption FIELD]\n"
	"                 [--max N] [--passthrough] [FILE...]\n"
	"Writes the 'image' field (uint8 [H,W,C], C = 1 gray, 2 gray+alpha, 3 RGB,\n"
	"4 RGBA) of each record read from the FILEs or stdin as a PNG.\n"
	"\n"
	"With --dir, each image becomes DIR/NAME.png, NAME being the record's 'id',\n"
	"else its 'path' without directory and extension, else the record number\n"
	"(000000, 000001, ...). '/' and a leading '.' in a name become '_'. DIR is\n"
	"created if needed. Files appear whole or not at all.\n"
	"\n"
	"With --sheet, all images are tiled into one PNG: each is scaled to fit a\n"
	"square cell, centered on white, with its caption under it.\n"
	"\n"
	"Options:\n"
	"  -d, --dir DIR        write one PNG per record into DIR\n"
	"  -s, --sheet OUT.png  write one contact sheet\n"
	"      --cols N         cells per row of the sheet (default 8)\n"
	"      --cell PX        side of a cell in pixels (default 128)\n"
	"      --caption FIELD  caption each cell with this string or number field;\n"
	"                       default 'text' when the first record has it; ''\n"
	"                       for none\n"
	"  -m, --max N          take at most N images\n"
	"  -p, --passthrough    also copy the records to stdout; with --dir, 'path'\n"
	"                       is set to the file written\n"
	"  -h, --help           show this help\n"
	"      --version        show the version\n"
	"\n"
	"Examples:\n"
	"  img-read a.png b.png | img-write --dir out\n"
	"  img-read *.png | img-write --sheet sheet.png --cols 8\n";

enum { OPT_COLS = 256, OPT_CELL, OPT_CAPTION };

struct write_options {
	const char *dir, *sheet_path, *caption; /* caption NULL: 'text' if present */
	int cols, cell;
	int64_t max;
	bool passthrough;
};

/* mkdir -p. */
static void make_dirs(const char *dir)
{
	char *p = xstrdup(dir);
	for (char *s = p + 1; ; s++) {
		if (*s && *s != '/')
			continue;
		char end = *s;
		*s = 0;
		if (mkdir(p, 0777) < 0 && errno != EEXIST)
			die("%s: cannot create directory: %s", p, strerror(errno));
		if (!end)
			break;
		*s = '/';
	}
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		die("%s: not a directory", dir);
	free(p);
}

/* What names a record's file: its id, else its path's stem, else "". */
static char *name_of_record(const struct record *r)
{
	const char *id = record_str(r, "id"), *path = record_str(r, "path");
	int64_t num;
	char buf[32];
	if (id && *id)
		return xstrdup(id);
	if (record_int(r, "id", &num) == 0) {
		snprintf(buf, sizeof buf, "%" PRId64, num);
		return xstrdup(buf);
	}
	if (path && *path)
		return image_id_from_path(path);
	return xstrdup("");
}

/* A file name for the record: never empty, never hidden, no '/', and short
 * enough for the temporary name atomic_open adds. */
static char *output_name(const struct record *r, int64_t index)
{
	char *name = name_of_record(r);
	size_t len = strlen(name);
	if (len > 200) {
		len = 200;
		while (len > 0 && (name[len] & 0xc0) == 0x80) /* don't split a UTF-8 character */
			len--;
		name[len] = 0;
	}
	for (char *s = name; *s; s++)
		if (*s == '/' || (unsigned char)*s < 32 || (s == name && *s == '.'))
			*s = '_';
	if (!*name) {
		char buf[32];
		snprintf(buf, sizeof buf, "%06" PRId64, index);
		free(name);
		name = xstrdup(buf);
	}
	return name;
}

static void write_png_file(const char *path, const struct image *img)
{
	struct atomic_file af;
	if (atomic_open(&af, path) < 0 || png_write(af.fp, img) < 0 || atomic_commit(&af) < 0)
		die("%s", error_message());
}

/* Writes r's image into the directory; returns the path written. */
static char *write_to_dir(const char *dir, const struct record *r, int64_t index, const struct image *img)
{
	char *name = output_name(r, index), *path;
	if (asprintf(&path, "%s/%s.png", dir, name) < 0)
		die("out of memory");
	free(name);
	write_png_file(path, img);
	return path;
}

/* The caption a field gives: a string, or a number printed into buf. */
static const char *caption_text(const struct record *r, const char *field, char *buf, size_t size)
{
	const struct value *v = record_get(r, field);
	if (!v)
		return NULL;
	switch (v->kind) {
	case V_STR: return v->str.ptr;
	case V_INT:
		if (v->is_unsigned)
			snprintf(buf, size, "%" PRIu64, v->u);
		else
			snprintf(buf, size, "%" PRId64, v->i);
		return buf;
	case V_FLOAT: snprintf(buf, size, "%g", v->f); return buf;
	case V_BOOL: return v->b ? "true" : "false";
	default: return NULL;
	}
}

static void add_to_sheet(struct contact_sheet *s, const struct write_options *o, const struct record *r,
                         const struct image *img)
{
	/* The first record decides whether the default 'text' captions exist. */
	const char *field = o->caption ? o->caption : "text";
	if (s->cols == 0) {
		bool captions = o->caption ? *o->caption != 0 : record_get(r, "text") != NULL;
		if (sheet_init(s, o->cols, o->cell, captions) < 0)
			die("%s", error_message());
	}
	char buf[64];
	const char *caption = s->caption_height ? caption_text(r, field, buf, sizeof buf) : NULL;
	if (sheet_add(s, img, caption) < 0)
		die("%s; use --max to take fewer images", error_message());
}

/* Writes the record's image to its file, or places it on the sheet. */
static void take_image(const struct write_options *o, struct contact_sheet *sheet, struct record *r,
                       int64_t index, bool set_path)
{
	struct image img;
	if (image_from_record(r, "image", &img) < 0)
		die("record %" PRId64 ": %s", index, error_message());
	if (o->sheet_path) {
		add_to_sheet(sheet, o, r, &img);
		return;
	}
	char *path = write_to_dir(o->dir, r, index, &img);
	if (set_path)
		record_set_str(r, "path", path);
	free(path);
}

static void parse_options(int argc, char **argv, struct write_options *o)
{
	static const struct option opts[] = {
		{ "help", no_argument, 0, 'h' },
		{ "version", no_argument, 0, 'V' },
		{ "dir", required_argument, 0, 'd' },
		{ "sheet", required_argument, 0, 's' },
		{ "cols", required_argument, 0, OPT_COLS },
		{ "cell", required_argument, 0, OPT_CELL },
		{ "caption", required_argument, 0, OPT_CAPTION },
		{ "max", required_argument, 0, 'm' },
		{ "passthrough", no_argument, 0, 'p' },
		{ 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "hd:s:m:p", opts, NULL)) != -1) {
		if (tool_common_option(c, help))
			continue;
		switch (c) {
		case 'd': o->dir = optarg; break;
		case 's': o->sheet_path = optarg; break;
		case OPT_COLS: o->cols = (int)parse_int_option("--cols", optarg, 1, 4096); break;
		case OPT_CELL: o->cell = (int)parse_int_option("--cell", optarg, SHEET_MIN_CELL, 4096); break;
		case OPT_CAPTION: o->caption = optarg; break;
		case 'm': o->max = parse_int_option("--max", optarg, 0, INT64_MAX); break;
		case 'p': o->passthrough = true; break;
		default: usage_error("unknown option");
		}
	}
	if (!o->dir == !o->sheet_path)
		usage_error("give exactly one of --dir DIR and --sheet OUT.png");
}

int main(int argc, char **argv)
{
	tool_init("img-write", argc, argv, help);
	struct write_options o = { .cols = 8, .cell = 128, .max = INT64_MAX };
	parse_options(argc, argv, &o);
	struct ts_inputs *in = ts_inputs_open(argc - optind, argv + optind);
	if (!in)
		die("%s", error_message());
	if (o.dir)
		make_dirs(o.dir);
	struct ts_writer *out = o.passthrough ? ts_writer_fd(1, "stdout") : NULL;
	struct contact_sheet sheet = { 0 };
	struct record r = RECORD_INIT;
	int64_t index = 0;
	int rc;
	for (; (rc = ts_inputs_read(in, &r)) > 0; index++) {
		if (index < o.max)
			take_image(&o, &sheet, &r, index, out != NULL);
		else if (!out)
			break;
		if (out && ts_write(out, &r) < 0)
			die("%s", error_message());
	}
	if (rc < 0)
		die("%s", error_message());
	if (o.sheet_path) {
		if (sheet.count == 0)
			die("no images for the contact sheet");
		sheet_finish(&sheet);
		write_png_file(o.sheet_path, &sheet.canvas);
		sheet_free(&sheet);
	}
	if (out && ts_writer_close(out) < 0)
		die("%s", error_message());
	record_free(&r);
	ts_inputs_close(in);
	return EXIT_OK;
}
