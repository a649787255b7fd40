/* The op interface: every layer of every model is written against this table,
 * and each backend (CPU now, CUDA next) fills it in.
 *
 * Conventions, the same for every op:
 * - Pointers are float32 buffers in the active backend's memory (nn_alloc).
 * - Layouts are C order. Images are NCHW; token sequences are [B, T, C].
 *   Linear and conv weights use PyTorch's layout ([out, in], [OC, IC, KH, KW]).
 * - Forward ops assign their outputs. Backward ops ACCUMULATE (+=) into every
 *   gradient they produce, inputs' and parameters' alike, so branches and
 *   residuals need no extra adds; the caller zeroes gradient buffers once per
 *   step. A NULL gradient pointer means "not needed" and is skipped.
 * - Whatever a backward pass needs from its forward pass (means, reciprocal
 *   std, log-sum-exp rows) is an explicit argument the caller keeps.
 * - Random ops take (seed, offset) and draw from a counter-based generator:
 *   element i uses counter offset + i (the scheme is spelled out in
 *   nn/philox.h), so results do not depend on thread count or backend, and
 *   a backward pass can regenerate a dropout mask. */
#ifndef KNND_NN_OPS_H
#define KNND_NN_OPS_H

#include <stddef.h>
#include <stdint.h>

enum nn_act { NN_GELU_ERF, NN_GELU_TANH, NN_QUICK_GELU, NN_SILU, NN_IDENTITY };

/* Geometry of a 2-D convolution, padding given per side (taming's downsample
 * pads right/bottom only). Output size follows from the rest. */
struct nn_conv2d {
	int B, IC, H, W, OC, KH, KW, stride;
	int pad_top, pad_left, pad_bottom, pad_right;
};
int nn_conv2d_out_h(const struct nn_conv2d *g);
int nn_conv2d_out_w(const struct nn_conv2d *g);

/* Multi-head attention geometry. Q is [B, Tq, H*D] and K, V are [B, Tk, H*D]
 * with head h at columns h*D..h*D+D-1 (what a linear projection produces);
 * the output has Q's layout. The log-sum-exp of each score row ([B, H, Tq])
 * is saved for the backward pass. key_valid ([B, Tk], may be NULL) marks keys
 * that may be attended (1) or are padding (0); `causal` masks keys after the
 * query position (Tq == Tk). scale is usually 1/sqrt(D). A query row that
 * can see no key gets a zero output, lse = -inf and no gradient (PyTorch
 * gives NaN there). */
struct nn_attention {
	int B, H, Tq, Tk, D;
	int causal;
	const uint8_t *key_valid;
	float scale;
};

struct nn_ops {
	const char *name;

	/* memory */
	void *(*alloc)(size_t bytes);
	void (*free)(void *p);
	void (*upload)(void *dst, const void *host_src, size_t bytes);
	void (*download)(void *host_dst, const void *src, size_t bytes);
	void (*zero)(void *p, size_t bytes);
	void (*sync)(void);

	/* C[M,N] = alpha * op(A) op(B) + beta * C, row-major, with `batch`
	 * independent products at the given element strides. */
	void (*gemm)(int trans_a, int trans_b, int M, int N, int K, float alpha,
	             const float *A, int lda, long stride_a, const float *B, int ldb, long stride_b,
	             float beta, float *C, int ldc, long stride_c, int batch);

	/* out[N,OUT] = inp[N,IN] weight[OUT,IN]^T + bias[OUT] (bias may be NULL) */
	void (*linear_forward)(float *out, const float *inp, const float *weight, const float *bias,
	                       int N, int IN, int OUT);
	void (*linear_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
	                        const float *inp, const float *weight, int N, int IN, int OUT);

	void (*conv2d_forward)(float *out, const float *inp, const float *weight, const float *bias,
	                       const struct nn_conv2d *g);
	void (*conv2d_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
	                        const float *inp, const float *weight, const struct nn_conv2d *g);

	/* Nearest-neighbour upsampling of [N, H, W] planes by an integer factor
	 * (H, W are the input's size here and for avgpool). */
	void (*upsample_forward)(float *out, const float *inp, int N, int H, int W, int factor);
	void (*upsample_backward)(float *dinp, const float *dout, int N, int H, int W, int factor);
	/* Average pooling of [N, H, W] planes with a factor x factor window and
	 * stride; H and W must be multiples of the factor. */
	void (*avgpool_forward)(float *out, const float *inp, int N, int H, int W, int factor);
	void (*avgpool_backward)(float *dinp, const float *dout, int N, int H, int W, int factor);

