/* CLIP's tokenizer and its text clean-up against the reference (openai/CLIP
 * simple_tokenizer.py with ftfy 6.3.1 on Python 3.11): every case of
 * ../shared/golden/clip/tokenizer.json (clean text and ids), the golden
 * text_tokens, ftfy's fixes one by one, the corners of the split pattern,
 * the Hugging Face vocab.json + merges.txt route and loading errors. The
 * expected strings below were produced by the reference itself. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "core/tool.h"
#include "nn/safetensors.h"
#include "stream/json.h"
#include "stream/msgpack.h"
#include "text/clip_tokenizer.h"
#include "text/text_clean.h"
#include "test.h"

/* ftfy.fix_text(input) by ftfy 6.3.1 on Python 3.11. */
static const struct { const char *input, *fixed; } ftfy_cases[] = {
	/* UTF-8 read as Latin-1 */
	{ "caf\xc3\x83\xc2\xa9 au lait",
	  "caf\xc3\xa9 au lait" },
	/* UTF-8 read as windows-1252: curly quotes */
	{ "It\xc3\xa2\xe2\x82\xac\xe2\x84\xa2s \xc3\xa2\xe2\x82\xac\xc5\x93quoted\xc3\xa2\xe2\x82\xac\xc2\x9d",
	  "It's \x22quoted\x22" },
	/* UTF-8 read as windows-1251 */
	{ "\xc3\x90\xc2\xbf\xc3\x91\xe2\x82\xac\xc3\x90\xc2\xb8\xc3\x90\xc2\xb2\xc3\x90\xc2\xb5\xc3\x91\xe2\x80\x9a",
	  "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82" },
	/* UTF-8 read as windows-1251 (real) */
	{ "\xd0\xa0\xd1\x97\xd0\xa1\xd0\x82\xd0\xa0\xd1\x91\xd0\xa0\xd0\x86\xd0\xa0\xc2\xb5\xd0\xa1\xe2\x80\x9a \xd0\xa0\xd1\x98\xd0\xa0\xd1\x91\xd0\xa1\xd0\x82",
	  "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80" },
	/* UTF-8 read as MacRoman */
	{ "caf\xe2\x88\x9a\xc2\xa9 r\xe2\x88\x9a\xc2\xa9sum\xe2\x88\x9a\xc2\xa9",
	  "caf\xc3\xa9 r\xc3\xa9sum\xc3\xa9" },
	/* UTF-8 read as cp437 */
	{ "na\xe2\x94\x9c\xc2\xbbve caf\xe2\x94\x9c\xe2\x8c\x90",
	  "na\xc3\xafve caf\xc3\xa9" },
	/* twice-encoded mojibake */
	{ "caf\xc3\x83\xc6\x92\xc3\x82\xc2\xa9",
	  "caf\xc3\xa9" },
	/* a non-breaking space turned into a space */
	{ "voil\xc3\x83 le travail",
	  "voil\xc3\xa0 le travail" },
	/* Ã before a space is à */
	{ "\xc3\x83 la mode",
	  "\xc3\xa0 la mode" },
	/* bytes lost to U+FFFD */
	{ "\xc3\xa2\xe2\x82\xac\xc5\x93 like this \xc3\xa2\xe2\x82\xac\xef\xbf\xbd",
	  "\x22 like this \xef\xbf\xbd" },
	/* CESU-8 emoji */
	{ "\xc3\xad\xc2\xa0\xc2\xbd\xc3\xad\xc2\xb8\xc2\x80 ok",
	  "\xf0\x9f\x98\x80 ok" },
	/* mojibake inside correct text */
	{ "na\xc3\xafve \xc3\x83\xc2\xa9 text, d\xc3\xa9j\xc3\xa0 vu",
	  "na\xc3\xafve \xc3\xa9 text, d\xc3\xa9j\xc3\xa0 vu" },
	/* C1 controls read as windows-1252 */
	{ "\xc2\x93quoted\xc2\x94 and \xc2\x85",
	  "\x22quoted\x22 and \xe2\x80\xa6" },
	/* a real accent that is not mojibake */
	{ "\xc3\x83 is a letter",
	  "\xc3\xa0 is a letter" },
	/* upper-case entities */
	{ "P&EACUTE;REZ BUNDESSTRA&SZLIG;E &NTILDE; &nTILDE;",
	  "P\xc3\x89REZ BUNDESSTRASSE \xc3\x91 &nTILDE;" },
	/* entities need the semicolon */
	{ "&amp &lt;b&gt; &notin; &ampx; &#x41; &#65; &#65x;",
	  "&amp <b> \xe2\x88\x89 &ampx; A A &#65x;" },
	/* a < turns unescaping off from that line on */
	{ "&amp; line1\x0a<b>&amp;</b>\x0a&amp; line3",
	  "& line1\x0a<b>&amp;</b>\x0a&amp; line3" },
	/* line breaks */
	{ "a\x0d\x0a" "b\x0d" "c\xe2\x80\xa8" "d\xe2\x80\xa9" "e",
	  "a\x0a" "b\x0a" "c\x0a" "d\x0a" "e" },
	/* terminal escapes and controls */
	{ "\x1b[1;31mred\x1b[0m\x07\x0b\xef\xbb\xbf\xe2\x81\xaa\xef\xbf\xbc ok\x1b[x",
	  "red ok" },
	/* width and ligatures */
	{ "\xef\xbc\xac\xef\xbc\xaf\xef\xbc\xb5\xef\xbc\xa4\xe3\x80\x80\xef\xbc\xae\xef\xbc\xaf\xef\xbc\xa9\xef\xbc\xb3\xef\xbc\xa5\xef\xbc\xb3 \xef\xbd\xb6\xef\xbe\x80\xef\xbd\xb6\xef\xbe\x85 \xef\xac\x82u\xef\xac\x83" "e\xef\xac\x86 \xc4\xb2ssel \xc5\x89 \xc7\x84",
	  "LOUD NOISES \xe3\x82\xab\xe3\x82\xbf\xe3\x82\xab\xe3\x83\x8a fluffiest IJssel 'n D\xc5\xbd" },
	/* NFC */
	{ "e\xcc\x81 A\xcc\x8a \xe2\x84\xab",
	  "\xc3\xa9 \xc3\x85 \xc3\x85" },
	/* ftfy's own example */
	{ "\xc3\xa2\xc5\x93\xe2\x80\x9d No problems",
	  "\xe2\x9c\x94 No problems" },
	/* an emoji's mojibake */
	{ "\xc3\xb0\xc5\xb8\xcb\x9c\xe2\x82\xac smile",
	  "\xf0\x9f\x98\x80 smile" },
	/* Arabic mojibake */
	{ "\xc3\x99\xe2\x80\xa6\xc3\x98\xc2\xb1\xc3\x98\xc2\xad\xc3\x98\xc2\xa8\xc3\x98\xc2\xa7",
	  "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7" },
	/* not mojibake: Greek and Russian */
	{ "\xce\x95\xce\xbb\xce\xbb\xce\xb7\xce\xbd\xce\xb9\xce\xba\xce\xac and \xd0\xa0\xd1\x83\xd1\x81\xd1\x81\xd0\xba\xd0\xb8\xd0\xb9",
	  "\xce\x95\xce\xbb\xce\xbb\xce\xb7\xce\xbd\xce\xb9\xce\xba\xce\xac and \xd0\xa0\xd1\x83\xd1\x81\xd1\x81\xd0\xba\xd0\xb8\xd0\xb9" },
};
/* CLIP's clean text and ids (without start and end) from the reference. */
static const struct { const char *input, *clean; int n; int ids[24]; } clip_cases[] = {
	/* contractions are matched case-insensitively: 'ſ is one */
	{ "it'\xc5\xbf 'S 'T", "it'\xc5\xbf 's 't", 6, { 585, 6, 129, 379, 568, 713 } },
	/* U+0345 matches no alternative and is dropped */
	{ "a\xcd\x85" "b \xcd\x85", "a\xcd\x85" "b \xcd\x85", 2, { 320, 321 } },
	/* a special token inside a run of punctuation is not special */
	{ "!<|endoftext|> x<|endoftext|>y", "!<|endoftext|> x<|endoftext|>y", 10, { 0, 27, 347, 40786, 4160, 91, 285, 343, 49407, 344 } },
	/* long s spelling of a special token is not special */
	{ "<|\xc5\xbftartoftext|>", "<|\xc5\xbftartoftext|>", 9, { 27, 91, 129, 123, 2002, 6659, 18169, 91, 285 } },
	/* final sigma and dotted I */
	{ "\xce\x9f\xce\x94\xce\x9f\xce\xa3 \xc4\xb0I", "\xce\xbf\xce\xb4\xce\xbf\xcf\x82 i\xcc\x87i", 11, { 138, 123, 138, 112, 138, 123, 139, 480, 328, 16384, 328 } },
	/* unicode whitespace */
	{ "a\xe2\x80\x83" "b\xc2\xa0" "c\xe3\x80\x80" "d\xe2\x81\x9f" "e\xe1\x9a\x80" "f\xc2\x85g", "a b c d e f\xe2\x80\xa6g", 8, { 320, 321, 322, 323, 324, 325, 959, 326 } },
	/* html entities after ftfy: &nbsp; is whitespace */
	{ "x&nbsp;y &amp;lt;", "x y <", 3, { 343, 344, 283 } },
	/* numbers one digit a piece, other scripts' digits too */
	{ "12 \xd9\xa1\xd9\xa2 \xe2\x85\xab \xc2\xbd", "12 \xd9\xa1\xd9\xa2 \xe2\x85\xbb \xc2\xbd", 10, { 272, 273, 149, 350, 149, 351, 158, 227, 375, 33613 } },
	/* fullwidth quote marks and CJK */
	{ "\xef\xbc\x82\xe5\xbc\x95\xe7\x94\xa8\xef\xbc\x82 \xe6\x97\xa5\xe6\x9c\xac", "\x22\xe5\xbc\x95\xe7\x94\xa8\x22 \xe6\x97\xa5\xe6\x9c\xac", 10, { 257, 161, 120, 243, 20211, 357, 257, 39121, 19277, 361 } },
};

