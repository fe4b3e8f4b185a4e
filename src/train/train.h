/* train.h - the pieces of aec-train (private to src/train/).
 *
 * dataset.c: finds and decodes the photos into memory (uint8, planar).
 * augment.c: a thumbnail made the way users make theirs (random pipelines).
 * arch.c:    the layer specs of the built-in architectures.
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

#define TRAIN_MAX_DATA 8 /* --data folders */

typedef struct {
    const char *data_dirs[TRAIN_MAX_DATA]; /* --data, repeatable */
    int ndata;
    const char *exclude; /* file of base names never to use (held-out photos), or NULL */
    int augment;         /* thumbnails per photo by random pipelines (augment.c); 0 = off */
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
    /* start from this model's architecture and weights */
    const char *init;
    /* codec training: rate weight (loss = MSE + lambda * bits per pixel); < 0 = off */
    float lambda;
    /* --init: multiply the latent by this (the next layer divides it back) */
    float latent_scale;
} train_options;

/* ---- dataset.c ---- */
typedef struct {
    size_t count;    /* images kept: files * variants */
    size_t files;    /* photos they came from */
    size_t skipped;  /* files that could not be read or decoded */
    size_t excluded; /* files left out by --exclude */
    int variants;    /* images per photo */
    int augment;     /* made by augment.c's pipelines */
    int c, h, w;
    uint8_t *pixels; /* count * c*h*w, planar per image; a photo's variants are adjacent */
    size_t *source;  /* per image: the index of its photo */
} train_dataset;

/* The photos of o->data_dirs (o->limit, o->exclude, o->augment, o->seed,
 * o->threads) at c x h x w. */
aec_status train_dataset_load(train_dataset *ds, const train_options *o, int c, int h, int w,
                              aec_error *err);
void train_dataset_free(train_dataset *ds);
/* images idx[0..n) -> floats in [0,1] */
void train_dataset_batch(const train_dataset *ds, const size_t *idx, int n, float *out);

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
aec_status train_run(const train_options *o, aec_error *err);

#endif
