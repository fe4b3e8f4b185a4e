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
 * A model without it scores with raw MSE and says it is uncalibrated; so
 * does a model whose aec.anomaly this version does not understand (an
 * earlier version's fields, a file exported from elsewhere), with a note.
 *
 * Reconstruction error cannot tell a cat from a dog. The optional second
 * part (aec.anomaly's "catface" object) can: a detector of cats' faces
 * (include/aec/cascade.h) gives an image its evidence e, and photos of cats
 * the model never saw calibrate it. Each part becomes a surprise, -log10 of
 * the fraction of calibration cats at least as unusual:
 *
 *   catface        u_f = -log10 P(e' <= e)     (too little face)
 *   reconstruction u_r = -log10 P(s' >= s)     (s: the score above, s' over
 *                                               the same calibration photos)
 *   combined       u_f + u_r   (Fisher's way of joining two tests: -log10
 *                  of the product of their tail fractions)
 *
 * (P from quantiles over the face part's calibration photos, at their own
 * size like an upload, never below 1/(count + 1)). Each kind has its own
 * quantiles and p99 threshold, measured on the same photos. The face part
 * needs an image of some size: /anomaly uses it when the upload's shorter
 * side is at least AEC_CATFACE_MIN_SIDE.
 *
 * The face part may also carry the rotation recognizer (aec/rotation.h),
 * calibrated on the same photos; then
 *
 *   rotation       u_o = -log10 P(r' >= r)     (r: its raw score)
 *   combined       u_f + u_r + u_o
 */
#ifndef AEC_ANOMALY_H
#define AEC_ANOMALY_H

#include <stddef.h>

#include "aec/cascade.h"
#include "aec/error.h"
#include "aec/model.h"

#define AEC_ANOMALY_QUANTILES 101 /* p0, p1, ..., p100 */
#define AEC_ANOMALY_FEATURES 4    /* log mse of the model and of blur x2, x4, x8 */

typedef struct {
    double v[AEC_ANOMALY_FEATURES];
} aec_anomaly_features;

#define AEC_CATFACE_MIN_SIDE 96

typedef enum {
    AEC_SCORE_RECONSTRUCTION = 0,
    AEC_SCORE_CATFACE = 1,
    AEC_SCORE_COMBINED = 2,
    AEC_SCORE_ROTATION = 3,
} aec_anomaly_kind;

/* "reconstruction", "catface", "combined", "rotation" -> kind, or -1; and back. */
int aec_anomaly_kind_parse(const char *s);
const char *aec_anomaly_kind_name(aec_anomaly_kind k);

/* One score's distribution over the calibration images. */
typedef struct {
    double threshold;
    double q[AEC_ANOMALY_QUANTILES];
} aec_anomaly_dist;

typedef struct {
    aec_cascade *cascade; /* NULL: no face part */
    long count;           /* calibration photos */
    /* over the calibration photos: their evidence, their reconstruction
     * scores, and the two scores built on them */
    aec_anomaly_dist evidence, reconstruction, catface, combined;
    aec_model *rotation; /* NULL: no rotation recognizer */
    /* with it: its raw scores, and their surprises */
    aec_anomaly_dist rotation_raw, rotation_surprise;
} aec_anomaly_face;

typedef struct {
    int calibrated;
    char note[200]; /* why not, when aec.anomaly was there but not understood */
    double mean_f[AEC_ANOMALY_FEATURES];
    double inv_cov[AEC_ANOMALY_FEATURES][AEC_ANOMALY_FEATURES];
    long count;
    double mean, std, p50, p90, p95, p99, max;
    double threshold;
    double quantiles[AEC_ANOMALY_QUANTILES];
    aec_anomaly_face face;
} aec_anomaly_calib;

typedef struct {
    double mse;          /* mean squared error of the model's reconstruction */
    double baseline_mse; /* of the blur x4 baseline (NaN when uncalibrated) */
    double score;        /* calibrated score (== mse when uncalibrated) */
    double percentile;   /* 0..100 among calibration scores (-1 if uncalibrated) */
    double normalized;   /* threshold maps to 0.5, clamped to [0,1] */
} aec_anomaly_result;

/* Parses m->anomaly_json: calibrated = 0 when absent, and also (with a
 * note, still AEC_OK) when its fields are not this version's; a malformed
 * "catface" part is left out, also with a note (the reconstruction score
 * stays). Fails only when out of memory. Free with aec_anomaly_calib_free. */
aec_status aec_anomaly_calib_from_model(const aec_model *m, aec_anomaly_calib *c, aec_error *err);
void aec_anomaly_calib_free(aec_anomaly_calib *c);

/* anomaly_json as /v1/model shows it: the cascade itself (~100 KB) replaced
 * by its size. malloc'd; NULL when anomaly_json is NULL or not JSON. */
char *aec_anomaly_public_json(const char *anomaly_json);

/* Score one image [c,h,w] given its reconstruction. threshold < 0 uses the
 * calibrated one. */
void aec_anomaly_score(const aec_anomaly_calib *c, const float *image, const float *recon, int ch,
                       int h, int w, double threshold, aec_anomaly_result *out);

/* The cat-face part: fills out->score, percentile and normalized for kind
 * (CATFACE, COMBINED or ROTATION) from the evidence of the uploaded image,
 * the rotation recognizer's raw score (when c->face.rotation) and its
 * reconstruction score r->score (already set by aec_anomaly_score). Needs
 * c->face.cascade; threshold < 0 uses the calibrated one. */
void aec_anomaly_score_face(const aec_anomaly_calib *c, double evidence, double rotation_raw,
                            aec_anomaly_kind kind, double threshold, aec_anomaly_result *r);
/* The calibrated threshold of a kind of the face part. */
double aec_anomaly_face_threshold(const aec_anomaly_calib *c, aec_anomaly_kind kind);

/* Calibrates the face part on n photos of cats (their evidence, their
 * reconstruction score under c, and the rotation recognizer's raw score
 * when rotation is not NULL) and writes c's aec.anomaly JSON with the
 * "catface" object added (or replaced) into *json (malloc'd). source says
 * where the cascade came from. The recognizer's tensors go into m's extras
 * (aec_rotation_embed) by the caller. */
aec_status aec_anomaly_calibrate_face(const aec_model *m, const aec_anomaly_calib *c,
                                      const aec_cascade *cascade, const char *source,
                                      const aec_model *rotation, const double *evidence,
                                      const double *recon_score, const double *rotation_raw,
                                      size_t n, char **json, aec_error *err);

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