/* ---- helpers ---- */

static char bpe_path[400], golden_dir[400];
static struct clip_tokenizer *tok;

/* The tokenizer from the shared vocabulary, or NULL (the test skips). */
static struct clip_tokenizer *shared_tokenizer(void)
{
	if (tok)
		return tok;
	snprintf(bpe_path, sizeof bpe_path, "%s/clip/bpe_simple_vocab_16e6.txt.gz", test_shared_dir());
	snprintf(golden_dir, sizeof golden_dir, "%s/golden/clip", test_shared_dir());
	if (access(bpe_path, R_OK) != 0)
		return NULL;
	tok = clip_tokenizer_load_bpe(bpe_path);
	if (!tok)
		printf("# %s\n", error_message());
	return tok;
}

#define NEED_TOKENIZER() do { if (!shared_tokenizer()) \
		SKIP("no CLIP vocabulary at %s (shared/ not present)", bpe_path); } while (0)

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0, got;
	char *b = xmalloc(cap);
	while ((got = fread(b + n, 1, cap - n, f)) > 0)
		if ((n += got) == cap)
			b = xrealloc(b, cap *= 2);
	fclose(f);
	*len = n;
	return b;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (f) {
		fwrite(data, 1, len, f);
		fclose(f);
	}
}

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
	static char buf[4][256];
	static int next;
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof tmpdir, "/tmp/test_clip_tokenizer.XXXXXX");
		if (!mkdtemp(tmpdir))
			tmpdir[0] = 0;
	}
	char *b = buf[next++ % 4];
	snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
	return b;
}

