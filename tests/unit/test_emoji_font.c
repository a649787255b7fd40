/* emoji_font and emoji_test on tiny fonts and lists built here byte by byte:
 * cmap formats 12 and 4, a GSUB ligature lookup (plain and through an
 * extension), CBLC index formats 1 and 3 with image formats 17, 18 and 19,
 * and corrupt offsets, truncations and malformed list lines. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "data/emoji_font.h"
#include "data/emoji_test.h"
#include "test.h"

/* ---- a byte buffer with big-endian writers ---- */

struct buf {
	uint8_t d[8192];
	size_t n;
};

static void put8(struct buf *b, unsigned v) { b->d[b->n++] = (uint8_t)v; }
static void put16(struct buf *b, unsigned v) { put8(b, v >> 8); put8(b, v); }
static void put32(struct buf *b, uint32_t v) { put16(b, v >> 16); put16(b, v & 0xffff); }
static void set16(struct buf *b, size_t at, unsigned v) { b->d[at] = (uint8_t)(v >> 8); b->d[at + 1] = (uint8_t)v; }
static void set32(struct buf *b, size_t at, uint32_t v) { set16(b, at, v >> 16); set16(b, at + 2, v & 0xffff); }
static void put_bytes(struct buf *b, const void *p, size_t n) { memcpy(b->d + b->n, p, n); b->n += n; }

/* Glyphs of the test font. */
enum { G_HASH = 1, G_KEYCAP = 2, G_RI_A = 10, G_RI_B = 11, G_SMILE = 40,
       G_FLAG_AB = 50, G_BA = 51, G_BAA = 52, G_BLANK = 53 };

/* cmap with one format 12 subtable (3,10): '#', U+20E3, the 26 regional
 * indicators and U+1F600. */
static void build_cmap12(struct buf *b)
{
	put16(b, 0); put16(b, 1);
	put16(b, 3); put16(b, 10); put32(b, 12);
	static const uint32_t groups[][3] = {
		{ 0x23, 0x23, G_HASH }, { 0x20e3, 0x20e3, G_KEYCAP },
		{ 0x1f1e6, 0x1f1ff, G_RI_A }, { 0x1f600, 0x1f600, G_SMILE },
	};
	put16(b, 12); put16(b, 0); put32(b, 16 + 4 * 12); put32(b, 0); put32(b, 4);
	for (int i = 0; i < 4; i++)
		for (int k = 0; k < 3; k++)
			put32(b, groups[i][k]);
}

/* cmap with one format 4 subtable (3,1): '#' by delta, U+20E3 through the
 * glyph array, and the closing 0xFFFF segment. */
static void build_cmap4(struct buf *b)
{
	put16(b, 0); put16(b, 1);
	put16(b, 3); put16(b, 1); put32(b, 12);
	size_t start = b->n;
	put16(b, 4); put16(b, 0); put16(b, 0);
	put16(b, 6); put16(b, 4); put16(b, 1); put16(b, 2); /* segCountX2, search fields */
	put16(b, 0x23); put16(b, 0x20e3); put16(b, 0xffff); /* endCode */
	put16(b, 0);
	put16(b, 0x23); put16(b, 0x20e3); put16(b, 0xffff); /* startCode */
	put16(b, (G_HASH - 0x23) & 0xffff); put16(b, 0); put16(b, 1); /* idDelta */
	put16(b, 0); put16(b, 4); put16(b, 0); /* idRangeOffset: segment 1 reads glyphs[0] */
	put16(b, G_KEYCAP);
	set16(b, start + 2, (unsigned)(b->n - start));
}

/* GSUB with one ligature lookup (type 4, or type 7 wrapping it):
 *   # KEYCAP -> BLANK (a glyph without bitmap), RI_A RI_B -> FLAG_AB,
 *   RI_B RI_A RI_A -> BAA (listed first), RI_B RI_A -> BA. */
