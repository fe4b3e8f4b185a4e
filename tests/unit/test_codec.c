/* test_codec.c - the entropy-coded latent (binary latent v2, src/codec/):
 *
 * - encode -> bytes -> decode reproduces the rounded, clamped symbols exactly,
 *   for latents of every kind (typical, outliers, half-integers, worst case);
 * - streams are deterministic: the same image gives the same bytes at any
 *   batch size and thread count;
 * - the coder is an entropy coder: a stream costs what its symbols'
 *   probabilities say, within a few bytes;
 * - corrupt, truncated, extended and foreign streams are refused (or, when a
 *   change cannot matter, decode to exactly the same latent): never a
 *   different latent, never a crash;
 * - malformed tables are refused; tables round-trip through the model file;
 * - the training rate term's gradients match finite differences.
 */
#include <math.h>
#include <string.h>

#include "aec/codec.h"
#include "aec/entropy.h"
#include "aec/layers.h"
#include "aec/model.h"
#include "testutil.h"

/* A small conv autoencoder: 3x16x16 -> latent 6 x 4 x 4 -> 3x16x16. */
static const char *SPEC =
    "[{\"type\":\"conv2d\",\"in\":3,\"out\":8,\"kernel\":3,\"stride\":2,\"padding\":1},"
    "{\"type\":\"relu\"},"
    "{\"type\":\"conv2d\",\"in\":8,\"out\":6,\"kernel\":3,\"stride\":2,\"padding\":1},"
    "{\"type\":\"conv_transpose2d\",\"in\":6,\"out\":8,\"kernel\":3,\"stride\":2,\"padding\":1,"
    "\"output_padding\":1},"
    "{\"type\":\"relu\"},"
    "{\"type\":\"conv_transpose2d\",\"in\":8,\"out\":3,\"kernel\":3,\"stride\":2,\"padding\":1,"
    "\"output_padding\":1},"
    "{\"type\":\"sigmoid\"}]";
#define C 6
#define S 16 /* 4 x 4 */
#define N (C * S)

/* Channel j's values: Laplace-like with scale growing with j. */
static void random_latent(float *v, uint64_t *rng, float spread)
{
    for (int j = 0; j < C; j++)
        for (int k = 0; k < S; k++) {
            float u = test_rand_uniform(rng) - 0.5f;
            float mag = -logf(1.0f - 2.0f * fabsf(u) + 1e-7f) * spread * (float)(j + 1) * 0.5f;
            v[j * S + k] = (u < 0 ? -mag : mag) + (float)(j % 3) - 1.0f;
        }
}

/* A model with weights and tables from 400 random latents. */
static aec_model *codec_model(uint64_t seed)
{
    aec_model *m = NULL;
    aec_error err = {{0}};
    REQUIRE(aec_model_from_spec(&m, SPEC, 3, 16, 16, 2, &err) == AEC_OK, "spec: %s", err.msg);
    aec_model_init_weights(m, seed);
    aec_model_update_id(m);
    aec_codec_builder *b = NULL;
    REQUIRE(aec_codec_builder_create(&b, m, &err) == AEC_OK, "builder: %s", err.msg);
    uint64_t rng = seed;
    float v[N];
    for (int i = 0; i < 400; i++) {
        random_latent(v, &rng, 2.0f);
        aec_codec_builder_add(b, v, 1);
    }
    REQUIRE(aec_codec_builder_finish(b, m, "{\"format\":2}", &err) == AEC_OK, "finish: %s",
            err.msg);
    aec_codec_builder_free(b);
    return m;
}

static aec_codec *codec_of(const aec_model *m)
{
    aec_codec *c = NULL;
    aec_error err = {{0}};
    REQUIRE(aec_codec_create(&c, m, &err) == AEC_OK, "codec: %s", err.msg);
    return c;
}

