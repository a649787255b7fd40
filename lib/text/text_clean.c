/* The CLIP text clean-up: ftfy.fix_text's default fixes (all but the
 * mojibake repair, which is mojibake.c), html.unescape, and the reference's
 * whitespace clean-up and lower-casing. Each function names the Python it
 * reproduces; formats/clip-tokenizer.md has the whole pipeline. */
#include "text/text_clean.h"

#include <stdlib.h>
#include <string.h>

#include "text/charmaps.h"
#include "text/html_entities.h"

/* ---- HTML character references ---- */

/* The entity named by the ASCII string name[0..len), or NULL. */
static const char *entity_lookup(const struct html_entity *table, int count, const char *name, size_t len)
{
	int lo = 0, hi = count;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		const char *m = table[mid].name;
		int c = strncmp(m, name, len);
		if (c == 0)
			c = m[len] != 0; /* m is longer: it sorts after */
		if (c == 0)
			return table[mid].value;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void append_utf8_value(struct ustr *out, const char *v)
{
	ustr_append_utf8(out, v, strlen(v));
}

static bool is_ascii_digit(uint32_t c)
{
	return c >= '0' && c <= '9';
}

static bool is_ascii_alpha(uint32_t c)
{
	return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static int hex_value(uint32_t c)
{
	if (is_ascii_digit(c))
		return (int)(c - '0');
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
		return (int)((c | 0x20) - 'a' + 10);
	return -1;
}

/* html._replace_charref for a numeric reference whose value is num
 * (saturated: anything past U+10FFFF behaves alike). */
static void append_numeric_charref(struct ustr *out, uint32_t num)
{
	if (num == 0) {
		ustr_push(out, 0xFFFD);
	} else if (num == 0x0D) {
		ustr_push(out, '\r');
	} else if (num >= 0x80 && num <= 0x9F) {
		/* HTML5 reads these as windows-1252, undefined bytes as themselves. */
		ustr_push(out, charmaps[1].decode[num]);
	} else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
		ustr_push(out, 0xFFFD);
	} else if ((num >= 0x01 && num <= 0x08) || num == 0x0B || (num >= 0x0E && num <= 0x1F) || num == 0x7F ||
	           (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE) {
		/* html._invalid_codepoints: dropped. */
	} else {
		ustr_push(out, num);
	}
}

/* Whether c may be part of a named reference in html.unescape's pattern
 * [^\t\n\f <&#;]{1,32}. */
static bool charref_name_char(uint32_t c)
{
	return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' && c != ';';
}

/* Tries html.unescape's pattern at s[0] == '&'. Returns the length matched
 * (0 for no match) and appends the replacement. */
static size_t unescape_one(const uint32_t *s, size_t n, struct ustr *out)
{
	size_t j = 1;
	if (j < n && s[j] == '#') {
		size_t k = j + 1;
		uint32_t num = 0;
		if (k < n && is_ascii_digit(s[k])) {
			while (k < n && is_ascii_digit(s[k])) {
				num = num > 0x110000 ? 0x110000 : num * 10 + (s[k] - '0');
				k++;
			}
		} else if (k < n && (s[k] == 'x' || s[k] == 'X') && k + 1 < n && hex_value(s[k + 1]) >= 0) {
			k++;
			while (k < n && hex_value(s[k]) >= 0) {
				num = num > 0x110000 ? 0x110000 : num * 16 + (uint32_t)hex_value(s[k]);
				k++;
			}
		} else {
			return 0;
		}
		if (k < n && s[k] == ';')
			k++;
		append_numeric_charref(out, num);
		return k;
	}
	/* A named reference: the name as ASCII bytes; any other code point
	 * (0x80 here) keeps that prefix out of the table. */
	char name[34];
	size_t len = 0;
	while (j + len < n && len < 32 && charref_name_char(s[j + len])) {
		uint32_t c = s[j + len];
		name[len++] = c < 0x80 ? (char)c : (char)0x80;
	}
	if (len == 0)
		return 0;
	if (j + len < n && s[j + len] == ';')
		name[len++] = ';';
	const char *v = entity_lookup(html5_entities, html5_entity_count, name, len);
	if (v) {
		append_utf8_value(out, v);
		return 1 + len;
	}
	/* The longest legacy name (one without ';') that is a prefix. */
	for (size_t x = len - 1; x >= 2; x--) {
		v = entity_lookup(html5_entities, html5_entity_count, name, x);
		if (v) {
			append_utf8_value(out, v);
			ustr_append(out, s + 1 + x, len - x);
			return 1 + len;
		}
	}
	ustr_append(out, s, 1 + len);
	return 1 + len;
}

void html_unescape(const uint32_t *s, size_t n, struct ustr *out)
{
	ustr_reserve(out, n);
	for (size_t i = 0; i < n;) {
		size_t m = s[i] == '&' ? unescape_one(s + i, n - i, out) : 0;
		if (m) {
			i += m;
		} else {
			ustr_push(out, s[i]);
			i++;
		}
	}
}

void ftfy_unescape_html(const uint32_t *s, size_t n, struct ustr *out)
{
	struct ustr tmp = { 0 };
	ustr_reserve(out, n);
	for (size_t i = 0; i < n;) {
		/* ftfy's HTML_ENTITY_RE: &#?[0-9A-Za-z]{1,24}; */
		size_t j = i + 1, run = 0;
		if (s[i] != '&') {
			ustr_push(out, s[i++]);
			continue;
		}
		bool numeric = j < n && s[j] == '#';
		if (numeric)
			j++;
		while (j + run < n && run <= 24 && (is_ascii_digit(s[j + run]) || is_ascii_alpha(s[j + run])))
			run++;
		if (run < 1 || run > 24 || j + run >= n || s[j + run] != ';') {
			ustr_push(out, s[i++]);
			continue;
		}
		size_t end = j + run + 1;
		if (!numeric) {
			char name[26];
			for (size_t k = 0; k <= run; k++)
				name[k] = (char)s[j + k];
			const char *v = entity_lookup(html5_entities, html5_entity_count, name, run + 1);
			if (!v)
				v = entity_lookup(ftfy_upper_entities, ftfy_upper_entity_count, name, run + 1);
			if (v)
				append_utf8_value(out, v);
			else
				ustr_append(out, s + i, end - i);
		} else {
			/* html.unescape decides, but only a reference that used up its
			 * ';' counts. */
			tmp.len = 0;
			html_unescape(s + i, end - i, &tmp);
			bool semicolon = false;
			for (size_t k = 0; k < tmp.len; k++)
				semicolon |= tmp.s[k] == ';';
			if (semicolon)
				ustr_append(out, s + i, end - i);
			else
				ustr_append(out, tmp.s, tmp.len);
		}
		i = end;
	}
	ustr_free(&tmp);
}

/* ---- ftfy's character fixes (ftfy.fixes), each in place or into out ---- */

/* fix_c1_controls: U+0080..U+009F read as windows-1252, as browsers do. */
static void fix_c1_controls(struct ustr *t)
{
	for (size_t i = 0; i < t->len; i++)
		if (t->s[i] >= 0x80 && t->s[i] <= 0x9F)
			t->s[i] = charmaps[1].decode[t->s[i]];
}

/* fix_latin_ligatures: Latin typographic ligatures and legacy digraphs
 * spelled out; other scripts' ligatures (and æ, œ) stay. */
static const struct {
	uint32_t from;
	uint32_t to[3];
} latin_ligatures[] = {
	{ 0x0132, { 'I', 'J' } }, { 0x0133, { 'i', 'j' } }, { 0x0149, { 0x02BC, 'n' } },
	{ 0x01C4, { 'D', 0x017D } }, { 0x01C5, { 'D', 0x017E } }, { 0x01C6, { 'd', 0x017E } },
	{ 0x01C7, { 'L', 'J' } }, { 0x01C8, { 'L', 'j' } }, { 0x01C9, { 'l', 'j' } },
	{ 0x01CA, { 'N', 'J' } }, { 0x01CB, { 'N', 'j' } }, { 0x01CC, { 'n', 'j' } },
	{ 0x01F1, { 'D', 'Z' } }, { 0x01F2, { 'D', 'z' } }, { 0x01F3, { 'd', 'z' } },
	{ 0xFB00, { 'f', 'f' } }, { 0xFB01, { 'f', 'i' } }, { 0xFB02, { 'f', 'l' } },
	{ 0xFB03, { 'f', 'f', 'i' } }, { 0xFB04, { 'f', 'f', 'l' } }, { 0xFB05, { 0x017F, 't' } },
	{ 0xFB06, { 's', 't' } },
};

static const uint32_t *latin_ligature(uint32_t c)
{
	if (c < 0x0132 || (c > 0x01F3 && c < 0xFB00) || c > 0xFB06)
		return NULL;
	for (size_t i = 0; i < sizeof latin_ligatures / sizeof *latin_ligatures; i++)
		if (latin_ligatures[i].from == c)
			return latin_ligatures[i].to;
	return NULL;
}

/* fix_latin_ligatures, fix_character_width and uncurl_quotes, which ftfy
 * runs as three passes in that order, fused into one: each maps single
 * code points, and none produces what another acts on, except the U+02BC
 * of ŉ, which uncurl_quotes straightens. */
static void fix_characters(const struct ustr *in, struct ustr *out)
{
	struct ustr nfkc = { 0 };
	out->len = 0;
	ustr_reserve(out, in->len);
	for (size_t i = 0; i < in->len; i++) {
		uint32_t c = in->s[i];
		const uint32_t *lig = latin_ligature(c);
		if (lig) {
			for (int k = 0; k < 3 && lig[k]; k++)
				ustr_push(out, lig[k] == 0x02BC ? '\'' : lig[k]);
			continue;
		}
		/* fix_character_width: U+3000 and the halfwidth and fullwidth
		 * forms to their NFKC forms (none of which is a curly quote). */
		if (c == 0x3000) {
			ustr_push(out, ' ');
			continue;
		}
		if (c >= 0xFF01 && c <= 0xFFEF) {
			uni_nfkc_char(c, &nfkc);
			ustr_append(out, nfkc.s, nfkc.len);
			continue;
		}
		/* uncurl_quotes */
		if (c >= 0x201C && c <= 0x201F)
			c = '"';
		else if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B))
			c = '\'';
		ustr_push(out, c);
	}
	ustr_free(&nfkc);
}

