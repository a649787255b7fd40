/* Per-op timing for --breakdown: nn points at a copy of the op table whose
 * timed entries sync, run the real op, sync again and add up their time. */
#include "op_timing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "core/tool.h"
#include "nn/ops.h"

/* The ops that can be timed, in the order of op_names. */
enum timed_op {
	T_LINEAR_F, T_LINEAR_B, T_CONV_F, T_CONV_B, T_LAYERNORM_F, T_LAYERNORM_B, T_GROUPNORM_F, T_GROUPNORM_B,
	T_MODULATE_F, T_MODULATE_B, T_ACT_F, T_ACT_B, T_ATTENTION_F, T_ATTENTION_B, T_EMBEDDING_F, T_EMBEDDING_B,
	T_GEMM, T_SOFTMAX_F, T_UPSAMPLE_F, T_ADD, T_ACCUMULATE, T_SCALE, T_ADAMW, T_EMA, T_SUM_SQUARES, T_ZERO,
	T_UPLOAD, T_DOWNLOAD, T_COUNT
};
static const char *const op_names[T_COUNT] = {
	"linear_forward", "linear_backward", "conv2d_forward", "conv2d_backward", "layernorm_forward",
	"layernorm_backward", "groupnorm_forward", "groupnorm_backward", "modulate_forward", "modulate_backward",
	"act_forward", "act_backward", "attention_forward", "attention_backward", "embedding_forward",
	"embedding_backward", "gemm", "softmax_forward", "upsample_forward", "add", "accumulate", "scale",
	"adamw_update", "ema_update", "sum_squares", "zero", "upload", "download",
};

struct op_count {
	double seconds, flops;
	long calls;
};

/* Forward convolutions, one row per shape (the batch aside). */
struct conv_row {
	struct nn_conv2d g;
	struct op_count count;
};
enum { MAX_CONV_ROWS = 64 };

static const struct nn_ops *real;
static struct nn_ops timed;
static const struct bench_op_row *timed_rows;
static struct op_count counts[T_COUNT];
static struct conv_row conv_rows[MAX_CONV_ROWS];
static int n_conv_rows;

/* Runs `call` between two syncs (the backend may run ahead of the host) and
 * adds its time to op `id`'s count. */
#define TIME_OP(id, op_flops, call) do { \
		real->sync(); \
		double t0_ = bench_now(); \
		call; \
		real->sync(); \
		counts[id].seconds += bench_now() - t0_; \
		counts[id].flops += (op_flops); \
		counts[id].calls++; \
	} while (0)

static double conv_flops(const struct nn_conv2d *g)
{
	return 2.0 * g->B * g->OC * nn_conv2d_out_h(g) * nn_conv2d_out_w(g) * g->IC * g->KH * g->KW;
}

static double attention_flops(const struct nn_attention *a)
{
	return 4.0 * a->B * a->H * a->Tq * a->Tk * a->D;
}

static struct conv_row *conv_row_of(const struct nn_conv2d *g)
{
	for (int i = 0; i < n_conv_rows; i++) {
		struct nn_conv2d k = conv_rows[i].g;
		k.B = g->B;
		if (!memcmp(&k, g, sizeof k))
			return &conv_rows[i];
	}
	if (n_conv_rows == MAX_CONV_ROWS)
		return NULL;
	conv_rows[n_conv_rows] = (struct conv_row){ .g = *g };
	return &conv_rows[n_conv_rows++];
}

static void t_linear_f(float *out, const float *inp, const float *w, const float *b, int N, int IN, int OUT)
{
	TIME_OP(T_LINEAR_F, 2.0 * N * IN * OUT, real->linear_forward(out, inp, w, b, N, IN, OUT));
}

static void t_linear_b(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                       int N, int IN, int OUT)
{
	double flops = 2.0 * N * IN * OUT * ((dinp != NULL) + (dw != NULL));
	TIME_OP(T_LINEAR_B, flops, real->linear_backward(dinp, dw, db, dout, inp, w, N, IN, OUT));
}

