/* test_latent.c - the binary latent v1 (src/codec/latent.c): round trips for
 * each dtype, the exact byte layout, and rejection of truncated, bit-flipped
 * and foreign latents with the right status.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aec/half.h"
#include "aec/latent.h"
#include "testutil.h"

#define HASH 0x0123456789abcdefull
#define DIM 100

static float values[DIM];

static void fill_values(uint64_t seed)
{
    uint64_t s = seed;
    for (int i = 0; i < DIM; i++)
        values[i] = 6.0f * (test_rand_uniform(&s) - 0.5f);
    values[3] = 0.0f;
    values[4] = -0.0f;
}

static uint8_t *pack(aec_latent_dtype dt, size_t *len)
{
    uint8_t *buf = NULL;
    aec_error err;
    aec_status st = aec_latent_pack(values, DIM, HASH, dt, &buf, len, &err);
    REQUIRE(st == AEC_OK, "pack %s: %s", aec_latent_dtype_name(dt), err.msg);
    return buf;
}

static void test_dtype_names(void)
{
    CHECK(aec_latent_dtype_parse("f32") == AEC_LATENT_F32, "f32");
    CHECK(aec_latent_dtype_parse("f16") == AEC_LATENT_F16, "f16");
    CHECK(aec_latent_dtype_parse("u8") == AEC_LATENT_U8, "u8");
    CHECK(aec_latent_dtype_parse("F32") == 0 && aec_latent_dtype_parse("") == 0 &&
              aec_latent_dtype_parse(NULL) == 0 && aec_latent_dtype_parse("f3") == 0,
          "unknown names");
    CHECK(strcmp(aec_latent_dtype_name(AEC_LATENT_F16), "f16") == 0, "name f16");
    CHECK(strcmp(aec_latent_dtype_name((aec_latent_dtype)9), "unknown") == 0, "name 9");
}

static void test_layout(void)
{
    fill_values(1);
    values[0] = 1.0f;
    size_t len;
    uint8_t *b = pack(AEC_LATENT_F32, &len);
    CHECK(len == AEC_LATENT_HEADER + 4 * DIM, "f32 length %zu", len);
    static const uint8_t head[28] = {'A', 'E', 'C',  'L',  1,    1,    0,    0,    DIM,  0,
                                     0,   0,   0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01,
                                     0,   0,   0x80, 0x3f, 0,    0,    0,    0};
    CHECK(memcmp(b, head, 28) == 0, "header bytes, little-endian");
    CHECK(b[28] == 0 && b[29] == 0 && b[30] == 0x80 && b[31] == 0x3f, "1.0f little-endian");
    free(b);
}

static void test_round_trips(void)
{
    fill_values(2);
    float out[DIM];
    aec_error err;
    size_t len;

    uint8_t *b = pack(AEC_LATENT_F32, &len);
    REQUIRE(aec_latent_unpack(b, len, DIM, HASH, out, &err) == AEC_OK, "%s", err.msg);
    CHECK(memcmp(out, values, sizeof out) == 0, "f32 exact (bitwise, -0 kept)");
    free(b);

    b = pack(AEC_LATENT_F16, &len);
    CHECK(len == AEC_LATENT_HEADER + 2 * DIM, "f16 length");
    REQUIRE(aec_latent_unpack(b, len, DIM, HASH, out, &err) == AEC_OK, "%s", err.msg);
    int ok = 1;
    for (int i = 0; i < DIM; i++)
        ok &= out[i] == aec_f16_to_f32(aec_f32_to_f16(values[i]));
    CHECK(ok, "f16 equals the f16 rounding of each value");
    free(b);

    b = pack(AEC_LATENT_U8, &len);
    CHECK(len == AEC_LATENT_HEADER + DIM, "u8 length");
    REQUIRE(aec_latent_unpack(b, len, DIM, HASH, out, &err) == AEC_OK, "%s", err.msg);
    float lo = values[0], hi = values[0];
    for (int i = 0; i < DIM; i++)
        lo = fminf(lo, values[i]), hi = fmaxf(hi, values[i]);
    float scale = (hi - lo) / 255;
    float worst = 0;
    for (int i = 0; i < DIM; i++)
        worst = fmaxf(worst, fabsf(out[i] - values[i]));
    CHECK(worst <= scale * 0.5f * 1.0001f, "u8 error %g within scale/2 = %g", worst, scale / 2);
    CHECK(out[0] == out[0] && fabsf(out[0] - values[0]) <= scale, "sane");
    free(b);

    /* all values equal -> scale 0, everything decodes to the value */
    for (int i = 0; i < DIM; i++)
        values[i] = -2.5f;
    b = pack(AEC_LATENT_U8, &len);
    REQUIRE(aec_latent_unpack(b, len, DIM, HASH, out, &err) == AEC_OK, "%s", err.msg);
    ok = 1;
    for (int i = 0; i < DIM; i++)
        ok &= out[i] == -2.5f;
    CHECK(ok, "constant u8 latent exact");
    free(b);

    /* the extremes of the u8 range decode exactly to min and close to max */
    fill_values(3);
    values[10] = -100.0f, values[11] = 100.0f;
    b = pack(AEC_LATENT_U8, &len);
    REQUIRE(aec_latent_unpack(b, len, DIM, HASH, out, &err) == AEC_OK, "%s", err.msg);
    CHECK(out[10] == -100.0f && fabsf(out[11] - 100.0f) < 1e-4f, "u8 ends %g %g", out[10], out[11]);
    free(b);
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* u8 of subnormal values (from fuzz_latent): scale itself is a coarse
 * subnormal, so the error can pass scale/2, but stays a few hundred 2^-149. */
