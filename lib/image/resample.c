/* Pillow-exact resizing; resample.h says what is reproduced and why. The
 * arithmetic below mirrors Pillow's operation for operation (the same
 * doubles in the same order, the same integer rounding), because any
 * reordering can move a weight by one unit of 2^-22 and a pixel by one level. */
#include "image/resample.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"

/* `omp simd` asks for vectorisation; the -O1 sanitizer build cannot oblige,
 * and Clang would warn about each such loop. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#define PRECISION_BITS 22
#define HALF (1 << (PRECISION_BITS - 1))

/* Below this many multiply-adds (about a millisecond) a pass runs on one
 * thread: starting a team costs more than it saves, more so when other jobs
 * hold the cores and the team's threads wait for them (a 136x128 sticker
 * shrunk to 32x32 is 0.3M), and callers often run images in parallel. */
#define PARALLEL_MIN_WORK (1 << 20)

/* ---- the kernels, as Pillow evaluates them ---- */

static double box_kernel(double x)
{
	return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
}

static double bilinear_kernel(double x)
{
	if (x < 0.0)
		x = -x;
	return x < 1.0 ? 1.0 - x : 0.0;
}

static double hamming_kernel(double x)
{
	if (x < 0.0)
		x = -x;
	if (x == 0.0)
		return 1.0;
	if (x >= 1.0)
		return 0.0;
	x = x * M_PI;
	/* Pillow's constants are floats, widened: 0.54f is not 0.54. */
	return sin(x) / x * (0.54f + 0.46f * cos(x));
}

static double bicubic_kernel(double x)
{
	const double a = -0.5;
	if (x < 0.0)
		x = -x;
	if (x < 1.0)
		return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
	if (x < 2.0)
		return (((x - 5) * x + 8) * x - 4) * a;
	return 0.0;
}

static double sinc(double x)
{
	if (x == 0.0)
		return 1.0;
	x = x * M_PI;
	return sin(x) / x;
}

static double lanczos_kernel(double x)
{
	if (-3.0 <= x && x < 3.0)
		return sinc(x) * sinc(x / 3);
	return 0.0;
}

struct kernel {
	double (*f)(double);
	double support;
};

static const struct kernel *kernel_of(enum resample_filter filter)
{
	static const struct kernel box = { box_kernel, 0.5 }, bilinear = { bilinear_kernel, 1.0 },
	                           hamming = { hamming_kernel, 1.0 }, bicubic = { bicubic_kernel, 2.0 },
	                           lanczos = { lanczos_kernel, 3.0 };
	switch (filter) {
	case RESAMPLE_BOX: return &box;
	case RESAMPLE_BILINEAR: return &bilinear;
	case RESAMPLE_HAMMING: return &hamming;
	case RESAMPLE_BICUBIC: return &bicubic;
	case RESAMPLE_LANCZOS: return &lanczos;
	case RESAMPLE_NEAREST: break;
	}
	return NULL;
}

int resample_filter_from_name(const char *name, enum resample_filter *filter)
{
	static const char *const names[] = { "nearest", "lanczos", "bilinear", "bicubic", "box", "hamming" };
	for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
		if (strcmp(name, names[i]) == 0) {
			*filter = (enum resample_filter)i;
			return 0;
		}
	return errorf("unknown resampling filter '%s' (nearest, bilinear, bicubic, box, hamming, lanczos)", name);
}

/* ---- the taps of one axis ---- */

/* Fixed-point weights for outputs [first, first + count) of an axis resized
 * from in_size to out_size: output i reads len[i] inputs from start[i] with
 * weights k[i * ksize ...]. */
struct taps {
	int count, ksize;
	int *start, *len;
	int32_t *k;
};

static void taps_free(struct taps *t)
{
	free(t->start);
	free(t->len);
	free(t->k);
	memset(t, 0, sizeof *t);
}

