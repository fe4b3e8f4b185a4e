/* image.h - image bytes in, model tensors out, and PNG back.
 *
 * Decoding uses stb_image from memory (PNG, JPEG, BMP, GIF first frame, TGA,
 * PIC, 8-bit PNM; not Radiance HDR or Photoshop PSD). The declared size is
 * checked against max_pixels BEFORE any pixel is decoded, and decoding may
 * use only the memory an image of that size needs. Grey becomes RGB; alpha
 * is composited over white. Resizing to the model input uses
 * stb_image_resize's antialiasing filter; an image that already has the
 * target size is not resampled. Model tensors are planar C x H x W floats in
 * [0,1].
 */
#ifndef AEC_IMAGE_H
#define AEC_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "aec/error.h"

/* Hard ceiling whatever the caller's limit: stb_image's own is 2^24 per side. */
#define AEC_IMAGE_MAX_SIDE (1 << 24)
/* Largest output side aec_image_to_tensor and aec_tensor_resize produce. */
#define AEC_TENSOR_MAX_SIDE 8192

typedef struct {
    int width, height;
    uint8_t *rgb; /* width*height*3, interleaved RGB, row-major */
} aec_rgb_image;

/* Decodes to 8-bit RGB. AEC_ERR_LIMIT if width*height > max_pixels or if
 * decoding would need more memory than that size justifies (a compression
 * bomb), AEC_ERR_FORMAT if the bytes are not a readable image. */
aec_status aec_image_decode(const uint8_t *buf, size_t len, size_t max_pixels, aec_rgb_image *out,
                            aec_error *err);
void aec_image_free(aec_rgb_image *img);

/* Reads only the header: the image's size (checked as aec_image_decode
 * checks it) and an upper bound of the bytes that decoding it and resizing
 * it to a tensor of out_pixels pixels allocate at their peak. Lets a caller
 * reserve memory before decoding. Same errors as aec_image_decode's. */
aec_status aec_image_probe(const uint8_t *buf, size_t len, size_t max_pixels, size_t out_pixels,
                           int *width, int *height, size_t *peak_bytes, aec_error *err);

/* Interleaved RGB u8 -> planar floats [channels, out_h, out_w] in [0,1],
 * resizing with antialiasing when the size differs. channels is 3, or 1
 * (luma, for grey models). */
aec_status aec_image_to_tensor(const aec_rgb_image *img, int channels, int out_h, int out_w,
                               float *out, aec_error *err);

/* How an image whose aspect ratio is not the model's becomes its input:
 * stretched whole (the default, and what the shipped models were first
 * trained on), the largest centred crop of the model's aspect, or the whole
 * image fitted inside and padded with white. */
typedef enum {
    AEC_FIT_STRETCH = 0,
    AEC_FIT_CROP = 1,
    AEC_FIT_PAD = 2,
} aec_fit;

/* "stretch", "crop", "pad" -> 0..2, or -1. */
int aec_fit_parse(const char *s);

/* aec_image_to_tensor with a fit. */
aec_status aec_image_to_tensor_fit(const aec_rgb_image *img, aec_fit fit, int channels, int out_h,
                                   int out_w, float *out, aec_error *err);
aec_status aec_image_load_tensor_fit(const uint8_t *buf, size_t len, size_t max_pixels, aec_fit fit,
                                     int channels, int out_h, int out_w, float *out,
                                     aec_error *err);

/* decode + to_tensor in one call */
aec_status aec_image_load_tensor(const uint8_t *buf, size_t len, size_t max_pixels, int channels,
                                 int out_h, int out_w, float *out, aec_error *err);

/* Planar floats [c,h,w] (clamped to [0,1]) -> PNG bytes (malloc'd). c = 1 or 3. */
aec_status aec_image_encode_png(const float *chw, int c, int h, int w, uint8_t **png,
                                size_t *png_len, aec_error *err);
/* Interleaved 8-bit RGB (w x h) -> PNG bytes (malloc'd). */
aec_status aec_image_encode_png_rgb(const uint8_t *rgb, int w, int h, uint8_t **png,
                                    size_t *png_len, aec_error *err);

/* ---- the resizers of common thumbnail pipelines (resample.c) ----------------
 * Pillow's Image.resize filters, antialiased when downscaling (the filter's
 * support grows with the scale factor). */
typedef enum {
    AEC_FILTER_BOX = 0,
    AEC_FILTER_BILINEAR = 1,
    AEC_FILTER_BICUBIC = 2,
    AEC_FILTER_LANCZOS = 3,
} aec_filter;

const char *aec_filter_name(aec_filter f);

/* Resamples the crop (x, y, w, h in input pixels; fractional allowed) of img
 * to out_w x out_h interleaved RGB into out (out_w*out_h*3 bytes). */
aec_status aec_image_resample(const aec_rgb_image *img, double x, double y, double w, double h,
                              int out_w, int out_h, aec_filter f, uint8_t *out, aec_error *err);

/* img as a JPEG of the given quality (1..100, stb_image_write): malloc'd. */
aec_status aec_image_encode_jpeg(const aec_rgb_image *img, int quality, uint8_t **jpeg, size_t *len,
                                 aec_error *err);

/* Encodes img as a JPEG of the given quality and decodes it back in place:
 * what a JPEG-compressed copy of it looks like. */
aec_status aec_image_jpeg_roundtrip(aec_rgb_image *img, int quality, aec_error *err);

/* Planar float resize [c,h,w] -> [c,oh,ow] with the antialiasing filter. */
aec_status aec_tensor_resize(const float *chw, int c, int h, int w, float *out, int oh, int ow,
                             aec_error *err);

#endif
