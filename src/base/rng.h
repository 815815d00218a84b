/* A small, fast, seedable PRNG (xoshiro256** seeded by splitmix64): the same
 * seed gives the same stream on every machine. Not for secrets. */
#ifndef HS_BASE_RNG_H
#define HS_BASE_RNG_H

#include <stdint.h>

typedef struct hs_rng {
    uint64_t s[4];
} hs_rng;

void hs_rng_seed(hs_rng *r, uint64_t seed);
uint64_t hs_rng_u64(hs_rng *r);
/* Uniform in [0, 1) with 24 bits (float) or 53 bits (double). */
float hs_rng_f32(hs_rng *r);
double hs_rng_f64(hs_rng *r);
/* Standard normal (Box-Muller). */
float hs_rng_normal(hs_rng *r);

#endif
