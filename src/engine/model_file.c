/* model_file.c - the model file: an aec_model as a safetensors file.
 *
 * Owns: aec_model_load / aec_model_load_memory / aec_model_save
 * (include/aec/model.h).
 *
 * The format is the contract with PyTorch. Tensors are named as an
 * nn.Sequential state_dict: "{i}.weight", "{i}.bias" and, for batchnorm,
 * "{i}.running_mean", "{i}.running_var" and "{i}.num_batches_tracked" (an I64
 * scalar, accepted and ignored; we write 0). Parameters are F32 or F16 (F16 is
 * converted to F32 once, here). Tensors named "aec.*" are extra model tensors
 * (aec_model_set_extra). Metadata:
 *
 *   aec.format   "1"
 *   aec.layers   JSON array of layers (aec_model_from_spec validates it)
 *   aec.latent   index of the latent layer, decimal
 *   aec.input    {"channels": c, "height": h, "width": w}
 *   aec.anomaly, aec.train, aec.codec   optional JSON objects, kept verbatim
 *   aec.network  "1" when the layers are a network that is not an
 *                autoencoder (the rotation recognizer): its output may have
 *                any shape; optional
 *
 * Loading is strict: every parameter the layers declare must be present with
 * the exact shape, and any tensor that is not a parameter, an ignored
 * num_batches_tracked or an "aec.*" extra is an error. Every error message
 * starts with the file name.
 */
#include "aec/model.h"

#include <cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/half.h"
#include "aec/safetensors.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "model files are little-endian; add byte swapping for this host"
#endif

#define INPUT_MAX_DIM 65536
#define BATCHES_SUFFIX "num_batches_tracked"

/* ---- metadata ------------------------------------------------------------ */

static aec_status require_meta(const aec_st_file *f, const char *key, const char **out,
                               aec_error *err)
{
    *out = aec_st_meta(f, key);
    if (!*out)
        return aec_fail(err, AEC_ERR_FORMAT, "missing metadata %s", key);
    return AEC_OK;
}

/* Strict decimal: digits only, no sign, no leading zeros, fits an int. */
static int parse_index(const char *s, size_t n, int *out)
{
    if (n == 0 || n > 9 || (n > 1 && s[0] == '0'))
        return 0;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static aec_status parse_latent(const char *s, int *latent, aec_error *err)
{
    if (!parse_index(s, strlen(s), latent))
        return aec_fail(err, AEC_ERR_FORMAT, "aec.latent '%.40s' is not a layer index", s);
    return AEC_OK;
}

static int json_dim(const cJSON *obj, const char *key, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v))
        return 0;
    double d = v->valuedouble;
    if (!(d >= 1 && d <= INPUT_MAX_DIM) || d != (double)(int)d)
        return 0;
    *out = (int)d;
    return 1;
}

static aec_status parse_input(const char *s, int *c, int *h, int *w, aec_error *err)
{
    cJSON *j = cJSON_Parse(s);
    int ok = cJSON_IsObject(j) && json_dim(j, "channels", c) && json_dim(j, "height", h) &&
             json_dim(j, "width", w);
    cJSON_Delete(j);
    if (!ok)
        return aec_fail(err, AEC_ERR_FORMAT,
                        "aec.input '%.80s' is not {\"channels\",\"height\",\"width\"} with "
                        "integers in 1..%d",
                        s, INPUT_MAX_DIM);
    return AEC_OK;
}

static double json_num(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? v->valuedouble : 0;
}

/* A lower bound on the parameter count of one layer spec (weights only).
 * It only guards allocation; aec_model_from_spec does the validation. */
static double layer_min_params(const cJSON *l)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(l, "type");
    if (!cJSON_IsString(t) || !t->valuestring)
        return 0;
    double k = json_num(l, "kernel");
    if (strcmp(t->valuestring, "linear") == 0)
        return json_num(l, "in") * json_num(l, "out");
    if (strcmp(t->valuestring, "conv2d") == 0 || strcmp(t->valuestring, "conv_transpose2d") == 0)
        return json_num(l, "in") * json_num(l, "out") * k * k;
    if (strcmp(t->valuestring, "batchnorm") == 0)
        return json_num(l, "features");
    return 0;
}