static char *clean_utf8(const char *text, size_t len)
{
	struct ustr u = { 0 };
	clip_text_clean(text, len, &u);
	char *s = utf32_to_utf8(u.s, u.len, NULL);
	ustr_free(&u);
	return s;
}

static char *ftfy_utf8(const char *text)
{
	struct ustr u = { 0 };
	ustr_append_utf8(&u, text, strlen(text));
	ftfy_fix_text(&u);
	char *s = utf32_to_utf8(u.s, u.len, NULL);
	ustr_free(&u);
	return s;
}

/* A JSON string value at *p (msgpack from json_to_msgpack). */
static int mp_str(const uint8_t *p, const uint8_t *end, const char **s, size_t *len)
{
	struct mp_header h;
	int k = mp_decode_header(p, (size_t)(end - p), &h);
	if (k <= 0 || h.type != MP_STR)
		return -1;
	*s = (const char *)p + k;
	*len = (size_t)h.len;
	return 0;
}

/* One tokenizer.json case, as read from the file. */
struct golden_case {
	const char *text, *clean;
	size_t text_len, clean_len;
	int64_t ids[128];
	size_t nids;
};

/* Reads tokenizer.json into cases (at most max); returns the count, or -1. */
static int read_golden_cases(struct mp_buf *mp, struct golden_case *cases, int max)
{
	char path[600];
	snprintf(path, sizeof path, "%s/tokenizer.json", golden_dir);
	size_t len;
	char *json = read_file(path, &len);
	if (!json)
		return -1;
	int rc = json_to_msgpack(json, len, mp);
	free(json);
	if (rc < 0)
		return -1;
	const uint8_t *p = mp->data, *end = mp->data + mp->len;
	struct mp_header h;
	int k = mp_decode_header(p, (size_t)(end - p), &h);
	if (k <= 0 || h.type != MP_ARRAY || h.len > (uint64_t)max)
		return -1;
	p += k;
	int n = (int)h.len;
	for (int i = 0; i < n; i++) {
		struct golden_case *c = &cases[i];
		const uint8_t *q = p;
		if (mp_map_find(&q, end, "text") < 0 || mp_str(q, end, &c->text, &c->text_len) < 0)
			return -1;
		q = p;
		if (mp_map_find(&q, end, "clean") < 0 || mp_str(q, end, &c->clean, &c->clean_len) < 0)
			return -1;
		q = p;
		if (mp_map_find(&q, end, "ids") < 0)
			return -1;
		k = mp_decode_header(q, (size_t)(end - q), &h);
		if (k <= 0 || h.type != MP_ARRAY || h.len > 128)
			return -1;
		q += k;
		c->nids = (size_t)h.len;
		for (size_t j = 0; j < c->nids; j++) {
			struct mp_header v;
			k = mp_decode_header(q, (size_t)(end - q), &v);
			if (k <= 0 || (v.type != MP_UINT && v.type != MP_INT))
				return -1;
			c->ids[j] = v.type == MP_UINT ? (int64_t)v.u : v.i;
			q += k;
		}
		if (mp_skip_value(&p, end, 8) < 0)
			return -1;
	}
	return n;
}

