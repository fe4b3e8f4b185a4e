/* test_gdn.c - GDN and inverse GDN (forward, backward against finite
 * differences, the fixed-order inference against the training forward) and
 * the whole-batch channel-major convolutions against the per-sample ones.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/layers.h"
#include "aec/random.h"
#include "testutil.h"

static void fill(float *v, size_t n, double lo, double hi, uint64_t *r)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(lo + (hi - lo) * aec_random_uniform(r));
}

/* L = sum w * gdn(x): dout = w */
static double gdn_loss(const float *x, const float *beta, const float *gamma, const float *w, int c,
                       size_t count, int inverse, float *out, float *norm)
{
    aec_gdn_forward(out, norm, x, beta, gamma, c, count, inverse);
    double s = 0;
    for (size_t i = 0; i < (size_t)c * count; i++)
        s += (double)w[i] * out[i];
    return s;
}

static void test_gdn_gradients(int inverse)
{
    enum { C = 5, P = 7 };
    uint64_t r = 11 + (uint64_t)inverse;
    float x[C * P], beta[C], gamma[C * C], w[C * P], out[C * P], norm[C * P];
    float dx[C * P], dbeta[C] = {0}, dgamma[C * C] = {0}, scratch[2 * C * P];
    fill(x, C * P, -2, 2, &r);
    fill(beta, C, 0.5, 1.5, &r);
    fill(gamma, C * C, 0.05, 0.8, &r); /* large enough that the cross terms matter */
    fill(w, C * P, -1, 1, &r);
    gdn_loss(x, beta, gamma, w, C, P, inverse, out, norm);
    aec_gdn_backward(dx, dbeta, dgamma, scratch, w, x, norm, gamma, C, P, inverse);
    int bad = 0;
    struct {
        float *v, *g;
        int n;
        const char *name;
    } sets[3] = {{x, dx, C * P, "x"}, {beta, dbeta, C, "beta"}, {gamma, dgamma, C * C, "gamma"}};
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < sets[s].n; i++) {
            float keep = sets[s].v[i];
            float h = 1e-3f;
            sets[s].v[i] = keep + h;
            double up = gdn_loss(x, beta, gamma, w, C, P, inverse, out, norm);
            sets[s].v[i] = keep - h;
            double dn = gdn_loss(x, beta, gamma, w, C, P, inverse, out, norm);
            sets[s].v[i] = keep;
            double fd = (up - dn) / (2.0 * h), an = sets[s].g[i];
            if (fabs(fd - an) > 0.01 * fmax(fabs(fd), fabs(an)) + 1e-3) {
                bad++;
                fprintf(stderr, "  %s gdn d%s[%d]: analytic %g, finite difference %g\n",
                        inverse ? "inverse" : "", sets[s].name, i, an, fd);
            }
        }
    CHECK(bad == 0, "%s GDN: %d gradients disagree", inverse ? "inverse" : "forward", bad);
    /* the serving form agrees with the training form (other summation order) */
    float inf[C * P], sc[2 * C * 256];
    aec_gdn_forward(out, norm, x, beta, gamma, C, P, inverse);
    aec_gdn_infer(inf, sc, x, beta, gamma, C, P, inverse, 1);
    double worst = 0;
    for (int i = 0; i < C * P; i++)
        worst = fmax(worst, fabs(inf[i] - out[i]) / (1e-6 + fabs(out[i])));
    CHECK(worst < 1e-5, "gdn_infer differs from gdn_forward by %g (relative)", worst);
}

/* channel-major [c, n, hw] <-> batch-major [n, c, hw] */
static void to_batch_major(float *dst, const float *src, int c, int n, size_t hw)
{
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < n; i++)
            memcpy(dst + ((size_t)i * c + ch) * hw, src + ((size_t)ch * n + i) * hw,
                   sizeof(float) * hw);
}

