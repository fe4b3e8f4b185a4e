/* test_photo_http.c - aecd serving a photo codec (aec/photo.h) next to a
 * 48x48 model, as a user of the photo service sees it:
 *   - GET /v1/models/NAME describes it: kind photo_codec, any size up to
 *     --max-pixels, qualities 1..100, its stream tag;
 *   - POST /encode?model=photo of a 301x197 PNG returns the version-3
 *     stream, byte for byte the stream aec_photo_compress makes in
 *     process; ?quality= changes it (more bytes for a higher quality),
 *     ?size= keeps within the target as aec_photo_compress_size does,
 *     ?format=json carries the same stream in base64;
 *   - POST /decode of the stream (no ?model=: the stream's tag picks the
 *     codec, although the default model is a 48x48 one) returns a PNG of
 *     301x197 with the pixels aec_photo_decompress gives in process;
 *   - what it refuses, each with its code: /anomaly on a codec, 48x48
 *     parameters on it and photo parameters on a 48x48 model, a truncated
 *     or foreign stream, ?model= naming another model, ?width=, an image
 *     beyond --max-pixels;
 *   - the same request gets the same ETag; a daemon whose default model is
 *     the codec starts and serves it without ?model=.
 * The codec is tests/golden/photo-tiny.safetensors (small and untrained:
 * what is tested is the service, not the compression). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aec/image.h"
#include "aec/photo.h"

#include "harness.h"

#define W 301
#define H 197

static void post(const aecd_proc *p, const char *path, const char *type, const void *body,
                 size_t len, http_resp *r)
{
    http_post(p, path, type, body, len, r);
}

/* base64 decoding of a JSON string (standard alphabet, padded). */
static uint8_t *unbase64(const char *s, size_t *out_len)
{
    static const char k[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s), o = 0;
    uint8_t *out = malloc(n / 4 * 3 + 3);
    REQUIRE(out, "oom");
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        const char *c = strchr(k, s[i]);
        REQUIRE(c && s[i], "base64 character");
        acc = (acc << 6) | (unsigned)(c - k);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    *out_len = o;
    return out;
}

static void check_kind_refusals(const aecd_proc *p, const uint8_t *png, size_t png_len,
                                const uint8_t *stream, size_t stream_len)
{
    http_resp r;
    post(p, "/anomaly?model=photo", "image/png", png, png_len, &r);
    check_error(&r, 422, "unsupported_model", "/anomaly on a photo codec");
    http_resp_free(&r);
    post(p, "/encode?model=photo&dtype=f16", "image/png", png, png_len, &r);
    check_error(&r, 422, "invalid_parameter", "dtype on a photo codec");
    http_resp_free(&r);
    post(p, "/encode?model=photo&fit=crop", "image/png", png, png_len, &r);
    check_error(&r, 422, "invalid_parameter", "fit on a photo codec");
    http_resp_free(&r);
    post(p, "/encode?model=photo&quality=5&size=100", "image/png", png, png_len, &r);
    check_error(&r, 422, "invalid_parameter", "quality and size together");
    http_resp_free(&r);
    post(p, "/encode?model=photo&quality=0", "image/png", png, png_len, &r);
    check_error(&r, 422, "invalid_parameter", "quality=0");
    http_resp_free(&r);
    post(p, "/encode?model=photo&quality=101", "image/png", png, png_len, &r);
    check_error(&r, 422, "invalid_parameter", "quality=101");
    http_resp_free(&r);
    post(p, "/encode?quality=50", "image/png", png, png_len, &r);
    check_error(&r, 422, "invalid_parameter", "quality on the 48x48 default model");
    http_resp_free(&r);

    const char *bin = "application/x-aec-latent";
    post(p, "/decode", bin, stream, stream_len - 3, &r);
    check_error(&r, 422, "invalid_latent", "a truncated stream");
    http_resp_free(&r);
    uint8_t *bad = malloc(stream_len + 1);
    REQUIRE(bad, "oom");
    memcpy(bad, stream, stream_len);
    bad[stream_len] = 0;
    post(p, "/decode", bin, bad, stream_len + 1, &r);
    check_error(&r, 422, "invalid_latent", "an extended stream");
    http_resp_free(&r);
    bad[stream_len - 1] ^= 0x5a;
    post(p, "/decode", bin, bad, stream_len, &r);
    check_error(&r, 422, "invalid_latent", "a stream with its last byte changed");
    http_resp_free(&r);
    memcpy(bad, stream, stream_len);
    bad[4] ^= 0xff; /* the model tag */
    post(p, "/decode", bin, bad, stream_len, &r);
    CHECK(check_error(&r, 422, "model_mismatch", "a stream of no served codec") &&
              strstr((const char *)r.body, "no served model"),
          "the message says no served model made it: %s", r.body);
    http_resp_free(&r);
    free(bad);
    post(p, "/decode?model=default", bin, stream, stream_len, &r);
    check_error(&r, 422, "model_mismatch", "?model= naming the 48x48 model for a photo stream");
    http_resp_free(&r);
    post(p, "/decode?width=40", bin, stream, stream_len, &r);
    check_error(&r, 422, "invalid_parameter", "?width= on a photo stream");
    http_resp_free(&r);
    post(p, "/decode?model=photo", "application/json", "{\"latent\":[1,2]}", 16, &r);
    check_error(&r, 422, "model_mismatch", "a JSON latent sent to the photo codec");
    http_resp_free(&r);

    size_t big_len;
    uint8_t *big = harness_png_header_only(20000, 20000, &big_len);
    post(p, "/encode?model=photo", "image/png", big, big_len, &r);
    check_error(&r, 413, "image_too_large", "a 20000x20000 photo beyond --max-pixels");
    http_resp_free(&r);
    free(big);
}

