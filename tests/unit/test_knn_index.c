/* knn_index: exact and compressed search against brute force, exclusion,
 * filters, add/merge equivalence and the errors of damaged directories. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "index/knn_index.h"
#include "test.h"

#define N 2000
#define D 32
#define NQ 100
#define K 10
#define CLUSTERS 20

static float data[N * D], queries[NQ * D], text_queries[NQ * D];
static char tmp_root[] = "/tmp/test_knn_index.XXXXXX";

static uint64_t rng_state = 12345;
static double uniform(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void)
{
	return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
}

/* Points around random centres; queries from the same clusters, and
 * "text-like" ones shifted by one constant offset (the modality gap). */
static void make_data(void)
{
	static float centres[CLUSTERS * D], offset[D];
	for (int i = 0; i < CLUSTERS * D; i++)
		centres[i] = (float)gauss();
	for (int j = 0; j < D; j++)
		offset[j] = (float)gauss();
	for (int i = 0; i < N + NQ; i++) {
		float *v = i < N ? data + i * D : queries + (i - N) * D;
		int c = (int)(uniform() * CLUSTERS);
		for (int j = 0; j < D; j++)
			v[j] = centres[c * D + j] + 0.3f * (float)gauss();
		if (i >= N)
			for (int j = 0; j < D; j++)
				text_queries[(i - N) * D + j] = v[j] + offset[j];
		knn_normalize(v, D);
		if (i >= N)
			knn_normalize(text_queries + (i - N) * D, D);
	}
}

static float dot(const float *a, const float *b)
{
	float s = 0;
	for (int j = 0; j < D; j++)
		s += a[j] * b[j];
	return s;
}

/* The exact top K rows for q, by brute force. */
static void brute_force(const float *q, int64_t *best)
{
	float score[K];
	for (int k = 0; k < K; k++)
		score[k] = -INFINITY, best[k] = -1;
	for (int i = 0; i < N; i++) {
		float s = dot(q, data + i * D);
		int k = K;
		while (k > 0 && s > score[k - 1])
			k--;
		if (k == K)
			continue;
		memmove(score + k + 1, score + k, (K - k - 1) * sizeof *score);
		memmove(best + k + 1, best + k, (K - k - 1) * sizeof *best);
		score[k] = s, best[k] = i;
	}
}

static char *dir_path(const char *name)
{
	static char buf[4][256];
	static int next;
	char *p = buf[next++ % 4];
	snprintf(p, 256, "%s/%s", tmp_root, name);
	return p;
}

/* Rows [from, to) of data, ids "r<row>", attribute score = row % 10. */
static void append_rows(struct knn_index *ix, int from, int to)
{
	const char *names[] = { "score" };
	for (int i = from; i < to; i++) {
		char id[32], path[32];
		snprintf(id, sizeof id, "r%d", i);
		snprintf(path, sizeof path, "img/%d.png", i);
		double score = i % 10;
		CHECK(knn_index_append(ix, data + i * D, id, path, 1, names, &score) == 0);
	}
}

static struct knn_index *build(const char *factory, int from, int to)
{
	struct knn_index *ix = knn_index_new(D, factory);
	append_rows(ix, from, to);
	CHECK_MSG(knn_index_commit(ix, NULL) == 0, "%s", error_message());
	return ix;
}

/* recall@10 over all queries, searched as one batch. */
static double recall_refined(struct knn_index *ix, const float *qs, int nprobe, int refine)
{
	struct knn_search_opts o = { .k = K, .nprobe = nprobe, .refine_factor = refine, .filter_attr = -1 };
	static struct knn_hit hits[NQ * K];
	int found[NQ], hit = 0;
	CHECK_MSG(knn_index_search_batch(ix, NQ, qs, NULL, &o, hits, found) == 0, "%s", error_message());
	for (int q = 0; q < NQ; q++) {
		int64_t best[K];
		brute_force(qs + q * D, best);
		for (int i = 0; i < found[q]; i++)
			for (int j = 0; j < K; j++)
				hit += hits[q * K + i].label == best[j];
	}
	return (double)hit / (NQ * K);
}

static double recall(struct knn_index *ix, const float *qs, int nprobe)
{
	return recall_refined(ix, qs, nprobe, KNN_DEFAULT_REFINE);
}

static void test_exact_recall(void)
{
	struct knn_index *ix = build(NULL, 0, N);
	CHECK(!strcmp(ix->factory, "Flat"));
	CHECK_NEAR(recall(ix, queries, 0), 1.0, 0);
	CHECK_NEAR(recall(ix, text_queries, 0), 1.0, 0);
	knn_index_free(ix);
}

