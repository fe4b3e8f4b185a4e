/* routes.c - the endpoints: the route table, what each accepts, and how
 * each turns a request into a reply.
 *
 *   POST /encode    image -> latent (JSON, or binary with ?format=binary or
 *                   Accept: application/x-aec-latent; ?dtype=f32|f16|u8|coded;
 *                   binary from a model with codec tables defaults to coded)
 *   POST /decode    latent (JSON, binary v1 or coded v2) -> PNG (?width=, ?height=);
 *                   a binary latent names its model, which decodes it
 *   POST /anomaly   image -> anomaly score (?threshold=, ?heatmap=1, ?score=)
 *   GET  /healthz, /v2/health/live    liveness: always 200
 *   GET  /readyz, /v2/health/ready    readiness: 200 when the default model
 *                   serves, 503 while shutting down
 *   GET  /v1/models, /v1/models/NAME  the repository (registry.h)
 *   POST /v1/models/reload            rescan it, reply with the listing
 *   GET  /v1/model  what a model is (?model=, else the default)
 *   GET  /metrics   Prometheus text
 *   GET  /          a page to try it (src/server/page/index.html)
 * Every model endpoint takes ?model=NAME (else the default model) and
 * ?timeout_ms= (see request.h).
 *
 * Error codes used here (HTTP status): bad_request, empty_body,
 * invalid_json (400); model_not_found (404); unsupported_media_type,
 * invalid_image (415); image_too_large, payload_too_large (413);
 * invalid_latent, model_mismatch, invalid_parameter (422); overloaded,
 * not_ready, deadline_exceeded, model_unavailable, out_of_memory (503);
 * internal_error (500, a bug).
 */
#include "routes.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "aec/anomaly.h"
#include "aec/cascade.h"
#include "aec/image.h"
#include "aec/latent.h"
#include "aec/rotation.h"

#include "base64.h"
#include "budget.h"
#include "batcher.h"
#include "buf.h"
#include "jsonx.h"
#include "log.h"
#include "photo_routes.h"
#include "registry.h"
#include "upload.h"
#include "workers.h"

#ifndef AEC_VERSION
#define AEC_VERSION "dev"
#endif

/* The heatmap PNG shows the per-pixel squared error (averaged over
 * channels) divided by this and clamped to [0,1]: white means an error of
 * 0.1 or more, i.e. an RMS error of about 0.32 on a [0,1] scale. A fixed
 * scale makes heatmaps of different images comparable. */
#define AECD_HEATMAP_MAX 0.1f

static const char k_json[] = "application/json";
static const char k_latent_type[] = "application/x-aec-latent";

/* ---- small helpers ------------------------------------------------------------ */

static int media_is(const aecd_request *req, const char *type)
{
    return req->has_media && strcmp(req->media.type, type) == 0;
}

/* The shortest decimal form that reads back as v, with a JSON-style
 * exponent ("1e308", not "1e+308"). */
static void fmt_double(char *out, size_t n, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    char *e = strchr(out, 'e');
    if (!e)
        return;
    char *d = e + 1, *s = e + 1;
    if (*s == '+')
        s++;
    else if (*s == '-')
        *d++ = *s++;
    while (*s == '0' && s[1])
        s++;
    memmove(d, s, strlen(s) + 1);
}

/* 0 if every value is finite, else -1 with msg naming the first one that is not. */
static int check_finite(const float *v, size_t n, char *msg, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) {
            snprintf(msg, len, "latent[%zu] is %s", i, isnan(v[i]) ? "NaN" : "infinite");
            return -1;
        }
    return 0;
}

static void reply_oom(aecd_request *req, const char *what)
{
    aecd_reply_error(req, 503, "out_of_memory", "no memory for %s; retry shortly", what);
}

/* Sends b (a finished JSON body) as 200, or 500-style out-of-memory reply. */
static void reply_json_buf(aecd_request *req, aecd_buf *b)
{
    size_t len;
    char *body = aecd_buf_steal(b, &len);
    if (!body)
        reply_oom(req, "the response");
    else
        aecd_reply(req, 200, k_json, body, len);
}

static int alloc_tensors(aecd_request *req, size_t in_count, size_t out_count)
{
    req->tensor_in = malloc(in_count * sizeof(float));
    req->tensor_out = malloc(out_count * sizeof(float));
    if (req->tensor_in && req->tensor_out)
        return 0;
    reply_oom(req, "the tensors");
    return -1;
}

/* The batcher pass of each model endpoint: layers of the request's model. */
static aecd_pass encode_pass(const aecd_version *v)
{
    return (aecd_pass){v->runner, 0, v->model->latent_index};
}

static aecd_pass decode_pass(const aecd_version *v)
{
    return (aecd_pass){v->runner, v->model->latent_index + 1, v->model->nlayers - 1};
}

static aecd_pass reconstruct_pass(const aecd_version *v)
{
    return (aecd_pass){v->runner, 0, v->model->nlayers - 1};
}

/* Submits the job of req->job.pass (set by the route's check). */
static aecd_stage submit(aecd_request *req)
{
    aecd_pass pass = req->job.pass;
    req->job = (aecd_job){
        .pass = pass,
        .in = req->tensor_in,
        .out = req->tensor_out,
        .on_done = aecd_request_job_done,
        .ctx = req,
    };
    switch (aecd_request_submit(req)) {
    case AECD_SUBMIT_OK: return AECD_STAGE_PENDING;
    case AECD_SUBMIT_FULL:
        aecd_reply_error(req, 503, "overloaded", "%d model jobs are already queued; retry shortly",
                         req->srv->cfg->queue_size);
        return AECD_STAGE_DONE;
    case AECD_SUBMIT_STOPPED: break;
    }
    aecd_reply_error(req, 503, "not_ready", "the server is shutting down");
    return AECD_STAGE_DONE;
}

