/* config.c - aecd's options: the table of every setting, its environment
 * variable, its default and its range; strict parsing of values; --help.
 *
 * Precedence: built-in default < AEC_* environment variable < command line.
 * An empty environment variable counts as unset. A bad value names the
 * option (or variable), the value and what was expected; the caller exits 2.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef AEC_DEFAULT_MODELS
#define AEC_DEFAULT_MODELS "models"
#endif
#ifndef AEC_VERSION
#define AEC_VERSION "dev"
#endif

typedef enum { OPT_STR, OPT_INT, OPT_LONG, OPT_SIZE, OPT_LEVEL, OPT_FORMAT } opt_kind;

typedef struct {
    const char *name; /* long option, without "--" */
    const char *env;  /* environment variable, or NULL */
    opt_kind kind;
    size_t offset; /* into aecd_config */
    long long min, max;
    const char *arg; /* placeholder in --help */
    const char *help;
} opt_spec;

#define OFF(f) offsetof(aecd_config, f)

static const opt_spec k_opts[] = {
    {"models", "AEC_MODELS", OPT_STR, OFF(models_dir), 0, 0, "DIR",
     "serve every NAME.safetensors in DIR as model NAME; SIGHUP or POST /v1/models/reload"
     " rescans it [" AEC_DEFAULT_MODELS "]"},
    {"default-model", "AEC_DEFAULT_MODEL", OPT_STR, OFF(default_model), 0, 0, "NAME",
     "the model of requests that name none (?model=NAME) [default, else the first by name]"},
    {"model", "AEC_MODEL", OPT_STR, OFF(model_path), 0, 0, "FILE",
     "serve only this model file (instead of --models)"},
    {"host", "AEC_HOST", OPT_STR, OFF(host), 0, 0, "ADDR",
     "address to listen on (IPv4 or IPv6 literal, or a name) [127.0.0.1]"},
    {"port", "AEC_PORT", OPT_INT, OFF(port), 0, 65535, "N", "TCP port; 0 picks a free one [8080]"},
    {"port-file", "AEC_PORT_FILE", OPT_STR, OFF(port_file), 0, 0, "FILE",
     "write the bound port to FILE once listening"},
    {"threads", "AEC_THREADS", OPT_INT, OFF(threads), 1, 1024, "N",
     "request worker threads: image decoding, PNG encoding [2 x cores]"},
    {"io-threads", "AEC_IO_THREADS", OPT_INT, OFF(io_threads), 1, 64, "N",
     "HTTP connection (I/O) threads [2]"},
    {"max-body", "AEC_MAX_BODY", OPT_SIZE, OFF(max_body), 1, 1LL << 40, "SIZE",
     "largest request body; K, M, G suffixes [32M]"},
    {"max-buffered", "AEC_MAX_BUFFERED", OPT_SIZE, OFF(max_buffered), 1, 1LL << 50, "SIZE",
     "request bodies held in memory at once, all requests together;"
     " beyond it: 503 [1G]"},
    {"max-pixels", "AEC_MAX_PIXELS", OPT_LONG, OFF(max_pixels), 1, 1LL << 40, "N",
     "largest uploaded image, width x height [40000000]"},
    {"max-memory", "AEC_MAX_MEMORY", OPT_SIZE, OFF(max_memory), 1LL << 20, 1LL << 50, "SIZE",
     "memory in-flight work may hold at once (decoded images, tensors, outputs): beyond it a"
     " request waits, and one that can never fit gets 413 [half of RAM or of the cgroup limit,"
     " at least 256M]"},
    {"timeout", "AEC_TIMEOUT", OPT_INT, OFF(timeout_s), 1, 86400, "SECONDS",
     "close a connection idle (or stalled mid-request) this long [30]"},
    {"header-timeout", "AEC_HEADER_TIMEOUT", OPT_INT, OFF(header_timeout_s), 1, 86400, "SECONDS",
     "close a connection whose request header is not complete this long after it opened"
     " (or after its previous request), however slowly it trickles in [30]"},
    {"max-connections", "AEC_MAX_CONNECTIONS", OPT_INT, OFF(max_connections), 1, 100000, "N",
     "concurrent connections [1024]"},
    {"shutdown-timeout", "AEC_SHUTDOWN_TIMEOUT", OPT_INT, OFF(shutdown_timeout_s), 0, 3600,
     "SECONDS", "on SIGTERM, wait this long for in-flight requests [10]"},
    {"api-key", "AEC_API_KEY", OPT_STR, OFF(api_key), 0, 0, "KEY",
     "require 'Authorization: Bearer KEY' (all but /healthz, /readyz)"},
    {"api-key-file", "AEC_API_KEY_FILE", OPT_STR, OFF(api_key_file), 0, 0, "FILE",
     "read the API key from FILE (safer than --api-key)"},
    {"log-level", "AEC_LOG_LEVEL", OPT_LEVEL, OFF(log_level), 0, 0, "LEVEL",
     "debug, info, warn or error [info]"},
    {"log-format", "AEC_LOG_FORMAT", OPT_FORMAT, OFF(log_format), 0, 0, "FORMAT",
     "logfmt or json [logfmt]"},
    {"max-batch", "AEC_MAX_BATCH", OPT_INT, OFF(max_batch), 1, 4096, "N",
     "largest batch of one model pass; 1 disables batching [32]"},
    {"batch-timeout-us", "AEC_BATCH_TIMEOUT_US", OPT_LONG, OFF(batch_timeout_us), 0, 10000000, "US",
     "longest a batch waits for jobs still being prepared [1000]"},
    {"queue-size", "AEC_QUEUE_SIZE", OPT_INT, OFF(queue_size), 1, 1000000, "N",
     "requests waiting for a worker, and jobs waiting for the model;"
     " beyond it: 503 [256]"},
    {"blas-threads", "AEC_BLAS_THREADS", OPT_INT, OFF(blas_threads), 1, 256, "N",
     "threads of one model pass (any count gives the same answers) [cores]"},
    {"check-health", NULL, OPT_STR, OFF(check_health_url), 0, 0, "URL",
     "client mode: GET a loopback URL, exit 0 if it answers 200, else 1"},
};

