/* Learning BPE merges from texts (see bpe_learn.h).
 *
 * Texts are reduced to distinct pieces ("words") with their counts. Each
 * word is an array of symbols; every adjacent pair of symbols is counted,
 * weighted by the word's count, and each pair remembers the words it occurs
 * in. A merge rewrites only those words and adjusts the counts of the pairs
 * around each rewritten occurrence, so a merge costs the size of the words
 * it touches, not of the whole corpus. The best pair comes from a max-heap
 * whose entries may be stale: counts of old pairs only ever fall (new
 * adjacencies always involve the new symbol), so an entry whose count is
 * out of date is pushed again with the current count when it reaches the
 * top, and the first entry found current is the true best. */
#include "text/bpe_learn.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"
#include "text/clip_pieces.h"
#include "text/text_clean.h"

/* ---- a byte arena and a table of distinct strings in it ---- */

struct strtab {
	char *bytes;
	size_t len, cap;
	size_t *off, *slen; /* string i is bytes[off[i] .. off[i] + slen[i]) */
	size_t n, ncap;
	int32_t *slots;     /* open addressing: string index + 1, 0 = empty */
	size_t mask;
};

static uint64_t hash_bytes(const void *p, size_t n)
{
	const uint8_t *s = p;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ull;
	return h ^ h >> 29;
}

static const char *strtab_str(const struct strtab *t, size_t i)
{
	return t->bytes + t->off[i];
}

/* The slot of s[0..n): where it is, or the empty slot where it would go. */
static size_t strtab_slot(const struct strtab *t, const void *s, size_t n)
{
	size_t i = hash_bytes(s, n) & t->mask;
	for (; t->slots[i]; i = (i + 1) & t->mask) {
		size_t k = (size_t)t->slots[i] - 1;
		if (t->slen[k] == n && memcmp(strtab_str(t, k), s, n) == 0)
			break;
	}
	return i;
}

static void strtab_rehash(struct strtab *t, size_t cap)
{
	free(t->slots);
	t->slots = xcalloc(cap, sizeof *t->slots);
	t->mask = cap - 1;
	for (size_t k = 0; k < t->n; k++)
		t->slots[strtab_slot(t, strtab_str(t, k), t->slen[k])] = (int32_t)k + 1;
}

/* The index of s[0..n), or -1. */
static int32_t strtab_find(const struct strtab *t, const void *s, size_t n)
{
	if (!t->slots)
		return -1;
	int32_t v = t->slots[strtab_slot(t, s, n)];
	return v - 1;
}

/* The index of s[0..n), added if new (*added set accordingly). */
static int32_t strtab_add(struct strtab *t, const void *s, size_t n, bool *added)
{
	if (2 * (t->n + 1) > t->mask + 1 || !t->slots)
		strtab_rehash(t, t->slots ? 2 * (t->mask + 1) : 1024);
	size_t i = strtab_slot(t, s, n);
	*added = !t->slots[i];
	if (!*added)
		return t->slots[i] - 1;
	if (t->n == t->ncap) {
		t->ncap = t->ncap ? 2 * t->ncap : 1024;
		t->off = xrealloc(t->off, t->ncap * sizeof *t->off);
		t->slen = xrealloc(t->slen, t->ncap * sizeof *t->slen);
	}
	if (t->len + n > t->cap) {
		t->cap = t->cap ? 2 * t->cap : 1 << 16;
		while (t->len + n > t->cap)
			t->cap *= 2;
		t->bytes = xrealloc(t->bytes, t->cap);
	}
	memcpy(t->bytes + t->len, s, n);
	t->off[t->n] = t->len;
	t->slen[t->n] = n;
	t->len += n;
	t->slots[i] = (int32_t)t->n + 1;
	return (int32_t)t->n++;
}

static void strtab_free(struct strtab *t)
{
	free(t->bytes);
	free(t->off);
	free(t->slen);
	free(t->slots);
	*t = (struct strtab){ 0 };
}

/* ---- counting the words of texts ---- */

struct bpe_learner {
	struct strtab words; /* distinct pieces, as UTF-8 bytes */
	int64_t *count;      /* per word */
	size_t count_cap;
	struct ustr clean;   /* scratch, kept between texts */
};

struct bpe_learner *bpe_learner_new(void)
{
	return xcalloc(1, sizeof(struct bpe_learner));
}

void bpe_learner_free(struct bpe_learner *l)
{
	if (!l)
		return;
	strtab_free(&l->words);
	free(l->count);
	ustr_free(&l->clean);
	free(l);
}