static void test_u8_subnormal(void)
{
    float v[2] = {from_bits(0x000078aa), from_bits(0x00006060)}, out[2];
    uint8_t *b;
    size_t len;
    aec_error err;
    REQUIRE(aec_latent_pack(v, 2, HASH, AEC_LATENT_U8, &b, &len, &err) == AEC_OK, "%s", err.msg);
    REQUIRE(aec_latent_unpack(b, len, 2, HASH, out, &err) == AEC_OK, "%s", err.msg);
    const float tiny = from_bits(256); /* 256 * 2^-149 */
    CHECK(fabsf(out[0] - v[0]) <= tiny && fabsf(out[1] - v[1]) <= tiny, "subnormal u8: %g %g",
          (double)(out[0] - v[0]), (double)(out[1] - v[1]));
    CHECK(out[1] == v[1], "the minimum is the offset, exact");
    free(b);
}

static void test_pack_rejects(void)
{
    fill_values(4);
    uint8_t *b = (uint8_t *)1;
    size_t len = 1;
    aec_error err;
    CHECK(aec_latent_pack(values, 0, HASH, AEC_LATENT_F32, &b, &len, &err) == AEC_ERR_INVALID,
          "dim 0");
    CHECK(b == NULL && len == 0, "outputs cleared");
    CHECK(aec_latent_pack(values, (1u << 24) + 1, HASH, AEC_LATENT_F32, &b, &len, &err) ==
              AEC_ERR_INVALID,
          "dim 2^24 + 1");
    CHECK(aec_latent_pack(values, DIM, HASH, (aec_latent_dtype)4, &b, &len, &err) ==
              AEC_ERR_INVALID,
          "dtype 4");
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        fill_values(4);
        values[17] = bad[k];
        for (int dt = 1; dt <= 3; dt++) {
            aec_status st =
                aec_latent_pack(values, DIM, HASH, (aec_latent_dtype)dt, &b, &len, &err);
            CHECK(st == AEC_ERR_INVALID, "non-finite %d dtype %d", k, dt);
        }
    }
    CHECK(strstr(err.msg, "17") != NULL, "message names the index: %s", err.msg);
    fill_values(4);
    values[5] = 70000.0f;
    CHECK(aec_latent_pack(values, DIM, HASH, AEC_LATENT_F16, &b, &len, &err) == AEC_ERR_INVALID,
          "f16 overflow");
    values[5] = 65504.0f;
    CHECK(aec_latent_pack(values, DIM, HASH, AEC_LATENT_F16, &b, &len, &err) == AEC_OK,
          "f16 max is fine");
    free(b);
    values[5] = -3e38f, values[6] = 3e38f;
    CHECK(aec_latent_pack(values, DIM, HASH, AEC_LATENT_U8, &b, &len, &err) == AEC_ERR_INVALID,
          "u8 range overflows float");
    CHECK(aec_latent_pack(values, DIM, HASH, AEC_LATENT_F32, &b, &len, &err) == AEC_OK,
          "f32 takes any finite value");
    free(b);
}

static void test_truncation_and_foreign(void)
{
    fill_values(5);
    float out[DIM];
    aec_error err;
    for (int dt = 1; dt <= 3; dt++) {
        size_t len;
        uint8_t *b = pack((aec_latent_dtype)dt, &len);
        int all = 1;
        for (size_t n = 0; n < len; n++) {
            uint8_t *cut = malloc(n ? n : 1); /* exact size, so ASan sees over-reads */
            memcpy(cut, b, n);
            all &= aec_latent_unpack(cut, n, DIM, HASH, out, &err) == AEC_ERR_FORMAT;
            free(cut);
        }
        CHECK(all, "dtype %d: every prefix is AEC_ERR_FORMAT", dt);
        uint8_t *longer = malloc(len + 1);
        memcpy(longer, b, len);
        longer[len] = 0;
        CHECK(aec_latent_unpack(longer, len + 1, DIM, HASH, out, &err) == AEC_ERR_FORMAT,
              "one extra byte");
        free(longer);

        aec_status st = aec_latent_unpack(b, len, DIM, HASH ^ 1, out, &err);
        CHECK(st == AEC_ERR_MISMATCH, "wrong hash: %s", aec_status_name(st));
        CHECK(strstr(err.msg, "aec-0123456789abcdef") && strstr(err.msg, "aec-0123456789abcdee"),
              "message names both models: %s", err.msg);
        st = aec_latent_unpack(b, len, 1728, HASH, out, &err);
        CHECK(st == AEC_ERR_MISMATCH, "wrong dim: %s", aec_status_name(st));
        CHECK(strstr(err.msg, "100 values") && strstr(err.msg, "1728"), "dim message: %s", err.msg);
        CHECK(aec_latent_unpack(NULL, 0, DIM, HASH, out, &err) == AEC_ERR_FORMAT, "NULL");
        free(b);
    }
}

