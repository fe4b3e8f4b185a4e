/* model.c - a model as a sequence of layers: building it from its JSON spec,
 * deriving and checking every shape, initializing weights, and running it
 * (inference, training forward, backward, Adam).
 *
 * Owns aec_model and aec_workspace. The arithmetic lives in layers.c; the
 * file format in model_file.c.
 *
 * Workspace layout: one activation buffer per layer for max_batch samples
 * (flatten and unflatten are views of their input and own none), batchnorm
 * mean/rstd per layer (training), one im2col scratch big enough for the
 * largest convolution, and two gradient buffers used in turn by backward.
 */
#include "aec/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <cblas.h>

#include "aec/hash.h"
#include "aec/layers.h"
#include "aec/random.h"
#include "parallel.h"

/* Bounds that keep every size computation far from overflow. */
#define MAX_LAYERS 256
#define MAX_FEATURES (1 << 22) /* channels or features of one layer */
#define MAX_SAMPLE (1 << 26)   /* floats in one sample's activation */
#define MAX_LAYER_PARAMS (1 << 28)
#define MAX_KERNEL 15
#define MAX_STRIDE 8

struct aec_workspace {
    int max_batch;
    int training;
    int nlayers;
    float **act;       /* owned activation buffer per layer (NULL for views) */
    const float **out; /* where each layer's output is, after a forward */
    float **bn_mean, **bn_rstd;
    float *col;     /* im2col scratch, one sample (training) */
    float *grad[2]; /* backward ping-pong */
    int threads;    /* inference threads (aec_workspace_set_threads) */
    float *scratch; /* inference scratch for that many threads */
};

const char *aec_layer_type_name(aec_layer_type t)
{
    switch (t) {
    case AEC_LAYER_FLATTEN: return "flatten";
    case AEC_LAYER_UNFLATTEN: return "unflatten";
    case AEC_LAYER_LINEAR: return "linear";
    case AEC_LAYER_BATCHNORM: return "batchnorm";
    case AEC_LAYER_RELU: return "relu";
    case AEC_LAYER_SIGMOID: return "sigmoid";
    case AEC_LAYER_CONV2D: return "conv2d";
    case AEC_LAYER_CONV_TRANSPOSE2D: return "conv_transpose2d";
    }
    return "?";
}

size_t aec_shape_count(const aec_shape *s)
{
    return (size_t)s->c * (size_t)s->h * (size_t)s->w;
}

/* ---- parsing the spec ------------------------------------------------------ */

/* Reads an integer field in [lo, hi]; absent -> def (or error if def < lo). */
static aec_status get_int(const cJSON *obj, const char *key, int lo, int hi, int def, int *out,
                          int idx, aec_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (def < lo)
            return aec_fail(err, AEC_ERR_FORMAT, "layer %d: missing \"%s\"", idx, key);
        *out = def;
        return AEC_OK;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= lo && d <= hi) || d != floor(d))
        return aec_fail(err, AEC_ERR_FORMAT, "layer %d: \"%s\" must be an integer in [%d, %d]", idx,
                        key, lo, hi);
    *out = (int)d;
    return AEC_OK;
}

static aec_status get_float(const cJSON *obj, const char *key, double lo, double hi, double def,
                            float *out, int idx, aec_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *out = (float)def;
        return AEC_OK;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d > lo && d <= hi))
        return aec_fail(err, AEC_ERR_FORMAT, "layer %d: \"%s\" must be a number in (%g, %g]", idx,
                        key, lo, hi);
    *out = (float)d;
    return AEC_OK;
}

static aec_status parse_type(const cJSON *obj, aec_layer_type *t, int idx, aec_error *err)
{
    static const aec_layer_type all[] = {
        AEC_LAYER_FLATTEN, AEC_LAYER_UNFLATTEN, AEC_LAYER_LINEAR, AEC_LAYER_BATCHNORM,
        AEC_LAYER_RELU,    AEC_LAYER_SIGMOID,   AEC_LAYER_CONV2D, AEC_LAYER_CONV_TRANSPOSE2D};
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "type");
    if (!cJSON_IsString(v))
        return aec_fail(err, AEC_ERR_FORMAT, "layer %d: missing \"type\"", idx);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(v->valuestring, aec_layer_type_name(all[i])) == 0) {
            *t = all[i];
            return AEC_OK;
        }
    return aec_fail(err, AEC_ERR_UNSUPPORTED, "layer %d: unknown layer type \"%.64s\"", idx,
                    v->valuestring);
}

