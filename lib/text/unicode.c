/* Code point strings and Unicode properties over ICU (see unicode.h). */
#include "text/unicode.h"

#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "core/tool.h"

void ustr_reserve(struct ustr *u, size_t extra)
{
	if (u->len + extra <= u->cap)
		return;
	size_t cap = u->cap ? u->cap : 64;
	while (cap < u->len + extra)
		cap *= 2;
	u->s = xrealloc(u->s, cap * sizeof *u->s);
	u->cap = cap;
}

void ustr_push(struct ustr *u, uint32_t c)
{
	if (u->len == u->cap)
		ustr_reserve(u, 1);
	u->s[u->len++] = c;
}

void ustr_append(struct ustr *u, const uint32_t *s, size_t n)
{
	if (n == 0)
		return;
	ustr_reserve(u, n);
	memcpy(u->s + u->len, s, n * sizeof *s);
	u->len += n;
}

void ustr_append_utf8(struct ustr *u, const char *str, size_t n)
{
	const uint8_t *s = (const uint8_t *)str;
	ustr_reserve(u, n);
	size_t i = 0;
	while (i < n) {
		uint8_t b = s[i];
		if (b < 0x80) {
			u->s[u->len++] = b;
			i++;
			continue;
		}
		/* The lead byte fixes the length and the range of the second byte,
		 * which excludes overlong forms, surrogates and values past
		 * U+10FFFF; an ill-formed sequence becomes one U+FFFD for its
		 * longest valid prefix (the Unicode "maximal subpart" rule that
		 * Python follows). */
		int need;
		uint8_t lo = 0x80, hi = 0xBF;
		uint32_t c;
		if (b >= 0xC2 && b <= 0xDF) {
			need = 1, c = b & 0x1F;
		} else if (b >= 0xE0 && b <= 0xEF) {
			need = 2, c = b & 0x0F;
			if (b == 0xE0) lo = 0xA0;
			if (b == 0xED) hi = 0x9F;
		} else if (b >= 0xF0 && b <= 0xF4) {
			need = 3, c = b & 0x07;
			if (b == 0xF0) lo = 0x90;
			if (b == 0xF4) hi = 0x8F;
		} else {
			u->s[u->len++] = 0xFFFD;
			i++;
			continue;
		}
		size_t j = i + 1;
		int got = 0;
		while (got < need && j < n && s[j] >= lo && s[j] <= hi) {
			c = c << 6 | (s[j] & 0x3F);
			j++, got++;
			lo = 0x80, hi = 0xBF;
		}
		u->s[u->len++] = got == need ? c : 0xFFFD;
		i = j;
	}
}

void ustr_swap(struct ustr *a, struct ustr *b)
{
	struct ustr t = *a;
	*a = *b;
	*b = t;
}

bool ustr_equal(const struct ustr *a, const struct ustr *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->s, b->s, a->len * sizeof *a->s) == 0);
}

void ustr_free(struct ustr *u)
{
	free(u->s);
	*u = (struct ustr){ 0 };
}

