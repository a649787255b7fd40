/* cmap, GSUB ligatures and CBLC/CBDT: from an emoji sequence to its PNG. */
#include "data/emoji_font.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/file_map.h"
#include "data/sfnt.h"

/* Ligature lookups kept at open; a font with more is refused. */
#define MAX_LIGATURE_LOOKUPS 64

struct emoji_font {
	struct file_map map; /* the file's mapping; empty for caller's memory */
	struct sfnt sfnt;
	struct sfnt_span cmap;  /* the chosen cmap subtable */
	int cmap_format;        /* 12 or 4 */
	struct sfnt_span cblc, cbdt;
	/* The GSUB lookup tables of type 4, or 7 wrapping 4, in lookup order. */
	struct sfnt_span ligature_lookups[MAX_LIGATURE_LOOKUPS];
	int n_ligature_lookups;
};

/* Repeated offsets can make a corrupt font's loops revisit the same bytes
 * endlessly often; each query gets this many steps (the real font needs a
 * few hundred), so that such a font gives an error, not a hang. */
#define QUERY_STEPS (1L << 22)

static int spend_step(long *steps, const struct sfnt_span *s)
{
	if (--*steps >= 0)
		return 0;
	return errorf("corrupt '%s' table: over %ld steps for one emoji", s->tag, QUERY_STEPS);
}

/* ---- cmap ---- */

/* Picks the best Unicode subtable: format 12 first, else format 4. */
static int cmap_choose(struct emoji_font *f)
{
	struct sfnt_span cmap;
	uint16_t n;
	if (sfnt_table(&f->sfnt, "cmap", &cmap) < 0 || sfnt_u16(&cmap, 2, &n) < 0)
		return -1;
	for (int want = 12; want >= 4; want -= 8) {
		for (int i = 0; i < n; i++) {
			uint16_t platform, encoding, format;
			uint32_t off;
			size_t rec = 4 + (size_t)i * 8;
			if (sfnt_u16(&cmap, rec, &platform) < 0 || sfnt_u16(&cmap, rec + 2, &encoding) < 0 ||
			    sfnt_u32(&cmap, rec + 4, &off) < 0)
				return -1;
			bool unicode = platform == 0 || (platform == 3 && (encoding == 1 || encoding == 10));
			struct sfnt_span sub;
			if (!unicode || sfnt_sub(&cmap, off, &sub) < 0 || sfnt_u16(&sub, 0, &format) < 0)
				continue;
			if (format == want) {
				f->cmap = sub;
				f->cmap_format = want;
				return 0;
			}
		}
	}
	return errorf("no Unicode cmap subtable of format 12 or 4");
}

static int cmap12_lookup(const struct sfnt_span *s, uint32_t cp)
{
	uint32_t ngroups;
	if (sfnt_u32(s, 12, &ngroups) < 0)
		return -1;
	/* Groups are sorted by start code: binary search for the last start <= cp. */
	uint32_t lo = 0, hi = ngroups;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2, start, end, glyph;
		size_t g = 16 + (size_t)mid * 12;
		if (sfnt_u32(s, g, &start) < 0 || sfnt_u32(s, g + 4, &end) < 0 || sfnt_u32(s, g + 8, &glyph) < 0)
			return -1;
		if (cp < start)
			hi = mid;
		else if (cp > end)
			lo = mid + 1;
		else {
			uint64_t id = (uint64_t)glyph + (cp - start);
			return id <= 0xffff ? (int)id : 0;
		}
	}
	return 0;
}

static int cmap4_lookup(const struct sfnt_span *s, uint32_t cp)
{
	uint16_t segx2;
	if (cp > 0xffff || sfnt_u16(s, 6, &segx2) < 0)
		return cp > 0xffff ? 0 : -1;
	/* endCode[], a pad, startCode[], idDelta[], idRangeOffset[], glyphs. */
	size_t ends = 14, starts = ends + segx2 + 2, deltas = starts + segx2, ranges = deltas + segx2;
	for (size_t i = 0; i < segx2 / 2u; i++) {
		uint16_t end, start, delta, range;
		if (sfnt_u16(s, ends + 2 * i, &end) < 0)
			return -1;
		if (end < cp)
			continue;
		if (sfnt_u16(s, starts + 2 * i, &start) < 0 || sfnt_u16(s, deltas + 2 * i, &delta) < 0 ||
		    sfnt_u16(s, ranges + 2 * i, &range) < 0)
			return -1;
		if (start > cp)
			return 0;
		if (range == 0)
			return (uint16_t)(cp + delta);
		/* idRangeOffset counts from its own position in the table. */
		uint16_t g;
		if (sfnt_u16(s, ranges + 2 * i + range + 2 * (size_t)(cp - start), &g) < 0)
			return -1;
		return g ? (uint16_t)(g + delta) : 0;
	}
	return 0;
}

