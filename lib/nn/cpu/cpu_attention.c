/* Fused multi-head scaled-dot-product attention on the CPU.
 *
 * The score matrix is never stored: each task takes one (batch, head) and a
 * block of up to ATTN_QBLOCK queries, computes that block's scores against
 * all keys into a per-thread tile (ATTN_QBLOCK x Tk floats, which stays in
 * L2), turns them into probabilities in place and multiplies by V. Only the
 * log-sum-exp of each row is kept, and the backward pass recomputes the
 * probabilities from it.
 *
 * Heads are read in place: head h of row t is the D floats at column h*D of
 * a [B, T, H*D] matrix, so the products below take row strides instead of
 * copying heads out. The products are small (64 x 256 x 64 for the usual
 * sizes) and run inside the OpenMP region, so they use a register-blocked
 * kernel of our own (attn_gemm) instead of OpenBLAS, whose pthread pool
 * would compete with OpenMP's threads.
 *
 * Masks: `causal` lets query i see keys 0..i; key_valid[b*Tk + j] == 0 hides
 * key j from every query of batch b. A query that can see no key at all gets
 * an output row of zeros (not NaN) and lse = -inf, and contributes no
 * gradient.
 *
 * Determinism: every output and gradient element is written by one task in a
 * fixed order, so results do not depend on the thread count. */
#include <math.h>
#include <string.h>

#include "nn/cpu/cpu.h"
#include "nn/cpu/cpu_math.h"
#include "nn/cpu/cpu_scratch.h"

/* Queries per task: 64 rows of 256 keys is a 64 KiB score tile. */
#define ATTN_QBLOCK 64
/* The score tile's rows are padded to a multiple of the kernel's 16 columns. */
#define ATTN_COLS 16

/* Eight floats; GCC and Clang split it into two SSE registers in the
 * baseline build and use one AVX register in the AVX2 one. Unaligned loads
 * and stores go through memcpy (vector values never cross a call, which
 * would change the ABI between the two builds). */
typedef float v8sf __attribute__((vector_size(32)));
#define LOAD8(v, p) memcpy(&(v), (p), sizeof(v8sf))
#define STORE8(p, v) memcpy((p), &(v), sizeof(v8sf))

/* One register tile of attn_gemm: rows [0, mr) x columns [0, 8*nv) of C.
 * mr and nv are constants at every call site, so the accumulators live in
 * registers (12 of the 16 AVX2 registers for the 6 x 16 tile). */
CPU_BODY void gemm_tile(const int mr, const int nv, int K, float alpha, const float *a, long a_m,
                        long a_k, const float *b, long ldb, float *c, long ldc, int accumulate)
{
	v8sf acc[6][2];
	memset(acc, 0, sizeof acc);
	for (int k = 0; k < K; k++) {
		const float *brow = b + k * ldb;
		v8sf b0, b1;
		LOAD8(b0, brow);
		if (nv > 1)
			LOAD8(b1, brow + 8);
		else
			b1 = b0;
		const float *acol = a + k * a_k;
#pragma GCC unroll 6
		for (int r = 0; r < mr; r++) {
			float av = acol[r * a_m];
			acc[r][0] += av * b0;
			if (nv > 1)
				acc[r][1] += av * b1;
		}
	}
#pragma GCC unroll 6
	for (int r = 0; r < mr; r++) {
#pragma GCC unroll 2
		for (int v = 0; v < nv; v++) {
			float *cp = c + r * ldc + 8 * v;
			v8sf out = alpha * acc[r][v];
			if (accumulate) {
				v8sf old;
				LOAD8(old, cp);
				out += old;
			}
			STORE8(cp, out);
		}
	}
}

/* The row tails of one column block: mr < 6 rows. */
CPU_BODY void gemm_tile_rows(int mr, const int nv, int K, float alpha, const float *a, long a_m,
                             long a_k, const float *b, long ldb, float *c, long ldc, int accumulate)
{
	switch (mr) {
	case 5: gemm_tile(5, nv, K, alpha, a, a_m, a_k, b, ldb, c, ldc, accumulate); break;
	case 4: gemm_tile(4, nv, K, alpha, a, a_m, a_k, b, ldb, c, ldc, accumulate); break;
	case 3: gemm_tile(3, nv, K, alpha, a, a_m, a_k, b, ldb, c, ldc, accumulate); break;
	case 2: gemm_tile(2, nv, K, alpha, a, a_m, a_k, b, ldb, c, ldc, accumulate); break;
	case 1: gemm_tile(1, nv, K, alpha, a, a_m, a_k, b, ldb, c, ldc, accumulate); break;
	default: break;
	}
}

