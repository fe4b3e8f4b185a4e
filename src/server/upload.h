/* upload.h - what an image upload carries, for every endpoint that takes one
 * (/encode and /anomaly of any model): the image bytes of a request body,
 * sent raw or as the "image" part of multipart/form-data, and the reply for
 * an image that does not decode.
 */
#ifndef AECD_UPLOAD_H
#define AECD_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "aec/error.h"

#include "request.h"

/* The image bytes: the body, or its "image" part (pointing into the body).
 * 0, or -1 with the reply set (400 for a malformed or empty multipart body). */
int aecd_upload_image(aecd_request *req, const uint8_t **data, size_t *len);

/* The reply for a failed image decode: 413 image_too_large (beyond
 * --max-pixels), 415 invalid_image, 503 out_of_memory, else 500. */
void aecd_reply_image_error(aecd_request *req, aec_status st, const aec_error *err);

#endif
