/* Training the judge (what `classify train` runs), and the labelled
 * records it reads.
 *
 * A step: images x [B, C, S, S] (optionally shifted by a few pixels, with
 * the edge repeated), labels [B]; logits = judge_forward; the loss is the
 * mean softmax cross-entropy; judge_backward; AdamW (nn_optim_step:
 * warm-up, cosine decay). Shifts come from Philox keyed by the seed and
 * counted by the draw, so a run depends only on its data, options and
 * thread count, and a resumed run continues bit for bit. */
#ifndef KNND_JUDGE_JUDGE_TRAIN_H
#define KNND_JUDGE_JUDGE_TRAIN_H

#include <stdint.h>

#include "judge/judge_model.h"
#include "nn/arena.h"
#include "nn/optim.h"
#include "stream/record.h"

/* ---- records ---- */

/* The label of r as a class of n: 0 with *label, 1 if r has no "label",
 * -1 (errorf) if it is not an integer or not in [0, n). */
int judge_record_label(const struct record *r, int n, int *label);

/* Shifts an image [C, S, S] by (dx, dy) pixels in place (positive: right
 * and down), repeating the edge pixels into the uncovered border. */
void judge_shift(float *x, int C, int S, int dx, int dy);

/* The shift of draw number `draw`: dx, dy uniform in [-max, max]. */
void judge_shift_at(uint64_t seed, uint64_t draw, int max, int *dx, int *dy);

/* ---- the trainer ---- */

struct judge_trainer {
	struct judge *m;
	struct nn_optim opt;
	struct nn_arena arena;
	size_t cap;          /* rows of the host buffers */
	float *loss, *logits;
};

/* m must have gradients (judge_init(.., 1)). 0 or -1 (errorf). */
int judge_trainer_init(struct judge_trainer *t, struct judge *m, const struct nn_optim_config *opt);
void judge_trainer_free(struct judge_trainer *t);

/* One optimiser step on host images x [B, C, S, S] and labels [B] (in
 * [0, N)): *loss gets the batch's mean loss and *correct how many rows the
 * logits classified right (before the update). Returns the nn_optim_step
 * result. */
int judge_trainer_step(struct judge_trainer *t, const float *x, const int32_t *labels, int B, float *loss,
                       int *correct);

#endif
