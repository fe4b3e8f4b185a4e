/* test_batching.c - the dynamic batcher's policy, seen through /metrics.
 *
 * The batcher waits for more jobs only while requests of the batch's kind
 * are upstream of it (admitted to the workers, job not yet submitted: the
 * aec_pipeline_requests gauge), for at most --batch-timeout-us. Checked here:
 *   - requests sent one after another each run as a batch of one, and do
 *     not wait out the batch timeout;
 *   - requests that fail after admission (bad image, bad latent, oversized
 *     image, a full queue) leave the upstream count exactly as it was: the
 *     gauge returns to 0 and a lone request still runs at once;
 *   - 32 concurrent clients are batched together (some batch > 1 job),
 *     also with two kinds of job at once.
 *
 * No latency is measured. The servers run with --batch-timeout-us 10 s and
 * a lone request is given half of that: a server that waits out its timer
 * (or waits for a request counted upstream that never comes) fails, one
 * that runs the job at once passes with a margin of thousands, whatever
 * the machine's load. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define LONG_TIMEOUT_US "10000000" /* --batch-timeout-us: the largest allowed (10 s) */
#define LONE_LIMIT_MS 5000L        /* what a lone request is given: half of that */
#define CLIENTS 32

/* ---- metrics --------------------------------------------------------------------------------- */

typedef struct {
    double batches, jobs, single; /* aec_batch_size _count, _sum, bucket le="1" */
    double waits, waits_short;    /* aec_queue_wait_seconds _count, bucket le="2.5" */
    double pipeline;              /* aec_pipeline_requests */
} batch_stats;

/* The value of the sample named exactly name (labels included), or -1. */
static double sample(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, name, n) == 0 && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    return -1;
}

static batch_stats scrape(const aecd_proc *p)
{
    batch_stats s = {-1, -1, -1, -1, -1, -1};
    http_resp r;
    if (http_get(p, "/metrics", &r) == 200) {
        const char *t = (const char *)r.body;
        s.batches = sample(t, "aec_batch_size_count");
        s.jobs = sample(t, "aec_batch_size_sum");
        s.single = sample(t, "aec_batch_size_bucket{le=\"1\"}");
        s.waits = sample(t, "aec_queue_wait_seconds_count");
        s.waits_short = sample(t, "aec_queue_wait_seconds_bucket{le=\"2.5\"}");
        s.pipeline = sample(t, "aec_pipeline_requests");
        CHECK(strstr(t, "# HELP aec_pipeline_requests ") &&
                  strstr(t, "# TYPE aec_pipeline_requests gauge\n"),
              "aec_pipeline_requests has HELP and TYPE gauge");
    }
    http_resp_free(&r);
    REQUIRE(s.batches >= 0 && s.jobs >= 0 && s.single >= 0 && s.pipeline >= 0,
            "/metrics has the batch histogram and aec_pipeline_requests");
    return s;
}

/* aec_pipeline_requests once every reply is in: the count is decremented
 * before the reply is built, so it is already 0 unless something leaked. */
static void check_pipeline_empty(const aecd_proc *p, const char *after)
{
    batch_stats s = scrape(p);
    CHECK(s.pipeline == 0, "after %s: no request left upstream of the batcher (%g)", after,
          s.pipeline);
}

/* ---- the requests ---------------------------------------------------------------------------- */

typedef struct {
    const char *path, *ctype;
    const void *body;
    size_t len;
} req_kind;

static long send_alone(const aecd_proc *p, const req_kind *k, http_resp *r)
{
    http_opts o = {
        .content_type = k->ctype, .body = k->body, .len = k->len, .timeout_ms = LONE_LIMIT_MS};
    return http_request(p, k->path, &o, r);
}

/* Sends each kind `rounds` times, one request at a time: each must be 200
 * within LONE_LIMIT_MS and run as a batch of its own. */
static void check_one_at_a_time(const aecd_proc *p, const req_kind *kinds, int nk, int rounds,
                                const char *what)
{
    batch_stats a = scrape(p);
    int ok = 0;
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < nk; k++) {
            http_resp resp;
            long st = send_alone(p, &kinds[k], &resp);
            ok += st == 200;
            if (st != 200)
                fprintf(stderr, "%s: %s alone: status %ld (curl %d)\n", what, kinds[k].path, st,
                        resp.curl_code);
            http_resp_free(&resp);
        }
    batch_stats b = scrape(p);
    int n = rounds * nk;
    CHECK(ok == n, "%s: %d of %d lone requests answered 200, none waited out the timeout", what, ok,
          n);
    CHECK(b.batches - a.batches == n && b.jobs - a.jobs == n && b.single - a.single == n,
          "%s: every lone request ran as a batch of one (%g jobs in %g batches, %g of one)", what,
          b.jobs - a.jobs, b.batches - a.batches, b.single - a.single);
    CHECK(b.waits - a.waits == n && b.waits_short - a.waits_short == n,
          "%s: no lone job waited anywhere near the batch timeout", what);
    CHECK(b.pipeline == 0, "%s: nothing left upstream (%g)", what, b.pipeline);
}