/* ---- the golden data ---- */

/* Every tokenizer.json case: the clean string and the full ids. */
static void test_golden_tokenizer_json(void)
{
	NEED_TOKENIZER();
	static struct golden_case cases[100];
	struct mp_buf mp = { 0 };
	int n = read_golden_cases(&mp, cases, 100);
	CHECK_MSG(n == 75, "tokenizer.json: read %d cases, expected 75", n);
	int clean_ok = 0, ids_ok = 0;
	for (int i = 0; i < n; i++) {
		const struct golden_case *c = &cases[i];
		char *clean = clean_utf8(c->text, c->text_len);
		bool same_clean = strlen(clean) == c->clean_len && memcmp(clean, c->clean, c->clean_len) == 0;
		clean_ok += same_clean;
		CHECK_MSG(same_clean, "case %d: clean \"%s\", expected \"%.*s\"", i, clean, (int)c->clean_len, c->clean);
		free(clean);
		struct clip_ids ids = { 0 };
		CHECK(clip_tokenizer_encode(tok, c->text, c->text_len, &ids) == 0);
		bool same = ids.len + 2 == c->nids && c->ids[0] == clip_tokenizer_sot(tok) &&
		            c->ids[c->nids - 1] == clip_tokenizer_eot(tok);
		for (size_t j = 0; same && j < ids.len; j++)
			same = ids.ids[j] == c->ids[j + 1];
		ids_ok += same;
		CHECK_MSG(same, "case %d (\"%.*s\"): ids differ", i, (int)c->text_len, c->text);
		clip_ids_free(&ids);
	}
	printf("# tokenizer.json: clean %d/%d, ids %d/%d exact\n", clean_ok, n, ids_ok, n);
	mp_buf_free(&mp);
}

