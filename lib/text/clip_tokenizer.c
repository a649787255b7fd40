/* CLIP's byte-level BPE tokenizer (see clip_tokenizer.h). Tokens are ids
 * throughout: a word starts as the ids of its bytes (the last one with
 * "</w>"), and a merge rewrites a pair of ids into the id of their
 * concatenation, which the vocabulary always holds. */
#include "text/clip_tokenizer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/error.h"
#include "core/tool.h"
#include "stream/json.h"
#include "stream/msgpack.h"
#include "text/clip_pieces.h"
#include "text/text_clean.h"

/* The reference keeps merges lines 1 .. 49152-256-2 of its file. */
#define CLIP_MERGES (49152 - 256 - 2)

struct clip_tokenizer {
	int32_t vocab_size;
	char *strings;          /* every token's bytes, NUL-terminated */
	size_t strings_len, strings_cap;
	size_t *offset;         /* id -> its string in strings; SIZE_MAX if unused */
	/* string -> id, open addressing: slot holds id + 1, 0 = empty */
	uint32_t *vocab_slots;
	size_t vocab_mask;
	/* (left id, right id) -> merge rank and merged id */
	uint64_t *pair_keys;
	uint32_t *pair_rank1;   /* rank + 1, 0 = empty */
	int32_t *pair_merged;
	size_t pair_mask;
	int32_t byte_id[256], byte_end_id[256];
	int32_t sot, eot;
};

/* ---- GPT-2's byte -> unicode table ---- */

/* Bytes that are printable Latin-1 map to themselves; the other 68 map to
 * U+0100.. in byte order. The vocabulary's first 256 entries are these
 * characters in the order printable bytes first, then the others. */
void clip_bytes_to_unicode(uint32_t cp[256], int order[256])
{
	int n = 0, k = 0;
	for (int b = 0; b < 256; b++)
		if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
			cp[b] = (uint32_t)b, order[k++] = b;
	for (int b = 0; b < 256; b++)
		if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)))
			cp[b] = 256 + (uint32_t)n++, order[k++] = b;
}

/* ---- the vocabulary ---- */

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
	return h ^ h >> 29;
}

static const char *token_string(const struct clip_tokenizer *t, int32_t id)
{
	return t->strings + t->offset[id];
}

/* The id of the token spelled s[0..n), or -1. */
static int32_t vocab_find(const struct clip_tokenizer *t, const char *s, size_t n)
{
	for (size_t i = hash_bytes(s, n) & t->vocab_mask;; i = (i + 1) & t->vocab_mask) {
		uint32_t v = t->vocab_slots[i];
		if (v == 0)
			return -1;
		const char *m = token_string(t, (int32_t)(v - 1));
		if (strncmp(m, s, n) == 0 && m[n] == 0)
			return (int32_t)(v - 1);
	}
}

static void vocab_init(struct clip_tokenizer *t, size_t n)
{
	size_t cap = 1024;
	while (cap < 2 * n)
		cap *= 2;
	t->vocab_slots = xcalloc(cap, sizeof *t->vocab_slots);
	t->vocab_mask = cap - 1;
	t->vocab_size = (int32_t)n;
	t->offset = xmalloc(n * sizeof *t->offset);
	for (size_t i = 0; i < n; i++)
		t->offset[i] = SIZE_MAX;
}

/* Gives id the string s[0..n); a later id for the same string replaces
 * the earlier one, as Python's dict(zip(vocab, range(...))) does. */
static void vocab_set(struct clip_tokenizer *t, int32_t id, const char *s, size_t n)
{
	if (t->strings_len + n + 1 > t->strings_cap) {
		t->strings_cap = t->strings_cap ? 2 * t->strings_cap : 1 << 16;
		while (t->strings_len + n + 1 > t->strings_cap)
			t->strings_cap *= 2;
		t->strings = xrealloc(t->strings, t->strings_cap);
	}
	memcpy(t->strings + t->strings_len, s, n);
	t->strings[t->strings_len + n] = 0;
	t->offset[id] = t->strings_len;
	t->strings_len += n + 1;
	size_t i = hash_bytes(s, n) & t->vocab_mask;
	for (;; i = (i + 1) & t->vocab_mask) {
		uint32_t v = t->vocab_slots[i];
		if (v == 0)
			break;
		const char *m = token_string(t, (int32_t)(v - 1));
		if (strncmp(m, s, n) == 0 && m[n] == 0)
			break;
	}
	t->vocab_slots[i] = (uint32_t)id + 1;
}