static void build_gsub(struct buf *b, int extension, int coverage_format)
{
	put16(b, 1); put16(b, 0);
	put16(b, 10); put16(b, 12); put16(b, 14); /* script, feature, lookup lists */
	put16(b, 0);                              /* no scripts */
	put16(b, 0);                              /* no features */
	put16(b, 1); put16(b, 4);                 /* one lookup, at list + 4 */
	put16(b, extension ? 7 : 4); put16(b, 0); put16(b, 1); put16(b, 8);
	size_t sub = b->n;
	if (extension) {
		put16(b, 1); put16(b, 4); put32(b, 8);
		sub = b->n;
	}
	/* LigatureSubst: coverage, 3 sets (glyph 1, 10, 11: coverage indexes
	 * 0, 1, 2 by a format 1 coverage). */
	put16(b, 1); put16(b, 0); put16(b, 3); put16(b, 0); put16(b, 0); put16(b, 0);
	set16(b, sub + 2, (unsigned)(b->n - sub));
	if (coverage_format == 1) {
		put16(b, 1); put16(b, 3); put16(b, G_HASH); put16(b, G_RI_A); put16(b, G_RI_B);
	} else { /* ranges [HASH] -> 0 and [RI_A, RI_B] -> 1, 2 */
		put16(b, 2); put16(b, 2); put16(b, G_HASH); put16(b, G_HASH); put16(b, 0);
		put16(b, G_RI_A); put16(b, G_RI_B); put16(b, 1);
	}
	static const uint16_t sets[3][2][4] = {
		/* out, ncomp, components... */
		{ { G_BLANK, 2, G_KEYCAP } },
		{ { G_FLAG_AB, 2, G_RI_B } },
		{ { G_BAA, 3, G_RI_A, G_RI_A }, { G_BA, 2, G_RI_A } },
	};
	static const int nligs[3] = { 1, 1, 2 };
	for (int s = 0; s < 3; s++) {
		size_t set = b->n;
		set16(b, sub + 6 + 2 * s, (unsigned)(set - sub));
		put16(b, nligs[s]);
		for (int l = 0; l < nligs[s]; l++)
			put16(b, 0);
		for (int l = 0; l < nligs[s]; l++) {
			set16(b, set + 2 + 2 * l, (unsigned)(b->n - set));
			put16(b, sets[s][l][0]); put16(b, sets[s][l][1]);
			for (int k = 2; k < sets[s][l][1] + 1; k++)
				put16(b, sets[s][l][k]);
		}
	}
}

/* CBDT holds three PNG stand-ins: SMILE (format 17), FLAG_AB (18), BA (19);
 * BAA and BLANK have empty ranges. CBLC: one strike, three index
 * subtables: [40,40] format 1, [50,51] format 3, [52,53] format 3. */
static void build_bitmaps(struct buf *cblc, struct buf *cbdt)
{
	put16(cbdt, 3); put16(cbdt, 0);
	size_t smile = cbdt->n;
	put_bytes(cbdt, "\x88\x80\0\0\x88", 5); put32(cbdt, 7); put_bytes(cbdt, "smile17", 7);
	size_t flag = cbdt->n;
	put_bytes(cbdt, "\x88\x80\0\0\x88\0\0\0", 8); put32(cbdt, 6); put_bytes(cbdt, "flag18", 6);
	size_t ba = cbdt->n;
	put32(cbdt, 4); put_bytes(cbdt, "ba19", 4);
	size_t end = cbdt->n;

	put16(cblc, 3); put16(cblc, 0); put32(cblc, 1);
	size_t rec = cblc->n;
	put32(cblc, 56); put32(cblc, 0); put32(cblc, 3); put32(cblc, 0);
	for (int i = 0; i < 24; i++)
		put8(cblc, 0);
	put16(cblc, G_SMILE); put16(cblc, G_BLANK);
	put8(cblc, 109); put8(cblc, 109); put8(cblc, 32); put8(cblc, 1);
	size_t array = cblc->n;  /* = 56 */
	put16(cblc, G_SMILE); put16(cblc, G_SMILE); put32(cblc, 0);
	put16(cblc, G_FLAG_AB); put16(cblc, G_BA); put32(cblc, 0);
	put16(cblc, G_BAA); put16(cblc, G_BLANK); put32(cblc, 0);
	set32(cblc, array + 4, (uint32_t)(cblc->n - array));
	put16(cblc, 1); put16(cblc, 17); put32(cblc, (uint32_t)smile); put32(cblc, 0); put32(cblc, (uint32_t)(flag - smile));
	set32(cblc, array + 12, (uint32_t)(cblc->n - array));
	put16(cblc, 3); put16(cblc, 18); put32(cblc, (uint32_t)flag); put16(cblc, 0); put16(cblc, (unsigned)(ba - flag));
	put16(cblc, (unsigned)(ba - flag)); /* glyph 51 (BA): an empty range, no bitmap */
	set32(cblc, array + 20, (uint32_t)(cblc->n - array));
	put16(cblc, 3); put16(cblc, 19); put32(cblc, (uint32_t)ba); put16(cblc, 0); put16(cblc, 0); put16(cblc, (unsigned)(end - ba));
	set32(cblc, rec + 4, (uint32_t)(cblc->n - array));
}

