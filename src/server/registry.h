/* registry.h - the model repository: every model file of one folder,
 * served by name, and how it is reloaded.
 *
 * A model file NAME.safetensors in the folder is the model NAME: a
 * fixed-size autoencoder (aec-train's 48x48 models, with or without codec
 * tables), or a photo codec for images of any size (aec.format "photo-1",
 * aec/photo.h), told apart by the file's metadata. What a
 * request uses is a *version*: the model loaded from the file as it was at
 * one moment, with its anomaly calibration, entropy coder, batcher runner
 * and /v1/model document. A version is reference counted: a request takes
 * one (aecd_registry_get) when it starts and drops it (aecd_version_release)
 * when it completes, so a reload never pulls a model from under a request;
 * the registry holds one reference of its own for the version it serves.
 *
 * A reload (aecd_registry_reload: SIGHUP or POST /v1/models/reload) scans
 * the folder once more. A file that is new, or changed (device, inode, size
 * or modification time), is loaded and validated while the old version
 * keeps serving, then swapped in under the lock; a file that fails to load
 * leaves the old version serving, and its error is reported by
 * /v1/models, in the log and in aec_model_loads_total{result="failed"}. A
 * file that is gone stops being served; its version is freed when its last
 * request is done. Only names ending in ".safetensors" and not starting
 * with "." count, so a writer's temporary file (aec-train writes
 * NAME.safetensors.tmp.XXXXXX, then renames it) is never read half-written.
 * Reloads are serialized; requests never wait for one.
 */
#ifndef AECD_REGISTRY_H
#define AECD_REGISTRY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "aec/anomaly.h"
#include "aec/codec.h"
#include "aec/error.h"
#include "aec/model.h"
#include "aec/photo.h"

#include "batcher.h"
#include "config.h"

#define AECD_MODEL_NAME_MAX 64 /* bytes of a model name, with its terminator */
#define AECD_MAX_MODELS 256    /* model files served from one folder */

typedef struct aecd_version {
    char name[AECD_MODEL_NAME_MAX];
    /* Exactly one of model and photo is set. */
    aec_model *model; /* a fixed-size autoencoder (48x48), served through the batcher */
    aec_photo *photo; /* an any-size photo codec (aec/photo.h), run on the request's worker */
    const char *id;   /* the model's id ("aec-" + 16 hex digits) and its hash */
    uint64_t id_hash;
    aec_anomaly_calib calib;
    aec_codec *codec;    /* the entropy coder, or NULL when the model has no tables */
    aecd_runner *runner; /* its workspace in the batcher */
    char *json;          /* its /v1/model document */
    size_t json_len;
    atomic_long refs;
    /* the file it came from */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} aecd_version;

typedef enum {
    AECD_MODEL_LOADING, /* first load in progress: nothing served yet */
    AECD_MODEL_READY,   /* a version is served (a later reload may have failed: see error) */
    AECD_MODEL_FAILED,  /* the file never loaded: nothing served */
} aecd_model_state;

typedef struct aecd_registry aecd_registry;

/* What one reload did. */
typedef struct {
    int loaded;  /* new or changed files now served */
    int failed;  /* files that did not load (the old version, if any, still serves) */
    int removed; /* names no longer served */
    int unchanged;
} aecd_reload_report;

/* Serves the folder cfg->models_dir, or only the file cfg->model_path when
 * that is set; loads every model once. Fails (with a message) when the
 * folder cannot be read or the default model does not load. */
aec_status aecd_registry_create(aecd_registry **out, const aecd_config *cfg, aec_error *err);
void aecd_registry_free(aecd_registry *r);

/* Scans again (see the top of this file). Fails only when the folder
 * cannot be read; each file's own failure is in the report. */
aec_status aecd_registry_reload(aecd_registry *r, aecd_reload_report *rep, aec_error *err);

/* The default model's name. */
const char *aecd_registry_default(const aecd_registry *r);

/* The version serving NAME (NULL: the default), with one more reference;
 * or NULL with a reason: *state tells whether the name is unknown (-1),
 * loading or failed, and msg says so in words. */
aecd_version *aecd_registry_get(aecd_registry *r, const char *name, int *state, char *msg,
                                size_t msg_len);
/* The first served version (the default first, then by name) for which
 * match(v, ctx) is true, with one more reference; or NULL. */
aecd_version *aecd_registry_find(aecd_registry *r, int (*match)(const aecd_version *, void *),
                                 void *ctx);
/* One more reference to a version already held. */
void aecd_version_retain(aecd_version *v);
/* Drops one reference; the last one frees the version. NULL is a no-op. */
void aecd_version_release(aecd_version *v);

/* GET /v1/models (name NULL: {"default":..., "models":[...]}) or
 * /v1/models/{name} (one entry; NULL if unknown). A malloc'd JSON body. */
char *aecd_registry_json(aecd_registry *r, const char *name, size_t *len);

/* Counters for /metrics. */
typedef struct {
    long served;                 /* names with a version serving */
    long failed;                 /* names whose last load failed */
    unsigned long long loads_ok; /* since start */
    unsigned long long loads_failed;
    unsigned long long reloads;
} aecd_registry_stats;
void aecd_registry_stats_get(aecd_registry *r, aecd_registry_stats *s);

#endif
