// The CUDA backend. Memory is CUDA managed (unified) memory, so every op can
// run on the device or, until it is ported, as the CPU implementation on the
// same pointers after a device synchronisation. Porting an op means writing
// its kernel here (or in a file beside it, declared in cuda.h) and pointing
// its table entry at it; models do not change. Ops ported so far: memory,
// gemm (cuBLAS), linear forward and backward, elementwise add/accumulate/
// scale, the embedding, the activations, layer norm and modulation
// (cuda_norm.cu), softmax and log-softmax (cuda_softmax.cu), attention
// (cuda_attention.cu), AdamW, the EMA and the sums (cuda_optim.cu).
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn/cuda/cuda.h"

extern "C" {
#include "nn/cpu/cpu.h"
}

void cuda_check(cudaError_t e, const char *what)
{
	if (e != cudaSuccess) {
		fprintf(stderr, "knnd: CUDA error in %s: %s\n", what, cudaGetErrorString(e));
		exit(1);
	}
}

static cublasHandle_t blas(void)
{
	static cublasHandle_t h;
	if (!h) {
		if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
			fprintf(stderr, "knnd: cannot initialise cuBLAS\n");
			exit(1);
		}
		// True fp32: TF32 would exceed the golden tolerances.
		cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);
	}
	return h;
}


static void *cuda_alloc(size_t bytes)
{
	void *p = NULL;
	if (cudaMallocManaged(&p, bytes ? bytes : 1) != cudaSuccess)
		return NULL;
	return p;
}

static void cuda_free(void *p) { cudaFree(p); }
void cuda_sync(void) { cuda_check(cudaDeviceSynchronize(), "sync"); }

static void cuda_upload(void *dst, const void *src, size_t bytes)
{
	cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "upload");
}

static void cuda_download(void *dst, const void *src, size_t bytes)
{
	cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "download");
}

static void cuda_zero(void *p, size_t bytes) { cuda_check(cudaMemset(p, 0, bytes), "zero"); }

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
static void cuda_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
                      const float *A, int lda, long stride_a, const float *B, int ldb, long stride_b,
                      float beta, float *C, int ldc, long stride_c, int batch)
{
	cublasSgemmStridedBatched(blas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
	                          N, M, K, &alpha, B, ldb, stride_b, A, lda, stride_a, &beta, C, ldc, stride_c, batch);
}

__global__ static void add_bias_rows(float *out, const float *bias, int N, int C)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < (size_t)N * C)
		out[i] += bias[i % C];
}

static void cuda_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                                int N, int IN, int OUT)
{
	cuda_gemm(0, 1, N, OUT, IN, 1.0f, inp, IN, 0, weight, IN, 0, 0.0f, out, OUT, 0, 1);
	if (bias)
		add_bias_rows<<<cuda_blocks((size_t)N * OUT), 256>>>(out, bias, N, OUT);
}

// dinp[N,IN] += dout[N,OUT] weight[OUT,IN]; dweight[OUT,IN] += dout^T inp;
// dbias[OUT] += the column sums of dout.
static void cuda_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                 const float *weight, int N, int IN, int OUT)
{
	if (dinp)
		cuda_gemm(0, 0, N, IN, OUT, 1.0f, dout, OUT, 0, weight, IN, 0, 1.0f, dinp, IN, 0, 1);
	if (dweight)
		cuda_gemm(1, 0, OUT, IN, N, 1.0f, dout, OUT, 0, inp, IN, 0, 1.0f, dweight, IN, 0, 1);
	if (dbias)
		cuda_add_column_sums(dbias, dout, N, OUT);
}

__global__ static void embedding_kernel(float *out, const int32_t *ids, const float *table, int C, size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		out[i] = table[(size_t)ids[i / C] * C + i % C];
}

static void cuda_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int C)
{
	size_t n = (size_t)N * C;
	if (n > 0)
		embedding_kernel<<<cuda_blocks(n), 256>>>(out, ids, table, C, n);
}

// dtable[ids[i], :] += dout[i, :]: rows may repeat ids, so each thread owns a
// column and adds the rows in order (the CPU's order, and no atomics).
__global__ static void embedding_backward_kernel(float *dtable, const float *dout, const int32_t *ids, int N, int C)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c < C)
		for (int i = 0; i < N; i++)
			dtable[(size_t)ids[i] * C + c] += dout[(size_t)i * C + c];
}

static void cuda_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C)
{
	if (N > 0 && C > 0)
		embedding_backward_kernel<<<cuda_blocks(C), 256>>>(dtable, dout, ids, N, C);
}

