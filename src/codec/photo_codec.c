/* photo_codec.c - running the photo codec (include/aec/photo.h): the
 * networks on images of any size, in tiles, and the version-3 stream.
 *
 * Everything here is the serving path: fixed order of operations (the
 * *_infer layers), so a stream and its decoded pixels are the same bits on
 * every machine and for every thread count. The image is padded to a
 * multiple of 64 by repeating its edge; the analysis runs in tiles of
 * ANALYSIS_TILE pixels with ANALYSIS_HALO pixels of context on each side,
 * the synthesis in tiles of SYNTHESIS_TILE latent pixels with SYNTHESIS_HALO
 * of context. The halos cover the networks' receptive fields, and every
 * output element is the same sum in the same order wherever it lies, so the
 * tiles give exactly the untiled result; memory stays bounded whatever the
 * photo's size. The hyper networks run on the whole (small) latent.
 */
#include "aec/photo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aec/hash.h"
#include "aec/layers.h"

#define ANALYSIS_TILE 768 /* pixels, a multiple of 64 */
#define ANALYSIS_HALO 64  /* pixels, a multiple of 16, >= g_a's receptive radius (30) */
#define SYNTHESIS_TILE 48 /* latent pixels */
#define SYNTHESIS_HALO 4  /* latent pixels, >= g_s's receptive radius (3) */
#define LRELU_SLOPE 0.01f

/* ---- running one network on one image ----------------------------------------------- */

typedef struct {
    size_t act;     /* floats of the largest activation (input included) */
    size_t scratch; /* floats of the largest layer scratch */
} net_needs;

static net_needs net_plan(const aec_net *net, int h, int w, int threads)
{
    net_needs n = {(size_t)net->st[0].cin * h * w, 0};
    for (int i = 0; i < net->nstages; i++) {
        const aec_stage *s = &net->st[i];
        int oh, ow;
        aec_stage_out_size(s, h, w, &oh, &ow);
        size_t out = (size_t)s->cout * oh * ow, sc = 0;
        if (s->kind == AEC_ST_CONV)
            sc = aec_conv2d_infer_scratch(s->cin, h, w, s->k, s->stride, s->k / 2, threads);
        else if (s->kind == AEC_ST_DECONV)
            sc = aec_deconv2d_infer_scratch(s->cin, h, w, s->cout, s->k, s->stride, threads);
        else if (s->kind == AEC_ST_GDN || s->kind == AEC_ST_IGDN)
            sc = aec_gdn_infer_scratch(s->cin, threads);
        if (n.act < out)
            n.act = out;
        if (n.scratch < sc)
            n.scratch = sc;
        h = oh, w = ow;
    }
    return n;
}

/* Runs net on x [cin, h, w]; a and b hold net_plan().act floats each, scratch
 * .scratch floats. Returns the output (in a or b). */
static const float *net_run(const aec_photo *p, const aec_net *net, const float *x, int h, int w,
                            float *a, float *b, float *scratch, int threads)
{
    const float *in = x;
    for (int i = 0; i < net->nstages; i++) {
        const aec_stage *s = &net->st[i];
        float *out = in == a ? b : a;
        const float *wt = p->eff + s->w, *bias = p->eff + s->b;
        int oh, ow;
        aec_stage_out_size(s, h, w, &oh, &ow);
        switch (s->kind) {
        case AEC_ST_CONV:
            aec_conv2d_infer(out, scratch, in, wt, bias, 1, s->cin, h, w, s->cout, s->k, s->stride,
                             s->k / 2, threads);
            break;
        case AEC_ST_DECONV:
            aec_deconv2d_infer(out, scratch, in, p->phase + s->ph, bias, s->cin, h, w, s->cout,
                               s->k, s->stride, s->k / 2, threads);
            break;
        case AEC_ST_GDN:
        case AEC_ST_IGDN:
            aec_gdn_infer(out, scratch, in, bias, wt, s->cin, (size_t)h * w, s->kind == AEC_ST_IGDN,
                          threads);
            break;
        case AEC_ST_LRELU:
            aec_leaky_relu_forward(out, in, (size_t)s->cin * h * w, LRELU_SLOPE);
            break;
        }
        in = out, h = oh, w = ow;
    }
    return in;
}