/* In finish: 1 (and the reply set) when the batcher stopped first, or the
 * deadline passed before the pass. */
static int cancelled(aecd_request *req)
{
    if (req->job.status == AECD_JOB_OK)
        return 0;
    if (req->job.status == AECD_JOB_EXPIRED)
        aecd_reply_error(req, 503, "deadline_exceeded",
                         "the request's deadline (X-Request-Timeout-Ms / ?timeout_ms) passed"
                         " before the model ran");
    else
        aecd_reply_error(req, 503, "not_ready", "the server is shutting down");
    return 1;
}

/* ---- image uploads: /encode and /anomaly ------------------------------------------ */

/* The parameters of one kind of model on the other: 0, or -1 with the reply set. */
static int check_model_kind(aecd_request *req)
{
    if (req->ver->photo)
        return aecd_photo_check(req);
    if (req->params.quality || req->params.size) {
        aecd_reply_error(req, 422, "invalid_parameter",
                         "quality and size apply to photo codecs; model %s (%s) is a 48x48"
                         " autoencoder (GET /v1/models lists the models and their kinds)",
                         req->ver->name, req->ver->id);
        return -1;
    }
    return 0;
}

static int check_image(aecd_request *req)
{
    req->body_limit = req->srv->cfg->max_body;
    if (check_model_kind(req) != 0)
        return -1;
    if (req->ver->model)
        req->job.pass = req->route->endpoint == AECD_EP_ENCODE ? encode_pass(req->ver)
                                                               : reconstruct_pass(req->ver);
    if (!req->has_media)
        return 0; /* raw bytes; the decoder recognizes the format */
    const char *t = req->media.type;
    if (strncmp(t, "image/", 6) == 0 || strcmp(t, "application/octet-stream") == 0)
        return 0;
    if (strcmp(t, "multipart/form-data") == 0) {
        if (req->media.boundary[0])
            return 0;
        aecd_reply_error(req, 400, "bad_request", "multipart/form-data needs a boundary parameter");
        return -1;
    }
    aecd_reply_error(req, 415, "unsupported_media_type",
                     "Content-Type '%s' is not accepted here: send the image bytes as image/*"
                     " or application/octet-stream (curl -H 'Content-Type: image/png'"
                     " --data-binary @FILE), or multipart/form-data with the file in a field"
                     " named 'image' (curl -F image=@FILE)",
                     t[0] ? t : "(malformed)");
    return -1;
}

/* /anomaly with the cat-face part: decodes once, runs the cascade (and the
 * rotation recognizer, when the part has it) on the upload at its own size,
 * then fits it to the model's input. */
static aec_status face_and_tensor(aecd_request *req, const uint8_t *data, size_t len,
                                  size_t max_pixels, aec_error *err)
{
    const aec_model *m = req->ver->model;
    aec_rgb_image img = {0};
    aec_cascade_result cr;
    const aec_model *rot = req->ver->calib.face.rotation;
    aec_status st = aec_image_decode(data, len, max_pixels, &img, err);
    if (!st)
        st = aec_cascade_scan(req->ver->calib.face.cascade, &img, &cr, err);
    if (!st && rot)
        st = aec_rotation_score(rot, &img, &req->rotation_raw, err);
    if (!st)
        st = aec_image_to_tensor_fit(&img, (aec_fit)req->params.fit, m->input.c, m->input.h,
                                     m->input.w, req->tensor_in, err);
    aec_image_free(&img);
    if (!st) {
        req->has_face = 1;
        req->face_evidence = cr.evidence;
        req->face_detections = cr.detections;
        req->has_rotation = rot != NULL;
    }
    return st;
}

