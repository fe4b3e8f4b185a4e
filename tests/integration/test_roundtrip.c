/* test_roundtrip.c - the server computes exactly what the library computes.
 *   encode -> decode through HTTP == aec_model_reconstruct in process (PNG
 *   pixels identical), latents bit-identical, batched == unbatched, resized
 *   decode == aec_tensor_resize of the reconstruction, anomaly numbers and
 *   heatmap == aec_anomaly_* in process, and f16 / u8 latents decode close
 *   to f32: PSNR >= 40 dB (f16) and >= 30 dB (u8) against the f32 decode. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/anomaly.h"
#include "aec/image.h"
#include "aec/latent.h"
#include "aec/model.h"
#include "harness.h"

#define PSNR_F16_MIN 40.0
#define PSNR_U8_MIN 30.0
#define HEATMAP_MAX 0.1f /* documented in openapi.yaml and routes.c */

typedef struct {
    aec_model *m;
    aec_workspace *ws;
    aec_anomaly_calib calib;
    size_t in_count, latent_count;
} local_model;

static void local_load(local_model *lm, const char *path)
{
    aec_error err;
    REQUIRE(aec_model_load(&lm->m, path, &err) == AEC_OK, "load: %s", err.msg);
    REQUIRE(aec_workspace_create(&lm->ws, lm->m, 1, 0, &err) == AEC_OK, "ws: %s", err.msg);
    REQUIRE(aec_anomaly_calib_from_model(lm->m, &lm->calib, &err) == AEC_OK, "calib");
    lm->in_count = aec_model_input_count(lm->m);
    lm->latent_count = aec_model_latent_count(lm->m);
}

/* The image as the server sees it: the same loader, the same limit. */
static float *local_tensor(const local_model *lm, const uint8_t *img, size_t len)
{
    float *t = malloc(lm->in_count * sizeof(float));
    aec_error err;
    REQUIRE(aec_image_load_tensor(img, len, 40000000, lm->m->input.c, lm->m->input.h,
                                  lm->m->input.w, t, &err) == AEC_OK,
            "load tensor: %s", err.msg);
    return t;
}

static uint8_t *pixels_of_png(const uint8_t *png, size_t len, int w, int h)
{
    int pw, ph, pc;
    uint8_t *px = harness_decode_png(png, len, &pw, &ph, &pc);
    REQUIRE(px && pw == w && ph == h && pc == 3, "png %dx%dx%d", pw, ph, pc);
    return px;
}

/* Pixels of planar floats as the server's PNG writer would store them. */
static uint8_t *pixels_of_tensor(const float *chw, int c, int h, int w)
{
    uint8_t *png;
    size_t len;
    aec_error err;
    REQUIRE(aec_image_encode_png(chw, c, h, w, &png, &len, &err) == AEC_OK, "png: %s", err.msg);
    int pw, ph, pc;
    uint8_t *px = harness_decode_png(png, len, &pw, &ph, &pc);
    REQUIRE(px && pw == w && ph == h, "decode own png");
    free(png);
    return px;
}

static float *latent_from_json(const http_resp *r, size_t dim)
{
    cJSON *j = http_json(r);
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(j, "latent");
    REQUIRE(cJSON_IsArray(lat) && (size_t)cJSON_GetArraySize(lat) == dim, "latent array");
    float *v = malloc(dim * sizeof(float));
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, lat) v[i++] = (float)e->valuedouble;
    cJSON_Delete(j);
    return v;
}

/* ---- exactness ------------------------------------------------------------------------ */

