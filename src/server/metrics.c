/* metrics.c - the daemon's metrics and their Prometheus rendering
 * (see metrics.h). Families:
 *   aec_requests_total{endpoint,status}         counter
 *   aec_request_duration_seconds{endpoint}      histogram
 *   aec_in_flight_requests                      gauge
 *   aec_queue_depth, aec_worker_queue_depth     gauges
 *   aec_pipeline_requests                       gauge
 *   aec_buffered_bytes                          gauge
 *   aec_batch_size                              histogram
 *   aec_queue_wait_seconds                      histogram
 *   aec_memory_limit_bytes, aec_memory_reserved_bytes,
 *   aec_memory_reserved_peak_bytes, aec_memory_waiting_requests  gauges
 *   aec_models_served, aec_models_failed        gauges
 *   aec_model_loads_total{result}               counter
 *   aec_model_reloads_total                     counter
 *   aec_model_info{id}, aec_build_info{version} gauges (value 1)
 *   process_start_time_seconds                  gauge
 */
#include "metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"

#define STATUS_MIN 100
#define STATUS_MAX 599
#define MAX_BUCKETS 24

static const char *const k_endpoint_names[AECD_EP_COUNT] = {
    "encode", "decode",  "anomaly", "healthz", "readyz",
    "model",  "metrics", "models",  "reload",  "other",
};

const char *aecd_endpoint_name(aecd_endpoint ep)
{
    return (unsigned)ep < AECD_EP_COUNT ? k_endpoint_names[ep] : "other";
}

/* A histogram: counts[i] holds observations <= bounds[i] and > bounds[i-1];
 * counts[nb] the ones above every bound. sum in base units * scale. */
typedef struct {
    int nb;
    double bounds[MAX_BUCKETS];
    atomic_ullong counts[MAX_BUCKETS + 1];
    atomic_ullong sum; /* nanoseconds, or plain units */
} hist;

struct aecd_metrics {
    atomic_ullong requests[AECD_EP_COUNT][STATUS_MAX - STATUS_MIN + 1];
    hist duration[AECD_EP_COUNT]; /* seconds; sum in ns */
    hist batch_size;              /* jobs; sum in jobs */
    hist queue_wait;              /* seconds; sum in ns */
    atomic_long in_flight;
    double start_time;
};

static const double k_latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static const double k_wait_bounds[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                       0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5};

static void hist_init(hist *h, const double *bounds, int nb)
{
    h->nb = nb;
    memcpy(h->bounds, bounds, sizeof(double) * (size_t)nb);
}

static void hist_observe(hist *h, double v, unsigned long long sum_units)
{
    int i = 0;
    while (i < h->nb && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, sum_units, memory_order_relaxed);
}

aecd_metrics *aecd_metrics_create(int max_batch)
{
    aecd_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    int nlat = (int)(sizeof k_latency_bounds / sizeof k_latency_bounds[0]);
    for (int e = 0; e < AECD_EP_COUNT; e++)
        hist_init(&m->duration[e], k_latency_bounds, nlat);
    hist_init(&m->queue_wait, k_wait_bounds, (int)(sizeof k_wait_bounds / sizeof k_wait_bounds[0]));
    double sizes[MAX_BUCKETS];
    int nb = 0;
    for (long s = 1; nb < MAX_BUCKETS - 1; s *= 2) { /* 1, 2, 4, ... max_batch */
        if (s >= max_batch) {
            sizes[nb++] = max_batch;
            break;
        }
        sizes[nb++] = (double)s;
    }
    hist_init(&m->batch_size, sizes, nb);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->start_time = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    return m;
}

void aecd_metrics_free(aecd_metrics *m)
{
    free(m);
}

void aecd_metrics_request_begin(aecd_metrics *m)
{
    atomic_fetch_add_explicit(&m->in_flight, 1, memory_order_relaxed);
}

