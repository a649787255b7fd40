/* 2-D convolution as matrix products, by one of two methods:
 * - Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions with at least
 *   WINO_MIN_CHANNELS channels in and out (most of a VQGAN or UNet): 2.25x
 *   fewer multiplications; see the section below.
 * - im2col ("unfolding") for everything else. For one image, unfolding the
 *   input into columns col[K, P] (K = IC*KH*KW kernel taps, P = OH*OW output
 *   pixels) turns the convolution into
 *     out[OC, P]  = weight[OC, K] col[K, P]
 *     dweight    += dout[OC, P] col^T
 *     dcol[K, P]  = weight^T dout,  folded back into dinp (col2im).
 *   A 1x1, stride-1, unpadded convolution needs no unfolding: col is the
 *   input itself, [IC, H*W].
 *
 * Memory stays bounded: images are processed a band of output rows at a
 * time, in scratch that is allocated once (cpu_scratch.h). Band heights
 * depend only on the geometry, never on the thread count.
 *
 * Parallelism and determinism (both methods):
 * - forward: threads take whole (image, band) units, each a fixed sequence
 *   of products.
 * - backward: thread t owns a fixed range of input channels (their kernel
 *   taps, dweight's columns for them, dinp's planes) and walks all images
 *   and bands in order, so every gradient element is written by one thread
 *   and accumulated in one order: no partial buffers, no reduction. Fewer
 *   threads are used when their share of a product would be small enough
 *   for OpenBLAS to switch kernels (cpu_product_threads), which keeps the
 *   results the same on any number of threads. dbias sums in double.
 */
#include "nn/cpu/cpu.h"

#include <cblas.h>
#include <omp.h>

#include "nn/cpu/cpu_math.h"
#include "nn/cpu/cpu_scratch.h"

/* ---- im2col ------------------------------------------------------------ */

/* Floats in one unfolded tile (K rows by tile columns): 1 MiB keeps it in
 * a core's L2 while OpenBLAS packs it. */
#define TILE_FLOATS (1 << 18)
/* ...but never fewer output pixels than this, or the products get too
 * narrow for OpenBLAS to run at speed. */
#define TILE_MIN_COLS 256

/* Derived sizes of one unfolded convolution. */
struct conv_dims {
	int OH, OW;
	int P;          /* output pixels per channel */
	int K;          /* kernel taps: rows of col, columns of weight */
	int tile_rows;  /* output rows per tile */
	int tiles;      /* tiles per image */
	int pointwise;  /* 1x1, stride 1, no padding: col is the input */
};

static struct conv_dims conv_dims(const struct nn_conv2d *g)
{
	struct conv_dims d;
	d.OH = nn_conv2d_out_h(g);
	d.OW = nn_conv2d_out_w(g);
	d.P = d.OH * d.OW;
	d.K = g->IC * g->KH * g->KW;
	d.pointwise = g->KH == 1 && g->KW == 1 && g->stride == 1 && !g->pad_top &&
	              !g->pad_left && !g->pad_bottom && !g->pad_right;
	long rows = d.OW > 0 ? TILE_FLOATS / ((long)d.K * d.OW) : 1;
	long min_rows = d.OW > 0 ? (TILE_MIN_COLS + d.OW - 1) / d.OW : 1;
	if (rows < min_rows)
		rows = min_rows;
	if (rows > d.OH)
		rows = d.OH;
	if (rows < 1)
		rows = 1;
	d.tiles = d.OH > 0 ? (int)((d.OH + rows - 1) / rows) : 0;
	/* Same tile count, heights as even as possible. */
	d.tile_rows = d.tiles > 0 ? (d.OH + d.tiles - 1) / d.tiles : 1;
	return d;
}

/* Output columns [lo, hi) of row `kw` of the kernel that read inside the
 * image; the rest read padding. */
static void valid_cols(const struct nn_conv2d *g, int OW, int kw, int *lo, int *hi)
{
	int s = g->stride;
	int first = g->pad_left - kw;          /* ow*s >= first */
	int last = g->W - 1 + g->pad_left - kw; /* ow*s <= last */
	*lo = first <= 0 ? 0 : (first + s - 1) / s;
	*hi = last < 0 ? 0 : last / s + 1;
	if (*hi > OW)
		*hi = OW;
	if (*lo > *hi)
		*lo = *hi;
}

/* col[k - k0, (oh - oh0) * OW + ow] = input tap k at output (oh, ow), for
 * kernel taps [k0, k1) and output rows [oh0, oh1) of one image. */
CPU_BODY void im2col_body(float *restrict col, const float *restrict img,
                          const struct nn_conv2d *g, int OW, int k0, int k1, int oh0, int oh1)
{
	int KK = g->KH * g->KW, s = g->stride;
	size_t n = (size_t)(oh1 - oh0) * OW;
	for (int k = k0; k < k1; k++) {
		int c = k / KK, kh = k % KK / g->KW, kw = k % g->KW, lo, hi;
		valid_cols(g, OW, kw, &lo, &hi);
		const float *plane = img + (size_t)c * g->H * g->W;
		float *dst = col + (k - k0) * n;
		for (int oh = oh0; oh < oh1; oh++, dst += OW) {
			int ih = oh * s - g->pad_top + kh;
			if (ih < 0 || ih >= g->H) {
				for (int ow = 0; ow < OW; ow++)
					dst[ow] = 0;
				continue;
			}
			const float *row = plane + (size_t)ih * g->W;
			int shift = kw - g->pad_left; /* input column of ow is ow*s + shift */
			for (int ow = 0; ow < lo; ow++)
				dst[ow] = 0;
			if (s == 1) {
				const float *src = row + lo + shift;
				for (int ow = lo; ow < hi; ow++)
					dst[ow] = src[ow - lo];
			} else {
				for (int ow = lo; ow < hi; ow++)
					dst[ow] = row[ow * s + shift];
			}
			for (int ow = hi; ow < OW; ow++)
				dst[ow] = 0;
		}
	}
}
CPU_DISPATCH(im2col, (float *restrict col, const float *restrict img, const struct nn_conv2d *g,
                      int OW, int k0, int k1, int oh0, int oh1),
             (col, img, g, OW, k0, k1, oh0, oh1))

