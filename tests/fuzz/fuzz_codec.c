/* fuzz_codec.c - libFuzzer target for the entropy-coded latent
 * (src/codec/codec.c, rangecoder.c), with a fixed small codec model built
 * at start-up (conv, latent 6 x 4 x 4, tables from a fixed generator).
 *
 * Input: one selector byte, then the bytes under test.
 *   0: the rest as a stream, as /decode gets it. When it decodes, coding the
 *      result again must give a stream that decodes to the same values.
 *   1: the same, with the model's tag written into bytes 1..2 first, so the
 *      range decoder itself is reached on almost every input.
 *   2: the rest as little-endian floats (a latent): when all are finite,
 *      encode must succeed and decode must give back rint(v), clamped.
 *   3: the rest as a tables tensor for the model (floats, row width from the
 *      first byte): validation must not crash; accepted tables must code a
 *      latent and decode it back exactly.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aec/codec.h"
#include "aec/model.h"

#define C 6
#define S 16
#define N (C * S)

static const char *SPEC =
    "[{\"type\":\"conv2d\",\"in\":3,\"out\":8,\"kernel\":3,\"stride\":2,\"padding\":1},"
    "{\"type\":\"relu\"},"
    "{\"type\":\"conv2d\",\"in\":8,\"out\":6,\"kernel\":3,\"stride\":2,\"padding\":1},"
    "{\"type\":\"conv_transpose2d\",\"in\":6,\"out\":3,\"kernel\":4,\"stride\":4,\"padding\":0}]";

static aec_model *model;
static aec_codec *codec;
static uint8_t tag[2];

static void setup(void)
{
    aec_error err;
    if (aec_model_from_spec(&model, SPEC, 3, 16, 16, 2, &err) != AEC_OK)
        abort();
    aec_model_init_weights(model, 1);
    aec_model_update_id(model);
    aec_codec_builder *b = NULL;
    if (aec_codec_builder_create(&b, model, &err) != AEC_OK)
        abort();
    uint64_t s = 7;
    float v[N];
    for (int t = 0; t < 200; t++) {
        for (int i = 0; i < N; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            v[i] = (float)((int)(s >> 59) - 16) * (float)(i / S + 1) / 4.0f;
        }
        aec_codec_builder_add(b, v, 1);
    }
    if (aec_codec_builder_finish(b, model, NULL, &err) != AEC_OK ||
        aec_codec_create(&codec, model, &err) != AEC_OK)
        abort();
    aec_codec_builder_free(b);
    uint8_t *stream;
    size_t len;
    memset(v, 0, sizeof v);
    if (aec_codec_encode(codec, v, &stream, &len, &err) != AEC_OK)
        abort();
    memcpy(tag, stream + 1, 2);
    free(stream);
}

static void decode_then_recode(const aec_codec *c, const uint8_t *b, size_t n)
{
    float got[N], again[N];
    if (aec_codec_decode(c, b, n, got, NULL) != AEC_OK)
        return;
    uint8_t *s2;
    size_t n2;
    if (aec_codec_encode(c, got, &s2, &n2, NULL) != AEC_OK ||
        aec_codec_decode(c, s2, n2, again, NULL) != AEC_OK || memcmp(got, again, sizeof got))
        abort();
    free(s2);
}

static void encode_then_decode(const aec_codec *c, const aec_model *m, const float *v)
{
    const aec_extra_tensor *t = aec_model_find_extra(m, AEC_CODEC_TABLES);
    uint8_t *s;
    size_t n;
    float got[N];
    if (aec_codec_encode(c, v, &s, &n, NULL) != AEC_OK || n > aec_codec_max_bytes(c) ||
        aec_codec_decode(c, s, n, got, NULL) != AEC_OK)
        abort();
    free(s);
    for (int i = 0; i < N; i++) {
        const float *row = t->data + (size_t)(i / S) * (size_t)t->dims[1];
        float r = rintf(v[i]), lo = row[0], hi = row[0] + row[1] - 1;
        r = r < lo ? lo : (r > hi ? hi : r);
        if (got[i] != r)
            abort();
    }
}

static void tables(const uint8_t *b, size_t n)
{
    if (n < 1)
        return;
    int width = 3 + b[0] % 40;
    size_t count = (size_t)C * (size_t)width;
    float *d = calloc(count, sizeof(float));
    if (!d)
        abort();
    for (size_t i = 0; i < count && 1 + 4 * i + 4 <= n; i++)
        memcpy(&d[i], b + 1 + 4 * i, 4);
    aec_model *m = NULL;
    aec_error err;
    int dims[2] = {C, width};
    aec_codec *c = NULL;
    if (aec_model_from_spec(&m, SPEC, 3, 16, 16, 2, &err) == AEC_OK &&
        aec_model_set_extra(m, AEC_CODEC_TABLES, d, 2, dims, &err) == AEC_OK &&
        aec_codec_create(&c, m, &err) == AEC_OK) {
        float v[N];
        for (int i = 0; i < N; i++)
            v[i] = (float)((i * 7) % 9) - 4.0f;
        encode_then_decode(c, m, v);
    }
    aec_codec_free(c);
    aec_model_free(m);
    free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!model)
        setup();
    if (size < 1)
        return 0;
    const uint8_t *b = data + 1;
    size_t n = size - 1;
    switch (data[0] % 4) {
    case 0: decode_then_recode(codec, b, n); break;
    case 1: {
        uint8_t *w = malloc(n > 3 ? n : 3);
        if (!w)
            abort();
        memcpy(w, b, n);
        if (n >= 3)
            memcpy(w + 1, tag, 2);
        decode_then_recode(codec, w, n);
        free(w);
        break;
    }
    case 2: {
        float v[N];
        if (n < sizeof v)
            return 0;
        memcpy(v, b, sizeof v);
        for (int i = 0; i < N; i++)
            if (!isfinite(v[i]))
                return 0;
        encode_then_decode(codec, model, v);
        break;
    }
    default: tables(b, n); break;
    }
    return 0;
}