#define NOPTS (sizeof k_opts / sizeof k_opts[0])
#define OPT_HELP 1000
#define OPT_VERSION 1001

int aecd_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int aecd_parse_size(const char *s, size_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 0;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        shift = 10;
        end++;
        break;
    case 'M':
        shift = 20;
        end++;
        break;
    case 'G':
        shift = 30;
        end++;
        break;
    case 'T':
        shift = 40;
        end++;
        break;
    default: break;
    }
    if (shift && (end[0] == 'i' || end[0] == 'I') && (end[1] == 'B' || end[1] == 'b'))
        end += 2;
    else if (*end == 'B' || *end == 'b')
        end++;
    if (*end)
        return -1;
    if (shift && v > (SIZE_MAX >> shift))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

static int parse_ll(const char *s, long long *out)
{
    if (!s || !*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* where: "--port" or "AEC_PORT" */
static int set_value(aecd_config *cfg, const opt_spec *o, const char *where, const char *val)
{
    char *field = (char *)cfg + o->offset;
    long long v;
    size_t sz;
    switch (o->kind) {
    case OPT_STR: {
        if (!*val) {
            fprintf(stderr, "aecd: %s: empty value\n", where);
            return -1;
        }
        char *copy = strdup(val);
        if (!copy) {
            fprintf(stderr, "aecd: out of memory\n");
            return -1;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case OPT_INT:
    case OPT_LONG:
        if (parse_ll(val, &v) != 0 || v < o->min || v > o->max) {
            fprintf(stderr, "aecd: %s: '%s' is not an integer in %lld..%lld\n", where, val, o->min,
                    o->max);
            return -1;
        }
        if (o->kind == OPT_INT)
            *(int *)field = (int)v;
        else
            *(long *)field = (long)v;
        return 0;
    case OPT_SIZE:
        if (aecd_parse_size(val, &sz) != 0 || sz < (size_t)o->min || sz > (size_t)o->max) {
            fprintf(stderr,
                    "aecd: %s: '%s' is not a size (a number of bytes with an optional K, M"
                    " or G suffix, at least %lld)\n",
                    where, val, o->min);
            return -1;
        }
        *(size_t *)field = sz;
        return 0;
    case OPT_LEVEL: {
        static const char *names[] = {"debug", "info", "warn", "error"};
        for (int i = 0; i < 4; i++)
            if (strcmp(val, names[i]) == 0) {
                *(aecd_log_level *)field = (aecd_log_level)i;
                return 0;
            }
        fprintf(stderr, "aecd: %s: '%s' is not one of debug, info, warn, error\n", where, val);
        return -1;
    }
    case OPT_FORMAT:
        if (strcmp(val, "logfmt") == 0)
            *(aecd_log_format *)field = AECD_LOG_LOGFMT;
        else if (strcmp(val, "json") == 0)
            *(aecd_log_format *)field = AECD_LOG_JSON;
        else {
            fprintf(stderr, "aecd: %s: '%s' is not one of logfmt, json\n", where, val);
            return -1;
        }
        return 0;
    }
    return -1;
}

static void set_defaults(aecd_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    int cores = aecd_cpu_count();
    cfg->port = 8080;
    cfg->threads = 2 * cores;
    cfg->io_threads = 2;
    cfg->max_body = 32u << 20;
    cfg->max_buffered = (size_t)1 << 30;
    cfg->max_pixels = 40000000;
    cfg->timeout_s = 30;
    cfg->header_timeout_s = 30;
    cfg->max_connections = 1024;
    cfg->shutdown_timeout_s = AECD_DRAIN_SECONDS;
    cfg->log_level = AECD_LOG_INFO;
    cfg->log_format = AECD_LOG_LOGFMT;
    cfg->max_batch = 32;
    cfg->batch_timeout_us = 1000;
    cfg->queue_size = 256;
    cfg->blas_threads = cores;
}

static int default_strings(aecd_config *cfg)
{
    if (!cfg->models_dir)
        cfg->models_dir = strdup(AEC_DEFAULT_MODELS);
    if (!cfg->host)
        cfg->host = strdup("127.0.0.1");
    if (!cfg->models_dir || !cfg->host) {
        fprintf(stderr, "aecd: out of memory\n");
        return -1;
    }
    return 0;
}

static int load_env(aecd_config *cfg)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const char *v = k_opts[i].env ? getenv(k_opts[i].env) : NULL;
        if (v && *v && set_value(cfg, &k_opts[i], k_opts[i].env, v) != 0)
            return -1;
    }
    return 0;
}

static void print_help(void)
{
    printf("usage: aecd [options]\n"
           "Serves a folder of aec models over HTTP: POST /encode, /decode, /anomaly\n"
           "(?model=NAME); GET /healthz, /readyz, /v1/models, /v1/model, /metrics;\n"
           "POST /v1/models/reload. SIGHUP reloads the folder too.\n\n"
           "Each option may also be set by the environment variable shown; the\n"
           "command line wins.\n\n");
    for (size_t i = 0; i < NOPTS; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s %s", k_opts[i].name, k_opts[i].arg);
        printf("  %-28s %s", left, k_opts[i].help);
        if (k_opts[i].env)
            printf(" (%s)", k_opts[i].env);
        printf("\n");
    }
    printf("  %-28s %s\n  %-28s %s\n", "--help", "show this help", "--version", "show the version");
}

/* Reads the key file: one line, surrounding whitespace ignored. */
static int read_key_file(aecd_config *cfg)
{
    FILE *f = fopen(cfg->api_key_file, "rb");
    if (!f) {
        fprintf(stderr, "aecd: --api-key-file %s: %s\n", cfg->api_key_file, strerror(errno));
        return -1;
    }
    char buf[4097];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int too_long = !feof(f) && fgetc(f) != EOF;
    fclose(f);
    if (too_long) {
        fprintf(stderr, "aecd: --api-key-file %s: longer than 4096 bytes\n", cfg->api_key_file);
        return -1;
    }
    buf[n] = '\0';
    char *s = buf;
    while (*s && isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    cfg->api_key = strdup(s);
    if (!cfg->api_key) {
        fprintf(stderr, "aecd: out of memory\n");
        return -1;
    }
    return 0;
}

static int check_api_key(aecd_config *cfg)
{
    if (cfg->api_key && cfg->api_key_file) {
        fprintf(stderr, "aecd: give --api-key or --api-key-file, not both\n");
        return -1;
    }
    if (cfg->api_key_file && read_key_file(cfg) != 0)
        return -1;
    if (!cfg->api_key)
        return 0;
    size_t n = strlen(cfg->api_key);
    if (n == 0) {
        fprintf(stderr, "aecd: the API key is empty\n");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)cfg->api_key[i];
        if (c <= 0x20 || c >= 0x7f) {
            fprintf(stderr, "aecd: the API key must be printable ASCII without spaces"
                            " (it travels in an HTTP header)\n");
            return -1;
        }
    }
    return 0;
}

static int load_argv(aecd_config *cfg, int argc, char **argv, int *exit_now)
{
    struct option lopts[NOPTS + 3];
    for (size_t i = 0; i < NOPTS; i++)
        lopts[i] = (struct option){k_opts[i].name, required_argument, NULL, (int)i};
    lopts[NOPTS] = (struct option){"help", no_argument, NULL, OPT_HELP};
    lopts[NOPTS + 1] = (struct option){"version", no_argument, NULL, OPT_VERSION};
    lopts[NOPTS + 2] = (struct option){NULL, 0, NULL, 0};

    optind = 1;
    opterr = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        if (c == OPT_HELP) {
            print_help();
            *exit_now = 1;
            return 0;
        }
        if (c == OPT_VERSION) {
            printf("aecd %s\n", AEC_VERSION);
            *exit_now = 1;
            return 0;
        }
        if (c < 0 || (size_t)c >= NOPTS) { /* getopt printed the reason */
            fprintf(stderr, "aecd: try 'aecd --help'\n");
            return -1;
        }
        char where[64];
        snprintf(where, sizeof where, "--%s", k_opts[c].name);
        if (set_value(cfg, &k_opts[c], where, optarg) != 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "aecd: unexpected argument '%s'; try 'aecd --help'\n", argv[optind]);
        return -1;
    }
    return 0;
}

aecd_config_result aecd_config_load(aecd_config *cfg, int argc, char **argv)
{
    set_defaults(cfg);
    if (load_env(cfg) != 0)
        return AECD_CONFIG_BAD;
    int exit_now = 0;
    if (load_argv(cfg, argc, argv, &exit_now) != 0)
        return AECD_CONFIG_BAD;
    if (exit_now)
        return AECD_CONFIG_EXIT;
    if (default_strings(cfg) != 0 || check_api_key(cfg) != 0)
        return AECD_CONFIG_BAD;
    return AECD_CONFIG_RUN;
}

void aecd_config_free(aecd_config *cfg)
{
    free(cfg->model_path);
    free(cfg->models_dir);
    free(cfg->default_model);
    free(cfg->host);
    free(cfg->port_file);
    if (cfg->api_key) /* do not leave the secret in freed memory */
        memset(cfg->api_key, 0, strlen(cfg->api_key));
    free(cfg->api_key);
    free(cfg->api_key_file);
    free(cfg->check_health_url);
    memset(cfg, 0, sizeof *cfg);
}