/* Before building the model (which allocates every parameter): the latent
 * index must name a layer, and the file must be big enough to hold the
 * parameters the layers declare, at 2 bytes (F16) each. This keeps a small
 * hostile file from asking for gigabytes. */
static aec_status precheck_layers(const char *layers_json, int latent, size_t data_len,
                                  aec_error *err)
{
    cJSON *j = cJSON_Parse(layers_json);
    if (!cJSON_IsArray(j)) {
        cJSON_Delete(j);
        return aec_fail(err, AEC_ERR_FORMAT, "aec.layers is not a JSON array");
    }
    int n = cJSON_GetArraySize(j);
    double need = 0;
    for (const cJSON *l = j->child; l; l = l->next)
        need += layer_min_params(l);
    cJSON_Delete(j);
    if (latent >= n)
        return aec_fail(err, AEC_ERR_FORMAT, "aec.latent %d out of range (the model has %d layers)",
                        latent, n);
    if (need * 2 > (double)data_len)
        return aec_fail(err, AEC_ERR_FORMAT,
                        "aec.layers declares at least %.0f parameters but the file holds only "
                        "%zu bytes of tensor data",
                        need, data_len);
    return AEC_OK;
}

/* Optional metadata that must be a JSON object; copied verbatim. */
static aec_status copy_json_object(const aec_st_file *f, const char *key, char **dst,
                                   aec_error *err)
{
    const char *s = aec_st_meta(f, key);
    if (!s)
        return AEC_OK;
    cJSON *j = cJSON_Parse(s);
    int ok = cJSON_IsObject(j);
    cJSON_Delete(j);
    if (!ok)
        return aec_fail(err, AEC_ERR_FORMAT, "metadata %s is not a JSON object", key);
    size_t n = strlen(s) + 1;
    *dst = malloc(n);
    if (!*dst)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory for %s", key);
    memcpy(*dst, s, n);
    return AEC_OK;
}

/* Builds the model from the metadata (no parameters loaded yet). */
static aec_status model_from_meta(aec_model **out, const aec_st_file *f, aec_error *err)
{
    const char *format = NULL, *layers = NULL, *latent_s = NULL, *input_s = NULL;
    aec_status st;
    if ((st = require_meta(f, "aec.format", &format, err)) != AEC_OK)
        return aec_fail(err, st, "missing metadata aec.format (not an aec model file?)");
    if (strcmp(format, "1") != 0)
        return aec_fail(err, AEC_ERR_UNSUPPORTED, "aec.format '%.20s' is not supported (want 1)",
                        format);
    if ((st = require_meta(f, "aec.layers", &layers, err)) != AEC_OK ||
        (st = require_meta(f, "aec.latent", &latent_s, err)) != AEC_OK ||
        (st = require_meta(f, "aec.input", &input_s, err)) != AEC_OK)
        return st;
    int latent = 0, c = 0, h = 0, w = 0;
    if ((st = parse_latent(latent_s, &latent, err)) != AEC_OK ||
        (st = parse_input(input_s, &c, &h, &w, err)) != AEC_OK ||
        (st = precheck_layers(layers, latent, f->data_len, err)) != AEC_OK)
        return st;
    const char *network = aec_st_meta(f, "aec.network");
    if (network) {
        if (strcmp(network, "1") != 0)
            return aec_fail(err, AEC_ERR_FORMAT, "aec.network '%.20s' is not \"1\"", network);
        return aec_model_from_spec_network(out, layers, c, h, w, err);
    }
    return aec_model_from_spec(out, layers, c, h, w, latent, err);
}

/* ---- tensors ------------------------------------------------------------- */

static void fmt_shape(char *buf, size_t size, int ndim, const int64_t *dims)
{
    size_t pos = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && pos < size; d++)
        pos += (size_t)snprintf(buf + pos, size - pos, "%s%lld", d ? "," : "", (long long)dims[d]);
    if (pos < size)
        snprintf(buf + pos, size - pos, "]");
}

/* Copies a F32 or F16 tensor into dst (count floats). The source may be
 * unaligned, hence memcpy. */
