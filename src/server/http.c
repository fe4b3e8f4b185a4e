/* http.c - the libmicrohttpd glue: listening socket, daemon options, the
 * request lifecycle (see server.h for the flow), body accumulation under
 * limits, authentication, suspension while model work runs, replies and the
 * one log line per request.
 *
 * The access handler is called on an I/O thread:
 *   first call    route, auth, method, query and header checks
 *   upload calls  body bytes, appended while under the route's limit
 *   final call    cheap endpoints answer; model endpoints are suspended
 *                 and handed to the workers
 *   resumed call  the reply built by a worker is queued
 * An error found from the headers of a request that has a body, when the
 * client waits for "100 Continue" (or declares more than AECD_DRAIN_MAX
 * bytes), is queued at once: MHD sends it without reading the body and
 * closes the connection. A client that is already sending its body has it
 * read and thrown away (nothing is kept) and gets the reply once it ends:
 * closing on unread bytes would make the kernel reset the connection and
 * the client could lose the reply. Without a body, the reply is queued at
 * the final call and the connection stays open.
 *
 * libmicrohttpd 0.9.75 cannot queue a reply while a body is still arriving
 * (MHD_queue_response fails in that state), so a chunked upload (no
 * Content-Length) that outgrows the limit is likewise drained, for up to
 * AECD_DRAIN_MAX more bytes, and gets its 413 when it ends; past that the
 * connection is closed.
 *
 * MHD's connection notifications feed the header watchdog (watchdog.h,
 * --header-timeout): a connection is watched from when it opens, or its
 * previous request ended, until the first call of its next request.
 */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "aec/clock.h"

#include "buf.h"
#include "log.h"
#include "params.h"
#include "request.h"
#include "routes.h"
#include "watchdog.h"

#define AECD_CONN_MEMORY (64u << 10)  /* per connection: request headers and read buffer */
#define AECD_DRAIN_MAX (128ull << 20) /* see the comment at the top */
#define AECD_LISTEN_BACKLOG 511

static const char k_json[] = "application/json";

/* When building the reply itself failed (out of memory). */
static struct MHD_Response *fallback_reply(aecd_request *req)
{
    static const char body[] =
        "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"the server is out of memory\"}}\n";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (resp) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, k_json);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    }
    req->status = MHD_HTTP_SERVICE_UNAVAILABLE;
    req->resp_bytes = sizeof body - 1;
    snprintf(req->err_code, sizeof req->err_code, "out_of_memory");
    return resp;
}

static enum MHD_Result queue_reply(aecd_request *req)
{
    struct MHD_Response *resp = req->resp ? req->resp : fallback_reply(req);
    req->resp = NULL;
    req->phase = AECD_PHASE_REPLIED;
    if (!resp)
        return MHD_NO; /* nothing can be sent: close */
    MHD_add_response_header(resp, "X-Request-Id", req->id);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (req->etag[0] && (req->status == MHD_HTTP_OK || req->status == MHD_HTTP_NOT_MODIFIED)) {
        /* a model reply: the same request gets the same bytes while the model
         * stays; after a reload it may not, so a cache revalidates */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, req->etag);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "private, no-cache");
    } else {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    }
    if (req->status == MHD_HTTP_METHOD_NOT_ALLOWED && req->route)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, aecd_route_allow(req->route));
    if (atomic_load(&req->srv->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(req->conn, req->status, resp);
    MHD_destroy_response(resp);
    return ok;
}

/* ---- header checks (first call) ------------------------------------------------------ */

/* The connection's entry in the header watchdog, or NULL. */
static aecd_watch *watch_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static const char *header(aecd_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

/* Compares in time that depends only on the key's length. */
static int key_matches(const char *key, const char *given)
{
    size_t k = strlen(key), n = strlen(given);
    unsigned char d = (unsigned char)(n != k);
    for (size_t i = 0; i < k; i++)
        d |= (unsigned char)key[i] ^ (unsigned char)(i < n ? given[i] : 0);
    return d == 0;
}

static int authorized(aecd_request *req)
{
    const char *h = header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return 0;
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    return key_matches(req->srv->cfg->api_key, h);
}

static int expects_continue(aecd_request *req)
{
    const char *e = header(req, MHD_HTTP_HEADER_EXPECT);
    return e && strcasecmp(e, "100-continue") == 0;
}

static int has_body(aecd_request *req)
{
    const char *cl = header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    return (cl && strcmp(cl, "0") != 0) || te;
}

/* Content-Length, or -1 when absent (MHD has already refused a malformed one). */
static long long content_length(aecd_request *req)
{
    const char *cl = header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl)
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(cl, &end, 10);
    if (errno || *end || v > (unsigned long long)INT64_MAX)
        return INT64_MAX;
    return (long long)v;
}

static int accepts_latent(const char *accept)
{
    for (const char *p = accept; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        static const char t[] = "application/x-aec-latent";
        size_t n = sizeof t - 1;
        if (strncasecmp(p, t, n) == 0 &&
            (p[n] == '\0' || p[n] == ',' || p[n] == ';' || p[n] == ' '))
            return 1;
        p = strchr(p, ',');
    }
    return 0;
}

static void capture_headers(aecd_request *req)
{
    const char *ct = header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct) {
        req->has_media = 1;
        aecd_media_type_parse(ct, &req->media); /* malformed: type "" */
    }
    req->accept_latent = accepts_latent(header(req, MHD_HTTP_HEADER_ACCEPT));
    const char *inm = header(req, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm)
        snprintf(req->if_none_match, sizeof req->if_none_match, "%s", inm);
}

