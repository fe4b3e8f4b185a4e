/* fuzz_json.c - aecd's JSON gate (src/server/jsonx.c): the nesting-depth
 * pre-scan that runs before cJSON, then the parse, on hostile bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/server/jsonx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t at = 0;
    if (aecd_json_depth_check((const char *)data, size, 8, &at) != 0)
        return 0;
    cJSON *j = aecd_json_parse((const char *)data, size, &at);
    cJSON_Delete(j);
    return 0;
}
