/* metrics.h - counters, gauges and histograms, rendered as Prometheus text
 * exposition format 0.0.4 for GET /metrics.
 *
 * Every update is a relaxed atomic add: no lock on the request path. A
 * scrape reads each value once, so a histogram's +Inf bucket and _count are
 * the same number even while requests complete.
 */
#ifndef AECD_METRICS_H
#define AECD_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* The endpoint label: a fixed set, so a client cannot grow the label space
 * with random paths (those count as "other"). */
typedef enum {
    AECD_EP_ENCODE,
    AECD_EP_DECODE,
    AECD_EP_ANOMALY,
    AECD_EP_HEALTHZ,
    AECD_EP_READYZ,
    AECD_EP_MODEL,
    AECD_EP_METRICS,
    AECD_EP_MODELS, /* /v1/models, /v1/models/NAME */
    AECD_EP_RELOAD, /* POST /v1/models/reload */
    AECD_EP_PAGE,   /* GET / */
    AECD_EP_OTHER,
    AECD_EP_COUNT
} aecd_endpoint;

const char *aecd_endpoint_name(aecd_endpoint ep);

typedef struct aecd_metrics aecd_metrics;

/* Values the scrape reads from elsewhere. */
typedef struct {
    const char *model_id;
    const char *version;
    long queue_depth;                  /* jobs waiting for the batcher */
    long pipeline_requests;            /* model requests upstream of the batcher (batcher.h) */
    long worker_queue_depth;           /* requests waiting for a worker */
    unsigned long long buffered_bytes; /* request bodies held in memory */
    long models_served;                /* model names with a version serving */
    long models_failed;                /* names whose last load failed */
    unsigned long long loads_ok, loads_failed, reloads;
    size_t memory_limit, memory_reserved, memory_peak; /* --max-memory (budget.h) */
    long memory_waiting;
} aecd_metrics_info;

aecd_metrics *aecd_metrics_create(int max_batch);
void aecd_metrics_free(aecd_metrics *m);

void aecd_metrics_request_begin(aecd_metrics *m);
void aecd_metrics_request_end(aecd_metrics *m, aecd_endpoint ep, unsigned status,
                              uint64_t duration_ns);
void aecd_metrics_batch(aecd_metrics *m, int size);
void aecd_metrics_queue_wait(aecd_metrics *m, uint64_t wait_ns);

/* The exposition text (malloc'd), or NULL when out of memory. */
char *aecd_metrics_render(aecd_metrics *m, const aecd_metrics_info *info, size_t *len);

#endif