/* Buffers for net_run, allocated together. */
typedef struct {
    float *a, *b, *scratch, *block;
} run_buffers;

static aec_status buffers_alloc(run_buffers *r, net_needs n, size_t extra, float **extra_out,
                                aec_error *err)
{
    r->block = malloc(sizeof(float) * (2 * n.act + n.scratch + extra + 1));
    if (!r->block)
        return aec_fail(err, AEC_ERR_NOMEM, "photo codec: out of memory");
    r->a = r->block, r->b = r->a + n.act, r->scratch = r->b + n.act;
    if (extra_out)
        *extra_out = r->scratch + n.scratch;
    return AEC_OK;
}

/* ---- the image side: pixels in, pixels out ---------------------------------------------- */

/* Where analysis reads its pixels: a float image [3, h, w] or 8-bit RGB, both
 * of the true size; reads beyond it repeat the edge (the padding). */
typedef struct {
    const float *x;
    const uint8_t *rgb;
    int w, h;
} pixel_source;

static float source_at(const pixel_source *s, int ch, int y, int x)
{
    y = y < s->h ? y : s->h - 1;
    x = x < s->w ? x : s->w - 1;
    if (s->x)
        return s->x[((size_t)ch * s->h + y) * s->w + x];
    return s->rgb[((size_t)y * s->w + x) * 3 + ch] * (1.0f / 255.0f);
}

/* Where synthesis writes: a float image [3, h, w] or 8-bit RGB (rounded,
 * clamped), cropped to the true size. */
typedef struct {
    float *x;
    uint8_t *rgb;
    int w, h;
} pixel_sink;

static void sink_put(pixel_sink *s, int ch, int y, int x, float v)
{
    if (y >= s->h || x >= s->w)
        return;
    if (s->x) {
        s->x[((size_t)ch * s->h + y) * s->w + x] = v;
        return;
    }
    float c = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    s->rgb[((size_t)y * s->w + x) * 3 + ch] = (uint8_t)(c * 255.0f + 0.5f);
}

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

static int max_int(int a, int b)
{
    return a > b ? a : b;
}

/* y [M, H/16, W/16] of the padded image (H, W multiples of 64). */
static aec_status analysis(const aec_photo *p, const pixel_source *src, int H, int W, int tile,
                           int threads, float *y, aec_error *err)
{
    tile = tile > 0 ? tile : ANALYSIS_TILE;
    int halo = ANALYSIS_HALO, m = p->cfg.m, lh = H / 16, lw = W / 16;
    int side_h = min_int(H, tile + 2 * halo), side_w = min_int(W, tile + 2 * halo);
    net_needs need = net_plan(&p->g_a, side_h, side_w, threads);
    run_buffers rb = {0};
    float *in = NULL;
    aec_status st = buffers_alloc(&rb, need, (size_t)3 * side_h * side_w, &in, err);
    if (st)
        return st;
    for (int ty = 0; ty < H; ty += tile)
        for (int tx = 0; tx < W; tx += tile) {
            int y0 = max_int(0, ty - halo), y1 = min_int(H, ty + tile + halo);
            int x0 = max_int(0, tx - halo), x1 = min_int(W, tx + tile + halo);
            int rh = y1 - y0, rw = x1 - x0;
            for (int ch = 0; ch < 3; ch++)
                for (int yy = 0; yy < rh; yy++)
                    for (int xx = 0; xx < rw; xx++)
                        in[((size_t)ch * rh + yy) * rw + xx] = source_at(src, ch, y0 + yy, x0 + xx);
            const float *out = net_run(p, &p->g_a, in, rh, rw, rb.a, rb.b, rb.scratch, threads);
            int oh = rh / 16, ow = rw / 16;
            int cy0 = (ty - y0) / 16, cx0 = (tx - x0) / 16;
            int ch_ = min_int(tile, H - ty) / 16, cw = min_int(tile, W - tx) / 16;
            for (int c = 0; c < m; c++)
                for (int yy = 0; yy < ch_; yy++)
                    memcpy(y + ((size_t)c * lh + ty / 16 + yy) * lw + tx / 16,
                           out + ((size_t)c * oh + cy0 + yy) * ow + cx0, sizeof(float) * cw);
        }
    free(rb.block);
    return AEC_OK;
}