/* The model the request names (?model=) or the default: req->ver holds a
 * reference to its version until the request ends. 0, or -1 with the reply set. */
static int take_model(aecd_request *req)
{
    char msg[512];
    int state;
    const char *name = req->params.model[0] ? req->params.model : NULL;
    req->ver = aecd_registry_get(req->srv->registry, name, &state, msg, sizeof msg);
    if (!req->ver) {
        if (state < 0)
            aecd_reply_error(req, MHD_HTTP_NOT_FOUND, "model_not_found", "%s", msg);
        else if (state == AECD_MODEL_LOADING)
            aecd_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready", "%s", msg);
        else
            aecd_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "model_unavailable", "%s", msg);
        return -1;
    }
    if (req->params.dtype == AECD_DTYPE_CODED && !req->ver->codec && !req->ver->photo) {
        aecd_reply_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_parameter",
                         "dtype=coded needs a model with codec tables; model %s (%s) has none"
                         " (train one with aec-train --lambda)",
                         req->ver->name, req->ver->id);
        return -1;
    }
    return 0;
}

/* The deadline: ?timeout_ms= or X-Request-Timeout-Ms (the query wins),
 * counted from when the request arrived. 0, or -1 with the reply set. */
static int set_deadline(aecd_request *req)
{
    long ms = req->params.timeout_ms;
    const char *h = header(req, "X-Request-Timeout-Ms");
    if (!ms && h && aecd_parse_ms(h, &ms) != 0) {
        aecd_reply_error(req, MHD_HTTP_BAD_REQUEST, "bad_request",
                         "X-Request-Timeout-Ms must be an integer from 1 to %ld",
                         AECD_MAX_TIMEOUT_MS);
        return -1;
    }
    if (ms)
        req->deadline_ns = req->t_start_ns + (uint64_t)ms * 1000000u;
    return 0;
}

