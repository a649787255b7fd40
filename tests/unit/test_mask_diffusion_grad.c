/* The diffusion math beyond the golden sizes: md_train_loss's gradient
 * against finite differences (both KL terms, the t = 0 decoder NLL), the
 * skip-step posterior against Bayes' rule on explicitly composed
 * transition matrices, the sampling step list, a production-sized loss
 * (K = 1024, L = 256) and determinism across thread counts. */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "diffusion/mask_diffusion.h"
#include "nn/philox.h"
#include "test.h"

static float uniform_at(uint64_t seed, uint64_t i)
{
	return philox_uniform_at(seed, i);
}

/* Random inputs of a loss: logits ~ U(-3, 3), x0 tokens, x_t drawn from
 * q(x_t | x_0) so masks, kept and replaced tokens all occur. */
struct loss_case {
	int B, K, L, T;
	int32_t *x0, *xt, *t;
	float *logits;
	struct md_schedule s;
};

static void case_init(struct loss_case *lc, int B, int K, int L, int T, const int32_t *t, uint64_t seed)
{
	*lc = (struct loss_case){ .B = B, .K = K, .L = L, .T = T };
	CHECK(md_schedule_init(&lc->s, T, K) == 0);
	size_t n = (size_t)B * L, C = (size_t)K + 1;
	lc->x0 = xmalloc(n * sizeof(int32_t));
	lc->xt = xmalloc(n * sizeof(int32_t));
	lc->t = xmalloc((size_t)B * sizeof(int32_t));
	lc->logits = xmalloc((size_t)B * K * L * sizeof(float));
	memcpy(lc->t, t, (size_t)B * sizeof(int32_t));
	for (size_t i = 0; i < n; i++)
		lc->x0[i] = (int32_t)(uniform_at(seed, i) * K) % K;
	for (size_t i = 0; i < (size_t)B * K * L; i++)
		lc->logits[i] = 6 * uniform_at(seed + 1, i) - 3;
	float *lx = xmalloc((size_t)B * C * L * sizeof(float)), *lq = xmalloc((size_t)B * C * L * sizeof(float));
	float *u = xmalloc((size_t)B * C * L * sizeof(float));
	for (size_t i = 0; i < (size_t)B * C * L; i++)
		u[i] = uniform_at(seed + 2, i);
	md_log_onehot(&lc->s, lc->x0, B, L, lx);
	md_q_pred(&lc->s, lx, lc->t, B, L, lq);
	md_sample(&lc->s, lq, u, B, L, lc->xt);
	free(lx);
	free(lq);
	free(u);
}

static void case_free(struct loss_case *lc)
{
	md_schedule_free(&lc->s);
	free(lc->x0);
	free(lc->xt);
	free(lc->t);
	free(lc->logits);
}

static float case_loss(struct loss_case *lc, const struct md_loss_config *cfg, float *dlogits)
{
	return md_train_loss(&lc->s, cfg, lc->x0, lc->xt, lc->t, lc->logits, lc->B, lc->L, dlogits, NULL);
}

/* Central differences on every logit; reports the worst error relative to
 * the largest gradient entry. */
static void check_gradient(const char *label, struct loss_case *lc, const struct md_loss_config *cfg,
                           double tol)
{
	size_t n = (size_t)lc->B * lc->K * lc->L;
	float *g = xmalloc(n * sizeof *g);
	case_loss(lc, cfg, g);
	double worst = 0, gmax = 0, eps = 1e-2;
	size_t at = 0;
	for (size_t i = 0; i < n; i++)
		gmax = fmax(gmax, fabs(g[i]));
	for (size_t i = 0; i < n; i++) {
		float keep = lc->logits[i];
		lc->logits[i] = keep + (float)eps;
		double up = case_loss(lc, cfg, NULL);
		lc->logits[i] = keep - (float)eps;
		double down = case_loss(lc, cfg, NULL);
		lc->logits[i] = keep;
		double fd = (up - down) / (2 * eps), err = fabs(fd - g[i]);
		if (err > worst) {
			worst = err;
			at = i;
		}
	}
	printf("# %s: max |grad| %.4g, max |fd - grad| %.3g (%.2g relative) at %zu\n", label, gmax, worst,
	       worst / gmax, at);
	CHECK_MSG(gmax > 0, "%s: zero gradient", label);
	CHECK_MSG(worst <= tol * gmax, "%s: gradient error %g at %zu (max |grad| %g)", label, worst, at, gmax);
	free(g);
}

