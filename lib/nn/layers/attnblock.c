#include "nn/layers/attnblock.h"

#include <math.h>
#include <stdlib.h>

#include "core/tool.h"
#include "nn/layers/layer.h"

void nn_attnblock_init(struct nn_attnblock *b, struct nn_params *p, const char *prefix, int channels,
                       int groups, float eps, int heads)
{
	if (groups <= 0 || heads <= 0 || channels % groups || channels % heads)
		die("attention block %s: %d channels are not a multiple of %d groups and %d heads", prefix, channels,
		    groups, heads);
	char name[NN_NAME_MAX];
	b->channels = channels;
	b->heads = heads;
	nn_groupnorm_init(&b->norm, p, nn_layer_name(name, prefix, "norm"), channels, groups, eps);
	nn_conv_init(&b->q, p, nn_layer_name(name, prefix, "q"), channels, channels, 1, 1, 0, 1);
	nn_conv_init(&b->k, p, nn_layer_name(name, prefix, "k"), channels, channels, 1, 1, 0, 1);
	nn_conv_init(&b->v, p, nn_layer_name(name, prefix, "v"), channels, channels, 1, 1, 0, 1);
	nn_conv_init(&b->proj_out, p, nn_layer_name(name, prefix, "proj_out"), channels, channels, 1, 1, 0, 1);
}

/* n ones in backend memory. A product with them broadcasts a bias (an
 * outer product) or sums a gradient's rows, so the biases need no op of
 * their own. */
static float *arena_ones(struct nn_arena *a, size_t n)
{
	float *host = xmalloc(n * sizeof *host);
	for (size_t i = 0; i < n; i++)
		host[i] = 1.0f;
	float *ones = nn_arena_floats(a, n);
	nn->upload(ones, host, n * sizeof *host);
	free(host);
	return ones;
}

/* rows[b, p, :] = W h[b, :, p] + bias for h [B, C, HW]: a 1x1 convolution
 * whose output comes out transposed, [B, HW, C]. */
static void conv1x1_to_rows(float *rows, const float *h, const float *w, const float *bias, const float *ones,
                            int B, int C, int HW)
{
	long image = (long)C * HW;
	nn->gemm(0, 0, B * HW, C, 1, 1.0f, ones, 1, 0, bias, C, 0, 0.0f, rows, C, 0, 1);
	nn->gemm(1, 1, HW, C, C, 1.0f, h, HW, image, w, C, 0, 1.0f, rows, C, image, B);
}

static void conv1x1_to_rows_backward(float *dh, float *dw, float *dbias, const float *drows, const float *h,
                                     const float *w, const float *ones, int B, int C, int HW)
{
	long image = (long)C * HW;
	if (dh) /* dh[b] += W^T drows[b]^T */
		nn->gemm(1, 1, C, HW, C, 1.0f, w, C, 0, drows, C, image, 1.0f, dh, HW, image, B);
	if (dw) /* dW += sum over images of drows[b]^T h[b]^T */
		for (int b = 0; b < B; b++)
			nn->gemm(1, 1, C, C, HW, 1.0f, drows + b * image, C, 0, h + b * image, HW, 0, 1.0f, dw, C, 0, 1);
	if (dbias) /* the column sums of drows [B*HW, C] */
		nn->gemm(0, 0, 1, C, B * HW, 1.0f, ones, B * HW, 0, drows, C, 0, 1.0f, dbias, C, 0, 1);
}

/* out[b] = x[b] + W rows[b]^T + bias for rows [B, HW, C]: proj_out, back to
 * NCHW, with the residual. */
static void rows_to_conv1x1_residual(float *out, const float *x, const float *rows, const float *w,
                                     const float *bias, const float *ones, int B, int C, int HW)
{
	long image = (long)C * HW;
	nn->scale(out, x, 1.0f, (size_t)B * image);
	nn->gemm(0, 0, C, HW, 1, 1.0f, bias, 1, 0, ones, HW, 0, 1.0f, out, HW, image, B);
	nn->gemm(0, 1, C, HW, C, 1.0f, w, C, 0, rows, C, image, 1.0f, out, HW, image, B);
}

