/* Learning a BPE from captions (text/bpe_learn.h) and reading it back
 * (clip_tokenizer_from_merges): merges worked out by hand, independence of
 * the texts' order, lossless encoding, whole words for seen words and bytes
 * for unseen ones, errors in merges text, the reference's own merges read
 * this way (with ../shared), and the learning speed. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "core/tool.h"
#include "text/bpe_learn.h"
#include "text/clip_pieces.h"
#include "text/clip_tokenizer.h"
#include "text/text_clean.h"
#include "test.h"

/* ---- helpers ---- */

/* Merges learned from texts[0..n) taken in the order idx (NULL: as given). */
static char *learn(const char *const *texts, int n, const int *idx, int max_merges, int min_count, size_t *len)
{
	struct bpe_learner *l = bpe_learner_new();
	for (int i = 0; i < n; i++) {
		const char *t = texts[idx ? idx[i] : i];
		CHECK(bpe_learner_add(l, t, strlen(t)) == 0);
	}
	char *m = bpe_learner_merges(l, max_merges, min_count, len);
	CHECK_MSG(m, "%s", error_message());
	bpe_learner_free(l);
	return m;
}

static struct clip_tokenizer *tokenizer_of(const char *merges, size_t len)
{
	struct clip_tokenizer *t = clip_tokenizer_from_merges(merges, len, "learned");
	CHECK_MSG(t, "%s", error_message());
	return t;
}

/* The merge lines of merges text, without its header. */
static const char *merge_lines(const char *merges)
{
	const char *nl = strchr(merges, '\n');
	return nl ? nl + 1 : "";
}

/* A small deterministic generator for test data. */
static uint32_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*s >> 33);
}

/* Pseudo-captions over a vocabulary of made-up words, so that there is a
 * lot to merge: "a photo of the <word> <word>" and the like. */
static char **make_captions(int n, int nwords)
{
	static const char *const syllables[] = { "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "bra", "qua",
		                                 "ste", "pli", "gor", "fen", "dux", "wy", "oh", "an", "el" };
	static const char *const frames[] = { "a photo of the %s %s", "%s face with %s", "a %s, next to a %s!",
		                              "the %s of %s", "%s %s (emoji)" };
	char (*words)[32] = xmalloc((size_t)nwords * sizeof *words);
	uint64_t s = 12345;
	for (int w = 0; w < nwords; w++) {
		int k = 2 + (int)(rnd(&s) % 3);
		words[w][0] = 0;
		for (int j = 0; j < k; j++)
			strcat(words[w], syllables[rnd(&s) % 20]);
	}
	char **c = xmalloc((size_t)n * sizeof *c);
	for (int i = 0; i < n; i++) {
		/* Zipf-like: low word numbers are much more frequent. */
		int a = (int)(rnd(&s) % (uint32_t)nwords) * (int)(rnd(&s) % 100) / 100;
		int b = (int)(rnd(&s) % (uint32_t)nwords);
		c[i] = xmalloc(128);
		snprintf(c[i], 128, frames[i % 5], words[a], words[b]);
	}
	free(words);
	return c;
}

static void free_captions(char **c, int n)
{
	for (int i = 0; i < n; i++)
		free(c[i]);
	free(c);
}

/* The bytes that encoded ids stand for, with each "</w>" as a space:
 * the reference's SimpleTokenizer.decode. */
static char *decode(const struct clip_tokenizer *t, const struct clip_ids *ids)
{
	uint32_t cp[256];
	int order[256];
	clip_bytes_to_unicode(cp, order);
	size_t cap = 64, n = 0;
	char *out = xmalloc(cap);
	for (size_t i = 0; i < ids->len; i++) {
		const char *s = clip_tokenizer_token(t, ids->ids[i]);
		struct ustr u = { 0 };
		ustr_append_utf8(&u, s, strlen(s));
		for (size_t k = 0; k < u.len; k++) {
			if (n + 2 > cap)
				out = xrealloc(out, cap *= 2);
			if (u.s[k] == '<' && k + 3 < u.len && u.s[k + 1] == '/' && u.s[k + 2] == 'w' && u.s[k + 3] == '>') {
				out[n++] = ' ';
				k += 3;
				continue;
			}
			int b = 0;
			while (b < 256 && cp[b] != u.s[k])
				b++;
			out[n++] = b < 256 ? (char)b : '?';
		}
		ustr_free(&u);
	}
	out[n] = 0;
	return out;
}

