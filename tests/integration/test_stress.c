/* test_stress.c - 64 concurrent clients for AEC_STRESS_SECONDS (default 10)
 * against one aecd with default settings: a mix of every model endpoint,
 * half of the clients on keep-alive connections and half on a new
 * connection per request. Every reply must be 200 and byte-identical to
 * the reply to the same request sent alone beforehand (results do not
 * depend on batching or load); /healthz, polled throughout by its own
 * client, must always answer; the batcher must actually have batched; and
 * afterwards the results are still the same and the server exits 0. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "harness.h"

#define CLIENTS 64
#define NIMG 4

typedef struct {
    const char *path;
    const char *ctype;
    const uint8_t *body;
    size_t len;
    http_resp expect; /* the reply to this request sent alone */
} request_kind;

static request_kind g_kinds[NIMG * 6];
static int g_nkinds;
static aecd_proc g_srv;
static atomic_int g_stop;
static atomic_long g_done, g_failed;

static void add_kind(const char *path, const char *ctype, const uint8_t *body, size_t len)
{
    request_kind *k = &g_kinds[g_nkinds++];
    k->path = path;
    k->ctype = ctype;
    k->body = body;
    k->len = len;
    REQUIRE(http_post(&g_srv, path, ctype, body, len, &k->expect) == 200, "%s alone: %ld", path,
            k->expect.status);
}

typedef struct {
    char *data;
    size_t len, cap;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    sink *s = ctx;
    size_t k = size * n;
    if (s->len + k > s->cap) {
        s->cap = (s->len + k) * 2;
        s->data = realloc(s->data, s->cap);
        if (!s->data)
            return 0;
    }
    memcpy(s->data + s->len, p, k);
    s->len += k;
    return k;
}

/* One request on handle c; 1 if the reply is 200 and identical to k->expect. */
static int one_request(CURL *c, struct curl_slist *hl, const request_kind *k, sink *s)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", g_srv.base, k->path);
    s->len = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, k->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)k->len);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    int ok = rc == CURLE_OK && status == 200 && s->len == k->expect.len &&
             memcmp(s->data, k->expect.body, s->len) == 0;
    if (!ok && atomic_load(&g_failed) < 10)
        fprintf(stderr, "FAIL %s: curl %d, status %ld, %zu bytes: %.200s\n", k->path, (int)rc,
                status, s->len, s->len ? s->data : "");
    return ok;
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
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, (long)(id % 2)); /* odd: a connection each */
    struct curl_slist *hl[NIMG * 6];
    for (int k = 0; k < g_nkinds; k++) {
        char ct[128];
        snprintf(ct, sizeof ct, "Content-Type: %s", g_kinds[k].ctype);
        hl[k] = curl_slist_append(NULL, ct);
    }
    for (long i = id; !atomic_load(&g_stop); i++) {
        int k = (int)(i % g_nkinds);
        if (!one_request(c, hl[k], &g_kinds[k], &s))
            atomic_fetch_add(&g_failed, 1);
        atomic_fetch_add(&g_done, 1);
    }
    for (int k = 0; k < g_nkinds; k++)
        curl_slist_free_all(hl[k]);
    free(s.data);
    curl_easy_cleanup(c);
    return NULL;
}

typedef struct {
    long checks, failures;
    double worst;
} health_stats;

static void *health(void *arg)
{
    health_stats *h = arg;
    while (!atomic_load(&g_stop)) {
        http_resp r;
        http_opts o = {.timeout_ms = 5000};
        double t0 = harness_seconds();
        long st = http_request(&g_srv, "/healthz", &o, &r);
        double dt = harness_seconds() - t0;
        http_resp_free(&r);
        h->checks++;
        if (st != 200) {
            h->failures++;
            fprintf(stderr, "FAIL healthz during the stress: status %ld\n", st);
        }
        if (dt > h->worst)
            h->worst = dt;
        usleep(50000);
    }
    return NULL;
}