/* The adjoint of im2col: adds dcol's taps back onto the input pixels they
 * were read from (padding taps are dropped). */
CPU_BODY void col2im_body(float *restrict img, const float *restrict dcol,
                          const struct nn_conv2d *g, int OW, int k0, int k1, int oh0, int oh1)
{
	int KK = g->KH * g->KW, s = g->stride;
	size_t n = (size_t)(oh1 - oh0) * OW;
	for (int k = k0; k < k1; k++) {
		int c = k / KK, kh = k % KK / g->KW, kw = k % g->KW, lo, hi;
		valid_cols(g, OW, kw, &lo, &hi);
		float *plane = img + (size_t)c * g->H * g->W;
		const float *src = dcol + (k - k0) * n;
		for (int oh = oh0; oh < oh1; oh++, src += OW) {
			int ih = oh * s - g->pad_top + kh;
			if (ih < 0 || ih >= g->H)
				continue;
			float *row = plane + (size_t)ih * g->W;
			int shift = kw - g->pad_left;
			if (s == 1) {
				float *dst = row + lo + shift;
				for (int ow = lo; ow < hi; ow++)
					dst[ow - lo] += src[ow];
			} else {
				for (int ow = lo; ow < hi; ow++)
					row[ow * s + shift] += src[ow];
			}
		}
	}
}
CPU_DISPATCH(col2im, (float *restrict img, const float *restrict dcol, const struct nn_conv2d *g,
                      int OW, int k0, int k1, int oh0, int oh1),
             (img, dcol, g, OW, k0, k1, oh0, oh1))

static void unfolded_forward(float *out, const float *inp, const float *weight, const float *bias,
                             const struct nn_conv2d *g)
{
	struct conv_dims d = conv_dims(g);
	size_t in_image = (size_t)g->IC * g->H * g->W, out_image = (size_t)g->OC * d.P;
	int units = g->B * d.tiles;
	#pragma omp parallel
	{
		float *col = d.pointwise ? NULL
		             : cpu_scratch((size_t)d.K * d.tile_rows * d.OW * sizeof(float));
		#pragma omp for schedule(static)
		for (int u = 0; u < units; u++) {
			int b = u / d.tiles, oh0 = u % d.tiles * d.tile_rows;
			int oh1 = oh0 + d.tile_rows < d.OH ? oh0 + d.tile_rows : d.OH;
			int n = (oh1 - oh0) * d.OW, off = oh0 * d.OW;
			const float *img = inp + b * in_image;
			const float *src = img + off;
			int ld = d.P;
			if (!d.pointwise) {
				im2col(col, img, g, d.OW, 0, d.K, oh0, oh1);
				src = col;
				ld = n;
			}
			float *o = out + b * out_image + off;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->OC, n, d.K, 1,
			            weight, d.K, src, ld, 0, o, d.P);
			if (bias)
				for (int oc = 0; oc < g->OC; oc++) {
					float *restrict row = o + (size_t)oc * d.P;
					for (int j = 0; j < n; j++)
						row[j] += bias[oc];
				}
		}
	}
}

static void unfolded_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                              const float *weight, const struct nn_conv2d *g)
{
	struct conv_dims d = conv_dims(g);
	size_t HW = (size_t)g->H * g->W;
	size_t in_image = g->IC * HW, out_image = (size_t)g->OC * d.P;
	/* Threads own whole input channels when they write dinp (col2im of a
	 * channel's taps lands on that channel only); for dweight alone any
	 * split of the taps will do. Fewer threads when their products would be
	 * small (cpu_product_threads), so that results do not depend on the
	 * thread count. */
	int KK = g->KH * g->KW;
	int split_unit = dinp ? KK : 1, split_n = d.K / split_unit;
	int threads = cpu_product_threads((double)g->OC * d.K * d.tile_rows * d.OW, split_n);
	#pragma omp parallel num_threads(threads)
	{
		int t = omp_get_thread_num(), T = omp_get_num_threads();
		int k0 = (int)((long)split_n * t / T) * split_unit;
		int k1 = (int)((long)split_n * (t + 1) / T) * split_unit;
		int kr = k1 - k0;
		size_t tile_floats = (size_t)kr * d.tile_rows * d.OW;
		float *col = NULL, *dcol = NULL;
		if (!d.pointwise && kr > 0) {
			col = cpu_scratch(2 * tile_floats * sizeof(float));
			dcol = col + tile_floats;
		}
		for (int b = 0; b < g->B && kr > 0; b++) {
			const float *img = inp + b * in_image;
			const float *dimg_out = dout + b * out_image;
			float *dimg = dinp ? dinp + b * in_image : NULL;
			for (int oh0 = 0; oh0 < d.OH; oh0 += d.tile_rows) {
				int oh1 = oh0 + d.tile_rows < d.OH ? oh0 + d.tile_rows : d.OH;
				int n = (oh1 - oh0) * d.OW, off = oh0 * d.OW;
				const float *dy = dimg_out + off;
				if (dweight) { /* dweight[:, k0:k1] += dy col[k0:k1]^T */
					const float *src = img + k0 * HW + off;
					int ld = d.P;
					if (!d.pointwise) {
						im2col(col, img, g, d.OW, k0, k1, oh0, oh1);
						src = col;
						ld = n;
					}
					cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->OC, kr, n, 1,
					            dy, d.P, src, ld, 1, dweight + k0, d.K);
				}
				if (dimg && d.pointwise) { /* dinp[k0:k1] += weight[:, k0:k1]^T dy */
					cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kr, n, g->OC, 1,
					            weight + k0, d.K, dy, d.P, 1, dimg + k0 * HW + off, (int)HW);
				} else if (dimg) {
					cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kr, n, g->OC, 1,
					            weight + k0, d.K, dy, d.P, 0, dcol, n);
					col2im(dimg, dcol, g, d.OW, k0, k1, oh0, oh1);
				}
			}
		}
	}
}