/* s without its spaces. */
static void drop_spaces(char *s)
{
	char *o = s;
	for (; *s; s++)
		if (*s != ' ')
			*o++ = *s;
	*o = 0;
}

/* ---- learning ---- */

/* The textbook example: counts hug 10, pug 5, pun 12, bun 4, hugs 5. */
static void test_hand_example(void)
{
	static const char *const texts[] = { "hug hug hug hug hug hug hug hug hug hug", "pug pug pug pug pug",
		                             "pun pun pun pun pun pun pun pun pun pun pun pun", "bun bun bun bun",
		                             "Hugs hugs HUGS hugs hugs" };
	/* p u 17; h u 15 (u g</w> 15 too, "h u" sorts first); pu n</w> 12;
	 * hu g</w> 10; then at 5 "g s</w>" < "hu g" < "pu g</w>", and merging
	 * g s</w> turns hu g into hu gs</w>; at 4 "b u" < "u n</w>". */
	static const char want[] = "p u\nh u\npu n</w>\nhu g</w>\ng s</w>\nhu gs</w>\npu g</w>\nb u\nbu n</w>\n";
	size_t len;
	char *m = learn(texts, 5, NULL, 100, 1, &len);
	if (!m)
		return;
	CHECK(strncmp(m, CLIP_LEARNED_MERGES_HEADER "\n", strlen(CLIP_LEARNED_MERGES_HEADER) + 1) == 0);
	CHECK_MSG(!strcmp(merge_lines(m), want), "merges:\n%s", merge_lines(m));
	CHECK(len == strlen(m));
	free(m);

	/* max_merges and min_count stop it early. */
	m = learn(texts, 5, NULL, 3, 1, &len);
	CHECK(m && !strcmp(merge_lines(m), "p u\nh u\npu n</w>\n"));
	free(m);
	m = learn(texts, 5, NULL, 100, 10, &len);
	CHECK(m && !strcmp(merge_lines(m), "p u\nh u\npu n</w>\nhu g</w>\n"));
	free(m);
	m = learn(texts, 5, NULL, 0, 1, &len);
	CHECK(m && !strcmp(merge_lines(m), ""));
	free(m);
}

/* A repeated letter: "aaaa" counts (a, a) three times, merges left to right. */
static void test_overlapping_pairs(void)
{
	static const char *const texts[] = { "aaaa aaaa aaa" };
	size_t len;
	char *m = learn(texts, 1, NULL, 100, 1, &len);
	/* (a, a) 2 + 2 + 1 = 5 times: "aa a a</w>" and "aa a</w>", then "aa aa</w>". */
	CHECK_MSG(m && !strncmp(merge_lines(m), "a a\n", 4), "%s", m ? m : "");
	struct clip_tokenizer *t = m ? tokenizer_of(m, len) : NULL;
	if (t) {
		struct clip_ids ids = { 0 };
		CHECK(clip_tokenizer_encode(t, "aaaa aaa", 8, &ids) == 0);
		CHECK_MSG(ids.len == 2, "%zu ids", ids.len);
		clip_ids_free(&ids);
	}
	clip_tokenizer_free(t);
	free(m);
}

/* The same texts in any order, or added in other pieces, give the same
 * merges. */
