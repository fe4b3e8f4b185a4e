/* test_torch_vectors.c - the engine against PyTorch's numbers.
 *
 * ../shared/testvectors holds two small models (MLP and convolutional) in our
 * file format, F32 and F16, and PyTorch 1.13's latents and outputs
 * (inference mode), and for one training step: the loss, every parameter
 * gradient and every tensor after one Adam step. Skips when absent. */
#include <math.h>
#include <string.h>

#include "aec/model.h"
#include "aec/layers.h"
#include "aec/safetensors.h"
#include "testutil.h"

typedef struct {
    uint8_t *bytes;
    aec_st_file st;
} expected_file;

static const float *tensor_of(const expected_file *e, const char *name, size_t *count)
{
    const aec_st_tensor *t = aec_st_find(&e->st, name);
    REQUIRE(t && t->dtype == AEC_DT_F32, "expected tensor %s missing", name);
    *count = (t->end - t->begin) / 4;
    return (const float *)(e->st.data + t->begin);
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > worst || isnan(a[i]))
            worst = isnan(a[i]) ? INFINITY : fabs((double)a[i] - b[i]);
    return worst;
}

static double max_rel_diff(const float *a, const float *b, size_t n)
{
    /* relative to the tensor's scale, so tiny entries don't dominate; a
     * tensor whose true gradient is zero (a bias right before batchnorm) is
     * float noise of ~1e-9 in both, compared on an absolute scale of 1e-4 */
    double scale = 1e-4;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(b[i]));
    return max_abs_diff(a, b, n) / scale;
}