static void test_batch_conv(int transposed)
{
    int n = 3, cin = 4, cout = 5, h = 8, w = 6, k = 5, s = 2, p = 2, op = transposed ? 1 : 0;
    int oh = transposed ? h * 2 : (h + 2 * p - k) / s + 1,
        ow = transposed ? w * 2 : (w + 2 * p - k) / s + 1;
    size_t in_n = (size_t)n * cin * h * w, out_n = (size_t)n * cout * oh * ow;
    size_t wn = (size_t)cin * cout * k * k;
    uint64_t r = 5 + (uint64_t)transposed;
    float *x = malloc(sizeof(float) * in_n), *xb = malloc(sizeof(float) * in_n);
    float *wt = malloc(sizeof(float) * wn), *b = malloc(sizeof(float) * cout);
    float *y = malloc(sizeof(float) * out_n), *yb = malloc(sizeof(float) * out_n);
    float *yref = malloc(sizeof(float) * out_n), *dy = malloc(sizeof(float) * out_n);
    float *dyb = malloc(sizeof(float) * out_n);
    float *dx = malloc(sizeof(float) * in_n), *dxb = malloc(sizeof(float) * in_n);
    float *dxref = malloc(sizeof(float) * in_n);
    float *dw = calloc(wn, sizeof(float)), *dwref = calloc(wn, sizeof(float));
    float db[5] = {0}, dbref[5] = {0};
    size_t colb =
        transposed ? aec_bconv_col_size(n, cout, k, h, w) : aec_bconv_col_size(n, cin, k, oh, ow);
    float *col = malloc(sizeof(float) * colb);
    float *col1 =
        malloc(sizeof(float) * aec_conv2d_col_size(transposed ? cout : cin, k, transposed ? h : oh,
                                                   transposed ? w : ow));
    REQUIRE(x && xb && wt && b && y && yb && yref && dy && dyb && dx && dxb && dxref && dw &&
                dwref && col && col1,
            "oom");
    fill(x, in_n, -1, 1, &r);
    fill(wt, wn, -0.3, 0.3, &r);
    fill(b, (size_t)cout, -0.1, 0.1, &r);
    fill(dy, out_n, -1, 1, &r);
    to_batch_major(xb, x, cin, n, (size_t)h * w);
    to_batch_major(dyb, dy, cout, n, (size_t)oh * ow);
    if (transposed) {
        aec_bdeconv2d_forward(y, col, x, wt, b, n, cin, h, w, cout, k, s, p, op);
        aec_conv_transpose2d_forward(yref, col1, xb, wt, b, n, cin, h, w, cout, k, s, p, op);
        aec_bdeconv2d_backward(dx, dw, db, col, dy, x, wt, n, cin, h, w, cout, k, s, p, op);
        aec_conv_transpose2d_backward(dxref, dwref, dbref, col1, dyb, xb, wt, n, cin, h, w, cout, k,
                                      s, p, op);
    } else {
        aec_bconv2d_forward(y, col, x, wt, b, n, cin, h, w, cout, k, s, p);
        aec_conv2d_forward(yref, col1, xb, wt, b, n, cin, h, w, cout, k, s, p);
        aec_bconv2d_backward(dx, dw, db, col, dy, x, wt, n, cin, h, w, cout, k, s, p);
        aec_conv2d_backward(dxref, dwref, dbref, col1, dyb, xb, wt, n, cin, h, w, cout, k, s, p);
    }
    to_batch_major(yb, y, cout, n, (size_t)oh * ow);
    to_batch_major(dxb, dx, cin, n, (size_t)h * w);
    double e_y = 0, e_dx = 0, e_dw = 0, e_db = 0;
    for (size_t i = 0; i < out_n; i++)
        e_y = fmax(e_y, fabs(yb[i] - yref[i]));
    for (size_t i = 0; i < in_n; i++)
        e_dx = fmax(e_dx, fabs(dxb[i] - dxref[i]));
    for (size_t i = 0; i < wn; i++)
        e_dw = fmax(e_dw, fabs(dw[i] - dwref[i]));
    for (int i = 0; i < cout; i++)
        e_db = fmax(e_db, fabs(db[i] - dbref[i]));
    CHECK(e_y < 1e-4 && e_dx < 1e-4 && e_dw < 1e-3 && e_db < 1e-4,
          "%s: batch vs per-sample: out %g, dinp %g, dweight %g, dbias %g",
          transposed ? "transposed" : "conv", e_y, e_dx, e_dw, e_db);
    free(x), free(xb), free(wt), free(b), free(y), free(yb), free(yref), free(dy), free(dyb);
    free(dx), free(dxb), free(dxref), free(dw), free(dwref), free(col), free(col1);
}

int main(void)
{
    test_gdn_gradients(0);
    test_gdn_gradients(1);
    test_batch_conv(0);
    test_batch_conv(1);
    return TEST_SUMMARY();
}
