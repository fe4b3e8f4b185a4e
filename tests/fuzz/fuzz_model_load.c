/* fuzz_model_load.c - libFuzzer target: arbitrary bytes as a model file.
 * aec_model_load_memory must either load a model or fail with a message;
 * never crash, leak or read outside the buffer. Seeds: corpus/model_load/. */
#include <stddef.h>
#include <stdint.h>

#include "aec/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aec_model *m = NULL;
    aec_error err;
    if (aec_model_load_memory(&m, data, size, "fuzz", &err) == AEC_OK)
        aec_model_free(m);
    return 0;
}
