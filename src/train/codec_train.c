/* codec_train.c - rate-aware training of a codec model (aec-train --lambda).
 *
 * One step, as in learned image compression (Balle et al. 2018):
 *
 *   y  = encoder(x)                      latent, [n, c, h, w]
 *   yq = round(y)                        what the decoder will really see;
 *                                        the gradient passes straight through
 *   yn = y + u, u ~ U(-1/2, 1/2)         what the rate is measured on
 *   loss = MSE(decoder(yq), x) + lambda * bits(yn) / pixels
 *
 * In the first half of a run the decoder gets yn instead of yq: from random
 * weights the latent is smaller than the rounding step, round(y) is all
 * zeros and nothing would learn; noise of the same size as the rounding
 * error lets the encoder grow the latent past it first.
 *
 * bits() is a factorized logistic prior with a location and scale per
 * latent channel, trained with the model (src/engine/rate.c). At the end
 * the prior is replaced by what the entropy coder really uses: histograms
 * of the rounded latents of the training images (aec_codec_builder), and
 * the validation images are coded for real to report bytes and PSNR.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "aec/codec.h"
#include "aec/entropy.h"
#include "aec/layers.h"
#include "aec/random.h"
#include "train.h"

struct train_codec {
    int channels, spatial, pixels;
    size_t latent;     /* values per image */
    float *mu, *log_s; /* the prior */
    float *dmu, *dls, *m_mu, *v_mu, *m_ls, *v_ls;
    float *yq, *yn, *dy; /* [batch x latent] */
    uint64_t rng;
};

void train_codec_free(train_codec *c)
{
    if (!c)
        return;
    free(c->mu), free(c->log_s), free(c->dmu), free(c->dls);
    free(c->m_mu), free(c->v_mu), free(c->m_ls), free(c->v_ls);
    free(c->yq), free(c->yn), free(c->dy);
    free(c);
}

aec_status train_codec_create(train_codec **out, const aec_model *m, int batch, uint64_t seed,
                              aec_error *err)
{
    const aec_shape *s = &m->layers[m->latent_index].out_shape;
    train_codec *c = calloc(1, sizeof *c);
    if (!c)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    c->channels = s->c;
    c->spatial = s->h * s->w;
    c->pixels = m->input.h * m->input.w;
    c->latent = aec_model_latent_count(m);
    c->rng = seed ^ 0x5eedc0dec0ffeeull;
    size_t nc = (size_t)c->channels, nb = c->latent * (size_t)batch;
    float **per_channel[] = {&c->mu,   &c->log_s, &c->dmu,  &c->dls,
                             &c->m_mu, &c->v_mu,  &c->m_ls, &c->v_ls};
    int ok = 1;
    for (size_t i = 0; i < sizeof per_channel / sizeof *per_channel; i++)
        ok &= (*per_channel[i] = calloc(nc, sizeof(float))) != NULL;
    ok = ok && (c->yq = malloc(sizeof(float) * nb)) && (c->yn = malloc(sizeof(float) * nb)) &&
         (c->dy = malloc(sizeof(float) * nb));
    if (!ok) {
        train_codec_free(c);
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory for codec training");
    }
    *out = c;
    return AEC_OK;
}

/* Starts the prior at each channel's mean and spread over n latents. */
void train_codec_init_prior(train_codec *c, const float *latents, int n)
{
    for (int j = 0; j < c->channels; j++) {
        double sum = 0, sq = 0, count = (double)n * c->spatial;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < c->spatial; k++) {
                double v = latents[((size_t)i * c->channels + j) * c->spatial + k];
                sum += v, sq += v * v;
            }
        double mean = sum / count, var = sq / count - mean * mean;
        double scale = sqrt(var > 0 ? var : 0) * sqrt(3.0) / M_PI; /* logistic: var = (s pi)^2/3 */
        c->mu[j] = (float)mean;
        c->log_s[j] = (float)log(scale > 0.1 ? scale : 0.1);
    }
}

double train_codec_step(train_codec *c, aec_model *m, aec_workspace *ws, const float *x, int n,
                        float *dout, float lambda, int noisy, double *bits)
{
    int latent = m->latent_index, last = m->nlayers - 1;
    size_t count = c->latent * (size_t)n;
    const float *y = aec_model_forward_train_range(m, ws, x, n, 0, latent);
    for (size_t i = 0; i < count; i++) {
        double u = (double)(aec_random_next(&c->rng) >> 11) * 0x1.0p-53 - 0.5;
        c->yq[i] = rintf(y[i]);
        c->yn[i] = y[i] + (float)u;
    }
    *bits = aec_rate_forward(c->yn, c->mu, c->log_s, n, c->channels, c->spatial);
    const float *dec_in = noisy ? c->yn : c->yq;
    const float *xh = aec_model_forward_train_range(m, ws, dec_in, n, latent + 1, last);
    size_t per = aec_model_input_count(m);
    float mse = aec_mse_forward_backward(dout, xh, x, per * (size_t)n);
    const float *dq = aec_model_backward_range(m, ws, dec_in, dout, n, latent + 1, last, 1);
    memcpy(c->dy, dq, sizeof(float) * count); /* straight through the rounding */
    float scale = lambda / ((float)n * (float)c->pixels);
    aec_rate_backward(c->dy, c->dmu, c->dls, c->yn, c->mu, c->log_s, n, c->channels, c->spatial,
                      scale);
    aec_model_backward_range(m, ws, x, c->dy, n, 0, latent, 0);
    return mse;
}