/* ---- merges ---- */

static size_t pair_slot(const struct clip_tokenizer *t, uint64_t key)
{
	size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & t->pair_mask;
	while (t->pair_rank1[i] && t->pair_keys[i] != key)
		i = (i + 1) & t->pair_mask;
	return i;
}

static void pairs_init(struct clip_tokenizer *t, size_t n)
{
	size_t cap = 1024;
	while (cap < 2 * n)
		cap *= 2;
	t->pair_keys = xmalloc(cap * sizeof *t->pair_keys);
	t->pair_rank1 = xcalloc(cap, sizeof *t->pair_rank1);
	t->pair_merged = xmalloc(cap * sizeof *t->pair_merged);
	t->pair_mask = cap - 1;
}

static uint64_t pair_key(int32_t a, int32_t b)
{
	return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

/* Python's str.split() of a merges line: its first three fields (runs
 * of non-blanks) in f, fl; returns how many there are, at most 3. */
static int split_merge(const char *line, size_t len, const char *f[3], size_t fl[3])
{
	int nf = 0;
	for (size_t i = 0; i < len;) {
		while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\v' || line[i] == '\f'))
			i++;
		if (i == len)
			break;
		size_t j = i;
		while (j < len && !(line[j] == ' ' || line[j] == '\t' || line[j] == '\r' || line[j] == '\v' || line[j] == '\f'))
			j++;
		if (nf == 3)
			break;
		f[nf] = line + i, fl[nf] = j - i, nf++;
		i = j;
	}
	return nf;
}

/* One merges line "left right" of rank `rank`. The pair and the merged
 * token must be in the vocabulary. Returns 0, 1 if an earlier merge had
 * the same pair, or -1 (errorf). */
static int add_merge(struct clip_tokenizer *t, const char *line, size_t len, uint32_t rank)
{
	const char *f[3];
	size_t fl[3];
	int nf = split_merge(line, len, f, fl);
	if (nf != 2)
		return errorf("merge %u: expected two tokens, found %d", rank + 1, nf);
	int32_t a = vocab_find(t, f[0], fl[0]), b = vocab_find(t, f[1], fl[1]);
	char joined[512];
	if (fl[0] + fl[1] >= sizeof joined)
		return errorf("merge %u: token too long", rank + 1);
	memcpy(joined, f[0], fl[0]);
	memcpy(joined + fl[0], f[1], fl[1]);
	int32_t m = vocab_find(t, joined, fl[0] + fl[1]);
	if (a < 0 || b < 0 || m < 0)
		return errorf("merge %u: \"%.*s %.*s\" uses a token missing from the vocabulary", rank + 1, (int)fl[0], f[0],
		              (int)fl[1], f[1]);
	size_t i = pair_slot(t, pair_key(a, b));
	t->pair_keys[i] = pair_key(a, b);
	int repeated = t->pair_rank1[i] != 0;
	t->pair_rank1[i] = rank + 1; /* a repeated pair keeps its last rank */
	t->pair_merged[i] = m;
	return repeated;
}

/* The ids of the byte tokens and the two special tokens. */
static int find_fixed_tokens(struct clip_tokenizer *t)
{
	uint32_t cp[256];
	int order[256];
	clip_bytes_to_unicode(cp, order);
	for (int b = 0; b < 256; b++) {
		char s[8];
		int n = utf8_put(cp[b], s);
		memcpy(s + n, "</w>", 4);
		t->byte_id[b] = vocab_find(t, s, (size_t)n);
		t->byte_end_id[b] = vocab_find(t, s, (size_t)n + 4);
		if (t->byte_id[b] < 0 || t->byte_end_id[b] < 0)
			return errorf("the vocabulary lacks the token for byte 0x%02x", b);
	}
	t->sot = vocab_find(t, "<|startoftext|>", 15);
	t->eot = vocab_find(t, "<|endoftext|>", 13);
	if (t->sot < 0 || t->eot < 0)
		return errorf("the vocabulary lacks <|startoftext|> or <|endoftext|>");
	return 0;
}

void clip_tokenizer_free(struct clip_tokenizer *t)
{
	if (!t)
		return;
	free(t->strings);
	free(t->offset);
	free(t->vocab_slots);
	free(t->pair_keys);
	free(t->pair_rank1);
	free(t->pair_merged);
	free(t);
}

/* ---- loading ---- */

/* Reads a whole file, gunzipping it if it is gzip (zlib reads a plain
 * file as is). Returns 0, or -1 (errorf without the path). */
static int read_file_gz(const char *path, char **data, size_t *len)
{
	errno = 0;
	gzFile gz = gzopen(path, "rb");
	if (!gz)
		return errorf("%s", errno ? strerror(errno) : "cannot open");
	size_t cap = 1 << 20, n = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		if (cap - n < (1 << 16))
			buf = xrealloc(buf, cap *= 2);
		int got = gzread(gz, buf + n, (unsigned)(cap - n - 1));
		if (got < 0)
			break;
		if (got == 0)
			break;
		n += (size_t)got;
	}
	int err;
	const char *msg = gzerror(gz, &err);
	if (err != Z_OK && err != Z_STREAM_END) {
		errorf("corrupt or truncated gzip data (%s)", msg);
		gzclose(gz);
		free(buf);
		return -1;
	}
	gzclose(gz);
	buf[n] = 0;
	*data = buf;
	*len = n;
	return 0;
}

