/* test_errors.c - every error reply: status, error code, JSON body.
 * Bodies (empty, truncated PNG/JPEG, random bytes, a PNG header declaring
 * 100000x100000, multipart mistakes, malformed and deeply nested JSON, bad
 * latents JSON and binary, another model's latent), query parameters,
 * methods (405 + Allow), unknown paths, 100 MB uploads (Content-Length and
 * chunked), and API keys. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/latent.h"
#include "harness.h"

static http_resp g_bin; /* a valid f32 binary latent of the main model */
static http_resp g_enc; /* a valid JSON encode reply */

static void expect(const aecd_proc *p, const char *path, const char *ctype, const void *body,
                   size_t len, long status, const char *code, const char *what)
{
    http_resp r;
    http_post(p, path, ctype, body, len, &r);
    check_error(&r, status, code, what);
    http_resp_free(&r);
}

/* ---- image bodies ------------------------------------------------------------------ */

static void test_bad_images(const aecd_proc *p)
{
    const char *eps[] = {"/encode", "/anomaly"};
    for (int e = 0; e < 2; e++) {
        const char *ep = eps[e];
        expect(p, ep, "image/png", "", 0, 400, "empty_body", "empty body");
        size_t n;
        uint8_t *png = harness_png(32, 32, 9, &n);
        expect(p, ep, "image/png", png, n / 2, 415, "invalid_image", "truncated PNG");
        expect(p, ep, "image/png", png, 40, 415, "invalid_image", "PNG cut in its header");
        free(png);
        uint8_t *jpg = harness_jpeg(32, 32, 9, &n);
        expect(p, ep, "image/jpeg", jpg, 100, 415, "invalid_image", "JPEG cut in its header");
        expect(p, ep, "image/jpeg", jpg, n * 4 / 5, 415, "invalid_image",
               "JPEG cut in its scan data");
        free(jpg);
        uint8_t rnd[4096];
        uint64_t s = 42;
        for (size_t i = 0; i < sizeof rnd; i++)
            rnd[i] = (uint8_t)test_rand_u64(&s);
        expect(p, ep, "application/octet-stream", rnd, sizeof rnd, 415, "invalid_image",
               "random bytes");
        uint8_t *huge = harness_png_header_only(100000, 100000, &n);
        double t0 = harness_seconds();
        expect(p, ep, "image/png", huge, n, 413, "image_too_large",
               "PNG header declaring 100000x100000");
        CHECK(harness_seconds() - t0 < 30, "the huge header is refused, not decoded");
        free(huge);
        expect(p, ep, "text/plain", "hello", 5, 415, "unsupported_media_type", "text/plain");
        expect(p, ep, "application/json", "{}", 2, 415, "unsupported_media_type",
               "JSON to an image endpoint");
        expect(p, ep, "image", "x", 1, 415, "unsupported_media_type", "malformed Content-Type");
    }
    /* the service still works after all that */
    http_resp r;
    CHECK(http_get(p, "/healthz", &r) == 200, "healthz after bad images");
    http_resp_free(&r);
}

/* ---- multipart -------------------------------------------------------------------------- */

static void test_multipart(const aecd_proc *p)
{
    const char *ct = "multipart/form-data; boundary=XyZ";
    expect(p, "/encode", "multipart/form-data", "x", 1, 400, "bad_request",
           "multipart without a boundary");
    const char no_image[] = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"
                            "abc\r\n--XyZ--\r\n";
    expect(p, "/encode", ct, no_image, sizeof no_image - 1, 400, "bad_request",
           "multipart without an 'image' part");
    const char truncated[] = "--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n"
                             "\x89PNG\r\n\x1a\n....";
    expect(p, "/encode", ct, truncated, sizeof truncated - 1, 400, "bad_request",
           "multipart part without its closing boundary");
    const char no_boundary_inside[] = "just some bytes";
    expect(p, "/encode", ct, no_boundary_inside, sizeof no_boundary_inside - 1, 400, "bad_request",
           "multipart body without the boundary");
    const char empty_part[] = "--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n"
                              "\r\n--XyZ--\r\n";
    expect(p, "/encode", ct, empty_part, sizeof empty_part - 1, 400, "empty_body",
           "empty image part");
    const char not_image[] = "--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n"
                             "not an image\r\n--XyZ--\r\n";
    expect(p, "/encode", ct, not_image, sizeof not_image - 1, 415, "invalid_image",
           "image part that is not an image");

    char many[4096];
    size_t n = 0;
    for (int i = 0; i < 17; i++)
        n += (size_t)snprintf(many + n, sizeof many - n,
                              "--XyZ\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nv\r\n",
                              i);
    n += (size_t)snprintf(many + n, sizeof many - n, "--XyZ--\r\n");
    expect(p, "/encode", ct, many, n, 400, "bad_request", "17 parts");

    size_t big = 9000;
    char *hdr = malloc(big + 200);
    n = (size_t)snprintf(hdr, 200,
                         "--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\nX: ");
    memset(hdr + n, 'a', big);
    n += big;
    n += (size_t)snprintf(hdr + n, 200, "\r\n\r\nabc\r\n--XyZ--\r\n");
    expect(p, "/encode", ct, hdr, n, 400, "bad_request", "part headers over 8 KiB");
    free(hdr);
}

