/* Code point strings and the few Unicode properties, case mappings and
 * normalisations that the CLIP text clean-up needs, over ICU.
 *
 * The reference is Python code, so each predicate is named after the
 * Python notion it reproduces. Python 3.11's own tables are Unicode 14 and
 * ICU 72's (and the `regex` module's) are Unicode 15; the two differ only
 * on the code points that Unicode 15 assigned. */
#ifndef KNND_TEXT_UNICODE_H
#define KNND_TEXT_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable string of code points (UTF-32, any values up to U+10FFFF). */
struct ustr {
	uint32_t *s;
	size_t len, cap;
};

void ustr_reserve(struct ustr *u, size_t extra);
void ustr_push(struct ustr *u, uint32_t c);
void ustr_append(struct ustr *u, const uint32_t *s, size_t n);
/* Appends UTF-8 text decoded the way Python's bytes.decode("utf-8",
 * "replace") does: each maximal invalid subsequence becomes one U+FFFD. */
void ustr_append_utf8(struct ustr *u, const char *s, size_t n);
void ustr_swap(struct ustr *a, struct ustr *b);
bool ustr_equal(const struct ustr *a, const struct ustr *b);
void ustr_free(struct ustr *u);

/* The UTF-8 encoding of s[0..n) as a new NUL-terminated string (xmalloc);
 * *len (if not NULL) gets its length. Code points that UTF-8 cannot carry
 * (surrogates) are written as U+FFFD. */
char *utf32_to_utf8(const uint32_t *s, size_t n, size_t *len);
/* Writes the UTF-8 of c to out (4 bytes room); returns its length. */
int utf8_put(uint32_t c, char *out);

/* regex's \p{L}: general category Lu, Ll, Lt, Lm or Lo. */
bool uni_is_letter(uint32_t c);
/* regex's \p{N}: Nd, Nl or No. */
bool uni_is_number(uint32_t c);
/* The `regex` module's \s: the White_Space property. */
bool uni_is_white_space(uint32_t c);
/* Python's str.isspace() and re's \s: White_Space plus U+001C..U+001F. */
bool uni_is_py_space(uint32_t c);
/* Python re's \w: str.isalnum() or '_'. */
bool uni_is_py_word(uint32_t c);
/* Python re's \d: a decimal digit (Nd). */
bool uni_is_py_digit(uint32_t c);

/* Python's str.lower(): full lower-casing in the root locale, with the
 * final-sigma rule ('İ' -> "i̇", "ΣΑΣ" -> "σας"). Replaces u. */
void uni_lower(struct ustr *u);
/* unicodedata.normalize("NFC", u), in place. */
void uni_nfc(struct ustr *u);
/* unicodedata.normalize("NFKC", chr(c)) into out (cleared first). */
void uni_nfkc_char(uint32_t c, struct ustr *out);

#endif