/* /encode and /anomaly (the pass: encode or reconstruct). */
static aecd_stage image_prepare(aecd_request *req)
{
    if (req->ver->photo)
        return aecd_photo_encode(req);
    const aec_model *m = req->ver->model;
    int encode = req->route->endpoint == AECD_EP_ENCODE;
    size_t out_count = encode ? aec_model_latent_count(m) : aec_model_output_count(m);
    size_t in_count = aec_model_input_count(m);
    const uint8_t *data;
    size_t len;
    if (aecd_upload_image(req, &data, &len) != 0)
        return AECD_STAGE_DONE;
    /* the header first: reserve what decoding will take before it starts */
    aec_error err = {{0}};
    size_t max_pixels = (size_t)req->srv->cfg->max_pixels, peak;
    int w, h;
    aec_status st = aec_image_probe(data, len, max_pixels, (size_t)m->input.h * (size_t)m->input.w,
                                    &w, &h, &peak, &err);
    if (st != AEC_OK) {
        aecd_reply_image_error(req, st, &err);
        return AECD_STAGE_DONE;
    }
    const aec_anomaly_calib *cal = &req->ver->calib;
    const aecd_params *p = &req->params;
    int want_face = 0;
    if (!encode && p->has_score && p->score != AEC_SCORE_RECONSTRUCTION) {
        if (!cal->face.cascade) {
            aecd_reply_error(req, 422, "unsupported_model",
                             "model '%s' has no cat-face calibration: ?score=%s needs one "
                             "(aec-train --calibrate-catface); it scores reconstruction only",
                             req->ver->name, aec_anomaly_kind_name((aec_anomaly_kind)p->score));
            return AECD_STAGE_DONE;
        }
        if (p->score == AEC_SCORE_ROTATION && !cal->face.rotation) {
            aecd_reply_error(req, 422, "unsupported_model",
                             "model '%s' has no rotation recognizer: ?score=rotation needs one "
                             "(aec-train --calibrate-catface --rotation FILE)",
                             req->ver->name);
            return AECD_STAGE_DONE;
        }
        want_face = 1;
    } else if (!encode && !p->has_score && cal->face.cascade)
        want_face = (w < h ? w : h) >= AEC_CATFACE_MIN_SIDE;
    char what[64];
    snprintf(what, sizeof what, "decoding a %dx%d image", w, h);
    size_t tensors = (in_count + out_count) * sizeof(float);
    size_t work = peak;
    if (want_face)
        work += aec_cascade_scan_bytes(w, h) +
                (cal->face.rotation ? aec_rotation_score_bytes(cal->face.rotation) : 0);
    if (aecd_request_reserve(req, work + tensors, what) != 0 ||
        alloc_tensors(req, in_count, out_count) != 0)
        return AECD_STAGE_DONE;
    if (want_face)
        st = face_and_tensor(req, data, len, max_pixels, &err);
    else
        st = aec_image_load_tensor_fit(data, len, max_pixels, (aec_fit)p->fit, m->input.c,
                                       m->input.h, m->input.w, req->tensor_in, &err);
    aecd_request_unreserve(req, work); /* decoded: only the tensors stay */
    if (st != AEC_OK) {
        aecd_reply_image_error(req, st, &err);
        return AECD_STAGE_DONE;
    }
    aecd_request_free_body(req); /* not needed any more: do not hold it while queued */
    return submit(req);
}

/* ---- /encode ------------------------------------------------------------------------ */

static void encode_reply_json(aecd_request *req, const float *latent, size_t dim,
                              aec_latent_dtype dt)
{
    aecd_buf b;
    aecd_buf_init(&b);
    aecd_buf_puts(&b, "{\"model\":");
    aecd_buf_json_str(&b, req->ver->model->id);
    aecd_buf_puts(&b, ",\"model_name\":");
    aecd_buf_json_str(&b, req->ver->name);
    aecd_buf_printf(&b, ",\"dim\":%zu,\"dtype\":\"%s\",\"latent\":[", dim,
                    aec_latent_dtype_name(dt));
    for (size_t i = 0; i < dim; i++) {
        if (i)
            aecd_buf_append(&b, ",", 1);
        aecd_buf_json_float(&b, latent[i]);
    }
    aecd_buf_puts(&b, "]}\n");
    reply_json_buf(req, &b);
}

/* ?dtype=coded (or binary output from a codec model without ?dtype): the
 * entropy-coded stream; JSON then carries the decoded integer symbols. */
static void encode_finish_coded(aecd_request *req, int binary, size_t dim)
{
    const aecd_version *v = req->ver;
    uint8_t *stream = NULL;
    size_t len = 0;
    aec_error err = {{0}};
    if (aec_codec_encode(v->codec, req->tensor_out, &stream, &len, &err) != AEC_OK) {
        aecd_reply_error(req, 500, "internal_error", "coding the latent failed: %s", err.msg);
        return;
    }
    if (binary) {
        aecd_reply(req, 200, k_latent_type, stream, len);
        return;
    }
    aec_status st = aec_codec_decode(v->codec, stream, len, req->tensor_out, &err);
    free(stream);
    if (st != AEC_OK) {
        aecd_reply_error(req, 500, "internal_error", "decoding the coded latent failed: %s",
                         err.msg);
        return;
    }
    aecd_buf b;
    aecd_buf_init(&b);
    aecd_buf_puts(&b, "{\"model\":");
    aecd_buf_json_str(&b, v->model->id);
    aecd_buf_puts(&b, ",\"model_name\":");
    aecd_buf_json_str(&b, v->name);
    aecd_buf_printf(&b, ",\"dim\":%zu,\"dtype\":\"coded\",\"bytes\":%zu,\"latent\":[", dim, len);
    for (size_t i = 0; i < dim; i++)
        aecd_buf_printf(&b, i ? ",%d" : "%d", (int)req->tensor_out[i]);
    aecd_buf_puts(&b, "]}\n");
    reply_json_buf(req, &b);
}

static void encode_finish(aecd_request *req)
{
    if (cancelled(req))
        return;
    const aec_model *m = req->ver->model;
    size_t dim = aec_model_latent_count(m);
    char msg[128];
    if (check_finite(req->tensor_out, dim, msg, sizeof msg) != 0) {
        aecd_reply_error(req, 500, "internal_error", "the model produced a bad latent: %s", msg);
        return;
    }
    int binary = req->params.format == AECD_FORMAT_BINARY ||
                 (req->params.format == AECD_FORMAT_UNSET && req->accept_latent);
    if (req->params.dtype == AECD_DTYPE_CODED ||
        (req->params.dtype == 0 && binary && req->ver->codec)) {
        encode_finish_coded(req, binary, dim);
        return;
    }
    aec_latent_dtype dt = req->params.dtype ? (aec_latent_dtype)req->params.dtype : AEC_LATENT_F32;
    uint8_t *packed = NULL;
    size_t plen = 0;
    aec_error err = {{0}};
    if (aec_latent_pack(req->tensor_out, (uint32_t)dim, m->id_hash, dt, &packed, &plen, &err) !=
        AEC_OK) {
        aecd_reply_error(req, 500, "internal_error", "packing the latent failed: %s", err.msg);
        return;
    }
    if (binary) {
        aecd_reply(req, 200, k_latent_type, packed, plen);
        return;
    }
    /* JSON carries the values the chosen dtype stores (f16/u8 rounded). */
    if (dt != AEC_LATENT_F32 && aec_latent_unpack(packed, plen, (uint32_t)dim, m->id_hash,
                                                  req->tensor_out, &err) != AEC_OK) {
        free(packed);
        aecd_reply_error(req, 500, "internal_error", "unpacking the latent failed: %s", err.msg);
        return;
    }
    free(packed);
    encode_reply_json(req, req->tensor_out, dim, dt);
}