/* Compressed index (8 codes of 4 bits = 4 bytes per vector) rescored with
 * the stored float16 vectors: recall@10 >= 0.95 at nprobe 8 of 32 lists and
 * at the default nprobe. Without the rescoring, the 4-byte codes alone lose
 * most neighbours. Debian's FAISS trains 8-bit PQ slowly, so this is a
 * 4-bit one. */
static void test_ivfpq_recall(void)
{
	struct knn_index *ix = build("IVF32,PQ8x4", 0, N);
	CHECK(ix->refine);
	int nprobes[] = { 8, KNN_DEFAULT_NPROBE };
	for (int i = 0; i < 2; i++) {
		double image = recall(ix, queries, nprobes[i]), text = recall(ix, text_queries, nprobes[i]);
		printf("# IVF32,PQ8x4 nprobe %d: recall@10 image %.3f text %.3f\n", nprobes[i], image, text);
		CHECK_MSG(image >= 0.95, "image recall %.3f at nprobe %d", image, nprobes[i]);
		CHECK_MSG(text >= 0.95, "text recall %.3f at nprobe %d", text, nprobes[i]);
	}
	double raw = recall_refined(ix, text_queries, 8, 0);
	printf("# IVF32,PQ8x4 nprobe 8 without re-ranking: recall@10 text %.3f\n", raw);
	CHECK_MSG(raw < 0.8, "recall %.3f without re-ranking", raw);
	/* nprobe reaches the index: one list of 32 loses neighbours. */
	double one = recall(ix, queries, 1);
	printf("# IVF32,PQ8x4 nprobe 1: recall@10 image %.3f\n", one);
	CHECK_MSG(one < 0.9, "recall %.3f at nprobe 1", one);
	knn_index_free(ix);
}

/* The default for large collections (fast-scan 4-bit PQ), built small. */
static void test_fastscan_recall(void)
{
	struct knn_index *ix = build("IVF32,PQ8x4fs", 0, N);
	double image = recall(ix, queries, 8), text = recall(ix, text_queries, 8);
	printf("# IVF32,PQ8x4fs nprobe 8: recall@10 image %.3f text %.3f\n", image, text);
	CHECK_MSG(image >= 0.95 && text >= 0.95, "recall %.3f / %.3f", image, text);
	knn_index_free(ix);
}

/* A batch gives what one query at a time gives, exclusions included (on
 * uncompressed lists: 4-byte PQ codes tie, and FAISS may break ties at the
 * candidate cut-off differently for one query and for many). */
static void test_batch_equals_single(void)
{
	struct knn_index *ix = build("IVF32,Flat", 0, N);
	struct knn_search_opts o = { .k = K, .nprobe = 4, .refine_factor = 4, .exclude_self = true,
	                             .filter_attr = -1 };
	static struct knn_hit batch[NQ * K];
	int found[NQ];
	const char *self[NQ];
	static char names[NQ][16];
	for (int q = 0; q < NQ; q++) {
		snprintf(names[q], sizeof names[q], "r%d", q);
		self[q] = names[q];
	}
	CHECK(knn_index_search_batch(ix, NQ, data, self, &o, batch, found) == 0);
	int same = 1;
	for (int q = 0; q < NQ; q++) {
		struct knn_hit one[K];
		o.self_id = self[q];
		int m = knn_index_search(ix, data + q * D, &o, one);
		same &= m == found[q];
		for (int i = 0; i < m && i < found[q]; i++)
			same &= one[i].label == batch[q * K + i].label && one[i].score == batch[q * K + i].score;
		for (int i = 0; i < found[q]; i++)
			same &= batch[q * K + i].label != q;
	}
	CHECK(same);
	knn_index_free(ix);
}

static void test_exclude_self(void)
{
	struct knn_index *ix = build(NULL, 0, N);
	/* A duplicate of row 7 under another id must go too. */
	const char *names[] = { "score" };
	double s = 0;
	CHECK(knn_index_append(ix, data + 7 * D, "dup7", NULL, 1, names, &s) == 0);
	CHECK(knn_index_commit(ix, NULL) == 0);
	struct knn_search_opts o = { .k = K, .exclude_self = true, .filter_attr = -1 };
	struct knn_hit hits[K];
	for (int q = 0; q < 50; q++) {
		char id[32];
		snprintf(id, sizeof id, "r%d", q);
		o.self_id = id;
		int m = knn_index_search(ix, data + q * D, &o, hits);
		CHECK(m == K);
		for (int i = 0; i < m; i++) {
			CHECK_MSG(hits[i].label != q, "query %d returned itself", q);
			CHECK(hits[i].score < 1 - 1e-6f);
			CHECK(!(q == 7 && hits[i].label == N));
		}
	}
	/* Without the option, the query is its own nearest neighbour. */
	o.exclude_self = false;
	CHECK(knn_index_search(ix, data + 3 * D, &o, hits) == K && hits[0].label == 3);
	knn_index_free(ix);
}