__global__ static void add_kernel(float *out, const float *a, const float *b, size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		out[i] = a[i] + b[i];
}

__global__ static void scale_kernel(float *out, const float *x, float s, size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		out[i] = x[i] * s;
}

static void cuda_add(float *out, const float *a, const float *b, size_t n)
{
	add_kernel<<<cuda_blocks(n), 256>>>(out, a, b, n);
}

static void cuda_accumulate(float *dst, const float *src, size_t n)
{
	add_kernel<<<cuda_blocks(n), 256>>>(dst, dst, src, n);
}

static void cuda_scale(float *out, const float *x, float s, size_t n)
{
	scale_kernel<<<cuda_blocks(n), 256>>>(out, x, s, n);
}

// f(x) and f'(x) of each activation, shared by the forward and backward kernels.
__device__ static float act_value(float x, int act, float *grad)
{
	const float k = 0.7978845608028654f; // sqrt(2/pi)
	switch (act) {
	case NN_GELU_ERF: {
		float cdf = 0.5f * (1.0f + erff(x * 0.7071067811865476f));
		*grad = cdf + x * 0.3989422804014327f * expf(-0.5f * x * x);
		return x * cdf;
	}
	case NN_GELU_TANH: {
		float u = k * (x + 0.044715f * x * x * x), t = tanhf(u);
		*grad = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * x * x);
		return 0.5f * x * (1.0f + t);
	}
	case NN_QUICK_GELU: {
		float s = 1.0f / (1.0f + expf(-1.702f * x));
		*grad = s + 1.702f * x * s * (1.0f - s);
		return x * s;
	}
	case NN_SILU: {
		float s = 1.0f / (1.0f + expf(-x));
		*grad = s + x * s * (1.0f - s);
		return x * s;
	}
	default:
		*grad = 1.0f;
		return x;
	}
}

__global__ static void act_forward_kernel(float *out, const float *inp, size_t n, int act)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	float g;
	if (i < n)
		out[i] = act_value(inp[i], act, &g);
}

__global__ static void act_backward_kernel(float *dinp, const float *inp, const float *dout, size_t n, int act)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	float g;
	if (i < n) {
		act_value(inp[i], act, &g);
		dinp[i] += g * dout[i];
	}
}

static void cuda_act_forward(float *out, const float *inp, size_t n, enum nn_act act)
{
	act_forward_kernel<<<cuda_blocks(n), 256>>>(out, inp, n, (int)act);
}

static void cuda_act_backward(float *dinp, const float *inp, const float *dout, size_t n, enum nn_act act)
{
	act_backward_kernel<<<cuda_blocks(n), 256>>>(dinp, inp, dout, n, (int)act);
}

// Ops not ported yet: the CPU implementation on managed memory, after the
// device has finished writing their inputs.


static void cuda_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias, const struct nn_conv2d *g)
{
	cuda_sync();
	cpu_conv2d_forward(out, inp, weight, bias, g);
}

static void cuda_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, const float *weight, const struct nn_conv2d *g)
{
	cuda_sync();
	cpu_conv2d_backward(dinp, dweight, dbias, dout, inp, weight, g);
}

static void cuda_upsample_forward(float *out, const float *inp, int N, int H, int W, int factor)
{
	cuda_sync();
	cpu_upsample_forward(out, inp, N, H, W, factor);
}

static void cuda_upsample_backward(float *dinp, const float *dout, int N, int H, int W, int factor)
{
	cuda_sync();
	cpu_upsample_backward(dinp, dout, N, H, W, factor);
}

static void cuda_avgpool_forward(float *out, const float *inp, int N, int H, int W, int factor)
{
	cuda_sync();
	cpu_avgpool_forward(out, inp, N, H, W, factor);
}

static void cuda_avgpool_backward(float *dinp, const float *dout, int N, int H, int W, int factor)
{
	cuda_sync();
	cpu_avgpool_backward(dinp, dout, N, H, W, factor);
}

static void cuda_groupnorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight, const float *bias, int B, int C, int HW, int G, float eps)
{
	cuda_sync();
	cpu_groupnorm_forward(out, mean, rstd, inp, weight, bias, B, C, HW, G, eps);
}

static void cuda_groupnorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, const float *weight, const float *mean, const float *rstd, int B, int C, int HW, int G)
{
	cuda_sync();
	cpu_groupnorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, B, C, HW, G);
}

static void cuda_dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed, uint64_t offset)
{
	cuda_sync();
	cpu_dropout_forward(out, inp, n, p, seed, offset);
}