/* The font: tables in tag order after a directory. */
struct table { const char *tag; const struct buf *b; };

static void build_font(struct buf *font, const struct table *t, int n)
{
	font->n = 0;
	put32(font, 0x00010000); put16(font, (unsigned)n); put16(font, 0); put16(font, 0); put16(font, 0);
	size_t off = 12 + 16 * (size_t)n;
	for (int i = 0; i < n; i++) {
		put_bytes(font, t[i].tag, 4); put32(font, 0); put32(font, (uint32_t)off); put32(font, (uint32_t)t[i].b->n);
		off += (t[i].b->n + 3) & ~(size_t)3;
	}
	for (int i = 0; i < n; i++) {
		put_bytes(font, t[i].b->d, t[i].b->n);
		while (font->n % 4)
			put8(font, 0);
	}
}

/* The usual test font; cmap_format 12 or 4; extension 1 wraps the
 * ligature lookup in an extension lookup, which also has a format 2
 * coverage instead of format 1. */
static void make_font(struct buf *font, int cmap_format, int extension)
{
	static struct buf cmap, gsub, cblc, cbdt;
	cmap.n = gsub.n = cblc.n = cbdt.n = 0;
	if (cmap_format == 12)
		build_cmap12(&cmap);
	else
		build_cmap4(&cmap);
	build_gsub(&gsub, extension, extension ? 2 : 1);
	build_bitmaps(&cblc, &cbdt);
	const struct table t[] = { { "CBDT", &cbdt }, { "CBLC", &cblc }, { "GSUB", &gsub }, { "cmap", &cmap } };
	build_font(font, t, 4);
}

static int glyph_of(const struct emoji_font *f, const uint32_t *cps, int n) { return emoji_font_glyph(f, cps, n); }
#define GLYPH(f, ...) glyph_of(f, (const uint32_t[]){ __VA_ARGS__ }, \
	(int)(sizeof (const uint32_t[]){ __VA_ARGS__ } / sizeof(uint32_t)))

enum { RI_A = 0x1f1e6, RI_B = 0x1f1e7 };

/* Opens a font the test built; NULL (the test has failed) if it does not
 * open. */
static struct emoji_font *open_built(const struct buf *font)
{
	struct emoji_font *f = emoji_font_open_mem(font->d, font->n);
	CHECK_MSG(f, "%s", error_message());
	return f;
}

/* make_font's font, opened. */
static struct emoji_font *open_test_font(struct buf *font, int cmap_format, int extension)
{
	make_font(font, cmap_format, extension);
	return open_built(font);
}

struct cmap_want {
	uint32_t cp;
	int glyph; /* 0: not in the font */
};

/* The glyphs the test font's cmap of `format` maps code points to, and the
 * keycap ligature reached through that cmap. */
static void check_cmap(int format, const struct cmap_want *want, size_t n)
{
	struct buf font;
	struct emoji_font *f = open_test_font(&font, format, 0);
	if (!f)
		return;
	for (size_t i = 0; i < n; i++)
		CHECK_MSG(emoji_font_cmap(f, want[i].cp) == want[i].glyph, "format %d: U+%04X maps to %d, not %d",
		          format, (unsigned)want[i].cp, emoji_font_cmap(f, want[i].cp), want[i].glyph);
	/* '#' U+FE0F U+20E3: the selector is dropped, the ligature joins. */
	CHECK(GLYPH(f, 0x23, 0xfe0f, 0x20e3) == G_BLANK);
	emoji_font_close(f);
}

