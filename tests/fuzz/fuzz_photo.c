/* fuzz_photo.c - libFuzzer target for the photo codec's version-3 stream
 * (src/codec/photo_codec.c, entropy.c) and its model file (photo.c), with a
 * fixed small untrained model built at start-up (n = m = 4).
 *
 * Input: one selector byte, then the bytes under test.
 *   0: the rest as a stream: decompress must refuse it or give an image of
 *      the size its header says, within a 64 x 64 pixel limit.
 *   1: the same with a valid header written over the first bytes (the model's
 *      tag, a small size, lengths that match), so the entropy decoder itself
 *      is reached on almost every input.
 *   2: the rest as a model file: loading must refuse it or give a model that
 *      compresses and decompresses a 16 x 16 image.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aec/photo.h"

static aec_photo *model;

static void setup(void)
{
    aec_photo_config cfg = {.n = 4, .m = 4, .levels = 2, .lambda = {0.01f, 0.05f}};
    if (aec_photo_create(&model, &cfg, 1, NULL) || aec_photo_finalize(model, NULL))
        abort();
}

static void try_stream(const aec_photo *p, const uint8_t *buf, size_t len)
{
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    if (aec_photo_decompress(p, buf, len, 64 * 64, 1, &rgb, &w, &h, NULL) == AEC_OK) {
        aec_photo_info info;
        if (aec_photo_stream_info(buf, len, &info, NULL) || info.width != w || info.height != h)
            abort();
        free(rgb);
    }
}

static void put32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)v, b[1] = (uint8_t)(v >> 8), b[2] = (uint8_t)(v >> 16),
    b[3] = (uint8_t)(v >> 24);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!model)
        setup();
    if (size < 1)
        return 0;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0: try_stream(model, in, n); break;
    case 1: {
        if (n < 4)
            return 0;
        uint8_t *s = malloc(AEC_PHOTO_HEADER + n);
        if (!s)
            return 0;
        memcpy(s, AEC_PHOTO_MAGIC, 4);
        put32(s + 4, aec_photo_tag(model));
        put32(s + 8, 1u + in[0] % 64);
        put32(s + 12, 1u + in[1] % 64);
        s[16] = (uint8_t)(1 + in[2] % 100);
        size_t zl = n - 4 < (size_t)in[3] ? n - 4 : in[3];
        put32(s + 17, (uint32_t)zl);
        put32(s + 21, (uint32_t)(n - 4 - zl));
        memset(s + 25, 0, 4);
        memcpy(s + AEC_PHOTO_HEADER, in + 4, n - 4);
        try_stream(model, s, AEC_PHOTO_HEADER + n - 4);
        free(s);
        break;
    }
    case 2: {
        aec_photo *p = NULL;
        if (aec_photo_load_memory(&p, in, n, "fuzz", NULL) == AEC_OK) {
            uint8_t rgb[16 * 16 * 3] = {0}, *s = NULL, *back = NULL;
            size_t l = 0;
            int w, h;
            if (aec_photo_compress(p, rgb, 16, 16, 50, 1, &s, &l, NULL) == AEC_OK) {
                if (aec_photo_decompress(p, s, l, 1 << 20, 1, &back, &w, &h, NULL) != AEC_OK)
                    abort();
                free(back);
                free(s);
            }
            aec_photo_free(p);
        }
        break;
    }
    }
    return 0;
}