/* The image of latent yh [M, lh, lw], into sink. */
static aec_status synthesis(const aec_photo *p, const float *yh, int lh, int lw, int tile,
                            int threads, pixel_sink *sink, aec_error *err)
{
    tile = tile > 0 ? tile : SYNTHESIS_TILE;
    int halo = SYNTHESIS_HALO, m = p->cfg.m;
    int side_h = min_int(lh, tile + 2 * halo), side_w = min_int(lw, tile + 2 * halo);
    net_needs need = net_plan(&p->g_s, side_h, side_w, threads);
    run_buffers rb = {0};
    float *in = NULL;
    aec_status st = buffers_alloc(&rb, need, (size_t)m * side_h * side_w, &in, err);
    if (st)
        return st;
    for (int ty = 0; ty < lh; ty += tile)
        for (int tx = 0; tx < lw; tx += tile) {
            if (ty * 16 >= sink->h || tx * 16 >= sink->w)
                continue; /* only padding */
            int y0 = max_int(0, ty - halo), y1 = min_int(lh, ty + tile + halo);
            int x0 = max_int(0, tx - halo), x1 = min_int(lw, tx + tile + halo);
            int rh = y1 - y0, rw = x1 - x0;
            for (int c = 0; c < m; c++)
                for (int yy = 0; yy < rh; yy++)
                    memcpy(in + ((size_t)c * rh + yy) * rw,
                           yh + ((size_t)c * lh + y0 + yy) * lw + x0, sizeof(float) * rw);
            const float *out = net_run(p, &p->g_s, in, rh, rw, rb.a, rb.b, rb.scratch, threads);
            int oh = rh * 16, ow = rw * 16;
            int cy0 = (ty - y0) * 16, cx0 = (tx - x0) * 16;
            int ch_ = min_int(tile, lh - ty) * 16, cw = min_int(tile, lw - tx) * 16;
            for (int c = 0; c < 3; c++)
                for (int yy = 0; yy < ch_; yy++)
                    for (int xx = 0; xx < cw; xx++)
                        sink_put(sink, c, ty * 16 + yy, tx * 16 + xx,
                                 out[((size_t)c * oh + cy0 + yy) * ow + cx0 + xx]);
        }
    free(rb.block);
    return AEC_OK;
}

aec_status aec_photo_analysis(const aec_photo *p, const float *x, int h, int w, int tile,
                              int threads, float *y, aec_error *err)
{
    if (h % AEC_PHOTO_STRIDE || w % AEC_PHOTO_STRIDE || tile % AEC_PHOTO_STRIDE)
        return aec_fail(err, AEC_ERR_INVALID, "analysis: sizes must be multiples of 64");
    pixel_source src = {.x = x, .w = w, .h = h};
    return analysis(p, &src, h, w, tile, threads, y, err);
}

aec_status aec_photo_synthesis(const aec_photo *p, const float *y, int h, int w, int tile,
                               int threads, float *x, aec_error *err)
{
    pixel_sink sink = {.x = x, .w = w * 16, .h = h * 16};
    return synthesis(p, y, h, w, tile, threads, &sink, err);
}

/* ---- quality ------------------------------------------------------------------------------- */

/* The gains of a quality: geometric interpolation between the two trained
 * levels around it (quality 1 = the first level, 100 = the last). */
