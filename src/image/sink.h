/* sink.h - the byte sink stb_image_write writes into (private to
 * src/image/): a growing malloc'd buffer the caller owns afterwards. Used by
 * the PNG and JPEG writers, so we never free memory stb allocated. */
#ifndef AEC_IMAGE_SINK_H
#define AEC_IMAGE_SINK_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *buf;
    size_t len;
    int failed; /* an allocation failed: buf is incomplete */
} image_sink;

/* stbi_write_func: appends size bytes of data to the sink ctx. */
void image_sink_write(void *ctx, void *data, int size);

#endif