static void taps_init(struct taps *t, int in_size, int out_size, int first, int count, const struct kernel *kern)
{
	/* Pillow's box edges are floats, exact below 2^24 (our sides are < 2^16). */
	double scale = (double)in_size / out_size;
	double filterscale = scale < 1.0 ? 1.0 : scale;
	double support = kern->support * filterscale;
	double ss = 1.0 / filterscale; /* Pillow multiplies by the reciprocal */
	int ksize = (int)ceil(support) * 2 + 1;
	double *w = xmalloc(sizeof *w * ksize);

	t->count = count;
	t->ksize = ksize;
	t->start = xmalloc(sizeof *t->start * count);
	t->len = xmalloc(sizeof *t->len * count);
	t->k = xcalloc((size_t)count * ksize, sizeof *t->k);
	for (int i = 0; i < count; i++) {
		int xx = first + i;
		double center = (xx + 0.5) * scale;
		int xmin = (int)(center - support + 0.5);
		if (xmin < 0)
			xmin = 0;
		int xmax = (int)(center + support + 0.5);
		if (xmax > in_size)
			xmax = in_size;
		xmax -= xmin;
		double ww = 0.0;
		for (int x = 0; x < xmax; x++) {
			w[x] = kern->f((x + xmin - center + 0.5) * ss);
			ww += w[x];
		}
		int32_t *k = t->k + (size_t)i * ksize;
		for (int x = 0; x < xmax; x++) {
			double v = ww != 0.0 ? w[x] / ww : w[x];
			k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
			             : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
		}
		t->start[i] = xmin;
		t->len[i] = xmax;
	}
	free(w);
}

static inline uint8_t clip8(int32_t s)
{
	if (s < 0)
		return 0;
	s >>= PRECISION_BITS;
	return s > 255 ? 255 : (uint8_t)s;
}

/* ---- the two passes ---- */

/* Every output row of the vertical pass is a weighted sum of whole input
 * rows: taps outside, samples inside, in blocks that stay in registers and
 * L1, so the inner loop is a plain vectorisable multiply-add. */
#define VERTICAL_BLOCK 512

static void vertical_pass(uint8_t *out, size_t out_stride, const uint8_t *in, size_t in_stride, size_t n,
                          const struct taps *t)
{
	int64_t work = (int64_t)t->count * t->ksize * (int64_t)n;
#pragma omp parallel for schedule(static) if (work >= PARALLEL_MIN_WORK)
	for (int j = 0; j < t->count; j++) {
		const int32_t *k = t->k + (size_t)j * t->ksize;
		const uint8_t *rows = in + (size_t)t->start[j] * in_stride;
		uint8_t *o = out + (size_t)j * out_stride;
		for (size_t i0 = 0; i0 < n; i0 += VERTICAL_BLOCK) {
			int32_t acc[VERTICAL_BLOCK];
			size_t m = n - i0 < VERTICAL_BLOCK ? n - i0 : VERTICAL_BLOCK;
			for (size_t i = 0; i < m; i++)
				acc[i] = HALF;
			for (int y = 0; y < t->len[j]; y++) {
				const uint8_t *restrict r = rows + (size_t)y * in_stride + i0;
				int32_t ky = k[y];
#pragma omp simd
				for (size_t i = 0; i < m; i++)
					acc[i] += r[i] * ky;
			}
			for (size_t i = 0; i < m; i++)
				o[i0 + i] = clip8(acc[i]);
		}
	}
}

/* dst[x][y * C + c] = src[y][x * C + c] for a rows x cols image of C-byte
 * pixels: rows become columns. C is a constant at each call site. */
static inline __attribute__((always_inline)) void
transpose_tiles(uint8_t *restrict dst, size_t dst_stride, const uint8_t *restrict src, size_t src_stride,
                int rows, int cols, int C)
{
	enum { TILE = 32 }; /* a tile of each side stays in L1 */
	for (int y0 = 0; y0 < rows; y0 += TILE)
		for (int x0 = 0; x0 < cols; x0 += TILE) {
			int y1 = y0 + TILE < rows ? y0 + TILE : rows, x1 = x0 + TILE < cols ? x0 + TILE : cols;
			for (int y = y0; y < y1; y++)
				for (int x = x0; x < x1; x++) {
					/* Straight-line copies: a loop over c becomes a
					 * memmove call per pixel. */
					const uint8_t *s = src + (size_t)y * src_stride + (size_t)x * C;
					uint8_t *d = dst + (size_t)x * dst_stride + (size_t)y * C;
					d[0] = s[0];
					if (C > 1)
						d[1] = s[1];
					if (C > 2)
						d[2] = s[2];
					if (C > 3)
						d[3] = s[3];
				}
		}
}

