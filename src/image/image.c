/* image.c - image bytes -> 8-bit RGB (see include/aec/image.h).
 *
 * Owns aec_image_decode and aec_image_free. Resizing and the tensor
 * conversion (aec_image_to_tensor, aec_image_load_tensor, aec_tensor_resize)
 * live in resize.c, PNG output in png.c.
 *
 * Decoding is stb_image from memory in two steps, through the wrappers of
 * stb_decode.c, which compiles Debian's stb_image.h privately and runs every
 * call under a memory budget. aec_stbi_info_from_memory reads only the
 * header, so the pixel limit is enforced before any pixel buffer exists (a
 * 20-byte PNG header claiming 100000x100000 costs nothing). Then
 * aec_stbi_load_from_memory decodes with 4 requested channels, allowed
 * aec_stbi_decode_budget(w, h, len) bytes: enough for any image of the
 * declared size, so a compression bomb (a small PNG whose zlib stream
 * inflates to gigabytes) runs out of budget and gets AEC_ERR_LIMIT instead of
 * the process's memory. stb itself expands grey, grey+alpha, palettes (with
 * tRNS), 16-bit samples and CMYK JPEGs to 8-bit RGBA, so one loop composites
 * alpha over white into packed RGB. We ask for RGBA rather than the header's
 * channel count because the header can lie (a paletted PNG reports 1 channel
 * at IHDR time but may carry alpha).
 *
 * stbi_info fails outright for headers past stb's own ceiling (a PNG over
 * 2^30 bytes, a JPEG over 2^31) and then reports only "unknown image type".
 * So that such a header still gets AEC_ERR_LIMIT with its size in the
 * message, aec_sniff_declared_size (sniff.c) reads the size field of PNG and
 * JPEG headers itself; it is consulted only after stb has failed.
 *
 * Debian's stb_image is 2.27, which has memory-safety bugs in some loaders
 * (a JPEG Huffman table overflow, already in stbi_info; PNG allocations
 * sized by a chunk header; uninitialised pixels from truncated PNM/TGA;
 * HDR hangs). Every buffer passes aec_sniff_stb_hazards (sniff.c, which
 * lists them) before stb sees it; Radiance HDR is refused outright.
 *
 * Thread safety: the daemon decodes in many threads at once. stb's failure
 * reason and the budget are thread-local (stb_decode.c), and nothing touches
 * stb's process-wide settings (flip, unpremultiply, iPhone conversion).
 */
#include "aec/image.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sniff.h"
#include "stb_decode.h"

/* stb_image refuses images whose 4-channel buffer would pass 2^30 bytes (PNG)
 * or 2^31 (others); we always ask for 4 channels, so this is the real
 * ceiling whatever the caller's max_pixels. */
#define DECODE_MAX_PIXELS ((uint64_t)1 << 28)

static const char *stb_reason(void)
{
    const char *r = aec_stbi_failure_reason();
    return r ? r : "unknown error";
}

/* stb's short failure codes that are not about malformed bytes: "too large"
 * is its own size ceiling (e.g. a PNG over 2^30 bytes, refused already by
 * stbi_info), "outofmem" an allocation failure (one refused by the budget is
 * told apart by aec_stbi_budget_exceeded). */
static aec_status stb_status(const char *reason)
{
    if (strcmp(reason, "too large") == 0)
        return AEC_ERR_LIMIT;
    if (strcmp(reason, "outofmem") == 0)
        return AEC_ERR_NOMEM;
    return AEC_ERR_FORMAT;
}

/* The size checks, applied to the header's claim before decoding. */
static aec_status check_size(uint64_t w, uint64_t h, size_t max_pixels, aec_error *err)
{
    unsigned long long lw = w, lh = h;
    if (w == 0 || h == 0)
        return aec_fail(err, AEC_ERR_FORMAT, "image has an empty size %llux%llu", lw, lh);
    if (w > AEC_IMAGE_MAX_SIDE || h > AEC_IMAGE_MAX_SIDE)
        return aec_fail(err, AEC_ERR_LIMIT, "image is %llux%llu; a side may be at most %d", lw, lh,
                        AEC_IMAGE_MAX_SIDE);
    if (w * h > (uint64_t)max_pixels) /* both <= 2^24: no overflow */
        return aec_fail(err, AEC_ERR_LIMIT, "image is %llux%llu = %llu pixels; the limit is %zu",
                        lw, lh, lw * lh, max_pixels);
    if (w * h > DECODE_MAX_PIXELS)
        return aec_fail(err, AEC_ERR_LIMIT,
                        "image is %llux%llu; the decoder handles at most %llu "
                        "pixels",
                        lw, lh, (unsigned long long)DECODE_MAX_PIXELS);
    return AEC_OK;
}

/* RGBA -> RGB over a white background: c' = (c*a + 255*(255-a)) / 255,
 * rounded. a = 255 gives c exactly, a = 0 gives 255. */
static void composite_over_white(const uint8_t *rgba, uint8_t *rgb, size_t npix)
{
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *s = rgba + 4 * i;
        uint8_t *d = rgb + 3 * i;
        uint32_t a = s[3];
        if (a == 255) {
            d[0] = s[0], d[1] = s[1], d[2] = s[2];
            continue;
        }
        uint32_t bg = 255u * (255u - a) + 127u;
        for (int c = 0; c < 3; c++)
            d[c] = (uint8_t)((s[c] * a + bg) / 255u);
    }
}

