/* libFuzzer target for the emoji font reader (sfnt directory, cmap, GSUB
 * ligatures, CBLC/CBDT) and the emoji-test.txt parser. Beyond "no crash",
 * it checks that a PNG the font hands out lies inside the input and that a
 * resolved glyph is a 16-bit id. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "data/emoji_font.h"
#include "data/emoji_test.h"

static void query_font(const uint8_t *data, size_t size)
{
	struct emoji_font *f = emoji_font_open_mem(data, size);
	if (!f)
		return;
	static const uint32_t seqs[][4] = {
		{ 0x1f600 }, { 0x1f1fa, 0x1f1f8 }, { 0x23, 0xfe0f, 0x20e3 },
		{ 0x1f468, 0x200d, 0x1f469, 0x200d }, { 0x1f44b, 0x1f3fd }, { 0x1f1e6, 0x1f1e7, 0x1f1e6 },
	};
	static const int lens[] = { 1, 2, 3, 4, 2, 3 };
	for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
		int g = emoji_font_glyph(f, seqs[i], lens[i]);
		if (g > 0xffff)
			abort();
	}
	for (uint32_t cp = 0; cp < 64; cp++)
		emoji_font_cmap(f, 0x1f1e6 + cp);
	for (int g = 0; g < 256; g++) {
		const uint8_t *png;
		size_t len;
		if (emoji_font_png(f, g, &png, &len) == 0 && (png < data || len > size || png + len > data + size))
			abort();
	}
	emoji_font_close(f);
}

static void parse_list(const uint8_t *data, size_t size)
{
	FILE *fp = fmemopen((void *)data, size, "r");
	if (!fp)
		return;
	struct emoji_test_reader r;
	emoji_test_open_fp(&r, fp, "fuzz");
	struct emoji_entry e;
	while (emoji_test_next(&r, &e) > 0)
		if (e.ncps < 1 || e.ncps > EMOJI_MAX_SEQUENCE || !e.name[0])
			abort();
	emoji_test_close(&r);
	fclose(fp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	query_font(data, size);
	if (size > 0)
		parse_list(data, size);
	return 0;
}