int main(void)
{
    const char *golden = getenv("AEC_SOURCE_DIR");
    if (!golden)
        SKIP("AEC_SOURCE_DIR is not set");
    char model_path[600], repo[600], path[700];
    snprintf(model_path, sizeof model_path, "%s/tests/golden/photo-tiny.safetensors", golden);
    aec_photo *codec = NULL;
    aec_error err = {{0}};
    REQUIRE(aec_photo_load(&codec, model_path, &err) == AEC_OK, "%s", err.msg);

    snprintf(repo, sizeof repo, "%s/models", test_tmpdir());
    REQUIRE(mkdir(repo, 0755) == 0, "mkdir");
    snprintf(path, sizeof path, "%s/default.safetensors", repo);
    harness_copy_file(harness_model(1), path);
    snprintf(path, sizeof path, "%s/photo.safetensors", repo);
    harness_copy_file(model_path, path);

    uint8_t *rgb = malloc((size_t)W * H * 3);
    REQUIRE(rgb, "oom");
    test_synthetic_rgb(rgb, H, W, 7);
    size_t png_len;
    uint8_t *png = harness_png_from_rgb(rgb, W, H, &png_len);

    const char *args[] = {"--max-pixels", "50000000", NULL};
    aecd_proc p;
    harness_start(&p, repo, args, NULL);

    /* the model document */
    http_resp doc;
    CHECK(http_get(&p, "/v1/models/photo", &doc) == 200, "/v1/models/photo");
    cJSON *j = http_json(&doc), *m = cJSON_GetObjectItem(j, "model");
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "state")), "ready") == 0, "ready");
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(m, "kind")), "photo_codec") == 0,
          "kind photo_codec: %s", doc.body);
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(m, "id")), codec->id) == 0, "its id");
    const cJSON *in = cJSON_GetObjectItem(m, "input"), *q = cJSON_GetObjectItem(m, "quality");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(in, "any_size")) &&
              cJSON_GetObjectItem(in, "max_pixels")->valuedouble == 50000000,
          "any size up to --max-pixels");
    CHECK(cJSON_GetObjectItem(q, "min")->valueint == 1 &&
              cJSON_GetObjectItem(q, "max")->valueint == 100 &&
              cJSON_GetArraySize(cJSON_GetObjectItem(q, "lambdas")) == codec->cfg.levels,
          "qualities 1..100 over its levels");
    char tag[16];
    snprintf(tag, sizeof tag, "%08x", aec_photo_tag(codec));
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "stream"), "tag")),
                 tag) == 0,
          "its stream tag %s", tag);
    cJSON_Delete(j);
    http_resp_free(&doc);

    /* /encode: the stream the codec makes in process */
    uint8_t *ref = NULL, *ref_rgb = NULL;
    size_t ref_len = 0;
    REQUIRE(aec_photo_compress(codec, rgb, W, H, AEC_PHOTO_QUALITY_DEFAULT, 1, &ref, &ref_len,
                               &err) == AEC_OK,
            "%s", err.msg);
    http_resp enc;
    post(&p, "/encode?model=photo", "image/png", png, png_len, &enc);
    char buf[128];
    CHECK(enc.status == 200, "/encode?model=photo: %ld %s", enc.status, enc.body);
    CHECK(http_header(&enc, "Content-Type", buf, sizeof buf) &&
              strcmp(buf, "application/x-aec-latent") == 0,
          "a binary stream: %s", buf);
    CHECK(enc.len == ref_len && memcmp(enc.body, ref, ref_len) == 0,
          "the stream is the one made in process (%zu vs %zu bytes)", enc.len, ref_len);
    aec_photo_info info;
    CHECK(aec_photo_stream_info(enc.body, enc.len, &info, &err) == AEC_OK && info.width == W &&
              info.height == H && info.quality == AEC_PHOTO_QUALITY_DEFAULT,
          "version 3, %dx%d, quality 75", W, H);
    CHECK(http_header(&enc, "X-Aec-Quality", buf, sizeof buf) && strcmp(buf, "75") == 0,
          "X-Aec-Quality: 75");
    char etag1[64] = "", etag2[64] = "";
    http_header(&enc, "ETag", etag1, sizeof etag1);
    http_resp again;
    post(&p, "/encode?model=photo", "image/png", png, png_len, &again);
    http_header(&again, "ETag", etag2, sizeof etag2);
    CHECK(etag1[0] && strcmp(etag1, etag2) == 0 && again.len == enc.len &&
              memcmp(again.body, enc.body, enc.len) == 0,
          "the same request: the same bytes and ETag (%s, %s)", etag1, etag2);
    http_resp_free(&again);

    /* qualities and sizes */
    http_resp lo, hi;
    post(&p, "/encode?model=photo&quality=1", "image/png", png, png_len, &lo);
    post(&p, "/encode?model=photo&quality=100", "image/png", png, png_len, &hi);
    CHECK(lo.status == 200 && hi.status == 200 && lo.len < enc.len && enc.len < hi.len,
          "bytes grow with quality: q1 %zu < q75 %zu < q100 %zu", lo.len, enc.len, hi.len);
    size_t target = (lo.len + hi.len) / 2;
    uint8_t *sized = NULL;
    size_t sized_len = 0;
    int sized_q = 0;
    REQUIRE(aec_photo_compress_size(codec, rgb, W, H, target, 1, &sized, &sized_len, &sized_q,
                                    &err) == AEC_OK,
            "%s", err.msg);
    snprintf(path, sizeof path, "/encode?model=photo&size=%zu", target);
    http_resp sz;
    post(&p, path, "image/png", png, png_len, &sz);
    snprintf(tag, sizeof tag, "%d", sized_q);
    CHECK(sz.status == 200 && sz.len <= target && sz.len == sized_len &&
              memcmp(sz.body, sized, sized_len) == 0,
          "?size=%zu: %zu bytes, the stream aec_photo_compress_size makes", target, sz.len);
    CHECK(http_header(&sz, "X-Aec-Quality", buf, sizeof buf) && strcmp(buf, tag) == 0,
          "X-Aec-Quality says the quality found (%s, in process %d)", buf, sized_q);
    http_resp_free(&lo), http_resp_free(&hi), http_resp_free(&sz);
    free(sized);

    http_resp js;
    post(&p, "/encode?model=photo&format=json", "image/png", png, png_len, &js);
    j = http_json(&js);
    size_t dec_len = 0;
    const char *b64 = cJSON_GetStringValue(cJSON_GetObjectItem(j, "stream"));
    uint8_t *dec = b64 ? unbase64(b64, &dec_len) : NULL;
    CHECK(js.status == 200 && dec && dec_len == ref_len && memcmp(dec, ref, ref_len) == 0,
          "?format=json carries the same stream in base64");
    CHECK(j && cJSON_GetObjectItem(j, "width")->valueint == W &&
              cJSON_GetObjectItem(j, "height")->valueint == H &&
              cJSON_GetObjectItem(j, "bytes")->valueint == (int)ref_len,
          "and says its size and bytes");
    free(dec);
    cJSON_Delete(j);
    http_resp_free(&js);

    /* /decode: the default is the 48x48 model; the stream picks the codec */
    int rw = 0, rh = 0;
    REQUIRE(aec_photo_decompress(codec, ref, ref_len, 1u << 30, 1, &ref_rgb, &rw, &rh, &err) ==
                AEC_OK,
            "%s", err.msg);
    http_resp d;
    post(&p, "/decode", "application/x-aec-latent", enc.body, enc.len, &d);
    CHECK(d.status == 200 && http_header(&d, "Content-Type", buf, sizeof buf) &&
              strcmp(buf, "image/png") == 0,
          "/decode of the stream: %ld %s", d.status, d.status == 200 ? "" : (char *)d.body);
    int dw = 0, dh = 0, dc = 0;
    uint8_t *img = d.status == 200 ? harness_decode_png(d.body, d.len, &dw, &dh, &dc) : NULL;
    CHECK(img && dw == W && dh == H && dc == 3, "a %dx%d RGB PNG (%dx%dx%d)", W, H, dw, dh, dc);
    CHECK(img && memcmp(img, ref_rgb, (size_t)W * H * 3) == 0,
          "the pixels aec_photo_decompress gives in process");
    free(img);
    http_resp_free(&d);
    post(&p, "/decode", "application/octet-stream", enc.body, enc.len, &d);
    CHECK(d.status == 200, "application/octet-stream is taken too: %ld", d.status);
    http_resp_free(&d);

    check_kind_refusals(&p, png, png_len, enc.body, enc.len);
    CHECK(harness_stop(&p) == 0, "exit 0");

    /* the codec as the default model */
    const char *args2[] = {"--default-model", "photo", NULL};
    harness_start(&p, repo, args2, NULL);
    http_resp e2, info2;
    post(&p, "/encode", "image/png", png, png_len, &e2);
    CHECK(e2.status == 200 && e2.len == ref_len && memcmp(e2.body, ref, ref_len) == 0,
          "the default codec encodes without ?model=");
    CHECK(http_get(&p, "/v1/model", &info2) == 200 &&
              strstr((const char *)info2.body, "\"photo_codec\""),
          "/v1/model describes the default codec");
    http_resp_free(&e2), http_resp_free(&info2);
    CHECK(harness_stop(&p) == 0, "exit 0");

    http_resp_free(&enc);
    free(ref), free(ref_rgb), free(rgb), free(png);
    aec_photo_free(codec);
    return TEST_SUMMARY();
}