/* ---- /decode ------------------------------------------------------------------------- */

static int check_latent(aecd_request *req)
{
    if (req->ver->model)
        req->job.pass = decode_pass(req->ver);
    /* JSON is parsed whole (about 8 bytes per byte of text): bounded
     * tighter; a binary latent or stream may take up to --max-body */
    size_t max = req->srv->cfg->max_body;
    int binary = media_is(req, k_latent_type) || media_is(req, "application/octet-stream");
    req->body_limit = binary || max < AECD_MAX_JSON_BODY ? max : AECD_MAX_JSON_BODY;
    if (!req->has_media || media_is(req, k_json) || media_is(req, k_latent_type) ||
        media_is(req, "application/octet-stream"))
        return 0;
    aecd_reply_error(req, 415, "unsupported_media_type",
                     "Content-Type '%s' is not accepted here: send application/json"
                     " {\"latent\": [...]} or a binary latent as application/x-aec-latent"
                     " (curl -H 'Content-Type: application/json' --data-binary @FILE)",
                     req->media.type[0] ? req->media.type : "(malformed)");
    return -1;
}

static int is_binary_latent(const aecd_request *req)
{
    if (media_is(req, k_latent_type))
        return 1;
    if (media_is(req, k_json))
        return 0;
    return (req->body_len >= 4 && memcmp(req->body, AEC_LATENT_MAGIC, 4) == 0) ||
           aec_codec_is_stream(req->body, req->body_len); /* sniff */
}

/* ---- which model decodes a latent ---------------------------------------------------
 * A binary latent names the model that made it (v1: its id hash; v2: its
 * 16-bit tag), and so may a JSON one ("model": its id). Without ?model=,
 * that model decodes it, whichever of the served ones it is; with ?model=,
 * the named one must be it (else 422 model_mismatch, as when no served
 * model made it). */

typedef struct {
    int kind; /* 1: id hash, 2: codec tag, 3: id string */
    uint64_t hash;
    uint16_t tag;
    const char *id;
} latent_owner;

static int owns(const aecd_version *v, void *ctx)
{
    const latent_owner *o = ctx;
    if (!v->model)
        return 0; /* a photo codec: its streams are version 3 (photo_routes.c) */
    switch (o->kind) {
    case 1: return v->model->id_hash == o->hash;
    case 2: return v->codec && aec_codec_tag(v->codec) == o->tag;
    case 3: return strcmp(v->model->id, o->id) == 0;
    }
    return 0;
}

/* Switches the request to the served model that made the latent, when
 * ?model= is not given. When none did, the request's model stays, and its
 * decoder refuses the latent with the precise reason (another model's, or
 * malformed). */
static void choose_model(aecd_request *req, const latent_owner *o)
{
    if (req->params.model[0] || owns(req->ver, (void *)o))
        return;
    aecd_version *v = aecd_registry_find(req->srv->registry, owns, (void *)o);
    if (!v)
        return;
    aecd_pass pass = decode_pass(v);
    aecd_request_use_version(req, v, &pass);
    aecd_version_release(v); /* the request holds its own reference now */
}

/* A version-2 (entropy-coded) latent into the tensor. 0, or -1 with the reply set. */
static int latent_from_stream(aecd_request *req)
{
    const aecd_version *v = req->ver;
    if (!v->codec) {
        aecd_reply_error(req, 422, "invalid_latent",
                         "this is an entropy-coded latent, but model %s (%s) has no codec tables"
                         " (serve a model trained with aec-train --lambda)",
                         v->name, v->model->id);
        return -1;
    }
    aec_error err = {{0}};
    aec_status st = aec_codec_decode(v->codec, req->body, req->body_len, req->tensor_in, &err);
    if (st == AEC_ERR_MISMATCH) {
        aecd_reply_error(req, 422, "model_mismatch", "%s (model %s is %s)", err.msg, v->name,
                         v->model->id);
        return -1;
    }
    if (st != AEC_OK) {
        aecd_reply_error(req, 422, "invalid_latent", "invalid coded latent: %s", err.msg);
        return -1;
    }
    return 0;
}