static aec_status parse_layer(const cJSON *obj, aec_layer *L, int idx, aec_error *err)
{
    aec_status st;
    if (!cJSON_IsObject(obj))
        return aec_fail(err, AEC_ERR_FORMAT, "layer %d: not a JSON object", idx);
    if ((st = parse_type(obj, &L->type, idx, err)))
        return st;
    switch (L->type) {
    case AEC_LAYER_LINEAR:
        if ((st = get_int(obj, "in", 1, MAX_FEATURES, -1, &L->in_f, idx, err)) ||
            (st = get_int(obj, "out", 1, MAX_FEATURES, -1, &L->out_f, idx, err)))
            return st;
        break;
    case AEC_LAYER_BATCHNORM:
        if ((st = get_int(obj, "features", 1, MAX_FEATURES, -1, &L->in_f, idx, err)) ||
            (st = get_float(obj, "eps", 0, 1, 1e-5, &L->eps, idx, err)) ||
            (st = get_float(obj, "momentum", 0, 1, 0.1, &L->momentum, idx, err)))
            return st;
        L->out_f = L->in_f;
        break;
    case AEC_LAYER_CONV2D:
    case AEC_LAYER_CONV_TRANSPOSE2D:
        if ((st = get_int(obj, "in", 1, MAX_FEATURES, -1, &L->in_f, idx, err)) ||
            (st = get_int(obj, "out", 1, MAX_FEATURES, -1, &L->out_f, idx, err)) ||
            (st = get_int(obj, "kernel", 1, MAX_KERNEL, -1, &L->kernel, idx, err)) ||
            (st = get_int(obj, "stride", 1, MAX_STRIDE, 1, &L->stride, idx, err)) ||
            (st = get_int(obj, "padding", 0, MAX_KERNEL, 0, &L->padding, idx, err)) ||
            (st = get_int(obj, "output_padding", 0, MAX_STRIDE, 0, &L->output_padding, idx, err)))
            return st;
        if (L->type == AEC_LAYER_CONV2D && L->output_padding)
            return aec_fail(err, AEC_ERR_FORMAT, "layer %d: conv2d has no output_padding", idx);
        if (L->output_padding >= L->stride && L->output_padding > 0)
            return aec_fail(err, AEC_ERR_FORMAT,
                            "layer %d: output_padding must be smaller than stride", idx);
        break;
    case AEC_LAYER_UNFLATTEN: {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, "shape");
        int d[3];
        if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) != 3)
            return aec_fail(err, AEC_ERR_FORMAT, "layer %d: unflatten needs \"shape\": [c,h,w]",
                            idx);
        for (int i = 0; i < 3; i++) {
            const cJSON *v = cJSON_GetArrayItem(s, i);
            double x = cJSON_IsNumber(v) ? v->valuedouble : -1;
            if (!(x >= 1 && x <= MAX_FEATURES) || x != floor(x))
                return aec_fail(err, AEC_ERR_FORMAT, "layer %d: bad unflatten shape", idx);
            d[i] = (int)x;
        }
        L->unflatten = (aec_shape){d[0], d[1], d[2], 0};
        break;
    }
    default: break;
    }
    return AEC_OK;
}

/* ---- shapes and parameters --------------------------------------------------- */

static aec_status out_shape(aec_layer *L, const aec_shape *in, int idx, aec_error *err)
{
    aec_shape o = *in;
    size_t n = aec_shape_count(in);
    switch (L->type) {
    case AEC_LAYER_FLATTEN: o = (aec_shape){(int)n, 1, 1, 1}; break;
    case AEC_LAYER_UNFLATTEN:
        if (aec_shape_count(&L->unflatten) != n)
            return aec_fail(err, AEC_ERR_FORMAT,
                            "layer %d: unflatten to %dx%dx%d but the input has %zu values", idx,
                            L->unflatten.c, L->unflatten.h, L->unflatten.w, n);
        o = L->unflatten;
        break;
    case AEC_LAYER_LINEAR:
        if (!in->flat || in->c != L->in_f)
            return aec_fail(err, AEC_ERR_FORMAT,
                            "layer %d: linear expects %d flat inputs but gets %dx%dx%d%s", idx,
                            L->in_f, in->c, in->h, in->w, in->flat ? "" : " (flatten first)");
        o = (aec_shape){L->out_f, 1, 1, 1};
        break;
    case AEC_LAYER_BATCHNORM:
        if (in->c != L->in_f)
            return aec_fail(err, AEC_ERR_FORMAT,
                            "layer %d: batchnorm has %d features but the input has %d %s", idx,
                            L->in_f, in->c, in->flat ? "features" : "channels");
        break;
    case AEC_LAYER_CONV2D:
    case AEC_LAYER_CONV_TRANSPOSE2D: {
        if (in->flat || in->c != L->in_f)
            return aec_fail(err, AEC_ERR_FORMAT,
                            "layer %d: %s expects %d input channels but gets %dx%dx%d%s", idx,
                            aec_layer_type_name(L->type), L->in_f, in->c, in->h, in->w,
                            in->flat ? " flat (unflatten first)" : "");
        int k = L->kernel, s = L->stride, p = L->padding;
        if (L->type == AEC_LAYER_CONV2D) {
            if (p >= k && k > 1)
                return aec_fail(err, AEC_ERR_FORMAT, "layer %d: padding must be < kernel", idx);
            o.h = in->h + 2 * p - k < 0 ? 0 : (in->h + 2 * p - k) / s + 1;
            o.w = in->w + 2 * p - k < 0 ? 0 : (in->w + 2 * p - k) / s + 1;
        } else {
            o.h = (in->h - 1) * s - 2 * p + k + L->output_padding;
            o.w = (in->w - 1) * s - 2 * p + k + L->output_padding;
        }
        o.c = L->out_f;
        if (o.h < 1 || o.w < 1)
            return aec_fail(err, AEC_ERR_FORMAT, "layer %d: output would be empty (%dx%d)", idx,
                            o.h, o.w);
        break;
    }
    default: break;
    }
    if (aec_shape_count(&o) > MAX_SAMPLE || o.h > 65536 || o.w > 65536)
        return aec_fail(err, AEC_ERR_LIMIT, "layer %d: output of %dx%dx%d values is too large", idx,
                        o.c, o.h, o.w);
    L->in_shape = *in;
    L->out_shape = o;
    return AEC_OK;
}

