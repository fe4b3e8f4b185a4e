/* loop.c - the training loop of aec-train, read top to bottom:
 *
 *   build the model, load the photos, split train/validation with the seed;
 *   for each epoch: shuffle, then for each mini-batch
 *       forward (batch statistics) -> MSE -> backward -> Adam;
 *     evaluate the validation MSE (running statistics), log, snapshot;
 *   re-estimate batchnorm statistics, calibrate the anomaly score, save.
 *
 * With --lambda the model is trained as a codec (codec_train.c): each step
 * rounds the latent for the decoder and adds lambda times the latent's bits
 * per pixel to the loss; at the end the entropy coder's tables are made
 * from the training images and the validation images are coded for real.
 *
 * SIGINT sets train_stop_requested; the loop stops after the current batch,
 * restores the snapshot of the last complete epoch and saves that.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "aec/anomaly.h"
#include "aec/clock.h"
#include "aec/layers.h"
#include "aec/image.h"
#include "aec/model.h"
#include "aec/random.h"
#include "aec/safetensors.h"
#include "train.h"

volatile sig_atomic_t train_stop_requested;

#define RECAL_MAX_IMAGES 4096

static double now_seconds(void)
{
    return (double)aec_now_ns() * 1e-9;
}

static double psnr_of(double mse)
{
    return mse > 0 ? 10.0 * log10(1.0 / mse) : 99.0;
}

/* ---- progress ---------------------------------------------------------------- */

static void progress(const train_options *o, int epoch, int step, int steps, double loss,
                     double elapsed)
{
    if (o->quiet || !isatty(STDERR_FILENO))
        return;
    int width = 30, done = steps ? step * width / steps : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < done ? '=' : (i == done ? '>' : '.');
    bar[width] = 0;
    double eta = step ? elapsed / step * (steps - step) : 0;
    fprintf(stderr, "\rEpoch %d/%d %4d/%d [%s] - ETA: %3.0fs - loss: %.4f ", epoch, o->epochs, step,
            steps, bar, eta, loss);
    if (step == steps)
        fputc('\n', stderr);
}

/* ---- parameters snapshot (for SIGINT) ----------------------------------------- */

static void params_copy(aec_model *m, float *buf, int to_buf)
{
    size_t off = 0;
    for (int i = 0; i < m->nlayers; i++)
        for (int j = 0; j < m->layers[i].nparams; j++) {
            aec_param *p = &m->layers[i].params[j];
            if (to_buf)
                memcpy(buf + off, p->data, sizeof(float) * p->count);
            else
                memcpy(p->data, buf + off, sizeof(float) * p->count);
            off += p->count;
        }
}

/* ---- evaluation ---------------------------------------------------------------- */

/* Reconstructs images idx[0..n) in inference mode; the anomaly score's
 * features of each into feat[] (may be NULL). Returns the mean MSE. */
static double evaluate(const aec_model *m, aec_workspace *ws, const train_dataset *ds,
                       const size_t *idx, size_t n, float *xb, float *yb,
                       aec_anomaly_features *feat)
{
    size_t per = aec_model_input_count(m);
    int bs = aec_workspace_max_batch(ws);
    double total = 0;
    for (size_t done = 0; done < n;) {
        int b = n - done < (size_t)bs ? (int)(n - done) : bs;
        train_dataset_batch(ds, idx + done, b, xb);
        aec_model_reconstruct(m, ws, xb, b, yb);
        for (int i = 0; i < b; i++) {
            double e = aec_mse_of(xb + (size_t)i * per, yb + (size_t)i * per, per);
            total += e;
            if (feat)
                aec_anomaly_features_of(xb + (size_t)i * per, yb + (size_t)i * per, m->input.c,
                                        m->input.h, m->input.w, &feat[done + i]);
        }
        done += (size_t)b;
    }
    return n ? total / (double)n : NAN;
}

/* Re-estimates every batchnorm's running statistics as the plain average of
 * batch statistics over (up to RECAL_MAX_IMAGES) training images, with the
 * final weights ("precise BN"). The exponential averages of training lag far
 * behind the weights when an epoch has few steps. */