/* expected.safetensors text_tokens [20, 77] from manifest.json's texts. */
static void test_golden_text_tokens(void)
{
	NEED_TOKENIZER();
	char path[600];
	snprintf(path, sizeof path, "%s/expected.safetensors", golden_dir);
	struct st_file *st = st_open(path);
	if (!st)
		SKIP("%s", error_message());
	const struct st_entry *e = st_find(st, "text_tokens");
	CHECK(e && e->dtype == DT_INT64 && e->ndim == 2 && e->shape[1] == CLIP_CONTEXT_LENGTH);
	snprintf(path, sizeof path, "%s/manifest.json", golden_dir);
	size_t len;
	char *json = read_file(path, &len);
	struct mp_buf mp = { 0 };
	CHECK(json && json_to_msgpack(json, len, &mp) == 0);
	free(json);
	if (test_failed_) {
		st_close(st);
		mp_buf_free(&mp);
		return;
	}
	const uint8_t *p = mp.data, *end = mp.data + mp.len;
	struct mp_header h;
	CHECK(mp_map_find(&p, end, "texts") == 0);
	int k = mp_decode_header(p, (size_t)(end - p), &h);
	CHECK(k > 0 && h.type == MP_ARRAY && (int64_t)h.len == e->shape[0]);
	p += k;
	int n = (int)h.len, rows_ok = 0;
	const int64_t *want = e->data; /* I64 is 8-aligned in the file */
	for (int i = 0; i < n && !test_failed_; i++) {
		const uint8_t *q = p;
		const char *text = "";
		size_t tlen = 0;
		CHECK(mp_map_find(&q, end, "text") == 0 && mp_str(q, end, &text, &tlen) == 0);
		int32_t got[CLIP_CONTEXT_LENGTH];
		int64_t total = clip_tokenize(tok, text, tlen, got, CLIP_CONTEXT_LENGTH);
		CHECK(total >= 2);
		bool same = true;
		for (int j = 0; j < CLIP_CONTEXT_LENGTH; j++)
			same &= got[j] == want[(size_t)i * CLIP_CONTEXT_LENGTH + (size_t)j];
		rows_ok += same;
		CHECK_MSG(same, "text %d (\"%.*s\"): tokens differ", i, (int)tlen, text);
		CHECK(mp_skip_value(&p, end, 8) == 0);
	}
	printf("# text_tokens: %d/%d rows exact\n", rows_ok, n);
	st_close(st);
	mp_buf_free(&mp);
}

/* ---- the clean-up and the split ---- */

static void test_ftfy_fixes(void)
{
	for (size_t i = 0; i < sizeof ftfy_cases / sizeof *ftfy_cases; i++) {
		char *got = ftfy_utf8(ftfy_cases[i].input);
		CHECK_MSG(strcmp(got, ftfy_cases[i].fixed) == 0, "case %zu: \"%s\" -> \"%s\", expected \"%s\"", i,
		          ftfy_cases[i].input, got, ftfy_cases[i].fixed);
		free(got);
	}
}

