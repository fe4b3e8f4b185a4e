/* train.h - the pieces of aec-train (private to src/train/).
 *
 * dataset.c: finds and decodes the photos into memory (uint8, planar).
 * augment.c: a thumbnail made the way users make theirs (random pipelines).
 * arch.c:    the layer specs of the built-in architectures.
 * rotation.c: the rotation recognizer of the anomaly score (--arch rotation).
 * loop.c:    the training loop, evaluation, calibration and the model file.
 * main.c:    options and the program entry point.
 */
#ifndef AEC_TRAIN_H
#define AEC_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "aec/error.h"
#include "aec/image.h"
#include "aec/model.h"
#include "aec/photo.h"

#define TRAIN_MAX_DATA 8 /* --data folders */

typedef struct {
    const char *data_dirs[TRAIN_MAX_DATA]; /* --data, repeatable */
    int ndata;
    const char *exclude; /* file of base names never to use (held-out photos), or NULL */
    const char *only;    /* file of base names: use only these, or NULL */
    int augment;         /* thumbnails per photo by random pipelines (augment.c); 0 = off */
    int fit;             /* without augment: how a photo becomes the input (aec_fit) */
    const char *arch;    /* "mlp" or "conv" */
    int size;            /* input side in pixels */
    int latent;          /* latent size (mlp: values; conv: channels at size/4) */
    int width;           /* conv: base channel count */
    int epochs;
    double max_seconds; /* stop after the epoch that crosses this much training time */
    int batch;
    float lr;
    int cosine; /* cosine learning-rate decay to 0 over the run */
    float val;  /* fraction held out */
    long limit; /* first N files by name; 0 = all */
    uint64_t seed;
    int threads;
    int bn_recal; /* re-estimate batchnorm statistics at the end of training */
    const char *out;
    const char *history;
    const char *preview;
    int quiet;
    /* leave wall-clock times out of the file: same bytes every run */
    int reproducible;
    /* re-calibrate this existing model instead of training */
    const char *calibrate;
    /* add the cat-face part to this model's anomaly score (catface.c), with
     * the OpenCV cascade file cascade */
    const char *calibrate_face;
    const char *cascade;
    const char *rotation; /* with calibrate_face: the rotation recognizer's model file */
    /* start from this model's architecture and weights */
    const char *init;
    /* codec training: rate weight (loss = MSE + lambda * bits per pixel); < 0 = off */
    float lambda;
    /* --init: multiply the latent by this (the next layer divides it back) */
    float latent_scale;
    /* --arch photo: the photo codec (photo_train.c) */
    int crop;             /* crop side, a multiple of 64 */
    int photo_n, photo_m; /* channels */
    int nlambdas;
    float lambdas[8];  /* one quality level each */
    float gain_lr;     /* the gain vectors' learning rate, as a multiple of lr */
    long max_steps;    /* stop after this many steps (0 = no limit) */
    int log_every;     /* steps per progress line */
    double save_every; /* seconds between checkpoints (0 = only at the end) */
} train_options;

/* ---- dataset.c ---- */
typedef struct {
    size_t count;    /* images kept: files * variants */
    size_t files;    /* photos they came from */
    size_t skipped;  /* files that could not be read or decoded */
    size_t excluded; /* files left out by --exclude */
    int variants;    /* images per photo */
    int augment;     /* made by augment.c's pipelines */
    int fit;         /* without augment: aec_fit of a photo to c x h x w */
    int c, h, w;
    uint8_t *pixels; /* count * c*h*w, planar per image; a photo's variants are adjacent */
    size_t *source;  /* per image: the index of its photo */
} train_dataset;

/* The photos of o->data_dirs (o->limit, o->exclude, o->augment, o->seed,
 * o->threads) at c x h x w. */
aec_status train_dataset_load(train_dataset *ds, const train_options *o, int c, int h, int w,
                              aec_error *err);
void train_dataset_free(train_dataset *ds);
/* A random order of a[0..n) (Fisher-Yates with the one PRNG). */
void train_shuffle(size_t *a, size_t n, uint64_t *rng);
/* images idx[0..n) -> floats in [0,1] */
void train_dataset_batch(const train_dataset *ds, const size_t *idx, int n, float *out);

/* Photos at their own size (the photo codec's crops): the decoded files of
 * o->data_dirs (o->limit, o->exclude, o->threads). */
typedef struct {
    size_t count, skipped, excluded;
    size_t pixels; /* in all */
    aec_rgb_image *img;
} train_photos;

