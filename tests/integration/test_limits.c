/* test_limits.c - the daemon as an operator sees it: clients that stall
 * (closed after --timeout while others are served), overload (503
 * overloaded with Retry-After, never a hang), --max-batch 1, graceful
 * shutdown with requests in flight, --max-body / --max-pixels, startup
 * failures (port in use, corrupt or missing model, bad options: exit 1 or
 * 2 with a message), environment vs command line, and --check-health. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "harness.h"

/* A PNG that is cheap to send but slow to decode: a flat w x w image. */
static uint8_t *flat_png(int w, size_t *len)
{
    uint8_t *rgb = malloc((size_t)w * w * 3);
    REQUIRE(rgb, "oom");
    memset(rgb, 0x80, (size_t)w * w * 3);
    uint8_t *png = harness_png_from_rgb(rgb, w, w, len);
    free(rgb);
    return png;
}

/* ---- stalled clients ------------------------------------------------------------------ */

/* Waits until the server closes fd; returns seconds waited, or -1 if it
 * stayed open for max_s. */
static double wait_closed(int fd, double max_s)
{
    struct timeval tv = {(long)max_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    double t0 = harness_seconds();
    char buf[256];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
            return harness_seconds() - t0;
        if (r < 0)
            return -1; /* the receive timeout: still open */
        /* a reply (e.g. 408) may come first; keep reading until close */
    }
}

static void send_str(int fd, const char *s)
{
    REQUIRE(send(fd, s, strlen(s), MSG_NOSIGNAL) == (ssize_t)strlen(s), "send");
}

