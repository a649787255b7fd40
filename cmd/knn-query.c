/* knn-query: build, extend, merge and search a FAISS retrieval index over
 * embeddings (the index directory is described in formats/knn-index.md). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/tool.h"
#include "index/knn_index.h"
#include "stream/msgpack.h"
#include "stream/record.h"
#include "stream/stream.h"

static const char help[] =
	"Usage: knn-query build --index DIR [--factory STRING] [FILE...]\n"
	"       knn-query train --index DIR [--factory STRING] [FILE...]\n"
	"       knn-query add --index DIR [FILE...]\n"
	"       knn-query merge --index DIR SHARD_DIR...\n"
	"       knn-query search --index DIR [-k N] [--nprobe N] [--refine N]\n"
	"                        [--exclude-self] [--filter FIELD=L:H] [FILE...]\n"
	"\n"
	"A nearest-neighbour index over the `emb` field (float32 [d]) of tensor-stream\n"
	"records, by cosine similarity (inner product of unit vectors).\n"
	"\n"
	"build   index the records read; keeps each record's `id`, `path` and numeric\n"
	"        fields (for --filter). Embeddings must have unit length: others are\n"
	"        normalised, with one warning.\n"
	"train   train an empty index on the records read (a sample of the\n"
	"        collection); copies of it, filled with `add`, are shards that merge.\n"
	"add     append the records read to an existing index.\n"
	"merge   append the indexes SHARD_DIR... (same dimension and type) to DIR.\n"
	"search  for every record with `emb`, add `knn` float32 [k,d] (the neighbours'\n"
	"        stored embeddings), `knn_ids` int64 [k] (rows in the index),\n"
	"        `knn_scores` float32 [k], and `knn_paths`/`knn_record_ids` (arrays of\n"
	"        strings, nil where absent) when the index stores paths/ids. Other\n"
	"        fields pass through.\n"
	"\n"
	"Options:\n"
	"  --index DIR         the index directory (required)\n"
	"  --factory STRING    FAISS index_factory string (build, train), e.g. Flat,\n"
	"                      IVF4096,PQ128x4fs or OPQ64_256,IVF4096,PQ64; default:\n"
	"                      Flat below 100000 vectors, else IVF{4*sqrt(N)},PQ{d/4}x4fs\n"
	"                      (64 bytes per vector for d=512)\n"
	"  -k, --k N           neighbours per query (default 10)\n"
	"  --nprobe N          inverted lists visited per query (IVF indexes; default 8)\n"
	"  --refine N          compressed indexes: rescore k*N candidates exactly with the\n"
	"                      stored vectors (default 32; 0: FAISS's approximate scores)\n"
	"  --exclude-self      never return the query's own id or an exact duplicate\n"
	"                      (score >= 1 - 1e-6)\n"
	"  --filter FIELD=L:H  keep neighbours whose stored FIELD is in [L, H)\n"
	"  -h, --help          this help\n"
	"  -V, --version       version\n"
	"\n"
	"Example:\n"
	"  img-read imgs/*.png | clip-embed --model M --image | knn-query build --index idx\n"
	"  img-read q.png | clip-embed --model M --image | knn-query search --index idx -k 3\n";

enum { OPT_INDEX = 256, OPT_FACTORY, OPT_NPROBE, OPT_REFINE, OPT_EXCLUDE, OPT_FILTER };

struct options {
	const char *index, *factory;
	struct knn_search_opts search;
	const char *filter_field;
};

static void progress(const char *msg)
{
	warnx_tool("%s", msg);
}

static void parse_filter(struct options *o, char *arg)
{
	char *eq = strchr(arg, '='), *colon = eq ? strchr(eq, ':') : NULL;
	if (!eq || !colon || eq == arg)
		usage_error("--filter wants FIELD=L:H, got '%s'", arg);
	*eq = *colon = 0;
	o->filter_field = arg;
	o->search.filter_lo = parse_float_option("--filter", eq + 1);
	o->search.filter_hi = parse_float_option("--filter", colon + 1);
}

/* The record's embedding as a unit float32 vector in buf; dies on bad ones. */
static void record_embedding(const struct record *r, const char *where, int64_t recno, int want_d,
                             float **buf, int *d)
{
	struct tensor *t = record_tensor(r, "emb");
	if (!t)
		die("%s: record %lld has no `emb` tensor", where, (long long)recno);
	if (t->ndim != 1 || !dtype_is_float(t->dtype) || t->shape[0] < 1)
		die("%s: record %lld: `emb` must be a float vector [d]", where, (long long)recno);
	int n = (int)t->shape[0];
	if (want_d && n != want_d)
		die("%s: record %lld: `emb` has dimension %d, the index has %d", where, (long long)recno, n, want_d);
	if (*d != n) {
		*buf = xrealloc(*buf, n * sizeof **buf);
		*d = n;
	}
	for (int i = 0; i < n; i++)
		(*buf)[i] = (float)tensor_get(t, i);
	double norm = knn_normalize(*buf, n);
	static int warned;
	if (!(norm > 0) || !isfinite(norm))
		die("%s: record %lld: `emb` has zero or non-finite length", where, (long long)recno);
	if (fabs(norm - 1) > 1e-3 && !warned++)
		warnx_tool("%s: record %lld: `emb` has length %.4g; normalising (warned once)", where,
		           (long long)recno, norm);
}

