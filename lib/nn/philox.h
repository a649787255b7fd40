/* Philox 4x32-10, the counter-based generator behind every random op.
 *
 * A counter-based generator is a pure function (counter, key) -> 128 random
 * bits, so element i of a random tensor can be computed by whichever thread
 * or GPU lane owns it, in any order, and always comes out the same. That is
 * what lets results not depend on thread count or backend, and lets dropout's
 * backward pass regenerate its forward mask instead of storing it.
 *
 * The element scheme every backend follows (ops.h: "element i uses counter
 * offset + i"): with e = offset + i, element e is word e % 4 of the block
 * philox(counter = {e / 4 low 32 bits, e / 4 high 32 bits, 0, 0},
 *        key = {seed low 32 bits, seed high 32 bits}).
 * Its value therefore depends only on (seed, e): not on n, the thread count or
 * where a call starts. Normal draws use the same block: its four words give
 * two Box-Muller pairs (words 0,1 and 2,3), and element e is normal e % 4.
 *
 * Plain C99 with no library calls except <math.h> functions that CUDA also
 * has on the device, so the same header compiles into CUDA kernels. The
 * integer part is bit-exact everywhere; logf/cosf/sinf may differ by an ulp
 * between CPU and GPU math libraries, so normal and Gumbel draws agree across
 * backends to float rounding, not bit for bit. */
#ifndef KNND_NN_PHILOX_H
#define KNND_NN_PHILOX_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define PHILOX_FN static inline __host__ __device__
#else
#define PHILOX_FN static inline
#endif

struct philox_block {
	uint32_t w[4];
};

/* Random123's constants: multipliers for the two S-boxes and the Weyl
 * sequence that bumps the key each round. */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

PHILOX_FN struct philox_block philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                           uint32_t k0, uint32_t k1)
{
	for (int round = 0; round < 10; round++) {
		uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
		uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
		uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
		uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
		c0 = n0;
		c1 = (uint32_t)p1;
		c2 = n2;
		c3 = (uint32_t)p0;
		k0 += PHILOX_W0;
		k1 += PHILOX_W1;
	}
	struct philox_block b = {{c0, c1, c2, c3}};
	return b;
}

/* The block holding element e of the stream (seed): see the scheme above. */
PHILOX_FN struct philox_block philox_block_at(uint64_t seed, uint64_t e)
{
	uint64_t block = e >> 2;
	return philox4x32_10((uint32_t)block, (uint32_t)(block >> 32), 0, 0,
	                     (uint32_t)seed, (uint32_t)(seed >> 32));
}

/* A uniform float strictly inside (0, 1): the top 23 bits of w, centred in
 * their interval, so log(u) and log(1 - u) are always finite. Every step is
 * exact in float, so the value is the same on every backend. */
PHILOX_FN float philox_uniform(uint32_t w)
{
	return ((float)(w >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

/* Box-Muller: two independent standard normals from two uniforms in (0, 1). */
PHILOX_FN void philox_box_muller(float u0, float u1, float *z0, float *z1)
{
	const float two_pi = 6.28318530717958647692f;
	float r = sqrtf(-2.0f * logf(u0));
	float theta = two_pi * u1;
	*z0 = r * cosf(theta);
	*z1 = r * sinf(theta);
}

/* Standard Gumbel noise from a uniform in (0, 1); argmax(logits + gumbel)
 * is a draw from softmax(logits). */
PHILOX_FN float philox_gumbel(float u)
{
	return -logf(-logf(u));
}

/* Element e of the uniform stream (seed). */
PHILOX_FN float philox_uniform_at(uint64_t seed, uint64_t e)
{
	return philox_uniform(philox_block_at(seed, e).w[e & 3]);
}

/* u[i] = the uniform at stream position e0 + i, for i < n: a block gives
 * four, so this is four times cheaper than philox_uniform_at per element. */
PHILOX_FN void philox_uniform_fill(float *u, size_t n, uint64_t seed, uint64_t e0)
{
	size_t i = 0;
	while (i < n) {
		uint64_t e = e0 + i;
		struct philox_block blk = philox_block_at(seed, e);
		for (unsigned lane = (unsigned)(e & 3); lane < 4 && i < n; lane++, i++)
			u[i] = philox_uniform(blk.w[lane]);
	}
}

/* The four normals of the block that holds element e. */
PHILOX_FN void philox_normal4(uint64_t seed, uint64_t e, float z[4])
{
	struct philox_block b = philox_block_at(seed, e);
	philox_box_muller(philox_uniform(b.w[0]), philox_uniform(b.w[1]), &z[0], &z[1]);
	philox_box_muller(philox_uniform(b.w[2]), philox_uniform(b.w[3]), &z[2], &z[3]);
}

/* z[i] = the normal at stream position e0 + i, for i < n (element e is
 * normal e % 4 of its block, as philox_normal4 gives them). */
PHILOX_FN void philox_normal_fill(float *z, size_t n, uint64_t seed, uint64_t e0)
{
	size_t i = 0;
	while (i < n) {
		uint64_t e = e0 + i;
		float four[4];
		philox_normal4(seed, e, four);
		for (unsigned lane = (unsigned)(e & 3); lane < 4 && i < n; lane++, i++)
			z[i] = four[lane];
	}
}

#endif
