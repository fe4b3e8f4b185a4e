/* test_photo.c - the photo codec end to end on a small untrained model:
 * photos of odd sizes come back at their size; the stream is the same bytes
 * for any thread count; tiles give exactly the untiled latent and image; a
 * saved model loads to the same id and streams; quality and --size work;
 * every corrupt, truncated, extended or foreign stream is refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/photo.h"
#include "testutil.h"

static aec_photo *small_model(uint64_t seed, int levels)
{
    aec_error err = {{0}};
    aec_photo_config cfg = {.n = 8, .m = 8, .levels = levels, .lambda = {0.01f, 0.02f, 0.04f}};
    aec_photo *p = NULL;
    REQUIRE(aec_photo_create(&p, &cfg, seed, &err) == AEC_OK, "create: %s", err.msg);
    /* distinct gains per level, so quality changes the stream */
    for (int l = 0; l < levels; l++)
        for (int c = 0; c < cfg.m; c++) {
            p->params[p->gain + (size_t)l * cfg.m + c] = 2.0f + 4.0f * l;
            p->params[p->inv_gain + (size_t)l * cfg.m + c] = 1.0f / (2.0f + 4.0f * l);
        }
    aec_photo_update_eff(p);
    REQUIRE(aec_photo_finalize(p, &err) == AEC_OK, "finalize: %s", err.msg);
    return p;
}

/* A photo-like test image: smooth gradients, an edge and noise. */
static uint8_t *test_image(int w, int h, uint64_t seed)
{
    uint8_t *rgb = malloc((size_t)3 * w * h);
    REQUIRE(rgb, "oom");
    uint64_t r = seed;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int v = (x * 255 / w + y * 128 / h + c * 40) % 256;
                if (x > w / 2 && y < h / 3)
                    v = 255 - v;
                v += (int)(test_rand_u64(&r) % 21) - 10;
                rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    return rgb;
}

static void test_round_trip_any_size(void)
{
    aec_photo *p = small_model(1, 3);
    int sizes[][2] = {{1, 1}, {99, 70}, {64, 64}, {130, 33}, {17, 200}};
    for (int i = 0; i < 5; i++) {
        int w = sizes[i][0], h = sizes[i][1];
        uint8_t *rgb = test_image(w, h, (uint64_t)i + 3), *s1 = NULL, *s3 = NULL, *back = NULL;
        size_t l1 = 0, l3 = 0;
        aec_error err = {{0}};
        REQUIRE(aec_photo_compress(p, rgb, w, h, 60, 1, &s1, &l1, &err) == AEC_OK, "%dx%d: %s", w,
                h, err.msg);
        REQUIRE(aec_photo_compress(p, rgb, w, h, 60, 3, &s3, &l3, &err) == AEC_OK, "%s", err.msg);
        CHECK(l1 == l3 && memcmp(s1, s3, l1) == 0, "%dx%d: 1 and 3 threads give other streams", w,
              h);
        aec_photo_info info;
        CHECK(aec_photo_stream_info(s1, l1, &info, &err) == AEC_OK && info.width == w &&
                  info.height == h && info.quality == 60 && info.total == l1,
              "%dx%d: info %s", w, h, err.msg);
        int bw = 0, bh = 0;
        REQUIRE(aec_photo_decompress(p, s1, l1, 1 << 20, 2, &back, &bw, &bh, &err) == AEC_OK,
                "%dx%d: decompress: %s", w, h, err.msg);
        CHECK(bw == w && bh == h, "%dx%d came back %dx%d", w, h, bw, bh);
        uint8_t *back1 = NULL;
        REQUIRE(aec_photo_decompress(p, s1, l1, 1 << 20, 1, &back1, &bw, &bh, &err) == AEC_OK, "%s",
                err.msg);
        CHECK(memcmp(back, back1, (size_t)3 * w * h) == 0,
              "%dx%d: decoded pixels depend on the thread count", w, h);
        free(rgb), free(s1), free(s3), free(back), free(back1);
    }
    aec_photo_free(p);
}