/* Reads records into ix (created at the first record if NULL). */
static struct knn_index *ingest(struct knn_index *ix, const struct options *o, int nfiles, char **files)
{
	struct ts_inputs *in = ts_inputs_open(nfiles, files);
	if (!in)
		die("%s", error_message());
	struct record r = RECORD_INIT;
	float *v = NULL;
	int d = 0, rc;
	int64_t n = 0;
	const char *names[KNN_MAX_ATTRS];
	double values[KNN_MAX_ATTRS];
	while ((rc = ts_inputs_read(in, &r)) > 0) {
		record_embedding(&r, "input", n, ix ? ix->d : 0, &v, &d);
		if (!ix)
			ix = knn_index_new(d, o->factory);
		int na = 0;
		for (int i = 0; i < r.n; i++) {
			const struct value *val = &r.fields[i].v;
			if ((val->kind != V_INT && val->kind != V_FLOAT) || !strcmp(r.fields[i].key, "id"))
				continue;
			if (na == KNN_MAX_ATTRS)
				die("input: record %lld: more than %d numeric fields", (long long)n, KNN_MAX_ATTRS);
			names[na] = r.fields[i].key;
			values[na++] = val->kind == V_FLOAT ? val->f : val->is_unsigned ? (double)val->u : (double)val->i;
		}
		if (knn_index_append(ix, v, record_str(&r, "id"), record_str(&r, "path"), na, names, values) < 0)
			die("input: record %lld: %s", (long long)n, error_message());
		n++;
	}
	if (rc < 0)
		die("%s", error_message());
	if (n == 0)
		die("input: no records");
	record_free(&r);
	free(v);
	ts_inputs_close(in);
	return ix;
}

static void save(struct knn_index *ix, const char *dir)
{
	if (knn_index_save(ix, dir) < 0)
		die("%s", error_message());
	struct stat st;
	char path[4096];
	snprintf(path, sizeof path, "%s/faiss.index", dir);
	if (stat(path, &st) == 0 && ix->count > 0)
		warnx_tool("%s: %lld vectors of dimension %d, %s: %.1f bytes/vector in faiss.index, "
		           "plus %d bytes/vector of float16 vectors in emb.f16", dir, (long long)ix->count,
		           ix->d, ix->factory, (double)st.st_size / ix->count, 2 * ix->d);
}

static struct knn_index *open_index(const char *dir)
{
	struct knn_index *ix = knn_index_open(dir);
	if (!ix)
		die("%s", error_message());
	return ix;
}

static void commit(struct knn_index *ix)
{
	if (knn_index_commit(ix, progress) < 0)
		die("%s", error_message());
}

