/* test_model_swap.c - model files changing under a running aecd, and hot
 * reload (src/server/registry.h).
 *
 * One file (--model FILE): overwriting, truncating, replacing or deleting
 * it changes nothing served until a reload. SIGHUP with garbage in the file
 * keeps the old version serving (and says so in /v1/models, the log and
 * the metrics); SIGHUP after a valid model is renamed over it serves the
 * new one, exactly as a server started on that file answers; SIGHUP after
 * the file is deleted stops serving it.
 *
 * Under load: 8 clients post /encode without pause while the file is
 * replaced 24 times, alternating two models with a corrupt file in
 * between, each followed by POST /v1/models/reload. Every reply must be a
 * 200 equal byte for byte to what one of the two models answers alone:
 * no failed request, no mix. The server then exits 0. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define CLIENTS 8
#define SWAPS 24

typedef struct {
    const char *path;
    const char *ctype;
    const void *body;
    size_t len;
    http_resp first; /* the answer before the file changed */
} probe;

/* Writes from's bytes to a temp file beside to, then renames it over to
 * (how aec-train writes a model). */
static void replace_file(const char *from, const char *to)
{
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", to, (int)getpid());
    harness_copy_file(from, tmp);
    REQUIRE(rename(tmp, to) == 0, "rename %s -> %s", tmp, to);
}

static void write_garbage(const char *path)
{
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 131 + 7);
    REQUIRE(test_write_file(path, junk, sizeof junk) == 0, "write %s", path);
}

static long fetch(const aecd_proc *p, const probe *pr, http_resp *r)
{
    return pr->body ? http_post(p, pr->path, pr->ctype, pr->body, pr->len, r)
                    : http_get(p, pr->path, r);
}

/* Every probe answers exactly as it did at first. */
static void check_same(const aecd_proc *p, probe *pr, int n, const char *when)
{
    for (int i = 0; i < n; i++) {
        http_resp r;
        long st = fetch(p, &pr[i], &r);
        CHECK(st == 200 && r.len == pr[i].first.len && memcmp(r.body, pr[i].first.body, r.len) == 0,
              "%s %s: status %ld, same answer as before", pr[i].path, when, st);
        http_resp_free(&r);
    }
}

static int same_body(const http_resp *a, const http_resp *b)
{
    return a->len == b->len && memcmp(a->body, b->body, a->len) == 0;
}

/* SIGHUP, then waits until the log shows one more "models reloaded" line. */
static void sighup_and_wait(aecd_proc *p)
{
    char *log = harness_log(p);
    int before = 0;
    for (const char *s = log; (s = strstr(s, "models reloaded")); s++)
        before++;
    free(log);
    REQUIRE(kill(p->pid, SIGHUP) == 0, "kill -HUP");
    for (int tries = 0; tries < 600; tries++) {
        usleep(10000);
        log = harness_log(p);
        int now = 0;
        for (const char *s = log; (s = strstr(s, "models reloaded")); s++)
            now++;
        free(log);
        if (now > before)
            return;
    }
    REQUIRE(0, "no 'models reloaded' log line 6 s after SIGHUP");
}

/* The "state" and "error" of model name in GET /v1/models. */
static void model_state(const aecd_proc *p, const char *name, char *state, size_t n, int *has_error)
{
    http_resp r;
    REQUIRE(http_get(p, "/v1/models", &r) == 200, "/v1/models");
    cJSON *j = http_json(&r);
    snprintf(state, n, "(absent)");
    *has_error = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(j, "models"))
    {
        const cJSON *nm = cJSON_GetObjectItem(m, "name");
        if (cJSON_IsString(nm) && strcmp(nm->valuestring, name) == 0) {
            snprintf(state, n, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(m, "state")));
            *has_error = cJSON_IsString(cJSON_GetObjectItem(m, "error"));
        }
    }
    cJSON_Delete(j);
    http_resp_free(&r);
}

/* ---- the file changing, one reload at a time ------------------------------------ */

