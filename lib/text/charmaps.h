/* The single-byte code pages ftfy 6 tries when it repairs mojibake, in the
 * order it tries them (tables generated from Python's codecs, see
 * lib/text/charmaps.c). */
#ifndef KNND_TEXT_CHARMAPS_H
#define KNND_TEXT_CHARMAPS_H

#include <stdint.h>

#define CHARMAP_COUNT 10

struct charmap {
	const char *name;   /* Python's codec name, "sloppy-" for ftfy's variants */
	int sloppy;
	uint16_t decode[256]; /* byte -> code point; a bijection */
};

extern const struct charmap charmaps[CHARMAP_COUNT];
/* 0x81, 0x8d, 0x8f, 0x90, 0x9d: strict windows-1252 refuses these. */
extern const unsigned char windows1252_undefined[5];

#endif
