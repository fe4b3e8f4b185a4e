/* model.h - an autoencoder as one sequence of layers, and how to run it.
 *
 * A model is what a model file describes: a list of layers (the JSON of the
 * `aec.layers` metadata), the index of the layer whose output is the latent,
 * the input shape, the parameters, and optional anomaly calibration and
 * training record. Encoder = layers 0..latent_index, decoder = the rest.
 *
 * Weights are read-only while serving: any number of threads may run
 * aec_model_infer() on one model at once, each with its own workspace.
 * Training (aec_model_forward_train / backward / aec_adam_step) mutates the
 * model and needs gradient buffers (aec_model_alloc_training).
 */
#ifndef AEC_MODEL_H
#define AEC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "aec/error.h"

typedef enum {
    AEC_LAYER_FLATTEN,
    AEC_LAYER_UNFLATTEN,
    AEC_LAYER_LINEAR,
    AEC_LAYER_BATCHNORM,
    AEC_LAYER_RELU,
    AEC_LAYER_SIGMOID,
    AEC_LAYER_CONV2D,
    AEC_LAYER_CONV_TRANSPOSE2D,
} aec_layer_type;

/* Shape of one sample. Flat features: c = count, h = w = 1, flat = 1. */
typedef struct {
    int c, h, w;
    int flat; /* 1 when the tensor is a flat feature vector */
} aec_shape;

#define AEC_MAX_PARAMS 4

/* One parameter tensor of a layer, named "{layer}.{suffix}" in the file. */
typedef struct {
    const char *suffix; /* "weight", "bias", "running_mean", "running_var" */
    int ndim;
    int dims[4];
    size_t count;
    int trainable; /* running statistics are not */
    float *data;
    float *grad;   /* NULL until aec_model_alloc_training */
    float *adam_m; /* Adam first moment */
    float *adam_v; /* Adam second moment */
} aec_param;

typedef struct {
    aec_layer_type type;
    int in_f, out_f; /* linear: in/out features; conv: in/out channels; batchnorm: features */
    int kernel, stride, padding, output_padding;
    float eps, momentum;           /* batchnorm; momentum is PyTorch's (Keras 0.99 == 0.01) */
    aec_shape unflatten;           /* unflatten target */
    aec_shape in_shape, out_shape; /* derived from the input shape */
    int nparams;
    aec_param params[AEC_MAX_PARAMS];
} aec_layer;

/* An extra named tensor the model file carries (e.g. anomaly statistics).
 * Names start with "aec.". */
typedef struct {
    char *name;
    int ndim;
    int dims[4];
    size_t count;
    float *data;
} aec_extra_tensor;

typedef struct aec_model {
    int nlayers;
    aec_layer *layers;
    int latent_index;
    int network; /* 1: not an autoencoder (aec_model_from_spec_network; aec.network "1") */
    aec_shape input;
    char *layers_json;  /* canonical aec.layers text */
    char *anomaly_json; /* aec.anomaly, or NULL */
    char *train_json;   /* aec.train, or NULL */
    char *codec_json;   /* aec.codec, or NULL (entropy-codec parameters) */
    int nextras;
    aec_extra_tensor *extras;
    uint64_t id_hash; /* FNV-1a 64 over the layer spec and all parameter bytes */
    char id[24];      /* "aec-" + 16 hex digits of id_hash */
} aec_model;

/* ---- building --------------------------------------------------------- */

/* Builds a model from an aec.layers JSON array text, the input shape
 * (c, h, w; an image) and the latent index. Parameters are allocated and set
 * to PyTorch/Keras defaults (weights zero until aec_model_init_weights,
 * batchnorm gamma 1, beta 0, running var 1). Validates every layer and shape. */
aec_status aec_model_from_spec(aec_model **out, const char *layers_json, int in_c, int in_h,
                               int in_w, int latent_index, aec_error *err);
/* The same for a network that is not an autoencoder (its output may have
 * any shape; latent_index 0): the rotation recognizer (aec/rotation.h). */
aec_status aec_model_from_spec_network(aec_model **out, const char *layers_json, int in_c, int in_h,
                                       int in_w, aec_error *err);
/* Glorot-uniform weights, zero biases, from a deterministic generator. */
void aec_model_init_weights(aec_model *m, uint64_t seed);
void aec_model_free(aec_model *m);
/* Recomputes id_hash and id from the spec and parameters (call after training). */
void aec_model_update_id(aec_model *m);

