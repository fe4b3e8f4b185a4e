/* test_catface.c - the cat-face part of /anomaly, end to end, and models
 * whose aec.anomaly this version does not understand.
 *
 * In this test's world a "cat" is a photo whose right half is brighter than
 * its left, and the "cat-face cascade" (OpenCV's XML format, written here)
 * finds dark-to-bright edges: `aec-train --calibrate-catface` calibrates the
 * trained test model on 30 such photos, aecd serves the result, and:
 *   - a large photo gets the catface score (score_kind, catface.evidence),
 *     or the combined one when asked, and a mirrored one (no edge the
 *     cascade likes) is anomalous by catface;
 *   - a thumbnail below 96 px gets the reconstruction score, unless ?score=
 *     asks for another;
 *   - ?score=catface on a model without the part is 422 unsupported_model;
 *   - /v1/model lists the scores and shows the cascade by its size only;
 *   - a model file with the first version's aec.anomaly fields starts and
 *     serves, uncalibrated, with a calibration_note.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aec/model.h"
#include "harness.h"

static const char CASCADE[] =
    "<?xml version=\"1.0\"?>\n<opencv_storage>\n<cascade>\n<stageType>BOOST</stageType>\n"
    "<featureType>HAAR</featureType>\n<height>8</height>\n<width>8</width>\n"
    "<stageNum>1</stageNum>\n<stages>\n<_>\n<maxWeakCount>1</maxWeakCount>\n"
    "<stageThreshold>0.</stageThreshold>\n<weakClassifiers>\n<_>\n"
    "<internalNodes>0 -1 0 0.1</internalNodes>\n<leafValues>-1. 1.</leafValues></_>"
    "</weakClassifiers></_>\n</stages>\n<features>\n<_>\n<rects>\n<_>0 0 8 8 -1.</_>\n"
    "<_>4 0 4 8 2.</_></rects>\n<tilted>0</tilted></_></features></cascade>\n"
    "</opencv_storage>\n";

/* w x h: dark left part up to column `edge`, bright right part (seed: a
 * little brightness). */
static uint8_t *photo(int w, int h, int edge, int mirrored, uint64_t seed, size_t *len)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int bright = (x >= edge) != mirrored;
            int v = (bright ? 200 : 40) + (int)(seed % 16);
            for (int c = 0; c < 3; c++)
                rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)v;
        }
    uint8_t *png = harness_png_from_rgb(rgb, w, h, len);
    free(rgb);
    return png;
}

static cJSON *anomaly(const aecd_proc *p, const char *query, const uint8_t *png, size_t len,
                      long want)
{
    http_resp r;
    char path[128];
    snprintf(path, sizeof path, "/anomaly%s", query);
    long st = http_post(p, path, "image/png", png, len, &r);
    CHECK(st == want, "POST %s: %ld (want %ld): %s", path, st, want, (char *)r.body);
    cJSON *j = st == want ? http_json(&r) : NULL;
    if (want != 200) {
        check_error(&r, want, "unsupported_model", path);
        cJSON_Delete(j);
        j = NULL;
    }
    http_resp_free(&r);
    return j;
}

static const char *str(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1e300;
}

