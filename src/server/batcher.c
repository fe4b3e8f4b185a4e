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

#include "aec/clock.h"

#include "log.h"

struct aecd_runner {
    const aec_model *m;
    aec_workspace *ws;
    int max_batch;
    float *batch_in; /* max_batch samples of the largest layer input */
};

struct aecd_batcher {
    aecd_batcher_opts o;
    aecd_metrics *metrics;
    aecd_job **batch;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    aecd_job *head, *tail;
    atomic_long depth;
    /* Jobs admitted and not yet submitted, by lane (see batcher.h). Changed
     * under mu; atomic only so that a /metrics scrape may read them. */
    atomic_long upstream[AECD_LANES];
    int stopping;
    atomic_int running;
    pthread_t thread;
    int started;
};

/* ---- runners and passes ---------------------------------------------------------- */

aec_status aecd_runner_create(aecd_runner **out, const aec_model *m, int max_batch, int threads,
                              aec_error *err)
{
    *out = NULL;
    aecd_runner *r = calloc(1, sizeof *r);
    if (!r)
        return aec_fail(err, AEC_ERR_NOMEM, "runner: out of memory");
    r->m = m;
    r->max_batch = max_batch;
    size_t widest = 0;
    for (int i = 0; i < m->nlayers; i++) {
        size_t c = aec_shape_count(&m->layers[i].in_shape);
        widest = c > widest ? c : widest;
    }
    aec_status st = aec_workspace_create(&r->ws, m, max_batch, 0, err);
    if (st == AEC_OK)
        st = aec_workspace_set_threads(r->ws, m, threads > 0 ? threads : 1, err);
    if (st == AEC_OK && !(r->batch_in = malloc(widest * (size_t)max_batch * sizeof(float))))
        st = aec_fail(err, AEC_ERR_NOMEM, "runner: out of memory for %d-sample batches", max_batch);
    if (st != AEC_OK) {
        aecd_runner_free(r);
        return st;
    }
    *out = r;
    return AEC_OK;
}

void aecd_runner_free(aecd_runner *r)
{
    if (!r)
        return;
    aec_workspace_free(r->ws);
    free(r->batch_in);
    free(r);
}

size_t aecd_pass_in_count(const aecd_pass *p)
{
    return aec_shape_count(&p->runner->m->layers[p->first].in_shape);
}

size_t aecd_pass_out_count(const aecd_pass *p)
{
    return aec_shape_count(&p->runner->m->layers[p->last].out_shape);
}

unsigned aecd_pass_lane(const aecd_pass *p)
{
    uint64_t h = (uint64_t)(uintptr_t)p->runner;
    h ^= (uint64_t)p->first * 0x9E3779B97F4A7C15ull ^ (uint64_t)p->last * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return (unsigned)(h % AECD_LANES);
}

static int same_pass(const aecd_pass *a, const aecd_pass *b)
{
    return a->runner == b->runner && a->first == b->first && a->last == b->last;
}

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

/* Moves queued jobs of pass p into b->batch[n..] (up to max, at most the
 * runner's max_batch); returns the new n. */
