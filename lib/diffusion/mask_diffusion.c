/* Discrete mask-and-replace diffusion: see mask_diffusion.h.
 *
 * Every [B, C, L] tensor is processed in tiles of up to TILE positions of
 * one row: loops run over classes outside and the tile's positions inside,
 * so the inner loops walk contiguous memory. Tiles are independent, so
 * OpenMP splits them across threads and results do not depend on the
 * thread count (per-tile partial sums are reduced in a fixed order). */
#include "diffusion/mask_diffusion.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"

#define TILE 64
/* Below this many values per call, threads cost more than they save. */
#define PARALLEL_MIN 32768

/* alpha_schedule's endpoints (VQ-Diffusion's defaults). */
#define ATT_1 0.99999
#define ATT_T 0.000009
#define CTT_1 0.000009
#define CTT_T 0.99999

/* index_to_log_onehot's zero: log of float 1e-30. */
#define LOG_ZERO logf(1e-30f)

/* fmaxf without the NaN rules, which keep gcc from inlining it. */
static inline float max2(float a, float b)
{
	return a > b ? a : b;
}

/* log(e^a + e^b). log1p would add accuracy only below float's epsilon
 * relative to the result, and costs three times as much as logf. */
static inline float log_add_exp(float a, float b)
{
	float m = max2(a, b);
	if (m == -INFINITY)
		return m;
	return m + logf(1.0f + expf(-fabsf(a - b)));
}

static inline float clamp_log(float x)
{
	return x < MD_LOG_MIN ? MD_LOG_MIN : x > 0.0f ? 0.0f : x;
}

static int tiles_per_row(int L)
{
	return (L + TILE - 1) / TILE;
}

/* ---- schedule ---- */

/* Cumulative keep and mask probabilities after transition i, in double as
 * alpha_schedule computes them; i = -1 is x_0 (nothing applied). */
static void cumulative(int T, int i, double *att, double *ctt)
{
	if (i < 0) {
		*att = 1;
		*ctt = 0;
		return;
	}
	*att = (double)i / (T - 1) * (ATT_T - ATT_1) + ATT_1;
	*ctt = (double)i / (T - 1) * (CTT_T - CTT_1) + CTT_1;
}

/* The composed transition from step s to step t (s < t): keep a, replace
 * by each other token b, mask c. */
static void transition(int T, int K, int s, int t, double *a, double *b, double *c)
{
	double att_s, ctt_s, att_t, ctt_t;
	cumulative(T, s, &att_s, &ctt_s);
	cumulative(T, t, &att_t, &ctt_t);
	*a = att_t / att_s;
	*c = 1 - (1 - ctt_t) / (1 - ctt_s);
	*b = (1 - *a - *c) / K;
}

/* DiffusionTransformer's log_1_min_a, on the double log. */
static double log_1_min_exp(double log_a)
{
	return log(1 - exp(log_a) + 1e-40);
}

int md_schedule_init(struct md_schedule *s, int T, int K)
{
	memset(s, 0, sizeof *s);
	if (T < 2 || K < 1)
		return errorf("diffusion schedule: need at least 2 steps and 1 token (got T = %d, K = %d)", T, K);
	s->T = T;
	s->K = K;
	float *p = xcalloc((size_t)7 * T + 7 * (size_t)(T + 1), sizeof *p);
	float **step[] = { &s->at, &s->bt, &s->ct, &s->log_at, &s->log_bt, &s->log_ct, &s->log_1_min_ct };
	float **cum[] = { &s->att, &s->btt, &s->ctt, &s->log_cumprod_at, &s->log_cumprod_bt, &s->log_cumprod_ct,
	                  &s->log_1_min_cumprod_ct };
	for (size_t i = 0; i < 7; i++, p += T)
		*step[i] = p;
	for (size_t i = 0; i < 7; i++, p += T + 1)
		*cum[i] = p;
	for (int t = 0; t < T; t++) {
		double a, b, c;
		transition(T, K, t - 1, t, &a, &b, &c);
		s->at[t] = (float)a;
		s->bt[t] = (float)b;
		s->ct[t] = (float)c;
		s->log_at[t] = (float)log(a);
		s->log_bt[t] = (float)log(b);
		s->log_ct[t] = (float)log(c);
		s->log_1_min_ct[t] = (float)log_1_min_exp(log(c));
	}
	/* Entry T is the identity that q_pred reads for t = -1. */
	for (int t = 0; t <= T; t++) {
		double att, ctt;
		cumulative(T, t == T ? -1 : t, &att, &ctt);
		double btt = (1 - att - ctt) / K;
		s->att[t] = (float)att;
		s->btt[t] = (float)btt;
		s->ctt[t] = (float)ctt;
		s->log_cumprod_at[t] = (float)log(att);
		s->log_cumprod_bt[t] = (float)log(btt);
		s->log_cumprod_ct[t] = (float)log(ctt);
		s->log_1_min_cumprod_ct[t] = (float)log_1_min_exp(log(ctt));
	}
	return 0;
}