/* 0 if the request may proceed; -1 with the reply set. */
static int check_headers(aecd_request *req, const char *url, const char *method)
{
    aecd_server *srv = req->srv;
    const aecd_route *r = aecd_route_find(url, req->path_arg, sizeof req->path_arg);
    if (!r) {
        aecd_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found",
                         "no endpoint at this path; the API is POST /encode, /decode,"
                         " /anomaly, /v1/models/reload and GET /healthz, /readyz, /v1/models,"
                         " /v1/models/NAME, /v1/model, /metrics");
        return -1;
    }
    req->route = r;
    req->endpoint = r->endpoint;
    if (!r->is_public && srv->cfg->api_key && !authorized(req)) {
        aecd_reply_error(req, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                         header(req, MHD_HTTP_HEADER_AUTHORIZATION)
                             ? "the API key is wrong"
                             : "this endpoint needs 'Authorization: Bearer <API key>'");
        return -1;
    }
    int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (r->is_post ? strcmp(method, "POST") != 0 : !is_get) {
        aecd_reply_error(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                         "%s is not allowed on %s; use %s", req->method, r->path,
                         aecd_route_allow(r));
        return -1;
    }
    if (req->query_len > AECD_MAX_QUERY) {
        aecd_reply_error(req, MHD_HTTP_URI_TOO_LONG, "uri_too_long",
                         "the query string is longer than %d bytes", AECD_MAX_QUERY);
        return -1;
    }
    char msg[512];
    if (aecd_params_parse(req->query, req->query_len, r->params, &req->params, msg, sizeof msg) !=
        0) {
        aecd_reply_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid_parameter", "%s", msg);
        return -1;
    }
    if (set_deadline(req) != 0 || (r->uses_model && take_model(req) != 0))
        return -1;
    capture_headers(req);
    if (!r->is_post)
        return 0;
    if (r->check && r->check(req) != 0)
        return -1;
    long long cl = content_length(req);
    if (cl >= 0 && (unsigned long long)cl > req->body_limit) {
        aecd_reply_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
                         "the body is %lld bytes; this endpoint takes at most %zu", cl,
                         req->body_limit);
        return -1;
    }
    req->body_expect = cl > 0 ? (size_t)cl : 0;
    return 0;
}

static void set_request_id(aecd_request *req)
{
    const char *given = header(req, "X-Request-Id");
    size_t n = given ? strlen(given) : 0;
    int ok = n > 0 && n < sizeof req->id && n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)given[i]) || strchr("-_.:", given[i]);
    if (ok) {
        memcpy(req->id, given, n + 1);
        return;
    }
    unsigned long long k = atomic_fetch_add(&req->srv->next_req_id, 1);
    snprintf(req->id, sizeof req->id, "%08llx%08llx",
             (unsigned long long)(req->srv->req_id_salt & 0xffffffffu), k & 0xffffffffffull);
}

/* ---- the access handler ------------------------------------------------------------- */

static enum MHD_Result first_call(aecd_request *req, const char *url, const char *method)
{
    snprintf(req->method, sizeof req->method, "%s", method);
    snprintf(req->path, sizeof req->path, "%s", url);
    aecd_watch_headers_done(req->srv->watchdog, watch_of(req->conn));
    set_request_id(req);
    req->phase = AECD_PHASE_BODY;
    if (check_headers(req, url, method) == 0)
        return MHD_YES;
    req->phase = AECD_PHASE_DISCARD; /* reply at the final call */
    long long cl = content_length(req);
    if (has_body(req) && (expects_continue(req) || cl > (long long)AECD_DRAIN_MAX))
        return queue_reply(req); /* MHD answers without reading the body, then closes */
    return MHD_YES;
}

/* Grows the body buffer as bytes arrive (never to what a client merely
 * declares), within the route's limit and the server-wide --max-buffered.
 * 0, or -1 with the reply set. */
static int grow_body(aecd_request *req, size_t need)
{
    if (need <= req->body_cap)
        return 0;
    size_t max = req->body_limit + 1;
    if (req->body_expect && req->body_expect + 1 < max)
        max = req->body_expect + 1;
    size_t cap = req->body_cap ? req->body_cap : 64u << 10;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > max)
        cap = max > need ? max : need;
    size_t more = cap - req->body_cap;
    size_t total = atomic_fetch_add(&req->srv->body_bytes, more) + more;
    if (total > req->srv->cfg->max_buffered) {
        atomic_fetch_sub(&req->srv->body_bytes, more);
        aecd_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "overloaded",
                         "the server is holding too many uploads (--max-buffered); retry shortly");
        return -1;
    }
    uint8_t *p = realloc(req->body, cap);
    if (!p) {
        atomic_fetch_sub(&req->srv->body_bytes, more);
        aecd_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory",
                         "no memory for a %zu-byte body", need);
        return -1;
    }
    req->body = p;
    req->body_cap = cap;
    return 0;
}