static void test_cmap12(void)
{
	static const struct cmap_want want[] = {
		{ 0x23, G_HASH }, { 0x20e3, G_KEYCAP }, { RI_A, G_RI_A }, { 0x1f1ff, G_RI_A + 25 },
		{ 0x1f600, G_SMILE }, { 0x24, 0 }, { 0x10ffff, 0 }, { 0, 0 },
	};
	check_cmap(12, want, sizeof want / sizeof *want);
}

static void test_cmap4(void)
{
	static const struct cmap_want want[] = {
		{ 0x23, G_HASH }, { 0x20e3, G_KEYCAP }, { 0x22, 0 }, { 0x1f600, 0 },
	};
	check_cmap(4, want, sizeof want / sizeof *want);
}

/* The same sequences resolve through a plain lookup with a format 1
 * coverage and an extension lookup with a format 2 coverage. */
static void check_ligatures(int extension)
{
	struct buf font;
	struct emoji_font *f = open_test_font(&font, 12, extension);
	if (!f)
		return;
	CHECK(GLYPH(f, 0x1f600) == G_SMILE);
	CHECK(GLYPH(f, 0x1f600, 0xfe0f) == G_SMILE);
	CHECK(GLYPH(f, RI_A, RI_B) == G_FLAG_AB);
	CHECK(GLYPH(f, 0x23, 0xfe0f, 0x20e3) == G_BLANK);
	CHECK(GLYPH(f, RI_B, RI_A, RI_A) == G_BAA); /* listed before the shorter one */
	CHECK(GLYPH(f, RI_B, RI_A) == G_BA);
	CHECK(GLYPH(f, RI_B, RI_B) < 0);
	CHECK_MSG(strstr(error_message(), "does not join into one glyph (2 remain)"), "%s", error_message());
	CHECK(GLYPH(f, RI_A, RI_B, RI_A) < 0);
	CHECK(GLYPH(f, 0x1f601) < 0);
	CHECK_MSG(!strcmp(error_message(), "U+1F601 is not in the font"), "%s", error_message());
	CHECK(GLYPH(f, 0xfe0f) < 0);
	uint32_t many[EMOJI_MAX_SEQUENCE + 1] = { 0 };
	CHECK(emoji_font_glyph(f, many, EMOJI_MAX_SEQUENCE + 1) < 0);
	emoji_font_close(f);
}

static void test_gsub_ligature(void) { check_ligatures(0); }
static void test_gsub_extension(void) { check_ligatures(1); }

static void test_cblc_cbdt(void)
{
	struct buf font;
	struct emoji_font *f = open_test_font(&font, 12, 0);
	if (!f)
		return;
	const uint8_t *png;
	size_t len;
	CHECK(emoji_font_png(f, G_SMILE, &png, &len) == 0 && len == 7 && !memcmp(png, "smile17", 7));
	CHECK(emoji_font_png(f, G_FLAG_AB, &png, &len) == 0 && len == 6 && !memcmp(png, "flag18", 6));
	CHECK(emoji_font_png(f, G_BAA, &png, &len) < 0);
	CHECK(emoji_font_png(f, G_BLANK, &png, &len) == 0 && len == 4 && !memcmp(png, "ba19", 4));
	CHECK(emoji_font_png(f, G_BA, &png, &len) < 0);
	CHECK_MSG(!strcmp(error_message(), "glyph 51 has no bitmap"), "%s", error_message());
	CHECK(emoji_font_png(f, 3, &png, &len) < 0);
	CHECK(emoji_font_png(f, 60000, &png, &len) < 0);
	emoji_font_close(f);
}

/* Runs every query on a font that may be corrupt: they must fail cleanly. */
static void query_everything(const void *data, size_t len)
{
	struct emoji_font *f = emoji_font_open_mem(data, len);
	if (!f)
		return;
	static const uint32_t seqs[][3] = { { 0x1f600 }, { RI_A, RI_B }, { RI_B, RI_A, RI_A }, { 0x23, 0xfe0f, 0x20e3 } };
	static const int lens[] = { 1, 2, 3, 3 };
	for (int i = 0; i < 4; i++)
		emoji_font_glyph(f, seqs[i], lens[i]);
	for (int g = 0; g < 60; g++) {
		const uint8_t *png;
		size_t n;
		if (emoji_font_png(f, g, &png, &n) == 0 && (png < (const uint8_t *)data || png + n > (const uint8_t *)data + len))
			abort();
	}
	emoji_font_close(f);
}

