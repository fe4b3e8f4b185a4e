/* test_repository.c - one aecd serving a folder of models (--models DIR),
 * as a user of several models sees it:
 *   - GET /v1/models lists every NAME.safetensors (not temp or hidden files),
 *     with the default, states and model documents; /v1/models/NAME one;
 *   - ?model=NAME picks the model of /encode, /anomaly, /v1/model; each
 *     answers as a server of that model alone does; an unknown name is 404;
 *   - /decode of a binary latent (v1) or a coded stream (v2) picks the model
 *     that made it by itself, and refuses a latent of no served model;
 *   - POST /v1/models/reload (behind the API key) adds a new file, reports
 *     a corrupt one as failed (503 model_unavailable when asked for), and
 *     stops serving a removed one;
 *   - replies carry X-Request-Id (the client's, when safe) and a strong ETag
 *     that the same request always gets, that If-None-Match turns into a
 *     304, and that changes when the model changes;
 *   - a deadline already passed (X-Request-Timeout-Ms, ?timeout_ms) is 503
 *     deadline_exceeded; /v2/health/live and /v2/health/ready answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static int same_body(const http_resp *a, const http_resp *b)
{
    return a->len == b->len && memcmp(a->body, b->body, a->len) == 0;
}

/* The models listed by /v1/models as "name:state," in order. */
static void listing(const aecd_proc *p, char *out, size_t n, char *def, size_t dn)
{
    http_resp r;
    REQUIRE(http_get(p, "/v1/models", &r) == 200, "/v1/models");
    cJSON *j = http_json(&r);
    REQUIRE(j, "/v1/models is JSON");
    out[0] = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(j, "models"))
    {
        size_t len = strlen(out);
        snprintf(out + len, n - len, "%s:%s,", cJSON_GetStringValue(cJSON_GetObjectItem(m, "name")),
                 cJSON_GetStringValue(cJSON_GetObjectItem(m, "state")));
    }
    snprintf(def, dn, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(j, "default")));
    cJSON_Delete(j);
    http_resp_free(&r);
}

static long post_h(const aecd_proc *p, const char *path, const void *body, size_t len,
                   const char *h1, const char *h2, http_resp *r)
{
    const char *hs[] = {h1, h2, NULL};
    http_opts o = {.content_type = "image/png", .body = body, .len = len, .headers = hs};
    return http_request(p, path, &o, r);
}

/* The reply of a server started on one model file alone. */
static void alone(const char *model, const char *path, const void *body, size_t len, http_resp *r)
{
    aecd_proc one;
    harness_start(&one, model, NULL, NULL);
    REQUIRE(http_post(&one, path, "image/png", body, len, r) == 200, "%s alone", path);
    CHECK(harness_stop(&one) == 0, "the single-model server exits 0");
}

