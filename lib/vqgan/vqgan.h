/* The VQGAN image tokenizer (taming-transformers' VQModel), written against
 * the op interface: encoder, nearest-code quantiser, decoder.
 *
 *   encode: x [B,3,H,W] in [-1,1] -> encoder -> quant_conv -> z [B,D,h,w]
 *           -> nearest codebook row per position -> tokens [B,h,w]
 *   decode: tokens -> codebook rows z_q [B,D,h,w] -> post_quant_conv
 *           -> decoder -> image [B,3,H,W] (not clamped; about [-1,1])
 *
 * h = H / 2^(levels-1). Parameters use taming's state-dict names
 * (encoder.conv_in.weight, encoder.down.N.block.M.norm1.weight, ...,
 * quantize.embedding.weight, quant_conv.*, post_quant_conv.*, decoder.*);
 * a real checkpoint's loss.* tensors (the discriminator, LPIPS) are ignored
 * on load. Architecture facts (GroupNorm 32 groups eps 1e-6, swish,
 * Downsample = pad right/bottom by 1 then 3x3 stride-2 conv, Upsample =
 * nearest x2 then 3x3 conv, AttnBlock with 1x1 q/k/v/proj_out) follow the
 * reference exactly; see ../shared/golden/vqgan/README.md.
 *
 * Every pass keeps its activations in the model (llm.c style), so a training
 * step is: encoder_forward, quantize, decoder_forward, then decoder_backward
 * and encoder_backward in reverse order, all on one arena. */
#ifndef KNND_VQGAN_VQGAN_H
#define KNND_VQGAN_VQGAN_H

#include <stdint.h>

#include "nn/arena.h"
#include "nn/params.h"
#include "nn/safetensors.h"

#define VQGAN_MAX_LEVELS 8

/* taming's ddconfig plus the quantiser's sizes. */
struct vqgan_config {
	int in_channels, out_ch;   /* 3 and 3 for RGB */
	int ch;                    /* base channel count */
	int levels;                /* len(ch_mult); downsampling factor 2^(levels-1) */
	int ch_mult[VQGAN_MAX_LEVELS];
	int attn[VQGAN_MAX_LEVELS]; /* 1: level i has attention blocks (resolution / 2^i in attn_resolutions) */
	int num_res_blocks;
	int z_channels, embed_dim, n_embed;
	int resolution;            /* the training resolution (config only; any multiple of the factor runs) */
	float beta;                /* commitment weight (taming: 0.25) */
};

/* Fills c from a taming config JSON: {"embed_dim", "n_embed", "ddconfig":
 * {...}} at the top level or under "model": {"params": ...} (a taming YAML
 * converted to JSON). Refuses double_z (that is the KL autoencoder).
 * Returns 0 or -1 (errorf). */
int vqgan_config_from_json(struct vqgan_config *c, const char *json);
/* Derives the config from a checkpoint's tensor names and shapes (levels,
 * blocks, attention, channels, codebook), then checks it against the
 * metadata "config" (taming JSON) when present. resolution is taken from
 * the metadata, else 0. Returns 0 or -1 (errorf naming the tensor). */
int vqgan_config_from_checkpoint(struct vqgan_config *c, const struct st_file *f);
/* The config as taming JSON (malloc'd), for the weights' metadata. */
char *vqgan_config_json(const struct vqgan_config *c);
/* Whether c describes a model this code can build (positive sizes, channel
 * counts that 32 groups divide, levels in range). Returns 0 or -1
 * (errorf). */
int vqgan_config_check(const struct vqgan_config *c);
/* Downsampling factor 2^(levels-1). */
int vqgan_factor(const struct vqgan_config *c);

struct vqgan_state; /* activations of the last passes (vqgan_model.c) */

struct vqgan {
	struct vqgan_config cfg;
	struct nn_params params;
	struct vqgan_state *state;
	struct nn_arena arena;  /* used by vqgan_encode / vqgan_decode */
};

/* Registers the parameters for cfg and allocates them (zeroed; with
 * gradients if with_grad). vqgan_init_random fills them as PyTorch's
 * default initialisation would (conv: kaiming-uniform(a=sqrt(5)), norms
 * 1/0, codebook uniform(-1/n_embed, 1/n_embed)), deterministic in seed. */
void vqgan_init(struct vqgan *m, const struct vqgan_config *cfg, int with_grad);
void vqgan_init_random(struct vqgan *m, uint64_t seed);
/* Opens a safetensors checkpoint: config from the tensors (and the metadata
 * or config_path, a taming config.json, when given), then the weights
 * (F32/F16/BF16). Returns 0 or -1 (errorf naming the file and problem). */
int vqgan_load(struct vqgan *m, const char *path, const char *config_path, int with_grad);
void vqgan_free(struct vqgan *m);

/* Inference, host memory in and out, B images at a time.
 * images: [B, in_channels, H, W] float in [-1,1]; H and W multiples of the
 * factor. tokens: [B, h, w]. latents (may be NULL): z after quant_conv. */
int vqgan_encode(struct vqgan *m, const float *images, int B, int H, int W, int32_t *tokens, float *latents);
/* tokens [B,h,w] (each in [0, n_embed)) -> images [B, out_ch, h*f, w*f]. */
int vqgan_decode(struct vqgan *m, const int32_t *tokens, int B, int h, int w, float *images);

/* Training passes, backend memory, activations from arena a (kept until the
 * arena is reset). encoder_forward returns z [B,D,h,w] (after quant_conv). */
float *vqgan_encoder_forward(struct vqgan *m, struct nn_arena *a, const float *x, int B, int H, int W);
/* Accumulates parameter gradients of encoder and quant_conv from dz. */
void vqgan_encoder_backward(struct vqgan *m, struct nn_arena *a, const float *dz);
/* Nearest code of every latent of z [B,D,h,w]: idx [B*h*w] (b,y,x order),
 * zq [B,D,h,w] the codebook rows; dist (may be NULL) the squared distance
 * to the chosen code per position. The argmin runs on the host after a
 * sync, so idx, zq and dist may be host or (host-visible) backend memory. */
void vqgan_quantize(const struct vqgan *m, const float *z, int B, int h, int w, int32_t *idx, float *zq,
                    float *dist);
/* zq [B,D,h,w] -> post_quant_conv -> decoder: image [B,out_ch,H,W]. */
float *vqgan_decoder_forward(struct vqgan *m, struct nn_arena *a, const float *zq, int B, int h, int w);
/* Accumulates decoder and post_quant_conv parameter gradients, and dzq
 * (NULL: not needed) from dimage. */
void vqgan_decoder_backward(struct vqgan *m, struct nn_arena *a, float *dzq, const float *dimage);

#endif
