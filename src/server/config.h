/* config.h - aecd's settings: defaults, environment variables, options. */
#ifndef AECD_CONFIG_H
#define AECD_CONFIG_H

#include <stddef.h>

typedef enum { AECD_LOG_DEBUG, AECD_LOG_INFO, AECD_LOG_WARN, AECD_LOG_ERROR } aecd_log_level;
typedef enum { AECD_LOG_LOGFMT, AECD_LOG_JSON } aecd_log_format;

/* Hard limits that are not options. */
#define AECD_MAX_JSON_BODY (16u << 20) /* a JSON request body */
#define AECD_MAX_JSON_DEPTH 8          /* nesting of a JSON request body */
#define AECD_MAX_QUERY 2048            /* bytes of query string */
#define AECD_MAX_OUTPUT_SIDE 4096      /* /decode ?width= / ?height= */
#define AECD_DRAIN_SECONDS 10          /* default for --shutdown-timeout */
#define AECD_MAX_TIMEOUT_MS 3600000L   /* a request's deadline (?timeout_ms=) */

typedef struct {
    char *models_dir;    /* --models: the model repository */
    char *default_model; /* --default-model NAME, or NULL */
    char *model_path;    /* --model FILE: serve this one file instead, or NULL */
    char *host;
    int port;             /* 0 = any free port */
    char *port_file;      /* written once listening, or NULL */
    int threads;          /* request workers */
    int io_threads;       /* MHD polling threads */
    size_t max_body;      /* bytes */
    size_t max_buffered;  /* bytes of request bodies held at once, all requests */
    long max_pixels;      /* width * height of an uploaded image */
    size_t max_memory;    /* bytes in-flight work may reserve (budget.h); 0 = the default */
    int timeout_s;        /* idle connection timeout */
    int header_timeout_s; /* a request header must arrive within this */
    int max_connections;
    int shutdown_timeout_s;
    char *api_key; /* NULL: no authentication */
    char *api_key_file;
    aecd_log_level log_level;
    aecd_log_format log_format;
    int max_batch;
    long batch_timeout_us;
    int queue_size;
    int blas_threads;
    char *check_health_url; /* --check-health: client mode */
} aecd_config;

typedef enum {
    AECD_CONFIG_RUN = 0,  /* serve (or check health) */
    AECD_CONFIG_EXIT = 1, /* --help or --version printed: exit 0 */
    AECD_CONFIG_BAD = 2,  /* message printed: exit 2 */
} aecd_config_result;

/* Defaults, then AEC_* environment variables, then argv (which wins).
 * Prints its own messages to stdout (--help, --version) or stderr. */
aecd_config_result aecd_config_load(aecd_config *cfg, int argc, char **argv);
void aecd_config_free(aecd_config *cfg);

/* Cores this process may run on (affinity mask), at least 1. */
int aecd_cpu_count(void);

/* Parses "32M", "512K", "1G", "1048576" (K/M/G are powers of 1024, an
 * optional "iB" or "B" may follow). 0 on success. */
int aecd_parse_size(const char *s, size_t *out);

#endif