int emoji_font_cmap(const struct emoji_font *f, uint32_t cp)
{
	return f->cmap_format == 12 ? cmap12_lookup(&f->cmap, cp) : cmap4_lookup(&f->cmap, cp);
}

/* ---- GSUB ligatures ---- */

/* The subtable of a lookup's subtable `i`, seen through an extension
 * (type 7) if it is one. *type is the lookup type that applies to it. */
static int lookup_subtable(const struct sfnt_span *lookup, int i, struct sfnt_span *sub, uint16_t *type)
{
	if (sfnt_u16(lookup, 0, type) < 0 || sfnt_sub16(lookup, 6 + 2 * (size_t)i, sub) < 0)
		return -1;
	if (*type != 7)
		return 0;
	uint16_t format;
	uint32_t off;
	if (sfnt_u16(sub, 0, &format) < 0 || sfnt_u16(sub, 2, type) < 0 || sfnt_u32(sub, 4, &off) < 0)
		return -1;
	if (format != 1 || *type == 7)
		return errorf("corrupt '%s' table: extension subtable of format %u, type %u", sub->tag, format, *type);
	return sfnt_sub(sub, off, sub);
}

/* Reads the GSUB lookup list and keeps the ligature lookups. A font without
 * GSUB has none: single code points still resolve. */
static int gsub_load(struct emoji_font *f)
{
	struct sfnt_span gsub, list;
	uint16_t major, n;
	if (sfnt_table(&f->sfnt, "GSUB", &gsub) < 0)
		return 0;
	if (sfnt_u16(&gsub, 0, &major) < 0 || sfnt_sub16(&gsub, 8, &list) < 0 || sfnt_u16(&list, 0, &n) < 0)
		return -1;
	if (major != 1)
		return errorf("GSUB table of version %u, not 1", major);
	for (int i = 0; i < n; i++) {
		struct sfnt_span lookup, sub;
		uint16_t count, type;
		if (sfnt_sub16(&list, 2 + 2 * (size_t)i, &lookup) < 0 || sfnt_u16(&lookup, 4, &count) < 0)
			return -1;
		if (count == 0)
			continue;
		if (lookup_subtable(&lookup, 0, &sub, &type) < 0)
			return -1;
		if (type != 4)
			continue;
		if (f->n_ligature_lookups == MAX_LIGATURE_LOOKUPS)
			return errorf("GSUB has over %d ligature lookups", MAX_LIGATURE_LOOKUPS);
		f->ligature_lookups[f->n_ligature_lookups++] = lookup;
	}
	return 0;
}

/* The coverage index of glyph g: >= 0, -2 if not covered, -1 on error. */
static int coverage_index(const struct sfnt_span *cov, uint16_t g)
{
	uint16_t format, n;
	if (sfnt_u16(cov, 0, &format) < 0 || sfnt_u16(cov, 2, &n) < 0)
		return -1;
	if (format != 1 && format != 2)
		return errorf("corrupt '%s' table: coverage of format %u", cov->tag, format);
	/* Both formats are sorted: binary search over glyphs or ranges. */
	size_t stride = format == 1 ? 2 : 6;
	int lo = 0, hi = n;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		size_t at = 4 + (size_t)mid * stride;
		uint16_t first, last, index;
		if (sfnt_u16(cov, at, &first) < 0)
			return -1;
		last = first;
		if (format == 2 && (sfnt_u16(cov, at + 2, &last) < 0 || sfnt_u16(cov, at + 4, &index) < 0))
			return -1;
		if (g < first)
			hi = mid;
		else if (g > last)
			lo = mid + 1;
		else
			return format == 1 ? mid : index + (g - first);
	}
	return -2;
}