/* ---- JSON and latents ---------------------------------------------------------------------- */

static char *json_latent(int dim, int bad_index, const char *bad_value)
{
    size_t cap = (size_t)dim * 24 + 256, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s, cap, "{\"latent\":[");
    for (int i = 0; i < dim; i++)
        n += (size_t)snprintf(s + n, cap - n, "%s%s", i ? "," : "",
                              i == bad_index ? bad_value : "0.25");
    snprintf(s + n, cap - n, "]}");
    return s;
}

static int msg_has(const http_resp *r, const char *needle)
{
    return r->body && strstr((const char *)r->body, needle) != NULL;
}

static void test_json(const aecd_proc *p, int dim)
{
    const char *j = "application/json";
    expect(p, "/decode", j, "", 0, 400, "empty_body", "empty JSON body");
    expect(p, "/decode", j, "{\"latent\":[1,2", 14, 400, "invalid_json", "truncated JSON");
    expect(p, "/decode", j, "{latent: [1]}", 13, 400, "invalid_json", "unquoted key");
    expect(p, "/decode", j, "{\"latent\":[NaN]}", 16, 400, "invalid_json", "NaN token");
    expect(p, "/decode", j, "{\"latent\":[Infinity]}", 21, 400, "invalid_json", "Infinity");
    expect(p, "/decode", j, "{} {}", 5, 400, "invalid_json", "two documents");

    size_t deep = 100000;
    char *nest = malloc(deep);
    memset(nest, '[', deep);
    double t0 = harness_seconds();
    http_resp r;
    http_post(p, "/decode", j, nest, deep, &r);
    check_error(&r, 400, "invalid_json", "100000 nested '['");
    CHECK(msg_has(&r, "nested deeper"), "depth message: %s", r.body);
    CHECK(harness_seconds() - t0 < 30, "deep nesting is refused quickly");
    http_resp_free(&r);
    free(nest);
    const char *d9 = "{\"latent\":[[[[[[[[1]]]]]]]]}";
    expect(p, "/decode", j, d9, strlen(d9), 400, "invalid_json", "depth 9");
    const char *strnest = "{\"latent\":\"[[[[[[[[[[[[\",\"x\":1}";
    expect(p, "/decode", j, strnest, strlen(strnest), 422, "invalid_latent",
           "brackets inside a string do not count as depth");

    expect(p, "/decode", j, "[1,2,3]", 7, 422, "invalid_latent", "an array, not an object");
    expect(p, "/decode", j, "{\"z\":[1]}", 9, 422, "invalid_latent", "no latent field");
    expect(p, "/decode", j, "{\"latent\":5}", 12, 422, "invalid_latent", "latent not an array");

    char *s = json_latent(dim - 1, -1, NULL);
    http_post(p, "/decode", j, s, strlen(s), &r);
    check_error(&r, 422, "invalid_latent", "wrong length");
    char want[64];
    snprintf(want, sizeof want, "takes %d", dim);
    CHECK(msg_has(&r, want), "length message names the expected dim: %s", r.body);
    http_resp_free(&r);
    free(s);

    s = json_latent(dim, 3, "1e308");
    http_post(p, "/decode", j, s, strlen(s), &r);
    check_error(&r, 422, "invalid_latent", "1e308");
    CHECK(msg_has(&r, "latent[3] = 1e308 is out of float range"), "1e308 message: %s", r.body);
    http_resp_free(&r);
    free(s);

    s = json_latent(dim, 4, "-3.5e-39"); /* a float denormal: in range */
    http_post(p, "/decode", j, s, strlen(s), &r);
    CHECK(r.status == 200, "a denormal float is in range: %ld %s", r.status, r.body);
    http_resp_free(&r);
    free(s);
    s = json_latent(dim, 5, "1e999");
    expect(p, "/decode", j, s, strlen(s), 422, "invalid_latent", "1e999 (beyond double)");
    free(s);
    s = json_latent(dim, 2, "\"0.5\"");
    http_post(p, "/decode", j, s, strlen(s), &r);
    check_error(&r, 422, "invalid_latent", "a string element");
    CHECK(msg_has(&r, "latent[2]"), "names the element: %s", r.body);
    http_resp_free(&r);
    free(s);
    s = json_latent(dim, 0, "null");
    expect(p, "/decode", j, s, strlen(s), 422, "invalid_latent", "a null element");
    free(s);

    const char *other = "{\"model\":\"aec-0000000000000000\",\"latent\":[1]}";
    expect(p, "/decode", j, other, strlen(other), 422, "model_mismatch", "JSON for another model");
    expect(p, "/decode", "text/csv", "1,2", 3, 415, "unsupported_media_type", "text/csv latent");

    /* the encode reply decodes (sanity for the cases above) */
    http_post(p, "/decode", j, g_enc.body, g_enc.len, &r);
    CHECK(r.status == 200, "valid JSON latent decodes: %ld", r.status);
    http_resp_free(&r);
}

