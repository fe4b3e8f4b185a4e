/* test_api.c - every endpoint's successful replies and every accepted
 * content type: /healthz, /readyz, /v1/model, /metrics, /encode (raw,
 * octet-stream, no Content-Type, multipart, JPEG; JSON and binary, three
 * dtypes), /decode (JSON and binary; sizes), /anomaly (threshold, heatmap),
 * request ids, and the log lines in both formats. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/half.h"
#include "aec/latent.h"
#include "harness.h"

static const char *g_id; /* the model id, from /readyz */
static int g_dim;

/* ---- health, readiness, model ------------------------------------------------------ */

static void test_health(const aecd_proc *p)
{
    http_resp r;
    char ct[128];
    CHECK(http_get(p, "/healthz", &r) == 200, "healthz %ld", r.status);
    CHECK(http_header(&r, "Content-Type", ct, sizeof ct) && strcmp(ct, "application/json") == 0,
          "healthz content type");
    cJSON *j = http_json(&r);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "status");
    CHECK(cJSON_IsString(s) && strcmp(s->valuestring, "ok") == 0, "healthz body %s", r.body);
    cJSON_Delete(j);
    http_resp_free(&r);

    http_opts head = {.method = "HEAD"};
    CHECK(http_request(p, "/healthz", &head, &r) == 200 && r.len == 0, "HEAD /healthz %ld %zu",
          r.status, r.len);
    http_resp_free(&r);

    CHECK(http_get(p, "/readyz", &r) == 200, "readyz %ld", r.status);
    j = http_json(&r);
    s = cJSON_GetObjectItemCaseSensitive(j, "status");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
    CHECK(cJSON_IsString(s) && strcmp(s->valuestring, "ready") == 0, "readyz status");
    REQUIRE(cJSON_IsString(m) && strncmp(m->valuestring, "aec-", 4) == 0, "readyz model");
    g_id = strdup(m->valuestring);
    cJSON_Delete(j);
    http_resp_free(&r);
}

static int json_int(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

static void test_model(const aecd_proc *p)
{
    http_resp r;
    CHECK(http_get(p, "/v1/model", &r) == 200, "model %ld", r.status);
    cJSON *j = http_json(&r);
    REQUIRE(j, "/v1/model is not JSON: %s", r.body);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    CHECK(cJSON_IsString(id) && strcmp(id->valuestring, g_id) == 0, "model id");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(j, "input");
    CHECK(json_int(in, "channels") == 3 && json_int(in, "height") == HARNESS_SIDE &&
              json_int(in, "width") == HARNESS_SIDE,
          "input shape");
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(j, "latent");
    g_dim = json_int(lat, "dim");
    CHECK(g_dim > 0 && json_int(lat, "index") >= 0, "latent %d", g_dim);
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(j, "layers");
    CHECK(cJSON_IsArray(layers) && cJSON_GetArraySize(layers) > 2, "layers");
    CHECK(json_int(j, "param_count") > 0, "param_count");
    /* aec-train calibrates the anomaly score and records the training */
    CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "anomaly")), "anomaly object");
    CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "train")), "train object");
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(j, "limits");
    CHECK(json_int(lim, "max_batch") == 32 && json_int(lim, "max_pixels") == 40000000 &&
              cJSON_GetObjectItemCaseSensitive(lim, "max_body")->valuedouble == 32.0 * 1048576,
          "limits");
    cJSON_Delete(j);
    http_resp_free(&r);
}

/* ---- encode ---------------------------------------------------------------------------- */

/* Checks a JSON encode reply; returns its latent (malloc'd) or NULL. */
static float *check_encode_json(const http_resp *r, const char *what, const char *dtype)
{
    char ct[128];
    CHECK(r->status == 200, "%s: status %ld %s", what, r->status, r->body);
    CHECK(http_header(r, "Content-Type", ct, sizeof ct) && strcmp(ct, "application/json") == 0,
          "%s: content type", what);
    cJSON *j = http_json(r);
    if (!j)
        return NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(j, "latent");
    CHECK(cJSON_IsString(m) && strcmp(m->valuestring, g_id) == 0, "%s: model", what);
    CHECK(json_int(j, "dim") == g_dim, "%s: dim", what);
    CHECK(cJSON_IsString(dt) && strcmp(dt->valuestring, dtype) == 0, "%s: dtype", what);
    float *v = NULL;
    if (cJSON_IsArray(lat) && cJSON_GetArraySize(lat) == g_dim) {
        v = malloc(sizeof(float) * (size_t)g_dim);
        int i = 0, ok = 1;
        const cJSON *e;
        cJSON_ArrayForEach(e, lat)
        {
            ok &= cJSON_IsNumber(e);
            v[i++] = (float)e->valuedouble;
        }
        CHECK(ok, "%s: every latent value is a number", what);
    }
    CHECK(v != NULL, "%s: latent array of %d", what, g_dim);
    cJSON_Delete(j);
    return v;
}