static double metric(const char *name)
{
    http_resp r;
    double v = -1;
    if (http_get(&g_srv, "/metrics", &r) == 200) {
        const char *l = strstr((const char *)r.body, name);
        while (l && (l != (const char *)r.body && l[-1] != '\n'))
            l = strstr(l + 1, name);
        if (l)
            v = strtod(l + strlen(name), NULL);
    }
    http_resp_free(&r);
    return v;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *env = getenv("AEC_STRESS_SECONDS");
    int seconds = env && atoi(env) > 0 ? atoi(env) : 10;
    const char *model = harness_model(1);
    harness_start(&g_srv, model, NULL, NULL);

    uint8_t *imgs[NIMG];
    size_t lens[NIMG];
    http_resp lat_json[NIMG], lat_bin[NIMG];
    for (int i = 0; i < NIMG; i++) {
        imgs[i] =
            harness_png(HARNESS_SIDE + 8 * i, HARNESS_SIDE + 4 * i, 900 + (uint64_t)i, &lens[i]);
        REQUIRE(http_post(&g_srv, "/encode", "image/png", imgs[i], lens[i], &lat_json[i]) == 200,
                "encode");
        REQUIRE(http_post(&g_srv, "/encode?format=binary&dtype=f16", "image/png", imgs[i], lens[i],
                          &lat_bin[i]) == 200,
                "encode binary");
        add_kind("/encode", "image/png", imgs[i], lens[i]);
        add_kind("/encode?format=binary&dtype=u8", "image/png", imgs[i], lens[i]);
        add_kind("/anomaly", "image/png", imgs[i], lens[i]);
        add_kind("/anomaly?heatmap=1", "application/octet-stream", imgs[i], lens[i]);
        add_kind("/decode", "application/json", lat_json[i].body, lat_json[i].len);
        add_kind("/decode?width=32", "application/x-aec-latent", lat_bin[i].body, lat_bin[i].len);
    }

    pthread_t th[CLIENTS], hth;
    health_stats hs = {0};
    pthread_create(&hth, NULL, health, &hs);
    for (long i = 0; i < CLIENTS; i++)
        REQUIRE(pthread_create(&th[i], NULL, client, (void *)i) == 0, "thread");
    sleep((unsigned)seconds);
    atomic_store(&g_stop, 1);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    pthread_join(hth, NULL);

    long done = atomic_load(&g_done), failed = atomic_load(&g_failed);
    fprintf(stderr,
            "stress: %d clients, %d s: %ld requests, %ld failed; %ld health checks, %ld failed,"
            " slowest %.3f s\n",
            CLIENTS, seconds, done, failed, hs.checks, hs.failures, hs.worst);
    CHECK(done > CLIENTS, "requests were made (%ld)", done);
    CHECK(failed == 0, "zero failed or wrong replies (%ld)", failed);
    CHECK(hs.checks > 0 && hs.failures == 0, "/healthz answered throughout (%ld of %ld failed)",
          hs.failures, hs.checks);

    double sum = metric("aec_batch_size_sum "), count = metric("aec_batch_size_count ");
    fprintf(stderr, "stress: %.0f jobs in %.0f batches (%.2f per batch)\n", sum, count,
            count > 0 ? sum / count : 0);
    CHECK(count > 0 && sum > count, "the batcher formed batches of more than one job");
    /* a client has its whole reply a moment before the server's completion
     * callback runs: allow a few seconds for the gauge to settle */
    double in_flight = -1;
    for (int i = 0; i < 100 && (in_flight = metric("aec_in_flight_requests ")) != 1; i++)
        usleep(50000);
    CHECK(in_flight == 1, "nothing left in flight but this scrape (%g)", in_flight);
    CHECK(metric("aec_queue_depth ") == 0, "the model queue is empty");

    /* still correct after the storm */
    int still = 0;
    for (int k = 0; k < g_nkinds; k++) {
        http_resp r;
        http_post(&g_srv, g_kinds[k].path, g_kinds[k].ctype, g_kinds[k].body, g_kinds[k].len, &r);
        still += r.status == 200 && r.len == g_kinds[k].expect.len &&
                 memcmp(r.body, g_kinds[k].expect.body, r.len) == 0;
        http_resp_free(&r);
    }
    CHECK(still == g_nkinds, "results unchanged after the stress (%d of %d)", still, g_nkinds);
    CHECK(harness_stop(&g_srv) == 0, "exit 0 after the stress");
    char *log = harness_log(&g_srv);
    CHECK(!strstr(log, "status=500") && !strstr(log, "status=503"), "no 500 or 503 in the log");
    free(log);

    for (int k = 0; k < g_nkinds; k++)
        http_resp_free(&g_kinds[k].expect);
    for (int i = 0; i < NIMG; i++) {
        free(imgs[i]);
        http_resp_free(&lat_json[i]);
        http_resp_free(&lat_bin[i]);
    }
    curl_global_cleanup();
    return TEST_SUMMARY();
}
