/* parallel.c - see parallel.h. */
#include "parallel.h"

#include <pthread.h>

#define MAX_THREADS 64

typedef struct {
    aec_range_fn fn;
    void *ctx;
    int thread;
    long begin, end;
} range_job;

static void *run_job(void *arg)
{
    range_job *j = arg;
    j->fn(j->ctx, j->thread, j->begin, j->end);
    return NULL;
}

void aec_parallel_range(int nthreads, long n, aec_range_fn fn, void *ctx)
{
    if (nthreads > n)
        nthreads = (int)n;
    if (nthreads > MAX_THREADS)
        nthreads = MAX_THREADS;
    if (nthreads <= 1) {
        if (n > 0)
            fn(ctx, 0, 0, n);
        return;
    }
    range_job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 0; t < nthreads; t++)
        jobs[t] = (range_job){fn, ctx, t, n * t / nthreads, n * (t + 1) / nthreads};
    for (int t = 1; t < nthreads; t++)
        started[t] = pthread_create(&tids[t], NULL, run_job, &jobs[t]) == 0;
    run_job(&jobs[0]);
    for (int t = 1; t < nthreads; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            run_job(&jobs[t]); /* could not start a thread: do its share here */
    }
}
