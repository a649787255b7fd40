/* The CPU backend: one function per entry of struct nn_ops (lib/nn/ops.h),
 * named cpu_<entry>. cpu_ops.c puts them in the table; the files in this
 * folder implement them, grouped by kind of op. */
#ifndef KNND_NN_CPU_H
#define KNND_NN_CPU_H

#include "nn/ops.h"

void *cpu_alloc(size_t bytes);
void cpu_free(void *p);
void cpu_upload(void *dst, const void *host_src, size_t bytes);
void cpu_download(void *host_dst, const void *src, size_t bytes);
void cpu_zero(void *p, size_t bytes);
void cpu_sync(void);
void cpu_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, long stride_a, const float *B, int ldb, long stride_b, float beta, float *C, int ldc, long stride_c, int batch);
void cpu_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int IN, int OUT);
void cpu_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, const float *weight, int N, int IN, int OUT);
void cpu_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias, const struct nn_conv2d *g);
void cpu_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, const float *weight, const struct nn_conv2d *g);
void cpu_upsample_forward(float *out, const float *inp, int N, int H, int W, int factor);
void cpu_upsample_backward(float *dinp, const float *dout, int N, int H, int W, int factor);
void cpu_avgpool_forward(float *out, const float *inp, int N, int H, int W, int factor);
void cpu_avgpool_backward(float *dinp, const float *dout, int N, int H, int W, int factor);
void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight, const float *bias, int N, int C, float eps);
void cpu_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, const float *weight, const float *mean, const float *rstd, int N, int C);
void cpu_groupnorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight, const float *bias, int B, int C, int HW, int G, float eps);
void cpu_groupnorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, const float *weight, const float *mean, const float *rstd, int B, int C, int HW, int G);
void cpu_modulate_forward(float *out, const float *x, const float *scale, const float *shift, int ld, int B, int T, int C);
void cpu_modulate_backward(float *dx, float *dscale, float *dshift, const float *dout, const float *x, const float *scale, int ld, int B, int T, int C);
void cpu_act_forward(float *out, const float *inp, size_t n, enum nn_act act);
void cpu_act_backward(float *dinp, const float *inp, const float *dout, size_t n, enum nn_act act);
void cpu_softmax_forward(float *out, const float *inp, int N, int C);
void cpu_softmax_backward(float *dinp, const float *out, const float *dout, int N, int C);
void cpu_log_softmax_forward(float *out, const float *inp, int N, int C);
void cpu_log_softmax_backward(float *dinp, const float *out, const float *dout, int N, int C);
void cpu_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, const struct nn_attention *a);
void cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v, const float *out, const float *lse, const struct nn_attention *a);
void cpu_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int C);
void cpu_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C);
void cpu_add(float *out, const float *a, const float *b, size_t n);
void cpu_accumulate(float *dst, const float *src, size_t n);
void cpu_scale(float *out, const float *x, float s, size_t n);
void cpu_dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed, uint64_t offset);
void cpu_dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed, uint64_t offset);
void cpu_cross_entropy_forward(float *loss, const float *logits, const int32_t *targets, int N, int C);
void cpu_cross_entropy_backward(float *dlogits, const float *logits, const int32_t *targets, const float *dloss, int N, int C);
void cpu_mse_forward(float *loss, const float *pred, const float *target, int N, int C);
void cpu_mse_backward(float *dpred, const float *pred, const float *target, const float *dloss, int N, int C);
void cpu_kl_forward(float *loss, const float *logp, const float *logq, int N, int C);
void cpu_kl_backward(float *dlogp, float *dlogq, const float *logp, const float *logq, const float *dloss, int N, int C);
void cpu_rand_uniform(float *out, size_t n, uint64_t seed, uint64_t offset);
void cpu_rand_normal(float *out, size_t n, uint64_t seed, uint64_t offset);
void cpu_sample_categorical(int32_t *out, const float *logits, int N, int C, uint64_t seed, uint64_t offset);
void cpu_sum(float *out, const float *x, size_t n);
void cpu_sum_squares(float *out, const float *x, size_t n);
void cpu_adamw_update(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale, int step);
void cpu_ema_update(float *ema, const float *param, size_t n, float decay);

#endif
