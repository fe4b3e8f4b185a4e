/* test_gemm.c - the fixed-order product gives exactly the bits its
 * specification (include/aec/gemm.h) defines, for every shape, stride,
 * block position and thread count; and a model's inference answer for a
 * sample is the same bits whatever batch it is in and however many threads
 * run it.
 *
 * The references below are the specifications of both forms written as plain
 * scalar C, one operation at a time: on any CPU the kernel (whichever clone the CPU picks)
 * must match it bit for bit, which is what makes streams portable.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aec/gemm.h"
#include "aec/model.h"
#include "testutil.h"

static float ref_dot(const float *a, const float *b, int k)
{
    volatile float lane[8] = {0}; /* volatile: one rounded operation at a time */
    for (int p = 0; p < k; p += 8)
        for (int l = 0; l < 8; l++) {
            float x = p + l < k ? a[p + l] : 0.0f, y = p + l < k ? b[p + l] : 0.0f;
            volatile float prod = x * y;
            lane[l] = lane[l] + prod;
        }
    volatile float s04 = lane[0] + lane[4], s26 = lane[2] + lane[6], s15 = lane[1] + lane[5],
                   s37 = lane[3] + lane[7];
    volatile float lo = s04 + s26, hi = s15 + s37;
    return lo + hi;
}

/* Values spread over many magnitudes and signs, so any change of the
 * order of additions changes the low bits. */
static void fill(float *v, size_t n, uint64_t *rng)
{
    for (size_t i = 0; i < n; i++) {
        float u = test_rand_uniform(rng) - 0.5f;
        v[i] = u * powf(10.0f, (float)(test_rand_u64(rng) % 7) - 3.0f);
    }
}

static int same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, sizeof(float) * n) == 0;
}

static void test_matches_reference(void)
{
    static const int ms[] = {1, 2, 3, 5, 33, 70}, ns[] = {1, 3, 4, 5, 9, 17},
                     ks[] = {1, 7, 8, 9, 75, 300};
    uint64_t rng = 1;
    int cases = 0, good = 0, good_t = 0;
    for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++)
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
            for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
                int m = ms[mi], n = ns[ni], k = ks[ki];
                size_t lda = (size_t)k + (size_t)(mi % 2), ldb = (size_t)k + (size_t)(ni % 3);
                float *a = malloc(sizeof(float) * (size_t)m * lda);
                float *b = malloc(sizeof(float) * (size_t)n * ldb);
                float *bias = malloc(sizeof(float) * (size_t)n);
                float *c = malloc(sizeof(float) * (size_t)m * n);
                float *ct = malloc(sizeof(float) * (size_t)m * n);
                float *want = malloc(sizeof(float) * (size_t)m * n);
                REQUIRE(a && b && bias && c && ct && want, "oom");
                fill(a, (size_t)m * lda, &rng);
                fill(b, (size_t)n * ldb, &rng);
                fill(bias, (size_t)n, &rng);
                int with_bias = (int)(cases % 2);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        volatile float s = ref_dot(a + (size_t)i * lda, b + (size_t)j * ldb, k);
                        want[(size_t)i * n + j] = with_bias ? s + bias[j] : s;
                    }
                /* row-major output, then the transposed layout (planar images) */
                aec_gemm_fixed(c, (size_t)n, 1, a, lda, b, ldb, with_bias ? bias : NULL, m, n, k);
                int ok = same_bits(c, want, (size_t)m * n);
                aec_gemm_fixed(ct, 1, (size_t)m, a, lda, b, ldb, with_bias ? bias : NULL, m, n, k);
                for (int i = 0; i < m && ok; i++)
                    for (int j = 0; j < n; j++)
                        ok &= memcmp(&ct[(size_t)j * m + i], &want[(size_t)i * n + j], 4) == 0;
                good += ok;
                int ok_t = 1;
                for (int t = 2; t <= 5; t++) {
                    memset(c, 0, sizeof(float) * (size_t)m * n);
                    aec_gemm_fixed_parallel(c, (size_t)n, 1, a, lda, b, ldb,
                                            with_bias ? bias : NULL, m, n, k, t);
                    ok_t &= same_bits(c, want, (size_t)m * n);
                }
                good_t += ok_t;
                cases++;
                free(a), free(b), free(bias), free(c), free(ct), free(want);
            }
    CHECK(good == cases, "%d of %d shapes match the reference bit for bit", good, cases);
    CHECK(good_t == cases, "%d of %d shapes match it on 2-5 threads", good_t, cases);
}