static int check_utf8(const char *data, size_t len)
{
	for (size_t i = 0; i < len;) {
		int k = utf8_sequence_length((const uint8_t *)data + i, len - i);
		if (k == 0)
			return errorf("byte %zu: not UTF-8", i);
		i += (size_t)k;
	}
	return 0;
}

/* Splits data at '\n' into lines (pointers into data). */
static size_t split_lines(const char *data, size_t len, const char ***lines, size_t **lens)
{
	size_t n = 1;
	for (size_t i = 0; i < len; i++)
		n += data[i] == '\n';
	*lines = xmalloc(n * sizeof **lines);
	*lens = xmalloc(n * sizeof **lens);
	size_t k = 0, start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || data[i] == '\n') {
			(*lines)[k] = data + start;
			(*lens)[k] = i - start;
			k++;
			start = i + 1;
		}
	}
	return k;
}

/* The tokenizer of merges line[0 .. nmerges), which are lines 2, 3, ... of
 * their file: the vocabulary is the 256 byte characters, the same with
 * "</w>", every merge's result, then the two special tokens. The
 * reference's file is taken as it is; a learned one (strict) is checked:
 * each merge two tokens that the bytes or earlier merges make, no merge
 * twice. NULL on failure (errorf "line N: ..."). */
static struct clip_tokenizer *build_from_merges(const char *const *line, const size_t *line_len, size_t nmerges,
                                                bool strict)
{
	struct clip_tokenizer *t = xcalloc(1, sizeof *t);
	vocab_init(t, 512 + nmerges + 2);
	pairs_init(t, nmerges);
	uint32_t cp[256];
	int order[256];
	clip_bytes_to_unicode(cp, order);
	int32_t id = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (int k = 0; k < 256; k++) {
			char s[8];
			int n = utf8_put(cp[order[k]], s);
			if (pass)
				memcpy(s + n, "</w>", 4), n += 4;
			vocab_set(t, id++, s, (size_t)n);
		}
	}
	for (size_t r = 0; r < nmerges; r++) {
		const char *l = line[r];
		size_t n = line_len[r];
		if (strict) {
			/* The vocabulary so far holds exactly the byte tokens and the
			 * earlier merges' results. */
			const char *f[3];
			size_t fl[3];
			int nf = split_merge(l, n, f, fl);
			if (nf != 2) {
				errorf("line %zu: expected a merge \"left right\", found %d fields", r + 2, nf);
				goto fail;
			}
			for (int k = 0; k < 2; k++)
				if (vocab_find(t, f[k], fl[k]) < 0) {
					errorf("line %zu: \"%.*s\" is neither a byte token nor made by an earlier merge", r + 2,
					       (int)fl[k], f[k]);
					goto fail;
				}
		}
		char joined[512];
		size_t k = 0;
		for (size_t i = 0; i < n && k < sizeof joined; i++)
			if (!(l[i] == ' ' || l[i] == '\t' || l[i] == '\r' || l[i] == '\v' || l[i] == '\f'))
				joined[k++] = l[i];
		if (k == sizeof joined) {
			errorf("line %zu: token too long", r + 2);
			goto fail;
		}
		vocab_set(t, id++, joined, k);
	}
	vocab_set(t, id++, "<|startoftext|>", 15);
	vocab_set(t, id++, "<|endoftext|>", 13);
	for (size_t r = 0; r < nmerges; r++) {
		int rc = add_merge(t, line[r], line_len[r], (uint32_t)r);
		if (rc < 0)
			goto fail;
		if (rc == 1 && strict) {
			errorf("line %zu: \"%.*s\" repeats an earlier merge", r + 2, (int)line_len[r], line[r]);
			goto fail;
		}
	}
	if (find_fixed_tokens(t) < 0)
		goto fail;
	return t;
