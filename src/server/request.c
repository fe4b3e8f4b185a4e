/* request.c - the request pipeline (see request.h and the steps in
 * server.h): replies, the hand-over to the workers, the batcher's upstream
 * count, the job, its completion and the resumed connection.
 */
#include "request.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/clock.h"
#include "aec/hash.h"

#include "budget.h"
#include "buf.h"
#include "log.h"

#ifndef AEC_VERSION
#define AEC_VERSION "dev"
#endif

static const char k_json[] = "application/json";

/* ---- replies ----------------------------------------------------------------- */

static void set_reply(aecd_request *req, unsigned status, struct MHD_Response *resp,
                      const char *content_type, size_t len)
{
    if (req->resp) /* a second reply replaces the first */
        MHD_destroy_response(req->resp);
    req->resp = resp;
    req->status = status;
    req->resp_bytes = len;
    if (resp && content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
}

void aecd_reply(aecd_request *req, unsigned status, const char *content_type, void *body,
                size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(body);
    set_reply(req, status, resp, content_type, len);
}

void aecd_reply_static(aecd_request *req, unsigned status, const char *content_type,
                       const char *body)
{
    size_t len = strlen(body);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
    set_reply(req, status, resp, content_type, len);
}

void aecd_reply_error(aecd_request *req, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(req->err_code, sizeof req->err_code, "%s", code);

    aecd_buf b;
    aecd_buf_init(&b);
    aecd_buf_puts(&b, "{\"error\":{\"code\":");
    aecd_buf_json_str(&b, code);
    aecd_buf_puts(&b, ",\"message\":");
    aecd_buf_json_str(&b, msg);
    aecd_buf_puts(&b, "}}\n");
    size_t len;
    char *body = aecd_buf_steal(&b, &len);
    if (!body) {
        set_reply(req, status, NULL, NULL, 0);
        return;
    }
    aecd_reply(req, status, k_json, body, len);
    if (!req->resp)
        return;
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        MHD_add_response_header(req->resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(req->resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"aecd\"");
}

/* Does the If-None-Match list name tag ("*" names any)? */
static int etag_listed(const char *list, const char *tag)
{
    size_t n = strlen(tag);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (p[0] == '*')
            return 1;
        if (strncmp(p, "W/", 2) == 0)
            p += 2; /* weak comparison, as If-None-Match specifies */
        if (strncmp(p, tag, n) == 0 && (p[n] == 0 || p[n] == ',' || p[n] == ' '))
            return 1;
        const char *comma = strchr(p, ',');
        if (!comma)
            break;
        p = comma;
    }
    return 0;
}

/* A model request's ETag, computed on the worker before any work (hashing a
 * body of up to --max-body bytes has no place on an I/O thread): a hash of
 * what decides the reply's bytes (the server version, the model version's
 * id, the path, the query, whether a binary latent is accepted, the body).
 * The replies are deterministic (README: "Same answer on every CPU"), so
 * the same request to the same model always gets the same bytes and the
 * same ETag; a reload that changes the model changes the ETag. Returns 1
 * when If-None-Match already names it. */
static int request_etag(aecd_request *req)
{
    uint64_t h = aec_hash64(AEC_HASH64_INIT, AEC_VERSION, sizeof AEC_VERSION);
    h = aec_hash64(h, &req->ver->id_hash, sizeof req->ver->id_hash);
    h = aec_hash64(h, req->route->path, strlen(req->route->path) + 1);
    if (req->query)
        h = aec_hash64(h, req->query, strlen(req->query) + 1);
    unsigned char accept = (unsigned char)req->accept_latent;
    h = aec_hash64(h, &accept, 1);
    h = aec_hash64(h, req->body, req->body_len);
    snprintf(req->etag, sizeof req->etag, "\"%016llx\"", (unsigned long long)h);
    return req->if_none_match[0] && etag_listed(req->if_none_match, req->etag);
}

void aecd_reply_header(aecd_request *req, const char *name, const char *value)
{
    if (req->resp)
        MHD_add_response_header(req->resp, name, value);
}

void aecd_request_free_body(aecd_request *req)
{
    if (req->body_cap)
        atomic_fetch_sub(&req->srv->body_bytes, req->body_cap);
    free(req->body);
    req->body = NULL;
    req->body_len = req->body_cap = 0;
}

/* ---- the worker/batcher pipeline -------------------------------------------------- */

/* The batcher's upstream count (batcher.h): a model request enters it when
 * it is handed to the workers (aecd_request_start) and leaves it when its job is
 * submitted, or when it fails before that (no worker queue slot, or its
 * prepare replied with an error). req->upstream makes every exit count
 * exactly once. */
static void upstream_enter(aecd_request *req)
{
    req->upstream = 1;
    aecd_batcher_admit(req->srv->batcher, aecd_pass_lane(&req->job.pass));
}

static void upstream_leave(aecd_request *req)
{
    if (!req->upstream)
        return;
    req->upstream = 0;
    aecd_batcher_withdraw(req->srv->batcher, aecd_pass_lane(&req->job.pass));
}

aecd_submit_result aecd_request_submit(aecd_request *req)
{
    req->upstream = 0; /* the submit ends the count, whatever its result */
    req->job.deadline_ns = req->deadline_ns;
    return aecd_batcher_submit(req->srv->batcher, &req->job);
}

void aecd_request_use_version(aecd_request *req, aecd_version *v, const aecd_pass *pass)
{
    int counted = req->upstream;
    upstream_leave(req);
    aecd_version_retain(v);
    aecd_version_release(req->ver);
    req->ver = v;
    req->job.pass = *pass;
    if (counted)
        upstream_enter(req);
}

/* Resumes the connection; req may be freed by an I/O thread right after. */
static void resume(aecd_request *req)
{
    aecd_server *srv = req->srv;
    MHD_resume_connection(req->conn);
    atomic_fetch_sub(&srv->pipe_count, 1);
}

static aecd_request *request_of_task(aecd_task *t)
{
    return (aecd_request *)((char *)t - offsetof(aecd_request, task));
}

static void run_finish(aecd_task *t)
{
    aecd_request *req = request_of_task(t);
    req->route->finish(req);
    resume(req);
}

void aecd_request_job_done(aecd_job *job)
{
    aecd_request *req = job->ctx;
    req->task.run = run_finish;
    aecd_workers_continue(req->srv->workers, &req->task);
}

/* 1 (and the 503 set) when the request's deadline passed before its work began. */
static int expired(aecd_request *req)
{
    if (!req->deadline_ns || aec_now_ns() < req->deadline_ns)
        return 0;
    aecd_reply_error(req, 503, "deadline_exceeded",
                     "the request's deadline (X-Request-Timeout-Ms / ?timeout_ms) passed before"
                     " its work began");
    return 1;
}

/* 1 (and the 304 set) when the client already holds this reply. */
static int not_modified(aecd_request *req)
{
    if (!req->route->uses_model || !request_etag(req))
        return 0;
    aecd_reply_static(req, 304, NULL, "");
    return 1;
}

static void run_prepare(aecd_task *t)
{
    aecd_request *req = request_of_task(t);
    if (expired(req) || not_modified(req) || req->route->prepare(req) == AECD_STAGE_DONE) {
        upstream_leave(req); /* it failed before submitting, if it did not submit */
        resume(req);
    }
    /* else: req belongs to the batcher now, then to run_finish */
}

void aecd_request_start(aecd_request *req)
{
    aecd_server *srv = req->srv;
    req->phase = AECD_PHASE_WORKING;
    atomic_fetch_add(&srv->pipe_count, 1);
    MHD_suspend_connection(req->conn);
    req->task.run = run_prepare;
    upstream_enter(req); /* before a worker can take it and submit its job */
    if (aecd_workers_submit(srv->workers, &req->task) == 0)
        return;
    upstream_leave(req);
    if (atomic_load(&srv->draining))
        aecd_reply_error(req, 503, "not_ready", "the server is shutting down");
    else
        aecd_reply_error(req, 503, "overloaded",
                         "%d requests are already waiting for a worker; retry shortly",
                         srv->cfg->queue_size);
    resume(req); /* called again at once, to queue the 503 */
}

int aecd_request_reserve(aecd_request *req, size_t bytes, const char *what)
{
    aecd_budget *b = req->srv->budget;
    if (!b || !bytes)
        return 0;
    uint64_t until = req->deadline_ns;
    if (!until)
        until = aec_now_ns() + (uint64_t)req->srv->cfg->timeout_s * 1000000000u;
    int passed;
    switch (aecd_budget_reserve(b, bytes, until, &passed)) {
    case AECD_BUDGET_OK:
        req->reserved += bytes;
        req->reserved_passed += passed ? bytes : 0;
        return 0;
    case AECD_BUDGET_NEVER:
        aecd_reply_error(req, 413, "image_too_large",
                         "%s needs %zu MiB of memory; this server's --max-memory is %zu MiB", what,
                         (bytes >> 20) + 1, aecd_budget_limit(b) >> 20);
        return -1;
    case AECD_BUDGET_TIMEOUT:
        aecd_reply_error(req, 503, "overloaded",
                         "%s needs %zu MiB of memory and the server's --max-memory stayed in use"
                         " by other requests; retry shortly",
                         what, (bytes >> 20) + 1);
        return -1;
    case AECD_BUDGET_STOPPED: break;
    }
    aecd_reply_error(req, 503, "not_ready", "the server is shutting down");
    return -1;
}

void aecd_request_unreserve(aecd_request *req, size_t bytes)
{
    if (bytes > req->reserved)
        bytes = req->reserved;
    /* what was taken in line first, then what passed (either order is right:
     * the budget only needs each lane's total back) */
    size_t in_line = req->reserved - req->reserved_passed;
    size_t a = bytes < in_line ? bytes : in_line, p = bytes - a;
    if (req->srv->budget) {
        aecd_budget_release(req->srv->budget, a, 0);
        aecd_budget_release(req->srv->budget, p, 1);
    }
    req->reserved -= bytes;
    req->reserved_passed -= p;
}

void aecd_request_release(aecd_request *req)
{
    aecd_request_unreserve(req, req->reserved);
    if (req->upstream) { /* a bug: every way out of the pipeline ends the count */
        aecd_logf(AECD_LOG_ERROR, "request %s ended while counted upstream of the batcher",
                  req->id);
        upstream_leave(req);
    }
    aecd_version_release(req->ver);
    req->ver = NULL;
    if (req->resp)
        MHD_destroy_response(req->resp);
    req->resp = NULL;
    aecd_request_free_body(req);
    free(req->tensor_in);
    free(req->tensor_out);
    req->tensor_in = req->tensor_out = NULL;
}
