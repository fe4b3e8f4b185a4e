/* log.c - formatting and writing log lines (see log.h).
 *
 * Values are quoted only when logfmt needs it (spaces, quotes, '=' or
 * control characters); control characters are escaped in both formats, so a
 * client-supplied path can never forge a line. A field that does not fit in
 * the line buffer is left out whole.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static aecd_log_level g_level = AECD_LOG_INFO;
static aecd_log_format g_format = AECD_LOG_LOGFMT;

static const char *const k_level_names[] = {"debug", "info", "warn", "error"};

void aecd_log_init(aecd_log_level level, aecd_log_format format)
{
    g_level = level;
    g_format = format;
}

int aecd_log_enabled(aecd_log_level level)
{
    return level >= g_level;
}

/* All or nothing, so a full line drops whole fields and stays well formed. */
static void put(aecd_logline *l, const char *s, size_t n)
{
    size_t room = AECD_LOG_LINE_MAX - 8 - l->len; /* keep room for "...}\n" */
    if (n > room) {
        l->cut = 1;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(aecd_logline *l, const char *s)
{
    put(l, s, strlen(s));
}

static int needs_quotes(const char *s)
{
    if (!*s)
        return 1;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
            return 1;
    }
    return 0;
}

/* Appends the escaped s to out (both formats share the escapes); stops
 * before overflowing. Returns the new length. */
static size_t escape_into(char *out, size_t len, size_t cap, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char tmp[8];
        size_t n;
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            n = 2;
        } else if (c == '\n') {
            memcpy(tmp, "\\n", 2);
            n = 2;
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            n = 6;
        } else {
            tmp[0] = (char)c;
            n = 1;
        }
        if (len + n > cap)
            break;
        memcpy(out + len, tmp, n);
        len += n;
    }
    return len;
}

/* One field, " key=value" or ",\"key\":value", written all or nothing.
 * raw: val is a number, never quoted. */
static void put_field(aecd_logline *l, const char *key, const char *val, int raw)
{
    char field[1200];
    size_t cap = sizeof field - 2, n;
    int json = g_format == AECD_LOG_JSON;
    int quote = !raw && (json || needs_quotes(val));
    n = (size_t)snprintf(field, sizeof field, json ? ",\"%.64s\":" : " %.64s=", key);
    if (quote)
        field[n++] = '"';
    n = escape_into(field, n, cap - 1, val);
    if (quote)
        field[n++] = '"';
    put(l, field, n);
}

void aecd_log_str(aecd_logline *l, const char *key, const char *val)
{
    if (l->on)
        put_field(l, key, val ? val : "", 0);
}

void aecd_log_int(aecd_logline *l, const char *key, long long val)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", val);
    if (l->on)
        put_field(l, key, tmp, 1);
}

void aecd_log_num(aecd_logline *l, const char *key, double val)
{
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.6g", val);
    if (l->on)
        put_field(l, key, tmp, 1);
}

static void format_time(char *out, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

void aecd_log_begin(aecd_logline *l, aecd_log_level level, const char *msg)
{
    l->len = 0;
    l->cut = 0;
    l->on = aecd_log_enabled(level);
    if (!l->on)
        return;
    char ts[48];
    format_time(ts, sizeof ts);
    if (g_format == AECD_LOG_JSON) {
        puts_(l, "{\"ts\":\"");
        puts_(l, ts);
        puts_(l, "\"");
    } else {
        puts_(l, "ts=");
        puts_(l, ts);
    }
    aecd_log_str(l, "level", k_level_names[level]);
    aecd_log_str(l, "msg", msg);
}

void aecd_log_end(aecd_logline *l)
{
    if (!l->on)
        return;
    if (l->cut && g_format == AECD_LOG_LOGFMT) {
        memcpy(l->buf + l->len, " ...", 4);
        l->len += 4;
    }
    if (g_format == AECD_LOG_JSON)
        l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    const char *p = l->buf;
    size_t left = l->len;
    while (left > 0) {
        ssize_t w = write(STDERR_FILENO, p, left);
        if (w <= 0)
            break; /* nowhere to report a failing stderr */
        p += w;
        left -= (size_t)w;
    }
}

void aecd_logf(aecd_log_level level, const char *fmt, ...)
{
    if (!aecd_log_enabled(level))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    aecd_logline l;
    aecd_log_begin(&l, level, msg);
    aecd_log_end(&l);
}
