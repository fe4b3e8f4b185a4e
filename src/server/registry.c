/* registry.c - the model repository (see registry.h).
 *
 * Locking: mu guards the slot table and each slot's fields; it is held for
 * pointer moves and reference counts only, never while a file loads.
 * reload_mu serializes reloads (and the first load), so two scans never
 * load the same file at once. A version's reference count is atomic: the
 * last release frees it, on whatever thread that happens.
 */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "aec/safetensors.h"

#include "buf.h"
#include "log.h"

#ifndef AEC_VERSION
#define AEC_VERSION "dev"
#endif

#define SUFFIX ".safetensors"

typedef struct {
    char name[AECD_MODEL_NAME_MAX];
    aecd_model_state state;
    char error[320];   /* the last load failure, or "" */
    aecd_version *cur; /* serving, or NULL */
    /* the file as it was at the last attempt, so that an unchanged file
     * that failed is not loaded again at every reload */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    int seen; /* found by the scan in progress */
} slot;

struct aecd_registry {
    const aecd_config *cfg;
    char *dir;
    char *only; /* the one file name served (--model FILE), or NULL */
    char default_name[AECD_MODEL_NAME_MAX];
    pthread_mutex_t mu;
    pthread_mutex_t reload_mu;
    slot slots[AECD_MAX_MODELS];
    int nslots;
    atomic_ullong loads_ok, loads_failed, reloads;
};

/* ---- versions --------------------------------------------------------------------- */

static void version_free(aecd_version *v)
{
    if (!v)
        return;
    aecd_runner_free(v->runner);
    aec_codec_free(v->codec);
    aec_model_free(v->model);
    aec_photo_free(v->photo);
    aec_anomaly_calib_free(&v->calib);
    free(v->json);
    free(v);
}

void aecd_version_retain(aecd_version *v)
{
    atomic_fetch_add(&v->refs, 1);
}

void aecd_version_release(aecd_version *v)
{
    if (v && atomic_fetch_sub(&v->refs, 1) == 1)
        version_free(v);
}

/* Appends the JSON text re-serialized compactly, or null when absent; -1
 * if it does not parse. */
static int embed_json(aecd_buf *b, const char *text)
{
    if (!text) {
        aecd_buf_puts(b, "null");
        return 0;
    }
    cJSON *j = cJSON_Parse(text);
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!s) {
        aecd_buf_puts(b, "null");
        return -1;
    }
    aecd_buf_puts(b, s);
    cJSON_free(s);
    return 0;
}

/* The limits of this server, the end of every /v1/model document. */
static void limits_json(aecd_buf *b, const aecd_config *cfg)
{
    size_t json_max = cfg->max_body < AECD_MAX_JSON_BODY ? cfg->max_body : AECD_MAX_JSON_BODY;
    aecd_buf_printf(b,
                    ",\"limits\":{\"max_body\":%zu,\"max_json_body\":%zu,\"max_pixels\":%ld,"
                    "\"max_memory\":%zu,\"max_batch\":%d,\"max_output_side\":%d,"
                    "\"max_query\":%d}}\n",
                    cfg->max_body, json_max, cfg->max_pixels, cfg->max_memory, cfg->max_batch,
                    AECD_MAX_OUTPUT_SIDE, AECD_MAX_QUERY);
}

/* A photo codec's /v1/model document: any size up to --max-pixels,
 * qualities 1..100 over its trained levels, stream format 3. */
