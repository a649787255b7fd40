/* The Fréchet distance: closed forms for diagonal and co-rotated
 * covariances, zero for equal sets, the streamed moments against a
 * two-pass computation (also far from the origin, where a naive sum of
 * squares loses its digits), the matrix square root, and bad fields. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/error.h"
#include "eval/frechet.h"
#include "nn/philox.h"
#include "test.h"

/* A deterministic standard normal for element e. */
static double normal_at(uint64_t seed, uint64_t e)
{
	float z[4];
	philox_normal4(seed, e / 4, z);
	return z[e % 4];
}

/* Diagonal covariances commute: the distance is
 * |mu_a - mu_b|^2 + sum (sqrt(sa) - sqrt(sb))^2. */
static void test_diagonal_closed_form(void)
{
	enum { D = 5 };
	double mu_a[D] = { 0, 1, 2, -1, 0.5 }, mu_b[D] = { 1, 1, 0, 0, 0 };
	double va[D] = { 1, 4, 0.25, 9, 2 }, vb[D] = { 4, 1, 1, 9, 0.5 };
	double ca[D * D] = { 0 }, cb[D * D] = { 0 }, want = 0;
	for (int i = 0; i < D; i++) {
		ca[i * D + i] = va[i];
		cb[i * D + i] = vb[i];
		want += (mu_a[i] - mu_b[i]) * (mu_a[i] - mu_b[i]) + pow(sqrt(va[i]) - sqrt(vb[i]), 2);
	}
	double got = -1;
	CHECK(frechet_from_stats(D, mu_a, ca, mu_b, cb, &got) == 0);
	CHECK_NEAR(got, want, 1e-12 * want);
	CHECK(frechet_from_stats(D, mu_a, ca, mu_a, ca, &got) == 0);
	CHECK_NEAR(got, 0, 1e-12);
}

/* Rotating both covariances by one orthogonal Q (here a plane rotation)
 * keeps the distance: the non-diagonal path through the square roots. */
static void test_rotated_closed_form(void)
{
	enum { D = 3 };
	double c = cos(0.7), s = sin(0.7);
	double q[D * D] = { c, -s, 0, s, c, 0, 0, 0, 1 };
	double va[D] = { 2, 0.5, 1 }, vb[D] = { 0.5, 3, 1 }, mu[D] = { 0 };
	double ca[D * D], cb[D * D];
	for (int i = 0; i < D; i++)
		for (int j = 0; j < D; j++) {
			ca[i * D + j] = cb[i * D + j] = 0;
			for (int k = 0; k < D; k++) {
				ca[i * D + j] += q[i * D + k] * va[k] * q[j * D + k];
				cb[i * D + j] += q[i * D + k] * vb[k] * q[j * D + k];
			}
		}
	double want = 0, got = -1;
	for (int i = 0; i < D; i++)
		want += pow(sqrt(va[i]) - sqrt(vb[i]), 2);
	CHECK(frechet_from_stats(D, mu, ca, mu, cb, &got) == 0);
	CHECK_NEAR(got, want, 1e-10);
}

/* sqrt(A) sqrt(A) = A for a random SPD A, and a PSD matrix with a zero
 * eigenvalue does not fail. */
static void test_symmetric_sqrt(void)
{
	enum { D = 12 };
	double g[D * D], a[D * D], r[D * D];
	for (int i = 0; i < D * D; i++)
		g[i] = normal_at(3, i);
	for (int i = 0; i < D; i++)
		for (int j = 0; j < D; j++) {
			double sum = i == j ? 0.1 : 0;
			for (int k = 0; k < D; k++)
				sum += g[i * D + k] * g[j * D + k];
			a[i * D + j] = r[i * D + j] = sum;
		}
	CHECK(symmetric_sqrt(D, r) == 0);
	double worst = 0;
	for (int i = 0; i < D; i++)
		for (int j = 0; j < D; j++) {
			double sum = 0;
			for (int k = 0; k < D; k++)
				sum += r[i * D + k] * r[k * D + j];
			worst = fmax(worst, fabs(sum - a[i * D + j]));
		}
	CHECK_NEAR(worst, 0, 1e-10);
	double rank1[4] = { 1, 1, 1, 1 };
	CHECK(symmetric_sqrt(2, rank1) == 0);
	CHECK_NEAR(rank1[0], sqrt(0.5), 1e-12);
	CHECK_NEAR(rank1[1], sqrt(0.5), 1e-12);
}

