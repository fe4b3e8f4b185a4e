/* test_cascade.c - Haar cascades (src/engine/cascade.c): reading OpenCV's
 * XML, the JSON form, refusals, and what a scan finds; the cat-face part of
 * the anomaly score built on it; OpenCV's own cat-face cascade when Debian's
 * opencv-data is installed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/anomaly.h"
#include "aec/cascade.h"
#include "aec/safetensors.h"
#include "testutil.h"

#define CATFACE "/usr/share/opencv4/haarcascades/haarcascade_frontalcatface.xml"
#define CATFACE_EXT "/usr/share/opencv4/haarcascades/haarcascade_frontalcatface_extended.xml"

/* An 8x8 cascade in OpenCV's format: stage 1 passes a window whose right
 * half is brighter than its left (the feature: 2 x right - whole); with
 * impossible = 1 a second stage then rejects every window. Returns one of
 * 8 static buffers, so that a table can hold several. */
static char *edge_xml(int impossible, const char *rect2, const char *tilted)
{
    static char bufs[8][4096];
    static int next;
    char *buf = bufs[next++ % 8];
    snprintf(buf, sizeof bufs[0],
             "<?xml version=\"1.0\"?>\n<opencv_storage>\n<!-- a test cascade -->\n<cascade>\n"
             "  <stageType>BOOST</stageType>\n  <featureType>HAAR</featureType>\n"
             "  <height>8</height>\n  <width>8</width>\n  <stageNum>%d</stageNum>\n"
             "  <stages>\n"
             "    <_>\n      <maxWeakCount>1</maxWeakCount>\n"
             "      <stageThreshold>0.</stageThreshold>\n      <weakClassifiers>\n"
             "        <_>\n          <internalNodes>\n            0 -1 0 0.1</internalNodes>\n"
             "          <leafValues>\n            -1. 1.</leafValues></_></weakClassifiers></_>\n"
             "%s"
             "  </stages>\n  <features>\n"
             "    <_>\n      <rects>\n        <_>\n          0 0 8 8 -1.</_>\n"
             "        <_>\n          %s</_></rects>\n      <tilted>%s</tilted></_></features>"
             "</cascade>\n</opencv_storage>\n",
             impossible ? 2 : 1,
             impossible ? "    <_>\n      <maxWeakCount>1</maxWeakCount>\n"
                          "      <stageThreshold>5.</stageThreshold>\n      <weakClassifiers>\n"
                          "        <_>\n          <internalNodes>0 -1 0 0.1</internalNodes>\n"
                          "          <leafValues>-1. 1.</leafValues></_></weakClassifiers></_>\n"
                        : "",
             rect2, tilted);
    return buf;
}

static aec_cascade *parse(const char *xml, aec_status *st, aec_error *err)
{
    aec_cascade *c = NULL;
    *st = aec_cascade_parse_xml(xml, strlen(xml), &c, err);
    return c;
}

/* w x h, left half at `left`, right half at `right` (grey). */
static aec_rgb_image halves(int w, int h, int left, int right)
{
    aec_rgb_image img = {w, h, malloc((size_t)w * h * 3)};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            memset(img.rgb + ((size_t)y * w + x) * 3, x < w / 2 ? left : right, 3);
    return img;
}

