/* test_rotation.c - the rotation recognizer (src/engine/rotation.c) and the
 * loss it trains with: softmax cross-entropy against finite differences,
 * the four turns and the mirror, the network's place in a model file (and
 * what is refused), and the raw score against the formula computed by
 * hand through the layers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/layers.h"
#include "aec/rotation.h"
#include "testutil.h"

#define S AEC_ROTATION_SIDE

/* A small recognizer: conv 3->4 k3 s4, relu, flatten, linear 1024 -> 4. */
static const char NET[] =
    "[{\"type\":\"conv2d\",\"in\":3,\"out\":4,\"kernel\":3,\"stride\":4,\"padding\":1},"
    "{\"type\":\"batchnorm\",\"features\":4,\"eps\":1e-05,\"momentum\":0.1},"
    "{\"type\":\"relu\"},{\"type\":\"flatten\"},{\"type\":\"linear\",\"in\":1024,\"out\":4}]";

static void softmax_xent(void)
{
    enum { N = 3, K = 5 };
    uint64_t rng = 7;
    float z[N * K], dz[N * K];
    double nll[N];
    int labels[N] = {0, 4, 2};
    for (int i = 0; i < N * K; i++)
        z[i] = 4 * test_rand_uniform(&rng) - 2;
    double loss = aec_softmax_xent_forward_backward(dz, nll, z, labels, N, K);
    double mean = 0;
    for (int i = 0; i < N; i++) {
        double total = 0;
        for (int k = 0; k < K; k++)
            total += exp(z[i * K + k]);
        double want = log(total) - z[i * K + labels[i]];
        CHECK(fabs(nll[i] - want) < 1e-6, "row %d: -log softmax %g, by hand %g", i, nll[i], want);
        mean += want / N;
    }
    CHECK(fabs(loss - mean) < 1e-6, "the loss is the rows' mean: %g vs %g", loss, mean);
    double worst = 0;
    for (int i = 0; i < N * K; i++) {
        float keep = z[i];
        z[i] = keep + 1e-3f;
        double up = aec_softmax_xent_forward_backward(NULL, NULL, z, labels, N, K);
        z[i] = keep - 1e-3f;
        double down = aec_softmax_xent_forward_backward(NULL, NULL, z, labels, N, K);
        z[i] = keep;
        double fd = (up - down) / 2e-3, e = fabs(fd - dz[i]);
        worst = e > worst ? e : worst;
    }
    CHECK(worst < 1e-4, "gradient against finite differences: worst error %g", worst);
    float big[K] = {1000, 0, 0, 0, -1000};
    int l = 4;
    double far = aec_softmax_xent_forward_backward(dz, NULL, big, &l, 1, K);
    CHECK(isfinite(far) && fabs(far - 2000) < 1e-3 && isfinite(dz[0]),
          "no overflow with large logits: %g", far);
}

static void views(void)
{
    /* one 2x2 plane [[a, b], [c, d]] turned a quarter counter-clockwise is
     * [[b, d], [a, c]] */
    float img[4] = {1, 2, 3, 4}, out[16];
    int labels[4];
    aec_rotation_views(img, 1, 1, 2, 0, out, labels);
    const float want1[4] = {2, 4, 1, 3}, want2[4] = {4, 3, 2, 1}, want3[4] = {3, 1, 4, 2};
    CHECK(!memcmp(out, img, sizeof img) && !memcmp(out + 4, want1, sizeof want1) &&
              !memcmp(out + 8, want2, sizeof want2) && !memcmp(out + 12, want3, sizeof want3),
          "the four turns of a 2x2 plane");
    CHECK(labels[0] == 0 && labels[1] == 1 && labels[2] == 2 && labels[3] == 3, "their labels");
    aec_rotation_views(img, 1, 1, 2, 1, out, NULL);
    const float mirror[4] = {2, 1, 4, 3};
    CHECK(!memcmp(out, mirror, sizeof mirror), "mirrored first");

    /* n images, c planes: image i turned by k lands at k * n + i; turning a
     * turn by 3 more quarters gives the image back */
    enum { N = 2, C = 3, W = 5 };
    float x[N * C * W * W], v[4 * N * C * W * W], back[4 * N * C * W * W];
    uint64_t rng = 3;
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        x[i] = test_rand_uniform(&rng);
    aec_rotation_views(x, N, C, W, 0, v, NULL);
    aec_rotation_views(v + 1 * N * C * W * W, N, C, W, 0, back, NULL);
    CHECK(!memcmp(back + 3 * N * C * W * W, x, sizeof x), "turn 1 then turn 3 is the image");
    CHECK(!memcmp(v, x, sizeof x), "turn 0 is the image");
}

static aec_model *small_net(uint64_t seed)
{
    aec_model *net = NULL;
    aec_error err;
    REQUIRE(aec_model_from_spec_network(&net, NET, 3, S, S, &err) == AEC_OK, "net: %s", err.msg);
    aec_model_init_weights(net, seed);
    /* running statistics that are not the defaults, so that they must travel */
    aec_param *var = &net->layers[1].params[3];
    for (size_t i = 0; i < var->count; i++)
        var->data[i] = 0.5f + (float)i;
    return net;
}

static aec_rgb_image random_photo(int w, int h, uint64_t seed)
{
    aec_rgb_image img = {.width = w, .height = h, .rgb = malloc((size_t)w * h * 3)};
    uint64_t rng = seed;
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        img.rgb[i] = (uint8_t)(test_rand_u64(&rng) & 255);
    return img;
}