static void t_conv_f(float *out, const float *inp, const float *w, const float *b, const struct nn_conv2d *g)
{
	double before = counts[T_CONV_F].seconds;
	TIME_OP(T_CONV_F, conv_flops(g), real->conv2d_forward(out, inp, w, b, g));
	struct conv_row *row = conv_row_of(g);
	if (row) {
		row->count.seconds += counts[T_CONV_F].seconds - before;
		row->count.flops += conv_flops(g);
		row->count.calls++;
	}
}

static void t_conv_b(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                     const struct nn_conv2d *g)
{
	double flops = conv_flops(g) * ((dinp != NULL) + (dw != NULL));
	TIME_OP(T_CONV_B, flops, real->conv2d_backward(dinp, dw, db, dout, inp, w, g));
}

static void t_layernorm_f(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C, float eps)
{
	TIME_OP(T_LAYERNORM_F, 0, real->layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps));
}

static void t_layernorm_b(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                          const float *mean, const float *rstd, int N, int C)
{
	TIME_OP(T_LAYERNORM_B, 0, real->layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C));
}

static void t_groupnorm_f(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int B, int C, int HW, int G, float eps)
{
	TIME_OP(T_GROUPNORM_F, 0, real->groupnorm_forward(out, mean, rstd, inp, w, b, B, C, HW, G, eps));
}

static void t_groupnorm_b(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                          const float *mean, const float *rstd, int B, int C, int HW, int G)
{
	TIME_OP(T_GROUPNORM_B, 0, real->groupnorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, B, C, HW, G));
}

static void t_modulate_f(float *out, const float *x, const float *scale, const float *shift, int ld, int B,
                         int T, int C)
{
	TIME_OP(T_MODULATE_F, 0, real->modulate_forward(out, x, scale, shift, ld, B, T, C));
}

static void t_modulate_b(float *dx, float *dscale, float *dshift, const float *dout, const float *x,
                         const float *scale, int ld, int B, int T, int C)
{
	TIME_OP(T_MODULATE_B, 0, real->modulate_backward(dx, dscale, dshift, dout, x, scale, ld, B, T, C));
}

static void t_act_f(float *out, const float *inp, size_t n, enum nn_act act)
{
	TIME_OP(T_ACT_F, 0, real->act_forward(out, inp, n, act));
}

static void t_act_b(float *dinp, const float *inp, const float *dout, size_t n, enum nn_act act)
{
	TIME_OP(T_ACT_B, 0, real->act_backward(dinp, inp, dout, n, act));
}

static void t_attention_f(float *out, float *lse, const float *q, const float *k, const float *v,
                          const struct nn_attention *a)
{
	TIME_OP(T_ATTENTION_F, attention_flops(a), real->attention_forward(out, lse, q, k, v, a));
}

static void t_attention_b(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                          const float *v, const float *out, const float *lse, const struct nn_attention *a)
{
	TIME_OP(T_ATTENTION_B, 2 * attention_flops(a),
	        real->attention_backward(dq, dk, dv, dout, q, k, v, out, lse, a));
}

static void t_embedding_f(float *out, const int32_t *ids, const float *table, int N, int C)
{
	TIME_OP(T_EMBEDDING_F, 0, real->embedding_forward(out, ids, table, N, C));
}

static void t_embedding_b(float *dtable, const float *dout, const int32_t *ids, int N, int C)
{
	TIME_OP(T_EMBEDDING_B, 0, real->embedding_backward(dtable, dout, ids, N, C));
}

static void t_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, long sa,
                   const float *B, int ldb, long sb, float beta, float *C, int ldc, long sc, int batch)
{
	TIME_OP(T_GEMM, 2.0 * M * N * K * batch,
	        real->gemm(ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch));
}

static void t_softmax_f(float *out, const float *inp, int N, int C)
{
	TIME_OP(T_SOFTMAX_F, 0, real->softmax_forward(out, inp, N, C));
}

static void t_upsample_f(float *out, const float *inp, int N, int H, int W, int factor)
{
	TIME_OP(T_UPSAMPLE_F, 0, real->upsample_forward(out, inp, N, H, W, factor));
}