static void transpose_pixels(uint8_t *dst, size_t dst_stride, const uint8_t *src, size_t src_stride, int rows,
                             int cols, int C)
{
	switch (C) {
	case 1: transpose_tiles(dst, dst_stride, src, src_stride, rows, cols, 1); break;
	case 2: transpose_tiles(dst, dst_stride, src, src_stride, rows, cols, 2); break;
	case 3: transpose_tiles(dst, dst_stride, src, src_stride, rows, cols, 3); break;
	default: transpose_tiles(dst, dst_stride, src, src_stride, rows, cols, 4); break;
	}
}

/* The horizontal pass is the vertical one on the transposed image: summing
 * whole rows vectorises, gathering taps along a row does not, and the two
 * transposes cost less than that difference. in holds `rows` rows; only the
 * columns the taps read are moved, so t's starts are shifted to match. */
static void horizontal_pass(uint8_t *out, size_t out_stride, const uint8_t *in, size_t in_stride, int rows,
                            struct taps *t, int C)
{
	int first = t->start[0], last = t->start[t->count - 1] + t->len[t->count - 1];
	size_t n = (size_t)rows * C;
	uint8_t *tin = xmalloc((size_t)(last - first) * n), *tout = xmalloc((size_t)t->count * n);
	transpose_pixels(tin, n, in + (size_t)first * C, in_stride, rows, last - first, C);
	for (int i = 0; i < t->count; i++)
		t->start[i] -= first;
	vertical_pass(tout, n, tin, n, n, t);
	transpose_pixels(out, out_stride, tout, n, t->count, rows, C);
	free(tin);
	free(tout);
}

/* ---- alpha ---- */

/* Pillow's RGBA -> RGBa (and LA -> La): c * a / 255, rounded its way. */
static void premultiply(uint8_t *p, size_t npixels, int C)
{
	for (size_t i = 0; i < npixels; i++, p += C) {
		unsigned a = p[C - 1];
		for (int c = 0; c < C - 1; c++) {
			unsigned t = p[c] * a + 128;
			p[c] = (uint8_t)((t + (t >> 8)) >> 8);
		}
	}
}

/* Pillow's RGBa -> RGBA: c = min(255 * c' / a, 255), samples under alpha 0
 * or 255 left as they are. The division is a multiply by ceil(2^32 / a),
 * exact here: the numerator is below 2^16 and a below 2^8, so the error of
 * the reciprocal (under 2^-16) never reaches the next multiple of 1/a
 * (checked for every a and c' as well). */
static void unpremultiply(uint8_t *p, size_t npixels, int C)
{
	uint64_t inv[255]; /* inv[1] is 2^32 */
	for (uint32_t a = 1; a < 255; a++)
		inv[a] = (((uint64_t)1 << 32) + a - 1) / a;
	for (size_t i = 0; i < npixels; i++, p += C) {
		unsigned a = p[C - 1];
		if (a == 0 || a == 255)
			continue;
		for (int c = 0; c < C - 1; c++) {
			uint32_t v = (uint32_t)(255u * p[c] * inv[a] >> 32);
			p[c] = (uint8_t)(v > 255 ? 255 : v);
		}
	}
}

/* ---- the whole operation ---- */

static void copy_window(struct image *dst, const struct image *src, int x0, int y0)
{
	size_t row = (size_t)dst->width * dst->channels;
	for (int y = 0; y < dst->height; y++)
		memcpy(dst->pixels + y * row,
		       src->pixels + ((size_t)(y0 + y) * src->width + x0) * src->channels, row);
}

/* Pillow's NEAREST resize is an affine transform whose source positions
 * are accumulated, not multiplied: xo starts at scale/2 and grows by scale
 * per pixel; a position that lands outside the source gives 0. */