void train_codec_adam(train_codec *c, const aec_adam *opt, long t)
{
    aec_adam_update(c->mu, c->dmu, c->m_mu, c->v_mu, (size_t)c->channels, opt, t);
    aec_adam_update(c->log_s, c->dls, c->m_ls, c->v_ls, (size_t)c->channels, opt, t);
}

/* Mean MSE of images decoded from rounded latents, and the prior's mean
 * bits per image for those latents. */
double train_codec_evaluate(train_codec *c, const aec_model *m, aec_workspace *ws,
                            const train_dataset *ds, const size_t *idx, size_t n, float *xb,
                            double *bits_per_image)
{
    size_t per = aec_model_input_count(m);
    int bs = aec_workspace_max_batch(ws);
    double mse = 0, bits = 0;
    for (size_t done = 0; done < n;) {
        int b = n - done < (size_t)bs ? (int)(n - done) : bs;
        train_dataset_batch(ds, idx + done, b, xb);
        const float *y = aec_model_infer(m, ws, xb, b, 0, m->latent_index);
        for (size_t i = 0; i < c->latent * (size_t)b; i++)
            c->yq[i] = rintf(y[i]);
        bits += aec_rate_forward(c->yq, c->mu, c->log_s, b, c->channels, c->spatial);
        const float *xh = aec_model_infer(m, ws, c->yq, b, m->latent_index + 1, m->nlayers - 1);
        for (int i = 0; i < b; i++)
            mse += aec_mse_of(xb + (size_t)i * per, xh + (size_t)i * per, per);
        done += (size_t)b;
    }
    *bits_per_image = n ? bits / (double)n : NAN;
    return n ? mse / (double)n : NAN;
}

/* Tables from the training images' rounded latents, stored in the model;
 * then the validation images coded for real: mean bytes and MSE of what
 * the stream decodes to. The model's id must be final (the stream's tag
 * depends on it). */
aec_status train_codec_finish(train_codec *c, aec_model *m, aec_workspace *ws,
                              const train_dataset *ds, const size_t *train_idx, size_t ntrain,
                              const size_t *val_idx, size_t nval, float *xb, float lambda,
                              train_codec_result *res, aec_error *err)
{
    aec_codec_builder *builder = NULL;
    aec_status st = aec_codec_builder_create(&builder, m, err);
    if (st)
        return st;
    int bs = aec_workspace_max_batch(ws);
    for (size_t done = 0; done < ntrain;) {
        int b = ntrain - done < (size_t)bs ? (int)(ntrain - done) : bs;
        train_dataset_batch(ds, train_idx + done, b, xb);
        aec_codec_builder_add(builder, aec_model_infer(m, ws, xb, b, 0, m->latent_index), b);
        done += (size_t)b;
    }
    if ((st = aec_codec_builder_finish(builder, m, "{}", err)))
        goto out;
    aec_codec *codec = NULL;
    if ((st = aec_codec_create(&codec, m, err)))
        goto out;
    size_t per = aec_model_input_count(m);
    double bytes = 0, mse = 0;
    const size_t *eval_idx = nval ? val_idx : train_idx;
    size_t neval = nval ? nval : ntrain;
    for (size_t i = 0; i < neval && !st; i++) {
        uint8_t *stream = NULL;
        size_t len = 0;
        train_dataset_batch(ds, eval_idx + i, 1, xb);
        const float *y = aec_model_infer(m, ws, xb, 1, 0, m->latent_index);
        if (!(st = aec_codec_encode(codec, y, &stream, &len, err)))
            st = aec_codec_decode(codec, stream, len, c->yq, err);
        free(stream);
        if (st)
            break;
        const float *xh = aec_model_infer(m, ws, c->yq, 1, m->latent_index + 1, m->nlayers - 1);
        bytes += (double)len;
        mse += aec_mse_of(xb, xh, per);
    }
    aec_codec_free(codec);
    if (st)
        goto out;
    res->bytes = bytes / (double)neval;
    res->mse = mse / (double)neval;
    res->images = neval;
    cJSON *info = cJSON_CreateObject();
    cJSON_AddNumberToObject(info, "format", 2);
    cJSON_AddStringToObject(info, "quantizer", "round");
    cJSON_AddStringToObject(info, "entropy_model", "per-channel histogram, 16-bit range coder");
    char lam[32];
    snprintf(lam, sizeof lam, "%g", lambda);
    cJSON_AddNumberToObject(info, "lambda", atof(lam));
    cJSON_AddNumberToObject(info, "val_images", (double)neval);
    cJSON_AddNumberToObject(info, "val_bytes", round(res->bytes * 10) / 10);
    cJSON_AddNumberToObject(
        info, "val_psnr", round(100 * 10.0 * log10(1.0 / (res->mse > 0 ? res->mse : 1e-10))) / 100);
    char *text = cJSON_PrintUnformatted(info);
    cJSON_Delete(info);
    if (!text) {
        st = aec_fail(err, AEC_ERR_NOMEM, "out of memory");
        goto out;
    }
    free(m->codec_json);
    m->codec_json = text;
out:
    aec_codec_builder_free(builder);
    return st;
}
