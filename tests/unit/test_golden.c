/* test_golden.c - streams made once (tests/golden/, see golden.h) still
 * decode, on this commit and this machine, to exactly what they decoded to
 * when they were made: a format-stability and a cross-machine check in one.
 *
 *  - the entropy decoder gives back exactly the committed symbols;
 *  - the decoded image equals the committed PNG pixel for pixel. The
 *    tolerance is 0 levels of 255: every layer of inference runs the
 *    fixed-order product of aec/gemm.h and the portable exp, so no pixel may
 *    round differently on another CPU or thread count (GOLDEN_TOLERANCE says
 *    so in one place);
 *  - encoding the committed source image again gives the committed stream
 *    and latents byte for byte (the encoder is portable too);
 *  - every golden still carries the version byte it was made with.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/codec.h"
#include "aec/image.h"
#include "aec/latent.h"
#include "aec/model.h"
#include "../golden/golden.h"
#include "testutil.h"

#define GOLDEN_TOLERANCE 0 /* levels of 255 */
#define PIXELS (3 * GOLDEN_SIZE * GOLDEN_SIZE)

static const char *g_dir;

static uint8_t *read_golden(const char *name, size_t *len)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    uint8_t *b = test_read_file(p, len);
    REQUIRE(b, "cannot read golden file %s", p);
    return b;
}

static aec_model *load_golden_model(const char *name)
{
    char p[4096];
    aec_error err = {{0}};
    aec_model *m = NULL;
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    REQUIRE(aec_model_load(&m, p, &err) == AEC_OK, "%s: %s", p, err.msg);
    return m;
}

/* Largest difference in 8-bit levels between the decoded floats (as the PNG
 * writer rounds them) and the committed PNG's pixels. */
static int png_difference(const float *chw, const char *golden_png)
{
    aec_error err = {{0}};
    uint8_t *png = NULL;
    size_t len = 0, glen = 0;
    REQUIRE(aec_image_encode_png(chw, 3, GOLDEN_SIZE, GOLDEN_SIZE, &png, &len, &err) == AEC_OK,
            "png: %s", err.msg);
    uint8_t *gold = read_golden(golden_png, &glen);
    aec_rgb_image a = {0}, b = {0};
    REQUIRE(aec_image_decode(png, len, 1 << 20, &a, &err) == AEC_OK, "%s", err.msg);
    REQUIRE(aec_image_decode(gold, glen, 1 << 20, &b, &err) == AEC_OK, "%s: %s", golden_png,
            err.msg);
    int worst = 255;
    if (a.width == b.width && a.height == b.height) {
        worst = 0;
        for (int k = 0; k < a.width * a.height * 3; k++) {
            int d = abs((int)a.rgb[k] - (int)b.rgb[k]);
            worst = d > worst ? d : worst;
        }
    }
    aec_image_free(&a), aec_image_free(&b);
    free(png), free(gold);
    return worst;
}

static void load_source(int i, float *img)
{
    char name[64];
    size_t len = 0;
    aec_error err = {{0}};
    snprintf(name, sizeof name, "image-%d.png", i);
    uint8_t *buf = read_golden(name, &len);
    REQUIRE(aec_image_load_tensor(buf, len, 1 << 20, 3, GOLDEN_SIZE, GOLDEN_SIZE, img, &err) ==
                AEC_OK,
            "%s: %s", name, err.msg);
    free(buf);
}

