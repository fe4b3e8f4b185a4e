/* random.h - the one pseudo-random generator of the project: splitmix64.
 * Deterministic and the same on every machine, so the same seed gives the
 * same weights, shuffles, noise and augmented images everywhere. Not for
 * secrets. */
#ifndef AEC_RANDOM_H
#define AEC_RANDOM_H

#include <stdint.h>

/* The next 64 random bits; advances *state. */
uint64_t aec_random_next(uint64_t *state);
/* Uniform in [0, 1), 53 bits. */
double aec_random_uniform(uint64_t *state);

#endif
