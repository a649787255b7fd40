/* Streamed means, their confidence intervals, and groups (summary.h). */
#include "eval/summary.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"
#include "nn/philox.h"

/* The 97.5th percentile of the standard normal. */
#define Z_975 1.96

void summary_init(struct summary *s, bool keep)
{
	*s = (struct summary){ .keep = keep };
}

void summary_free(struct summary *s)
{
	free(s->values);
	*s = (struct summary){ 0 };
}

void summary_add(struct summary *s, double x)
{
	s->n++;
	double delta = x - s->mean;
	s->mean += delta / (double)s->n;
	s->m2 += delta * (x - s->mean);
	if (s->keep) {
		if ((size_t)s->n > s->cap) {
			s->cap = s->cap ? 2 * s->cap : 64;
			s->values = xrealloc(s->values, s->cap * sizeof *s->values);
		}
		s->values[s->n - 1] = x;
	}
}

void summary_ci_normal(const struct summary *s, double *lo, double *hi)
{
	if (s->n < 2) {
		*lo = *hi = NAN;
		return;
	}
	double half = Z_975 * sqrt(s->m2 / (double)(s->n - 1)) / sqrt((double)s->n);
	*lo = s->mean - half;
	*hi = s->mean + half;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* numpy's default percentile: linear between the two nearest ranks. */
static double percentile_sorted(const double *x, int n, double q)
{
	double pos = q / 100.0 * (n - 1);
	int i = (int)floor(pos);
	if (i >= n - 1)
		return x[n - 1];
	return x[i] + (pos - i) * (x[i + 1] - x[i]);
}

int summary_ci_bootstrap(const struct summary *s, int resamples, uint64_t seed, double *lo, double *hi)
{
	if (!s->keep)
		return errorf("the values were not kept for a bootstrap");
	if (s->n < 1 || resamples < 1)
		return errorf("a bootstrap needs at least one value and one resample");
	if ((uint64_t)s->n > UINT32_MAX)
		return errorf("%lld values: a bootstrap takes at most 2^32 - 1", (long long)s->n);
	uint64_t n = (uint64_t)s->n;
	double *means = xmalloc((size_t)resamples * sizeof *means);
	/* Draw j of resample b is Philox element b * n + j: one 32-bit word,
	 * scaled to an index by a multiply-shift (n < 2^32). */
	for (int b = 0; b < resamples; b++) {
		double sum = 0;
		for (uint64_t j = 0; j < n; j++) {
			uint64_t e = (uint64_t)b * n + j;
			uint32_t w = philox_block_at(seed, e).w[e & 3];
			sum += s->values[((uint64_t)w * n) >> 32];
		}
		means[b] = sum / (double)n;
	}
	qsort(means, resamples, sizeof *means, compare_doubles);
	*lo = percentile_sorted(means, resamples, 2.5);
	*hi = percentile_sorted(means, resamples, 97.5);
	free(means);
	return 0;
}

static const char *kind_name(const struct value *v)
{
	switch (v->kind) {
	case V_NIL: return "nil";
	case V_STR: return "a string";
	case V_BIN: return "bytes";
	case V_TENSOR: return "a tensor";
	case V_RAW: return "an array or map";
	default: return "a number";
	}
}

int value_number(const struct value *v, double *out)
{
	switch (v->kind) {
	case V_BOOL: *out = v->b; return 0;
	case V_INT: *out = v->is_unsigned ? (double)v->u : (double)v->i; return 0;
	case V_FLOAT: *out = v->f; return 0;
	case V_TENSOR:
		if (v->t.ndim > 1 || (v->t.ndim == 1 && v->t.shape[0] != 1))
			return errorf("is a tensor of %lld elements, not a number (shape [] or [1])",
			              (long long)tensor_numel(&v->t));
		*out = tensor_get(&v->t, 0);
		return 0;
	default: return errorf("is %s, not a number", kind_name(v));
	}
}

int group_name(const struct value *v, char **out)
{
	char buf[32];
	if (v->kind == V_STR) {
		*out = xstrndup(v->str.ptr, v->str.len);
	} else if (v->kind == V_INT) {
		if (v->is_unsigned)
			snprintf(buf, sizeof buf, "%" PRIu64, v->u);
		else
			snprintf(buf, sizeof buf, "%" PRId64, v->i);
		*out = xstrdup(buf);
	} else {
		return errorf("is %s, not a string or an int", v->kind == V_FLOAT || v->kind == V_BOOL ? "a float or bool"
		                                                                                       : kind_name(v));
	}
	return 0;
}

void summary_groups_init(struct summary_groups *g, int nfields, bool keep)
{
	*g = (struct summary_groups){ .nfields = nfields, .keep = keep };
}

void summary_groups_free(struct summary_groups *g)
{
	for (int i = 0; i < g->n; i++) {
		for (int f = 0; f < g->nfields; f++)
			summary_free(&g->stats[i][f]);
		free(g->stats[i]);
		free(g->names[i]);
	}
	free(g->stats);
	free(g->names);
	free(g->slot);
	*g = (struct summary_groups){ 0 };
}

/* FNV-1a: group names hash into an open-addressed table of indices. */
static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

/* The slot of name in the table: its group's, or the empty one it goes in. */
static size_t group_slot(const struct summary_groups *g, const char *name)
{
	size_t mask = g->slots - 1, i = name_hash(name) & mask;
	while (g->slot[i] >= 0 && strcmp(g->names[g->slot[i]], name))
		i = (i + 1) & mask;
	return i;
}

static void groups_grow(struct summary_groups *g)
{
	g->cap = g->cap ? 2 * g->cap : 8;
	g->names = xrealloc(g->names, (size_t)g->cap * sizeof *g->names);
	g->stats = xrealloc(g->stats, (size_t)g->cap * sizeof *g->stats);
	/* The table stays at most half full. */
	free(g->slot);
	g->slots = 2 * (size_t)g->cap;
	g->slot = xmalloc(g->slots * sizeof *g->slot);
	for (size_t i = 0; i < g->slots; i++)
		g->slot[i] = -1;
	for (int k = 0; k < g->n; k++)
		g->slot[group_slot(g, g->names[k])] = k;
}

struct summary *summary_groups_get(struct summary_groups *g, const char *name)
{
	if (g->n && !strcmp(g->names[g->last], name))
		return g->stats[g->last];
	if (g->n == g->cap)
		groups_grow(g);
	size_t i = group_slot(g, name);
	if (g->slot[i] < 0) {
		g->names[g->n] = xstrdup(name);
		g->stats[g->n] = xmalloc((size_t)g->nfields * sizeof **g->stats);
		for (int f = 0; f < g->nfields; f++)
			summary_init(&g->stats[g->n][f], g->keep);
		g->slot[i] = g->n++;
	}
	g->last = g->slot[i];
	return g->stats[g->last];
}
