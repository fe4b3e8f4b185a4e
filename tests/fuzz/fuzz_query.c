/* fuzz_query.c - aecd's query-string parser (src/server/params.c) with the
 * parameter lists of every endpoint, on hostile bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/server/params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const allowed[] = {"format dtype fit quality size model timeout_ms",
                                          "width height model timeout_ms",
                                          "threshold heatmap fit model timeout_ms", "model", ""};
    char *q = malloc(size + 1);
    if (!q)
        return 0;
    memcpy(q, data, size);
    q[size] = '\0';
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        aecd_params p;
        char msg[256];
        aecd_params_parse(q, size, allowed[i], &p, msg, sizeof msg);
    }
    free(q);
    return 0;
}