void md_schedule_free(struct md_schedule *s)
{
	free(s->at);
	memset(s, 0, sizeof *s);
}

/* ---- forward process ---- */

void md_log_onehot(const struct md_schedule *s, const int32_t *tokens, int B, int L, float *log_x)
{
	int C = s->K + 1;
	float zero = LOG_ZERO;
	for (int b = 0; b < B; b++)
		for (int c = 0; c < C; c++) {
			const int32_t *tok = tokens + (size_t)b * L;
			float *x = log_x + ((size_t)b * C + c) * L;
			for (int l = 0; l < L; l++)
				x[l] = tok[l] == c ? 0.0f : zero;
		}
}

/* log of a transition applied to the distribution log_x: token classes get
 * log(a p_k + b), the mask class log((1 - c) p_mask + c). Per-row logs. */
static void apply_transition(int K, const float *log_x, const float *la, const float *lb, const float *l1mc,
                             const float *lc, int B, int L, float *out)
{
	int C = K + 1;
	#pragma omp parallel for schedule(static) if ((size_t)B * C * L >= PARALLEL_MIN)
	for (int b = 0; b < B; b++)
		for (int c = 0; c < C; c++) {
			const float *x = log_x + ((size_t)b * C + c) * L;
			float *o = out + ((size_t)b * C + c) * L;
			float a = c < K ? la[b] : l1mc[b], add = c < K ? lb[b] : lc[b];
			for (int l = 0; l < L; l++)
				o[l] = log_add_exp(x[l] + a, add);
		}
}

/* The row's entries of four schedule arrays at index[b]. */
static void gather4(const float *const src[4], const int32_t *index, int B, float *dst[4])
{
	for (int i = 0; i < 4; i++)
		for (int b = 0; b < B; b++)
			dst[i][b] = src[i][index[b]];
}

static void transition_rows(const float *const arrays[4], const int32_t *index, int K, const float *log_x, int B,
                            int L, float *out)
{
	float *v = xmalloc((size_t)4 * B * sizeof *v);
	float *rows[4] = { v, v + B, v + 2 * B, v + 3 * B };
	gather4(arrays, index, B, rows);
	apply_transition(K, log_x, rows[0], rows[1], rows[2], rows[3], B, L, out);
	free(v);
}

void md_q_pred(const struct md_schedule *s, const float *log_x0, const int32_t *t, int B, int L, float *out)
{
	int32_t *index = xmalloc((size_t)B * sizeof *index);
	for (int b = 0; b < B; b++)
		index[b] = (t[b] + s->T + 1) % (s->T + 1);
	const float *const arrays[4] = { s->log_cumprod_at, s->log_cumprod_bt, s->log_1_min_cumprod_ct,
	                                 s->log_cumprod_ct };
	transition_rows(arrays, index, s->K, log_x0, B, L, out);
	free(index);
}

void md_q_pred_one_timestep(const struct md_schedule *s, const float *log_x, const int32_t *t, int B, int L,
                            float *out)
{
	const float *const arrays[4] = { s->log_at, s->log_bt, s->log_1_min_ct, s->log_ct };
	transition_rows(arrays, t, s->K, log_x, B, L, out);
}

/* ---- posterior ---- */

/* What the posterior of one row needs, for x_t one-hot: x_t is a token
 * (hit: the class equals it, miss: another class) or the mask. */