static void test_stalled_clients(const char *model)
{
    aecd_proc p;
    const char *args[] = {"--timeout", "2", NULL};
    harness_start(&p, model, args, NULL);

    int body = raw_connect(p.port), head = raw_connect(p.port);
    REQUIRE(body >= 0 && head >= 0, "connect");
    send_str(body, "POST /encode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                   "Content-Length: 1000\r\n\r\n0123456789");
    send_str(head, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    int crowd[40];
    for (int i = 0; i < 40; i++) {
        crowd[i] = raw_connect(p.port);
        if (crowd[i] >= 0)
            send_str(crowd[i], "POST /anomaly HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\nab");
    }

    /* others are served meanwhile */
    http_resp r;
    CHECK(http_get(&p, "/healthz", &r) == 200, "healthz while clients stall");
    http_resp_free(&r);
    size_t n;
    uint8_t *png = harness_png(HARNESS_SIDE, HARNESS_SIDE, 5, &n);
    CHECK(http_post(&p, "/encode", "image/png", png, n, &r) == 200, "encode while clients stall");
    http_resp_free(&r);
    free(png);

    double t1 = wait_closed(body, 20), t2 = wait_closed(head, 20);
    CHECK(t1 >= 0, "a client stalled mid-body is disconnected after --timeout (%.1f s)", t1);
    CHECK(t2 >= 0, "a client stalled mid-headers is disconnected after --timeout (%.1f s)", t2);
    close(body);
    close(head);
    int closed = 0;
    for (int i = 0; i < 40; i++)
        if (crowd[i] >= 0) {
            closed += wait_closed(crowd[i], 20) >= 0;
            close(crowd[i]);
        }
    CHECK(closed == 40, "all 40 stalled clients disconnected (%d)", closed);
    CHECK(http_get(&p, "/healthz", &r) == 200, "healthz after the stalls");
    http_resp_free(&r);

    /* an idle keep-alive connection is closed after --timeout too */
    int idle = raw_connect(p.port);
    send_str(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(wait_closed(idle, 20) >= 0, "idle keep-alive connection closed after --timeout");
    close(idle);

    CHECK(harness_stop(&p) == 0, "exit 0");
    char *log = harness_log(&p);
    CHECK(strstr(log, "status=408") && strstr(log, "end=timeout"),
          "timed-out requests are logged as 408 end=timeout");
    free(log);
}

/* ---- overload and --max-batch 1 ---------------------------------------------------------- */

static double metric(const aecd_proc *p, const char *name)
{
    http_resp r;
    double v = -1;
    if (http_get(p, "/metrics", &r) == 200) {
        size_t nl = strlen(name);
        for (const char *l = (const char *)r.body; l; l = strchr(l, '\n')) {
            if (*l == '\n')
                l++;
            if (strncmp(l, name, nl) == 0 && l[nl] == ' ') {
                v = strtod(l + nl + 1, NULL);
                break;
            }
        }
    }
    http_resp_free(&r);
    return v;
}

static void test_overload(const char *model)
{
    aecd_proc p;
    const char *args[] = {
        "--threads", "1", "--queue-size", "1", "--max-batch", "1", "--batch-timeout-us", "0", NULL};
    harness_start(&p, model, args, NULL);
    size_t n;
    uint8_t *png = flat_png(1500, &n);
    enum { N = 24 };
    http_resp r[N];
    http_opts o = {.content_type = "image/png", .body = png, .len = n};
    http_parallel(&p, "/encode", &o, N, r);
    int ok = 0, overloaded = 0, other = 0;
    for (int i = 0; i < N; i++) {
        char ra[16];
        if (r[i].status == 200) {
            ok++;
        } else if (r[i].status == 503) {
            overloaded++;
            check_error(&r[i], 503, "overloaded", "queue full");
            CHECK(http_header(&r[i], "Retry-After", ra, sizeof ra) && strcmp(ra, "1") == 0,
                  "Retry-After: 1");
        } else {
            other++;
            fprintf(stderr, "unexpected status %ld (curl %d)\n", r[i].status, r[i].curl_code);
        }
        http_resp_free(&r[i]);
    }
    CHECK(other == 0 && ok >= 1 && ok + overloaded == N,
          "every request answered: %d ok, %d overloaded, %d other", ok, overloaded, other);
    CHECK(overloaded >= 1, "a 1-slot queue overflows under %d concurrent requests", N);
    fprintf(stderr, "overload: %d ok, %d overloaded\n", ok, overloaded);
    double bs = metric(&p, "aec_batch_size_sum"), bc = metric(&p, "aec_batch_size_count");
    CHECK(bc >= ok && bs == bc, "--max-batch 1: every batch has one job (%g jobs, %g batches)", bs,
          bc);
    free(png);
    CHECK(harness_stop(&p) == 0, "exit 0");
}

/* ---- graceful shutdown --------------------------------------------------------------------- */

typedef struct {
    const aecd_proc *p;
    const uint8_t *png;
    size_t len;
    int n;
    http_resp *r;
} burst;

static void *run_burst(void *arg)
{
    burst *b = arg;
    http_opts o = {.content_type = "image/png", .body = b->png, .len = b->len};
    http_parallel(b->p, "/anomaly", &o, b->n, b->r);
    return NULL;
}

static void test_drain(const char *model)
{
    aecd_proc p;
    const char *args[] = {"--threads", "1", "--max-batch", "1", NULL};
    harness_start(&p, model, args, NULL);

    /* a keep-alive connection opened before the signal */
    CURL *ka = curl_easy_init();
    char url[128];
    long code = 0;
    snprintf(url, sizeof url, "%s/healthz", p.base);
    curl_easy_setopt(ka, CURLOPT_URL, url);
    curl_easy_setopt(ka, CURLOPT_NOSIGNAL, 1L);
    FILE *devnull = fopen("/dev/null", "w");
    curl_easy_setopt(ka, CURLOPT_WRITEDATA, devnull);
    CHECK(curl_easy_perform(ka) == CURLE_OK, "keep-alive healthz");

    size_t n;
    uint8_t *png = flat_png(1500, &n);
    enum { N = 6 };
    http_resp r[N];
    burst b = {&p, png, n, N, r};
    pthread_t th;
    pthread_create(&th, NULL, run_burst, &b);
    double end = harness_seconds() + 60;
    while (metric(&p, "aec_in_flight_requests") < N + 1 && harness_seconds() < end) {
    }
    kill(p.pid, SIGTERM);

    /* draining: readyz on the open connection says 503 */
    snprintf(url, sizeof url, "%s/readyz", p.base);
    curl_easy_setopt(ka, CURLOPT_URL, url);
    int saw_503 = 0;
    double until = harness_seconds() + 30; /* the signal may take a while to land under load */
    while (!saw_503 && harness_seconds() < until) {
        if (curl_easy_perform(ka) != CURLE_OK)
            break;
        curl_easy_getinfo(ka, CURLINFO_RESPONSE_CODE, &code);
        saw_503 = code == 503;
        if (!saw_503)
            usleep(5000);
    }
    CHECK(saw_503, "/readyz answers 503 while draining");
    /* A connection opened now is never served: refused, or (libmicrohttpd
     * keeps the quiesced socket open until it stops, so the kernel may still
     * complete the handshake) closed without a reply when aecd exits. */
    int fd = raw_connect(p.port), served = 0;
    if (fd >= 0) {
        struct timeval tv = {60, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1)) {
            char buf[64];
            served = recv(fd, buf, sizeof buf, 0) > 0;
        }
        close(fd);
    }
    CHECK(!served, "a connection opened while draining is not served");
    curl_easy_cleanup(ka);
    fclose(devnull);

    pthread_join(th, NULL);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        ok += r[i].status == 200;
        http_resp_free(&r[i]);
    }
    CHECK(ok == N, "all %d in-flight requests completed with 200 (%d)", N, ok);
    CHECK(harness_stop(&p) == 0, "drained shutdown exits 0");
    char *log = harness_log(&p);
    const char *d = strstr(log, "draining ");
    long inflight = d ? strtol(d + 9, NULL, 10) : -1;
    CHECK(inflight >= N, "SIGTERM arrived with the requests in flight (%ld)", inflight);
    CHECK(strstr(log, "aecd stopped"), "shutdown is logged");
    free(log);
    free(png);
}

/* ---- limits from options --------------------------------------------------------------------- */

static void test_option_limits(const char *model)
{
    aecd_proc p;
    const char *args[] = {"--max-body", "1K", "--max-pixels", "100", NULL};
    harness_start(&p, model, args, NULL);
    http_resp r;
    size_t n;
    uint8_t *png = harness_png(64, 64, 1, &n);
    REQUIRE(n > 1024, "test image larger than 1K");
    http_post(&p, "/encode", "image/png", png, n, &r);
    check_error(&r, 413, "payload_too_large", "--max-body 1K");
    http_resp_free(&r);
    free(png);
    png = harness_png(HARNESS_SIDE, HARNESS_SIDE, 1, &n); /* 256 pixels > 100 */
    REQUIRE(n <= 1024, "small image under 1K (%zu)", n);
    http_post(&p, "/encode", "image/png", png, n, &r);
    check_error(&r, 413, "image_too_large", "--max-pixels 100");
    http_resp_free(&r);
    free(png);
    http_get(&p, "/v1/model", &r);
    cJSON *j = http_json(&r);
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(j, "limits");
    CHECK(cJSON_GetObjectItemCaseSensitive(lim, "max_body")->valuedouble == 1024 &&
              cJSON_GetObjectItemCaseSensitive(lim, "max_pixels")->valuedouble == 100,
          "limits reflect the options");
    cJSON_Delete(j);
    http_resp_free(&r);
    CHECK(harness_stop(&p) == 0, "exit 0");
}

static void test_max_buffered(const char *model)
{
    aecd_proc p;
    const char *args[] = {"--max-buffered", "100K", NULL};
    harness_start(&p, model, args, NULL);
    size_t big = 300u << 10;
    uint8_t *data = malloc(big);
    uint64_t s = 3;
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)test_rand_u64(&s);
    http_resp r;
    http_post(&p, "/encode", "image/png", data, big, &r);
    check_error(&r, 503, "overloaded", "a body beyond --max-buffered");
    http_resp_free(&r);
    free(data);
    size_t n;
    uint8_t *png = harness_png(HARNESS_SIDE, HARNESS_SIDE, 1, &n);
    CHECK(http_post(&p, "/encode", "image/png", png, n, &r) == 200, "a small body still fits");
    http_resp_free(&r);
    free(png);
    CHECK(metric(&p, "aec_buffered_bytes") == 0, "every buffered byte is given back");
    CHECK(harness_stop(&p) == 0, "exit 0");
}

