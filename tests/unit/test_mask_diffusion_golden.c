/* The discrete diffusion math against VQ-Diffusion's own outputs in
 * ../shared/golden/vqdiffusion (its README gives the inputs, the names and
 * the tolerances): the alpha1 schedule, q(x_t | x_0), the posterior, the
 * x0 prediction, truncation, Gumbel sampling, the training loss terms and
 * the sampling chains with and without classifier-free guidance.
 *
 * Each comparison prints "# NAME max-abs-error" for the record. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "diffusion/mask_diffusion.h"
#include "golden.h"
#include "nn/safetensors.h"
#include "test.h"

/* The README's recommended absolute tolerances, by name without the
 * setting prefix. Per-row loss terms add rtol 1e-5. */
static const struct { const char *name; double atol; } tolerances[] = {
	{ "chain.log_x_recon", 1e-5 }, { "chain.model_log_prob", 2e-4 }, { "kl.true_vs_model", 1e-4 },
	{ "log_categorical.x0_model", 1e-5 }, { "log_x0", 1e-5 }, { "log_xt", 1e-5 },
	{ "loss.decoder_nll", 5e-5 }, { "loss.kl", 1e-4 }, { "loss.kl_aux", 1e-5 }, { "loss.kl_aux_loss", 5e-5 },
	{ "loss.kl_loss", 1e-4 }, { "loss.log_model_prob", 1e-4 }, { "loss.log_true_prob", 2e-4 },
	{ "loss.log_x0_recon", 1e-5 }, { "loss.loss2", 1e-5 }, { "loss.total", 5e-4 }, { "loss.vb_loss", 5e-3 },
	{ "loss_mw.decoder_nll", 1e-4 }, { "loss_mw.kl", 5e-5 }, { "loss_mw.kl_aux", 1e-5 },
	{ "loss_mw.kl_aux_loss", 5e-5 }, { "loss_mw.kl_loss", 5e-5 }, { "loss_mw.log_model_prob", 1e-4 },
	{ "loss_mw.log_true_prob", 2e-4 }, { "loss_mw.log_x0_recon", 1e-5 }, { "loss_mw.loss2", 1e-3 },
	{ "loss_mw.total", 5e-4 }, { "loss_mw.vb_loss", 5e-3 }, { "p_pred.log_model_pred", 1e-4 },
	{ "predict_start.out", 1e-5 }, { "p_pred.log_x_recon", 1e-5 }, { "q_posterior.model", 1e-4 },
	{ "q_posterior.true", 2e-4 }, { "q_posterior.trunc_r", 2e-4 }, { "q_pred.log_x0", 1e-5 },
	{ "q_pred.log_x0_tm1", 1e-5 }, { "q_pred.soft_out", 2e-5 }, { "q_pred_one_timestep.log_xt", 1e-5 },
	{ "trunc_p.out", 1e-5 }, { "trunc_r.out", 1e-5 }, { "loss.kl_per_pos", 1e-4 },
	{ "loss_mw.kl_per_pos", 1e-4 }, { "loss.kl_aux_per_pos", 1e-5 }, { "loss_mw.kl_aux_per_pos", 1e-5 },
	{ "loss.addition_loss_weight", 0 }, { "loss_mw.addition_loss_weight", 0 },
};

static char golden[400];
static struct st_file *expected;

static int have_golden(void)
{
	return golden_open("vqdiffusion", golden, sizeof golden, &expected);
}

static double tolerance(const char *name)
{
	const char *base = strchr(name, '.') ? strchr(name, '.') + 1 : name;
	char key[128];
	if (!strncmp(base, "chain_g", 7)) {
		snprintf(key, sizeof key, "chain.%s", strrchr(name, '.') + 1);
		base = key;
	}
	for (size_t i = 0; i < sizeof tolerances / sizeof *tolerances; i++)
		if (!strcmp(base, tolerances[i].name))
			return tolerances[i].atol;
	return 2e-4; /* the README's blanket rule for log-probabilities */
}

static int is_row_term(const char *name)
{
	static const char *const terms[] = { ".kl", ".decoder_nll", ".kl_aux", ".kl_loss", ".kl_aux_loss",
	                                     ".loss2", ".vb_loss", ".total" };
	for (size_t i = 0; i < sizeof terms / sizeof *terms; i++) {
		size_t n = strlen(terms[i]), m = strlen(name);
		if (m > n && !strcmp(name + m - n, terms[i]) && strstr(name, ".loss"))
			return 1;
	}
	return 0;
}