static int bn_recalibrate(aec_model *m, aec_workspace *ws, const train_dataset *ds,
                          const size_t *idx, size_t n, float *xb)
{
    float saved[256];
    int nbn = 0;
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].type == AEC_LAYER_BATCHNORM)
            saved[nbn++] = m->layers[i].momentum;
    if (nbn == 0)
        return 0;
    int bs = aec_workspace_max_batch(ws);
    size_t limit = n < RECAL_MAX_IMAGES ? n : RECAL_MAX_IMAGES;
    int k = 0;
    for (size_t done = 0; done + 1 < limit;) {
        int b = limit - done < (size_t)bs ? (int)(limit - done) : bs;
        if (b < 2)
            break;
        k++;
        for (int i = 0; i < m->nlayers; i++)
            if (m->layers[i].type == AEC_LAYER_BATCHNORM)
                m->layers[i].momentum = 1.0f / (float)k; /* running average of batches */
        train_dataset_batch(ds, idx + done, b, xb);
        aec_model_forward_train(m, ws, xb, b);
        done += (size_t)b;
    }
    for (int i = 0, j = 0; i < m->nlayers; i++)
        if (m->layers[i].type == AEC_LAYER_BATCHNORM)
            m->layers[i].momentum = saved[j++];
    return 1;
}

/* ---- outputs ------------------------------------------------------------------- */

static void write_preview(const train_options *o, const aec_model *m, aec_workspace *ws,
                          const train_dataset *ds, const size_t *idx, size_t n, float *xb,
                          float *yb)
{
    int cols = n < 8 ? (int)n : 8, s = o->size, c = m->input.c;
    if (cols == 0)
        return;
    size_t per = aec_model_input_count(m);
    train_dataset_batch(ds, idx, cols, xb);
    aec_model_reconstruct(m, ws, xb, cols, yb);
    int gh = 2 * s, gw = cols * s;
    float *grid = malloc(sizeof(float) * (size_t)c * gh * gw);
    if (!grid)
        return;
    for (int row = 0; row < 2; row++)
        for (int k = 0; k < cols; k++) {
            const float *img = (row == 0 ? xb : yb) + (size_t)k * per;
            for (int ch = 0; ch < c; ch++)
                for (int y = 0; y < s; y++)
                    memcpy(grid + ((size_t)ch * gh + row * s + y) * gw + (size_t)k * s,
                           img + ((size_t)ch * s + y) * s, sizeof(float) * (size_t)s);
        }
    uint8_t *png = NULL;
    size_t len = 0;
    aec_error err = {{0}};
    if (aec_image_encode_png(grid, c, gh, gw, &png, &len, &err) ||
        aec_write_file_atomic(o->preview, png, len, &err))
        fprintf(stderr, "warning: %s: %s\n", o->preview, err.msg);
    free(png);
    free(grid);
}

static char *train_record(const train_options *o, size_t ntrain, size_t nval, int epochs_done,
                          double loss, double val_mse, double val_mse_ema, double seconds,
                          int recal)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "arch", o->init ? "init" : o->arch);
    if (o->init)
        cJSON_AddStringToObject(r, "init", o->init);
    if (o->lambda >= 0) {
        char lam[32];
        snprintf(lam, sizeof lam, "%g", o->lambda);
        cJSON_AddNumberToObject(r, "lambda", atof(lam));
    }
    cJSON_AddNumberToObject(r, "size", o->size);
    cJSON_AddNumberToObject(r, "epochs", epochs_done);
    cJSON_AddNumberToObject(r, "batch", o->batch);
    char lr[32]; /* the value as typed, not its float32 rounding */
    snprintf(lr, sizeof lr, "%g", o->lr);
    cJSON_AddNumberToObject(r, "lr", atof(lr));
    cJSON_AddStringToObject(r, "schedule", o->cosine ? "cosine" : "constant");
    cJSON_AddStringToObject(r, "optimizer", "adam(0.9,0.999,1e-7)");
    cJSON_AddNumberToObject(r, "seed", (double)o->seed);
    cJSON_AddNumberToObject(r, "threads", o->threads);
    if (o->augment > 0)
        cJSON_AddNumberToObject(r, "augment", o->augment);
    cJSON_AddNumberToObject(r, "train_images", (double)ntrain);
    cJSON_AddNumberToObject(r, "val_images", (double)nval);
    cJSON_AddNumberToObject(r, "train_loss", loss);
    cJSON_AddNumberToObject(r, "val_mse", val_mse);
    cJSON_AddNumberToObject(r, "val_psnr", psnr_of(val_mse));
    if (recal)
        cJSON_AddNumberToObject(r, "val_mse_before_bn_recal", val_mse_ema);
    cJSON_AddBoolToObject(r, "bn_recalibrated", recal);
    if (!o->reproducible)
        cJSON_AddNumberToObject(r, "seconds", seconds);
    char *s = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return s;
}