struct posterior_row {
	float lq_hit, lq_miss, lq_mask;    /* log q(x_t | x_0 = k), k < K */
	float one_hit, one_miss, one_mask; /* log q(x_t | x_s = j), j < K */
	float la_s, lb_s, l1mc_s, lc_s;    /* cumulative transition to step s */
};

/* For step t jumping back to s = t - skip. 0 or -1 (errorf). */
static int posterior_row_init(const struct md_schedule *s, int t, int skip, struct posterior_row *r)
{
	if (t < 0 || t >= s->T || skip < 1 || skip > t + 1)
		return errorf("diffusion posterior: step %d with skip %d is outside the %d-step schedule", t, skip,
		              s->T);
	float la, lb, lc;
	if (skip == 1) {
		la = s->log_at[t];
		lb = s->log_bt[t];
		lc = s->log_ct[t];
	} else {
		double a, b, c;
		transition(s->T, s->K, t - skip, t, &a, &b, &c);
		la = (float)log(a);
		lb = (float)log(b);
		lc = (float)log(c);
	}
	float zero = LOG_ZERO;
	r->lq_hit = log_add_exp(0.0f + s->log_cumprod_at[t], s->log_cumprod_bt[t]);
	r->lq_miss = log_add_exp(zero + s->log_cumprod_at[t], s->log_cumprod_bt[t]);
	r->lq_mask = s->log_cumprod_ct[t];
	r->one_hit = log_add_exp(0.0f + la, lb);
	r->one_miss = log_add_exp(zero + la, lb);
	r->one_mask = lc;
	int si = t - skip < 0 ? s->T : t - skip;
	r->la_s = s->log_cumprod_at[si];
	r->lb_s = s->log_cumprod_bt[si];
	r->l1mc_s = s->log_1_min_cumprod_ct[si];
	r->lc_s = s->log_cumprod_ct[si];
	return 0;
}

static inline float posterior_lq(const struct posterior_row *r, int K, int c, int32_t xt)
{
	return xt == K ? r->lq_mask : xt == c ? r->lq_hit : r->lq_miss;
}

/* log q(x_t | x_s = j); j = K is the mask class, which only reaches x_t
 * when x_t is the mask. */
static inline float posterior_one(const struct posterior_row *r, int K, int c, int32_t xt)
{
	if (c == K)
		return xt == K ? 0.0f : LOG_ZERO;
	return xt == K ? r->one_mask : xt == c ? r->one_hit : r->one_miss;
}

/* The unclamped log posterior of n positions: out [C, ldo] from x_0
 * log-probabilities lx0 [C, ld0] and x_t tokens, following q_posterior:
 *   q = log x_0 - log q(x_t | x_0) (mask class: log 0), normalised by
 *   lse = logsumexp_c q; out = q_pred(q - lse, s) + log q(x_t | x_s) + lse.
 * lse [n] is kept for the backward pass. */
static void posterior_tile(const struct posterior_row *r, int K, const float *lx0, size_t ld0, const int32_t *xt,
                           float *out, size_t ldo, int n, float *lse)
{
	float m[TILE], sum[TILE], zero = LOG_ZERO;
	for (int l = 0; l < n; l++)
		m[l] = zero;
	for (int c = 0; c < K; c++) {
		const float *x = lx0 + c * ld0;
		float *q = out + c * ldo;
		for (int l = 0; l < n; l++) {
			q[l] = x[l] - posterior_lq(r, K, c, xt[l]);
			m[l] = max2(m[l], q[l]);
		}
	}
	for (int l = 0; l < n; l++)
		sum[l] = expf(zero - m[l]);
	for (int c = 0; c < K; c++) {
		const float *q = out + c * ldo;
		for (int l = 0; l < n; l++)
			sum[l] += expf(q[l] - m[l]);
	}
	for (int l = 0; l < n; l++)
		lse[l] = m[l] + logf(sum[l]);
	for (int c = 0; c < K; c++) {
		float *q = out + c * ldo;
		for (int l = 0; l < n; l++)
			q[l] = log_add_exp(q[l] - lse[l] + r->la_s, r->lb_s) + posterior_one(r, K, c, xt[l]) + lse[l];
	}
	float *q = out + K * ldo;
	for (int l = 0; l < n; l++)
		q[l] = log_add_exp(zero - lse[l] + r->l1mc_s, r->lc_s) + posterior_one(r, K, K, xt[l]) + lse[l];
}