void aecd_metrics_request_end(aecd_metrics *m, aecd_endpoint ep, unsigned status,
                              uint64_t duration_ns)
{
    atomic_fetch_sub_explicit(&m->in_flight, 1, memory_order_relaxed);
    if ((unsigned)ep >= AECD_EP_COUNT)
        ep = AECD_EP_OTHER;
    if (status < STATUS_MIN || status > STATUS_MAX)
        status = 500;
    atomic_fetch_add_explicit(&m->requests[ep][status - STATUS_MIN], 1, memory_order_relaxed);
    hist_observe(&m->duration[ep], (double)duration_ns * 1e-9, duration_ns);
}

void aecd_metrics_batch(aecd_metrics *m, int size)
{
    hist_observe(&m->batch_size, size, (unsigned long long)size);
}

void aecd_metrics_queue_wait(aecd_metrics *m, uint64_t wait_ns)
{
    hist_observe(&m->queue_wait, (double)wait_ns * 1e-9, wait_ns);
}

/* ---- rendering --------------------------------------------------------------- */

static void header(aecd_buf *b, const char *name, const char *type, const char *help)
{
    aecd_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped. */
static void label_value(aecd_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            aecd_buf_printf(b, "\\%c", *v);
        else if (*v == '\n')
            aecd_buf_puts(b, "\\n");
        else
            aecd_buf_append(b, v, 1);
    }
}

/* labels: "" or `endpoint="encode",` (with the trailing comma). */
static void hist_render(aecd_buf *b, const char *name, const char *labels, hist *h,
                        double sum_scale)
{
    unsigned long long cum = 0;
    for (int i = 0; i <= h->nb; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->nb)
            aecd_buf_printf(b, "%s_bucket{%sle=\"%.9g\"} %llu\n", name, labels, h->bounds[i], cum);
        else
            aecd_buf_printf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, cum);
    }
    double sum = (double)atomic_load_explicit(&h->sum, memory_order_relaxed) * sum_scale;
    size_t nl = strlen(labels);
    if (nl) /* labels without the trailing comma */
        aecd_buf_printf(b, "%s_sum{%.*s} %.9g\n%s_count{%.*s} %llu\n", name, (int)nl - 1, labels,
                        sum, name, (int)nl - 1, labels, cum);
    else
        aecd_buf_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, sum, name, cum);
}

static void render_requests(aecd_buf *b, aecd_metrics *m)
{
    header(b, "aec_requests_total", "counter", "HTTP requests completed, by endpoint and status.");
    for (int e = 0; e < AECD_EP_COUNT; e++)
        for (int s = 0; s <= STATUS_MAX - STATUS_MIN; s++) {
            unsigned long long n = atomic_load_explicit(&m->requests[e][s], memory_order_relaxed);
            if (n)
                aecd_buf_printf(b, "aec_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n",
                                k_endpoint_names[e], s + STATUS_MIN, n);
        }
    header(b, "aec_request_duration_seconds", "histogram",
           "Time from request line to response sent, by endpoint.");
    for (int e = 0; e < AECD_EP_COUNT; e++) {
        char labels[64];
        snprintf(labels, sizeof labels, "endpoint=\"%s\",", k_endpoint_names[e]);
        hist_render(b, "aec_request_duration_seconds", labels, &m->duration[e], 1e-9);
    }
}

