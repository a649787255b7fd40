/* Finite-difference checks of backward passes, for tests.
 *
 * An op is checked through the scalar loss L = sum(out * w), with w fixed
 * random weights in [-1, 1). Its backward pass, given dout = w, must
 * produce dL/dx for every input x; each element is compared with the
 * central difference (L(x + h) - L(x - h)) / 2h, the op run in float32 and L
 * summed in double. The check also holds the op to the conventions of
 * nn/ops.h: the forward pass must assign every output (out is filled with
 * NaN before each call) and the backward pass must accumulate (a second call
 * must double every gradient).
 *
 * Inputs are host float arrays that the check perturbs in place and
 * restores; on the CPU backend they can be passed to ops directly. The
 * backward callback receives zeroed gradient buffers, one per input, in the
 * order of `in`. It is always called right after a forward call at the
 * unperturbed inputs, so values the forward callback saves in ctx (means,
 * softmax outputs) are the right ones.
 *
 * Example, the linear layer:
 *
 *	struct lin { float *inp, *w, *b; int N, IN, OUT; };
 *	static void lin_fwd(void *ctx, float *out) {
 *		struct lin *l = ctx;
 *		nn->linear_forward(out, l->inp, l->w, l->b, l->N, l->IN, l->OUT);
 *	}
 *	static void lin_bwd(void *ctx, float *const *grad, const float *dout) {
 *		struct lin *l = ctx;
 *		nn->linear_backward(grad[0], grad[1], grad[2], dout, l->inp, l->w,
 *		                    l->N, l->IN, l->OUT);
 *	}
 *	static void test_linear_grad(void) {
 *		float inp[3 * 4], w[5 * 4], b[5];
 *		struct lin l = {inp, w, b, 3, 4, 5};
 *		struct gradcheck g = {lin_fwd, lin_bwd, &l, .n_out = 3 * 5,
 *			.in = {{"inp", inp, 12}, {"weight", w, 20}, {"bias", b, 5}}};
 *		gradcheck_fill(&g, 1);
 *		CHECK_MSG(gradcheck(&g) == 0, "%s", error_message());
 *	}
 *
 * The defaults (h = 1e-2, |analytic - numeric| <= 1e-3 + 1e-2 * max(|a|,
 * |n|)) suit smooth ops on inputs of order 1 and a few hundred outputs. Keep
 * inputs away from kinks (relu at 0, max ties) and from where the op is very
 * curved (exp of large values), or raise the tolerances. */
#ifndef KNND_NN_GRADCHECK_H
#define KNND_NN_GRADCHECK_H

#include <stddef.h>
#include <stdint.h>

#define GRADCHECK_MAX_INPUTS 8

struct gradcheck_input {
	const char *name; /* for messages */
	float *x;         /* host values; NULL ends the list */
	size_t n;
};

struct gradcheck {
	void (*forward)(void *ctx, float *out);  /* out: n_out floats */
	/* Accumulates dL/d(in[i]) into grad[i], given dout = dL/dout. */
	void (*backward)(void *ctx, float *const *grad, const float *dout);
	void *ctx;
	size_t n_out;
	struct gradcheck_input in[GRADCHECK_MAX_INPUTS];
	/* Optional; 0 means the default. */
	float step;        /* h, 1e-2 */
	float rtol, atol;  /* 1e-2, 1e-3 */
	uint64_t seed;     /* of the weights w, 1 */
	size_t max_checks; /* elements per input, spread evenly; all by default */
};

/* Fills every input with uniform values in [-1, 1) drawn from `seed`. */
void gradcheck_fill(const struct gradcheck *g, uint64_t seed);

/* Returns 0 when every checked gradient matches, or -1 with errorf()
 * naming the worst element and how many were off. */
int gradcheck(const struct gradcheck *g);

#endif
