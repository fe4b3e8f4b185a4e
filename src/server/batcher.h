/* batcher.h - the dynamic batcher: one thread that runs the model.
 *
 * Jobs wait in a bounded FIFO. A job names its pass: a model (through its
 * runner) and a range of its layers. The batcher takes the oldest job and
 * every queued job of the same pass (up to max_batch), and runs them as ONE
 * batched pass on the runner's workspace; it knows nothing of endpoints.
 * It waits for more jobs only when more are on their way: while requests
 * of that pass are "upstream" (admitted with aecd_batcher_admit and not yet
 * submitted), for at most batch_timeout_us;
 * with nothing upstream it runs at once (see collect() in batcher.c). A job
 * of another pass stays queued and is the first of the next batch. With
 * max_batch 1 every job runs alone, at once.
 *
 * Completion is a callback, not a wait: when the pass is done the batcher
 * calls job->on_done(job) (outside its lock) for every job of the batch.
 */
#ifndef AECD_BATCHER_H
#define AECD_BATCHER_H

#include <stdint.h>

#include "aec/error.h"
#include "aec/model.h"

#include "metrics.h"

/* A model's place in the batcher: the model, a workspace for batches of up
 * to max_batch samples and the buffer a batch is gathered into. One per
 * loaded model version (registry.h); only the batcher thread uses it after
 * it is created. */
typedef struct aecd_runner aecd_runner;

aec_status aecd_runner_create(aecd_runner **out, const aec_model *m, int max_batch, int threads,
                              aec_error *err);
void aecd_runner_free(aecd_runner *r);

/* What one job asks for: samples through layers first..last of the
 * runner's model. Jobs with the same pass run together in one batch. */
typedef struct {
    aecd_runner *runner;
    int first, last;
} aecd_pass;

/* Floats per sample of the pass's input and output. */
size_t aecd_pass_in_count(const aecd_pass *p);
size_t aecd_pass_out_count(const aecd_pass *p);

/* Upstream counts are kept per lane, a small hash of the pass: a batch
 * waits while jobs of its lane are upstream (two passes sharing a lane at
 * most make a batch wait for a job it cannot take, up to the timeout). */
#define AECD_LANES 16
unsigned aecd_pass_lane(const aecd_pass *p);

typedef enum {
    AECD_JOB_OK = 0,
    AECD_JOB_CANCELLED = 1, /* the batcher stopped before running it */
    AECD_JOB_EXPIRED = 2,   /* its deadline passed before its pass began */
} aecd_job_status;

typedef struct aecd_job aecd_job;
struct aecd_job {
    aecd_pass pass;
    const float *in;                /* one sample of the pass's input */
    float *out;                     /* one sample of its output, filled by the pass */
    void (*on_done)(aecd_job *job); /* called once, on the batcher thread */
    void *ctx;                      /* the submitter's */
    aecd_job_status status;
    uint64_t deadline_ns; /* aec_now_ns() after which it is not run; 0 = none */
    uint64_t t_submit_ns;
    aecd_job *next;
};

typedef struct {
    int max_batch; /* at most the runners' max_batch */
    long batch_timeout_us;
    int queue_size;
} aecd_batcher_opts;

typedef struct aecd_batcher aecd_batcher;

typedef enum {
    AECD_SUBMIT_OK = 0,
    AECD_SUBMIT_FULL = 1,    /* queue_size jobs already waiting */
    AECD_SUBMIT_STOPPED = 2, /* shutting down */
} aecd_submit_result;

/* Starts the thread. metrics may be NULL. */
aec_status aecd_batcher_create(aecd_batcher **out, const aecd_batcher_opts *opts,
                               aecd_metrics *metrics, aec_error *err);

/* The upstream count. A job is admitted (one more of its kind upstream)
 * before its input is prepared, and leaves upstream exactly once: by
 * aecd_batcher_submit, whatever its result, or by aecd_batcher_withdraw
 * when it fails before it is submitted. Thread-safe; never blocks for long. */
void aecd_batcher_admit(aecd_batcher *b, unsigned lane);
void aecd_batcher_withdraw(aecd_batcher *b, unsigned lane);
long aecd_batcher_upstream(aecd_batcher *b); /* every lane: the /metrics gauge */

/* Queues job (never blocks) and ends its admission: the lane of job->pass
 * must have been admitted. The pass's runner must stay alive until on_done. On OK, on_done will be
 * called exactly once. */
aecd_submit_result aecd_batcher_submit(aecd_batcher *b, aecd_job *job);
long aecd_batcher_depth(aecd_batcher *b);
int aecd_batcher_running(aecd_batcher *b);
/* Refuses new jobs, cancels the queued ones (on_done with CANCELLED), lets
 * the running pass finish, joins the thread. */
void aecd_batcher_stop(aecd_batcher *b);
void aecd_batcher_free(aecd_batcher *b);

#endif