static void test_codec_goldens(void)
{
    aec_error err = {{0}};
    aec_model *m = load_golden_model("codec-tiny.safetensors");
    aec_codec *codec = NULL;
    aec_workspace *ws = NULL;
    REQUIRE(aec_codec_create(&codec, m, &err) == AEC_OK, "%s", err.msg);
    REQUIRE(aec_workspace_create(&ws, m, 1, 0, &err) == AEC_OK, "%s", err.msg);
    REQUIRE(aec_model_latent_count(m) == 96, "the golden codec's latent is 6x4x4");
    for (int i = 0; i < GOLDEN_IMAGES; i++) {
        char name[64];
        size_t slen = 0, ylen = 0;
        snprintf(name, sizeof name, "codec-tiny.%d.aec", i);
        uint8_t *stream = read_golden(name, &slen);
        snprintf(name, sizeof name, "codec-tiny.%d.sym", i);
        uint8_t *sym = read_golden(name, &ylen);
        REQUIRE(ylen == 96 * 2, "%s: 96 int16 symbols", name);
        CHECK(slen > AEC_CODEC_HEADER && stream[0] == 0xA2, "stream %d: version byte 0xA2", i);

        float z[96], out[PIXELS];
        CHECK(aec_codec_decode(codec, stream, slen, z, &err) == AEC_OK, "stream %d decodes: %s", i,
              err.msg);
        int same = 1, distinct = 0;
        for (int k = 0; k < 96; k++) {
            int16_t want = (int16_t)(sym[2 * k] | sym[2 * k + 1] << 8);
            same &= (float)want == z[k];
            distinct += k == 0 || z[k] != z[k - 1];
        }
        CHECK(same, "stream %d: the committed symbols, exactly", i);
        CHECK(distinct > 10, "stream %d: the symbols vary (%d runs), so the test means something",
              i, distinct);
        aec_model_decode(m, ws, z, 1, out);
        snprintf(name, sizeof name, "codec-tiny.%d.png", i);
        int diff = png_difference(out, name);
        CHECK(diff <= GOLDEN_TOLERANCE, "stream %d: decoded image within %d levels (max %d)", i,
              GOLDEN_TOLERANCE, diff);

        float img[PIXELS];
        uint8_t *again = NULL;
        size_t alen = 0;
        load_source(i, img);
        aec_model_encode(m, ws, img, 1, z);
        REQUIRE(aec_codec_encode(codec, z, &again, &alen, &err) == AEC_OK, "%s", err.msg);
        CHECK(alen == slen && memcmp(again, stream, slen) == 0,
              "image %d encodes to the committed stream byte for byte (%zu vs %zu bytes)", i, alen,
              slen);
        free(again), free(stream), free(sym);
    }
    aec_workspace_free(ws);
    aec_codec_free(codec);
    aec_model_free(m);
}

static void test_latent_goldens(void)
{
    aec_error err = {{0}};
    aec_model *m = load_golden_model("mlp-tiny.safetensors");
    aec_workspace *ws = NULL;
    REQUIRE(aec_workspace_create(&ws, m, 1, 0, &err) == AEC_OK, "%s", err.msg);
    static const aec_latent_dtype dts[] = {AEC_LATENT_F32, AEC_LATENT_F16, AEC_LATENT_U8};
    for (int i = 0; i < GOLDEN_IMAGES; i++) {
        float img[PIXELS], lat[16], out[PIXELS];
        load_source(i, img);
        aec_model_encode(m, ws, img, 1, lat);
        for (int d = 0; d < 3; d++) {
            const char *dt = aec_latent_dtype_name(dts[d]);
            char name[64];
            size_t len = 0;
            snprintf(name, sizeof name, "mlp-tiny.%d.%s.aecl", i, dt);
            uint8_t *gold = read_golden(name, &len);
            CHECK(len > AEC_LATENT_HEADER && memcmp(gold, "AECL", 4) == 0 && gold[4] == 1,
                  "%s: magic and version 1", name);
            uint8_t *packed = NULL;
            size_t plen = 0;
            REQUIRE(aec_latent_pack(lat, 16, m->id_hash, dts[d], &packed, &plen, &err) == AEC_OK,
                    "%s", err.msg);
            CHECK(plen == len && memcmp(packed, gold, len) == 0,
                  "%s: the image encodes to it byte for byte", name);
            float q[16];
            CHECK(aec_latent_unpack(gold, len, 16, m->id_hash, q, &err) == AEC_OK, "%s: %s", name,
                  err.msg);
            aec_model_decode(m, ws, q, 1, out);
            snprintf(name, sizeof name, "mlp-tiny.%d.%s.png", i, dt);
            int diff = png_difference(out, name);
            CHECK(diff <= GOLDEN_TOLERANCE, "%s: decoded image within %d levels (max %d)", name,
                  GOLDEN_TOLERANCE, diff);
            free(packed), free(gold);
        }
    }
    aec_workspace_free(ws);
    aec_model_free(m);
}

int main(void)
{
    g_dir = getenv("AEC_GOLDEN_DIR");
    if (!g_dir || !*g_dir)
        SKIP("AEC_GOLDEN_DIR is not set (ctest sets it to tests/golden)");
    test_codec_goldens();
    test_latent_goldens();
    return TEST_SUMMARY();
}
