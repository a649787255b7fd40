/* Training a VQGAN (what vq-train runs): one optimiser step of the
 * autoencoder, the codebook's upkeep, and checkpoints that resume exactly.
 *
 * A step, for images x [B, C, H, W] in [-1, 1]:
 *
 *   z = quant_conv(encoder(x)); zq = nearest codes; y = decoder(zq)
 *   loss = l1 * mean|y - x| + l2 * mean (y - x)^2          reconstruction
 *        + mean (sg[z] - zq)^2                              codebook (not with EMA)
 *        + beta * mean (z - sg[zq])^2                       commitment
 *        + w * -mean D(y)                                   once the discriminator is on
 *
 * Quantisation is straight-through: the decoder's gradient at zq is passed
 * to z unchanged. The codebook and commitment terms are VQ-VAE's (codebook
 * weight 1, commitment beta); taming's "legacy" quantiser swaps the two
 * weights, which only matters for its beta. With EMA updates the codebook
 * gets no gradient: each code becomes the (Laplace-smoothed) running mean
 * of the latents assigned to it. A code that no latent chose for
 * restart_after steps is dead: it is moved onto a random latent of the
 * current batch (its optimiser moments cleared), so that every code keeps
 * competing.
 *
 * The adversarial weight w is disc_weight times, when adaptive, taming's
 * balance |grad rec| / (|grad gen| + 1e-4) at the decoder's last layer
 * (clamped to [0, 1e4]); the discriminator then takes its own AdamW step on
 * the hinge loss (mean relu(1 - D(x)) + mean relu(1 + D(y))) / 2.
 *
 * Every random choice comes from Philox keyed by the seed and counted by
 * the step, so a run's result depends only on its data, options and thread
 * count, and a resumed run continues bit for bit. */
#ifndef KNND_VQGAN_VQGAN_TRAIN_H
#define KNND_VQGAN_VQGAN_TRAIN_H

#include <stdint.h>

#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "vqgan/vqgan.h"
#include "vqgan/vqgan_disc.h"

struct vqgan_train_config {
	float l1_weight, l2_weight;  /* reconstruction loss weights */
	int ema_codebook;            /* 1: EMA codebook updates instead of the codebook loss */
	float ema_decay;             /* of those updates */
	int64_t restart_after;       /* steps unused before a code restarts; 0: never */
	int64_t disc_start;          /* step at which the discriminator comes in; -1: never */
	float disc_weight;           /* weight of the generator's adversarial loss */
	int disc_adaptive;           /* 1: times taming's adaptive balance */
	int disc_ch, disc_layers;    /* the discriminator's size (vqgan_disc.h) */
	uint64_t seed;
};

/* L1 and L2 weight 1, straight-through codebook, EMA decay 0.99 when
 * chosen, restarts after 200 unused steps, no discriminator (weight 0.8
 * adaptive, 64 channels, layers by resolution, when switched on), seed 1. */
struct vqgan_train_config vqgan_train_defaults(void);

/* What a step measured. */
struct vqgan_step_stats {
	double loss, l1, l2, codebook, commit; /* loss parts as weighed into the loss, except l1/l2 unweighted */
	double gen, disc, disc_weight;         /* adversarial: generator loss, hinge loss, w (0 while off) */
	double sq_err;                         /* sum of squared pixel errors (0..255 scale, rounded as vq-decode) */
	int64_t pixels;                        /* samples behind sq_err */
	int restarts;                          /* codes restarted after this step */
	int skipped;                           /* 1: the gradient was not finite, weights unchanged */
};

struct vqgan_trainer {
	struct vqgan *m;
	struct vqgan_train_config cfg;
	struct nn_optim opt;
	struct nn_arena arena;
	int codebook, last_layer; /* parameter indices: the codebook, decoder.conv_out.weight */
	int K, D;                 /* codes and their dimension */
	/* Codebook upkeep, host memory. */
	int64_t *age;             /* steps since each code was last chosen */
	float *cluster_size;      /* EMA: smoothed count of latents per code [K] */
	float *embed_sum;         /* EMA: running sum of their latents [K, D] */
	int64_t *usage;           /* choices of each code since the last vqgan_trainer_take_usage */
	/* The discriminator, when cfg.disc_start >= 0. */
	struct vqgan_disc *disc;
	struct nn_optim disc_opt;
	float *grad_save;         /* backend: a copy of the gradients (adaptive weight) */
	/* Host scratch, grown to the largest batch seen. */
	struct vqgan_scratch *scratch;
};

/* Sets up training of m, which must have gradients (vqgan_init(.., 1)).
 * The optimiser config applies to the autoencoder and, when there is one,
 * the discriminator. Weight decay falls on conv kernels, never on the
 * codebook. Returns 0 or -1 (errorf). */
int vqgan_trainer_init(struct vqgan_trainer *t, struct vqgan *m, const struct vqgan_train_config *cfg,
                       const struct nn_optim_config *opt);
void vqgan_trainer_free(struct vqgan_trainer *t);

/* One optimiser step on host images x [B, C, H, W] in [-1, 1] (H, W
 * multiples of the factor). Returns 0 or -1 (errorf). */
int vqgan_trainer_step(struct vqgan_trainer *t, const float *x, int B, int H, int W,
                       struct vqgan_step_stats *s);

/* Copies the usage counts since the last call into counts [K] (may be
 * NULL) and starts counting afresh. */
void vqgan_trainer_take_usage(struct vqgan_trainer *t, int64_t *counts);

/* ---- checkpoints ----
 * Beside nn_checkpoint_save's two files (the weights with the model config
 * as taming JSON, which vq-encode and vq-decode load, and the optimiser
 * state) the trainer keeps MODEL.train.safetensors: the codebook's EMA
 * statistics and ages, the discriminator with its optimiser, the training
 * options, and the caller's `meta` (its data settings). It is written
 * first, the previous one kept as MODEL.train.prev.safetensors until the
 * weights are in place, so a crash at any point leaves a state to resume
 * from. */

/* The trainer's file for a weights path (caller frees). */
char *vqgan_trainer_state_path(const char *weights_path, int prev);

int vqgan_trainer_save(struct vqgan_trainer *t, const char *path, const struct nn_train_position *pos,
                       const struct st_meta *meta, int nmeta);
/* Restores everything vqgan_trainer_save wrote, into a trainer set up with
 * the same model config and options; `meta` must equal what was saved.
 * Returns 0, or -1 (errorf naming the file and the mismatch). */
int vqgan_trainer_load(struct vqgan_trainer *t, const char *path, struct nn_train_position *pos,
                       const struct st_meta *meta, int nmeta);

/* ---- measures ---- */

/* Squared error of model outputs y against inputs x, both [n] in the
 * model's scale, after both are turned into 8-bit pixels as vq-decode
 * writes them. */
double vqgan_pixel_sq_err(const float *x, const float *y, size_t n);
/* 10 log10(255^2 / (sq_err / pixels)); 99 for a perfect match. */
double vqgan_psnr(double sq_err, int64_t pixels);
/* exp(entropy) of the code distribution given by counts [K], and how many
 * codes were chosen at all (*used, may be NULL). */
double vqgan_perplexity(const int64_t *counts, int K, int *used);

/* Reconstructs host images x [B, C, H, W] through the tokens (vqgan_encode
 * then vqgan_decode), adding their squared pixel error to *sq_err and
 * their code choices to counts [K]. Returns 0 or -1 (errorf). */
int vqgan_evaluate(struct vqgan *m, const float *x, int B, int H, int W, double *sq_err, int64_t *counts);

#endif
