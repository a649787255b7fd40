/* The Fréchet distance between two sets of embeddings, each summarised by
 * its mean and covariance (the FID formula, in any embedding space):
 *
 *   |mu_a - mu_b|^2 + tr(Sa) + tr(Sb) - 2 tr((Sa^1/2 Sb Sa^1/2)^1/2)
 *
 * The moments are accumulated in one streaming pass, in double precision:
 * vectors are gathered in blocks of MOMENTS_BLOCK, whose mean and centred
 * co-moment (one BLAS rank-k update) are merged into the running ones with
 * Chan's pairwise formula, as stable as Welford's one-at-a-time update and
 * much faster. Memory is O(d^2) whatever the number of vectors.
 * Covariances are the sample covariances (divided by n - 1), as numpy's
 * np.cov and the reference FID code use. The matrix square roots go through
 * LAPACK's symmetric eigendecomposition (dsyevd, which OpenBLAS ships);
 * eigenvalues that rounding makes slightly negative count as 0. */
#ifndef KNND_EVAL_FRECHET_H
#define KNND_EVAL_FRECHET_H

#include <stdint.h>

#include "stream/record.h"

/* The largest d: LAPACK's workspace for d x d must stay within an int. */
#define MOMENTS_MAX_DIM 8192

#define MOMENTS_BLOCK 64

struct moments {
	int d;
	int64_t n;      /* vectors added */
	/* Up to date after moments_flush (which moments_covariance and
	 * frechet_distance call): */
	int64_t merged; /* vectors in mean and comom */
	double *mean;   /* [d] */
	double *comom;  /* [d, d], upper triangle: sum of (x - mean)(x - mean)^T */
	double *block;  /* [MOMENTS_BLOCK, d]: vectors not merged yet */
	int nblock;
	double *delta;  /* [d] scratch */
};

/* Allocates for vectors of d elements. */
void moments_init(struct moments *m, int d);
void moments_free(struct moments *m);
/* Adds one vector of d doubles. */
void moments_add(struct moments *m, const double *x);
/* Merges the pending block into mean and comom. */
void moments_flush(struct moments *m);
/* Adds the record's field `key`: a 1-D float tensor (float16, bfloat16,
 * float32 or float64). A moments with d = 0 takes its d from the first
 * vector. Returns 0, or -1 (errorf) when the field is absent, of another
 * dtype or shape, or of another length than the vectors before it. */
int moments_add_field(struct moments *m, const struct record *r, const char *key);
/* Flushes, and writes the sample covariance [d, d] into cov; -1 (errorf)
 * with fewer than 2 vectors. */
int moments_covariance(struct moments *m, double *cov);

/* The distance between the two sets of moments (same d, n >= 2 each);
 * rounding below 0 is reported as 0. Returns 0 with *out, or -1 (errorf). */
int frechet_distance(struct moments *a, struct moments *b, double *out);

/* The same from means [d] and covariances [d, d] (symmetric); the
 * covariances are left as they were. Returns 0, or -1 (errorf) if LAPACK
 * fails. */
int frechet_from_stats(int d, const double *mu_a, const double *cov_a, const double *mu_b, const double *cov_b,
                       double *out);

/* The symmetric square root of the symmetric matrix a [d, d] (a PSD
 * matrix's; negative eigenvalues count as 0), written over a. Returns 0 or
 * -1 (errorf). */
int symmetric_sqrt(int d, double *a);

#endif