static void copy_floats(float *dst, const aec_st_tensor *t, const uint8_t *data, size_t count)
{
    const uint8_t *src = data + t->begin;
    if (t->dtype == AEC_DT_F32) {
        if (count)
            memcpy(dst, src, count * sizeof(float));
        return;
    }
    for (size_t i = 0; i < count; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        dst[i] = aec_f16_to_f32(h);
    }
}

static aec_status check_float_dtype(const aec_st_tensor *t, aec_error *err)
{
    if (t->dtype != AEC_DT_F32 && t->dtype != AEC_DT_F16)
        return aec_fail(err, AEC_ERR_FORMAT, "tensor '%s': dtype %s, expected F32 or F16", t->name,
                        t->dtype_name);
    return AEC_OK;
}

static size_t tensor_count(const aec_st_tensor *t)
{
    return (t->end - t->begin) / (t->dtype == AEC_DT_F16 ? 2 : 4);
}

static aec_status load_extra(aec_model *m, const aec_st_tensor *t, const uint8_t *data,
                             aec_error *err)
{
    aec_status st = check_float_dtype(t, err);
    if (st != AEC_OK)
        return st;
    if (t->ndim > 4)
        return aec_fail(err, AEC_ERR_FORMAT, "tensor '%s': %d dimensions (extras have at most 4)",
                        t->name, t->ndim);
    int dims[4] = {0};
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] > INT_MAX)
            return aec_fail(err, AEC_ERR_FORMAT, "tensor '%s': dimension too large", t->name);
        dims[d] = (int)t->shape[d];
    }
    size_t count = tensor_count(t);
    float *tmp = malloc(count ? count * sizeof(float) : 1);
    if (!tmp)
        return aec_fail(err, AEC_ERR_NOMEM, "tensor '%s': out of memory", t->name);
    copy_floats(tmp, t, data, count);
    st = aec_model_set_extra(m, t->name, tmp, t->ndim, dims, err);
    free(tmp);
    return st;
}

static aec_status check_param_shape(const aec_st_tensor *t, const aec_param *p, int li,
                                    const aec_layer *l, aec_error *err)
{
    int same = t->ndim == p->ndim;
    for (int d = 0; same && d < p->ndim; d++)
        same = t->shape[d] == p->dims[d];
    if (same)
        return AEC_OK;
    int64_t want[4];
    for (int d = 0; d < p->ndim && d < 4; d++)
        want[d] = p->dims[d];
    char got_s[128], want_s[128];
    fmt_shape(got_s, sizeof got_s, t->ndim, t->shape);
    fmt_shape(want_s, sizeof want_s, p->ndim, want);
    return aec_fail(err, AEC_ERR_FORMAT, "tensor '%s': shape %s but layer %d (%s) expects %s",
                    t->name, got_s, li, aec_layer_type_name(l->type), want_s);
}

/* "{i}.{suffix}" -> layer index and suffix; 0 when the name is not of that form. */
static int split_param_name(const char *name, int *layer, const char **suffix)
{
    const char *dot = strchr(name, '.');
    if (!dot || !dot[1] || !parse_index(name, (size_t)(dot - name), layer))
        return 0;
    *suffix = dot + 1;
    return 1;
}

/* One "{i}.{suffix}" tensor: a parameter, or num_batches_tracked. */
static aec_status load_param(aec_model *m, const aec_st_tensor *t, const uint8_t *data,
                             unsigned char *seen, aec_error *err)
{
    int li = 0;
    const char *suffix;
    if (!split_param_name(t->name, &li, &suffix) || li >= m->nlayers)
        return aec_fail(err, AEC_ERR_FORMAT,
                        "unexpected tensor '%s' (not a parameter of any of "
                        "the %d layers)",
                        t->name, m->nlayers);
    const aec_layer *l = &m->layers[li];
    if (l->type == AEC_LAYER_BATCHNORM && strcmp(suffix, BATCHES_SUFFIX) == 0) {
        if (t->dtype != AEC_DT_I64 || t->ndim != 0)
            return aec_fail(err, AEC_ERR_FORMAT, "tensor '%s': expected an I64 scalar", t->name);
        return AEC_OK; /* accepted and ignored */
    }
    for (int pi = 0; pi < l->nparams; pi++) {
        const aec_param *p = &l->params[pi];
        if (strcmp(p->suffix, suffix) != 0)
            continue;
        aec_status st = check_float_dtype(t, err);
        if (st == AEC_OK)
            st = check_param_shape(t, p, li, l, err);
        if (st != AEC_OK)
            return st;
        copy_floats(p->data, t, data, p->count);
        seen[li * AEC_MAX_PARAMS + pi] = 1;
        return AEC_OK;
    }
    return aec_fail(err, AEC_ERR_FORMAT,
                    "unexpected tensor '%s' (layer %d (%s) has no "
                    "parameter '%s')",
                    t->name, li, aec_layer_type_name(l->type), suffix);
}

