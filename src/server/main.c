/* main.c - aecd: options, startup, signals and orderly shutdown.
 *
 * Startup: options (exit 2 on a bad one) -> models (exit 1 if the folder
 * cannot be read or the default model does not load) -> listening socket (exit 1 if the port is
 * taken) -> batcher, workers, HTTP daemon -> --port-file -> one "listening" log line. Nothing is
 * served before every part is ready.
 *
 * Thread budget. The threads that compute are the request workers
 * (--threads, default 2 x cores: image decoding and resizing, PNG encoding)
 * and the model pass: one batcher thread calling the engine, which uses
 * --blas-threads threads (default: the number of cores), the engine's own
 * fixed-order kernels split over that many threads (include/aec/gemm.h; the
 * answer is the same bits for any count). OpenBLAS is set to the same count
 * (openblas_set_num_threads, overriding OPENBLAS_NUM_THREADS) for whatever
 * still calls it. The I/O
 * threads (--io-threads, default 2) only move bytes and answer the cheap
 * endpoints, and mostly sleep. Workers outnumber cores because they also
 * block on memory and are idle while their request is in the batcher;
 * decoding and the model pass overlap, which is the point of batching. On
 * a machine shared with other services, lower --blas-threads first.
 *
 * Shutdown (SIGTERM or SIGINT): /readyz turns 503 and replies carry
 * "Connection: close"; the listening socket is closed (MHD_quiesce_daemon);
 * in-flight requests get up to --shutdown-timeout seconds (a second signal
 * cuts the wait short); then queued model jobs are cancelled (503), the
 * running batch finishes, the workers drain, every connection is closed,
 * and the process exits 0.
 *
 * SIGHUP rescans the model folder on this thread (registry.h): new and
 * changed files load while the old versions serve, then swap in. A model
 * file is read whole into memory when it loads, so truncating or deleting
 * it while aecd runs changes nothing until the next reload.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "aec/anomaly.h"
#include "aec/model.h"

#include "batcher.h"
#include "budget.h"
#include "config.h"
#include "healthcheck.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "server.h"
#include "workers.h"

#ifndef AEC_VERSION
#define AEC_VERSION "dev"
#endif

/* ---- signals: a self-pipe, so any thread may take the signal ------------------------- */

static int g_sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(g_sig_pipe[1], &b, 1) < 0) {
        /* the pipe is full: a signal is already pending, which is enough */
    }
    errno = saved;
}

static int install_signals(void)
{
    if (pipe(g_sig_pipe) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(g_sig_pipe[i], F_SETFD, FD_CLOEXEC);
        fcntl(g_sig_pipe[i], F_SETFL, O_NONBLOCK);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGHUP, &sa, NULL) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Waits up to timeout_ms (-1: forever) for SIGTERM, SIGINT or SIGHUP;
 * returns it, or 0. */
static int wait_signal(int timeout_ms)
{
    struct pollfd pfd = {.fd = g_sig_pipe[0], .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return 0;
    unsigned char b = 0;
    if (read(g_sig_pipe[0], &b, 1) != 1)
        return 0;
    return b;
}

/* ---- startup ------------------------------------------------------------------------------ */

static uint64_t random_salt(void)
{
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, sizeof v) != (ssize_t)sizeof v)
            v = 0;
        close(fd);
    }
    return v ^ ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
}