fail:
	clip_tokenizer_free(t);
	return NULL;
}

static struct clip_tokenizer *build_from_bpe(const char *data, size_t len)
{
	if (check_utf8(data, len) < 0)
		return NULL;
	const char **line;
	size_t *line_len;
	size_t nlines = split_lines(data, len, &line, &line_len);
	struct clip_tokenizer *t = NULL;
	if (nlines < CLIP_MERGES + 1)
		errorf("not a CLIP BPE merges file: %zu lines, expected at least %d", nlines, CLIP_MERGES + 1);
	else
		t = build_from_merges(line + 1, line_len + 1, CLIP_MERGES, false);
	free(line);
	free(line_len);
	return t;
}

/* A header line, then merges to the end; a last '\n' ends the last merge. */
static struct clip_tokenizer *build_from_learned(const char *data, size_t len)
{
	if (check_utf8(data, len) < 0)
		return NULL;
	const char **line;
	size_t *line_len;
	size_t nlines = split_lines(data, len, &line, &line_len);
	if (nlines > 0 && line_len[nlines - 1] == 0)
		nlines--;
	struct clip_tokenizer *t = NULL;
	if (nlines == 0 || !memmem(line[0], line_len[0], "#version", 8))
		errorf("line 1: no header line (one holding \"#version\", as in bpe_simple_vocab_16e6.txt)");
	else if (nlines - 1 > INT32_MAX / 2)
		errorf("%zu merges: too many", nlines - 1);
	else
		t = build_from_merges(line + 1, line_len + 1, nlines - 1, true);
	free(line);
	free(line_len);
	return t;
}

struct clip_tokenizer *clip_tokenizer_from_merges(const char *text, size_t len, const char *label)
{
	struct clip_tokenizer *t = build_from_learned(text, len);
	if (!t)
		error_prefix("%s", label);
	return t;
}

/* Whether a merges file is one that bpe_learn wrote. */
static bool is_learned_merges(const char *data, size_t len)
{
	size_t n = strlen(CLIP_LEARNED_MERGES_HEADER);
	return len >= n && !memcmp(data, CLIP_LEARNED_MERGES_HEADER, n) && (len == n || data[n] == '\n');
}

struct clip_tokenizer *clip_tokenizer_load_bpe(const char *path)
{
	char *data = NULL;
	size_t len = 0;
	if (read_file_gz(path, &data, &len) < 0) {
		error_prefix("%s", path);
		return NULL;
	}
	struct clip_tokenizer *t = is_learned_merges(data, len) ? build_from_learned(data, len) : build_from_bpe(data, len);
	free(data);
	if (!t)
		error_prefix("%s", path);
	return t;
}