/* fix_line_breaks: \r\n, \r, U+2028, U+2029 and U+0085 become \n. */
static void fix_line_breaks(struct ustr *t)
{
	size_t k = 0;
	for (size_t i = 0; i < t->len; i++) {
		uint32_t c = t->s[i];
		if (c == '\r' && i + 1 < t->len && t->s[i + 1] == '\n')
			i++;
		if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85)
			c = '\n';
		t->s[k++] = c;
	}
	t->len = k;
}

/* remove_terminal_escapes: ESC [ (\d|;)* [a-zA-Z], \d being any Unicode
 * decimal digit as in Python's re. */
static void remove_terminal_escapes(struct ustr *t)
{
	size_t k = 0;
	for (size_t i = 0; i < t->len; i++) {
		if (t->s[i] == 0x1B && i + 1 < t->len && t->s[i + 1] == '[') {
			size_t j = i + 2;
			while (j < t->len && (t->s[j] == ';' || uni_is_py_digit(t->s[j])))
				j++;
			if (j < t->len && is_ascii_alpha(t->s[j])) {
				i = j;
				continue;
			}
		}
		t->s[k++] = t->s[i];
	}
	t->len = k;
}

/* remove_control_chars: C0 controls but \t \n \f \r, DEL, the deprecated
 * Arabic format controls, the BOM and U+FFF9..U+FFFC. C1 controls, joiners,
 * bidi controls and tags stay. */