static void test_order_independent(void)
{
	enum { N = 600 };
	char **c = make_captions(N, 150);
	int idx[N];
	for (int i = 0; i < N; i++)
		idx[i] = N - 1 - i;
	uint64_t s = 99;
	int shuffled[N];
	for (int i = 0; i < N; i++)
		shuffled[i] = i;
	for (int i = N - 1; i > 0; i--) {
		int j = (int)(rnd(&s) % (uint32_t)(i + 1)), t = shuffled[i];
		shuffled[i] = shuffled[j];
		shuffled[j] = t;
	}
	size_t l1, l2, l3;
	char *a = learn((const char *const *)c, N, NULL, 300, 1, &l1);
	char *b = learn((const char *const *)c, N, idx, 300, 1, &l2);
	char *d = learn((const char *const *)c, N, shuffled, 300, 1, &l3);
	CHECK(a && b && d);
	if (a && b && d) {
		CHECK(l1 == l2 && !strcmp(a, b));
		CHECK(l1 == l3 && !strcmp(a, d));
	}
	/* All the texts as one, joined by newlines: the same pieces. */
	size_t total = 0;
	for (int i = 0; i < N; i++)
		total += strlen(c[i]) + 1;
	char *all = xmalloc(total + 1), *p = all;
	for (int i = 0; i < N; i++)
		p += sprintf(p, "%s\n", c[i]);
	const char *one[] = { all };
	size_t l4;
	char *e = learn(one, 1, NULL, 300, 1, &l4);
	CHECK(a && e && !strcmp(a, e));
	/* 300 merges were there to learn. */
	int lines = 0;
	for (const char *q = a ? a : ""; *q; q++)
		lines += *q == '\n';
	CHECK_MSG(lines == 301, "%d lines", lines);
	free(all);
	free(a);
	free(b);
	free(d);
	free(e);
	free_captions(c, N);
}

/* ---- the learned tokenizer ---- */

static void test_round_trip(void)
{
	enum { N = 400 };
	char **c = make_captions(N, 100);
	size_t len;
	char *m = learn((const char *const *)c, N, NULL, 200, 2, &len);
	struct clip_tokenizer *t = m ? tokenizer_of(m, len) : NULL;
	if (!t) {
		free(m);
		free_captions(c, N);
		return;
	}
	CHECK(clip_tokenizer_vocab_size(t) == 512 + 200 + 2);
	CHECK(clip_tokenizer_sot(t) == 512 + 200 && clip_tokenizer_eot(t) == 512 + 201);
	CHECK(!strcmp(clip_tokenizer_token(t, clip_tokenizer_eot(t)), "<|endoftext|>"));
	CHECK(clip_tokenizer_token(t, 512 + 202) == NULL);
	static const char *const extra[] = {
		"Unseen words: xylophone, jukebox & quizzical!",
		"Caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 12345 it's <|endoftext|>",
		"  spaces\tand\nnewlines  ", "", "&amp; mojibake caf\xc3\x83\xc2\xa9",
	};
	int bad = 0;
	for (int i = 0; i < N + 5; i++) {
		const char *text = i < N ? c[i] : extra[i - N];
		struct clip_ids ids = { 0 };
		CHECK(clip_tokenizer_encode(t, text, strlen(text), &ids) == 0);
		for (size_t k = 0; k < ids.len; k++)
			CHECK(ids.ids[k] >= 0 && ids.ids[k] < clip_tokenizer_vocab_size(t));
		char *got = decode(t, &ids);
		struct ustr u = { 0 };
		clip_text_clean(text, strlen(text), &u);
		char *want = utf32_to_utf8(u.s, u.len, NULL);
		drop_spaces(got);
		drop_spaces(want);
		if (strcmp(got, want)) {
			if (!bad++)
				CHECK_MSG(0, "\"%s\" decodes to \"%s\"", want, got);
		}
		free(got);
		free(want);
		ustr_free(&u);
		clip_ids_free(&ids);
	}
	CHECK(bad == 0);
	clip_tokenizer_free(t);
	free(m);
	free_captions(c, N);
}

/* Learned to the end, every training word is one token; a word of letters
 * never seen is its bytes. */