/* Upload bytes. Returns MHD_NO to close the connection. */
static enum MHD_Result take_body(aecd_request *req, const char *data, size_t n)
{
    req->body_seen += n;
    if (req->phase == AECD_PHASE_DISCARD) {
        req->discarded += n;
        return req->discarded > AECD_DRAIN_MAX ? MHD_NO : MHD_YES;
    }
    if (!req->route->is_post)
        return MHD_YES; /* a GET with a body: ignored */
    if (n > req->body_limit - req->body_len) {
        aecd_request_free_body(req);
        aecd_reply_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
                         "the body is longer than %zu bytes, the most this endpoint takes",
                         req->body_limit);
        req->phase = AECD_PHASE_DISCARD;
        return MHD_YES;
    }
    if (grow_body(req, req->body_len + n + 1) != 0) {
        aecd_request_free_body(req);
        req->phase = AECD_PHASE_DISCARD;
        return MHD_YES;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
    req->body[req->body_len] = '\0';
    return MHD_YES;
}

static enum MHD_Result final_call(aecd_request *req)
{
    const aecd_route *r = req->route;
    if (r->respond) {
        r->respond(req);
        return queue_reply(req);
    }
    if (req->body_len == 0 && r->check) { /* a POST without a check takes no body */
        aecd_reply_error(req, MHD_HTTP_BAD_REQUEST, "empty_body", "the request body is empty");
        return queue_reply(req);
    }
    aecd_request_start(req);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)conn;
    (void)version;
    aecd_request *req = *con_cls;
    if (!req)
        return MHD_NO; /* no memory for a request context: close */
    size_t n = *upload_data_size;
    *upload_data_size = 0; /* every byte is always consumed */
    switch (req->phase) {
    case AECD_PHASE_HEADERS: return first_call(req, url, method);
    case AECD_PHASE_BODY: return n ? take_body(req, upload_data, n) : final_call(req);
    case AECD_PHASE_DISCARD: return n ? take_body(req, upload_data, n) : queue_reply(req);
    case AECD_PHASE_WORKING: /* resumed: the worker has built the reply */ return queue_reply(req);
    case AECD_PHASE_REPLIED: return MHD_YES;
    }
    return MHD_NO;
}

/* ---- request start and end ------------------------------------------------------------- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    aecd_server *srv = cls;
    aecd_request *req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    req->srv = srv;
    req->conn = conn;
    req->t_start_ns = aec_now_ns();
    req->phase = AECD_PHASE_HEADERS;
    req->endpoint = AECD_EP_OTHER;
    const char *q = strchr(uri, '?');
    if (q) {
        req->query_len = strlen(q + 1);
        size_t keep = req->query_len > AECD_MAX_QUERY ? 0 : req->query_len;
        req->query = strndup(q + 1, keep);
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, req->remote,
                      sizeof req->remote);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, req->remote,
                      sizeof req->remote);
    }
    atomic_fetch_add(&srv->in_flight, 1);
    aecd_metrics_request_begin(srv->metrics);
    return req;
}

static void request_free(aecd_request *req)
{
    aecd_request_release(req);
    free(req->query);
    free(req);
}

static const char *termination_name(enum MHD_RequestTerminationCode toe)
{
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK: return "ok";
    case MHD_REQUEST_TERMINATED_WITH_ERROR: return "error";
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: return "timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "shutdown";
    case MHD_REQUEST_TERMINATED_READ_ERROR: return "read_error";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT: return "client_abort";
    }
    return "unknown";
}

/* The status the log and the metrics record: what was sent, or 408 when the
 * connection timed out first (--timeout, or --header-timeout: late), or 499
 * when it ended some other way. */
static unsigned final_status(const aecd_request *req, enum MHD_RequestTerminationCode toe, int late)
{
    if (req->phase == AECD_PHASE_REPLIED && req->status)
        return req->status;
    return toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED || late ? 408 : 499;
}

