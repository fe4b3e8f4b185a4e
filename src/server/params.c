/* params.c - query-string parsing and per-parameter validation (params.h).
 *
 * Parameters: format (json|binary), dtype (f32|f16|u8|coded), width and height
 * (integers 1..AECD_MAX_OUTPUT_SIDE), threshold (a finite decimal number
 * >= 0), heatmap (0|1|true|false), model (a model name: letters, digits,
 * '-', '_', '.'), timeout_ms (an integer 1..3600000), fit (stretch|crop|pad),
 * score (reconstruction|catface|combined),
 * quality (an integer 1..100), size (bytes, an integer 1..AECD_MAX_TARGET_BYTES).
 * Percent-escapes and '+' are decoded; an invalid escape or a NUL byte is
 * refused.
 */
#include "params.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/anomaly.h"
#include "aec/image.h"
#include "aec/latent.h"

#include "config.h"

static void say(char *msg, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *msg, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, n, fmt, ap);
    va_end(ap);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes [s, s+n) into out (cap >= n + 1). -1 on a bad escape or NUL. */
static int unescape(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0')
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* For messages: at most 40 printable characters of a client's value. */
static const char *shown(const char *v, char *buf, size_t n)
{
    size_t o = 0;
    for (; *v && o + 4 < n && o < 40; v++)
        buf[o++] = isprint((unsigned char)*v) ? *v : '?';
    if (*v)
        buf[o++] = '.', buf[o++] = '.', buf[o++] = '.';
    buf[o] = '\0';
    return buf;
}

/* A decimal integer in [lo, hi], digits only (no sign, space or exponent). */
static int parse_range(const char *v, long lo, long hi, long *out)
{
    if (!*v || strlen(v) > 9)
        return -1;
    for (const char *p = v; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    long n = strtol(v, NULL, 10);
    if (n < lo || n > hi)
        return -1;
    *out = n;
    return 0;
}

static int parse_side(const char *v, int *out)
{
    long n;
    if (parse_range(v, 1, AECD_MAX_OUTPUT_SIDE, &n) != 0)
        return -1;
    *out = (int)n;
    return 0;
}

static int parse_threshold(const char *v, double *out)
{
    if (!*v || strlen(v) > 64)
        return -1;
    for (const char *p = v; *p; p++) /* no hex floats, "inf", "nan", spaces */
        if (!isdigit((unsigned char)*p) && !strchr("+-.eE", *p))
            return -1;
    char *end;
    double d = strtod(v, &end);
    if (*end || !isfinite(d) || d < 0)
        return -1;
    *out = d;
    return 0;
}

int aecd_parse_ms(const char *v, long *out)
{
    return parse_range(v, 1, AECD_MAX_TIMEOUT_MS, out);
}

static int parse_bool(const char *v, int *out)
{
    if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
        *out = 1;
    else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
        *out = 0;
    else
        return -1;
    return 0;
}

/* One key=value into p. */
static int apply(const char *key, const char *val, aecd_params *p, char *msg, size_t n)
{
    char sv[64];
    if (strcmp(key, "format") == 0) {
        if (strcmp(val, "json") == 0)
            p->format = AECD_FORMAT_JSON;
        else if (strcmp(val, "binary") == 0)
            p->format = AECD_FORMAT_BINARY;
        else {
            say(msg, n, "format must be json or binary (got '%s')", shown(val, sv, sizeof sv));
            return -1;
        }
    } else if (strcmp(key, "dtype") == 0) {
        p->dtype = strcmp(val, "coded") == 0 ? AECD_DTYPE_CODED : (int)aec_latent_dtype_parse(val);
        if (p->dtype == 0) {
            say(msg, n, "dtype must be f32, f16, u8 or coded (got '%s')",
                shown(val, sv, sizeof sv));
            return -1;
        }
    } else if (strcmp(key, "width") == 0 || strcmp(key, "height") == 0) {
        int *dst = key[0] == 'w' ? &p->width : &p->height;
        if (parse_side(val, dst) != 0) {
            say(msg, n, "%s must be an integer from 1 to %d (got '%s')", key, AECD_MAX_OUTPUT_SIDE,
                shown(val, sv, sizeof sv));
            return -1;
        }
    } else if (strcmp(key, "threshold") == 0) {
        if (parse_threshold(val, &p->threshold) != 0) {
            say(msg, n, "threshold must be a finite number >= 0 (got '%s')",
                shown(val, sv, sizeof sv));
            return -1;
        }
        p->has_threshold = 1;
    } else if (strcmp(key, "heatmap") == 0) {
        if (parse_bool(val, &p->heatmap) != 0) {
            say(msg, n, "heatmap must be 0, 1, true or false (got '%s')",
                shown(val, sv, sizeof sv));
            return -1;
        }
    } else if (strcmp(key, "model") == 0) {
        size_t len = strlen(val);
        int ok = len > 0 && len < sizeof p->model && val[0] != '.';
        for (size_t i = 0; ok && i < len; i++)
            ok = isalnum((unsigned char)val[i]) || strchr("-_.", val[i]);
        if (!ok) {
            say(msg, n,
                "model must be a model name (letters, digits, '-', '_', '.'; at most %zu)"
                " (got '%s')",
                sizeof p->model - 1, shown(val, sv, sizeof sv));
            return -1;
        }
        memcpy(p->model, val, len + 1);
    } else if (strcmp(key, "score") == 0) {
        p->score = aec_anomaly_kind_parse(val);
        if (p->score < 0) {
            say(msg, n, "score must be reconstruction, catface, rotation or combined (got '%s')",
                shown(val, sv, sizeof sv));
            return -1;
        }
        p->has_score = 1;
    } else if (strcmp(key, "fit") == 0) {
        p->fit = aec_fit_parse(val);
        if (p->fit < 0) {
            say(msg, n, "fit must be stretch, crop or pad (got '%s')", shown(val, sv, sizeof sv));
            return -1;
        }
        p->has_fit = 1;
    } else if (strcmp(key, "quality") == 0) {
        long q;
        if (parse_range(val, 1, 100, &q) != 0) {
            say(msg, n, "quality must be an integer from 1 to 100 (got '%s')",
                shown(val, sv, sizeof sv));
            return -1;
        }
        p->quality = (int)q;
    } else if (strcmp(key, "size") == 0) {
        if (parse_range(val, 1, AECD_MAX_TARGET_BYTES, &p->size) != 0) {
            say(msg, n, "size must be a number of bytes from 1 to %ld (got '%s')",
                (long)AECD_MAX_TARGET_BYTES, shown(val, sv, sizeof sv));
            return -1;
        }
    } else if (strcmp(key, "timeout_ms") == 0) {
        if (aecd_parse_ms(val, &p->timeout_ms) != 0) {
            say(msg, n, "timeout_ms must be an integer from 1 to %ld (got '%s')",
                AECD_MAX_TIMEOUT_MS, shown(val, sv, sizeof sv));
            return -1;
        }
    } else {
        say(msg, n, "unknown query parameter '%s'", shown(key, sv, sizeof sv));
        return -1;
    }
    return 0;
}

/* Index of key in the space-separated list, or -1. */
static int allowed_index(const char *allowed, const char *key)
{
    size_t klen = strlen(key);
    int idx = 0;
    for (const char *a = allowed; *a;) {
        const char *sp = strchr(a, ' ');
        size_t alen = sp ? (size_t)(sp - a) : strlen(a);
        if (alen == klen && memcmp(a, key, klen) == 0)
            return idx;
        idx++;
        a += alen;
        while (*a == ' ')
            a++;
    }
    return -1;
}

static void list_allowed(const char *allowed, char *out, size_t n)
{
    if (!*allowed) {
        snprintf(out, n, "this endpoint takes no query parameters");
        return;
    }
    snprintf(out, n, "this endpoint takes: ");
    size_t o = strlen(out);
    for (const char *a = allowed; *a && o + 3 < n; a++)
        if (*a == ' ') {
            out[o++] = ',';
            out[o++] = ' ';
        } else {
            out[o++] = *a;
        }
    out[o] = '\0';
}

int aecd_params_parse(const char *query, size_t len, const char *allowed, aecd_params *out,
                      char *msg, size_t msg_len)
{
    memset(out, 0, sizeof *out);
    if (!query || len == 0)
        return 0;
    if (len > AECD_MAX_QUERY) {
        say(msg, msg_len, "query string longer than %d bytes", AECD_MAX_QUERY);
        return -1;
    }
    unsigned seen = 0;
    const char *end = query + len;
    for (const char *p = query; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *seg_end = amp ? amp : end;
        if (seg_end > p) { /* empty segments ("a=1&&b=2", a trailing '&') are skipped */
            const char *eq = memchr(p, '=', (size_t)(seg_end - p));
            char key[AECD_MAX_QUERY + 1], val[AECD_MAX_QUERY + 1], sv[64];
            const char *kend = eq ? eq : seg_end;
            if (unescape(p, (size_t)(kend - p), key) != 0 ||
                (eq && unescape(eq + 1, (size_t)(seg_end - eq - 1), val) != 0)) {
                say(msg, msg_len, "invalid percent-escape in the query string");
                return -1;
            }
            int idx = allowed_index(allowed, key);
            if (idx < 0) {
                char what[160];
                list_allowed(allowed, what, sizeof what);
                say(msg, msg_len, "unknown query parameter '%s'; %s", shown(key, sv, sizeof sv),
                    what);
                return -1;
            }
            if (seen & (1u << idx)) {
                say(msg, msg_len, "query parameter '%s' given more than once", key);
                return -1;
            }
            seen |= 1u << idx;
            if (!eq || eq + 1 == seg_end) {
                say(msg, msg_len, "query parameter '%s' needs a value", key);
                return -1;
            }
            if (apply(key, val, out, msg, msg_len) != 0)
                return -1;
        }
        p = seg_end + 1;
    }
    return 0;
}