/* vocab.json: one JSON object of token -> id. */
static struct clip_tokenizer *build_from_vocab_json(const char *data, size_t len)
{
	struct mp_buf mp = { 0 };
	struct clip_tokenizer *t = NULL;
	if (json_to_msgpack(data, len, &mp) < 0)
		goto out;
	const uint8_t *p = mp.data, *end = mp.data + mp.len;
	struct mp_header h;
	int k = mp_decode_header(p, (size_t)(end - p), &h);
	if (k <= 0 || h.type != MP_MAP || h.len == 0) {
		errorf("expected a JSON object of token -> id");
		goto out;
	}
	p += k;
	size_t n = (size_t)h.len;
	/* Two passes: the largest id sizes the table. */
	int64_t max_id = -1;
	for (int pass = 0; pass < 2; pass++) {
		const uint8_t *q = p;
		for (size_t i = 0; i < n; i++) {
			struct mp_header ks, vs;
			int a = mp_decode_header(q, (size_t)(end - q), &ks);
			if (a <= 0 || ks.type != MP_STR || ks.len > (uint64_t)(end - q - a)) {
				errorf("entry %zu: bad key", i);
				goto fail;
			}
			const char *key = (const char *)q + a;
			q += a + ks.len;
			int b = mp_decode_header(q, (size_t)(end - q), &vs);
			if (b <= 0 || (vs.type != MP_INT && vs.type != MP_UINT) ||
			    (vs.type == MP_INT ? vs.i < 0 || vs.i > INT32_MAX - 1 : vs.u > INT32_MAX - 1)) {
				errorf("entry \"%.*s\": id is not an integer in 0..2^31-2", (int)ks.len, key);
				goto fail;
			}
			int64_t id = vs.type == MP_INT ? vs.i : (int64_t)vs.u;
			q += b;
			if (pass == 0 && id > max_id)
				max_id = id;
			if (pass == 1)
				vocab_set(t, (int32_t)id, key, (size_t)ks.len);
		}
		if (pass == 0) {
			if (max_id > 16 * (int64_t)n + 1024) {
				errorf("ids up to %lld for %zu tokens", (long long)max_id, n);
				goto out;
			}
			t = xcalloc(1, sizeof *t);
			vocab_init(t, (size_t)max_id + 1);
		}
	}
	goto out;
fail:
	clip_tokenizer_free(t);
	t = NULL;
out:
	mp_buf_free(&mp);
	return t;
}

static int read_plain(const char *path, char **data, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return errorf("%s: %s", path, strerror(errno));
	size_t cap = 1 << 16, n = 0;
	char *buf = xmalloc(cap);
	size_t got;
	while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += got;
		if (cap - n < 4096)
			buf = xrealloc(buf, cap *= 2);
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		return errorf("%s: read error", path);
	}
	buf[n] = 0;
	*data = buf;
	*len = n;
	return 0;
}