static int take_same_pass(aecd_batcher *b, const aecd_pass *p, int n, int max)
{
    aecd_job *prev = NULL, *j = b->head;
    while (j && n < max) {
        aecd_job *next = j->next;
        if (same_pass(&j->pass, p)) {
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

static long upstream_of(aecd_batcher *b, unsigned lane)
{
    return atomic_load(&b->upstream[lane]);
}

/* Gathers the next batch into b->batch (called with mu held, queue not
 * empty); returns its size.
 *
 * The policy. Take the oldest job and every queued job of its pass (up to
 * max_batch). Then wait for more only if more can come soon: a job of this
 * pass's lane whose request is upstream, i.e. admitted by the HTTP layer and being
 * prepared by a worker (image decoded and resized, latent parsed) or
 * waiting for one, and not yet submitted.
 *   - Nothing of this lane upstream: run at once. A lone request (one
 *     client, or requests one after another) never pays the timeout, since
 *     waiting could only add latency.
 *   - Some upstream: wait for them, taking each job as it is submitted, and
 *     run as soon as the batch is full, or nothing of this lane is upstream
 *     any more (everything that was coming has joined the batch), or
 *     batch_timeout_us have passed since the first job was taken (a bound
 *     on what a slow decode can cost the jobs already taken).
 * Requests still uploading their body are not upstream: when they will be
 * complete is up to their clients, and a slow upload must not hold every
 * batch to the full timeout. Requests of another pass cannot join this
 * batch, so they do not make it wait (unless they share its lane). Under load the pass itself is
 * the batching window: jobs submitted while a batch runs queue up and leave together in the next
 * one. */
static int collect(aecd_batcher *b)
{
    b->batch[0] = pop_head(b);
    aecd_pass p = b->batch[0]->pass;
    unsigned lane = aecd_pass_lane(&p);
    int max = b->o.max_batch < p.runner->max_batch ? b->o.max_batch : p.runner->max_batch;
    int n = take_same_pass(b, &p, 1, max);
    if (n >= max || b->o.batch_timeout_us <= 0 || upstream_of(b, lane) == 0)
        return n;
    struct timespec deadline = deadline_after_us(b->o.batch_timeout_us);
    while (n < max && !b->stopping && upstream_of(b, lane) > 0) {
        int rc = pthread_cond_timedwait(&b->cv, &b->mu, &deadline);
        n = take_same_pass(b, &p, n, max);
        if (rc == ETIMEDOUT)
            break;
    }
    return n;
}

/* ---- the pass (called without mu) ------------------------------------------------ */

static void run_batch(aecd_batcher *b, int n)
{
    const aecd_pass *p = &b->batch[0]->pass;
    aecd_runner *r = p->runner;
    size_t in_n = aecd_pass_in_count(p), out_n = aecd_pass_out_count(p);
    uint64_t now = aec_now_ns();
    for (int i = 0; i < n; i++) {
        memcpy(r->batch_in + (size_t)i * in_n, b->batch[i]->in, in_n * sizeof(float));
        if (b->metrics)
            aecd_metrics_queue_wait(b->metrics, now - b->batch[i]->t_submit_ns);
    }
    if (b->metrics)
        aecd_metrics_batch(b->metrics, n);
    const float *y = aec_model_infer(r->m, r->ws, r->batch_in, n, p->first, p->last);
    for (int i = 0; i < n; i++)
        memcpy(b->batch[i]->out, y + (size_t)i * out_n, out_n * sizeof(float));
    if (aecd_log_enabled(AECD_LOG_DEBUG)) {
        aecd_logline l;
        aecd_log_begin(&l, AECD_LOG_DEBUG, "batch");
        aecd_log_str(&l, "model", r->m->id);
        aecd_log_int(&l, "first", p->first);
        aecd_log_int(&l, "last", p->last);
        aecd_log_int(&l, "size", n);
        aecd_log_int(&l, "us", (long long)((aec_now_ns() - now) / 1000));
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

/* Completes the jobs of the batch whose deadline has passed (EXPIRED) and
 * keeps the others, in order; returns how many are kept. */
static int drop_expired(aecd_batcher *b, int n)
{
    uint64_t now = aec_now_ns();
    int kept = 0;
    for (int i = 0; i < n; i++) {
        aecd_job *j = b->batch[i];
        if (j->deadline_ns && now >= j->deadline_ns)
            complete(&j, 1, AECD_JOB_EXPIRED);
        else
            b->batch[kept++] = j;
    }
    return kept;
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
        n = drop_expired(b, n);
        if (n > 0) {
            run_batch(b, n);
            complete(b->batch, n, AECD_JOB_OK);
        }
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* ---- public ------------------------------------------------------------------------ */

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

aec_status aecd_batcher_create(aecd_batcher **out, const aecd_batcher_opts *opts,
                               aecd_metrics *metrics, aec_error *err)
{
    *out = NULL;
    aecd_batcher *b = calloc(1, sizeof *b);
    if (!b)
        return aec_fail(err, AEC_ERR_NOMEM, "batcher: out of memory");
    b->o = *opts;
    b->metrics = metrics;
    aec_status st = AEC_OK;
    if (!(b->batch = calloc((size_t)opts->max_batch, sizeof *b->batch)))
        st = aec_fail(err, AEC_ERR_NOMEM, "batcher: out of memory");
    if (st == AEC_OK)
        st = init_sync(b, err);
    if (st != AEC_OK) {
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

void aecd_batcher_admit(aecd_batcher *b, unsigned lane)
{
    pthread_mutex_lock(&b->mu);
    atomic_fetch_add(&b->upstream[lane % AECD_LANES], 1);
    pthread_mutex_unlock(&b->mu);
}

void aecd_batcher_withdraw(aecd_batcher *b, unsigned lane)
{
    pthread_mutex_lock(&b->mu);
    if (atomic_fetch_sub(&b->upstream[lane % AECD_LANES], 1) == 1)
        pthread_cond_signal(&b->cv); /* a batch waiting for this job runs now */
    pthread_mutex_unlock(&b->mu);
}

long aecd_batcher_upstream(aecd_batcher *b)
{
    long n = 0;
    for (int k = 0; b && k < AECD_LANES; k++)
        n += atomic_load(&b->upstream[k]);
    return n;
}

aecd_submit_result aecd_batcher_submit(aecd_batcher *b, aecd_job *job)
{
    job->next = NULL;
    job->t_submit_ns = aec_now_ns();
    pthread_mutex_lock(&b->mu);
    atomic_fetch_sub(&b->upstream[aecd_pass_lane(&job->pass)],
                     1); /* queued or refused: no longer coming */
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
    free(b->batch);
    free(b);
}
