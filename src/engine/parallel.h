/* parallel.h - fork-join over a range of samples with plain pthreads
 * (private to src/engine/).
 *
 * [0, n) is split into nthreads contiguous ranges, the same split for the same
 * thread count (results are reproducible). Thread 0's range runs on the
 * caller; the others on threads created for the call and joined before it
 * returns, so no thread spins or lingers between calls (an idle pool would
 * compete for the cores with the daemon's request threads). */
#ifndef AEC_ENGINE_PARALLEL_H
#define AEC_ENGINE_PARALLEL_H

typedef void (*aec_range_fn)(void *ctx, int thread, long begin, long end);

void aec_parallel_range(int nthreads, long n, aec_range_fn fn, void *ctx);

#endif