static int latent_from_binary(aecd_request *req, size_t dim)
{
    if (aec_codec_is_stream(req->body, req->body_len))
        return latent_from_stream(req);
    const aec_model *m = req->ver->model;
    aec_error err = {{0}};
    aec_status st = aec_latent_unpack(req->body, req->body_len, (uint32_t)dim, m->id_hash,
                                      req->tensor_in, &err);
    if (st == AEC_ERR_MISMATCH) {
        aecd_reply_error(req, 422, "model_mismatch", "%s (model %s is %s)", err.msg, req->ver->name,
                         m->id);
        return -1;
    }
    if (st != AEC_OK) {
        aecd_reply_error(req, 422, "invalid_latent", "invalid binary latent: %s", err.msg);
        return -1;
    }
    char msg[128];
    if (check_finite(req->tensor_in, dim, msg, sizeof msg) != 0) {
        aecd_reply_error(req, 422, "invalid_latent", "%s", msg);
        return -1;
    }
    return 0;
}

/* Copies the "latent" array of root into the tensor. 0, or -1 with the reply set. */
static int latent_values(aecd_request *req, const cJSON *root, size_t dim)
{
    const aec_model *m = req->ver->model;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && (!cJSON_IsString(model) || strcmp(model->valuestring, m->id) != 0)) {
        aecd_reply_error(req, 422, "model_mismatch",
                         "\"model\" names another model; model %s is %s", req->ver->name, m->id);
        return -1;
    }
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(root, "latent");
    if (!cJSON_IsArray(lat)) {
        aecd_reply_error(req, 422, "invalid_latent",
                         lat ? "\"latent\" must be an array of numbers"
                             : "missing \"latent\": send {\"latent\": [numbers]}");
        return -1;
    }
    int n = cJSON_GetArraySize(lat);
    if (n < 0 || (size_t)n != dim) {
        aecd_reply_error(req, 422, "invalid_latent", "\"latent\" has %d values; model %s takes %zu",
                         n, m->id, dim);
        return -1;
    }
    size_t i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, lat)
    {
        if (!cJSON_IsNumber(v)) {
            aecd_reply_error(req, 422, "invalid_latent", "latent[%zu] is not a number", i);
            return -1;
        }
        double d = v->valuedouble;
        if (!isfinite(d) || !isfinite((float)d)) {
            char num[40];
            fmt_double(num, sizeof num, d);
            aecd_reply_error(req, 422, "invalid_latent", "latent[%zu] = %s is out of float range",
                             i, isfinite(d) ? num : "a number beyond double range");
            return -1;
        }
        req->tensor_in[i++] = (float)d;
    }
    return 0;
}