static int same_floats(const float *a, const float *b, int n)
{
    return a && b && memcmp(a, b, sizeof(float) * (size_t)n) == 0;
}

static void test_encode_inputs(const aecd_proc *p, const uint8_t *png, size_t png_len)
{
    http_resp r;
    http_post(p, "/encode", "image/png", png, png_len, &r);
    float *ref = check_encode_json(&r, "encode image/png", "f32");
    http_resp_free(&r);

    http_post(p, "/encode", "application/octet-stream", png, png_len, &r);
    float *v = check_encode_json(&r, "encode octet-stream", "f32");
    CHECK(same_floats(ref, v, g_dim), "octet-stream gives the same latent");
    free(v);
    http_resp_free(&r);

    http_post(p, "/encode", NULL, png, png_len, &r);
    v = check_encode_json(&r, "encode without Content-Type", "f32");
    CHECK(same_floats(ref, v, g_dim), "no Content-Type gives the same latent");
    free(v);
    http_resp_free(&r);

    /* multipart with another field first, the file in "image" */
    const char *bnd = "----aecTestBoundary7MA4YWxkTrZu0gW";
    size_t cap = png_len + 1024, n = 0;
    char *mp = malloc(cap);
    n += (size_t)snprintf(mp + n, cap - n,
                          "--%s\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
                          "--%s\r\nContent-Disposition: form-data; name=\"image\"; "
                          "filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\n",
                          bnd, bnd);
    memcpy(mp + n, png, png_len);
    n += png_len;
    n += (size_t)snprintf(mp + n, cap - n, "\r\n--%s--\r\n", bnd);
    char ctype[128];
    snprintf(ctype, sizeof ctype, "multipart/form-data; boundary=%s", bnd);
    http_post(p, "/encode", ctype, mp, n, &r);
    v = check_encode_json(&r, "encode multipart", "f32");
    CHECK(same_floats(ref, v, g_dim), "multipart gives the same latent");
    free(v);
    http_resp_free(&r);
    free(mp);

    size_t jl;
    uint8_t *jpg = harness_jpeg(40, 30, 5, &jl);
    http_post(p, "/encode", "image/jpeg", jpg, jl, &r);
    v = check_encode_json(&r, "encode JPEG (resized from 40x30)", "f32");
    free(v);
    http_resp_free(&r);
    free(jpg);

    size_t bl;
    uint8_t *big = harness_png(64, 48, 6, &bl);
    http_post(p, "/encode", "image/png", big, bl, &r);
    v = check_encode_json(&r, "encode 64x48 PNG (resized)", "f32");
    free(v);
    http_resp_free(&r);
    free(big);
    free(ref);
}

static void check_latent_header(const http_resp *r, int dtype, size_t value_size, const char *what)
{
    char ct[128];
    CHECK(r->status == 200, "%s: %ld %s", what, r->status, r->body);
    CHECK(http_header(r, "Content-Type", ct, sizeof ct) &&
              strcmp(ct, "application/x-aec-latent") == 0,
          "%s: content type", what);
    CHECK(r->len == AEC_LATENT_HEADER + (size_t)g_dim * value_size, "%s: length %zu", what, r->len);
    if (r->len < AEC_LATENT_HEADER)
        return;
    uint32_t dim = (uint32_t)r->body[8] | (uint32_t)r->body[9] << 8 | (uint32_t)r->body[10] << 16 |
                   (uint32_t)r->body[11] << 24;
    CHECK(memcmp(r->body, "AECL", 4) == 0 && r->body[4] == 1 && r->body[5] == dtype &&
              dim == (uint32_t)g_dim,
          "%s: header", what);
}