static void test_one_file(const uint8_t *png, size_t n)
{
    const char *dir = test_tmpdir();
    char live[600];
    snprintf(live, sizeof live, "%s/live.safetensors", dir);
    harness_copy_file(harness_model(1), live);
    const char *other = harness_model(2);

    aecd_proc p;
    harness_start(&p, live, NULL, NULL);
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
    for (int i = 0; i < np; i++)
        REQUIRE(fetch(&p, &pr[i], &pr[i].first) == 200, "%s", pr[i].path);

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
    http_resp par[CLIENTS];
    http_parallel(&p, "/encode", &o, CLIENTS, par);
    int same = 0;
    for (int i = 0; i < CLIENTS; i++) {
        same += par[i].status == 200 && same_body(&par[i], &pr[0].first);
        http_resp_free(&par[i]);
    }
    CHECK(same == CLIENTS, "%d concurrent /encode after the overwrite, %d the same", CLIENTS, same);
    check_same(&p, pr, np, "after the file was overwritten with garbage");
    REQUIRE(truncate(live, 0) == 0, "truncate");
    check_same(&p, pr, np, "after the file was truncated");

    /* a reload of the broken file keeps the old version serving */
    sighup_and_wait(&p);
    check_same(&p, pr, np, "after SIGHUP with an empty file");
    char state[32];
    int has_error;
    model_state(&p, "live", state, sizeof state, &has_error);
    CHECK(strcmp(state, "ready") == 0 && has_error,
          "/v1/models: live is '%s' with%s an error after the failed reload", state,
          has_error ? "" : "out");
    char *log = harness_log(&p);
    CHECK(strstr(log, "previous version keeps serving") != NULL, "the log says the old one serves");
    free(log);
    http_resp m;
    REQUIRE(http_get(&p, "/metrics", &m) == 200, "/metrics");
    CHECK(strstr((char *)m.body, "aec_model_loads_total{result=\"failed\"} 1\n") != NULL,
          "aec_model_loads_total{result=\"failed\"} counts the failed load");
    http_resp_free(&m);

    /* another valid model renamed over it: served after the reload, and
     * answering exactly as a server started on that file does */
    replace_file(other, live);
    check_same(&p, pr, np, "after the file was replaced, before the reload");
    sighup_and_wait(&p);
    char refdir[620], refmodel[700];
    snprintf(refdir, sizeof refdir, "%s/ref", dir);
    REQUIRE(mkdir(refdir, 0755) == 0, "mkdir");
    snprintf(refmodel, sizeof refmodel, "%s/live.safetensors", refdir); /* the same name */
    harness_copy_file(other, refmodel);
    aecd_proc ref;
    harness_start(&ref, refmodel, NULL, NULL);
    for (int i = 0; i < 3; i++) { /* the image endpoints */
        http_resp a, b;
        long sa = fetch(&p, &pr[i], &a), sb = fetch(&ref, &pr[i], &b);
        CHECK(sa == 200 && sb == 200 && same_body(&a, &b) && !same_body(&a, &pr[i].first),
              "%s after the reload: %ld, the new model's answer (as a fresh server gives it)",
              pr[i].path, sa);
        http_resp_free(&a);
        http_resp_free(&b);
    }
    CHECK(harness_stop(&ref) == 0, "the reference server exits 0");
    http_resp old;
    fetch(&p, &pr[3], &old);
    check_error(&old, 422, "model_mismatch", "/decode of a latent of the model no longer served");
    http_resp_free(&old);
    model_state(&p, "live", state, sizeof state, &has_error);
    CHECK(strcmp(state, "ready") == 0 && !has_error, "live is ready, with no error: '%s'", state);

    /* deleted: no longer served after the reload */
    REQUIRE(unlink(live) == 0, "unlink");
    sighup_and_wait(&p);
    http_resp gone;
    http_post(&p, "/encode", "image/png", png, n, &gone);
    check_error(&gone, 404, "model_not_found", "/encode once the only model file is gone");
    http_resp_free(&gone);
    http_resp rz;
    CHECK(http_get(&p, "/readyz", &rz) == 503, "/readyz is 503 without the default model");
    http_resp_free(&rz);

    CHECK(harness_stop(&p) == 0, "exit 0");
    log = harness_log(&p);
    CHECK(!strstr(log, "status=500"), "no 500 in the log");
    free(log);
    for (int i = 0; i < np; i++)
        http_resp_free(&pr[i].first);
    http_resp_free(&lat);
}

