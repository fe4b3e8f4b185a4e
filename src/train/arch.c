/* arch.c - the built-in architectures as aec.layers JSON.
 *
 * mlp:  the reference model, rescaled by --size S and --latent N:
 *       flatten -> batchnorm(D) -> linear D->D/2 -> relu -> linear D/2->N -> relu (latent)
 *       -> batchnorm(N) -> linear N->D/2 -> relu -> linear D/2->D -> sigmoid -> unflatten,
 *       with D = 3*S*S and batchnorm as Keras defaults (momentum 0.99, eps 0.001).
 * conv: a convolutional autoencoder with a latent of N channels at S/4 x S/4:
 *       conv 3->W k3 -> relu -> conv W->2W k3 s2 -> relu -> conv 2W->2W k3 s2 -> relu
 *       -> conv 2W->N k1 (latent) -> conv_t N->2W k3 s2 -> relu -> conv_t 2W->W k3 s2
 *       -> relu -> conv W->3 k3 -> sigmoid.
 * rotation: the rotation recognizer (include/aec/rotation.h), 64x64 in, 4
 *       logits out, W = --width (default 16); every conv k3 p1 then
 *       batchnorm and relu: W s1, 2W s2, 2W s1, 4W s2, 4W s1, 8W s2, 8W s2
 *       (4x4), then flatten and linear 128W -> 4.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

static aec_status mlp_spec(const train_options *o, char **json, int *latent, aec_error *err)
{
    int d = 3 * o->size * o->size, hidden = d / 2;
    int n = o->latent > 0 ? o->latent : d / 4;
    size_t cap = 2048;
    char *s = malloc(cap);
    if (!s)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    snprintf(s, cap,
             "[{\"type\":\"flatten\"},"
             "{\"type\":\"batchnorm\",\"features\":%d,\"eps\":0.001,\"momentum\":0.01},"
             "{\"type\":\"linear\",\"in\":%d,\"out\":%d},{\"type\":\"relu\"},"
             "{\"type\":\"linear\",\"in\":%d,\"out\":%d},{\"type\":\"relu\"},"
             "{\"type\":\"batchnorm\",\"features\":%d,\"eps\":0.001,\"momentum\":0.01},"
             "{\"type\":\"linear\",\"in\":%d,\"out\":%d},{\"type\":\"relu\"},"
             "{\"type\":\"linear\",\"in\":%d,\"out\":%d},{\"type\":\"sigmoid\"},"
             "{\"type\":\"unflatten\",\"shape\":[3,%d,%d]}]",
             d, d, hidden, hidden, n, n, n, hidden, hidden, d, o->size, o->size);
    *json = s;
    *latent = 5;
    return AEC_OK;
}

static aec_status conv_spec(const train_options *o, char **json, int *latent, aec_error *err)
{
    if (o->size % 4)
        return aec_fail(err, AEC_ERR_INVALID, "--arch conv needs --size divisible by 4, not %d",
                        o->size);
    int w = o->width > 0 ? o->width : 32;
    int n = o->latent > 0 ? o->latent : 12; /* 12 x 12 x 12 = 1728 at 48x48 */
    size_t cap = 2048;
    char *s = malloc(cap);
    if (!s)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    snprintf(s, cap,
             "[{\"type\":\"conv2d\",\"in\":3,\"out\":%d,\"kernel\":3,\"stride\":1,\"padding\":1},"
             "{\"type\":\"relu\"},"
             "{\"type\":\"conv2d\",\"in\":%d,\"out\":%d,\"kernel\":3,\"stride\":2,\"padding\":1},"
             "{\"type\":\"relu\"},"
             "{\"type\":\"conv2d\",\"in\":%d,\"out\":%d,\"kernel\":3,\"stride\":2,\"padding\":1},"
             "{\"type\":\"relu\"},"
             "{\"type\":\"conv2d\",\"in\":%d,\"out\":%d,\"kernel\":1,\"stride\":1,\"padding\":0},"
             "{\"type\":\"conv_transpose2d\",\"in\":%d,\"out\":%d,\"kernel\":3,\"stride\":2,"
             "\"padding\":1,\"output_padding\":1},"
             "{\"type\":\"relu\"},"
             "{\"type\":\"conv_transpose2d\",\"in\":%d,\"out\":%d,\"kernel\":3,\"stride\":2,"
             "\"padding\":1,\"output_padding\":1},"
             "{\"type\":\"relu\"},"
             "{\"type\":\"conv2d\",\"in\":%d,\"out\":3,\"kernel\":3,\"stride\":1,\"padding\":1},"
             "{\"type\":\"sigmoid\"}]",
             w, w, 2 * w, 2 * w, 2 * w, 2 * w, n, n, 2 * w, 2 * w, w, w);
    *json = s;
    *latent = 6;
    return AEC_OK;
}

static aec_status rotation_spec(const train_options *o, char **json, int *latent, aec_error *err)
{
    int w = o->width > 0 ? o->width : 16;
    int ch[8] = {3, w, 2 * w, 2 * w, 4 * w, 4 * w, 8 * w, 8 * w};
    int stride[7] = {1, 2, 1, 2, 1, 2, 2};
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    if (!s)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    len += (size_t)snprintf(s + len, cap - len, "[");
    for (int i = 0; i < 7; i++)
        len += (size_t)snprintf(
            s + len, cap - len,
            "{\"type\":\"conv2d\",\"in\":%d,\"out\":%d,\"kernel\":3,\"stride\":%d,\"padding\":1},"
            "{\"type\":\"batchnorm\",\"features\":%d,\"eps\":1e-05,\"momentum\":0.1},"
            "{\"type\":\"relu\"},",
            ch[i], ch[i + 1], stride[i], ch[i + 1]);
    snprintf(s + len, cap - len,
             "{\"type\":\"flatten\"},{\"type\":\"linear\",\"in\":%d,\"out\":4}]", 8 * w * 16);
    *json = s;
    *latent = 0;
    return AEC_OK;
}

aec_status train_arch_spec(const train_options *o, char **json, int *latent_index, aec_error *err)
{
    if (strcmp(o->arch, "mlp") == 0)
        return mlp_spec(o, json, latent_index, err);
    if (strcmp(o->arch, "conv") == 0)
        return conv_spec(o, json, latent_index, err);
    if (strcmp(o->arch, "rotation") == 0)
        return rotation_spec(o, json, latent_index, err);
    return aec_fail(err, AEC_ERR_INVALID, "unknown --arch \"%s\" (mlp, conv, photo or rotation)",
                    o->arch);
}
