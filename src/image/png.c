/* png.c - planar float tensors -> PNG bytes (see include/aec/image.h).
 *
 * Owns aec_image_encode_png and aec_image_encode_png_rgb. Values are clamped to [0,1] (NaN becomes
 * 0) and rounded to the nearest of 0..255, so a value k/255 survives an encode/decode round trip
 * exactly. stb_image_write builds the PNG in its own buffer and hands it to a callback; we copy it
 * into one malloc'd buffer the caller owns and frees with free(). Using the public _to_func API
 * means we never free memory stb allocated, whatever allocator libstb was built with.
 */
#include "aec/image.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image_write.h>

#include "sink.h"

static uint8_t to_u8(float v)
{
    if (!(v > 0.0f)) /* also NaN */
        return 0;
    if (v >= 1.0f)
        return 255;
    return (uint8_t)lrintf(v * 255.0f);
}

/* stb_image_write sizes its row-filter buffer as (w*c+1)*h in an int, and
 * its deflate output can be ~1/8 larger than that: keep a 2x margin. */
static int size_ok(int c, int h, int w)
{
    return h > 0 && w > 0 && h <= AEC_IMAGE_MAX_SIDE && w <= AEC_IMAGE_MAX_SIDE &&
           ((size_t)w * (size_t)c + 1) * (size_t)h <= INT_MAX / 2;
}

/* Interleaved 8-bit pixels -> PNG bytes. */
static aec_status encode_pixels(const uint8_t *pix, int c, int h, int w, uint8_t **png,
                                size_t *png_len, aec_error *err)
{
    image_sink sink = {0};
    int ok = stbi_write_png_to_func(image_sink_write, &sink, w, h, c, pix, w * c);
    if (!ok || sink.failed || sink.len == 0) {
        free(sink.buf);
        return aec_fail(err, AEC_ERR_NOMEM, "encode png: %dx%d: out of memory", w, h);
    }
    *png = sink.buf;
    *png_len = sink.len;
    return AEC_OK;
}

aec_status aec_image_encode_png(const float *chw, int c, int h, int w, uint8_t **png,
                                size_t *png_len, aec_error *err)
{
    if (!chw || !png || !png_len)
        return aec_fail(err, AEC_ERR_INVALID, "encode png: missing input or output");
    *png = NULL;
    *png_len = 0;
    if (c != 1 && c != 3)
        return aec_fail(err, AEC_ERR_INVALID, "encode png: %d channels; only 1 or 3", c);
    if (!size_ok(c, h, w))
        return aec_fail(err, AEC_ERR_INVALID, "encode png: size %dx%d is too large or empty", w, h);

    size_t npix = (size_t)h * (size_t)w;
    uint8_t *pix = malloc(npix * (size_t)c);
    if (!pix)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory encoding a %dx%d png", w, h);
    for (int k = 0; k < c; k++)
        for (size_t i = 0; i < npix; i++)
            pix[i * (size_t)c + (size_t)k] = to_u8(chw[(size_t)k * npix + i]);
    aec_status st = encode_pixels(pix, c, h, w, png, png_len, err);
    free(pix);
    return st;
}

aec_status aec_image_encode_png_rgb(const uint8_t *rgb, int w, int h, uint8_t **png,
                                    size_t *png_len, aec_error *err)
{
    if (!rgb || !png || !png_len)
        return aec_fail(err, AEC_ERR_INVALID, "encode png: missing input or output");
    *png = NULL;
    *png_len = 0;
    if (!size_ok(3, h, w))
        return aec_fail(err, AEC_ERR_INVALID, "encode png: size %dx%d is too large or empty", w, h);
    return encode_pixels(rgb, 3, h, w, png, png_len, err);
}
