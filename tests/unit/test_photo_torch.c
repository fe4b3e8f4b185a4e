/* test_photo_torch.c - the photo codec's layers against PyTorch's own
 * kernels (tests/golden/photo-torch.safetensors, made by
 * tests/torch/make_photo_vectors.py from tests/golden/photo-tiny.safetensors):
 *   - GDN and inverse GDN, forward and backward (input, beta, gamma
 *     gradients), the training kernels and the fixed-order inference one;
 *   - the analysis transform g_a (strided convolutions, GDN) and the synthesis
 *     transform g_s (transposed convolutions, inverse GDN) of the serving
 *     path on a 64x64 image, with the model file's PyTorch layouts and GDN
 *     reparametrization.
 * Agreement within float32 rounding of a different order of operations:
 * |a - b| <= 1e-4 (1 + |b|) everywhere. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/layers.h"
#include "aec/photo.h"
#include "aec/safetensors.h"
#include "testutil.h"

static aec_st_file vec;

static const float *tensor(const char *name, size_t want)
{
    const aec_st_tensor *t = aec_st_find(&vec, name);
    REQUIRE(t && t->dtype == AEC_DT_F32 && t->end - t->begin == want * sizeof(float),
            "vector %s (%zu floats)", name, want);
    return (const float *)(vec.data + t->begin);
}

/* The largest |a - b| / (1 + |b|). */
static double worst(const float *a, const float *b, size_t n)
{
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (1.0 + fabs((double)b[i]));
        if (!(d <= w)) /* NaN counts as the worst */
            w = isnan(d) ? INFINITY : d;
    }
    return w;
}

#define TOL 1e-4

static void test_gdn(int c)
{
    enum { P = 20 };
    const float *x = tensor("gdn.x", (size_t)c * P), *dout = tensor("gdn.dout", (size_t)c * P);
    const float *beta = tensor("gdn.beta", (size_t)c), *gamma = tensor("gdn.gamma", (size_t)c * c);
    for (int inverse = 0; inverse <= 1; inverse++) {
        const char *pre = inverse ? "igdn" : "gdn";
        char name[32];
        float *y = malloc(sizeof(float) * c * P), *norm = malloc(sizeof(float) * c * P);
        float *dx = malloc(sizeof(float) * c * P), *scratch = malloc(sizeof(float) * 2 * c * P);
        float *dbeta = calloc((size_t)c, sizeof(float)), *dgamma = calloc((size_t)c * c, 4);
        float *yi = malloc(sizeof(float) * c * P);
        float *sc = malloc(sizeof(float) * aec_gdn_infer_scratch(c, 2));
        REQUIRE(y && norm && dx && scratch && dbeta && dgamma && yi && sc, "oom");
        aec_gdn_forward(y, norm, x, beta, gamma, c, P, inverse);
        aec_gdn_backward(dx, dbeta, dgamma, scratch, dout, x, norm, gamma, c, P, inverse);
        aec_gdn_infer(yi, sc, x, beta, gamma, c, P, inverse, 2);
        snprintf(name, sizeof name, "%s.y", pre);
        double e = worst(y, tensor(name, (size_t)c * P), (size_t)c * P);
        CHECK(e <= TOL, "%s forward agrees with PyTorch (worst %g)", pre, e);
        e = worst(yi, tensor(name, (size_t)c * P), (size_t)c * P);
        CHECK(e <= TOL, "%s inference agrees with PyTorch (worst %g)", pre, e);
        snprintf(name, sizeof name, "%s.dx", pre);
        e = worst(dx, tensor(name, (size_t)c * P), (size_t)c * P);
        CHECK(e <= TOL, "%s d/dx agrees with PyTorch (worst %g)", pre, e);
        snprintf(name, sizeof name, "%s.dbeta", pre);
        e = worst(dbeta, tensor(name, (size_t)c), (size_t)c);
        CHECK(e <= TOL, "%s d/dbeta agrees with PyTorch (worst %g)", pre, e);
        snprintf(name, sizeof name, "%s.dgamma", pre);
        e = worst(dgamma, tensor(name, (size_t)c * c), (size_t)c * c);
        CHECK(e <= TOL, "%s d/dgamma agrees with PyTorch (worst %g)", pre, e);
        free(y), free(norm), free(dx), free(scratch), free(dbeta), free(dgamma), free(yi), free(sc);
    }
}

static void test_transforms(const aec_photo *p)
{
    aec_error err = {{0}};
    size_t nx = (size_t)3 * 64 * 64, ny = (size_t)p->cfg.m * 4 * 4;
    const float *x = tensor("x", nx), *y_ref = tensor("y", ny), *xhat_ref = tensor("xhat", nx);
    float *y = malloc(sizeof(float) * ny), *xhat = malloc(sizeof(float) * nx);
    REQUIRE(y && xhat, "oom");
    REQUIRE(aec_photo_analysis(p, x, 64, 64, 0, 2, y, &err) == AEC_OK, "%s", err.msg);
    double e = worst(y, y_ref, ny);
    CHECK(e <= TOL, "g_a (convolutions, GDN) agrees with PyTorch (worst %g)", e);
    /* g_s from PyTorch's y, so that each transform is compared alone */
    REQUIRE(aec_photo_synthesis(p, y_ref, 4, 4, 0, 2, xhat, &err) == AEC_OK, "%s", err.msg);
    e = worst(xhat, xhat_ref, nx);
    CHECK(e <= TOL, "g_s (transposed convolutions, inverse GDN) agrees with PyTorch (worst %g)", e);
    free(y), free(xhat);
}

int main(void)
{
    const char *dir = getenv("AEC_GOLDEN_DIR");
    if (!dir)
        SKIP("AEC_GOLDEN_DIR is not set");
    char path[1024];
    snprintf(path, sizeof path, "%s/photo-torch.safetensors", dir);
    size_t len = 0;
    uint8_t *buf = test_read_file(path, &len);
    REQUIRE(buf, "%s is missing (tests/torch/make_photo_vectors.py makes it)", path);
    aec_error err = {{0}};
    REQUIRE(aec_st_parse(&vec, buf, len, &err) == AEC_OK, "%s: %s", path, err.msg);
    snprintf(path, sizeof path, "%s/photo-tiny.safetensors", dir);
    aec_photo *p = NULL;
    REQUIRE(aec_photo_load(&p, path, &err) == AEC_OK, "%s", err.msg);
    test_gdn(p->cfg.n);
    test_transforms(p);
    aec_photo_free(p);
    aec_st_free(&vec);
    free(buf);
    return TEST_SUMMARY();
}
