/* latent.h - the binary latent: what a user stores for one image.
 *
 * Layout (all little-endian), version 1, 28-byte header then the values:
 *   off size field
 *     0    4 magic "AECL"
 *     4    1 version (1)
 *     5    1 dtype: 1 = f32, 2 = f16, 3 = u8 (per-vector affine)
 *     6    2 reserved, zero
 *     8    4 dim: number of latent values
 *    12    8 model id hash (aec_model.id_hash)
 *    20    4 scale (f32; u8 only, else 1)
 *    24    4 offset (f32; u8 only, else 0)
 *    28    . dim values: f32 (4 bytes), f16 (2 bytes) or u8 (1 byte);
 *            u8 value q decodes to offset + q * scale.
 * The total length must be exactly 28 + dim * size(dtype).
 */
#ifndef AEC_LATENT_H
#define AEC_LATENT_H

#include <stddef.h>
#include <stdint.h>

#include "aec/error.h"

#define AEC_LATENT_MAGIC "AECL"
#define AEC_LATENT_VERSION 1
#define AEC_LATENT_HEADER 28

typedef enum {
    AEC_LATENT_F32 = 1,
    AEC_LATENT_F16 = 2,
    AEC_LATENT_U8 = 3,
} aec_latent_dtype;

/* Parses "f32", "f16", "u8"; returns 0 if unknown. */
aec_latent_dtype aec_latent_dtype_parse(const char *s);
const char *aec_latent_dtype_name(aec_latent_dtype dt);

/* Packs dim values into a malloc'd buffer. Values must be finite. */
aec_status aec_latent_pack(const float *values, uint32_t dim, uint64_t model_hash,
                           aec_latent_dtype dtype, uint8_t **out, size_t *out_len, aec_error *err);

/* The model id hash a binary latent carries (1), or 0 if buf is too short
 * or does not start with the magic. */
int aec_latent_model_hash(const uint8_t *buf, size_t len, uint64_t *hash);

/* Unpacks into values (expect_dim floats). AEC_ERR_FORMAT for a malformed
 * buffer, AEC_ERR_MISMATCH for another model's hash or a wrong dim. */
aec_status aec_latent_unpack(const uint8_t *buf, size_t len, uint32_t expect_dim,
                             uint64_t model_hash, float *values, aec_error *err);

#endif