static const struct st_entry *entry(const char *name)
{
	const struct st_entry *e = st_find(expected, name);
	CHECK_MSG(e, "expected tensor %s is missing", name);
	return e;
}

/* An expected tensor as float32 (malloc'd, NULL if missing). */
static float *f32(const char *name, size_t *n)
{
	if (!entry(name))
		return NULL;
	float *x = golden_f32(expected, name, n);
	CHECK_MSG(x, "%s: unreadable", name);
	return x;
}

/* An expected int64 tensor as int32 (malloc'd, NULL if missing). */
static int32_t *ids(const char *name, size_t *n)
{
	return entry(name) ? golden_ids(expected, name, n) : NULL;
}

/* got vs the expected `name` [n]: -inf must match -inf; the rest within
 * atol (+ rtol * |want|). */
static void check_close_rtol(const char *name, const float *got, size_t n, double rtol)
{
	size_t m;
	float *want = f32(name, &m);
	if (!want)
		return;
	CHECK_MSG(n == m, "%s: %zu values, expected %zu", name, n, m);
	double worst = 0, atol = tolerance(name), excess = 0;
	size_t at = 0, inf_wrong = 0;
	for (size_t i = 0; i < n && i < m; i++) {
		if (isinf(want[i]) || isinf(got[i])) {
			inf_wrong += got[i] != want[i];
			continue;
		}
		double d = fabs((double)got[i] - want[i]), over = d - (atol + rtol * fabs(want[i]));
		if (!(d <= worst))
			worst = d;
		if (!(over <= excess)) {
			excess = over;
			at = i;
		}
	}
	printf("# %s max-abs-error %.3g (atol %g%s)\n", name, worst, atol, rtol ? ", rtol 1e-5" : "");
	CHECK_MSG(!inf_wrong, "%s: %zu infinities differ", name, inf_wrong);
	CHECK_MSG(excess <= 0, "%s: error at %zu (got %.9g, want %.9g), atol %g", name, at, got[at], want[at], atol);
	free(want);
}

static void check_close(const char *name, const float *got, size_t n)
{
	check_close_rtol(name, got, n, is_row_term(name) ? 1e-5 : 0);
}

static void check_ids(const char *name, const int32_t *got, size_t n)
{
	size_t m;
	int32_t *want = ids(name, &m);
	if (!want)
		return;
	CHECK_MSG(m == n, "%s: %zu values, expected %zu", name, n, m);
	golden_check_ids(name, got, n, want, m);
	free(want);
}

static const char *nm(const char *prefix, const char *name)
{
	static char buf[4][160];
	static int next;
	char *b = buf[next++ % 4];
	snprintf(b, sizeof buf[0], "%s.%s", prefix, name);
	return b;
}

/* A golden setting: K = 8, L = 6, B = 5. */
struct setting {
	const char *prefix;
	int T, K, L, B;
	struct md_schedule s;
	int32_t *x0, *xt, *t;
	size_t nlog; /* B * C * L */
};

static int setting_open(struct setting *g, const char *prefix, int T)
{
	*g = (struct setting){ .prefix = prefix, .T = T, .K = 8, .L = 6, .B = 5 };
	g->nlog = (size_t)g->B * (g->K + 1) * g->L;
	g->x0 = ids(nm(prefix, "x0"), NULL);
	g->xt = ids(nm(prefix, "xt"), NULL);
	g->t = ids(nm(prefix, "t"), NULL);
	if (!g->x0 || !g->xt || !g->t || md_schedule_init(&g->s, T, g->K) < 0)
		return -1;
	return 0;
}

static void setting_close(struct setting *g)
{
	md_schedule_free(&g->s);
	free(g->x0);
	free(g->xt);
	free(g->t);
}