/* ---- Winograd F(2x2, 3x3) ------------------------------------------------
 *
 * A 3x3 stride-1 convolution computes each 2x2 block of outputs from a 4x4
 * block of inputs, overlapping its neighbours by 2. In the transformed
 * domain that is an elementwise product: with U = G g G^T (the 3x3 kernel g
 * made 4x4) and V = B^T d B (the 4x4 input block d),
 *   Y = A^T (U .* V) A,
 * and summing over input channels turns the 16 products into 16 matrix
 * products, M[xi][OC, tiles] = U[xi][OC, IC] V[xi][IC, tiles]. That is 2.25x
 * fewer multiplications than im2col's product; the transforms only add and
 * halve, so float32 results agree with direct convolution to ~1e-6.
 *
 * The backward pass is the exact adjoint of these steps: dM = A dY A^T,
 *   dU[xi] += dM[xi] V[xi]^T   (then dweight += G^T dU G),
 *   dV[xi]  = U[xi]^T dM[xi]   (then dinp += B dV B^T, tiles overlapping).
 *
 * Images are processed a band of tile rows at a time. An input band is first
 * copied into a zero-bordered buffer so that the transforms run without edge
 * cases; likewise outputs go through a buffer of whole tiles. Thread work is
 * split as for the unfolded convolution: forward by (image, band), backward
 * by input channel (each thread owns dU's and dinp's columns and channels for
 * its range). The transformed weights U and output gradient dM are shared;
 * each band's dM is made by all threads, hence two barriers per band. */

/* Multiply-adds of one of a band's 16 products (OC x IC x tiles), which
 * sets the band height. Forward: small bands keep a band's transformed
 * input and output in a core's L2 between the transforms and the products
 * (measured with 128 channels on 32x32: 32 tiles 10% faster than 128), and
 * give the threads work even for one image. Backward: larger, as every band
 * costs two barriers and its products are split among the threads, whose
 * shares must stay large (cpu_product_threads). Never fewer tiles than
 * WINO_MIN_TILES, or the products get too thin for OpenBLAS. */
#define WINO_FORWARD_MNK (1 << 19)
#define WINO_BACKWARD_MNK (1 << 24)
#define WINO_MIN_TILES 32
/* Floats of working memory one band may use (16 MiB). */
#define WINO_BAND_FLOATS (1 << 22)
/* Below this many channels on either side the 16 products are too thin for
 * the smaller multiplication count to pay for the transforms (measured on
 * 64x64 images: Winograd 1.3x faster at 64 channels, even at 32, slower
 * at 16). */
#define WINO_MIN_CHANNELS 64
/* Below this many 2x2 tiles per image (images under 16x16), each product
 * is too thin for the transforms to pay: an 8x8 image at 256 channels ran
 * 1.4x faster unfolded. */
#define WINO_MIN_IMAGE_TILES 64

struct wino_dims {
	int OH, OW;
	int TY, TX;    /* 2x2 output tiles down and across */
	int Wt;        /* width of a zero-bordered input band: 2*TX + 2 */
	int band;      /* tile rows per band */
	int bands;
};

static int winograd_fits(const struct nn_conv2d *g)
{
	return g->KH == 3 && g->KW == 3 && g->stride == 1 && g->IC >= WINO_MIN_CHANNELS &&
	       g->OC >= WINO_MIN_CHANNELS &&
	       (long)((g->H + 1) / 2) * ((g->W + 1) / 2) >= WINO_MIN_IMAGE_TILES;
}

/* Bands of at most `band` tile rows, as even as possible. */
static void wino_set_band(struct wino_dims *w, int band)
{
	if (band > w->TY)
		band = w->TY;
	if (band < 1)
		band = 1;
	w->bands = (w->TY + band - 1) / band;
	w->band = (w->TY + w->bands - 1) / w->bands;
}

/* The band height depends only on the geometry and the pass, never on the
 * thread count, so the products, and so the results, are the same on any
 * number of threads. */
static struct wino_dims wino_dims(const struct nn_conv2d *g, long band_mnk)
{
	struct wino_dims w;
	w.OH = nn_conv2d_out_h(g);
	w.OW = nn_conv2d_out_w(g);
	w.TY = (w.OH + 1) / 2;
	w.TX = (w.OW + 1) / 2;
	w.Wt = 2 * w.TX + 2;
	long per_tile = 16L * (g->IC + g->OC) + 4L * g->IC;
	long tiles = band_mnk / ((long)g->IC * g->OC) + 1;
	if (tiles < WINO_MIN_TILES)
		tiles = WINO_MIN_TILES;
	if (tiles > WINO_BAND_FLOATS / per_tile)
		tiles = WINO_BAND_FLOATS / per_tile;
	wino_set_band(&w, (int)(tiles / w.TX));
	return w;
}

/* Floats from one of the 16 planes U[xi] to the next. A power-of-two
 * spacing (OC * IC often is one) maps the 16 write streams of the weight
 * transform to the same cache sets, which made it 8x slower. */