static int build_photo_json(aecd_version *v, const aecd_config *cfg)
{
    const aec_photo *p = v->photo;
    aecd_buf b;
    aecd_buf_init(&b);
    aecd_buf_puts(&b, "{\"name\":");
    aecd_buf_json_str(&b, v->name);
    aecd_buf_puts(&b, ",\"id\":");
    aecd_buf_json_str(&b, p->id);
    aecd_buf_printf(&b, ",\"version\":\"%s\",\"kind\":\"photo_codec\"", AEC_VERSION);
    aecd_buf_printf(&b,
                    ",\"input\":{\"channels\":3,\"any_size\":true,\"min_side\":1,"
                    "\"max_side\":%d,\"max_pixels\":%ld,\"stride\":%d}",
                    AEC_PHOTO_MAX_SIDE, cfg->max_pixels, AEC_PHOTO_STRIDE);
    aecd_buf_printf(&b, ",\"latent\":{\"channels\":%d,\"downsampling\":16,\"hyper_channels\":%d}",
                    p->cfg.m, p->cfg.n);
    aecd_buf_printf(&b, ",\"quality\":{\"min\":1,\"max\":100,\"default\":%d,\"lambdas\":[",
                    AEC_PHOTO_QUALITY_DEFAULT);
    for (int i = 0; i < p->cfg.levels; i++)
        aecd_buf_printf(&b, i ? ",%.6g" : "%.6g", p->cfg.lambda[i]);
    aecd_buf_printf(&b, "]},\"stream\":{\"format\":3,\"tag\":\"%08x\"}", aec_photo_tag(p));
    aecd_buf_printf(
        &b, ",\"param_count\":%zu,\"anomaly\":null,\"calibrated\":false,\"train\":", p->nparams);
    int bad = embed_json(&b, p->train_json);
    aecd_buf_puts(&b, ",\"codec\":null");
    limits_json(&b, cfg);
    if (bad)
        aecd_logf(AECD_LOG_WARN, "model %s: aec.train does not parse; /v1/model shows null",
                  v->name);
    v->json = aecd_buf_steal(&b, &v->json_len);
    return v->json ? 0 : -1;
}

/* The version's /v1/model document. 0, or -1 when out of memory. */
static int build_json(aecd_version *v, const aecd_config *cfg)
{
    if (v->photo)
        return build_photo_json(v, cfg);
    const aec_model *m = v->model;
    aecd_buf b;
    aecd_buf_init(&b);
    aecd_buf_puts(&b, "{\"name\":");
    aecd_buf_json_str(&b, v->name);
    aecd_buf_puts(&b, ",\"id\":");
    aecd_buf_json_str(&b, m->id);
    aecd_buf_printf(&b, ",\"version\":\"%s\",\"kind\":\"%s\"", AEC_VERSION,
                    v->codec ? "codec" : "autoencoder");
    aecd_buf_printf(&b, ",\"input\":{\"channels\":%d,\"height\":%d,\"width\":%d}", m->input.c,
                    m->input.h, m->input.w);
    aecd_buf_printf(&b, ",\"latent\":{\"index\":%d,\"dim\":%zu}", m->latent_index,
                    aec_model_latent_count(m));
    aecd_buf_puts(&b, ",\"layers\":");
    int bad = embed_json(&b, m->layers_json);
    aecd_buf_printf(&b, ",\"param_count\":%zu,\"anomaly\":", aec_model_param_count(m));
    char *anomaly = aec_anomaly_public_json(m->anomaly_json);
    bad |= embed_json(&b, anomaly);
    free(anomaly);
    aecd_buf_printf(&b, ",\"calibrated\":%s,\"scores\":[\"reconstruction\"%s]",
                    v->calib.calibrated ? "true" : "false",
                    !v->calib.face.cascade   ? ""
                    : v->calib.face.rotation ? ",\"catface\",\"rotation\",\"combined\""
                                             : ",\"catface\",\"combined\"");
    if (v->calib.note[0]) {
        aecd_buf_puts(&b, ",\"calibration_note\":");
        aecd_buf_json_str(&b, v->calib.note);
    }
    aecd_buf_puts(&b, ",\"train\":");
    bad |= embed_json(&b, m->train_json);
    aecd_buf_puts(&b, ",\"codec\":");
    if (v->codec) {
        aecd_buf_printf(&b, "{\"format\":%d,\"max_bytes\":%zu,\"info\":", AEC_CODEC_FORMAT & 0x0F,
                        aec_codec_max_bytes(v->codec));
        bad |= embed_json(&b, m->codec_json);
        aecd_buf_puts(&b, "}");
    } else {
        aecd_buf_puts(&b, "null");
    }
    limits_json(&b, cfg);
    if (bad)
        aecd_logf(AECD_LOG_WARN, "model %s: metadata JSON does not parse; /v1/model shows null",
                  v->name);
    v->json = aecd_buf_steal(&b, &v->json_len);
    return v->json ? 0 : -1;
}