/* Index subtable formats 2 (same size, consecutive glyphs), 4 (sparse,
 * with offsets) and 5 (sparse, same size), all with image format 19. */
static void test_cblc_sparse_formats(void)
{
	static struct buf cmap, cblc, cbdt, font;
	cmap.n = cblc.n = cbdt.n = 0;
	build_cmap12(&cmap);
	put16(&cbdt, 3); put16(&cbdt, 0);
	size_t data = cbdt.n;
	for (int i = 1; i <= 3; i++) {
		char img[5];
		snprintf(img, sizeof img, "img%d", i);
		put32(&cbdt, 4); put_bytes(&cbdt, img, 4);
	}
	put16(&cblc, 3); put16(&cblc, 0); put32(&cblc, 1);
	put32(&cblc, 56); put32(&cblc, 0); put32(&cblc, 3); put32(&cblc, 0);
	for (int i = 0; i < 24; i++)
		put8(&cblc, 0);
	put16(&cblc, 40); put16(&cblc, 62);
	put8(&cblc, 109); put8(&cblc, 109); put8(&cblc, 32); put8(&cblc, 1);
	size_t array = cblc.n;
	put16(&cblc, 40); put16(&cblc, 41); put32(&cblc, 0);
	put16(&cblc, 50); put16(&cblc, 53); put32(&cblc, 0);
	put16(&cblc, 60); put16(&cblc, 62); put32(&cblc, 0);
	set32(&cblc, array + 4, (uint32_t)(cblc.n - array));
	put16(&cblc, 2); put16(&cblc, 19); put32(&cblc, (uint32_t)data); put32(&cblc, 8);
	put32(&cblc, 0); put32(&cblc, 0); /* bigGlyphMetrics */
	set32(&cblc, array + 12, (uint32_t)(cblc.n - array));
	put16(&cblc, 4); put16(&cblc, 19); put32(&cblc, (uint32_t)data + 16); put32(&cblc, 1);
	put16(&cblc, 51); put16(&cblc, 0); put16(&cblc, 0); put16(&cblc, 8);
	set32(&cblc, array + 20, (uint32_t)(cblc.n - array));
	put16(&cblc, 5); put16(&cblc, 19); put32(&cblc, (uint32_t)data); put32(&cblc, 8);
	put32(&cblc, 0); put32(&cblc, 0); put32(&cblc, 2); put16(&cblc, 60); put16(&cblc, 62);
	const struct table t[] = { { "CBDT", &cbdt }, { "CBLC", &cblc }, { "cmap", &cmap } };
	build_font(&font, t, 3);
	struct emoji_font *f = open_built(&font);
	if (!f)
		return;
	static const struct { int glyph; const char *png; } want[] = {
		{ 40, "img1" }, { 41, "img2" }, { 50, NULL }, { 51, "img3" }, { 52, NULL },
		{ 60, "img1" }, { 61, NULL }, { 62, "img2" }, { 63, NULL },
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		const uint8_t *png;
		size_t len;
		int rc = emoji_font_png(f, want[i].glyph, &png, &len);
		if (want[i].png)
			CHECK_MSG(rc == 0 && len == 4 && !memcmp(png, want[i].png, 4), "glyph %d: %s", want[i].glyph,
			          rc < 0 ? error_message() : "wrong bytes");
		else
			CHECK_MSG(rc < 0 && strstr(error_message(), "has no bitmap"), "glyph %d", want[i].glyph);
	}
	/* Without GSUB, single code points still resolve. */
	CHECK(GLYPH(f, 0x1f600) == G_SMILE);
	CHECK(GLYPH(f, RI_A, RI_B) < 0);
	emoji_font_close(f);
	for (size_t n = 0; n < font.n; n += 7)
		query_everything(font.d, n);
}