static void quality_gains(const aec_photo *p, int quality, float *gain, float *inv_gain)
{
    int levels = p->cfg.levels, m = p->cfg.m;
    double ql = levels > 1 ? (quality - 1) / 99.0 * (levels - 1) : 0.0;
    int l0 = (int)floor(ql), l1 = l0 + 1 < levels ? l0 + 1 : l0;
    double t = ql - l0;
    const float *g = p->eff + p->gain, *ig = p->eff + p->inv_gain;
    for (int c = 0; c < m; c++) {
        double a = fmax(g[(size_t)l0 * m + c], 1e-4), b = fmax(g[(size_t)l1 * m + c], 1e-4);
        double ia = fmax(ig[(size_t)l0 * m + c], 1e-4), ib = fmax(ig[(size_t)l1 * m + c], 1e-4);
        gain[c] = (float)exp((1 - t) * log(a) + t * log(b));
        inv_gain[c] = (float)exp((1 - t) * log(ia) + t * log(ib));
    }
}

/* ---- the latent's symbols ------------------------------------------------------------------- */

typedef struct {
    int H, W;      /* padded size */
    int lh, lw;    /* latent y: H/16 x W/16 */
    int zh, zw;    /* side information z: H/64 x W/64 */
    size_t ny, nz; /* values of y, z */
} geometry;

static geometry geometry_of(const aec_photo *p, int width, int height)
{
    geometry g;
    g.H = (height + AEC_PHOTO_STRIDE - 1) / AEC_PHOTO_STRIDE * AEC_PHOTO_STRIDE;
    g.W = (width + AEC_PHOTO_STRIDE - 1) / AEC_PHOTO_STRIDE * AEC_PHOTO_STRIDE;
    g.lh = g.H / 16, g.lw = g.W / 16, g.zh = g.H / 64, g.zw = g.W / 64;
    g.ny = (size_t)p->cfg.m * g.lh * g.lw;
    g.nz = (size_t)p->cfg.n * g.zh * g.zw;
    return g;
}

static int32_t to_symbol(float v)
{
    float r = rintf(v);
    if (!(r >= -AEC_ENTROPY_MAX_ABS)) /* also NaN */
        return -AEC_ENTROPY_MAX_ABS;
    if (r > AEC_ENTROPY_MAX_ABS)
        return AEC_ENTROPY_MAX_ABS;
    return (int32_t)r;
}

/* z symbols -> z^ -> (sigma, mu) = h_s(z^) into musig [2M, lh, lw]. */
static aec_status hyper_synthesis(const aec_photo *p, const geometry *g, const int32_t *zq,
                                  int threads, float *musig, aec_error *err)
{
    int n = p->cfg.n;
    size_t per = (size_t)g->zh * g->zw;
    net_needs need = net_plan(&p->h_s, g->zh, g->zw, threads);
    run_buffers rb = {0};
    float *zh = NULL;
    aec_status st = buffers_alloc(&rb, need, g->nz, &zh, err);
    if (st)
        return st;
    const float *loc = p->eff + p->z_loc;
    for (int c = 0; c < n; c++)
        for (size_t k = 0; k < per; k++)
            zh[(size_t)c * per + k] = (float)zq[(size_t)c * per + k] + loc[c];
    const float *out = net_run(p, &p->h_s, zh, g->zh, g->zw, rb.a, rb.b, rb.scratch, threads);
    memcpy(musig, out, sizeof(float) * 2 * g->ny);
    free(rb.block);
    return AEC_OK;
}

static uint32_t symbols_check(const int32_t *zq, size_t nz, const int32_t *yq, size_t ny)
{
    uint64_t h = aec_hash64(AEC_HASH64_INIT, zq, sizeof(int32_t) * nz);
    h = aec_hash64(h, yq, sizeof(int32_t) * ny);
    return (uint32_t)h;
}

uint32_t aec_photo_tag(const aec_photo *p)
{
    return (uint32_t)p->id_hash;
}

/* ---- the stream ------------------------------------------------------------------------------ */