static void scanning(void)
{
    aec_error err = {{0}};
    aec_status st;
    aec_cascade *c = parse(edge_xml(0, "4 0 4 8 2.", "0"), &st, &err);
    REQUIRE(st == AEC_OK && c, "the test cascade parses: %s", err.msg);
    CHECK(aec_cascade_stages(c) == 1, "one stage");
    aec_rgb_image dark_left = halves(64, 48, 20, 230), dark_right = halves(64, 48, 230, 20);
    aec_rgb_image flat = halves(64, 48, 128, 128);
    aec_cascade_result a, b, f;
    REQUIRE(aec_cascade_scan(c, &dark_left, &a, &err) == AEC_OK, "scan: %s", err.msg);
    REQUIRE(aec_cascade_scan(c, &dark_right, &b, &err) == AEC_OK, "scan: %s", err.msg);
    REQUIRE(aec_cascade_scan(c, &flat, &f, &err) == AEC_OK, "scan: %s", err.msg);
    /* 64x48 is scanned at 400x300 and the pyramid below it */
    CHECK(a.windows == b.windows && a.windows > 30000, "every window of the pyramid: %ld",
          a.windows);
    CHECK(a.detections > 0 && a.group > 0 && a.group <= a.detections,
          "windows on a dark-to-bright edge pass: %ld (largest group %ld)", a.detections, a.group);
    CHECK(fabs(a.evidence - (1 + log1p((double)a.group))) < 1e-12, "evidence = S + log(1 + group)");
    CHECK(b.detections == 0 && f.detections == 0, "the mirrored edge and a flat image do not");
    CHECK(b.evidence > 0 && b.evidence < 1 && fabs(b.evidence - exp(-1 + 1e-5)) < 1e-6,
          "below S the evidence is the best window's partial credit: %g", b.evidence);
    CHECK(a.evidence > b.evidence, "more face, more evidence");

    /* JSON: the same cascade back, the same scan */
    char *json = aec_cascade_to_json(c);
    aec_cascade *c2 = NULL;
    REQUIRE(json && aec_cascade_from_json(json, &c2, &err) == AEC_OK, "JSON back: %s", err.msg);
    char *json2 = aec_cascade_to_json(c2);
    CHECK(json2 && !strcmp(json, json2), "JSON round trip is exact");
    aec_cascade_result a2;
    aec_cascade_scan(c2, &dark_left, &a2, &err);
    CHECK(a2.detections == a.detections && a2.evidence == a.evidence, "and scans the same");
    free(json2);

    /* a second stage that rejects everything: depth between 1 and 2 */
    aec_cascade *c3 = parse(edge_xml(1, "4 0 4 8 2.", "0"), &st, &err);
    REQUIRE(st == AEC_OK, "two stages parse: %s", err.msg);
    aec_cascade_result d;
    aec_cascade_scan(c3, &dark_left, &d, &err);
    CHECK(d.detections == 0 && d.evidence > 1 && d.evidence < 2,
          "a window that passed stage 1 only: evidence %g", d.evidence);

    /* refusals of the JSON form */
    const char *bad_json[] = {
        "",
        "[]",
        "{\"window\":[8,8]}",
        "{\"window\":[8,8],\"stages\":[],\"stumps\":[],\"features\":[]}",
        "{\"window\":[8,8],\"stages\":[[0,2]],\"stumps\":[[0,0.1,-1,1]],\"features\":"
        "[[0,0,8,8,-1,4,0,4,8,2]]}",
        "{\"window\":[8,8],\"stages\":[[0,1]],\"stumps\":[[1,0.1,-1,1]],\"features\":"
        "[[0,0,8,8,-1,4,0,4,8,2]]}",
        "{\"window\":[8,8],\"stages\":[[0,1]],\"stumps\":[[0,0.1,-1,1]],\"features\":"
        "[[0,0,9,8,-1,4,0,4,8,2]]}",
        "{\"window\":[2,8],\"stages\":[[0,1]],\"stumps\":[[0,0.1,-1,1]],\"features\":"
        "[[0,0,1,1,-1,1,0,1,1,2]]}",
        "{\"window\":[8,8],\"stages\":[[0,1]],\"stumps\":[[0,0.1,-1,1]],\"features\":"
        "[[0,0,8,8,-1,4,0,4,8]]}",
    };
    for (size_t i = 0; i < sizeof bad_json / sizeof *bad_json; i++) {
        aec_cascade *x = NULL;
        CHECK(aec_cascade_from_json(bad_json[i], &x, &err) != AEC_OK && !x,
              "JSON refused (%zu): %s", i, err.msg);
    }
    free(json);
    aec_cascade_free(c);
    aec_cascade_free(c2);
    aec_cascade_free(c3);
    aec_image_free(&dark_left);
    aec_image_free(&dark_right);
    aec_image_free(&flat);
}

