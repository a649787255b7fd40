/* A small C interface over the FAISS C++ classes.
 *
 * Debian's libfaiss-dev ships the C API headers but no compiled C API
 * library, so the few calls knn-query needs are wrapped here. Every function
 * catches FAISS's C++ exceptions and turns them into -1 (or NULL) with the
 * message recorded by errorf(). Metric is always inner product. */
#ifndef KNND_INDEX_FAISS_SHIM_H
#define KNND_INDEX_FAISS_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct fshim;  /* a faiss::Index */

/* A new, empty index from an index_factory string such as "Flat" or
 * "OPQ64_256,IVF1024,PQ64". */
struct fshim *fshim_new(int d, const char *factory);
void fshim_free(struct fshim *ix);

int fshim_dim(const struct fshim *ix);
int64_t fshim_count(const struct fshim *ix);
int fshim_is_trained(const struct fshim *ix);
/* Whether the index has inverted lists (and so an nprobe to set). */
int fshim_is_ivf(const struct fshim *ix);

int fshim_train(struct fshim *ix, int64_t n, const float *x);
int fshim_add(struct fshim *ix, int64_t n, const float *x);
/* For each of the n queries: k labels (-1 where fewer exist) and scores. */
int fshim_search(const struct fshim *ix, int64_t n, const float *x, int k,
                 float *scores, int64_t *labels);
/* Sets nprobe through ParameterSpace, which reaches the inverted lists
 * through pre-transforms such as OPQ. No-op for indexes without lists. */
int fshim_set_nprobe(struct fshim *ix, int nprobe);
/* Moves every vector of `from` into `into`, numbered after those already
 * there; both must be of the same type and (for IVF) share their training. */
int fshim_merge(struct fshim *into, struct fshim *from);

int fshim_write(const struct fshim *ix, const char *path);
struct fshim *fshim_read(const char *path);

#ifdef __cplusplus
}
#endif

#endif