/* C[m, n] = (accumulate ? C[m, n] : 0) + alpha * sum_k A(m, k) B[k, n] for
 * m < M, n < N, where A(m, k) = a[m*a_m + k*a_k] (so A may be read
 * transposed), B and C are row-major with row strides ldb and ldc. */
CPU_BODY void attn_gemm_body(int M, int N, int K, float alpha, const float *a, long a_m, long a_k,
                             const float *b, long ldb, float *c, long ldc, int accumulate)
{
	int n0 = 0;
	for (; n0 + 8 <= N; n0 += 16) {
		int wide = n0 + 16 <= N;
		int m0 = 0;
		for (; m0 + 6 <= M; m0 += 6) {
			const float *am = a + m0 * a_m;
			float *cm = c + m0 * ldc + n0;
			if (wide)
				gemm_tile(6, 2, K, alpha, am, a_m, a_k, b + n0, ldb, cm, ldc, accumulate);
			else
				gemm_tile(6, 1, K, alpha, am, a_m, a_k, b + n0, ldb, cm, ldc, accumulate);
		}
		if (m0 < M) {
			const float *am = a + m0 * a_m;
			float *cm = c + m0 * ldc + n0;
			if (wide)
				gemm_tile_rows(M - m0, 2, K, alpha, am, a_m, a_k, b + n0, ldb, cm, ldc, accumulate);
			else
				gemm_tile_rows(M - m0, 1, K, alpha, am, a_m, a_k, b + n0, ldb, cm, ldc, accumulate);
		}
		if (!wide)
			n0 -= 8;
	}
	/* fewer than 8 columns left (only when D is not a multiple of 8) */
	for (int m = 0; m < M; m++) {
		for (int n = n0; n < N; n++) {
			float s = 0;
			for (int k = 0; k < K; k++)
				s += a[m * a_m + k * a_k] * b[k * ldb + n];
			float *cp = c + m * ldc + n;
			*cp = (accumulate ? *cp : 0.0f) + alpha * s;
		}
	}
}
CPU_DISPATCH(attn_gemm,
             (int M, int N, int K, float alpha, const float *a, long a_m, long a_k, const float *b,
              long ldb, float *c, long ldc, int accumulate),
             (M, N, K, alpha, a, a_m, a_k, b, ldb, c, ldc, accumulate))

/* Softmax of one score row in place over its first n entries, with additive
 * mask (0 or -inf per key). Writes the unnormalised exponentials and returns
 * their sum; *row_max gets the maximum (-inf when every key is masked, and
 * then the row is zeroed and 0 returned). */
CPU_BODY void softmax_row_body(float *restrict row, const float *restrict mask, int n, float *row_max,
                               float *row_sum)
{
	float m = -INFINITY;
#pragma omp simd reduction(max : m)
	for (int j = 0; j < n; j++) {
		row[j] += mask[j];
		m = row[j] > m ? row[j] : m;
	}
	float s = 0;
	if (m == -INFINITY) {
		memset(row, 0, n * sizeof *row);
	} else {
#pragma omp simd reduction(+ : s)
		for (int j = 0; j < n; j++) {
			row[j] = cpu_expf(row[j] - m);
			s += row[j];
		}
	}
	*row_max = m;
	*row_sum = s;
}
CPU_DISPATCH(softmax_row, (float *restrict row, const float *restrict mask, int n, float *row_max, float *row_sum),
             (row, mask, n, row_max, row_sum))

/* Probabilities of one score row recomputed from its log-sum-exp. */
CPU_BODY void probs_row_body(float *restrict row, const float *restrict mask, int n, float lse)
{
	if (lse == -INFINITY) {
		memset(row, 0, n * sizeof *row);
		return;
	}
#pragma omp simd
	for (int j = 0; j < n; j++)
		row[j] = cpu_expf(row[j] + mask[j] - lse);
}
CPU_DISPATCH(probs_row, (float *restrict row, const float *restrict mask, int n, float lse), (row, mask, n, lse))

