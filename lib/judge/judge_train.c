#include "judge/judge_train.h"

#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "nn/ops.h"
#include "nn/philox.h"

/* ---- records ---- */

int judge_record_label(const struct record *r, int n, int *label)
{
	if (!record_get(r, "label"))
		return 1;
	int64_t v;
	if (record_int(r, "label", &v) < 0)
		return errorf("'label' is not an integer");
	if (v < 0 || v >= n)
		return errorf("label %lld is not a class of %d (0 to %d)", (long long)v, n, n - 1);
	*label = (int)v;
	return 0;
}

void judge_shift(float *x, int C, int S, int dx, int dy)
{
	if (!dx && !dy)
		return;
	float *row = xmalloc((size_t)S * S * sizeof *row);
	for (int c = 0; c < C; c++) {
		float *plane = x + (size_t)c * S * S;
		memcpy(row, plane, (size_t)S * S * sizeof *row);
		for (int y = 0; y < S; y++) {
			int sy = y - dy < 0 ? 0 : y - dy >= S ? S - 1 : y - dy;
			for (int xx = 0; xx < S; xx++) {
				int sx = xx - dx < 0 ? 0 : xx - dx >= S ? S - 1 : xx - dx;
				plane[(size_t)y * S + xx] = row[(size_t)sy * S + sx];
			}
		}
	}
	free(row);
}

/* The Philox stream of the shifts (the key is the seed xor this). */
#define SHIFT_STREAM 0x7368696674ull

void judge_shift_at(uint64_t seed, uint64_t draw, int max, int *dx, int *dy)
{
	struct philox_block b = philox_block_at(seed ^ SHIFT_STREAM, draw * 4); /* a block per draw */
	unsigned span = 2u * (unsigned)max + 1u;
	*dx = (int)(b.w[0] % span) - max;
	*dy = (int)(b.w[1] % span) - max;
}

/* ---- the trainer ---- */

int judge_trainer_init(struct judge_trainer *t, struct judge *m, const struct nn_optim_config *opt)
{
	*t = (struct judge_trainer){ .m = m };
	if (!m->params.grad)
		return errorf("the model must have gradients to train");
	if (nn_optim_init(&t->opt, &m->params, opt) < 0)
		return -1;
	nn_optim_decay_matrices_only(&t->opt);
	return 0;
}

void judge_trainer_free(struct judge_trainer *t)
{
	nn_optim_free(&t->opt);
	nn_arena_free(&t->arena);
	free(t->loss);
	free(t->logits);
}

int judge_trainer_step(struct judge_trainer *t, const float *x, const int32_t *labels, int B, float *loss,
                       int *correct)
{
	const struct judge_config *c = &t->m->cfg;
	int N = c->classes;
	if ((size_t)B > t->cap) {
		t->cap = (size_t)B;
		t->loss = xrealloc(t->loss, (size_t)B * 2 * sizeof *t->loss);
		t->logits = xrealloc(t->logits, (size_t)B * N * sizeof *t->logits);
	}
	struct nn_arena *a = &t->arena;
	size_t nx = (size_t)B * c->channels * c->image_size * c->image_size;
	float *d_x = nn_arena_floats(a, nx);
	nn->upload(d_x, x, nx * sizeof *x);
	int32_t *d_labels = nn_arena_bytes(a, (size_t)B * sizeof *d_labels);
	nn->upload(d_labels, labels, (size_t)B * sizeof *d_labels);

	float *logits = judge_forward(t->m, a, d_x, B);
	float *d_loss = nn_arena_floats(a, (size_t)B);
	nn->cross_entropy_forward(d_loss, logits, d_labels, B, N);
	nn->download(t->loss, d_loss, (size_t)B * sizeof *t->loss);
	nn->download(t->logits, logits, (size_t)B * N * sizeof *t->logits);
	double sum = 0;
	*correct = 0;
	for (int b = 0; b < B; b++) {
		sum += t->loss[b];
		*correct += judge_argmax(t->logits + (size_t)b * N, N) == labels[b];
	}
	*loss = (float)(sum / B);

	/* the mean: each row's loss weighs 1/B */
	float *dloss = t->loss + B;
	for (int b = 0; b < B; b++)
		dloss[b] = 1.0f / (float)B;
	float *d_dloss = nn_arena_floats(a, (size_t)B);
	nn->upload(d_dloss, dloss, (size_t)B * sizeof *dloss);
	float *dlogits = nn_arena_zeros(a, (size_t)B * N);
	nn->cross_entropy_backward(dlogits, logits, d_labels, d_dloss, B, N);
	judge_backward(t->m, a, dlogits);
	nn_arena_reset(a);
	return nn_optim_step(&t->opt);
}