static aec_status add_param(aec_layer *L, const char *suffix, int trainable, int ndim,
                            const int *dims, int idx, aec_error *err)
{
    aec_param *p = &L->params[L->nparams++];
    p->suffix = suffix;
    p->trainable = trainable;
    p->ndim = ndim;
    p->count = 1;
    for (int i = 0; i < ndim; i++) {
        p->dims[i] = dims[i];
        p->count *= (size_t)dims[i];
    }
    if (p->count > MAX_LAYER_PARAMS)
        return aec_fail(err, AEC_ERR_LIMIT, "layer %d: %s has %zu values, too many", idx, suffix,
                        p->count);
    p->data = calloc(p->count, sizeof(float));
    if (!p->data)
        return aec_fail(err, AEC_ERR_NOMEM, "layer %d: out of memory for %s", idx, suffix);
    return AEC_OK;
}

static aec_status alloc_params(aec_layer *L, int idx, aec_error *err)
{
    aec_status st = AEC_OK;
    int k = L->kernel;
    switch (L->type) {
    case AEC_LAYER_LINEAR:
        st = add_param(L, "weight", 1, 2, (int[]){L->out_f, L->in_f}, idx, err);
        if (!st)
            st = add_param(L, "bias", 1, 1, (int[]){L->out_f}, idx, err);
        break;
    case AEC_LAYER_CONV2D:
        st = add_param(L, "weight", 1, 4, (int[]){L->out_f, L->in_f, k, k}, idx, err);
        if (!st)
            st = add_param(L, "bias", 1, 1, (int[]){L->out_f}, idx, err);
        break;
    case AEC_LAYER_CONV_TRANSPOSE2D:
        st = add_param(L, "weight", 1, 4, (int[]){L->in_f, L->out_f, k, k}, idx, err);
        if (!st)
            st = add_param(L, "bias", 1, 1, (int[]){L->out_f}, idx, err);
        break;
    case AEC_LAYER_BATCHNORM: {
        int f[1] = {L->in_f};
        if ((st = add_param(L, "weight", 1, 1, f, idx, err)) ||
            (st = add_param(L, "bias", 1, 1, f, idx, err)) ||
            (st = add_param(L, "running_mean", 0, 1, f, idx, err)) ||
            (st = add_param(L, "running_var", 0, 1, f, idx, err)))
            break;
        for (int i = 0; i < L->in_f; i++) {
            L->params[0].data[i] = 1.0f; /* gamma */
            L->params[3].data[i] = 1.0f; /* running variance */
        }
        break;
    }
    default: break;
    }
    return st;
}

