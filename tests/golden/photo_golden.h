/* photo_golden.h - the photo codec's golden files in tests/golden/, shared by
 * the program that made them once (make_photo_golden.c) and the test that
 * checks them (tests/unit/test_photo_golden.c):
 *   photo-tiny.safetensors   a small untrained photo codec (n = m = 8)
 *   photo-src.png            a synthetic 99 x 70 photo
 *   photo-tiny.q<Q>.aec      its version-3 stream at quality Q
 *   photo-tiny.q<Q>.png      the image decoded from that stream
 */
#ifndef AEC_TESTS_PHOTO_GOLDEN_H
#define AEC_TESTS_PHOTO_GOLDEN_H

#include <stdint.h>
#include <stdlib.h>

#include "aec/photo.h"

#define PHOTO_GOLDEN_MODEL "photo-tiny.safetensors"
#define PHOTO_GOLDEN_SOURCE "photo-src.png"
#define PHOTO_GOLDEN_W 99
#define PHOTO_GOLDEN_H 70
#define PHOTO_GOLDEN_SEED 2026
#define PHOTO_GOLDEN_QUALITIES                                                                     \
    {                                                                                              \
        20, 75, 100                                                                                \
    }
#define PHOTO_GOLDEN_CONFIG                                                                        \
    {                                                                                              \
        .n = 8, .m = 8, .levels = 2, .lambda = { 0.01f, 0.05f }                                    \
    }

/* Gains that spread the symbols (so escapes and wide tables are exercised). */
static inline void photo_golden_gains(aec_photo *p)
{
    for (int l = 0; l < p->cfg.levels; l++)
        for (int c = 0; c < p->cfg.m; c++) {
            p->params[p->gain + (size_t)l * p->cfg.m + c] = 3.0f + 30.0f * l + c;
            p->params[p->inv_gain + (size_t)l * p->cfg.m + c] = 1.0f / (3.0f + 30.0f * l + c);
        }
}

/* The source image: gradients, an edge, a deterministic noise. */
static inline uint8_t *photo_golden_image(void)
{
    int w = PHOTO_GOLDEN_W, h = PHOTO_GOLDEN_H;
    uint8_t *rgb = malloc((size_t)3 * w * h);
    if (!rgb)
        return NULL;
    uint32_t r = 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                r = r * 1664525u + 1013904223u;
                int v = (x * 255 / w + y * 128 / h + c * 40) % 256;
                if (x > w / 2 && y < h / 3)
                    v = 255 - v;
                v += (int)(r >> 27) - 16;
                rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    return rgb;
}

#endif
