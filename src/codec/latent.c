/* latent.c - the binary latent v1 (layout in include/aec/latent.h).
 *
 * Owns aec_latent_pack/unpack and the dtype names. Every multi-byte field is
 * written and read byte by byte, little-endian, so the format does not depend
 * on the host. Floats travel as their IEEE 754 bit patterns.
 *
 * u8 is a per-vector affine code: offset = min, scale = (max - min) / 255,
 * q = round((v - offset) / scale) clamped to 0..255, decoded as
 * offset + q * scale (all equal -> scale 0, every value decodes to offset).
 *
 * unpack trusts nothing: it checks the length before reading the header, the
 * magic, version, dtype, reserved bytes, that the length is exactly what dim
 * says, then dim and model hash against the caller's model, and finally that
 * every decoded value is finite.
 */
#include "aec/latent.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aec/half.h"

#define LATENT_MAX_DIM (1u << 24)

/* ---- little-endian fields --------------------------------------------------- */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_f32(uint8_t *p, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    put_u32(p, bits);
}

static float get_f32(const uint8_t *p)
{
    uint32_t bits = get_u32(p);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* ---- dtypes ----------------------------------------------------------------- */

aec_latent_dtype aec_latent_dtype_parse(const char *s)
{
    if (!s)
        return (aec_latent_dtype)0;
    if (strcmp(s, "f32") == 0)
        return AEC_LATENT_F32;
    if (strcmp(s, "f16") == 0)
        return AEC_LATENT_F16;
    if (strcmp(s, "u8") == 0)
        return AEC_LATENT_U8;
    return (aec_latent_dtype)0;
}

const char *aec_latent_dtype_name(aec_latent_dtype dt)
{
    switch (dt) {
    case AEC_LATENT_F32: return "f32";
    case AEC_LATENT_F16: return "f16";
    case AEC_LATENT_U8: return "u8";
    }
    return "unknown";
}

/* Bytes per value, 0 for an unknown dtype. */
static size_t dtype_size(unsigned dt)
{
    switch (dt) {
    case AEC_LATENT_F32: return 4;
    case AEC_LATENT_F16: return 2;
    case AEC_LATENT_U8: return 1;
    }
    return 0;
}

/* The one u8 decoding expression, shared by pack's range check and unpack. */
static float u8_decode(unsigned q, float scale, float offset)
{
    return offset + (float)q * scale;
}

/* ---- pack ------------------------------------------------------------------- */

/* u8 parameters for values[0..dim); fails if the range is too wide for floats. */
static aec_status u8_params(const float *v, uint32_t dim, float *scale, float *offset,
                            aec_error *err)
{
    float lo = v[0], hi = v[0];
    for (uint32_t i = 1; i < dim; i++) {
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    *offset = lo;
    *scale = (hi - lo) / 255.0f;
    if (!isfinite(*scale) || !isfinite(u8_decode(255, *scale, lo)))
        return aec_fail(err, AEC_ERR_INVALID, "latent range [%g, %g] is too wide for u8",
                        (double)lo, (double)hi);
    return AEC_OK;
}

static uint8_t u8_encode(float v, float scale, float offset)
{
    if (scale == 0.0f)
        return 0;
    float r = (v - offset) / scale;
    if (!(r > 0.0f))
        return 0;
    return r >= 255.0f ? 255 : (uint8_t)lrintf(r);
}

/* Writes the values; fails only for an f16 overflow. */
static aec_status pack_values(uint8_t *p, const float *v, uint32_t dim, aec_latent_dtype dt,
                              float scale, float offset, aec_error *err)
{
    for (uint32_t i = 0; i < dim; i++) {
        if (dt == AEC_LATENT_F32) {
            put_f32(p + 4 * (size_t)i, v[i]);
        } else if (dt == AEC_LATENT_F16) {
            uint16_t h = aec_f32_to_f16(v[i]);
            if ((h & 0x7c00) == 0x7c00)
                return aec_fail(err, AEC_ERR_INVALID,
                                "latent value %u (%g) is outside the f16 range; use f32", i,
                                (double)v[i]);
            put_u16(p + 2 * (size_t)i, h);
        } else {
            p[i] = u8_encode(v[i], scale, offset);
        }
    }
    return AEC_OK;
}

aec_status aec_latent_pack(const float *values, uint32_t dim, uint64_t model_hash,
                           aec_latent_dtype dtype, uint8_t **out, size_t *out_len, aec_error *err)
{
    if (!out || !out_len)
        return aec_fail(err, AEC_ERR_INVALID, "latent pack: no output");
    *out = NULL;
    *out_len = 0;
    size_t vsize = dtype_size((unsigned)dtype);
    if (!vsize)
        return aec_fail(err, AEC_ERR_INVALID, "latent pack: unknown dtype %d", (int)dtype);
    if (dim == 0 || dim > LATENT_MAX_DIM || !values)
        return aec_fail(err, AEC_ERR_INVALID, "latent pack: %u values (must be 1..%u)", dim,
                        LATENT_MAX_DIM);
    for (uint32_t i = 0; i < dim; i++)
        if (!isfinite(values[i]))
            return aec_fail(err, AEC_ERR_INVALID, "latent value %u is not finite", i);

    float scale = 1.0f, offset = 0.0f;
    if (dtype == AEC_LATENT_U8) {
        aec_status st = u8_params(values, dim, &scale, &offset, err);
        if (st != AEC_OK)
            return st;
    }
    size_t len = AEC_LATENT_HEADER + (size_t)dim * vsize;
    uint8_t *buf = malloc(len);
    if (!buf)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory packing %u latent values", dim);
    memcpy(buf, AEC_LATENT_MAGIC, 4);
    buf[4] = AEC_LATENT_VERSION;
    buf[5] = (uint8_t)dtype;
    put_u16(buf + 6, 0);
    put_u32(buf + 8, dim);
    put_u64(buf + 12, model_hash);
    put_f32(buf + 20, scale);
    put_f32(buf + 24, offset);
    aec_status st = pack_values(buf + AEC_LATENT_HEADER, values, dim, dtype, scale, offset, err);
    if (st != AEC_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *out_len = len;
    return AEC_OK;
}

/* ---- unpack ----------------------------------------------------------------- */

/* Everything about the header that does not depend on the caller's model. */
static aec_status check_header(const uint8_t *buf, size_t len, aec_error *err)
{
    if (!buf || len < AEC_LATENT_HEADER)
        return aec_fail(err, AEC_ERR_FORMAT, "latent is %zu bytes, shorter than its %d-byte header",
                        buf ? len : 0, AEC_LATENT_HEADER);
    if (memcmp(buf, AEC_LATENT_MAGIC, 4) != 0)
        return aec_fail(err, AEC_ERR_FORMAT, "not an aec latent (no \"AECL\" magic)");
    if (buf[4] != AEC_LATENT_VERSION)
        return aec_fail(err, AEC_ERR_UNSUPPORTED,
                        "latent format version %u is not supported (this build reads %d)", buf[4],
                        AEC_LATENT_VERSION);
    size_t vsize = dtype_size(buf[5]);
    if (!vsize)
        return aec_fail(err, AEC_ERR_FORMAT, "latent has unknown dtype %u", buf[5]);
    if (get_u16(buf + 6) != 0)
        return aec_fail(err, AEC_ERR_FORMAT, "latent reserved bytes are not zero");
    uint32_t dim = get_u32(buf + 8);
    if (dim == 0 || dim > LATENT_MAX_DIM)
        return aec_fail(err, AEC_ERR_FORMAT, "latent dim %u is not within 1..%u", dim,
                        LATENT_MAX_DIM);
    uint64_t want = AEC_LATENT_HEADER + (uint64_t)dim * vsize;
    if ((uint64_t)len != want)
        return aec_fail(err, AEC_ERR_FORMAT, "latent is %zu bytes; %u %s values need %llu", len,
                        dim, aec_latent_dtype_name((aec_latent_dtype)buf[5]),
                        (unsigned long long)want);
    float scale = get_f32(buf + 20), offset = get_f32(buf + 24);
    if (buf[5] == AEC_LATENT_U8) {
        if (!isfinite(scale) || !isfinite(offset) || scale < 0.0f)
            return aec_fail(err, AEC_ERR_FORMAT, "latent u8 scale/offset %g/%g are invalid",
                            (double)scale, (double)offset);
    } else if (get_u32(buf + 20) != 0x3f800000u || get_u32(buf + 24) != 0) { /* 1.0f, +0.0f */
        return aec_fail(err, AEC_ERR_FORMAT, "latent scale/offset must be 1/0 for %s",
                        aec_latent_dtype_name((aec_latent_dtype)buf[5]));
    }
    return AEC_OK;
}

static aec_status unpack_values(const uint8_t *p, uint32_t dim, unsigned dt, float scale,
                                float offset, float *values, aec_error *err)
{
    for (uint32_t i = 0; i < dim; i++) {
        float v;
        if (dt == AEC_LATENT_F32)
            v = get_f32(p + 4 * (size_t)i);
        else if (dt == AEC_LATENT_F16)
            v = aec_f16_to_f32(get_u16(p + 2 * (size_t)i));
        else
            v = u8_decode(p[i], scale, offset);
        if (!isfinite(v))
            return aec_fail(err, AEC_ERR_FORMAT, "latent value %u is not finite", i);
        values[i] = v;
    }
    return AEC_OK;
}

aec_status aec_latent_unpack(const uint8_t *buf, size_t len, uint32_t expect_dim,
                             uint64_t model_hash, float *values, aec_error *err)
{
    aec_status st = check_header(buf, len, err);
    if (st != AEC_OK)
        return st;
    uint32_t dim = get_u32(buf + 8);
    if (dim != expect_dim)
        return aec_fail(err, AEC_ERR_MISMATCH, "latent has %u values, model expects %u", dim,
                        expect_dim);
    uint64_t hash = get_u64(buf + 12);
    if (hash != model_hash)
        return aec_fail(err, AEC_ERR_MISMATCH,
                        "latent was made by model aec-%016" PRIx64 ", this is aec-%016" PRIx64,
                        hash, model_hash);
    if (!values)
        return aec_fail(err, AEC_ERR_INVALID, "latent unpack: no output buffer");
    return unpack_values(buf + AEC_LATENT_HEADER, dim, buf[5], get_f32(buf + 20), get_f32(buf + 24),
                         values, err);
}

int aec_latent_model_hash(const uint8_t *buf, size_t len, uint64_t *hash)
{
    if (len < AEC_LATENT_HEADER || memcmp(buf, AEC_LATENT_MAGIC, 4) != 0)
        return 0;
    *hash = get_u64(buf + 12);
    return 1;
}
