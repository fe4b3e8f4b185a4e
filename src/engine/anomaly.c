/* anomaly.c - the complexity-normalized anomaly score and its calibration.
 *
 * See include/aec/anomaly.h for the definition. Owns the blur baseline, the
 * score, the calibration statistics and their JSON form (aec.anomaly), and
 * the cat-face part's surprises and calibration (the detector itself is
 * cascade.c).
 */
#include "aec/anomaly.h"
#include "aec/layers.h"
#include "aec/rotation.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

/* Box-average blocks of f x f (partial blocks at the edges), then bilinear
 * upsample back at pixel centres; returns the MSE against the image. */
double aec_anomaly_baseline_mse(const float *image, int ch, int h, int w, int f)
{
    if (f < 1)
        f = 1;
    int bh = (h + f - 1) / f, bw = (w + f - 1) / f;
    float *small = malloc(sizeof(float) * (size_t)bh * bw);
    if (!small)
        return NAN;
    double sum = 0;
    for (int c = 0; c < ch; c++) {
        const float *plane = image + (size_t)c * h * w;
        for (int by = 0; by < bh; by++)
            for (int bx = 0; bx < bw; bx++) {
                double s = 0;
                int n = 0;
                for (int y = by * f; y < by * f + f && y < h; y++)
                    for (int x = bx * f; x < bx * f + f && x < w; x++, n++)
                        s += plane[y * w + x];
                small[by * bw + bx] = (float)(s / n);
            }
        for (int y = 0; y < h; y++) {
            float sy = ((float)y + 0.5f) / f - 0.5f;
            int y0 = (int)floorf(sy);
            float ty = sy - y0;
            int ya = y0 < 0 ? 0 : y0, yb = y0 + 1 >= bh ? bh - 1 : y0 + 1;
            for (int x = 0; x < w; x++) {
                float sx = ((float)x + 0.5f) / f - 0.5f;
                int x0 = (int)floorf(sx);
                float tx = sx - x0;
                int xa = x0 < 0 ? 0 : x0, xb = x0 + 1 >= bw ? bw - 1 : x0 + 1;
                float top = small[ya * bw + xa] * (1 - tx) + small[ya * bw + xb] * tx;
                float bot = small[yb * bw + xa] * (1 - tx) + small[yb * bw + xb] * tx;
                float d = plane[y * w + x] - (top * (1 - ty) + bot * ty);
                sum += (double)d * d;
            }
        }
    }
    free(small);
    return sum / ((double)ch * h * w);
}

void aec_anomaly_error_map(const float *image, const float *recon, int ch, int h, int w, float *map)
{
    size_t hw = (size_t)h * w;
    for (size_t i = 0; i < hw; i++) {
        float s = 0;
        for (int c = 0; c < ch; c++) {
            float d = image[c * hw + i] - recon[c * hw + i];
            s += d * d;
        }
        map[i] = s / ch;
    }
}

/* Where x falls among 101 calibration quantiles q, 0..100. */
static double percentile_in(const double *q, double x)
{
    if (x <= q[0])
        return 0;
    if (x >= q[AEC_ANOMALY_QUANTILES - 1])
        return 100;
    for (int i = 1; i < AEC_ANOMALY_QUANTILES; i++)
        if (x <= q[i]) {
            double span = q[i] - q[i - 1];
            return (i - 1) + (span > 0 ? (x - q[i - 1]) / span : 1.0);
        }
    return 100;
}

#define LOG_EPS 1e-6
static const int blur_factors[AEC_ANOMALY_FEATURES - 1] = {2, 4, 8};

/* The features of an image whose reconstruction error is mse; the blur-x4
 * baseline's MSE (the one /anomaly reports) into *blur4 when non-NULL. */
