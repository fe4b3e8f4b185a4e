/* upload.c - image uploads (upload.h). */
#include "upload.h"

#include <string.h>

#include "multipart.h"

void aecd_reply_image_error(aecd_request *req, aec_status st, const aec_error *err)
{
    switch (st) {
    case AEC_ERR_LIMIT: aecd_reply_error(req, 413, "image_too_large", "%s", err->msg); return;
    case AEC_ERR_NOMEM:
        aecd_reply_error(req, 503, "out_of_memory", "no memory for the image; retry shortly");
        return;
    case AEC_ERR_FORMAT:
    case AEC_ERR_UNSUPPORTED: aecd_reply_error(req, 415, "invalid_image", "%s", err->msg); return;
    default:
        aecd_reply_error(req, 500, "internal_error", "image decoding failed: %s", err->msg);
        return;
    }
}

int aecd_upload_image(aecd_request *req, const uint8_t **data, size_t *len)
{
    *data = req->body;
    *len = req->body_len;
    if (!req->has_media || strcmp(req->media.type, "multipart/form-data") != 0)
        return 0;
    char msg[256];
    switch (aecd_multipart_find(req->body, req->body_len, req->media.boundary, "image", data, len,
                                msg, sizeof msg)) {
    case AECD_MULTIPART_FOUND:
        if (*len > 0)
            return 0;
        aecd_reply_error(req, 400, "empty_body", "the 'image' part is empty");
        return -1;
    case AECD_MULTIPART_ABSENT:
        aecd_reply_error(req, 400, "bad_request",
                         "the multipart body has no part named 'image' (send -F image=@FILE)");
        return -1;
    case AECD_MULTIPART_MALFORMED: break;
    }
    aecd_reply_error(req, 400, "bad_request", "malformed multipart body: %s", msg);
    return -1;
}