static void test_gradient_kl_terms(void)
{
	/* Rows at t = 0 (decoder NLL), 1, 4 and T - 1, both loss configurations. */
	static const int32_t t[4] = { 0, 1, 4, 9 };
	struct loss_case lc;
	case_init(&lc, 4, 5, 7, 10, t, 1234);
	int masked = 0;
	for (int i = 0; i < lc.B * lc.L; i++)
		masked += lc.xt[i] == lc.K;
	CHECK_MSG(masked > 0 && masked < lc.B * lc.L, "x_t should mix masked and unmasked positions (%d)", masked);
	const struct md_loss_config shipped = { .aux_weight = 0.0005f, .adaptive_aux = 1, .mask_weight = { 1, 1 } };
	const struct md_loss_config heavy = { .aux_weight = 0.25f, .adaptive_aux = 0, .mask_weight = { 2.0f, 0.5f } };
	check_gradient("shipped config", &lc, &shipped, 1e-2);
	check_gradient("aux 0.25, mask weights 2/0.5", &lc, &heavy, 1e-2);
	case_free(&lc);
}

static void test_gradient_decoder_nll(void)
{
	/* Every row at t = 0: the loss is the decoder NLL alone. */
	static const int32_t t[3] = { 0, 0, 0 };
	struct loss_case lc;
	case_init(&lc, 3, 6, 5, 100, t, 99);
	const struct md_loss_config cfg = { .aux_weight = 0.001f, .adaptive_aux = 1, .mask_weight = { 1, 1 } };
	check_gradient("t = 0 decoder NLL", &lc, &cfg, 1e-2);
	case_free(&lc);
}

static void test_gradient_late_steps(void)
{
	/* Late steps of a 100-step schedule, where most of x_t is masked. */
	static const int32_t t[3] = { 50, 98, 99 };
	struct loss_case lc;
	case_init(&lc, 3, 6, 5, 100, t, 7);
	const struct md_loss_config cfg = { .aux_weight = 0.0f, .adaptive_aux = 0, .mask_weight = { 1, 1 } };
	check_gradient("t = 50..99, no aux", &lc, &cfg, 1e-2);
	case_free(&lc);
}

/* A production-sized loss at T = 100: finite, positive, and the same with
 * 1 and 2 threads, bit for bit; every position's logit gradient sums to
 * about 0 (log_softmax). */
static void test_large_loss(void)
{
	static const int32_t t[2] = { 0, 57 };
	struct loss_case lc;
	case_init(&lc, 2, 1024, 256, 100, t, 4242);
	const struct md_loss_config cfg = { .aux_weight = 0.0005f, .adaptive_aux = 1, .mask_weight = { 1, 1 } };
	size_t n = (size_t)lc.B * lc.K * lc.L;
	float *g1 = xmalloc(n * sizeof *g1), *g2 = xmalloc(n * sizeof *g2);
	int saved = omp_get_max_threads();
	omp_set_num_threads(1);
	float loss1 = case_loss(&lc, &cfg, g1);
	omp_set_num_threads(2);
	float loss2 = case_loss(&lc, &cfg, g2);
	omp_set_num_threads(saved);
	printf("# K 1024, L 256, B 2: loss %g\n", loss1);
	CHECK_MSG(isfinite(loss1) && loss1 > 0, "loss %g", loss1);
	CHECK_MSG(loss1 == loss2, "loss differs across thread counts: %.9g vs %.9g", loss1, loss2);
	CHECK_MSG(!memcmp(g1, g2, n * sizeof *g1), "gradient differs across thread counts");
	double worst = 0, gmax = 0;
	for (size_t i = 0; i < n; i++) {
		CHECK_MSG(isfinite(g1[i]), "gradient not finite at %zu", i);
		gmax = fmax(gmax, fabs(g1[i]));
	}
	for (int b = 0; b < lc.B; b++)
		for (int l = 0; l < lc.L; l++) {
			double sum = 0;
			for (int k = 0; k < lc.K; k++)
				sum += g1[((size_t)b * lc.K + k) * lc.L + l];
			worst = fmax(worst, fabs(sum));
		}
	printf("# max |grad| %.3g, worst per-position sum %.3g\n", gmax, worst);
	CHECK_MSG(gmax > 0 && worst < 1e-5 * gmax, "per-position gradient sum %g (max |grad| %g)", worst, gmax);
	free(g1);
	free(g2);
	case_free(&lc);
}

/* ---- skip-step posterior against Bayes' rule ---- */