static void test_seen_and_unseen_words(void)
{
	static const char *const texts[] = { "red heart", "a sneaker", "grinning face with big eyes",
		                             "T-shirt/top, trouser and pullover", "red apple", "face" };
	size_t len;
	char *m = learn(texts, 6, NULL, 100000, 1, &len);
	struct clip_tokenizer *t = m ? tokenizer_of(m, len) : NULL;
	if (!t) {
		free(m);
		return;
	}
	for (int i = 0; i < 6; i++) {
		struct ustr u = { 0 };
		clip_text_clean(texts[i], strlen(texts[i]), &u);
		struct clip_pieces it;
		clip_pieces_init(&it, &u);
		size_t npieces = 0;
		while (clip_pieces_next(&it))
			npieces++;
		clip_pieces_free(&it);
		ustr_free(&u);
		struct clip_ids ids = { 0 };
		CHECK(clip_tokenizer_encode(t, texts[i], strlen(texts[i]), &ids) == 0);
		CHECK_MSG(ids.len == npieces, "\"%s\": %zu ids for %zu pieces", texts[i], ids.len, npieces);
		clip_ids_free(&ids);
	}
	struct clip_ids ids = { 0 };
	CHECK(clip_tokenizer_encode(t, "heart", 5, &ids) == 0);
	CHECK(ids.len == 1 && !strcmp(clip_tokenizer_token(t, ids.ids[0]), "heart</w>"));
	clip_ids_free(&ids);
	/* No merge has these letters next to each other: one id per byte,
	 * each a byte token (ids below 512), the last one with "</w>". */
	CHECK(clip_tokenizer_encode(t, "zqvk\xc3\xa9", 6, &ids) == 0);
	CHECK_MSG(ids.len == 6, "%zu ids", ids.len);
	for (size_t k = 0; k < ids.len; k++)
		CHECK(ids.ids[k] < 512 && (ids.ids[k] >= 256) == (k == ids.len - 1));
	CHECK(ids.len == 6 && !strcmp(clip_tokenizer_token(t, ids.ids[0]), "z") &&
	      !strcmp(clip_tokenizer_token(t, ids.ids[5]), "\xc2\xa9</w>"));
	clip_ids_free(&ids);
	/* clip_tokenize pools on the end token, the largest id. */
	int32_t ctx[8];
	CHECK(clip_tokenize(t, "red heart", 9, ctx, 8) == 4);
	CHECK(ctx[0] == clip_tokenizer_sot(t) && ctx[3] == clip_tokenizer_eot(t) && ctx[4] == 0);
	clip_tokenizer_free(t);
	free(m);
}

/* A learned merges file loads by path too (plain or gzip'd), as
 * clip-embed --vocab reads it. */
static void test_load_learned_file(void)
{
	static const char *const texts[] = { "red heart", "red apple" };
	size_t len;
	char *m = learn(texts, 2, NULL, 100, 1, &len);
	char dir[] = "/tmp/test_bpe_learn.XXXXXX", path[64], gz[64];
	if (!m || !mkdtemp(dir)) {
		free(m);
		return;
	}
	snprintf(path, sizeof path, "%s/merges.txt", dir);
	snprintf(gz, sizeof gz, "%s/merges.txt.gz", dir);
	FILE *f = fopen(path, "wb");
	fwrite(m, 1, len, f);
	fclose(f);
	gzFile g = gzopen(gz, "wb");
	gzwrite(g, m, (unsigned)len);
	gzclose(g);
	struct clip_tokenizer *a = tokenizer_of(m, len), *b = clip_tokenizer_load(path), *c = clip_tokenizer_load(gz);
	CHECK_MSG(b && c, "%s", error_message());
	if (a && b && c) {
		struct clip_ids x = { 0 }, y = { 0 }, z = { 0 };
		clip_tokenizer_encode(a, "red heart red", 13, &x);
		clip_tokenizer_encode(b, "red heart red", 13, &y);
		clip_tokenizer_encode(c, "red heart red", 13, &z);
		CHECK(x.len == 3 && y.len == 3 && z.len == 3);
		for (size_t k = 0; k < x.len && k < y.len && k < z.len; k++)
			CHECK(x.ids[k] == y.ids[k] && x.ids[k] == z.ids[k]);
		CHECK(clip_tokenizer_vocab_size(b) == clip_tokenizer_vocab_size(a));
		clip_ids_free(&x);
		clip_ids_free(&y);
		clip_ids_free(&z);
	}
	clip_tokenizer_free(a);
	clip_tokenizer_free(b);
	clip_tokenizer_free(c);
	unlink(path);
	unlink(gz);
	rmdir(dir);
	free(m);
}