/* autoencoder: the output must have as many values as the input. */
static aec_status from_spec(aec_model **out, const char *layers_json, int in_c, int in_h, int in_w,
                            int latent_index, int autoencoder, aec_error *err)
{
    *out = NULL;
    if (!(in_c == 1 || in_c == 3) || in_h < 1 || in_w < 1 || in_h > 4096 || in_w > 4096)
        return aec_fail(err, AEC_ERR_FORMAT,
                        "input must be 1 or 3 channels of at most 4096x4096, not %dx%dx%d", in_c,
                        in_h, in_w);
    cJSON *arr = cJSON_Parse(layers_json ? layers_json : "");
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        return aec_fail(err, AEC_ERR_FORMAT, "aec.layers is not a JSON array");
    }
    int n = cJSON_GetArraySize(arr);
    if (n < 2 || n > MAX_LAYERS) {
        cJSON_Delete(arr);
        return aec_fail(err, AEC_ERR_FORMAT, "a model needs 2 to %d layers, not %d", MAX_LAYERS, n);
    }
    if (latent_index < 0 || latent_index >= n - 1) {
        cJSON_Delete(arr);
        return aec_fail(err, AEC_ERR_FORMAT,
                        "latent index %d is not a layer before the last (0..%d)", latent_index,
                        n - 2);
    }
    aec_model *m = calloc(1, sizeof *m);
    if (!m || !(m->layers = calloc((size_t)n, sizeof *m->layers)) ||
        !(m->layers_json = strdup(layers_json))) {
        cJSON_Delete(arr);
        aec_model_free(m);
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    }
    m->nlayers = n;
    m->latent_index = latent_index;
    m->input = (aec_shape){in_c, in_h, in_w, 0};
    aec_shape shape = m->input;
    aec_status st = AEC_OK;
    for (int i = 0; i < n && !st; i++) {
        aec_layer *L = &m->layers[i];
        if (!(st = parse_layer(cJSON_GetArrayItem(arr, i), L, i, err)) &&
            !(st = out_shape(L, &shape, i, err)))
            st = alloc_params(L, i, err);
        shape = L->out_shape;
    }
    cJSON_Delete(arr);
    if (!st && autoencoder && aec_shape_count(&shape) != aec_shape_count(&m->input))
        st = aec_fail(err, AEC_ERR_FORMAT,
                      "the last layer gives %zu values per image but the input has %zu",
                      aec_shape_count(&shape), aec_shape_count(&m->input));
    if (st) {
        aec_model_free(m);
        return st;
    }
    aec_model_update_id(m);
    *out = m;
    return AEC_OK;
}

aec_status aec_model_from_spec(aec_model **out, const char *layers_json, int in_c, int in_h,
                               int in_w, int latent_index, aec_error *err)
{
    return from_spec(out, layers_json, in_c, in_h, in_w, latent_index, 1, err);
}

aec_status aec_model_from_spec_network(aec_model **out, const char *layers_json, int in_c, int in_h,
                                       int in_w, aec_error *err)
{
    aec_status st = from_spec(out, layers_json, in_c, in_h, in_w, 0, 0, err);
    if (!st)
        (*out)->network = 1;
    return st;
}

void aec_model_free(aec_model *m)
{
    if (!m)
        return;
    for (int i = 0; m->layers && i < m->nlayers; i++)
        for (int j = 0; j < m->layers[i].nparams; j++) {
            aec_param *p = &m->layers[i].params[j];
            free(p->data);
            free(p->grad);
            free(p->adam_m);
            free(p->adam_v);
        }
    for (int i = 0; i < m->nextras; i++) {
        free(m->extras[i].name);
        free(m->extras[i].data);
    }
    free(m->extras);
    free(m->layers);
    free(m->layers_json);
    free(m->anomaly_json);
    free(m->train_json);
    free(m->codec_json);
    free(m);
}

/* ---- initialization and identity ----------------------------------------------- */

void aec_model_init_weights(aec_model *m, uint64_t seed)
{
    uint64_t s = seed ^ 0x5eed5eed5eedull;
    for (int i = 0; i < m->nlayers; i++) {
        aec_layer *L = &m->layers[i];
        double fan_in, fan_out;
        int kk = L->kernel * L->kernel;
        if (L->type == AEC_LAYER_LINEAR) {
            fan_in = L->in_f;
            fan_out = L->out_f;
        } else if (L->type == AEC_LAYER_CONV2D || L->type == AEC_LAYER_CONV_TRANSPOSE2D) {
            fan_in = (double)L->in_f * kk;
            fan_out = (double)L->out_f * kk;
        } else {
            continue;
        }
        float limit = (float)sqrt(6.0 / (fan_in + fan_out)); /* Glorot uniform */
        aec_param *w = &L->params[0], *b = &L->params[1];
        for (size_t k = 0; k < w->count; k++) {
            float u = (float)(aec_random_next(&s) >> 40) / (float)(1ull << 24);
            w->data[k] = (2.0f * u - 1.0f) * limit;
        }
        memset(b->data, 0, sizeof(float) * b->count);
    }
    aec_model_update_id(m);
}

void aec_model_update_id(aec_model *m)
{
    uint64_t h = AEC_HASH64_INIT;
    h = aec_hash64(h, m->layers_json, strlen(m->layers_json));
    int dims[4] = {m->latent_index, m->input.c, m->input.h, m->input.w};
    h = aec_hash64(h, dims, sizeof dims);
    for (int i = 0; i < m->nlayers; i++)
        for (int j = 0; j < m->layers[i].nparams; j++) {
            const aec_param *p = &m->layers[i].params[j];
            h = aec_hash64(h, p->data, p->count * sizeof(float));
        }
    m->id_hash = h;
    snprintf(m->id, sizeof m->id, "aec-%016llx", (unsigned long long)h);
}