/* The sequential form: a plain running sum in order, then the bias. */
static void test_seq_matches_reference(void)
{
    static const int ms[] = {1, 3, 4, 5, 9}, ns[] = {1, 7, 8, 15, 16, 17, 33, 300},
                     ks[] = {1, 2, 9, 27, 100};
    uint64_t rng = 3;
    int cases = 0, good = 0, split_ok = 1;
    for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++)
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
            for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
                int m = ms[mi], n = ns[ni], k = ks[ki];
                int transposed = (int)(cases % 2); /* a as [m, k] or as [k, m] */
                size_t a_si = transposed ? 1 : (size_t)k, a_sp = transposed ? (size_t)m : 1;
                size_t ldb = (size_t)n + (size_t)(ki % 2), ldc = (size_t)n + 1;
                float *a = malloc(sizeof(float) * (size_t)m * k);
                float *b = malloc(sizeof(float) * (size_t)k * ldb);
                float *bias = malloc(sizeof(float) * (size_t)m);
                float *c = malloc(sizeof(float) * (size_t)m * ldc);
                float *want = malloc(sizeof(float) * (size_t)m * ldc);
                REQUIRE(a && b && bias && c && want, "oom");
                fill(a, (size_t)m * k, &rng);
                fill(b, (size_t)k * ldb, &rng);
                fill(bias, (size_t)m, &rng);
                int with_bias = (int)(cases / 2 % 2);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        volatile float acc = 0.0f;
                        for (int p = 0; p < k; p++) {
                            volatile float prod = a[i * a_si + p * a_sp] * b[p * ldb + j];
                            acc = acc + prod;
                        }
                        want[i * ldc + j] = with_bias ? acc + bias[i] : acc;
                    }
                aec_gemm_seq(c, ldc, a, a_si, a_sp, b, ldb, with_bias ? bias : NULL, m, n, k);
                int ok = 1;
                for (int i = 0; i < m; i++)
                    ok &= same_bits(c + i * ldc, want + i * ldc, (size_t)n);
                good += ok;
                /* the columns in pieces of 5 and the rows one at a time */
                memset(c, 0, sizeof(float) * (size_t)m * ldc);
                for (int i = 0; i < m; i++)
                    for (int j0 = 0; j0 < n; j0 += 5)
                        aec_gemm_seq(c + i * ldc + j0, ldc, a + i * a_si, a_si, a_sp, b + j0, ldb,
                                     with_bias ? bias + i : NULL, 1, n - j0 < 5 ? n - j0 : 5, k);
                for (int i = 0; i < m; i++)
                    split_ok &= same_bits(c + i * ldc, want + i * ldc, (size_t)n);
                cases++;
                free(a), free(b), free(bias), free(c), free(want);
            }
    CHECK(good == cases, "sequential form: %d of %d shapes match the reference bit for bit", good,
          cases);
    CHECK(split_ok, "sequential form: rows alone and columns in pieces give the same bits");
}

/* A row computed alone, or a block of columns computed alone, is the same
 * bits as inside the whole product: what batching relies on. */
static void test_block_position(void)
{
    enum { M = 37, N = 23, K = 531 };
    uint64_t rng = 7;
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * N * K);
    float *all = malloc(sizeof(float) * M * N), *part = malloc(sizeof(float) * M * N);
    REQUIRE(a && b && all && part, "oom");
    fill(a, (size_t)M * K, &rng);
    fill(b, (size_t)N * K, &rng);
    aec_gemm_fixed(all, N, 1, a, K, b, K, NULL, M, N, K);
    int rows_ok = 1, cols_ok = 1;
    for (int i = 0; i < M; i++) {
        aec_gemm_fixed(part, N, 1, a + (size_t)i * K, K, b, K, NULL, 1, N, K);
        rows_ok &= same_bits(part, all + (size_t)i * N, N);
    }
    for (int j0 = 0; j0 < N; j0 += 3) {
        int nj = N - j0 < 3 ? N - j0 : 3;
        aec_gemm_fixed(part, N, 1, a, K, b + (size_t)j0 * K, K, NULL, M, nj, K);
        for (int i = 0; i < M; i++)
            cols_ok &= same_bits(part + (size_t)i * N, all + (size_t)i * N + j0, (size_t)nj);
    }
    CHECK(rows_ok, "every row alone equals its row in the whole product");
    CHECK(cols_ok, "blocks of 3 columns equal the whole product's columns");
    free(a), free(b), free(all), free(part);
}

/* ---- models: batch and threads never change a sample's answer ------------- */

static const char *MLP =
    "[{\"type\":\"flatten\"},{\"type\":\"batchnorm\",\"features\":192},"
    "{\"type\":\"linear\",\"in\":192,\"out\":61},{\"type\":\"relu\"},"
    "{\"type\":\"linear\",\"in\":61,\"out\":29},{\"type\":\"relu\"},"
    "{\"type\":\"batchnorm\",\"features\":29},{\"type\":\"linear\",\"in\":29,\"out\":192},"
    "{\"type\":\"sigmoid\"},{\"type\":\"unflatten\",\"shape\":[3,8,8]}]";

static const char *CONV =
    "[{\"type\":\"conv2d\",\"in\":3,\"out\":10,\"kernel\":5,\"stride\":2,\"padding\":2},"
    "{\"type\":\"batchnorm\",\"features\":10},{\"type\":\"relu\"},"
    "{\"type\":\"conv2d\",\"in\":10,\"out\":7,\"kernel\":3,\"stride\":1,\"padding\":1},"
    "{\"type\":\"conv_transpose2d\",\"in\":7,\"out\":9,\"kernel\":5,\"stride\":2,\"padding\":2,"
    "\"output_padding\":1},{\"type\":\"relu\"},"
    "{\"type\":\"conv_transpose2d\",\"in\":9,\"out\":3,\"kernel\":1,\"stride\":1,\"padding\":0},"
    "{\"type\":\"sigmoid\"}]";