static void test_truncated_fonts(void)
{
	struct buf font;
	make_font(&font, 12, 0);
	int opened = 0;
	for (size_t n = 0; n < font.n; n++) {
		/* A copy of exactly n bytes, so that ASan sees any read past it. */
		uint8_t *cut = malloc(n ? n : 1);
		memcpy(cut, font.d, n);
		struct emoji_font *f = emoji_font_open_mem(cut, n);
		opened += f != NULL;
		emoji_font_close(f);
		query_everything(cut, n);
		free(cut);
	}
	/* The directory claims the full lengths, so no truncation opens. */
	CHECK_MSG(opened == 0, "%d truncated fonts opened", opened);
	CHECK(emoji_font_open_mem(font.d, 20) == NULL);
	CHECK_MSG(strstr(error_message(), "truncated"), "%s", error_message());
	CHECK(emoji_font_open_mem("GIF89a....abcdef", 16) == NULL);
	CHECK_MSG(strstr(error_message(), "not an OpenType font"), "%s", error_message());
}

static void test_corrupt_bytes(void)
{
	struct buf font;
	make_font(&font, 12, 1);
	uint8_t *copy = malloc(font.n);
	/* Each byte set to 0xff and to 0x00 in turn: every query either works or
	 * fails with a message; ASan builds catch a stray read. */
	for (size_t i = 0; i < font.n; i++)
		for (int v = 0; v < 2; v++) {
			memcpy(copy, font.d, font.n);
			copy[i] = v ? 0xff : 0x00;
			query_everything(copy, font.n);
		}
	free(copy);
}

static void test_corrupt_offsets(void)
{
	struct buf font;
	make_font(&font, 12, 0);
	/* The CBDT table comes first, at 12 + 4*16 = 76; SMILE's length field
	 * is at 4 + 5 of it. A length past the table is an error. */
	set32(&font, 76 + 9, 0x7fffffff);
	struct emoji_font *f = emoji_font_open_mem(font.d, font.n);
	CHECK(f != NULL);
	const uint8_t *png;
	size_t len;
	CHECK(f && emoji_font_png(f, G_SMILE, &png, &len) < 0);
	CHECK_MSG(strstr(error_message(), "corrupt 'CBDT' table"), "%s", error_message());
	emoji_font_close(f);
	/* A table that claims to run past the file. */
	make_font(&font, 12, 0);
	set32(&font, 12 + 8, (uint32_t)font.n);
	CHECK(emoji_font_open_mem(font.d, font.n) == NULL);
	CHECK_MSG(strstr(error_message(), "table 'CBDT'") && strstr(error_message(), "past the file"), "%s",
	          error_message());
	/* A font without bitmaps. */
	make_font(&font, 12, 0);
	memcpy(font.d + 12, "XBDT", 4);
	CHECK(emoji_font_open_mem(font.d, font.n) == NULL);
	CHECK_MSG(strstr(error_message(), "not a colour bitmap (CBDT) font"), "%s", error_message());
}

/* A GSUB whose 64 lookups are one lookup, with a ligature set of 3000
 * copies of one ligature that never matches: 32 glyphs make 6 million
 * steps, which must end in an error rather than a long hang. */
static void test_step_budget(void)
{
	static struct buf cmap, gsub, cblc, cbdt, font;
	cmap.n = gsub.n = cblc.n = cbdt.n = 0;
	build_cmap12(&cmap);
	build_bitmaps(&cblc, &cbdt);
	enum { LOOKUPS = 64, LIGS = 3000 };
	put16(&gsub, 1); put16(&gsub, 0); put16(&gsub, 10); put16(&gsub, 12); put16(&gsub, 14);
	put16(&gsub, 0); put16(&gsub, 0);
	put16(&gsub, LOOKUPS);
	for (int i = 0; i < LOOKUPS; i++)
		put16(&gsub, 2 + 2 * LOOKUPS);
	put16(&gsub, 4); put16(&gsub, 0); put16(&gsub, 1); put16(&gsub, 8);
	size_t sub = gsub.n;
	put16(&gsub, 1); put16(&gsub, 16); put16(&gsub, 1); put16(&gsub, 10);
	put16(&gsub, 0); put16(&gsub, 0); put16(&gsub, 0); put16(&gsub, 0); /* the coverage is at sub + 16 */
	CHECK(gsub.n == sub + 16);
	put16(&gsub, 1); put16(&gsub, 1); put16(&gsub, G_RI_A);
	size_t set = gsub.n;
	CHECK(set == sub + 22);
	set16(&gsub, sub + 6, (unsigned)(set - sub));
	put16(&gsub, LIGS);
	for (int i = 0; i < LIGS; i++)
		put16(&gsub, 2 + 2 * LIGS);
	put16(&gsub, G_FLAG_AB); put16(&gsub, 2); put16(&gsub, G_SMILE);
	const struct table t[] = { { "CBDT", &cbdt }, { "CBLC", &cblc }, { "GSUB", &gsub }, { "cmap", &cmap } };
	build_font(&font, t, 4);
	struct emoji_font *f = open_built(&font);
	if (!f)
		return;
	CHECK(GLYPH(f, RI_A, RI_A) < 0);
	CHECK_MSG(strstr(error_message(), "does not join"), "%s", error_message());
	uint32_t many[EMOJI_MAX_SEQUENCE];
	for (int i = 0; i < EMOJI_MAX_SEQUENCE; i++)
		many[i] = RI_A;
	CHECK(emoji_font_glyph(f, many, EMOJI_MAX_SEQUENCE) < 0);
	CHECK_MSG(strstr(error_message(), "corrupt 'GSUB' table: over 4194304 steps for one emoji"), "%s",
	          error_message());
	emoji_font_close(f);
}