/* Tries a ligature substitution subtable at glyphs[pos]. Returns the number
 * of glyphs it joined (>= 1: then glyphs[pos] is the ligature and the rest
 * are removed), 0 if none matched, -1 on error. */
static int ligature_apply(const struct sfnt_span *sub, uint16_t *glyphs, int *n, int pos, long *steps)
{
	struct sfnt_span cov, set;
	uint16_t format, nsets, nligs;
	if (sfnt_u16(sub, 0, &format) < 0)
		return -1;
	if (format != 1)
		return errorf("corrupt '%s' table: ligature subtable of format %u", sub->tag, format);
	if (sfnt_sub16(sub, 2, &cov) < 0 || sfnt_u16(sub, 4, &nsets) < 0)
		return -1;
	int ci = coverage_index(&cov, glyphs[pos]);
	if (ci < 0)
		return ci == -2 ? 0 : -1;
	if (ci >= nsets)
		return errorf("corrupt '%s' table: coverage index %d of %u ligature sets", sub->tag, ci, nsets);
	if (sfnt_sub16(sub, 6 + 2 * (size_t)ci, &set) < 0 || sfnt_u16(&set, 0, &nligs) < 0)
		return -1;
	for (int l = 0; l < nligs; l++) {
		struct sfnt_span lig;
		uint16_t out, ncomp;
		if (spend_step(steps, sub) < 0 || sfnt_sub16(&set, 2 + 2 * (size_t)l, &lig) < 0 || sfnt_u16(&lig, 0, &out) < 0 ||
		    sfnt_u16(&lig, 2, &ncomp) < 0)
			return -1;
		if (ncomp == 0 || ncomp > *n - pos)
			continue;
		bool match = true;
		for (int k = 1; k < ncomp && match; k++) {
			uint16_t g;
			if (sfnt_u16(&lig, 4 + 2 * (size_t)(k - 1), &g) < 0)
				return -1;
			match = g == glyphs[pos + k];
		}
		if (!match)
			continue;
		glyphs[pos] = out;
		memmove(glyphs + pos + 1, glyphs + pos + ncomp, (size_t)(*n - pos - ncomp) * sizeof *glyphs);
		*n -= ncomp - 1;
		return ncomp;
	}
	return 0;
}

/* One ligature lookup over the whole run: at each position, the first of
 * its subtables that applies. */
static int lookup_apply(const struct sfnt_span *lookup, uint16_t *glyphs, int *n, long *steps)
{
	uint16_t count;
	if (sfnt_u16(lookup, 4, &count) < 0)
		return -1;
	for (int pos = 0; pos < *n; pos++) {
		for (int i = 0; i < count; i++) {
			struct sfnt_span sub;
			uint16_t type;
			if (spend_step(steps, lookup) < 0 || lookup_subtable(lookup, i, &sub, &type) < 0)
				return -1;
			if (type != 4)
				return errorf("corrupt '%s' table: a ligature lookup holds a subtable of type %u", sub.tag, type);
			int joined = ligature_apply(&sub, glyphs, n, pos, steps);
			if (joined < 0)
				return -1;
			if (joined > 0)
				break;
		}
	}
	return 0;
}

int emoji_font_glyph(const struct emoji_font *f, const uint32_t *cps, int n)
{
	uint16_t glyphs[EMOJI_MAX_SEQUENCE];
	int len = 0;
	if (n > EMOJI_MAX_SEQUENCE)
		return errorf("sequence of %d code points (at most %d)", n, EMOJI_MAX_SEQUENCE);
	for (int i = 0; i < n; i++) {
		if (cps[i] == 0xfe0f)
			continue;
		int g = emoji_font_cmap(f, cps[i]);
		if (g < 0)
			return -1;
		if (g == 0)
			return errorf("U+%04X is not in the font", (unsigned)cps[i]);
		glyphs[len++] = (uint16_t)g;
	}
	if (len == 0)
		return errorf("empty sequence");
	long steps = QUERY_STEPS;
	for (int i = 0; i < f->n_ligature_lookups && len > 1; i++)
		if (lookup_apply(&f->ligature_lookups[i], glyphs, &len, &steps) < 0)
			return -1;
	if (len != 1)
		return errorf("the sequence does not join into one glyph (%d remain)", len);
	return glyphs[0];
}

