/* test_half.c - binary16 <-> binary32 conversion (src/util/half.c):
 * exhaustive f16 -> f32 -> f16 round trip, and known roundings including
 * overflow, subnormals and ties to even.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "aec/half.h"
#include "testutil.h"

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_exhaustive(void)
{
    int bad = 0, nans = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = aec_f16_to_f32((uint16_t)h);
        uint16_t back = aec_f32_to_f16(f);
        int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (is_nan) {
            nans++;
            bad += !isnan(f) || (back & 0x7c00) != 0x7c00 || !(back & 0x3ff) ||
                   (back & 0x8000) != (h & 0x8000);
        } else {
            bad += back != h;
        }
    }
    CHECK(bad == 0, "%d of 65536 halves do not round-trip", bad);
    CHECK(nans == 2046, "%d NaN patterns", nans);
}

static void test_known_values(void)
{
    struct {
        float f;
        uint16_t h;
    } cases[] = {
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {65504.0f, 0x7bff},               /* largest half */
        {65519.0f, 0x7bff},               /* below the rounding boundary */
        {65520.0f, 0x7c00},               /* halfway to 2^16 rounds to inf */
        {1e10f, 0x7c00},                  /* overflow */
        {-1e10f, 0xfc00},                 /* negative overflow */
        {INFINITY, 0x7c00},               /* inf stays inf */
        {1e-8f, 0x0000},                  /* underflow to zero */
        {5.9604645e-8f, 0x0001},          /* 2^-24, smallest subnormal */
        {from_bits(0x33000000u), 0x0000}, /* 2^-25: tie between 0 and 1 -> even 0 */
        {from_bits(0x33000001u), 0x0001}, /* just above the tie */
        {from_bits(0x33c00000u), 0x0002}, /* 3*2^-25: tie between 1 and 2 -> 2 */
        {6.097555e-5f, 0x03ff},           /* largest subnormal */
        {6.1035156e-5f, 0x0400},          /* 2^-14, smallest normal */
        {from_bits(0x387fe000u), 0x0400}, /* 1023.5 * 2^-24: tie, carries into normal */
        {from_bits(0x3f801000u), 0x3c00}, /* 1 + 2^-11: tie -> even 1.0 */
        {from_bits(0x3f803000u), 0x3c02}, /* 1 + 3*2^-11: tie -> even 0x3c02 */
        {from_bits(0x3f801001u), 0x3c01}, /* just above the tie */
        {0.333333333f, 0x3555},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) {
        uint16_t h = aec_f32_to_f16(cases[i].f);
        CHECK(h == cases[i].h, "f32 %.9g -> 0x%04x, want 0x%04x", (double)cases[i].f, h,
              cases[i].h);
    }
    CHECK(isnan(aec_f16_to_f32(aec_f32_to_f16(NAN))), "NaN stays NaN");
    CHECK(aec_f16_to_f32(0x0001) == ldexpf(1.0f, -24), "0x0001 is 2^-24");
    CHECK(aec_f16_to_f32(0x3555) == 0.333251953125f, "0x3555");
    CHECK(aec_f16_to_f32(0xfc00) == -INFINITY, "-inf");
    CHECK(signbit(aec_f16_to_f32(0x8000)) && aec_f16_to_f32(0x8000) == 0.0f, "-0");
}

int main(void)
{
    test_exhaustive();
    test_known_values();
    return TEST_SUMMARY();
}
