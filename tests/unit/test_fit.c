/* test_fit.c - how a non-square photo becomes a square model input
 * (aec_image_to_tensor_fit): a 2:1 image, red in its outer quarters and
 * blue in its middle half, at 8x8:
 *   stretch  keeps everything: red at the left and right edges;
 *   crop     the centred square: all blue;
 *   pad      the whole image in the middle rows, white above and below;
 * and the names parse. */
#include <math.h>
#include <stdlib.h>

#include "aec/image.h"
#include "testutil.h"

static float at(const float *t, int c, int y, int x)
{
    return t[(c * 8 + y) * 8 + x];
}

int main(void)
{
    aec_rgb_image img = {64, 32, malloc(64 * 32 * 3)};
    REQUIRE(img.rgb, "oom");
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 64; x++) {
            int red = x < 16 || x >= 48;
            uint8_t *p = img.rgb + (y * 64 + x) * 3;
            p[0] = red ? 255 : 0, p[1] = 0, p[2] = red ? 0 : 255;
        }
    float t[3 * 8 * 8];
    aec_error err = {{0}};
    CHECK(aec_image_to_tensor_fit(&img, AEC_FIT_STRETCH, 3, 8, 8, t, &err) == AEC_OK, "stretch");
    CHECK(at(t, 0, 4, 0) > 0.9f && at(t, 2, 4, 4) > 0.9f && at(t, 0, 4, 7) > 0.9f,
          "stretch: red edges, blue middle");
    CHECK(aec_image_to_tensor_fit(&img, AEC_FIT_CROP, 3, 8, 8, t, &err) == AEC_OK, "crop");
    int blue = 1;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
            blue &= at(t, 2, y, x) > 0.95f && at(t, 0, y, x) < 0.05f;
    CHECK(blue, "crop: the centred square, all blue");
    CHECK(aec_image_to_tensor_fit(&img, AEC_FIT_PAD, 3, 8, 8, t, &err) == AEC_OK, "pad");
    int white = 1;
    for (int x = 0; x < 8; x++)
        for (int c = 0; c < 3; c++)
            white &= at(t, c, 0, x) == 1.0f && at(t, c, 1, x) == 1.0f && at(t, c, 6, x) == 1.0f &&
                     at(t, c, 7, x) == 1.0f;
    CHECK(white, "pad: white rows above and below");
    CHECK(at(t, 0, 4, 0) > 0.9f && at(t, 2, 4, 4) > 0.9f, "pad: the whole image in the middle");
    CHECK(aec_fit_parse("stretch") == AEC_FIT_STRETCH && aec_fit_parse("crop") == AEC_FIT_CROP &&
              aec_fit_parse("pad") == AEC_FIT_PAD && aec_fit_parse("fill") < 0,
          "fit names");
    free(img.rgb);
    return TEST_SUMMARY();
}
