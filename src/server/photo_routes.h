/* photo_routes.h - the model endpoints when the model is a photo codec
 * (aec/photo.h): POST /encode turns an image of any size into a version-3
 * stream, POST /decode turns such a stream back into a PNG of the photo's
 * own size. routes.c hands a request here when its model is a photo codec
 * or its body is a version-3 stream.
 *
 * They run on the request's worker, not through the batcher: every photo
 * has a shape of its own, so there is nothing to batch, and the codec works
 * in tiles (photo_codec.c) with --blas-threads threads. What a request will
 * allocate is reserved from the memory budget (--max-memory) before it is
 * allocated. Streams and images are the same for any thread count, so the
 * replies are deterministic (and carry an ETag like every model reply).
 */
#ifndef AECD_PHOTO_ROUTES_H
#define AECD_PHOTO_ROUTES_H

#include "request.h"

/* I/O thread, from the headers (req->ver is a photo codec): what its
 * endpoints refuse: /anomaly, and parameters of the 48x48 models (dtype,
 * fit) or both quality and size. 0, or -1 with the reply set. */
int aecd_photo_check(aecd_request *req);

/* Worker: the image in the body -> the stream (?quality=, ?size=;
 * ?format=json for JSON with the stream in base64). Always replies. */
aecd_stage aecd_photo_encode(aecd_request *req);

/* Worker: a version-3 stream in the body -> PNG. The stream's model tag
 * picks the served codec that made it (or the one ?model= names, which must
 * be it: else 422 model_mismatch). Always replies. */
aecd_stage aecd_photo_decode(aecd_request *req);

#endif
