/* Colour emoji out of a CBDT/CBLC font such as Noto Color Emoji.
 *
 * Such a font stores each emoji as a ready PNG. Finding the one for an emoji
 * sequence takes three steps, each a table of the font:
 *  1. cmap (format 12, or format 4 for the BMP) maps each code point to a
 *     glyph id. U+FE0F (emoji presentation selector) is dropped first: the
 *     font's glyphs already are the emoji presentation.
 *  2. GSUB ligature substitutions (lookup type 4, also inside extension
 *     lookups, type 7) join glyph runs such as man ZWJ woman ZWJ girl, two
 *     regional indicators or '#' + U+20E3 into one glyph. The lookups apply
 *     in the font's lookup order, each over the whole run; at each position
 *     the first ligature of the font's list that matches is taken (fonts
 *     list longer ligatures first). Other lookup types are not applied.
 *     A sequence resolves when exactly one glyph remains.
 *  3. CBLC indexes the bitmaps of each strike (size); CBDT holds them. The
 *     largest strike that has the glyph gives its PNG.
 * Everything is read straight from the mapped file with bounds checks: a
 * corrupt or truncated font gives an error, never a crash. */
#ifndef KNND_DATA_EMOJI_FONT_H
#define KNND_DATA_EMOJI_FONT_H

#include <stddef.h>
#include <stdint.h>

/* Longer sequences are refused (the longest RGI emoji has 10 code points). */
#define EMOJI_MAX_SEQUENCE 32

struct emoji_font;

/* Maps the font file read-only and checks its tables. Returns NULL (errorf;
 * the message does not repeat the path) on error. */
struct emoji_font *emoji_font_open(const char *path);
/* The same over bytes in memory, which the caller keeps alive and unchanged
 * until emoji_font_close. */
struct emoji_font *emoji_font_open_mem(const void *data, size_t len);
void emoji_font_close(struct emoji_font *f);

/* The glyph id cmap gives code point cp: > 0, 0 if the font lacks it, -1 on
 * a corrupt table (errorf). */
int emoji_font_cmap(const struct emoji_font *f, uint32_t cp);

/* The one glyph that the code point sequence cps[0..n) becomes (steps 1 and
 * 2 above). Returns the glyph id, or -1 (errorf) when a code point is not in
 * the font, the sequence does not join into one glyph, or a table is
 * corrupt. */
int emoji_font_glyph(const struct emoji_font *f, const uint32_t *cps, int n);

/* Points png/len at the PNG bytes of a glyph's bitmap, inside the mapped
 * font (valid until emoji_font_close). Image formats 17, 18 and 19 from
 * index subtables of formats 1 to 5. Returns 0, or -1 (errorf) if the glyph
 * has no bitmap or the tables are corrupt. */
int emoji_font_png(const struct emoji_font *f, int glyph, const uint8_t **png, size_t *len);

#endif
