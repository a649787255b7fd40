/* Summary statistics of a numeric field over a stream: the mean with a 95%
 * confidence interval, overall or per group of records.
 *
 * The mean and variance are streamed (Welford's update), so without a
 * bootstrap memory does not grow with the stream. The percentile bootstrap
 * needs the values themselves, which a summary then keeps. */
#ifndef KNND_EVAL_SUMMARY_H
#define KNND_EVAL_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/record.h"

struct summary {
	int64_t n;
	double mean, m2;    /* m2: the sum of squared deviations from the mean */
	bool keep;          /* keep the values (for a bootstrap) */
	double *values;
	size_t cap;
};

/* A summary that keeps its values when keep is set. */
void summary_init(struct summary *s, bool keep);
void summary_free(struct summary *s);
void summary_add(struct summary *s, double x);

/* mean +- 1.96 sd / sqrt(n), sd the sample standard deviation; NaN for
 * both ends with fewer than 2 values. */
void summary_ci_normal(const struct summary *s, double *lo, double *hi);
/* The 2.5th and 97.5th percentiles (linear interpolation, as numpy's
 * default) of the means of `resamples` resamples with replacement, drawn
 * with Philox keyed by seed: the same seed and values give the same
 * interval. -1 (errorf) if the summary did not keep its values or has none. */
int summary_ci_bootstrap(const struct summary *s, int resamples, uint64_t seed, double *lo, double *hi);

/* The number in v: a bool, int or float scalar, or a numeric (or bool)
 * tensor of shape [] or [1]. Returns 0, or -1 (errorf "is a string, not a
 * number" and the like). */
int value_number(const struct value *v, double *out);

/* Groups of records named by a key (a string, or an int's decimal text),
 * in the order of their first appearance; each group holds nfields
 * summaries. */
struct summary_groups {
	int nfields;
	bool keep;
	int n, cap;
	char **names;
	struct summary **stats;  /* [n][nfields] */
	int *slot;               /* hash table of group indices, -1 = empty */
	size_t slots;            /* a power of 2, twice cap */
	int last;                /* the group found last: records often come grouped */
};

void summary_groups_init(struct summary_groups *g, int nfields, bool keep);
void summary_groups_free(struct summary_groups *g);
/* The summaries of group `name`, created at the end if new. */
struct summary *summary_groups_get(struct summary_groups *g, const char *name);

/* The name of the group that v puts a record in: a string as it is, an
 * int in decimal. Returns 0 with *out (xmalloc'd), or -1 (errorf). */
int group_name(const struct value *v, char **out);

#endif