static void test_binary(const aecd_proc *p, const aecd_proc *other, int dim)
{
    const char *t = "application/x-aec-latent";
    REQUIRE(g_bin.len == AEC_LATENT_HEADER + (size_t)dim * 4, "binary latent length");
    uint8_t *b = malloc(g_bin.len);
    memcpy(b, g_bin.body, g_bin.len);
    http_resp r;

    /* NaN bits in value 7 */
    uint8_t save[4];
    memcpy(save, b + AEC_LATENT_HEADER + 28, 4);
    static const uint8_t nan_bits[4] = {0x00, 0x00, 0xc0, 0x7f};
    memcpy(b + AEC_LATENT_HEADER + 28, nan_bits, 4);
    http_post(p, "/decode", t, b, g_bin.len, &r);
    check_error(&r, 422, "invalid_latent", "binary latent with NaN");
    CHECK((msg_has(&r, "NaN") || msg_has(&r, "finite")) && msg_has(&r, "7"),
          "the message names the value: %s", r.body);
    http_resp_free(&r);
    static const uint8_t inf_bits[4] = {0x00, 0x00, 0x80, 0x7f};
    memcpy(b + AEC_LATENT_HEADER + 28, inf_bits, 4);
    expect(p, "/decode", t, b, g_bin.len, 422, "invalid_latent", "binary latent with +Inf");
    memcpy(b + AEC_LATENT_HEADER + 28, save, 4);

    expect(p, "/decode", t, b, g_bin.len - 1, 422, "invalid_latent", "binary latent cut short");
    expect(p, "/decode", t, b, 10, 422, "invalid_latent", "binary latent header cut short");
    b[0] = 'X';
    expect(p, "/decode", t, b, g_bin.len, 422, "invalid_latent", "bad magic");
    b[0] = 'A';
    b[4] = 9;
    expect(p, "/decode", t, b, g_bin.len, 422, "invalid_latent", "unknown version");
    b[4] = 1;
    b[12] ^= 0x55; /* the model hash */
    http_post(p, "/decode", t, b, g_bin.len, &r);
    CHECK(r.status == 422, "tampered model hash: %ld", r.status);
    http_resp_free(&r);
    free(b);

    /* a latent from another model (another id hash) */
    size_t n;
    uint8_t *png = harness_png(HARNESS_SIDE, HARNESS_SIDE, 3, &n);
    http_resp ob;
    http_post(other, "/encode?format=binary", "image/png", png, n, &ob);
    REQUIRE(ob.status == 200, "encode on the other model");
    http_post(p, "/decode", t, ob.body, ob.len, &r);
    check_error(&r, 422, "model_mismatch", "latent from another model");
    http_resp_free(&r);
    http_resp_free(&ob);
    free(png);
}

/* ---- parameters, methods, paths ----------------------------------------------------------------
 */

