/* batcher.c - the dynamic batcher's queue and thread (see batcher.h).
 *
 * Locking: mu guards the queue, the upstream counts and `stopping`. The
 * model pass and the on_done callbacks run without it, so submitters never
 * wait for the model. The thread sleeps on cv (CLOCK_MONOTONIC) when the
 * queue is empty, and while it gathers a batch; cv is signalled by every
 * submit, by a withdrawal that leaves no job of its kind upstream, and by
 * stop.
 */
#include "batcher.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "server.h"

struct aecd_batcher {
    const aec_model *m;
    aecd_batcher_opts o;
    aecd_metrics *metrics;
    aec_workspace *ws;
    size_t image_count;  /* floats per input image */
    size_t latent_count; /* floats per latent */
    size_t output_count; /* floats per output image */
    float *batch_in, *batch_out;
    aecd_job **batch;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    aecd_job *head, *tail;
    atomic_long depth;
    /* Jobs admitted and not yet submitted, by kind (see batcher.h). Changed
     * under mu; atomic only so that a /metrics scrape may read them. */
    atomic_long upstream[AECD_JOB_KINDS];
    int stopping;
    atomic_int running;
    pthread_t thread;
    int started;
};

/* ---- queue (called with mu held) ----------------------------------------------- */

static aecd_job *pop_head(aecd_batcher *b)
{
    aecd_job *j = b->head;
    b->head = j->next;
    if (!b->head)
        b->tail = NULL;
    j->next = NULL;
    atomic_fetch_sub(&b->depth, 1);
    return j;
}

/* Moves queued jobs of `kind` into b->batch[n..]; returns the new n. */
static int take_same_kind(aecd_batcher *b, aecd_job_kind kind, int n)
{
    aecd_job *prev = NULL, *j = b->head;
    while (j && n < b->o.max_batch) {
        aecd_job *next = j->next;
        if (j->kind == kind) {
            if (prev)
                prev->next = next;
            else
                b->head = next;
            if (b->tail == j)
                b->tail = prev;
            j->next = NULL;
            atomic_fetch_sub(&b->depth, 1);
            b->batch[n++] = j;
        } else {
            prev = j;
        }
        j = next;
    }
    return n;
}

static struct timespec deadline_after_us(long us)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += us / 1000000;
    ts.tv_nsec += (us % 1000000) * 1000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

static long upstream_of(aecd_batcher *b, aecd_job_kind kind)
{
    return atomic_load(&b->upstream[kind]);
}

/* Gathers the next batch into b->batch (called with mu held, queue not
 * empty); returns its size.
 *
 * The policy. Take the oldest job and every queued job of its kind (up to
 * max_batch). Then wait for more only if more can come soon: a job of this
 * kind whose request is upstream, i.e. admitted by the HTTP layer and being
 * prepared by a worker (image decoded and resized, latent parsed) or
 * waiting for one, and not yet submitted.
 *   - Nothing of this kind upstream: run at once. A lone request (one
 *     client, or requests one after another) never pays the timeout, since
 *     waiting could only add latency.
 *   - Some upstream: wait for them, taking each job as it is submitted, and
 *     run as soon as the batch is full, or nothing of this kind is upstream
 *     any more (everything that was coming has joined the batch), or
 *     batch_timeout_us have passed since the first job was taken (a bound
 *     on what a slow decode can cost the jobs already taken).
 * Requests still uploading their body are not upstream: when they will be
 * complete is up to their clients, and a slow upload must not hold every
 * batch to the full timeout. Requests of another kind cannot join this
 * batch, so they do not make it wait. Under load the pass itself is the
 * batching window: jobs submitted while a batch runs queue up and leave
 * together in the next one. */
static int collect(aecd_batcher *b)
{
    b->batch[0] = pop_head(b);
    aecd_job_kind kind = b->batch[0]->kind;
    int n = take_same_kind(b, kind, 1);
    if (n >= b->o.max_batch || b->o.batch_timeout_us <= 0 || upstream_of(b, kind) == 0)
        return n;
    struct timespec deadline = deadline_after_us(b->o.batch_timeout_us);
    while (n < b->o.max_batch && !b->stopping && upstream_of(b, kind) > 0) {
        int rc = pthread_cond_timedwait(&b->cv, &b->mu, &deadline);
        n = take_same_kind(b, kind, n);
        if (rc == ETIMEDOUT)
            break;
    }
    return n;
}