static void check_model(const char *name, const char *spec, int latent_index)
{
    enum { B = 7 };
    aec_error err = {{0}};
    aec_model *m = NULL;
    REQUIRE(aec_model_from_spec(&m, spec, 3, 8, 8, latent_index, &err) == AEC_OK, "%s: %s", name,
            err.msg);
    aec_model_init_weights(m, 11);
    /* non-trivial batchnorm statistics */
    uint64_t rng = 5;
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].type == AEC_LAYER_BATCHNORM)
            for (int p = 0; p < 4; p++)
                for (size_t e = 0; e < m->layers[i].params[p].count; e++)
                    m->layers[i].params[p].data[e] = 0.5f + test_rand_uniform(&rng);
    size_t in = aec_model_input_count(m), out = aec_model_output_count(m);
    float *x = malloc(sizeof(float) * in * B), *ref = malloc(sizeof(float) * out * B);
    float *got = malloc(sizeof(float) * out * B);
    REQUIRE(x && ref && got, "oom");
    for (int i = 0; i < B; i++)
        test_synthetic_image(x + i * in, 8, 8, (uint64_t)(100 + i));
    aec_workspace *ws = NULL;
    REQUIRE(aec_workspace_create(&ws, m, B, 0, &err) == AEC_OK, "%s", err.msg);
    aec_model_reconstruct(m, ws, x, B, ref);
    int finite = 1;
    for (size_t i = 0; i < out * B; i++)
        finite &= isfinite(ref[i]);
    CHECK(finite, "%s: finite outputs", name);
    int batch_ok = 1, threads_ok = 1;
    for (int i = 0; i < B; i++) { /* each sample alone, in a batch-1 workspace */
        aec_workspace *one = NULL;
        REQUIRE(aec_workspace_create(&one, m, 1, 0, &err) == AEC_OK, "%s", err.msg);
        aec_model_reconstruct(m, one, x + i * in, 1, got);
        batch_ok &= same_bits(got, ref + i * out, out);
        aec_workspace_free(one);
    }
    for (int t = 2; t <= 4; t++) { /* the batch on 2-4 threads, and in odd-sized pieces */
        REQUIRE(aec_workspace_set_threads(ws, m, t, &err) == AEC_OK, "%s", err.msg);
        aec_model_reconstruct(m, ws, x, B, got);
        threads_ok &= same_bits(got, ref, out * B);
        aec_model_reconstruct(m, ws, x, 3, got);
        aec_model_reconstruct(m, ws, x + 3 * in, B - 3, got + 3 * out);
        threads_ok &= same_bits(got, ref, out * B);
    }
    CHECK(batch_ok, "%s: every sample alone equals its answer in a batch of %d", name, B);
    CHECK(threads_ok, "%s: 2-4 threads and other batch splits give the same bits", name);
    CHECK(aec_workspace_set_threads(ws, m, 0, &err) != AEC_OK, "%s: 0 threads refused", name);
    aec_workspace_free(ws);
    free(x), free(ref), free(got);
    aec_model_free(m);
}

/* The portable exp behind the sigmoid: accurate, and monotonic outputs. */
static void test_sigmoid_accuracy(void)
{
    aec_error err = {{0}};
    aec_model *m = NULL;
    REQUIRE(aec_model_from_spec(&m, "[{\"type\":\"flatten\"},{\"type\":\"sigmoid\"}]", 1, 1, 1, 0,
                                &err) == AEC_OK,
            "%s", err.msg);
    aec_workspace *ws = NULL;
    enum { COUNT = 4001 };
    REQUIRE(aec_workspace_create(&ws, m, COUNT, 0, &err) == AEC_OK, "%s", err.msg);
    float x[COUNT], y[COUNT];
    for (int i = 0; i < COUNT; i++)
        x[i] = -100.0f + 0.05f * (float)i;
    aec_model_reconstruct(m, ws, x, COUNT, y);
    double worst = 0;
    int monotonic = 1;
    for (int i = 0; i < COUNT; i++) {
        double want = 1.0 / (1.0 + exp(-(double)x[i]));
        double rel = fabs(y[i] - want) / (want > 1e-30 ? want : 1e-30);
        if (want > 1e-30 && rel > worst)
            worst = rel;
        if (i && y[i] < y[i - 1])
            monotonic = 0;
    }
    CHECK(worst < 1e-6, "sigmoid within 1e-6 relative of the exact value (worst %.3g)", worst);
    CHECK(monotonic, "sigmoid is monotonic");
    aec_workspace_free(ws);
    aec_model_free(m);
}

int main(void)
{
    test_matches_reference();
    test_seq_matches_reference();
    test_block_position();
    check_model("mlp", MLP, 5);
    check_model("conv", CONV, 3);
    test_sigmoid_accuracy();
    return TEST_SUMMARY();
}
