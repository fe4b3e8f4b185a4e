/* budget.h - the memory budget of in-flight work (--max-memory).
 *
 * A request reserves what its work will allocate at its peak (decoding its
 * image, its tensors, a resized output) before allocating it, and releases
 * it when that memory is freed. A reservation that does not fit now waits
 * (first come, first served) until others release enough, or its deadline
 * passes; one larger than the whole budget never fits and is refused at
 * once. The one exception to the order: a small reservation (at most
 * aecd_budget_small: a thumbnail's, or a photo's of a megapixel) may pass those
 * waiting when the memory is free, as long as the bytes taken that way total
 * at most limit / AECD_BUDGET_LANE_DIV and the first waiter needs no more
 * than the rest: it still fits once what is held outside that lane is
 * released, so passing delays it a little and never starves it, and a
 * 12 MP photo waiting for memory does not hold up every small request
 * behind it. Request bodies are bounded separately (--max-buffered), and so is
 * what the models hold (their files and workspaces, fixed once loaded).
 */
#ifndef AECD_BUDGET_H
#define AECD_BUDGET_H

#include <stddef.h>
#include <stdint.h>

typedef struct aecd_budget aecd_budget;

typedef enum {
    AECD_BUDGET_OK = 0,
    AECD_BUDGET_NEVER = 1,   /* more than the whole budget */
    AECD_BUDGET_TIMEOUT = 2, /* did not fit before the deadline */
    AECD_BUDGET_STOPPED = 3, /* shutting down */
} aecd_budget_result;

/* limit in bytes. NULL when out of memory. */
aecd_budget *aecd_budget_create(size_t limit);
void aecd_budget_free(aecd_budget *b);

#define AECD_BUDGET_SMALL_MAX ((size_t)32 << 20) /* small: at most this, */
#define AECD_BUDGET_SMALL_DIV 16                 /* and at most limit / 16 */
#define AECD_BUDGET_LANE_DIV 8                   /* the lane: limit / 8 */

/* The largest reservation that counts as small. */
size_t aecd_budget_small(const aecd_budget *b);

/* Reserves bytes, waiting while they do not fit, until deadline_ns
 * (aec_now_ns() clock). *passed says whether they were taken by passing a
 * waiter: give them back with the same flag. */
aecd_budget_result aecd_budget_reserve(aecd_budget *b, size_t bytes, uint64_t deadline_ns,
                                       int *passed);
void aecd_budget_release(aecd_budget *b, size_t bytes, int passed);
/* Wakes every waiter with STOPPED, and refuses from now on. */
void aecd_budget_stop(aecd_budget *b);

size_t aecd_budget_limit(const aecd_budget *b);
size_t aecd_budget_used(aecd_budget *b);
size_t aecd_budget_peak(aecd_budget *b); /* the most ever reserved at once */
long aecd_budget_waiting(aecd_budget *b);

/* The default --max-memory: half of the memory this process may use (the
 * smaller of physical RAM and a cgroup v2 memory.max), at least 256 MiB. */
size_t aecd_budget_default_limit(void);

#endif
