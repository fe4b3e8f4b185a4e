/* hash.c - FNV-1a 64 (see include/aec/hash.h). */
#include "aec/hash.h"

uint64_t aec_hash64(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