static size_t wino_plane(int OC, int IC)
{
	return (size_t)OC * IC + 16;
}

/* U[xi][oc][ic] = (G g G^T)[xi] for output channels [oc0, oc1), with
 * G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]. */
static void wino_weights(float *restrict U, const float *restrict weight, int OC, int IC,
                         int oc0, int oc1)
{
	size_t plane = wino_plane(OC, IC);
	for (int oc = oc0; oc < oc1; oc++)
		for (int ic = 0; ic < IC; ic++) {
			const float *k = weight + ((size_t)oc * IC + ic) * 9;
			float t[4][3];
			for (int j = 0; j < 3; j++) {
				t[0][j] = k[j];
				t[1][j] = 0.5f * (k[j] + k[3 + j] + k[6 + j]);
				t[2][j] = 0.5f * (k[j] - k[3 + j] + k[6 + j]);
				t[3][j] = k[6 + j];
			}
			float *u = U + (size_t)oc * IC + ic;
			for (int i = 0; i < 4; i++) {
				u[(4 * i + 0) * plane] = t[i][0];
				u[(4 * i + 1) * plane] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
				u[(4 * i + 2) * plane] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
				u[(4 * i + 3) * plane] = t[i][2];
			}
		}
}

/* dweight[oc][ic] += G^T dU[.][oc][ic] G for input channels [ic0, ic1). */
static void wino_weights_backward(float *restrict dweight, const float *restrict dU, int OC,
                                  int IC, int ic0, int ic1)
{
	size_t plane = wino_plane(OC, IC);
	for (int oc = 0; oc < OC; oc++)
		for (int ic = ic0; ic < ic1; ic++) {
			const float *u = dU + (size_t)oc * IC + ic;
			float t[3][4];
			for (int j = 0; j < 4; j++) {
				float u0 = u[j * plane], u1 = u[(4 + j) * plane];
				float u2 = u[(8 + j) * plane], u3 = u[(12 + j) * plane];
				t[0][j] = u0 + 0.5f * (u1 + u2);
				t[1][j] = 0.5f * (u1 - u2);
				t[2][j] = 0.5f * (u1 + u2) + u3;
			}
			float *k = dweight + ((size_t)oc * IC + ic) * 9;
			for (int i = 0; i < 3; i++) {
				k[3 * i + 0] += t[i][0] + 0.5f * (t[i][1] + t[i][2]);
				k[3 * i + 1] += 0.5f * (t[i][1] - t[i][2]);
				k[3 * i + 2] += 0.5f * (t[i][1] + t[i][2]) + t[i][3];
			}
		}
}

/* Band buffers store each row with its even columns first, then its odd
 * ones, so that the four columns 2tx..2tx+3 of tile tx are E[tx], O[tx],
 * E[tx+1], O[tx+1]: contiguous loads that vectorise, where the natural
 * layout would need stride-2 gathers. A padded input row has TX+1 columns in
 * each half (Wt = 2*TX + 2 in all); an output row has TX. */

/* Where input column iw of a padded row goes: padded column j = iw + pl,
 * so even input columns land in one half and odd ones in the other, at
 * consecutive places. */
struct row_split {
	int even_in_odd_half; /* pl odd: even input columns are odd padded ones */
	int k_even, k_odd;    /* place of input columns 0 and 1 in their halves */
};

static struct row_split row_split(int pl)
{
	return (struct row_split){pl & 1, pl >> 1, (pl + 1) >> 1};
}

/* e, o: the even and odd halves of a padded row; src: an input row of W. */
CPU_BODY void wino_split_row_body(float *restrict e, float *restrict o, const float *restrict src,
                                  int W, struct row_split s)
{
	float *a = (s.even_in_odd_half ? o : e) + s.k_even;
	float *b = (s.even_in_odd_half ? e : o) + s.k_odd;
	#pragma omp simd
	for (int m = 0; m < W / 2; m++) {
		a[m] = src[2 * m];
		b[m] = src[2 * m + 1];
	}
	if (W & 1)
		a[W / 2] = src[W - 1];
}
CPU_DISPATCH(wino_split_row, (float *restrict e, float *restrict o, const float *restrict src,
                              int W, struct row_split s),
             (e, o, src, W, s))

/* The adjoint: dst (an input row of W) += the padded row's halves. */
CPU_BODY void wino_merge_row_body(float *restrict dst, const float *restrict e,
                                  const float *restrict o, int W, struct row_split s)
{
	const float *a = (s.even_in_odd_half ? o : e) + s.k_even;
	const float *b = (s.even_in_odd_half ? e : o) + s.k_odd;
	#pragma omp simd
	for (int m = 0; m < W / 2; m++) {
		dst[2 * m] += a[m];
		dst[2 * m + 1] += b[m];
	}
	if (W & 1)
		dst[W - 1] += a[W / 2];
}
CPU_DISPATCH(wino_merge_row, (float *restrict dst, const float *restrict e,
                              const float *restrict o, int W, struct row_split s),
             (dst, e, o, W, s))

/* Copies input channels [c0, c1) of one image, for the band of tile rows
 * [ty0, ty0 + nty), into zero-bordered planes of (2*nty + 2) rows of Wt:
 * row r is input row 2*ty0 + r - pad_top, padded column j is input column
 * j - pad_left. */