/* Loads and validates one file into a new version (one reference). */
static aec_status version_load(aecd_registry *r, const char *name, const char *path,
                               const struct stat *st, aecd_version **out, aec_error *err)
{
    *out = NULL;
    aecd_version *v = calloc(1, sizeof *v);
    if (!v)
        return aec_fail(err, AEC_ERR_NOMEM, "%s: out of memory", path);
    snprintf(v->name, sizeof v->name, "%s", name);
    atomic_store(&v->refs, 1);
    v->dev = st->st_dev;
    v->ino = st->st_ino;
    v->size = st->st_size;
    v->mtime = st->st_mtim;
    uint8_t *buf = NULL;
    size_t len = 0;
    aec_status s = aec_read_model_file(path, &buf, &len, err);
    if (s == AEC_OK && aec_photo_is_file(buf, len)) {
        s = aec_photo_load_memory(&v->photo, buf, len, path, err);
        free(buf);
        if (s == AEC_OK) {
            v->id = v->photo->id;
            v->id_hash = v->photo->id_hash;
            if (build_json(v, r->cfg) != 0)
                s = aec_fail(err, AEC_ERR_NOMEM, "%s: out of memory", path);
        }
        goto done;
    }
    if (s == AEC_OK)
        s = aec_model_load_memory(&v->model, buf, len, path, err);
    free(buf);
    const aec_model *m = v->model;
    if (m) {
        v->id = m->id;
        v->id_hash = m->id_hash;
    }
    if (s == AEC_OK && aec_model_output_count(m) != aec_model_input_count(m))
        s = aec_fail(err, AEC_ERR_FORMAT,
                     "%s: the model's output (%zu values) is not an image of its input shape"
                     " (%zu values): not an autoencoder",
                     path, aec_model_output_count(m), aec_model_input_count(m));
    char where[4200];
    snprintf(where, sizeof where, "%s: anomaly calibration", path);
    if (s == AEC_OK && (s = aec_anomaly_calib_from_model(m, &v->calib, err)) != AEC_OK)
        aec_error_prefix(err, where);
    if (s == AEC_OK && v->calib.note[0])
        aecd_logf(AECD_LOG_WARN, "%s: %s", path, v->calib.note);
    snprintf(where, sizeof where, "%s: codec tables", path);
    if (s == AEC_OK && aec_model_has_codec(m) &&
        (s = aec_codec_create(&v->codec, m, err)) != AEC_OK)
        aec_error_prefix(err, where);
    if (s == AEC_OK)
        s = aecd_runner_create(&v->runner, m, r->cfg->max_batch, r->cfg->blas_threads, err);
    if (s == AEC_OK && build_json(v, r->cfg) != 0)
        s = aec_fail(err, AEC_ERR_NOMEM, "%s: out of memory", path);
done:
    if (s != AEC_OK) {
        version_free(v);
        return s;
    }
    *out = v;
    return AEC_OK;
}

/* ---- the slot table (mu held) ------------------------------------------------------ */

static slot *find_slot(aecd_registry *r, const char *name)
{
    for (int i = 0; i < r->nslots; i++)
        if (strcmp(r->slots[i].name, name) == 0)
            return &r->slots[i];
    return NULL;
}