static bool ftfy_control_char(uint32_t c)
{
	return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
	       c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

static void remove_control_chars(struct ustr *t)
{
	size_t k = 0;
	for (size_t i = 0; i < t->len; i++)
		if (!ftfy_control_char(t->s[i]))
			t->s[k++] = t->s[i];
	t->len = k;
}

static bool has_char(const uint32_t *s, size_t n, uint32_t c)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == c)
			return true;
	return false;
}

/* ftfy.fix_and_explain on one segment: every fix in order, repeated until
 * nothing changes. */
static void fix_segment(struct ustr *text, bool unescape)
{
	struct ustr orig = { 0 }, tmp = { 0 };
	for (;;) {
		orig.len = 0;
		ustr_append(&orig, text->s, text->len);
		if (unescape && has_char(text->s, text->len, '&')) {
			tmp.len = 0;
			ftfy_unescape_html(text->s, text->len, &tmp);
			ustr_swap(text, &tmp);
		}
		ftfy_fix_encoding(text);
		fix_c1_controls(text);
		fix_characters(text, &tmp);
		ustr_swap(text, &tmp);
		fix_line_breaks(text);
		/* fix_surrogates has nothing to do: a ustr never holds surrogates. */
		remove_terminal_escapes(text);
		remove_control_chars(text);
		uni_nfc(text);
		if (ustr_equal(text, &orig))
			break;
	}
	ustr_free(&orig);
	ustr_free(&tmp);
}

