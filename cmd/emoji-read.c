/* emoji-read: the colour emoji of a CBDT font (Noto Color Emoji), named by
 * Unicode's emoji-test.txt, as sticker records. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "data/emoji_font.h"
#include "data/emoji_test.h"
#include "image/image.h"
#include "image/resample.h"
#include "stream/record.h"
#include "stream/stream.h"

#define DEFAULT_FONT "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
#define DEFAULT_NAMES "/usr/share/unicode/emoji/emoji-test.txt"

static const char help[] =
	"Usage: emoji-read [OPTION]...\n"
	"Write one record per emoji of emoji-test.txt, in the file's order, with its\n"
	"picture taken from the PNG that a colour bitmap (CBDT) font holds for it:\n"
	"id (code points in lower-case hex joined by '-': 1f468-200d-1f469), image\n"
	"(uint8 [128,136,3], RGB on white), text (the CLDR name: red heart), group,\n"
	"subgroup, codepoints (the emoji as UTF-8) and glyph (the font's glyph id).\n"
	"\n"
	"Options:\n"
	"      --font PATH      the font (default " DEFAULT_FONT ")\n"
	"      --names PATH     the emoji list (default " DEFAULT_NAMES ")\n"
	"      --status S       fully-qualified (default) or all\n"
	"      --group NAME     only emoji of this group (repeatable)\n"
	"  -n, --count N        write at most N records\n"
	"  -a, --keep-alpha     image is RGBA as the PNG holds it, not on white\n"
	"      --size N         pad to a square (white, or transparent with\n"
	"                       --keep-alpha) and resize to NxN, Pillow's bicubic\n"
	"      --skip-missing   warn about an emoji the font lacks and go on\n"
	"                       (default: that is an error)\n"
	"  -p, --progress       report progress on stderr\n"
	"  -h, --help           show this help and exit\n"
	"      --version        show the version and exit\n"
	"\n"
	"Example:\n"
	"  emoji-read --size 32 | img-write --dir stickers\n";

enum { OPT_FONT = 256, OPT_NAMES, OPT_STATUS, OPT_GROUP, OPT_SIZE, OPT_SKIP_MISSING };

struct options {
	const char *font, *names;
	bool all_statuses, skip_missing, progress;
	enum image_alpha alpha;
	int size;  /* 0: as the font has it */
	int64_t count;
	char **groups;
	int ngroups;
};

