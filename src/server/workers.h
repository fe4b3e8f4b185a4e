/* workers.h - the request worker pool: threads that run tasks.
 *
 * Two FIFO queues: new work (bounded: submitting to a full queue fails, the
 * caller answers 503) and continuations of work already admitted (never
 * refused, always taken first, so a request that has been through the model
 * is finished before a new one is started).
 */
#ifndef AECD_WORKERS_H
#define AECD_WORKERS_H

typedef struct aecd_task aecd_task;
struct aecd_task {
    void (*run)(aecd_task *t);
    aecd_task *next;
};

typedef struct aecd_workers aecd_workers;

/* NULL on failure (threads or memory). */
aecd_workers *aecd_workers_create(int nthreads, int capacity);
/* 0, or -1 when the queue of new work is full or the pool is closed. */
int aecd_workers_submit(aecd_workers *w, aecd_task *t);
/* Queues a continuation; never refused. */
void aecd_workers_continue(aecd_workers *w, aecd_task *t);
long aecd_workers_depth(aecd_workers *w); /* new work waiting */
/* Refuses new work from now on; continuations are still run. */
void aecd_workers_close(aecd_workers *w);
/* Closes, runs every queued task, then joins the threads. The pool stays
 * valid (submit fails) until aecd_workers_free. */
void aecd_workers_join(aecd_workers *w);
void aecd_workers_free(aecd_workers *w);

#endif