struct clip_tokenizer *clip_tokenizer_load_hf(const char *vocab_json, const char *merges_txt)
{
	char *vdata = NULL, *mdata = NULL;
	size_t vlen, mlen;
	struct clip_tokenizer *t = NULL;
	const char **line = NULL;
	size_t *line_len = NULL;
	if (read_plain(vocab_json, &vdata, &vlen) < 0 || read_plain(merges_txt, &mdata, &mlen) < 0)
		goto out;
	t = build_from_vocab_json(vdata, vlen);
	if (!t) {
		error_prefix("%s", vocab_json);
		goto out;
	}
	if (check_utf8(mdata, mlen) < 0) {
		error_prefix("%s", merges_txt);
		goto fail;
	}
	size_t nlines = split_lines(mdata, mlen, &line, &line_len);
	/* A "#version" first line, then one merge per line; blank lines (the
	 * file's end) are skipped. */
	size_t first = nlines > 0 && line_len[0] > 0 && line[0][0] == '#';
	size_t nmerges = 0;
	pairs_init(t, nlines);
	for (size_t i = first; i < nlines; i++) {
		bool blank = true;
		for (size_t k = 0; k < line_len[i] && blank; k++)
			blank = line[i][k] == ' ' || line[i][k] == '\r' || line[i][k] == '\t';
		if (blank)
			continue;
		if (add_merge(t, line[i], line_len[i], (uint32_t)nmerges++) < 0) {
			error_prefix("%s: line %zu", merges_txt, i + 1);
			goto fail;
		}
	}
	if (find_fixed_tokens(t) < 0) {
		error_prefix("%s", vocab_json);
		goto fail;
	}
	goto out;
fail:
	clip_tokenizer_free(t);
	t = NULL;
out:
	free(vdata);
	free(mdata);
	free(line);
	free(line_len);
	return t;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

struct clip_tokenizer *clip_tokenizer_load(const char *path)
{
	if (is_dir(path) || ends_with(path, ".json")) {
		size_t n = strlen(path);
		char *dir = xstrdup(path);
		if (!is_dir(path)) {
			char *slash = strrchr(dir, '/');
			if (slash)
				slash[1] = 0;
			else
				dir[0] = 0;
		}
		char *vocab = xmalloc(n + 32), *merges = xmalloc(n + 32);
		const char *sep = dir[0] && dir[strlen(dir) - 1] != '/' ? "/" : "";
		if (is_dir(path))
			snprintf(vocab, n + 32, "%s%svocab.json", dir, sep);
		else
			snprintf(vocab, n + 32, "%s", path);
		snprintf(merges, n + 32, "%s%smerges.txt", dir, sep);
		struct clip_tokenizer *t = clip_tokenizer_load_hf(vocab, merges);
		free(dir);
		free(vocab);
		free(merges);
		return t;
	}
	return clip_tokenizer_load_bpe(path);
}

int32_t clip_tokenizer_vocab_size(const struct clip_tokenizer *t)
{
	return t->vocab_size;
}

int32_t clip_tokenizer_sot(const struct clip_tokenizer *t)
{
	return t->sot;
}

int32_t clip_tokenizer_eot(const struct clip_tokenizer *t)
{
	return t->eot;
}

const char *clip_tokenizer_token(const struct clip_tokenizer *t, int32_t id)
{
	if (id < 0 || id >= t->vocab_size || t->offset[id] == SIZE_MAX)
		return NULL;
	return token_string(t, id);
}

/* ---- encoding ---- */

void clip_ids_free(struct clip_ids *ids)
{
	free(ids->ids);
	*ids = (struct clip_ids){ 0 };
}

static void ids_push(struct clip_ids *o, int32_t id)
{
	if (o->len == o->cap) {
		o->cap = o->cap ? 2 * o->cap : 64;
		o->ids = xrealloc(o->ids, o->cap * sizeof *o->ids);
	}
	o->ids[o->len++] = id;
}

/* Scratch space for bpe_piece, grown to the longest piece. */
struct bpe_scratch {
	int32_t *sym, *prev, *next;
	uint64_t *heap, *batch;
	size_t cap;
};

static void bpe_scratch_reserve(struct bpe_scratch *w, size_t n)
{
	if (n <= w->cap)
		return;
	w->cap = n;
	w->sym = xrealloc(w->sym, n * sizeof *w->sym);
	w->prev = xrealloc(w->prev, n * sizeof *w->prev);
	w->next = xrealloc(w->next, n * sizeof *w->next);
	/* Every merge pushes at most two pairs on top of the first n - 1. */
	w->heap = xrealloc(w->heap, 3 * n * sizeof *w->heap);
	w->batch = xrealloc(w->batch, 3 * n * sizeof *w->batch);
}

static void bpe_scratch_free(struct bpe_scratch *w)
{
	free(w->sym);
	free(w->prev);
	free(w->next);
	free(w->heap);
	free(w->batch);
}

/* A min-heap of (rank << 32 | position of the pair's left symbol). */
static void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
	size_t i = (*n)++;
	while (i > 0 && h[(i - 1) / 2] > v) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
	uint64_t top = h[0], v = h[--*n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && h[c + 1] < h[c])
			c++;
		if (h[c] >= v)
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = v;
	return top;
}

/* The merge rank of the pair starting at symbol i (UINT32_MAX if none),
 * and the merged token in *merged. */
