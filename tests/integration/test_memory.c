/* test_memory.c - --max-memory bounds what in-flight work holds
 * (src/server/budget.h), seen from a client:
 *   - an upload whose decoding can never fit is refused at once with 413
 *     image_too_large, naming the need and the limit;
 *   - uploads that fit one at a time all succeed when sent together (they
 *     wait for each other instead of failing), and the most ever reserved
 *     at once (aec_memory_reserved_peak_bytes) stays within the limit and
 *     is at least one upload's need;
 *   - /healthz answers while they run, and nothing stays reserved after. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define LIMIT_MIB 48
#define N 6

/* A metric's value from /metrics text, or -1. */
static double metric(const aecd_proc *p, const char *name)
{
    http_resp r;
    http_get(p, "/metrics", &r);
    double v = -1;
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *at = r.body ? strstr((const char *)r.body, key) : NULL;
    if (at)
        v = strtod(at + strlen(key), NULL);
    http_resp_free(&r);
    return v;
}

int main(void)
{
    const char *args[] = {"--max-memory", "48M", "--threads", "4", NULL};
    aecd_proc p;
    harness_start(&p, harness_model(1), args, NULL);
    CHECK(metric(&p, "aec_memory_limit_bytes") == (double)(LIMIT_MIB << 20),
          "aec_memory_limit_bytes is --max-memory");

    /* 2400 x 2400: about 190 MiB to decode, more than the whole budget */
    size_t bn;
    uint8_t *big = harness_png(2400, 2400, 5, &bn);
    http_resp r;
    http_post(&p, "/encode", "image/png", big, bn, &r);
    check_error(&r, 413, "image_too_large", "an upload that can never fit");
    CHECK(r.body && strstr((char *)r.body, "--max-memory is 48 MiB"),
          "the message names the limit: %s", r.body ? (char *)r.body : "");
    http_resp_free(&r);
    free(big);

    /* 1000 x 1000: about 40 MiB each, so one at a time */
    size_t n;
    uint8_t *png = harness_png(1000, 1000, 6, &n);
    http_opts o = {.content_type = "image/png", .body = png, .len = n};
    http_resp par[N];
    http_parallel(&p, "/encode", &o, N, par);
    http_resp hz;
    long hs = http_get(&p, "/healthz", &hz);
    http_resp_free(&hz);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        ok += par[i].status == 200;
        if (par[i].status != 200)
            fprintf(stderr, "reply %d: %ld %s\n", i, par[i].status,
                    par[i].body ? (char *)par[i].body : "");
        http_resp_free(&par[i]);
    }
    CHECK(ok == N, "%d uploads that fit one at a time, sent together: %d answered 200", N, ok);
    CHECK(hs == 200, "/healthz answers while they run");
    double peak = metric(&p, "aec_memory_reserved_peak_bytes");
    fprintf(stderr, "peak reserved: %.1f MiB of %d\n", peak / (1 << 20), LIMIT_MIB);
    CHECK(peak <= (double)(LIMIT_MIB << 20), "the most reserved at once is within the limit");
    CHECK(peak >= 32.0 * 1000 * 1000, "and at least one upload's decoding need (%.0f bytes)", peak);
    /* a request returns its memory when it completes, just after its reply
     * is sent: wait for the last ones (up to 20 s) */
    double left = -1;
    for (int i = 0; i < 2000 && (left = metric(&p, "aec_memory_reserved_bytes")) != 0; i++)
        usleep(10000);
    CHECK(left == 0, "nothing is reserved afterwards (%.0f bytes)", left);
    CHECK(metric(&p, "aec_memory_waiting_requests") == 0, "nobody waits afterwards");
    free(png);
    CHECK(harness_stop(&p) == 0, "exit 0");
    return TEST_SUMMARY();
}
