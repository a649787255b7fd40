/* The patch discriminator vq-train may play the autoencoder against: a
 * small PatchGAN after taming's NLayerDiscriminator (pix2pix), which scores
 * overlapping patches of an image as real or reconstructed.
 *
 *   conv 4x4 stride 2 (in -> ch), SiLU
 *   conv 4x4 stride 2 (-> ch*2^i, at most ch*8), GroupNorm, SiLU  (layers-1 times)
 *   conv 4x4 stride 1 (-> ch*2^layers, at most ch*8), GroupNorm, SiLU
 *   conv 4x4 stride 1 (-> 1): one logit per patch
 *
 * All convolutions pad 1. taming normalises with BatchNorm and uses
 * LeakyReLU(0.2); the op table has neither, and a discriminator trained
 * from scratch needs neither, so this one uses GroupNorm and SiLU. Its
 * weights are not taming's and are saved only in the trainer's state. */
#ifndef KNND_VQGAN_VQGAN_DISC_H
#define KNND_VQGAN_VQGAN_DISC_H

#include <stdint.h>

#include "nn/arena.h"
#include "nn/layers/conv.h"
#include "nn/layers/norm.h"
#include "nn/params.h"

#define VQGAN_DISC_MAX_LAYERS 6

struct vqgan_disc_config {
	int in_channels;
	int ch;     /* channels of the first convolution (taming: 64) */
	int layers; /* stride-2 convolutions (taming: 3) */
};

/* The most stride-2 layers (up to 3, taming's) that leave an image of
 * `resolution` at least 4 pixels across, so the two stride-1 convolutions
 * still have patches to score. */
int vqgan_disc_default_layers(int resolution);

struct vqgan_disc_layer {
	struct nn_conv conv;
	struct nn_groupnorm norm;
	int has_norm, has_act;
	struct nn_conv_act conv_act;
	struct nn_groupnorm_act norm_act;
	float *pre; /* the activation's input: the norm's output, else the conv's */
	float *out;
	int H, W;   /* input size of this call */
};

struct vqgan_disc {
	struct vqgan_disc_config cfg;
	struct nn_params params;
	struct vqgan_disc_layer layer[VQGAN_DISC_MAX_LAYERS + 2];
	int n;
	int B, OH, OW; /* the logits of the last forward pass: [B, 1, OH, OW] */
};

/* Checks cfg, registers and allocates the parameters (with gradients) and
 * initialises them as pix2pix does (conv weights N(0, 0.02), biases 0, norm
 * scales 1), deterministic in seed. Returns 0 or -1 (errorf). */
int vqgan_disc_init(struct vqgan_disc *d, const struct vqgan_disc_config *cfg, uint64_t seed);
void vqgan_disc_free(struct vqgan_disc *d);

/* x [B, in_channels, H, W] (backend memory) -> logits [B, 1, OH, OW] from
 * arena a; -1 (errorf) if the image is too small for the layers. */
int vqgan_disc_forward(struct vqgan_disc *d, struct nn_arena *a, const float *x, int B, int H, int W,
                       float **logits);
/* Backward through the last forward pass: accumulates dx (NULL: not
 * needed) and, when param_grads, the discriminator's parameter gradients.
 * The generator's loss needs only dx, the discriminator's only the
 * parameters. */
void vqgan_disc_backward(struct vqgan_disc *d, struct nn_arena *a, float *dx, const float *dlogits,
                         int param_grads);

#endif