/* ---- reloads under load ------------------------------------------------------------------ */

typedef struct {
    const aecd_proc *p;
    const uint8_t *png;
    size_t n;
    const http_resp *ref[2];
    atomic_int *stop;
    int sent, bad, from[2];
    long bad_status;
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    while (!atomic_load(c->stop)) {
        http_resp r;
        long st = http_post(c->p, "/encode?format=binary", "image/png", c->png, c->n, &r);
        c->sent++;
        if (st == 200 && same_body(&r, c->ref[0]))
            c->from[0]++;
        else if (st == 200 && same_body(&r, c->ref[1]))
            c->from[1]++;
        else
            c->bad++, c->bad_status = st;
        http_resp_free(&r);
    }
    return NULL;
}

static void test_under_load(const uint8_t *png, size_t n)
{
    const char *dir = test_tmpdir();
    char repo[600], live[700], bad[700];
    snprintf(repo, sizeof repo, "%s/repo", dir);
    REQUIRE(mkdir(repo, 0755) == 0, "mkdir");
    snprintf(live, sizeof live, "%s/default.safetensors", repo);
    snprintf(bad, sizeof bad, "%s/garbage.bin", dir);
    write_garbage(bad);
    const char *models[2] = {harness_model(1), harness_model(2)};
    http_resp ref[2];
    for (int k = 0; k < 2; k++) {
        aecd_proc one;
        harness_start(&one, models[k], NULL, NULL);
        REQUIRE(http_post(&one, "/encode?format=binary", "image/png", png, n, &ref[k]) == 200,
                "reference encode");
        CHECK(harness_stop(&one) == 0, "reference server %d exits 0", k);
    }
    REQUIRE(!same_body(&ref[0], &ref[1]), "the two models answer differently");

    harness_copy_file(models[0], live);
    aecd_proc p;
    harness_start(&p, repo, NULL, NULL);
    atomic_int stop = 0;
    client c[CLIENTS];
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = (client){.p = &p, .png = png, .n = n, .ref = {&ref[0], &ref[1]}, .stop = &stop};
        REQUIRE(pthread_create(&th[i], NULL, client_main, &c[i]) == 0, "thread");
    }
    int reload_ok = 0, failed_kept = 0;
    for (int s = 0; s < SWAPS; s++) {
        int corrupt = s % 4 == 3;
        replace_file(corrupt ? bad : models[(s + 1) % 2], live);
        http_resp r;
        long st = http_post(&p, "/v1/models/reload", NULL, NULL, 0, &r);
        cJSON *j = http_json(&r);
        reload_ok += st == 200;
        if (corrupt)
            failed_kept += cJSON_GetNumberValue(cJSON_GetObjectItem(j, "failed")) == 1;
        cJSON_Delete(j);
        http_resp_free(&r);
        usleep(20000);
    }
    atomic_store(&stop, 1);
    int sent = 0, badn = 0, from0 = 0, from1 = 0;
    long bad_status = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        sent += c[i].sent, badn += c[i].bad, from0 += c[i].from[0], from1 += c[i].from[1];
        if (c[i].bad)
            bad_status = c[i].bad_status;
    }
    fprintf(stderr, "%d requests during %d reloads: %d from model 1, %d from model 2, %d other\n",
            sent, SWAPS, from0, from1, badn);
    CHECK(reload_ok == SWAPS, "every POST /v1/models/reload answered 200 (%d of %d)", reload_ok,
          SWAPS);
    CHECK(failed_kept == SWAPS / 4, "each corrupt file was reported failed (%d of %d)", failed_kept,
          SWAPS / 4);
    CHECK(badn == 0, "every reply is one model's exact answer (%d were not; last status %ld)", badn,
          bad_status);
    CHECK(from0 > 0 && from1 > 0, "both models answered during the reloads");
    CHECK(harness_stop(&p) == 0, "exit 0");
    http_resp_free(&ref[0]);
    http_resp_free(&ref[1]);
}

int main(void)
{
    size_t n;
    uint8_t *png = harness_png(HARNESS_SIDE * 2, HARNESS_SIDE, 31, &n);
    test_one_file(png, n);
    test_under_load(png, n);
    free(png);
    return TEST_SUMMARY();
}