/* dS = P * (dP - rowsum(dO * O)), in place over dP, for one row. */
CPU_BODY void dscores_row_body(float *restrict dp, const float *restrict p, int n, const float *restrict dout_row,
                               const float *restrict out_row, int D)
{
	float di = 0;
#pragma omp simd reduction(+ : di)
	for (int d = 0; d < D; d++)
		di += dout_row[d] * out_row[d];
#pragma omp simd
	for (int j = 0; j < n; j++)
		dp[j] = p[j] * (dp[j] - di);
}
CPU_DISPATCH(dscores_row,
             (float *restrict dp, const float *restrict p, int n, const float *restrict dout_row,
              const float *restrict out_row, int D),
             (dp, p, n, dout_row, out_row, D))

static int round_up(int x, int to)
{
	return (x + to - 1) / to * to;
}

/* Carved from the thread's scratch (cpu_scratch.h): keys and values of one
 * head transposed to [D, cols], score tiles [ATTN_QBLOCK, cols], the
 * additive key mask, and head rows copied out to contiguous [rows, D]
 * blocks. `cols` is Tk rounded up to the kernel's 16 columns; the transposed
 * and tile rows are `lds` apart, 16 floats more than `cols`, because a
 * power-of-two stride (256 keys = 1 KiB) maps every row to the same few L1
 * sets and the column-wise walks through them thrash. The copies give the
 * kernel's B operand a dense stride for the same reason (heads are 2 KiB
 * apart in the [B, T, H*D] layout). */
struct attn_scratch {
	int cols, lds;
	float *kt, *vt, *s, *dp, *mask;
	float *kp, *vp, *qp, *dop;
};

static void scratch_init(struct attn_scratch *w, const struct nn_attention *a, int backward)
{
	w->cols = round_up(a->Tk, ATTN_COLS);
	w->lds = w->cols + ATTN_COLS;
	size_t t = (size_t)a->D * w->lds, tile = (size_t)ATTN_QBLOCK * w->lds;
	size_t head = (size_t)a->Tk * a->D, block = (size_t)ATTN_QBLOCK * a->D;
	size_t total = t + tile + w->lds + head + (backward ? t + tile + head + 2 * block : 0);
	float *p = cpu_scratch(total * sizeof *p);
	w->kt = p, p += t;
	w->s = p, p += tile;
	w->mask = p, p += w->lds;
	w->vp = p, p += head;
	w->vt = w->dp = w->kp = w->qp = w->dop = NULL;
	if (backward) {
		w->vt = p, p += t;
		w->dp = p, p += tile;
		w->kp = p, p += head;
		w->qp = p, p += block;
		w->dop = p;
	}
}

/* dst[r, :] = src[r*ld, :D] for r < rows */
static void copy_rows(float *restrict dst, const float *restrict src, long ld, int rows, int D)
{
	for (int r = 0; r < rows; r++)
		memcpy(dst + (size_t)r * D, src + r * ld, D * sizeof *dst);
}

#if defined(__clang__) || __GNUC__ >= 12
#define HAVE_SHUFFLEVECTOR 1
/* out[c] = column c of the 8 x 8 block whose rows are in[0..7]: the usual
 * unpack / shuffle / lane-swap network, 24 shuffles for 64 elements. */