static int same_file(const slot *s, const struct stat *st)
{
    return s->dev == st->st_dev && s->ino == st->st_ino && s->size == st->st_size &&
           s->mtime.tv_sec == st->st_mtim.tv_sec && s->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Keeps the table sorted by name, so listings and searches are stable. */
static int cmp_slot(const void *a, const void *b)
{
    return strcmp(((const slot *)a)->name, ((const slot *)b)->name);
}

/* ---- scanning -------------------------------------------------------------------------- */

/* The model name of a directory entry, or 0 when it is not a model file. */
static int model_name(const char *file, char *name, size_t len)
{
    size_t n = strlen(file), sl = sizeof SUFFIX - 1;
    if (file[0] == '.' || n <= sl || strcmp(file + n - sl, SUFFIX) != 0 || n - sl >= len)
        return 0;
    for (size_t i = 0; i < n - sl; i++) {
        char c = file[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    memcpy(name, file, n - sl);
    name[n - sl] = 0;
    return 1;
}

/* One file: load it if it is new or changed; count what happened. */
static void scan_file(aecd_registry *r, const char *file, aecd_reload_report *rep)
{
    char name[AECD_MODEL_NAME_MAX];
    if (!model_name(file, name, sizeof name))
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", r->dir, file);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return;

    pthread_mutex_lock(&r->mu);
    slot *s = find_slot(r, name);
    if (s && same_file(s, &st)) {
        s->seen = 1;
        rep->unchanged++;
        pthread_mutex_unlock(&r->mu);
        return;
    }
    if (!s) {
        if (r->nslots == AECD_MAX_MODELS) {
            pthread_mutex_unlock(&r->mu);
            aecd_logf(AECD_LOG_WARN, "%s: not served: more than %d model files in %s", path,
                      AECD_MAX_MODELS, r->dir);
            return;
        }
        s = &r->slots[r->nslots++];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s", name);
        s->state = AECD_MODEL_LOADING;
    }
    s->seen = 1;
    pthread_mutex_unlock(&r->mu);

    aecd_version *v = NULL;
    aec_error err = {{0}};
    aec_status rc = version_load(r, name, path, &st, &v, &err);

    pthread_mutex_lock(&r->mu);
    s = find_slot(r, name); /* the table is only changed by reloads, which are serialized */
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->size = st.st_size;
    s->mtime = st.st_mtim;
    aecd_version *old = NULL;
    if (rc == AEC_OK) {
        old = s->cur;
        s->cur = v;
        s->state = AECD_MODEL_READY;
        s->error[0] = 0;
    } else {
        snprintf(s->error, sizeof s->error, "%s", err.msg);
        if (!s->cur)
            s->state = AECD_MODEL_FAILED;
    }
    int serving_old = rc != AEC_OK && s->cur;
    pthread_mutex_unlock(&r->mu);
    aecd_version_release(old);

    if (rc == AEC_OK) {
        rep->loaded++;
        atomic_fetch_add(&r->loads_ok, 1);
        aecd_logf(AECD_LOG_INFO, "model %s loaded: %s%s (%s)", name, v->id,
                  v->photo ? ", a photo codec" : "", path);
    } else {
        rep->failed++;
        atomic_fetch_add(&r->loads_failed, 1);
        aecd_logf(AECD_LOG_ERROR, "model %s failed to load%s: %s", name,
                  serving_old ? " (the previous version keeps serving)" : "", err.msg);
    }
}

/* Drops the slots the scan did not see; sorts the table. */
static void drop_unseen(aecd_registry *r, aecd_reload_report *rep)
{
    aecd_version *gone[AECD_MAX_MODELS];
    int ngone = 0, n = 0;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nslots; i++) {
        if (r->slots[i].seen) {
            r->slots[n++] = r->slots[i];
            continue;
        }
        aecd_logf(AECD_LOG_INFO, "model %s removed: its file is gone", r->slots[i].name);
        if (r->slots[i].cur)
            gone[ngone++] = r->slots[i].cur;
        rep->removed++;
    }
    r->nslots = n;
    qsort(r->slots, (size_t)n, sizeof r->slots[0], cmp_slot);
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < ngone; i++)
        aecd_version_release(gone[i]); /* freed once its last request is done */
}

aec_status aecd_registry_reload(aecd_registry *r, aecd_reload_report *rep, aec_error *err)
{
    memset(rep, 0, sizeof *rep);
    pthread_mutex_lock(&r->reload_mu);
    atomic_fetch_add(&r->reloads, 1);
    aec_status st = AEC_OK;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nslots; i++)
        r->slots[i].seen = 0;
    pthread_mutex_unlock(&r->mu);
    if (r->only) {
        scan_file(r, r->only, rep);
    } else {
        DIR *d = opendir(r->dir);
        if (!d) {
            st = aec_fail(err, AEC_ERR_IO, "%s: cannot read the model folder: %s", r->dir,
                          strerror(errno));
            pthread_mutex_lock(&r->mu);
            for (int i = 0; i < r->nslots; i++)
                r->slots[i].seen = 1; /* keep serving what we have */
            pthread_mutex_unlock(&r->mu);
        } else {
            struct dirent *e;
            while ((e = readdir(d)) != NULL)
                scan_file(r, e->d_name, rep);
            closedir(d);
        }
    }
    drop_unseen(r, rep);
    pthread_mutex_unlock(&r->reload_mu);
    return st;
}

