/* test_codec_http.c - the entropy-coded latent through aecd, as a client
 * uses it:
 *
 * - a codec model's /v1/model describes the codec; /encode?format=binary
 *   returns a v2 stream (first byte 0xA2, within max_bytes), the same bytes
 *   for the same image alone or in a burst that the batcher groups;
 * - /decode of the stream gives the same PNG every time, and the same PNG as
 *   the JSON of ?dtype=coded (the integer symbols) sent back as JSON;
 * - truncated, bit-flipped, extended and garbage streams get 422
 *   invalid_latent (model_mismatch when the tag bytes changed; or, where a
 *   change cannot matter, the same PNG); a
 *   stream of another codec model gets 422 model_mismatch; a model without
 *   tables refuses streams and ?dtype=coded with 422;
 * - rate-aware training works: a larger --lambda gives fewer bytes.
 */
#include <string.h>

#include "harness.h"

static uint8_t *encode_binary(const aecd_proc *p, const uint8_t *png, size_t len, size_t *out_len)
{
    http_resp r = {0};
    http_post(p, "/encode?format=binary", "image/png", png, len, &r);
    char ct[128];
    CHECK(r.status == 200 && http_header(&r, "Content-Type", ct, sizeof ct) &&
              strstr(ct, "application/x-aec-latent"),
          "binary encode: status %ld", r.status);
    uint8_t *b = malloc(r.len ? r.len : 1);
    REQUIRE(b, "oom");
    memcpy(b, r.body, r.len);
    *out_len = r.len;
    http_resp_free(&r);
    return b;
}

/* POST /decode of a stream: 200 with the PNG in *png, or the status. */
static long decode_stream(const aecd_proc *p, const uint8_t *s, size_t len, http_resp *r)
{
    return http_post(p, "/decode", "application/x-aec-latent", s, len, r);
}

static int same_png(const http_resp *r, const http_resp *ref)
{
    return r->status == 200 && r->len == ref->len && memcmp(r->body, ref->body, r->len) == 0;
}

/* A changed stream: 422 invalid_latent, or 200 with exactly the reference PNG. */
static int refused_or_same(const aecd_proc *p, const uint8_t *s, size_t len, const http_resp *ref)
{
    http_resp r = {0};
    decode_stream(p, s, len, &r);
    char code[64] = "";
    cJSON *j = http_json(&r), *e = j ? cJSON_GetObjectItem(j, "error") : NULL;
    cJSON *c = e ? cJSON_GetObjectItem(e, "code") : NULL;
    if (cJSON_IsString(c))
        snprintf(code, sizeof code, "%s", c->valuestring);
    cJSON_Delete(j);
    /* a changed tag byte reads as another model's stream */
    int ok =
        same_png(&r, ref) ||
        (r.status == 422 && (!strcmp(code, "invalid_latent") || !strcmp(code, "model_mismatch")));
    if (!ok)
        fprintf(stderr, "changed stream of %zu bytes: status %ld %s\n", len, r.status,
                (char *)r.body);
    http_resp_free(&r);
    return ok;
}

static size_t max_bytes_of(const aecd_proc *p)
{
    http_resp r = {0};
    http_get(p, "/v1/model", &r);
    cJSON *j = http_json(&r), *codec = j ? cJSON_GetObjectItem(j, "codec") : NULL;
    cJSON *mb = codec ? cJSON_GetObjectItem(codec, "max_bytes") : NULL;
    cJSON *info = codec ? cJSON_GetObjectItem(codec, "info") : NULL;
    CHECK(cJSON_IsNumber(mb) && info && cJSON_GetObjectItem(info, "val_bytes"),
          "/v1/model describes the codec: %s", (char *)r.body);
    size_t v = cJSON_IsNumber(mb) ? (size_t)mb->valuedouble : 0;
    cJSON_Delete(j);
    http_resp_free(&r);
    return v;
}

