/* multipart.h - Content-Type parsing and multipart/form-data bodies.
 *
 * Nothing here trusts a length the client states: parts are found by
 * searching for the boundary inside the bytes actually received, and every
 * count and size is bounded (AECD_MULTIPART_MAX_PARTS parts, part headers of
 * at most AECD_MULTIPART_MAX_HEADER bytes).
 */
#ifndef AECD_MULTIPART_H
#define AECD_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#define AECD_MULTIPART_MAX_PARTS 16
#define AECD_MULTIPART_MAX_HEADER 8192
#define AECD_MEDIA_TYPE_MAX 64
#define AECD_BOUNDARY_MAX 70 /* RFC 2046 */

typedef struct {
    char type[AECD_MEDIA_TYPE_MAX];       /* "image/png": lower case, no parameters */
    char boundary[AECD_BOUNDARY_MAX + 1]; /* the boundary parameter, or "" */
} aecd_media_type;

/* Parses a Content-Type value ("type/subtype; param=value; ..."). Returns 0,
 * or -1 when it is malformed (then out->type is ""). */
int aecd_media_type_parse(const char *value, aecd_media_type *out);

typedef enum {
    AECD_MULTIPART_FOUND = 0,
    AECD_MULTIPART_ABSENT = 1, /* well formed, but no part of that name */
    AECD_MULTIPART_MALFORMED = -1,
} aecd_multipart_result;

/* Finds the first part whose Content-Disposition is form-data with
 * name="field". On FOUND, *data / *len point into body. On MALFORMED, msg
 * says what is wrong ("part 2: headers longer than 8192 bytes"). */
aecd_multipart_result aecd_multipart_find(const uint8_t *body, size_t body_len,
                                          const char *boundary, const char *field,
                                          const uint8_t **data, size_t *len, char *msg,
                                          size_t msg_len);

#endif