/* ---- the loop -------------------------------------------------------------------- */

typedef struct {
    aec_model *m;
    train_dataset ds;
    aec_workspace *ws_train, *ws_eval;
    size_t *order;
    float *xb, *yb, *dout, *snapshot;
    aec_anomaly_features *feat;
    FILE *history;
    train_codec *codec; /* --lambda only */
} run_state;

static void run_free(run_state *r)
{
    aec_model_free(r->m);
    train_dataset_free(&r->ds);
    aec_workspace_free(r->ws_train);
    aec_workspace_free(r->ws_eval);
    free(r->order), free(r->xb), free(r->yb), free(r->dout), free(r->snapshot);
    free(r->feat);
    train_codec_free(r->codec);
    if (r->history)
        fclose(r->history);
}

/* --latent-scale K: latent layer's weights and bias times K, the next
 * layer's weights divided by K. The function is unchanged (both layers are
 * linear in the latent); only the latent's size relative to the integer
 * grid of quantization changes. */
static aec_status scale_latent(aec_model *m, float k, aec_error *err)
{
    int i = m->latent_index;
    aec_layer *a = &m->layers[i], *b = i + 1 < m->nlayers ? &m->layers[i + 1] : NULL;
    int linear_a = a->type == AEC_LAYER_CONV2D || a->type == AEC_LAYER_LINEAR ||
                   a->type == AEC_LAYER_CONV_TRANSPOSE2D;
    int linear_b = b && (b->type == AEC_LAYER_CONV2D || b->type == AEC_LAYER_LINEAR ||
                         b->type == AEC_LAYER_CONV_TRANSPOSE2D);
    if (!linear_a || !linear_b)
        return aec_fail(err, AEC_ERR_UNSUPPORTED,
                        "--latent-scale needs a linear or convolution layer on both sides of the "
                        "latent (layers %d and %d)",
                        i, i + 1);
    for (size_t j = 0; j < a->params[0].count; j++)
        a->params[0].data[j] *= k;
    for (size_t j = 0; j < a->params[1].count; j++)
        a->params[1].data[j] *= k;
    for (size_t j = 0; j < b->params[0].count; j++)
        b->params[0].data[j] /= k;
    return AEC_OK;
}