static void wino_pad_band(float *restrict pad, const float *restrict img,
                          const struct nn_conv2d *g, const struct wino_dims *w, int ty0,
                          int nty, int c0, int c1)
{
	int R = 2 * nty + 2, half = w->TX + 1;
	struct row_split split = row_split(g->pad_left);
	for (int c = c0; c < c1; c++) {
		float *p = pad + (size_t)(c - c0) * R * w->Wt;
		const float *plane = img + (size_t)c * g->H * g->W;
		for (int r = 0; r < R; r++, p += w->Wt) {
			int ih = 2 * ty0 + r - g->pad_top;
			for (int j = 0; j < w->Wt; j++)
				p[j] = 0;
			if (ih >= 0 && ih < g->H)
				wino_split_row(p, p + half, plane + (size_t)ih * g->W, g->W, split);
		}
	}
}

/* 1-D transforms of four (or two) values; the 2-D ones apply them to the
 * rows of a tile and then to its columns. */
struct f4 {
	float v0, v1, v2, v3;
};
struct f2 {
	float v0, v1;
};
/* B^T d with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] */
static inline struct f4 wino_bt(float d0, float d1, float d2, float d3)
{
	return (struct f4){d0 - d2, d1 + d2, d2 - d1, d1 - d3};
}
/* B v, its adjoint */
static inline struct f4 wino_b(float v0, float v1, float v2, float v3)
{
	return (struct f4){v0, v1 - v2 + v3, v1 + v2 - v0, -v3};
}
/* A^T m with A^T = [1 1 1 0; 0 1 -1 -1] */
static inline struct f2 wino_at(float m0, float m1, float m2, float m3)
{
	return (struct f2){m0 + m1 + m2, m1 - m2 - m3};
}
/* A y, its adjoint */
static inline struct f4 wino_a(float y0, float y1)
{
	return (struct f4){y0, y0 + y1, y0 - y1, -y1};
}

/* V[xi * ldx + ty*TX + tx] = (B^T d B)[xi] for the tiles of one padded band
 * plane. */
CPU_BODY void wino_input_body(float *restrict V, size_t ldx, const float *restrict pad, int nty,
                              int TX, int Wt)
{
	int half = TX + 1;
	for (int ty = 0; ty < nty; ty++) {
		const float *e0 = pad + (size_t)2 * ty * Wt, *e1 = e0 + Wt, *e2 = e1 + Wt, *e3 = e2 + Wt;
		const float *o0 = e0 + half, *o1 = e1 + half, *o2 = e2 + half, *o3 = e3 + half;
		float *v = V + (size_t)ty * TX;
		#pragma omp simd
		for (int tx = 0; tx < TX; tx++) {
			/* rows of the tile, each transformed across its columns */
			struct f4 h0 = wino_bt(e0[tx], o0[tx], e0[tx + 1], o0[tx + 1]);
			struct f4 h1 = wino_bt(e1[tx], o1[tx], e1[tx + 1], o1[tx + 1]);
			struct f4 h2 = wino_bt(e2[tx], o2[tx], e2[tx + 1], o2[tx + 1]);
			struct f4 h3 = wino_bt(e3[tx], o3[tx], e3[tx + 1], o3[tx + 1]);
			/* then down each column: element (i, j) goes to xi = 4i + j */
			struct f4 c0 = wino_bt(h0.v0, h1.v0, h2.v0, h3.v0);
			struct f4 c1 = wino_bt(h0.v1, h1.v1, h2.v1, h3.v1);
			struct f4 c2 = wino_bt(h0.v2, h1.v2, h2.v2, h3.v2);
			struct f4 c3 = wino_bt(h0.v3, h1.v3, h2.v3, h3.v3);
			v[0 * ldx + tx] = c0.v0, v[1 * ldx + tx] = c1.v0;
			v[2 * ldx + tx] = c2.v0, v[3 * ldx + tx] = c3.v0;
			v[4 * ldx + tx] = c0.v1, v[5 * ldx + tx] = c1.v1;
			v[6 * ldx + tx] = c2.v1, v[7 * ldx + tx] = c3.v1;
			v[8 * ldx + tx] = c0.v2, v[9 * ldx + tx] = c1.v2;
			v[10 * ldx + tx] = c2.v2, v[11 * ldx + tx] = c3.v2;
			v[12 * ldx + tx] = c0.v3, v[13 * ldx + tx] = c1.v3;
			v[14 * ldx + tx] = c2.v3, v[15 * ldx + tx] = c3.v3;
		}
	}
}
CPU_DISPATCH(wino_input, (float *restrict V, size_t ldx, const float *restrict pad, int nty,
                          int TX, int Wt),
             (V, ldx, pad, nty, TX, Wt))

/* The adjoint of wino_input: pad += B dV B^T, tile by tile. Tiles overlap
 * their neighbours, so each tile row first goes to `tmp` (16 * TX floats)
 * and is then added in two passes, the first two columns of every tile and
 * then the last two, each touching distinct columns. */
