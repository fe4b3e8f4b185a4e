/* error.h - how every fallible aec function reports failure.
 *
 * A function that can fail returns an aec_status (AEC_OK == 0 on success) and,
 * when the caller passes a non-NULL aec_error, fills err->msg with one line a
 * human can read ("model.safetensors: tensor 2.weight: shape [3,4] but layer 2
 * expects [96,192]"). The status says what kind of failure it was, so the
 * daemon can map it to an HTTP status without parsing text.
 */
#ifndef AEC_ERROR_H
#define AEC_ERROR_H

#include <stddef.h>

typedef enum {
    AEC_OK = 0,
    AEC_ERR_IO = -1,          /* open/read/write/rename failed */
    AEC_ERR_FORMAT = -2,      /* bytes are not a valid file/image/latent */
    AEC_ERR_NOMEM = -3,       /* allocation failed */
    AEC_ERR_INVALID = -4,     /* argument or value out of range */
    AEC_ERR_LIMIT = -5,       /* input exceeds a configured limit */
    AEC_ERR_UNSUPPORTED = -6, /* valid but not something we handle */
    AEC_ERR_MISMATCH = -7,    /* e.g. latent from another model */
} aec_status;

typedef struct {
    char msg[512];
} aec_error;

/* printf-style: sets err->msg (if err is non-NULL) and returns code. */
aec_status aec_fail(aec_error *err, aec_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (e.g. a file name). */
void aec_error_prefix(aec_error *err, const char *prefix);

const char *aec_status_name(aec_status code);

#endif