/* gx0 [K, ldg] += the gradient through posterior_tile, given its output R
 * (unclamped) and lse, and gR, the gradient on R [C, ld]. With
 * U_j = R_j - log q(x_t | x_s = j) - lse = log(a_s e^{qn_j} + b_s) and
 * qn = q - lse (for the mask class j = K: (1 - c_s) e^{qn_K} + c_s):
 *   dR_j / dq_i = [i == j] e^{a_s + qn_i - U_i} + e^{qn_i} e^{b_s - U_j},
 * with c_s in place of b_s for j = K. Every exponent is <= 0. */
static void posterior_backward_tile(const struct posterior_row *r, int K, const float *lx0, const int32_t *xt,
                                    const float *R, const float *lse, const float *gR, size_t ld, int n,
                                    float *gx0, size_t ldg)
{
	float sigma[TILE];
	const float *RK = R + K * ld, *gK = gR + K * ld;
	for (int l = 0; l < n; l++)
		sigma[l] = gK[l] * expf(r->lc_s - (RK[l] - posterior_one(r, K, K, xt[l]) - lse[l]));
	for (int c = 0; c < K; c++) {
		const float *Rc = R + c * ld, *g = gR + c * ld;
		for (int l = 0; l < n; l++)
			sigma[l] += g[l] * expf(r->lb_s - (Rc[l] - posterior_one(r, K, c, xt[l]) - lse[l]));
	}
	for (int c = 0; c < K; c++) {
		const float *Rc = R + c * ld, *g = gR + c * ld, *x = lx0 + c * ld;
		float *gx = gx0 + c * ldg;
		for (int l = 0; l < n; l++) {
			float qn = x[l] - posterior_lq(r, K, c, xt[l]) - lse[l];
			float U = Rc[l] - posterior_one(r, K, c, xt[l]) - lse[l];
			gx[l] += g[l] * expf(r->la_s + qn - U) + expf(qn) * sigma[l];
		}
	}
}

/* Tokens of one-hot log-probabilities: the first largest class. */
static void argmax_tile(const float *log_x, size_t ld, int C, int n, int32_t *idx)
{
	float best[TILE];
	for (int l = 0; l < n; l++) {
		best[l] = log_x[l];
		idx[l] = 0;
	}
	for (int c = 1; c < C; c++) {
		const float *x = log_x + c * ld;
		for (int l = 0; l < n; l++)
			if (x[l] > best[l]) {
				best[l] = x[l];
				idx[l] = c;
			}
	}
}

int md_q_posterior_skip(const struct md_schedule *s, const float *log_x0, const float *log_xt, const int32_t *t,
                        int skip, int B, int L, float *out)
{
	struct posterior_row probe;
	for (int b = 0; b < B; b++)
		if (posterior_row_init(s, t[b], skip, &probe) < 0)
			return -1;
	int K = s->K, C = K + 1, tiles = tiles_per_row(L);
	#pragma omp parallel for schedule(static) if ((size_t)B * C * L >= PARALLEL_MIN)
	for (int i = 0; i < B * tiles; i++) {
		int b = i / tiles, l0 = i % tiles * TILE, n = L - l0 < TILE ? L - l0 : TILE;
		size_t base = (size_t)b * C * L + l0;
		struct posterior_row r;
		posterior_row_init(s, t[b], skip, &r);
		int32_t xt[TILE];
		float lse[TILE];
		argmax_tile(log_xt + base, L, C, n, xt);
		posterior_tile(&r, K, log_x0 + base, L, xt, out + base, L, n, lse);
		for (int c = 0; c < C; c++)
			for (int l = 0; l < n; l++)
				out[base + (size_t)c * L + l] = clamp_log(out[base + (size_t)c * L + l]);
	}
	return 0;
}

void md_q_posterior(const struct md_schedule *s, const float *log_x0, const float *log_xt, const int32_t *t,
                    int B, int L, float *out)
{
	md_q_posterior_skip(s, log_x0, log_xt, t, 1, B, L, out);
}

