/* multipart.c - header parameter grammar (RFC 9110 tokens and quoted
 * strings), Content-Type, Content-Disposition, and the multipart/form-data
 * part walker (RFC 7578, RFC 2046 section 5.1).
 */
#include "multipart.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- header parameter grammar ------------------------------------------- */

static int is_tchar(int c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A token, lower-cased into out. NULL if empty or longer than cap - 1. */
static const char *parse_token(const char *p, char *out, size_t cap)
{
    size_t n = 0;
    while (is_tchar((unsigned char)*p)) {
        if (n + 1 >= cap)
            return NULL;
        out[n++] = (char)tolower((unsigned char)*p++);
    }
    out[n] = '\0';
    return n ? p : NULL;
}

/* A token or a quoted string (with backslash escapes), verbatim into out. */
static const char *parse_value(const char *p, char *out, size_t cap)
{
    size_t n = 0;
    if (*p != '"') {
        while (is_tchar((unsigned char)*p)) {
            if (n + 1 >= cap)
                return NULL;
            out[n++] = *p++;
        }
        out[n] = '\0';
        return n ? p : NULL;
    }
    for (p++; *p != '"'; p++) {
        if (*p == '\\')
            p++;
        if (*p == '\0' || *p == '\r' || *p == '\n' || n + 1 >= cap)
            return NULL;
        out[n++] = *p;
    }
    out[n] = '\0';
    return p + 1;
}

typedef int (*param_fn)(const char *name, const char *value, void *ctx);

/* Walks "; name=value" pairs until the end of the string. -1 if malformed
 * or if fn returns non-zero. */
static int parse_params(const char *p, param_fn fn, void *ctx)
{
    for (;;) {
        p = skip_ows(p);
        if (*p == '\0')
            return 0;
        if (*p++ != ';')
            return -1;
        p = skip_ows(p);
        if (*p == '\0')
            return 0; /* a trailing ';' is tolerated */
        char name[64], value[256];
        p = parse_token(p, name, sizeof name);
        if (!p || *p++ != '=')
            return -1;
        p = parse_value(p, value, sizeof value);
        if (!p || fn(name, value, ctx) != 0)
            return -1;
    }
}

/* ---- Content-Type --------------------------------------------------------- */

static int valid_boundary(const char *b)
{
    size_t n = strlen(b);
    if (n == 0 || n > AECD_BOUNDARY_MAX || b[n - 1] == ' ')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (b[i] < ' ' || b[i] > '~')
            return 0;
    return 1;
}

static int content_type_param(const char *name, const char *value, void *ctx)
{
    aecd_media_type *mt = ctx;
    if (strcmp(name, "boundary") != 0)
        return 0;
    if (!valid_boundary(value))
        return -1;
    snprintf(mt->boundary, sizeof mt->boundary, "%s", value);
    return 0;
}

int aecd_media_type_parse(const char *value, aecd_media_type *out)
{
    memset(out, 0, sizeof *out);
    char type[AECD_MEDIA_TYPE_MAX], sub[AECD_MEDIA_TYPE_MAX];
    const char *p = parse_token(skip_ows(value), type, sizeof type);
    if (!p || *p++ != '/')
        return -1;
    p = parse_token(p, sub, sizeof sub);
    size_t tl = strlen(type), sl = p ? strlen(sub) : 0;
    if (!p || tl + sl + 2 > sizeof out->type)
        return -1;
    if (parse_params(p, content_type_param, out) != 0) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    memcpy(out->type, type, tl);
    out->type[tl] = '/';
    memcpy(out->type + tl + 1, sub, sl + 1);
    return 0;
}

/* ---- multipart/form-data ---------------------------------------------------- */

typedef struct {
    char name[128];
    int has_name;
} disposition;

static int disposition_param(const char *name, const char *value, void *ctx)
{
    disposition *d = ctx;
    if (strcmp(name, "name") == 0) {
        if (d->has_name)
            return -1; /* two names: refuse rather than guess */
        size_t n = strlen(value);
        if (n < sizeof d->name) /* a longer name matches no field we look for */
            memcpy(d->name, value, n + 1);
        d->has_name = 1;
    }
    return 0;
}

/* First occurrence of needle in [hay, hay+n). The needle starts with CR LF
 * and a boundary holds neither, so candidate matches never overlap and the
 * search is linear. */
static const uint8_t *find(const uint8_t *hay, size_t n, const char *needle, size_t m)
{
    const uint8_t *end = hay + n;
    while ((size_t)(end - hay) >= m) {
        const uint8_t *p = memchr(hay, (unsigned char)needle[0], (size_t)(end - hay) - m + 1);
        if (!p)
            return NULL;
        if (memcmp(p, needle, m) == 0)
            return p;
        hay = p + 1;
    }
    return NULL;
}

static void fail(char *msg, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(char *msg, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, n, fmt, ap);
    va_end(ap);
}

/* Parses the header block [p, end) of one part into d. 0 or -1. */
static int parse_part_headers(const char *p, const char *end, disposition *d)
{
    memset(d, 0, sizeof *d);
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol)
            eol = end;
        char line[AECD_MULTIPART_MAX_HEADER + 1];
        size_t n = (size_t)(eol - p);
        memcpy(line, p, n);
        line[n] = '\0';
        if (memchr(p, '\0', n))
            return -1;
        char *colon = strchr(line, ':');
        if (!colon)
            return -1;
        *colon = '\0';
        if (strcasecmp(line, "Content-Disposition") == 0) {
            char kind[32];
            const char *v = parse_token(skip_ows(colon + 1), kind, sizeof kind);
            if (!v || strcmp(kind, "form-data") != 0)
                return -1;
            if (parse_params(v, disposition_param, d) != 0)
                return -1;
        }
        p = eol + 2; /* the block holds CR LF pairs only (checked by the caller) */
    }
    return 0;
}

