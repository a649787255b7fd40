/* 2-D convolution layer: "<prefix>.weight" [out, in, k, k] and
 * "<prefix>.bias" [out], over NCHW images. */
#ifndef KNND_NN_LAYERS_CONV_H
#define KNND_NN_LAYERS_CONV_H

#include "nn/arena.h"
#include "nn/ops.h"
#include "nn/params.h"

struct nn_conv {
	int weight, bias; /* bias is -1 without one */
	int in, out, kernel, stride;
	/* Padding per side; init sets all four to `pad`. A model that pads
	 * unevenly (taming's downsampling pads right and bottom only) sets them
	 * after init. */
	int pad_top, pad_left, pad_bottom, pad_right;
};

struct nn_conv_act {
	const float *inp;
	float *out;
	struct nn_conv2d g; /* the geometry of this call */
};

void nn_conv_init(struct nn_conv *c, struct nn_params *p, const char *prefix, int in, int out, int kernel,
                  int stride, int pad, int with_bias);

/* out [B, c->out, OH, OW] from the arena; OH and OW are in act->g's terms
 * (nn_conv2d_out_h/w). */
float *nn_conv_forward(const struct nn_conv *c, const struct nn_params *p, struct nn_arena *a,
                       struct nn_conv_act *act, const float *inp, int B, int H, int W);
void nn_conv_backward(const struct nn_conv *c, const struct nn_params *p, const struct nn_conv_act *act,
                      float *dinp, const float *dout);

#endif