static void check_schedule(const char *prefix, const struct md_schedule *s)
{
	const struct { const char *name; const float *v; int cumulative; } arrays[] = {
		{ "at", s->at, 0 }, { "bt", s->bt, 0 }, { "ct", s->ct, 0 }, { "att", s->att, 1 }, { "btt", s->btt, 1 },
		{ "ctt", s->ctt, 1 }, { "log_at", s->log_at, 0 }, { "log_bt", s->log_bt, 0 }, { "log_ct", s->log_ct, 0 },
		{ "log_1_min_ct", s->log_1_min_ct, 0 }, { "log_cumprod_at", s->log_cumprod_at, 1 },
		{ "log_cumprod_bt", s->log_cumprod_bt, 1 }, { "log_cumprod_ct", s->log_cumprod_ct, 1 },
		{ "log_1_min_cumprod_ct", s->log_1_min_cumprod_ct, 1 },
	};
	for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) {
		char name[160];
		snprintf(name, sizeof name, "%s.%s", prefix, arrays[i].name);
		size_t m;
		float *want = f32(name, &m);
		if (!want)
			continue;
		size_t n = (size_t)s->T + arrays[i].cumulative;
		CHECK_MSG(m == n, "%s: %zu values, expected %zu", name, n, m);
		double worst = 0;
		for (size_t j = 0; j < n && j < m; j++) {
			float got = arrays[i].v[j];
			if (isinf(want[j]) || isinf(got)) {
				CHECK_MSG(got == want[j], "%s[%zu] = %g, want %g", name, j, got, want[j]);
				continue;
			}
			double d = fabs((double)got - want[j]);
			worst = d > worst ? d : worst;
			CHECK_MSG(d <= 1e-9 + 1e-6 * fabs(want[j]), "%s[%zu] = %.9g, want %.9g", name, j, got, want[j]);
		}
		printf("# %s max-abs-error %.3g\n", name, worst);
		free(want);
	}
}

static void test_schedules(void)
{
	if (!have_golden())
		SKIP("no golden data at %s (set KNND_SHARED)", golden);
	static const struct { const char *prefix; int T, K; } sets[] = {
		{ "T10.sched", 10, 8 }, { "T100.sched", 100, 8 }, { "sched_T100_N1024", 100, 1024 },
		{ "sched_T100_N4096", 100, 4096 }, { "sched_T100_N2886", 100, 2886 },
	};
	for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) {
		struct md_schedule s;
		CHECK(md_schedule_init(&s, sets[i].T, sets[i].K) == 0);
		check_schedule(sets[i].prefix, &s);
		md_schedule_free(&s);
	}
}