int utf8_put(uint32_t c, char *out)
{
	uint8_t *o = (uint8_t *)out;
	if ((c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)
		c = 0xFFFD;
	if (c < 0x80) {
		o[0] = (uint8_t)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (uint8_t)(0xC0 | c >> 6);
		o[1] = (uint8_t)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (uint8_t)(0xE0 | c >> 12);
		o[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
		o[2] = (uint8_t)(0x80 | (c & 0x3F));
		return 3;
	}
	o[0] = (uint8_t)(0xF0 | c >> 18);
	o[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
	o[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
	o[3] = (uint8_t)(0x80 | (c & 0x3F));
	return 4;
}

char *utf32_to_utf8(const uint32_t *s, size_t n, size_t *len)
{
	char *out = xmalloc(4 * n + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += (size_t)utf8_put(s[i], out + k);
	out[k] = 0;
	if (len)
		*len = k;
	return out;
}

bool uni_is_letter(uint32_t c)
{
	if (c < 0x80)
		return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
	return (U_GET_GC_MASK((UChar32)c) & U_GC_L_MASK) != 0;
}

bool uni_is_number(uint32_t c)
{
	if (c < 0x80)
		return c >= '0' && c <= '9';
	return (U_GET_GC_MASK((UChar32)c) & U_GC_N_MASK) != 0;
}

bool uni_is_white_space(uint32_t c)
{
	if (c < 0x80)
		return c == ' ' || (c >= '\t' && c <= '\r');
	return u_hasBinaryProperty((UChar32)c, UCHAR_WHITE_SPACE);
}

bool uni_is_py_space(uint32_t c)
{
	return (c >= 0x1C && c <= 0x1F) || uni_is_white_space(c);
}

bool uni_is_py_word(uint32_t c)
{
	if (c < 0x80)
		return c == '_' || uni_is_letter(c) || uni_is_number(c);
	/* isalnum: isalpha (L*) or a numeric value of any kind. */
	return uni_is_letter(c) || u_getIntPropertyValue((UChar32)c, UCHAR_NUMERIC_TYPE) != U_NT_NONE;
}

bool uni_is_py_digit(uint32_t c)
{
	if (c < 0x80)
		return c >= '0' && c <= '9';
	return u_charType((UChar32)c) == U_DECIMAL_DIGIT_NUMBER;
}

/* ICU works in UTF-16: these convert u to and from a UChar buffer. */
static UChar *to_utf16(const struct ustr *u, int32_t *n16)
{
	UChar *b = xmalloc((2 * u->len + 1) * sizeof *b);
	int32_t k = 0;
	for (size_t i = 0; i < u->len; i++) {
		UChar32 c = (UChar32)u->s[i];
		if ((c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)
			c = 0xFFFD;
		U16_APPEND_UNSAFE(b, k, c);
	}
	*n16 = k;
	return b;
}

static void from_utf16(struct ustr *u, const UChar *b, int32_t n)
{
	u->len = 0;
	ustr_reserve(u, (size_t)n);
	for (int32_t i = 0; i < n;) {
		UChar32 c;
		U16_NEXT(b, i, n, c);
		u->s[u->len++] = (uint32_t)c;
	}
}

void uni_lower(struct ustr *u)
{
	bool ascii = true;
	for (size_t i = 0; i < u->len && ascii; i++)
		ascii = u->s[i] < 0x80;
	if (ascii) {
		for (size_t i = 0; i < u->len; i++)
			if (u->s[i] >= 'A' && u->s[i] <= 'Z')
				u->s[i] += 'a' - 'A';
		return;
	}
	int32_t n16;
	UChar *src = to_utf16(u, &n16);
	/* Full lower-casing grows a string by at most 3x ('İ' -> 2 code
	 * units is the worst case in practice); retry once if ICU says more. */
	int32_t cap = 3 * n16 + 16;
	UChar *dst = xmalloc((size_t)cap * sizeof *dst);
	UErrorCode err = U_ZERO_ERROR;
	int32_t n = u_strToLower(dst, cap, src, n16, "", &err);
	if (err == U_BUFFER_OVERFLOW_ERROR) {
		cap = n + 1;
		dst = xrealloc(dst, (size_t)cap * sizeof *dst);
		err = U_ZERO_ERROR;
		n = u_strToLower(dst, cap, src, n16, "", &err);
	}
	if (U_SUCCESS(err))
		from_utf16(u, dst, n);
	free(src);
	free(dst);
}

static void normalize(struct ustr *u, const UNormalizer2 *norm)
{
	int32_t n16;
	UChar *src = to_utf16(u, &n16);
	UErrorCode err = U_ZERO_ERROR;
	int32_t done = unorm2_spanQuickCheckYes(norm, src, n16, &err);
	if (U_SUCCESS(err) && done < n16) {
		int32_t cap = 3 * n16 + 16;
		UChar *dst = xmalloc((size_t)cap * sizeof *dst);
		int32_t n = unorm2_normalize(norm, src, n16, dst, cap, &err);
		if (err == U_BUFFER_OVERFLOW_ERROR) {
			cap = n + 1;
			dst = xrealloc(dst, (size_t)cap * sizeof *dst);
			err = U_ZERO_ERROR;
			n = unorm2_normalize(norm, src, n16, dst, cap, &err);
		}
		if (U_SUCCESS(err))
			from_utf16(u, dst, n);
		free(dst);
	}
	free(src);
}

void uni_nfc(struct ustr *u)
{
	/* Below U+0300 nothing composes or decomposes under NFC. */
	size_t i = 0;
	while (i < u->len && u->s[i] < 0x300)
		i++;
	if (i == u->len)
		return;
	UErrorCode err = U_ZERO_ERROR;
	const UNormalizer2 *nfc = unorm2_getNFCInstance(&err);
	if (U_SUCCESS(err))
		normalize(u, nfc);
}

void uni_nfkc_char(uint32_t c, struct ustr *out)
{
	out->len = 0;
	ustr_push(out, c);
	UErrorCode err = U_ZERO_ERROR;
	const UNormalizer2 *nfkc = unorm2_getNFKCInstance(&err);
	if (U_SUCCESS(err))
		normalize(out, nfkc);
}