static void test_encode_binary(const aecd_proc *p, const uint8_t *png, size_t png_len)
{
    http_resp r;
    http_post(p, "/encode?format=binary", "image/png", png, png_len, &r);
    check_latent_header(&r, 1, 4, "?format=binary");
    http_resp_free(&r);

    const char *accept[] = {"Accept: application/x-aec-latent", NULL};
    http_opts o = {.content_type = "image/png", .body = png, .len = png_len, .headers = accept};
    http_request(p, "/encode", &o, &r);
    check_latent_header(&r, 1, 4, "Accept: application/x-aec-latent");
    http_resp_free(&r);

    http_request(p, "/encode?format=json", &o, &r); /* the query beats Accept */
    free(check_encode_json(&r, "?format=json beats Accept", "f32"));
    http_resp_free(&r);

    http_post(p, "/encode?format=binary&dtype=f16", "image/png", png, png_len, &r);
    check_latent_header(&r, 2, 2, "dtype=f16");
    /* JSON with dtype=f16 carries exactly the values the binary f16 stores */
    http_resp rj;
    http_post(p, "/encode?dtype=f16", "image/png", png, png_len, &rj);
    float *v = check_encode_json(&rj, "JSON dtype=f16", "f16");
    int same = v && r.len == AEC_LATENT_HEADER + (size_t)g_dim * 2;
    for (int i = 0; same && i < g_dim; i++) {
        const uint8_t *q = r.body + AEC_LATENT_HEADER + 2 * i;
        same = aec_f16_to_f32((uint16_t)(q[0] | q[1] << 8)) == v[i];
    }
    CHECK(same, "JSON f16 values equal the binary f16 values");
    free(v);
    http_resp_free(&rj);
    http_resp_free(&r);

    http_post(p, "/encode?format=binary&dtype=u8", "image/png", png, png_len, &r);
    check_latent_header(&r, 3, 1, "dtype=u8");
    http_resp_free(&r);
}

/* ---- decode ------------------------------------------------------------------------------ */

static void check_png(const http_resp *r, int w, int h, const char *what)
{
    char ct[128];
    CHECK(r->status == 200, "%s: %ld %s", what, r->status, r->body);
    CHECK(http_header(r, "Content-Type", ct, sizeof ct) && strcmp(ct, "image/png") == 0,
          "%s: content type", what);
    int pw = 0, ph = 0, pc = 0;
    uint8_t *px = harness_decode_png(r->body, r->len, &pw, &ph, &pc);
    CHECK(px && pw == w && ph == h && pc == 3, "%s: PNG %dx%dx%d, expected %dx%dx3", what, pw, ph,
          pc, w, h);
    free(px);
}

static void test_decode(const aecd_proc *p, const uint8_t *png, size_t png_len)
{
    http_resp enc, bin, r1, r2;
    http_post(p, "/encode", "image/png", png, png_len, &enc);
    REQUIRE(enc.status == 200, "encode for decode");
    /* the encode reply is itself a valid decode request */
    http_post(p, "/decode", "application/json", enc.body, enc.len, &r1);
    check_png(&r1, HARNESS_SIDE, HARNESS_SIDE, "decode JSON");

    http_post(p, "/encode?format=binary", "image/png", png, png_len, &bin);
    http_post(p, "/decode", "application/x-aec-latent", bin.body, bin.len, &r2);
    check_png(&r2, HARNESS_SIDE, HARNESS_SIDE, "decode binary");
    CHECK(r1.len == r2.len && memcmp(r1.body, r2.body, r1.len) == 0,
          "binary f32 and JSON latents decode to the same PNG bytes");
    http_resp_free(&r2);

    http_post(p, "/decode", NULL, bin.body, bin.len, &r2); /* sniffed by its magic */
    check_png(&r2, HARNESS_SIDE, HARNESS_SIDE, "decode binary without Content-Type");
    http_resp_free(&r2);
    http_post(p, "/decode", NULL, enc.body, enc.len, &r2);
    check_png(&r2, HARNESS_SIDE, HARNESS_SIDE, "decode JSON without Content-Type");
    http_resp_free(&r2);

    struct {
        const char *q;
        int w, h;
    } sizes[] = {{"?width=64", 64, 64},
                 {"?height=32", 32, 32},
                 {"?width=20&height=10", 20, 10},
                 {"?width=1&height=4096", 1, 4096}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/decode%s", sizes[i].q);
        http_post(p, path, "application/x-aec-latent", bin.body, bin.len, &r2);
        check_png(&r2, sizes[i].w, sizes[i].h, sizes[i].q);
        http_resp_free(&r2);
    }
    http_resp_free(&r1);
    http_resp_free(&bin);
    http_resp_free(&enc);
}