/* ---- create / free ------------------------------------------------------------------------ */

/* dir and only from --models DIR or --model FILE. */
static aec_status split_source(aecd_registry *r, aec_error *err)
{
    const aecd_config *cfg = r->cfg;
    if (!cfg->model_path) {
        r->dir = strdup(cfg->models_dir);
        if (!r->dir)
            return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
        return AEC_OK;
    }
    const char *p = cfg->model_path, *slash = strrchr(p, '/');
    const char *file = slash ? slash + 1 : p;
    char name[AECD_MODEL_NAME_MAX];
    if (!model_name(file, name, sizeof name))
        return aec_fail(err, AEC_ERR_INVALID,
                        "%s: a model file's name must be NAME.safetensors, NAME of letters, digits,"
                        " '-', '_' or '.' (at most %d), not starting with '.'",
                        p, AECD_MODEL_NAME_MAX - 1);
    struct stat st;
    if (stat(p, &st) != 0)
        return aec_fail(err, AEC_ERR_IO, "%s: %s", p, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return aec_fail(err, AEC_ERR_IO, "%s: not a regular file", p);
    r->dir = slash ? strndup(p, slash == p ? 1 : (size_t)(slash - p)) : strdup(".");
    r->only = strdup(file);
    if (!r->dir || !r->only)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    if (!cfg->default_model)
        snprintf(r->default_name, sizeof r->default_name, "%s", name);
    return AEC_OK;
}

aec_status aecd_registry_create(aecd_registry **out, const aecd_config *cfg, aec_error *err)
{
    *out = NULL;
    aecd_registry *r = calloc(1, sizeof *r);
    if (!r)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    r->cfg = cfg;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->reload_mu, NULL);
    snprintf(r->default_name, sizeof r->default_name, "%s",
             cfg->default_model ? cfg->default_model : "default");
    aec_status st = split_source(r, err);
    aecd_reload_report rep;
    if (st == AEC_OK)
        st = aecd_registry_reload(r, &rep, err);
    if (st == AEC_OK && r->nslots == 0)
        st = aec_fail(err, AEC_ERR_IO, "%s: no model files (NAME.safetensors) to serve", r->dir);
    if (st == AEC_OK && !cfg->default_model && !r->only && !find_slot(r, r->default_name))
        snprintf(r->default_name, sizeof r->default_name, "%s", r->slots[0].name);
    const slot *d = st == AEC_OK ? find_slot(r, r->default_name) : NULL;
    if (st == AEC_OK && !d)
        st = aec_fail(err, AEC_ERR_INVALID, "the default model '%s' is not in %s", r->default_name,
                      r->dir);
    else if (st == AEC_OK && !d->cur)
        st = aec_fail(err, AEC_ERR_FORMAT, "the default model does not load: %s", d->error);
    if (st != AEC_OK) {
        aecd_registry_free(r);
        return st;
    }
    *out = r;
    return AEC_OK;
}

void aecd_registry_free(aecd_registry *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->nslots; i++)
        aecd_version_release(r->slots[i].cur);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->reload_mu);
    free(r->dir);
    free(r->only);
    free(r);
}

/* ---- lookups ------------------------------------------------------------------------------ */

