/* rotation.c - aec-train --arch rotation: trains the rotation recognizer of
 * the anomaly score (include/aec/rotation.h) on photos of cats.
 *
 * Each photo becomes its largest centred square at AEC_ROTATION_SIDE (as the
 * score sees an upload). A step takes --batch of them, moves each by up to
 * SHIFT pixels (edges mirrored) and mirrors half of them, turns each by all
 * four quarter turns, and takes one Adam step on the softmax cross-entropy
 * of the four-way answer. The learning rate warms up over the first 5% of
 * the steps, then decays (--schedule cosine) or stays. --val holds out
 * photos; each epoch ends with their loss and accuracy. The result is a
 * model file of its own, for aec-train --calibrate-catface --rotation.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "aec/clock.h"
#include "aec/layers.h"
#include "aec/random.h"
#include "aec/rotation.h"
#include "train.h"

#define SHIFT 4

/* Moves image x (3 planes of s x s) by (dy, dx), mirroring at the edges,
 * and mirrors it left-right when flip; tmp holds one plane. */
static void jitter(float *x, int s, int dy, int dx, int flip, float *tmp)
{
    for (int c = 0; c < 3; c++) {
        float *p = x + (size_t)c * s * s;
        for (int y = 0; y < s; y++)
            for (int xx = 0; xx < s; xx++) {
                int sy = y + dy, sx = (flip ? s - 1 - xx : xx) + dx;
                sy = sy < 0 ? -sy : sy >= s ? 2 * s - 2 - sy : sy;
                sx = sx < 0 ? -sx : sx >= s ? 2 * s - 2 - sx : sx;
                tmp[(size_t)y * s + xx] = p[(size_t)sy * s + sx];
            }
        memcpy(p, tmp, sizeof(float) * s * s);
    }
}

typedef struct {
    double loss, accuracy;
} val_result;

/* Loss and accuracy of the four turns of the held-out photos. */
static val_result validate(const aec_model *net, aec_workspace *ws, const train_dataset *ds,
                           const size_t *idx, size_t n, int batch, float *xb, float *views,
                           int *labels)
{
    val_result r = {0, 0};
    double nll[4 * 256];
    for (size_t done = 0; done < n;) {
        int b = n - done < (size_t)batch ? (int)(n - done) : batch;
        train_dataset_batch(ds, idx + done, b, xb);
        aec_rotation_views(xb, b, 3, AEC_ROTATION_SIDE, 0, views, labels);
        const float *z = aec_model_infer(net, ws, views, 4 * b, 0, net->nlayers - 1);
        aec_softmax_xent_forward_backward(NULL, nll, z, labels, 4 * b, AEC_ROTATION_CLASSES);
        for (int i = 0; i < 4 * b; i++) {
            const float *zi = z + (size_t)i * AEC_ROTATION_CLASSES;
            int best = 0;
            for (int k = 1; k < AEC_ROTATION_CLASSES; k++)
                best = zi[k] > zi[best] ? k : best;
            r.loss += nll[i];
            r.accuracy += best == labels[i];
        }
        done += (size_t)b;
    }
    r.loss /= 4.0 * (double)(n ? n : 1);
    r.accuracy /= 4.0 * (double)(n ? n : 1);
    return r;
}

static char *train_json(const train_options *o, size_t ntrain, long steps, val_result v)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "task", "rotation (aec-train --arch rotation)");
    cJSON_AddNumberToObject(j, "photos", (double)ntrain);
    cJSON_AddNumberToObject(j, "steps", (double)steps);
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddStringToObject(j, "schedule", o->cosine ? "cosine" : "constant");
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddNumberToObject(j, "val_loss", v.loss);
    cJSON_AddNumberToObject(j, "val_accuracy", v.accuracy);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