int bpe_learner_add(struct bpe_learner *l, const char *text, size_t len)
{
	clip_text_clean(text, len, &l->clean);
	struct clip_pieces it;
	clip_pieces_init(&it, &l->clean);
	while (clip_pieces_next(&it)) {
		/* The special tokens stay whole: there is nothing to learn in them. */
		if (clip_piece_kind(&it) != CLIP_PIECE_WORD)
			continue;
		bool added;
		int32_t w = strtab_add(&l->words, it.bytes, it.len, &added);
		if ((size_t)w >= l->count_cap) {
			l->count_cap = l->count_cap ? 2 * l->count_cap : 1024;
			l->count = xrealloc(l->count, l->count_cap * sizeof *l->count);
		}
		if (added)
			l->count[w] = 0;
		l->count[w]++;
	}
	clip_pieces_free(&it);
	return 0;
}

/* ---- learning ---- */

struct pair {
	int32_t left, right; /* symbols */
	int64_t count;
	int32_t *where;      /* words it may occur in (maybe stale, maybe repeated) */
	size_t nwhere, cap;
	bool done;           /* merged, or refused (its token exists already) */
};

struct heap_entry {
	int64_t count;
	int32_t pair;
};

struct learning {
	struct strtab sym;   /* symbol -> its spelling; spellings are distinct */
	int32_t *syms;       /* every word's symbols, one word after another */
	size_t *start;       /* word w's symbols begin at syms[start[w]] */
	size_t *len;         /* and number len[w] (shrinking as merges apply) */
	const int64_t *count;
	size_t nwords;
	struct pair *pairs;
	size_t npairs, pairs_cap;
	uint64_t *pair_keys; /* open addressing: key, with pair index + 1 in pair_slot */
	int32_t *pair_slot;
	size_t pair_mask;
	struct heap_entry *heap;
	size_t nheap, heap_cap;
	int32_t *fresh;      /* pairs of the new symbol, pushed after a merge */
	size_t nfresh, fresh_cap;
	int32_t *seen;       /* per word: the last merge that visited it */
};

static uint64_t pair_key(int32_t a, int32_t b)
{
	return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

static size_t pair_slot_of(const struct learning *L, uint64_t key)
{
	size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & L->pair_mask;
	while (L->pair_slot[i] && L->pair_keys[i] != key)
		i = (i + 1) & L->pair_mask;
	return i;
}

static void pairs_rehash(struct learning *L, size_t cap)
{
	free(L->pair_keys);
	free(L->pair_slot);
	L->pair_keys = xmalloc(cap * sizeof *L->pair_keys);
	L->pair_slot = xcalloc(cap, sizeof *L->pair_slot);
	L->pair_mask = cap - 1;
	for (size_t p = 0; p < L->npairs; p++) {
		uint64_t key = pair_key(L->pairs[p].left, L->pairs[p].right);
		size_t i = pair_slot_of(L, key);
		L->pair_keys[i] = key;
		L->pair_slot[i] = (int32_t)p + 1;
	}
}

/* The pair (a, b), created with count 0 if new (then *added). */
static int32_t pair_get(struct learning *L, int32_t a, int32_t b, bool *added)
{
	if (2 * (L->npairs + 1) > L->pair_mask + 1)
		pairs_rehash(L, 2 * (L->pair_mask + 1));
	uint64_t key = pair_key(a, b);
	size_t i = pair_slot_of(L, key);
	*added = !L->pair_slot[i];
	if (!*added)
		return L->pair_slot[i] - 1;
	if (L->npairs == L->pairs_cap) {
		L->pairs_cap = L->pairs_cap ? 2 * L->pairs_cap : 4096;
		L->pairs = xrealloc(L->pairs, L->pairs_cap * sizeof *L->pairs);
	}
	L->pairs[L->npairs] = (struct pair){ .left = a, .right = b };
	L->pair_keys[i] = key;
	L->pair_slot[i] = (int32_t)L->npairs + 1;
	return (int32_t)L->npairs++;
}

/* Adds n occurrences of (a, b) in word w (n < 0 removes them). */
static void pair_count(struct learning *L, int32_t a, int32_t b, int64_t n, int32_t w)
{
	bool added;
	int32_t p = pair_get(L, a, b, &added);
	struct pair *q = &L->pairs[p];
	q->count += n;
	if (n > 0 && (q->nwhere == 0 || q->where[q->nwhere - 1] != w)) {
		if (q->nwhere == q->cap) {
			q->cap = q->cap ? 2 * q->cap : 4;
			q->where = xrealloc(q->where, q->cap * sizeof *q->where);
		}
		q->where[q->nwhere++] = w;
	}
	if (added && L->fresh) {
		if (L->nfresh == L->fresh_cap) {
			L->fresh_cap *= 2;
			L->fresh = xrealloc(L->fresh, L->fresh_cap * sizeof *L->fresh);
		}
		L->fresh[L->nfresh++] = p;
	}
}

/* Byte order of the merge lines "left right": tokens never hold a space,
 * which sorts below every byte they do hold, so comparing the left
 * spellings and then the right ones gives the same order. */
static int spelling_cmp(const struct learning *L, int32_t p, int32_t q)
{
	const struct pair *x = &L->pairs[p], *y = &L->pairs[q];
	int32_t sx[2] = { x->left, x->right }, sy[2] = { y->left, y->right };
	for (int k = 0; k < 2; k++) {
		size_t nx = L->sym.slen[sx[k]], ny = L->sym.slen[sy[k]];
		int c = memcmp(strtab_str(&L->sym, (size_t)sx[k]), strtab_str(&L->sym, (size_t)sy[k]), nx < ny ? nx : ny);
		if (c || nx != ny)
			return c ? c : nx < ny ? -1 : 1;
	}
	return 0;
}

/* Whether x comes out of the heap before y: more frequent, then the
 * spelling that sorts first. */
static bool heap_before(const struct learning *L, struct heap_entry x, struct heap_entry y)
{
	if (x.count != y.count)
		return x.count > y.count;
	return spelling_cmp(L, x.pair, y.pair) < 0;
}

static void heap_push(struct learning *L, int32_t p)
{
	if (L->nheap == L->heap_cap) {
		L->heap_cap = L->heap_cap ? 2 * L->heap_cap : 4096;
		L->heap = xrealloc(L->heap, L->heap_cap * sizeof *L->heap);
	}
	struct heap_entry v = { L->pairs[p].count, p };
	size_t i = L->nheap++;
	while (i > 0 && heap_before(L, v, L->heap[(i - 1) / 2])) {
		L->heap[i] = L->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	L->heap[i] = v;
}

static struct heap_entry heap_pop(struct learning *L)
{
	struct heap_entry top = L->heap[0], v = L->heap[--L->nheap];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= L->nheap)
			break;
		if (c + 1 < L->nheap && heap_before(L, L->heap[c + 1], L->heap[c]))
			c++;
		if (!heap_before(L, L->heap[c], v))
			break;
		L->heap[i] = L->heap[c];
		i = c;
	}
	L->heap[i] = v;
	return top;
}