/* ---- x_0 prediction ---- */

/* log_softmax over K logits [K, ldz] in double, rounded, clamped, the -70
 * mask row appended: out [C, ldo]. */
static void predict_start_tile(int K, const float *z, size_t ldz, int n, float *out, size_t ldo)
{
	float m[TILE];
	double sum[TILE];
	for (int l = 0; l < n; l++) {
		m[l] = z[l];
		sum[l] = 0;
	}
	for (int k = 1; k < K; k++)
		for (int l = 0; l < n; l++)
			m[l] = max2(m[l], z[k * ldz + l]);
	for (int k = 0; k < K; k++)
		for (int l = 0; l < n; l++)
			sum[l] += exp((double)z[k * ldz + l] - m[l]);
	for (int l = 0; l < n; l++)
		sum[l] = log(sum[l]);
	for (int k = 0; k < K; k++)
		for (int l = 0; l < n; l++)
			out[k * ldo + l] = clamp_log((float)((double)z[k * ldz + l] - m[l] - sum[l]));
	for (int l = 0; l < n; l++)
		out[K * ldo + l] = MD_LOG_MIN;
}

void md_predict_start(const struct md_schedule *s, const float *logits, int B, int L, float *log_x0)
{
	int K = s->K, C = K + 1, tiles = tiles_per_row(L);
	#pragma omp parallel for schedule(static) if ((size_t)B * C * L >= PARALLEL_MIN)
	for (int i = 0; i < B * tiles; i++) {
		int b = i / tiles, l0 = i % tiles * TILE, n = L - l0 < TILE ? L - l0 : TILE;
		predict_start_tile(K, logits + (size_t)b * K * L + l0, L, n, log_x0 + (size_t)b * C * L + l0, L);
	}
}

/* ---- truncation ---- */

struct ranked {
	float v;
	int c;
};

static int by_value_desc(const void *pa, const void *pb)
{
	const struct ranked *a = pa, *b = pb;
	if (a->v != b->v)
		return a->v < b->v ? 1 : -1;
	return a->c - b->c;
}

/* Sets all but the kept top classes of every position to -70: the top n
 * when n > 0, else those whose preceding probability mass is < r (the
 * mass summed in double and rounded, as torch's cumsum does).
 *
 * Only candidates are sorted: with total mass S over C classes, a class of
 * probability p has at least S - C p ranked above it, so p < (S - r) / C
 * is never kept (the bound is halved against rounding). */
static void truncate(const struct md_schedule *s, float *log_x0, int B, int L, float r, int n)
{
	int C = s->K + 1;
	float rf = r;
	#pragma omp parallel if ((size_t)B * C * L >= PARALLEL_MIN)
	{
		struct ranked *rank = xmalloc((size_t)C * sizeof *rank);
		#pragma omp for schedule(static)
		for (int p = 0; p < B * L; p++) {
			float *x = log_x0 + (size_t)(p / L) * C * L + p % L;
			float floor = -INFINITY;
			if (n <= 0) {
				double total = 0;
				for (int c = 0; c < C; c++)
					total += expf(x[(size_t)c * L]);
				if (total > rf)
					floor = logf((float)(0.5 * (total - rf) / C));
			}
			int m = 0;
			for (int c = 0; c < C; c++) {
				float v = x[(size_t)c * L];
				if (v >= floor)
					rank[m++] = (struct ranked){ v, c };
				else
					x[(size_t)c * L] = MD_LOG_MIN;
			}
			qsort(rank, (size_t)m, sizeof *rank, by_value_desc);
			int keep = n < m ? n : m;
			if (n <= 0) {
				double mass = 0;
				for (keep = 1; keep < m; keep++) {
					mass += expf(rank[keep - 1].v);
					if (!((float)mass < rf))
						break;
				}
			}
			for (int i = keep; i < m; i++)
				x[(size_t)rank[i].c * L] = MD_LOG_MIN;
		}
		free(rank);
	}
}

void md_truncate_mass(const struct md_schedule *s, float *log_x0, int B, int L, float r)
{
	truncate(s, log_x0, B, L, r, 0);
}