static void features_from(double mse, const float *image, int ch, int h, int w,
                          aec_anomaly_features *f, double *blur4)
{
    f->v[0] = log(mse + LOG_EPS);
    for (int k = 0; k < AEC_ANOMALY_FEATURES - 1; k++) {
        double b = aec_anomaly_baseline_mse(image, ch, h, w, blur_factors[k]);
        if (blur4 && blur_factors[k] == 4)
            *blur4 = b;
        f->v[k + 1] = log(b + LOG_EPS);
    }
}

void aec_anomaly_features_of(const float *image, const float *recon, int ch, int h, int w,
                             aec_anomaly_features *f)
{
    features_from(aec_mse_of(image, recon, (size_t)ch * h * w), image, ch, h, w, f, NULL);
}

static double mahalanobis2(const aec_anomaly_calib *c, const aec_anomaly_features *f)
{
    double d[AEC_ANOMALY_FEATURES], r = 0;
    for (int i = 0; i < AEC_ANOMALY_FEATURES; i++)
        d[i] = f->v[i] - c->mean_f[i];
    for (int i = 0; i < AEC_ANOMALY_FEATURES; i++)
        for (int j = 0; j < AEC_ANOMALY_FEATURES; j++)
            r += d[i] * c->inv_cov[i][j] * d[j];
    return r > 0 ? r : 0;
}

void aec_anomaly_score(const aec_anomaly_calib *c, const float *image, const float *recon, int ch,
                       int h, int w, double threshold, aec_anomaly_result *out)
{
    out->mse = aec_mse_of(image, recon, (size_t)ch * h * w);
    if (!c->calibrated) {
        out->baseline_mse = NAN;
        out->score = out->mse;
        out->percentile = -1;
    } else {
        aec_anomaly_features f;
        features_from(out->mse, image, ch, h, w, &f, &out->baseline_mse);
        out->score = mahalanobis2(c, &f);
        out->percentile = percentile_in(c->quantiles, out->score);
    }
    double t = threshold >= 0 ? threshold : c->threshold;
    double norm = t > 0 ? 0.5 * out->score / t : (out->score > 0 ? 1.0 : 0.0);
    out->normalized = norm < 0 ? 0 : norm > 1 ? 1 : norm;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Linear interpolation between order statistics (numpy's default). */
static double quantile(const double *sorted, size_t n, double q)
{
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)floor(pos);
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - (double)lo);
}

/* Inverts a small symmetric positive-definite matrix by Gauss-Jordan with
 * partial pivoting; returns 0 if it is singular. */