CPU_BODY void transpose8x8(v8sf out[8], const v8sf in[8])
{
	v8sf t[8], u[8];
#pragma GCC unroll 4
	for (int r = 0; r < 8; r += 2) {
		t[r] = __builtin_shufflevector(in[r], in[r + 1], 0, 8, 1, 9, 4, 12, 5, 13);
		t[r + 1] = __builtin_shufflevector(in[r], in[r + 1], 2, 10, 3, 11, 6, 14, 7, 15);
	}
#pragma GCC unroll 2
	for (int r = 0; r < 8; r += 4)
#pragma GCC unroll 2
		for (int h = 0; h < 2; h++) {
			u[r + 2 * h] = __builtin_shufflevector(t[r + h], t[r + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
			u[r + 2 * h + 1] = __builtin_shufflevector(t[r + h], t[r + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
		}
#pragma GCC unroll 4
	for (int c = 0; c < 4; c++) {
		out[c] = __builtin_shufflevector(u[c], u[c + 4], 0, 1, 2, 3, 8, 9, 10, 11);
		out[c + 4] = __builtin_shufflevector(u[c], u[c + 4], 4, 5, 6, 7, 12, 13, 14, 15);
	}
}
#endif

/* xt[d*ldt + j] = x[j*ld + d] for j < T, zero for T <= j < cols (so the
 * padded score columns are finite). Whole 8 x 8 blocks go through vector
 * registers; a scalar transpose spends its time on the strided stores. */
CPU_BODY void transpose_head_body(float *restrict xt, const float *restrict x, long ld, int T, int cols, int ldt,
                                  int D)
{
	int j0 = 0;
#ifdef HAVE_SHUFFLEVECTOR
	if (D % 8 == 0) {
		for (; j0 + 8 <= T; j0 += 8)
			for (int d0 = 0; d0 < D; d0 += 8) {
				v8sf in[8], out[8];
#pragma GCC unroll 8
				for (int r = 0; r < 8; r++)
					LOAD8(in[r], x + (j0 + r) * ld + d0);
				transpose8x8(out, in);
#pragma GCC unroll 8
				for (int c = 0; c < 8; c++)
					STORE8(xt + (size_t)(d0 + c) * ldt + j0, out[c]);
			}
	}
#endif
	for (int j = j0; j < T; j++)
		for (int d = 0; d < D; d++)
			xt[(size_t)d * ldt + j] = x[j * ld + d];
	for (int d = 0; d < D; d++)
		for (int j = T; j < cols; j++)
			xt[(size_t)d * ldt + j] = 0;
}
CPU_DISPATCH(transpose_head,
             (float *restrict xt, const float *restrict x, long ld, int T, int cols, int ldt, int D),
             (xt, x, ld, T, cols, ldt, D))

/* 0 for keys of batch b that may be attended, -inf for padding (and for the
 * padded columns past Tk). */
static void key_mask(float *mask, const struct nn_attention *a, int b, int cols)
{
	for (int j = 0; j < cols; j++) {
		int valid = j < a->Tk && (!a->key_valid || a->key_valid[(size_t)b * a->Tk + j]);
		mask[j] = valid ? 0.0f : -INFINITY;
	}
}

/* Keys that queries [i0, i1) can see at all, and that query i can see. */
static int keys_for_block(const struct nn_attention *a, int i1)
{
	return a->causal && i1 < a->Tk ? i1 : a->Tk;
}

static int keys_for_query(const struct nn_attention *a, int i)
{
	return a->causal && i + 1 < a->Tk ? i + 1 : a->Tk;
}

/* Scores of queries [i0, i1) of head (b, h) into w->s: S = scale * Q K^T over
 * the first kv keys (rounded up to whole kernel columns). */
static void block_scores(struct attn_scratch *w, const float *qh, long ld, int i0, int i1, int kv,
                         const struct nn_attention *a)
{
	int cols = round_up(kv, ATTN_COLS);
	attn_gemm(i1 - i0, cols, a->D, a->scale, qh + (long)i0 * ld, ld, 1, w->kt, w->lds, w->s, w->lds, 0);
}

void cpu_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                           const struct nn_attention *a)
{
	const int B = a->B, H = a->H, Tq = a->Tq, Tk = a->Tk, D = a->D;
	const long ld = (long)H * D;
	const int nblocks = (Tq + ATTN_QBLOCK - 1) / ATTN_QBLOCK;
	const long tasks = (long)B * H * nblocks;
#pragma omp parallel
	{
		struct attn_scratch w;
		scratch_init(&w, a, 0);
		int last_bh = -1;
#pragma omp for schedule(static)
		for (long task = 0; task < tasks; task++) {
			int bh = (int)(task / nblocks), blk = (int)(task % nblocks);
			int b = bh / H, h = bh % H;
			const float *qh = q + (size_t)b * Tq * ld + (size_t)h * D;
			const float *kh = k + (size_t)b * Tk * ld + (size_t)h * D;
			const float *vh = v + (size_t)b * Tk * ld + (size_t)h * D;
			float *oh = out + (size_t)b * Tq * ld + (size_t)h * D;
			float *lse_bh = lse + (size_t)bh * Tq;
			if (bh != last_bh) {
				transpose_head(w.kt, kh, ld, Tk, w.cols, w.lds, D);
				copy_rows(w.vp, vh, ld, Tk, D);
				key_mask(w.mask, a, b, w.cols);
				last_bh = bh;
			}
			int i0 = blk * ATTN_QBLOCK, i1 = i0 + ATTN_QBLOCK < Tq ? i0 + ATTN_QBLOCK : Tq;
			int kv = keys_for_block(a, i1);
			block_scores(&w, qh, ld, i0, i1, kv, a);
			float inv_sum[ATTN_QBLOCK];
			for (int i = i0; i < i1; i++) {
				float *row = w.s + (size_t)(i - i0) * w.lds;
				int n = keys_for_query(a, i);
				float m, s;
				softmax_row(row, w.mask, n, &m, &s);
				for (int j = n; j < kv; j++)
					row[j] = 0;
				lse_bh[i] = s > 0 ? m + logf(s) : -INFINITY;
				inv_sum[i - i0] = s > 0 ? 1.0f / s : 0.0f;
			}
			/* O = P V with P unnormalised, then each row divided by its sum */
			attn_gemm(i1 - i0, D, kv, 1.0f, w.s, w.lds, 1, w.vp, D, oh + (long)i0 * ld, ld, 0);
			for (int i = i0; i < i1; i++) {
				float *orow = oh + (long)i * ld, f = inv_sum[i - i0];
#pragma omp simd
				for (int d = 0; d < D; d++)
					orow[d] *= f;
			}
		}
	}
}

/* One (batch, head) of the backward pass: all its query blocks in order, so
 * that this task alone accumulates the head's dK and dV. */
static void attention_backward_head(struct attn_scratch *w, float *dq, float *dk, float *dv,
                                    const float *dout, const float *q, const float *k, const float *v,
                                    const float *out, const float *lse, int b, int h,
                                    const struct nn_attention *a)
{
	const int Tq = a->Tq, Tk = a->Tk, D = a->D, lds = w->lds;
	const long ld = (long)a->H * D;
	size_t qoff = (size_t)b * Tq * ld + (size_t)h * D, koff = (size_t)b * Tk * ld + (size_t)h * D;
	const float *qh = q + qoff, *kh = k + koff, *vh = v + koff, *oh = out + qoff, *doh = dout + qoff;
	const float *lse_bh = lse + ((size_t)b * a->H + h) * Tq;
	int need_ds = dq || dk;

	transpose_head(w->kt, kh, ld, Tk, w->cols, lds, D);
	if (need_ds)
		transpose_head(w->vt, vh, ld, Tk, w->cols, lds, D);
	if (dq)
		copy_rows(w->kp, kh, ld, Tk, D);
	key_mask(w->mask, a, b, w->cols);

	for (int i0 = 0; i0 < Tq; i0 += ATTN_QBLOCK) {
		int i1 = i0 + ATTN_QBLOCK < Tq ? i0 + ATTN_QBLOCK : Tq, rows = i1 - i0;
		int kv = keys_for_block(a, i1);
		int cols = round_up(kv, ATTN_COLS);
		block_scores(w, qh, ld, i0, i1, kv, a);
		copy_rows(w->dop, doh + (long)i0 * ld, ld, rows, D);
		if (dk)
			copy_rows(w->qp, qh + (long)i0 * ld, ld, rows, D);
		for (int i = i0; i < i1; i++) {
			float *row = w->s + (size_t)(i - i0) * lds;
			int n = keys_for_query(a, i);
			probs_row(row, w->mask, n, lse_bh[i]);
			for (int j = n; j < cols; j++)
				row[j] = 0;
		}
		/* dV += P^T dO */
		if (dv)
			attn_gemm(kv, D, rows, 1.0f, w->s, 1, lds, w->dop, D, dv + koff, ld, 1);
		if (!need_ds)
			continue;
		/* dP = dO V^T, then dS = P * (dP - rowsum(dO * O)) */
		attn_gemm(rows, cols, D, 1.0f, w->dop, D, 1, w->vt, lds, w->dp, lds, 0);
		for (int i = i0; i < i1; i++) {
			size_t r = (size_t)(i - i0) * lds;
			dscores_row(w->dp + r, w->s + r, kv, doh + (long)i * ld, oh + (long)i * ld, D);
		}
		/* dQ += scale dS K; dK += scale dS^T Q */
		if (dq)
			attn_gemm(rows, D, kv, a->scale, w->dp, lds, 1, w->kp, D, dq + qoff + (long)i0 * ld, ld, 1);
		if (dk)
			attn_gemm(kv, D, rows, a->scale, w->dp, 1, lds, w->qp, D, dk + koff, ld, 1);
	}
}

void cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const float *out, const float *lse,
                            const struct nn_attention *a)
{
	if (!dq && !dk && !dv)
		return;
	const int heads = a->B * a->H;
#pragma omp parallel
	{
		struct attn_scratch w;
		scratch_init(&w, a, 1);
#pragma omp for schedule(static)
		for (int bh = 0; bh < heads; bh++)
			attention_backward_head(&w, dq, dk, dv, dout, q, k, v, out, lse, bh / a->H, bh % a->H, a);
	}
}