static uint32_t pair_rank_at(const struct clip_tokenizer *t, const struct bpe_scratch *w, int32_t i, int32_t *merged)
{
	if (i < 0 || w->next[i] < 0)
		return UINT32_MAX;
	size_t s = pair_slot(t, pair_key(w->sym[i], w->sym[w->next[i]]));
	if (!t->pair_rank1[s])
		return UINT32_MAX;
	*merged = t->pair_merged[s];
	return t->pair_rank1[s] - 1;
}

static void push_pair(const struct clip_tokenizer *t, struct bpe_scratch *w, size_t *nheap, int32_t i)
{
	int32_t merged;
	uint32_t r = pair_rank_at(t, w, i, &merged);
	if (r != UINT32_MAX)
		heap_push(w->heap, nheap, (uint64_t)r << 32 | (uint32_t)i);
}

/* SimpleTokenizer.bpe on one piece's bytes, appending the ids. The
 * reference repeatedly takes the adjacent pair of lowest merge rank and
 * merges all its occurrences left to right; a heap of pairs keyed by
 * (rank, position) over a linked list of symbols does the same in
 * O(n log n), so that a very long word cannot stall the tokenizer. */
static void bpe_piece(const struct clip_tokenizer *t, const uint8_t *b, size_t n, struct bpe_scratch *w,
                      struct clip_ids *out)
{
	bpe_scratch_reserve(w, n);
	for (size_t i = 0; i < n; i++) {
		w->sym[i] = i + 1 < n ? t->byte_id[b[i]] : t->byte_end_id[b[i]];
		w->prev[i] = (int32_t)i - 1;
		w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
	}
	size_t nheap = 0;
	for (size_t i = 0; i + 1 < n; i++)
		push_pair(t, w, &nheap, (int32_t)i);
	while (nheap > 0) {
		/* Every occurrence of the lowest-ranked pair, left to right (the
		 * heap orders equal ranks by position). Pairs the merges create
		 * wait for the next round, as in the reference. */
		uint32_t rank = (uint32_t)(w->heap[0] >> 32);
		size_t nbatch = 0;
		while (nheap > 0 && (uint32_t)(w->heap[0] >> 32) == rank)
			w->batch[nbatch++] = heap_pop(w->heap, &nheap);
		for (size_t k = 0; k < nbatch; k++) {
			int32_t i = (int32_t)(uint32_t)w->batch[k], merged;
			/* Stale entries: the symbol was consumed or has changed. */
			if (w->sym[i] < 0 || pair_rank_at(t, w, i, &merged) != rank)
				continue;
			int32_t j = w->next[i];
			w->sym[i] = merged;
			w->sym[j] = -1;
			w->next[i] = w->next[j];
			if (w->next[j] >= 0)
				w->prev[w->next[j]] = i;
			push_pair(t, w, &nheap, w->prev[i]);
			push_pair(t, w, &nheap, i);
		}
	}
	for (int32_t i = 0; i >= 0; i = w->next[i])
		ids_push(out, w->sym[i]);
}

/* The regex module's IGNORECASE match of a literal ASCII letter or sign:
 * of the letters in CLIP's pattern only 's' has a non-ASCII case partner
 * (U+017F LATIN SMALL LETTER LONG S). */
static bool literal_matches(uint32_t c, char lit)
{
	if (c == (uint32_t)lit)
		return true;
	if (lit >= 'a' && lit <= 'z' && c == (uint32_t)(lit - 'a' + 'A'))
		return true;
	return lit == 's' && c == 0x17F;
}

static size_t match_literal(const uint32_t *s, size_t n, size_t p, const char *lit)
{
	size_t k = 0;
	for (; lit[k]; k++)
		if (p + k >= n || !literal_matches(s[p + k], lit[k]))
			return 0;
	return k;
}

/* U+0345 is a combining mark (Mn) whose case partners are iota, a letter;
 * under IGNORECASE the regex module's [^\s\p{L}\p{N}] checks every case
 * partner, so this one character matches no alternative and is dropped
 * like whitespace. */
#define COMBINING_YPOGEGRAMMENI 0x345

/* The length of the next piece of CLIP's pattern
 *   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * (IGNORECASE) at s[p], alternatives tried in order as the regex does, or
 * 0 where no piece starts (whitespace, U+0345). */
