/* random.c - splitmix64 (see include/aec/random.h). */
#include "aec/random.h"

uint64_t aec_random_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double aec_random_uniform(uint64_t *state)
{
    return (double)(aec_random_next(state) >> 11) * 0x1.0p-53;
}