/* Everything before decoding: known stb hazards, then the header's size
 * against the limits. Fills *w, *h on success. */
static aec_status probe(const uint8_t *buf, size_t len, size_t max_pixels, int *w, int *h,
                        aec_error *err)
{
    aec_status st = aec_sniff_stb_hazards(buf, len, err);
    if (st != AEC_OK)
        return st;
    int comp;
    if (!aec_stbi_info_from_memory(buf, (int)len, w, h, &comp)) {
        const char *r = stb_reason();
        uint32_t dw, dh;
        if (aec_sniff_declared_size(buf, len, &dw, &dh) && dw > 0 && dh > 0 &&
            check_size(dw, dh, max_pixels, err) == AEC_ERR_LIMIT)
            return AEC_ERR_LIMIT;
        if (stb_status(r) == AEC_ERR_LIMIT)
            return aec_fail(err, AEC_ERR_LIMIT, "image is too large to decode (%s)", r);
        if (aec_stbi_budget_exceeded()) /* headers need a few KB; not seen */
            return aec_fail(err, AEC_ERR_LIMIT, "image header needs over %zu KiB to read",
                            AEC_STBI_INFO_BUDGET >> 10);
        return aec_fail(err, stb_status(r), "not a readable image: %s", r);
    }
    if (*w <= 0 || *h <= 0)
        return aec_fail(err, AEC_ERR_FORMAT, "image has an empty size %dx%d", *w, *h);
    return check_size((uint64_t)*w, (uint64_t)*h, max_pixels, err);
}

/* probe() after the checks of the buffer itself. */
static aec_status check_and_probe(const uint8_t *buf, size_t len, size_t max_pixels, int *w, int *h,
                                  aec_error *err)
{
    if (!buf || len == 0)
        return aec_fail(err, AEC_ERR_FORMAT, "image is empty");
    if (len > INT_MAX)
        return aec_fail(err, AEC_ERR_LIMIT, "image is %zu bytes; at most %d can be decoded", len,
                        INT_MAX);
    return probe(buf, len, max_pixels, w, h, err);
}

aec_status aec_image_decode(const uint8_t *buf, size_t len, size_t max_pixels, aec_rgb_image *out,
                            aec_error *err)
{
    if (!out)
        return aec_fail(err, AEC_ERR_INVALID, "image decode: no output image");
    out->width = out->height = 0;
    out->rgb = NULL;
    int w, h;
    aec_status st = check_and_probe(buf, len, max_pixels, &w, &h, err);
    if (st != AEC_OK)
        return st;

    int dw, dh, dcomp;
    size_t budget = aec_stbi_decode_budget(w, h, len);
    uint8_t *rgba = aec_stbi_load_from_memory(buf, (int)len, budget, &dw, &dh, &dcomp, 4);
    if (!rgba) {
        if (aec_stbi_budget_exceeded())
            return aec_fail(err, AEC_ERR_LIMIT,
                            "image needs more memory to decode than its size allows "
                            "(%dx%d may use %zu MiB; corrupt or a compression bomb)",
                            w, h, budget / (1u << 20) + (budget % (1u << 20) != 0));
        const char *r = stb_reason();
        return aec_fail(err, stb_status(r), "cannot decode image: %s", r);
    }
    if (dw != w || dh != h) { /* never seen; guards the limit check above */
        aec_stbi_image_free(rgba);
        return aec_fail(err, AEC_ERR_FORMAT, "image header says %dx%d but decodes to %dx%d", w, h,
                        dw, dh);
    }
    size_t npix = (size_t)w * (size_t)h;
    out->rgb = malloc(npix * 3);
    if (!out->rgb) {
        aec_stbi_image_free(rgba);
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
    }
    composite_over_white(rgba, out->rgb, npix);
    aec_stbi_image_free(rgba);
    out->width = w;
    out->height = h;
    return AEC_OK;
}

/* stb_image_resize's scratch for any of our resizes (a few rows of floats
 * of the output and filter coefficients), with margin. */
#define RESIZE_SCRATCH ((size_t)4 << 20)

aec_status aec_image_probe(const uint8_t *buf, size_t len, size_t max_pixels, size_t out_pixels,
                           int *width, int *height, size_t *peak_bytes, aec_error *err)
{
    *width = *height = 0;
    *peak_bytes = 0;
    int w, h;
    aec_status st = check_and_probe(buf, len, max_pixels, &w, &h, err);
    if (st != AEC_OK)
        return st;
    /* while decoding: stb's buffers (its budget); then the RGB copy beside
     * them; then, resizing, the RGB image, the resized copy and scratch */
    size_t npix = (size_t)w * (size_t)h;
    /* (+ 3 * npix more: the crop copy of ?fit=crop) */
    *peak_bytes = aec_stbi_decode_budget(w, h, len) + 6 * npix + 3 * out_pixels + RESIZE_SCRATCH;
    *width = w;
    *height = h;
    return AEC_OK;
}

void aec_image_free(aec_rgb_image *img)
{
    if (!img)
        return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}