/* Flip every bit of the header; each must be caught with the right status
 * (u8's scale and offset are free floats: a flip there may still decode). */
static void test_bit_flips(void)
{
    fill_values(6);
    float out[DIM];
    aec_error err;
    for (int dt = 1; dt <= 3; dt++) {
        size_t len;
        uint8_t *b = pack((aec_latent_dtype)dt, &len);
        for (int byte = 0; byte < AEC_LATENT_HEADER; byte++)
            for (int bit = 0; bit < 8; bit++) {
                b[byte] ^= (uint8_t)(1u << bit);
                aec_status st = aec_latent_unpack(b, len, DIM, HASH, out, &err);
                aec_status want = byte == 4                 ? AEC_ERR_UNSUPPORTED
                                  : byte >= 12 && byte < 20 ? AEC_ERR_MISMATCH
                                                            : AEC_ERR_FORMAT;
                if (dt == AEC_LATENT_U8 && byte >= 20) {
                    if (st == AEC_OK) {
                        int fin = 1;
                        for (int i = 0; i < DIM; i++)
                            fin &= isfinite(out[i]) != 0;
                        CHECK(fin, "u8 flip %d.%d decodes to finite values", byte, bit);
                    } else {
                        CHECK(st == AEC_ERR_FORMAT, "u8 flip %d.%d: %s", byte, bit,
                              aec_status_name(st));
                    }
                } else {
                    CHECK(st == want, "dtype %d flip byte %d bit %d: %s (%s)", dt, byte, bit,
                          aec_status_name(st), err.msg);
                }
                b[byte] ^= (uint8_t)(1u << bit);
            }
        CHECK(aec_latent_unpack(b, len, DIM, HASH, out, &err) == AEC_OK, "restored");
        free(b);
    }
}

/* Non-finite payload values are a malformed latent, not numbers to use. */
static void test_nonfinite_payload(void)
{
    fill_values(7);
    float out[DIM];
    aec_error err;
    size_t len;
    uint8_t *b = pack(AEC_LATENT_F32, &len);
    const uint32_t pats[3] = {0x7fc00000u, 0x7f800000u, 0xff800000u};
    for (int k = 0; k < 3; k++) {
        uint8_t *p = b + AEC_LATENT_HEADER + 4 * 9;
        for (int i = 0; i < 4; i++)
            p[i] = (uint8_t)(pats[k] >> (8 * i));
        aec_status st = aec_latent_unpack(b, len, DIM, HASH, out, &err);
        CHECK(st == AEC_ERR_FORMAT, "f32 pattern %08x: %s", pats[k], aec_status_name(st));
    }
    free(b);

    b = pack(AEC_LATENT_F16, &len);
    const uint16_t hp[3] = {0x7e00, 0x7c00, 0xfc01};
    for (int k = 0; k < 3; k++) {
        b[AEC_LATENT_HEADER + 2 * 50] = (uint8_t)hp[k];
        b[AEC_LATENT_HEADER + 2 * 50 + 1] = (uint8_t)(hp[k] >> 8);
        CHECK(aec_latent_unpack(b, len, DIM, HASH, out, &err) == AEC_ERR_FORMAT, "f16 pattern %04x",
              hp[k]);
    }
    free(b);

    /* u8 with a finite scale whose q*scale overflows */
    b = pack(AEC_LATENT_U8, &len);
    const uint32_t big = 0x7f000000u; /* 1.7e38 */
    for (int i = 0; i < 4; i++)
        b[20 + i] = (uint8_t)(big >> (8 * i));
    for (int i = AEC_LATENT_HEADER; i < (int)len; i++)
        b[i] = 255;
    CHECK(aec_latent_unpack(b, len, DIM, HASH, out, &err) == AEC_ERR_FORMAT, "u8 overflow");
    free(b);
}

int main(void)
{
    test_dtype_names();
    test_layout();
    test_round_trips();
    test_u8_subnormal();
    test_pack_rejects();
    test_truncation_and_foreign();
    test_bit_flips();
    test_nonfinite_payload();
    return TEST_SUMMARY();
}
