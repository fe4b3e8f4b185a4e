/* fuzz_image.c - libFuzzer target for image decoding (src/image/).
 *
 * Any bytes go through aec_image_load_tensor exactly as the daemon calls it:
 * a 4 MP limit, RGB, 48x48. It must return a status (never crash, leak or
 * read out of bounds) and on success every tensor value is in [0,1].
 *
 * The stb_image implementation is compiled into this target from the same
 * /usr/include/stb/stb_image.h that the Debian libstb is built from, so the
 * decoders are instrumented (coverage guidance and ASan inside stb); the
 * linker prefers these definitions to libstb's. Build with
 * -DAEC_FUZZ_SYSTEM_STB to fuzz the prebuilt, uninstrumented libstb instead.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "aec/image.h"

#ifndef AEC_FUZZ_SYSTEM_STB
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#endif

#define SIDE 48

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static float out[3 * SIDE * SIDE];
    aec_error err;
    aec_status st = aec_image_load_tensor(data, size, (size_t)4 << 20, 3, SIDE, SIDE, out, &err);
    if (st != AEC_OK)
        return 0;
    for (int i = 0; i < 3 * SIDE * SIDE; i++)
        if (!(out[i] >= 0.0f && out[i] <= 1.0f))
            abort();
    return 0;
}
