/* buf.c - growable buffer and JSON writing helpers (see buf.h). */
#include "buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void aecd_buf_init(aecd_buf *b)
{
    memset(b, 0, sizeof *b);
}

void aecd_buf_free(aecd_buf *b)
{
    free(b->data);
    aecd_buf_init(b);
}

int aecd_buf_reserve(aecd_buf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (extra > SIZE_MAX / 2 - b->len) {
        b->oom = 1;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void aecd_buf_append(aecd_buf *b, const void *p, size_t n)
{
    if (aecd_buf_reserve(b, n) != 0)
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void aecd_buf_puts(aecd_buf *b, const char *s)
{
    aecd_buf_append(b, s, strlen(s));
}

void aecd_buf_printf(aecd_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || aecd_buf_reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void aecd_buf_json_str(aecd_buf *b, const char *s)
{
    aecd_buf_append(b, "\"", 1);
    const char *run = s; /* bytes copied as they are */
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        aecd_buf_append(b, run, (size_t)(s - run));
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            aecd_buf_append(b, esc, 2);
        } else if (c == '\n') {
            aecd_buf_append(b, "\\n", 2);
        } else {
            aecd_buf_printf(b, "\\u%04x", c);
        }
        run = s + 1;
    }
    aecd_buf_append(b, run, (size_t)(s - run));
    aecd_buf_append(b, "\"", 1);
}

void aecd_buf_json_double(aecd_buf *b, double v)
{
    if (!isfinite(v)) {
        aecd_buf_puts(b, "null");
        return;
    }
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) { /* shortest that round-trips */
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    aecd_buf_puts(b, tmp);
}

void aecd_buf_json_float(aecd_buf *b, float v)
{
    if (!isfinite(v))
        aecd_buf_puts(b, "null");
    else
        aecd_buf_printf(b, "%.9g", (double)v);
}

char *aecd_buf_steal(aecd_buf *b, size_t *len)
{
    if (b->oom || aecd_buf_reserve(b, 0) != 0) {
        aecd_buf_free(b);
        return NULL;
    }
    char *p = b->data;
    if (len)
        *len = b->len;
    aecd_buf_init(b);
    return p;
}