static aec_status setup(run_state *r, const train_options *o, aec_error *err)
{
    aec_status st;
    if (o->calibrate) { /* an existing model: no training state */
        if ((st = aec_model_load(&r->m, o->calibrate, err)))
            return st;
    } else if (o->init) { /* an existing model, trained further */
        if ((st = aec_model_load(&r->m, o->init, err)) ||
            (st = aec_model_alloc_training(r->m, err)))
            return st;
        if (o->latent_scale != 1.0f && (st = scale_latent(r->m, o->latent_scale, err)))
            return st;
        free(r->m->anomaly_json), free(r->m->train_json), free(r->m->codec_json);
        r->m->anomaly_json = r->m->train_json = r->m->codec_json = NULL;
    } else {
        char *spec = NULL;
        int latent = 0;
        st = train_arch_spec(o, &spec, &latent, err);
        if (!st)
            st = aec_model_from_spec(&r->m, spec, 3, o->size, o->size, latent, err);
        free(spec);
        if (st)
            return st;
        aec_model_init_weights(r->m, o->seed);
        if ((st = aec_model_alloc_training(r->m, err)))
            return st;
    }
    if (o->lambda >= 0 && !o->calibrate &&
        (st = train_codec_create(&r->codec, r->m, o->batch, o->seed, err)))
        return st;
    double t0 = now_seconds();
    if ((st = train_dataset_load(&r->ds, o, r->m->input.c, r->m->input.h, r->m->input.w, err)))
        return st;
    if (!o->quiet)
        fprintf(stderr,
                "loaded %zu images (%zu photos x %d) from %s%s in %.1f s (%zu skipped, %zu"
                " excluded)\n",
                r->ds.count, r->ds.files, r->ds.variants, o->data_dirs[0],
                o->ndata > 1 ? " and more" : "", now_seconds() - t0, r->ds.skipped, r->ds.excluded);
    size_t per = aec_model_input_count(r->m), n = r->ds.count;
    int eval_batch = o->batch < 64 ? o->batch : 64;
    r->order = malloc(sizeof(size_t) * n);
    r->xb = malloc(sizeof(float) * per * (size_t)o->batch);
    r->yb = malloc(sizeof(float) * per * (size_t)o->batch);
    r->dout = malloc(sizeof(float) * per * (size_t)o->batch);
    r->snapshot = malloc(sizeof(float) * aec_model_param_count(r->m));
    r->feat = malloc(sizeof(*r->feat) * n);
    if (!r->order || !r->xb || !r->yb || !r->dout || !r->snapshot || !r->feat)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    if ((st = aec_workspace_create(&r->ws_train, r->m, o->calibrate ? 1 : o->batch, 1, err)) ||
        (st = aec_workspace_create(&r->ws_eval, r->m, eval_batch, 0, err)))
        return st;
    if (o->history && !(r->history = fopen(o->history, "w")))
        return aec_fail(err, AEC_ERR_IO, "%s: cannot open for writing", o->history);
    return AEC_OK;
}

/* One epoch over idx[0..n); returns the mean training loss, or NAN when
 * interrupted before its end. */
static double train_epoch(run_state *r, const train_options *o, int epoch, size_t *idx, size_t n,
                          uint64_t *rng, long *step_count)
{
    size_t per = aec_model_input_count(r->m);
    aec_adam adam = {o->lr, 0.9f, 0.999f, 1e-7f};
    train_shuffle(idx, n, rng);
    int steps = (int)((n + (size_t)o->batch - 1) / (size_t)o->batch);
    double total_steps = (double)steps * o->epochs;
    double loss_sum = 0, t0 = now_seconds();
    for (int s = 0; s < steps; s++) {
        size_t first = (size_t)s * (size_t)o->batch;
        int b = n - first < (size_t)o->batch ? (int)(n - first) : o->batch;
        train_dataset_batch(&r->ds, idx + first, b, r->xb);
        double loss;
        if (r->codec) {
            double bits = 0;
            int noisy = !o->init && epoch <= o->epochs / 2; /* see codec_train.c */
            loss = train_codec_step(r->codec, r->m, r->ws_train, r->xb, b, r->dout, o->lambda,
                                    noisy, &bits);
            loss += o->lambda * bits / ((double)b * r->m->input.h * r->m->input.w);
        } else {
            const float *y = aec_model_forward_train(r->m, r->ws_train, r->xb, b);
            loss = aec_mse_forward_backward(r->dout, y, r->xb, per * (size_t)b);
            aec_model_backward(r->m, r->ws_train, r->xb, r->dout, b);
        }
        if (o->cosine)
            adam.lr = (float)(o->lr * 0.5 * (1.0 + cos(M_PI * (double)*step_count / total_steps)));
        aec_adam_step(r->m, &adam, ++*step_count);
        if (r->codec)
            train_codec_adam(r->codec, &adam, *step_count);
        loss_sum += loss * b;
        progress(o, epoch, s + 1, steps, loss_sum / (double)(first + (size_t)b),
                 now_seconds() - t0);
        if (train_stop_requested)
            return NAN;
    }
    return loss_sum / (double)n;
}

/* --calibrate: measure the anomaly score's features of an existing model on
 * the chosen validation images, store the new calibration, write --out. */