/* The 512 byte symbols, then every word as symbols, then every pair. */
static void learning_init(struct learning *L, const struct bpe_learner *l)
{
	uint32_t cp[256];
	int order[256];
	clip_bytes_to_unicode(cp, order);
	for (int end = 0; end < 2; end++)
		for (int b = 0; b < 256; b++) {
			char s[8];
			int n = utf8_put(cp[b], s);
			if (end)
				memcpy(s + n, "</w>", 4), n += 4;
			bool added;
			strtab_add(&L->sym, s, (size_t)n, &added); /* symbol 256 * end + b */
		}
	L->nwords = l->words.n;
	L->count = l->count;
	L->start = xmalloc(L->nwords * sizeof *L->start);
	L->len = xmalloc(L->nwords * sizeof *L->len);
	L->syms = xmalloc((l->words.len ? l->words.len : 1) * sizeof *L->syms);
	L->seen = xmalloc(L->nwords * sizeof *L->seen);
	size_t at = 0;
	for (size_t w = 0; w < L->nwords; w++) {
		const uint8_t *b = (const uint8_t *)strtab_str(&l->words, w);
		size_t n = l->words.slen[w];
		L->start[w] = at;
		L->len[w] = n;
		L->seen[w] = -1;
		for (size_t i = 0; i < n; i++)
			L->syms[at + i] = (i + 1 < n ? 0 : 256) + b[i];
		at += n;
	}
	pairs_rehash(L, 4096);
	for (size_t w = 0; w < L->nwords; w++) {
		const int32_t *s = L->syms + L->start[w];
		for (size_t i = 0; i + 1 < L->len[w]; i++)
			pair_count(L, s[i], s[i + 1], L->count[w], (int32_t)w);
	}
	for (size_t p = 0; p < L->npairs; p++)
		heap_push(L, (int32_t)p);
	L->fresh_cap = 64;
	L->fresh = xmalloc(L->fresh_cap * sizeof *L->fresh);
}