void md_truncate_topn(const struct md_schedule *s, float *log_x0, int B, int L, int n)
{
	if (n >= 1)
		truncate(s, log_x0, B, L, 0, n);
}

/* ---- guidance and sampling ---- */

void md_guidance(const struct md_schedule *s, float *cond, const float *uncond, int B, int L, float g)
{
	int K = s->K, C = K + 1, tiles = tiles_per_row(L);
	#pragma omp parallel for schedule(static) if ((size_t)B * C * L >= PARALLEL_MIN)
	for (int i = 0; i < B * tiles; i++) {
		int b = i / tiles, l0 = i % tiles * TILE, n = L - l0 < TILE ? L - l0 : TILE;
		float *x = cond + (size_t)b * C * L + l0;
		const float *u = uncond + (size_t)b * C * L + l0;
		float m[TILE], sum[TILE];
		for (int l = 0; l < n; l++) {
			m[l] = -INFINITY;
			sum[l] = 0;
		}
		for (int k = 0; k < K; k++)
			for (int l = 0; l < n; l++) {
				size_t j = (size_t)k * L + l;
				x[j] = u[j] + g * (x[j] - u[j]);
				m[l] = max2(m[l], x[j]);
			}
		for (int k = 0; k < K; k++)
			for (int l = 0; l < n; l++)
				sum[l] += expf(x[(size_t)k * L + l] - m[l]);
		for (int l = 0; l < n; l++)
			sum[l] = m[l] + logf(sum[l]);
		for (int k = 0; k < K; k++)
			for (int l = 0; l < n; l++)
				x[(size_t)k * L + l] = clamp_log(x[(size_t)k * L + l] - sum[l]);
		for (int l = 0; l < n; l++)
			x[(size_t)K * L + l] = MD_LOG_MIN;
	}
}

void md_sample(const struct md_schedule *s, const float *log_p, const float *uniform, int B, int L,
               int32_t *tokens)
{
	int C = s->K + 1, tiles = tiles_per_row(L);
	#pragma omp parallel for schedule(static) if ((size_t)B * C * L >= PARALLEL_MIN)
	for (int i = 0; i < B * tiles; i++) {
		int b = i / tiles, l0 = i % tiles * TILE, n = L - l0 < TILE ? L - l0 : TILE;
		size_t base = (size_t)b * C * L + l0;
		float best[TILE];
		int32_t *tok = tokens + (size_t)b * L + l0;
		for (int c = 0; c < C; c++) {
			const float *p = log_p + base + (size_t)c * L, *u = uniform + base + (size_t)c * L;
			for (int l = 0; l < n; l++) {
				float v = -logf(-logf(u[l] + 1e-30f) + 1e-30f) + p[l];
				if (c == 0 || v > best[l]) {
					best[l] = v;
					tok[l] = c;
				}
			}
		}
	}
}

int md_p_step(const struct md_schedule *s, const float *log_x0, const float *log_xt, const int32_t *t, int skip,
              const float *uniform, int B, int L, float *log_p, int32_t *tokens)
{
	if (md_q_posterior_skip(s, log_x0, log_xt, t, skip, B, L, log_p) < 0)
		return -1;
	md_sample(s, log_p, uniform, B, L, tokens);
	return 0;
}

int md_sample_steps(int T, int n, int32_t *steps)
{
	if (n < 1 || n > T)
		return errorf("sampling steps: %d is not between 1 and the schedule's %d steps", n, T);
	for (int i = 0; i <= n; i++)
		steps[i] = (int32_t)(((int64_t)(n - i) * T + n - 1) / n) - 1;
	return 0;
}

/* ---- divergences ---- */

/* Per position sum_c exp(log_w) * f(log_w, log_q): f = log_w - log_q (KL)
 * or log_q (log_categorical). */
static void weighted_sum(int C, const float *log_w, const float *log_q, int B, int L, int kl, float *out)
{
	#pragma omp parallel for schedule(static) if ((size_t)B * C * L >= PARALLEL_MIN)
	for (int b = 0; b < B; b++) {
		float *o = out + (size_t)b * L;
		for (int l = 0; l < L; l++)
			o[l] = 0;
		for (int c = 0; c < C; c++) {
			const float *w = log_w + ((size_t)b * C + c) * L, *q = log_q + ((size_t)b * C + c) * L;
			for (int l = 0; l < L; l++)
				o[l] += expf(w[l]) * (kl ? w[l] - q[l] : q[l]);
		}
	}
}