/* ---- concurrent clients ---------------------------------------------------------------------- */

typedef struct {
    const aecd_proc *p;
    const req_kind *k;
    int n;
    http_resp *r;
} burst;

static void *run_burst(void *arg)
{
    burst *b = arg;
    http_opts o = {.content_type = b->k->ctype, .body = b->k->body, .len = b->k->len};
    http_parallel(b->p, b->k->path, &o, b->n, b->r);
    return NULL;
}

/* Rounds of CLIENTS identical requests at once; with `other`, half of each
 * round is of that kind, sent at the same time. */
static void check_concurrent(const aecd_proc *p, const req_kind *k, const req_kind *other,
                             int rounds, const char *what)
{
    batch_stats a = scrape(p);
    http_resp r[CLIENTS];
    int ok = 0;
    for (int round = 0; round < rounds; round++) {
        int half = other ? CLIENTS / 2 : CLIENTS;
        burst b1 = {p, k, half, r}, b2 = {p, other, CLIENTS - half, r + half};
        pthread_t th;
        int threaded = other && pthread_create(&th, NULL, run_burst, &b2) == 0;
        REQUIRE(!other || threaded, "thread");
        run_burst(&b1);
        if (threaded)
            pthread_join(th, NULL);
        for (int i = 0; i < CLIENTS; i++) {
            ok += r[i].status == 200;
            if (r[i].status != 200)
                fprintf(stderr, "%s: status %ld (curl %d)\n", what, r[i].status, r[i].curl_code);
            http_resp_free(&r[i]);
        }
    }
    batch_stats b = scrape(p);
    double jobs = b.jobs - a.jobs, batches = b.batches - a.batches;
    fprintf(stderr, "%s: %.0f jobs in %.0f batches (%.2f per batch)\n", what, jobs, batches,
            batches > 0 ? jobs / batches : 0);
    CHECK(ok == rounds * CLIENTS, "%s: %d of %d concurrent requests answered 200", what, ok,
          rounds * CLIENTS);
    CHECK(jobs == rounds * CLIENTS, "%s: every request ran once (%g jobs)", what, jobs);
    CHECK(batches > 0 && jobs > batches,
          "%s: %d concurrent clients were batched (some batch has more than one job)", what,
          CLIENTS);
    CHECK(b.pipeline == 0, "%s: nothing left upstream (%g)", what, b.pipeline);
}

/* ---- failures after admission ---------------------------------------------------------------- */

/* Every one is refused by the worker's prepare, after the request was
 * counted upstream, or by the I/O thread before it was. */
static void check_failures(const aecd_proc *p, const req_kind *lone, int nlone)
{
    static const char garbage[] = "this is not an image, nor a latent";
    static const char boundary_body[] = "--XyZ\r\nContent-Disposition: form-data; name=\"other\""
                                        "\r\n\r\nhello\r\n--XyZ--\r\n";
    static const char short_latent[] = "{\"latent\": [1, 2, 3]}";
    static const char bad_json[] = "{\"latent\": [1, 2,";
    size_t huge_len;
    uint8_t *huge = harness_png_header_only(30000, 30000, &huge_len); /* > --max-pixels */
    const struct {
        const char *path, *ctype;
        const void *body;
        size_t len;
        long status;
    } bad[] = {
        {"/encode", "image/png", garbage, sizeof garbage - 1, 415},
        {"/anomaly", "application/octet-stream", garbage, sizeof garbage - 1, 415},
        {"/encode", "image/png", huge, huge_len, 413},
        {"/anomaly", "image/png", huge, huge_len, 413},
        {"/encode", "multipart/form-data; boundary=XyZ", boundary_body, sizeof boundary_body - 1,
         400},
        {"/decode", "application/json", short_latent, sizeof short_latent - 1, 422},
        {"/decode", "application/json", bad_json, sizeof bad_json - 1, 400},
        {"/decode", "application/x-aec-latent", garbage, sizeof garbage - 1, 422},
        /* refused from the headers, never admitted */
        {"/encode", "text/plain", garbage, sizeof garbage - 1, 415},
        {"/decode", "application/json", "", 0, 400},
    };
    const int nbad = (int)(sizeof bad / sizeof bad[0]);
    batch_stats a = scrape(p);
    int as_expected = 0, total = 0;
    for (int i = 0; i < nbad; i++) {
        http_resp r;
        http_opts o = {.content_type = bad[i].ctype, .body = bad[i].body, .len = bad[i].len};
        long st = http_request(p, bad[i].path, &o, &r);
        as_expected += st == bad[i].status;
        total++;
        if (st != bad[i].status)
            fprintf(stderr, "failure %d: %s %s: status %ld, expected %ld: %s\n", i, bad[i].path,
                    bad[i].ctype, st, bad[i].status, r.body ? (const char *)r.body : "");
        http_resp_free(&r);
        /* and the same, CLIENTS/4 at once */
        enum { N = CLIENTS / 4 };
        http_resp rs[N];
        http_parallel(p, bad[i].path, &o, N, rs);
        for (int j = 0; j < N; j++) {
            as_expected += rs[j].status == bad[i].status;
            total++;
            http_resp_free(&rs[j]);
        }
    }
    free(huge);
    batch_stats b = scrape(p);
    CHECK(as_expected == total, "failing requests get their error (%d of %d)", as_expected, total);
    CHECK(b.batches == a.batches && b.jobs == a.jobs, "no failing request reached the model");
    check_pipeline_empty(p, "failing requests");
    /* a leaked count would make a lone job of that kind wait the full 10 s */
    check_one_at_a_time(p, lone, nlone, 1, "after failures");
}