aec_status train_rotation_run(const train_options *o, aec_error *err)
{
    enum { S = AEC_ROTATION_SIDE };
    size_t image = 3 * (size_t)S * S;
    int B = o->batch;
    train_dataset ds = {0};
    aec_model *net = NULL;
    aec_workspace *ws = NULL;
    char *spec = NULL;
    size_t *idx = NULL;
    float *xb = NULL, *views = NULL, *dz = NULL, *tmp = NULL;
    int *labels = NULL;
    FILE *hist = NULL;
    int latent_index = 0;
    aec_status st = AEC_OK;
    if (B < 1 || B > 256) {
        st = aec_fail(err, AEC_ERR_INVALID, "--arch rotation takes --batch 1..256, not %d", B);
        goto done;
    }
    if (o->init || o->augment || o->lambda >= 0) {
        st = aec_fail(err, AEC_ERR_INVALID,
                      "--arch rotation trains from scratch on one square per photo: no --init, "
                      "--augment or --lambda");
        goto done;
    }
    train_options lo = *o;
    lo.fit = AEC_FIT_CROP;
    lo.augment = 0;
    if ((st = train_arch_spec(o, &spec, &latent_index, err)) ||
        (st = train_dataset_load(&ds, &lo, 3, S, S, err)) ||
        (st = aec_model_from_spec_network(&net, spec, 3, S, S, err)) ||
        (st = aec_rotation_check(net, err)) || (st = aec_model_alloc_training(net, err)) ||
        (st = aec_workspace_create(&ws, net, 4 * B, 1, err)) ||
        (st = aec_workspace_set_threads(ws, net, o->threads, err)))
        goto done;
    aec_model_init_weights(net, o->seed);
    idx = malloc(sizeof *idx * (ds.count + 1));
    xb = malloc(sizeof(float) * image * (size_t)B);
    views = malloc(sizeof(float) * image * 4 * (size_t)B);
    dz = malloc(sizeof(float) * AEC_ROTATION_CLASSES * 4 * (size_t)B);
    tmp = malloc(sizeof(float) * S * S);
    labels = malloc(sizeof(int) * 4 * (size_t)B);
    if (!idx || !xb || !views || !dz || !tmp || !labels) {
        st = aec_fail(err, AEC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (o->history && !(hist = fopen(o->history, "w"))) {
        st = aec_fail(err, AEC_ERR_IO, "%s: cannot write", o->history);
        goto done;
    }
    uint64_t rng = o->seed * 0x9E3779B97F4A7C15ull + 77;
    for (size_t i = 0; i < ds.count; i++)
        idx[i] = i;
    train_shuffle(idx, ds.count, &rng);
    size_t nval = (size_t)(o->val * (double)ds.count), ntrain = ds.count - nval;
    const size_t *val = idx + ntrain;
    if (ntrain < (size_t)B) {
        st = aec_fail(err, AEC_ERR_INVALID, "%zu training photos, fewer than a batch (%d)", ntrain,
                      B);
        goto done;
    }
    long per_epoch = (long)(ntrain / (size_t)B), total = per_epoch * o->epochs, t = 0;
    long warm = total / 20 > 1 ? total / 20 : 1;
    if (!o->quiet)
        fprintf(stderr, "rotation: %zu photos (%zu validation), %ld steps of %d x 4 views\n",
                ntrain, nval, total, B);
    uint64_t t0 = aec_now_ns();
    val_result v = {0, 0};
    int stop = 0;
    for (int e = 0; e < o->epochs && !stop; e++) {
        train_shuffle(idx, ntrain, &rng);
        double sum = 0;
        for (long b = 0; b < per_epoch && !stop; b++) {
            train_dataset_batch(&ds, idx + (size_t)b * (size_t)B, B, xb);
            for (int i = 0; i < B; i++) {
                int dy = (int)(aec_random_next(&rng) % (2 * SHIFT + 1)) - SHIFT;
                int dx = (int)(aec_random_next(&rng) % (2 * SHIFT + 1)) - SHIFT;
                jitter(xb + (size_t)i * image, S, dy, dx, (int)(aec_random_next(&rng) & 1), tmp);
            }
            aec_rotation_views(xb, B, 3, S, 0, views, labels);
            const float *z = aec_model_forward_train(net, ws, views, 4 * B);
            sum +=
                aec_softmax_xent_forward_backward(dz, NULL, z, labels, 4 * B, AEC_ROTATION_CLASSES);
            aec_model_backward(net, ws, views, dz, 4 * B);
            t++;
            double f = t < warm ? (double)t / warm
                       : o->cosine
                           ? 0.5 * (1 + cos(M_PI * (double)(t - warm) / (double)(total - warm + 1)))
                           : 1.0;
            aec_adam opt = {(float)(o->lr * f), 0.9f, 0.999f, 1e-8f};
            aec_adam_step(net, &opt, t);
            double sec = (double)(aec_now_ns() - t0) / 1e9;
            if (!o->quiet && (t % 50 == 0 || b == per_epoch - 1))
                fprintf(stderr, "\repoch %d  step %ld/%ld  loss %.4f  %.0f views/s ", e + 1, t,
                        total, sum / (double)(b + 1), 4.0 * B * (double)t / sec);
            stop = train_stop_requested || (o->max_seconds > 0 && sec > o->max_seconds);
        }
        v = validate(net, ws, &ds, val, nval, B, xb, views, labels);
        if (!o->quiet)
            fprintf(stderr, "\nepoch %d  train loss %.4f  val loss %.4f  val accuracy %.4f\n",
                    e + 1, sum / (double)per_epoch, v.loss, v.accuracy);
        if (hist)
            fprintf(hist, "{\"epoch\":%d,\"steps\":%ld,\"val_loss\":%.6f,\"val_accuracy\":%.6f}\n",
                    e + 1, t, v.loss, v.accuracy);
    }
    free(net->train_json);
    if (!(net->train_json = train_json(o, ntrain, t, v))) {
        st = aec_fail(err, AEC_ERR_NOMEM, "out of memory");
        goto done;
    }
    aec_model_update_id(net);
    if ((st = aec_model_save(net, o->out, err)))
        goto done;
    if (!o->quiet)
        fprintf(stderr, "wrote %s (%s)\n", o->out, net->id);
done:
    if (hist)
        fclose(hist);
    free(idx);
    free(xb);
    free(views);
    free(dz);
    free(tmp);
    free(labels);
    free(spec);
    aec_workspace_free(ws);
    aec_model_free(net);
    train_dataset_free(&ds);
    return st;
}
