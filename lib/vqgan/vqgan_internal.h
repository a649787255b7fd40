/* What the files of lib/vqgan share beyond vqgan.h, and what the tests look
 * at: the networks as lists of units, taps on their outputs, the distance
 * matrix and the config checks.
 *
 * Encoder and decoder are each a straight sequence of units (taming's
 * modules in the order its forward passes call them), so one loop runs
 * either forward and one loop runs it backward:
 *
 *   encoder: conv_in, down.N.block.M (+ down.N.attn.M), down.N.downsample,
 *            mid.block_1, mid.attn_1, mid.block_2, norm_out, swish,
 *            conv_out, then quant_conv
 *   decoder: post_quant_conv, then conv_in, mid.*, up.N.block.M
 *            (+ up.N.attn.M), up.N.upsample (N from the top down),
 *            norm_out, swish, conv_out */
#ifndef KNND_VQGAN_VQGAN_INTERNAL_H
#define KNND_VQGAN_VQGAN_INTERNAL_H

#include "nn/layers/attnblock.h"
#include "nn/layers/conv.h"
#include "nn/layers/layer.h"
#include "nn/layers/norm.h"
#include "nn/layers/resblock.h"
#include "vqgan/vqgan.h"

/* taming's Normalize(): GroupNorm(32 groups, eps 1e-6). */
#define VQGAN_GROUPS 32
#define VQGAN_EPS 1e-6f

enum vqgan_unit_kind {
	VQGAN_CONV,     /* also Downsample: stride 2, padded right and bottom */
	VQGAN_RESBLOCK,
	VQGAN_ATTN,
	VQGAN_UPSAMPLE, /* nearest x2, then a 3x3 convolution */
	VQGAN_NORM,
	VQGAN_SWISH,
};

struct vqgan_unit {
	enum vqgan_unit_kind kind;
	char name[NN_NAME_MAX]; /* taming's module path, e.g. "encoder.down.1.attn.0" */
	int in, out;            /* channels */
	union {
		struct nn_conv conv;
		struct nn_resblock res;
		struct nn_attnblock attn;
		struct nn_groupnorm norm;
	} layer;
	/* The last forward pass. */
	union {
		struct nn_conv_act conv;
		struct nn_resblock_act res;
		struct nn_attnblock_act attn;
		struct nn_groupnorm_act norm;
	} act;
	const float *x;  /* input [B, in, H, W] */
	float *y;        /* output [B, out, OH, OW] */
	float *up;       /* VQGAN_UPSAMPLE: the nearest x2 copy of x */
	int B, H, W, OH, OW;
};

struct vqgan_net {
	struct vqgan_unit *units;
	int n, cap;
};

/* Called with every unit's output during a forward pass (backend memory,
 * valid during the call), under the unit's name. */
struct vqgan_taps {
	void (*fn)(void *ctx, const char *name, const float *x, int B, int C, int H, int W);
	void *ctx;
};

struct vqgan_state {
	struct vqgan_net encoder, decoder;
	int embedding;             /* quantize.embedding.weight [n_embed, embed_dim] */
	struct nn_arena spare;     /* inference: units alternate between this and m->arena */
	struct vqgan_taps taps;
};

/* NULL turns taps off. */
void vqgan_set_taps(struct vqgan *m, const struct vqgan_taps *t);

/* The squared distances from every latent of z [B, D, h, w] to every code,
 * |z|^2 + |e|^2 - 2 z.e as the reference computes them: dist [B*h*w,
 * n_embed], rows in (b, y, x) order (host-visible memory). */
void vqgan_distances(const struct vqgan *m, const float *z, int B, int h, int w, float *dist);

/* zq [B, D, h, w] = the codebook rows of idx [B*h*w] (each in range). */
void vqgan_lookup(const struct vqgan *m, const int32_t *idx, int B, int h, int w, float *zq);


/* Checks a config file's sizes g against the checkpoint's c (a difference
 * names the tensor and `label`, the config's origin), then takes from g
 * what tensors cannot tell: resolution and beta. Returns 0 or -1. */
int vqgan_config_adopt(struct vqgan_config *c, const struct vqgan_config *g, const char *label);

#endif
