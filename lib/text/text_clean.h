/* The text clean-up in front of CLIP's tokenizer, reproducing the
 * reference (openai/CLIP simple_tokenizer.py) on Python 3.11 with ftfy 6.3.1:
 *
 *   basic_clean:      ftfy.fix_text(t), html.unescape twice, str.strip()
 *   whitespace_clean: regex.sub(r"\s+", " ", t).strip()
 *   then str.lower()
 *
 * ftfy.fix_text with its default configuration is reproduced step by step
 * (formats/clip-tokenizer.md lists them), mojibake repair included. All
 * functions here work on code point strings (text/unicode.h), are
 * reentrant, and never fail: Python would take any str. */
#ifndef KNND_TEXT_TEXT_CLEAN_H
#define KNND_TEXT_TEXT_CLEAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text/unicode.h"

/* The whole clean-up of UTF-8 text (invalid bytes read as U+FFFD): the
 * string CLIP's regex splits. Replaces out's contents. */
void clip_text_clean(const char *text, size_t len, struct ustr *out);

/* ftfy.fix_text(text) with the default TextFixerConfig, in place. */
void ftfy_fix_text(struct ustr *text);

/* Python's html.unescape(in), appended to out. */
void html_unescape(const uint32_t *s, size_t n, struct ustr *out);

/* ftfy.fixes.unescape_html: only complete references "&name;" or "&#...;"
 * of at most 24 letters and digits, plus ftfy's upper-case spellings. */
void ftfy_unescape_html(const uint32_t *s, size_t n, struct ustr *out);

/* ftfy.badness.is_bad: whether the text looks like it holds mojibake. */
bool ftfy_is_bad(const uint32_t *s, size_t n);

/* ftfy.fix_encoding(text): undoes UTF-8 that was decoded in a single-byte
 * code page (Latin-1, Windows-125x, MacRoman, CP437), repeatedly, in place. */
void ftfy_fix_encoding(struct ustr *text);

#endif