/* ---- overload: a full worker queue and a full model queue ------------------------------------ */

static void check_overload(const char *model, const req_kind *lone, int nlone)
{
    aecd_proc p;
    const char *args[] = {"--threads",     "1", "--queue-size", "1", "--batch-timeout-us",
                          LONG_TIMEOUT_US, NULL};
    harness_start(&p, model, args, NULL);
    const req_kind *k = &lone[0];
    http_opts o = {.content_type = k->ctype, .body = k->body, .len = k->len};
    int ok = 0, overloaded = 0, other = 0;
    for (int round = 0; round < 3; round++) {
        http_resp r[CLIENTS];
        http_parallel(&p, k->path, &o, CLIENTS, r);
        for (int i = 0; i < CLIENTS; i++) {
            if (r[i].status == 200)
                ok++;
            else if (r[i].status == 503 && check_error(&r[i], 503, "overloaded", "overload"))
                overloaded++;
            else
                other++;
            http_resp_free(&r[i]);
        }
    }
    fprintf(stderr, "overload: %d ok, %d overloaded\n", ok, overloaded);
    CHECK(other == 0 && ok > 0, "overload: every request answered 200 or 503 (%d, %d, %d other)",
          ok, overloaded, other);
    CHECK(overloaded > 0, "overload: a 1-slot queue overflows under %d clients", CLIENTS);
    check_pipeline_empty(&p, "overload");
    check_one_at_a_time(&p, lone, nlone, 2, "after overload");
    CHECK(harness_stop(&p) == 0, "overload server exits 0");
    char *log = harness_log(&p);
    CHECK(!strstr(log, "upstream of the batcher") && !strstr(log, "still suspended"),
          "no request was left counted or suspended");
    free(log);
}

int main(void)
{
    const char *model = harness_model(1);
    size_t png_len;
    uint8_t *png = harness_png(HARNESS_SIDE, HARNESS_SIDE, 31, &png_len);

    aecd_proc p;
    const char *args[] = {"--batch-timeout-us", LONG_TIMEOUT_US, NULL};
    harness_start(&p, model, args, NULL);
    http_resp lat;
    REQUIRE(http_post(&p, "/encode", "image/png", png, png_len, &lat) == 200, "encode: %ld",
            lat.status);
    req_kind kinds[] = {
        {"/encode", "image/png", png, png_len},
        {"/decode", "application/json", lat.body, lat.len},
        {"/anomaly", "image/png", png, png_len},
    };
    const int nk = (int)(sizeof kinds / sizeof kinds[0]);

    check_one_at_a_time(&p, kinds, nk, 4, "one at a time");
    check_concurrent(&p, &kinds[0], NULL, 4, "encode x32");
    check_concurrent(&p, &kinds[0], &kinds[1], 4, "encode x16 + decode x16");
    check_failures(&p, kinds, nk);
    check_one_at_a_time(&p, kinds, nk, 2, "one at a time, after the bursts");
    CHECK(harness_stop(&p) == 0, "SIGTERM: exit status 0");
    char *log = harness_log(&p);
    CHECK(!strstr(log, "upstream of the batcher") && !strstr(log, "still suspended"),
          "no request was left counted or suspended");
    free(log);

    check_overload(model, kinds, nk);

    http_resp_free(&lat);
    free(png);
    return TEST_SUMMARY();
}