/* ---- emoji-test.txt ---- */

static const char good_list[] =
	"# emoji-test.txt\n"
	"\n"
	"# group: Smileys & Emotion\n"
	"\n"
	"# subgroup: face-smiling\n"
	"1F600                                                  ; fully-qualified     # \xF0\x9F\x98\x80 E1.0 grinning face\n"
	"263A FE0F      ; fully-qualified     # \xE2\x98\xBA\xEF\xB8\x8F E0.6 smiling face\r\n"
	"263A ; unqualified # \xE2\x98\xBA E0.6 smiling face\n"
	"# group: Flags\n"
	"# subgroup: country-flag\n"
	"1F1E6 1F1E8 ; fully-qualified # \xF0\x9F\x87\xA6\xF0\x9F\x87\xA8 E2.0 flag: Ascension Island\n"
	"#EOF\n";

static void test_emoji_list(void)
{
	FILE *fp = fmemopen((void *)good_list, sizeof good_list - 1, "r");
	struct emoji_test_reader r;
	emoji_test_open_fp(&r, fp, "list");
	struct emoji_entry e;
	CHECK(emoji_test_next(&r, &e) == 1);
	CHECK(e.ncps == 1 && e.cps[0] == 0x1f600 && e.status == EMOJI_FULLY_QUALIFIED && e.line == 6);
	CHECK(!strcmp(e.name, "grinning face") && !strcmp(e.version, "1.0"));
	CHECK(!strcmp(e.group, "Smileys & Emotion") && !strcmp(e.subgroup, "face-smiling"));
	CHECK(!strcmp(e.utf8, "\xF0\x9F\x98\x80"));
	CHECK(emoji_test_next(&r, &e) == 1);
	CHECK(e.ncps == 2 && e.cps[1] == 0xfe0f && !strcmp(e.name, "smiling face") && !strcmp(e.version, "0.6"));
	CHECK(emoji_test_next(&r, &e) == 1);
	CHECK(e.status == EMOJI_UNQUALIFIED && !strcmp(emoji_status_name(e.status), "unqualified"));
	CHECK(emoji_test_next(&r, &e) == 1);
	CHECK(e.ncps == 2 && !strcmp(e.group, "Flags") && !strcmp(e.subgroup, "country-flag"));
	CHECK(!strcmp(e.name, "flag: Ascension Island"));
	CHECK(emoji_test_next(&r, &e) == 0);
	emoji_test_close(&r);
	fclose(fp);
}

/* The message that one bad entry line after valid headers gives. */
static const char *list_error(const char *line)
{
	static char text[512];
	snprintf(text, sizeof text, "# group: G\n# subgroup: S\n%s\n", line);
	FILE *fp = fmemopen(text, strlen(text), "r");
	struct emoji_test_reader r;
	emoji_test_open_fp(&r, fp, "list");
	struct emoji_entry e;
	int rc = emoji_test_next(&r, &e);
	emoji_test_close(&r);
	fclose(fp);
	return rc < 0 ? error_message() : "(no error)";
}