static void test_params(const aecd_proc *p)
{
    size_t n;
    uint8_t *png = harness_png(HARNESS_SIDE, HARNESS_SIDE, 4, &n);
    const char *img = "image/png", *lt = "application/x-aec-latent";
    struct {
        const char *path;
        int image; /* else the binary latent */
        const char *what;
    } bad[] = {
        {"/decode?width=-5", 0, "width=-5"},
        {"/decode?width=0", 0, "width=0"},
        {"/decode?width=4097", 0, "width=4097"},
        {"/decode?height=abc", 0, "height=abc"},
        {"/decode?width=12px", 0, "width=12px"},
        {"/decode?width=", 0, "empty width"},
        {"/decode?width", 0, "width without a value"},
        {"/decode?width=5&width=6", 0, "width twice"},
        {"/decode?size=5", 0, "unknown parameter"},
        {"/anomaly?threshold=abc", 1, "threshold=abc"},
        {"/anomaly?threshold=nan", 1, "threshold=nan"},
        {"/anomaly?threshold=inf", 1, "threshold=inf"},
        {"/anomaly?threshold=-1", 1, "threshold=-1"},
        {"/anomaly?threshold=1e999", 1, "threshold=1e999"},
        {"/anomaly?threshold=0x10", 1, "threshold=0x10"},
        {"/anomaly?threshold=1%200", 1, "threshold with a space"},
        {"/anomaly?heatmap=yes", 1, "heatmap=yes"},
        {"/encode?format=xml", 1, "format=xml"},
        {"/encode?dtype=f64", 1, "dtype=f64"},
        {"/encode?width=5", 1, "a parameter of another endpoint"},
        {"/encode?format=%zz", 1, "bad percent-escape"},
        {"/encode?format=json%00", 1, "NUL byte"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bad[i].image)
            expect(p, bad[i].path, img, png, n, 422, "invalid_parameter", bad[i].what);
        else
            expect(p, bad[i].path, lt, g_bin.body, g_bin.len, 422, "invalid_parameter",
                   bad[i].what);
    }
    http_resp r;
    http_post(p, "/decode?width=-5", lt, g_bin.body, g_bin.len, &r);
    CHECK(msg_has(&r, "width") && msg_has(&r, "-5"), "names the parameter and value: %s", r.body);
    http_resp_free(&r);
    CHECK(http_get(p, "/healthz?x=1", &r) == 422, "GET with an unknown parameter: %ld", r.status);
    http_resp_free(&r);

    char *longq = malloc(2100 + 32);
    strcpy(longq, "/encode?format=json&x=");
    memset(longq + strlen(longq), 'a', 2100);
    longq[22 + 2100] = '\0';
    expect(p, longq, img, png, n, 414, "uri_too_long", "query over 2048 bytes");
    free(longq);
    /* percent-encoding is decoded */
    http_post(p, "/encode?format=%62inary", img, png, n, &r);
    CHECK(r.status == 200 && r.len > AEC_LATENT_HEADER, "format=%%62inary means binary: %ld",
          r.status);
    http_resp_free(&r);
    free(png);
}

static void check_405(const aecd_proc *p, const char *method, const char *path, const char *allow)
{
    http_resp r;
    http_opts o = {.method = method};
    http_request(p, path, &o, &r);
    char what[96], a[64];
    snprintf(what, sizeof what, "%s %s", method, path);
    check_error(&r, 405, "method_not_allowed", what);
    CHECK(http_header(&r, "Allow", a, sizeof a) && strcmp(a, allow) == 0, "%s: Allow %s", what,
          allow);
    http_resp_free(&r);
}

static void test_methods_paths(const aecd_proc *p)
{
    check_405(p, "GET", "/encode", "POST");
    check_405(p, "PUT", "/decode", "POST");
    check_405(p, "DELETE", "/anomaly", "POST");
    check_405(p, "POST", "/healthz", "GET, HEAD");
    check_405(p, "PUT", "/readyz", "GET, HEAD");
    check_405(p, "DELETE", "/v1/model", "GET, HEAD");
    check_405(p, "POST", "/metrics", "GET, HEAD");
    check_405(p, "OPTIONS", "/encode", "POST");
    const char *paths[] = {
        "//",        "/nope",          "/encode/",   "/ENCODE",        "/v1/modelz",
        "/v2/model", "/v1/models/a/b", "/healthz/x", "/../etc/passwd", "/%2e%2e/etc/passwd"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        http_resp r;
        http_get(p, paths[i], &r);
        check_error(&r, 404, "not_found", paths[i]);
        http_resp_free(&r);
    }
    http_resp r;
    http_post(p, "/nope", "image/png", "abc", 3, &r);
    check_error(&r, 404, "not_found", "POST with a body to an unknown path");
    http_resp_free(&r);
}