static void test_filter(void)
{
	struct knn_index *ix = build(NULL, 0, N);
	int a = knn_index_attr(ix, "score");
	CHECK(a == 0);
	/* score 9 only: one row in ten, so over-fetching must widen. */
	struct knn_search_opts o = { .k = K, .nprobe = 32, .filter_attr = a, .filter_lo = 9, .filter_hi = 10 };
	struct knn_hit hits[K];
	for (int q = 0; q < 20; q++) {
		int m = knn_index_search(ix, queries + q * D, &o, hits);
		CHECK(m == K);
		for (int i = 0; i < m; i++)
			CHECK_MSG(hits[i].label % 10 == 9, "row %lld has score %lld", (long long)hits[i].label,
			          (long long)(hits[i].label % 10));
	}
	/* An empty range finds nothing, without error. */
	o.filter_lo = 20, o.filter_hi = 30;
	CHECK(knn_index_search(ix, queries, &o, hits) == 0);
	knn_index_free(ix);
}

static int same_results(struct knn_index *a, struct knn_index *b)
{
	struct knn_search_opts o = { .k = K, .filter_attr = -1 };
	struct knn_hit ha[K], hb[K];
	for (int q = 0; q < NQ; q++) {
		int ma = knn_index_search(a, queries + q * D, &o, ha);
		int mb = knn_index_search(b, queries + q * D, &o, hb);
		if (ma != mb)
			return 0;
		for (int i = 0; i < ma; i++)
			if (ha[i].label != hb[i].label || ha[i].score != hb[i].score ||
			    strcmp(a->ids[ha[i].label], b->ids[hb[i].label]))
				return 0;
	}
	return 1;
}

static void test_add_and_merge(void)
{
	struct knn_index *whole = build(NULL, 0, N);
	CHECK(knn_index_save(whole, dir_path("whole")) == 0);

	struct knn_index *first = build(NULL, 0, N / 2);
	CHECK(knn_index_save(first, dir_path("added")) == 0);
	knn_index_free(first);
	struct knn_index *added = knn_index_open(dir_path("added"));
	CHECK_MSG(added, "%s", error_message());
	if (!added)
		return;
	append_rows(added, N / 2, N);
	CHECK(knn_index_commit(added, NULL) == 0);
	CHECK(knn_index_save(added, dir_path("added")) == 0);
	knn_index_free(added);

	struct knn_index *s1 = build(NULL, 0, 700), *s2 = build(NULL, 700, N);
	CHECK(knn_index_save(s2, dir_path("shard2")) == 0);
	knn_index_free(s2);
	s2 = knn_index_open(dir_path("shard2"));
	CHECK_MSG(s2 && knn_index_merge(s1, s2) == 0, "%s", error_message());
	CHECK(knn_index_save(s1, dir_path("merged")) == 0);
	knn_index_free(s1);
	knn_index_free(s2);

	struct knn_index *w = knn_index_open(dir_path("whole")), *a = knn_index_open(dir_path("added")),
	                 *m = knn_index_open(dir_path("merged"));
	CHECK(w && a && m);
	if (w && a && m) {
		CHECK(a->count == N && m->count == N);
		CHECK(same_results(w, a));
		CHECK(same_results(w, m));
		CHECK(knn_index_attr(m, "score") == 0 && m->attrs[0][1999] == 9);
	}
	knn_index_free(w), knn_index_free(a), knn_index_free(m);
	knn_index_free(whole);
}

/* Shards filled from copies of one trained empty IVF index merge into what
 * one index filled with everything gives. */
static void test_trained_shards(void)
{
	struct knn_index *t = knn_index_new(D, "IVF16,Flat");
	append_rows(t, 0, N);
	CHECK_MSG(knn_index_train(t, NULL) == 0, "%s", error_message());
	CHECK(t->count == 0);
	CHECK_MSG(knn_index_save(t, dir_path("trained")) == 0, "%s", error_message());
	knn_index_free(t);
	struct knn_index *whole = knn_index_open(dir_path("trained")), *s1 = knn_index_open(dir_path("trained")),
	                 *s2 = knn_index_open(dir_path("trained"));
	CHECK_MSG(whole && s1 && s2, "%s", error_message());
	if (!whole || !s1 || !s2)
		return;
	append_rows(whole, 0, N), append_rows(s1, 0, 900), append_rows(s2, 900, N);
	CHECK(knn_index_commit(whole, NULL) == 0 && knn_index_commit(s1, NULL) == 0 &&
	      knn_index_commit(s2, NULL) == 0);
	CHECK_MSG(knn_index_merge(s1, s2) == 0, "%s", error_message());
	CHECK(s1->count == N && same_results(whole, s1));
	knn_index_free(whole), knn_index_free(s1), knn_index_free(s2);
}

