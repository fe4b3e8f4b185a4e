/* photo.c - the photo codec model (include/aec/photo.h): its shape, its
 * parameters in one allocation, GDN's reparametrization, the coding tables
 * and the model file.
 *
 * The networks are lists of stages (aec_net) whose parameters are offsets
 * into params; a stage knows its channels, never an image size: the size
 * comes with each call (photo_run.c for inference, src/train/photo_train.c
 * for training).
 */
#include "aec/photo.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/hash.h"
#include "aec/layers.h"
#include "aec/random.h"
#include "aec/safetensors.h"

#define PHOTO_FORMAT "photo-1"
#define PHOTO_MAX_CHANNELS AEC_PHOTO_MAX_CHANNELS
#define PEDESTAL 1.4551915228366852e-11 /* 2^-36 */
#define BETA_MIN 1e-6
#define LRELU_SLOPE 0.01f

/* ---- shape ------------------------------------------------------------------------ */

static size_t add_tensor(aec_photo *p, const char *name, int ndim, const int *dims, int gdn)
{
    aec_photo_tensor *t = &p->tensors[p->ntensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->count = 1;
    for (int i = 0; i < ndim; i++) {
        t->dims[i] = dims[i];
        t->count *= (size_t)dims[i];
    }
    t->offset = p->nparams;
    t->gdn = gdn;
    p->nparams += t->count;
    return t->offset;
}

static void add_stage(aec_photo *p, aec_net *net, const char *prefix, aec_stage_kind kind, int cin,
                      int cout, int k, int stride)
{
    int index = net->nstages;
    aec_stage *s = &net->st[net->nstages++];
    *s = (aec_stage){.kind = kind, .cin = cin, .cout = cout, .k = k, .stride = stride};
    char name[32];
    if (kind == AEC_ST_CONV || kind == AEC_ST_DECONV) {
        /* PyTorch: conv [out, in, k, k], transposed conv [in, out, k, k] */
        int dims[4] = {kind == AEC_ST_CONV ? cout : cin, kind == AEC_ST_CONV ? cin : cout, k, k};
        snprintf(name, sizeof name, "%s.%d.weight", prefix, index);
        s->w = add_tensor(p, name, 4, dims, 0);
        snprintf(name, sizeof name, "%s.%d.bias", prefix, index);
        s->b = add_tensor(p, name, 1, &cout, 0);
        if (kind == AEC_ST_DECONV) {
            s->ph = p->nphase;
            p->nphase += aec_deconv2d_phase_weights_size(cin, cout, k);
        }
    } else if (kind == AEC_ST_GDN || kind == AEC_ST_IGDN) {
        int dims[2] = {cin, cin};
        snprintf(name, sizeof name, "%s.%d.beta", prefix, index);
        s->b = add_tensor(p, name, 1, &cin, 1);
        snprintf(name, sizeof name, "%s.%d.gamma", prefix, index);
        s->w = add_tensor(p, name, 2, dims, 2);
    }
}

static void build_shape(aec_photo *p)
{
    int n = p->cfg.n, m = p->cfg.m, mid = m * 3 / 2;
    int c_a[5] = {3, n, n, n, m};
    for (int i = 0; i < 4; i++) {
        add_stage(p, &p->g_a, "g_a", AEC_ST_CONV, c_a[i], c_a[i + 1], 5, 2);
        if (i < 3)
            add_stage(p, &p->g_a, "g_a", AEC_ST_GDN, c_a[i + 1], c_a[i + 1], 0, 1);
    }
    int c_s[5] = {m, n, n, n, 3};
    for (int i = 0; i < 4; i++) {
        add_stage(p, &p->g_s, "g_s", AEC_ST_DECONV, c_s[i], c_s[i + 1], 5, 2);
        if (i < 3)
            add_stage(p, &p->g_s, "g_s", AEC_ST_IGDN, c_s[i + 1], c_s[i + 1], 0, 1);
    }
    add_stage(p, &p->h_a, "h_a", AEC_ST_CONV, m, n, 3, 1);
    add_stage(p, &p->h_a, "h_a", AEC_ST_LRELU, n, n, 0, 1);
    add_stage(p, &p->h_a, "h_a", AEC_ST_CONV, n, n, 5, 2);
    add_stage(p, &p->h_a, "h_a", AEC_ST_LRELU, n, n, 0, 1);
    add_stage(p, &p->h_a, "h_a", AEC_ST_CONV, n, n, 5, 2);
    add_stage(p, &p->h_s, "h_s", AEC_ST_DECONV, n, m, 5, 2);
    add_stage(p, &p->h_s, "h_s", AEC_ST_LRELU, m, m, 0, 1);
    add_stage(p, &p->h_s, "h_s", AEC_ST_DECONV, m, mid, 5, 2);
    add_stage(p, &p->h_s, "h_s", AEC_ST_LRELU, mid, mid, 0, 1);
    add_stage(p, &p->h_s, "h_s", AEC_ST_CONV, mid, 2 * m, 3, 1);
    int gd[2] = {p->cfg.levels, m};
    p->gain = add_tensor(p, "gain", 2, gd, 0);
    p->inv_gain = add_tensor(p, "inv_gain", 2, gd, 0);
    p->z_loc = add_tensor(p, "z.loc", 1, &n, 0);
    p->z_log_scale = add_tensor(p, "z.log_scale", 1, &n, 0);
}

void aec_stage_out_size(const aec_stage *s, int h, int w, int *oh, int *ow)
{
    if (s->kind == AEC_ST_CONV) { /* padding k/2 */
        *oh = (h + 2 * (s->k / 2) - s->k) / s->stride + 1;
        *ow = (w + 2 * (s->k / 2) - s->k) / s->stride + 1;
    } else if (s->kind == AEC_ST_DECONV) { /* padding k/2, output padding stride - 1 */
        *oh = h * s->stride;
        *ow = w * s->stride;
    } else {
        *oh = h, *ow = w;
    }
}

static int check_config(const aec_photo_config *c, aec_error *err)
{
    if (c->n < 1 || c->n > PHOTO_MAX_CHANNELS || c->m < 2 || c->m > PHOTO_MAX_CHANNELS ||
        c->m % 2 != 0)
        return aec_fail(err, AEC_ERR_FORMAT, "photo codec: bad channels n=%d m=%d", c->n, c->m);
    if (c->levels < 1 || c->levels > AEC_PHOTO_MAX_LEVELS)
        return aec_fail(err, AEC_ERR_FORMAT, "photo codec: %d levels (1..%d)", c->levels,
                        AEC_PHOTO_MAX_LEVELS);
    for (int i = 0; i < c->levels; i++)
        if (!(c->lambda[i] > 0 && c->lambda[i] < 100) ||
            (i > 0 && !(c->lambda[i] > c->lambda[i - 1])))
            return aec_fail(err, AEC_ERR_FORMAT,
                            "photo codec: lambdas must be positive, increasing");
    return AEC_OK;
}

/* ---- parameters ------------------------------------------------------------------- */

static aec_status alloc_model(aec_photo **out, const aec_photo_config *cfg, aec_error *err)
{
    *out = NULL;
    aec_status st = check_config(cfg, err);
    if (st != AEC_OK)
        return st;
    aec_photo *p = calloc(1, sizeof *p);
    if (!p)
        return aec_fail(err, AEC_ERR_NOMEM, "photo codec: out of memory");
    p->cfg = *cfg;
    build_shape(p);
    p->params = calloc(p->nparams, sizeof(float));
    p->eff = calloc(p->nparams, sizeof(float));
    if (!p->params || !p->eff) {
        aec_photo_free(p);
        return aec_fail(err, AEC_ERR_NOMEM, "photo codec: out of memory");
    }
    *out = p;
    return AEC_OK;
}

static void init_net(aec_photo *p, const aec_net *net, uint64_t *rng)
{
    for (int i = 0; i < net->nstages; i++) {
        const aec_stage *s = &net->st[i];
        if (s->kind == AEC_ST_CONV || s->kind == AEC_ST_DECONV) {
            /* PyTorch's fan_in is weight.size(1) * k * k for both kinds */
            int fan_in = (s->kind == AEC_ST_CONV ? s->cin : s->cout) * s->k * s->k;
            double bound = 1.0 / sqrt((double)fan_in);
            size_t nw = (size_t)s->cin * s->cout * s->k * s->k;
            for (size_t j = 0; j < nw; j++)
                p->params[s->w + j] = (float)((2.0 * aec_random_uniform(rng) - 1.0) * bound);
            for (int j = 0; j < s->cout; j++)
                p->params[s->b + j] = (float)((2.0 * aec_random_uniform(rng) - 1.0) * bound);
        } else if (s->kind == AEC_ST_GDN || s->kind == AEC_ST_IGDN) {
            int c = s->cin;
            for (int j = 0; j < c; j++)
                p->params[s->b + j] = (float)sqrt(1.0 + PEDESTAL);
            for (int a = 0; a < c; a++)
                for (int b = 0; b < c; b++)
                    p->params[s->w + (size_t)a * c + b] =
                        (float)sqrt((a == b ? 0.1 : 0.0) + PEDESTAL);
        }
    }
}

aec_status aec_photo_create(aec_photo **out, const aec_photo_config *cfg, uint64_t seed,
                            aec_error *err)
{
    aec_status st = alloc_model(out, cfg, err);
    if (st != AEC_OK)
        return st;
    aec_photo *p = *out;
    uint64_t rng = seed;
    init_net(p, &p->g_a, &rng);
    init_net(p, &p->g_s, &rng);
    init_net(p, &p->h_a, &rng);
    init_net(p, &p->h_s, &rng);
    size_t levels_m = (size_t)cfg->levels * cfg->m;
    for (size_t j = 0; j < levels_m; j++)
        p->params[p->gain + j] = p->params[p->inv_gain + j] = 1.0f;
    aec_photo_update_eff(p);
    return AEC_OK;
}

void aec_photo_free(aec_photo *p)
{
    if (!p)
        return;
    free(p->params);
    free(p->eff);
    free(p->phase);
    free(p->z_tables);
    free(p->y_tables);
    aec_entropy_free(p->entropy);
    free(p->train_json);
    free(p);
}

static float gdn_bound(int gdn)
{
    return gdn == 1 ? (float)sqrt(BETA_MIN + PEDESTAL) : (float)sqrt(PEDESTAL);
}

void aec_photo_update_eff(aec_photo *p)
{
    memcpy(p->eff, p->params, sizeof(float) * p->nparams);
    for (int i = 0; i < p->ntensors; i++) {
        const aec_photo_tensor *t = &p->tensors[i];
        if (!t->gdn)
            continue;
        float bound = gdn_bound(t->gdn);
        for (size_t j = 0; j < t->count; j++) {
            float v = p->params[t->offset + j];
            v = v > bound ? v : bound;
            p->eff[t->offset + j] = v * v - (float)PEDESTAL;
        }
    }
}

void aec_photo_reparam_backward(const aec_photo *p, float *grad)
{
    for (int i = 0; i < p->ntensors; i++) {
        const aec_photo_tensor *t = &p->tensors[i];
        if (!t->gdn)
            continue;
        float bound = gdn_bound(t->gdn);
        for (size_t j = 0; j < t->count; j++) {
            float v = p->params[t->offset + j], g = grad[t->offset + j];
            /* the lower bound passes gradients that would raise v (CompressAI's LowerBound) */
            int pass = v >= bound || g < 0;
            grad[t->offset + j] = pass ? g * 2.0f * (v > bound ? v : bound) : 0.0f;
        }
    }
}

/* The serving form of the transposed convolutions (aec_deconv2d_infer). */
static aec_status prepare_serving(aec_photo *p, aec_error *err)
{
    if (!p->phase && !(p->phase = malloc(sizeof(float) * (p->nphase ? p->nphase : 1))))
        return aec_fail(err, AEC_ERR_NOMEM, "photo codec: out of memory");
    const aec_net *nets[2] = {&p->g_s, &p->h_s};
    for (int n = 0; n < 2; n++)
        for (int i = 0; i < nets[n]->nstages; i++) {
            const aec_stage *s = &nets[n]->st[i];
            if (s->kind == AEC_ST_DECONV)
                aec_deconv2d_phase_weights(p->phase + s->ph, p->eff + s->w, s->cin, s->cout, s->k,
                                           s->stride, s->k / 2);
        }
    return AEC_OK;
}

static void update_id(aec_photo *p)
{
    uint64_t h = aec_hash64(AEC_HASH64_INIT, p->params, sizeof(float) * p->nparams);
    if (p->z_tables)
        h = aec_hash64(h, p->z_tables, sizeof(float) * p->z_tables_len);
    if (p->y_tables)
        h = aec_hash64(h, p->y_tables, sizeof(float) * p->y_tables_len);
    p->id_hash = h;
    snprintf(p->id, sizeof p->id, "aec-%016llx", (unsigned long long)h);
}

aec_status aec_photo_finalize(aec_photo *p, aec_error *err)
{
    free(p->z_tables);
    free(p->y_tables);
    aec_entropy_free(p->entropy);
    p->z_tables = p->y_tables = NULL;
    p->entropy = NULL;
    aec_status st = aec_entropy_tables_build(p->params + p->z_loc, p->params + p->z_log_scale,
                                             p->cfg.n, &p->z_tables, &p->z_tables_len, &p->y_tables,
                                             &p->y_tables_len, err);
    if (st == AEC_OK)
        st = aec_entropy_create(&p->entropy, p->z_tables, p->z_tables_len, p->cfg.n, p->y_tables,
                                p->y_tables_len, err);
    if (st == AEC_OK) {
        aec_photo_update_eff(p);
        st = prepare_serving(p, err);
    }
    update_id(p);
    return st;
}

/* ---- the model file ------------------------------------------------------------------ */

int aec_photo_is_file(const uint8_t *buf, size_t len)
{
    aec_st_file f;
    if (aec_st_parse(&f, buf, len, NULL) != AEC_OK)
        return 0;
    const char *fmt = aec_st_meta(&f, "aec.format");
    int yes = fmt && strcmp(fmt, PHOTO_FORMAT) == 0;
    aec_st_free(&f);
    return yes;
}

static char *config_json(const aec_photo_config *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", c->n);
    cJSON_AddNumberToObject(o, "m", c->m);
    cJSON *l = cJSON_AddArrayToObject(o, "lambdas");
    for (int i = 0; i < c->levels; i++)
        cJSON_AddItemToArray(l, cJSON_CreateNumber(c->lambda[i]));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static aec_status parse_config(const char *text, aec_photo_config *c, aec_error *err)
{
    memset(c, 0, sizeof *c);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    aec_status st = AEC_OK;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "n");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "m");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "lambdas");
    if (!cJSON_IsNumber(n) || !cJSON_IsNumber(m) || !cJSON_IsArray(l) ||
        cJSON_GetArraySize(l) < 1 || cJSON_GetArraySize(l) > AEC_PHOTO_MAX_LEVELS) {
        st = aec_fail(err, AEC_ERR_FORMAT, "metadata aec.photo: want {n, m, lambdas[1..%d]}",
                      AEC_PHOTO_MAX_LEVELS);
        goto done;
    }
    c->n = n->valuedouble >= 1 && n->valuedouble <= PHOTO_MAX_CHANNELS ? n->valueint : -1;
    c->m = m->valuedouble >= 1 && m->valuedouble <= PHOTO_MAX_CHANNELS ? m->valueint : -1;
    c->levels = cJSON_GetArraySize(l);
    for (int i = 0; i < c->levels; i++) {
        const cJSON *v = cJSON_GetArrayItem(l, i);
        c->lambda[i] = cJSON_IsNumber(v) ? (float)v->valuedouble : -1.0f;
    }
    st = check_config(c, err);