static int invert(double a[AEC_ANOMALY_FEATURES][AEC_ANOMALY_FEATURES],
                  double inv[AEC_ANOMALY_FEATURES][AEC_ANOMALY_FEATURES])
{
    enum { N = AEC_ANOMALY_FEATURES };
    double m[N][2 * N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 2 * N; j++)
            m[i][j] = j < N ? a[i][j] : (j - N == i);
    for (int col = 0; col < N; col++) {
        int piv = col;
        for (int r = col + 1; r < N; r++)
            if (fabs(m[r][col]) > fabs(m[piv][col]))
                piv = r;
        if (fabs(m[piv][col]) < 1e-300)
            return 0;
        for (int j = 0; j < 2 * N; j++) {
            double t = m[col][j];
            m[col][j] = m[piv][j];
            m[piv][j] = t;
        }
        double d = m[col][col];
        for (int j = 0; j < 2 * N; j++)
            m[col][j] /= d;
        for (int r = 0; r < N; r++)
            if (r != col) {
                double k = m[r][col];
                for (int j = 0; j < 2 * N; j++)
                    m[r][j] -= k * m[col][j];
            }
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            inv[i][j] = m[i][N + j];
    return 1;
}

aec_status aec_anomaly_calibrate(const aec_anomaly_features *f, size_t n, char **json,
                                 aec_error *err)
{
    enum { N = AEC_ANOMALY_FEATURES };
    *json = NULL;
    if (n < 2 * N)
        return aec_fail(err, AEC_ERR_INVALID, "calibration needs at least %d images, got %zu",
                        2 * N, n);
    aec_anomaly_calib c = {0};
    double cov[N][N] = {{0}};
    for (size_t k = 0; k < n; k++)
        for (int i = 0; i < N; i++)
            c.mean_f[i] += f[k].v[i] / (double)n;
    for (size_t k = 0; k < n; k++)
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++)
                cov[i][j] +=
                    (f[k].v[i] - c.mean_f[i]) * (f[k].v[j] - c.mean_f[j]) / (double)(n - 1);
    for (int i = 0; i < N; i++)
        cov[i][i] += 1e-6; /* ridge: keeps the inverse finite on degenerate data */
    if (!invert(cov, c.inv_cov))
        return aec_fail(err, AEC_ERR_INVALID, "calibration features are degenerate");
    double *s = malloc(sizeof(double) * n);
    if (!s)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    double mean = 0, var = 0, mse_mean = 0;
    for (size_t k = 0; k < n; k++) {
        s[k] = mahalanobis2(&c, &f[k]);
        mean += s[k] / (double)n;
        mse_mean += (exp(f[k].v[0]) - LOG_EPS) / (double)n;
    }
    for (size_t k = 0; k < n; k++)
        var += (s[k] - mean) * (s[k] - mean) / (double)n;
    qsort(s, n, sizeof *s, cmp_double);

    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "score",
                            "squared Mahalanobis distance of (log mse, log mse_blur2, "
                            "log mse_blur4, log mse_blur8) from the calibration images");
    cJSON_AddNumberToObject(o, "count", (double)n);
    cJSON_AddItemToObject(o, "feature_mean", cJSON_CreateDoubleArray(c.mean_f, N));
    cJSON *rows = cJSON_AddArrayToObject(o, "feature_inv_cov");
    for (int i = 0; i < N; i++)
        cJSON_AddItemToArray(rows, cJSON_CreateDoubleArray(c.inv_cov[i], N));
    cJSON_AddNumberToObject(o, "mean", mean);
    cJSON_AddNumberToObject(o, "std", sqrt(var));
    cJSON_AddNumberToObject(o, "p50", quantile(s, n, 0.50));
    cJSON_AddNumberToObject(o, "p90", quantile(s, n, 0.90));
    cJSON_AddNumberToObject(o, "p95", quantile(s, n, 0.95));
    cJSON_AddNumberToObject(o, "p99", quantile(s, n, 0.99));
    cJSON_AddNumberToObject(o, "max", s[n - 1]);
    cJSON_AddNumberToObject(o, "threshold", quantile(s, n, 0.99));
    cJSON_AddStringToObject(o, "threshold_rule", "p99");
    cJSON_AddNumberToObject(o, "mse_mean", mse_mean);
    double q[AEC_ANOMALY_QUANTILES];
    for (int i = 0; i < AEC_ANOMALY_QUANTILES; i++)
        q[i] = quantile(s, n, i / 100.0);
    cJSON_AddItemToObject(o, "quantiles", cJSON_CreateDoubleArray(q, AEC_ANOMALY_QUANTILES));
    free(s);
    *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!*json)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    return AEC_OK;
}

static int get_num(const cJSON *o, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return 0;
    *out = v->valuedouble;
    return 1;
}

/* Reads a JSON array of n finite numbers. */
static int get_vec(const cJSON *a, double *out, int n)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return 0;
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return 0;
        out[i] = v->valuedouble;
    }
    return 1;
}

static aec_status face_from_json(const aec_model *m, const cJSON *o, aec_anomaly_face *f,
                                 aec_error *err);

