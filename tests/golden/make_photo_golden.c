/* make_photo_golden.c - makes the photo codec's golden files (see
 * photo_golden.h). Run once, by hand, when the set is created:
 *     build/tests/aec-make-photo-golden tests/golden
 * It refuses to overwrite: goldens are made once, then only checked
 * (tests/unit/test_photo_golden.c) on every commit and machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aec/image.h"
#include "aec/photo.h"
#include "aec/safetensors.h"
#include "photo_golden.h"

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "aec-make-photo-golden: %s: %s\n", what, msg);
    exit(1);
}

static void write_new(const char *dir, const char *name, const uint8_t *b, size_t n)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (stat(p, &st) == 0)
        die(p, "exists; goldens are never overwritten");
    aec_error err = {{0}};
    if (aec_write_file_atomic(p, b, n, &err))
        die(p, err.msg);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        die("usage", "aec-make-photo-golden DIR");
    aec_error err = {{0}};
    aec_photo *p = NULL;
    aec_photo_config cfg = PHOTO_GOLDEN_CONFIG;
    if (aec_photo_create(&p, &cfg, PHOTO_GOLDEN_SEED, &err))
        die("model", err.msg);
    photo_golden_gains(p);
    aec_photo_update_eff(p);
    if (aec_photo_finalize(p, &err))
        die("model", err.msg);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", argv[1], PHOTO_GOLDEN_MODEL);
    struct stat st;
    if (stat(path, &st) == 0)
        die(path, "exists; goldens are never overwritten");
    if (aec_photo_save(p, path, &err))
        die(path, err.msg);
    uint8_t *rgb = photo_golden_image();
    uint8_t *png = NULL;
    size_t png_len = 0;
    if (aec_image_encode_png_rgb(rgb, PHOTO_GOLDEN_W, PHOTO_GOLDEN_H, &png, &png_len, &err))
        die("source", err.msg);
    write_new(argv[1], PHOTO_GOLDEN_SOURCE, png, png_len);
    free(png);
    static const int qualities[] = PHOTO_GOLDEN_QUALITIES;
    for (size_t i = 0; i < sizeof qualities / sizeof *qualities; i++) {
        uint8_t *s = NULL, *img = NULL;
        size_t l = 0;
        int w, h;
        char name[256];
        if (aec_photo_compress(p, rgb, PHOTO_GOLDEN_W, PHOTO_GOLDEN_H, qualities[i], 1, &s, &l,
                               &err) ||
            aec_photo_decompress(p, s, l, 1 << 20, 1, &img, &w, &h, &err) ||
            aec_image_encode_png_rgb(img, w, h, &png, &png_len, &err))
            die("stream", err.msg);
        snprintf(name, sizeof name, "photo-tiny.q%d.aec", qualities[i]);
        write_new(argv[1], name, s, l);
        snprintf(name, sizeof name, "photo-tiny.q%d.png", qualities[i]);
        write_new(argv[1], name, png, png_len);
        free(s), free(img), free(png);
    }
    free(rgb);
    aec_photo_free(p);
    return 0;
}
