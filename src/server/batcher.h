/* batcher.h - the dynamic batcher: one thread that runs the model.
 *
 * Jobs wait in a bounded FIFO. The batcher takes the oldest job and every
 * queued job of the same kind (up to max_batch), and runs them as ONE
 * batched pass on its workspace. It waits for more jobs only when more are
 * on their way: while requests of that kind are "upstream" (admitted with
 * aecd_batcher_admit and not yet submitted), for at most batch_timeout_us;
 * with nothing upstream it runs at once (see collect() in batcher.c). A job
 * of another kind stays queued and is the first of the next batch. With
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

typedef enum {
    AECD_JOB_ENCODE,      /* image -> latent */
    AECD_JOB_DECODE,      /* latent -> image */
    AECD_JOB_RECONSTRUCT, /* image -> image (anomaly) */
} aecd_job_kind;

enum { AECD_JOB_KINDS = AECD_JOB_RECONSTRUCT + 1 };

typedef enum {
    AECD_JOB_OK = 0,
    AECD_JOB_CANCELLED = 1, /* the batcher stopped before running it */
} aecd_job_status;

typedef struct aecd_job aecd_job;
struct aecd_job {
    aecd_job_kind kind;
    const float *in; /* one sample: input count (encode, reconstruct) or latent count */
    float *out;      /* one sample of output, filled by the pass */
    void (*on_done)(aecd_job *job); /* called once, on the batcher thread */
    void *ctx;                      /* the submitter's */
    aecd_job_status status;
    uint64_t t_submit_ns;
    aecd_job *next;
};

typedef struct {
    int max_batch;
    long batch_timeout_us;
    int queue_size;
    int threads; /* threads of one model pass (the answer is the same for any count) */
} aecd_batcher_opts;

typedef struct aecd_batcher aecd_batcher;

typedef enum {
    AECD_SUBMIT_OK = 0,
    AECD_SUBMIT_FULL = 1,    /* queue_size jobs already waiting */
    AECD_SUBMIT_STOPPED = 2, /* shutting down */
} aecd_submit_result;

/* Creates the workspace (max_batch samples) and starts the thread. */
aec_status aecd_batcher_create(aecd_batcher **out, const aec_model *m,
                               const aecd_batcher_opts *opts, aecd_metrics *metrics,
                               aec_error *err);

/* The upstream count. A job is admitted (one more of its kind upstream)
 * before its input is prepared, and leaves upstream exactly once: by
 * aecd_batcher_submit, whatever its result, or by aecd_batcher_withdraw
 * when it fails before it is submitted. Thread-safe; never blocks for long. */
void aecd_batcher_admit(aecd_batcher *b, aecd_job_kind kind);
void aecd_batcher_withdraw(aecd_batcher *b, aecd_job_kind kind);
long aecd_batcher_upstream(aecd_batcher *b); /* every kind: the /metrics gauge */

/* Queues job (never blocks) and ends its admission: job->kind must have
 * been admitted. On OK, on_done will be called exactly once. */
aecd_submit_result aecd_batcher_submit(aecd_batcher *b, aecd_job *job);
long aecd_batcher_depth(aecd_batcher *b);
int aecd_batcher_running(aecd_batcher *b);
/* Refuses new jobs, cancels the queued ones (on_done with CANCELLED), lets
 * the running pass finish, joins the thread. */
void aecd_batcher_stop(aecd_batcher *b);
void aecd_batcher_free(aecd_batcher *b);

#endif
