/* base64.h - standard base64 (RFC 4648, with padding) for JSON payloads. */
#ifndef AECD_BASE64_H
#define AECD_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* A malloc'd NUL-terminated encoding of len bytes, or NULL when out of memory. */
char *aecd_base64_encode(const uint8_t *data, size_t len, size_t *out_len);

#endif