/* The single-step functions of one setting. */
static void check_single_steps(const char *prefix, int T)
{
	struct setting g;
	if (setting_open(&g, prefix, T) < 0) {
		CHECK_MSG(0, "%s: inputs missing", prefix);
		return;
	}
	const struct md_schedule *s = &g.s;
	int B = g.B, L = g.L;
	size_t n = g.nlog, nbl = (size_t)B * L;
	float *log_x0 = xmalloc(n * sizeof(float)), *log_xt = xmalloc(n * sizeof(float));
	float *out = xmalloc(n * sizeof(float)), *recon = xmalloc(n * sizeof(float));
	float *model = xmalloc(n * sizeof(float)), *truth = xmalloc(n * sizeof(float));
	float *pos = xmalloc(nbl * sizeof(float));
	int32_t *tok = xmalloc(nbl * sizeof *tok), *tm1 = xmalloc((size_t)B * sizeof *tm1);

	md_log_onehot(s, g.x0, B, L, log_x0);
	check_close(nm(prefix, "log_x0"), log_x0, n);
	md_log_onehot(s, g.xt, B, L, log_xt);
	check_close(nm(prefix, "log_xt"), log_xt, n);

	md_q_pred(s, log_x0, g.t, B, L, out);
	check_close(nm(prefix, "q_pred.log_x0"), out, n);
	for (int b = 0; b < B; b++)
		tm1[b] = g.t[b] - 1;
	md_q_pred(s, log_x0, tm1, B, L, out);
	check_close(nm(prefix, "q_pred.log_x0_tm1"), out, n);
	float *soft = f32(nm(prefix, "q_pred.soft_in"), NULL);
	if (soft) {
		md_q_pred(s, soft, g.t, B, L, out);
		check_close(nm(prefix, "q_pred.soft_out"), out, n);
	}
	md_q_pred_one_timestep(s, log_xt, g.t, B, L, out);
	check_close(nm(prefix, "q_pred_one_timestep.log_xt"), out, n);

	md_q_posterior(s, log_x0, log_xt, g.t, B, L, truth);
	check_close(nm(prefix, "q_posterior.true"), truth, n);
	float *logits = f32(nm(prefix, "net_logits"), NULL);
	if (logits) {
		md_predict_start(s, logits, B, L, recon);
		check_close(nm(prefix, "predict_start.out"), recon, n);
		check_close(nm(prefix, "p_pred.log_x_recon"), recon, n);
		md_q_posterior(s, recon, log_xt, g.t, B, L, model);
		check_close(nm(prefix, "q_posterior.model"), model, n);
		check_close(nm(prefix, "p_pred.log_model_pred"), model, n);
		md_kl(s, truth, model, B, L, pos);
		check_close(nm(prefix, "kl.true_vs_model"), pos, nbl);
		md_log_categorical(s, log_x0, model, B, L, pos);
		check_close(nm(prefix, "log_categorical.x0_model"), pos, nbl);

		memcpy(out, recon, n * sizeof(float));
		md_truncate_mass(s, out, B, L, 0.86f);
		check_close(nm(prefix, "trunc_r.out"), out, n);
		md_q_posterior(s, out, log_xt, g.t, B, L, model);
		check_close(nm(prefix, "q_posterior.trunc_r"), model, n);
		memcpy(out, recon, n * sizeof(float));
		md_truncate_topn(s, out, B, L, 3);
		check_close(nm(prefix, "trunc_p.out"), out, n);
	}

	float *glogits = f32(nm(prefix, "gumbel.logits"), NULL), *gu = f32(nm(prefix, "gumbel.uniform"), NULL);
	if (glogits && gu) {
		md_sample(s, glogits, gu, B, L, tok);
		check_ids(nm(prefix, "gumbel.sample_index"), tok, nbl);
		md_log_onehot(s, tok, B, L, out);
		check_close(nm(prefix, "gumbel.log_sample"), out, n);
	}
	float *qu = f32(nm(prefix, "q_sample.uniform"), NULL);
	if (qu) {
		md_q_pred(s, log_x0, g.t, B, L, out);
		md_sample(s, out, qu, B, L, tok);
		check_ids(nm(prefix, "q_sample.index"), tok, nbl);
	}
	free(qu);
	free(glogits);
	free(gu);
	free(logits);
	free(soft);
	free(log_x0);
	free(log_xt);
	free(out);
	free(recon);
	free(model);
	free(truth);
	free(pos);
	free(tok);
	free(tm1);
	setting_close(&g);
}

static void test_single_steps(void)
{
	if (!have_golden())
		SKIP("no golden data at %s (set KNND_SHARED)", golden);
	check_single_steps("T10", 10);
	check_single_steps("T100", 100);
}