void md_kl(const struct md_schedule *s, const float *log_p, const float *log_q, int B, int L, float *out)
{
	weighted_sum(s->K + 1, log_p, log_q, B, L, 1, out);
}

void md_log_categorical(const struct md_schedule *s, const float *log_x, const float *log_q, int B, int L,
                        float *out)
{
	weighted_sum(s->K + 1, log_x, log_q, B, L, 0, out);
}

/* ---- training loss ---- */

/* One tile's share of the per-row sums. */
struct tile_sums {
	double kl, decoder_nll, kl_aux;
};

/* Scratch of one thread: [C, TILE] planes. */
struct loss_scratch {
	float *recon, *model, *truth, *onehot, *grad;
};

/* The loss terms of one tile, and (when dlogits) d total / d logits.
 * coef scales per-position terms into the total: 1 / (pt B L). With
 * lm = log p_theta(x_{t-1} | x_t), lt = log q(x_{t-1} | x_t, x_0), lr the
 * x_0 prediction, mw the mask weight and aux = the aux loss weight times
 * the adaptive factor, the total's gradients are
 *   t > 0: d/d lm_c = -coef mw e^{lt_c}         (KL(q || p_theta))
 *          d/d lr_c = -coef aux mw e^{lx0_c}    (aux KL(x_0 || lr))
 *   t = 0: d/d lm_c = -coef (1 + aux) e^{lx0_c} (the decoder NLL is both
 *          kl_loss and kl_aux_loss there),
 * and d lm / d lr goes back through the posterior (posterior_backward_tile). */
static void loss_tile(const struct md_schedule *s, const struct md_loss_config *cfg, const int32_t *x0,
                      const int32_t *xt, int t, const float *logits, int L, int n, double coef,
                      struct loss_scratch *w, float *dlogits, struct tile_sums *sums)
{
	int K = s->K, C = K + 1;
	float zero = LOG_ZERO, e_zero = expf(zero);
	struct posterior_row r;
	posterior_row_init(s, t, 1, &r);
	float lse_model[TILE], lse_true[TILE];
	predict_start_tile(K, logits, L, n, w->recon, TILE);
	for (int c = 0; c < C; c++)
		for (int l = 0; l < n; l++)
			w->onehot[c * TILE + l] = x0[l] == c ? 0.0f : zero;
	posterior_tile(&r, K, w->recon, TILE, xt, w->model, TILE, n, lse_model);
	posterior_tile(&r, K, w->onehot, TILE, xt, w->truth, TILE, n, lse_true);

	float alw = cfg->adaptive_aux ? (1.0f - (float)t / (float)s->T) + 1.0f : 1.0f;
	double aux = (double)alw * cfg->aux_weight;
	double kl[TILE], nll[TILE], kl_aux[TILE];
	float mw[TILE];
	for (int l = 0; l < n; l++) {
		kl[l] = nll[l] = kl_aux[l] = 0;
		mw[l] = xt[l] == K ? cfg->mask_weight[0] : cfg->mask_weight[1];
	}
	for (int c = 0; c < C; c++)
		for (int l = 0; l < n; l++) {
			int j = c * TILE + l;
			float lm = clamp_log(w->model[j]), lt = clamp_log(w->truth[j]), p_true = expf(lt);
			float px0 = x0[l] == c ? 1.0f : e_zero;
			kl[l] += p_true * (lt - lm);
			nll[l] -= px0 * lm;
			kl_aux[l] += c < K ? px0 * (w->onehot[j] - w->recon[j]) : 0.0f;
			w->truth[j] = p_true; /* kept for the gradient */
		}
	*sums = (struct tile_sums){ 0 };
	for (int l = 0; l < n; l++) {
		sums->kl += kl[l] * mw[l];
		sums->decoder_nll += nll[l];
		sums->kl_aux += kl_aux[l] * mw[l];
	}
	if (!dlogits)
		return;

