/* params.h - strict query-string parsing.
 *
 * Every parameter must be one the endpoint takes, given once, with a value
 * that parses completely: "?width=12px", "?threshold=abc", "?dtype=f64",
 * "?foo=1" and "?width=1&width=2" are all refused with a message that names
 * the parameter, the value and what is expected.
 */
#ifndef AECD_PARAMS_H
#define AECD_PARAMS_H

#include <stddef.h>

/* ?dtype=coded: the entropy-coded binary latent v2 (include/aec/codec.h) */
#define AECD_DTYPE_CODED 100

/* ?size= of a photo codec's stream: at most this many bytes (parse_range
 * takes 9 digits) */
#define AECD_MAX_TARGET_BYTES 999999999L

enum { AECD_FORMAT_UNSET = 0, AECD_FORMAT_JSON, AECD_FORMAT_BINARY };

/* Query parameters, parsed strictly. */
typedef struct {
    int format; /* AECD_FORMAT_* */
    int dtype;  /* aec_latent_dtype, or AECD_DTYPE_CODED; 0 = unset */
    int width, height;
    int has_threshold;
    double threshold;
    int heatmap;
    char model[64];  /* ?model=NAME, or "" */
    long timeout_ms; /* ?timeout_ms=, or 0 */
    int fit;         /* ?fit=: aec_fit (AEC_FIT_STRETCH unless given) */
    int has_fit;
    int quality; /* ?quality= 1..100 (photo codecs), or 0 */
    long size;   /* ?size= target bytes (photo codecs), or 0 */
    int score;   /* ?score= of /anomaly: aec_anomaly_kind */
    int has_score;
} aecd_params;

/* allowed: the parameter names the endpoint takes, space separated ("" for
 * none). 0, or -1 with msg set. */
/* A deadline in milliseconds, 1..AECD_MAX_TIMEOUT_MS (also the
 * X-Request-Timeout-Ms header). 0, or -1. */
int aecd_parse_ms(const char *v, long *out);

int aecd_params_parse(const char *query, size_t len, const char *allowed, aecd_params *out,
                      char *msg, size_t msg_len);

#endif
