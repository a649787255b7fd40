/* A line-by-line parser of emoji-test.txt. */
#include "data/emoji_test.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "text/unicode.h"

static const char *const status_names[] = {
	[EMOJI_COMPONENT] = "component",
	[EMOJI_FULLY_QUALIFIED] = "fully-qualified",
	[EMOJI_MINIMALLY_QUALIFIED] = "minimally-qualified",
	[EMOJI_UNQUALIFIED] = "unqualified",
};

const char *emoji_status_name(enum emoji_status s)
{
	return (unsigned)s < sizeof status_names / sizeof *status_names ? status_names[s] : "?";
}

static char *dup_or_null(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	return d ? memcpy(d, s, n) : NULL;
}

void emoji_test_open_fp(struct emoji_test_reader *r, FILE *fp, const char *path)
{
	memset(r, 0, sizeof *r);
	r->fp = fp;
	r->path = dup_or_null(path);
}

int emoji_test_open(struct emoji_test_reader *r, const char *path)
{
	FILE *fp = fopen(path, "r");
	if (!fp) {
		memset(r, 0, sizeof *r);
		return errorf("%s: %s", path, strerror(errno));
	}
	emoji_test_open_fp(r, fp, path);
	r->own_fp = 1;
	return 0;
}

void emoji_test_close(struct emoji_test_reader *r)
{
	if (r->own_fp && r->fp)
		fclose(r->fp);
	free(r->path);
	free(r->buf);
	free(r->group);
	free(r->subgroup);
	memset(r, 0, sizeof *r);
}

static char *skip_space(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* Cuts trailing white space (and a CR) off s in place. */
static void trim_end(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
}

/* Replaces *slot with a copy of value. */
static int set_header(struct emoji_test_reader *r, char **slot, const char *value)
{
	char *copy = dup_or_null(value);
	if (!copy)
		return errorf("%s:%ld: out of memory", r->path, r->line);
	free(*slot);
	*slot = copy;
	return 0;
}

/* "# group: X" and "# subgroup: Y" set the headers; other comments are skipped. */
static int read_comment(struct emoji_test_reader *r, char *s)
{
	s = skip_space(s + 1);
	if (!strncmp(s, "group:", 6)) {
		if (set_header(r, &r->group, skip_space(s + 6)) < 0)
			return -1;
		free(r->subgroup);
		r->subgroup = NULL;
		return 0;
	}
	if (!strncmp(s, "subgroup:", 9))
		return set_header(r, &r->subgroup, skip_space(s + 9));
	return 0;
}

/* "1F468 200D 1F469 " into e->cps. */
static int parse_code_points(struct emoji_test_reader *r, char *s, struct emoji_entry *e)
{
	e->ncps = 0;
	for (s = skip_space(s); *s; s = skip_space(s)) {
		size_t digits = strspn(s, "0123456789abcdefABCDEF");
		char *end = s + digits;
		unsigned long cp = digits <= 6 ? strtoul(s, NULL, 16) : 0;
		if (digits == 0 || digits > 6 || (*end && *end != ' ' && *end != '\t'))
			return errorf("%s:%ld: bad code point '%.*s'", r->path, r->line, (int)strcspn(s, " \t"), s);
		if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return errorf("%s:%ld: code point %lX is not a Unicode scalar value", r->path, r->line, cp);
		if (e->ncps == EMOJI_MAX_SEQUENCE)
			return errorf("%s:%ld: more than %d code points", r->path, r->line, EMOJI_MAX_SEQUENCE);
		e->cps[e->ncps++] = (uint32_t)cp;
		s = end;
	}
	if (e->ncps == 0)
		return errorf("%s:%ld: no code points before ';'", r->path, r->line);
	return 0;
}

/* " fully-qualified " into e->status. */
static int parse_status(struct emoji_test_reader *r, char *s, struct emoji_entry *e)
{
	s = skip_space(s);
	trim_end(s);
	for (size_t i = 0; i < sizeof status_names / sizeof *status_names; i++)
		if (!strcmp(s, status_names[i])) {
			e->status = (enum emoji_status)i;
			return 0;
		}
	return errorf("%s:%ld: unknown status '%s'", r->path, r->line, s);
}

/* " 👨‍👩 E2.0 family: man, woman": the emoji (checked against the code
 * points), its version and its name. */
static int parse_comment(struct emoji_test_reader *r, char *s, struct emoji_entry *e)
{
	size_t n = 0;
	for (int i = 0; i < e->ncps; i++)
		n += (size_t)utf8_put(e->cps[i], r->utf8 + n);
	r->utf8[n] = 0;
	s = skip_space(s);
	/* strnlen first: a code point 0 puts a NUL into the UTF-8, where
	 * strncmp would stop and let s[n] read past a shorter comment */
	if (strnlen(s, n) != n || memcmp(s, r->utf8, n) || (s[n] != ' ' && s[n] != '\t'))
		return errorf("%s:%ld: the comment does not start with the emoji of the code points", r->path, r->line);
	s = skip_space(s + n);
	char *version = s + 1;
	size_t vlen = strspn(version, "0123456789.");
	char after = version[vlen];
	if (*s != 'E' || vlen == 0 || (after != ' ' && after != '\t' && after != 0))
		return errorf("%s:%ld: no emoji version (E1.0) after the emoji", r->path, r->line);
	version[vlen] = 0;
	char *name = after ? skip_space(version + vlen + 1) : version + vlen;
	trim_end(name);
	if (!*name)
		return errorf("%s:%ld: no name after the emoji version", r->path, r->line);
	e->utf8 = r->utf8;
	e->version = version;
	e->name = name;
	return 0;
}

int emoji_test_next(struct emoji_test_reader *r, struct emoji_entry *e)
{
	ssize_t len;
	while ((len = getline(&r->buf, &r->cap, r->fp)) > 0) {
		r->line++;
		char *s = r->buf;
		if (strlen(s) != (size_t)len)
			return errorf("%s:%ld: NUL byte in the line", r->path, r->line);
		trim_end(s);
		s = skip_space(s);
		if (!*s)
			continue;
		if (*s == '#') {
			if (read_comment(r, s) < 0)
				return -1;
			continue;
		}
		char *semi = strchr(s, ';'), *hash = strchr(s, '#');
		if (!semi || !hash || hash < semi)
			return errorf("%s:%ld: expected 'CODE POINTS ; STATUS # EMOJI E1.0 NAME'", r->path, r->line);
		*semi = *hash = 0;
		if (parse_code_points(r, s, e) < 0 || parse_status(r, semi + 1, e) < 0 ||
		    parse_comment(r, hash + 1, e) < 0)
			return -1;
		if (!r->group || !r->subgroup)
			return errorf("%s:%ld: entry before any '# %s:' line", r->path, r->line,
			              r->group ? "subgroup" : "group");
		e->group = r->group;
		e->subgroup = r->subgroup;
		e->line = r->line;
		return 1;
	}
	if (ferror(r->fp))
		return errorf("%s: read error after line %ld", r->path, r->line);
	return 0;
}
