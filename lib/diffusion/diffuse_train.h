/* Training the discrete backbone (what `diffuse train` runs), and the
 * records both `diffuse train` and `diffuse sample` read.
 *
 * A step, for token grids x0 [B, L] and conditions cond [B, S, D]:
 *
 *   t ~ uniform {0 .. T-1} per row; x_t ~ q(x_t | x0) (md_q_pred, md_sample)
 *   logits = dtx_forward(x_t, t, cond); loss, dlogits = md_train_loss
 *   dtx_backward; AdamW step (nn_optim_step: warm-up, cosine, EMA)
 *
 * With cond_drop P a row's condition is replaced by the null condition
 * (all zeros, every slot valid) with probability P, which teaches the
 * unconditional model that classifier-free guidance needs.
 *
 * Every random number comes from Philox keyed by the seed and counted by
 * the optimiser step and the row, so a run depends only on its data,
 * options and thread count, and a resumed run continues bit for bit. */
#ifndef KNND_DIFFUSION_DIFFUSE_TRAIN_H
#define KNND_DIFFUSION_DIFFUSE_TRAIN_H

#include <stdint.h>

#include "diffusion/discrete_transformer.h"
#include "diffusion/mask_diffusion.h"
#include "nn/arena.h"
#include "nn/optim.h"
#include "stream/record.h"

/* ---- records ----
 * A training record has tokens (int32 [h, w]), emb (float32 [D]) and knn
 * (float32 [k, D]); a sampling record emb and, optionally, knn. */

/* What records must hold; 0 in h, w, D or k: whatever the first record
 * has (then set from it). */
struct diffuse_record_spec {
	int h, w;      /* token grid; ignored when !tokens */
	int K;         /* token ids must be < K (0: unchecked) */
	int D;         /* embedding width */
	int k;         /* neighbours needed (train) or wanted (sample); -1: knn unused */
	int tokens;    /* 1: tokens required */
	int knn_exact; /* 1: at least k knn rows required (train); 0: fewer are masked */
	int knn_mean;  /* 1: the k rows enter as their mean, one slot */
	int query_nearest; /* 1: the query slot holds the first knn row, not
	                    * emb (an image embedding for a text prompt) */
};

/* Condition slots S of such records: 1 + k, or 2 with knn_mean (1 when
 * k <= 0). */
int diffuse_cond_slots(const struct diffuse_record_spec *spec);

/* Checks r against spec (fixing its zero sizes from r) and, if trim,
 * drops every field but tokens, emb and knn. 0 or -1 (errorf). */
int diffuse_record_check(struct diffuse_record_spec *spec, struct record *r, int trim);

/* The condition of r in diffuse_cond_slots(spec) slots: cond [S, D] = emb,
 * then the first k knn rows (or their mean); valid [S] marks the slots
 * filled (a record with fewer neighbours leaves the rest zero and invalid,
 * or averages those it has). */
void diffuse_cond_from_record(const struct diffuse_record_spec *spec, const struct record *r, float *cond,
                              uint8_t *valid);

/* ---- the trainer ---- */

struct diffuse_train_config {
	uint64_t seed;
	float cond_drop;            /* fraction of rows trained with the null condition */
	float query_noise;          /* relative size of the noise added to the query slot */
	struct md_loss_config loss;
};

/* VQ-Diffusion's: aux weight 5e-4, adaptive, mask weights [1, 1]; no
 * condition drop; seed 1. */
struct diffuse_train_config diffuse_train_defaults(void);

struct diffuse_trainer {
	struct dtx *m;
	struct diffuse_train_config cfg;
	struct md_schedule sched;
	struct nn_optim opt;
	struct nn_arena arena;
	/* host scratch, grown to the largest batch */
	size_t cap_rows, cap_cond;
	int32_t *t, *xt;
	float *log_x0, *log_q, *uniform, *logits, *dlogits;
	uint8_t *valid;
};

/* m must have gradients (dtx_init(.., 1)). 0 or -1 (errorf). */
int diffuse_trainer_init(struct diffuse_trainer *t, struct dtx *m, const struct diffuse_train_config *cfg,
                         const struct nn_optim_config *opt);
void diffuse_trainer_free(struct diffuse_trainer *t);

/* One optimiser step on host tokens x0 [B, L] (ids < K) and conditions
 * cond [B, S, D] (rows dropped to the null condition are zeroed in
 * place, and with query_noise the query slot of the others is perturbed
 * in place; valid [B, S] may be NULL: all). *loss gets the step's loss.
 * Returns the nn_optim_step result, or -1 (errorf). */
int diffuse_trainer_step(struct diffuse_trainer *t, const int32_t *x0, float *cond, const uint8_t *valid, int B,
                         int S, float *loss);

#endif
