/* hash.h - the one non-cryptographic hash of the project: FNV-1a, 64 bits.
 * Model ids, stream model tags and ETags are all made with it. Byte order
 * matters: hash the same bytes on every machine (the floats of a model are
 * little-endian on every platform aec runs on). */
#ifndef AEC_HASH_H
#define AEC_HASH_H

#include <stddef.h>
#include <stdint.h>

#define AEC_HASH64_INIT 0xcbf29ce484222325ull

/* Continues hash h over len bytes of data. */
uint64_t aec_hash64(uint64_t h, const void *data, size_t len);

#endif
