/* resample.c - the resizers users' thumbnails are made with, and JPEG
 * re-compression (see aec_image_resample and aec_image_jpeg_roundtrip in
 * include/aec/image.h).
 *
 * A separable convolution resampler, as Pillow's Image.resize does it: for
 * each output pixel, the input pixels under the filter's support (scaled by
 * the downscale factor, so a downscale is antialiased) are weighted by the
 * kernel and the weights normalized to 1; rows first into a float buffer,
 * then columns, then rounded to 8 bits. Kernels: box (support 0.5),
 * bilinear (triangle, 1), bicubic (Keys, a = -0.5, 2) and Lanczos (a = 3),
 * Pillow's definitions. The crop rectangle is in input pixels; at the
 * image's border the window is cut and the weights renormalized, as Pillow
 * does.
 *
 * The trainer makes its 48x48 inputs through these (and the server can make
 * its model inputs the same way), so that a model sees the thumbnails of
 * every common pipeline, not only the one stb_image_resize filter.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image_write.h>

#include "aec/image.h"

#include "sink.h"

#define MAX_SUPPORT 3.0 /* Lanczos */

static double sinc(double x)
{
    if (x == 0.0)
        return 1.0;
    x *= M_PI;
    return sin(x) / x;
}

static double kernel(aec_filter f, double x)
{
    x = fabs(x);
    switch (f) {
    case AEC_FILTER_BOX: return x < 0.5 ? 1.0 : 0.0;
    case AEC_FILTER_BILINEAR: return x < 1.0 ? 1.0 - x : 0.0;
    case AEC_FILTER_BICUBIC: {
        const double a = -0.5;
        if (x < 1.0)
            return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
        if (x < 2.0)
            return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
        return 0.0;
    }
    case AEC_FILTER_LANCZOS: return x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0;
    }
    return 0.0;
}

static double support(aec_filter f)
{
    switch (f) {
    case AEC_FILTER_BOX: return 0.5;
    case AEC_FILTER_BILINEAR: return 1.0;
    case AEC_FILTER_BICUBIC: return 2.0;
    case AEC_FILTER_LANCZOS: return 3.0;
    }
    return 1.0;
}

const char *aec_filter_name(aec_filter f)
{
    switch (f) {
    case AEC_FILTER_BOX: return "box";
    case AEC_FILTER_BILINEAR: return "bilinear";
    case AEC_FILTER_BICUBIC: return "bicubic";
    case AEC_FILTER_LANCZOS: return "lanczos";
    }
    return "?";
}

/* The weights of one axis: for each of n_out outputs, the first input
 * index and taps weights (normalized), over a crop [x0, x0 + len) of an
 * axis of n_in samples. taps is the same for every output. */
typedef struct {
    int taps;
    int *first;
    float *w; /* n_out * taps */
} axis;

static int axis_make(axis *a, aec_filter f, double x0, double len, int n_in, int n_out)
{
    double scale = len / n_out, fs = scale > 1.0 ? scale : 1.0;
    double sup = support(f) * fs;
    a->taps = (int)ceil(sup) * 2 + 1;
    a->first = malloc((size_t)n_out * sizeof *a->first);
    a->w = malloc((size_t)n_out * (size_t)a->taps * sizeof *a->w);
    if (!a->first || !a->w)
        return -1;
    for (int o = 0; o < n_out; o++) {
        double center = x0 + (o + 0.5) * scale;
        int lo = (int)floor(center - sup + 0.5);
        a->first[o] = lo;
        float *w = a->w + (size_t)o * a->taps;
        double sum = 0.0;
        for (int t = 0; t < a->taps; t++) {
            int i = lo + t; /* outside the image: no weight (Pillow's truncated window) */
            double v = i >= 0 && i < n_in ? kernel(f, (i + 0.5 - center) / fs) : 0.0;
            w[t] = (float)v;
            sum += v;
        }
        for (int t = 0; t < a->taps; t++)
            w[t] = sum != 0.0 ? (float)(w[t] / sum) : (t == a->taps / 2 ? 1.0f : 0.0f);
    }
    return 0;
}

