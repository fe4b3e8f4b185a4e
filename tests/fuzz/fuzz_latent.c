/* fuzz_latent.c - libFuzzer target for the binary latent (src/codec/latent.c).
 *
 * Input: one selector byte, then the bytes under test.
 *   1. aec_latent_unpack(rest) with expect_dim = the selector and a fixed
 *      model hash, as the daemon does for a fixed model;
 *   2. the same with dim and hash taken from the header itself (when it is
 *      there and dim <= MAXV), so the value decoding is always reached;
 *   3. rest read as little-endian floats: when all are finite, a
 *      pack/unpack round trip in each dtype must give the values back
 *      (f32 bit-exact, f16 as rounded by aec_f32_to_f16, u8 within scale/2).
 * Any successful unpack must yield finite values only.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aec/half.h"
#include "aec/latent.h"

#define HASH 0x0123456789abcdefull
#define MAXV 4096

static float vals[MAXV], back[MAXV];

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void unpack_checked(const uint8_t *b, size_t n, uint32_t dim, uint64_t hash)
{
    aec_error err;
    if (aec_latent_unpack(b, n, dim, hash, back, &err) != AEC_OK)
        return;
    for (uint32_t i = 0; i < dim; i++)
        if (!isfinite(back[i]))
            abort();
}

static void check_u8(uint32_t n)
{
    float lo = vals[0], hi = vals[0];
    for (uint32_t i = 1; i < n; i++)
        lo = fminf(lo, vals[i]), hi = fmaxf(hi, vals[i]);
    float fscale = (hi - lo) / 255.0f;
    double range = (double)hi - (double)lo, scale = fscale;
    /* half a step, float rounding of the arithmetic, and q * (the rounding of
     * scale): up to 255 half-ulps of scale, which dominates for subnormals */
    double ulp = (double)nextafterf(fscale, INFINITY) - scale;
    double tol = 0.5 * scale + 1e-6 * (range + fabs((double)lo) + fabs((double)hi)) + 128 * ulp;
    if (fscale == 0.0f)
        tol += range;
    for (uint32_t i = 0; i < n; i++)
        if (fabs((double)back[i] - (double)vals[i]) > tol)
            abort();
}

static void round_trip(uint32_t n)
{
    for (int dt = AEC_LATENT_F32; dt <= AEC_LATENT_U8; dt++) {
        uint8_t *buf;
        size_t len;
        aec_error err;
        aec_status st = aec_latent_pack(vals, n, HASH, (aec_latent_dtype)dt, &buf, &len, &err);
        if (st != AEC_OK) {
            if (dt == AEC_LATENT_F32) /* f32 takes every finite value */
                abort();
            continue; /* f16 overflow, u8 range past FLT_MAX */
        }
        if (aec_latent_unpack(buf, len, n, HASH, back, &err) != AEC_OK)
            abort();
        free(buf);
        if (dt == AEC_LATENT_F32 && memcmp(vals, back, n * sizeof(float)) != 0)
            abort();
        for (uint32_t i = 0; dt == AEC_LATENT_F16 && i < n; i++)
            if (back[i] != aec_f16_to_f32(aec_f32_to_f16(vals[i])))
                abort();
        if (dt == AEC_LATENT_U8)
            check_u8(n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *b = data + 1;
    size_t n = size - 1;

    unpack_checked(b, n, data[0], HASH);
    if (n >= AEC_LATENT_HEADER) {
        uint32_t dim = le32(b + 8);
        uint64_t hash = (uint64_t)le32(b + 12) | (uint64_t)le32(b + 16) << 32;
        if (dim <= MAXV)
            unpack_checked(b, n, dim, hash);
    }

    uint32_t nv = (uint32_t)(n / 4 < MAXV ? n / 4 : MAXV);
    for (uint32_t i = 0; i < nv; i++) {
        uint32_t u = le32(b + 4 * (size_t)i);
        memcpy(&vals[i], &u, 4);
        if (!isfinite(vals[i]))
            return 0;
    }
    if (nv > 0)
        round_trip(nv);
    return 0;
}
