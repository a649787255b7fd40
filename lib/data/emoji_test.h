/* emoji-test.txt (Unicode's list of emoji, unicode-data's
 * /usr/share/unicode/emoji/emoji-test.txt), read one entry at a time.
 *
 * The file is "# group: NAME" and "# subgroup: NAME" headers, other comments
 * and blank lines, and entries such as
 *   1F468 200D 1F469 ; fully-qualified # 👨‍👩 E2.0 family: man, woman
 * code points in hex, a status, then a comment with the emoji itself, the
 * emoji version that introduced it and its CLDR name. */
#ifndef KNND_DATA_EMOJI_TEST_H
#define KNND_DATA_EMOJI_TEST_H

#include <stdint.h>
#include <stdio.h>

#include "data/emoji_font.h"

enum emoji_status {
	EMOJI_COMPONENT,
	EMOJI_FULLY_QUALIFIED,
	EMOJI_MINIMALLY_QUALIFIED,
	EMOJI_UNQUALIFIED,
};

/* "fully-qualified" and so on, as in the file. */
const char *emoji_status_name(enum emoji_status s);

/* One entry. The strings point into the reader and stay valid until the
 * next emoji_test_next or emoji_test_close. */
struct emoji_entry {
	uint32_t cps[EMOJI_MAX_SEQUENCE];
	int ncps;
	enum emoji_status status;
	const char *utf8;     /* the sequence as UTF-8, checked against the comment */
	const char *name;     /* CLDR short name: "red heart" */
	const char *version;  /* emoji version: "0.6" */
	const char *group;    /* "Smileys & Emotion" */
	const char *subgroup; /* "emotion" */
	long line;            /* 1-based line number in the file */
};

struct emoji_test_reader {
	FILE *fp;
	int own_fp;
	char *path;           /* for messages */
	long line;
	char *buf;            /* the current line */
	size_t cap;
	char *group, *subgroup;
	char utf8[EMOJI_MAX_SEQUENCE * 4 + 1];
};

/* Opens path for reading. Returns 0, or -1 (errorf, message starts with the
 * path). */
int emoji_test_open(struct emoji_test_reader *r, const char *path);
/* Reads from an open stream, which stays the caller's; path is for messages. */
void emoji_test_open_fp(struct emoji_test_reader *r, FILE *fp, const char *path);

/* The next entry: 1, or 0 at the end of the file, or -1 (errorf
 * "PATH:LINE: problem") for a malformed line or a read error. */
int emoji_test_next(struct emoji_test_reader *r, struct emoji_entry *e);

void emoji_test_close(struct emoji_test_reader *r);

#endif