/* The C x C transition matrix from step s to t (Q[i][j] = q(j | i)) as a
 * product of single steps, in double. */
static void composed(const struct md_schedule *s, int from, int to, double *Q)
{
	int K = s->K, C = K + 1;
	double *step = xmalloc((size_t)C * C * sizeof *step), *tmp = xmalloc((size_t)C * C * sizeof *tmp);
	for (int i = 0; i < C * C; i++)
		Q[i] = i % (C + 1) == 0;
	for (int t = from + 1; t <= to; t++) {
		/* Single-step probabilities from the float schedule, renormalised
		 * in double (at + K bt + ct = 1 up to float rounding). */
		double at = s->at[t], bt = s->bt[t], ct = s->ct[t], z = at + K * bt + ct;
		at /= z, bt /= z, ct /= z;
		for (int i = 0; i < C; i++)
			for (int j = 0; j < C; j++)
				step[i * C + j] = i == K ? j == K : j == K ? ct : bt + (i == j) * at;
		for (int i = 0; i < C; i++)
			for (int j = 0; j < C; j++) {
				double v = 0;
				for (int m = 0; m < C; m++)
					v += Q[i * C + m] * step[m * C + j];
				tmp[i * C + j] = v;
			}
		memcpy(Q, tmp, (size_t)C * C * sizeof *Q);
	}
	free(step);
	free(tmp);
}

static void test_skip_posterior(void)
{
	int K = 4, C = K + 1, L = 5, B = 1, T = 10;
	struct md_schedule s;
	CHECK(md_schedule_init(&s, T, K) == 0);
	/* x_0 a soft distribution over the tokens; x_t one of each kind. */
	float lx0[25], lxt[25], got[25], plain[25];
	int32_t xt[5] = { 0, 2, K, 3, K };
	double p[5][4];
	for (int l = 0; l < L; l++) {
		double z = 0;
		for (int k = 0; k < K; k++)
			z += p[l][k] = 0.2 + uniform_at(5, (uint64_t)(l * K + k));
		for (int k = 0; k < K; k++) {
			p[l][k] /= z;
			lx0[k * L + l] = (float)log(p[l][k]);
		}
		lx0[K * L + l] = MD_LOG_MIN;
	}
	md_log_onehot(&s, xt, B, L, lxt);
	double *Qs = xmalloc((size_t)C * C * sizeof *Qs), *Qst = xmalloc((size_t)C * C * sizeof *Qst),
	       *Qt = xmalloc((size_t)C * C * sizeof *Qt);
	double worst = 0;
	int cases = 0;
	for (int t = 0; t < T; t++)
		for (int skip = 1; skip <= t + 1; skip++) {
			int32_t tv[1] = { t };
			CHECK(md_q_posterior_skip(&s, lx0, lxt, tv, skip, B, L, got) == 0);
			if (skip == 1) {
				md_q_posterior(&s, lx0, lxt, tv, B, L, plain);
				CHECK_MSG(!memcmp(got, plain, sizeof got), "t %d: skip 1 differs from md_q_posterior", t);
			}
			composed(&s, -1, t - skip, Qs);
			composed(&s, t - skip, t, Qst);
			composed(&s, -1, t, Qt);
			for (int l = 0; l < L; l++)
				for (int j = 0; j < C; j++) {
					double v = 0;
					for (int k = 0; k < K; k++)
						v += p[l][k] * Qs[k * C + j] * Qst[j * C + xt[l]] / Qt[k * C + xt[l]];
					if (v < 1e-20)
						continue;
					double err = fabs(log(v) - got[j * L + l]);
					worst = fmax(worst, err);
					CHECK_MSG(err < 1e-3, "t %d skip %d l %d j %d: got %g, Bayes %g", t, skip, l, j,
					          got[j * L + l], log(v));
				}
			cases++;
		}
	printf("# skip posterior vs Bayes on composed matrices: %d (t, skip) pairs, max log error %.3g\n", cases,
	       worst);
	int32_t bad[1] = { 3 };
	CHECK(md_q_posterior_skip(&s, lx0, lxt, bad, 5, B, L, got) < 0);
	CHECK(md_q_posterior_skip(&s, lx0, lxt, bad, 0, B, L, got) < 0);
	bad[0] = T;
	CHECK(md_q_posterior_skip(&s, lx0, lxt, bad, 1, B, L, got) < 0);
	free(Qs);
	free(Qst);
	free(Qt);
	md_schedule_free(&s);
}