static void axis_free(axis *a)
{
    free(a->first);
    free(a->w);
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

aec_status aec_image_resample(const aec_rgb_image *img, double cx, double cy, double cw, double ch,
                              int out_w, int out_h, aec_filter f, uint8_t *out, aec_error *err)
{
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0 || !out)
        return aec_fail(err, AEC_ERR_INVALID, "resample: no image");
    if (out_w <= 0 || out_h <= 0 || out_w > AEC_TENSOR_MAX_SIDE || out_h > AEC_TENSOR_MAX_SIDE)
        return aec_fail(err, AEC_ERR_INVALID, "resample: output %dx%d out of range", out_w, out_h);
    if (!(cw > 0) || !(ch > 0) || cx < 0 || cy < 0 || cx + cw > img->width + 1e-6 ||
        cy + ch > img->height + 1e-6)
        return aec_fail(err, AEC_ERR_INVALID, "resample: crop outside the %dx%d image", img->width,
                        img->height);
    if ((unsigned)f > AEC_FILTER_LANCZOS)
        return aec_fail(err, AEC_ERR_INVALID, "resample: unknown filter %d", (int)f);
    int W = img->width, H = img->height;
    int y_lo =
        clampi((int)floor(cy - MAX_SUPPORT * (ch / out_h > 1 ? ch / out_h : 1) - 1), 0, H - 1);
    int y_hi =
        clampi((int)ceil(cy + ch + MAX_SUPPORT * (ch / out_h > 1 ? ch / out_h : 1) + 1), 0, H - 1);
    int rows = y_hi - y_lo + 1;
    axis ax = {0}, ay = {0};
    float *tmp = malloc((size_t)rows * (size_t)out_w * 3 * sizeof(float));
    aec_status st = AEC_OK;
    if (!tmp || axis_make(&ax, f, cx, cw, W, out_w) != 0 ||
        axis_make(&ay, f, cy, ch, H, out_h) != 0)
        st = aec_fail(err, AEC_ERR_NOMEM, "resample: out of memory");
    for (int y = 0; st == AEC_OK && y < rows; y++) { /* rows: input rows y_lo.. -> out_w wide */
        const uint8_t *src = img->rgb + (size_t)(y_lo + y) * W * 3;
        float *dst = tmp + (size_t)y * out_w * 3;
        for (int o = 0; o < out_w; o++) {
            const float *w = ax.w + (size_t)o * ax.taps;
            float r = 0, g = 0, b = 0;
            for (int t = 0; t < ax.taps; t++) {
                const uint8_t *p = src + 3 * clampi(ax.first[o] + t, 0, W - 1);
                r += w[t] * p[0], g += w[t] * p[1], b += w[t] * p[2];
            }
            dst[3 * o] = r, dst[3 * o + 1] = g, dst[3 * o + 2] = b;
        }
    }
    for (int o = 0; st == AEC_OK && o < out_h; o++) { /* columns */
        const float *w = ay.w + (size_t)o * ay.taps;
        uint8_t *dst = out + (size_t)o * out_w * 3;
        for (int x = 0; x < out_w * 3; x++) {
            float v = 0;
            for (int t = 0; t < ay.taps; t++) {
                int yy = clampi(ay.first[o] + t, 0, H - 1) - y_lo;
                v += w[t] * tmp[(size_t)clampi(yy, 0, rows - 1) * out_w * 3 + x];
            }
            dst[x] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : lrintf(v));
        }
    }
    axis_free(&ax);
    axis_free(&ay);
    free(tmp);
    return st;
}

/* ---- JPEG re-compression ---------------------------------------------------------- */

aec_status aec_image_encode_jpeg(const aec_rgb_image *img, int quality, uint8_t **jpeg, size_t *len,
                                 aec_error *err)
{
    *jpeg = NULL;
    *len = 0;
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return aec_fail(err, AEC_ERR_INVALID, "jpeg: no image");
    if (quality < 1 || quality > 100)
        return aec_fail(err, AEC_ERR_INVALID, "jpeg: quality %d is not 1..100", quality);
    image_sink s = {0};
    int ok =
        stbi_write_jpg_to_func(image_sink_write, &s, img->width, img->height, 3, img->rgb, quality);
    if (!ok || s.failed || !s.len) {
        free(s.buf);
        return aec_fail(err, AEC_ERR_NOMEM, "jpeg: encoding failed");
    }
    *jpeg = s.buf;
    *len = s.len;
    return AEC_OK;
}

aec_status aec_image_jpeg_roundtrip(aec_rgb_image *img, int quality, aec_error *err)
{
    uint8_t *jpeg = NULL;
    size_t len = 0;
    aec_status st = aec_image_encode_jpeg(img, quality, &jpeg, &len, err);
    if (st != AEC_OK)
        return st;
    aec_rgb_image back;
    st = aec_image_decode(jpeg, len, (size_t)img->width * (size_t)img->height, &back, err);
    free(jpeg);
    if (st != AEC_OK)
        return st;
    aec_image_free(img);
    *img = back;
    return AEC_OK;
}
