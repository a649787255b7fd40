/* Convolution geometry shared by every backend. */
#include "nn/ops.h"

/* Output positions of a kernel of size k sliding with `stride` over
 * `padded` positions (0 when it does not fit once). */
static int out_size(int padded, int k, int stride)
{
	return padded < k || stride <= 0 ? 0 : (padded - k) / stride + 1;
}

int nn_conv2d_out_h(const struct nn_conv2d *g)
{
	return out_size(g->H + g->pad_top + g->pad_bottom, g->KH, g->stride);
}

int nn_conv2d_out_w(const struct nn_conv2d *g)
{
	return out_size(g->W + g->pad_left + g->pad_right, g->KW, g->stride);
}