aec_status aec_anomaly_calib_from_model(const aec_model *m, aec_anomaly_calib *c, aec_error *err)
{
    enum { N = AEC_ANOMALY_FEATURES };
    memset(c, 0, sizeof *c);
    c->threshold = -1;
    if (!m->anomaly_json)
        return AEC_OK;
    aec_status st = AEC_OK;
    cJSON *o = cJSON_Parse(m->anomaly_json);
    int ok = cJSON_IsObject(o);
    double count = 0;
    ok = ok && get_num(o, "count", &count) && count >= 1 && count <= 1e12 &&
         get_num(o, "mean", &c->mean) && get_num(o, "std", &c->std) && get_num(o, "p50", &c->p50) &&
         get_num(o, "p90", &c->p90) && get_num(o, "p95", &c->p95) && get_num(o, "p99", &c->p99) &&
         get_num(o, "max", &c->max) && get_num(o, "threshold", &c->threshold) &&
         c->threshold >= 0 &&
         get_vec(cJSON_GetObjectItemCaseSensitive(o, "feature_mean"), c->mean_f, N) &&
         get_vec(cJSON_GetObjectItemCaseSensitive(o, "quantiles"), c->quantiles,
                 AEC_ANOMALY_QUANTILES);
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(o, "feature_inv_cov");
    ok = ok && cJSON_IsArray(rows) && cJSON_GetArraySize(rows) == N;
    for (int i = 0; ok && i < N; i++)
        ok = get_vec(cJSON_GetArrayItem(rows, i), c->inv_cov[i], N);
    for (int i = 1; ok && i < AEC_ANOMALY_QUANTILES; i++)
        ok = c->quantiles[i] >= c->quantiles[i - 1];
    if (!ok) {
        /* another version's or another tool's calibration: serve uncalibrated */
        memset(c, 0, sizeof *c);
        c->threshold = -1;
        snprintf(c->note, sizeof c->note,
                 "aec.anomaly has fields this version does not use (an earlier version's "
                 "calibration, or another tool's): scored by raw MSE, uncalibrated");
    } else {
        c->count = (long)count;
        c->calibrated = 1;
        const cJSON *face = cJSON_GetObjectItemCaseSensitive(o, "catface");
        aec_error fe = {{0}};
        if (face && (st = face_from_json(m, face, &c->face, &fe)) != AEC_OK) {
            aec_anomaly_calib_free(c);
            memset(&c->face, 0, sizeof c->face);
            snprintf(c->note, sizeof c->note, "aec.anomaly.catface not used: %.150s", fe.msg);
            if (st == AEC_ERR_NOMEM && err)
                *err = fe;
            else
                st = AEC_OK;
        }
    }
    cJSON_Delete(o);
    return st;
}

void aec_anomaly_calib_free(aec_anomaly_calib *c)
{
    aec_cascade_free(c->face.cascade);
    c->face.cascade = NULL;
    aec_model_free(c->face.rotation);
    c->face.rotation = NULL;
}

/* ---- the cat-face part ------------------------------------------------------------- */

