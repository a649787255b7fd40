#include "stream/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"
#include "stream/scalar_text.h"

/* A template is a list of pieces, each literal text or a field name;
 * literal pieces have the doubled braces already undone. */
struct piece {
	char *text;
	bool is_field;
};

struct template {
	char *source;
	struct piece *pieces;
	int n;
};

static void add_piece(struct template *t, const char *s, size_t len, bool is_field)
{
	t->pieces = xrealloc(t->pieces, (t->n + 1) * sizeof *t->pieces);
	t->pieces[t->n++] = (struct piece){ xstrndup(s, len), is_field };
}

/* Appends s[0..len) to the literal piece being built (the last one). */
static void extend_literal(struct template *t, const char *s, size_t len)
{
	if (t->n == 0 || t->pieces[t->n - 1].is_field) {
		add_piece(t, s, len, false);
		return;
	}
	struct piece *p = &t->pieces[t->n - 1];
	size_t old = strlen(p->text);
	p->text = xrealloc(p->text, old + len + 1);
	memcpy(p->text + old, s, len);
	p->text[old + len] = 0;
}

struct template *template_parse(const char *text)
{
	struct template *t = xcalloc(1, sizeof *t);
	t->source = xstrdup(text);
	const char *s = text;
	while (*s) {
		size_t column = s - text + 1;
		if ((s[0] == '{' && s[1] == '{') || (s[0] == '}' && s[1] == '}')) {
			extend_literal(t, s, 1);
			s += 2;
		} else if (*s == '}') {
			template_free(t);
			errorf("'}' at column %zu has no '{' (write '}}' for a brace)", column);
			return NULL;
		} else if (*s == '{') {
			const char *end = strpbrk(s + 1, "{}");
			if (!end || *end == '{') {
				template_free(t);
				errorf("'{' at column %zu is not closed (write '{{' for a brace)", column);
				return NULL;
			}
			if (end == s + 1) {
				template_free(t);
				errorf("'{}' at column %zu names no field", column);
				return NULL;
			}
			add_piece(t, s + 1, end - s - 1, true);
			s = end + 1;
		} else {
			size_t len = strcspn(s, "{}");
			extend_literal(t, s, len);
			s += len;
		}
	}
	return t;
}

int template_expand(const struct template *t, const struct record *r, struct mp_buf *out)
{
	for (int i = 0; i < t->n; i++) {
		const struct piece *p = &t->pieces[i];
		if (!p->is_field) {
			mp_put_bytes(out, p->text, strlen(p->text));
			continue;
		}
		const struct value *v = record_get(r, p->text);
		if (!v)
			return errorf("field '%s' is missing", p->text);
		if (scalar_text(v, out) < 0) {
			char why[128];
			snprintf(why, sizeof why, "%s", error_message());
			return errorf("field '%s' %s", p->text, why);
		}
	}
	return 0;
}

const char *template_text(const struct template *t)
{
	return t->source;
}

void template_free(struct template *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->n; i++)
		free(t->pieces[i].text);
	free(t->pieces);
	free(t->source);
	free(t);
}