/* r(x) by hand: the 8 views through aec_model_infer, -ln softmax summed. */
static double score_by_hand(const aec_model *net, const aec_rgb_image *img)
{
    aec_error err;
    float *x = malloc(sizeof(float) * 3 * S * S), *v = malloc(sizeof(float) * 3 * S * S * 8);
    REQUIRE(aec_image_to_tensor_fit(img, AEC_FIT_CROP, 3, S, S, x, &err) == AEC_OK, "fit");
    aec_rotation_views(x, 1, 3, S, 0, v, NULL);
    aec_rotation_views(x, 1, 3, S, 1, v + 4 * 3 * S * S, NULL);
    aec_workspace *ws = NULL;
    REQUIRE(aec_workspace_create(&ws, net, 8, 0, &err) == AEC_OK, "ws");
    const float *z = aec_model_infer(net, ws, v, 8, 0, net->nlayers - 1);
    double sum = 0;
    for (int i = 0; i < 8; i++) {
        double total = 0;
        for (int k = 0; k < 4; k++)
            total += exp((double)z[i * 4 + k]);
        sum += log(total) - z[i * 4 + i % 4];
    }
    aec_workspace_free(ws);
    free(x);
    free(v);
    return sum;
}

static void score_and_file(void)
{
    aec_error err;
    aec_model *net = small_net(11), *ae = NULL, *back = NULL;
    REQUIRE(aec_rotation_check(net, &err) == AEC_OK, "the small net is a recognizer: %s", err.msg);
    aec_rgb_image img = random_photo(90, 70, 5);
    double r = -1;
    REQUIRE(aec_rotation_score(net, &img, &r, &err) == AEC_OK, "score: %s", err.msg);
    double hand = score_by_hand(net, &img);
    CHECK(fabs(r - hand) < 1e-9 * (1 + hand) && r > 0, "the raw score is the formula: %.9g vs %.9g",
          r, hand);
    CHECK(aec_rotation_score_bytes(net) > sizeof(float) * 3 * S * S * 8,
          "its memory bound covers the views (%zu bytes)", aec_rotation_score_bytes(net));

    /* into an autoencoder's file and back: the same score */
    static const char AE[] =
        "[{\"type\":\"conv2d\",\"in\":3,\"out\":3,\"kernel\":1,\"stride\":1,\"padding\":0},"
        "{\"type\":\"sigmoid\"}]";
    REQUIRE(aec_model_from_spec(&ae, AE, 3, 48, 48, 0, &err) == AEC_OK, "ae: %s", err.msg);
    REQUIRE(aec_rotation_embed(ae, net, &err) == AEC_OK, "embed: %s", err.msg);
    const char *path = "rotation-embed.safetensors";
    char full[512];
    snprintf(full, sizeof full, "%s/%s", test_tmpdir(), path);
    REQUIRE(aec_model_save(ae, full, &err) == AEC_OK, "save: %s", err.msg);
    aec_model_free(ae);
    ae = NULL;
    REQUIRE(aec_model_load(&ae, full, &err) == AEC_OK, "load: %s", err.msg);
    REQUIRE(aec_rotation_from_model(ae, NET, &back, &err) == AEC_OK, "rebuild: %s", err.msg);
    double r2 = -1;
    aec_rotation_score(back, &img, &r2, &err);
    CHECK(r2 == r, "the rebuilt recognizer scores the same bits: %.17g vs %.17g", r2, r);
    CHECK(back->layers[1].params[3].data[1] == 1.5f, "with its running statistics");

    /* refusals */
    aec_model *none = NULL;
    static const char WIDER[] =
        "[{\"type\":\"conv2d\",\"in\":3,\"out\":5,\"kernel\":3,\"stride\":4,\"padding\":1},"
        "{\"type\":\"batchnorm\",\"features\":5,\"eps\":1e-05,\"momentum\":0.1},"
        "{\"type\":\"relu\"},{\"type\":\"flatten\"},{\"type\":\"linear\",\"in\":1280,\"out\":4}]";
    CHECK(aec_rotation_from_model(ae, WIDER, &none, &err) == AEC_ERR_FORMAT && !none &&
              strstr(err.msg, "aec.rotation.0.weight"),
          "tensors of another size: %s", err.msg);
    static const char DEEPER[] =
        "[{\"type\":\"conv2d\",\"in\":3,\"out\":4,\"kernel\":3,\"stride\":4,\"padding\":1},"
        "{\"type\":\"batchnorm\",\"features\":4,\"eps\":1e-05,\"momentum\":0.1},"
        "{\"type\":\"relu\"},{\"type\":\"flatten\"},{\"type\":\"linear\",\"in\":1024,\"out\":4},"
        "{\"type\":\"relu\"},{\"type\":\"linear\",\"in\":4,\"out\":4}]";
    CHECK(aec_rotation_from_model(ae, DEEPER, &none, &err) == AEC_ERR_FORMAT && !none &&
              strstr(err.msg, "missing"),
          "a tensor the file lacks: %s", err.msg);
    static const char THREE[] =
        "[{\"type\":\"conv2d\",\"in\":3,\"out\":4,\"kernel\":3,\"stride\":4,\"padding\":1},"
        "{\"type\":\"flatten\"},{\"type\":\"linear\",\"in\":1024,\"out\":3}]";
    CHECK(aec_rotation_from_model(ae, THREE, &none, &err) == AEC_ERR_FORMAT && !none &&
              strstr(err.msg, "logits"),
          "a network with 3 outputs: %s", err.msg);
    CHECK(aec_rotation_check(ae, &err) == AEC_ERR_FORMAT, "an autoencoder is no recognizer: %s",
          err.msg);

    free(img.rgb);
    aec_model_free(back);
    aec_model_free(ae);
    aec_model_free(net);
}

int main(void)
{
    softmax_xent();
    views();
    score_and_file();
    return TEST_SUMMARY();
}