/* ---- anomaly ------------------------------------------------------------------------------ */

static double num(const cJSON *j, const char *k, int *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    *ok &= cJSON_IsNumber(v);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void test_anomaly(const aecd_proc *p, const uint8_t *png, size_t png_len)
{
    http_resp r;
    http_post(p, "/anomaly", "image/png", png, png_len, &r);
    CHECK(r.status == 200, "anomaly %ld %s", r.status, r.body);
    cJSON *j = http_json(&r);
    int ok = 1;
    double score = num(j, "score", &ok), thr = num(j, "threshold", &ok);
    double mse = num(j, "mse", &ok), pct = num(j, "percentile", &ok);
    double norm = num(j, "normalized", &ok);
    const cJSON *an = cJSON_GetObjectItemCaseSensitive(j, "anomalous");
    const cJSON *cal = cJSON_GetObjectItemCaseSensitive(j, "calibrated");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
    CHECK(ok, "anomaly numbers: %s", r.body);
    CHECK(cJSON_IsTrue(cal), "a trained model is calibrated");
    CHECK(cJSON_IsBool(an) && (cJSON_IsTrue(an) == (score > thr)),
          "anomalous == score > threshold");
    CHECK(mse >= 0 && score >= 0 && pct >= 0 && pct <= 100 && norm >= 0 && norm <= 1,
          "anomaly ranges: %s", r.body);
    CHECK(cJSON_IsString(m) && strcmp(m->valuestring, g_id) == 0, "anomaly model");
    CHECK(!cJSON_GetObjectItemCaseSensitive(j, "heatmap_png"), "no heatmap unless asked");
    cJSON_Delete(j);
    http_resp_free(&r);

    http_post(p, "/anomaly?threshold=0", "image/png", png, png_len, &r);
    j = http_json(&r);
    ok = 1;
    CHECK(r.status == 200 && num(j, "threshold", &ok) == 0 &&
              cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "anomalous")),
          "threshold=0 makes it anomalous: %s", r.body);
    cJSON_Delete(j);
    http_resp_free(&r);

    http_post(p, "/anomaly?threshold=1e9", "image/png", png, png_len, &r);
    j = http_json(&r);
    CHECK(r.status == 200 && cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "anomalous")),
          "threshold=1e9: not anomalous: %s", r.body);
    cJSON_Delete(j);
    http_resp_free(&r);
}

/* ---- metrics --------------------------------------------------------------------------------- */

/* The value of the first sample line starting with prefix, or -1. */
static double sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, prefix, n) == 0 && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    return -1;
}

/* "base|labels" of a sample line: the metric name without _bucket, _sum or
 * _count, and its labels without le="...". */
static void series_key(const char *line, char *out, size_t n)
{
    size_t k = strcspn(line, "{ ");
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)k, line);
    const char *suffixes[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        size_t nl = strlen(name), sl = strlen(suffixes[i]);
        if (nl > sl && strcmp(name + nl - sl, suffixes[i]) == 0)
            name[nl - sl] = '\0';
    }
    char labels[256] = "";
    if (line[k] == '{') {
        const char *end = strchr(line + k, '}');
        snprintf(labels, sizeof labels, "%.*s", end ? (int)(end - line - k - 1) : 0, line + k + 1);
        char *le = strstr(labels, "le=\"");
        if (le) {
            char *q = strchr(le + 4, '"');
            memmove(le, q ? q + 1 : le + strlen(le), strlen(q ? q + 1 : le + strlen(le)) + 1);
        }
        size_t ll = strlen(labels);
        if (ll && labels[ll - 1] == ',')
            labels[ll - 1] = '\0';
    }
    snprintf(out, n, "%s|%s", name, labels);
}

/* Every sample's family has a TYPE line before it; a histogram's buckets
 * never decrease and its +Inf bucket equals its _count. */
