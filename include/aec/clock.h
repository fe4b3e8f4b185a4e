/* clock.h - the one monotonic clock every module reads (timings, deadlines,
 * timeouts). */
#ifndef AEC_CLOCK_H
#define AEC_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t aec_now_ns(void);

#endif
