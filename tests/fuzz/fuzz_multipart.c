/* fuzz_multipart.c - the Content-Type parser and the multipart/form-data body
 * parser of aecd (src/server/multipart.c) on hostile bytes. Input: a
 * Content-Type value up to the first newline, then the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/server/multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < 512 ? size : 512);
    size_t ct_len = nl ? (size_t)(nl - data) : 0;
    char *ct = malloc(ct_len + 1);
    if (!ct)
        return 0;
    memcpy(ct, data, ct_len);
    ct[ct_len] = '\0';
    const uint8_t *body = nl ? nl + 1 : data;
    size_t body_len = nl ? size - ct_len - 1 : size;
    aecd_media_type mt;
    if (aecd_media_type_parse(ct, &mt) == 0 && mt.boundary[0]) {
        const uint8_t *part = NULL;
        size_t len = 0;
        char msg[256];
        if (aecd_multipart_find(body, body_len, mt.boundary, "image", &part, &len, msg,
                                sizeof msg) == AECD_MULTIPART_FOUND) {
            /* the part must lie inside the body */
            if (part < body || part + len > body + body_len)
                abort();
        }
    }
    free(ct);
    return 0;
}