void ftfy_fix_text(struct ustr *text)
{
	/* ftfy fixes each line (ending in \n, at most 10^6 code points) on its
	 * own. unescape_html="auto" turns off for good at the first line that
	 * holds a '<': from there on the text is taken to be HTML. */
	const size_t max_segment = 1000000;
	struct ustr out = { 0 }, seg = { 0 };
	bool unescape = true;
	size_t pos = 0;
	while (pos < text->len) {
		size_t end = pos;
		while (end < text->len && text->s[end] != '\n' && end - pos < max_segment)
			end++;
		if (end < text->len && text->s[end] == '\n' && end - pos < max_segment)
			end++;
		seg.len = 0;
		ustr_append(&seg, text->s + pos, end - pos);
		if (unescape && has_char(seg.s, seg.len, '<'))
			unescape = false;
		fix_segment(&seg, unescape);
		ustr_append(&out, seg.s, seg.len);
		pos = end;
	}
	ustr_swap(text, &out);
	ustr_free(&out);
	ustr_free(&seg);
}

/* ---- simple_tokenizer.basic_clean + whitespace_clean + lower ---- */

static void strip_py_space(struct ustr *t)
{
	size_t a = 0, b = t->len;
	while (a < b && uni_is_py_space(t->s[a]))
		a++;
	while (b > a && uni_is_py_space(t->s[b - 1]))
		b--;
	if (a > 0)
		memmove(t->s, t->s + a, (b - a) * sizeof *t->s);
	t->len = b - a;
}

void clip_text_clean(const char *text, size_t len, struct ustr *out)
{
	struct ustr tmp = { 0 };
	out->len = 0;
	ustr_append_utf8(out, text, len);
	ftfy_fix_text(out);
	for (int round = 0; round < 2; round++) {
		if (!has_char(out->s, out->len, '&'))
			break;
		tmp.len = 0;
		html_unescape(out->s, out->len, &tmp);
		ustr_swap(out, &tmp);
	}
	strip_py_space(out);
	/* regex.sub(r"\s+", " "): the regex module's \s is White_Space. */
	size_t k = 0;
	bool in_run = false;
	for (size_t i = 0; i < out->len; i++) {
		bool ws = uni_is_white_space(out->s[i]);
		if (!ws)
			out->s[k++] = out->s[i];
		else if (!in_run)
			out->s[k++] = ' ';
		in_run = ws;
	}
	out->len = k;
	strip_py_space(out);
	uni_lower(out);
	ustr_free(&tmp);
}