static void check_image(const aecd_proc *p, const local_model *lm, const uint8_t *img, size_t len,
                        const char *ctype, const char *what)
{
    const aec_shape *s = &lm->m->input;
    float *x = local_tensor(lm, img, len);
    float *lat = malloc(lm->latent_count * sizeof(float));
    float *rec = malloc(lm->in_count * sizeof(float));
    aec_model_encode(lm->m, lm->ws, x, 1, lat);
    aec_model_reconstruct(lm->m, lm->ws, x, 1, rec);

    http_resp enc, dec;
    REQUIRE(http_post(p, "/encode", ctype, img, len, &enc) == 200, "%s: encode", what);
    float *srv_lat = latent_from_json(&enc, lm->latent_count);
    CHECK(memcmp(srv_lat, lat, lm->latent_count * sizeof(float)) == 0,
          "%s: the JSON latent is bit-identical to aec_model_encode", what);
    REQUIRE(http_post(p, "/decode", "application/json", enc.body, enc.len, &dec) == 200,
            "%s: decode", what);
    uint8_t *got = pixels_of_png(dec.body, dec.len, s->w, s->h);
    uint8_t *want = pixels_of_tensor(rec, s->c, s->h, s->w);
    size_t n = (size_t)s->w * s->h * 3;
    CHECK(memcmp(got, want, n) == 0,
          "%s: encode -> decode gives exactly the model's reconstruction (PSNR %.1f dB)", what,
          harness_psnr(got, want, n));
    free(got);
    free(want);
    http_resp_free(&dec);

    /* a resized decode is aec_tensor_resize of the reconstruction */
    int ow = 40, oh = 24;
    REQUIRE(http_post(p, "/decode?width=40&height=24", "application/json", enc.body, enc.len,
                      &dec) == 200,
            "%s: resized decode", what);
    float *big = malloc((size_t)s->c * ow * oh * sizeof(float));
    aec_error err;
    REQUIRE(aec_tensor_resize(rec, s->c, s->h, s->w, big, oh, ow, &err) == AEC_OK, "resize");
    got = pixels_of_png(dec.body, dec.len, ow, oh);
    want = pixels_of_tensor(big, s->c, oh, ow);
    CHECK(memcmp(got, want, (size_t)ow * oh * 3) == 0, "%s: resized decode is exact", what);
    free(got);
    free(want);
    free(big);
    http_resp_free(&dec);
    http_resp_free(&enc);

    /* anomaly: the same numbers as in process */
    aec_anomaly_result ar;
    aec_anomaly_score(&lm->calib, x, rec, s->c, s->h, s->w, -1.0, &ar);
    http_resp an;
    REQUIRE(http_post(p, "/anomaly", ctype, img, len, &an) == 200, "%s: anomaly", what);
    cJSON *j = http_json(&an);
    const cJSON *score = cJSON_GetObjectItemCaseSensitive(j, "score");
    const cJSON *mse = cJSON_GetObjectItemCaseSensitive(j, "mse");
    const cJSON *pct = cJSON_GetObjectItemCaseSensitive(j, "percentile");
    CHECK(cJSON_IsNumber(score) && score->valuedouble == ar.score, "%s: score %.17g vs %.17g", what,
          cJSON_IsNumber(score) ? score->valuedouble : NAN, ar.score);
    CHECK(cJSON_IsNumber(mse) && mse->valuedouble == ar.mse, "%s: mse", what);
    CHECK(cJSON_IsNumber(pct) && pct->valuedouble == ar.percentile, "%s: percentile", what);
    cJSON_Delete(j);
    http_resp_free(&an);
    free(x);
    free(lat);
    free(rec);
    free(srv_lat);
}

/* ---- heatmap ------------------------------------------------------------------------------ */

