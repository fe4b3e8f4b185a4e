/* buf.c - growable buffer and JSON writing helpers (see buf.h). */
#include "buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
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

/* 10^k as doubles for k = -50..60 (float32 spans 1.4e-45 .. 3.4e38, and the
 * printer looks one power above and up to 54 below). */
static const double *pow10_table(void)
{
    static double table[111];
    static atomic_int ready;
    if (!atomic_load_explicit(&ready, memory_order_acquire)) {
        /* idempotent: threads racing here write the same values */
        double p = 1.0;
        for (int i = 50; i <= 110; i++, p *= 10.0)
            table[i] = p;
        p = 1.0;
        for (int i = 50; i >= 0; i--, p /= 10.0)
            table[i] = p;
        atomic_store_explicit(&ready, 1, memory_order_release);
    }
    return table + 50;
}

size_t aecd_format_float9(char *out, float v)
{
    const double *p10 = pow10_table();
    char *p = out;
    double d = v;
    if (signbit(v))
        *p++ = '-', d = -d;
    if (d == 0.0) {
        *p++ = '0';
        *p = 0;
        return (size_t)(p - out);
    }
    /* 9 significant digits: m in [1e8, 1e9), v = m * 10^(e - 8). The double
     * arithmetic is off by far less than the float's half ulp, so the
     * digits read back as exactly v (9 digits suffice for any float).
     * The decimal exponent comes from the binary one (log10(2) ~ 0.30103),
     * corrected by one step when the estimate is low. */
    int e2;
    frexp(d, &e2);
    int e = (int)floor((e2 - 1) * 0.30102999566398120);
    if (d >= p10[e + 1])
        e++;
    double scaled = e >= 8 ? d / p10[e - 8] : d * p10[8 - e];
    uint64_t m = (uint64_t)(scaled + 0.5);
    if (m >= 1000000000u)
        m = (m + 5) / 10, e++;
    else if (m < 100000000u)
        m = (uint64_t)(scaled * 10.0 + 0.5), e--;
    char digits[9];
    for (int i = 8; i >= 0; i--, m /= 10)
        digits[i] = (char)('0' + m % 10);
    int n = 9;
    while (n > 1 && digits[n - 1] == '0')
        n--;                /* as %g: no trailing zeros */
    if (e < -4 || e >= 9) { /* d.ddde+XX, as %g */
        *p++ = digits[0];
        if (n > 1) {
            *p++ = '.';
            memcpy(p, digits + 1, (size_t)n - 1);
            p += n - 1;
        }
        int x = e < 0 ? -e : e;
        *p++ = 'e', *p++ = e < 0 ? '-' : '+';
        if (x >= 10)
            *p++ = (char)('0' + x / 10);
        else
            *p++ = '0';
        *p++ = (char)('0' + x % 10);
    } else if (e < 0) { /* 0.000ddd */
        *p++ = '0', *p++ = '.';
        for (int i = -1; i > e; i--)
            *p++ = '0';
        memcpy(p, digits, (size_t)n);
        p += n;
    } else { /* ddd.ddd */
        int whole = e + 1;
        for (int i = 0; i < whole; i++)
            *p++ = i < n ? digits[i] : '0';
        if (n > whole) {
            *p++ = '.';
            memcpy(p, digits + whole, (size_t)(n - whole));
            p += n - whole;
        }
    }
    *p = 0;
    return (size_t)(p - out);
}

void aecd_buf_json_float(aecd_buf *b, float v)
{
    if (!isfinite(v)) {
        aecd_buf_puts(b, "null");
        return;
    }
    char text[32];
    size_t n = aecd_format_float9(text, v);
    aecd_buf_append(b, text, n);
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