size_t aec_model_input_count(const aec_model *m)
{
    return aec_shape_count(&m->input);
}

size_t aec_model_latent_count(const aec_model *m)
{
    return aec_shape_count(&m->layers[m->latent_index].out_shape);
}

size_t aec_model_output_count(const aec_model *m)
{
    return aec_shape_count(&m->layers[m->nlayers - 1].out_shape);
}

size_t aec_model_param_count(const aec_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->nlayers; i++)
        for (int j = 0; j < m->layers[i].nparams; j++)
            n += m->layers[i].params[j].count;
    return n;
}

aec_status aec_model_set_extra(aec_model *m, const char *name, const float *data, int ndim,
                               const int *dims, aec_error *err)
{
    if (ndim < 0 || ndim > 4)
        return aec_fail(err, AEC_ERR_INVALID, "extra tensor %s: %d dimensions", name, ndim);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0 || dims[i] > MAX_LAYER_PARAMS)
            return aec_fail(err, AEC_ERR_INVALID, "extra tensor %s: bad shape", name);
        count *= (size_t)dims[i];
        if (count > MAX_LAYER_PARAMS)
            return aec_fail(err, AEC_ERR_LIMIT, "extra tensor %s: too large", name);
    }
    aec_extra_tensor *t = (aec_extra_tensor *)aec_model_find_extra(m, name);
    if (!t) {
        aec_extra_tensor *grown = realloc(m->extras, sizeof *grown * (size_t)(m->nextras + 1));
        if (!grown)
            return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
        m->extras = grown;
        t = &m->extras[m->nextras];
        memset(t, 0, sizeof *t);
        if (!(t->name = strdup(name)))
            return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
        m->nextras++;
    }
    float *copy = malloc(sizeof(float) * (count ? count : 1));
    if (!copy)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    memcpy(copy, data, sizeof(float) * count);
    free(t->data);
    t->data = copy;
    t->count = count;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->dims[i] = dims[i];
    return AEC_OK;
}

const aec_extra_tensor *aec_model_find_extra(const aec_model *m, const char *name)
{
    for (int i = 0; i < m->nextras; i++)
        if (strcmp(m->extras[i].name, name) == 0)
            return &m->extras[i];
    return NULL;
}

/* ---- workspace --------------------------------------------------------------------- */

static int is_view(aec_layer_type t)
{
    return t == AEC_LAYER_FLATTEN || t == AEC_LAYER_UNFLATTEN;
}

static size_t conv_col_floats(const aec_layer *L)
{
    if (L->type == AEC_LAYER_CONV2D)
        return aec_conv2d_col_size(L->in_f, L->kernel, L->out_shape.h, L->out_shape.w);
    if (L->type == AEC_LAYER_CONV_TRANSPOSE2D)
        return aec_conv2d_col_size(L->out_f, L->kernel, L->in_shape.h, L->in_shape.w);
    return 0;
}

/* Inference scratch of layer L for a call on `threads` threads. */
static size_t infer_scratch_floats(const aec_layer *L, int threads)
{
    const aec_shape *in = &L->in_shape;
    if (L->type == AEC_LAYER_CONV2D)
        return aec_conv2d_infer_scratch(in->c, in->h, in->w, L->kernel, L->stride, L->padding,
                                        threads);
    if (L->type == AEC_LAYER_CONV_TRANSPOSE2D)
        return aec_conv_transpose2d_infer_scratch(in->c, in->h, in->w, L->out_f, L->kernel,
                                                  threads);
    return 0;
}

static size_t model_infer_scratch(const aec_model *m, int threads)
{
    size_t most = 0;
    for (int i = 0; i < m->nlayers; i++) {
        size_t f = infer_scratch_floats(&m->layers[i], threads);
        most = f > most ? f : most;
    }
    return most;
}

void aec_workspace_free(aec_workspace *ws)
{
    if (!ws)
        return;
    for (int i = 0; i < ws->nlayers; i++) {
        if (ws->act)
            free(ws->act[i]);
        if (ws->bn_mean)
            free(ws->bn_mean[i]);
        if (ws->bn_rstd)
            free(ws->bn_rstd[i]);
    }
    free(ws->act);
    free((void *)ws->out);
    free(ws->bn_mean);
    free(ws->bn_rstd);
    free(ws->col);
    free(ws->scratch);
    free(ws->grad[0]);
    free(ws->grad[1]);
    free(ws);
}