done:
    cJSON_Delete(o);
    return st;
}

/* Copies an F32 tensor of exactly `count` floats (and the given shape, if dims). */
static aec_status read_f32(const aec_st_file *f, const char *name, int ndim, const int *dims,
                           size_t count, float *dst, aec_error *err)
{
    const aec_st_tensor *t = aec_st_find(f, name);
    if (!t)
        return aec_fail(err, AEC_ERR_FORMAT, "missing tensor %s", name);
    if (t->dtype != AEC_DT_F32 || t->end - t->begin != count * sizeof(float))
        return aec_fail(err, AEC_ERR_FORMAT, "tensor %s: want F32 with %zu values", name, count);
    if (dims) {
        int ok = t->ndim == ndim;
        for (int i = 0; ok && i < ndim; i++)
            ok = t->shape[i] == dims[i];
        if (!ok)
            return aec_fail(err, AEC_ERR_FORMAT, "tensor %s: wrong shape", name);
    }
    memcpy(dst, f->data + t->begin, count * sizeof(float));
    for (size_t i = 0; i < count; i++)
        if (!isfinite(dst[i]))
            return aec_fail(err, AEC_ERR_FORMAT, "tensor %s: value %zu is not finite", name, i);
    return AEC_OK;
}

/* A table tensor: F32, 1-D, at most max values; malloc'd copy. */
static aec_status read_table(const aec_st_file *f, const char *name, float **out, size_t *len,
                             aec_error *err)
{
    const aec_st_tensor *t = aec_st_find(f, name);
    if (!t || t->dtype != AEC_DT_F32 || t->ndim != 1 || t->shape[0] < 1 ||
        t->shape[0] > (int64_t)(1 << 22))
        return aec_fail(err, AEC_ERR_FORMAT, "tensor %s: missing or not F32 [n]", name);
    *len = (size_t)t->shape[0];
    *out = malloc(*len * sizeof(float));
    if (!*out)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    return read_f32(f, name, 0, NULL, *len, *out, err);
}