/* An array of strings (nil where absent) as one raw msgpack value. */
static void set_string_array(struct record *r, const char *key, char *const *table,
                             const struct knn_hit *hits, int n)
{
	struct mp_buf b = { 0 };
	mp_put_array_header(&b, n);
	for (int i = 0; i < n; i++) {
		const char *s = table[hits[i].label];
		if (s)
			mp_put_str(&b, s, strlen(s));
		else
			mp_put_nil(&b);
	}
	struct value v = { .kind = V_RAW };
	v.str.ptr = (char *)b.data;
	v.str.len = b.len;
	record_set_value(r, key, &v);
}

static bool any_string(const struct knn_index *ix, char *const *table)
{
	for (int64_t i = 0; i < ix->count; i++)
		if (table[i])
			return true;
	return false;
}

/* Queries are searched SEARCH_BATCH at a time: one FAISS call, and the
 * exact re-ranking spread over the threads. */
#define SEARCH_BATCH 256

struct search_batch {
	struct record recs[SEARCH_BATCH];
	float *q;                   /* [SEARCH_BATCH, d] */
	const char *self_ids[SEARCH_BATCH];
	int row[SEARCH_BATCH];      /* record of each query */
	struct knn_hit *hits;       /* [SEARCH_BATCH, k] */
	int found[SEARCH_BATCH];
	int nrec, nq;
};

static void add_neighbours(const struct knn_index *ix, struct record *r, const struct knn_hit *hits, int m,
                           bool has_ids, bool has_paths)
{
	int64_t kd[2] = { m, ix->d }, k1[1] = { m };
	struct tensor *knn = record_new_tensor(r, "knn", DT_FLOAT32, 2, kd);
	struct tensor *ids = record_new_tensor(r, "knn_ids", DT_INT64, 1, k1);
	struct tensor *sc = record_new_tensor(r, "knn_scores", DT_FLOAT32, 1, k1);
	for (int i = 0; i < m; i++) {
		knn_index_vector(ix, hits[i].label, (float *)knn->data + (size_t)i * ix->d);
		((int64_t *)ids->data)[i] = hits[i].label;
		((float *)sc->data)[i] = hits[i].score;
	}
	if (has_paths)
		set_string_array(r, "knn_paths", ix->paths, hits, m);
	if (has_ids)
		set_string_array(r, "knn_record_ids", ix->ids, hits, m);
}

/* Searches the batch's queries and writes its records in their order. */
static void flush_batch(struct search_batch *b, struct knn_index *ix, const struct options *o,
                        struct ts_writer *out, int64_t first, bool has_ids, bool has_paths)
{
	if (knn_index_search_batch(ix, b->nq, b->q, b->self_ids, &o->search, b->hits, b->found) < 0)
		die("input: records %lld-%lld: %s", (long long)first, (long long)(first + b->nrec - 1),
		    error_message());
	for (int i = 0; i < b->nq; i++)
		add_neighbours(ix, &b->recs[b->row[i]], b->hits + (size_t)i * o->search.k, b->found[i], has_ids,
		               has_paths);
	for (int i = 0; i < b->nrec; i++)
		if (ts_write(out, &b->recs[i]) < 0)
			die("%s", error_message());
	b->nrec = b->nq = 0;
}

static void search(struct options *o, int nfiles, char **files)
{
	struct knn_index *ix = open_index(o->index);
	o->search.filter_attr = -1;
	if (o->filter_field && (o->search.filter_attr = knn_index_attr(ix, o->filter_field)) < 0)
		die("%s: no numeric attribute '%s' stored for --filter", o->index, o->filter_field);
	bool has_ids = any_string(ix, ix->ids), has_paths = any_string(ix, ix->paths);
	struct ts_inputs *in = ts_inputs_open(nfiles, files);
	if (!in)
		die("%s", error_message());
	struct ts_writer *out = ts_writer_fd(1, "stdout");
	static struct search_batch b;
	b.q = xmalloc((size_t)SEARCH_BATCH * ix->d * sizeof *b.q);
	b.hits = xmalloc((size_t)SEARCH_BATCH * o->search.k * sizeof *b.hits);
	float *v = NULL;
	int d = 0, rc;
	int64_t n = 0;
	while ((rc = ts_inputs_read(in, &b.recs[b.nrec])) > 0) {
		struct record *r = &b.recs[b.nrec];
		if (record_tensor(r, "emb")) {
			record_embedding(r, "input", n, ix->d, &v, &d);
			memcpy(b.q + (size_t)b.nq * ix->d, v, ix->d * sizeof *v);
			b.self_ids[b.nq] = record_str(r, "id");
			b.row[b.nq++] = b.nrec;
		}
		n++;
		if (++b.nrec == SEARCH_BATCH)
			flush_batch(&b, ix, o, out, n - b.nrec, has_ids, has_paths);
	}
	if (rc < 0)
		die("%s", error_message());
	flush_batch(&b, ix, o, out, n - b.nrec, has_ids, has_paths);
	if (n == 0)
		die("input: no records");
	if (ts_writer_close(out) < 0)
		die("%s", error_message());
	for (int i = 0; i < SEARCH_BATCH; i++)
		record_free(&b.recs[i]);
	free(v);
	free(b.q);
	free(b.hits);
	ts_inputs_close(in);
	knn_index_free(ix);
}