static void test_emoji_list_errors(void)
{
	/* message: the whole message (exact) or a part of it */
	static const struct { const char *line, *message; bool exact; } bad[] = {
		{ "1F600 fully-qualified # \xF0\x9F\x98\x80 E1.0 x",
		  "list:3: expected 'CODE POINTS ; STATUS # EMOJI E1.0 NAME'", true },
		{ "1F6G0 ; fully-qualified # \xF0\x9F\x98\x80 E1.0 x",
		  "list:3: bad code point '1F6G0'", true },
		{ "110000 ; fully-qualified # x E1.0 x",
		  "list:3: code point 110000 is not a Unicode scalar value", false },
		{ " ; fully-qualified # x E1.0 x",
		  "list:3: no code points before ';'", true },
		{ "1F600 ; fully-qualfied # \xF0\x9F\x98\x80 E1.0 x",
		  "list:3: unknown status 'fully-qualfied'", true },
		{ "1F600 ; fully-qualified # \xF0\x9F\x98\x81 E1.0 x",
		  "list:3: the comment does not start with the emoji", false },
		{ "1F600 ; fully-qualified # \xF0\x9F\x98\x80 grinning face",
		  "list:3: no emoji version", false },
		{ "1F600 ; fully-qualified # \xF0\x9F\x98\x80 E1.0   ",
		  "list:3: no name", false },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		const char *m = list_error(bad[i].line);
		CHECK_MSG(bad[i].exact ? !strcmp(m, bad[i].message) : strstr(m, bad[i].message) != NULL, "%s", m);
	}

	static const char no_group[] = "1F600 ; fully-qualified # \xF0\x9F\x98\x80 E1.0 x\n";
	FILE *fp = fmemopen((void *)no_group, sizeof no_group - 1, "r");
	struct emoji_test_reader r;
	emoji_test_open_fp(&r, fp, "list");
	struct emoji_entry e;
	CHECK(emoji_test_next(&r, &e) < 0);
	CHECK_MSG(!strcmp(error_message(), "list:1: entry before any '# group:' line"), "%s", error_message());
	emoji_test_close(&r);
	fclose(fp);

	CHECK(emoji_test_open(&r, "/nonexistent/emoji-test.txt") < 0);
	CHECK_MSG(!strcmp(error_message(), "/nonexistent/emoji-test.txt: No such file or directory"), "%s",
	          error_message());
}

/* The real files, when installed: every fully-qualified emoji resolves. */
static void test_noto_color_emoji(void)
{
	const char *font_path = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf";
	const char *list_path = "/usr/share/unicode/emoji/emoji-test.txt";
	struct emoji_font *f = emoji_font_open(font_path);
	struct emoji_test_reader r;
	if (!f)
		SKIP("%s: %s", font_path, error_message());
	if (emoji_test_open(&r, list_path) < 0) {
		emoji_font_close(f);
		SKIP("%s", error_message());
	}
	struct emoji_entry e;
	int rc, n = 0, resolved = 0;
	while ((rc = emoji_test_next(&r, &e)) > 0) {
		if (e.status != EMOJI_FULLY_QUALIFIED)
			continue;
		n++;
		const uint8_t *png;
		size_t len;
		int g = emoji_font_glyph(f, e.cps, e.ncps);
		if (g > 0 && emoji_font_png(f, g, &png, &len) == 0 && len > 8 && !memcmp(png, "\x89PNG", 4))
			resolved++;
		else
			CHECK_MSG(0, "line %ld (%s): %s", e.line, e.name, error_message());
	}
	CHECK_MSG(rc == 0, "%s", error_message());
	CHECK_MSG(n > 3000 && resolved == n, "%d of %d resolved", resolved, n);
	emoji_test_close(&r);
	emoji_font_close(f);
}

int main(void)
{
	RUN(test_cmap12);
	RUN(test_cmap4);
	RUN(test_gsub_ligature);
	RUN(test_gsub_extension);
	RUN(test_cblc_cbdt);
	RUN(test_cblc_sparse_formats);
	RUN(test_truncated_fonts);
	RUN(test_corrupt_bytes);
	RUN(test_corrupt_offsets);
	RUN(test_step_budget);
	RUN(test_emoji_list);
	RUN(test_emoji_list_errors);
	RUN(test_noto_color_emoji);
	TEST_EXIT();
}