/* ---- the pass (called without mu) ------------------------------------------------ */

static void run_batch(aecd_batcher *b, int n)
{
    aecd_job_kind kind = b->batch[0]->kind;
    size_t in_n = kind == AECD_JOB_DECODE ? b->latent_count : b->image_count;
    size_t out_n = kind == AECD_JOB_ENCODE ? b->latent_count : b->output_count;
    uint64_t now = aecd_now_ns();
    for (int i = 0; i < n; i++) {
        memcpy(b->batch_in + (size_t)i * in_n, b->batch[i]->in, in_n * sizeof(float));
        aecd_metrics_queue_wait(b->metrics, now - b->batch[i]->t_submit_ns);
    }
    aecd_metrics_batch(b->metrics, n);
    switch (kind) {
    case AECD_JOB_ENCODE: aec_model_encode(b->m, b->ws, b->batch_in, n, b->batch_out); break;
    case AECD_JOB_DECODE: aec_model_decode(b->m, b->ws, b->batch_in, n, b->batch_out); break;
    case AECD_JOB_RECONSTRUCT:
        aec_model_reconstruct(b->m, b->ws, b->batch_in, n, b->batch_out);
        break;
    }
    for (int i = 0; i < n; i++)
        memcpy(b->batch[i]->out, b->batch_out + (size_t)i * out_n, out_n * sizeof(float));
    if (aecd_log_enabled(AECD_LOG_DEBUG)) {
        static const char *const kinds[] = {"encode", "decode", "reconstruct"};
        aecd_logline l;
        aecd_log_begin(&l, AECD_LOG_DEBUG, "batch");
        aecd_log_str(&l, "kind", kinds[kind]);
        aecd_log_int(&l, "size", n);
        aecd_log_int(&l, "us", (long long)((aecd_now_ns() - now) / 1000));
        aecd_log_end(&l);
    }
}

static void complete(aecd_job **jobs, int n, aecd_job_status st)
{
    for (int i = 0; i < n; i++) {
        aecd_job *j = jobs[i]; /* may be freed by on_done's receiver */
        j->status = st;
        j->on_done(j);
    }
}

static void *batcher_main(void *arg)
{
    aecd_batcher *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->head && !b->stopping)
            pthread_cond_wait(&b->cv, &b->mu);
        if (b->stopping)
            break; /* aecd_batcher_stop cancels what is still queued */
        int n = collect(b);
        pthread_mutex_unlock(&b->mu);
        run_batch(b, n);
        complete(b->batch, n, AECD_JOB_OK);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* ---- public ------------------------------------------------------------------------ */

static aec_status alloc_buffers(aecd_batcher *b, aec_error *err)
{
    size_t per_in = b->image_count > b->latent_count ? b->image_count : b->latent_count;
    size_t per_out = b->output_count > b->latent_count ? b->output_count : b->latent_count;
    size_t mb = (size_t)b->o.max_batch;
    b->batch_in = malloc(per_in * mb * sizeof(float));
    b->batch_out = malloc(per_out * mb * sizeof(float));
    b->batch = calloc(mb, sizeof *b->batch);
    if (!b->batch_in || !b->batch_out || !b->batch)
        return aec_fail(err, AEC_ERR_NOMEM, "batcher: out of memory for %zu-sample batches", mb);
    return AEC_OK;
}

static aec_status init_sync(aecd_batcher *b, aec_error *err)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0 ||
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&b->cv, &attr) != 0)
        return aec_fail(err, AEC_ERR_NOMEM, "batcher: cannot create a condition variable");
    pthread_condattr_destroy(&attr);
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        pthread_cond_destroy(&b->cv);
        return aec_fail(err, AEC_ERR_NOMEM, "batcher: cannot create a mutex");
    }
    return AEC_OK;
}