static void t_add(float *out, const float *a, const float *b, size_t n)
{
	TIME_OP(T_ADD, 0, real->add(out, a, b, n));
}

static void t_accumulate(float *dst, const float *src, size_t n)
{
	TIME_OP(T_ACCUMULATE, 0, real->accumulate(dst, src, n));
}

static void t_scale(float *out, const float *x, float s, size_t n)
{
	TIME_OP(T_SCALE, 0, real->scale(out, x, s, n));
}

static void t_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
                    float beta2, float eps, float weight_decay, float grad_scale, int step)
{
	TIME_OP(T_ADAMW, 0,
	        real->adamw_update(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale, step));
}

static void t_ema(float *ema, const float *param, size_t n, float decay)
{
	TIME_OP(T_EMA, 0, real->ema_update(ema, param, n, decay));
}

static void t_sum_squares(float *out, const float *x, size_t n)
{
	TIME_OP(T_SUM_SQUARES, 0, real->sum_squares(out, x, n));
}

static void t_zero(void *p, size_t bytes)
{
	TIME_OP(T_ZERO, 0, real->zero(p, bytes));
}

static void t_upload(void *dst, const void *src, size_t bytes)
{
	TIME_OP(T_UPLOAD, 0, real->upload(dst, src, bytes));
}

static void t_download(void *dst, const void *src, size_t bytes)
{
	TIME_OP(T_DOWNLOAD, 0, real->download(dst, src, bytes));
}

/* Puts op `id`'s timing wrapper into the timed table. */
static void time_op(enum timed_op id)
{
	switch (id) {
	case T_LINEAR_F: timed.linear_forward = t_linear_f; break;
	case T_LINEAR_B: timed.linear_backward = t_linear_b; break;
	case T_CONV_F: timed.conv2d_forward = t_conv_f; break;
	case T_CONV_B: timed.conv2d_backward = t_conv_b; break;
	case T_LAYERNORM_F: timed.layernorm_forward = t_layernorm_f; break;
	case T_LAYERNORM_B: timed.layernorm_backward = t_layernorm_b; break;
	case T_GROUPNORM_F: timed.groupnorm_forward = t_groupnorm_f; break;
	case T_GROUPNORM_B: timed.groupnorm_backward = t_groupnorm_b; break;
	case T_MODULATE_F: timed.modulate_forward = t_modulate_f; break;
	case T_MODULATE_B: timed.modulate_backward = t_modulate_b; break;
	case T_ACT_F: timed.act_forward = t_act_f; break;
	case T_ACT_B: timed.act_backward = t_act_b; break;
	case T_ATTENTION_F: timed.attention_forward = t_attention_f; break;
	case T_ATTENTION_B: timed.attention_backward = t_attention_b; break;
	case T_EMBEDDING_F: timed.embedding_forward = t_embedding_f; break;
	case T_EMBEDDING_B: timed.embedding_backward = t_embedding_b; break;
	case T_GEMM: timed.gemm = t_gemm; break;
	case T_SOFTMAX_F: timed.softmax_forward = t_softmax_f; break;
	case T_UPSAMPLE_F: timed.upsample_forward = t_upsample_f; break;
	case T_ADD: timed.add = t_add; break;
	case T_ACCUMULATE: timed.accumulate = t_accumulate; break;
	case T_SCALE: timed.scale = t_scale; break;
	case T_ADAMW: timed.adamw_update = t_adamw; break;
	case T_EMA: timed.ema_update = t_ema; break;
	case T_SUM_SQUARES: timed.sum_squares = t_sum_squares; break;
	case T_ZERO: timed.zero = t_zero; break;
	case T_UPLOAD: timed.upload = t_upload; break;
	case T_DOWNLOAD: timed.download = t_download; break;
	case T_COUNT: break;
	}
}

