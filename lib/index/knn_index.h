/* A kNN retrieval index directory: a FAISS index plus the side data that
 * lets a search return each neighbour's embedding and metadata.
 *
 * DIR/manifest.msgpack  one msgpack map: format, version, d, metric, count,
 *                       factory, refine, attribute names
 * DIR/faiss.index       the FAISS index (inner product on unit vectors)
 * DIR/emb.f16           count x d float16, memory-mapped for search
 * DIR/ids.str, paths.str  string tables (formats/knn-index.md)
 * DIR/attr-N.f64        count float64 values of numeric attribute N (NaN: none)
 *
 * The whole directory is written beside DIR and renamed into place, so a
 * reader sees the old index or the new one, never a mix. */
#ifndef KNND_INDEX_KNN_INDEX_H
#define KNND_INDEX_KNN_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KNN_INDEX_VERSION 1
#define KNN_MAX_ATTRS 32
/* Below this many vectors the automatic choice is exact search. */
#define KNN_EXACT_MAX 100000
/* knn-query's --nprobe default. */
#define KNN_DEFAULT_NPROBE 8
/* knn-query's --refine default: candidates rescored exactly per neighbour. */
#define KNN_DEFAULT_REFINE 32

struct fshim;

struct knn_index {
	int d;
	int64_t count;        /* vectors in the side data */
	char *factory;
	bool refine;          /* rescore compressed candidates with emb.f16 */
	struct fshim *fx;
	uint16_t *emb;        /* count x d float16 */
	void *map;            /* emb when memory-mapped (read-only) */
	size_t map_len;
	int64_t cap;
	char **ids, **paths;  /* NULL entries where a record had none */
	int nattr;
	char *attr_names[KNN_MAX_ATTRS];
	double *attrs[KNN_MAX_ATTRS];
	float *pending;       /* float32 vectors not yet in fx (count - fx count) */
};

/* The factory string chosen automatically for n vectors of dimension d. */
void knn_auto_factory(int64_t n, int d, char *buf, size_t size);

/* An empty index; factory NULL means choose at knn_index_commit. */
struct knn_index *knn_index_new(int d, const char *factory);
/* Opens DIR, checking that it is a whole, consistent knn index. */
struct knn_index *knn_index_open(const char *dir);
void knn_index_free(struct knn_index *ix);

/* Queues one unit vector with its metadata (id, path may be NULL; attrs are
 * nattr name/value pairs). Returns 0 or -1 (errorf). */
int knn_index_append(struct knn_index *ix, const float *v, const char *id, const char *path,
                     int nattr, const char *const *names, const double *values);
/* Trains (if needed, on a sample) and adds the queued vectors to FAISS.
 * progress, if not NULL, is called with one-line messages. */
int knn_index_commit(struct knn_index *ix, void (*progress)(const char *msg));
/* Trains the index on the queued vectors, then forgets them: the result is
 * an empty trained index, from which shards of one collection are built
 * (add to copies of it) so that they can be merged. */
int knn_index_train(struct knn_index *ix, void (*progress)(const char *msg));
/* Appends every vector of b to a (same dimension and factory). b is
 * consumed: its FAISS vectors move into a. */
int knn_index_merge(struct knn_index *a, struct knn_index *b);
/* Writes the index to dir atomically (see above). */
int knn_index_save(const struct knn_index *ix, const char *dir);

/* Attribute column of name, or -1. */
int knn_index_attr(const struct knn_index *ix, const char *name);

struct knn_hit {
	int64_t label;  /* row in the index */
	float score;    /* inner product */
};

struct knn_search_opts {
	int k;
	int nprobe;             /* 0: leave the index's setting */
	int refine_factor;      /* compressed indexes: k * this candidates are rescored
	                           with the stored vectors; 0: FAISS's scores as they are */
	bool exclude_self;      /* drop self_id and exact duplicates */
	const char *self_id;    /* the query's id, or NULL (knn_index_search only) */
	int filter_attr;        /* -1: no filter */
	double filter_lo, filter_hi;  /* keep lo <= attr < hi */
};

/* Up to opts->k neighbours of the unit vector q, best first, into hits.
 * Returns how many were found, or -1 (errorf). */
int knn_index_search(struct knn_index *ix, const float *q, const struct knn_search_opts *opts,
                     struct knn_hit *hits);
/* The same for nq queries q [nq, d] at once (one FAISS call, queries
 * rescored in parallel): query i's neighbours go to hits[i * k ...] and
 * their number to found[i]. self_ids (may be NULL) are the queries' ids
 * for exclude_self. Returns 0 or -1 (errorf). */
int knn_index_search_batch(struct knn_index *ix, int nq, const float *q, const char *const *self_ids,
                           const struct knn_search_opts *opts, struct knn_hit *hits, int *found);
/* Row i's stored vector as float32. */
void knn_index_vector(const struct knn_index *ix, int64_t i, float *out);

/* Scales v to unit length; returns its original norm. */
double knn_normalize(float *v, int d);

#endif