const char *aecd_registry_default(const aecd_registry *r)
{
    return r->default_name;
}

aecd_version *aecd_registry_get(aecd_registry *r, const char *name, int *state, char *msg,
                                size_t msg_len)
{
    if (!name)
        name = r->default_name;
    pthread_mutex_lock(&r->mu);
    slot *s = find_slot(r, name);
    aecd_version *v = s ? s->cur : NULL;
    if (v)
        aecd_version_retain(v);
    *state = s ? (int)s->state : -1;
    if (!s)
        snprintf(msg, msg_len, "no model named '%s' (GET /v1/models lists them)", name);
    else if (!v && s->state == AECD_MODEL_LOADING)
        snprintf(msg, msg_len, "model '%s' is still loading; retry shortly", name);
    else if (!v)
        snprintf(msg, msg_len, "model '%s' failed to load: %s", name, s->error);
    pthread_mutex_unlock(&r->mu);
    return v;
}

aecd_version *aecd_registry_find(aecd_registry *r, int (*match)(const aecd_version *, void *),
                                 void *ctx)
{
    aecd_version *found = NULL;
    pthread_mutex_lock(&r->mu);
    const slot *d = find_slot(r, r->default_name);
    if (d && d->cur && match(d->cur, ctx))
        found = d->cur;
    for (int i = 0; !found && i < r->nslots; i++)
        if (r->slots[i].cur && match(r->slots[i].cur, ctx))
            found = r->slots[i].cur;
    if (found)
        aecd_version_retain(found);
    pthread_mutex_unlock(&r->mu);
    return found;
}

static const char *state_name(aecd_model_state s)
{
    return s == AECD_MODEL_READY ? "ready" : s == AECD_MODEL_LOADING ? "loading" : "failed";
}

/* One listing entry: name, state, error, id, kind, input, latent,
 * calibration and quality range, then the whole model document. */
static void slot_json(aecd_buf *b, const slot *s, const char *default_name)
{
    aecd_buf_puts(b, "{\"name\":");
    aecd_buf_json_str(b, s->name);
    aecd_buf_printf(b, ",\"default\":%s,\"state\":\"%s\",\"error\":",
                    strcmp(s->name, default_name) == 0 ? "true" : "false", state_name(s->state));
    if (s->error[0])
        aecd_buf_json_str(b, s->error);
    else
        aecd_buf_puts(b, "null");
    aecd_buf_puts(b, ",\"model\":");
    if (s->cur)
        aecd_buf_append(b, s->cur->json, s->cur->json_len - 1); /* without its newline */
    else
        aecd_buf_puts(b, "null");
    aecd_buf_puts(b, "}");
}

char *aecd_registry_json(aecd_registry *r, const char *name, size_t *len)
{
    aecd_buf b;
    aecd_buf_init(&b);
    pthread_mutex_lock(&r->mu);
    if (name) {
        const slot *s = find_slot(r, name);
        if (!s) {
            pthread_mutex_unlock(&r->mu);
            return NULL;
        }
        slot_json(&b, s, r->default_name);
    } else {
        aecd_buf_puts(&b, "{\"default\":");
        aecd_buf_json_str(&b, r->default_name);
        aecd_buf_puts(&b, ",\"models\":[");
        for (int i = 0; i < r->nslots; i++) {
            if (i)
                aecd_buf_puts(&b, ",");
            slot_json(&b, &r->slots[i], r->default_name);
        }
        aecd_buf_puts(&b, "]}");
    }
    pthread_mutex_unlock(&r->mu);
    aecd_buf_puts(&b, "\n");
    return aecd_buf_steal(&b, len);
}

void aecd_registry_stats_get(aecd_registry *r, aecd_registry_stats *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nslots; i++) {
        s->served += r->slots[i].cur != NULL;
        s->failed += r->slots[i].error[0] != 0;
    }
    pthread_mutex_unlock(&r->mu);
    s->loads_ok = atomic_load(&r->loads_ok);
    s->loads_failed = atomic_load(&r->loads_failed);
    s->reloads = atomic_load(&r->reloads);
}
