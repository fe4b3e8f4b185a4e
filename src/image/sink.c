/* sink.c - the stb_image_write byte sink (see sink.h). */
#include "sink.h"

#include <stdlib.h>
#include <string.h>

void image_sink_write(void *ctx, void *data, int size)
{
    image_sink *s = ctx;
    if (s->failed || size <= 0)
        return;
    uint8_t *nb = realloc(s->buf, s->len + (size_t)size);
    if (!nb) {
        s->failed = 1;
        return;
    }
    memcpy(nb + s->len, data, (size_t)size);
    s->buf = nb;
    s->len += (size_t)size;
}
