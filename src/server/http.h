/* http.h - one HTTP request as the daemon sees it, and how to answer it.
 *
 * http.c owns the libmicrohttpd glue: the daemon, the request lifecycle,
 * body accumulation under limits, suspension while model work runs, and
 * the completion log line. Route handlers (routes.c) only read the request
 * fields below and call one aecd_reply_* function.
 */
#ifndef AECD_HTTP_H
#define AECD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "batcher.h"
#include "metrics.h"
#include "multipart.h"
#include "server.h"
#include "workers.h"

struct MHD_Connection;
struct MHD_Response;

/* ?dtype=coded: the entropy-coded binary latent v2 (include/aec/codec.h) */
#define AECD_DTYPE_CODED 100

typedef struct aecd_route aecd_route;

/* Query parameters, parsed strictly (params.c). */
typedef struct {
    int format; /* AECD_FORMAT_* */
    int dtype;  /* aec_latent_dtype, or AECD_DTYPE_CODED; 0 = unset */
    int width, height;
    int has_threshold;
    double threshold;
    int heatmap;
} aecd_params;

enum { AECD_FORMAT_UNSET = 0, AECD_FORMAT_JSON, AECD_FORMAT_BINARY };

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
    char path[160];  /* for the log: truncated */
    char remote[48]; /* client address */
    char *query;     /* raw query string (after '?'), or NULL */
    size_t query_len;

    /* captured from the headers in the first call */
    aecd_media_type media;
    int has_media;     /* a Content-Type was sent (and parsed) */
    int accept_latent; /* Accept names application/x-aec-latent */
    aecd_params params;

    /* the body */
    uint8_t *body;
    size_t body_len, body_cap, body_limit;
    size_t body_expect; /* Content-Length, or 0 */
    uint64_t body_seen; /* bytes received, kept or not */
    uint64_t discarded; /* bytes thrown away after the reply was decided */

    /* the pipeline */
    aecd_task task;
    aecd_job job;
    int upstream; /* counted by the batcher as upstream (see aecd_request_submit) */
    float *tensor_in, *tensor_out;

    /* the reply */
    struct MHD_Response *resp;
    unsigned status;
    size_t resp_bytes;
    char err_code[40];
};

/* Opens the listening socket (so a busy port is reported before anything
 * else starts). 0, or -1 with a message on stderr. */
int aecd_http_listen(aecd_server *srv);
/* Starts the MHD daemon on srv->listen_fd. 0 or -1. */
int aecd_http_start(aecd_server *srv);
/* The bound port. */
int aecd_http_port(aecd_server *srv);
/* Stops accepting new connections (SIGTERM). */
void aecd_http_quiesce(aecd_server *srv);
/* Stops the daemon, closing every connection. No request may be in the
 * worker/batcher pipeline (see aecd_http_pipeline). */
void aecd_http_stop(aecd_server *srv);
/* Requests received and not yet completed. */
long aecd_http_in_flight(aecd_server *srv);
/* Requests inside the worker/batcher pipeline (connection suspended). */
long aecd_http_pipeline(aecd_server *srv);

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

/* Submits req->job (kind req->route->kind) to the batcher. A model request
 * counts as upstream of the batcher (batcher.h) from when http.c hands it
 * to the workers until this call, or until its prepare replies without
 * calling it (an error): either ends the count, exactly once. After OK, req
 * belongs to the batcher: the caller must not touch it. */
aecd_submit_result aecd_request_submit(aecd_request *req);

/* The on_done of every request's batcher job (job->ctx is the request):
 * queues route->finish on the workers' continuation queue. */
void aecd_request_job_done(aecd_job *job);

#endif