aecd_multipart_result aecd_multipart_find(const uint8_t *body, size_t body_len,
                                          const char *boundary, const char *field,
                                          const uint8_t **data, size_t *len, char *msg,
                                          size_t msg_len)
{
    char delim[AECD_BOUNDARY_MAX + 5]; /* CR LF "--" boundary */
    size_t blen = strlen(boundary);
    if (!valid_boundary(boundary)) {
        fail(msg, msg_len, "invalid multipart boundary");
        return AECD_MULTIPART_MALFORMED;
    }
    snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    size_t dlen = blen + 4;
    const uint8_t *end = body + body_len;

    /* The first delimiter opens the body, or ends a preamble. */
    const uint8_t *p;
    if (body_len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0) {
        p = body + dlen - 2;
    } else {
        p = find(body, body_len, delim, dlen);
        if (!p) {
            fail(msg, msg_len, "multipart body does not contain its boundary");
            return AECD_MULTIPART_MALFORMED;
        }
        p += dlen;
    }

    for (int part = 1;; part++) {
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return AECD_MULTIPART_ABSENT; /* the closing delimiter */
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            fail(msg, msg_len, "part %d: boundary line not followed by CRLF", part);
            return AECD_MULTIPART_MALFORMED;
        }
        if (part > AECD_MULTIPART_MAX_PARTS) {
            fail(msg, msg_len, "more than %d parts", AECD_MULTIPART_MAX_PARTS);
            return AECD_MULTIPART_MALFORMED;
        }
        p += 2;

        /* headers end at the first empty line */
        const uint8_t *content;
        const uint8_t *hdr_end = p;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            content = p + 2; /* no headers */
        } else {
            size_t window = (size_t)(end - p);
            if (window > AECD_MULTIPART_MAX_HEADER + 4)
                window = AECD_MULTIPART_MAX_HEADER + 4;
            hdr_end = find(p, window, "\r\n\r\n", 4);
            if (!hdr_end || hdr_end - p > AECD_MULTIPART_MAX_HEADER) {
                fail(msg, msg_len, "part %d: headers unterminated or longer than %d bytes", part,
                     AECD_MULTIPART_MAX_HEADER);
                return AECD_MULTIPART_MALFORMED;
            }
            content = hdr_end + 4;
        }
        for (const uint8_t *q = p; q < hdr_end; q++) /* bare CR or LF: malformed */
            if ((*q == '\r' && (q + 1 >= hdr_end || q[1] != '\n')) ||
                (*q == '\n' && (q == p || q[-1] != '\r'))) {
                fail(msg, msg_len, "part %d: bare CR or LF in headers", part);
                return AECD_MULTIPART_MALFORMED;
            }
        disposition d;
        if (parse_part_headers((const char *)p, (const char *)hdr_end, &d) != 0) {
            fail(msg, msg_len, "part %d: malformed headers", part);
            return AECD_MULTIPART_MALFORMED;
        }

        const uint8_t *next = find(content, (size_t)(end - content), delim, dlen);
        if (!next) {
            fail(msg, msg_len, "part %d: not terminated by the boundary (truncated body?)", part);
            return AECD_MULTIPART_MALFORMED;
        }
        if (d.has_name && strcmp(d.name, field) == 0) {
            *data = content;
            *len = (size_t)(next - content);
            return AECD_MULTIPART_FOUND;
        }
        p = next + dlen;
    }
}