static uint8_t *base64_decode(const char *s, size_t *out_len)
{
    size_t n = strlen(s);
    uint8_t *out = malloc(n / 4 * 3 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *q = strchr(abc, s[i]);
        if (!q) {
            free(out);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)(q - abc);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    *out_len = o;
    return out;
}

static void check_heatmap(const aecd_proc *p, const local_model *lm, const uint8_t *img, size_t len)
{
    const aec_shape *s = &lm->m->input;
    float *x = local_tensor(lm, img, len);
    float *rec = malloc(lm->in_count * sizeof(float));
    aec_model_reconstruct(lm->m, lm->ws, x, 1, rec);
    float *map = malloc((size_t)s->h * s->w * sizeof(float));
    aec_anomaly_error_map(x, rec, s->c, s->h, s->w, map);
    for (int i = 0; i < s->h * s->w; i++)
        map[i] = map[i] >= HEATMAP_MAX ? 1.0f : map[i] / HEATMAP_MAX;
    uint8_t *png;
    size_t plen;
    aec_error err;
    REQUIRE(aec_image_encode_png(map, 1, s->h, s->w, &png, &plen, &err) == AEC_OK, "png");

    http_resp r;
    REQUIRE(http_post(p, "/anomaly?heatmap=1", "image/png", img, len, &r) == 200, "heatmap");
    cJSON *j = http_json(&r);
    const cJSON *hm = cJSON_GetObjectItemCaseSensitive(j, "heatmap_png");
    const cJSON *mx = cJSON_GetObjectItemCaseSensitive(j, "heatmap_max");
    CHECK(cJSON_IsNumber(mx) && fabs(mx->valuedouble - HEATMAP_MAX) < 1e-6, "heatmap_max 0.1");
    size_t hl = 0;
    uint8_t *got = cJSON_IsString(hm) ? base64_decode(hm->valuestring, &hl) : NULL;
    int gw = 0, gh = 0, gc = 0, ww = 0, wh = 0, wc = 0;
    uint8_t *gp = got ? harness_decode_png(got, hl, &gw, &gh, &gc) : NULL;
    uint8_t *wp = harness_decode_png(png, plen, &ww, &wh, &wc);
    CHECK(gp && gw == s->w && gh == s->h && gc == 1, "heatmap is a %dx%d grey PNG", s->w, s->h);
    CHECK(gp && wp && gw == ww && gh == wh && memcmp(gp, wp, (size_t)gw * gh) == 0,
          "heatmap == error map / 0.1, clamped");
    free(gp);
    free(wp);
    free(got);
    free(png);
    cJSON_Delete(j);
    http_resp_free(&r);
    free(map);
    free(x);
    free(rec);
}

/* ---- quantized latents --------------------------------------------------------------------- */

static void check_dtypes(const aecd_proc *p, const uint8_t *const *imgs, const size_t *lens, int n,
                         double *min_f16, double *min_u8)
{
    *min_f16 = *min_u8 = INFINITY;
    for (int i = 0; i < n; i++) {
        uint8_t *px[3] = {0};
        const char *dts[3] = {"f32", "f16", "u8"};
        for (int d = 0; d < 3; d++) {
            char path[64];
            snprintf(path, sizeof path, "/encode?format=binary&dtype=%s", dts[d]);
            http_resp e, r;
            REQUIRE(http_post(p, path, "image/png", imgs[i], lens[i], &e) == 200, "encode %s",
                    dts[d]);
            REQUIRE(http_post(p, "/decode", "application/x-aec-latent", e.body, e.len, &r) == 200,
                    "decode %s: %s", dts[d], r.body);
            px[d] = pixels_of_png(r.body, r.len, HARNESS_SIDE, HARNESS_SIDE);
            http_resp_free(&e);
            http_resp_free(&r);
        }
        size_t np = (size_t)HARNESS_SIDE * HARNESS_SIDE * 3;
        double f16 = harness_psnr(px[0], px[1], np), u8 = harness_psnr(px[0], px[2], np);
        *min_f16 = f16 < *min_f16 ? f16 : *min_f16;
        *min_u8 = u8 < *min_u8 ? u8 : *min_u8;
        for (int d = 0; d < 3; d++)
            free(px[d]);
    }
    CHECK(*min_f16 >= PSNR_F16_MIN, "f16 latents decode within %.0f dB of f32 (min %.1f dB)",
          PSNR_F16_MIN, *min_f16);
    CHECK(*min_u8 >= PSNR_U8_MIN, "u8 latents decode within %.0f dB of f32 (min %.1f dB)",
          PSNR_U8_MIN, *min_u8);
}

/* ---- batching does not change results ---------------------------------------------------------
 */

static void check_batched(const aecd_proc *p, const uint8_t *img, size_t len)
{
    http_resp one;
    REQUIRE(http_post(p, "/encode?format=binary", "image/png", img, len, &one) == 200, "one");
    enum { N = 24 };
    http_resp r[N];
    http_opts o = {.content_type = "image/png", .body = img, .len = len};
    http_parallel(p, "/encode?format=binary", &o, N, r);
    int same = 0;
    for (int i = 0; i < N; i++) {
        same +=
            r[i].status == 200 && r[i].len == one.len && memcmp(r[i].body, one.body, one.len) == 0;
        http_resp_free(&r[i]);
    }
    CHECK(same == N, "%d concurrent (batched) encodes equal the single one bit for bit (%d)", N,
          same);
    http_resp_free(&one);
}

int main(void)
{
    const char *model = harness_model(1);
    local_model lm;
    local_load(&lm, model);
    aecd_proc p;
    harness_start(&p, model, NULL, NULL);

    enum { NIMG = 6 };
    uint8_t *imgs[NIMG];
    size_t lens[NIMG];
    for (int i = 0; i < NIMG; i++) {
        imgs[i] = harness_png(HARNESS_SIDE, HARNESS_SIDE, 500 + (uint64_t)i, &lens[i]);
        char what[32];
        snprintf(what, sizeof what, "image %d", i);
        check_image(&p, &lm, imgs[i], lens[i], "image/png", what);
    }
    size_t jl, bl;
    uint8_t *jpg = harness_jpeg(40, 30, 3, &jl);
    check_image(&p, &lm, jpg, jl, "image/jpeg", "40x30 JPEG");
    uint8_t *big = harness_png(64, 48, 4, &bl);
    check_image(&p, &lm, big, bl, "image/png", "64x48 PNG");
    check_heatmap(&p, &lm, imgs[0], lens[0]);
    double f16, u8;
    check_dtypes(&p, (const uint8_t *const *)imgs, lens, NIMG, &f16, &u8);
    fprintf(stderr, "measured: f16 vs f32 decode PSNR >= %.1f dB, u8 >= %.1f dB\n", f16, u8);
    check_batched(&p, imgs[1], lens[1]);
    CHECK(harness_stop(&p) == 0, "exit 0");

    for (int i = 0; i < NIMG; i++)
        free(imgs[i]);
    free(jpg);
    free(big);
    aec_workspace_free(lm.ws);
    aec_model_free(lm.m);
    return TEST_SUMMARY();
}