int main(void)
{
    const char *model = harness_codec_model("0.001"), *model_b = harness_codec_model("0.1");
    aecd_proc p, q;
    harness_start(&p, model, NULL, NULL);
    size_t max_bytes = max_bytes_of(&p);
    size_t png_len = 0;
    uint8_t *png = harness_png(HARNESS_SIDE, HARNESS_SIDE, 5, &png_len);

    size_t len = 0;
    uint8_t *s = encode_binary(&p, png, png_len, &len);
    CHECK(len > 5 && len <= max_bytes && s[0] == 0xA2, "v2 stream: %zu bytes (max %zu), 0x%02x",
          len, max_bytes, s[0]);
    /* the same image in a burst of 12 concurrent requests: the same bytes */
    int same = 1;
    http_resp burst[12];
    memset(burst, 0, sizeof burst);
    http_opts bo = {.content_type = "image/png", .body = png, .len = png_len};
    http_parallel(&p, "/encode?format=binary", &bo, 12, burst);
    for (int i = 0; i < 12; i++) {
        same &= burst[i].status == 200 && burst[i].len == len && !memcmp(burst[i].body, s, len);
        http_resp_free(&burst[i]);
    }
    CHECK(same, "the same image codes to the same bytes however it is batched");

    http_resp ref = {0}, again = {0};
    CHECK(decode_stream(&p, s, len, &ref) == 200 && ref.len > 8 &&
              memcmp(ref.body, "\x89PNG", 4) == 0,
          "stream decodes to a PNG: %ld", ref.status);
    decode_stream(&p, s, len, &again);
    CHECK(same_png(&again, &ref), "decoding is deterministic");
    http_resp_free(&again);

    /* ?dtype=coded as JSON: the integer symbols; sent back as JSON, the same PNG */
    http_resp jr = {0};
    http_post(&p, "/encode?dtype=coded", "image/png", png, png_len, &jr);
    cJSON *j = http_json(&jr);
    cJSON *bytes = j ? cJSON_GetObjectItem(j, "bytes") : NULL;
    CHECK(jr.status == 200 && cJSON_IsNumber(bytes) && (size_t)bytes->valuedouble == len,
          "JSON of ?dtype=coded reports the stream's length: %s", (char *)jr.body);
    if (j) {
        cJSON_DeleteItemFromObject(j, "dtype");
        cJSON_DeleteItemFromObject(j, "bytes");
        cJSON_DeleteItemFromObject(j, "dim");
        char *text = cJSON_PrintUnformatted(j);
        http_resp back = {0};
        http_post(&p, "/decode", "application/json", text, strlen(text), &back);
        CHECK(same_png(&back, &ref), "JSON symbols decode to the stream's PNG (%ld)", back.status);
        http_resp_free(&back);
        free(text);
        cJSON_Delete(j);
    }
    http_resp_free(&jr);

    /* hostile streams */
    uint8_t *w = malloc(len + 128);
    REQUIRE(w, "oom");
    int ok = 1;
    for (size_t cut = 1; cut < len; cut += (cut < 8 ? 1 : 3))
        ok &= refused_or_same(&p, s, cut, &ref);
    for (size_t i = 0; i < len; i++) {
        memcpy(w, s, len);
        w[i] ^= (uint8_t)(1u << (i % 8));
        ok &= refused_or_same(&p, w, len, &ref);
    }
    memcpy(w, s, len);
    memcpy(w + len, "trailing garbage", 16);
    ok &= refused_or_same(&p, w, len + 16, &ref);
    uint64_t rng = 3;
    for (int t = 0; t < 40; t++) {
        size_t n = 5 + (size_t)(test_rand_u64(&rng) % 80);
        memcpy(w, s, 5);
        for (size_t i = 5; i < n; i++)
            w[i] = (uint8_t)test_rand_u64(&rng);
        ok &= refused_or_same(&p, w, n, &ref);
    }
    CHECK(ok, "every changed stream is refused with 422 (or decodes to the same picture)");
    http_resp big = {0};
    uint8_t *huge = calloc(1, max_bytes + 100);
    REQUIRE(huge, "oom");
    huge[0] = 0xA2;
    decode_stream(&p, huge, max_bytes + 100, &big);
    check_error(&big, 422, "invalid_latent", "a stream longer than the model can write");
    http_resp_free(&big);
    free(huge);

    /* another codec model's stream; a larger lambda makes fewer bytes */
    harness_start(&q, model_b, NULL, NULL);
    size_t len_b = 0;
    uint8_t *sb = encode_binary(&q, png, png_len, &len_b);
    http_resp mm = {0};
    decode_stream(&p, sb, len_b, &mm);
    check_error(&mm, 422, "model_mismatch", "another model's stream");
    http_resp_free(&mm);
    size_t total_a = 0, total_b = 0;
    for (int i = 0; i < 8; i++) {
        size_t l1, l2, n = 0;
        uint8_t *img = harness_png(HARNESS_SIDE, HARNESS_SIDE, (uint64_t)(100 + i), &n);
        uint8_t *x = encode_binary(&p, img, n, &l1), *y = encode_binary(&q, img, n, &l2);
        total_a += l1, total_b += l2;
        free(x), free(y), free(img);
    }
    fprintf(stderr, "8 images: %zu bytes at lambda 0.001, %zu at lambda 0.1\n", total_a, total_b);
    CHECK(total_b < total_a, "lambda 0.1 codes in fewer bytes than lambda 0.001: %zu vs %zu",
          total_b, total_a);
    CHECK(harness_stop(&q) == 0, "second server stops cleanly");

    /* a model without tables */
    aecd_proc plain;
    harness_start(&plain, harness_model(1), NULL, NULL);
    http_resp r1 = {0}, r2 = {0};
    decode_stream(&plain, s, len, &r1);
    check_error(&r1, 422, "invalid_latent", "a stream sent to a model without tables");
    http_post(&plain, "/encode?dtype=coded", "image/png", png, png_len, &r2);
    check_error(&r2, 422, "invalid_parameter", "?dtype=coded on a model without tables");
    http_resp_free(&r1), http_resp_free(&r2);
    CHECK(harness_stop(&plain) == 0, "plain server stops cleanly");

    CHECK(harness_stop(&p) == 0, "server stops cleanly after hostile streams");
    http_resp_free(&ref);
    free(w), free(s), free(sb), free(png);
    return TEST_SUMMARY();
}
