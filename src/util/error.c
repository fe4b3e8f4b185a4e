/* error.c - filling aec_error messages (see include/aec/error.h). */
#include "aec/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

aec_status aec_fail(aec_error *err, aec_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void aec_error_prefix(aec_error *err, const char *prefix)
{
    if (!err || !prefix)
        return;
    char tmp[sizeof err->msg];
    size_t plen = strlen(prefix);
    if (plen > sizeof tmp - 3)
        plen = sizeof tmp - 3;
    memcpy(tmp, prefix, plen);
    memcpy(tmp + plen, ": ", 2);
    size_t rest = sizeof tmp - plen - 3;
    size_t mlen = strnlen(err->msg, rest);
    memcpy(tmp + plen + 2, err->msg, mlen);
    tmp[plen + 2 + mlen] = '\0';
    memcpy(err->msg, tmp, sizeof tmp);
}

const char *aec_status_name(aec_status code)
{
    switch (code) {
    case AEC_OK: return "ok";
    case AEC_ERR_IO: return "io_error";
    case AEC_ERR_FORMAT: return "bad_format";
    case AEC_ERR_NOMEM: return "out_of_memory";
    case AEC_ERR_INVALID: return "invalid_argument";
    case AEC_ERR_LIMIT: return "limit_exceeded";
    case AEC_ERR_UNSUPPORTED: return "unsupported";
    case AEC_ERR_MISMATCH: return "mismatch";
    }
    return "unknown";
}
