/* test_anomaly.c - the anomaly score: baselines, calibration and its JSON,
 * scores and percentiles, and the uncalibrated fallback. */
#include <math.h>
#include <string.h>

#include "aec/anomaly.h"
#include "testutil.h"

static const char *SPEC = "[{\"type\":\"flatten\"},{\"type\":\"linear\",\"in\":48,\"out\":4},"
                          "{\"type\":\"linear\",\"in\":4,\"out\":48},{\"type\":\"unflatten\","
                          "\"shape\":[3,4,4]}]";

static void baselines(void)
{
    float img[3 * 8 * 8];
    for (int i = 0; i < 3 * 64; i++)
        img[i] = 0.25f;
    CHECK(aec_anomaly_baseline_mse(img, 3, 8, 8, 4) < 1e-12, "a flat image is its own blur");
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++)
                img[(c * 8 + y) * 8 + x] = (float)((x + y) & 1);
    double b2 = aec_anomaly_baseline_mse(img, 3, 8, 8, 2);
    CHECK(fabs(b2 - 0.25) < 1e-6, "a 1-pixel checkerboard blurs to 0.5 everywhere: mse %g", b2);
    /* a smooth ramp is nearly reproduced by a blur, a noisy one is not */
    uint64_t s = 3;
    float ramp[64], noise[64];
    for (int i = 0; i < 64; i++) {
        ramp[i] = (float)(i % 8) / 8.0f;
        noise[i] = test_rand_uniform(&s);
    }
    CHECK(aec_anomaly_baseline_mse(ramp, 1, 8, 8, 2) < aec_anomaly_baseline_mse(noise, 1, 8, 8, 2),
          "complexity orders the baselines");
}

static void calibration(void)
{
    enum { N = 500 };
    /* "normal" images: synthetic photos whose reconstruction has a small,
     * typical error; features measured by the real code */
    aec_anomaly_features *f = malloc(sizeof *f * N);
    float img[768], rec[768], blur[768];
    uint64_t s = 11;
    for (int k = 0; k < N; k++) {
        test_synthetic_image(img, 16, 16, (uint64_t)k + 1);
        for (int i = 0; i < 768; i++)
            rec[i] = img[i] + 0.02f * (test_rand_uniform(&s) - 0.5f);
        aec_anomaly_features_of(img, rec, 3, 16, 16, &f[k]);
    }
    char *json = NULL;
    aec_error err = {{0}};
    REQUIRE(aec_anomaly_calibrate(f, N, &json, &err) == AEC_OK, "%s", err.msg);
    char *none_json = NULL;
    CHECK(aec_anomaly_calibrate(f, 3, &none_json, &err) == AEC_ERR_INVALID && !none_json,
          "too few images refused");

    aec_model *m = NULL;
    REQUIRE(aec_model_from_spec(&m, SPEC, 3, 4, 4, 1, &err) == AEC_OK, "%s", err.msg);
    aec_anomaly_calib c;
    CHECK(aec_anomaly_calib_from_model(m, &c, &err) == AEC_OK && !c.calibrated,
          "no aec.anomaly: uncalibrated");
    m->anomaly_json = json;
    REQUIRE(aec_anomaly_calib_from_model(m, &c, &err) == AEC_OK, "%s", err.msg);
    CHECK(c.calibrated && c.count == N, "calibrated from %ld images", c.count);
    CHECK(c.threshold == c.p99 && c.p50 < c.p90 && c.p90 < c.p99 && c.p99 <= c.max,
          "quantiles ordered, threshold p99");
    /* squared Mahalanobis distance on its own calibration data: mean exactly
     * the dimension times (n-1)/n */
    CHECK(fabs(c.mean - 4.0 * (N - 1) / N) < 1e-2, "mean score %g is the dimension (4)", c.mean);

    /* a new normal image scores low; one reconstructed as a flat grey is far
     * above the threshold */
    test_synthetic_image(img, 16, 16, 9999);
    for (int i = 0; i < 768; i++) {
        rec[i] = img[i] + 0.02f * (test_rand_uniform(&s) - 0.5f);
        blur[i] = 0.5f;
    }
    aec_anomaly_result good, bad;
    aec_anomaly_score(&c, img, rec, 3, 16, 16, -1, &good);
    aec_anomaly_score(&c, img, blur, 3, 16, 16, -1, &bad);
    CHECK(good.score < c.threshold && bad.score > c.threshold, "bad %g vs good %g (t %g)",
          bad.score, good.score, c.threshold);
    CHECK(bad.percentile == 100 && bad.normalized == 1.0, "far anomaly: percentile %g norm %g",
          bad.percentile, bad.normalized);
    CHECK(bad.mse > good.mse, "mse reported");
    aec_anomaly_result t;
    aec_anomaly_score(&c, img, blur, 3, 16, 16, bad.score * 2, &t);
    CHECK(fabs(t.normalized - 0.25) < 1e-9, "threshold override maps to 0.5 at t: %g",
          t.normalized);

    /* uncalibrated fallback: score is the raw MSE */
    aec_anomaly_calib none = {0};
    none.threshold = -1;
    aec_anomaly_score(&none, img, blur, 3, 16, 16, -1, &t);
    CHECK(t.score == t.mse && t.percentile == -1 && isnan(t.baseline_mse), "uncalibrated");

    /* a calibration this version does not understand (here: broken) loads
     * uncalibrated, saying so */
    free(m->anomaly_json);
    m->anomaly_json = strdup("{\"count\":3,\"threshold\":\"x\"}");
    CHECK(aec_anomaly_calib_from_model(m, &c, &err) == AEC_OK && !c.calibrated && c.note[0],
          "unknown aec.anomaly: uncalibrated with a note: %s", c.note);
    /* the first version's fields (a ratio to one blur baseline) */
    free(m->anomaly_json);
    m->anomaly_json = strdup(
        "{\"score\":\"(mse + floor) / (baseline_mse + floor)\",\"baseline\":\"box downsample by "
        "factor, bilinear upsample\",\"factor\":4,\"floor\":0.0001,\"count\":819,\"mean\":1.1,"
        "\"std\":0.3,\"p50\":1,\"p90\":1.5,\"p95\":1.7,\"p99\":2.1,\"max\":3,\"threshold\":2.1,"
        "\"threshold_rule\":\"p99\",\"mse_mean\":0.004,\"quantiles\":[0,1,2]}");
    CHECK(aec_anomaly_calib_from_model(m, &c, &err) == AEC_OK && !c.calibrated && c.note[0] &&
              c.threshold < 0,
          "a first-version aec.anomaly loads uncalibrated");
    aec_anomaly_score(&c, img, blur, 3, 16, 16, -1, &t);
    CHECK(t.score == t.mse && t.percentile == -1, "and scores by raw MSE");
    aec_model_free(m);
    free(f);
}

int main(void)
{
    baselines();
    calibration();
    return TEST_SUMMARY();
}
