/* log.h - structured log lines on stderr, as logfmt or JSON lines.
 *
 *   aecd_logline l;
 *   aecd_log_begin(&l, AECD_LOG_INFO, "request");
 *   aecd_log_str(&l, "path", "/encode");
 *   aecd_log_int(&l, "status", 200);
 *   aecd_log_end(&l);
 *
 * gives `ts=2025-01-02T03:04:05.678Z level=info msg=request path=/encode
 * status=200` or `{"ts":"...","level":"info","msg":"request",...}`. A line
 * is written with one write(2), so lines from threads never interleave. A
 * field that does not fit in the line is left out whole (logfmt marks the
 * line with " ..."), so JSON lines stay valid.
 */
#ifndef AECD_LOG_H
#define AECD_LOG_H

#include <stddef.h>

#include "config.h"

#define AECD_LOG_LINE_MAX 4096

typedef struct {
    char buf[AECD_LOG_LINE_MAX];
    size_t len;
    int on;  /* 0 when the level is filtered out: calls do nothing */
    int cut; /* a field did not fit */
} aecd_logline;

void aecd_log_init(aecd_log_level level, aecd_log_format format);
int aecd_log_enabled(aecd_log_level level);

void aecd_log_begin(aecd_logline *l, aecd_log_level level, const char *msg);
void aecd_log_str(aecd_logline *l, const char *key, const char *val);
void aecd_log_int(aecd_logline *l, const char *key, long long val);
void aecd_log_num(aecd_logline *l, const char *key, double val);
void aecd_log_end(aecd_logline *l);

/* A line with only a message. */
void aecd_logf(aecd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