int main(int argc, char **argv)
{
	tool_init("knn-query", argc, argv, help);
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { "index", 1, 0, OPT_INDEX },
		{ "factory", 1, 0, OPT_FACTORY }, { "k", 1, 0, 'k' }, { "nprobe", 1, 0, OPT_NPROBE },
		{ "refine", 1, 0, OPT_REFINE },
		{ "exclude-self", 0, 0, OPT_EXCLUDE }, { "filter", 1, 0, OPT_FILTER }, { 0 }
	};
	if (argc < 2 || argv[1][0] == '-')
		usage_error("a subcommand is required: build, train, add, merge or search");
	const char *sub = argv[1];
	struct options o = { .search = { .k = 10, .nprobe = KNN_DEFAULT_NPROBE,
	                                   .refine_factor = KNN_DEFAULT_REFINE, .filter_attr = -1 } };
	int c;
	argv++, argc--;
	while ((c = getopt_long(argc, argv, "hVk:", opts, NULL)) != -1) {
		if (tool_common_option(c, help))
			continue;
		switch (c) {
		case OPT_INDEX: o.index = optarg; break;
		case OPT_FACTORY: o.factory = optarg; break;
		case 'k': o.search.k = (int)parse_int_option("-k", optarg, 1, 100000); break;
		case OPT_NPROBE: o.search.nprobe = (int)parse_int_option("--nprobe", optarg, 1, 1 << 20); break;
		case OPT_REFINE: o.search.refine_factor = (int)parse_int_option("--refine", optarg, 0, 10000); break;
		case OPT_EXCLUDE: o.search.exclude_self = true; break;
		case OPT_FILTER: parse_filter(&o, optarg); break;
		default: usage_error("unknown option");
		}
	}
	if (!o.index)
		usage_error("--index DIR is required");
	int nfiles = argc - optind;
	char **files = argv + optind;
	if (!strcmp(sub, "build")) {
		struct knn_index *ix = ingest(NULL, &o, nfiles, files);
		commit(ix);
		save(ix, o.index);
		knn_index_free(ix);
	} else if (!strcmp(sub, "train")) {
		struct knn_index *ix = ingest(NULL, &o, nfiles, files);
		if (knn_index_train(ix, progress) < 0)
			die("%s", error_message());
		save(ix, o.index);
		knn_index_free(ix);
	} else if (!strcmp(sub, "add")) {
		struct knn_index *ix = ingest(open_index(o.index), &o, nfiles, files);
		commit(ix);
		save(ix, o.index);
		knn_index_free(ix);
	} else if (!strcmp(sub, "merge")) {
		if (nfiles < 1)
			usage_error("merge needs at least one SHARD_DIR");
		struct knn_index *ix = open_index(o.index);
		for (int i = 0; i < nfiles; i++) {
			struct knn_index *shard = open_index(files[i]);
			if (knn_index_merge(ix, shard) < 0)
				die("%s: %s", files[i], error_message());
			knn_index_free(shard);
		}
		save(ix, o.index);
		knn_index_free(ix);
	} else if (!strcmp(sub, "search")) {
		search(&o, nfiles, files);
	} else {
		usage_error("unknown subcommand '%s' (build, train, add, merge or search)", sub);
	}
	return EXIT_OK;
}