static aec_status check_all_loaded(const aec_model *m, const unsigned char *seen, aec_error *err)
{
    for (int li = 0; li < m->nlayers; li++)
        for (int pi = 0; pi < m->layers[li].nparams; pi++)
            if (!seen[li * AEC_MAX_PARAMS + pi])
                return aec_fail(err, AEC_ERR_FORMAT, "missing tensor '%d.%s' (layer %d, %s)", li,
                                m->layers[li].params[pi].suffix, li,
                                aec_layer_type_name(m->layers[li].type));
    return AEC_OK;
}

static aec_status load_tensors(aec_model *m, const aec_st_file *f, aec_error *err)
{
    size_t nseen = (size_t)m->nlayers * AEC_MAX_PARAMS;
    unsigned char *seen = calloc(nseen ? nseen : 1, 1);
    if (!seen)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    aec_status st = AEC_OK;
    for (int i = 0; i < f->ntensors && st == AEC_OK; i++) {
        const aec_st_tensor *t = &f->tensors[i];
        if (strncmp(t->name, "aec.", 4) == 0)
            st = load_extra(m, t, f->data, err);
        else
            st = load_param(m, t, f->data, seen, err);
    }
    if (st == AEC_OK)
        st = check_all_loaded(m, seen, err);
    free(seen);
    return st;
}

static aec_status load_parsed(aec_model **out, const aec_st_file *f, aec_error *err)
{
    aec_model *m = NULL;
    aec_status st = model_from_meta(&m, f, err);
    if (st != AEC_OK)
        return st;
    if ((st = load_tensors(m, f, err)) != AEC_OK ||
        (st = copy_json_object(f, "aec.anomaly", &m->anomaly_json, err)) != AEC_OK ||
        (st = copy_json_object(f, "aec.train", &m->train_json, err)) != AEC_OK ||
        (st = copy_json_object(f, "aec.codec", &m->codec_json, err)) != AEC_OK) {
        aec_model_free(m);
        return st;
    }
    aec_model_update_id(m);
    *out = m;
    return AEC_OK;
}

aec_status aec_model_load_memory(aec_model **out, const void *data, size_t len, const char *name,
                                 aec_error *err)
{
    *out = NULL;
    if (!name)
        name = "(memory)";
    aec_st_file f;
    aec_status st = aec_st_parse(&f, data, len, err);
    if (st == AEC_OK) {
        st = load_parsed(out, &f, err);
        aec_st_free(&f);
    }
    if (st != AEC_OK)
        aec_error_prefix(err, name);
    return st;
}

aec_status aec_model_load(aec_model **out, const char *path, aec_error *err)
{
    *out = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    aec_status st = aec_read_model_file(path, &buf, &len, err);
    if (st != AEC_OK)
        return st;
    st = aec_model_load_memory(out, buf, len, path, err);
    free(buf);
    return st;
}

/* ---- saving -------------------------------------------------------------- */

typedef struct {
    aec_st_out *t;
    char (*names)[32]; /* "{i}.{suffix}" */
    int n;
} save_list;

static const int64_t zero_i64 = 0;

static void add_param(save_list *s, int li, const aec_param *p)
{
    aec_st_out *o = &s->t[s->n];
    snprintf(s->names[s->n], sizeof s->names[0], "%d.%s", li, p->suffix);
    o->name = s->names[s->n];
    o->dtype_name = "F32";
    o->ndim = p->ndim;
    for (int d = 0; d < p->ndim; d++)
        o->shape[d] = p->dims[d];
    o->data = p->data;
    o->nbytes = p->count * sizeof(float);
    s->n++;
}

