/* test_load_independence.c - the load-independence guarantee, as a user
 * relies on it: an image's /encode reply (JSON or binary, f32, f16, u8 or
 * entropy-coded) and its /decode and /anomaly replies are byte-identical
 * whatever else shares the batch, whatever --max-batch and --blas-threads.
 *
 * For four models (a conv autoencoder, two MLPs, a codec) and three server
 * configurations (batching off on one thread; the defaults; an odd batch
 * size on three threads), every request kind is first sent alone to the
 * first configuration; then, in every configuration, CLIENTS threads send
 * all kinds concurrently for ROUNDS rounds (so they share batches of every
 * size and mix), and each reply must equal the reference byte for byte. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "aec/model.h"
#include "harness.h"

#define CLIENTS 12
#define ROUNDS 6
#define NIMG 5
#define MAX_KINDS (NIMG * 8)

typedef struct {
    char path[96];
    const char *ctype;
    const uint8_t *body;
    size_t len;
    http_resp expect;
} request_kind;

static request_kind g_kinds[MAX_KINDS];
static int g_nkinds;
static const aecd_proc *g_srv;
static atomic_long g_good, g_bad;

typedef struct {
    char *data;
    size_t len, cap;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    sink *s = ctx;
    size_t k = size * n;
    if (s->len + k > s->cap) {
        char *grown = realloc(s->data, (s->len + k) * 2);
        if (!grown)
            return 0;
        s->data = grown, s->cap = (s->len + k) * 2;
    }
    memcpy(s->data + s->len, p, k);
    s->len += k;
    return k;
}

static void *client(void *arg)
{
    long id = (long)arg;
    CURL *c = curl_easy_init();
    sink s = {0};
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    for (int round = 0; round < ROUNDS; round++)
        for (int j = 0; j < g_nkinds; j++) {
            const request_kind *k = &g_kinds[(j + id * 7 + round) % g_nkinds];
            char url[256], ct[128];
            snprintf(url, sizeof url, "%s%s", g_srv->base, k->path);
            snprintf(ct, sizeof ct, "Content-Type: %s", k->ctype);
            struct curl_slist *hl = curl_slist_append(NULL, ct);
            s.len = 0;
            curl_easy_setopt(c, CURLOPT_URL, url);
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, k->body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)k->len);
            CURLcode rc = curl_easy_perform(c);
            long status = 0;
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
            int ok = rc == CURLE_OK && status == 200 && s.len == k->expect.len &&
                     memcmp(s.data, k->expect.body, s.len) == 0;
            atomic_fetch_add(ok ? &g_good : &g_bad, 1);
            if (!ok && atomic_load(&g_bad) <= 5)
                fprintf(stderr, "differs: %s (curl %d, status %ld, %zu vs %zu bytes)\n", k->path,
                        (int)rc, status, s.len, k->expect.len);
            curl_slist_free_all(hl);
        }
    free(s.data);
    curl_easy_cleanup(c);
    return NULL;
}

static void add_kind(const char *path, const char *ctype, const uint8_t *body, size_t len)
{
    REQUIRE(g_nkinds < MAX_KINDS, "too many kinds");
    request_kind *k = &g_kinds[g_nkinds++];
    snprintf(k->path, sizeof k->path, "%s", path);
    k->ctype = ctype, k->body = body, k->len = len;
    REQUIRE(http_post(g_srv, path, ctype, body, len, &k->expect) == 200, "%s alone: %ld", path,
            k->expect.status);
}

static void run_model(const char *what, const char *model, int codec)
{
    static const char *const configs[][5] = {
        {"--max-batch", "1", "--blas-threads", "1", NULL},
        {NULL},
        {"--max-batch", "5", "--blas-threads", "3", NULL},
    };
    uint8_t *img[NIMG];
    size_t len[NIMG];
    for (int i = 0; i < NIMG; i++) /* odd sizes: resized to the model's input */
        img[i] = i % 2 ? harness_jpeg(20 + 3 * i, 17 + i, (uint64_t)(300 + i), &len[i])
                       : harness_png(HARNESS_SIDE, HARNESS_SIDE, (uint64_t)(300 + i), &len[i]);
    g_nkinds = 0;
    for (int c = 0; c < 3; c++) {
        aecd_proc p;
        harness_start(&p, model, configs[c][0] ? configs[c] : NULL, NULL);
        g_srv = &p;
        if (c == 0) { /* the references: each request alone, no batching, one thread */
            for (int i = 0; i < NIMG; i++) {
                const char *ct = i % 2 ? "image/jpeg" : "image/png";
                add_kind("/encode", ct, img[i], len[i]);
                add_kind("/encode?format=binary&dtype=f16", ct, img[i], len[i]);
                add_kind("/encode?format=binary&dtype=u8", ct, img[i], len[i]);
                add_kind("/encode?format=binary&dtype=f32", ct, img[i], len[i]);
                if (codec) {
                    add_kind("/encode?dtype=coded", ct, img[i], len[i]);
                } else {
                    add_kind("/anomaly", ct, img[i], len[i]);
                }
            }
            int n = g_nkinds;
            for (int k = 0; k < n; k++) /* decode every binary latent we got */
                if (strstr(g_kinds[k].path, "format=binary"))
                    add_kind("/decode", "application/x-aec-latent", g_kinds[k].expect.body,
                             g_kinds[k].expect.len);
        }
        atomic_store(&g_good, 0);
        atomic_store(&g_bad, 0);
        pthread_t t[CLIENTS];
        for (long i = 0; i < CLIENTS; i++)
            REQUIRE(pthread_create(&t[i], NULL, client, (void *)i) == 0, "thread");
        for (int i = 0; i < CLIENTS; i++)
            pthread_join(t[i], NULL);
        long good = atomic_load(&g_good), bad = atomic_load(&g_bad);
        CHECK(bad == 0 && good == (long)CLIENTS * ROUNDS * g_nkinds,
              "%s, configuration %d: %ld of %ld concurrent replies equal the lone reply of "
              "configuration 0 byte for byte",
              what, c, good, good + bad);
        CHECK(harness_stop(&p) == 0, "%s: exits 0", what);
    }
    for (int k = 0; k < g_nkinds; k++)
        http_resp_free(&g_kinds[k].expect);
    for (int i = 0; i < NIMG; i++)
        free(img[i]);
}