static void test_tiles_are_exact(void)
{
    aec_photo *p = small_model(2, 1);
    aec_error err = {{0}};
    int H = 192, W = 320;
    float *x = malloc(sizeof(float) * 3 * H * W);
    float *y1 = malloc(sizeof(float) * 8 * (H / 16) * (W / 16));
    float *y2 = malloc(sizeof(float) * 8 * (H / 16) * (W / 16));
    float *x1 = malloc(sizeof(float) * 3 * H * W), *x2 = malloc(sizeof(float) * 3 * H * W);
    REQUIRE(x && y1 && y2 && x1 && x2, "oom");
    uint64_t r = 4;
    for (int i = 0; i < 3 * H * W; i++)
        x[i] = (float)(test_rand_u64(&r) % 256) / 255.0f;
    REQUIRE(aec_photo_analysis(p, x, H, W, 4096, 2, y1, &err) == AEC_OK, "%s", err.msg);
    REQUIRE(aec_photo_analysis(p, x, H, W, 64, 2, y2, &err) == AEC_OK, "%s", err.msg);
    CHECK(memcmp(y1, y2, sizeof(float) * 8 * (H / 16) * (W / 16)) == 0,
          "analysis in 64-pixel tiles differs from the whole image");
    REQUIRE(aec_photo_synthesis(p, y1, H / 16, W / 16, 4096, 2, x1, &err) == AEC_OK, "%s", err.msg);
    REQUIRE(aec_photo_synthesis(p, y1, H / 16, W / 16, 3, 1, x2, &err) == AEC_OK, "%s", err.msg);
    CHECK(memcmp(x1, x2, sizeof(float) * 3 * H * W) == 0,
          "synthesis in 3-latent tiles differs from the whole image");
    free(x), free(y1), free(y2), free(x1), free(x2);
    aec_photo_free(p);
}

static void test_file_round_trip(void)
{
    aec_photo *p = small_model(3, 3), *q = NULL;
    aec_error err = {{0}};
    char path[4096];
    snprintf(path, sizeof path, "%s/photo.safetensors", test_tmpdir());
    REQUIRE(aec_photo_save(p, path, &err) == AEC_OK, "save: %s", err.msg);
    REQUIRE(aec_photo_load(&q, path, &err) == AEC_OK, "load: %s", err.msg);
    CHECK(strcmp(p->id, q->id) == 0, "id %s after loading, %s before", q->id, p->id);
    int w = 77, h = 50;
    uint8_t *rgb = test_image(w, h, 9), *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    REQUIRE(aec_photo_compress(p, rgb, w, h, 40, 2, &a, &la, &err) == AEC_OK, "%s", err.msg);
    REQUIRE(aec_photo_compress(q, rgb, w, h, 40, 2, &b, &lb, &err) == AEC_OK, "%s", err.msg);
    CHECK(la == lb && !memcmp(a, b, la), "a loaded model writes other streams");
    /* a truncated model file is refused with its name in the message */
    size_t flen = 0;
    uint8_t *file = test_read_file(path, &flen);
    REQUIRE(file, "read back");
    aec_photo *bad = NULL;
    CHECK(aec_photo_load_memory(&bad, file, flen - 4, "cut.safetensors", &err) != AEC_OK &&
              strstr(err.msg, "cut.safetensors"),
          "a truncated model file loaded (%s)", err.msg);
    free(file), free(rgb), free(a), free(b);
    aec_photo_free(p);
    aec_photo_free(q);
}

static void test_quality_and_size(void)
{
    aec_photo *p = small_model(4, 3);
    aec_error err = {{0}};
    int w = 128, h = 96;
    uint8_t *rgb = test_image(w, h, 5);
    size_t prev = 0;
    int monotonic = 1;
    for (int q = 1; q <= 100; q += 33) {
        uint8_t *s = NULL;
        size_t l = 0;
        REQUIRE(aec_photo_compress(p, rgb, w, h, q, 2, &s, &l, &err) == AEC_OK, "%s", err.msg);
        if (l < prev)
            monotonic = 0;
        prev = l;
        free(s);
    }
    CHECK(monotonic, "bytes do not grow with quality");
    uint8_t *s100 = NULL, *s = NULL;
    size_t l100 = 0, l = 0;
    int q = 0;
    REQUIRE(aec_photo_compress(p, rgb, w, h, 100, 2, &s100, &l100, &err) == AEC_OK, "%s", err.msg);
    size_t target = l100 * 3 / 4;
    REQUIRE(aec_photo_compress_size(p, rgb, w, h, target, 2, &s, &l, &q, &err) == AEC_OK, "%s",
            err.msg);
    CHECK(l <= target && q < 100, "--size %zu gave %zu bytes at quality %d", target, l, q);
    free(s);
    CHECK(aec_photo_compress(p, rgb, w, h, 0, 2, &s, &l, &err) == AEC_ERR_INVALID,
          "quality 0 accepted");
    free(rgb), free(s100);
    aec_photo_free(p);
}

