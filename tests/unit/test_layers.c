/* test_layers.c - every layer against hand-computed values, and every
 * backward pass against finite differences of its forward pass.
 *
 * Gradient check: for a random upstream gradient R, the scalar
 * L = sum(forward(x) * R) has dL/dx = backward(R); we perturb inputs and
 * parameters by +-h and compare (L+ - L-)/2h with the analytic value. */
#include <math.h>
#include <string.h>

#include "aec/layers.h"
#include "testutil.h"

static uint64_t rng = 42;

static void fill(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * test_rand_uniform(&rng);
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* A layer under test: forward into out given (x, params); backward fills dx
 * and accumulates dparams. */
typedef struct {
    const char *name;
    size_t nx, nout, nparam;
    void (*forward)(void *ctx, float *out, const float *x, const float *p);
    void (*backward)(void *ctx, float *dx, float *dp, const float *dout, const float *x,
                     const float *p);
    void *ctx;
} layer_case;

static void gradcheck(const layer_case *c, float xlo, float xhi)
{
    float *x = malloc(sizeof(float) * c->nx), *p = malloc(sizeof(float) * (c->nparam + 1));
    float *out = malloc(sizeof(float) * c->nout), *R = malloc(sizeof(float) * c->nout);
    float *dx = malloc(sizeof(float) * c->nx), *dp = calloc(c->nparam + 1, sizeof(float));
    REQUIRE(x && p && out && R && dx && dp, "oom");
    fill(x, c->nx, xlo, xhi);
    fill(p, c->nparam, -0.5f, 0.5f);
    fill(R, c->nout, -1.0f, 1.0f);
    c->forward(c->ctx, out, x, p);
    c->backward(c->ctx, dx, dp, R, x, p);
    const float h = 1e-2f;
    double worst = 0;
    int checked = 0;
    for (int pass = 0; pass < 2; pass++) {
        float *v = pass == 0 ? x : p, *g = pass == 0 ? dx : dp;
        size_t n = pass == 0 ? c->nx : c->nparam;
        size_t step = n > 40 ? n / 40 : 1;
        for (size_t i = 0; i < n; i += step) {
            float keep = v[i];
            v[i] = keep + h;
            c->forward(c->ctx, out, x, p);
            double lp = dot(out, R, c->nout);
            v[i] = keep - h;
            c->forward(c->ctx, out, x, p);
            double lm = dot(out, R, c->nout);
            v[i] = keep;
            double num = (lp - lm) / (2 * h);
            double err = fabs(num - g[i]) / (fabs(num) + fabs(g[i]) + 1e-2);
            if (err > worst)
                worst = err;
            checked++;
        }
    }
    CHECK(worst < 2e-2, "%s: worst relative gradient error %.3g over %d checks", c->name, worst,
          checked);
    free(x), free(p), free(out), free(R), free(dx), free(dp);
}

/* ---- linear ---- */
typedef struct {
    int n, in, out;
} lin_ctx;

static void lin_fwd(void *v, float *out, const float *x, const float *p)
{
    lin_ctx *c = v;
    aec_linear_forward(out, x, p, p + c->out * c->in, c->n, c->in, c->out);
}

static void lin_bwd(void *v, float *dx, float *dp, const float *dout, const float *x,
                    const float *p)
{
    lin_ctx *c = v;
    aec_linear_backward(dx, dp, dp + c->out * c->in, dout, x, p, c->n, c->in, c->out);
}

/* ---- batchnorm (training mode; running stats are side outputs) ---- */
typedef struct {
    int n, c, spatial;
    float mean[16], rstd[16], rm[16], rv[16];
} bn_ctx;

static void bn_fwd(void *v, float *out, const float *x, const float *p)
{
    bn_ctx *c = v;
    aec_batchnorm_forward_train(out, c->mean, c->rstd, c->rm, c->rv, x, p, p + c->c, c->n, c->c,
                                c->spatial, 1e-3f, 0.1f);
}

static void bn_bwd(void *v, float *dx, float *dp, const float *dout, const float *x, const float *p)
{
    bn_ctx *c = v;
    float out[4096];
    bn_fwd(v, out, x, p);
    aec_batchnorm_backward(dx, dp, dp + c->c, dout, x, c->mean, c->rstd, p, c->n, c->c, c->spatial);
}

/* ---- activations ---- */
typedef struct {
    size_t count;
    int sigmoid;
    float out[4096];
} act_ctx;

static void act_fwd(void *v, float *out, const float *x, const float *p)
{
    (void)p;
    act_ctx *c = v;
    if (c->sigmoid)
        aec_sigmoid_forward(out, x, c->count);
    else
        aec_relu_forward(out, x, c->count);
}

static void act_bwd(void *v, float *dx, float *dp, const float *dout, const float *x,
                    const float *p)
{
    (void)dp;
    act_ctx *c = v;
    act_fwd(v, c->out, x, p);
    if (c->sigmoid)
        aec_sigmoid_backward(dx, dout, c->out, c->count);
    else
        aec_relu_backward(dx, dout, c->out, c->count);
}

/* ---- conv2d / conv_transpose2d ---- */
typedef struct {
    int n, cin, h, w, cout, k, s, p, op, transpose;
    float col[8192];
} conv_ctx;

static void conv_fwd(void *v, float *out, const float *x, const float *p)
{
    conv_ctx *c = v;
    size_t wc = (size_t)c->cin * c->cout * c->k * c->k;
    if (c->transpose)
        aec_conv_transpose2d_forward(out, c->col, x, p, p + wc, c->n, c->cin, c->h, c->w, c->cout,
                                     c->k, c->s, c->p, c->op);
    else
        aec_conv2d_forward(out, c->col, x, p, p + wc, c->n, c->cin, c->h, c->w, c->cout, c->k, c->s,
                           c->p);
}

static void conv_bwd(void *v, float *dx, float *dp, const float *dout, const float *x,
                     const float *p)
{
    conv_ctx *c = v;
    size_t wc = (size_t)c->cin * c->cout * c->k * c->k;
    if (c->transpose)
        aec_conv_transpose2d_backward(dx, dp, dp + wc, c->col, dout, x, p, c->n, c->cin, c->h, c->w,
                                      c->cout, c->k, c->s, c->p, c->op);
    else
        aec_conv2d_backward(dx, dp, dp + wc, c->col, dout, x, p, c->n, c->cin, c->h, c->w, c->cout,
                            c->k, c->s, c->p);
}

static void check_conv(int n, int cin, int h, int w, int cout, int k, int s, int p, int op,
                       int transpose)
{
    conv_ctx c = {n, cin, h, w, cout, k, s, p, op, transpose, {0}};
    int oh = transpose ? (h - 1) * s - 2 * p + k + op : (h + 2 * p - k) / s + 1;
    int ow = transpose ? (w - 1) * s - 2 * p + k + op : (w + 2 * p - k) / s + 1;
    char name[128];
    snprintf(name, sizeof name, "%s n%d %d->%d %dx%d k%d s%d p%d op%d",
             transpose ? "conv_transpose2d" : "conv2d", n, cin, cout, h, w, k, s, p, op);
    layer_case lc = {name,
                     (size_t)n * cin * h * w,
                     (size_t)n * cout * oh * ow,
                     (size_t)cin * cout * k * k + cout,
                     conv_fwd,
                     conv_bwd,
                     &c};
    gradcheck(&lc, -1, 1);
}

/* ---- hand-computed forward values ---- */
static void forward_values(void)
{
    /* linear: 2 samples, 3 -> 2 */
    float x[6] = {1, 2, 3, -1, 0, 1};
    float W[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f};
    float b[2] = {0.25f, -1};
    float y[4];
    aec_linear_forward(y, x, W, b, 2, 3, 2);
    float want[4] = {1 - 3 + 0.25f, 3 - 1, -1 - 1 + 0.25f, 0 - 1};
    for (int i = 0; i < 4; i++)
        CHECK(fabsf(y[i] - want[i]) < 1e-6f, "linear y[%d]=%g want %g", i, y[i], want[i]);
    aec_linear_forward(y, x, W, b, 1, 3, 2); /* sgemv path */
    CHECK(fabsf(y[0] - want[0]) < 1e-6f && fabsf(y[1] - want[1]) < 1e-6f, "linear n=1");

    float r[4] = {-1, 0, 2, -0.5f}, ro[4];
    aec_relu_forward(ro, r, 4);
    CHECK(ro[0] == 0 && ro[1] == 0 && ro[2] == 2 && ro[3] == 0, "relu");
    float s[3] = {0, 100, -100}, so[3];
    aec_sigmoid_forward(so, s, 3);
    CHECK(so[0] == 0.5f && so[1] > 0.99999f && so[2] < 1e-6f, "sigmoid");

    /* conv2d: 1 channel 3x3 input 1..9, 2x2 kernel of ones, stride 1, no pad -> sums */
    float img[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, k4[4] = {1, 1, 1, 1}, zero = 0, col[64];
    float co[4];
    aec_conv2d_forward(co, col, img, k4, &zero, 1, 1, 3, 3, 1, 2, 1, 0);
    float cw[4] = {12, 16, 24, 28};
    for (int i = 0; i < 4; i++)
        CHECK(co[i] == cw[i], "conv2d out[%d]=%g want %g", i, co[i], cw[i]);
    /* padding 1, stride 2, 3x3 kernel with only the centre set -> samples x[0,0],x[0,2],.. */
    float kc[9] = {0, 0, 0, 0, 1, 0, 0, 0, 0}, cs[4];
    aec_conv2d_forward(cs, col, img, kc, &zero, 1, 1, 3, 3, 1, 3, 2, 1);
    CHECK(cs[0] == 1 && cs[1] == 3 && cs[2] == 7 && cs[3] == 9, "conv2d stride 2 pad 1");

    /* conv_transpose2d: 1x2x2 input, 2x2 kernel of ones, stride 2 -> each pixel a 2x2 block */
    float ti[4] = {1, 2, 3, 4}, tb = 0.5f, to[16];
    aec_conv_transpose2d_forward(to, col, ti, k4, &tb, 1, 1, 2, 2, 1, 2, 2, 0, 0);
    for (int yy = 0; yy < 4; yy++)
        for (int xx = 0; xx < 4; xx++) {
            float want_v = ti[(yy / 2) * 2 + xx / 2] + 0.5f;
            CHECK(to[yy * 4 + xx] == want_v, "conv_t out[%d,%d]=%g want %g", yy, xx,
                  to[yy * 4 + xx], want_v);
        }
    /* k3 s2 p1 op1 on 2x2 -> 4x4: output size as PyTorch */
    float k9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    aec_conv_transpose2d_forward(to, col, ti, k9, &zero, 1, 1, 2, 2, 1, 3, 2, 1, 1);
    /* out[0,0] gets input (0,0) at kernel centre only */
    CHECK(to[0] == 1, "conv_t k3s2p1op1 out[0,0]=%g", to[0]);
    CHECK(to[1 * 4 + 1] == 1 + 2 + 3 + 4, "conv_t centre pixel sums all four: %g", to[5]);

    /* batchnorm eval: (x - mean)/sqrt(var + eps) * gamma + beta */
    float bx[2] = {3, 5}, g = 2, be = 1, rm = 1, rv = 3, bo[2];
    aec_batchnorm_forward_eval(bo, bx, &g, &be, &rm, &rv, 2, 1, 1, 1.0f);
    CHECK(fabsf(bo[0] - 3.0f) < 1e-6f && fabsf(bo[1] - 5.0f) < 1e-6f, "bn eval %g %g", bo[0],
          bo[1]);
    /* batchnorm train: batch {1,3}: mean 2, var 1 -> {-1,1}/sqrt(1+eps); running updated */
    float tx[2] = {1, 3}, tm, tr, rmean = 0, rvar = 1, tout[2], one = 1, nil = 0;
    aec_batchnorm_forward_train(tout, &tm, &tr, &rmean, &rvar, tx, &one, &nil, 2, 1, 1, 0, 0.5f);
    CHECK(fabsf(tout[0] + 1) < 1e-6f && fabsf(tout[1] - 1) < 1e-6f, "bn train out");
    CHECK(fabsf(rmean - 1.0f) < 1e-6f, "running mean %g", rmean);
    CHECK(fabsf(rvar - 1.5f) < 1e-6f, "running var (unbiased 2) %g", rvar);

    float o2[2] = {1, 0}, t2[2] = {0, 0}, d2[2];
    float loss = aec_mse_forward_backward(d2, o2, t2, 2);
    CHECK(loss == 0.5f && d2[0] == 1.0f && d2[1] == 0.0f, "mse");
}

int main(void)
{
    forward_values();

    lin_ctx lc1 = {5, 7, 4};
    layer_case lin = {"linear n5 7->4", 35, 20, 7 * 4 + 4, lin_fwd, lin_bwd, &lc1};
    gradcheck(&lin, -1, 1);
    lin_ctx lc2 = {1, 6, 3};
    layer_case lin1 = {"linear n1", 6, 3, 6 * 3 + 3, lin_fwd, lin_bwd, &lc2};
    gradcheck(&lin1, -1, 1);

    bn_ctx bf = {6, 5, 1, {0}, {0}, {0}, {0}};
    layer_case bnf = {"batchnorm flat", 30, 30, 10, bn_fwd, bn_bwd, &bf};
    gradcheck(&bnf, -1, 1);
    bn_ctx bs = {3, 4, 9, {0}, {0}, {0}, {0}};
    layer_case bnc = {"batchnorm spatial", 108, 108, 8, bn_fwd, bn_bwd, &bs};
    gradcheck(&bnc, -1, 1);

    act_ctx relu = {50, 0, {0}}, sig = {50, 1, {0}};
    layer_case lr = {"relu", 50, 50, 0, act_fwd, act_bwd, &relu};
    gradcheck(&lr, 0.05f, 1); /* keep away from the kink at 0 */
    layer_case ls = {"sigmoid", 50, 50, 0, act_fwd, act_bwd, &sig};
    gradcheck(&ls, -3, 3);

    check_conv(2, 3, 5, 5, 4, 3, 1, 1, 0, 0);
    check_conv(2, 2, 6, 5, 3, 3, 2, 1, 0, 0);
    check_conv(1, 3, 4, 4, 2, 1, 1, 0, 0, 0); /* pointwise */
    check_conv(2, 2, 7, 6, 3, 4, 2, 0, 0, 0);
    check_conv(2, 3, 3, 3, 2, 3, 2, 1, 1, 1);
    check_conv(2, 2, 4, 3, 3, 3, 1, 1, 0, 1);
    check_conv(1, 3, 3, 3, 2, 1, 1, 0, 0, 1); /* pointwise transpose */
    check_conv(2, 2, 3, 4, 2, 2, 2, 0, 0, 1);
    return TEST_SUMMARY();
}