static int model_max_batch(const aecd_proc *p)
{
    http_resp r;
    http_get(p, "/v1/model", &r);
    cJSON *j = http_json(&r);
    const cJSON *mb = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "limits"), "max_batch");
    int v = cJSON_IsNumber(mb) ? mb->valueint : -1;
    cJSON_Delete(j);
    http_resp_free(&r);
    return v;
}

static void test_env_vs_argv(const char *model)
{
    aecd_proc p;
    const char *env[] = {"AEC_MAX_BATCH=3", NULL};
    harness_start(&p, model, NULL, env);
    CHECK(model_max_batch(&p) == 3, "AEC_MAX_BATCH applies");
    CHECK(harness_stop(&p) == 0, "exit 0");
    const char *args[] = {"--max-batch", "5", NULL};
    harness_start(&p, model, args, env);
    CHECK(model_max_batch(&p) == 5, "the command line beats the environment");
    CHECK(harness_stop(&p) == 0, "exit 0");
}

/* ---- startup failures
 * ------------------------------------------------------------------------------ */

static void expect_exit(const char *const *args, const char *const *env, int status,
                        const char *needle, const char *what)
{
    char out[8192];
    int st = harness_run(args, env, 60, out, sizeof out);
    CHECK(st == status, "%s: exit %d, expected %d; output: %s", what, st, status, out);
    CHECK(!needle || strstr(out, needle), "%s: output mentions '%s': %s", what, needle, out);
}