static void nearest_window(struct image *dst, const struct image *src, int out_w, int out_h, int x0, int y0)
{
	int C = src->channels;
	int *xin = xmalloc(sizeof *xin * dst->width);
	double a0 = (double)src->width / out_w, a4 = (double)src->height / out_h;
	double xo = a0 * 0.5;
	for (int x = 0; x < x0 + dst->width; x++, xo += a0)
		if (x >= x0)
			xin[x - x0] = (int)xo < src->width ? (int)xo : -1;
	double yo = a4 * 0.5;
	for (int y = 0; y < y0; y++)
		yo += a4;
	for (int y = 0; y < dst->height; y++, yo += a4) {
		uint8_t *o = dst->pixels + (size_t)y * dst->width * C;
		int yi = (int)yo;
		if (yi >= src->height) {
			memset(o, 0, (size_t)dst->width * C);
			continue;
		}
		const uint8_t *row = src->pixels + (size_t)yi * src->width * C;
		for (int x = 0; x < dst->width; x++)
			for (int c = 0; c < C; c++)
				o[x * C + c] = xin[x] < 0 ? 0 : row[(size_t)xin[x] * C + c];
	}
	free(xin);
}

int image_resize_crop(const struct image *src, int out_w, int out_h, enum resample_filter filter,
                      int crop_x, int crop_y, int crop_w, int crop_h, struct image *dst)
{
	memset(dst, 0, sizeof *dst);
	int C = src->channels;
	if (C < 1 || C > 4)
		return errorf("cannot resize an image of %d channels (1 to 4)", C);
	if (image_check_size(src->width, src->height, C) < 0)
		return -1;
	if (image_check_size(out_w, out_h, C) < 0)
		return error_prefix("resizing to %dx%d", out_w, out_h);
	if (crop_x < 0 || crop_y < 0 || crop_w < 1 || crop_h < 1 || crop_w > out_w - crop_x ||
	    crop_h > out_h - crop_y)
		return errorf("crop %dx%d at (%d,%d) is not inside the %dx%d image", crop_w, crop_h, crop_x,
		              crop_y, out_w, out_h);
	const struct kernel *kern = kernel_of(filter);
	if (!kern && filter != RESAMPLE_NEAREST)
		return errorf("unknown resampling filter %d", (int)filter);
	if (image_alloc(dst, crop_w, crop_h, C) < 0)
		return -1;

	if (out_w == src->width && out_h == src->height) {
		copy_window(dst, src, crop_x, crop_y);
		return 0;
	}
	if (!kern) {
		nearest_window(dst, src, out_w, out_h, crop_x, crop_y);
		return 0;
	}

	bool alpha = C == 2 || C == 4;
	uint8_t *premul = NULL;
	const uint8_t *in = src->pixels;
	if (alpha) {
		premul = xmalloc(image_bytes(src));
		memcpy(premul, src->pixels, image_bytes(src));
		premultiply(premul, (size_t)src->width * src->height, C);
		in = premul;
	}
	size_t in_stride = (size_t)src->width * C, out_stride = (size_t)crop_w * C;
	bool need_h = out_w != src->width, need_v = out_h != src->height;

	/* The source rows the vertical pass reads (only those are resampled
	 * horizontally), or the output rows themselves when it is skipped. */
	struct taps vt = { 0 };
	int row0 = crop_y, rows = crop_h;
	if (need_v) {
		taps_init(&vt, src->height, out_h, crop_y, crop_h, kern);
		row0 = vt.start[0];
		rows = vt.start[crop_h - 1] + vt.len[crop_h - 1] - row0;
		for (int j = 0; j < crop_h; j++)
			vt.start[j] -= row0;
	}

	const uint8_t *mid = in + (size_t)row0 * in_stride + (size_t)crop_x * C;
	size_t mid_stride = in_stride;
	uint8_t *tmp = NULL;
	if (need_h) {
		struct taps ht;
		taps_init(&ht, src->width, out_w, crop_x, crop_w, kern);
		uint8_t *hout = need_v ? (tmp = xmalloc((size_t)rows * out_stride)) : dst->pixels;
		horizontal_pass(hout, out_stride, in + (size_t)row0 * in_stride, in_stride, rows, &ht, C);
		taps_free(&ht);
		mid = hout;
		mid_stride = out_stride;
	}
	if (need_v)
		vertical_pass(dst->pixels, out_stride, mid, mid_stride, out_stride, &vt);
	taps_free(&vt);
	free(tmp);
	free(premul);

	if (alpha)
		unpremultiply(dst->pixels, (size_t)crop_w * crop_h, C);
	return 0;
}

int image_resize(const struct image *src, int out_w, int out_h, enum resample_filter filter, struct image *dst)
{
	return image_resize_crop(src, out_w, out_h, filter, 0, 0, out_w, out_h, dst);
}
