#include "stream/key_split.h"

#include <math.h>

#include "core/error.h"

/* splitmix64's finaliser: every input bit affects every output bit, which
 * FNV alone does not give for keys that differ only at the end. */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

uint64_t key_hash(const void *key, size_t len, uint64_t seed)
{
	const unsigned char *p = key;
	uint64_t h = mix64(seed + 0x9e3779b97f4a7c15u);
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3u;
	return mix64(h ^ len);
}

int key_split_shares(double *weights, int n)
{
	double total = 0;
	for (int i = 0; i < n; i++) {
		if (!isfinite(weights[i]) || weights[i] <= 0)
			return errorf("weight %g is not a positive number", weights[i]);
		total += weights[i];
	}
	if (!isfinite(total))
		return errorf("the weights add up to more than a double holds");
	double sum = 0;
	for (int i = 0; i < n; i++) {
		sum += weights[i];
		weights[i] = sum / total;
	}
	weights[n - 1] = 1;
	return 0;
}

int key_split_part(const double *shares, int n, uint64_t hash)
{
	double u = (double)(hash >> 11) * 0x1p-53; /* uniform in [0, 1) */
	for (int i = 0; i < n - 1; i++)
		if (u < shares[i])
			return i;
	return n - 1;
}