aec_status aec_workspace_create(aec_workspace **out, const aec_model *m, int max_batch,
                                int training, aec_error *err)
{
    *out = NULL;
    if (max_batch < 1 || max_batch > 65536)
        return aec_fail(err, AEC_ERR_INVALID, "batch size %d out of range", max_batch);
    aec_workspace *ws = calloc(1, sizeof *ws);
    if (!ws)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    int n = m->nlayers;
    ws->max_batch = max_batch;
    ws->training = training;
    ws->nlayers = n;
    ws->act = calloc((size_t)n, sizeof *ws->act);
    ws->out = calloc((size_t)n, sizeof *ws->out);
    ws->bn_mean = calloc((size_t)n, sizeof *ws->bn_mean);
    ws->bn_rstd = calloc((size_t)n, sizeof *ws->bn_rstd);
    int ok = ws->act && ws->out && ws->bn_mean && ws->bn_rstd;
    size_t col = 0, widest = aec_model_input_count(m);
    for (int i = 0; ok && i < n; i++) {
        const aec_layer *L = &m->layers[i];
        size_t count = aec_shape_count(&L->out_shape);
        if (count > widest)
            widest = count;
        if (conv_col_floats(L) > col)
            col = conv_col_floats(L);
        if (!is_view(L->type))
            ok = (ws->act[i] = malloc(sizeof(float) * count * (size_t)max_batch)) != NULL;
        if (ok && L->type == AEC_LAYER_BATCHNORM) {
            ok = (ws->bn_mean[i] = malloc(sizeof(float) * (size_t)L->in_f)) &&
                 (ws->bn_rstd[i] = malloc(sizeof(float) * (size_t)L->in_f));
        }
    }
    if (ok && col)
        ok = (ws->col = malloc(sizeof(float) * col)) != NULL;
    size_t scratch = model_infer_scratch(m, 1);
    ws->threads = 1;
    if (ok && scratch)
        ok = (ws->scratch = malloc(sizeof(float) * scratch)) != NULL;
    if (ok && training)
        ok = (ws->grad[0] = malloc(sizeof(float) * widest * (size_t)max_batch)) &&
             (ws->grad[1] = malloc(sizeof(float) * widest * (size_t)max_batch));
    if (!ok) {
        aec_workspace_free(ws);
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory for a workspace of batch %d", max_batch);
    }
    *out = ws;
    return AEC_OK;
}

int aec_workspace_max_batch(const aec_workspace *ws)
{
    return ws->max_batch;
}

aec_status aec_workspace_set_threads(aec_workspace *ws, const aec_model *m, int threads,
                                     aec_error *err)
{
    if (threads < 1 || threads > 64)
        return aec_fail(err, AEC_ERR_INVALID, "thread count %d out of range [1, 64]", threads);
    size_t floats = model_infer_scratch(m, threads);
    float *scratch = NULL;
    if (floats && !(scratch = malloc(sizeof(float) * floats)))
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory for %d threads' scratch", threads);
    free(ws->scratch);
    ws->scratch = scratch;
    ws->threads = threads;
    return AEC_OK;
}

/* ---- forward ------------------------------------------------------------------------- */

/* Runs layer i on n samples; train selects batch statistics for batchnorm. */
static const float *layer_forward(aec_layer *L, aec_workspace *ws, int i, const float *x, int n,
                                  int train)
{
    float *y = ws->act[i];
    const aec_shape *in = &L->in_shape;
    size_t count = aec_shape_count(&L->out_shape) * (size_t)n;
    aec_param *P = L->params;
    switch (L->type) {
    case AEC_LAYER_FLATTEN:
    case AEC_LAYER_UNFLATTEN: return x;
    case AEC_LAYER_LINEAR:
        if (train)
            aec_linear_forward(y, x, P[0].data, P[1].data, n, L->in_f, L->out_f);
        else
            aec_linear_infer(y, x, P[0].data, P[1].data, n, L->in_f, L->out_f, ws->threads);
        break;
    case AEC_LAYER_RELU: aec_relu_forward(y, x, count); break;
    case AEC_LAYER_SIGMOID: aec_sigmoid_forward(y, x, count); break;
    case AEC_LAYER_BATCHNORM: {
        int spatial = in->h * in->w;
        if (train)
            aec_batchnorm_forward_train(y, ws->bn_mean[i], ws->bn_rstd[i], P[2].data, P[3].data, x,
                                        P[0].data, P[1].data, n, L->in_f, spatial, L->eps,
                                        L->momentum);
        else
            aec_batchnorm_forward_eval(y, x, P[0].data, P[1].data, P[2].data, P[3].data, n, L->in_f,
                                       spatial, L->eps);
        break;
    }
    case AEC_LAYER_CONV2D:
        if (train)
            aec_conv2d_forward(y, ws->col, x, P[0].data, P[1].data, n, in->c, in->h, in->w,
                               L->out_f, L->kernel, L->stride, L->padding);
        else
            aec_conv2d_infer(y, ws->scratch, x, P[0].data, P[1].data, n, in->c, in->h, in->w,
                             L->out_f, L->kernel, L->stride, L->padding, ws->threads);
        break;
    case AEC_LAYER_CONV_TRANSPOSE2D:
        if (train)
            aec_conv_transpose2d_forward(y, ws->col, x, P[0].data, P[1].data, n, in->c, in->h,
                                         in->w, L->out_f, L->kernel, L->stride, L->padding,
                                         L->output_padding);
        else
            aec_conv_transpose2d_infer(y, ws->scratch, x, P[0].data, P[1].data, n, in->c, in->h,
                                       in->w, L->out_f, L->kernel, L->stride, L->padding,
                                       L->output_padding, ws->threads);
        break;
    }
    return y;
}

