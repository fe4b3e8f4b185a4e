/* resize.c - decoded images -> model tensors, and tensor resizing
 * (see include/aec/image.h).
 *
 * Owns aec_image_to_tensor, aec_image_load_tensor and aec_tensor_resize.
 *
 * Resampling is stb_image_resize (v0.97) with STBIR_FILTER_DEFAULT, which is
 * Mitchell-Netravali when shrinking (an antialiasing filter whose support
 * grows with the scale factor, so every source pixel contributes) and
 * Catmull-Rom when enlarging, edges clamped, and STBIR_COLORSPACE_LINEAR:
 * sample values are filtered as they are, without sRGB linearisation, which
 * is what the usual PIL/PyTorch preprocessing does. An image that already has
 * the target size is not resampled, so its tensor is exactly u8 / 255.
 *
 * aec_image_to_tensor resizes in 8 bits (the result is what an image editor
 * would save at that size) and converts to float afterwards; that keeps the
 * scratch memory at out_w*out_h*3 bytes whatever the source size.
 * aec_tensor_resize filters float planes one at a time; cubic filters can
 * overshoot slightly, and the result is not clamped.
 */
#include "aec/image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image_resize.h>

static aec_status check_tensor_args(int channels, int out_h, int out_w, const float *out,
                                    aec_error *err)
{
    if (channels != 1 && channels != 3)
        return aec_fail(err, AEC_ERR_INVALID, "tensor: %d channels; only 1 or 3", channels);
    if (out_h <= 0 || out_w <= 0 || out_h > AEC_TENSOR_MAX_SIDE || out_w > AEC_TENSOR_MAX_SIDE)
        return aec_fail(err, AEC_ERR_INVALID, "tensor: size %dx%d is not within 1..%d", out_w,
                        out_h, AEC_TENSOR_MAX_SIDE);
    if (!out)
        return aec_fail(err, AEC_ERR_INVALID, "tensor: no output buffer");
    return AEC_OK;
}

/* Interleaved RGB u8 -> planar floats; 1 channel means BT.601 luma. */
static void planarize(const uint8_t *rgb, size_t npix, int channels, float *out)
{
    float lut[256];
    for (int i = 0; i < 256; i++)
        lut[i] = (float)i / 255.0f;
    if (channels == 3) {
        for (size_t i = 0; i < npix; i++) {
            out[i] = lut[rgb[3 * i]];
            out[npix + i] = lut[rgb[3 * i + 1]];
            out[2 * npix + i] = lut[rgb[3 * i + 2]];
        }
        return;
    }
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *p = rgb + 3 * i;
        float y = (0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2]) / 255.0f;
        out[i] = y < 1.0f ? y : 1.0f; /* the weights sum to 1 + 1 ulp */
    }
}

aec_status aec_image_to_tensor(const aec_rgb_image *img, int channels, int out_h, int out_w,
                               float *out, aec_error *err)
{
    aec_status st = check_tensor_args(channels, out_h, out_w, out, err);
    if (st != AEC_OK)
        return st;
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0 ||
        img->width > AEC_IMAGE_MAX_SIDE || img->height > AEC_IMAGE_MAX_SIDE)
        return aec_fail(err, AEC_ERR_INVALID, "tensor: no image or an invalid image size");

    size_t npix = (size_t)out_h * (size_t)out_w;
    if (img->width == out_w && img->height == out_h) {
        planarize(img->rgb, npix, channels, out);
        return AEC_OK;
    }
    uint8_t *tmp = malloc(npix * 3);
    if (!tmp)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory resizing to %dx%d", out_w, out_h);
    int ok = stbir_resize_uint8_generic(img->rgb, img->width, img->height, img->width * 3, tmp,
                                        out_w, out_h, out_w * 3, 3, STBIR_ALPHA_CHANNEL_NONE, 0,
                                        STBIR_EDGE_CLAMP, STBIR_FILTER_DEFAULT,
                                        STBIR_COLORSPACE_LINEAR, NULL);
    if (ok)
        planarize(tmp, npix, channels, out);
    free(tmp);
    if (!ok) /* stbir fails only when its scratch allocation does */
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory resizing %dx%d to %dx%d", img->width,
                        img->height, out_w, out_h);
    return AEC_OK;
}

aec_status aec_image_load_tensor(const uint8_t *buf, size_t len, size_t max_pixels, int channels,
                                 int out_h, int out_w, float *out, aec_error *err)
{
    aec_status st = check_tensor_args(channels, out_h, out_w, out, err);
    if (st != AEC_OK) /* before spending time on decoding */
        return st;
    aec_rgb_image img;
    st = aec_image_decode(buf, len, max_pixels, &img, err);
    if (st != AEC_OK)
        return st;
    st = aec_image_to_tensor(&img, channels, out_h, out_w, out, err);
    aec_image_free(&img);
    return st;
}

int aec_fit_parse(const char *s)
{
    return !strcmp(s, "stretch") ? AEC_FIT_STRETCH
           : !strcmp(s, "crop")  ? AEC_FIT_CROP
           : !strcmp(s, "pad")   ? AEC_FIT_PAD
                                 : -1;
}

