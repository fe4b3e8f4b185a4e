/* sniff.h - internal to src/image: header facts read without stb_image. */
#ifndef AEC_IMAGE_SNIFF_H
#define AEC_IMAGE_SNIFF_H

#include <stddef.h>
#include <stdint.h>

#include "aec/error.h"

/* The width and height a PNG IHDR or a JPEG frame header claims; 0 if the
 * bytes are neither or the field is not there. */
int aec_sniff_declared_size(const uint8_t *buf, size_t len, uint32_t *w, uint32_t *h);

/* AEC_OK if the bytes are safe to hand to stb_image 2.27 (Debian's libstb);
 * otherwise fills err and returns AEC_ERR_FORMAT or AEC_ERR_UNSUPPORTED for
 * input that reaches one of its known bugs (listed in sniff.c). */
aec_status aec_sniff_stb_hazards(const uint8_t *buf, size_t len, aec_error *err);

#endif