/* A wider MLP than the harness's, shaped like the reference model (batchnorm,
 * inner sizes past BLAS's blocking), random weights. */
static const char *wide_mlp(void)
{
    static char path[512];
    static const char layers[] =
        "[{\"type\":\"flatten\"},{\"type\":\"batchnorm\",\"features\":768},"
        "{\"type\":\"linear\",\"in\":768,\"out\":1536},{\"type\":\"relu\"},"
        "{\"type\":\"linear\",\"in\":1536,\"out\":384},{\"type\":\"relu\"},"
        "{\"type\":\"batchnorm\",\"features\":384},"
        "{\"type\":\"linear\",\"in\":384,\"out\":1536},{\"type\":\"relu\"},"
        "{\"type\":\"linear\",\"in\":1536,\"out\":768},"
        "{\"type\":\"sigmoid\"},{\"type\":\"unflatten\",\"shape\":[3,16,16]}]";
    aec_model *m = NULL;
    aec_error err = {{0}};
    REQUIRE(aec_model_from_spec(&m, layers, 3, HARNESS_SIDE, HARNESS_SIDE, 5, &err) == AEC_OK,
            "from_spec: %s", err.msg);
    aec_model_init_weights(m, 9);
    snprintf(path, sizeof path, "%s/wide-mlp.safetensors", test_tmpdir());
    REQUIRE(aec_model_save(m, path, &err) == AEC_OK, "save: %s", err.msg);
    aec_model_free(m);
    return path;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    run_model("conv", harness_model(1), 0);
    run_model("mlp", harness_uncalibrated_model(), 0);
    run_model("wide mlp", wide_mlp(), 0);
    run_model("codec", harness_codec_model("0.001"), 1);
    curl_global_cleanup();
    return TEST_SUMMARY();
}