const float *aec_model_infer(const aec_model *m, aec_workspace *ws, const float *inp, int n,
                             int first, int last)
{
    const float *x = inp;
    for (int i = first; i <= last; i++) {
        /* Inference never writes parameters: the cast is for the shared helper. */
        x = layer_forward((aec_layer *)&m->layers[i], ws, i, x, n, 0);
        ws->out[i] = x;
    }
    return x;
}

/* Runs n samples in chunks of the workspace's batch size. */
static void infer_chunks(const aec_model *m, aec_workspace *ws, const float *in, size_t in_count,
                         int n, int first, int last, float *out, size_t out_count)
{
    for (int done = 0; done < n;) {
        int b = n - done < ws->max_batch ? n - done : ws->max_batch;
        const float *y = aec_model_infer(m, ws, in + (size_t)done * in_count, b, first, last);
        memcpy(out + (size_t)done * out_count, y, sizeof(float) * out_count * (size_t)b);
        done += b;
    }
}

void aec_model_encode(const aec_model *m, aec_workspace *ws, const float *images, int n,
                      float *latent)
{
    infer_chunks(m, ws, images, aec_model_input_count(m), n, 0, m->latent_index, latent,
                 aec_model_latent_count(m));
}

void aec_model_decode(const aec_model *m, aec_workspace *ws, const float *latent, int n,
                      float *images)
{
    infer_chunks(m, ws, latent, aec_model_latent_count(m), n, m->latent_index + 1, m->nlayers - 1,
                 images, aec_model_output_count(m));
}

void aec_model_reconstruct(const aec_model *m, aec_workspace *ws, const float *images, int n,
                           float *out)
{
    infer_chunks(m, ws, images, aec_model_input_count(m), n, 0, m->nlayers - 1, out,
                 aec_model_output_count(m));
}

const float *aec_model_forward_train_range(aec_model *m, aec_workspace *ws, const float *inp, int n,
                                           int first, int last)
{
    const float *x = inp;
    for (int i = first; i <= last; i++) {
        x = layer_forward(&m->layers[i], ws, i, x, n, 1);
        ws->out[i] = x;
    }
    return x;
}

const float *aec_model_forward_train(aec_model *m, aec_workspace *ws, const float *inp, int n)
{
    return aec_model_forward_train_range(m, ws, inp, n, 0, m->nlayers - 1);
}

/* ---- backward ------------------------------------------------------------------------- */

static void layer_backward(aec_layer *L, aec_workspace *ws, int i, const float *x, const float *dy,
                           float *dx, int n)
{
    const aec_shape *in = &L->in_shape;
    size_t count = aec_shape_count(&L->out_shape) * (size_t)n;
    aec_param *P = L->params;
    switch (L->type) {
    case AEC_LAYER_FLATTEN:
    case AEC_LAYER_UNFLATTEN: break; /* views: handled by the caller */
    case AEC_LAYER_LINEAR:
        aec_linear_backward(dx, P[0].grad, P[1].grad, dy, x, P[0].data, n, L->in_f, L->out_f);
        break;
    case AEC_LAYER_RELU:
        if (dx)
            aec_relu_backward(dx, dy, ws->out[i], count);
        break;
    case AEC_LAYER_SIGMOID:
        if (dx)
            aec_sigmoid_backward(dx, dy, ws->out[i], count);
        break;
    case AEC_LAYER_BATCHNORM:
        aec_batchnorm_backward(dx, P[0].grad, P[1].grad, dy, x, ws->bn_mean[i], ws->bn_rstd[i],
                               P[0].data, n, L->in_f, in->h * in->w);
        break;
    case AEC_LAYER_CONV2D:
        aec_conv2d_backward(dx, P[0].grad, P[1].grad, ws->col, dy, x, P[0].data, n, in->c, in->h,
                            in->w, L->out_f, L->kernel, L->stride, L->padding);
        break;
    case AEC_LAYER_CONV_TRANSPOSE2D:
        aec_conv_transpose2d_backward(dx, P[0].grad, P[1].grad, ws->col, dy, x, P[0].data, n, in->c,
                                      in->h, in->w, L->out_f, L->kernel, L->stride, L->padding,
                                      L->output_padding);
        break;
    }
}

