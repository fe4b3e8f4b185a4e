/* buf.h - a growable byte buffer, and the JSON writing the responses need.
 *
 * Allocation failure is sticky: appends after it do nothing and
 * aecd_buf_steal() returns NULL, so a caller checks once at the end.
 */
#ifndef AECD_BUF_H
#define AECD_BUF_H

#include <stddef.h>

typedef struct {
    char *data;
    size_t len, cap;
    int oom;
} aecd_buf;

void aecd_buf_init(aecd_buf *b);
void aecd_buf_free(aecd_buf *b);
/* Makes room for extra more bytes (plus a NUL). 0 on success. */
int aecd_buf_reserve(aecd_buf *b, size_t extra);
void aecd_buf_append(aecd_buf *b, const void *p, size_t n);
void aecd_buf_puts(aecd_buf *b, const char *s);
void aecd_buf_printf(aecd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A JSON string literal: quoted, escaped (control characters as \u00XX). */
void aecd_buf_json_str(aecd_buf *b, const char *s);
/* A JSON number with the fewest of 15..17 significant digits that
 * round-trips the double, or null when v is not finite. */
void aecd_buf_json_double(aecd_buf *b, double v);
/* 9 significant digits (aecd_format_float9): round-trips a float exactly. */
void aecd_buf_json_float(aecd_buf *b, float v);
/* v with 9 significant digits, which read back as exactly v, in %g's style
 * (no trailing zeros; exponent below 1e-4 and from 1e9); at least 32 bytes
 * of out. Returns the length. Several times faster than printf("%.9g"). */
size_t aecd_format_float9(char *out, float v);

/* Hands over the NUL-terminated contents (malloc'd); NULL after an
 * allocation failure. The buffer is left empty. */
char *aecd_buf_steal(aecd_buf *b, size_t *len);

#endif
