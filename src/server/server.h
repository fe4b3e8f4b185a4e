/* server.h - the daemon's shared state and how a request flows through it.
 *
 * Threads (see also the budget in main.c):
 *   - MHD I/O threads (--io-threads, an internal polling thread pool): parse
 *     HTTP, accumulate bodies, answer the cheap endpoints (/healthz, /readyz,
 *     /v1/model, /metrics, every error found from the headers) and queue
 *     responses. They never decode an image nor wait for the model, so health
 *     checks are answered promptly even when every worker is busy.
 *   - Request workers (--threads, workers.c): decode and resize the image or
 *     parse the latent (in parallel), submit one job to the batcher, and later
 *     build the response (JSON, PNG, binary latent).
 *   - One batcher thread (batcher.c): groups queued jobs of one pass into one
 *     batched model pass.
 *
 * A model request (POST /encode, /decode, /anomaly):
 *   1. I/O thread, first call: route, auth, method, query, the model (?model=
 *      or the default: the request takes a reference to its current version,
 *      kept until the request ends, so a reload never changes the model under
 *      it), Content-Length and Content-Type checks (errors answered at once,
 *      before any body byte).
 *   2. I/O thread, upload calls: the body is appended to a buffer bounded by
 *      the route's limit (413 as soon as it would be exceeded).
 *   3. I/O thread, final call: the connection is suspended (MHD stops polling
 *      it) and the request is handed to the workers' bounded queue
 *      (full: 503 overloaded). From here until its job is submitted in
 *      step 4, or it fails before that, the request is "upstream" of the
 *      batcher: counted by the batcher, by lane, and shown in /metrics as
 *      aec_pipeline_requests.
 *   4. Worker: route->prepare turns the body into a tensor and submits a job
 *      to the batcher's bounded queue (full: 503 overloaded). The worker does
 *      not wait: it takes the next request, so the batcher sees as many
 *      concurrent jobs as there are admitted requests, not as many as there
 *      are workers (a worker that blocked would cap every batch at --threads).
 *   5. Batcher: takes the oldest job and every queued job of its pass (the
 *      same model version and layers). With
 *      no request of that pass upstream it runs the batch at once, so a
 *      lone request never waits for --batch-timeout-us. Otherwise it waits
 *      for those requests' jobs, and runs as soon as none of that pass is
 *      upstream any more, or the batch is full (--max-batch), or
 *      --batch-timeout-us have passed. Under load, jobs submitted during a
 *      pass queue up and form the next batch. After the pass it hands each
 *      finished job back to the workers' priority queue.
 *   6. Worker: route->finish builds the response, then resumes the connection.
 *   7. I/O thread: called again for the resumed connection, queues the
 *      response; MHD's completion callback logs the request and counts it.
 */
#ifndef AECD_SERVER_H
#define AECD_SERVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct MHD_Daemon;
typedef struct aecd_batcher aecd_batcher;
typedef struct aecd_workers aecd_workers;
typedef struct aecd_metrics aecd_metrics;
typedef struct aecd_watchdog aecd_watchdog;
typedef struct aecd_registry aecd_registry;
typedef struct aecd_budget aecd_budget;

typedef struct aecd_server {
    const aecd_config *cfg;
    aecd_registry *registry; /* the models served (registry.h) */
    aecd_budget *budget;     /* --max-memory (budget.h) */
    atomic_int reloading;    /* SIGHUP seen: the main thread reloads */

    aecd_batcher *batcher;
    aecd_workers *workers;
    aecd_metrics *metrics;
    aecd_watchdog *watchdog; /* --header-timeout (watchdog.h) */
    struct MHD_Daemon *daemon;
    int listen_fd;

    atomic_int draining;       /* set on SIGTERM: /readyz says 503, replies close */
    atomic_long in_flight;     /* requests started and not yet completed */
    atomic_ullong next_req_id; /* request id counter */
    atomic_size_t body_bytes;  /* capacity of every request body buffer */
    uint64_t req_id_salt;      /* random per process */

    /* Requests in the worker/batcher pipeline (suspended), steps 3 to 6. The
     * batcher keeps its own count of those still upstream of it (step 3 to
     * the submit in step 4): see aecd_batcher_admit. */
    atomic_long pipe_count;
} aecd_server;

#endif