static void test_big_headers(const aecd_proc *p)
{
    size_t n = 100000;
    char *h = malloc(n + 16);
    memcpy(h, "X-Big: ", 7);
    memset(h + 7, 'a', n);
    h[7 + n] = '\0';
    const char *hdrs[] = {h, NULL};
    http_opts o = {.headers = hdrs};
    http_resp r;
    http_request(p, "/healthz", &o, &r);
    CHECK(r.status == 431 || r.status == 400 || r.status == 0,
          "100 KB of headers is refused by the per-connection memory limit (%ld)", r.status);
    http_resp_free(&r);
    free(h);
    CHECK(http_get(p, "/healthz", &r) == 200, "serving after a huge header");
    http_resp_free(&r);
}

/* ---- big uploads
 * ---------------------------------------------------------------------------------- */

static void test_big_uploads(const aecd_proc *p)
{
    size_t big = 100u << 20;
    uint8_t *data = calloc(1, big);
    REQUIRE(data, "oom");
    http_resp r;
    http_post(p, "/encode", "image/png", data, big, &r);
    check_error(&r, 413, "payload_too_large", "100 MB with Content-Length");
    CHECK(r.uploaded < (long long)(big / 2), "refused before the upload was sent (%lld bytes sent)",
          r.uploaded);
    http_resp_free(&r);

    /* a client that sends its body at once (no Expect: 100-continue) still
     * gets the 413, not a connection reset: the server drains, then answers */
    const char *no_expect[] = {"Expect:", NULL};
    http_opts o = {.content_type = "image/png", .body = data, .len = big, .headers = no_expect};
    for (int i = 0; i < 4; i++) {
        http_request(p, i % 2 ? "/anomaly" : "/nope", &o, &r);
        check_error(&r, i % 2 ? 413 : 404, i % 2 ? "payload_too_large" : "not_found",
                    "100 MB with Content-Length, no Expect");
        http_resp_free(&r);
    }

    http_opts c = {.content_type = "image/png", .body = data, .len = big, .chunked = 1};
    http_request(p, "/encode", &c, &r);
    check_error(&r, 413, "payload_too_large", "100 MB chunked (no Content-Length)");
    http_resp_free(&r);

    http_post(p, "/decode", "application/json", data, 17u << 20, &r);
    check_error(&r, 413, "payload_too_large", "JSON body over 16 MiB");
    http_resp_free(&r);
    free(data);

    CHECK(http_get(p, "/healthz", &r) == 200, "serving after the big uploads");
    http_resp_free(&r);
    size_t n;
    uint8_t *png = harness_png(HARNESS_SIDE, HARNESS_SIDE, 8, &n);
    CHECK(http_post(p, "/encode", "image/png", png, n, &r) == 200, "encode after big uploads");
    http_resp_free(&r);
    free(png);
}

/* ---- API keys
 * --------------------------------------------------------------------------------------- */