static int exposition_ok(const char *text)
{
    char declared[64][80], prev_key[400] = "";
    int nd = 0, ok = 1;
    double prev = 0;
    for (const char *l = text; *l;) {
        const char *eol = strchr(l, '\n');
        if (!eol)
            return 0; /* every line ends with a newline */
        char line[512];
        size_t n = (size_t)(eol - l) < sizeof line - 1 ? (size_t)(eol - l) : sizeof line - 1;
        memcpy(line, l, n);
        line[n] = '\0';
        l = eol + 1;
        char name[80];
        if (strncmp(line, "# TYPE ", 7) == 0) {
            if (sscanf(line + 7, "%79s", name) == 1 && nd < 64)
                snprintf(declared[nd++], sizeof declared[0], "%s", name);
            continue;
        }
        if (line[0] == '#')
            continue;
        char key[400];
        series_key(line, key, sizeof key);
        int found = 0;
        for (int i = 0; i < nd && !found; i++)
            found = strncmp(key, declared[i], strlen(declared[i])) == 0 &&
                    key[strlen(declared[i])] == '|';
        if (!found) {
            fprintf(stderr, "sample without a TYPE line before it: %s\n", line);
            ok = 0;
        }
        double v = strtod(strrchr(line, ' ') + 1, NULL);
        size_t k = strcspn(line, "{ ");
        int bucket = k > 7 && strncmp(line + k - 7, "_bucket", 7) == 0;
        int count = k > 6 && strncmp(line + k - 6, "_count", 6) == 0;
        if (bucket) {
            if (strcmp(key, prev_key) == 0 && v < prev) {
                fprintf(stderr, "bucket decreases: %s\n", line);
                ok = 0;
            }
            snprintf(prev_key, sizeof prev_key, "%s", key);
            prev = v;
        } else if (count && strcmp(key, prev_key) == 0 && v != prev) {
            fprintf(stderr, "_count differs from the +Inf bucket: %s\n", line);
            ok = 0;
        }
    }
    return ok;
}

static void test_metrics(const aecd_proc *p)
{
    http_resp r;
    char ct[128];
    CHECK(http_get(p, "/metrics", &r) == 200, "metrics %ld", r.status);
    CHECK(http_header(&r, "Content-Type", ct, sizeof ct) &&
              strncmp(ct, "text/plain; version=0.0.4", 25) == 0,
          "metrics content type '%s'", ct);
    const char *t = (const char *)r.body;
    CHECK(exposition_ok(t), "exposition format");
    const char *families[] = {"aec_requests_total",
                              "aec_request_duration_seconds",
                              "aec_in_flight_requests",
                              "aec_queue_depth",
                              "aec_batch_size",
                              "aec_queue_wait_seconds",
                              "aec_pipeline_requests",
                              "aec_model_info",
                              "process_start_time_seconds"};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char help[128], type[128];
        snprintf(help, sizeof help, "# HELP %s ", families[i]);
        snprintf(type, sizeof type, "# TYPE %s ", families[i]);
        CHECK(strstr(t, help) && strstr(t, type), "HELP and TYPE for %s", families[i]);
    }
    CHECK(sample(t, "aec_requests_total{endpoint=\"encode\",status=\"200\"}") >= 5,
          "encode 200s are counted");
    CHECK(sample(t, "aec_batch_size_count") >= 5, "batches are counted");
    CHECK(sample(t, "aec_queue_wait_seconds_count") >= 5, "queue waits are counted");
    CHECK(sample(t, "aec_in_flight_requests") >= 1, "this request is in flight");
    char info[128];
    snprintf(info, sizeof info, "aec_model_info{id=\"%s\"}", g_id);
    CHECK(sample(t, info) == 1, "model info");
    CHECK(sample(t, "process_start_time_seconds") > 1.6e9, "start time");
    http_resp_free(&r);
}

/* ---- request ids and logs
 * ------------------------------------------------------------------------ */

static void test_request_id(const aecd_proc *p)
{
    http_resp r;
    char id[128];
    const char *mine[] = {"X-Request-Id: trace-42.a_b", NULL};
    http_opts o = {.headers = mine};
    http_request(p, "/healthz", &o, &r);
    CHECK(http_header(&r, "X-Request-Id", id, sizeof id) && strcmp(id, "trace-42.a_b") == 0,
          "a sane X-Request-Id is echoed");
    http_resp_free(&r);
    const char *bad[] = {"X-Request-Id: has spaces and \"quotes\"", NULL};
    o.headers = bad;
    http_request(p, "/healthz", &o, &r);
    CHECK(http_header(&r, "X-Request-Id", id, sizeof id) && !strchr(id, ' ') && strlen(id) >= 8,
          "an unsafe X-Request-Id is replaced ('%s')", id);
    http_resp_free(&r);
}