/* The training loss of one setting and configuration (`loss`/`loss_mw`). */
static void check_loss(const char *prefix, int T, const char *config, const struct md_loss_config *cfg)
{
	struct setting g;
	if (setting_open(&g, prefix, T) < 0) {
		CHECK_MSG(0, "%s: inputs missing", prefix);
		return;
	}
	const struct md_schedule *s = &g.s;
	int B = g.B, L = g.L, K = g.K;
	size_t n = g.nlog, nbl = (size_t)B * L;
	char p[64];
	snprintf(p, sizeof p, "%s.%s", prefix, config);
	float *logits = f32(nm(p, "net_logits"), NULL), *u = f32(nm(p, "q_sample_uniform"), NULL);
	int32_t *xt = ids(nm(p, "xt"), NULL);
	float *log_x0 = xmalloc(n * sizeof(float)), *log_xt = xmalloc(n * sizeof(float));
	float *recon = xmalloc(n * sizeof(float)), *model = xmalloc(n * sizeof(float));
	float *truth = xmalloc(n * sizeof(float)), *pos = xmalloc(nbl * sizeof(float));
	float row[3][8] = { { 0 } };
	int32_t *tok = xmalloc(nbl * sizeof *tok);
	if (!logits || !u || !xt)
		goto done;

	/* x_t as _train_loss sampled it, from the recorded noise. */
	md_log_onehot(s, g.x0, B, L, log_x0);
	md_q_pred(s, log_x0, g.t, B, L, model);
	md_sample(s, model, u, B, L, tok);
	check_ids(nm(p, "xt"), tok, nbl);

	md_log_onehot(s, xt, B, L, log_xt);
	check_close(nm(p, "log_xt"), log_xt, n);
	md_predict_start(s, logits, B, L, recon);
	check_close(nm(p, "log_x0_recon"), recon, n);
	md_q_posterior(s, recon, log_xt, g.t, B, L, model);
	check_close(nm(p, "log_model_prob"), model, n);
	md_q_posterior(s, log_x0, log_xt, g.t, B, L, truth);
	check_close(nm(p, "log_true_prob"), truth, n);

	/* Per-row sums of the per-position terms, weighted as _train_loss does. */
	float kl[8] = { 0 }, nll[8] = { 0 }, kl_aux[8] = { 0 }, alw[8] = { 0 }, loss2[8] = { 0 };
	md_kl(s, truth, model, B, L, pos);
	check_close(nm(p, "kl_per_pos"), pos, nbl);
	for (int b = 0; b < B; b++) {
		kl[b] = 0;
		for (int l = 0; l < L; l++)
			kl[b] += pos[b * L + l] * cfg->mask_weight[xt[b * L + l] == K ? 0 : 1];
	}
	check_close(nm(p, "kl"), kl, (size_t)B);
	md_log_categorical(s, log_x0, model, B, L, pos);
	for (int b = 0; b < B; b++) {
		nll[b] = 0;
		for (int l = 0; l < L; l++)
			nll[b] -= pos[b * L + l];
	}
	check_close(nm(p, "decoder_nll"), nll, (size_t)B);
	/* The aux KL drops the mask class; its one-hot 1e-30 there adds < 1e-28. */
	md_kl(s, log_x0, recon, B, L, pos);
	check_close(nm(p, "kl_aux_per_pos"), pos, nbl);
	for (int b = 0; b < B; b++) {
		kl_aux[b] = 0;
		for (int l = 0; l < L; l++)
			kl_aux[b] += pos[b * L + l] * cfg->mask_weight[xt[b * L + l] == K ? 0 : 1];
	}
	check_close(nm(p, "kl_aux"), kl_aux, (size_t)B);

	struct md_loss_terms terms = { row[0], row[1], row[2] };
	float total = md_train_loss(s, cfg, g.x0, xt, g.t, logits, B, L, NULL, &terms);
	check_close(nm(p, "kl_loss"), row[0], (size_t)B);
	check_close(nm(p, "kl_aux_loss"), row[1], (size_t)B);
	check_close(nm(p, "vb_loss"), row[2], (size_t)B);
	check_close(nm(p, "total"), &total, 1);
	for (int b = 0; b < B; b++) {
		alw[b] = cfg->adaptive_aux ? (1.0f - (float)g.t[b] / T) + 1.0f : 1.0f;
		loss2[b] = alw[b] * cfg->aux_weight * row[1][b] / (1.0f / T);
	}
	check_close(nm(p, "addition_loss_weight"), alw, (size_t)B);
	check_close(nm(p, "loss2"), loss2, (size_t)B);

	/* The gradient path gives the same loss. */
	float *dlogits = xmalloc((size_t)B * K * L * sizeof(float));
	float total2 = md_train_loss(s, cfg, g.x0, xt, g.t, logits, B, L, dlogits, NULL);
	CHECK_MSG(total2 == total, "%s: loss with gradient %g, without %g", p, total2, total);
	free(dlogits);
done:
	free(logits);
	free(u);
	free(xt);
	free(log_x0);
	free(log_xt);
	free(recon);
	free(model);
	free(truth);
	free(pos);
	free(tok);
	setting_close(&g);
}

static void test_loss(void)
{
	if (!have_golden())
		SKIP("no golden data at %s (set KNND_SHARED)", golden);
	const struct md_loss_config shipped = { .aux_weight = 0.0005f, .adaptive_aux = 1, .mask_weight = { 1, 1 } };
	const struct md_loss_config mw = { .aux_weight = 0.25f, .adaptive_aux = 0, .mask_weight = { 2.0f, 0.5f } };
	check_loss("T10", 10, "loss", &shipped);
	check_loss("T10", 10, "loss_mw", &mw);
	check_loss("T100", 100, "loss", &shipped);
	check_loss("T100", 100, "loss_mw", &mw);
}