static void cuda_dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed, uint64_t offset)
{
	cuda_sync();
	cpu_dropout_backward(dinp, dout, n, p, seed, offset);
}

static void cuda_cross_entropy_forward(float *loss, const float *logits, const int32_t *targets, int N, int C)
{
	cuda_sync();
	cpu_cross_entropy_forward(loss, logits, targets, N, C);
}

static void cuda_cross_entropy_backward(float *dlogits, const float *logits, const int32_t *targets, const float *dloss, int N, int C)
{
	cuda_sync();
	cpu_cross_entropy_backward(dlogits, logits, targets, dloss, N, C);
}

static void cuda_mse_forward(float *loss, const float *pred, const float *target, int N, int C)
{
	cuda_sync();
	cpu_mse_forward(loss, pred, target, N, C);
}

static void cuda_mse_backward(float *dpred, const float *pred, const float *target, const float *dloss, int N, int C)
{
	cuda_sync();
	cpu_mse_backward(dpred, pred, target, dloss, N, C);
}

static void cuda_kl_forward(float *loss, const float *logp, const float *logq, int N, int C)
{
	cuda_sync();
	cpu_kl_forward(loss, logp, logq, N, C);
}

static void cuda_kl_backward(float *dlogp, float *dlogq, const float *logp, const float *logq, const float *dloss, int N, int C)
{
	cuda_sync();
	cpu_kl_backward(dlogp, dlogq, logp, logq, dloss, N, C);
}

static void cuda_rand_uniform(float *out, size_t n, uint64_t seed, uint64_t offset)
{
	cuda_sync();
	cpu_rand_uniform(out, n, seed, offset);
}

static void cuda_rand_normal(float *out, size_t n, uint64_t seed, uint64_t offset)
{
	cuda_sync();
	cpu_rand_normal(out, n, seed, offset);
}

static void cuda_sample_categorical(int32_t *out, const float *logits, int N, int C, uint64_t seed, uint64_t offset)
{
	cuda_sync();
	cpu_sample_categorical(out, logits, N, C, seed, offset);
}

extern "C" const struct nn_ops nn_cuda_ops = {
	.name = "cuda",
	.alloc = cuda_alloc,
	.free = cuda_free,
	.upload = cuda_upload,
	.download = cuda_download,
	.zero = cuda_zero,
	.sync = cuda_sync,
	.gemm = cuda_gemm,
	.linear_forward = cuda_linear_forward,
	.linear_backward = cuda_linear_backward,
	.conv2d_forward = cuda_conv2d_forward,
	.conv2d_backward = cuda_conv2d_backward,
	.upsample_forward = cuda_upsample_forward,
	.upsample_backward = cuda_upsample_backward,
	.avgpool_forward = cuda_avgpool_forward,
	.avgpool_backward = cuda_avgpool_backward,
	.layernorm_forward = cuda_layernorm_forward,
	.layernorm_backward = cuda_layernorm_backward,
	.groupnorm_forward = cuda_groupnorm_forward,
	.groupnorm_backward = cuda_groupnorm_backward,
	.modulate_forward = cuda_modulate_forward,
	.modulate_backward = cuda_modulate_backward,
	.act_forward = cuda_act_forward,
	.act_backward = cuda_act_backward,
	.softmax_forward = cuda_softmax_forward,
	.softmax_backward = cuda_softmax_backward,
	.log_softmax_forward = cuda_log_softmax_forward,
	.log_softmax_backward = cuda_log_softmax_backward,
	.attention_forward = cuda_attention_forward,
	.attention_backward = cuda_attention_backward,
	.embedding_forward = cuda_embedding_forward,
	.embedding_backward = cuda_embedding_backward,
	.add = cuda_add,
	.accumulate = cuda_accumulate,
	.scale = cuda_scale,
	.dropout_forward = cuda_dropout_forward,
	.dropout_backward = cuda_dropout_backward,
	.cross_entropy_forward = cuda_cross_entropy_forward,
	.cross_entropy_backward = cuda_cross_entropy_backward,
	.mse_forward = cuda_mse_forward,
	.mse_backward = cuda_mse_backward,
	.kl_forward = cuda_kl_forward,
	.kl_backward = cuda_kl_backward,
	.rand_uniform = cuda_rand_uniform,
	.rand_normal = cuda_rand_normal,
	.sample_categorical = cuda_sample_categorical,
	.sum = cuda_sum,
	.sum_squares = cuda_sum_squares,
	.adamw_update = cuda_adamw_update,
	.ema_update = cuda_ema_update,
};
