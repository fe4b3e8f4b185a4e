/* fuzz_image.c - libFuzzer target for image decoding (src/image/).
 *
 * Any bytes go through aec_image_load_tensor exactly as the daemon calls it:
 * a 4 MP limit, RGB, 48x48. It must return a status (never crash, leak or
 * read out of bounds) and on success every tensor value is in [0,1].
 *
 * libaec compiles the stb_image decoder itself (src/image/stb_decode.c, from
 * Debian's /usr/include/stb/stb_image.h, with its memory budget), so the
 * fuzz build instruments the very code the daemon runs: coverage guidance
 * and ASan/UBSan inside stb, and a decode that tries to allocate far past
 * what the declared size needs shows up as an ASan out-of-memory report.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "aec/image.h"

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
