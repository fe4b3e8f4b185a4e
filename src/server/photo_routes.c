/* photo_routes.c - /encode and /decode of a photo codec (photo_routes.h).
 *
 * Error codes (HTTP status): invalid_parameter, invalid_latent,
 * model_mismatch, unsupported_model (422); image_too_large (413);
 * invalid_image (415); out_of_memory (503); internal_error (500).
 */
#include "photo_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/image.h"
#include "aec/photo.h"

#include "base64.h"
#include "buf.h"
#include "upload.h"

static const char k_stream_type[] = "application/x-aec-latent";

int aecd_photo_check(aecd_request *req)
{
    const aecd_version *v = req->ver;
    const aecd_params *q = &req->params;
    if (req->endpoint == AECD_EP_ANOMALY) {
        aecd_reply_error(req, 422, "unsupported_model",
                         "model %s (%s) is a photo codec: /anomaly needs a 48x48 autoencoder"
                         " (?model=NAME; GET /v1/models lists them)",
                         v->name, v->id);
        return -1;
    }
    if (req->endpoint != AECD_EP_ENCODE)
        return 0;
    const char *bad = q->dtype ? "dtype" : q->has_fit ? "fit" : NULL;
    if (bad) {
        aecd_reply_error(req, 422, "invalid_parameter",
                         "%s applies to the 48x48 models; model %s is a photo codec, which"
                         " keeps the photo's size and returns its version-3 stream"
                         " (?quality=1..100 or ?size=BYTES)",
                         bad, v->name);
        return -1;
    }
    if (q->quality && q->size) {
        aecd_reply_error(req, 422, "invalid_parameter",
                         "give quality or size, not both: size picks the quality");
        return -1;
    }
    return 0;
}

/* ---- /encode ------------------------------------------------------------------------ */

/* The reply of a stream of quality q (takes the stream). */
static void encode_reply(aecd_request *req, uint8_t *stream, size_t len, int w, int h, int q)
{
    const aecd_version *v = req->ver;
    char quality[8];
    snprintf(quality, sizeof quality, "%d", q);
    double bpp = 8.0 * (double)len / ((double)w * (double)h);
    if (req->params.format != AECD_FORMAT_JSON) {
        aecd_reply(req, 200, k_stream_type, stream, len);
        aecd_reply_header(req, "X-Aec-Quality", quality);
        return;
    }
    size_t b64_len = 0;
    char *b64 = aecd_base64_encode(stream, len, &b64_len);
    free(stream);
    if (!b64) {
        aecd_reply_error(req, 503, "out_of_memory", "no memory for the response; retry shortly");
        return;
    }
    aecd_buf b;
    aecd_buf_init(&b);
    aecd_buf_puts(&b, "{\"model\":");
    aecd_buf_json_str(&b, v->id);
    aecd_buf_puts(&b, ",\"model_name\":");
    aecd_buf_json_str(&b, v->name);
    aecd_buf_printf(&b, ",\"format\":3,\"width\":%d,\"height\":%d,\"quality\":%d,\"bytes\":%zu", w,
                    h, q, len);
    aecd_buf_puts(&b, ",\"bpp\":");
    aecd_buf_json_float(&b, (float)bpp);
    aecd_buf_puts(&b, ",\"stream\":\"");
    aecd_buf_append(&b, b64, b64_len);
    aecd_buf_puts(&b, "\"}\n");
    free(b64);
    size_t n;
    char *body = aecd_buf_steal(&b, &n);
    if (!body)
        aecd_reply_error(req, 503, "out_of_memory", "no memory for the response; retry shortly");
    else
        aecd_reply(req, 200, "application/json", body, n);
    aecd_reply_header(req, "X-Aec-Quality", quality);
}

aecd_stage aecd_photo_encode(aecd_request *req)
{
    const aec_photo *p = req->ver->photo;
    const aecd_config *cfg = req->srv->cfg;
    size_t max_pixels = (size_t)cfg->max_pixels;
    aec_rgb_image img = {0};
    uint8_t *stream = NULL;
    size_t len = 0, peak = 0;
    const uint8_t *data;
    size_t data_len;
    aec_error err = {{0}};
    int w, h;
    if (aecd_upload_image(req, &data, &data_len) != 0)
        goto done;
    /* the header first: reserve what decoding and compressing take */
    aec_status st = aec_image_probe(data, data_len, max_pixels, 0, &w, &h, &peak, &err);
    if (st != AEC_OK) {
        aecd_reply_image_error(req, st, &err);
        goto done;
    }
    char what[80];
    snprintf(what, sizeof what, "compressing a %dx%d photo", w, h);
    size_t rgb = (size_t)3 * (size_t)w * (size_t)h;
    if (aecd_request_reserve(req, peak + aec_photo_memory_bound(p, w, h, cfg->blas_threads),
                             what) != 0)
        goto done;
    st = aec_image_decode(data, data_len, max_pixels, &img, &err);
    if (st != AEC_OK) {
        aecd_reply_image_error(req, st, &err);
        goto done;
    }
    aecd_request_unreserve(req, peak > rgb ? peak - rgb : 0); /* decoded: the pixels stay */
    aecd_request_free_body(req);
    int q = req->params.quality ? req->params.quality : AEC_PHOTO_QUALITY_DEFAULT;
    if (req->params.size)
        st = aec_photo_compress_size(p, img.rgb, img.width, img.height, (size_t)req->params.size,
                                     cfg->blas_threads, &stream, &len, &q, &err);
    else
        st = aec_photo_compress(p, img.rgb, img.width, img.height, q, cfg->blas_threads, &stream,
                                &len, &err);
    if (st == AEC_ERR_NOMEM)
        aecd_reply_error(req, 503, "out_of_memory",
                         "no memory to compress the photo; retry"
                         " shortly");
    else if (st != AEC_OK)
        aecd_reply_error(req, 500, "internal_error", "compressing failed: %s", err.msg);
    else
        encode_reply(req, stream, len, w, h, q); /* takes the stream */
done:
    aec_image_free(&img);
    return AECD_STAGE_DONE;
}