static void put32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)v, b[1] = (uint8_t)(v >> 8), b[2] = (uint8_t)(v >> 16),
    b[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

int aec_photo_is_stream(const uint8_t *buf, size_t len)
{
    return len >= 4 && memcmp(buf, AEC_PHOTO_MAGIC, 4) == 0;
}

aec_status aec_photo_stream_info(const uint8_t *buf, size_t len, aec_photo_info *info,
                                 aec_error *err)
{
    memset(info, 0, sizeof *info);
    if (!aec_photo_is_stream(buf, len))
        return aec_fail(err, AEC_ERR_FORMAT, "not an aec photo stream (version 3)");
    if (len < AEC_PHOTO_HEADER)
        return aec_fail(err, AEC_ERR_FORMAT, "stream truncated: %zu bytes, the header is %d", len,
                        AEC_PHOTO_HEADER);
    info->tag = get32(buf + 4);
    uint32_t w = get32(buf + 8), h = get32(buf + 12);
    info->quality = buf[16];
    info->z_bytes = get32(buf + 17);
    info->y_bytes = get32(buf + 21);
    if (w < 1 || h < 1 || w > AEC_PHOTO_MAX_SIDE || h > AEC_PHOTO_MAX_SIDE)
        return aec_fail(err, AEC_ERR_FORMAT, "stream: bad size %ux%u", w, h);
    if (info->quality < 1 || info->quality > 100)
        return aec_fail(err, AEC_ERR_FORMAT, "stream: bad quality %d", info->quality);
    info->width = (int)w, info->height = (int)h;
    info->total = AEC_PHOTO_HEADER + info->z_bytes + info->y_bytes;
    if (len < info->total)
        return aec_fail(err, AEC_ERR_FORMAT, "stream truncated: %zu of %zu bytes", len,
                        info->total);
    if (len > info->total)
        return aec_fail(err, AEC_ERR_FORMAT, "stream has %zu bytes after its end",
                        len - info->total);
    return AEC_OK;
}

size_t aec_photo_memory_bound(const aec_photo *p, int width, int height, int threads)
{
    geometry g = geometry_of(p, width, height);
    net_needs a = net_plan(&p->g_a, min_int(g.H, ANALYSIS_TILE + 2 * ANALYSIS_HALO),
                           min_int(g.W, ANALYSIS_TILE + 2 * ANALYSIS_HALO), threads);
    net_needs s = net_plan(&p->g_s, min_int(g.lh, SYNTHESIS_TILE + 2 * SYNTHESIS_HALO),
                           min_int(g.lw, SYNTHESIS_TILE + 2 * SYNTHESIS_HALO), threads);
    net_needs ha = net_plan(&p->h_a, g.lh, g.lw, threads);
    net_needs hs = net_plan(&p->h_s, g.zh, g.zw, threads);
    size_t tiles =
        2 * (a.act > s.act ? a.act : s.act) + (a.scratch > s.scratch ? a.scratch : s.scratch) +
        (size_t)3 * (ANALYSIS_TILE + 2 * ANALYSIS_HALO) * (ANALYSIS_TILE + 2 * ANALYSIS_HALO);
    size_t hyper = 2 * (ha.act > hs.act ? ha.act : hs.act) + ha.scratch + hs.scratch + g.nz;
    /* y, mu and sigma, symbols (y and z), table indexes, the result */
    size_t latents = sizeof(float) * (4 * g.ny + 2 * g.nz) + g.ny + g.ny * 8 + 64;
    size_t bigger = tiles > hyper ? tiles : hyper;
    return sizeof(float) * bigger + latents + (size_t)3 * width * height;
}

typedef struct {
    geometry g;
    float *y_raw, *y, *musig;
    int32_t *zq, *yq;
    uint8_t *idx;
} encode_state;

static void encode_free(encode_state *e)
{
    free(e->y_raw);
    free(e->y);
    free(e->musig);
    free(e->zq);
    free(e->yq);
    free(e->idx);
    memset(e, 0, sizeof *e);
}

static aec_status encode_begin(const aec_photo *p, const uint8_t *rgb, int width, int height,
                               int threads, encode_state *e, aec_error *err)
{
    memset(e, 0, sizeof *e);
    if (!p->entropy)
        return aec_fail(err, AEC_ERR_INVALID, "photo codec: the model has no coding tables");
    if (width < 1 || height < 1 || width > AEC_PHOTO_MAX_SIDE || height > AEC_PHOTO_MAX_SIDE)
        return aec_fail(err, AEC_ERR_INVALID, "photo codec: bad size %dx%d", width, height);
    e->g = geometry_of(p, width, height);
    e->y_raw = malloc(sizeof(float) * e->g.ny);
    e->y = malloc(sizeof(float) * e->g.ny);
    e->musig = malloc(sizeof(float) * 2 * e->g.ny);
    e->zq = malloc(sizeof(int32_t) * e->g.nz);
    e->yq = malloc(sizeof(int32_t) * e->g.ny);
    e->idx = malloc(e->g.ny);
    if (!e->y_raw || !e->y || !e->musig || !e->zq || !e->yq || !e->idx) {
        encode_free(e);
        return aec_fail(err, AEC_ERR_NOMEM, "photo codec: out of memory for %dx%d", width, height);
    }
    pixel_source src = {.rgb = rgb, .w = width, .h = height};
    aec_status st = analysis(p, &src, e->g.H, e->g.W, 0, threads, e->y_raw, err);
    if (st)
        encode_free(e);
    return st;
}

/* The symbols of quality q (from y_raw): zq, yq, idx, musig. */
static aec_status encode_symbols(const aec_photo *p, encode_state *e, int quality, int threads,
                                 aec_error *err)
{
    int m = p->cfg.m, n = p->cfg.n;
    float gain[AEC_PHOTO_MAX_CHANNELS], inv[AEC_PHOTO_MAX_CHANNELS];
    quality_gains(p, quality, gain, inv);
    size_t per = (size_t)e->g.lh * e->g.lw, zper = (size_t)e->g.zh * e->g.zw;
    for (int c = 0; c < m; c++)
        for (size_t k = 0; k < per; k++)
            e->y[(size_t)c * per + k] = e->y_raw[(size_t)c * per + k] * gain[c];
    net_needs need = net_plan(&p->h_a, e->g.lh, e->g.lw, threads);
    run_buffers rb = {0};
    aec_status st = buffers_alloc(&rb, need, 0, NULL, err);
    if (st)
        return st;
    const float *z = net_run(p, &p->h_a, e->y, e->g.lh, e->g.lw, rb.a, rb.b, rb.scratch, threads);
    const float *loc = p->eff + p->z_loc;
    for (int c = 0; c < n; c++)
        for (size_t k = 0; k < zper; k++)
            e->zq[(size_t)c * zper + k] = to_symbol(z[(size_t)c * zper + k] - loc[c]);
    free(rb.block);
    st = hyper_synthesis(p, &e->g, e->zq, threads, e->musig, err);
    if (st)
        return st;
    const float *sigma = e->musig, *mu = e->musig + e->g.ny;
    for (size_t i = 0; i < e->g.ny; i++)
        e->yq[i] = to_symbol(e->y[i] - mu[i]);
    aec_entropy_scale_index(p->entropy, sigma, e->g.ny, e->idx);
    return AEC_OK;
}

static aec_status encode_write(const aec_photo *p, const encode_state *e, int width, int height,
                               int quality, uint8_t **out, size_t *len, aec_error *err)
{
    uint8_t *zb = NULL, *yb = NULL;
    size_t zl = 0, yl = 0;
    *out = NULL, *len = 0;
    aec_status st =
        aec_entropy_encode_z(p->entropy, e->zq, (size_t)e->g.zh * e->g.zw, &zb, &zl, err);
    if (!st)
        st = aec_entropy_encode_y(p->entropy, e->yq, e->idx, e->g.ny, &yb, &yl, err);
    uint8_t *buf = NULL;
    if (!st && !(buf = malloc(AEC_PHOTO_HEADER + zl + yl)))
        st = aec_fail(err, AEC_ERR_NOMEM, "photo codec: out of memory");
    if (!st) {
        memcpy(buf, AEC_PHOTO_MAGIC, 4);
        put32(buf + 4, aec_photo_tag(p));
        put32(buf + 8, (uint32_t)width);
        put32(buf + 12, (uint32_t)height);
        buf[16] = (uint8_t)quality;
        put32(buf + 17, (uint32_t)zl);
        put32(buf + 21, (uint32_t)yl);
        put32(buf + 25, symbols_check(e->zq, e->g.nz, e->yq, e->g.ny));
        memcpy(buf + AEC_PHOTO_HEADER, zb, zl);
        memcpy(buf + AEC_PHOTO_HEADER + zl, yb, yl);
        *out = buf, *len = AEC_PHOTO_HEADER + zl + yl;
    }
    free(zb);
    free(yb);
    return st;
}

aec_status aec_photo_compress(const aec_photo *p, const uint8_t *rgb, int width, int height,
                              int quality, int threads, uint8_t **out, size_t *len, aec_error *err)
{
    *out = NULL, *len = 0;
    if (quality < 1 || quality > 100)
        return aec_fail(err, AEC_ERR_INVALID, "quality %d: want 1..100", quality);
    encode_state e;
    aec_status st = encode_begin(p, rgb, width, height, threads, &e, err);
    if (st)
        return st;
    st = encode_symbols(p, &e, quality, threads, err);
    if (!st)
        st = encode_write(p, &e, width, height, quality, out, len, err);
    encode_free(&e);
    return st;
}

aec_status aec_photo_compress_size(const aec_photo *p, const uint8_t *rgb, int width, int height,
                                   size_t max_bytes, int threads, uint8_t **out, size_t *len,
                                   int *quality_out, aec_error *err)
{
    *out = NULL, *len = 0;
    encode_state e;
    aec_status st = encode_begin(p, rgb, width, height, threads, &e, err);
    if (st)
        return st;
    /* bytes grow with quality: bisect for the highest quality that fits (the
     * analysis, most of the work, is shared by every try) */
    int lo = 1, hi = 100, best = 0;
    uint8_t *best_buf = NULL;
    size_t best_len = 0;
    while (!st && lo <= hi) {
        int q = (lo + hi) / 2;
        uint8_t *buf = NULL;
        size_t n = 0;
        st = encode_symbols(p, &e, q, threads, err);
        if (!st)
            st = encode_write(p, &e, width, height, q, &buf, &n, err);
        if (st)
            break;
        if (n <= max_bytes || q == 1) {
            free(best_buf);
            best_buf = buf, best_len = n, best = q;
            if (n > max_bytes)
                break; /* even quality 1 does not fit: return it */
            lo = q + 1;
        } else {
            free(buf);
            hi = q - 1;
        }
    }
    if (!st && !best_buf) { /* every try above max_bytes: quality 1 */
        st = encode_symbols(p, &e, 1, threads, err);
        if (!st)
            st = encode_write(p, &e, width, height, 1, &best_buf, &best_len, err);
        best = 1;
    }
    encode_free(&e);
    if (st) {
        free(best_buf);
        return st;
    }
    *out = best_buf, *len = best_len;
    if (quality_out)
        *quality_out = best;
    return AEC_OK;
}

aec_status aec_photo_decompress(const aec_photo *p, const uint8_t *buf, size_t len,
                                size_t max_pixels, int threads, uint8_t **rgb, int *width,
                                int *height, aec_error *err)
{
    *rgb = NULL, *width = *height = 0;
    aec_photo_info info;
    aec_status st = aec_photo_stream_info(buf, len, &info, err);
    if (st)
        return st;
    if (info.tag != aec_photo_tag(p))
        return aec_fail(err, AEC_ERR_MISMATCH,
                        "stream made by another model (tag %08x, this model's is %08x)", info.tag,
                        aec_photo_tag(p));
    if ((uint64_t)info.width * (uint64_t)info.height > max_pixels)
        return aec_fail(err, AEC_ERR_LIMIT, "stream is %dx%d, more than %zu pixels", info.width,
                        info.height, max_pixels);
    if (!p->entropy)
        return aec_fail(err, AEC_ERR_INVALID, "photo codec: the model has no coding tables");
    geometry g = geometry_of(p, info.width, info.height);
    int m = p->cfg.m;
    int32_t *zq = malloc(sizeof(int32_t) * g.nz), *yq = malloc(sizeof(int32_t) * g.ny);
    float *musig = malloc(sizeof(float) * 2 * g.ny);
    uint8_t *idx = malloc(g.ny);
    uint8_t *img = malloc((size_t)3 * info.width * info.height);
    if (!zq || !yq || !musig || !idx || !img) {
        st = aec_fail(err, AEC_ERR_NOMEM, "photo codec: out of memory for %dx%d", info.width,
                      info.height);
        goto done;
    }
    const uint8_t *zb = buf + AEC_PHOTO_HEADER, *yb = zb + info.z_bytes;
    st = aec_entropy_decode_z(p->entropy, zb, info.z_bytes, (size_t)g.zh * g.zw, zq, err);
    if (!st)
        st = hyper_synthesis(p, &g, zq, threads, musig, err);
    if (st)
        goto done;
    aec_entropy_scale_index(p->entropy, musig, g.ny, idx);
    st = aec_entropy_decode_y(p->entropy, yb, info.y_bytes, idx, g.ny, yq, err);
    if (st)
        goto done;
    if (symbols_check(zq, g.nz, yq, g.ny) != get32(buf + 25)) {
        st = aec_fail(err, AEC_ERR_FORMAT, "stream is corrupt: its symbols fail the check");
        goto done;
    }
    /* y^ = symbol + mu, then the inverse gain; in place over mu */
    float gain[AEC_PHOTO_MAX_CHANNELS], inv[AEC_PHOTO_MAX_CHANNELS];
    quality_gains(p, info.quality, gain, inv);
    float *yh = musig + g.ny;
    size_t per = (size_t)g.lh * g.lw;
    for (int c = 0; c < m; c++)
        for (size_t k = 0; k < per; k++) {
            size_t i = (size_t)c * per + k;
            yh[i] = ((float)yq[i] + yh[i]) * inv[c];
        }
    pixel_sink sink = {.rgb = img, .w = info.width, .h = info.height};
    st = synthesis(p, yh, g.lh, g.lw, 0, threads, &sink, err);
done:
    free(zq);
    free(yq);
    free(musig);
    free(idx);
    if (st) {
        free(img);
        return st;
    }
    *rgb = img, *width = info.width, *height = info.height;
    return AEC_OK;
}

aec_status aec_photo_estimate_bits(const aec_photo *p, const uint8_t *rgb, int width, int height,
                                   int quality, int threads, double *bits, aec_error *err)
{
    encode_state e;
    aec_status st = encode_begin(p, rgb, width, height, threads, &e, err);
    if (!st)
        st = encode_symbols(p, &e, quality, threads, err);
    if (!st) {
        /* the training densities on the coded values: y^ under N(mu, sigma), z^ under the
         * factorized logistic */
        const float *sigma = e.musig, *mu = e.musig + e.g.ny;
        for (size_t i = 0; i < e.g.ny; i++)
            e.y[i] = (float)e.yq[i] + mu[i];
        double b = aec_gaussian_forward(e.y, mu, sigma, e.g.ny);
        size_t zper = (size_t)e.g.zh * e.g.zw;
        float *zh = malloc(sizeof(float) * e.g.nz);
        if (!zh) {
            st = aec_fail(err, AEC_ERR_NOMEM, "out of memory");
        } else {
            const float *loc = p->eff + p->z_loc;
            for (int c = 0; c < p->cfg.n; c++)
                for (size_t k = 0; k < zper; k++)
                    zh[(size_t)c * zper + k] = (float)e.zq[(size_t)c * zper + k] + loc[c];
            b += aec_rate_forward(zh, loc, p->eff + p->z_log_scale, 1, p->cfg.n, (int)zper);
            free(zh);
            *bits = b;
        }
    }
    encode_free(&e);
    return st;
}