static void test_startup_failures(const char *model)
{
    /* port in use */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 1) == 0, "bind");
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(sa.sin_port));
    const char *inuse[] = {"--model", model, "--host", "127.0.0.1", "--port", port, NULL};
    expect_exit(inuse, NULL, 1, "Address already in use", "port in use");
    close(fd);

    /* corrupt, truncated and missing models */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/corrupt.safetensors", harness_data_dir());
    uint8_t junk[3000];
    uint64_t s = 7;
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)test_rand_u64(&s);
    REQUIRE(test_write_file(bad, junk, sizeof junk) == 0, "write");
    const char *corrupt[] = {"--model", bad, "--port", "0", NULL};
    expect_exit(corrupt, NULL, 1, "corrupt.safetensors", "corrupt model");

    size_t len;
    uint8_t *real = test_read_file(model, &len);
    REQUIRE(real, "read model");
    char cut[600];
    snprintf(cut, sizeof cut, "%s/truncated.safetensors", harness_data_dir());
    REQUIRE(test_write_file(cut, real, len / 2) == 0, "write");
    free(real);
    const char *trunc[] = {"--model", cut, "--port", "0", NULL};
    expect_exit(trunc, NULL, 1, "truncated.safetensors", "truncated model");
    const char *missing[] = {"--model", "/nonexistent/model.safetensors", "--port", "0", NULL};
    expect_exit(missing, NULL, 1, "/nonexistent/model.safetensors", "missing model");

    /* bad options: exit 2, naming the option */
    struct {
        const char *a[4];
        const char *needle;
    } bad_opts[] = {
        {{"--port", "abc"}, "--port"},
        {{"--port", "70000"}, "--port"},
        {{"--max-body", "12X"}, "--max-body"},
        {{"--max-body", "0"}, "--max-body"},
        {{"--threads", "0"}, "--threads"},
        {{"--timeout", "-1"}, "--timeout"},
        {{"--log-level", "loud"}, "--log-level"},
        {{"--log-format", "xml"}, "--log-format"},
        {{"--batch-timeout-us", "1.5"}, "--batch-timeout-us"},
        {{"--max-batch", "99999"}, "--max-batch"},
        {{"--frobnicate"}, "frobnicate"},
        {{"stray-argument"}, "stray-argument"},
        {{"--api-key", "a b"}, "API key"},
        {{"--api-key", "k", "--api-key-file", "/etc/hostname"}, "not both"},
        {{"--api-key-file", "/nonexistent/key"}, "/nonexistent/key"},
    };
    for (size_t i = 0; i < sizeof bad_opts / sizeof bad_opts[0]; i++) {
        const char *args[8] = {"--model", model};
        int k = 2;
        for (int j = 0; j < 4 && bad_opts[i].a[j]; j++)
            args[k++] = bad_opts[i].a[j];
        args[k] = NULL;
        expect_exit(args, NULL, 2, bad_opts[i].needle, bad_opts[i].a[0]);
    }
    const char *plain[] = {"--model", model, NULL};
    const char *env_port[] = {"AEC_PORT=abc", NULL};
    expect_exit(plain, env_port, 2, "AEC_PORT", "AEC_PORT=abc");
    const char *env_body[] = {"AEC_MAX_BODY=1X", NULL};
    expect_exit(plain, env_body, 2, "AEC_MAX_BODY", "AEC_MAX_BODY=1X");

    const char *help[] = {"--help", NULL};
    expect_exit(help, NULL, 0, "AEC_MAX_BATCH", "--help");
    const char *version[] = {"--version", NULL};
    expect_exit(version, NULL, 0, "aecd ", "--version");
}

static void test_check_health(const char *model)
{
    aecd_proc p;
    harness_start(&p, model, NULL, NULL);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", p.port);
    const char *ok[] = {"--check-health", url, NULL};
    expect_exit(ok, NULL, 0, NULL, "--check-health on a healthy server");
    snprintf(url, sizeof url, "http://localhost:%d/readyz", p.port);
    expect_exit(ok, NULL, 0, NULL, "--check-health localhost /readyz");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/nope", p.port);
    expect_exit(ok, NULL, 1, "404", "--check-health on a 404");
    CHECK(harness_stop(&p) == 0, "exit 0");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", p.port);
    expect_exit(ok, NULL, 1, NULL, "--check-health on a stopped server");
    const char *remote[] = {"--check-health", "http://192.0.2.1/healthz", NULL};
    expect_exit(remote, NULL, 2, "loopback", "--check-health refuses non-loopback");
    const char *bad[] = {"--check-health", "ftp://127.0.0.1/", NULL};
    expect_exit(bad, NULL, 2, NULL, "--check-health with a bad URL");
}

int main(void)
{
    const char *model = harness_model(1);
    test_startup_failures(model);
    test_env_vs_argv(model);
    test_option_limits(model);
    test_max_buffered(model);
    test_check_health(model);
    test_stalled_clients(model);
    test_overload(model);
    test_drain(model);
    return TEST_SUMMARY();
}