static void test_sample_steps(void)
{
	int32_t steps[101];
	CHECK(md_sample_steps(100, 100, steps) == 0);
	for (int i = 0; i <= 100; i++)
		CHECK_MSG(steps[i] == 99 - i, "steps[%d] = %d", i, steps[i]);
	CHECK(md_sample_steps(100, 10, steps) == 0);
	for (int i = 0; i <= 10; i++)
		CHECK_MSG(steps[i] == 99 - 10 * i, "10 of 100: steps[%d] = %d", i, steps[i]);
	CHECK(md_sample_steps(100, 1, steps) == 0);
	CHECK(steps[0] == 99 && steps[1] == -1);
	CHECK(md_sample_steps(10, 4, steps) == 0);
	CHECK(steps[0] == 9 && steps[4] == -1);
	for (int i = 0; i < 4; i++)
		CHECK_MSG(steps[i] > steps[i + 1], "4 of 10 not decreasing at %d", i);
	CHECK(md_sample_steps(100, 0, steps) < 0);
	CHECK(md_sample_steps(10, 11, steps) < 0);
}

/* A full skip-step chain on the schedule alone: with the x_0 prediction a
 * one-hot of target tokens, every step keeps or reveals only those tokens
 * and the chain ends on the target, whatever the number of steps. */
static void test_skip_chain_reaches_target(void)
{
	int K = 16, C = K + 1, L = 9, B = 2, T = 100;
	struct md_schedule s;
	CHECK(md_schedule_init(&s, T, K) == 0);
	int32_t target[18], xt[18], tv[2];
	for (int i = 0; i < B * L; i++)
		target[i] = (i * 7 + 3) % K;
	float *lx0 = xmalloc((size_t)B * C * L * sizeof(float)), *lxt = xmalloc((size_t)B * C * L * sizeof(float));
	float *lp = xmalloc((size_t)B * C * L * sizeof(float)), *u = xmalloc((size_t)B * C * L * sizeof(float));
	md_log_onehot(&s, target, B, L, lx0);
	static const int counts[] = { 1, 3, 10, 100 };
	for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
		int32_t steps[101];
		CHECK(md_sample_steps(T, counts[c], steps) == 0);
		for (int i = 0; i < B * L; i++)
			xt[i] = K;
		for (int i = 0; i < counts[c]; i++) {
			md_log_onehot(&s, xt, B, L, lxt);
			tv[0] = tv[1] = steps[i];
			for (int j = 0; j < B * C * L; j++)
				u[j] = uniform_at(77 + c, (uint64_t)(i * B * C * L + j));
			CHECK(md_p_step(&s, lx0, lxt, tv, steps[i] - steps[i + 1], u, B, L, lp, xt) == 0);
			for (int j = 0; j < B * L; j++)
				CHECK_MSG(xt[j] == K || xt[j] == target[j], "%d steps: step %d position %d drew %d", counts[c],
				          i, j, xt[j]);
		}
		CHECK_MSG(!memcmp(xt, target, sizeof xt), "%d steps: the chain did not end on the target", counts[c]);
	}
	free(lx0);
	free(lxt);
	free(lp);
	free(u);
	md_schedule_free(&s);
}

static void test_bad_schedule(void)
{
	struct md_schedule s;
	CHECK(md_schedule_init(&s, 1, 8) < 0);
	CHECK(md_schedule_init(&s, 10, 0) < 0);
	/* A step outside the schedule makes the loss NaN rather than garbage. */
	CHECK(md_schedule_init(&s, 10, 4) == 0);
	int32_t x0[2] = { 1, 2 }, xt[2] = { 4, 2 }, t[1] = { 10 };
	float logits[8] = { 0 };
	const struct md_loss_config cfg = { .aux_weight = 0.0005f, .adaptive_aux = 1, .mask_weight = { 1, 1 } };
	CHECK(isnan(md_train_loss(&s, &cfg, x0, xt, t, logits, 1, 2, NULL, NULL)));
	t[0] = -1;
	CHECK(isnan(md_train_loss(&s, &cfg, x0, xt, t, logits, 1, 2, NULL, NULL)));
	md_schedule_free(&s);
}

int main(void)
{
	RUN(test_gradient_kl_terms);
	RUN(test_gradient_decoder_nll);
	RUN(test_gradient_late_steps);
	RUN(test_large_loss);
	RUN(test_skip_posterior);
	RUN(test_sample_steps);
	RUN(test_skip_chain_reaches_target);
	RUN(test_bad_schedule);
	TEST_EXIT();
}
