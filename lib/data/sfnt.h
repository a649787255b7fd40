/* A minimal, bounds-checked reader of OpenType (sfnt) fonts.
 *
 * A font is big-endian tables found through a directory at its start. Every
 * read here goes through a span: a tagged byte range that knows its length,
 * so a corrupt offset or count gives an error naming the table, never a read
 * outside the file. Offsets inside OpenType tables are relative to the
 * subtable that holds them, so spans nest: sfnt_sub() narrows a span to the
 * bytes from an offset on, keeping the table's tag for messages. */
#ifndef KNND_DATA_SFNT_H
#define KNND_DATA_SFNT_H

#include <stddef.h>
#include <stdint.h>

struct sfnt_span {
	const uint8_t *data;
	size_t len;
	char tag[5];  /* the table this span lies in, for messages */
};

/* The whole font: its bytes and its table directory. */
struct sfnt {
	const uint8_t *data;
	size_t len;
	int ntables;
	const uint8_t *directory;  /* ntables records of 16 bytes */
};

/* Checks the header (TrueType 0x00010000, 'true' or 'OTTO') and that the
 * directory and every table in it lie inside the len bytes. The font keeps
 * pointing at data. Returns 0, or -1 (errorf). */
int sfnt_parse(struct sfnt *f, const void *data, size_t len);

/* The table with a four-letter tag. Returns 0, or -1 (errorf "no 'CBDT'
 * table") when the font lacks it. */
int sfnt_table(const struct sfnt *f, const char *tag, struct sfnt_span *table);

/* Big-endian reads at byte offset off of a span. Return 0, or -1 (errorf
 * naming the table) when the value does not lie wholly inside it. */
int sfnt_u8(const struct sfnt_span *s, size_t off, uint8_t *v);
int sfnt_u16(const struct sfnt_span *s, size_t off, uint16_t *v);
int sfnt_u32(const struct sfnt_span *s, size_t off, uint32_t *v);

/* Narrows s to its bytes from off to its end (sfnt_sub) or to len bytes
 * from off (sfnt_sub_len). Return 0, or -1 (errorf) if that lies outside s. */
int sfnt_sub(const struct sfnt_span *s, size_t off, struct sfnt_span *sub);
int sfnt_sub_len(const struct sfnt_span *s, size_t off, size_t len, struct sfnt_span *sub);

/* Narrows s to the subtable at a 16-bit offset stored at byte `at` of s
 * (the usual way OpenType links subtables). Returns 0 or -1 (errorf). */
int sfnt_sub16(const struct sfnt_span *s, size_t at, struct sfnt_span *sub);

#endif