static void test_clean_corners(void)
{
	for (size_t i = 0; i < sizeof clip_cases / sizeof *clip_cases; i++) {
		char *clean = clean_utf8(clip_cases[i].input, strlen(clip_cases[i].input));
		CHECK_MSG(strcmp(clean, clip_cases[i].clean) == 0, "case %zu: clean \"%s\", expected \"%s\"", i, clean,
		          clip_cases[i].clean);
		free(clean);
	}
}

static void test_split_corners(void)
{
	NEED_TOKENIZER();
	for (size_t i = 0; i < sizeof clip_cases / sizeof *clip_cases; i++) {
		struct clip_ids ids = { 0 };
		CHECK(clip_tokenizer_encode(tok, clip_cases[i].input, strlen(clip_cases[i].input), &ids) == 0);
		bool same = ids.len == (size_t)clip_cases[i].n;
		for (size_t j = 0; same && j < ids.len; j++)
			same = ids.ids[j] == clip_cases[i].ids[j];
		CHECK_MSG(same, "case %zu (\"%s\"): ids differ", i, clip_cases[i].input);
		clip_ids_free(&ids);
	}
}

/* Bytes that are not UTF-8 read as U+FFFD, one per maximal bad stretch,
 * as Python's decode(errors="replace") does. */
static void test_invalid_utf8(void)
{
	static const char in[] = "a\xff" "b\xe2\x82" "c\xf0\x9f" "\xed\xa0\x80" "d";
	char *clean = clean_utf8(in, sizeof in - 1);
	CHECK_MSG(strcmp(clean, "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "d") == 0,
	          "got \"%s\"", clean);
	free(clean);
}

/* Start and end tokens, padding with 0, and truncation keeping the end
 * token, around the context length. */
static void test_context(void)
{
	NEED_TOKENIZER();
	int32_t sot = clip_tokenizer_sot(tok), eot = clip_tokenizer_eot(tok);
	CHECK(sot == 49406 && eot == 49407 && clip_tokenizer_vocab_size(tok) == 49408);
	int32_t out[CLIP_CONTEXT_LENGTH];
	CHECK(clip_tokenize(tok, "", 0, out, CLIP_CONTEXT_LENGTH) == 2);
	CHECK(out[0] == sot && out[1] == eot && out[2] == 0 && out[76] == 0);
	/* "a " n times is n tokens: n = 75 fits exactly, 76 is cut by one. */
	for (int n = 74; n <= 77; n++) {
		char text[200];
		for (int i = 0; i < n; i++)
			text[2 * i] = 'a', text[2 * i + 1] = ' ';
		int64_t total = clip_tokenize(tok, text, 2 * (size_t)n, out, CLIP_CONTEXT_LENGTH);
		CHECK(total == n + 2);
		int last = n + 1 < CLIP_CONTEXT_LENGTH ? n + 1 : CLIP_CONTEXT_LENGTH - 1;
		CHECK_MSG(out[last] == eot && out[last - 1] == 320, "n=%d", n);
		for (int j = last + 1; j < CLIP_CONTEXT_LENGTH; j++)
			CHECK(out[j] == 0);
	}
	/* A shorter context. */
	int32_t small[4];
	CHECK(clip_tokenize(tok, "a photo of a cat", 16, small, 4) == 7);
	CHECK(small[0] == sot && small[1] == 320 && small[2] == 1125 && small[3] == eot);
	CHECK(clip_tokenize(tok, "x", 1, small, 1) < 0);
}

/* ---- Hugging Face files ---- */

/* Writes vocab.json and merges.txt for the loaded vocabulary, as Hugging
 * Face ships them for CLIP: merges in rank order after a "#version" line.
 * The merges are recovered from the gz file itself. */
static int write_hf_files(const char *dir)
{
	char path[600];
	struct mp_buf json = { 0 };
	mp_put_bytes(&json, "{", 1);
	for (int32_t id = 0; id < clip_tokenizer_vocab_size(tok); id++) {
		const char *s = clip_tokenizer_token(tok, id);
		char num[32];
		int n = snprintf(num, sizeof num, ": %d", id);
		if (id)
			mp_put_bytes(&json, ",\n", 2);
		json_write_string(&json, s, strlen(s));
		mp_put_bytes(&json, num, (size_t)n);
	}
	mp_put_bytes(&json, "}\n", 2);
	snprintf(path, sizeof path, "%s/vocab.json", dir);
	write_file(path, json.data, json.len);
	mp_buf_free(&json);

	gzFile gz = gzopen(bpe_path, "rb");
	if (!gz)
		return -1;
	snprintf(path, sizeof path, "%s/merges.txt", dir);
	FILE *f = fopen(path, "wb");
	fputs("#version: 0.2\n", f);
	char line[1024];
	int n = 0;
	gzgets(gz, line, sizeof line); /* the gz file's own header line */
	while (n < 48894 && gzgets(gz, line, sizeof line)) {
		fputs(line, f);
		n++;
	}
	fclose(f);
	gzclose(gz);
	return n == 48894 ? 0 : -1;
}

static void test_hf_vocab_and_merges(void)
{
	NEED_TOKENIZER();
	const char *dir = tmp_path("hf");
	mkdir(dir, 0700);
	CHECK(write_hf_files(dir) == 0);
	struct clip_tokenizer *hf = clip_tokenizer_load(dir);
	CHECK_MSG(hf, "%s", error_message());
	char vocab[600];
	snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
	struct clip_tokenizer *hf2 = clip_tokenizer_load(vocab);
	CHECK_MSG(hf2, "%s", error_message());
	if (!hf || !hf2) {
		clip_tokenizer_free(hf);
		clip_tokenizer_free(hf2);
		return;
	}
	CHECK(clip_tokenizer_vocab_size(hf) == 49408 && clip_tokenizer_sot(hf) == 49406 && clip_tokenizer_eot(hf) == 49407);
	static struct golden_case cases[100];
	struct mp_buf mp = { 0 };
	int n = read_golden_cases(&mp, cases, 100);
	CHECK(n == 75);
	for (int i = 0; i < n; i++) {
		struct clip_ids a = { 0 }, b = { 0 }, c = { 0 };
		clip_tokenizer_encode(tok, cases[i].text, cases[i].text_len, &a);
		clip_tokenizer_encode(hf, cases[i].text, cases[i].text_len, &b);
		clip_tokenizer_encode(hf2, cases[i].text, cases[i].text_len, &c);
		bool same = a.len == b.len && a.len == c.len;
		for (size_t j = 0; same && j < a.len; j++)
			same = a.ids[j] == b.ids[j] && a.ids[j] == c.ids[j];
		CHECK_MSG(same, "case %d differs", i);
		clip_ids_free(&a);
		clip_ids_free(&b);
		clip_ids_free(&c);
	}
	mp_buf_free(&mp);
	clip_tokenizer_free(hf);
	clip_tokenizer_free(hf2);
}

/* ---- loading errors ---- */

static void check_load_error(struct clip_tokenizer *t, const char *path, const char *what)
{
	CHECK_MSG(t == NULL, "%s: loaded", what);
	CHECK_MSG(strstr(error_message(), path) != NULL, "%s: message \"%s\" does not name %s", what, error_message(),
	          path);
	clip_tokenizer_free(t);
}

static void write_gz(const char *path, const char *text)
{
	gzFile gz = gzopen(path, "wb");
	gzputs(gz, text);
	gzclose(gz);
}

static void test_load_errors(void)
{
	const char *p = tmp_path("missing.txt.gz");
	check_load_error(clip_tokenizer_load(p), p, "missing file");

	/* A gzip header followed by garbage. */
	p = tmp_path("corrupt.txt.gz");
	write_file(p, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage-not-deflate", 29);
	check_load_error(clip_tokenizer_load(p), p, "corrupt gzip");

	/* A real gzip cut in half. */
	p = tmp_path("truncated.txt.gz");
	{
		char big[20000];
		for (size_t i = 0; i < sizeof big - 1; i++)
			big[i] = (char)('a' + (i * 7919 % 26));
		big[sizeof big - 1] = 0;
		write_gz(p, big);
		size_t len;
		char *b = read_file(p, &len);
		write_file(p, b, len / 2);
		free(b);
	}
	check_load_error(clip_tokenizer_load(p), p, "truncated gzip");

	p = tmp_path("short.txt.gz");
	write_gz(p, "#version: 0.2\ni n\nt h\n");
	check_load_error(clip_tokenizer_load(p), p, "too few merges");

	/* Enough lines, but a merge of tokens that do not exist. */
	p = tmp_path("badmerge.txt.gz");
	{
		size_t cap = 48896 * 8;
		char *text = xmalloc(cap);
		size_t n = (size_t)snprintf(text, cap, "#version: 0.2\n");
		for (int i = 0; i < 48894; i++)
			n += (size_t)snprintf(text + n, cap - n, "%s\n", i == 5 ? "one two three" : "a b");
		write_gz(p, text);
		free(text);
	}
	check_load_error(clip_tokenizer_load(p), p, "malformed merge");

	/* Hugging Face files: missing merges.txt, vocab.json not an object,
	 * a vocabulary without the special tokens. */
	const char *dir = tmp_path("hfbad");
	mkdir(dir, 0700);
	char vocab[600], merges[600];
	snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
	snprintf(merges, sizeof merges, "%s/merges.txt", dir);
	write_file(vocab, "{\"a\": 0}", 8);
	check_load_error(clip_tokenizer_load(dir), merges, "missing merges.txt");
	write_file(merges, "#version: 0.2\n", 14);
	write_file(vocab, "[1, 2]", 6);
	check_load_error(clip_tokenizer_load(dir), vocab, "vocab.json not an object");
	write_file(vocab, "{\"a\": 0, \"b\": 1}", 16);
	check_load_error(clip_tokenizer_load(vocab), vocab, "vocab.json without byte tokens");
}

/* ---- speed ---- */

/* 10k captions of the kind a data set has, mostly ASCII. */
static void test_speed(void)
{
	NEED_TOKENIZER();
	static const char *const captions[] = {
		"A photo of a dog running on the beach at sunset.",
		"Two people sitting on a bench in the park, reading newspapers.",
		"Close-up of a red rose with water droplets — macro shot",
		"Café terrace at night, Paris (oil on canvas, 1888)",
		("\xe2\x80\x9c" "Best burger in town!\xe2\x80\x9d said the sign; it's 5$ & worth it."),
		"\xe6\x9d\xb1\xe4\xba\xac\xe3\x81\xae\xe5\xa4\x9c\xe6\x99\xaf with neon lights &amp; rain",
	};
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int32_t out[CLIP_CONTEXT_LENGTH];
	int64_t sum = 0;
	for (int i = 0; i < 10000; i++) {
		const char *c = captions[i % 6];
		sum += clip_tokenize(tok, c, strlen(c), out, CLIP_CONTEXT_LENGTH);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
	printf("# 10000 captions tokenized in %.3f s (%.0f tokens)\n", s, (double)sum);
	CHECK(sum > 10000 * 10);
}

int main(void)
{
	RUN(test_golden_tokenizer_json);
	RUN(test_golden_text_tokens);
	RUN(test_ftfy_fixes);
	RUN(test_clean_corners);
	RUN(test_split_corners);
	RUN(test_invalid_utf8);
	RUN(test_context);
	RUN(test_hf_vocab_and_merges);
	RUN(test_load_errors);
	RUN(test_speed);
	clip_tokenizer_free(tok);
	if (tmpdir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", tmpdir);
	}
	TEST_EXIT();
}