size_t aec_shape_count(const aec_shape *s);
size_t aec_model_input_count(const aec_model *m);
size_t aec_model_latent_count(const aec_model *m);
size_t aec_model_output_count(const aec_model *m);
size_t aec_model_param_count(const aec_model *m); /* trainable + running stats */
const char *aec_layer_type_name(aec_layer_type t);

/* Adds (or replaces) an extra tensor; copies data. */
aec_status aec_model_set_extra(aec_model *m, const char *name, const float *data, int ndim,
                               const int *dims, aec_error *err);
const aec_extra_tensor *aec_model_find_extra(const aec_model *m, const char *name);

/* ---- model file (safetensors) ---------------------------------------------- */

aec_status aec_model_load(aec_model **out, const char *path, aec_error *err);
/* name is used in error messages only */
aec_status aec_model_load_memory(aec_model **out, const void *data, size_t len, const char *name,
                                 aec_error *err);
/* Writes path atomically: a temp file in the same folder, fsync, rename. */
aec_status aec_model_save(const aec_model *m, const char *path, aec_error *err);

/* ---- running -------------------------------------------------------------- */

/* Activations and scratch for batches of up to max_batch samples. One per
 * thread. training != 0 also keeps what backward needs. */
typedef struct aec_workspace aec_workspace;

aec_status aec_workspace_create(aec_workspace **out, const aec_model *m, int max_batch,
                                int training, aec_error *err);
void aec_workspace_free(aec_workspace *ws);
int aec_workspace_max_batch(const aec_workspace *ws);
/* Threads that aec_model_infer may use (default 1); sizes the scratch for
 * them. The answer is the same bits for any count (see aec/gemm.h). */
aec_status aec_workspace_set_threads(aec_workspace *ws, const aec_model *m, int threads,
                                     aec_error *err);

/* Inference (batchnorm uses running statistics) through layers first..last
 * inclusive, with a fixed order of operations: each sample's output is the
 * same bits whatever n, the other samples, the thread count and the CPU. inp holds n samples of
 * layer first's input shape. Returns the output of layer last, which lives inside ws until the next
 * call. */
const float *aec_model_infer(const aec_model *m, aec_workspace *ws, const float *inp, int n,
                             int first, int last);

/* Convenience wrappers over aec_model_infer; copy results to out. */
void aec_model_encode(const aec_model *m, aec_workspace *ws, const float *images, int n,
                      float *latent);
void aec_model_decode(const aec_model *m, aec_workspace *ws, const float *latent, int n,
                      float *images);
void aec_model_reconstruct(const aec_model *m, aec_workspace *ws, const float *images, int n,
                           float *out);

/* ---- training --------------------------------------------------------------- */

aec_status aec_model_alloc_training(aec_model *m, aec_error *err);
void aec_model_zero_grad(aec_model *m);
/* Training-mode forward of the whole model (batch statistics, updates the
 * running averages). Returns the output, inside ws. */
const float *aec_model_forward_train(aec_model *m, aec_workspace *ws, const float *inp, int n);
/* Backward of the whole model after aec_model_forward_train on the same ws
 * and input. dout = d loss / d output. Accumulates into param grads. */
void aec_model_backward(aec_model *m, aec_workspace *ws, const float *inp, const float *dout,
                        int n);

/* The same over layers first..last only: forward_train_range feeds inp to
 * layer first; backward_range runs after it with the same inp and returns
 * d loss / d inp (inside ws, valid until the next call) when want_dinp,
 * else NULL. A codec model trains this way: encoder, quantizer, decoder. */
const float *aec_model_forward_train_range(aec_model *m, aec_workspace *ws, const float *inp, int n,
                                           int first, int last);
const float *aec_model_backward_range(aec_model *m, aec_workspace *ws, const float *inp,
                                      const float *dout, int n, int first, int last, int want_dinp);

typedef struct {
    float lr, beta1, beta2, eps;
} aec_adam;

/* One Adam step on one tensor (w, its gradient g and moments m, v; count
 * floats); consumes g like aec_adam_step. */
void aec_adam_update(float *w, float *g, float *m, float *v, size_t count, const aec_adam *opt,
                     long t);

/* One Adam step (t = step number, from 1) on every trainable parameter.
 * Consumes the gradients: they are zero afterwards, ready for the next
 * backward (no aec_model_zero_grad needed between steps). */
void aec_adam_step(aec_model *m, const aec_adam *opt, long t);

#endif