/* ---- errors ---- */

static void expect_merges_error(const char *text, const char *want)
{
	struct clip_tokenizer *t = clip_tokenizer_from_merges(text, strlen(text), "ckpt.safetensors");
	CHECK_MSG(!t, "\"%s\" loaded", text);
	clip_tokenizer_free(t);
	if (!t)
		CHECK_MSG(strstr(error_message(), "ckpt.safetensors: ") == error_message() && strstr(error_message(), want),
		          "\"%s\": message \"%s\", expected \"%s\"", text, error_message(), want);
}

static void test_merges_errors(void)
{
	expect_merges_error("", "line 1: no header line");
	expect_merges_error("a b\nb c\n", "line 1: no header line");
	expect_merges_error("#version: 0.2\na b c\n", "line 2: expected a merge");
	expect_merges_error("#version: 0.2\nab\n", "line 2: expected a merge");
	expect_merges_error("#version: 0.2\na b\n\nb c\n", "line 3: expected a merge");
	expect_merges_error("#version: 0.2\na b\nab c</w>\nabc d\nab d\n", "line 4: \"abc\" is neither");
	expect_merges_error("#version: 0.2\nh u\nhug s\n", "line 3: \"hug\" is neither");
	expect_merges_error("#version: 0.2\na <|endoftext|>\n", "line 2: \"<|endoftext|>\" is neither");
	expect_merges_error("#version: 0.2\na b\nc d\na b\n", "line 4: \"a b\" repeats an earlier merge");
	expect_merges_error("#version: 0.2\na \xff\n", "not UTF-8");

	/* A header alone: bytes only. No final newline is needed. */
	struct clip_tokenizer *t = clip_tokenizer_from_merges("#version: 0.2", 13, "x");
	CHECK(t && clip_tokenizer_vocab_size(t) == 514 && clip_tokenizer_eot(t) == 513);
	clip_tokenizer_free(t);
	t = clip_tokenizer_from_merges("#version: 0.2\nh u\nhu g</w>", 26, "x");
	CHECK(t && clip_tokenizer_vocab_size(t) == 516 && !strcmp(clip_tokenizer_token(t, 513), "hug</w>"));
	clip_tokenizer_free(t);

	struct bpe_learner *l = bpe_learner_new();
	size_t len;
	CHECK(bpe_learner_merges(l, 10, 1, &len) == NULL && strstr(error_message(), "no text"));
	CHECK(bpe_learner_add(l, " \t\n", 3) == 0);
	CHECK(bpe_learner_merges(l, 10, 1, &len) == NULL);
	CHECK(bpe_learner_add(l, "ok", 2) == 0);
	char *m = bpe_learner_merges(l, 10, 1, &len);
	CHECK(m && !strcmp(merge_lines(m), "o k</w>\n"));
	free(m);
	bpe_learner_free(l);
	bpe_learner_free(NULL);
}

/* ---- the reference's merges through from_merges ---- */

