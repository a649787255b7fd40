/* Splitting records into parts by a seeded hash of a key, so that a
 * record's part depends only on its key, the seed and the weights: not on
 * its position, the other records or how many there are. */
#ifndef KNND_STREAM_KEY_SPLIT_H
#define KNND_STREAM_KEY_SPLIT_H

#include <stddef.h>
#include <stdint.h>

/* 64 well-mixed bits from the bytes and the seed: FNV-1a over the bytes,
 * started from and finished with splitmix64's mixer. */
uint64_t key_hash(const void *key, size_t len, uint64_t seed);

/* Turns n weights (each finite and > 0) into cumulative shares in place,
 * the last exactly 1. Returns 0, or -1 (errorf) for a bad weight. */
int key_split_shares(double *weights, int n);
/* The part for a hash: part i takes the fraction of hashes between shares
 * i-1 and i. */
int key_split_part(const double *shares, int n, uint64_t hash);

#endif