static void test_auth(const char *model)
{
    char keyfile[512];
    snprintf(keyfile, sizeof keyfile, "%s/key", harness_data_dir());
    const char *key = "s3cret-Key_0123456789";
    char line[64];
    snprintf(line, sizeof line, "  %s\n", key); /* surrounding whitespace is trimmed */
    REQUIRE(test_write_file(keyfile, line, strlen(line)) == 0, "key file");
    aecd_proc p;
    const char *args[] = {"--api-key-file", keyfile, NULL};
    harness_start(&p, model, args, NULL); /* waits for /readyz: no key needed */

    size_t n;
    uint8_t *png = harness_png(HARNESS_SIDE, HARNESS_SIDE, 2, &n);
    http_resp r;
    char hdr[64];
    http_post(&p, "/encode", "image/png", png, n, &r);
    check_error(&r, 401, "unauthorized", "no key");
    CHECK(http_header(&r, "WWW-Authenticate", hdr, sizeof hdr) && strncmp(hdr, "Bearer", 6) == 0,
          "WWW-Authenticate: Bearer");
    http_resp_free(&r);

    const char *wrong[][2] = {{"Authorization: Bearer s3cret-Key_012345678", NULL},
                              {"Authorization: Bearer s3cret-Key_01234567890", NULL},
                              {"Authorization: Basic czNjcmV0", NULL},
                              {"Authorization: Bearer", NULL},
                              {"Authorization: s3cret-Key_0123456789", NULL}};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        http_opts o = {.content_type = "image/png", .body = png, .len = n, .headers = wrong[i]};
        http_request(&p, "/encode", &o, &r);
        check_error(&r, 401, "unauthorized", wrong[i][0]);
        http_resp_free(&r);
    }
    char good[96], good_lower[96];
    snprintf(good, sizeof good, "Authorization: Bearer %s", key);
    snprintf(good_lower, sizeof good_lower, "authorization: bearer  %s", key);
    const char *ok1[] = {good, NULL}, *ok2[] = {good_lower, NULL};
    http_opts o = {.content_type = "image/png", .body = png, .len = n, .headers = ok1};
    CHECK(http_request(&p, "/encode", &o, &r) == 200, "right key: %ld", r.status);
    http_resp_free(&r);
    o.headers = ok2;
    CHECK(http_request(&p, "/encode", &o, &r) == 200, "scheme is case-insensitive: %ld", r.status);
    http_resp_free(&r);

    CHECK(http_get(&p, "/healthz", &r) == 200, "healthz without a key");
    http_resp_free(&r);
    CHECK(http_get(&p, "/readyz", &r) == 200, "readyz without a key");
    http_resp_free(&r);
    const char *guarded[] = {"/v1/model", "/metrics"};
    for (int i = 0; i < 2; i++) {
        http_get(&p, guarded[i], &r);
        check_error(&r, 401, "unauthorized", guarded[i]);
        http_resp_free(&r);
        http_opts g = {.headers = ok1};
        CHECK(http_request(&p, guarded[i], &g, &r) == 200, "%s with the key", guarded[i]);
        http_resp_free(&r);
    }
    http_get(&p, "/nope", &r);
    check_error(&r, 404, "not_found", "unknown path with auth on");
    http_resp_free(&r);
    CHECK(harness_stop(&p) == 0, "auth server exits 0");
    char *log = harness_log(&p);
    CHECK(!strstr(log, key), "the key never appears in the log");
    free(log);

    /* the environment variable works too */
    char env_key[64];
    snprintf(env_key, sizeof env_key, "AEC_API_KEY=%s", key);
    const char *env[] = {env_key, NULL};
    harness_start(&p, model, NULL, env);
    http_post(&p, "/encode", "image/png", png, n, &r);
    check_error(&r, 401, "unauthorized", "AEC_API_KEY: no key");
    http_resp_free(&r);
    o.headers = ok1;
    CHECK(http_request(&p, "/encode", &o, &r) == 200, "AEC_API_KEY: right key");
    http_resp_free(&r);
    CHECK(harness_stop(&p) == 0, "env-key server exits 0");
    free(png);
}

int main(void)
{
    const char *model = harness_model(1);
    const char *model2 = harness_model(2);
    aecd_proc p, other;
    harness_start(&p, model, NULL, NULL);
    harness_start(&other, model2, NULL, NULL);

    size_t n;
    uint8_t *png = harness_png(HARNESS_SIDE, HARNESS_SIDE, 1, &n);
    REQUIRE(http_post(&p, "/encode?format=binary", "image/png", png, n, &g_bin) == 200, "bin");
    REQUIRE(http_post(&p, "/encode", "image/png", png, n, &g_enc) == 200, "enc");
    free(png);
    int dim = (int)((g_bin.len - AEC_LATENT_HEADER) / 4);

    test_bad_images(&p);
    test_multipart(&p);
    test_json(&p, dim);
    test_binary(&p, &other, dim);
    test_params(&p);
    test_methods_paths(&p);
    test_big_uploads(&p);
    test_big_headers(&p);

    http_resp r;
    CHECK(http_get(&p, "/healthz", &r) == 200, "still healthy at the end");
    http_resp_free(&r);
    CHECK(harness_stop(&p) == 0, "exit 0");
    CHECK(harness_stop(&other) == 0, "other: exit 0");
    char *log = harness_log(&p);
    CHECK(!strstr(log, "status=500"), "no 500 in the whole run");
    free(log);

    test_auth(model);
    http_resp_free(&g_bin);
    http_resp_free(&g_enc);
    return TEST_SUMMARY();
}