/* Parses the JSON body. The root object, or NULL with the reply set. */
static cJSON *parse_latent_json(aecd_request *req)
{
    size_t at = 0;
    if (aecd_json_depth_check((const char *)req->body, req->body_len, AECD_MAX_JSON_DEPTH, &at) !=
        0) {
        aecd_reply_error(req, 400, "invalid_json",
                         "JSON nested deeper than %d levels (at byte %zu)", AECD_MAX_JSON_DEPTH,
                         at);
        return NULL;
    }
    cJSON *root = aecd_json_parse((const char *)req->body, req->body_len, &at);
    if (!root) {
        aecd_reply_error(req, 400, "invalid_json", "malformed JSON at byte %zu", at);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        aecd_reply_error(req, 422, "invalid_latent",
                         "expected a JSON object: {\"latent\": [numbers]}");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Picks the model of the latent in the body: 0, or -1 with the reply set.
 * *root is the parsed JSON body (NULL for a binary latent). */
static int latent_model(aecd_request *req, int binary, cJSON **root)
{
    latent_owner o = {0};
    *root = NULL;
    if (binary) {
        if (aec_latent_model_hash(req->body, req->body_len, &o.hash))
            o.kind = 1;
        else if (aec_codec_stream_tag(req->body, req->body_len, &o.tag))
            o.kind = 2;
    } else {
        if (!(*root = parse_latent_json(req)))
            return -1;
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(*root, "model");
        if (cJSON_IsString(model)) {
            o.kind = 3;
            o.id = model->valuestring;
        }
    }
    if (o.kind)
        choose_model(req, &o);
    return 0;
}

/* The output size: the model's, or ?width= / ?height= (one alone keeps
 * the aspect ratio). */
static void output_size(const aecd_request *req, int *ow, int *oh)
{
    const aec_shape *in = &req->ver->model->input;
    int w = req->params.width, h = req->params.height;
    if (w && !h)
        h = (int)lround((double)w * in->h / in->w);
    else if (h && !w)
        w = (int)lround((double)h * in->w / in->h);
    else if (!w && !h) {
        w = in->w;
        h = in->h;
    }
    *ow = w < 1 ? 1 : w > AECD_MAX_OUTPUT_SIDE ? AECD_MAX_OUTPUT_SIDE : w;
    *oh = h < 1 ? 1 : h > AECD_MAX_OUTPUT_SIDE ? AECD_MAX_OUTPUT_SIDE : h;
}

/* A parsed JSON body takes about this many times its bytes (cJSON nodes). */
#define JSON_PARSE_FACTOR 8

static aecd_stage decode_prepare(aecd_request *req)
{
    if (aec_photo_is_stream(req->body, req->body_len))
        return aecd_photo_decode(req);
    int binary = is_binary_latent(req);
    size_t parse = binary ? 0 : req->body_len * JSON_PARSE_FACTOR;
    char what[64];
    snprintf(what, sizeof what, "parsing a %zu-byte JSON latent", req->body_len);
    if (aecd_request_reserve(req, parse, what) != 0)
        return AECD_STAGE_DONE;
    cJSON *root = NULL;
    if (latent_model(req, binary, &root) != 0)
        return AECD_STAGE_DONE;
    if (req->ver->photo) {
        aecd_reply_error(req, 422, "model_mismatch",
                         "model %s (%s) is a photo codec: it decodes the version-3 streams its"
                         " /encode makes, and this is %s",
                         req->ver->name, req->ver->id,
                         binary ? "a binary latent of a 48x48 model that is not served"
                                : "a JSON latent");
        cJSON_Delete(root);
        return AECD_STAGE_DONE;
    }
    const aec_model *m = req->ver->model;
    int ow, oh;
    output_size(req, &ow, &oh);
    int resized = req->params.width || req->params.height;
    if (resized && (long)ow * oh > req->srv->cfg->max_pixels) {
        aecd_reply_error(req, 422, "invalid_parameter",
                         "the output would be %dx%d pixels, more than this server's limit of %ld",
                         ow, oh, req->srv->cfg->max_pixels);
        cJSON_Delete(root);
        return AECD_STAGE_DONE;
    }
    size_t dim = aec_model_latent_count(m);
    /* the tensors, and a resized output and its PNG when asked for */
    size_t need = (dim + aec_model_output_count(m)) * sizeof(float);
    if (resized)
        need += (size_t)m->input.c * (size_t)ow * (size_t)oh * (sizeof(float) + 2);
    snprintf(what, sizeof what, "a %dx%d output", ow, oh);
    if (aecd_request_reserve(req, need, what) != 0) {
        cJSON_Delete(root);
        return AECD_STAGE_DONE;
    }
    int rc = alloc_tensors(req, dim, aec_model_output_count(m));
    if (rc == 0)
        rc = binary ? latent_from_binary(req, dim) : latent_values(req, root, dim);
    cJSON_Delete(root);
    aecd_request_unreserve(req, parse);
    if (rc != 0)
        return AECD_STAGE_DONE;
    aecd_request_free_body(req);
    return submit(req);
}

static void decode_finish(aecd_request *req)
{
    if (cancelled(req))
        return;
    const aec_shape *in = &req->ver->model->input;
    int ow, oh;
    output_size(req, &ow, &oh);
    const float *img = req->tensor_out;
    float *resized = NULL;
    aec_error err = {{0}};
    if (ow != in->w || oh != in->h) {
        resized = malloc((size_t)in->c * (size_t)oh * (size_t)ow * sizeof(float));
        if (!resized) {
            reply_oom(req, "the resized image");
            return;
        }
        if (aec_tensor_resize(img, in->c, in->h, in->w, resized, oh, ow, &err) != AEC_OK) {
            free(resized);
            aecd_reply_error(req, 500, "internal_error", "resizing failed: %s", err.msg);
            return;
        }
        img = resized;
    }
    uint8_t *png = NULL;
    size_t len = 0;
    aec_status st = aec_image_encode_png(img, in->c, oh, ow, &png, &len, &err);
    free(resized);
    if (st == AEC_ERR_NOMEM)
        reply_oom(req, "the PNG");
    else if (st != AEC_OK)
        aecd_reply_error(req, 500, "internal_error", "PNG encoding failed: %s", err.msg);
    else
        aecd_reply(req, 200, "image/png", png, len);
}

/* ---- /anomaly ------------------------------------------------------------------------- */

/* "heatmap_png": base64 of a grey PNG of the error map. 0, or -1 (reply set). */
static int add_heatmap(aecd_request *req, aecd_buf *b)
{
    const aec_shape *in = &req->ver->model->input;
    size_t hw = (size_t)in->h * (size_t)in->w;
    float *map = malloc(hw * sizeof(float));
    if (!map) {
        reply_oom(req, "the heatmap");
        return -1;
    }
    aec_anomaly_error_map(req->tensor_in, req->tensor_out, in->c, in->h, in->w, map);
    for (size_t i = 0; i < hw; i++)
        map[i] = map[i] >= AECD_HEATMAP_MAX ? 1.0f : map[i] / AECD_HEATMAP_MAX;
    uint8_t *png = NULL;
    size_t len = 0;
    aec_error err = {{0}};
    aec_status st = aec_image_encode_png(map, 1, in->h, in->w, &png, &len, &err);
    free(map);
    if (st != AEC_OK) {
        aecd_reply_error(req, 500, "internal_error", "heatmap PNG encoding failed: %s", err.msg);
        return -1;
    }
    char *b64 = aecd_base64_encode(png, len, NULL);
    free(png);
    if (!b64) {
        reply_oom(req, "the heatmap");
        return -1;
    }
    aecd_buf_puts(b, ",\"heatmap_png\":\"");
    aecd_buf_puts(b, b64);
    aecd_buf_printf(b, "\",\"heatmap_max\":%g", (double)AECD_HEATMAP_MAX);
    free(b64);
    return 0;
}

static void json_num_or_null(aecd_buf *b, const char *key, int known, double v)
{
    aecd_buf_printf(b, ",\"%s\":", key);
    if (known)
        aecd_buf_json_double(b, v);
    else
        aecd_buf_puts(b, "null");
}

static void anomaly_finish(aecd_request *req)
{
    if (cancelled(req))
        return;
    const aecd_version *v = req->ver;
    const aec_shape *in = &v->model->input;
    const aecd_params *p = &req->params;
    aec_anomaly_result r;
    aec_anomaly_score(&v->calib, req->tensor_in, req->tensor_out, in->c, in->h, in->w,
                      p->has_threshold ? p->threshold : -1.0, &r);
    aec_anomaly_kind kind = !req->has_face      ? AEC_SCORE_RECONSTRUCTION
                            : p->has_score      ? (aec_anomaly_kind)p->score
                            : req->has_rotation ? AEC_SCORE_COMBINED
                                                : AEC_SCORE_CATFACE;
    int calibrated = v->calib.calibrated;
    int has_thr = p->has_threshold || calibrated;
    double thr = p->has_threshold ? p->threshold : v->calib.threshold;
    if (kind != AEC_SCORE_RECONSTRUCTION) {
        aec_anomaly_score_face(&v->calib, req->face_evidence, req->rotation_raw, kind,
                               p->has_threshold ? p->threshold : -1.0, &r);
        if (!p->has_threshold)
            thr = aec_anomaly_face_threshold(&v->calib, kind);
    }

    aecd_buf b;
    aecd_buf_init(&b);
    aecd_buf_puts(&b, "{\"model\":");
    aecd_buf_json_str(&b, v->model->id);
    aecd_buf_puts(&b, ",\"model_name\":");
    aecd_buf_json_str(&b, v->name);
    json_num_or_null(&b, "score", 1, r.score);
    json_num_or_null(&b, "mse", 1, r.mse);
    json_num_or_null(&b, "baseline_mse", 1, r.baseline_mse);
    json_num_or_null(&b, "threshold", has_thr, thr);
    aecd_buf_puts(&b, ",\"anomalous\":");
    aecd_buf_puts(&b, !has_thr ? "null" : r.score > thr ? "true" : "false");
    json_num_or_null(&b, "percentile", calibrated && r.percentile >= 0, r.percentile);
    json_num_or_null(&b, "normalized", has_thr, r.normalized);
    aecd_buf_printf(&b, ",\"calibrated\":%s,\"score_kind\":\"%s\"", calibrated ? "true" : "false",
                    aec_anomaly_kind_name(kind));
    if (v->calib.note[0]) {
        aecd_buf_puts(&b, ",\"calibration_note\":");
        aecd_buf_json_str(&b, v->calib.note);
    }
    if (req->has_face) {
        aecd_buf_printf(&b, ",\"catface\":{\"evidence\":");
        aecd_buf_json_double(&b, req->face_evidence);
        aecd_buf_printf(&b, ",\"detections\":%ld}", req->face_detections);
    }
    if (req->has_rotation) {
        aecd_buf_printf(&b, ",\"rotation\":{\"raw\":");
        aecd_buf_json_double(&b, req->rotation_raw);
        aecd_buf_puts(&b, "}");
    }
    if (p->heatmap && add_heatmap(req, &b) != 0) {
        aecd_buf_free(&b);
        return;
    }
    aecd_buf_puts(&b, "}\n");
    reply_json_buf(req, &b);
}

/* ---- the page at / ---------------------------------------------------------------- */

/* src/server/page/index.html, embedded by cmake/embed.cmake. */
extern const unsigned char aecd_page_html[];
extern const size_t aecd_page_html_len;

/* Everything the page needs is in it, and it only talks to this server. */
#define PAGE_CSP                                                                                   \
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "                  \
    "img-src blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "               \
    "frame-ancestors 'none'"

static void page(aecd_request *req)
{
    aecd_reply_static(req, 200, "text/html; charset=utf-8", (const char *)aecd_page_html);
    aecd_reply_header(req, "Content-Security-Policy", PAGE_CSP);
}

/* ---- GET endpoints --------------------------------------------------------------------- */

static void healthz(aecd_request *req)
{
    aecd_reply_static(req, 200, k_json, "{\"status\":\"ok\"}\n");
}

/* Ready when not shutting down, the batcher runs and the default model
 * serves. */
static void readyz(aecd_request *req)
{
    aecd_server *srv = req->srv;
    if (atomic_load(&srv->draining)) {
        aecd_reply_error(req, 503, "not_ready", "the server is shutting down");
        return;
    }
    if (!aecd_batcher_running(srv->batcher)) {
        aecd_reply_error(req, 503, "not_ready", "the model worker is not running");
        return;
    }
    char msg[512];
    int state;
    aecd_version *v = aecd_registry_get(srv->registry, NULL, &state, msg, sizeof msg);
    if (!v) {
        aecd_reply_error(req, 503, "not_ready", "%s", msg);
        return;
    }
    aecd_buf b;
    aecd_buf_init(&b);
    aecd_buf_puts(&b, "{\"status\":\"ready\",\"model\":");
    aecd_buf_json_str(&b, v->id);
    aecd_buf_puts(&b, ",\"model_name\":");
    aecd_buf_json_str(&b, v->name);
    aecd_buf_puts(&b, "}\n");
    aecd_version_release(v);
    reply_json_buf(req, &b);
}

/* GET /v1/model: the request's model (?model=, else the default). */
static void model_info(aecd_request *req)
{
    char *body = malloc(req->ver->json_len);
    if (!body) {
        reply_oom(req, "the response");
        return;
    }
    memcpy(body, req->ver->json, req->ver->json_len);
    aecd_reply(req, 200, k_json, body, req->ver->json_len);
}

/* GET /v1/models and /v1/models/NAME. */
static void models(aecd_request *req)
{
    const char *name = req->path_arg[0] ? req->path_arg : NULL;
    size_t len = 0;
    char *body = aecd_registry_json(req->srv->registry, name, &len);
    if (body)
        aecd_reply(req, 200, k_json, body, len);
    else if (name)
        aecd_reply_error(req, 404, "model_not_found",
                         "no model named '%.64s' (GET /v1/models lists them)", name);
    else
        reply_oom(req, "the listing");
}

/* POST /v1/models/reload, on a worker: rescans the folder (loading new and
 * changed files can take a while), then replies with what it did and the
 * listing. */
static aecd_stage reload_prepare(aecd_request *req)
{
    aecd_reload_report rep;
    aec_error err = {{0}};
    if (aecd_registry_reload(req->srv->registry, &rep, &err) != AEC_OK) {
        aecd_reply_error(req, 500, "reload_failed", "%s", err.msg);
        return AECD_STAGE_DONE;
    }
    size_t len = 0;
    char *list = aecd_registry_json(req->srv->registry, NULL, &len);
    aecd_buf b;
    aecd_buf_init(&b);
    aecd_buf_printf(&b,
                    "{\"loaded\":%d,\"failed\":%d,\"removed\":%d,\"unchanged\":%d,"
                    "\"repository\":",
                    rep.loaded, rep.failed, rep.removed, rep.unchanged);
    if (list)
        aecd_buf_append(&b, list, len - 1);
    else
        aecd_buf_puts(&b, "null");
    aecd_buf_puts(&b, "}\n");
    free(list);
    reply_json_buf(req, &b);
    return AECD_STAGE_DONE;
}

static void metrics(aecd_request *req)
{
    aecd_server *srv = req->srv;
    char msg[512];
    int state;
    aecd_version *v = aecd_registry_get(srv->registry, NULL, &state, msg, sizeof msg);
    aecd_registry_stats rs;
    aecd_registry_stats_get(srv->registry, &rs);
    aecd_metrics_info info = {
        .model_id = v ? v->id : "",
        .version = AEC_VERSION,
        .queue_depth = aecd_batcher_depth(srv->batcher),
        .pipeline_requests = aecd_batcher_upstream(srv->batcher),
        .worker_queue_depth = aecd_workers_depth(srv->workers),
        .buffered_bytes = atomic_load(&srv->body_bytes),
        .models_served = rs.served,
        .models_failed = rs.failed,
        .loads_ok = rs.loads_ok,
        .loads_failed = rs.loads_failed,
        .reloads = rs.reloads,
        .memory_limit = aecd_budget_limit(srv->budget),
        .memory_reserved = aecd_budget_used(srv->budget),
        .memory_peak = aecd_budget_peak(srv->budget),
        .memory_waiting = aecd_budget_waiting(srv->budget),
    };
    size_t len;
    char *text = aecd_metrics_render(srv->metrics, &info, &len);
    aecd_version_release(v);
    if (!text)
        reply_oom(req, "the metrics");
    else
        aecd_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* ---- the table ------------------------------------------------------------------------- */

/* path, endpoint, is_post, is_public, uses_model, params, check, respond, prepare, finish */
static const aecd_route k_routes[] = {
    {"/", AECD_EP_PAGE, 0, 1, 0, "", NULL, page, NULL, NULL},
    {"/encode", AECD_EP_ENCODE, 1, 0, 1, "format dtype fit quality size model timeout_ms",
     check_image, NULL, image_prepare, encode_finish},
    {"/decode", AECD_EP_DECODE, 1, 0, 1, "width height model timeout_ms", check_latent, NULL,
     decode_prepare, decode_finish},
    {"/anomaly", AECD_EP_ANOMALY, 1, 0, 1, "threshold heatmap fit model timeout_ms score",
     check_image, NULL, image_prepare, anomaly_finish},
    {"/healthz", AECD_EP_HEALTHZ, 0, 1, 0, "", NULL, healthz, NULL, NULL},
    {"/v2/health/live", AECD_EP_HEALTHZ, 0, 1, 0, "", NULL, healthz, NULL, NULL},
    {"/readyz", AECD_EP_READYZ, 0, 1, 0, "", NULL, readyz, NULL, NULL},
    {"/v2/health/ready", AECD_EP_READYZ, 0, 1, 0, "", NULL, readyz, NULL, NULL},
    {"/v1/model", AECD_EP_MODEL, 0, 0, 1, "model", NULL, model_info, NULL, NULL},
    {"/v1/models", AECD_EP_MODELS, 0, 0, 0, "", NULL, models, NULL, NULL},
    {"/v1/models/reload", AECD_EP_RELOAD, 1, 0, 0, "", NULL, NULL, reload_prepare, NULL},
    {"/v1/models/", AECD_EP_MODELS, 0, 0, 0, "", NULL, models, NULL, NULL},
    {"/metrics", AECD_EP_METRICS, 0, 0, 0, "", NULL, metrics, NULL, NULL},
};

#define NROUTES (sizeof k_routes / sizeof k_routes[0])

const aecd_route *aecd_route_find(const char *path, char *arg, size_t arg_len)
{
    arg[0] = 0;
    for (size_t i = 0; i < NROUTES; i++)
        if (strcmp(k_routes[i].path, path) == 0)
            return &k_routes[i];
    for (size_t i = 0; i < NROUTES; i++) {
        const char *p = k_routes[i].path;
        size_t n = strlen(p);
        if (n > 1 && p[n - 1] == '/' && strncmp(p, path, n) == 0 && path[n] &&
            !strchr(path + n, '/') && strlen(path + n) < arg_len) {
            memcpy(arg, path + n, strlen(path + n) + 1);
            return &k_routes[i];
        }
    }
    return NULL;
}

const char *aecd_route_allow(const aecd_route *r)
{
    return r->is_post ? "POST" : "GET, HEAD";
}