aec_status aec_photo_load_memory(aec_photo **out, const uint8_t *buf, size_t len, const char *name,
                                 aec_error *err)
{
    *out = NULL;
    aec_photo *p = NULL;
    aec_st_file f;
    aec_photo_config cfg;
    aec_status st = aec_st_parse(&f, buf, len, err);
    if (st != AEC_OK)
        goto prefix;
    const char *fmt = aec_st_meta(&f, "aec.format");
    if (!fmt || strcmp(fmt, PHOTO_FORMAT) != 0) {
        st = aec_fail(err, AEC_ERR_FORMAT, "aec.format is not %s", PHOTO_FORMAT);
        goto done;
    }
    st = parse_config(aec_st_meta(&f, "aec.photo"), &cfg, err);
    if (st == AEC_OK)
        st = alloc_model(&p, &cfg, err);
    for (int i = 0; st == AEC_OK && i < p->ntensors; i++) {
        const aec_photo_tensor *t = &p->tensors[i];
        st = read_f32(&f, t->name, t->ndim, t->dims, t->count, p->params + t->offset, err);
    }
    if (st == AEC_OK)
        st = read_table(&f, "aec.entropy.z", &p->z_tables, &p->z_tables_len, err);
    if (st == AEC_OK)
        st = read_table(&f, "aec.entropy.y", &p->y_tables, &p->y_tables_len, err);
    if (st == AEC_OK && f.ntensors != p->ntensors + 2)
        st = aec_fail(err, AEC_ERR_FORMAT, "%d tensors, want %d", f.ntensors, p->ntensors + 2);
    if (st == AEC_OK)
        st = aec_entropy_create(&p->entropy, p->z_tables, p->z_tables_len, cfg.n, p->y_tables,
                                p->y_tables_len, err);
    const char *train = aec_st_meta(&f, "aec.train");
    if (st == AEC_OK && train && !(p->train_json = strdup(train)))
        st = aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    if (st == AEC_OK) {
        aec_photo_update_eff(p);
        st = prepare_serving(p, err);
        update_id(p);
    }
done:
    aec_st_free(&f);
prefix:
    if (st != AEC_OK) {
        aec_photo_free(p);
        aec_error_prefix(err, name);
        return st;
    }
    *out = p;
    return AEC_OK;
}