static size_t next_piece(const uint32_t *s, size_t n, size_t p)
{
	static const char *const literals[] = { "<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll",
		                                "'d" };
	if (s[p] == '<' || s[p] == '\'')
		for (size_t i = 0; i < sizeof literals / sizeof *literals; i++) {
			size_t k = match_literal(s, n, p, literals[i]);
			if (k)
				return k;
		}
	size_t q = p;
	if (uni_is_letter(s[p])) {
		while (q < n && uni_is_letter(s[q]))
			q++;
		return q - p;
	}
	if (uni_is_number(s[p]))
		return 1;
	while (q < n && !uni_is_white_space(s[q]) && !uni_is_letter(s[q]) && !uni_is_number(s[q]) &&
	       s[q] != COMBINING_YPOGEGRAMMENI)
		q++;
	return q - p;
}

void clip_pieces_init(struct clip_pieces *it, const struct ustr *clean)
{
	*it = (struct clip_pieces){ .s = clean->s, .n = clean->len };
}

int clip_pieces_next(struct clip_pieces *it)
{
	size_t k = 0;
	while (it->pos < it->n && (k = next_piece(it->s, it->n, it->pos)) == 0)
		it->pos++;
	if (k == 0)
		return 0;
	if (4 * k > it->cap) {
		it->cap = 4 * k;
		it->bytes = xrealloc(it->bytes, it->cap);
	}
	it->len = 0;
	for (size_t i = 0; i < k; i++)
		it->len += (size_t)utf8_put(it->s[it->pos + i], (char *)it->bytes + it->len);
	it->pos += k;
	return 1;
}

/* The reference's cache holds the two special tokens as they are. */
enum clip_piece_kind clip_piece_kind(const struct clip_pieces *it)
{
	if (it->len == 15 && memcmp(it->bytes, "<|startoftext|>", 15) == 0)
		return CLIP_PIECE_SOT;
	if (it->len == 13 && memcmp(it->bytes, "<|endoftext|>", 13) == 0)
		return CLIP_PIECE_EOT;
	return CLIP_PIECE_WORD;
}

void clip_pieces_free(struct clip_pieces *it)
{
	free(it->bytes);
	*it = (struct clip_pieces){ 0 };
}

int clip_tokenizer_encode_clean(const struct clip_tokenizer *t, const struct ustr *clean, struct clip_ids *out)
{
	struct clip_pieces it;
	struct bpe_scratch work = { 0 };
	clip_pieces_init(&it, clean);
	while (clip_pieces_next(&it)) {
		switch (clip_piece_kind(&it)) {
		case CLIP_PIECE_SOT: ids_push(out, t->sot); break;
		case CLIP_PIECE_EOT: ids_push(out, t->eot); break;
		case CLIP_PIECE_WORD: bpe_piece(t, it.bytes, it.len, &work, out); break;
		}
	}
	clip_pieces_free(&it);
	bpe_scratch_free(&work);
	return 0;
}

int clip_tokenizer_encode(const struct clip_tokenizer *t, const char *text, size_t len, struct clip_ids *out)
{
	struct ustr clean = { 0 };
	clip_text_clean(text, len, &clean);
	int rc = clip_tokenizer_encode_clean(t, &clean, out);
	ustr_free(&clean);
	return rc;
}

int64_t clip_tokenize(const struct clip_tokenizer *t, const char *text, size_t len, int32_t *out, int context)
{
	if (context < 2)
		return errorf("context length %d: need at least 2", context);
	struct clip_ids ids = { 0 };
	ids_push(&ids, t->sot);
	if (clip_tokenizer_encode(t, text, len, &ids) < 0) {
		clip_ids_free(&ids);
		return -1;
	}
	ids_push(&ids, t->eot);
	size_t n = ids.len < (size_t)context ? ids.len : (size_t)context;
	memcpy(out, ids.ids, n * sizeof *out);
	if (ids.len > (size_t)context)
		out[context - 1] = t->eot;
	for (size_t i = n; i < (size_t)context; i++)
		out[i] = 0;
	int64_t total = (int64_t)ids.len;
	clip_ids_free(&ids);
	return total;
}