/* Calls each(id, ctx) for every op a row names. */
static void for_each_op(const struct bench_op_row *row, void (*each)(enum timed_op id, void *ctx), void *ctx)
{
	for (const char *p = row->ops; *p;) {
		size_t len = strcspn(p, " ");
		int id = 0;
		while (id < T_COUNT && (strlen(op_names[id]) != len || strncmp(op_names[id], p, len)))
			id++;
		if (id == T_COUNT)
			die("breakdown row '%s': no timed op '%.*s'", row->name, (int)len, p);
		each((enum timed_op)id, ctx);
		p += len + strspn(p + len, " ");
	}
}

static void install(enum timed_op id, void *ctx)
{
	(void)ctx;
	time_op(id);
}

void bench_ops_timing_on(const struct bench_op_row *rows)
{
	real = nn;
	timed = *nn;
	timed_rows = rows;
	for (const struct bench_op_row *r = rows; r->name; r++)
		for_each_op(r, install, NULL);
	memset(counts, 0, sizeof counts);
	n_conv_rows = 0;
	nn = &timed;
}

void bench_ops_timing_off(void)
{
	nn = real;
}

double bench_ops_seconds(void)
{
	double total = 0;
	for (int i = 0; i < T_COUNT; i++)
		total += counts[i].seconds;
	return total;
}

static void add_count(enum timed_op id, void *ctx)
{
	struct op_count *sum = ctx;
	sum->seconds += counts[id].seconds;
	sum->flops += counts[id].flops;
	sum->calls += counts[id].calls;
}

/* " GFLOP/s share-of-peak" where there are FLOPs to rate. */
static void print_rate(const struct op_count *c, double peak, int width)
{
	if (c->flops > 0 && c->seconds > 0) {
		double gf = c->flops / c->seconds / 1e9;
		printf(" %*.1f %5.1f%%", width, gf, 100 * gf / peak);
	}
}

void bench_print_op_table(int runs, double pass_ms, double peak, const struct bench_op_table_layout *l)
{
	double total = bench_ops_seconds(), ops_ms = 1e3 * total / runs;
	printf("#   %-*s %*s %9s %6s %*s %6s\n", l->name_width, "op", l->calls_width, "calls", "ms", "share",
	       l->rate_width, "GFLOP/s", "peak");
	for (const struct bench_op_row *r = timed_rows; r->name; r++) {
		struct op_count c = {0};
		for_each_op(r, add_count, &c);
		if (!c.calls)
			continue;
		double ms = 1e3 * c.seconds / runs;
		printf("#   %-*s %*ld %9.*f %5.1f%%", l->name_width, r->name, l->calls_width, c.calls / runs,
		       l->ms_decimals, ms, l->share_of_pass ? 100 * ms / pass_ms : 100 * c.seconds / total);
		print_rate(&c, peak, l->rate_width);
		printf("\n");
	}
	if (l->share_of_pass && pass_ms > ops_ms)
		printf("#   %-*s %*s %9.*f %5.1f%%\n", l->name_width, "outside the ops", l->calls_width, "",
		       l->ms_decimals, pass_ms - ops_ms, 100 * (pass_ms - ops_ms) / pass_ms);
}

static int by_time(const void *a, const void *b)
{
	double x = ((const struct conv_row *)a)->count.seconds, y = ((const struct conv_row *)b)->count.seconds;
	return (x < y) - (x > y);
}

void bench_print_conv_shapes(int runs, double pass_ms, double peak)
{
	qsort(conv_rows, n_conv_rows, sizeof *conv_rows, by_time);
	printf("#   convolutions by shape (KxK/stride IC->OC, output HxW):\n");
	for (int i = 0; i < n_conv_rows; i++) {
		const struct conv_row *r = &conv_rows[i];
		char shape[64];
		snprintf(shape, sizeof shape, "%dx%d/%d %d->%d @%dx%d", r->g.KH, r->g.KW, r->g.stride, r->g.IC, r->g.OC,
		         nn_conv2d_out_h(&r->g), nn_conv2d_out_w(&r->g));
		double ms = 1e3 * r->count.seconds / runs;
		printf("#     %-36s %6ld %9.2f %5.1f%%", shape, r->count.calls / runs, ms, 100 * ms / pass_ms);
		print_rate(&r->count, peak, 8);
		printf("\n");
	}
}