static void test_logfmt(const aecd_proc *p)
{
    char *log = harness_log(p);
    char want[160];
    snprintf(want, sizeof want, "model=%s", g_id);
    CHECK(strstr(log, "msg=\"aecd listening\"") && strstr(log, want) &&
              strstr(log, "input=3x16x16") && strstr(log, "latent_dim=") &&
              strstr(log, "address=127.0.0.1:"),
          "startup line");
    const char *line = strstr(log, "method=POST path=/encode status=200 bytes=");
    CHECK(line && strstr(line, " us=") && strstr(log, "level=info") && strstr(log, " id="),
          "request lines: ts, level, method, path, status, bytes, us, id");
    CHECK(strstr(log, "path=/healthz status=200"), "health checks are logged");
    CHECK(strstr(log, "id=trace-42.a_b"), "the request id is logged");
    free(log);
}

static void test_json_log(const char *model)
{
    aecd_proc p;
    const char *args[] = {"--log-format", "json", NULL};
    harness_start(&p, model, args, NULL);
    http_resp r;
    size_t len;
    uint8_t *png = harness_png(16, 16, 3, &len);
    http_post(&p, "/encode", "image/png", png, len, &r);
    http_resp_free(&r);
    free(png);
    CHECK(harness_stop(&p) == 0, "json-log server exits 0");
    char *log = harness_log(&p);
    int lines = 0, parsed = 0, request_ok = 0;
    for (char *l = strtok(log, "\n"); l; l = strtok(NULL, "\n")) {
        lines++;
        cJSON *j = cJSON_Parse(l);
        if (!j)
            continue;
        parsed++;
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(j, "path");
        if (cJSON_IsString(path) && strcmp(path->valuestring, "/encode") == 0)
            request_ok = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "ts")) &&
                         cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "method")) &&
                         json_int(j, "status") == 200 && json_int(j, "bytes") > 0 &&
                         cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "us"));
        cJSON_Delete(j);
    }
    CHECK(lines > 3 && parsed == lines, "every JSON log line parses (%d of %d)", parsed, lines);
    CHECK(request_ok, "JSON request line has ts, method, status, bytes, us");
    free(log);
}

/* ?fit= for a photo that is not square: stretch (the default), crop and pad
 * give three different inputs, the default is stretch, and a bad value is 422. */
static void test_fit(const aecd_proc *p)
{
    size_t n;
    uint8_t *wide = harness_png(HARNESS_SIDE * 3, HARNESS_SIDE, 41, &n);
    http_resp d, s, c, pd, bad;
    http_post(p, "/encode?format=binary", "image/png", wide, n, &d);
    http_post(p, "/encode?format=binary&fit=stretch", "image/png", wide, n, &s);
    http_post(p, "/encode?format=binary&fit=crop", "image/png", wide, n, &c);
    http_post(p, "/encode?format=binary&fit=pad", "image/png", wide, n, &pd);
    CHECK(d.status == 200 && s.status == 200 && c.status == 200 && pd.status == 200,
          "?fit=stretch|crop|pad: 200");
    CHECK(d.len == s.len && memcmp(d.body, s.body, d.len) == 0, "the default fit is stretch");
    CHECK(memcmp(s.body, c.body, s.len) != 0 && memcmp(s.body, pd.body, s.len) != 0 &&
              memcmp(c.body, pd.body, c.len) != 0,
          "stretch, crop and pad give three different latents");
    http_post(p, "/anomaly?fit=fill", "image/png", wide, n, &bad);
    check_error(&bad, 422, "invalid_parameter", "?fit=fill");
    http_resp_free(&d), http_resp_free(&s), http_resp_free(&c), http_resp_free(&pd);
    http_resp_free(&bad);
    free(wide);
}

int main(void)
{
    const char *model = harness_model(1);
    aecd_proc p;
    harness_start(&p, model, NULL, NULL);
    size_t png_len;
    uint8_t *png = harness_png(HARNESS_SIDE, HARNESS_SIDE, 77, &png_len);

    test_health(&p);
    test_model(&p);
    test_encode_inputs(&p, png, png_len);
    test_encode_binary(&p, png, png_len);
    test_decode(&p, png, png_len);
    test_anomaly(&p, png, png_len);
    test_fit(&p);
    test_metrics(&p);
    test_request_id(&p);
    CHECK(harness_stop(&p) == 0, "SIGTERM: exit status 0");
    test_logfmt(&p);
    test_json_log(model);

    free(png);
    free((void *)g_id);
    return TEST_SUMMARY();
}
