/* Nearest-neighbour upsampling and average pooling of [N, H, W] planes by an
 * integer factor f (N is batch times channels of an NCHW tensor). H and W
 * are always the input's: upsampling makes [N, H*f, W*f], pooling makes
 * [N, H/f, W/f] with a f x f window at stride f, and requires H and W to be
 * multiples of f (the caller checks; a remainder row or column would be
 * ignored).
 *
 * Each output row (forward) or input row (backward) is written by one
 * thread, whole, so results do not depend on the thread count. */
#include "nn/cpu/cpu.h"

#include "nn/cpu/cpu_scratch.h"

void cpu_upsample_forward(float *out, const float *inp, int N, int H, int W, int factor)
{
	int f = factor, OW = W * f;
	long rows = (long)N * H;
	#pragma omp parallel for schedule(static) if (rows * W * f * f >= CPU_PARALLEL_MIN_WORK)
	for (long r = 0; r < rows; r++) {
		const float *restrict src = inp + r * W;
		float *restrict dst = out + r * f * OW; /* the f output rows of input row r */
		for (int x = 0; x < W; x++)
			for (int j = 0; j < f; j++)
				dst[x * f + j] = src[x];
		for (int i = 1; i < f; i++)
			for (int x = 0; x < OW; x++)
				dst[i * OW + x] = dst[x];
	}
}

/* dinp[n, y, x] += sum of dout over the f x f block it was copied to. */
void cpu_upsample_backward(float *dinp, const float *dout, int N, int H, int W, int factor)
{
	int f = factor, OW = W * f;
	long rows = (long)N * H;
	#pragma omp parallel for schedule(static) if (rows * W * f * f >= CPU_PARALLEL_MIN_WORK)
	for (long r = 0; r < rows; r++) {
		float *restrict dst = dinp + r * W;
		const float *restrict src = dout + r * f * OW;
		for (int x = 0; x < W; x++) {
			float s = 0;
			for (int i = 0; i < f; i++)
				for (int j = 0; j < f; j++)
					s += src[i * OW + x * f + j];
			dst[x] += s;
		}
	}
}

void cpu_avgpool_forward(float *out, const float *inp, int N, int H, int W, int factor)
{
	int f = factor, OH = H / f, OW = W / f;
	float scale = 1.0f / ((float)f * f);
	long rows = (long)N * OH;
	#pragma omp parallel for schedule(static) if (rows * W * f >= CPU_PARALLEL_MIN_WORK)
	for (long r = 0; r < rows; r++) {
		long n = r / OH, y = r % OH;
		const float *restrict src = inp + (n * H + y * f) * W; /* first of f input rows */
		float *restrict dst = out + r * OW;
		for (int x = 0; x < OW; x++) {
			float s = 0;
			for (int i = 0; i < f; i++)
				for (int j = 0; j < f; j++)
					s += src[(long)i * W + x * f + j];
			dst[x] = s * scale;
		}
	}
}

/* Every input of a window gets 1/f^2 of the window's output gradient. */
void cpu_avgpool_backward(float *dinp, const float *dout, int N, int H, int W, int factor)
{
	int f = factor, OH = H / f, OW = W / f;
	float scale = 1.0f / ((float)f * f);
	long rows = (long)N * OH;
	#pragma omp parallel for schedule(static) if (rows * W * f >= CPU_PARALLEL_MIN_WORK)
	for (long r = 0; r < rows; r++) {
		long n = r / OH, y = r % OH;
		float *restrict dst = dinp + (n * H + y * f) * W;
		const float *restrict src = dout + r * OW;
		for (int i = 0; i < f; i++)
			for (int x = 0; x < OW; x++) {
				float g = src[x] * scale;
				for (int j = 0; j < f; j++)
					dst[(long)i * W + x * f + j] += g;
			}
	}
}