aec_status aec_image_to_tensor_fit(const aec_rgb_image *img, aec_fit fit, int channels, int out_h,
                                   int out_w, float *out, aec_error *err)
{
    aec_status st = check_tensor_args(channels, out_h, out_w, out, err);
    if (st != AEC_OK || fit == AEC_FIT_STRETCH)
        return st != AEC_OK ? st : aec_image_to_tensor(img, channels, out_h, out_w, out, err);
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return aec_fail(err, AEC_ERR_INVALID, "tensor: no image");
    /* the largest w x h of the model's aspect inside the image (crop), or
     * the image's own aspect inside the model's w x h (pad) */
    double want = (double)out_w / out_h, have = (double)img->width / img->height;
    if (fit == AEC_FIT_CROP) {
        int cw = have > want ? (int)lround(img->height * want) : img->width;
        int ch = have > want ? img->height : (int)lround(img->width / want);
        cw = cw < 1 ? 1 : cw, ch = ch < 1 ? 1 : ch;
        int x0 = (img->width - cw) / 2, y0 = (img->height - ch) / 2;
        aec_rgb_image c = {cw, ch, malloc((size_t)cw * ch * 3)};
        if (!c.rgb)
            return aec_fail(err, AEC_ERR_NOMEM, "out of memory cropping to %dx%d", cw, ch);
        for (int y = 0; y < ch; y++)
            memcpy(c.rgb + (size_t)y * cw * 3, img->rgb + ((size_t)(y0 + y) * img->width + x0) * 3,
                   (size_t)cw * 3);
        st = aec_image_to_tensor(&c, channels, out_h, out_w, out, err);
        free(c.rgb);
        return st;
    }
    int iw = have > want ? out_w : (int)lround(out_h * have);
    int ih = have > want ? (int)lround(out_w / have) : out_h;
    iw = iw < 1 ? 1 : iw, ih = ih < 1 ? 1 : ih;
    float *inner = malloc((size_t)channels * iw * ih * sizeof(float));
    if (!inner)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory padding to %dx%d", out_w, out_h);
    st = aec_image_to_tensor(img, channels, ih, iw, inner, err);
    int x0 = (out_w - iw) / 2, y0 = (out_h - ih) / 2;
    for (int c = 0; st == AEC_OK && c < channels; c++)
        for (int y = 0; y < out_h; y++)
            for (int x = 0; x < out_w; x++) {
                int in = x >= x0 && x < x0 + iw && y >= y0 && y < y0 + ih;
                out[((size_t)c * out_h + y) * out_w + x] =
                    in ? inner[((size_t)c * ih + (y - y0)) * iw + (x - x0)] : 1.0f;
            }
    free(inner);
    return st;
}

aec_status aec_image_load_tensor_fit(const uint8_t *buf, size_t len, size_t max_pixels, aec_fit fit,
                                     int channels, int out_h, int out_w, float *out, aec_error *err)
{
    aec_status st = check_tensor_args(channels, out_h, out_w, out, err);
    if (st != AEC_OK)
        return st;
    aec_rgb_image img;
    st = aec_image_decode(buf, len, max_pixels, &img, err);
    if (st != AEC_OK)
        return st;
    st = aec_image_to_tensor_fit(&img, fit, channels, out_h, out_w, out, err);
    aec_image_free(&img);
    return st;
}

aec_status aec_tensor_resize(const float *chw, int c, int h, int w, float *out, int oh, int ow,
                             aec_error *err)
{
    if (!chw || !out || c <= 0)
        return aec_fail(err, AEC_ERR_INVALID, "tensor resize: no input/output or %d channels", c);
    if (h <= 0 || w <= 0 || h > AEC_IMAGE_MAX_SIDE || w > AEC_IMAGE_MAX_SIDE)
        return aec_fail(err, AEC_ERR_INVALID, "tensor resize: input size %dx%d is invalid", w, h);
    if (oh <= 0 || ow <= 0 || oh > AEC_TENSOR_MAX_SIDE || ow > AEC_TENSOR_MAX_SIDE)
        return aec_fail(err, AEC_ERR_INVALID, "tensor resize: size %dx%d is not within 1..%d", ow,
                        oh, AEC_TENSOR_MAX_SIDE);

    size_t in_plane = (size_t)h * (size_t)w, out_plane = (size_t)oh * (size_t)ow;
    if (h == oh && w == ow) {
        memmove(out, chw, (size_t)c * in_plane * sizeof(float));
        return AEC_OK;
    }
    for (int p = 0; p < c; p++) {
        if (!stbir_resize_float_generic(chw + (size_t)p * in_plane, w, h, w * (int)sizeof(float),
                                        out + (size_t)p * out_plane, ow, oh,
                                        ow * (int)sizeof(float), 1, STBIR_ALPHA_CHANNEL_NONE, 0,
                                        STBIR_EDGE_CLAMP, STBIR_FILTER_DEFAULT,
                                        STBIR_COLORSPACE_LINEAR, NULL))
            return aec_fail(err, AEC_ERR_NOMEM, "out of memory resizing %dx%d to %dx%d", w, h, ow,
                            oh);
    }
    return AEC_OK;
}