char *aec_anomaly_public_json(const char *anomaly_json)
{
    cJSON *o = anomaly_json ? cJSON_Parse(anomaly_json) : NULL;
    cJSON *face = cJSON_GetObjectItemCaseSensitive(o, "catface");
    cJSON *casc = cJSON_GetObjectItemCaseSensitive(face, "cascade");
    if (cJSON_IsObject(casc)) {
        cJSON *sum = cJSON_CreateObject();
        const char *keys[] = {"window", "stages", "stumps", "features"};
        for (int i = 0; i < 4; i++) {
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(casc, keys[i]);
            if (i == 0)
                cJSON_AddItemToObject(sum, keys[i], cJSON_Duplicate(a, 1));
            else
                cJSON_AddNumberToObject(sum, keys[i], cJSON_GetArraySize(a));
        }
        cJSON_ReplaceItemInObjectCaseSensitive(face, "cascade", sum);
    }
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

int aec_anomaly_kind_parse(const char *s)
{
    static const char *names[] = {"reconstruction", "catface", "combined", "rotation"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

const char *aec_anomaly_kind_name(aec_anomaly_kind k)
{
    return k == AEC_SCORE_CATFACE    ? "catface"
           : k == AEC_SCORE_COMBINED ? "combined"
           : k == AEC_SCORE_ROTATION ? "rotation"
                                     : "reconstruction";
}

/* -log10 of a tail fraction, the fraction floored at 1/(count+1). */
static double surprise(double fraction, long count)
{
    double lo = 1.0 / ((double)count + 1);
    return -log10(fraction > lo ? fraction : lo);
}

/* P(X <= x) from 101 quantiles q: ties count in full (the top of a run of
 * equal quantiles), linear between distinct ones. */
static double fraction_at_most(const double *q, double x)
{
    if (x < q[0])
        return 0;
    int i = AEC_ANOMALY_QUANTILES - 1;
    while (i > 0 && q[i] > x)
        i--;
    if (i == AEC_ANOMALY_QUANTILES - 1)
        return 1;
    double span = q[i + 1] - q[i]; /* > 0: q[i] <= x < q[i + 1] */
    return (i + (x - q[i]) / span) / 100;
}

/* Too little face: the calibration cats with no more evidence. */
static double face_surprise(const aec_anomaly_calib *c, double evidence)
{
    return surprise(fraction_at_most(c->face.evidence.q, evidence), c->face.count);
}

/* Too unusual a reconstruction: the calibration photos (the face part's,
 * at their own size like an upload, not the trainer's thumbnails) scoring
 * at least as high (percentile_in is P(X < x), the bottom of a run of
 * ties). */
static double recon_surprise(const aec_anomaly_calib *c, double score)
{
    return surprise(1 - percentile_in(c->face.reconstruction.q, score) / 100, c->face.count);
}

/* An unsure recognizer: the calibration photos with a raw score at least as
 * high. */
static double rotation_surprise(const aec_anomaly_calib *c, double raw)
{
    return surprise(1 - percentile_in(c->face.rotation_raw.q, raw) / 100, c->face.count);
}

static const aec_anomaly_dist *face_dist(const aec_anomaly_calib *c, aec_anomaly_kind kind)
{
    return kind == AEC_SCORE_CATFACE    ? &c->face.catface
           : kind == AEC_SCORE_ROTATION ? &c->face.rotation_surprise
                                        : &c->face.combined;
}

double aec_anomaly_face_threshold(const aec_anomaly_calib *c, aec_anomaly_kind kind)
{
    return face_dist(c, kind)->threshold;
}

void aec_anomaly_score_face(const aec_anomaly_calib *c, double evidence, double rotation_raw,
                            aec_anomaly_kind kind, double threshold, aec_anomaly_result *r)
{
    double uf = face_surprise(c, evidence), ur = recon_surprise(c, r->score);
    double uo = c->face.rotation ? rotation_surprise(c, rotation_raw) : 0;
    const aec_anomaly_dist *d = face_dist(c, kind);
    r->score = kind == AEC_SCORE_CATFACE ? uf : kind == AEC_SCORE_ROTATION ? uo : uf + ur + uo;
    r->percentile = percentile_in(d->q, r->score);
    double t = threshold >= 0 ? threshold : d->threshold;
    double norm = t > 0 ? 0.5 * r->score / t : (r->score > 0 ? 1.0 : 0.0);
    r->normalized = norm < 0 ? 0 : norm > 1 ? 1 : norm;
}

static void dist_of(double *v, size_t n, aec_anomaly_dist *d)
{
    qsort(v, n, sizeof *v, cmp_double);
    for (int i = 0; i < AEC_ANOMALY_QUANTILES; i++)
        d->q[i] = quantile(v, n, i / 100.0);
    d->threshold = quantile(v, n, 0.99);
}

static cJSON *dist_json(const aec_anomaly_dist *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "threshold", d->threshold);
    cJSON_AddStringToObject(o, "threshold_rule", "p99");
    cJSON_AddItemToObject(o, "quantiles", cJSON_CreateDoubleArray(d->q, AEC_ANOMALY_QUANTILES));
    return o;
}

static int dist_from_json(const cJSON *o, aec_anomaly_dist *d)
{
    int ok = get_num(o, "threshold", &d->threshold) && d->threshold >= 0 &&
             get_vec(cJSON_GetObjectItemCaseSensitive(o, "quantiles"), d->q, AEC_ANOMALY_QUANTILES);
    for (int i = 1; ok && i < AEC_ANOMALY_QUANTILES; i++)
        ok = d->q[i] >= d->q[i - 1];
    return ok;
}

/* The rotation recognizer of the face part: its layers here, its tensors
 * in m's extras. */
static aec_status rotation_from_json(const aec_model *m, const cJSON *o, aec_anomaly_face *f,
                                     aec_error *err)
{
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(o, "layers");
    if (!cJSON_IsObject(o) || !cJSON_IsArray(layers) ||
        !dist_from_json(cJSON_GetObjectItemCaseSensitive(o, "raw"), &f->rotation_raw) ||
        !dist_from_json(cJSON_GetObjectItemCaseSensitive(o, "surprise"), &f->rotation_surprise))
        return aec_fail(err, AEC_ERR_FORMAT,
                        "rotation needs layers, raw and surprise (threshold, ascending quantiles)");
    char *text = cJSON_PrintUnformatted(layers);
    if (!text)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    aec_status st = aec_rotation_from_model(m, text, &f->rotation, err);
    free(text);
    if (st)
        aec_error_prefix(err, "rotation");
    return st;
}

static aec_status face_from_json(const aec_model *m, const cJSON *o, aec_anomaly_face *f,
                                 aec_error *err)
{
    double count = 0;
    const cJSON *casc = cJSON_GetObjectItemCaseSensitive(o, "cascade");
    if (!cJSON_IsObject(o) || !get_num(o, "count", &count) || count < 1 || count > 1e12 ||
        !dist_from_json(cJSON_GetObjectItemCaseSensitive(o, "evidence"), &f->evidence) ||
        !dist_from_json(cJSON_GetObjectItemCaseSensitive(o, "catface"), &f->catface) ||
        !dist_from_json(cJSON_GetObjectItemCaseSensitive(o, "combined"), &f->combined) ||
        !dist_from_json(cJSON_GetObjectItemCaseSensitive(o, "reconstruction"),
                        &f->reconstruction) ||
        !cJSON_IsObject(casc))
        return aec_fail(
            err, AEC_ERR_FORMAT,
            "needs count, cascade, and evidence, reconstruction, catface, combined (threshold, "
            "ascending quantiles)");
    char *text = cJSON_PrintUnformatted(casc);
    if (!text)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    aec_status st = aec_cascade_from_json(text, &f->cascade, err);
    free(text);
    f->count = (long)count;
    const cJSON *rot = cJSON_GetObjectItemCaseSensitive(o, "rotation");
    if (!st && rot)
        st = rotation_from_json(m, rot, f, err);
    return st;
}

aec_status aec_anomaly_calibrate_face(const aec_model *m, const aec_anomaly_calib *c,
                                      const aec_cascade *cascade, const char *source,
                                      const aec_model *rotation, const double *evidence,
                                      const double *recon_score, const double *rotation_raw,
                                      size_t n, char **json, aec_error *err)
{
    *json = NULL;
    if (!c->calibrated || !m->anomaly_json)
        return aec_fail(err, AEC_ERR_INVALID,
                        "the model's reconstruction score is not calibrated: calibrate it first");
    if (n < 20)
        return aec_fail(err, AEC_ERR_INVALID, "the face part needs at least 20 photos, got %zu", n);
    aec_anomaly_calib t = *c; /* the distributions being built, to score with */
    t.face.count = (long)n;
    double *v = malloc(sizeof(double) * n * 3);
    char *casc = aec_cascade_to_json(cascade);
    cJSON *o = cJSON_Parse(m->anomaly_json), *face = cJSON_CreateObject();
    cJSON *casc_obj = casc ? cJSON_Parse(casc) : NULL;
    cJSON *rot = rotation ? cJSON_CreateObject() : NULL;
    cJSON *layers = rotation ? cJSON_Parse(rotation->layers_json) : NULL;
    aec_status st = AEC_OK;
    if (!v || !casc || !casc_obj || !face || !cJSON_IsObject(o) ||
        (rotation && (!rot || !layers))) {
        st = aec_fail(err, AEC_ERR_NOMEM, "out of memory");
        goto done;
    }
    memcpy(v, evidence, sizeof(double) * n);
    dist_of(v, n, &t.face.evidence);
    memcpy(v, recon_score, sizeof(double) * n);
    dist_of(v, n, &t.face.reconstruction);
    if (rotation) {
        memcpy(v, rotation_raw, sizeof(double) * n);
        dist_of(v, n, &t.face.rotation_raw);
        t.face.rotation = (aec_model *)rotation; /* read only: marks the part present */
    }
    for (size_t i = 0; i < n; i++) {
        double uf = face_surprise(&t, evidence[i]), ur = recon_surprise(&t, recon_score[i]);
        double uo = rotation ? rotation_surprise(&t, rotation_raw[i]) : 0;
        v[i] = uf;
        v[n + i] = uf + ur + uo;
        v[2 * n + i] = uo;
    }
    dist_of(v, n, &t.face.catface);
    dist_of(v + n, n, &t.face.combined);
    char what[400];
    snprintf(what, sizeof what,
             "surprise -log10 P(calibration evidence <= e) of a cat-face cascade's evidence; %s",
             rotation ? "rotation: the surprise of the rotation recognizer's raw score; combined: "
                        "the sum of those and the reconstruction score's"
                      : "combined: the sum of it and the reconstruction score's");
    cJSON_AddStringToObject(face, "score", what);
    cJSON_AddStringToObject(face, "source", source);
    cJSON_AddNumberToObject(face, "min_side", AEC_CATFACE_MIN_SIDE);
    cJSON_AddNumberToObject(face, "count", (double)n);
    cJSON_AddItemToObject(face, "evidence", dist_json(&t.face.evidence));
    cJSON_AddItemToObject(face, "reconstruction", dist_json(&t.face.reconstruction));
    cJSON_AddItemToObject(face, "catface", dist_json(&t.face.catface));
    cJSON_AddItemToObject(face, "combined", dist_json(&t.face.combined));
    cJSON_AddItemToObject(face, "cascade", casc_obj);
    casc_obj = NULL;
    if (rotation) {
        dist_of(v + 2 * n, n, &t.face.rotation_surprise);
        cJSON_AddStringToObject(rot, "score",
                                "raw: the sum over 4 quarter turns x 2 mirrorings of -ln p(turn)");
        cJSON_AddItemToObject(rot, "raw", dist_json(&t.face.rotation_raw));
        cJSON_AddItemToObject(rot, "surprise", dist_json(&t.face.rotation_surprise));
        cJSON_AddItemToObject(rot, "layers", layers);
        layers = NULL;
        cJSON_AddItemToObject(face, "rotation", rot);
        rot = NULL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, "catface");
    cJSON_AddItemToObject(o, "catface", face);
    face = NULL;
    if (!(*json = cJSON_PrintUnformatted(o)))
        st = aec_fail(err, AEC_ERR_NOMEM, "out of memory");
done:
    cJSON_Delete(layers);
    cJSON_Delete(rot);
    cJSON_Delete(casc_obj);
    cJSON_Delete(face);
    cJSON_Delete(o);
    free(casc);
    free(v);
    return st;
}
