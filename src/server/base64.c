/* base64.c - base64 encoding (see base64.h). */
#include "base64.h"

#include <stdint.h>
#include <stdlib.h>

static const char k_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *aecd_base64_encode(const uint8_t *data, size_t len, size_t *out_len)
{
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    size_t n = (len + 2) / 3 * 4;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *o++ = k_alphabet[v >> 18];
        *o++ = k_alphabet[(v >> 12) & 63];
        *o++ = k_alphabet[(v >> 6) & 63];
        *o++ = k_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)data[i + 1] << 8;
        *o++ = k_alphabet[v >> 18];
        *o++ = k_alphabet[(v >> 12) & 63];
        *o++ = i + 1 < len ? k_alphabet[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    if (out_len)
        *out_len = n;
    return out;
}
