/* Bounds-checked big-endian reads over a font's tables. */
#include "data/sfnt.h"

#include <string.h>

#include "core/error.h"

/* A directory record: tag, checksum, offset, length (4 bytes each). */
enum { SFNT_HEADER = 12, SFNT_RECORD = 16 };

static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p) { return be16(p) << 16 | be16(p + 2); }

/* A printable copy of a four-byte tag, with '?' for other bytes. */
static void tag_string(const uint8_t *p, char out[5])
{
	for (int i = 0; i < 4; i++)
		out[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
	out[4] = 0;
}

int sfnt_parse(struct sfnt *f, const void *data, size_t len)
{
	memset(f, 0, sizeof *f);
	const uint8_t *p = data;
	if (len < SFNT_HEADER)
		return errorf("not an OpenType font (%zu bytes, too short for its header)", len);
	uint32_t version = be32(p);
	if (version != 0x00010000 && version != 0x74727565 /* 'true' */ && version != 0x4f54544f /* 'OTTO' */)
		return errorf("not an OpenType font (version %02x %02x %02x %02x)", p[0], p[1], p[2], p[3]);
	uint32_t ntables = be16(p + 4);
	if (len - SFNT_HEADER < (size_t)ntables * SFNT_RECORD)
		return errorf("truncated: the table directory needs %u entries, the file has %zu bytes",
		              ntables, len);
	for (uint32_t i = 0; i < ntables; i++) {
		const uint8_t *rec = p + SFNT_HEADER + i * SFNT_RECORD;
		uint64_t off = be32(rec + 8), tlen = be32(rec + 12);
		if (off + tlen > len) {
			char tag[5];
			tag_string(rec, tag);
			return errorf("truncated: table '%s' (%llu bytes at %llu) ends past the file's %zu bytes",
			              tag, (unsigned long long)tlen, (unsigned long long)off, len);
		}
	}
	f->data = p;
	f->len = len;
	f->ntables = (int)ntables;
	f->directory = p + SFNT_HEADER;
	return 0;
}

int sfnt_table(const struct sfnt *f, const char *tag, struct sfnt_span *table)
{
	for (int i = 0; i < f->ntables; i++) {
		const uint8_t *rec = f->directory + (size_t)i * SFNT_RECORD;
		if (memcmp(rec, tag, 4))
			continue;
		table->data = f->data + be32(rec + 8);
		table->len = be32(rec + 12);
		memcpy(table->tag, tag, 4);
		table->tag[4] = 0;
		return 0;
	}
	return errorf("no '%.4s' table", tag);
}

/* 0 if n bytes at off lie inside s, else -1 with a message naming the table. */
static int check_range(const struct sfnt_span *s, size_t off, size_t n)
{
	if (off > s->len || s->len - off < n)
		return errorf("corrupt '%s' table: %zu bytes at offset %zu lie past the end of their subtable (%zu bytes)",
		              s->tag, n, off, s->len);
	return 0;
}

int sfnt_u8(const struct sfnt_span *s, size_t off, uint8_t *v)
{
	if (check_range(s, off, 1) < 0)
		return -1;
	*v = s->data[off];
	return 0;
}

int sfnt_u16(const struct sfnt_span *s, size_t off, uint16_t *v)
{
	if (check_range(s, off, 2) < 0)
		return -1;
	*v = (uint16_t)be16(s->data + off);
	return 0;
}

int sfnt_u32(const struct sfnt_span *s, size_t off, uint32_t *v)
{
	if (check_range(s, off, 4) < 0)
		return -1;
	*v = be32(s->data + off);
	return 0;
}

int sfnt_sub_len(const struct sfnt_span *s, size_t off, size_t len, struct sfnt_span *sub)
{
	if (check_range(s, off, len) < 0)
		return -1;
	*sub = *s;
	sub->data = s->data + off;
	sub->len = len;
	return 0;
}

int sfnt_sub(const struct sfnt_span *s, size_t off, struct sfnt_span *sub)
{
	if (check_range(s, off, 0) < 0)
		return -1;
	return sfnt_sub_len(s, off, s->len - off, sub);
}

int sfnt_sub16(const struct sfnt_span *s, size_t at, struct sfnt_span *sub)
{
	uint16_t off;
	if (sfnt_u16(s, at, &off) < 0)
		return -1;
	return sfnt_sub(s, off, sub);
}