/* x_0 prediction at step t of a chain: guidance, truncation 0.86. */
static void chain_recon(const struct md_schedule *s, const float *cond, const float *uncond, float g, int B, int L,
                        float *recon, float *scratch)
{
	md_predict_start(s, cond, B, L, recon);
	if (fabsf(g - 1) >= 1e-3f) {
		md_predict_start(s, uncond, B, L, scratch);
		md_guidance(s, recon, scratch, B, L, g);
	}
	md_truncate_mass(s, recon, B, L, 0.86f);
}

/* The sampling chain: teacher-forced per step, then run free. */
static void check_chain(const char *prefix, int T, const char *chain, float g)
{
	char p[64];
	snprintf(p, sizeof p, "%s.%s", prefix, chain);
	struct md_schedule s;
	int K = 8, C = K + 1, L = 6, B = 2;
	if (md_schedule_init(&s, T, K) < 0)
		return;
	size_t nl = (size_t)B * K * L, nc = (size_t)B * C * L, nt = (size_t)B * L;
	float *cond = f32(nm(p, "cond_logits"), NULL), *uncond = f32(nm(p, "uncond_logits"), NULL);
	float *u = f32(nm(p, "uniform"), NULL), *log_in = f32(nm(p, "log_x_in"), NULL);
	int32_t *x_out = ids(nm(p, "x_out"), NULL);
	float *recon = xmalloc((size_t)T * nc * sizeof(float)), *model = xmalloc((size_t)T * nc * sizeof(float));
	float *scratch = xmalloc(nc * sizeof(float)), *log_xt = xmalloc(nc * sizeof(float));
	int32_t *tok = xmalloc((size_t)T * nt * sizeof *tok), tv[2];
	if (!cond || !uncond || !u || !log_in || !x_out)
		goto done;

	for (int t = 0; t < T; t++) {
		tv[0] = tv[1] = t;
		chain_recon(&s, cond + t * nl, uncond + t * nl, g, B, L, recon + t * nc, scratch);
		CHECK(md_p_step(&s, recon + t * nc, log_in + t * nc, tv, 1, u + t * nc, B, L, model + t * nc,
		                tok + t * nt) == 0);
	}
	check_close(nm(p, "log_x_recon"), recon, (size_t)T * nc);
	check_close(nm(p, "model_log_prob"), model, (size_t)T * nc);
	check_ids(nm(p, "x_out"), tok, (size_t)T * nt);

	/* Free run from all-mask: log(onehot(mask)) is 0 / -inf, as sample() starts. */
	int32_t xt[12];
	for (size_t i = 0; i < nt; i++)
		xt[i] = K;
	for (int t = T - 1; t >= 0; t--) {
		md_log_onehot(&s, xt, B, L, log_xt);
		if (t == T - 1)
			for (size_t i = 0; i < nc; i++)
				log_xt[i] = log_xt[i] == 0 ? 0 : -INFINITY;
		tv[0] = tv[1] = t;
		chain_recon(&s, cond + t * nl, uncond + t * nl, g, B, L, recon, scratch);
		CHECK(md_p_step(&s, recon, log_xt, tv, 1, u + t * nc, B, L, model, xt) == 0);
	}
	check_ids(nm(p, "final"), xt, nt);
done:
	free(cond);
	free(uncond);
	free(u);
	free(log_in);
	free(x_out);
	free(recon);
	free(model);
	free(scratch);
	free(log_xt);
	free(tok);
	md_schedule_free(&s);
}

static void test_chains(void)
{
	if (!have_golden())
		SKIP("no golden data at %s (set KNND_SHARED)", golden);
	check_chain("T10", 10, "chain_g1", 1.0f);
	check_chain("T10", 10, "chain_g3", 3.0f);
	check_chain("T100", 100, "chain_g1", 1.0f);
	check_chain("T100", 100, "chain_g3", 3.0f);
}

int main(void)
{
	RUN(test_schedules);
	RUN(test_single_steps);
	RUN(test_loss);
	RUN(test_chains);
	if (expected)
		st_close(expected);
	TEST_EXIT();
}