static void log_request(const aecd_request *req, unsigned status, uint64_t ns,
                        enum MHD_RequestTerminationCode toe, int late)
{
    aecd_logline l;
    aecd_log_begin(&l, status >= 500 && status != 503 ? AECD_LOG_ERROR : AECD_LOG_INFO, "request");
    aecd_log_str(&l, "id", req->id);
    aecd_log_str(&l, "method", req->method);
    aecd_log_str(&l, "path", req->path);
    aecd_log_int(&l, "status", status);
    aecd_log_int(&l, "bytes", (long long)(req->phase == AECD_PHASE_REPLIED ? req->resp_bytes : 0));
    aecd_log_int(&l, "us", (long long)(ns / 1000));
    if (req->remote[0])
        aecd_log_str(&l, "remote", req->remote);
    if (req->err_code[0])
        aecd_log_str(&l, "error", req->err_code);
    if (late && req->phase != AECD_PHASE_REPLIED)
        aecd_log_str(&l, "end", "header_timeout");
    else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        aecd_log_str(&l, "end", termination_name(toe));
    aecd_log_end(&l);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    aecd_server *srv = cls;
    aecd_request *req = *con_cls;
    aecd_watch *w = watch_of(conn);
    aecd_watch_request_done(srv->watchdog, w); /* the next request's header starts now */
    if (!req)
        return;
    *con_cls = NULL;
    if (!req->method[0]) /* the handler never ran (MHD refused the headers itself) */
        snprintf(req->method, sizeof req->method, "-");
    uint64_t ns = aec_now_ns() - req->t_start_ns;
    int late = aecd_watch_expired(srv->watchdog, w);
    unsigned status = final_status(req, toe, late);
    aecd_metrics_request_end(srv->metrics, req->endpoint, status, ns);
    log_request(req, status, ns, toe, late);
    request_free(req);
    atomic_fetch_sub(&srv->in_flight, 1);
}

/* Connection open and close: the header watchdog's entries. MHD notifies
 * the close before it closes the socket. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    aecd_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci ? aecd_watch_open(srv->watchdog, ci->connect_fd) : NULL;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        aecd_watch_close(srv->watchdog, *socket_context);
        *socket_context = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    aecd_logline l;
    aecd_log_begin(&l, AECD_LOG_WARN, "libmicrohttpd");
    aecd_log_str(&l, "detail", msg);
    aecd_log_end(&l);
}

/* ---- daemon ----------------------------------------------------------------------------- */

static int bind_one(const struct addrinfo *ai, int *err)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, AECD_LISTEN_BACKLOG) != 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    return fd;
}

int aecd_http_listen(aecd_server *srv)
{
    const aecd_config *cfg = srv->cfg;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(cfg->host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "aecd: --host %s: %s\n", cfg->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = bind_one(ai, &err);
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "aecd: cannot listen on %s port %d: %s%s\n", cfg->host, cfg->port,
                strerror(err),
                err == EADDRINUSE ? " (another process is using the port; pick another"
                                    " with --port, or --port 0 for any free one)"
                                  : "");
        return -1;
    }
    srv->listen_fd = fd;
    return 0;
}

int aecd_http_port(aecd_server *srv)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(srv->listen_fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

int aecd_http_start(aecd_server *srv)
{
    const aecd_config *cfg = srv->cfg;
    srv->watchdog = aecd_watchdog_create(cfg->header_timeout_s);
    if (!srv->watchdog) {
        fprintf(stderr, "aecd: cannot start the header watchdog thread\n");
        return -1;
    }
    /* poll(), level-triggered, rather than MHD's edge-triggered epoll: under
     * -j4 test load, after 500 clients hung up at once, an epoll thread pool
     * was once seen still holding 128 of those sockets 20 s later (exactly
     * its epoll batch size; they would have gone only at --timeout). poll()
     * sees every closed socket on its next pass, and --max-connections
     * (default 1024) keeps each pass short. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_POLL;
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
        srv, /* first, to catch every message */
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)srv->listen_fd, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)cfg->io_threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)AECD_CONN_MEMORY, MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        srv, MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_END);
    if (!srv->daemon) {
        fprintf(stderr, "aecd: libmicrohttpd could not start (see the message above)\n");
        return -1;
    }
    return 0;
}

void aecd_http_quiesce(aecd_server *srv)
{
    if (srv->daemon)
        MHD_quiesce_daemon(srv->daemon); /* returns listen_fd, still ours to close */
}

void aecd_http_stop(aecd_server *srv)
{
    if (srv->daemon)
        MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
    aecd_watchdog_free(srv->watchdog); /* after MHD: every connection is closed */
    srv->watchdog = NULL;
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    srv->listen_fd = -1;
}

long aecd_http_in_flight(aecd_server *srv)
{
    return atomic_load(&srv->in_flight);
}

long aecd_http_pipeline(aecd_server *srv)
{
    return atomic_load(&srv->pipe_count);
}
