/* The discrete trainer's handling of the condition (lib/diffusion/
 * diffuse_train.h): --query-noise moves only the query slot, keeps its
 * norm, lands at the cosine it promises, and draws the same noise for the
 * same step and row; dropped rows stay the null condition. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "diffusion/diffuse_train.h"
#include "nn/optim.h"
#include "nn/philox.h"
#include "test.h"

enum { B = 16, S = 3, D = 128 };

static const struct dtx_config config = { .K = 6, .h = 2, .w = 2, .width = 8, .depth = 1, .heads = 2,
	                                  .mlp_hidden = 16, .cond_dim = D, .cond_slots = S, .T = 10 };

/* Unit-norm rows of Philox normals. */
static void random_cond(float *cond)
{
	for (int r = 0; r < B * S; r++) {
		float *e = cond + (size_t)r * D;
		double n = 0;
		for (int i = 0; i < D; i += 4) {
			philox_normal4(7, (uint64_t)r * D + (uint64_t)i, e + i);
		}
		for (int i = 0; i < D; i++)
			n += (double)e[i] * e[i];
		for (int i = 0; i < D; i++)
			e[i] = (float)(e[i] / sqrt(n));
	}
}

static double dot(const float *a, const float *b)
{
	double s = 0;
	for (int i = 0; i < D; i++)
		s += (double)a[i] * b[i];
	return s;
}

/* One trainer step on fresh weights; cond is changed in place. */
static void step(float query_noise, float cond_drop, float *cond)
{
	struct dtx m;
	dtx_init(&m, &config, 1);
	dtx_init_random(&m, 3);
	struct diffuse_train_config cfg = diffuse_train_defaults();
	cfg.query_noise = query_noise;
	cfg.cond_drop = cond_drop;
	struct nn_optim_config opt = nn_optim_defaults();
	struct diffuse_trainer t;
	CHECK_MSG(diffuse_trainer_init(&t, &m, &cfg, &opt) == 0, "%s", error_message());
	int32_t x0[B * 4];
	for (int i = 0; i < B * 4; i++)
		x0[i] = i % config.K;
	float loss;
	CHECK_MSG(diffuse_trainer_step(&t, x0, cond, NULL, B, S, &loss) >= 0, "%s", error_message());
	CHECK(isfinite(loss));
	diffuse_trainer_free(&t);
	dtx_free(&m);
}

static void test_query_noise_moves_only_the_query(void)
{
	static float orig[B * S * D], cond[B * S * D], again[B * S * D];
	random_cond(orig);
	memcpy(cond, orig, sizeof cond);
	const float xi = 0.75f;
	step(xi, 0, cond);
	double mean_cos = 0;
	for (int b = 0; b < B; b++) {
		const float *o = orig + (size_t)b * S * D, *c = cond + (size_t)b * S * D;
		CHECK_NEAR(dot(c, c), 1.0, 1e-5);
		double cos = dot(c, o);
		CHECK_MSG(cos > 0.5 && cos < 0.97, "row %d: cosine %g to the unperturbed query", b, cos);
		mean_cos += cos / B;
		CHECK_MSG(!memcmp(c + D, o + D, (S - 1) * D * sizeof(float)), "row %d: a neighbour slot changed", b);
	}
	/* in 128 dimensions the noise is nearly orthogonal to the query */
	CHECK_NEAR(mean_cos, 1.0 / sqrt(1.0 + xi * xi), 0.03);

	memcpy(again, orig, sizeof again);
	step(xi, 0, again);
	CHECK_MSG(!memcmp(cond, again, sizeof cond), "the same step drew other noise");

	memcpy(again, orig, sizeof again);
	step(0, 0, again);
	CHECK_MSG(!memcmp(orig, again, sizeof again), "query noise 0 changed the condition");
}

static void test_dropped_rows_stay_null(void)
{
	static float cond[B * S * D];
	random_cond(cond);
	step(0.75f, 0.5f, cond);
	int dropped = 0;
	for (int b = 0; b < B; b++) {
		const float *c = cond + (size_t)b * S * D;
		double n = dot(c, c) + dot(c + D, c + D) + dot(c + 2 * D, c + 2 * D);
		if (n == 0)
			dropped++;
		else
			CHECK_NEAR(dot(c, c), 1.0, 1e-5);
	}
	CHECK_MSG(dropped > 0 && dropped < B, "%d of %d rows dropped at cond_drop 0.5", dropped, B);
}

int main(void)
{
	RUN(test_query_noise_moves_only_the_query);
	RUN(test_dropped_rows_stay_null);
	TEST_EXIT();
}
