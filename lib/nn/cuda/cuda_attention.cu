// Scaled-dot-product attention on the GPU, the semantics of
// cpu/cpu_attention.c: heads read in place from [B, T, H*D] rows, lse saved
// per query row, masks by key_valid and causality, and a query that can see
// no key gets zeros, lse = -inf and no gradient. Gradients accumulate.
//
// One block per query row (forward, dQ) or per key row (dK, dV): its threads
// first split the keys (or queries) to compute scores into shared memory,
// then split the head's D columns to form the weighted sums, so the second
// phase reads rows of V, K or Q coalesced. Every output element is summed by
// one thread in a fixed order: no atomics, the same result on every run.
// Rows of more keys or queries than shared memory holds run the CPU code.
#include <math.h>

#include "nn/cuda/cuda.h"

extern "C" {
#include "nn/cpu/cpu.h"
}

enum { THREADS = 128, SHARED_FLOATS = 12 * 1024 };

struct heads {
	const float *q, *k, *v, *out, *dout, *lse;
	const uint8_t *key_valid;
	int H, Tq, Tk, D, causal;
	float scale;
};

static __device__ __forceinline__ int keys_for_query(const struct heads &a, int i)
{
	return a.causal && i + 1 < a.Tk ? i + 1 : a.Tk;
}

static __device__ __forceinline__ float dot(const float *x, const float *y, int D)
{
	float s = 0;
	for (int d = 0; d < D; d++)
		s += x[d] * y[d];
	return s;
}

// Score of query row qi against key j of batch b, or -inf where hidden.
static __device__ __forceinline__ float score(const struct heads &a, const float *qi, int b, int j,
                                              size_t kbase, long ld)
{
	if (a.key_valid && !a.key_valid[(size_t)b * a.Tk + j])
		return -INFINITY;
	return a.scale * dot(qi, a.k + kbase + (size_t)j * ld, a.D);
}

__global__ static void forward_kernel(float *out, float *lse, struct heads a)
{
	extern __shared__ float sh[];
	float *p = sh, *qi = sh + a.Tk;
	const int i = blockIdx.x, bh = blockIdx.y, b = bh / a.H, h = bh % a.H;
	const long ld = (long)a.H * a.D;
	const size_t qoff = ((size_t)b * a.Tq + i) * ld + (size_t)h * a.D, kbase = (size_t)b * a.Tk * ld + (size_t)h * a.D;
	for (int d = threadIdx.x; d < a.D; d += blockDim.x)
		qi[d] = a.q[qoff + d];
	__syncthreads();
	const int n = keys_for_query(a, i);
	float m = -INFINITY;
	for (int j = threadIdx.x; j < n; j += blockDim.x) {
		p[j] = score(a, qi, b, j, kbase, ld);
		m = fmaxf(m, p[j]);
	}
	m = block_max(m);
	float s = 0;
	for (int j = threadIdx.x; j < n; j += blockDim.x) {
		p[j] = m == -INFINITY ? 0.0f : expf(p[j] - m);
		s += p[j];
	}
	s = block_sum(s); // its barrier also publishes p
	if (threadIdx.x == 0)
		lse[(size_t)bh * a.Tq + i] = s > 0 ? m + logf(s) : -INFINITY;
	const float inv = s > 0 ? 1.0f / s : 0.0f;
	for (int d = threadIdx.x; d < a.D; d += blockDim.x) {
		float o = 0;
		for (int j = 0; j < n; j++)
			o += p[j] * a.v[kbase + (size_t)j * ld + d];
		out[qoff + d] = o * inv;
	}
}

// dQ for one query row: dS_j = P_j (dO . V_j - dO . O), dQ += scale dS K.
__global__ static void dq_kernel(float *dq, struct heads a)
{
	extern __shared__ float sh[];
	float *ds = sh, *doi = sh + a.Tk;
	const int i = blockIdx.x, bh = blockIdx.y, b = bh / a.H, h = bh % a.H;
	const long ld = (long)a.H * a.D;
	const size_t qoff = ((size_t)b * a.Tq + i) * ld + (size_t)h * a.D, kbase = (size_t)b * a.Tk * ld + (size_t)h * a.D;
	const float lse = a.lse[(size_t)bh * a.Tq + i];
	if (lse == -INFINITY)
		return; // sees no key: no gradient (uniform across the block)
	float di = 0;
	for (int d = threadIdx.x; d < a.D; d += blockDim.x) {
		doi[d] = a.dout[qoff + d];
		di += doi[d] * a.out[qoff + d];
	}
	di = block_sum(di);
	const int n = keys_for_query(a, i);
	for (int j = threadIdx.x; j < n; j += blockDim.x) {
		float pj = expf(score(a, a.q + qoff, b, j, kbase, ld) - lse);
		ds[j] = pj * (dot(doi, a.v + kbase + (size_t)j * ld, a.D) - di);
	}
	__syncthreads();
	for (int d = threadIdx.x; d < a.D; d += blockDim.x) {
		float g = 0;
		for (int j = 0; j < n; j++)
			g += ds[j] * a.k[kbase + (size_t)j * ld + d];
		dq[qoff + d] += a.scale * g;
	}
}