CPU_BODY void wino_input_backward_body(float *restrict pad, const float *restrict dV,
                                       size_t ldx, float *restrict tmp, int nty, int TX, int Wt)
{
	int half = TX + 1;
	for (int ty = 0; ty < nty; ty++) {
		const float *v = dV + (size_t)ty * TX;
		#pragma omp simd
		for (int tx = 0; tx < TX; tx++) {
			struct f4 h0 = wino_b(v[0 * ldx + tx], v[1 * ldx + tx], v[2 * ldx + tx], v[3 * ldx + tx]);
			struct f4 h1 = wino_b(v[4 * ldx + tx], v[5 * ldx + tx], v[6 * ldx + tx], v[7 * ldx + tx]);
			struct f4 h2 = wino_b(v[8 * ldx + tx], v[9 * ldx + tx], v[10 * ldx + tx], v[11 * ldx + tx]);
			struct f4 h3 = wino_b(v[12 * ldx + tx], v[13 * ldx + tx], v[14 * ldx + tx], v[15 * ldx + tx]);
			struct f4 c0 = wino_b(h0.v0, h1.v0, h2.v0, h3.v0);
			struct f4 c1 = wino_b(h0.v1, h1.v1, h2.v1, h3.v1);
			struct f4 c2 = wino_b(h0.v2, h1.v2, h2.v2, h3.v2);
			struct f4 c3 = wino_b(h0.v3, h1.v3, h2.v3, h3.v3);
			/* tmp[(4i + j) * TX + tx]: row i, column j of the tile */
			tmp[0 * TX + tx] = c0.v0, tmp[1 * TX + tx] = c1.v0;
			tmp[2 * TX + tx] = c2.v0, tmp[3 * TX + tx] = c3.v0;
			tmp[4 * TX + tx] = c0.v1, tmp[5 * TX + tx] = c1.v1;
			tmp[6 * TX + tx] = c2.v1, tmp[7 * TX + tx] = c3.v1;
			tmp[8 * TX + tx] = c0.v2, tmp[9 * TX + tx] = c1.v2;
			tmp[10 * TX + tx] = c2.v2, tmp[11 * TX + tx] = c3.v2;
			tmp[12 * TX + tx] = c0.v3, tmp[13 * TX + tx] = c1.v3;
			tmp[14 * TX + tx] = c2.v3, tmp[15 * TX + tx] = c3.v3;
		}
		for (int i = 0; i < 4; i++) {
			float *e = pad + (size_t)(2 * ty + i) * Wt, *o = e + half;
			const float *t = tmp + 4 * i * TX;
			#pragma omp simd
			for (int tx = 0; tx < TX; tx++) {
				e[tx] += t[tx];
				o[tx] += t[TX + tx];
			}
			#pragma omp simd
			for (int tx = 0; tx < TX; tx++) {
				e[tx + 1] += t[2 * TX + tx];
				o[tx + 1] += t[3 * TX + tx];
			}
		}
	}
}
CPU_DISPATCH(wino_input_backward, (float *restrict pad, const float *restrict dV, size_t ldx,
                                   float *restrict tmp, int nty, int TX, int Wt),
             (pad, dV, ldx, tmp, nty, TX, Wt))

/* One output channel of a band: output rows from 2*ty0 of the image plane
 * get A^T M A (+ bias), cropped to OH x OW. `ybuf` holds 2*nty rows of 2*TX
 * (even columns, then odd). */
CPU_BODY void wino_output_body(float *restrict plane, const float *restrict M, size_t ldx,
                               float *restrict ybuf, const struct wino_dims *w, int ty0,
                               int nty, float bias)
{
	int TX = w->TX, Wy = 2 * TX;
	for (int ty = 0; ty < nty; ty++) {
		const float *m = M + (size_t)ty * TX;
		float *e0 = ybuf + (size_t)2 * ty * Wy, *o0 = e0 + TX, *e1 = e0 + Wy, *o1 = e1 + TX;
		#pragma omp simd
		for (int tx = 0; tx < TX; tx++) {
			/* down each column, then across the two rows left */
			struct f2 s0 = wino_at(m[0 * ldx + tx], m[4 * ldx + tx], m[8 * ldx + tx], m[12 * ldx + tx]);
			struct f2 s1 = wino_at(m[1 * ldx + tx], m[5 * ldx + tx], m[9 * ldx + tx], m[13 * ldx + tx]);
			struct f2 s2 = wino_at(m[2 * ldx + tx], m[6 * ldx + tx], m[10 * ldx + tx], m[14 * ldx + tx]);
			struct f2 s3 = wino_at(m[3 * ldx + tx], m[7 * ldx + tx], m[11 * ldx + tx], m[15 * ldx + tx]);
			struct f2 y0 = wino_at(s0.v0, s1.v0, s2.v0, s3.v0);
			struct f2 y1 = wino_at(s0.v1, s1.v1, s2.v1, s3.v1);
			e0[tx] = y0.v0 + bias, o0[tx] = y0.v1 + bias;
			e1[tx] = y1.v0 + bias, o1[tx] = y1.v1 + bias;
		}
	}
	int oh0 = 2 * ty0, rows = 2 * nty < w->OH - oh0 ? 2 * nty : w->OH - oh0;
	int pairs = w->OW / 2;
	for (int r = 0; r < rows; r++) {
		float *restrict dst = plane + (size_t)(oh0 + r) * w->OW;
		const float *e = ybuf + (size_t)r * Wy, *o = e + TX;
		for (int k = 0; k < pairs; k++) {
			dst[2 * k] = e[k];
			dst[2 * k + 1] = o[k];
		}
		if (w->OW & 1)
			dst[w->OW - 1] = e[pairs];
	}
}
CPU_DISPATCH(wino_output, (float *restrict plane, const float *restrict M, size_t ldx,
                           float *restrict ybuf, const struct wino_dims *w, int ty0, int nty,
                           float bias),
             (plane, M, ldx, ybuf, w, ty0, nty, bias))

/* The adjoint of wino_output for one output channel of a band:
 * dM = A dY A^T from the gradient plane (zero beyond OH x OW). `ybuf`
 * holds 2*nty rows of 2*TX (even columns, then odd). */