/* ---- CBLC / CBDT ---- */

/* Where glyph g's image data lies in CBDT, by one index subtable whose
 * range [first, last] holds g: *off and *len (0 when the glyph has none),
 * and the image format. */
static int index_subtable_locate(const struct sfnt_span *ist, int first, int g,
                                 uint32_t *off, uint32_t *len, uint16_t *image_format, long *steps)
{
	uint16_t index_format;
	uint32_t base;
	if (sfnt_u16(ist, 0, &index_format) < 0 || sfnt_u16(ist, 2, image_format) < 0 ||
	    sfnt_u32(ist, 4, &base) < 0)
		return -1;
	uint32_t a = 0, b = 0;
	size_t k = (size_t)(g - first);
	switch (index_format) {
	case 1: /* uint32 offsets, one more than glyphs */
		if (sfnt_u32(ist, 8 + 4 * k, &a) < 0 || sfnt_u32(ist, 12 + 4 * k, &b) < 0)
			return -1;
		break;
	case 3: { /* uint16 offsets */
		uint16_t a16, b16;
		if (sfnt_u16(ist, 8 + 2 * k, &a16) < 0 || sfnt_u16(ist, 10 + 2 * k, &b16) < 0)
			return -1;
		a = a16, b = b16;
		break;
	}
	case 2: { /* every glyph the same size, bigGlyphMetrics in the index */
		uint32_t size;
		if (sfnt_u32(ist, 8, &size) < 0)
			return -1;
		a = (uint32_t)((uint64_t)size * k), b = a + size;
		if ((uint64_t)size * (k + 1) > UINT32_MAX)
			return errorf("corrupt '%s' table: image size %u overflows", ist->tag, size);
		break;
	}
	case 4: case 5: { /* sparse: glyph ids listed (4: with offsets; 5: same size) */
		uint32_t nglyphs, size = 0;
		size_t ids = index_format == 4 ? 12 : 24;
		if (index_format == 5 && sfnt_u32(ist, 8, &size) < 0)
			return -1;
		if (sfnt_u32(ist, index_format == 4 ? 8 : 20, &nglyphs) < 0)
			return -1;
		size_t stride = index_format == 4 ? 4 : 2;
		bool found = false;
		for (uint32_t i = 0; i < nglyphs && !found; i++) {
			uint16_t id, o1, o2;
			if (spend_step(steps, ist) < 0 || sfnt_u16(ist, ids + i * stride, &id) < 0)
				return -1;
			if (id != g)
				continue;
			found = true;
			if (index_format == 5) {
				a = (uint32_t)((uint64_t)size * i), b = a + size;
				if ((uint64_t)size * (i + 1) > UINT32_MAX)
					return errorf("corrupt '%s' table: image size %u overflows", ist->tag, size);
			} else if (sfnt_u16(ist, ids + i * 4 + 2, &o1) < 0 || sfnt_u16(ist, ids + i * 4 + 6, &o2) < 0) {
				return -1;
			} else {
				a = o1, b = o2;
			}
		}
		break;
	}
	default:
		return errorf("corrupt '%s' table: index subtable of format %u", ist->tag, index_format);
	}
	if (b < a)
		return errorf("corrupt '%s' table: glyph %d's image data ends before it starts", ist->tag, g);
	if ((uint64_t)base + b > UINT32_MAX)
		return errorf("corrupt '%s' table: glyph %d's image offset overflows", ist->tag, g);
	*off = base + a;
	*len = b - a;
	return 0;
}

/* Finds glyph g in one strike (a BitmapSize record at `rec` of CBLC).
 * Returns 1 with its data range and image format, 0 if the strike lacks it. */