int main(void)
{
    const char *dir = test_tmpdir();
    char repo[600], path[700];
    snprintf(repo, sizeof repo, "%s/models", dir);
    REQUIRE(mkdir(repo, 0755) == 0, "mkdir");
    const char *m1 = harness_model(1), *m2 = harness_model(2);
    const char *codec = harness_codec_model("0.01");
    snprintf(path, sizeof path, "%s/alpha.safetensors", repo);
    harness_copy_file(m1, path);
    snprintf(path, sizeof path, "%s/beta.safetensors", repo);
    harness_copy_file(m2, path);
    snprintf(path, sizeof path, "%s/gamma.safetensors", repo);
    harness_copy_file(codec, path);
    snprintf(path, sizeof path, "%s/.hidden.safetensors", repo);
    harness_copy_file(m1, path);
    snprintf(path, sizeof path, "%s/delta.safetensors.tmp.123", repo); /* a writer's temp file */
    harness_copy_file(m1, path);
    snprintf(path, sizeof path, "%s/notes.txt", repo);
    REQUIRE(test_write_file(path, "x", 1) == 0, "write");

    const char *args[] = {"--default-model", "beta", "--api-key", "s3cret", NULL};
    aecd_proc p;
    harness_start(&p, repo, args, NULL);
    const char *auth = "Authorization: Bearer s3cret";

    /* the listing */
    char list[512], def[64];
    {
        const char *hs[] = {auth, NULL};
        http_opts o = {.headers = hs};
        http_resp r;
        http_request(&p, "/v1/models", &o, &r);
        CHECK(r.status == 200, "/v1/models with the key: %ld", r.status);
        http_resp_free(&r);
    }
    /* the rest of the reads go through a second server without a key */
    CHECK(harness_stop(&p) == 0, "exit 0");
    const char *args2[] = {"--default-model", "beta", NULL};
    harness_start(&p, repo, args2, NULL);
    listing(&p, list, sizeof list, def, sizeof def);
    CHECK(strcmp(list, "alpha:ready,beta:ready,gamma:ready,") == 0,
          "the folder's three model files, sorted, ready (not hidden, temp or other files): %s",
          list);
    CHECK(strcmp(def, "beta") == 0, "--default-model beta is the default: %s", def);
    http_resp one;
    CHECK(http_get(&p, "/v1/models/gamma", &one) == 200, "/v1/models/gamma");
    cJSON *j = http_json(&one);
    const cJSON *doc = cJSON_GetObjectItem(j, "model");
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "kind")), "codec") == 0,
          "gamma is a codec model");
    cJSON_Delete(j);
    http_resp_free(&one);
    http_resp nf;
    http_get(&p, "/v1/models/nope", &nf);
    check_error(&nf, 404, "model_not_found", "/v1/models/nope");
    http_resp_free(&nf);

    /* ?model= picks the model; each answers as it does alone */
    size_t n;
    uint8_t *png = harness_png(HARNESS_SIDE * 2, HARNESS_SIDE, 77, &n);
    http_resp a, b, ref_a, ref_b, dflt;
    http_post(&p, "/encode?format=binary&model=alpha", "image/png", png, n, &a);
    http_post(&p, "/encode?format=binary&model=beta", "image/png", png, n, &b);
    http_post(&p, "/encode?format=binary", "image/png", png, n, &dflt);
    alone(m1, "/encode?format=binary", png, n, &ref_a);
    alone(m2, "/encode?format=binary", png, n, &ref_b);
    CHECK(a.status == 200 && same_body(&a, &ref_a), "?model=alpha answers as model 1 alone");
    CHECK(b.status == 200 && same_body(&b, &ref_b), "?model=beta answers as model 2 alone");
    CHECK(same_body(&dflt, &b), "no ?model=: the default (beta)");
    http_resp unk;
    http_post(&p, "/encode?model=nope", "image/png", png, n, &unk);
    check_error(&unk, 404, "model_not_found", "/encode?model=nope");
    http_resp_free(&unk);
    http_resp info;
    http_get(&p, "/v1/model?model=alpha", &info);
    j = http_json(&info);
    CHECK(j && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "name")), "alpha") == 0,
          "/v1/model?model=alpha describes alpha");
    cJSON_Delete(j);
    http_resp_free(&info);

    /* /decode picks the latent's model by itself */
    http_resp da, da_named, db_named;
    {
        http_opts o = {.content_type = "application/x-aec-latent", .body = a.body, .len = a.len};
        http_request(&p, "/decode", &o, &da);
        http_request(&p, "/decode?model=alpha", &o, &da_named);
        http_request(&p, "/decode?model=beta", &o, &db_named);
    }
    CHECK(da.status == 200 && same_body(&da, &da_named),
          "/decode of alpha's latent without ?model= is decoded by alpha");
    check_error(&db_named, 422, "model_mismatch", "alpha's latent with ?model=beta");
    http_resp cs, dcs, dcs_named;
    http_post(&p, "/encode?model=gamma&format=binary", "image/png", png, n, &cs);
    CHECK(cs.status == 200 && cs.len > 0 && cs.body[0] == 0xA2, "gamma writes a coded stream");
    {
        http_opts o = {.content_type = "application/x-aec-latent", .body = cs.body, .len = cs.len};
        http_request(&p, "/decode", &o, &dcs);
        http_request(&p, "/decode?model=gamma", &o, &dcs_named);
    }
    CHECK(dcs.status == 200 && same_body(&dcs, &dcs_named),
          "a coded stream is decoded by the codec model that wrote it, unnamed");
    http_resp fr;
    {
        uint8_t *lat = malloc(a.len);
        memcpy(lat, a.body, a.len);
        lat[12] ^= 0x5a; /* another model id hash */
        http_opts o = {.content_type = "application/x-aec-latent", .body = lat, .len = a.len};
        http_request(&p, "/decode", &o, &fr);
        free(lat);
    }
    check_error(&fr, 422, "model_mismatch", "a latent of no served model");
    http_resp_free(&fr);

    /* ETag, If-None-Match, X-Request-Id */
    http_resp e1, e2, e3;
    post_h(&p, "/encode?model=alpha", png, n, "X-Request-Id: my-req.42", NULL, &e1);
    post_h(&p, "/encode?model=alpha", png, n, NULL, NULL, &e2);
    char t1[64] = "", t2[64] = "", rid[64] = "", cc[64] = "";
    http_header(&e1, "ETag", t1, sizeof t1);
    http_header(&e2, "ETag", t2, sizeof t2);
    http_header(&e1, "X-Request-Id", rid, sizeof rid);
    http_header(&e1, "Cache-Control", cc, sizeof cc);
    CHECK(t1[0] == '"' && strcmp(t1, t2) == 0, "the same request gets the same strong ETag: %s",
          t1);
    CHECK(strcmp(rid, "my-req.42") == 0, "X-Request-Id is the client's: %s", rid);
    CHECK(strcmp(cc, "private, no-cache") == 0, "Cache-Control: %s", cc);
    char inm[96];
    snprintf(inm, sizeof inm, "If-None-Match: %s", t1);
    post_h(&p, "/encode?model=alpha", png, n, inm, NULL, &e3);
    char t3[64] = "";
    http_header(&e3, "ETag", t3, sizeof t3);
    CHECK(e3.status == 304 && e3.len == 0 && strcmp(t3, t1) == 0,
          "If-None-Match with it: 304, no body, the ETag (%ld, %zu bytes)", e3.status, e3.len);
    http_resp e4;
    post_h(&p, "/encode?model=beta", png, n, inm, NULL, &e4);
    CHECK(e4.status == 200, "the same image to another model is not 304: %ld", e4.status);
    http_resp_free(&e1), http_resp_free(&e2), http_resp_free(&e3), http_resp_free(&e4);

    /* deadlines and the OIP health paths */
    http_resp late, late2, lv, rd;
    post_h(&p, "/encode", png, n, "X-Request-Timeout-Ms: 1", NULL, &late);
    usleep(1000);
    CHECK(late.status == 200 || late.status == 503, "a 1 ms deadline: 200 or 503 (%ld)",
          late.status);
    if (late.status == 503)
        check_error(&late, 503, "deadline_exceeded", "a 1 ms deadline that passed");
    http_post(&p, "/encode?timeout_ms=abc", "image/png", png, n, &late2);
    check_error(&late2, 422, "invalid_parameter", "?timeout_ms=abc");
    CHECK(http_get(&p, "/v2/health/live", &lv) == 200, "/v2/health/live");
    CHECK(http_get(&p, "/v2/health/ready", &rd) == 200, "/v2/health/ready");
    http_resp_free(&late), http_resp_free(&late2), http_resp_free(&lv), http_resp_free(&rd);

    /* reload: a new file, a corrupt one, a removed one */
    snprintf(path, sizeof path, "%s/delta.safetensors", repo);
    harness_copy_file(m1, path);
    snprintf(path, sizeof path, "%s/broken.safetensors", repo);
    REQUIRE(test_write_file(path, "not a model at all", 18) == 0, "write");
    snprintf(path, sizeof path, "%s/alpha.safetensors", repo);
    REQUIRE(unlink(path) == 0, "unlink");
    http_resp rl;
    CHECK(http_post(&p, "/v1/models/reload", NULL, NULL, 0, &rl) == 200, "reload: %ld", rl.status);
    j = http_json(&rl);
    CHECK(j && cJSON_GetNumberValue(cJSON_GetObjectItem(j, "loaded")) == 1 &&
              cJSON_GetNumberValue(cJSON_GetObjectItem(j, "failed")) == 1 &&
              cJSON_GetNumberValue(cJSON_GetObjectItem(j, "removed")) == 1,
          "reload reports 1 loaded, 1 failed, 1 removed: %s", (char *)rl.body);
    cJSON_Delete(j);
    http_resp_free(&rl);
    listing(&p, list, sizeof list, def, sizeof def);
    CHECK(strcmp(list, "beta:ready,broken:failed,delta:ready,gamma:ready,") == 0,
          "after the reload: %s", list);
    http_resp gone, broken, dl;
    http_post(&p, "/encode?model=alpha", "image/png", png, n, &gone);
    check_error(&gone, 404, "model_not_found", "the removed model");
    http_post(&p, "/encode?model=broken", "image/png", png, n, &broken);
    check_error(&broken, 503, "model_unavailable", "a model whose file failed to load");
    CHECK(strstr((char *)broken.body, "broken.safetensors") != NULL,
          "its message names the file: %s", (char *)broken.body);
    http_post(&p, "/encode?format=binary&model=delta", "image/png", png, n, &dl);
    CHECK(dl.status == 200 && same_body(&dl, &ref_a), "the new file serves (as model 1 alone)");
    http_resp_free(&gone), http_resp_free(&broken), http_resp_free(&dl);
    CHECK(harness_stop(&p) == 0, "exit 0");

    /* the reload endpoint is behind the API key */
    harness_start(&p, repo, args, NULL);
    http_resp noauth;
    http_post(&p, "/v1/models/reload", NULL, NULL, 0, &noauth);
    check_error(&noauth, 401, "unauthorized", "POST /v1/models/reload without the key");
    http_resp_free(&noauth);
    CHECK(harness_stop(&p) == 0, "exit 0");

    /* a folder whose default model cannot be served: startup fails, saying why */
    char out[2048];
    const char *bad_default[] = {"--models", repo, "--default-model", "broken", "--port",
                                 "0",        NULL};
    int rc = harness_run(bad_default, NULL, 60, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "default model"), "a broken default model: exit 1 (%d): %s", rc,
          out);

    http_resp_free(&a), http_resp_free(&b), http_resp_free(&dflt);
    http_resp_free(&ref_a), http_resp_free(&ref_b);
    http_resp_free(&da), http_resp_free(&da_named), http_resp_free(&db_named);
    http_resp_free(&cs), http_resp_free(&dcs), http_resp_free(&dcs_named);
    free(png);
    return TEST_SUMMARY();
}
