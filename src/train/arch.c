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

aec_status train_arch_spec(const train_options *o, char **json, int *latent_index, aec_error *err)
{
    if (strcmp(o->arch, "mlp") == 0)
        return mlp_spec(o, json, latent_index, err);
    if (strcmp(o->arch, "conv") == 0)
        return conv_spec(o, json, latent_index, err);
    return aec_fail(err, AEC_ERR_INVALID, "unknown --arch \"%s\" (mlp or conv)", o->arch);
}
