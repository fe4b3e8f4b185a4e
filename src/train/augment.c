/* augment.c - one training thumbnail made the way users make theirs.
 *
 * Users post 48x48 images made by any resizer from photos of any size, so
 * a model trained on one pipeline (the trainer's own filter on 128-px
 * JPEGs) does worse on the others. train_augment draws, from a seed, one
 * pipeline of the kinds in use and applies it to a decoded photo:
 *   1. sometimes (when the photo is large) first a 128-px copy with a random
 *      filter, saved as JPEG (quality 80-95): a thumbnail of a thumbnail;
 *   2. a crop that keeps the aspect ratio: the largest centred square
 *      (?fit=crop) shrunk by up to 15% and moved at random, or (1 in 4) the
 *      whole photo, whose aspect is then lost (?fit=stretch, the default);
 *   3. a resize to the model's input with box, bilinear, bicubic or Lanczos
 *      (Pillow's, antialiased);
 *   4. sometimes a JPEG save of the thumbnail itself (quality 70-95);
 *   5. a horizontal flip half the time.
 * The same seed gives the same thumbnail on every machine.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aec/random.h"

#include "train.h"

static int pick(uint64_t *s, int n)
{
    return (int)(aec_random_next(s) % (uint64_t)n);
}

/* The photo's 128-px JPEG copy (step 1), in place. */
static aec_status pre_thumbnail(aec_rgb_image *img, uint64_t *s, aec_error *err)
{
    int W = img->width, H = img->height, side = W > H ? W : H;
    int w = (int)lround((double)W * 128 / side), h = (int)lround((double)H * 128 / side);
    w = w < 1 ? 1 : w, h = h < 1 ? 1 : h;
    aec_rgb_image small = {w, h, malloc((size_t)w * h * 3)};
    if (!small.rgb)
        return aec_fail(err, AEC_ERR_NOMEM, "augment: out of memory");
    aec_status st =
        aec_image_resample(img, 0, 0, W, H, w, h, (aec_filter)pick(s, 4), small.rgb, err);
    if (st == AEC_OK)
        st = aec_image_jpeg_roundtrip(&small, 80 + pick(s, 16), err);
    if (st != AEC_OK) {
        aec_image_free(&small);
        return st;
    }
    aec_image_free(img);
    *img = small;
    return AEC_OK;
}

aec_status train_augment(const aec_rgb_image *photo, uint64_t seed, int out_w, int out_h,
                         uint8_t *out, aec_error *err)
{
    uint64_t s = seed;
    aec_rgb_image img = {photo->width, photo->height,
                         malloc((size_t)photo->width * photo->height * 3)};
    if (!img.rgb)
        return aec_fail(err, AEC_ERR_NOMEM, "augment: out of memory");
    memcpy(img.rgb, photo->rgb, (size_t)photo->width * photo->height * 3);
    aec_status st = AEC_OK;
    int big = (img.width > 160 || img.height > 160);
    if (big && aec_random_uniform(&s) < 0.35)
        st = pre_thumbnail(&img, &s, err);
    double x = 0, y = 0, cw = img.width, ch = img.height;
    if (st == AEC_OK &&
        aec_random_uniform(&s) >= 0.25) { /* a square crop (the model's input is square) */
        double side = (img.width < img.height ? img.width : img.height) *
                      (0.85 + 0.15 * aec_random_uniform(&s));
        cw = side * out_w / (out_w > out_h ? out_w : out_h);
        ch = side * out_h / (out_w > out_h ? out_w : out_h);
        x = (img.width - cw) * aec_random_uniform(&s);
        y = (img.height - ch) * aec_random_uniform(&s);
    }
    aec_filter f = (aec_filter)pick(&s, 4);
    if (st == AEC_OK)
        st = aec_image_resample(&img, x, y, cw, ch, out_w, out_h, f, out, err);
    aec_image_free(&img);
    if (st == AEC_OK && aec_random_uniform(&s) < 0.2) {
        aec_rgb_image t = {out_w, out_h, malloc((size_t)out_w * out_h * 3)};
        if (!t.rgb)
            return aec_fail(err, AEC_ERR_NOMEM, "augment: out of memory");
        memcpy(t.rgb, out, (size_t)out_w * out_h * 3);
        st = aec_image_jpeg_roundtrip(&t, 70 + pick(&s, 26), err);
        if (st == AEC_OK)
            memcpy(out, t.rgb, (size_t)out_w * out_h * 3);
        aec_image_free(&t);
    }
    if (st == AEC_OK && aec_random_uniform(&s) < 0.5)
        for (int r = 0; r < out_h; r++)
            for (int a = 0, b = out_w - 1; a < b; a++, b--)
                for (int c = 0; c < 3; c++) {
                    uint8_t *row = out + (size_t)r * out_w * 3;
                    uint8_t tmp = row[3 * a + c];
                    row[3 * a + c] = row[3 * b + c];
                    row[3 * b + c] = tmp;
                }
    return st;
}