// dK and dV for one key row j: over the queries i that see it,
// dV += P_ij dO_i, dK += scale dS_ij Q_i.
__global__ static void dkv_kernel(float *dk, float *dv, struct heads a)
{
	extern __shared__ float sh[];
	float *pcol = sh, *dscol = sh + a.Tq;
	const int j = blockIdx.x, bh = blockIdx.y, b = bh / a.H, h = bh % a.H;
	const long ld = (long)a.H * a.D;
	const size_t qbase = (size_t)b * a.Tq * ld + (size_t)h * a.D, koff = ((size_t)b * a.Tk + j) * ld + (size_t)h * a.D;
	const bool hidden = a.key_valid && !a.key_valid[(size_t)b * a.Tk + j];
	const int i0 = a.causal ? j : 0; // causal: query i sees keys 0..i
	for (int i = threadIdx.x; i < a.Tq; i += blockDim.x) {
		float lse = a.lse[(size_t)bh * a.Tq + i], pij = 0, dsij = 0;
		if (!hidden && i >= i0 && lse != -INFINITY) {
			const float *qi = a.q + qbase + (size_t)i * ld, *doi = a.dout + qbase + (size_t)i * ld;
			pij = expf(a.scale * dot(qi, a.k + koff, a.D) - lse);
			dsij = pij * (dot(doi, a.v + koff, a.D) - dot(doi, a.out + qbase + (size_t)i * ld, a.D));
		}
		pcol[i] = pij;
		dscol[i] = dsij;
	}
	__syncthreads();
	for (int d = threadIdx.x; d < a.D; d += blockDim.x) {
		float gv = 0, gk = 0;
		for (int i = i0; i < a.Tq; i++) {
			size_t r = qbase + (size_t)i * ld + d;
			gv += pcol[i] * a.dout[r];
			gk += dscol[i] * a.q[r];
		}
		if (dv)
			dv[koff + d] += gv;
		if (dk)
			dk[koff + d] += a.scale * gk;
	}
}

static struct heads heads_of(const struct nn_attention *g, const float *q, const float *k, const float *v,
                             const float *out, const float *dout, const float *lse)
{
	struct heads a = { q, k, v, out, dout, lse, g->key_valid, g->H, g->Tq, g->Tk, g->D, g->causal, g->scale };
	return a;
}

void cuda_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                            const struct nn_attention *g)
{
	if (g->Tk + g->D > SHARED_FLOATS) {
		cuda_sync();
		cpu_attention_forward(out, lse, q, k, v, g);
		return;
	}
	if (g->B * g->H == 0 || g->Tq == 0)
		return;
	dim3 grid(g->Tq, g->B * g->H);
	forward_kernel<<<grid, THREADS, (g->Tk + g->D) * sizeof(float)>>>(out, lse, heads_of(g, q, k, v, NULL, NULL, NULL));
}

void cuda_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                             const float *v, const float *out, const float *lse, const struct nn_attention *g)
{
	if (g->Tk + g->D > SHARED_FLOATS || 2 * g->Tq > SHARED_FLOATS) {
		cuda_sync();
		cpu_attention_backward(dq, dk, dv, dout, q, k, v, out, lse, g);
		return;
	}
	if (g->B * g->H == 0 || g->Tq == 0 || g->Tk == 0)
		return;
	struct heads a = heads_of(g, q, k, v, out, dout, lse);
	if (dq)
		dq_kernel<<<dim3(g->Tq, g->B * g->H), THREADS, (g->Tk + g->D) * sizeof(float)>>>(dq, a);
	if (dk || dv)
		dkv_kernel<<<dim3(g->Tk, g->B * g->H), THREADS, 2 * g->Tq * sizeof(float)>>>(dk, dv, a);
}