static void refusals(void)
{
    aec_error err = {{0}};
    aec_status st;
    struct {
        const char *xml, *why;
        aec_status want;
    } cases[] = {
        {edge_xml(0, "4 0 4 8 2.", "1"), "a tilted feature", AEC_ERR_UNSUPPORTED},
        {edge_xml(0, "4 0 5 8 2.", "0"), "a rectangle outside the window", AEC_ERR_FORMAT},
        {edge_xml(0, "4 0 4 8", "0"), "a rectangle of four numbers", AEC_ERR_FORMAT},
        {edge_xml(0, "4 0 4 8 2. 7", "0"), "a rectangle of six numbers", AEC_ERR_FORMAT},
        {edge_xml(0, "4 0 4 8 nan", "0"), "a weight that is not a number", AEC_ERR_FORMAT},
        {"", "nothing", AEC_ERR_FORMAT},
        {"<opencv_storage><cascade>", "unclosed tags", AEC_ERR_FORMAT},
        {"<opencv_storage></cascade>", "a closing tag that closes nothing", AEC_ERR_FORMAT},
        {"<a><!-- never ends", "an unterminated comment", AEC_ERR_FORMAT},
        {"<opencv_storage><cascade></cascade></opencv_storage>", "an empty cascade",
         AEC_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *copy = strdup(cases[i].xml);
        aec_cascade *c = parse(copy, &st, &err);
        CHECK(st == cases[i].want && !c, "%s refused: %s", cases[i].why, err.msg);
        free(copy);
    }
    /* a stump that is not one (a tree node), a feature index out of range */
    char *x = strdup(edge_xml(0, "4 0 4 8 2.", "0"));
    char *p = strstr(x, "0 -1 0 0.1");
    memcpy(p, "1 -1 0 0.1", 10);
    aec_cascade *c = parse(x, &st, &err);
    CHECK(st == AEC_ERR_FORMAT && !c, "a tree node refused: %s", err.msg);
    memcpy(p, "0 -1 3 0.1", 10);
    c = parse(x, &st, &err);
    CHECK(st == AEC_ERR_FORMAT && !c, "a feature out of range refused: %s", err.msg);
    free(x);
    /* nested too deep */
    char deep[40 * 3 + 1] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "<a>");
    c = parse(deep, &st, &err);
    CHECK(st == AEC_ERR_FORMAT && !c, "deep nesting refused: %s", err.msg);
    /* a NUL byte inside */
    const char *ok = edge_xml(0, "4 0 4 8 2.", "0");
    size_t len = strlen(ok);
    char *nul = malloc(len);
    memcpy(nul, ok, len);
    nul[len / 2] = 0;
    CHECK(aec_cascade_parse_xml(nul, len, &c, &err) == AEC_ERR_FORMAT && !c, "a NUL refused");
    /* every truncation (but of the final newline) is refused, none crashes */
    int refused = 0;
    len--;
    for (size_t n = 0; n < len; n++) {
        c = NULL;
        refused += aec_cascade_parse_xml(ok, n, &c, NULL) != AEC_OK && !c;
        aec_cascade_free(c);
    }
    CHECK(refused == (int)len, "all %zu truncations refused (%d)", len, refused);
    free(nul);
}

