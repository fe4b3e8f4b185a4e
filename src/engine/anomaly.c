/* anomaly.c - the complexity-normalized anomaly score and its calibration.
 *
 * See include/aec/anomaly.h for the definition. Owns the blur baseline, the
 * score, the calibration statistics and their JSON form (aec.anomaly).
 */
#include "aec/anomaly.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#define DEFAULT_FACTOR 4
#define DEFAULT_FLOOR 1e-4

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

void aec_anomaly_error_map(const float *image, const float *recon, int ch, int h, int w,
                           float *map)
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

/* Where x falls among the calibration quantiles, 0..100. */
static double percentile_of(const aec_anomaly_calib *c, double x)
{
    const double *q = c->quantiles;
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

void aec_anomaly_score(const aec_anomaly_calib *c, const float *image, const float *recon,
                       int ch, int h, int w, double threshold, aec_anomaly_result *out)
{
    size_t n = (size_t)ch * h * w;
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)image[i] - recon[i];
        s += d * d;
    }
    out->mse = s / (double)n;
    if (!c->calibrated) {
        out->baseline_mse = NAN;
        out->score = out->mse;
        out->percentile = -1;
    } else {
        out->baseline_mse = aec_anomaly_baseline_mse(image, ch, h, w, c->factor);
        out->score = (out->mse + c->floor) / (out->baseline_mse + c->floor);
        out->percentile = percentile_of(c, out->score);
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

aec_status aec_anomaly_calibrate(const double *mse, const double *baseline_mse, size_t n,
                                 int factor, double floor_, char **json, aec_error *err)
{
    *json = NULL;
    if (n < 2)
        return aec_fail(err, AEC_ERR_INVALID, "calibration needs at least 2 images, got %zu", n);
    double *s = malloc(sizeof(double) * n);
    if (!s)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    double mean = 0, var = 0;
    for (size_t i = 0; i < n; i++) {
        s[i] = (mse[i] + floor_) / (baseline_mse[i] + floor_);
        mean += s[i];
    }
    mean /= (double)n;
    for (size_t i = 0; i < n; i++)
        var += (s[i] - mean) * (s[i] - mean);
    qsort(s, n, sizeof *s, cmp_double);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "score", "(mse + floor) / (baseline_mse + floor)");
    cJSON_AddStringToObject(o, "baseline", "box downsample by factor, bilinear upsample");
    cJSON_AddNumberToObject(o, "factor", factor);
    cJSON_AddNumberToObject(o, "floor", floor_);
    cJSON_AddNumberToObject(o, "count", (double)n);
    cJSON_AddNumberToObject(o, "mean", mean);
    cJSON_AddNumberToObject(o, "std", sqrt(var / (double)n));
    cJSON_AddNumberToObject(o, "p50", quantile(s, n, 0.50));
    cJSON_AddNumberToObject(o, "p90", quantile(s, n, 0.90));
    cJSON_AddNumberToObject(o, "p95", quantile(s, n, 0.95));
    cJSON_AddNumberToObject(o, "p99", quantile(s, n, 0.99));
    cJSON_AddNumberToObject(o, "max", s[n - 1]);
    cJSON_AddNumberToObject(o, "threshold", quantile(s, n, 0.99));
    cJSON_AddStringToObject(o, "threshold_rule", "p99");
    double mse_mean = 0;
    for (size_t i = 0; i < n; i++)
        mse_mean += mse[i];
    cJSON_AddNumberToObject(o, "mse_mean", mse_mean / (double)n);
    cJSON *q = cJSON_AddArrayToObject(o, "quantiles");
    for (int i = 0; i < AEC_ANOMALY_QUANTILES; i++)
        cJSON_AddItemToArray(q, cJSON_CreateNumber(quantile(s, n, i / 100.0)));
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

aec_status aec_anomaly_calib_from_model(const aec_model *m, aec_anomaly_calib *c,
                                        aec_error *err)
{
    memset(c, 0, sizeof *c);
    c->factor = DEFAULT_FACTOR;
    c->floor = DEFAULT_FLOOR;
    c->threshold = -1;
    if (!m->anomaly_json)
        return AEC_OK;
    cJSON *o = cJSON_Parse(m->anomaly_json);
    aec_status st = AEC_OK;
    double factor = 0, count = 0;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "quantiles");
    if (!cJSON_IsObject(o) || !get_num(o, "factor", &factor) || !get_num(o, "floor", &c->floor) ||
        !get_num(o, "count", &count) || !get_num(o, "mean", &c->mean) ||
        !get_num(o, "std", &c->std) || !get_num(o, "p50", &c->p50) ||
        !get_num(o, "p90", &c->p90) || !get_num(o, "p95", &c->p95) ||
        !get_num(o, "p99", &c->p99) || !get_num(o, "max", &c->max) ||
        !get_num(o, "threshold", &c->threshold) || !cJSON_IsArray(q) ||
        cJSON_GetArraySize(q) != AEC_ANOMALY_QUANTILES) {
        st = aec_fail(err, AEC_ERR_FORMAT, "aec.anomaly: missing or invalid fields");
    } else if (!(factor >= 1 && factor <= 64) || !(c->floor >= 0) || !(count >= 1)) {
        st = aec_fail(err, AEC_ERR_FORMAT, "aec.anomaly: factor, floor or count out of range");
    } else {
        for (int i = 0; i < AEC_ANOMALY_QUANTILES; i++) {
            const cJSON *v = cJSON_GetArrayItem(q, i);
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
                (i > 0 && v->valuedouble < c->quantiles[i - 1])) {
                st = aec_fail(err, AEC_ERR_FORMAT, "aec.anomaly: quantiles must be ascending");
                break;
            }
            c->quantiles[i] = v->valuedouble;
        }
    }
    cJSON_Delete(o);
    if (st) {
        c->calibrated = 0;
        return st;
    }
    c->factor = (int)factor;
    c->count = (long)count;
    c->calibrated = 1;
    return AEC_OK;
}