	/* d total / d log_model (through its clamp) and directly / d recon;
	 * the gradient on the model posterior replaces truth. */
	for (int c = 0; c < C; c++)
		for (int l = 0; l < n; l++) {
			int j = c * TILE + l;
			float px0 = x0[l] == c ? 1.0f : e_zero, R = w->model[j];
			float g_model = t == 0 ? (float)(-coef * (1 + aux) * px0) : (float)(-coef * mw[l] * w->truth[j]);
			w->grad[j] = t == 0 || c == K ? 0.0f : (float)(-coef * aux * mw[l] * px0);
			w->truth[j] = R >= MD_LOG_MIN && R <= 0 ? g_model : 0.0f;
		}
	posterior_backward_tile(&r, K, w->recon, xt, w->model, lse_model, w->truth, TILE, n, w->grad, TILE);

	/* Through the clamp and log_softmax: dz = g - softmax * sum(g). */
	float total[TILE];
	for (int l = 0; l < n; l++)
		total[l] = 0;
	for (int k = 0; k < K; k++)
		for (int l = 0; l < n; l++) {
			int j = k * TILE + l;
			if (!(w->recon[j] > MD_LOG_MIN))
				w->grad[j] = 0;
			total[l] += w->grad[j];
		}
	for (int k = 0; k < K; k++)
		for (int l = 0; l < n; l++) {
			int j = k * TILE + l;
			dlogits[(size_t)k * L + l] = w->grad[j] - expf(w->recon[j]) * total[l];
		}
}

float md_train_loss(const struct md_schedule *s, const struct md_loss_config *c, const int32_t *x0,
                    const int32_t *xt, const int32_t *t, const float *logits, int B, int L, float *dlogits,
                    struct md_loss_terms *terms)
{
	int K = s->K, C = K + 1, tiles = tiles_per_row(L);
	for (int b = 0; b < B; b++)
		if (t[b] < 0 || t[b] >= s->T) {
			errorf("diffusion loss: step %d is outside the %d-step schedule", t[b], s->T);
			return NAN;
		}
	float pt = 1.0f / (float)s->T;
	double coef = 1.0 / ((double)pt * B * L);
	struct tile_sums *sums = xmalloc((size_t)B * tiles * sizeof *sums);
	#pragma omp parallel if ((size_t)B * C * L >= PARALLEL_MIN)
	{
		float *p = xmalloc((size_t)5 * C * TILE * sizeof *p);
		struct loss_scratch w = { p, p + C * TILE, p + 2 * C * TILE, p + 3 * C * TILE, p + 4 * C * TILE };
		#pragma omp for schedule(static)
		for (int i = 0; i < B * tiles; i++) {
			int b = i / tiles, l0 = i % tiles * TILE, n = L - l0 < TILE ? L - l0 : TILE;
			size_t row = (size_t)b * L + l0;
			loss_tile(s, c, x0 + row, xt + row, t[b], logits + (size_t)b * K * L + l0, L, n, coef, &w,
			          dlogits ? dlogits + (size_t)b * K * L + l0 : NULL, &sums[i]);
		}
		free(p);
	}
	double total = 0;
	for (int b = 0; b < B; b++) {
		struct tile_sums row = { 0 };
		for (int i = 0; i < tiles; i++) {
			row.kl += sums[b * tiles + i].kl;
			row.decoder_nll += sums[b * tiles + i].decoder_nll;
			row.kl_aux += sums[b * tiles + i].kl_aux;
		}
		float kl_loss = (float)(t[b] == 0 ? row.decoder_nll : row.kl);
		float kl_aux_loss = (float)(t[b] == 0 ? row.decoder_nll : row.kl_aux);
		float alw = c->adaptive_aux ? (1.0f - (float)t[b] / (float)s->T) + 1.0f : 1.0f;
		float loss2 = alw * c->aux_weight * kl_aux_loss / pt;
		float vb = kl_loss / pt + loss2;
		if (terms) {
			if (terms->kl_loss)
				terms->kl_loss[b] = kl_loss;
			if (terms->kl_aux_loss)
				terms->kl_aux_loss[b] = kl_aux_loss;
			if (terms->vb_loss)
				terms->vb_loss[b] = vb;
		}
		total += vb;
	}
	free(sums);
	return (float)(total / ((double)B * L));
}