	/* Over the last dimension C of N rows. weight/bias may be NULL (no affine). */
	void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp,
	                          const float *weight, const float *bias, int N, int C, float eps);
	void (*layernorm_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
	                           const float *inp, const float *weight, const float *mean,
	                           const float *rstd, int N, int C);
	/* [B, C, HW] in G groups; mean/rstd are [B, G]. */
	void (*groupnorm_forward)(float *out, float *mean, float *rstd, const float *inp,
	                          const float *weight, const float *bias, int B, int C, int HW,
	                          int G, float eps);
	void (*groupnorm_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
	                           const float *inp, const float *weight, const float *mean,
	                           const float *rstd, int B, int C, int HW, int G);
	/* Adaptive layer norm's modulation: out[b,t,:] = x[b,t,:] * (1 + scale[b,:]) + shift[b,:],
	 * with x [B,T,C] and scale/shift rows [B,C] at row stride `ld` (so both can
	 * live in one [B, 2C] projection). */
	void (*modulate_forward)(float *out, const float *x, const float *scale, const float *shift,
	                         int ld, int B, int T, int C);
	void (*modulate_backward)(float *dx, float *dscale, float *dshift, const float *dout,
	                          const float *x, const float *scale, int ld, int B, int T, int C);

	void (*act_forward)(float *out, const float *inp, size_t n, enum nn_act act);
	void (*act_backward)(float *dinp, const float *inp, const float *dout, size_t n, enum nn_act act);

	/* Softmax and log-softmax over the last dimension C of N rows; the backward
	 * passes take the forward output. */
	void (*softmax_forward)(float *out, const float *inp, int N, int C);
	void (*softmax_backward)(float *dinp, const float *out, const float *dout, int N, int C);
	void (*log_softmax_forward)(float *out, const float *inp, int N, int C);
	void (*log_softmax_backward)(float *dinp, const float *out, const float *dout, int N, int C);

	/* Fused scaled-dot-product attention: scores exist only as per-thread tiles,
	 * and the backward pass recomputes them from lse. */
	void (*attention_forward)(float *out, float *lse, const float *q, const float *k,
	                          const float *v, const struct nn_attention *a);
	void (*attention_backward)(float *dq, float *dk, float *dv, const float *dout,
	                           const float *q, const float *k, const float *v, const float *out,
	                           const float *lse, const struct nn_attention *a);

	/* out[i,:] = table[ids[i],:]; ids are checked by the caller. */
	void (*embedding_forward)(float *out, const int32_t *ids, const float *table, int N, int C);
	void (*embedding_backward)(float *dtable, const float *dout, const int32_t *ids, int N, int C);

	/* out = a + b; dst += src; out = x * s */
	void (*add)(float *out, const float *a, const float *b, size_t n);
	void (*accumulate)(float *dst, const float *src, size_t n);
	void (*scale)(float *out, const float *x, float s, size_t n);

	/* Inverted dropout with keep probability 1-p; the mask is regenerated from
	 * (seed, offset) in the backward pass. */
	void (*dropout_forward)(float *out, const float *inp, size_t n, float p, uint64_t seed, uint64_t offset);
	void (*dropout_backward)(float *dinp, const float *dout, size_t n, float p, uint64_t seed, uint64_t offset);

	/* Per-row losses. Cross-entropy from logits [N,C] and int targets (a
	 * negative target is ignored: loss 0, no gradient). dloss[i] scales row i's
	 * gradient (e.g. 1/N for a mean). */
	void (*cross_entropy_forward)(float *loss, const float *logits, const int32_t *targets, int N, int C);
	void (*cross_entropy_backward)(float *dlogits, const float *logits, const int32_t *targets,
	                               const float *dloss, int N, int C);
	/* loss[i] = sum_j (pred - target)^2 / C over rows [N, C]. */
	void (*mse_forward)(float *loss, const float *pred, const float *target, int N, int C);
	void (*mse_backward)(float *dpred, const float *pred, const float *target, const float *dloss, int N, int C);
	/* KL(p || q) per row for categorical distributions given as log-probabilities:
	 * loss[i] = sum_j exp(logp) (logp - logq). */
	void (*kl_forward)(float *loss, const float *logp, const float *logq, int N, int C);
	void (*kl_backward)(float *dlogp, float *dlogq, const float *logp, const float *logq,
	                    const float *dloss, int N, int C);

	/* Counter-based random numbers (Philox 4x32-10). */
	void (*rand_uniform)(float *out, size_t n, uint64_t seed, uint64_t offset);
	void (*rand_normal)(float *out, size_t n, uint64_t seed, uint64_t offset);
	/* One draw per row of logits [N,C] by the Gumbel-max trick. */
	void (*sample_categorical)(int32_t *out, const float *logits, int N, int C, uint64_t seed, uint64_t offset);

	/* Reductions: *out = sum(x), *out = sum(x^2); out is backend memory. */
	void (*sum)(float *out, const float *x, size_t n);
	void (*sum_squares)(float *out, const float *x, size_t n);

	/* Optimiser steps over flat buffers. */
	void (*adamw_update)(float *param, const float *grad, float *m, float *v, size_t n,
	                     float lr, float beta1, float beta2, float eps, float weight_decay,
	                     float grad_scale, int step);
	void (*ema_update)(float *ema, const float *param, size_t n, float decay);
};

/* The active backend. Models call nn->op(...). */
extern const struct nn_ops *nn;

/* Selects "cpu" or "cuda" ("auto": CUDA when a device is there). Returns 0, or
 * -1 (errorf) if that backend is not available in this build or machine. */
int nn_use_backend(const char *name);

extern const struct nn_ops nn_cpu_ops;

#endif
