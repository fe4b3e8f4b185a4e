/* test_photo_golden.c - the photo codec's golden streams (tests/golden/,
 * see photo_golden.h), made once, still decode on this commit and machine
 * to exactly the committed image (tolerance 0 levels: every layer of the
 * serving path has a fixed order of operations), and encoding the committed
 * source again gives the committed stream byte for byte, on 1 and 2 threads.
 * A decoded stream's symbols are also checked against the 32-bit check its
 * header carries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/image.h"
#include "aec/photo.h"
#include "../golden/photo_golden.h"
#include "testutil.h"

int main(void)
{
    const char *dir = getenv("AEC_GOLDEN_DIR");
    if (!dir)
        SKIP("AEC_GOLDEN_DIR is not set");
    char path[4096];
    aec_error err = {{0}};
    aec_photo *p = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, PHOTO_GOLDEN_MODEL);
    REQUIRE(aec_photo_load(&p, path, &err) == AEC_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/%s", dir, PHOTO_GOLDEN_SOURCE);
    size_t slen = 0;
    uint8_t *src_png = test_read_file(path, &slen);
    REQUIRE(src_png, "cannot read %s", path);
    aec_rgb_image src = {0};
    REQUIRE(aec_image_decode(src_png, slen, 1 << 20, &src, &err) == AEC_OK, "%s", err.msg);
    uint8_t *expect_src = photo_golden_image();
    CHECK(src.width == PHOTO_GOLDEN_W && src.height == PHOTO_GOLDEN_H &&
              !memcmp(src.rgb, expect_src, (size_t)3 * src.width * src.height),
          "the committed source is not the generator's image");
    static const int qualities[] = PHOTO_GOLDEN_QUALITIES;
    for (size_t i = 0; i < sizeof qualities / sizeof *qualities; i++) {
        int q = qualities[i];
        size_t glen = 0, plen = 0;
        snprintf(path, sizeof path, "%s/photo-tiny.q%d.aec", dir, q);
        uint8_t *golden = test_read_file(path, &glen);
        snprintf(path, sizeof path, "%s/photo-tiny.q%d.png", dir, q);
        uint8_t *gpng = test_read_file(path, &plen);
        REQUIRE(golden && gpng, "missing golden files for quality %d", q);
        CHECK(glen >= 4 && !memcmp(golden, AEC_PHOTO_MAGIC, 4), "q%d: not a version-3 stream", q);
        aec_rgb_image expect = {0};
        REQUIRE(aec_image_decode(gpng, plen, 1 << 20, &expect, &err) == AEC_OK, "%s", err.msg);
        for (int threads = 1; threads <= 2; threads++) {
            uint8_t *rgb = NULL, *s = NULL;
            int w = 0, h = 0;
            size_t l = 0;
            aec_status st =
                aec_photo_decompress(p, golden, glen, 1 << 20, threads, &rgb, &w, &h, &err);
            CHECK(st == AEC_OK, "q%d: the golden stream no longer decodes: %s", q, err.msg);
            if (st == AEC_OK) {
                int differ = 0;
                for (size_t k = 0; k < (size_t)3 * w * h; k++)
                    differ += rgb[k] != expect.rgb[k];
                CHECK(w == expect.width && h == expect.height && differ == 0,
                      "q%d, %d threads: %d values differ from the committed image", q, threads,
                      differ);
            }
            REQUIRE(aec_photo_compress(p, src.rgb, src.width, src.height, q, threads, &s, &l,
                                       &err) == AEC_OK,
                    "%s", err.msg);
            CHECK(l == glen && !memcmp(s, golden, l),
                  "q%d, %d threads: encoding the source gives another stream (%zu vs %zu bytes)", q,
                  threads, l, glen);
            free(rgb), free(s);
        }
        aec_image_free(&expect);
        free(golden), free(gpng);
    }
    free(expect_src);
    aec_image_free(&src);
    free(src_png);
    aec_photo_free(p);
    return TEST_SUMMARY();
}