static void check_model(const char *dir, const char *name, float momentum)
{
    char path[4096], epath[4096], hpath[4096];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
    snprintf(hpath, sizeof hpath, "%s/%s.f16.safetensors", dir, name);
    snprintf(epath, sizeof epath, "%s/%s.expected.safetensors", dir, name);
    aec_error err = {{0}};
    expected_file e = {0};
    size_t len = 0;
    REQUIRE(aec_read_file(epath, 1 << 26, &e.bytes, &len, &err) == AEC_OK, "%s", err.msg);
    REQUIRE(aec_st_parse(&e.st, e.bytes, len, &err) == AEC_OK, "%s", err.msg);

    aec_model *m = NULL;
    REQUIRE(aec_model_load(&m, path, &err) == AEC_OK, "%s", err.msg);
    size_t nin, nlat, nout;
    const float *input = tensor_of(&e, "input", &nin);
    const float *want_latent = tensor_of(&e, "latent", &nlat);
    const float *want_out = tensor_of(&e, "output", &nout);
    int n = (int)(nin / aec_model_input_count(m));
    CHECK(n == 4, "%s: batch of %d", name, n);
    CHECK(nlat == (size_t)n * aec_model_latent_count(m), "%s: latent size", name);

    /* inference, batched and one by one (the sgemv path) */
    aec_workspace *ws = NULL;
    REQUIRE(aec_workspace_create(&ws, m, n, 1, &err) == AEC_OK, "%s", err.msg);
    float *lat = malloc(sizeof(float) * nlat), *out = malloc(sizeof(float) * nout);
    aec_model_encode(m, ws, input, n, lat);
    aec_model_reconstruct(m, ws, input, n, out);
    double dl = max_abs_diff(lat, want_latent, nlat), dout = max_abs_diff(out, want_out, nout);
    CHECK(dl < 1e-5, "%s: latent differs from PyTorch by %.3g", name, dl);
    CHECK(dout < 1e-5, "%s: output differs from PyTorch by %.3g", name, dout);
    aec_workspace *ws1 = NULL;
    REQUIRE(aec_workspace_create(&ws1, m, 1, 0, &err) == AEC_OK, "%s", err.msg);
    aec_model_reconstruct(m, ws1, input, n, out);
    dout = max_abs_diff(out, want_out, nout);
    CHECK(dout < 1e-5, "%s: batch-1 output differs from PyTorch by %.3g", name, dout);
    aec_model_decode(m, ws1, want_latent, n, out);
    dout = max_abs_diff(out, want_out, nout);
    CHECK(dout < 1e-5, "%s: decode(latent) differs from PyTorch by %.3g", name, dout);
    aec_workspace_free(ws1);

    /* F16 weights */
    aec_model *mh = NULL;
    REQUIRE(aec_model_load(&mh, hpath, &err) == AEC_OK, "%s", err.msg);
    aec_workspace *wsh = NULL;
    REQUIRE(aec_workspace_create(&wsh, mh, n, 0, &err) == AEC_OK, "%s", err.msg);
    size_t nh;
    const float *want_h = tensor_of(&e, "output_f16_weights", &nh);
    aec_model_reconstruct(mh, wsh, input, n, out);
    dout = max_abs_diff(out, want_h, nh);
    CHECK(dout < 1e-5, "%s: F16-weight output differs from PyTorch by %.3g", name, dout);
    aec_workspace_free(wsh);
    aec_model_free(mh);

    /* one training step */
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].type == AEC_LAYER_BATCHNORM)
            m->layers[i].momentum = momentum;
    REQUIRE(aec_model_alloc_training(m, &err) == AEC_OK, "%s", err.msg);
    aec_model_zero_grad(m);
    const float *y = aec_model_forward_train(m, ws, input, n);
    float *dy = malloc(sizeof(float) * nout);
    float loss = aec_mse_forward_backward(dy, y, input, nout);
    size_t one;
    float want_loss = *tensor_of(&e, "train.loss", &one);
    CHECK(fabsf(loss - want_loss) < 1e-6f, "%s: loss %.8g vs PyTorch %.8g", name, loss, want_loss);
    aec_model_backward(m, ws, input, dy, n);
    for (int i = 0; i < m->nlayers; i++)
        for (int j = 0; j < m->layers[i].nparams; j++) {
            aec_param *p = &m->layers[i].params[j];
            if (!p->trainable)
                continue;
            char tname[128];
            snprintf(tname, sizeof tname, "grad.%d.%s", i, p->suffix);
            size_t cnt;
            const float *g = tensor_of(&e, tname, &cnt);
            REQUIRE(cnt == p->count, "%s count", tname);
            double d = max_rel_diff(p->grad, g, cnt);
            CHECK(d < 1e-4, "%s: %s differs from PyTorch by %.3g (relative)", name, tname, d);
        }
    /* Adam consumes the gradients: keep a copy for the tolerance below */
    float *saved[64][AEC_MAX_PARAMS] = {{0}};
    for (int i = 0; i < m->nlayers && i < 64; i++)
        for (int j = 0; j < m->layers[i].nparams; j++) {
            aec_param *p = &m->layers[i].params[j];
            if (p->trainable) {
                saved[i][j] = malloc(sizeof(float) * p->count);
                memcpy(saved[i][j], p->grad, sizeof(float) * p->count);
            }
        }
    aec_adam adam = {1e-3f, 0.9f, 0.999f, 1e-7f};
    aec_adam_step(m, &adam, 1);
    for (int i = 0; i < m->nlayers; i++)
        for (int j = 0; j < m->layers[i].nparams; j++) {
            aec_param *p = &m->layers[i].params[j];
            char tname[128];
            snprintf(tname, sizeof tname, "after_step.%d.%s", i, p->suffix);
            size_t cnt;
            const float *a = tensor_of(&e, tname, &cnt);
            const float *g = NULL;
            if (p->trainable) {
                snprintf(tname, sizeof tname, "grad.%d.%s", i, p->suffix);
                g = tensor_of(&e, tname, &cnt);
                snprintf(tname, sizeof tname, "after_step.%d.%s", i, p->suffix);
            }
            /* Adam's first step is lr * g / (|g| + eps): where |g| is near eps
             * (gradients that are float noise), a gradient difference dg moves
             * the step by up to lr * dg / eps; allow exactly that on top of 1e-6.
             * Running statistics follow the data: a float32 tolerance. */
            int bad = 0;
            double worst = 0;
            for (size_t k = 0; k < cnt; k++) {
                double d = fabs((double)p->data[k] - a[k]);
                double tol = 1e-5;
                if (g)
                    tol = 1e-6 + adam.lr * fabs((double)saved[i][j][k] - g[k]) / adam.eps;
                if (!(d <= tol))
                    bad++;
                worst = fmax(worst, d);
            }
            CHECK(bad == 0, "%s: %s: %d values differ from PyTorch beyond tolerance (max %.3g)",
                  name, tname, bad, worst);
            if (p->trainable) {
                double left = 0;
                for (size_t k = 0; k < cnt; k++)
                    left = fmax(left, fabs(p->grad[k]));
                CHECK(left == 0, "%s: Adam leaves %s zero", name, tname);
                free(saved[i][j]);
            }
        }
    free(dy);
    free(lat);
    free(out);
    aec_workspace_free(ws);
    aec_model_free(m);
    aec_st_free(&e.st);
    free(e.bytes);
}

int main(void)
{
    const char *dir = test_shared_path_or_skip("testvectors");
    check_model(dir, "tiny_mlp", 0.01f);
    check_model(dir, "tiny_conv", 0.1f);
    return TEST_SUMMARY();
}
