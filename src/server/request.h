/* request.h - one request as the daemon sees it, and the pipeline it runs
 * through: replies, the hand-over to the workers, the batcher job and its
 * completion (the numbered steps of server.h).
 *
 * Both the HTTP layer (http.c) and the endpoints (routes.c) use this
 * module; it calls neither of them, only the hooks a route provides. A
 * route handler only reads the request fields and calls one aecd_reply_*.
 */
#ifndef AECD_REQUEST_H
#define AECD_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "batcher.h"
#include "metrics.h"
#include "multipart.h"
#include "params.h"
#include "registry.h"
#include "server.h"
#include "workers.h"

struct MHD_Connection;
struct MHD_Response;

typedef struct aecd_route aecd_route;

typedef enum {
    AECD_PHASE_HEADERS, /* before the first access-handler call */
    AECD_PHASE_BODY,    /* receiving the body */
    AECD_PHASE_DISCARD, /* reply decided; ignoring the rest of the body */
    AECD_PHASE_WORKING, /* suspended: in the worker/batcher pipeline */
    AECD_PHASE_REPLIED, /* response queued */
} aecd_phase;

typedef struct aecd_request aecd_request;
struct aecd_request {
    aecd_server *srv;
    struct MHD_Connection *conn;
    const aecd_route *route;
    aecd_endpoint endpoint;
    aecd_phase phase;
    uint64_t t_start_ns;
    char id[40]; /* X-Request-Id */
    char method[16];
    char path[160];                         /* for the log: truncated */
    char path_arg[AECD_MODEL_NAME_MAX + 8]; /* what follows a prefix route's path */
    char remote[48];                        /* client address */
    char *query;                            /* raw query string (after '?'), or NULL */
    size_t query_len;

    /* captured from the headers in the first call */
    aecd_media_type media;
    int has_media;     /* a Content-Type was sent (and parsed) */
    int accept_latent; /* Accept names application/x-aec-latent */
    aecd_params params;
    uint64_t deadline_ns;    /* X-Request-Timeout-Ms / ?timeout_ms=: work not started by
                                then is dropped with 503; 0 = none */
    char if_none_match[256]; /* the If-None-Match header, or "" */
    char etag[24];           /* a model reply's strong ETag (request.c), or "" */

    /* the body */
    uint8_t *body;
    size_t body_len, body_cap, body_limit;
    size_t body_expect; /* Content-Length, or 0 */
    uint64_t body_seen; /* bytes received, kept or not */
    uint64_t discarded; /* bytes thrown away after the reply was decided */

    /* the pipeline */
    aecd_version *ver;      /* the model version it uses (uses_model routes), a reference */
    size_t reserved;        /* bytes it holds of the memory budget (budget.h) */
    size_t reserved_passed; /* of them: taken by passing a waiter (budget.h) */
    aecd_task task;
    aecd_job job;
    int upstream; /* counted by the batcher as upstream (see aecd_request_submit) */
    float *tensor_in, *tensor_out;
    /* /anomaly: the cat-face cascade's result on the upload, when it ran */
    int has_face;
    double face_evidence;
    long face_detections;
    int has_rotation; /* the rotation recognizer's raw score, when it ran */
    double rotation_raw;

    /* the reply */
    struct MHD_Response *resp;
    unsigned status;
    size_t resp_bytes;
    char err_code[40];
};

/* ---- routes: the hooks the pipeline calls ------------------------------------- */

typedef enum {
    AECD_STAGE_DONE = 0,    /* the reply is set */
    AECD_STAGE_PENDING = 1, /* a batcher job was submitted; finish() follows */
} aecd_stage;

struct aecd_route {
    const char *path; /* exact, or a prefix ending in '/' other than "/" itself (then the rest
                         of the path is req->path_arg) */
    aecd_endpoint endpoint;
    int is_post;        /* POST with a body; otherwise GET (and HEAD) */
    int is_public;      /* answered without the API key */
    int uses_model;     /* takes ?model= and holds that model's version (req->ver) */
    const char *params; /* query parameters it takes, space separated */
    /* I/O thread, from the headers: content type, body limit and the
     * batcher pass (req->job.pass). 0, or -1 with the reply set. */
    int (*check)(aecd_request *req);
    /* I/O thread: a cheap endpoint answers here. */
    void (*respond)(aecd_request *req);
    /* Worker: parse the body, submit one job (PENDING) or reply (DONE).
     * After submitting, it must not touch req: finish may already run. */
    aecd_stage (*prepare)(aecd_request *req);
    /* Worker, after the job: build the reply. */
    void (*finish)(aecd_request *req);
};

/* ---- replies: each sets req->resp (taking ownership of body) ---------------- */

void aecd_reply(aecd_request *req, unsigned status, const char *content_type, void *body,
                size_t len);
void aecd_reply_static(aecd_request *req, unsigned status, const char *content_type,
                       const char *body);
/* {"error":{"code":code,"message":...}} with the headers that status needs
 * (Retry-After for 503, WWW-Authenticate for 401; Allow is added by http.c). */
void aecd_reply_error(aecd_request *req, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Frees the body and returns its bytes to the --max-buffered budget. */
void aecd_request_free_body(aecd_request *req);

/* Adds a header to the reply already set (ETag, Cache-Control...). */
void aecd_reply_header(aecd_request *req, const char *name, const char *value);

/* Hands a model request to the workers (step 3): suspends the connection
 * and counts it upstream of the batcher. A full queue replies 503 at once
 * (the connection is resumed to send it). */
void aecd_request_start(aecd_request *req);

/* Makes v the request's model version instead of the one it holds, with
 * pass as its batcher pass (e.g. /decode of a latent that names its model).
 * Takes a reference to v. Only before the job is submitted. */
void aecd_request_use_version(aecd_request *req, aecd_version *v, const aecd_pass *pass);

/* Reserves bytes of the memory budget (--max-memory) for what the request
 * is about to allocate (what: words for a message, "decoding a 4000x3000
 * image"), waiting until they fit, at most until the request's deadline or
 * --timeout. 0, or -1 with the reply set: 413 image_too_large when they can
 * never fit, 503 overloaded when the wait ran out, 503 not_ready when
 * shutting down. aecd_request_unreserve gives some back early; the rest is
 * returned when the request ends. */
int aecd_request_reserve(aecd_request *req, size_t bytes, const char *what);
void aecd_request_unreserve(aecd_request *req, size_t bytes);

/* What the pipeline holds when the request ends: its version, its upstream
 * count (a bug if still counted), its memory reservation, tensors and body. */
void aecd_request_release(aecd_request *req);

/* Submits req->job to the batcher. A model request
 * counts as upstream of the batcher (batcher.h) from when http.c hands it
 * to the workers until this call, or until its prepare replies without
 * calling it (an error): either ends the count, exactly once. After OK, req
 * belongs to the batcher: the caller must not touch it. */
aecd_submit_result aecd_request_submit(aecd_request *req);

/* The on_done of every request's batcher job (job->ctx is the request):
 * queues route->finish on the workers' continuation queue. */
void aecd_request_job_done(aecd_job *job);

#endif