static int strike_locate(const struct sfnt_span *cblc, size_t rec, int g,
                         uint32_t *off, uint32_t *len, uint16_t *image_format, long *steps)
{
	uint32_t array_off, n;
	uint16_t start, end;
	if (sfnt_u32(cblc, rec, &array_off) < 0 || sfnt_u32(cblc, rec + 8, &n) < 0 ||
	    sfnt_u16(cblc, rec + 40, &start) < 0 || sfnt_u16(cblc, rec + 42, &end) < 0)
		return -1;
	if (g < start || g > end)
		return 0;
	struct sfnt_span array;
	if (sfnt_sub(cblc, array_off, &array) < 0)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		uint16_t first, last;
		uint32_t add;
		size_t e = (size_t)i * 8;
		if (spend_step(steps, cblc) < 0 || sfnt_u16(&array, e, &first) < 0 || sfnt_u16(&array, e + 2, &last) < 0 ||
		    sfnt_u32(&array, e + 4, &add) < 0)
			return -1;
		if (g < first || g > last)
			continue;
		struct sfnt_span ist;
		if (sfnt_sub(&array, add, &ist) < 0 ||
		    index_subtable_locate(&ist, first, g, off, len, image_format, steps) < 0)
			return -1;
		return *len > 0;
	}
	return 0;
}

int emoji_font_png(const struct emoji_font *f, int glyph, const uint8_t **png, size_t *len)
{
	uint32_t nsizes;
	if (sfnt_u32(&f->cblc, 4, &nsizes) < 0)
		return -1;
	/* The largest strike (by ppemY) that has the glyph. */
	int best_ppem = -1;
	uint32_t best_off = 0, best_len = 0;
	uint16_t best_format = 0;
	long steps = QUERY_STEPS;
	for (uint32_t i = 0; i < nsizes; i++) {
		size_t rec = 8 + (size_t)i * 48;
		uint8_t ppem;
		uint32_t off = 0, dlen = 0;
		uint16_t format = 0;
		if (spend_step(&steps, &f->cblc) < 0 || sfnt_u8(&f->cblc, rec + 45, &ppem) < 0)
			return -1;
		int has = strike_locate(&f->cblc, rec, glyph, &off, &dlen, &format, &steps);
		if (has < 0)
			return -1;
		if (has && ppem > best_ppem)
			best_ppem = ppem, best_off = off, best_len = dlen, best_format = format;
	}
	if (best_ppem < 0)
		return errorf("glyph %d has no bitmap", glyph);
	struct sfnt_span data;
	if (sfnt_sub_len(&f->cbdt, best_off, best_len, &data) < 0)
		return -1;
	/* Formats 17 and 18 put small (5 bytes) or big (8 bytes) metrics first. */
	size_t head;
	switch (best_format) {
	case 17: head = 5; break;
	case 18: head = 8; break;
	case 19: head = 0; break;
	default: return errorf("glyph %d's bitmap is of image format %u, not a PNG (17, 18 or 19)", glyph, best_format);
	}
	uint32_t png_len;
	struct sfnt_span bytes;
	if (sfnt_u32(&data, head, &png_len) < 0 || sfnt_sub_len(&data, head + 4, png_len, &bytes) < 0)
		return -1;
	*png = bytes.data;
	*len = bytes.len;
	return 0;
}

/* ---- opening ---- */

static int font_load(struct emoji_font *f, const void *data, size_t len)
{
	uint16_t major;
	if (sfnt_parse(&f->sfnt, data, len) < 0 || cmap_choose(f) < 0)
		return -1;
	if (sfnt_table(&f->sfnt, "CBLC", &f->cblc) < 0 || sfnt_table(&f->sfnt, "CBDT", &f->cbdt) < 0)
		return error_prefix("not a colour bitmap (CBDT) font");
	if (sfnt_u16(&f->cblc, 0, &major) < 0)
		return -1;
	if (major != 2 && major != 3)
		return errorf("CBLC table of version %u, not 2 or 3", major);
	return gsub_load(f);
}

struct emoji_font *emoji_font_open_mem(const void *data, size_t len)
{
	struct emoji_font *f = calloc(1, sizeof *f);
	if (!f) {
		errorf("out of memory");
		return NULL;
	}
	if (font_load(f, data, len) < 0) {
		free(f);
		return NULL;
	}
	return f;
}

struct emoji_font *emoji_font_open(const char *path)
{
	struct file_map map;
	if (file_map_open(&map, path) < 0)
		return NULL;
	if (!map.size) {
		errorf("empty file, not a font");
		return NULL;
	}
	struct emoji_font *f = emoji_font_open_mem(map.data, map.size);
	if (!f) {
		file_map_close(&map);
		return NULL;
	}
	f->map = map;
	return f;
}

void emoji_font_close(struct emoji_font *f)
{
	if (!f)
		return;
	file_map_close(&f->map);
	free(f);
}