aec_status aecd_batcher_create(aecd_batcher **out, const aec_model *m,
                               const aecd_batcher_opts *opts, aecd_metrics *metrics, aec_error *err)
{
    *out = NULL;
    aecd_batcher *b = calloc(1, sizeof *b);
    if (!b)
        return aec_fail(err, AEC_ERR_NOMEM, "batcher: out of memory");
    b->m = m;
    b->o = *opts;
    b->metrics = metrics;
    b->image_count = aec_model_input_count(m);
    b->latent_count = aec_model_latent_count(m);
    b->output_count = aec_model_output_count(m);
    aec_status st = aec_workspace_create(&b->ws, m, opts->max_batch, 0, err);
    if (st == AEC_OK)
        st = aec_workspace_set_threads(b->ws, m, opts->threads > 0 ? opts->threads : 1, err);
    if (st == AEC_OK)
        st = alloc_buffers(b, err);
    if (st == AEC_OK)
        st = init_sync(b, err);
    if (st != AEC_OK) {
        aec_workspace_free(b->ws);
        free(b->batch_in);
        free(b->batch_out);
        free(b->batch);
        free(b);
        return st;
    }
    if (pthread_create(&b->thread, NULL, batcher_main, b) != 0) {
        aecd_batcher_free(b);
        return aec_fail(err, AEC_ERR_NOMEM, "batcher: cannot start its thread");
    }
    b->started = 1;
    atomic_store(&b->running, 1);
    *out = b;
    return AEC_OK;
}

void aecd_batcher_admit(aecd_batcher *b, aecd_job_kind kind)
{
    pthread_mutex_lock(&b->mu);
    atomic_fetch_add(&b->upstream[kind], 1);
    pthread_mutex_unlock(&b->mu);
}

void aecd_batcher_withdraw(aecd_batcher *b, aecd_job_kind kind)
{
    pthread_mutex_lock(&b->mu);
    if (atomic_fetch_sub(&b->upstream[kind], 1) == 1)
        pthread_cond_signal(&b->cv); /* a batch waiting for this job runs now */
    pthread_mutex_unlock(&b->mu);
}

long aecd_batcher_upstream(aecd_batcher *b)
{
    long n = 0;
    for (int k = 0; b && k < AECD_JOB_KINDS; k++)
        n += atomic_load(&b->upstream[k]);
    return n;
}

aecd_submit_result aecd_batcher_submit(aecd_batcher *b, aecd_job *job)
{
    job->next = NULL;
    job->t_submit_ns = aecd_now_ns();
    pthread_mutex_lock(&b->mu);
    atomic_fetch_sub(&b->upstream[job->kind], 1); /* queued or refused: no longer coming */
    aecd_submit_result r = AECD_SUBMIT_OK;
    if (b->stopping)
        r = AECD_SUBMIT_STOPPED;
    else if (atomic_load(&b->depth) >= b->o.queue_size)
        r = AECD_SUBMIT_FULL;
    if (r == AECD_SUBMIT_OK) {
        if (b->tail)
            b->tail->next = job;
        else
            b->head = job;
        b->tail = job;
        atomic_fetch_add(&b->depth, 1);
    }
    /* Also when refused: the batch may be waiting for this job's arrival. */
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return r;
}

long aecd_batcher_depth(aecd_batcher *b)
{
    return atomic_load(&b->depth);
}

int aecd_batcher_running(aecd_batcher *b)
{
    return b && atomic_load(&b->running);
}

void aecd_batcher_stop(aecd_batcher *b)
{
    if (!b || !b->started)
        return;
    pthread_mutex_lock(&b->mu);
    b->stopping = 1;
    aecd_job *left = b->head;
    b->head = b->tail = NULL;
    atomic_store(&b->depth, 0);
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    long cancelled = 0;
    while (left) {
        aecd_job *next = left->next;
        left->status = AECD_JOB_CANCELLED;
        left->on_done(left);
        left = next;
        cancelled++;
    }
    pthread_join(b->thread, NULL);
    b->started = 0;
    atomic_store(&b->running, 0);
    if (cancelled)
        aecd_logf(AECD_LOG_WARN, "batcher stopped: %ld queued jobs cancelled", cancelled);
}

void aecd_batcher_free(aecd_batcher *b)
{
    if (!b)
        return;
    aecd_batcher_stop(b);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    aec_workspace_free(b->ws);
    free(b->batch_in);
    free(b->batch_out);
    free(b->batch);
    free(b);
}
