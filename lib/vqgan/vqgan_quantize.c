/* The nearest-code quantiser (taming's VectorQuantizer2).
 *
 * For latents z [B, D, h, w] and the codebook E [n_embed, D], the squared
 * distances |z|^2 + |e|^2 - 2 z.e come from one matrix product per chunk of
 * latents, z^T E^T, computed as the reference does; then each latent takes
 * the first code of least distance (torch.argmin's choice on ties). Chunks
 * bound the score memory whatever the batch and codebook size.
 *
 * The argmin and the gathers of codebook rows run on the host, on backend
 * memory after nn->sync() (the CPU backend's memory is host memory, the
 * CUDA backend's is managed), so the outputs may be host or backend
 * memory alike. */
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "nn/ops.h"
#include "vqgan/vqgan_internal.h"

/* Scores per product: 16 MiB. */
#define CHUNK_FLOATS (1 << 22)

/* Receives the distances of latents p0..p0+np-1 of images b0..b0+nb-1:
 * dist[(g * np + p) * n_embed + code]. */
typedef void distances_fn(void *ctx, const float *dist, int b0, int nb, int p0, int np);

static void for_each_chunk(const struct vqgan *m, const float *z, int B, int hw, distances_fn *fn, void *ctx)
{
	int D = m->cfg.embed_dim, N = m->cfg.n_embed;
	const float *E = nn_param(&m->params, m->state->embedding);
	size_t per_image = (size_t)hw * N;
	int np = per_image <= CHUNK_FLOATS ? hw : (CHUNK_FLOATS / N > 0 ? CHUNK_FLOATS / N : 1);
	int nb = 1;
	if (np == hw) {
		size_t fit = CHUNK_FLOATS / per_image;
		nb = fit > (size_t)B ? B : (int)fit;
	}
	float *scores = nn->alloc((size_t)nb * np * N * sizeof *scores);
	if (!scores)
		die("out of %s memory for %d x %d code distances", nn->name, nb * np, N);
	float *ee = xmalloc((size_t)N * sizeof *ee);
	nn->sync();
	for (int n = 0; n < N; n++) {
		float s = 0;
		for (int d = 0; d < D; d++)
			s += E[(size_t)n * D + d] * E[(size_t)n * D + d];
		ee[n] = s;
	}
	for (int b0 = 0; b0 < B; b0 += nb) {
		int gb = B - b0 < nb ? B - b0 : nb;
		for (int p0 = 0; p0 < hw; p0 += np) {
			int gp = hw - p0 < np ? hw - p0 : np;
			const float *zc = z + (size_t)b0 * D * hw + p0;
			/* scores[g, p, :] = z[b0 + g, :, p0 + p]^T E^T */
			nn->gemm(1, 1, gp, N, D, 1.0f, zc, hw, (long)D * hw, E, D, 0, 0.0f, scores, N, (long)gp * N, gb);
			nn->sync();
			int rows = gb * gp;
			#pragma omp parallel for schedule(static) if ((long)rows * (N + D) > 32768)
			for (int r = 0; r < rows; r++) {
				const float *zr = zc + (size_t)(r / gp) * D * hw + r % gp;
				float zz = 0;
				for (int d = 0; d < D; d++)
					zz += zr[(size_t)d * hw] * zr[(size_t)d * hw];
				float *row = scores + (size_t)r * N;
				for (int n = 0; n < N; n++)
					row[n] = (zz + ee[n]) - 2 * row[n];
			}
			fn(ctx, scores, b0, gb, p0, gp);
		}
	}
	free(ee);
	nn->free(scores);
}

struct nearest {
	const struct vqgan *m;
	const float *z, *E;
	int hw;
	int32_t *idx;
	float *zq, *dist;
};

static void take_nearest(void *ctx, const float *dist, int b0, int nb, int p0, int np)
{
	const struct nearest *q = ctx;
	int D = q->m->cfg.embed_dim, N = q->m->cfg.n_embed, hw = q->hw, rows = nb * np;
	#pragma omp parallel for schedule(static) if ((long)rows * (N + D) > 32768)
	for (int r = 0; r < rows; r++) {
		const float *row = dist + (size_t)r * N;
		int best = 0;
		for (int n = 1; n < N; n++)
			if (row[n] < row[best])
				best = n;
		int b = b0 + r / np, p = p0 + r % np;
		size_t at = (size_t)b * hw + p;
		if (q->idx)
			q->idx[at] = best;
		const float *e = q->E + (size_t)best * D;
		const float *zr = q->z + (size_t)b * D * hw + p;
		float *zqr = q->zq ? q->zq + (size_t)b * D * hw + p : NULL;
		/* the exact squared distance, not the expanded form's rounding */
		float sq = 0;
		for (int d = 0; d < D; d++) {
			float diff = e[d] - zr[(size_t)d * hw];
			sq += diff * diff;
			if (zqr)
				zqr[(size_t)d * hw] = e[d];
		}
		if (q->dist)
			q->dist[at] = sq;
	}
}

void vqgan_quantize(const struct vqgan *m, const float *z, int B, int h, int w, int32_t *idx, float *zq,
                    float *dist)
{
	struct nearest q = {
		.m = m, .z = z, .E = nn_param(&m->params, m->state->embedding), .hw = h * w,
		.idx = idx, .zq = zq, .dist = dist,
	};
	if (B > 0 && h > 0 && w > 0)
		for_each_chunk(m, z, B, h * w, take_nearest, &q);
}

struct copy_rows {
	float *out;
	int hw, N;
};

static void copy_distances(void *ctx, const float *dist, int b0, int nb, int p0, int np)
{
	const struct copy_rows *c = ctx;
	for (int g = 0; g < nb; g++)
		memcpy(c->out + ((size_t)(b0 + g) * c->hw + p0) * c->N, dist + (size_t)g * np * c->N,
		       (size_t)np * c->N * sizeof *dist);
}

void vqgan_distances(const struct vqgan *m, const float *z, int B, int h, int w, float *dist)
{
	struct copy_rows c = { dist, h * w, m->cfg.n_embed };
	if (B > 0 && h > 0 && w > 0)
		for_each_chunk(m, z, B, h * w, copy_distances, &c);
}

void vqgan_lookup(const struct vqgan *m, const int32_t *idx, int B, int h, int w, float *zq)
{
	int D = m->cfg.embed_dim, hw = h * w;
	const float *E = nn_param(&m->params, m->state->embedding);
	nn->sync();
	long n = (long)B * hw;
	#pragma omp parallel for schedule(static) if (n * D > 32768)
	for (long i = 0; i < n; i++) {
		const float *e = E + (size_t)idx[i] * D;
		float *dst = zq + (size_t)(i / hw) * D * hw + i % hw;
		for (int d = 0; d < D; d++)
			dst[(size_t)d * hw] = e[d];
	}
}