/* Shards of another dimension or index type are refused. */
static void test_merge_mismatch(void)
{
	struct knn_index *a = build(NULL, 0, 100);
	struct knn_index *b = knn_index_new(16, NULL);
	float v[16] = { 1 };
	CHECK(knn_index_append(b, v, NULL, NULL, 0, NULL, NULL) == 0);
	CHECK(knn_index_commit(b, NULL) == 0);
	CHECK(knn_index_merge(a, b) < 0 && strstr(error_message(), "dimension"));
	knn_index_free(b);
	b = build("IVF8,Flat", 0, 500);
	CHECK(knn_index_merge(a, b) < 0 && strstr(error_message(), "does not match"));
	knn_index_free(a), knn_index_free(b);
}

static void write_bytes(const char *path, const char *bytes, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (f) {
		fwrite(bytes, 1, n, f);
		fclose(f);
	}
}

static void test_bad_directories(void)
{
	CHECK(!knn_index_open(dir_path("missing")) && strstr(error_message(), "missing"));
	CHECK(!knn_index_open(tmp_root) && strstr(error_message(), "not a knn index"));
	struct knn_index *ix = build(NULL, 0, 200);
	CHECK(knn_index_save(ix, dir_path("bad")) == 0);
	knn_index_free(ix);

	/* A truncated vector file. */
	CHECK(truncate(dir_path("bad/emb.f16"), 100) == 0);
	ix = knn_index_open(dir_path("bad"));
	CHECK_MSG(!ix && strstr(error_message(), "emb.f16"), "%s", error_message());
	knn_index_free(ix);
	/* A foreign manifest. */
	write_bytes(dir_path("bad/manifest.msgpack"), "\x81\xa6" "format" "\xa3" "xyz", 12);
	ix = knn_index_open(dir_path("bad"));
	CHECK_MSG(!ix && strstr(error_message(), "not a knnd index"), "%s", error_message());
	knn_index_free(ix);
	/* Garbage for the FAISS file. */
	ix = build(NULL, 0, 200);
	CHECK(knn_index_save(ix, dir_path("bad2")) == 0);
	knn_index_free(ix);
	write_bytes(dir_path("bad2/faiss.index"), "garbage", 7);
	ix = knn_index_open(dir_path("bad2"));
	CHECK_MSG(!ix && strstr(error_message(), "faiss.index"), "%s", error_message());
	knn_index_free(ix);
	/* Saving over something that is not an index is refused. */
	ix = build(NULL, 0, 10);
	write_bytes(dir_path("plainfile"), "x", 1);
	CHECK(knn_index_save(ix, dir_path("plainfile")) < 0 && strstr(error_message(), "not a knn index"));
	knn_index_free(ix);
	/* A factory FAISS does not know. */
	ix = knn_index_new(D, "NoSuchIndex");
	append_rows(ix, 0, 10);
	CHECK(knn_index_commit(ix, NULL) < 0 && strstr(error_message(), "NoSuchIndex"));
	knn_index_free(ix);
}

static void test_auto_factory(void)
{
	char buf[128];
	knn_auto_factory(1000, 512, buf, sizeof buf);
	CHECK(!strcmp(buf, "Flat"));
	knn_auto_factory(1000000, 512, buf, sizeof buf);
	CHECK_MSG(!strcmp(buf, "IVF4000,PQ128x4fs"), "%s", buf);
	knn_auto_factory(1000000, 30, buf, sizeof buf);
	CHECK_MSG(!strcmp(buf, "IVF4000,SQ8"), "%s", buf);
}

int main(void)
{
	if (!mkdtemp(tmp_root)) {
		perror(tmp_root);
		return 1;
	}
	make_data();
	RUN(test_exact_recall);
	RUN(test_ivfpq_recall);
	RUN(test_fastscan_recall);
	RUN(test_batch_equals_single);
	RUN(test_exclude_self);
	RUN(test_filter);
	RUN(test_add_and_merge);
	RUN(test_trained_shards);
	RUN(test_merge_mismatch);
	RUN(test_bad_directories);
	RUN(test_auto_factory);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmp_root);
	TEST_EXIT();
}
