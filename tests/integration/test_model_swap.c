/* test_model_swap.c - the model file changing under a running aecd does not
 * disturb serving. aecd serves a temp copy of a small model; the test
 * records /encode (JSON and binary), /anomaly, /decode and /v1/model, then
 * overwrites the file in place with garbage, truncates it to nothing,
 * replaces it (rename) with another valid model, deletes it, and sends
 * SIGHUP (logged and ignored: there is no hot reload). After each step,
 * and while requests are in flight during the overwrite, every answer must
 * be byte-identical to the first ones. The server then exits 0. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define NPAR 8

typedef struct {
    const char *path;
    const char *ctype;
    const void *body;
    size_t len;
    http_resp first; /* the answer before the file changed */
} probe;

static void copy_file(const char *from, const char *to)
{
    size_t n;
    uint8_t *d = test_read_file(from, &n);
    REQUIRE(d && test_write_file(to, d, n) == 0, "copy %s -> %s", from, to);
    free(d);
}

/* Every probe answers exactly as it did at first. */
static void check_same(const aecd_proc *p, probe *pr, int n, const char *when)
{
    for (int i = 0; i < n; i++) {
        http_resp r;
        long st = pr[i].body ? http_post(p, pr[i].path, pr[i].ctype, pr[i].body, pr[i].len, &r)
                             : http_get(p, pr[i].path, &r);
        CHECK(st == 200 && r.len == pr[i].first.len && memcmp(r.body, pr[i].first.body, r.len) == 0,
              "%s %s: status %ld, same answer as before", pr[i].path, when, st);
        http_resp_free(&r);
    }
}

int main(void)
{
    const char *dir = test_tmpdir();
    char live[600];
    snprintf(live, sizeof live, "%s/live.safetensors", dir);
    copy_file(harness_model(1), live);
    const char *other = harness_model(2);

    aecd_proc p;
    harness_start(&p, live, NULL, NULL);

    size_t n;
    uint8_t *png = harness_png(HARNESS_SIDE * 2, HARNESS_SIDE, 31, &n);
    http_resp lat;
    REQUIRE(http_post(&p, "/encode", "image/png", png, n, &lat) == 200, "encode");
    probe pr[] = {
        {"/encode", "image/png", png, n, {0}},
        {"/encode?format=binary&dtype=f16", "image/png", png, n, {0}},
        {"/anomaly", "image/png", png, n, {0}},
        {"/decode", "application/json", lat.body, lat.len, {0}},
        {"/v1/model", NULL, NULL, 0, {0}},
        {"/readyz", NULL, NULL, 0, {0}},
    };
    int np = (int)(sizeof pr / sizeof pr[0]);
    for (int i = 0; i < np; i++) {
        long st = pr[i].body
                      ? http_post(&p, pr[i].path, pr[i].ctype, pr[i].body, pr[i].len, &pr[i].first)
                      : http_get(&p, pr[i].path, &pr[i].first);
        REQUIRE(st == 200, "%s: %ld", pr[i].path, st);
    }

    /* overwritten in place (same inode) with garbage, while requests run */
    http_opts o = {.content_type = "image/png", .body = png, .len = n};
    int fd = open(live, O_WRONLY | O_TRUNC);
    REQUIRE(fd >= 0, "open %s", live);
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 131 + 7);
    for (int k = 0; k < 64; k++)
        REQUIRE(write(fd, junk, sizeof junk) == (ssize_t)sizeof junk, "write");
    close(fd);
    http_resp par[NPAR];
    http_parallel(&p, "/encode", &o, NPAR, par);
    int same = 0;
    for (int i = 0; i < NPAR; i++) {
        same += par[i].status == 200 && par[i].len == pr[0].first.len &&
                memcmp(par[i].body, pr[0].first.body, par[i].len) == 0;
        http_resp_free(&par[i]);
    }
    CHECK(same == NPAR, "%d concurrent /encode after the overwrite, %d the same", NPAR, same);
    check_same(&p, pr, np, "after the file was overwritten with garbage");

    /* truncated to nothing */
    REQUIRE(truncate(live, 0) == 0, "truncate");
    check_same(&p, pr, np, "after the file was truncated");

    /* replaced by another valid model (rename over it), then deleted */
    char tmp[620];
    snprintf(tmp, sizeof tmp, "%s.new", live);
    copy_file(other, tmp);
    REQUIRE(rename(tmp, live) == 0, "rename");
    check_same(&p, pr, np, "after the file was replaced by another model");
    REQUIRE(unlink(live) == 0, "unlink");
    check_same(&p, pr, np, "after the file was deleted");

    /* SIGHUP: no reload, no exit */
    REQUIRE(kill(p.pid, SIGHUP) == 0, "kill");
    usleep(300000);
    check_same(&p, pr, np, "after SIGHUP");
    char *log = harness_log(&p);
    CHECK(strstr(log, "SIGHUP ignored"), "SIGHUP is logged as ignored");
    free(log);

    CHECK(harness_stop(&p) == 0, "exit 0");
    log = harness_log(&p);
    CHECK(!strstr(log, "status=500"), "no 500 in the log");
    free(log);
    for (int i = 0; i < np; i++)
        http_resp_free(&pr[i].first);
    http_resp_free(&lat);
    free(png);
    return TEST_SUMMARY();
}