static void learning_free(struct learning *L)
{
	strtab_free(&L->sym);
	free(L->syms);
	free(L->start);
	free(L->len);
	for (size_t p = 0; p < L->npairs; p++)
		free(L->pairs[p].where);
	free(L->pairs);
	free(L->pair_keys);
	free(L->pair_slot);
	free(L->heap);
	free(L->fresh);
	free(L->seen);
}

/* Rewrites every (a, b) in word w as z, left to right as the tokenizer
 * does, moving the counts of the pairs around each occurrence. The left
 * neighbour is read from the rewritten part, so that "a b a b" ends with
 * one (z, z) and no (z, a). */
static void merge_in_word(struct learning *L, int32_t w, int32_t a, int32_t b, int32_t z)
{
	int32_t *s = L->syms + L->start[w];
	size_t n = L->len[w], o = 0;
	int64_t c = L->count[w];
	for (size_t i = 0; i < n;) {
		if (i + 1 < n && s[i] == a && s[i + 1] == b) {
			pair_count(L, a, b, -c, w);
			if (o > 0) {
				pair_count(L, s[o - 1], a, -c, w);
				pair_count(L, s[o - 1], z, c, w);
			}
			if (i + 2 < n) {
				pair_count(L, b, s[i + 2], -c, w);
				pair_count(L, z, s[i + 2], c, w);
			}
			s[o++] = z;
			i += 2;
		} else {
			s[o++] = s[i++];
		}
	}
	L->len[w] = o;
}

/* A growable text, kept NUL-terminated. */
struct text {
	char *s;
	size_t len, cap;
};

static void text_put(struct text *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		t->cap = t->cap ? 2 * t->cap : 1 << 16;
		while (t->len + n + 1 > t->cap)
			t->cap *= 2;
		t->s = xrealloc(t->s, t->cap);
	}
	memcpy(t->s + t->len, s, n);
	t->len += n;
	t->s[t->len] = 0;
}

/* The merge line "a b". */
static void put_merge(struct text *out, const struct learning *L, int32_t a, int32_t b)
{
	text_put(out, strtab_str(&L->sym, (size_t)a), L->sym.slen[a]);
	text_put(out, " ", 1);
	text_put(out, strtab_str(&L->sym, (size_t)b), L->sym.slen[b]);
	text_put(out, "\n", 1);
}

char *bpe_learner_merges(struct bpe_learner *l, int max_merges, int min_count, size_t *len)
{
	if (l->words.n == 0)
		return errorf("no text added: nothing to learn from"), NULL;
	if (max_merges < 0)
		return errorf("max_merges %d: must be at least 0", max_merges), NULL;
	if (min_count < 1)
		min_count = 1;
	struct learning L = { 0 };
	learning_init(&L, l);

	struct text out = { 0 };
	text_put(&out, CLIP_LEARNED_MERGES_HEADER "\n", strlen(CLIP_LEARNED_MERGES_HEADER) + 1);
	for (int merges = 0; merges < max_merges && L.nheap > 0;) {
		struct heap_entry top = heap_pop(&L);
		struct pair *q = &L.pairs[top.pair];
		if (q->done)
			continue;
		if (top.count != q->count) {
			if (q->count > 0)
				heap_push(&L, top.pair);
			continue;
		}
		if (q->count < min_count)
			break;
		int32_t a = q->left, b = q->right;
		size_t la = L.sym.slen[a], lb = L.sym.slen[b];
		/* The new token's spelling; one that another merge already made
		 * is refused, so that every token and every merge line is unique. */
		char *joined = xmalloc(la + lb);
		memcpy(joined, strtab_str(&L.sym, (size_t)a), la);
		memcpy(joined + la, strtab_str(&L.sym, (size_t)b), lb);
		bool added;
		int32_t z = strtab_find(&L.sym, joined, la + lb) >= 0 ? -1 : strtab_add(&L.sym, joined, la + lb, &added);
		free(joined);
		q->done = true;
		if (z < 0)
			continue;
		put_merge(&out, &L, a, b);

		/* q may move as pairs are added: work from a copy of its words. */
		int32_t *where = q->where;
		size_t nwhere = q->nwhere;
		q->where = NULL;
		q->nwhere = q->cap = 0;
		L.nfresh = 0;
		for (size_t k = 0; k < nwhere; k++) {
			int32_t w = where[k];
			if (L.seen[w] == merges)
				continue;
			L.seen[w] = merges;
			merge_in_word(&L, w, a, b, z);
		}
		free(where);
		for (size_t k = 0; k < L.nfresh; k++)
			heap_push(&L, L.fresh[k]);
		merges++;
	}
	learning_free(&L);
	*len = out.len;
	return out.s;
}