static void test_reference_merges(void)
{
	char path[400];
	snprintf(path, sizeof path, "%s/clip/bpe_simple_vocab_16e6.txt.gz", test_shared_dir());
	if (access(path, R_OK) != 0)
		SKIP("no CLIP vocabulary at %s (shared/ not present)", path);
	struct clip_tokenizer *ref = clip_tokenizer_load_bpe(path);
	CHECK_MSG(ref, "%s", error_message());
	/* The header and the first 48,894 merges. */
	gzFile gz = gzopen(path, "rb");
	size_t cap = 1 << 20, n = 0;
	char *text = xmalloc(cap), line[1024];
	int lines = 0;
	while (lines < 48895 && gzgets(gz, line, sizeof line)) {
		size_t k = strlen(line);
		if (n + k + 1 > cap)
			text = xrealloc(text, cap *= 2);
		memcpy(text + n, line, k);
		n += k;
		lines++;
	}
	gzclose(gz);
	struct clip_tokenizer *t = clip_tokenizer_from_merges(text, n, path);
	CHECK_MSG(t, "%s", error_message());
	if (!ref || !t) {
		clip_tokenizer_free(ref);
		clip_tokenizer_free(t);
		free(text);
		return;
	}
	CHECK(clip_tokenizer_vocab_size(t) == 49408 && clip_tokenizer_sot(t) == 49406 && clip_tokenizer_eot(t) == 49407);
	/* Strings: captions, and words made of every 97th merge's token. */
	char **c = make_captions(200, 80);
	int same = 0, total = 0;
	for (int i = 0; i < 400; i++) {
		char buf[256];
		const char *s = buf;
		if (i < 200) {
			s = c[i];
		} else {
			const char *a = clip_tokenizer_token(ref, 512 + (i * 97) % 48894);
			const char *b = clip_tokenizer_token(ref, 512 + (i * 131) % 48894);
			snprintf(buf, sizeof buf, "%s%s, Caf\xc3\xa9 %d!", a, b, i);
		}
		struct clip_ids x = { 0 }, y = { 0 };
		clip_tokenizer_encode(ref, s, strlen(s), &x);
		clip_tokenizer_encode(t, s, strlen(s), &y);
		bool eq = x.len == y.len;
		for (size_t k = 0; eq && k < x.len; k++)
			eq = x.ids[k] == y.ids[k];
		same += eq;
		total++;
		CHECK_MSG(eq, "\"%s\" differs", s);
		clip_ids_free(&x);
		clip_ids_free(&y);
	}
	printf("# reference merges through from_merges: %d/%d strings same ids\n", same, total);
	free_captions(c, 200);
	clip_tokenizer_free(ref);
	clip_tokenizer_free(t);
	free(text);
}

/* ---- speed ---- */

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

/* 20,000 captions, 2,000 merges. */
static void test_speed(void)
{
	enum { N = 20000 };
	char **c = make_captions(N, 3000);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct bpe_learner *l = bpe_learner_new();
	for (int i = 0; i < N; i++)
		bpe_learner_add(l, c[i], strlen(c[i]));
	double add = seconds_since(&t0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	size_t len;
	char *m = bpe_learner_merges(l, 2000, 2, &len);
	double learn_s = seconds_since(&t0);
	int lines = 0;
	for (const char *q = m ? m : ""; *q; q++)
		lines += *q == '\n';
	printf("# %d captions counted in %.3f s, %d merges learned in %.3f s\n", N, add, lines - 1, learn_s);
	CHECK_MSG(lines - 1 == 2000, "%d merges", lines - 1);
	/* Generous: the machine is shared; well under a second when idle. */
	CHECK_MSG(add + learn_s < 5, "%.2f s", add + learn_s);
	free(m);
	bpe_learner_free(l);
	free_captions(c, N);
}

int main(void)
{
	RUN(test_hand_example);
	RUN(test_overlapping_pairs);
	RUN(test_order_independent);
	RUN(test_round_trip);
	RUN(test_seen_and_unseen_words);
	RUN(test_load_learned_file);
	RUN(test_merges_errors);
	RUN(test_reference_merges);
	RUN(test_speed);
	TEST_EXIT();
}
