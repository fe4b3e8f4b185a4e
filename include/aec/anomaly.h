/* anomaly.h - the anomaly score and its calibration.
 *
 * Raw reconstruction MSE ranks smooth, simple pictures as "normal" because
 * any autoencoder reconstructs them well. So the score looks at the model's
 * error next to how complex the image is, measured by the errors of three
 * baselines that know nothing about cats: the image blurred by a box
 * downsample by 2, 4 and 8 and a bilinear upsample. The four numbers
 *
 *   f = (log mse_model, log mse_blur2, log mse_blur4, log mse_blur8)   (+1e-6)
 *
 * of the calibration images (validation cats, at the end of training) are
 * summarized by their mean and covariance; the score of an image is its
 * squared Mahalanobis distance from them, so it is high when the model's
 * error is unusual FOR AN IMAGE OF THAT COMPLEXITY (an easy landscape
 * reconstructed no better than a blur, or a hard one far worse than cats).
 *
 * Calibration also records the score distribution (count, mean, std,
 * quantiles) and the threshold (p99 by default), stored as aec.anomaly JSON.
 * A model without it scores with raw MSE and says it is uncalibrated.
 */
#ifndef AEC_ANOMALY_H
#define AEC_ANOMALY_H

#include <stddef.h>

#include "aec/error.h"
#include "aec/model.h"

#define AEC_ANOMALY_QUANTILES 101 /* p0, p1, ..., p100 */
#define AEC_ANOMALY_FEATURES 4    /* log mse of the model and of blur x2, x4, x8 */

typedef struct {
    double v[AEC_ANOMALY_FEATURES];
} aec_anomaly_features;

typedef struct {
    int calibrated;
    double mean_f[AEC_ANOMALY_FEATURES];
    double inv_cov[AEC_ANOMALY_FEATURES][AEC_ANOMALY_FEATURES];
    long count;
    double mean, std, p50, p90, p95, p99, max;
    double threshold;
    double quantiles[AEC_ANOMALY_QUANTILES];
} aec_anomaly_calib;

typedef struct {
    double mse;          /* mean squared error of the model's reconstruction */
    double baseline_mse; /* of the blur x4 baseline (NaN when uncalibrated) */
    double score;        /* calibrated score (== mse when uncalibrated) */
    double percentile;   /* 0..100 among calibration scores (-1 if uncalibrated) */
    double normalized;   /* threshold maps to 0.5, clamped to [0,1] */
} aec_anomaly_result;

/* Parses m->anomaly_json (or sets calibrated = 0 when absent). */
aec_status aec_anomaly_calib_from_model(const aec_model *m, aec_anomaly_calib *c, aec_error *err);

/* Score one image [c,h,w] given its reconstruction. threshold < 0 uses the
 * calibrated one. */
void aec_anomaly_score(const aec_anomaly_calib *c, const float *image, const float *recon, int ch,
                       int h, int w, double threshold, aec_anomaly_result *out);

/* The score's inputs for one image and its reconstruction. */
void aec_anomaly_features_of(const float *image, const float *recon, int ch, int h, int w,
                             aec_anomaly_features *f);

/* Calibrates from the features of n validation images; writes the
 * aec.anomaly JSON into *json (malloc'd). */
aec_status aec_anomaly_calibrate(const aec_anomaly_features *f, size_t n, char **json,
                                 aec_error *err);

/* A blur baseline's MSE for one image (box downsample by factor, bilinear up). */
double aec_anomaly_baseline_mse(const float *image, int ch, int h, int w, int factor);

/* Per-pixel squared error averaged over channels -> [h,w] */
void aec_anomaly_error_map(const float *image, const float *recon, int ch, int h, int w,
                           float *map);

#endif