static int load_models(aecd_server *srv)
{
    aec_error err = {{0}};
    if (aecd_registry_create(&srv->registry, srv->cfg, &err) != AEC_OK) {
        fprintf(stderr, "aecd: cannot serve the models: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* SIGHUP: rescan the model folder (registry.h), on this thread. */
static void reload_models(aecd_server *srv)
{
    aecd_reload_report rep;
    aec_error err = {{0}};
    if (aecd_registry_reload(srv->registry, &rep, &err) != AEC_OK) {
        aecd_logf(AECD_LOG_ERROR, "reload: %s", err.msg);
        return;
    }
    aecd_logline l;
    aecd_log_begin(&l, rep.failed ? AECD_LOG_WARN : AECD_LOG_INFO, "models reloaded");
    aecd_log_int(&l, "loaded", rep.loaded);
    aecd_log_int(&l, "failed", rep.failed);
    aecd_log_int(&l, "removed", rep.removed);
    aecd_log_int(&l, "unchanged", rep.unchanged);
    aecd_log_end(&l);
}

static int start_engine(aecd_server *srv)
{
    const aecd_config *cfg = srv->cfg;
    aec_error err = {{0}};
    aecd_batcher_opts bo = {
        .max_batch = cfg->max_batch,
        .batch_timeout_us = cfg->batch_timeout_us,
        .queue_size = cfg->queue_size,
    };
    if (aecd_batcher_create(&srv->batcher, &bo, srv->metrics, &err) != AEC_OK) {
        fprintf(stderr, "aecd: %s\n", err.msg);
        return -1;
    }
    srv->workers = aecd_workers_create(cfg->threads, cfg->queue_size);
    if (!srv->workers) {
        fprintf(stderr, "aecd: cannot start %d worker threads\n", cfg->threads);
        return -1;
    }
    return 0;
}

/* Written once listening, atomically (temp file + rename). */
static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int ok = f && fprintf(f, "%d\n", port) > 0;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "aecd: --port-file %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void log_started(const aecd_server *srv, int port)
{
    const aecd_config *cfg = srv->cfg;
    char msg[512], shape[64], address[300];
    int state;
    aecd_version *v = aecd_registry_get(srv->registry, NULL, &state, msg, sizeof msg);
    const aec_model *m = v->model; /* NULL when the default is a photo codec */
    if (m)
        snprintf(shape, sizeof shape, "%dx%dx%d", m->input.c, m->input.h, m->input.w);
    else
        snprintf(shape, sizeof shape, "any size");
    snprintf(address, sizeof address, strchr(cfg->host, ':') ? "[%s]:%d" : "%s:%d", cfg->host,
             port);
    aecd_logline l;
    aecd_log_begin(&l, AECD_LOG_INFO, "aecd listening");
    aecd_log_str(&l, "version", AEC_VERSION);
    aecd_log_str(&l, "address", address);
    aecd_log_str(&l, "models", cfg->model_path ? cfg->model_path : cfg->models_dir);
    aecd_registry_stats rs;
    aecd_registry_stats_get(srv->registry, &rs);
    aecd_log_int(&l, "served", rs.served);
    aecd_log_int(&l, "failed", rs.failed);
    aecd_log_str(&l, "default_model", v->name);
    aecd_log_str(&l, "model", v->id);
    aecd_log_str(&l, "input", shape);
    if (m)
        aecd_log_int(&l, "latent_dim", (long long)aec_model_latent_count(m));
    aecd_log_str(&l, "calibrated", v->calib.calibrated ? "true" : "false");
    aecd_log_str(&l, "codec", v->codec ? "true" : "false");
    aecd_log_int(&l, "threads", cfg->threads);
    aecd_log_int(&l, "io_threads", cfg->io_threads);
    aecd_log_int(&l, "blas_threads", cfg->blas_threads);
    aecd_log_int(&l, "max_batch", cfg->max_batch);
    aecd_log_int(&l, "batch_timeout_us", cfg->batch_timeout_us);
    aecd_log_int(&l, "queue_size", cfg->queue_size);
    aecd_log_int(&l, "max_memory_mib", (long long)(cfg->max_memory >> 20));
    aecd_log_str(&l, "auth", cfg->api_key ? "bearer" : "none");
    aecd_log_end(&l);
    aecd_version_release(v);
    int loopback = strncmp(cfg->host, "127.", 4) == 0 || strcmp(cfg->host, "::1") == 0 ||
                   strcmp(cfg->host, "localhost") == 0;
    if (!loopback && !cfg->api_key)
        aecd_logf(AECD_LOG_WARN, "listening beyond loopback without an API key"
                                 " (set --api-key-file to require one)");
}

/* ---- shutdown ----------------------------------------------------------------------------- */

static void drain(aecd_server *srv, int sig)
{
    const aecd_config *cfg = srv->cfg;
    aecd_logf(AECD_LOG_INFO, "signal %d: draining %ld in-flight requests (up to %d s)", sig,
              aecd_http_in_flight(srv), cfg->shutdown_timeout_s);
    atomic_store(&srv->draining, 1);
    aecd_http_quiesce(srv);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (aecd_http_in_flight(srv) == 0)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= cfg->shutdown_timeout_s) {
            aecd_logf(AECD_LOG_WARN, "shutdown timeout: closing %ld unfinished requests",
                      aecd_http_in_flight(srv));
            break;
        }
        int again = wait_signal(20);
        if (again && again != SIGHUP) {
            aecd_logf(AECD_LOG_WARN, "second signal: closing %ld unfinished requests now",
                      aecd_http_in_flight(srv));
            break;
        }
    }
    /* The order matters: no new work, cancel queued jobs and finish the
     * running batch, run every remaining worker task (each resumes its
     * connection), and only then stop MHD, which must not see a suspended
     * connection. */
    aecd_workers_close(srv->workers);
    aecd_budget_stop(srv->budget); /* requests waiting for memory give up (503) */
    aecd_batcher_stop(srv->batcher);
    aecd_workers_join(srv->workers);
    if (aecd_http_pipeline(srv) != 0) /* a bug: MHD would see a suspended connection */
        aecd_logf(AECD_LOG_ERROR, "%ld requests still suspended at shutdown",
                  aecd_http_pipeline(srv));
    aecd_http_stop(srv);
}

static void server_free(aecd_server *srv)
{
    aecd_http_stop(srv);
    aecd_batcher_free(srv->batcher);
    aecd_workers_free(srv->workers);
    aecd_registry_free(srv->registry); /* after the requests: they hold versions */
    aecd_metrics_free(srv->metrics);
    aecd_budget_free(srv->budget);
}

static int serve(aecd_server *srv)
{
    const aecd_config *cfg = srv->cfg;
    if (load_models(srv) != 0)
        return 1;
    srv->metrics = aecd_metrics_create(cfg->max_batch);
    srv->budget = aecd_budget_create(cfg->max_memory);
    if (!srv->metrics || !srv->budget) {
        fprintf(stderr, "aecd: out of memory\n");
        return 1;
    }
    if (aecd_http_listen(srv) != 0 || start_engine(srv) != 0 || aecd_http_start(srv) != 0)
        return 1;
    int port = aecd_http_port(srv);
    if (cfg->port_file && write_port_file(cfg->port_file, port) != 0)
        return 1;
    log_started(srv, port);
    int sig;
    while ((sig = wait_signal(-1)) == 0 || sig == SIGHUP)
        if (sig == SIGHUP)
            reload_models(srv);
    drain(srv, sig);
    aecd_logf(AECD_LOG_INFO, "aecd stopped");
    return 0;
}

int main(int argc, char **argv)
{
    aecd_config cfg;
    aecd_config_result r = aecd_config_load(&cfg, argc, argv);
    if (r != AECD_CONFIG_RUN) {
        aecd_config_free(&cfg);
        return r == AECD_CONFIG_EXIT ? 0 : 2;
    }
    if (cfg.check_health_url) {
        int rc = aecd_check_health(cfg.check_health_url);
        aecd_config_free(&cfg);
        return rc;
    }
    aecd_log_init(cfg.log_level, cfg.log_format);
    if (install_signals() != 0) {
        fprintf(stderr, "aecd: cannot install signal handlers: %s\n", strerror(errno));
        return 1;
    }
    openblas_set_num_threads(cfg.blas_threads);
    if (!cfg.max_memory)
        cfg.max_memory = aecd_budget_default_limit();

    aecd_server srv;
    memset(&srv, 0, sizeof srv);
    srv.cfg = &cfg;
    srv.listen_fd = -1;
    srv.req_id_salt = random_salt();

    int rc = serve(&srv);
    server_free(&srv);
    aecd_config_free(&cfg);
    return rc;
}
