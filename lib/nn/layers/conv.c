#include "nn/layers/conv.h"

#include "nn/layers/layer.h"

void nn_conv_init(struct nn_conv *c, struct nn_params *p, const char *prefix, int in, int out, int kernel,
                  int stride, int pad, int with_bias)
{
	c->in = in;
	c->out = out;
	c->kernel = kernel;
	c->stride = stride;
	c->pad_top = c->pad_left = c->pad_bottom = c->pad_right = pad;
	c->weight = nn_layer_param(p, prefix, "weight", 4, (int64_t[]){out, in, kernel, kernel});
	c->bias = with_bias ? nn_layer_param(p, prefix, "bias", 1, (int64_t[]){out}) : -1;
}

float *nn_conv_forward(const struct nn_conv *c, const struct nn_params *p, struct nn_arena *a,
                       struct nn_conv_act *act, const float *inp, int B, int H, int W)
{
	act->g = (struct nn_conv2d){
		.B = B, .IC = c->in, .H = H, .W = W, .OC = c->out, .KH = c->kernel, .KW = c->kernel,
		.stride = c->stride, .pad_top = c->pad_top, .pad_left = c->pad_left,
		.pad_bottom = c->pad_bottom, .pad_right = c->pad_right,
	};
	size_t n = (size_t)B * c->out * nn_conv2d_out_h(&act->g) * nn_conv2d_out_w(&act->g);
	act->inp = inp;
	act->out = nn_arena_floats(a, n);
	nn->conv2d_forward(act->out, inp, nn_param(p, c->weight), c->bias < 0 ? NULL : nn_param(p, c->bias),
	                   &act->g);
	return act->out;
}

void nn_conv_backward(const struct nn_conv *c, const struct nn_params *p, const struct nn_conv_act *act,
                      float *dinp, const float *dout)
{
	nn->conv2d_backward(dinp, nn_param_grad(p, c->weight), c->bias < 0 ? NULL : nn_param_grad(p, c->bias),
	                    dout, act->inp, nn_param(p, c->weight), &act->g);
}
