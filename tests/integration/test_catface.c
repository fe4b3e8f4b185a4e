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
 * And the rotation recognizer: in a world whose cats also have a white band
 * at the top, `aec-train --arch rotation` learns which way up they are (its
 * validation accuracy), `--calibrate-catface --rotation` puts it into the
 * model, and aecd answers the combined score by default, the rotation score
 * when asked, with a far higher raw score for a cat upside down; a file
 * that is not a recognizer is refused by name, and ?score=rotation on a
 * model without one is 422.
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

/* photo() with a white band over the top fifth (the bottom fifth when
 * upside_down). */
static uint8_t *band_photo(int w, int h, int edge, int upside_down, uint64_t seed, size_t *len)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int band = upside_down ? y >= h - h / 5 : y < h / 5;
            int v = band ? 255 : (x >= edge ? 200 : 40) + (int)(seed % 16);
            for (int c = 0; c < 3; c++)
                rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)v;
        }
    uint8_t *png = harness_png_from_rgb(rgb, w, h, len);
    free(rgb);
    return png;
}

static void write_band_photos(const char *dir, int n, uint64_t seed)
{
    REQUIRE(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    for (int i = 0; i < n; i++) {
        size_t len;
        uint8_t *png = band_photo(110 + i, 100 + i % 7, 30 + i, 0, seed + (uint64_t)i, &len);
        char path[700];
        snprintf(path, sizeof path, "%s/cat.%02d.png", dir, i);
        REQUIRE(test_write_file(path, png, len) == 0, "write photo");
        free(png);
    }
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

/* The last val_accuracy of a --history file of --arch rotation. */
static double last_accuracy(const char *path)
{
    size_t len = 0;
    uint8_t *bytes = test_read_file(path, &len);
    char *text = bytes ? calloc(1, len + 1) : NULL; /* the file is not NUL-terminated */
    if (text)
        memcpy(text, bytes, len);
    free(bytes);
    double acc = -1;
    for (char *p = text; p && (p = strstr(p, "\"val_accuracy\":")); p++)
        acc = atof(p + strlen("\"val_accuracy\":"));
    free(text);
    return acc;
}

static void calibrated_rotation(const char *model, const char *dir)
{
    char train[600], cal[600], cascade[600], rot[600], hist[600], out[600], log[4096];
    snprintf(train, sizeof train, "%s/band-train", dir);
    snprintf(cal, sizeof cal, "%s/band-cal", dir);
    snprintf(cascade, sizeof cascade, "%s/cascade.xml", dir);
    snprintf(rot, sizeof rot, "%s/rotation.safetensors", dir);
    snprintf(hist, sizeof hist, "%s/rotation.history.jsonl", dir);
    snprintf(out, sizeof out, "%s/rotation-face.safetensors", dir);
    write_band_photos(train, 64, 1000);
    write_band_photos(cal, 30, 2000);
    const char *targs[] = {"--arch",    "rotation", "--width", "4", "--data",    train,
                           "--epochs",  "10",       "--batch", "8", "--val",     "0.25",
                           "--seed",    "3",        "--out",   rot, "--history", hist,
                           "--threads", "2",        NULL};
    int st = harness_run_bin("AEC_TRAIN_BIN", targs, NULL, 600, log, sizeof log);
    REQUIRE(st == 0, "aec-train --arch rotation: exit %d: %s", st, log);
    const char *iargs[] = {"--arch", "rotation", "--data", train, "--init",
                           model,    "--out",    rot,      NULL};
    st = harness_run_bin("AEC_TRAIN_BIN", iargs, NULL, 60, log, sizeof log);
    CHECK(st != 0 && strstr(log, "--init"), "--arch rotation with --init is refused: %d %s", st,
          log);
    double acc = last_accuracy(hist);
    CHECK(acc >= 0.9, "it learned which way up this world's cats are: validation accuracy %g", acc);

    const char *cargs[] = {"--calibrate-catface",
                           model,
                           "--cascade",
                           cascade,
                           "--rotation",
                           rot,
                           "--data",
                           cal,
                           "--out",
                           out,
                           NULL};
    st = harness_run_bin("AEC_TRAIN_BIN", cargs, NULL, 300, log, sizeof log);
    REQUIRE(st == 0, "aec-train --calibrate-catface --rotation: exit %d: %s", st, log);
    const char *bargs[] = {"--calibrate-catface",
                           model,
                           "--cascade",
                           cascade,
                           "--rotation",
                           model,
                           "--data",
                           cal,
                           "--out",
                           out,
                           NULL};
    st = harness_run_bin("AEC_TRAIN_BIN", bargs, NULL, 300, log, sizeof log);
    CHECK(st != 0 && strstr(log, model) && strstr(log, "rotation network"),
          "an autoencoder as --rotation is refused by name: exit %d: %s", st, log);

    aecd_proc p;
    harness_start(&p, out, NULL, NULL);
    size_t len, ulen;
    uint8_t *cat = band_photo(125, 104, 50, 0, 77, &len);
    uint8_t *upside = band_photo(125, 104, 50, 1, 77, &ulen);
    cJSON *j = anomaly(&p, "", cat, len, 200);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "rotation");
    CHECK(!strcmp(str(j, "score_kind"), "combined") && num(r, "raw") >= 0,
          "with the recognizer the default is the combined score (%s), with rotation.raw %g",
          str(j, "score_kind"), num(r, "raw"));
    cJSON_Delete(j);
    j = anomaly(&p, "?score=rotation", cat, len, 200);
    double cat_raw = num(cJSON_GetObjectItemCaseSensitive(j, "rotation"), "raw");
    CHECK(!strcmp(str(j, "score_kind"), "rotation"), "?score=rotation");
    cJSON_Delete(j);
    j = anomaly(&p, "?score=rotation", upside, ulen, 200);
    double up_raw = num(cJSON_GetObjectItemCaseSensitive(j, "rotation"), "raw");
    CHECK(up_raw > 5 * cat_raw + 1, "a cat upside down puzzles it: raw %g vs %g", up_raw, cat_raw);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "anomalous")) &&
              num(j, "percentile") == 100 && num(j, "normalized") >= 0.5,
          "and is a rotation anomaly: score %g, threshold %g", num(j, "score"),
          num(j, "threshold"));
    cJSON_Delete(j);
    free(cat);
    free(upside);

    http_resp hr;
    http_get(&p, "/v1/model", &hr);
    cJSON *m = http_json(&hr);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "scores")) == 4,
          "/v1/model lists four scores");
    cJSON_Delete(m);
    http_resp_free(&hr);
    harness_stop(&p);

    /* the face part without a recognizer */
    char face[600];
    snprintf(face, sizeof face, "%s/face.safetensors", dir);
    harness_start(&p, face, NULL, NULL);
    uint8_t *png = band_photo(125, 104, 50, 0, 5, &len);
    anomaly(&p, "?score=rotation", png, len, 422);
    free(png);
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
    calibrated_rotation(model, dir);
    without_face(model);
    first_version(model, dir);
    return TEST_SUMMARY();
}