/* Equal as numbers (rintf(-0.3) is -0.0; a decoded symbol 0 is +0.0). */
static int same_values(const float *a, const float *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* What decoding must give: rint, clamped to the channel's table. */
static void expected_symbols(const aec_model *m, const float *v, float *want)
{
    const aec_extra_tensor *t = aec_model_find_extra(m, AEC_CODEC_TABLES);
    for (int j = 0; j < C; j++) {
        float lo = t->data[j * t->dims[1]], hi = lo + t->data[j * t->dims[1] + 1] - 1;
        for (int k = 0; k < S; k++) {
            float r = rintf(v[j * S + k]);
            want[j * S + k] = r < lo ? lo : (r > hi ? hi : r);
        }
    }
}

static void test_round_trip(void)
{
    aec_model *m = codec_model(1);
    aec_codec *c = codec_of(m);
    uint64_t rng = 99;
    int exact = 0, trials = 0;
    for (int t = 0; t < 300; t++) {
        float v[N], want[N], got[N];
        random_latent(v, &rng, t < 100 ? 2.0f : (t < 200 ? 0.2f : 20.0f)); /* 20: outliers */
        if (t % 7 == 0)
            for (int i = 0; i < N; i++)
                v[i] = floorf(v[i]) + 0.5f; /* ties: round half to even */
        expected_symbols(m, v, want);
        uint8_t *buf = NULL;
        size_t len = 0;
        aec_error err = {{0}};
        CHECK(aec_codec_encode(c, v, &buf, &len, &err) == AEC_OK, "encode %d: %s", t, err.msg);
        CHECK(len >= AEC_CODEC_HEADER && len <= aec_codec_max_bytes(c), "length %zu", len);
        CHECK(aec_codec_is_stream(buf, len), "stream recognized");
        CHECK(aec_codec_decode(c, buf, len, got, &err) == AEC_OK, "decode %d: %s", t, err.msg);
        exact += same_values(got, want, N);

        trials++;
        uint8_t *again = NULL;
        size_t len2 = 0;
        aec_codec_encode(c, v, &again, &len2, &err);
        CHECK(len2 == len && memcmp(again, buf, len) == 0, "same latent, same bytes");
        free(buf), free(again);
    }
    CHECK(exact == trials, "%d of %d round trips exact", exact, trials);

    /* the worst case: every symbol the least probable one of its channel */
    const aec_extra_tensor *tab = aec_model_find_extra(m, AEC_CODEC_TABLES);
    float v[N], got[N];
    for (int j = 0; j < C; j++) {
        const float *row = tab->data + j * tab->dims[1];
        int rare = 0;
        for (int s = 1; s < (int)row[1]; s++)
            if (row[2 + s] < row[2 + rare])
                rare = s;
        for (int k = 0; k < S; k++)
            v[j * S + k] = row[0] + (float)rare;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    aec_error err = {{0}};
    CHECK(aec_codec_encode(c, v, &buf, &len, &err) == AEC_OK, "worst case encodes: %s", err.msg);
    CHECK(len <= aec_codec_max_bytes(c), "worst case %zu within bound %zu", len,
          aec_codec_max_bytes(c));
    CHECK(aec_codec_decode(c, buf, len, got, &err) == AEC_OK && same_values(got, v, N),
          "worst case round trip: %s", err.msg);
    free(buf);

    float bad[N] = {0};
    bad[5] = NAN;
    CHECK(aec_codec_encode(c, bad, &buf, &len, &err) == AEC_ERR_INVALID, "NaN refused");
    aec_codec_free(c);
    aec_model_free(m);
}

/* Bytes = the symbols' information content (sum of -log2 p) + header, within 3 bytes. */
static void test_entropy(void)
{
    aec_model *m = codec_model(2);
    aec_codec *c = codec_of(m);
    const aec_extra_tensor *tab = aec_model_find_extra(m, AEC_CODEC_TABLES);
    uint64_t rng = 5;
    for (int t = 0; t < 50; t++) {
        float v[N], sym[N];
        random_latent(v, &rng, 2.0f);
        expected_symbols(m, v, sym);
        double bits = 0;
        for (int i = 0; i < N; i++) {
            const float *row = tab->data + (i / S) * tab->dims[1];
            bits -= log2(row[2 + (int)(sym[i] - row[0])] / 65536.0);
        }
        uint8_t *buf = NULL;
        size_t len = 0;
        aec_codec_encode(c, v, &buf, &len, NULL);
        double payload = (double)(len - AEC_CODEC_HEADER);
        CHECK(payload <= bits / 8 + 3 && payload >= bits / 8 - 3,
              "payload %g bytes for %.1f bits of information", payload, bits);
        free(buf);
    }
    aec_codec_free(c);
    aec_model_free(m);
}

/* Decoding a changed stream either fails or gives exactly the original latent. */
static int refused_or_same(const aec_codec *c, const uint8_t *buf, size_t len, const float *orig)
{
    float got[N];
    aec_status st = aec_codec_decode(c, buf, len, got, NULL);
    return st != AEC_OK || same_values(got, orig, N);
}

static void test_hostile_streams(void)
{
    aec_model *m = codec_model(3), *other = codec_model(4);
    aec_codec *c = codec_of(m), *co = codec_of(other);
    uint64_t rng = 11;
    float v[N], orig[N];
    random_latent(v, &rng, 2.0f);
    expected_symbols(m, v, orig);
    uint8_t *buf = NULL;
    size_t len = 0;
    aec_error err = {{0}};
    REQUIRE(aec_codec_encode(c, v, &buf, &len, &err) == AEC_OK, "encode: %s", err.msg);
    uint8_t *work = malloc(len + 64);
    REQUIRE(work, "oom");

    int flips_ok = 0, flips = 0;
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(work, buf, len);
            work[i] ^= (uint8_t)(1 << bit);
            flips_ok += refused_or_same(c, work, len, orig);
            flips++;
        }
    CHECK(flips_ok == flips, "%d of %d single-bit flips refused (or harmless)", flips_ok, flips);
    int cuts_ok = 0;
    for (size_t cut = 0; cut < len; cut++)
        cuts_ok += refused_or_same(c, buf, cut, orig);
    CHECK(cuts_ok == (int)len, "%d of %zu truncations refused", cuts_ok, len);
    int ext_ok = 0;
    for (int extra = 1; extra <= 16; extra++) {
        memcpy(work, buf, len);
        for (int k = 0; k < extra; k++)
            work[len + (size_t)k] = (uint8_t)(0x5a + 13 * k);
        ext_ok += refused_or_same(c, work, len + (size_t)extra, orig);
    }
    CHECK(ext_ok == 16, "appended bytes refused (%d of 16)", ext_ok);
    float got[N];
    CHECK(aec_codec_decode(co, buf, len, got, &err) == AEC_ERR_MISMATCH,
          "another model's stream: mismatch, got '%s'", err.msg);
    CHECK(aec_codec_decode(c, buf, 0, got, &err) == AEC_ERR_FORMAT, "empty stream");
    memcpy(work, buf, len);
    work[0] = 'A';
    CHECK(aec_codec_decode(c, work, len, got, &err) == AEC_ERR_FORMAT, "v1 magic is not v2");
    uint8_t *big = calloc(1, aec_codec_max_bytes(c) + 1);
    REQUIRE(big, "oom");
    memcpy(big, buf, len);
    CHECK(aec_codec_decode(c, big, aec_codec_max_bytes(c) + 1, got, &err) == AEC_ERR_FORMAT,
          "over-long stream refused before decoding");
    /* random garbage behind a valid header never crashes and never passes unnoticed */
    int garbage_ok = 0;
    for (int t = 0; t < 2000; t++) {
        size_t n = AEC_CODEC_HEADER + (size_t)(test_rand_u64(&rng) % 60);
        memcpy(work, buf, AEC_CODEC_HEADER);
        for (size_t i = AEC_CODEC_HEADER; i < n; i++)
            work[i] = (uint8_t)test_rand_u64(&rng);
        garbage_ok += refused_or_same(c, work, n, orig);
    }
    CHECK(garbage_ok >= 1999, "garbage payloads refused: %d of 2000", garbage_ok);
    free(big), free(work), free(buf);
    aec_codec_free(c), aec_codec_free(co);
    aec_model_free(m), aec_model_free(other);
}

/* Each malformed table is refused with AEC_ERR_FORMAT. */
static void test_bad_tables(void)
{
    aec_model *m = codec_model(5);
    const aec_extra_tensor *t = aec_model_find_extra(m, AEC_CODEC_TABLES);
    int w = t->dims[1];
    float *good = malloc(sizeof(float) * t->count);
    REQUIRE(good, "oom");
    memcpy(good, t->data, sizeof(float) * t->count);
    struct {
        const char *what;
        int index;
        float value;
    } cases[] = {
        {"frequency 0", 2, 0.0f},     {"fractional frequency", 2, 1.5f},
        {"sum too big", 3, 60000.0f}, {"lowest symbol out of range", 0, -5000.0f},
        {"count 0", 1, 0.0f},         {"count past the row", 1, (float)w},
        {"NaN frequency", 2, NAN},    {"padding not zero", w - 1, 7.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        float *d = malloc(sizeof(float) * t->count);
        REQUIRE(d, "oom");
        memcpy(d, good, sizeof(float) * t->count);
        if (cases[i].index == w - 1 && d[1] + 2 >= (float)w) {
            free(d); /* channel 0 fills its row: no padding to spoil */
            continue;
        }
        d[cases[i].index] = cases[i].value;
        aec_error err = {{0}};
        REQUIRE(aec_model_set_extra(m, AEC_CODEC_TABLES, d, 2, t->dims, &err) == AEC_OK, "set");
        t = aec_model_find_extra(m, AEC_CODEC_TABLES);
        aec_codec *c = NULL;
        CHECK(aec_codec_create(&c, m, &err) == AEC_ERR_FORMAT, "%s refused", cases[i].what);
        aec_codec_free(c);
        free(d);
    }
    int dims[2] = {C + 1, w};
    float *wide = calloc((size_t)(C + 1) * (size_t)w, sizeof(float));
    aec_error err = {{0}};
    aec_model_set_extra(m, AEC_CODEC_TABLES, wide, 2, dims, &err);
    aec_codec *c = NULL;
    CHECK(aec_codec_create(&c, m, &err) == AEC_ERR_FORMAT, "wrong channel count refused");
    free(wide), free(good);
    aec_model_free(m);

    aec_model *plain = NULL;
    aec_model_from_spec(&plain, SPEC, 3, 16, 16, 2, &err);
    CHECK(!aec_model_has_codec(plain) && aec_codec_create(&c, plain, &err) == AEC_ERR_UNSUPPORTED,
          "a model without tables has no codec");
    aec_model_free(plain);
}

static void test_model_file_and_determinism(void)
{
    aec_model *m = codec_model(6);
    char path[1024];
    snprintf(path, sizeof path, "%s/codec.safetensors", test_tmpdir());
    aec_error err = {{0}};
    REQUIRE(aec_model_save(m, path, &err) == AEC_OK, "save: %s", err.msg);
    aec_model *l = NULL;
    REQUIRE(aec_model_load(&l, path, &err) == AEC_OK, "load: %s", err.msg);
    const aec_extra_tensor *a = aec_model_find_extra(m, AEC_CODEC_TABLES),
                           *b = aec_model_find_extra(l, AEC_CODEC_TABLES);
    CHECK(b && a->count == b->count && memcmp(a->data, b->data, sizeof(float) * a->count) == 0,
          "tables round-trip through the model file");
    CHECK(l->codec_json && strstr(l->codec_json, "\"format\""), "aec.codec metadata kept");

    /* images -> latents at batch 1 and 5, 1 and 2 threads -> identical streams */
    enum { IMAGES = 5 };
    float *img = malloc(sizeof(float) * 3 * 16 * 16 * IMAGES);
    float *lat = malloc(sizeof(float) * N * IMAGES);
    REQUIRE(img && lat, "oom");
    for (int i = 0; i < IMAGES; i++)
        test_synthetic_image(img + i * 3 * 16 * 16, 16, 16, (uint64_t)(40 + i));
    aec_codec *c = codec_of(m), *cl = codec_of(l);
    uint8_t *ref[IMAGES] = {0};
    size_t ref_len[IMAGES] = {0};
    int same = 1;
    for (int threads = 1; threads <= 2; threads++) {
        for (int batch = 1; batch <= IMAGES; batch += IMAGES - 1) {
            aec_workspace *ws = NULL;
            REQUIRE(aec_workspace_create(&ws, l, batch, 0, &err) == AEC_OK, "ws");
            REQUIRE(aec_workspace_set_threads(ws, l, threads, &err) == AEC_OK, "threads");
            aec_model_encode(l, ws, img, IMAGES, lat);
            /* scale up so the rounding matters */
            for (int i = 0; i < N * IMAGES; i++)
                lat[i] *= 40.0f;
            for (int i = 0; i < IMAGES; i++) {
                uint8_t *buf = NULL;
                size_t len = 0;
                aec_codec_encode(cl, lat + i * N, &buf, &len, &err);
                if (!ref[i]) {
                    ref[i] = buf, ref_len[i] = len;
                    continue;
                }
                same &= len == ref_len[i] && memcmp(buf, ref[i], len) == 0;
                free(buf);
            }
            aec_workspace_free(ws);
        }
    }
    CHECK(same, "streams identical across batch sizes and thread counts");
    float got[N];
    CHECK(aec_codec_decode(c, ref[0], ref_len[0], got, &err) == AEC_OK,
          "the saved model's stream decodes with the original: %s", err.msg);
    for (int i = 0; i < IMAGES; i++)
        free(ref[i]);
    free(img), free(lat);
    aec_codec_free(c), aec_codec_free(cl);
    aec_model_free(m), aec_model_free(l);
}

static void test_rate_gradients(void)
{
    float x[12], mu[3] = {0.3f, -1.0f, 2.0f}, ls[3] = {0.2f, -0.5f, 1.0f};
    uint64_t rng = 17;
    for (int i = 0; i < 12; i++)
        x[i] = 6.0f * (test_rand_uniform(&rng) - 0.5f);
    float dx[12] = {0}, dmu[3] = {0}, dls[3] = {0};
    aec_rate_backward(dx, dmu, dls, x, mu, ls, 2, 3, 2, 1.0f);
    const double h = 1e-3;
    for (int i = 0; i < 12; i++) {
        float s = x[i];
        x[i] = s + (float)h;
        double up = aec_rate_forward(x, mu, ls, 2, 3, 2);
        x[i] = s - (float)h;
        double dn = aec_rate_forward(x, mu, ls, 2, 3, 2);
        x[i] = s;
        double num = (up - dn) / (2 * h);
        CHECK(fabs(num - dx[i]) < 2e-3 * (1 + fabs(num)), "d bits/d x[%d]: %g vs %g", i, dx[i],
              num);
    }
    for (int j = 0; j < 3; j++) {
        float *p[2] = {&mu[j], &ls[j]}, *g[2] = {&dmu[j], &dls[j]};
        for (int q = 0; q < 2; q++) {
            float s = *p[q];
            *p[q] = s + (float)h;
            double up = aec_rate_forward(x, mu, ls, 2, 3, 2);
            *p[q] = s - (float)h;
            double dn = aec_rate_forward(x, mu, ls, 2, 3, 2);
            *p[q] = s;
            double num = (up - dn) / (2 * h);
            CHECK(fabs(num - *g[q]) < 2e-3 * (1 + fabs(num)), "d bits/d %s[%d]: %g vs %g",
                  q ? "log_s" : "mu", j, *g[q], num);
        }
    }
    /* a value at the location costs about -log2 of its bin's mass */
    float zero = 0.0f, m0 = 0.0f, l0 = 0.0f;
    double bits = aec_rate_forward(&zero, &m0, &l0, 1, 1, 1);
    double p = 1.0 / (1.0 + exp(-0.5)) - 1.0 / (1.0 + exp(0.5));
    CHECK(fabs(bits + log2(p)) < 1e-9, "bits at the mode %g vs %g", bits, -log2(p));
}

int main(void)
{
    test_round_trip();
    test_entropy();
    test_hostile_streams();
    test_bad_tables();
    test_model_file_and_determinism();
    test_rate_gradients();
    return TEST_SUMMARY();
}