/* ---- /decode ------------------------------------------------------------------------- */

static int made_it(const aecd_version *v, void *ctx)
{
    return v->photo && aec_photo_tag(v->photo) == *(const uint32_t *)ctx;
}

/* Makes the request's model the codec that made a stream of this tag. 0, or
 * -1 with the reply set. */
static int choose_codec(aecd_request *req, uint32_t tag)
{
    if (made_it(req->ver, &tag))
        return 0;
    if (req->params.model[0]) {
        aecd_reply_error(req, 422, "model_mismatch",
                         "this stream was made by the photo codec of tag %08x; model %s (%s) %s",
                         tag, req->ver->name, req->ver->id,
                         req->ver->photo ? "is another one" : "is not a photo codec");
        return -1;
    }
    aecd_version *v = aecd_registry_find(req->srv->registry, made_it, &tag);
    if (!v) {
        aecd_reply_error(req, 422, "model_mismatch",
                         "no served model made this stream (photo codec tag %08x); GET /v1/models"
                         " shows each codec's stream tag",
                         tag);
        return -1;
    }
    aecd_pass none = {0};
    aecd_request_use_version(req, v, &none);
    aecd_version_release(v); /* the request holds its own reference now */
    return 0;
}

/* What stb_image_write holds while it writes a PNG of w x h RGB pixels:
 * the filtered rows, the deflate output and its hash tables. */
static size_t png_bound(int w, int h)
{
    return (size_t)2 * ((size_t)3 * (size_t)w + 1) * (size_t)h + ((size_t)1 << 20);
}

aecd_stage aecd_photo_decode(aecd_request *req)
{
    const aecd_config *cfg = req->srv->cfg;
    aec_photo_info info;
    aec_error err = {{0}};
    uint8_t *rgb = NULL, *png = NULL;
    size_t png_len = 0;
    int w = 0, h = 0;
    if (aec_photo_stream_info(req->body, req->body_len, &info, &err) != AEC_OK) {
        aecd_reply_error(req, 422, "invalid_latent", "invalid version-3 stream: %s", err.msg);
        goto done;
    }
    if (choose_codec(req, info.tag) != 0)
        goto done;
    const aec_photo *p = req->ver->photo;
    if (req->params.width || req->params.height) {
        aecd_reply_error(req, 422, "invalid_parameter",
                         "a photo stream decodes at its own size (%dx%d): width and height apply"
                         " to the 48x48 models",
                         info.width, info.height);
        goto done;
    }
    if ((double)info.width * info.height > (double)cfg->max_pixels) {
        aecd_reply_error(req, 413, "image_too_large",
                         "the stream's photo is %dx%d, more than this server's limit of %ld pixels"
                         " (--max-pixels)",
                         info.width, info.height, cfg->max_pixels);
        goto done;
    }
    char what[80];
    snprintf(what, sizeof what, "decompressing a %dx%d photo", info.width, info.height);
    size_t need = aec_photo_memory_bound(p, info.width, info.height, cfg->blas_threads) +
                  png_bound(info.width, info.height);
    if (aecd_request_reserve(req, need, what) != 0)
        goto done;
    aec_status st = aec_photo_decompress(p, req->body, req->body_len, (size_t)cfg->max_pixels,
                                         cfg->blas_threads, &rgb, &w, &h, &err);
    if (st == AEC_ERR_NOMEM) {
        aecd_reply_error(req, 503, "out_of_memory", "no memory to decompress; retry shortly");
        goto done;
    }
    if (st != AEC_OK) {
        aecd_reply_error(req, 422, "invalid_latent", "invalid version-3 stream: %s", err.msg);
        goto done;
    }
    aecd_request_free_body(req);
    st = aec_image_encode_png_rgb(rgb, w, h, &png, &png_len, &err);
    if (st == AEC_ERR_NOMEM)
        aecd_reply_error(req, 503, "out_of_memory", "no memory for the PNG; retry shortly");
    else if (st != AEC_OK)
        aecd_reply_error(req, 500, "internal_error", "PNG encoding failed: %s", err.msg);
    else
        aecd_reply(req, 200, "image/png", png, png_len);
done:
    free(rgb);
    return AECD_STAGE_DONE;
}