static void calibrated_face(const char *model, const char *dir)
{
    char cascade[600], photos[600], out[600], log[4096];
    snprintf(cascade, sizeof cascade, "%s/cascade.xml", dir);
    snprintf(photos, sizeof photos, "%s/cats", dir);
    snprintf(out, sizeof out, "%s/face.safetensors", dir);
    REQUIRE(test_write_file(cascade, CASCADE, sizeof CASCADE - 1) == 0, "write cascade");
    REQUIRE(mkdir(photos, 0755) == 0, "mkdir");
    for (int i = 0; i < 30; i++) {
        size_t len;
        uint8_t *png = photo(120 + i, 100, 30 + 2 * i, 0, (uint64_t)i + 1, &len);
        char path[700];
        snprintf(path, sizeof path, "%s/cat.%02d.png", photos, i);
        REQUIRE(test_write_file(path, png, len) == 0, "write photo");
        free(png);
    }
    const char *args[] = {
        "--calibrate-catface", model, "--cascade", cascade, "--data", photos, "--out", out,
        "--threads",           "2",   NULL};
    int st = harness_run_bin("AEC_TRAIN_BIN", args, NULL, 300, log, sizeof log);
    REQUIRE(st == 0, "aec-train --calibrate-catface: exit %d: %s", st, log);
    CHECK(strstr(log, "30 photos scored") != NULL, "it scored the 30 photos: %s", log);

    /* a cascade aec cannot use is refused with the file's name */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/tilted.xml", dir);
    char *tilted = strdup(CASCADE);
    memcpy(strstr(tilted, "<tilted>0"), "<tilted>1", 9);
    test_write_file(bad, tilted, strlen(tilted));
    free(tilted);
    const char *args2[] = {
        "--calibrate-catface", model, "--cascade", bad, "--data", photos, "--out", out, NULL};
    st = harness_run_bin("AEC_TRAIN_BIN", args2, NULL, 300, log, sizeof log);
    CHECK(st != 0 && strstr(log, "tilted.xml") && strstr(log, "tilted"),
          "a tilted cascade: exit %d, message names the file: %s", st, log);

    aecd_proc p;
    harness_start(&p, out, NULL, NULL);
    size_t len;
    uint8_t *cat = photo(130, 100, 60, 0, 99, &len);
    cJSON *j = anomaly(&p, "", cat, len, 200);
    const cJSON *face = cJSON_GetObjectItemCaseSensitive(j, "catface");
    CHECK(!strcmp(str(j, "score_kind"), "catface"), "a large photo: the catface score (%s)",
          str(j, "score_kind"));
    CHECK(num(face, "detections") > 0 && num(face, "evidence") > 1,
          "with the cascade's evidence: %g, %g detections", num(face, "evidence"),
          num(face, "detections"));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "calibrated")), "calibrated");
    cJSON_Delete(j);
    j = anomaly(&p, "?score=combined", cat, len, 200);
    CHECK(!strcmp(str(j, "score_kind"), "combined") &&
              cJSON_GetObjectItemCaseSensitive(j, "catface"),
          "?score=combined");
    cJSON_Delete(j);
    j = anomaly(&p, "?score=catface", cat, len, 200);
    CHECK(!strcmp(str(j, "score_kind"), "catface") &&
              cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "anomalous")),
          "a cat of this world is no catface anomaly (score %g, threshold %g)", num(j, "score"),
          num(j, "threshold"));
    cJSON_Delete(j);
    free(cat);

    uint8_t *mirror = photo(130, 100, 60, 1, 99, &len);
    j = anomaly(&p, "?score=catface", mirror, len, 200);
    face = cJSON_GetObjectItemCaseSensitive(j, "catface");
    CHECK(num(face, "detections") == 0 && num(face, "evidence") < 1, "the mirror has no face");
    CHECK(num(j, "score") >= num(j, "threshold") && num(j, "percentile") == 100 &&
              num(j, "normalized") >= 0.5,
          "and scores at or above every calibration cat: score %g, threshold %g", num(j, "score"),
          num(j, "threshold"));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "anomalous")) ==
              (num(j, "score") > num(j, "threshold")),
          "anomalous: above the threshold");
    cJSON_Delete(j);
    free(mirror);

    uint8_t *thumb = photo(HARNESS_SIDE, HARNESS_SIDE, 8, 0, 5, &len);
    j = anomaly(&p, "", thumb, len, 200);
    CHECK(!strcmp(str(j, "score_kind"), "reconstruction") &&
              !cJSON_GetObjectItemCaseSensitive(j, "catface"),
          "a thumbnail below 96 px: the reconstruction score");
    cJSON_Delete(j);
    j = anomaly(&p, "?score=combined", thumb, len, 200);
    CHECK(!strcmp(str(j, "score_kind"), "combined"), "unless ?score= asks");
    cJSON_Delete(j);
    free(thumb);

    http_resp r;
    http_get(&p, "/v1/model", &r);
    cJSON *m = http_json(&r);
    const cJSON *scores = cJSON_GetObjectItemCaseSensitive(m, "scores");
    const cJSON *casc = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "anomaly"), "catface"),
        "cascade");
    CHECK(cJSON_GetArraySize(scores) == 3, "/v1/model lists three scores");
    CHECK(num(casc, "stages") == 1 && num(casc, "features") == 1,
          "and shows the cascade by its size");
    CHECK(r.len < 100000, "without the cascade itself (%zu bytes)", r.len);
    cJSON_Delete(m);
    http_resp_free(&r);
    harness_stop(&p);
}

static void without_face(const char *model)
{
    aecd_proc p;
    harness_start(&p, model, NULL, NULL);
    size_t len;
    uint8_t *png = photo(130, 100, 60, 0, 7, &len);
    anomaly(&p, "?score=catface", png, len, 422);
    cJSON *j = anomaly(&p, "", png, len, 200);
    CHECK(!strcmp(str(j, "score_kind"), "reconstruction"), "no face part: reconstruction");
    cJSON_Delete(j);
    free(png);
    harness_stop(&p);
}

/* A file of the first version: its aec.anomaly had a ratio score. */
static void first_version(const char *model, const char *dir)
{
    aec_model *m = NULL;
    aec_error err;
    REQUIRE(aec_model_load(&m, model, &err) == AEC_OK, "load: %s", err.msg);
    free(m->anomaly_json);
    m->anomaly_json = strdup(
        "{\"score\":\"(mse + floor) / (baseline_mse + floor)\",\"baseline\":\"box downsample by "
        "factor, bilinear upsample\",\"factor\":4,\"floor\":0.0001,\"count\":819,\"mean\":1.1,"
        "\"std\":0.3,\"p50\":1,\"p90\":1.5,\"p95\":1.7,\"p99\":2.1,\"max\":3,\"threshold\":2.1,"
        "\"threshold_rule\":\"p99\",\"mse_mean\":0.004,\"quantiles\":[0.5,1,2.1]}");
    char path[600];
    snprintf(path, sizeof path, "%s/v1.safetensors", dir);
    REQUIRE(aec_model_save(m, path, &err) == AEC_OK, "save: %s", err.msg);
    aec_model_free(m);
    aecd_proc p;
    harness_start(&p, path, NULL, NULL);
    size_t len;
    uint8_t *png = photo(HARNESS_SIDE, HARNESS_SIDE, 8, 0, 5, &len);
    cJSON *j = anomaly(&p, "", png, len, 200);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "calibrated")) &&
              strstr(str(j, "calibration_note"), "earlier version"),
          "a first-version file serves, uncalibrated, saying so: %s", str(j, "calibration_note"));
    CHECK(num(j, "score") == num(j, "mse"), "scored by raw MSE");
    cJSON_Delete(j);
    free(png);
    http_resp r;
    http_get(&p, "/v1/model", &r);
    CHECK(strstr((char *)r.body, "\"calibrated\":false") &&
              strstr((char *)r.body, "calibration_note"),
          "/v1/model says so too");
    http_resp_free(&r);
    harness_stop(&p);
}

int main(void)
{
    const char *model = harness_model(1);
    const char *dir = test_tmpdir();
    calibrated_face(model, dir);
    without_face(model);
    first_version(model, dir);
    return TEST_SUMMARY();
}