CPU_BODY void wino_output_backward_body(float *restrict dM, size_t ldx,
                                        const float *restrict plane, float *restrict ybuf,
                                        const struct wino_dims *w, int ty0, int nty)
{
	int TX = w->TX, Wy = 2 * TX, oh0 = 2 * ty0, pairs = w->OW / 2;
	for (int r = 0; r < 2 * nty; r++) {
		float *restrict e = ybuf + (size_t)r * Wy, *restrict o = e + TX;
		const float *src = plane + (size_t)(oh0 + r) * w->OW;
		for (int k = 0; k < TX; k++)
			e[k] = o[k] = 0;
		if (oh0 + r >= w->OH)
			continue;
		for (int k = 0; k < pairs; k++) {
			e[k] = src[2 * k];
			o[k] = src[2 * k + 1];
		}
		if (w->OW & 1)
			e[pairs] = src[w->OW - 1];
	}
	for (int ty = 0; ty < nty; ty++) {
		const float *e0 = ybuf + (size_t)2 * ty * Wy, *o0 = e0 + TX, *e1 = e0 + Wy, *o1 = e1 + TX;
		float *m = dM + (size_t)ty * TX;
		#pragma omp simd
		for (int tx = 0; tx < TX; tx++) {
			struct f4 u0 = wino_a(e0[tx], e1[tx]); /* column 0 */
			struct f4 u1 = wino_a(o0[tx], o1[tx]); /* column 1 */
			struct f4 r0 = wino_a(u0.v0, u1.v0);
			struct f4 r1 = wino_a(u0.v1, u1.v1);
			struct f4 r2 = wino_a(u0.v2, u1.v2);
			struct f4 r3 = wino_a(u0.v3, u1.v3);
			m[0 * ldx + tx] = r0.v0, m[1 * ldx + tx] = r0.v1;
			m[2 * ldx + tx] = r0.v2, m[3 * ldx + tx] = r0.v3;
			m[4 * ldx + tx] = r1.v0, m[5 * ldx + tx] = r1.v1;
			m[6 * ldx + tx] = r1.v2, m[7 * ldx + tx] = r1.v3;
			m[8 * ldx + tx] = r2.v0, m[9 * ldx + tx] = r2.v1;
			m[10 * ldx + tx] = r2.v2, m[11 * ldx + tx] = r2.v3;
			m[12 * ldx + tx] = r3.v0, m[13 * ldx + tx] = r3.v1;
			m[14 * ldx + tx] = r3.v2, m[15 * ldx + tx] = r3.v3;
		}
	}
}
CPU_DISPATCH(wino_output_backward, (float *restrict dM, size_t ldx, const float *restrict plane,
                                    float *restrict ybuf, const struct wino_dims *w, int ty0,
                                    int nty),
             (dM, ldx, plane, ybuf, w, ty0, nty))

static void winograd_forward(float *out, const float *inp, const float *weight,
                             const float *bias, const struct nn_conv2d *g)
{
	struct wino_dims w = wino_dims(g, WINO_FORWARD_MNK);
	int IC = g->IC, OC = g->OC;
	size_t tiles = (size_t)w.band * w.TX;
	size_t pad_floats = (size_t)IC * (2 * w.band + 2) * w.Wt;
	size_t ybuf_floats = (size_t)2 * w.band * 2 * w.TX;
	size_t in_image = (size_t)IC * g->H * g->W, out_image = (size_t)OC * w.OH * w.OW;
	float *U = cpu_scratch_shared(16 * wino_plane(OC, IC) * sizeof(float));
	int units = g->B * w.bands;
	#pragma omp parallel
	{
		#pragma omp for schedule(static)
		for (int oc = 0; oc < OC; oc++)
			wino_weights(U, weight, OC, IC, oc, oc + 1);
		float *pad = cpu_scratch((pad_floats + 16 * tiles * (IC + OC) + ybuf_floats) *
		                         sizeof(float));
		float *V = pad + pad_floats, *M = V + 16 * tiles * IC, *ybuf = M + 16 * tiles * OC;
		#pragma omp for schedule(static)
		for (int u = 0; u < units; u++) {
			int b = u / w.bands, ty0 = u % w.bands * w.band;
			int nty = ty0 + w.band < w.TY ? w.band : w.TY - ty0;
			int n = nty * w.TX;
			const float *img = inp + b * in_image;
			wino_pad_band(pad, img, g, &w, ty0, nty, 0, IC);
			for (int ic = 0; ic < IC; ic++)
				wino_input(V + (size_t)ic * n, (size_t)IC * n,
				           pad + (size_t)ic * (2 * nty + 2) * w.Wt, nty, w.TX, w.Wt);
			for (int xi = 0; xi < 16; xi++)
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, n, IC, 1,
				            U + xi * wino_plane(OC, IC), IC, V + (size_t)xi * IC * n, n, 0,
				            M + (size_t)xi * OC * n, n);
			for (int oc = 0; oc < OC; oc++)
				wino_output(out + b * out_image + (size_t)oc * w.OH * w.OW,
				            M + (size_t)oc * n, (size_t)OC * n, ybuf, &w, ty0, nty,
				            bias ? bias[oc] : 0);
		}
	}
}