static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' },
		{ "font", 1, 0, OPT_FONT }, { "names", 1, 0, OPT_NAMES },
		{ "status", 1, 0, OPT_STATUS }, { "group", 1, 0, OPT_GROUP },
		{ "count", 1, 0, 'n' }, { "keep-alpha", 0, 0, 'a' },
		{ "size", 1, 0, OPT_SIZE }, { "skip-missing", 0, 0, OPT_SKIP_MISSING },
		{ "progress", 0, 0, 'p' }, { 0 },
	};
	*o = (struct options){ .font = DEFAULT_FONT, .names = DEFAULT_NAMES, .alpha = IMAGE_ON_WHITE,
	                       .count = INT64_MAX };
	int c;
	while ((c = getopt_long(argc, argv, "hVn:ap", opts, NULL)) != -1) {
		if (tool_common_option(c, help))
			continue;
		switch (c) {
		case OPT_FONT: o->font = optarg; break;
		case OPT_NAMES: o->names = optarg; break;
		case OPT_STATUS:
			if (strcmp(optarg, "fully-qualified") && strcmp(optarg, "all"))
				usage_error("--status: '%s' is neither fully-qualified nor all", optarg);
			o->all_statuses = !strcmp(optarg, "all");
			break;
		case OPT_GROUP:
			o->groups = xrealloc(o->groups, (size_t)(o->ngroups + 1) * sizeof *o->groups);
			o->groups[o->ngroups++] = optarg;
			break;
		case 'n': o->count = parse_int_option("-n", optarg, 0, INT64_MAX); break;
		case 'a': o->alpha = IMAGE_KEEP_ALPHA; break;
		case OPT_SIZE: o->size = (int)parse_int_option("--size", optarg, 1, 4096); break;
		case OPT_SKIP_MISSING: o->skip_missing = true; break;
		case 'p': o->progress = true; break;
		default: usage_error("unknown option");
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
}

static bool wanted(const struct options *o, const struct emoji_entry *e)
{
	if (!o->all_statuses && e->status != EMOJI_FULLY_QUALIFIED)
		return false;
	if (o->ngroups == 0)
		return true;
	for (int i = 0; i < o->ngroups; i++)
		if (!strcmp(o->groups[i], e->group))
			return true;
	return false;
}

/* "1f468-200d-1f469": stable and usable as a file name. */
static void sequence_id(const struct emoji_entry *e, char *buf, size_t size)
{
	size_t n = 0;
	for (int i = 0; i < e->ncps && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s%x", i ? "-" : "", (unsigned)e->cps[i]);
}

/* Centres img on a square of its longer side, the new area white (C = 3)
 * or transparent (C = 4). */
static int pad_to_square(struct image *img)
{
	int side = img->width > img->height ? img->width : img->height;
	int c = img->channels;
	struct image sq;
	if (image_alloc(&sq, side, side, c) < 0)
		return -1;
	memset(sq.pixels, c == 4 ? 0 : 255, image_bytes(&sq));
	int x0 = (side - img->width) / 2, y0 = (side - img->height) / 2;
	size_t row = (size_t)img->width * c;
	for (int y = 0; y < img->height; y++)
		memcpy(sq.pixels + ((size_t)(y0 + y) * side + x0) * c, img->pixels + y * row, row);
	memcpy(sq.mode, img->mode, sizeof sq.mode);
	image_free(img);
	*img = sq;
	return 0;
}

/* The sticker of one glyph, decoded, composited and sized as asked. */
static int sticker_image(const struct emoji_font *font, int glyph, const struct options *o, struct image *img)
{
	const uint8_t *png;
	size_t len;
	if (emoji_font_png(font, glyph, &png, &len) < 0 || image_decode(png, len, o->alpha, img) < 0)
		return -1;
	if (!o->size)
		return 0;
	struct image resized;
	if (pad_to_square(img) < 0 || image_resize(img, o->size, o->size, RESAMPLE_BICUBIC, &resized) < 0) {
		image_free(img);
		return -1;
	}
	image_free(img);
	*img = resized;
	return 0;
}

int main(int argc, char **argv)
{
	tool_init("emoji-read", argc, argv, help);
	struct options o;
	parse_options(argc, argv, &o);

	struct emoji_font *font = emoji_font_open(o.font);
	if (!font)
		die("%s: %s", o.font, error_message());
	struct emoji_test_reader names;
	if (emoji_test_open(&names, o.names) < 0)
		die("%s", error_message());

	struct ts_writer *out = ts_writer_fd(1, "stdout");
	struct record r = RECORD_INIT;
	struct emoji_entry e;
	int64_t written = 0, skipped = 0;
	int rc = 0;
	while (written < o.count && (rc = emoji_test_next(&names, &e)) > 0) {
		if (!wanted(&o, &e))
			continue;
		char id[EMOJI_MAX_SEQUENCE * 9];
		sequence_id(&e, id, sizeof id);
		struct image img;
		int glyph = emoji_font_glyph(font, e.cps, e.ncps);
		if (glyph < 0 || sticker_image(font, glyph, &o, &img) < 0) {
			if (!o.skip_missing)
				die("%s (%s, %s line %ld): %s", id, e.name, o.names, e.line, error_message());
			warnx_tool("%s (%s): %s (skipped)", id, e.name, error_message());
			skipped++;
			continue;
		}
		record_clear(&r);
		record_set_str(&r, "id", id);
		image_to_record(&r, "image", &img);
		record_set_str(&r, "text", e.name);
		record_set_str(&r, "group", e.group);
		record_set_str(&r, "subgroup", e.subgroup);
		record_set_str(&r, "codepoints", e.utf8);
		record_set_int(&r, "glyph", glyph);
		if (ts_write(out, &r) < 0)
			die("%s", error_message());
		if (++written % 500 == 0 && o.progress)
			fprintf(stderr, "emoji-read: %lld emoji\n", (long long)written);
	}
	if (written < o.count && rc < 0)
		die("%s", error_message());
	if (ts_writer_close(out) < 0)
		die("%s", error_message());
	if (o.progress)
		fprintf(stderr, "emoji-read: %lld emoji written, %lld skipped\n", (long long)written, (long long)skipped);

	record_free(&r);
	emoji_test_close(&names);
	emoji_font_close(font);
	free(o.groups);
	return EXIT_OK;
}