aec_status aec_photo_load(aec_photo **out, const char *path, aec_error *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    *out = NULL;
    aec_status st = aec_read_model_file(path, &buf, &len, err);
    if (st == AEC_OK)
        st = aec_photo_load_memory(out, buf, len, path, err);
    free(buf);
    return st;
}

aec_status aec_photo_save(const aec_photo *p, const char *path, aec_error *err)
{
    if (!p->z_tables || !p->y_tables)
        return aec_fail(err, AEC_ERR_INVALID, "%s: the model has no coding tables", path);
    aec_st_out outs[AEC_PHOTO_MAX_TENSORS + 2];
    int n = 0;
    for (int i = 0; i < p->ntensors; i++) {
        const aec_photo_tensor *t = &p->tensors[i];
        outs[n] = (aec_st_out){.name = t->name,
                               .dtype_name = "F32",
                               .ndim = t->ndim,
                               .data = p->params + t->offset,
                               .nbytes = t->count * sizeof(float)};
        for (int d = 0; d < t->ndim; d++)
            outs[n].shape[d] = t->dims[d];
        n++;
    }
    outs[n++] = (aec_st_out){.name = "aec.entropy.z",
                             .dtype_name = "F32",
                             .ndim = 1,
                             .shape = {(int64_t)p->z_tables_len},
                             .data = p->z_tables,
                             .nbytes = p->z_tables_len * sizeof(float)};
    outs[n++] = (aec_st_out){.name = "aec.entropy.y",
                             .dtype_name = "F32",
                             .ndim = 1,
                             .shape = {(int64_t)p->y_tables_len},
                             .data = p->y_tables,
                             .nbytes = p->y_tables_len * sizeof(float)};
    char *cfg = config_json(&p->cfg);
    const char *keys[3] = {"aec.format", "aec.photo", "aec.train"};
    const char *values[3] = {PHOTO_FORMAT, cfg ? cfg : "{}", p->train_json};
    uint8_t *buf = NULL;
    size_t len = 0;
    aec_status st = aec_st_serialize(outs, n, keys, values, p->train_json ? 3 : 2, &buf, &len, err);
    if (st == AEC_OK)
        st = aec_write_file_atomic(path, buf, len, err);
    if (st != AEC_OK)
        aec_error_prefix(err, path);
    free(buf);
    free(cfg);
    return st;
}
