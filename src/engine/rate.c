/* rate.c - the training-time rate term: bits of a latent under a factorized
 * logistic prior (one location and scale per channel).
 *
 * Owns aec_rate_forward/backward (declared in include/aec/layers.h). The
 * bin probability P(v) = F(v + 1/2) - F(v - 1/2) is computed on the side of
 * the location where it does not cancel: for v above mu it is
 * F(-(v - 1/2)) - F(-(v + 1/2)), the same value without subtracting two
 * numbers close to 1. Everything runs in double: the far tails of a
 * logistic are exp(-|t|), well inside double range for any sane scale.
 *
 * The entropy coder does not use this prior: aec-train replaces it at the
 * end with histograms of the rounded latents (src/codec/codec.c). The
 * prior exists to give the encoder a differentiable price for every bit.
 */
#include "aec/layers.h"

#include <math.h>

#define RATE_MIN_P 9.313225746154785e-10 /* 2^-30 */

static double sigmoid(double t)
{
    return 1.0 / (1.0 + exp(-t));
}

/* P of the bin around v and, if grad, dP/dv and dP/ds (s the scale). */
static double bin_probability(double v, double mu, double s, double *dp_dv, double *dp_ds)
{
    double sign = v > mu ? -1.0 : 1.0; /* mirror the upper tail onto the lower */
    double a = sign * (v - mu + 0.5) / s, b = sign * (v - mu - 0.5) / s;
    double fa = sigmoid(a), fb = sigmoid(b);
    double p = sign > 0 ? fa - fb : fb - fa;
    if (dp_dv) {
        double ga = fa * (1.0 - fa), gb = fb * (1.0 - fb);
        /* d/dv of F(a) - F(b) with a, b linear in v (slope sign/s), mirrored back */
        *dp_dv = (ga - gb) / s;
        *dp_ds = sign > 0 ? -(ga * a - gb * b) / s : -(gb * b - ga * a) / s;
    }
    return p;
}

double aec_rate_forward(const float *inp, const float *mu, const float *log_s, int n, int c,
                        int spatial)
{
    double bits = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < c; j++) {
            const float *x = inp + ((size_t)i * c + j) * spatial;
            double s = exp(log_s[j]);
            for (int k = 0; k < spatial; k++) {
                double p = bin_probability(x[k], mu[j], s, NULL, NULL);
                bits -= log2(p > RATE_MIN_P ? p : RATE_MIN_P);
            }
        }
    return bits;
}

void aec_rate_backward(float *dinp, float *dmu, float *dlog_s, const float *inp, const float *mu,
                       const float *log_s, int n, int c, int spatial, float scale)
{
    for (int j = 0; j < c; j++) {
        double s = exp(log_s[j]), gmu = 0, gls = 0;
        for (int i = 0; i < n; i++) {
            const float *x = inp + ((size_t)i * c + j) * spatial;
            float *dx = dinp + ((size_t)i * c + j) * spatial;
            for (int k = 0; k < spatial; k++) {
                double dp_dv, dp_ds, d_bits_dv, d_bits_ds;
                double p = bin_probability(x[k], mu[j], s, &dp_dv, &dp_ds);
                if (p > RATE_MIN_P) {
                    d_bits_dv = -dp_dv / (p * M_LN2);
                    d_bits_ds = -dp_ds / (p * M_LN2);
                } else { /* the clamped tail: -log2 P grows as |v - mu| / (s ln 2) */
                    double t = x[k] - mu[j];
                    d_bits_dv = (t > 0 ? 1.0 : -1.0) / (s * M_LN2);
                    d_bits_ds = -fabs(t) / (s * s * M_LN2);
                }
                dx[k] += scale * (float)d_bits_dv;
                gmu -= d_bits_dv; /* P depends on v - mu */
                gls += d_bits_ds * s;
            }
        }
        dmu[j] += scale * (float)gmu;
        dlog_s[j] += scale * (float)gls;
    }
}