static void test_bad_streams(void)
{
    aec_photo *p = small_model(5, 2), *other = small_model(6, 2);
    aec_error err = {{0}};
    int w = 70, h = 45;
    uint8_t *rgb = test_image(w, h, 6), *s = NULL, *img = NULL;
    size_t l = 0;
    int bw, bh;
    REQUIRE(aec_photo_compress(p, rgb, w, h, 50, 2, &s, &l, &err) == AEC_OK, "%s", err.msg);
    for (size_t cut = 0; cut < l; cut += (cut < 40 ? 1 : 7))
        CHECK(aec_photo_decompress(p, s, cut, 1 << 20, 1, &img, &bw, &bh, &err) == AEC_ERR_FORMAT,
              "a stream cut at %zu of %zu decoded", cut, l);
    uint8_t *longer = malloc(l + 1);
    memcpy(longer, s, l);
    longer[l] = 0;
    CHECK(aec_photo_decompress(p, longer, l + 1, 1 << 20, 1, &img, &bw, &bh, &err) ==
              AEC_ERR_FORMAT,
          "a stream with a byte appended decoded");
    free(longer);
    CHECK(aec_photo_decompress(other, s, l, 1 << 20, 1, &img, &bw, &bh, &err) == AEC_ERR_MISMATCH,
          "another model decoded the stream: %s", err.msg);
    CHECK(aec_photo_decompress(p, s, l, 1000, 1, &img, &bw, &bh, &err) == AEC_ERR_LIMIT,
          "a stream above max_pixels decoded");
    /* every single-byte corruption of the substreams is refused, or changes no
     * symbol (a byte the decoder never needed) and decodes to the same image;
     * none crashes (ASan checks the rest) */
    uint8_t *orig = NULL;
    REQUIRE(aec_photo_decompress(p, s, l, 1 << 20, 1, &orig, &bw, &bh, &err) == AEC_OK, "%s",
            err.msg);
    int refused = 0, tried = 0;
    uint64_t r = 8;
    for (int k = 0; k < 300; k++) {
        uint8_t *c = malloc(l);
        memcpy(c, s, l);
        size_t at = AEC_PHOTO_HEADER + test_rand_u64(&r) % (l - AEC_PHOTO_HEADER);
        c[at] ^= (uint8_t)(1 + test_rand_u64(&r) % 255);
        aec_status st = aec_photo_decompress(p, c, l, 1 << 20, 1, &img, &bw, &bh, &err);
        tried++;
        if (st == AEC_ERR_FORMAT)
            refused++;
        else if (st == AEC_OK) {
            CHECK(bw == w && bh == h && !memcmp(img, orig, (size_t)3 * w * h),
                  "a corrupt stream decoded to another image");
            free(img);
        } else
            CHECK(0, "corrupt stream: unexpected status %d (%s)", st, err.msg);
        free(c);
    }
    CHECK(refused > tried / 2, "only %d of %d corrupt streams refused", refused, tried);
    free(orig);
    /* a header claiming a huge size is refused before any allocation */
    uint8_t hdr[AEC_PHOTO_HEADER];
    memcpy(hdr, s, AEC_PHOTO_HEADER);
    hdr[8] = hdr[9] = 0xFF, hdr[10] = 0, hdr[11] = 0;
    hdr[12] = hdr[13] = 0xFF, hdr[14] = 0, hdr[15] = 0;
    memset(hdr + 17, 0, 8);
    CHECK(aec_photo_decompress(p, hdr, AEC_PHOTO_HEADER, 40000000, 1, &img, &bw, &bh, &err) ==
              AEC_ERR_LIMIT,
          "a 65535x65535 header was not refused by max_pixels");
    free(rgb), free(s);
    aec_photo_free(p);
    aec_photo_free(other);
}

int main(void)
{
    test_round_trip_any_size();
    test_tiles_are_exact();
    test_file_round_trip();
    test_quality_and_size();
    test_bad_streams();
    return TEST_SUMMARY();
}
