#include "nn/gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"

/* splitmix64: a small, good generator; the sequence only has to be fixed. */
static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [-1, 1), 24 random bits. */
static float random_signed(uint64_t *state)
{
	return (float)(next_random(state) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

static int count_inputs(const struct gradcheck *g)
{
	int n = 0;
	while (n < GRADCHECK_MAX_INPUTS && g->in[n].x)
		n++;
	return n;
}

void gradcheck_fill(const struct gradcheck *g, uint64_t seed)
{
	uint64_t state = seed;
	for (int i = 0; i < count_inputs(g); i++)
		for (size_t j = 0; j < g->in[i].n; j++)
			g->in[i].x[j] = random_signed(&state);
}

/* L = sum(out * w) after a forward pass that must assign all of out. */
static double loss(const struct gradcheck *g, float *out, const float *w)
{
	for (size_t j = 0; j < g->n_out; j++)
		out[j] = NAN;
	g->forward(g->ctx, out);
	double s = 0;
	for (size_t j = 0; j < g->n_out; j++)
		s += (double)out[j] * w[j];
	return s;
}

int gradcheck(const struct gradcheck *g)
{
	int n_in = count_inputs(g);
	double h = g->step > 0 ? g->step : 1e-2;
	double rtol = g->rtol > 0 ? g->rtol : 1e-2, atol = g->atol > 0 ? g->atol : 1e-3;
	uint64_t state = g->seed ? g->seed : 1;

	float *w = xmalloc((g->n_out ? g->n_out : 1) * sizeof *w);
	float *out = xmalloc((g->n_out ? g->n_out : 1) * sizeof *out);
	for (size_t j = 0; j < g->n_out; j++)
		w[j] = random_signed(&state);
	float *grad[GRADCHECK_MAX_INPUTS] = {0}, *once[GRADCHECK_MAX_INPUTS] = {0};
	for (int i = 0; i < n_in; i++) {
		grad[i] = xcalloc(g->in[i].n ? g->in[i].n : 1, sizeof(float));
		once[i] = xmalloc((g->in[i].n ? g->in[i].n : 1) * sizeof(float));
	}

	int rc = 0;
	double base = loss(g, out, w);
	if (!isfinite(base)) {
		rc = errorf("gradcheck: the loss is %g (does forward assign every output?)", base);
		goto done;
	}
	/* Backward twice: the gradients must double. */
	g->backward(g->ctx, grad, w);
	for (int i = 0; i < n_in; i++)
		memcpy(once[i], grad[i], g->in[i].n * sizeof(float));
	g->backward(g->ctx, grad, w);
	for (int i = 0; i < n_in && !rc; i++) {
		/* An op may add its gradient in pieces, so allow rounding relative
		 * to the largest gradient of this input. */
		double scale = 0;
		for (size_t j = 0; j < g->in[i].n; j++)
			scale = fmax(scale, fabs(once[i][j]));
		for (size_t j = 0; j < g->in[i].n; j++) {
			double a = once[i][j], twice = grad[i][j];
			if (!isfinite(a)) {
				rc = errorf("gradcheck: d%s[%zu] is %g", g->in[i].name, j, a);
				break;
			}
			if (!(fabs(twice - 2 * a) <= 1e-4 * scale)) {
				rc = errorf("gradcheck: d%s[%zu] is %g after one backward call but %g after two "
				            "(backward must accumulate)", g->in[i].name, j, a, twice);
				break;
			}
		}
	}
	if (rc)
		goto done;

	double worst = 0; /* error / tolerance */
	size_t bad = 0, checked = 0;
	char worst_msg[256] = "";
	for (int i = 0; i < n_in; i++) {
		size_t n = g->in[i].n;
		size_t count = g->max_checks && g->max_checks < n ? g->max_checks : n;
		for (size_t k = 0; k < count; k++) {
			size_t j = count == n ? k : k * n / count;
			float *x = &g->in[i].x[j], saved = *x;
			float up = (float)(saved + h), down = (float)(saved - h);
			*x = up;
			double l_up = loss(g, out, w);
			*x = down;
			double l_down = loss(g, out, w);
			*x = saved;
			double numeric = (l_up - l_down) / ((double)up - down);
			double analytic = once[i][j];
			double err = fabs(analytic - numeric);
			double tol = atol + rtol * fmax(fabs(analytic), fabs(numeric));
			checked++;
			if (!(err <= tol))
				bad++;
			if (!(err / tol <= worst)) {
				worst = isnan(err) ? INFINITY : err / tol;
				snprintf(worst_msg, sizeof worst_msg,
				         "d%s[%zu]: analytic %.6g, numeric %.6g (error %.3g, tolerance %.3g)",
				         g->in[i].name, j, analytic, numeric, err, tol);
			}
		}
	}
	if (bad)
		rc = errorf("gradcheck: %zu of %zu gradients off; worst %s", bad, checked, worst_msg);
done:
	for (int i = 0; i < n_in; i++) {
		free(grad[i]);
		free(once[i]);
	}
	free(w);
	free(out);
	return rc;
}