static void winograd_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                              const float *weight, const struct nn_conv2d *g)
{
	struct wino_dims w = wino_dims(g, WINO_BACKWARD_MNK);
	int IC = g->IC, OC = g->OC;
	size_t tiles = (size_t)w.band * w.TX, xi_plane = wino_plane(OC, IC);
	size_t in_image = (size_t)IC * g->H * g->W, out_image = (size_t)OC * w.OH * w.OW;
	size_t band_plane = (size_t)(2 * w.band + 2) * w.Wt;
	size_t ybuf_floats = (size_t)2 * w.band * 2 * w.TX;
	/* Shared: U (for dinp), dU (for dweight), dM. */
	float *shared = cpu_scratch_shared((32 * xi_plane + 16 * tiles * OC) * sizeof(float));
	float *U = shared, *dU = U + 16 * xi_plane, *dM = dU + 16 * xi_plane;
	int threads = cpu_product_threads((double)OC * IC * tiles, IC);
	#pragma omp parallel num_threads(threads)
	{
		int t = omp_get_thread_num(), T = omp_get_num_threads();
		int c0 = (int)((long)IC * t / T), c1 = (int)((long)IC * (t + 1) / T), nc = c1 - c0;
		int o0 = (int)((long)OC * t / T), o1 = (int)((long)OC * (t + 1) / T);
		if (dinp)
			wino_weights(U, weight, OC, IC, o0, o1);
		if (dweight)
			for (int xi = 0; xi < 16; xi++)
				for (int oc = 0; oc < OC; oc++)
					for (int ic = c0; ic < c1; ic++)
						dU[xi * xi_plane + (size_t)oc * IC + ic] = 0;
		/* Private: the padded band of my channels, V then dV, and the
		 * per-channel buffers of the two transforms. */
		size_t pad_floats = (size_t)nc * band_plane;
		size_t tmp_floats = 16 * (size_t)w.TX > ybuf_floats ? 16 * (size_t)w.TX : ybuf_floats;
		float *pad = cpu_scratch((pad_floats + 16 * tiles * nc + tmp_floats + band_plane) *
		                         sizeof(float));
		float *V = pad + pad_floats, *tmp = V + 16 * tiles * nc, *dpad = tmp + tmp_floats;
		#pragma omp barrier
		for (int b = 0; b < g->B; b++) {
			const float *img = inp + b * in_image;
			float *dimg = dinp ? dinp + b * in_image : NULL;
			for (int ty0 = 0; ty0 < w.TY; ty0 += w.band) {
				int nty = ty0 + w.band < w.TY ? w.band : w.TY - ty0;
				int n = nty * w.TX;
				for (int oc = o0; oc < o1; oc++)
					wino_output_backward(dM + (size_t)oc * n, (size_t)OC * n,
					                     dout + b * out_image + (size_t)oc * w.OH * w.OW,
					                     tmp, &w, ty0, nty);
				#pragma omp barrier
				if (dweight) { /* dU[:, :, c0:c1] += dM V^T */
					wino_pad_band(pad, img, g, &w, ty0, nty, c0, c1);
					for (int ic = 0; ic < nc; ic++)
						wino_input(V + (size_t)ic * n, (size_t)nc * n,
						           pad + (size_t)ic * (2 * nty + 2) * w.Wt, nty, w.TX, w.Wt);
					for (int xi = 0; xi < 16; xi++)
						cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OC, nc, n, 1,
						            dM + (size_t)xi * OC * n, n, V + (size_t)xi * nc * n, n, 1,
						            dU + xi * xi_plane + c0, IC);
				}
				if (dimg) { /* dV = U[:, c0:c1]^T dM, then dinp += B dV B^T */
					for (int xi = 0; xi < 16; xi++)
						cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nc, n, OC, 1,
						            U + xi * xi_plane + c0, IC, dM + (size_t)xi * OC * n, n, 0,
						            V + (size_t)xi * nc * n, n);
					int R = 2 * nty + 2;
					struct row_split split = row_split(g->pad_left);
					for (int ic = 0; ic < nc; ic++) {
						for (size_t i = 0; i < (size_t)R * w.Wt; i++)
							dpad[i] = 0;
						wino_input_backward(dpad, V + (size_t)ic * n, (size_t)nc * n, tmp,
						                    nty, w.TX, w.Wt);
						float *plane = dimg + (size_t)(c0 + ic) * g->H * g->W;
						for (int r = 0; r < R; r++) {
							int ih = 2 * ty0 + r - g->pad_top;
							const float *e = dpad + (size_t)r * w.Wt;
							if (ih >= 0 && ih < g->H)
								wino_merge_row(plane + (size_t)ih * g->W, e, e + w.TX + 1,
								               g->W, split);
						}
					}
				}
				/* dM is rewritten for the next band. */
				#pragma omp barrier
			}
		}
		if (dweight)
			wino_weights_backward(dweight, dU, OC, IC, c0, c1);
	}
}

/* ---- Entry points -------------------------------------------------------- */

/* dbias[oc] += sum over images and pixels of dout, in double. */
static void conv_bias_backward(float *dbias, const float *dout, int B, int OC, int P)
{
	#pragma omp parallel for schedule(static) if ((long)B * OC * P >= CPU_PARALLEL_MIN_WORK)
	for (int oc = 0; oc < OC; oc++) {
		double s = 0;
		for (int b = 0; b < B; b++) {
			const float *row = dout + ((size_t)b * OC + oc) * P;
			#pragma omp simd reduction(+:s)
			for (int p = 0; p < P; p++)
				s += row[p];
		}
		dbias[oc] += (float)s;
	}
}

void cpu_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                        const struct nn_conv2d *g)
{
	cpu_blas_single_threaded();
	if (g->B <= 0 || g->OC <= 0 || nn_conv2d_out_h(g) <= 0 || nn_conv2d_out_w(g) <= 0)
		return;
	if (winograd_fits(g))
		winograd_forward(out, inp, weight, bias, g);
	else
		unfolded_forward(out, inp, weight, bias, g);
}

void cpu_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, const struct nn_conv2d *g)
{
	cpu_blas_single_threaded();
	int OH = nn_conv2d_out_h(g), OW = nn_conv2d_out_w(g);
	if (g->B <= 0 || g->OC <= 0 || OH <= 0 || OW <= 0)
		return;
	if (dbias)
		conv_bias_backward(dbias, dout, g->B, g->OC, OH * OW);
	if ((!dinp && !dweight) || g->IC <= 0)
		return;
	if (winograd_fits(g))
		winograd_backward(dinp, dweight, dout, inp, weight, g);
	else
		unfolded_backward(dinp, dweight, dout, inp, weight, g);
}