/* Streamed moments equal a two-pass mean and covariance, also for data
 * centred at 1e6. */
static void test_streamed_moments(void)
{
	enum { N = 500, D = 6 };
	for (int shifted = 0; shifted < 2; shifted++) {
		static double x[N][D];
		for (int n = 0; n < N; n++)
			for (int i = 0; i < D; i++)
				x[n][i] = normal_at(9, (uint64_t)n * D + i) * (i + 1) + (shifted ? 1e6 : i);
		struct moments m;
		moments_init(&m, D);
		for (int n = 0; n < N; n++)
			moments_add(&m, x[n]);
		double mean[D] = { 0 }, cov[D * D];
		for (int n = 0; n < N; n++)
			for (int i = 0; i < D; i++)
				mean[i] += x[n][i] / N;
		CHECK(moments_covariance(&m, cov) == 0);
		for (int i = 0; i < D; i++) {
			CHECK_NEAR(m.mean[i], mean[i], 1e-9 * fmax(1, fabs(mean[i])));
			for (int j = 0; j < D; j++) {
				double want = 0;
				for (int n = 0; n < N; n++)
					want += (x[n][i] - mean[i]) * (x[n][j] - mean[j]) / (N - 1);
				CHECK_NEAR(cov[i * D + j], want, 1e-8 * fmax(1, fabs(want)));
			}
		}
		moments_free(&m);
	}
}

/* Vectors from records: the d of the first, the same set twice gives 0,
 * and each kind of bad field is refused. */
static void test_fields(void)
{
	struct moments a, b;
	moments_init(&a, 0);
	moments_init(&b, 0);
	struct record r = RECORD_INIT;
	int64_t shape[1] = { 4 };
	for (int n = 0; n < 20; n++) {
		struct tensor *t = record_new_tensor(&r, "emb", DT_FLOAT32, 1, shape);
		for (int i = 0; i < 4; i++)
			((float *)t->data)[i] = (float)normal_at(5, n * 4 + i);
		CHECK(moments_add_field(&a, &r, "emb") == 0);
		CHECK(moments_add_field(&b, &r, "emb") == 0);
	}
	CHECK(a.d == 4 && a.n == 20);
	double d = -1;
	CHECK(frechet_distance(&a, &b, &d) == 0);
	CHECK_NEAR(d, 0, 1e-12);

	CHECK(moments_add_field(&a, &r, "nothere") < 0);
	CHECK(strstr(error_message(), "no field 'nothere'"));
	int64_t five[1] = { 5 }, grid[2] = { 2, 2 };
	record_new_tensor(&r, "emb", DT_FLOAT32, 1, five);
	CHECK(moments_add_field(&a, &r, "emb") < 0);
	CHECK(strstr(error_message(), "has 5 elements, but the vectors before it have 4"));
	record_new_tensor(&r, "emb", DT_INT32, 1, shape);
	CHECK(moments_add_field(&a, &r, "emb") < 0);
	CHECK(strstr(error_message(), "int32"));
	record_new_tensor(&r, "emb", DT_FLOAT32, 2, grid);
	CHECK(moments_add_field(&a, &r, "emb") < 0);
	record_set_str(&r, "emb", "text");
	CHECK(moments_add_field(&a, &r, "emb") < 0);
	CHECK(strstr(error_message(), "not a tensor"));
	CHECK(a.n == 20);

	struct moments one;
	moments_init(&one, 4);
	moments_add(&one, a.mean);
	CHECK(frechet_distance(&a, &one, &d) < 0);
	CHECK(strstr(error_message(), "at least 2"));
	struct moments other;
	moments_init(&other, 3);
	CHECK(frechet_distance(&a, &other, &d) < 0);
	record_free(&r);
	moments_free(&a);
	moments_free(&b);
	moments_free(&one);
	moments_free(&other);
}

int main(void)
{
	RUN(test_diagonal_closed_form);
	RUN(test_rotated_closed_form);
	RUN(test_symmetric_sqrt);
	RUN(test_streamed_moments);
	RUN(test_fields);
	TEST_EXIT();
}
