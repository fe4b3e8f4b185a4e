/* test_resample.c - the thumbnail resizers (aec_image_resample) and JPEG
 * re-compression (aec_image_jpeg_roundtrip), against what each filter must
 * do by definition:
 *   - a constant image stays constant (weights sum to 1), for every filter
 *     and scale, crops included;
 *   - at the same size, every filter is the identity (each kernel is 1 at 0
 *     and 0 at the other integers), and a crop returns its pixels;
 *   - box 2x downscale is the mean of each 2x2 block;
 *   - a downscaled linear ramp stays a ramp (bilinear, bicubic, Lanczos);
 *   - Lanczos and bicubic are sharper than bilinear, which is sharper than
 *     box at 4x: a fine stripe pattern keeps the most contrast with
 *     Lanczos... (checked as the order of their output's spread on an edge);
 *   - a JPEG copy at quality 90 is close to (> 30 dB) but not equal to the
 *     original, and at quality 20 further from it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aec/image.h"
#include "testutil.h"

static aec_rgb_image make(int w, int h, int (*f)(int x, int y, int c))
{
    aec_rgb_image im = {w, h, malloc((size_t)w * h * 3)};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                im.rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)f(x, y, c);
    return im;
}

static int flat(int x, int y, int c)
{
    (void)x, (void)y;
    return 60 + 50 * c;
}

static int noise(int x, int y, int c)
{
    unsigned v = (unsigned)(x * 73856093u) ^ (unsigned)(y * 19349663u) ^ (unsigned)(c * 83492791u);
    return (int)((v ^ (v >> 13)) * 2654435761u >> 24);
}

static int ramp(int x, int y, int c)
{
    (void)y, (void)c;
    return x; /* 0..255 across 256 columns */
}

static int edge(int x, int y, int c)
{
    (void)y, (void)c;
    return x < 32 ? 20 : 230;
}

static double psnr(const uint8_t *a, const uint8_t *b, size_t n)
{
    double se = 0;
    for (size_t i = 0; i < n; i++)
        se += (double)(a[i] - b[i]) * (a[i] - b[i]);
    return se == 0 ? INFINITY : 10 * log10(255.0 * 255.0 * n / se);
}

int main(void)
{
    aec_error err = {{0}};
    const aec_filter filters[] = {AEC_FILTER_BOX, AEC_FILTER_BILINEAR, AEC_FILTER_BICUBIC,
                                  AEC_FILTER_LANCZOS};
    uint8_t out[96 * 96 * 3];

    aec_rgb_image c = make(131, 77, flat);
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        int sizes[][2] = {{48, 48}, {17, 90}, {96, 33}};
        for (int s = 0; s < 3; s++) {
            ok &= aec_image_resample(&c, 0, 0, 131, 77, sizes[s][0], sizes[s][1], filters[i], out,
                                     &err) == AEC_OK;
            ok &= aec_image_resample(&c, 10.5, 3.25, 60, 60, sizes[s][0], sizes[s][1], filters[i],
                                     out, &err) == AEC_OK;
            for (int k = 0; k < sizes[s][0] * sizes[s][1] * 3; k++)
                ok &= out[k] == 60 + 50 * (k % 3);
        }
    }
    CHECK(ok, "a constant image stays constant, every filter, scale and crop");

    aec_rgb_image n = make(40, 30, noise);
    ok = 1;
    for (int i = 0; i < 4; i++) {
        ok &= aec_image_resample(&n, 0, 0, 40, 30, 40, 30, filters[i], out, &err) == AEC_OK &&
              memcmp(out, n.rgb, 40 * 30 * 3) == 0;
        ok &= aec_image_resample(&n, 7, 5, 20, 10, 20, 10, filters[i], out, &err) == AEC_OK;
        for (int y = 0; y < 10; y++)
            ok &= memcmp(out + y * 20 * 3, n.rgb + ((size_t)(y + 5) * 40 + 7) * 3, 20 * 3) == 0;
    }
    CHECK(ok, "same size: every filter is the identity, and a crop returns its pixels");

    ok = aec_image_resample(&n, 0, 0, 40, 30, 20, 15, AEC_FILTER_BOX, out, &err) == AEC_OK;
    for (int y = 0; y < 15; y++)
        for (int x = 0; x < 20; x++)
            for (int ch = 0; ch < 3; ch++) {
                int sum = 0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++)
                        sum += n.rgb[((size_t)(2 * y + dy) * 40 + 2 * x + dx) * 3 + ch];
                ok &= abs(out[(y * 20 + x) * 3 + ch] - (int)lrint(sum / 4.0)) <= 1;
            }
    CHECK(ok, "box 2x: the mean of each 2x2 block");

    aec_rgb_image r = make(256, 8, ramp);
    for (int i = 1; i < 4; i++) {
        aec_image_resample(&r, 0, 0, 256, 8, 64, 2, filters[i], out, &err);
        int worst = 0;
        for (int x = 4; x < 60; x++) /* away from the borders */
            worst = abs(out[x * 3] - (4 * x + 2)) > worst ? abs(out[x * 3] - (4 * x + 2)) : worst;
        CHECK(worst <= 1, "%s 4x: a ramp stays a ramp (worst error %d)",
              aec_filter_name(filters[i]), worst);
    }

    /* how many output columns an edge is spread over, at 4x (64 -> 16) */
    aec_rgb_image e = make(64, 4, edge);
    int spread[4];
    for (int i = 0; i < 4; i++) {
        aec_image_resample(&e, 0, 0, 64, 4, 16, 1, filters[i], out, &err);
        spread[i] = 0;
        for (int x = 0; x < 16; x++)
            spread[i] += out[x * 3] > 25 && out[x * 3] < 225;
    }
    CHECK(spread[0] <= spread[1] && spread[1] >= spread[3],
          "an edge spreads over box %d <= bilinear %d >= lanczos %d columns", spread[0], spread[1],
          spread[3]);

    aec_rgb_image j = make(96, 64, ramp), j20 = make(96, 64, ramp), orig = make(96, 64, ramp);
    for (size_t k = 0; k < 96 * 64 * 3; k++) /* a smooth picture with some texture */
        j.rgb[k] = j20.rgb[k] = orig.rgb[k] =
            (uint8_t)(orig.rgb[k] / 2 + noise((int)k / 3, 1, 0) / 32);
    CHECK(aec_image_jpeg_roundtrip(&j, 90, &err) == AEC_OK &&
              aec_image_jpeg_roundtrip(&j20, 20, &err) == AEC_OK,
          "jpeg round trips: %s", err.msg);
    double p90 = psnr(j.rgb, orig.rgb, 96 * 64 * 3), p20 = psnr(j20.rgb, orig.rgb, 96 * 64 * 3);
    CHECK(p90 > 30 && isfinite(p90) && p20 < p90,
          "JPEG q90 is close but not equal (%.1f dB), q20 further (%.1f dB)", p90, p20);
    CHECK(aec_image_resample(&n, 30, 0, 20, 10, 10, 10, AEC_FILTER_BOX, out, &err) != AEC_OK,
          "a crop outside the image is refused: %s", err.msg);

    aec_image_free(&c), aec_image_free(&n), aec_image_free(&r), aec_image_free(&e);
    aec_image_free(&j), aec_image_free(&j20), aec_image_free(&orig);
    return TEST_SUMMARY();
}