/* Does any layer in [first, i) have trainable parameters (so the gradient must flow)? */
static int needs_input_grad(const aec_model *m, int first, int i)
{
    for (int j = first; j < i; j++)
        for (int k = 0; k < m->layers[j].nparams; k++)
            if (m->layers[j].params[k].trainable)
                return 1;
    return 0;
}

const float *aec_model_backward_range(aec_model *m, aec_workspace *ws, const float *inp,
                                      const float *dout, int n, int first, int last, int want_dinp)
{
    const float *dy = dout;
    for (int i = last; i >= first; i--) {
        aec_layer *L = &m->layers[i];
        if (is_view(L->type))
            continue; /* same memory, same gradient */
        const float *x = i == first ? inp : ws->out[i - 1];
        float *dx = NULL;
        if (want_dinp || needs_input_grad(m, first, i))
            dx = dy == ws->grad[0] ? ws->grad[1] : ws->grad[0];
        layer_backward(L, ws, i, x, dy, dx, n);
        if (!dx)
            return NULL;
        dy = dx;
    }
    return want_dinp ? dy : NULL;
}

void aec_model_backward(aec_model *m, aec_workspace *ws, const float *inp, const float *dout, int n)
{
    aec_model_backward_range(m, ws, inp, dout, n, 0, m->nlayers - 1, 0);
}

/* ---- optimizer --------------------------------------------------------------------------- */

aec_status aec_model_alloc_training(aec_model *m, aec_error *err)
{
    for (int i = 0; i < m->nlayers; i++)
        for (int j = 0; j < m->layers[i].nparams; j++) {
            aec_param *p = &m->layers[i].params[j];
            if (!p->trainable || p->grad)
                continue;
            p->grad = calloc(p->count, sizeof(float));
            p->adam_m = calloc(p->count, sizeof(float));
            p->adam_v = calloc(p->count, sizeof(float));
            if (!p->grad || !p->adam_m || !p->adam_v)
                return aec_fail(err, AEC_ERR_NOMEM, "out of memory for training state");
        }
    return AEC_OK;
}

void aec_model_zero_grad(aec_model *m)
{
    for (int i = 0; i < m->nlayers; i++)
        for (int j = 0; j < m->layers[i].nparams; j++) {
            aec_param *p = &m->layers[i].params[j];
            if (p->grad)
                memset(p->grad, 0, sizeof(float) * p->count);
        }
}

/* One tensor's Adam update over [begin, end) (run on several threads). */
typedef struct {
    float *w, *g, *m, *v;
    float step, b1, b2, eps, bc2_sqrt;
} adam_job;

static void adam_range(void *ctx, int thread, long begin, long end)
{
    (void)thread;
    const adam_job *j = ctx;
    float *w = j->w, *g = j->g, *mm = j->m, *vv = j->v;
    float b1 = j->b1, b2 = j->b2;
    for (long k = begin; k < end; k++) {
        mm[k] = b1 * mm[k] + (1.0f - b1) * g[k];
        vv[k] = b2 * vv[k] + (1.0f - b2) * g[k] * g[k];
        w[k] -= j->step * mm[k] / (sqrtf(vv[k]) / j->bc2_sqrt + j->eps);
        g[k] = 0.0f; /* consumed: saves a separate zeroing pass over memory */
    }
}

/* PyTorch's Adam: p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
 * The gradients are consumed: they are zero afterwards. Memory-bound, so
 * large tensors are split across the BLAS thread count. */
void aec_adam_update(float *w, float *g, float *m, float *v, size_t count, const aec_adam *opt,
                     long t)
{
    adam_job j = {w,
                  g,
                  m,
                  v,
                  opt->lr / (1.0f - powf(opt->beta1, (float)t)),
                  opt->beta1,
                  opt->beta2,
                  opt->eps,
                  sqrtf(1.0f - powf(opt->beta2, (float)t))};
    int threads = count > 65536 ? openblas_get_num_threads() : 1;
    aec_parallel_range(threads, (long)count, adam_range, &j);
}

void aec_adam_step(aec_model *m, const aec_adam *opt, long t)
{
    for (int i = 0; i < m->nlayers; i++)
        for (int k = 0; k < m->layers[i].nparams; k++) {
            aec_param *p = &m->layers[i].params[k];
            if (p->trainable && p->grad)
                aec_adam_update(p->data, p->grad, p->adam_m, p->adam_v, p->count, opt, t);
        }
}