aec_status train_photos_load(train_photos *ph, const train_options *o, aec_error *err);
void train_photos_free(train_photos *ph);

/* ---- augment.c ---- */
/* One thumbnail of photo made by a random pipeline drawn from seed: out_w x
 * out_h interleaved RGB into out. */
aec_status train_augment(const aec_rgb_image *photo, uint64_t seed, int out_w, int out_h,
                         uint8_t *out, aec_error *err);

/* ---- arch.c ---- */
/* malloc'd aec.layers JSON; *latent_index set. */
aec_status train_arch_spec(const train_options *o, char **json, int *latent_index, aec_error *err);

/* ---- codec_train.c ---- */
typedef struct train_codec train_codec;
typedef struct {
    double bytes, mse; /* mean per validation image, coded for real */
    size_t images;
} train_codec_result;

aec_status train_codec_create(train_codec **out, const aec_model *m, int batch, uint64_t seed,
                              aec_error *err);
void train_codec_free(train_codec *c);
void train_codec_init_prior(train_codec *c, const float *latents, int n);
/* One forward + backward of a batch; returns the MSE, *bits the batch's bits.
 * noisy: the decoder gets latent + noise instead of the rounded latent. */
double train_codec_step(train_codec *c, aec_model *m, aec_workspace *ws, const float *x, int n,
                        float *dout, float lambda, int noisy, double *bits);
void train_codec_adam(train_codec *c, const aec_adam *opt, long t);
double train_codec_evaluate(train_codec *c, const aec_model *m, aec_workspace *ws,
                            const train_dataset *ds, const size_t *idx, size_t n, float *xb,
                            double *bits_per_image);
aec_status train_codec_finish(train_codec *c, aec_model *m, aec_workspace *ws,
                              const train_dataset *ds, const size_t *train_idx, size_t ntrain,
                              const size_t *val_idx, size_t nval, float *xb, float lambda,
                              train_codec_result *res, aec_error *err);

/* ---- loop.c ---- */
extern volatile sig_atomic_t train_stop_requested;
/* ---- photo_train.c ----
 * The photo codec's training graph over a batch of n crops (channel-major
 * [c, n, h, w] tensors). A network's activations: */
typedef struct {
    float *out, *norm; /* norm: GDN only */
    int h, w;          /* output size */
} stage_act;

typedef struct {
    const aec_net *net;
    int n, h, w; /* batch and input size */
    stage_act act[8];
} net_state;

typedef struct {
    aec_photo *p;
    int n, crop;
    net_state g_a, g_s, h_a, h_s;
    size_t x_count, y_count, z_count; /* floats of x, y, z over the batch */
    float *x, *y, *yt, *yq, *ys, *zt, *dxh, *dy, *dys, *dzt, *dhs, *d0, *d1, *col;
    float *pool;                   /* every buffer above and the activations */
    float *grad, *adam_m, *adam_v; /* one allocation each, params' layout */
    uint64_t rng;
    int exact_grad;      /* decoder sees y + noise instead of the rounded y (gradient checks) */
    float gain_lr_scale; /* the gains' learning rate over the rest's (1 after init) */
} photo_trainer;

typedef struct {
    double loss, mse, bpp;
} photo_step;

aec_status photo_trainer_init(photo_trainer *t, aec_photo *p, int n, int crop, uint64_t seed,
                              aec_error *err);
void photo_trainer_free(photo_trainer *t);
/* A random crop of img (scale, position, mirror drawn from t->rng) into sample i of t->x. */
void photo_trainer_crop(photo_trainer *t, const aec_rgb_image *img, int i);
/* Forward and backward of t->x at quality level `level`: d loss / d params in t->grad. */
photo_step photo_trainer_step(photo_trainer *t, int level);
/* Gradient clipping and one Adam step (consumes t->grad); the gain vectors
 * step with opt->lr * t->gain_lr_scale. */
void photo_trainer_update(photo_trainer *t, const aec_adam *opt, long step);
aec_status train_photo_run(const train_options *o, aec_error *err);

/* ---- rotation.c ---- */
/* --arch rotation: the rotation recognizer (include/aec/rotation.h). */
aec_status train_rotation_run(const train_options *o, aec_error *err);

/* ---- catface.c ---- */
aec_status train_calibrate_face(const train_options *o, aec_error *err);
aec_status train_run(const train_options *o, aec_error *err);

#endif