/* The anomaly score's face part on a hand-made calibration. */
static void face_score(void)
{
    aec_anomaly_calib c = {0};
    c.calibrated = 1;
    c.count = 99;
    c.face.count = 99;
    for (int i = 0; i < AEC_ANOMALY_QUANTILES; i++) {
        c.face.reconstruction.q[i] = i;       /* reconstruction scores 0..100 */
        c.face.evidence.q[i] = 20 + i / 10.0; /* evidence 20..30 */
        c.face.catface.q[i] = i / 50.0;
        c.face.combined.q[i] = i / 25.0;
    }
    c.face.catface.threshold = 1.9;
    c.face.combined.threshold = 3.5;
    aec_anomaly_result r = {.score = 50};
    aec_anomaly_score_face(&c, 25, 0, AEC_SCORE_CATFACE, -1, &r);
    CHECK(fabs(r.score - -log10(0.5)) < 1e-9, "median evidence: surprise log10(2): %g", r.score);
    aec_anomaly_result lo = {.score = 50}, hi = {.score = 50}, cb = {.score = 95};
    aec_anomaly_score_face(&c, 10, 0, AEC_SCORE_CATFACE, -1, &lo);
    aec_anomaly_score_face(&c, 40, 0, AEC_SCORE_CATFACE, -1, &hi);
    CHECK(fabs(lo.score - 2) < 1e-9, "no face at all: the surprise is capped at log10(count+1)");
    CHECK(hi.score == 0 && hi.normalized == 0, "more face than every cat: no surprise");
    CHECK(fabs(lo.normalized - 0.5 * 2 / 1.9) < 1e-9, "normalized: threshold maps to 0.5");
    aec_anomaly_score_face(&c, 25, 0, AEC_SCORE_COMBINED, -1, &cb);
    CHECK(fabs(cb.score - (-log10(0.5) - log10(0.05))) < 1e-9,
          "combined: the two surprises add up: %g", cb.score);
    /* ties: evidence takes few values once windows pass every stage; the
     * cats at exactly e count in P(e' <= e) */
    for (int i = 0; i < AEC_ANOMALY_QUANTILES; i++)
        c.face.evidence.q[i] = i < 40 ? 19.5 : i < 80 ? 21 : 22;
    aec_anomaly_result tie = {.score = 50}, below = {.score = 50};
    aec_anomaly_score_face(&c, 21, 0, AEC_SCORE_CATFACE, -1, &tie);
    aec_anomaly_score_face(&c, 19.4, 0, AEC_SCORE_CATFACE, -1, &below);
    CHECK(fabs(tie.score - -log10(0.79)) < 1e-9, "a tie counts in full: P = 0.79 (%g)",
          pow(10, -tie.score));
    CHECK(fabs(below.score - 2) < 1e-9, "below every cat: the cap");
    CHECK(aec_anomaly_kind_parse("catface") == AEC_SCORE_CATFACE &&
              aec_anomaly_kind_parse("combined") == AEC_SCORE_COMBINED &&
              aec_anomaly_kind_parse("reconstruction") == AEC_SCORE_RECONSTRUCTION &&
              aec_anomaly_kind_parse("mse") == -1,
          "score kinds by name");
}

static void opencv_cascades(void)
{
    uint8_t *xml = NULL;
    size_t len = 0;
    aec_error err = {{0}};
    if (aec_read_file(CATFACE, 16u << 20, &xml, &len, NULL) != AEC_OK) {
        printf("skipping the OpenCV cascades: %s is missing (apt-get install opencv-data)\n",
               CATFACE);
        return;
    }
    aec_cascade *c = NULL;
    CHECK(aec_cascade_parse_xml((const char *)xml, len, &c, &err) == AEC_OK && c,
          "OpenCV's cat-face cascade parses: %s", err.msg);
    CHECK(c && aec_cascade_stages(c) == 20, "20 stages");
    char *json = c ? aec_cascade_to_json(c) : NULL;
    aec_cascade *c2 = NULL;
    CHECK(json && aec_cascade_from_json(json, &c2, &err) == AEC_OK, "and its JSON form loads");
    free(json);
    aec_cascade_free(c);
    aec_cascade_free(c2);
    free(xml);
    if (aec_read_file(CATFACE_EXT, 16u << 20, &xml, &len, NULL) == AEC_OK) {
        c = NULL;
        CHECK(aec_cascade_parse_xml((const char *)xml, len, &c, &err) == AEC_ERR_UNSUPPORTED && !c,
              "the extended one (tilted features) is refused: %s", err.msg);
        free(xml);
    }
}

int main(void)
{
    scanning();
    refusals();
    face_score();
    opencv_cascades();
    return TEST_SUMMARY();
}