static aec_status calibrate_only(run_state *r, const train_options *o, const size_t *idx, size_t n,
                                 aec_error *err)
{
    double mse = evaluate(r->m, r->ws_eval, &r->ds, idx, n, r->xb, r->yb, r->feat);
    free(r->m->anomaly_json);
    r->m->anomaly_json = NULL;
    aec_status st = aec_anomaly_calibrate(r->feat, n, &r->m->anomaly_json, err);
    if (st)
        return st;
    if (!o->quiet)
        fprintf(stderr, "calibrated on %zu images: mse %.6f (%.2f dB)\n", n, mse, psnr_of(mse));
    return aec_model_save(r->m, o->out, err);
}

aec_status train_run(const train_options *o, aec_error *err)
{
    run_state r = {0};
    aec_status st = setup(&r, o, err);
    if (st) {
        run_free(&r);
        return st;
    }
    openblas_set_num_threads(o->threads);
    /* The split is by photo: a photo's variants all train or all validate.
     * With one variant per photo this is the old split, image for image. */
    size_t n = r.ds.count, files = r.ds.files, vars = (size_t)r.ds.variants;
    for (size_t i = 0; i < files; i++)
        r.order[i] = i;
    uint64_t rng = o->seed;
    train_shuffle(r.order, files, &rng);
    size_t nval_files = (size_t)((double)files * o->val);
    if (o->val > 0 && nval_files == 0 && files > 1)
        nval_files = 1;
    for (size_t i = files; i-- > 0;) /* expand photo i to its images, in place from the end */
        for (size_t v = vars; v-- > 0;)
            r.order[i * vars + v] = r.order[i] * vars + v;
    size_t nval = nval_files * vars;
    size_t ntrain = n - nval;
    size_t *train_idx = r.order, *val_idx = r.order + ntrain;
    /* calibration and preview use validation images, or training ones if none */
    size_t *cal_idx = nval ? val_idx : train_idx, ncal = nval ? nval : ntrain;
    if (ntrain < 1) {
        run_free(&r);
        return aec_fail(err, AEC_ERR_INVALID, "no training images left after --val %g", o->val);
    }
    if (!o->quiet)
        fprintf(stderr, "model %s: %zu parameters; %zu train / %zu validation images\n",
                o->calibrate ? o->calibrate : o->arch, aec_model_param_count(r.m), ntrain, nval);
    if (o->calibrate) {
        st = calibrate_only(&r, o, cal_idx, ncal, err);
        run_free(&r);
        return st;
    }

    if (r.codec) { /* the prior starts at the untrained latents' statistics */
        int b = ntrain < (size_t)o->batch ? (int)ntrain : o->batch;
        train_dataset_batch(&r.ds, train_idx, b, r.xb);
        train_codec_init_prior(r.codec,
                               aec_model_infer(r.m, r.ws_train, r.xb, b, 0, r.m->latent_index), b);
    }
    long steps = 0;
    int done_epochs = 0;
    double last_loss = NAN, val_mse = NAN, t_start = now_seconds(), train_seconds = 0;
    params_copy(r.m, r.snapshot, 1);
    aec_model_zero_grad(r.m); /* afterwards each Adam step leaves them zero */
    if (r.history && nval) {  /* epoch 0: the untrained model, the baseline to beat */
        double v0 = evaluate(r.m, r.ws_eval, &r.ds, val_idx, nval, r.xb, r.yb, NULL);
        fprintf(r.history,
                "{\"epoch\":0,\"loss\":null,\"val_mse\":%.8g,\"val_psnr\":%.4f,"
                "\"seconds\":0,\"images_per_s\":null}\n",
                v0, psnr_of(v0));
    }
    for (int epoch = 1; epoch <= o->epochs; epoch++) {
        double t0 = now_seconds();
        double loss = train_epoch(&r, o, epoch, train_idx, ntrain, &rng, &steps);
        double secs = now_seconds() - t0;
        if (isnan(loss)) {
            fprintf(stderr, "\ninterrupted: keeping the model of epoch %d\n", done_epochs);
            params_copy(r.m, r.snapshot, 0);
            break;
        }
        train_seconds += secs;
        done_epochs = epoch;
        last_loss = loss;
        double val_bits = NAN;
        if (r.codec)
            val_mse = nval ? train_codec_evaluate(r.codec, r.m, r.ws_eval, &r.ds, val_idx, nval,
                                                  r.xb, &val_bits)
                           : NAN;
        else
            val_mse = nval ? evaluate(r.m, r.ws_eval, &r.ds, val_idx, nval, r.xb, r.yb, NULL) : NAN;
        if (r.codec && !o->quiet)
            fprintf(stderr, "epoch %d: latent %.0f bits per image (prior estimate), %.3f bpp\n",
                    epoch, val_bits, val_bits / (r.m->input.h * r.m->input.w));
        if (!o->quiet)
            fprintf(stderr,
                    "epoch %d/%d - %.2f s - %.0f images/s - loss %.5f - val_mse %.5f - "
                    "val_psnr %.2f dB\n",
                    epoch, o->epochs, secs, ntrain / secs, loss, val_mse, psnr_of(val_mse));
        if (r.history) {
            fprintf(r.history,
                    "{\"epoch\":%d,\"loss\":%.8g,\"val_mse\":%.8g,\"val_psnr\":%.4f,"
                    "\"seconds\":%.3f,\"images_per_s\":%.1f",
                    epoch, loss, nval ? val_mse : 0.0, nval ? psnr_of(val_mse) : 0.0, secs,
                    ntrain / secs);
            if (r.codec && nval)
                fprintf(r.history, ",\"val_bits_estimate\":%.1f", val_bits);
            fprintf(r.history, "}\n");
            fflush(r.history);
        }
        params_copy(r.m, r.snapshot, 1);
        if (o->max_seconds > 0 && train_seconds >= o->max_seconds) {
            if (!o->quiet)
                fprintf(stderr, "time budget of %.0f s reached after epoch %d\n", o->max_seconds,
                        epoch);
            break;
        }
    }
    if (done_epochs == 0) {
        run_free(&r);
        return aec_fail(err, AEC_ERR_INVALID,
                        "stopped before the first epoch completed; %s not written", o->out);
    }

    double val_mse_ema = val_mse;
    int recal = o->bn_recal && bn_recalibrate(r.m, r.ws_train, &r.ds, train_idx, ntrain, r.xb);
    double cal_mean = evaluate(r.m, r.ws_eval, &r.ds, cal_idx, ncal, r.xb, r.yb, r.feat);
    if (nval && !r.codec) /* a codec's figure is that of the rounded latent, from the loop */
        val_mse = cal_mean;
    if (recal && !o->quiet)
        fprintf(stderr, "batchnorm statistics re-estimated: val_mse %.5f -> %.5f (%.2f dB)\n",
                val_mse_ema, val_mse, psnr_of(val_mse));
    aec_error cal_err = {{0}};
    if (aec_anomaly_calibrate(r.feat, ncal, &r.m->anomaly_json, &cal_err))
        fprintf(stderr, "warning: anomaly score not calibrated: %s\n", cal_err.msg);
    r.m->train_json = train_record(o, ntrain, nval, done_epochs, last_loss, val_mse, val_mse_ema,
                                   train_seconds, recal);
    aec_model_update_id(r.m);
    if (r.codec) {
        train_codec_result cr = {0};
        if ((st = train_codec_finish(r.codec, r.m, r.ws_eval, &r.ds, train_idx, ntrain, val_idx,
                                     nval, r.xb, o->lambda, &cr, err))) {
            run_free(&r);
            return st;
        }
        if (!o->quiet)
            fprintf(stderr, "codec: %zu validation images coded: %.1f bytes, %.2f dB\n", cr.images,
                    cr.bytes, psnr_of(cr.mse));
    }
    if ((st = aec_model_save(r.m, o->out, err))) {
        run_free(&r);
        return st;
    }
    if (o->preview)
        write_preview(o, r.m, r.ws_eval, &r.ds, cal_idx, ncal, r.xb, r.yb);
    if (!o->quiet)
        fprintf(stderr, "wrote %s (%s) in %.1f s total\n", o->out, r.m->id,
                now_seconds() - t_start);
    run_free(&r);
    return AEC_OK;
}
