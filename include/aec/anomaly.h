/* anomaly.h - the anomaly score and its calibration.
 *
 * Raw reconstruction MSE ranks smooth, simple pictures as "normal" because
 * any autoencoder reconstructs them well. The score normalizes the model's
 * error by the error of a baseline that knows nothing about cats: the image
 * blurred by a box downsample by `factor` and bilinear upsample. Images the
 * model understands beat the baseline by a wide margin; images it does not
 * understand are reconstructed no better than a blur would do.
 *
 *   score = (mse_model + floor) / (mse_baseline + floor)
 *
 * Calibration (at the end of training, on validation images) records the
 * score distribution: count, mean, std, quantiles and the threshold (p99 by
 * default); it is stored as the aec.anomaly JSON metadata.
 */
#ifndef AEC_ANOMALY_H
#define AEC_ANOMALY_H

#include <stddef.h>

#include "aec/error.h"
#include "aec/model.h"

#define AEC_ANOMALY_QUANTILES 101 /* p0, p1, ..., p100 */

typedef struct {
    int calibrated;
    int factor;    /* baseline downsample factor */
    double floor;  /* added to both errors */
    long count;
    double mean, std, p50, p90, p95, p99, max;
    double threshold;
    double quantiles[AEC_ANOMALY_QUANTILES];
} aec_anomaly_calib;

typedef struct {
    double mse;          /* mean squared error of the model's reconstruction */
    double baseline_mse; /* of the blur baseline */
    double score;        /* calibrated score (== mse when uncalibrated) */
    double percentile;   /* 0..100 among calibration scores (-1 if uncalibrated) */
    double normalized;   /* threshold maps to 0.5, clamped to [0,1] */
} aec_anomaly_result;

/* Parses m->anomaly_json (or sets calibrated = 0 when absent). */
aec_status aec_anomaly_calib_from_model(const aec_model *m, aec_anomaly_calib *c,
                                        aec_error *err);

/* Score one image [c,h,w] given its reconstruction. threshold < 0 uses the
 * calibrated one. */
void aec_anomaly_score(const aec_anomaly_calib *c, const float *image, const float *recon,
                       int ch, int h, int w, double threshold, aec_anomaly_result *out);

/* Calibrate from the scores of n validation images (mse and baseline per
 * image); writes JSON for aec.anomaly into *json (malloc'd). */
aec_status aec_anomaly_calibrate(const double *mse, const double *baseline_mse, size_t n,
                                 int factor, double floor, char **json, aec_error *err);

/* The blur baseline's MSE for one image. */
double aec_anomaly_baseline_mse(const float *image, int ch, int h, int w, int factor);

/* Per-pixel squared error averaged over channels -> [h,w] */
void aec_anomaly_error_map(const float *image, const float *recon, int ch, int h, int w,
                           float *map);

#endif