/* Assigns drows; accumulates dx, dw and dbias. */
static void rows_to_conv1x1_residual_backward(float *dx, float *dw, float *dbias, float *drows,
                                              const float *dout, const float *rows, const float *w,
                                              const float *ones, int B, int C, int HW)
{
	long image = (long)C * HW;
	if (dx)
		nn->accumulate(dx, dout, (size_t)B * image);
	/* drows[b] = dout[b]^T W */
	nn->gemm(1, 0, HW, C, C, 1.0f, dout, HW, image, w, C, 0, 0.0f, drows, C, image, B);
	for (int b = 0; b < B; b++) {
		if (dw) /* dW += dout[b] rows[b] */
			nn->gemm(0, 0, C, C, HW, 1.0f, dout + b * image, HW, 0, rows + b * image, C, 0, 1.0f, dw, C, 0, 1);
		if (dbias) /* dbias += dout[b] summed over pixels */
			nn->gemm(0, 0, C, 1, HW, 1.0f, dout + b * image, HW, 0, ones, 1, 0, 1.0f, dbias, 1, 0, 1);
	}
}

float *nn_attnblock_forward(const struct nn_attnblock *b, const struct nn_params *p, struct nn_arena *a,
                            struct nn_attnblock_act *act, const float *x, int B, int HW)
{
	int C = b->channels, D = C / b->heads;
	size_t n = (size_t)B * HW * C;
	act->x = x;
	act->B = B;
	act->HW = HW;
	act->ones = arena_ones(a, (size_t)B * HW);
	const float *h = nn_groupnorm_forward(&b->norm, p, a, &act->norm, x, B, HW);

	const struct nn_conv *proj[3] = { &b->q, &b->k, &b->v };
	float **rows[3] = { &act->q, &act->k, &act->v };
	for (int i = 0; i < 3; i++) {
		*rows[i] = nn_arena_floats(a, n);
		conv1x1_to_rows(*rows[i], h, nn_param(p, proj[i]->weight), nn_param(p, proj[i]->bias), act->ones, B, C,
		                HW);
	}
	/* taming multiplies the scores by int(c)**(-0.5), a double rounded once */
	act->geom = (struct nn_attention){
		.B = B, .H = b->heads, .Tq = HW, .Tk = HW, .D = D, .scale = (float)(1.0 / sqrt((double)D)),
	};
	act->attn = nn_arena_floats(a, n);
	act->lse = nn_arena_floats(a, (size_t)B * b->heads * HW);
	nn->attention_forward(act->attn, act->lse, act->q, act->k, act->v, &act->geom);

	act->out = nn_arena_floats(a, n);
	rows_to_conv1x1_residual(act->out, x, act->attn, nn_param(p, b->proj_out.weight),
	                         nn_param(p, b->proj_out.bias), act->ones, B, C, HW);
	return act->out;
}

void nn_attnblock_backward(const struct nn_attnblock *b, const struct nn_params *p, struct nn_arena *a,
                           const struct nn_attnblock_act *act, float *dx, const float *dout)
{
	int B = act->B, HW = act->HW, C = b->channels;
	size_t n = (size_t)B * HW * C;

	float *dattn = nn_arena_floats(a, n);
	rows_to_conv1x1_residual_backward(dx, nn_param_grad(p, b->proj_out.weight), nn_param_grad(p, b->proj_out.bias),
	                                  dattn, dout, act->attn, nn_param(p, b->proj_out.weight), act->ones, B, C,
	                                  HW);
	float *dq = nn_arena_zeros(a, n), *dk = nn_arena_zeros(a, n), *dv = nn_arena_zeros(a, n);
	nn->attention_backward(dq, dk, dv, dattn, act->q, act->k, act->v, act->attn, act->lse, &act->geom);

	float *dh = nn_arena_zeros(a, n);
	const struct nn_conv *proj[3] = { &b->q, &b->k, &b->v };
	const float *drows[3] = { dq, dk, dv };
	for (int i = 0; i < 3; i++)
		conv1x1_to_rows_backward(dh, nn_param_grad(p, proj[i]->weight), nn_param_grad(p, proj[i]->bias), drows[i],
		                         act->norm.out, nn_param(p, proj[i]->weight), act->ones, B, C, HW);
	nn_groupnorm_backward(&b->norm, p, &act->norm, dx, dh);
}