static void add_batches(save_list *s, int li)
{
    aec_st_out *o = &s->t[s->n];
    snprintf(s->names[s->n], sizeof s->names[0], "%d." BATCHES_SUFFIX, li);
    o->name = s->names[s->n];
    o->dtype_name = "I64";
    o->ndim = 0;
    o->data = &zero_i64;
    o->nbytes = sizeof zero_i64;
    s->n++;
}

static aec_status add_extra(save_list *s, const aec_extra_tensor *x, aec_error *err)
{
    if (!x->name || strncmp(x->name, "aec.", 4) != 0)
        return aec_fail(err, AEC_ERR_INVALID, "extra tensor '%s' is not named aec.*",
                        x->name ? x->name : "(null)");
    if (x->ndim < 0 || x->ndim > 4)
        return aec_fail(err, AEC_ERR_INVALID, "extra tensor '%s': %d dimensions", x->name, x->ndim);
    aec_st_out *o = &s->t[s->n++];
    o->name = x->name;
    o->dtype_name = "F32";
    o->ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++)
        o->shape[d] = x->dims[d];
    o->data = x->data;
    o->nbytes = x->count * sizeof(float);
    return AEC_OK;
}

static aec_status collect_tensors(const aec_model *m, save_list *s, aec_error *err)
{
    size_t cap = (size_t)m->nextras;
    for (int li = 0; li < m->nlayers; li++)
        cap += (size_t)m->layers[li].nparams + 1;
    s->t = calloc(cap ? cap : 1, sizeof *s->t);
    s->names = calloc(cap ? cap : 1, sizeof *s->names);
    if (!s->t || !s->names)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    for (int li = 0; li < m->nlayers; li++) {
        const aec_layer *l = &m->layers[li];
        for (int pi = 0; pi < l->nparams; pi++)
            add_param(s, li, &l->params[pi]);
        if (l->type == AEC_LAYER_BATCHNORM)
            add_batches(s, li);
    }
    for (int i = 0; i < m->nextras; i++) {
        aec_status st = add_extra(s, &m->extras[i], err);
        if (st != AEC_OK)
            return st;
    }
    return AEC_OK;
}

static aec_status serialize_model(const aec_model *m, uint8_t **buf, size_t *len, aec_error *err)
{
    if (!m->layers_json)
        return aec_fail(err, AEC_ERR_INVALID, "model has no layers_json");
    char latent[16], input[96];
    snprintf(latent, sizeof latent, "%d", m->latent_index);
    snprintf(input, sizeof input, "{\"channels\": %d, \"height\": %d, \"width\": %d}", m->input.c,
             m->input.h, m->input.w);
    const char *keys[8] = {"aec.format", "aec.layers", "aec.latent", "aec.input"};
    const char *values[8] = {"1", m->layers_json, latent, input};
    int nmeta = 4;
    if (m->network) {
        keys[nmeta] = "aec.network";
        values[nmeta++] = "1";
    }
    const char *opt_keys[3] = {"aec.anomaly", "aec.train", "aec.codec"};
    const char *opt_values[3] = {m->anomaly_json, m->train_json, m->codec_json};
    for (int i = 0; i < 3; i++)
        if (opt_values[i]) {
            keys[nmeta] = opt_keys[i];
            values[nmeta++] = opt_values[i];
        }
    save_list s = {0};
    aec_status st = collect_tensors(m, &s, err);
    if (st == AEC_OK)
        st = aec_st_serialize(s.t, s.n, keys, values, nmeta, buf, len, err);
    free(s.t);
    free(s.names);
    return st;
}

aec_status aec_model_save(const aec_model *m, const char *path, aec_error *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    aec_status st = serialize_model(m, &buf, &len, err);
    if (st != AEC_OK) {
        aec_error_prefix(err, path);
        return st;
    }
    st = aec_write_file_atomic(path, buf, len, err); /* its messages name the path */
    free(buf);
    return st;
}