static void render_gauges(aecd_buf *b, aecd_metrics *m, const aecd_metrics_info *info)
{
    header(b, "aec_in_flight_requests", "gauge", "Requests received and not yet completed.");
    aecd_buf_printf(b, "aec_in_flight_requests %ld\n",
                    atomic_load_explicit(&m->in_flight, memory_order_relaxed));
    header(b, "aec_queue_depth", "gauge", "Model jobs waiting for the batcher.");
    aecd_buf_printf(b, "aec_queue_depth %ld\n", info->queue_depth);
    header(b, "aec_worker_queue_depth", "gauge", "Requests waiting for a worker thread.");
    aecd_buf_printf(b, "aec_worker_queue_depth %ld\n", info->worker_queue_depth);
    header(b, "aec_pipeline_requests", "gauge",
           "Model requests handed to the workers whose job is not yet submitted to the"
           " batcher (waiting for a worker or being decoded); a batch waits for more jobs"
           " only while some of its pass are.");
    aecd_buf_printf(b, "aec_pipeline_requests %ld\n", info->pipeline_requests);
    header(b, "aec_buffered_bytes", "gauge",
           "Bytes of request bodies held in memory (bounded by --max-buffered).");
    aecd_buf_printf(b, "aec_buffered_bytes %llu\n", info->buffered_bytes);
    header(b, "aec_memory_limit_bytes", "gauge",
           "The memory budget of in-flight work (--max-memory).");
    aecd_buf_printf(b, "aec_memory_limit_bytes %zu\n", info->memory_limit);
    header(b, "aec_memory_reserved_bytes", "gauge",
           "Memory reserved by in-flight work (decoded images, tensors, outputs).");
    aecd_buf_printf(b, "aec_memory_reserved_bytes %zu\n", info->memory_reserved);
    header(b, "aec_memory_reserved_peak_bytes", "gauge",
           "The most memory ever reserved at once since start.");
    aecd_buf_printf(b, "aec_memory_reserved_peak_bytes %zu\n", info->memory_peak);
    header(b, "aec_memory_waiting_requests", "gauge",
           "Requests waiting for memory to be released.");
    aecd_buf_printf(b, "aec_memory_waiting_requests %ld\n", info->memory_waiting);
    header(b, "aec_models_served", "gauge", "Models of the repository with a version serving.");
    aecd_buf_printf(b, "aec_models_served %ld\n", info->models_served);
    header(b, "aec_models_failed", "gauge",
           "Models whose last load failed (a previous version may still serve).");
    aecd_buf_printf(b, "aec_models_failed %ld\n", info->models_failed);
    header(b, "aec_model_loads_total", "counter", "Model files loaded, by result.");
    aecd_buf_printf(b, "aec_model_loads_total{result=\"ok\"} %llu\n", info->loads_ok);
    aecd_buf_printf(b, "aec_model_loads_total{result=\"failed\"} %llu\n", info->loads_failed);
    header(b, "aec_model_reloads_total", "counter",
           "Scans of the model folder (start, SIGHUP, POST /v1/models/reload).");
    aecd_buf_printf(b, "aec_model_reloads_total %llu\n", info->reloads);
    header(b, "aec_model_info", "gauge", "The default model (value is always 1).");
    aecd_buf_puts(b, "aec_model_info{id=\"");
    label_value(b, info->model_id);
    aecd_buf_puts(b, "\"} 1\n");
    header(b, "aec_build_info", "gauge", "The aecd version (value is always 1).");
    aecd_buf_puts(b, "aec_build_info{version=\"");
    label_value(b, info->version);
    aecd_buf_puts(b, "\"} 1\n");
    header(b, "process_start_time_seconds", "gauge",
           "Start time of the process since the Unix epoch, in seconds.");
    aecd_buf_printf(b, "process_start_time_seconds %.3f\n", m->start_time);
}

char *aecd_metrics_render(aecd_metrics *m, const aecd_metrics_info *info, size_t *len)
{
    aecd_buf b;
    aecd_buf_init(&b);
    render_requests(&b, m);
    header(&b, "aec_batch_size", "histogram", "Jobs per batched model pass.");
    hist_render(&b, "aec_batch_size", "", &m->batch_size, 1);
    header(&b, "aec_queue_wait_seconds", "histogram",
           "Time a job waited in the batcher queue before its pass started.");
    hist_render(&b, "aec_queue_wait_seconds", "", &m->queue_wait, 1e-9);
    render_gauges(&b, m, info);
    return aecd_buf_steal(&b, len);
}
