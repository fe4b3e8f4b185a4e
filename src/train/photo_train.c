/* photo_train.c - training the photo codec (include/aec/photo.h) on random
 * crops of photos at their own size.
 *
 * One step, for a batch of n crops x (channel-major [3, n, H, W]) at one
 * quality level l drawn at random:
 *   y  = g_a(x) * gain[l];  z = h_a(y);  z~ = z + u;  (sigma, mu) = h_s(z~)
 *   bits = Gaussian(y + u | mu, sigma) + factorized(z~)
 *   y^ = round(y - mu) + mu (straight-through);  x^ = g_s(y^ * inv_gain[l])
 *   loss = lambda[l] * 255^2 * MSE(x^, x) + bits / (n H W)
 * then backward through the same graph, GDN's reparametrization, gradient
 * clipping (norm 1, as CompressAI) and one Adam step over the single
 * parameter allocation. Activations, gradients and Adam moments are each
 * carved from one allocation made before the first step; a step allocates
 * nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cJSON.h>
#include <cblas.h>

#include "aec/clock.h"
#include "aec/entropy.h"
#include "aec/layers.h"
#include "aec/model.h"
#include "aec/photo.h"
#include "aec/random.h"
#include "train.h"

#define SLOPE 0.01f
#define CLIP_NORM 1.0

/* Floats a network's activations need (and the largest stage and column
 * scratch), for a batch of n at h x w. With dst, carves them from *pool. */
static void net_plan(net_state *s, const aec_net *net, int n, int h, int w, float **pool,
                     size_t *total, size_t *max_act, size_t *max_col)
{
    s->net = net, s->n = n, s->h = h, s->w = w;
    for (int i = 0; i < net->nstages; i++) {
        const aec_stage *st = &net->st[i];
        int oh, ow;
        aec_stage_out_size(st, h, w, &oh, &ow);
        size_t count = (size_t)st->cout * n * oh * ow;
        stage_act *a = &s->act[i];
        a->h = oh, a->w = ow;
        int gdn = st->kind == AEC_ST_GDN || st->kind == AEC_ST_IGDN;
        if (pool) {
            a->out = *pool, *pool += count;
            a->norm = gdn ? *pool : NULL;
            if (gdn)
                *pool += count;
        }
        *total += count * (gdn ? 2 : 1);
        size_t in_count = (size_t)st->cin * n * h * w;
        if (*max_act < count)
            *max_act = count;
        if (*max_act < in_count)
            *max_act = in_count;
        size_t col = 0;
        if (st->kind == AEC_ST_CONV)
            col = aec_bconv_col_size(n, st->cin, st->k, oh, ow);
        else if (st->kind == AEC_ST_DECONV)
            col = aec_bconv_col_size(n, st->cout, st->k, h, w);
        else if (gdn)
            col = 2 * count;
        if (*max_col < col)
            *max_col = col;
        h = oh, w = ow;
    }
}

static const float *net_output(const net_state *s)
{
    return s->act[s->net->nstages - 1].out;
}

static void net_forward(const aec_photo *p, net_state *s, const float *x, float *col)
{
    const float *in = x;
    int h = s->h, w = s->w, n = s->n;
    for (int i = 0; i < s->net->nstages; i++) {
        const aec_stage *st = &s->net->st[i];
        stage_act *a = &s->act[i];
        const float *wt = p->eff + st->w, *b = p->eff + st->b;
        size_t count = (size_t)st->cout * n * a->h * a->w;
        switch (st->kind) {
        case AEC_ST_CONV:
            aec_bconv2d_forward(a->out, col, in, wt, b, n, st->cin, h, w, st->cout, st->k,
                                st->stride, st->k / 2);
            break;
        case AEC_ST_DECONV:
            aec_bdeconv2d_forward(a->out, col, in, wt, b, n, st->cin, h, w, st->cout, st->k,
                                  st->stride, st->k / 2, st->stride - 1);
            break;
        case AEC_ST_GDN:
        case AEC_ST_IGDN:
            aec_gdn_forward(a->out, a->norm, in, b, wt, st->cin, count / st->cin,
                            st->kind == AEC_ST_IGDN);
            break;
        case AEC_ST_LRELU: aec_leaky_relu_forward(a->out, in, count, SLOPE); break;
        }
        in = a->out, h = a->h, w = a->w;
    }
}

/* dout: d loss / d output (not modified); dinp may be NULL (the image).
 * d0, d1: two buffers of the largest activation; col: column scratch. */
static void net_backward(const aec_photo *p, const net_state *s, const float *x, const float *dout,
                         float *dinp, float *grad, float *d0, float *d1, float *col)
{
    const float *dcur = dout;
    int n = s->n;
    for (int i = s->net->nstages - 1; i >= 0; i--) {
        const aec_stage *st = &s->net->st[i];
        const stage_act *a = &s->act[i];
        const float *in = i > 0 ? s->act[i - 1].out : x;
        int h = i > 0 ? s->act[i - 1].h : s->h, w = i > 0 ? s->act[i - 1].w : s->w;
        float *dnext = i > 0 ? (dcur == d0 ? d1 : d0) : dinp;
        size_t count = (size_t)st->cout * n * a->h * a->w;
        switch (st->kind) {
        case AEC_ST_CONV:
            aec_bconv2d_backward(dnext, grad + st->w, grad + st->b, col, dcur, in, p->eff + st->w,
                                 n, st->cin, h, w, st->cout, st->k, st->stride, st->k / 2);
            break;
        case AEC_ST_DECONV:
            aec_bdeconv2d_backward(dnext, grad + st->w, grad + st->b, col, dcur, in, p->eff + st->w,
                                   n, st->cin, h, w, st->cout, st->k, st->stride, st->k / 2,
                                   st->stride - 1);
            break;
        case AEC_ST_GDN:
        case AEC_ST_IGDN:
            aec_gdn_backward(dnext, grad + st->b, grad + st->w, col, dcur, in, a->norm,
                             p->eff + st->w, st->cin, count / st->cin, st->kind == AEC_ST_IGDN);
            break;
        case AEC_ST_LRELU:
            if (dnext)
                aec_leaky_relu_backward(dnext, dcur, a->out, count, SLOPE);
            break;
        }
        dcur = dnext;
    }
}

/* ---- the trainer's state ------------------------------------------------------------ */

void photo_trainer_free(photo_trainer *t)
{
    free(t->pool);
    free(t->grad);
    free(t->adam_m);
    free(t->adam_v);
}

aec_status photo_trainer_init(photo_trainer *t, aec_photo *p, int n, int crop, uint64_t seed,
                              aec_error *err)
{
    memset(t, 0, sizeof *t);
    t->p = p, t->n = n, t->crop = crop, t->rng = seed, t->gain_lr_scale = 1;
    int m = p->cfg.m, nz = p->cfg.n, h16 = crop / 16, h64 = crop / 64;
    t->x_count = (size_t)3 * n * crop * crop;
    t->y_count = (size_t)m * n * h16 * h16;
    t->z_count = (size_t)nz * n * h64 * h64;
    size_t total = 0, max_act = 0, max_col = 0;
    for (int pass = 0; pass < 2; pass++) {
        float *cur = t->pool, **pool = pass ? &cur : NULL;
        total = 0;
        net_plan(&t->g_a, &p->g_a, n, crop, crop, pool, &total, &max_act, &max_col);
        net_plan(&t->g_s, &p->g_s, n, h16, h16, pool, &total, &max_act, &max_col);
        net_plan(&t->h_a, &p->h_a, n, h16, h16, pool, &total, &max_act, &max_col);
        net_plan(&t->h_s, &p->h_s, n, h64, h64, pool, &total, &max_act, &max_col);
        size_t sizes[14] = {t->x_count,     t->y_count, t->y_count, t->y_count, t->y_count,
                            t->z_count,     t->x_count, t->y_count, t->y_count, t->z_count,
                            2 * t->y_count, max_act,    max_act,    max_col};
        float **dst[14] = {&t->x,  &t->y,   &t->yt,  &t->yq,  &t->ys, &t->zt, &t->dxh,
                           &t->dy, &t->dys, &t->dzt, &t->dhs, &t->d0, &t->d1, &t->col};
        for (int i = 0; i < 14; i++) {
            if (pass)
                *dst[i] = cur, cur += sizes[i];
            total += sizes[i];
        }
        if (!pass && !(t->pool = malloc(sizeof(float) * total)))
            return aec_fail(err, AEC_ERR_NOMEM, "out of memory for %zu MiB of activations",
                            total * sizeof(float) >> 20);
    }
    t->grad = calloc(p->nparams, sizeof(float));
    t->adam_m = calloc(p->nparams, sizeof(float));
    t->adam_v = calloc(p->nparams, sizeof(float));
    if (!t->grad || !t->adam_m || !t->adam_v) {
        photo_trainer_free(t);
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory for the optimizer");
    }
    return AEC_OK;
}

/* ---- crops ---------------------------------------------------------------------------- */

/* Bilinear sample of the photo at (fx, fy) (pixel centres at +0.5), channel ch. */
static float sample(const aec_rgb_image *img, double fx, double fy, int ch)
{
    double x = fx - 0.5, y = fy - 0.5;
    int x0 = (int)floor(x), y0 = (int)floor(y);
    double ax = x - x0, ay = y - y0;
    int x1 = x0 + 1, y1 = y0 + 1;
    x0 = x0 < 0 ? 0 : x0 >= img->width ? img->width - 1 : x0;
    x1 = x1 < 0 ? 0 : x1 >= img->width ? img->width - 1 : x1;
    y0 = y0 < 0 ? 0 : y0 >= img->height ? img->height - 1 : y0;
    y1 = y1 < 0 ? 0 : y1 >= img->height ? img->height - 1 : y1;
    const uint8_t *r0 = img->rgb + (size_t)y0 * img->width * 3;
    const uint8_t *r1 = img->rgb + (size_t)y1 * img->width * 3;
    double top = r0[x0 * 3 + ch] * (1 - ax) + r0[x1 * 3 + ch] * ax;
    double bot = r1[x0 * 3 + ch] * (1 - ax) + r1[x1 * 3 + ch] * ax;
    return (float)((top * (1 - ay) + bot * ay) / 255.0);
}

/* A random crop of crop x crop pixels into sample i of x: the photo scaled
 * by a random factor (between 0.5 and 1 of its size when it is big enough;
 * up to what fits when it is small), a random position, a random mirror. */
void photo_trainer_crop(photo_trainer *t, const aec_rgb_image *img, int i)
{
    int c = t->crop, n = t->n;
    double side = img->width < img->height ? img->width : img->height;
    double lo = c / side, hi = 1.0; /* scale factors: output px per photo px */
    if (lo < 0.5)
        lo = 0.5;
    if (lo > hi)
        hi = lo;
    double s = lo + (hi - lo) * aec_random_uniform(&t->rng);
    double win = c / s; /* window in photo pixels */
    double x0 = (img->width - win) * aec_random_uniform(&t->rng);
    double y0 = (img->height - win) * aec_random_uniform(&t->rng);
    int flip = aec_random_uniform(&t->rng) < 0.5;
    size_t plane = (size_t)n * c * c;
    for (int yy = 0; yy < c; yy++)
        for (int xx = 0; xx < c; xx++) {
            int sx = flip ? c - 1 - xx : xx;
            double fx = x0 + (sx + 0.5) / s, fy = y0 + (yy + 0.5) / s;
            for (int ch = 0; ch < 3; ch++)
                t->x[ch * plane + ((size_t)i * c + yy) * c + xx] = sample(img, fx, fy, ch);
        }
}

/* ---- one step ---------------------------------------------------------------------------- */

/* Per channel of a [c, per] block: out = inp * g[c]. */
static void scale_channels(float *out, const float *inp, const float *g, int c, size_t per)
{
    for (int j = 0; j < c; j++)
        for (size_t k = 0; k < per; k++)
            out[(size_t)j * per + k] = inp[(size_t)j * per + k] * g[j];
}

/* dg[c] += sum d * v over channel c; dv = d * g (dv may be d). */
static void scale_channels_backward(float *dv, float *dg, const float *d, const float *v,
                                    const float *g, int c, size_t per)
{
    for (int j = 0; j < c; j++) {
        double s = 0;
        for (size_t k = 0; k < per; k++) {
            size_t q = (size_t)j * per + k;
            s += (double)d[q] * v[q];
            dv[q] = d[q] * g[j];
        }
        dg[j] += (float)s;
    }
}

photo_step photo_trainer_step(photo_trainer *t, int level)
{
    aec_photo *p = t->p;
    int m = p->cfg.m, nz = p->cfg.n;
    size_t ypc = t->y_count / m, zpc = t->z_count / nz; /* per channel */
    const float *gain = p->eff + p->gain + (size_t)level * m;
    const float *igain = p->eff + p->inv_gain + (size_t)level * m;
    double lam = p->cfg.lambda[level] * 255.0 * 255.0;
    double pixels = (double)t->n * t->crop * t->crop;

    net_forward(p, &t->g_a, t->x, t->col);
    const float *y_raw = net_output(&t->g_a);
    scale_channels(t->y, y_raw, gain, m, ypc);
    net_forward(p, &t->h_a, t->y, t->col);
    const float *z = net_output(&t->h_a);
    for (size_t i = 0; i < t->z_count; i++)
        t->zt[i] = z[i] + (float)(aec_random_uniform(&t->rng) - 0.5);
    net_forward(p, &t->h_s, t->zt, t->col);
    const float *sigma = net_output(&t->h_s), *mu = sigma + t->y_count;
    for (size_t i = 0; i < t->y_count; i++) {
        t->yt[i] = t->y[i] + (float)(aec_random_uniform(&t->rng) - 0.5);
        /* the decoder's input: rounded (straight-through), or the noisy value
         * when exact_grad asks for the true gradient (tests) */
        t->yq[i] = t->exact_grad ? t->yt[i] : rintf(t->y[i] - mu[i]) + mu[i];
    }
    double bits =
        aec_gaussian_forward(t->yt, mu, sigma, t->y_count) +
        aec_rate_forward(t->zt, p->eff + p->z_loc, p->eff + p->z_log_scale, 1, nz, (int)zpc);
    scale_channels(t->ys, t->yq, igain, m, ypc);
    net_forward(p, &t->g_s, t->ys, t->col);
    const float *xh = net_output(&t->g_s);
    double se = 0;
    float gscale = (float)(lam * 2.0 / (double)t->x_count);
    for (size_t i = 0; i < t->x_count; i++) {
        float d = xh[i] - t->x[i];
        se += (double)d * d;
        t->dxh[i] = gscale * d;
    }
    photo_step r = {.mse = se / (double)t->x_count, .bpp = bits / pixels};
    r.loss = lam * r.mse + r.bpp;

    /* backward */
    float *g = t->grad;
    net_backward(p, &t->g_s, t->ys, t->dxh, t->dys, g, t->d0, t->d1, t->col);
    scale_channels_backward(t->dy, g + p->inv_gain + (size_t)level * m, t->dys, t->yq, igain, m,
                            ypc); /* straight through the rounding: d y^ = d y */
    memset(t->dhs, 0, sizeof(float) * 2 * t->y_count);
    float rscale = (float)(1.0 / pixels);
    aec_gaussian_backward(t->dy, t->dhs + t->y_count, t->dhs, t->yt, mu, sigma, t->y_count, rscale);
    net_backward(p, &t->h_s, t->zt, t->dhs, t->dzt, g, t->d0, t->d1, t->col);
    aec_rate_backward(t->dzt, g + p->z_loc, g + p->z_log_scale, t->zt, p->eff + p->z_loc,
                      p->eff + p->z_log_scale, 1, nz, (int)zpc, rscale);
    net_backward(p, &t->h_a, t->y, t->dzt, t->dys, g, t->d0, t->d1, t->col);
    /* h_a's input gradient landed in dys (free now): add it to dy */
    for (size_t i = 0; i < t->y_count; i++)
        t->dy[i] += t->dys[i];
    scale_channels_backward(t->dy, g + p->gain + (size_t)level * m, t->dy, y_raw, gain, m, ypc);
    net_backward(p, &t->g_a, t->x, t->dy, NULL, g, t->d0, t->d1, t->col);
    aec_photo_reparam_backward(p, g);
    return r;
}

void photo_trainer_update(photo_trainer *t, const aec_adam *opt, long step)
{
    double norm = 0;
    for (size_t i = 0; i < t->p->nparams; i++)
        norm += (double)t->grad[i] * t->grad[i];
    norm = sqrt(norm);
    if (norm > CLIP_NORM) {
        float s = (float)(CLIP_NORM / norm);
        for (size_t i = 0; i < t->p->nparams; i++)
            t->grad[i] *= s;
    }
    /* the gains (and inverse gains), at their own rate; the rest at opt's */
    const aec_photo *p = t->p;
    size_t ng = (size_t)p->cfg.levels * p->cfg.m;
    size_t lo = p->gain < p->inv_gain ? p->gain : p->inv_gain;
    size_t hi = p->gain < p->inv_gain ? p->inv_gain : p->gain;
    aec_adam fast = *opt;
    fast.lr = opt->lr * t->gain_lr_scale;
    size_t seg[5][2] = {
        {0, lo}, {lo, lo + ng}, {lo + ng, hi}, {hi, hi + ng}, {hi + ng, p->nparams}};
    for (int i = 0; i < 5; i++)
        if (seg[i][1] > seg[i][0])
            aec_adam_update(p->params + seg[i][0], t->grad + seg[i][0], t->adam_m + seg[i][0],
                            t->adam_v + seg[i][0], seg[i][1] - seg[i][0], i % 2 ? &fast : opt,
                            step);
    aec_photo_update_eff(t->p);
}

/* ---- the run ---------------------------------------------------------------------------- */

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* What an --init model's aec.train says it cost so far. */
static void previous_totals(const aec_photo *p, long *steps, double *cpu)
{
    *steps = 0, *cpu = 0;
    cJSON *o = p->train_json ? cJSON_Parse(p->train_json) : NULL;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "steps");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "cpu_seconds");
    if (cJSON_IsNumber(s))
        *steps = (long)s->valuedouble;
    if (cJSON_IsNumber(c))
        *cpu = c->valuedouble;
    cJSON_Delete(o);
}

static aec_status save_model(aec_photo *p, const train_options *o, long steps, double cpu,
                             aec_error *err)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", "photo");
    cJSON_AddNumberToObject(j, "steps", (double)steps);
    cJSON_AddNumberToObject(j, "cpu_seconds", round(cpu));
    cJSON_AddNumberToObject(j, "crop", o->crop);
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "gain_lr", o->gain_lr);
    cJSON_AddStringToObject(j, "schedule", o->cosine ? "cosine" : "constant");
    free(p->train_json);
    p->train_json = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    aec_status st = aec_photo_finalize(p, err);
    if (st == AEC_OK)
        st = aec_photo_save(p, o->out, err);
    return st;
}

/* The RD preview: the finalized codec (the stream a user would get) on the
 * centre 256-px crops of the first PREVIEW_PHOTOS training photos, at a few
 * qualities: bits per pixel and PSNR of the whole set, printed and written
 * to the history as {"step":S,"rd":[[quality,bpp,psnr],...]}. These photos
 * are training photos: the preview shows the curve moving, not a result
 * (bench/kodak_rd.py measures). */
#define PREVIEW_PHOTOS 4
#define PREVIEW_SIDE 256

static aec_status rd_preview(const aec_photo *p, const train_photos *ph, int threads, FILE *hist,
                             int quiet, long step, aec_error *err)
{
    static const int qualities[] = {1, 25, 50, 75, 100};
    enum { NQ = sizeof qualities / sizeof qualities[0] };
    double bits[NQ] = {0}, se[NQ] = {0};
    size_t pixels = 0;
    uint8_t *crop = malloc((size_t)3 * PREVIEW_SIDE * PREVIEW_SIDE), *out = NULL, *back = NULL;
    aec_status st = crop ? AEC_OK : aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < ph->count && i < PREVIEW_PHOTOS; i++) {
        const aec_rgb_image *im = &ph->img[i];
        int w = im->width < PREVIEW_SIDE ? im->width : PREVIEW_SIDE;
        int h = im->height < PREVIEW_SIDE ? im->height : PREVIEW_SIDE;
        int x0 = (im->width - w) / 2, y0 = (im->height - h) / 2;
        for (int y = 0; y < h; y++)
            memcpy(crop + (size_t)y * w * 3, im->rgb + ((size_t)(y0 + y) * im->width + x0) * 3,
                   (size_t)w * 3);
        pixels += (size_t)w * h;
        for (int q = 0; !st && q < NQ; q++) {
            size_t len = 0;
            int bw = 0, bh = 0;
            st = aec_photo_compress(p, crop, w, h, qualities[q], threads, &out, &len, err);
            if (!st)
                st =
                    aec_photo_decompress(p, out, len, (size_t)w * h, threads, &back, &bw, &bh, err);
            for (size_t k = 0; !st && k < (size_t)w * h * 3; k++) {
                double d = (double)crop[k] - back[k];
                se[q] += d * d;
            }
            bits[q] += 8.0 * (double)len;
            free(out), free(back);
            out = back = NULL;
        }
    }
    free(crop);
    if (st || pixels == 0)
        return st;
    if (!quiet)
        fprintf(stderr, "\nRD preview (%zu training photos, centre %d px):",
                ph->count < PREVIEW_PHOTOS ? ph->count : (size_t)PREVIEW_PHOTOS, PREVIEW_SIDE);
    if (hist)
        fprintf(hist, "{\"step\":%ld,\"rd\":[", step);
    for (int q = 0; q < NQ; q++) {
        double bpp = bits[q] / (double)pixels;
        double psnr = 10.0 * log10(255.0 * 255.0 / (se[q] / (3.0 * (double)pixels) + 1e-12));
        if (!quiet)
            fprintf(stderr, "  q%d %.3f bpp %.2f dB", qualities[q], bpp, psnr);
        if (hist)
            fprintf(hist, "%s[%d,%.5f,%.3f]", q ? "," : "", qualities[q], bpp, psnr);
    }
    if (!quiet)
        fprintf(stderr, "\n");
    if (hist) {
        fprintf(hist, "]}\n");
        fflush(hist);
    }
    return AEC_OK;
}

aec_status train_photo_run(const train_options *o, aec_error *err)
{
    train_photos ph = {0};
    photo_trainer t = {0};
    aec_photo *p = NULL;
    FILE *hist = NULL;
    aec_status st;
    if (o->crop < 64 || o->crop % 64 != 0 || o->crop > 512)
        return aec_fail(err, AEC_ERR_INVALID, "--crop %d: want a multiple of 64 in 64..512",
                        o->crop);
    if (o->init) {
        st = aec_photo_load(&p, o->init, err);
    } else {
        aec_photo_config cfg = {.n = o->photo_n, .m = o->photo_m, .levels = o->nlambdas};
        memcpy(cfg.lambda, o->lambdas, sizeof cfg.lambda);
        st = aec_photo_create(&p, &cfg, o->seed, err);
    }
    if (st)
        goto done;
    long steps0;
    double cpu0;
    previous_totals(p, &steps0, &cpu0);
    openblas_set_num_threads(o->threads);
    if ((st = train_photos_load(&ph, o, err)))
        goto done;
    if ((st = photo_trainer_init(&t, p, o->batch, o->crop, o->seed ^ 0x9E3779B97F4A7C15ull, err)))
        goto done;
    t.gain_lr_scale = o->gain_lr;
    if (o->history && !(hist = fopen(o->history, "a"))) {
        st = aec_fail(err, AEC_ERR_IO, "%s: cannot open for appending", o->history);
        goto done;
    }
    if (!o->quiet)
        fprintf(stderr,
                "photo codec n=%d m=%d, %d levels, %zu params; %zu photos (%zu excluded, %zu "
                "skipped), crops %d, batch %d%s%s\n",
                p->cfg.n, p->cfg.m, p->cfg.levels, p->nparams, ph.count, ph.excluded, ph.skipped,
                o->crop, o->batch, o->init ? ", from " : "", o->init ? o->init : "");
    aec_adam opt = {.lr = o->lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    uint64_t t0 = aec_now_ns(), last_save = t0;
    double cpu_start = cpu_seconds();
    double sum_loss = 0, sum_bpp = 0, sum_psnr = 0;
    int window = 0;
    long step = 0;
    while (!train_stop_requested) {
        double elapsed = (double)(aec_now_ns() - t0) / 1e9;
        if (o->max_seconds > 0 && elapsed >= o->max_seconds)
            break;
        if (o->max_steps > 0 && step >= o->max_steps)
            break;
        for (int i = 0; i < t.n; i++)
            photo_trainer_crop(&t, &ph.img[aec_random_next(&t.rng) % ph.count], i);
        int level = (int)(aec_random_next(&t.rng) % (uint64_t)p->cfg.levels);
        photo_step r = photo_trainer_step(&t, level);
        step++;
        if (o->cosine) /* decay to 0 over the run: its steps, or else its seconds */
            opt.lr = (float)(o->lr * 0.5 *
                             (1 + cos(M_PI * (o->max_steps > 0 ? (double)step / o->max_steps
                                                               : elapsed / o->max_seconds))));
        photo_trainer_update(&t, &opt, step);
        sum_loss += r.loss, sum_bpp += r.bpp, sum_psnr += 10.0 * log10(1.0 / (r.mse + 1e-12));
        window++;
        if (window == o->log_every || train_stop_requested) {
            elapsed = (double)(aec_now_ns() - t0) / 1e9;
            if (!o->quiet)
                fprintf(stderr,
                        "\rstep %ld  %.0fs  loss %.4f  bpp %.4f  psnr %.2f dB  (%.2f steps/s) ",
                        steps0 + step, elapsed, sum_loss / window, sum_bpp / window,
                        sum_psnr / window, step / elapsed);
            if (hist) {
                fprintf(
                    hist,
                    "{\"step\":%ld,\"seconds\":%.1f,\"loss\":%.5f,\"bpp\":%.5f,\"psnr\":%.3f}\n",
                    steps0 + step, elapsed, sum_loss / window, sum_bpp / window, sum_psnr / window);
                fflush(hist);
            }
            sum_loss = sum_bpp = sum_psnr = 0;
            window = 0;
        }
        /* a checkpoint every --save-every seconds: a cut session loses little */
        if (o->save_every > 0 && (double)(aec_now_ns() - last_save) / 1e9 >= o->save_every) {
            if ((st = save_model(p, o, steps0 + step, cpu0 + cpu_seconds() - cpu_start, err)) ||
                (st = rd_preview(p, &ph, o->threads, hist, o->quiet, steps0 + step, err)))
                goto done;
            last_save = aec_now_ns();
        }
    }
    if (!o->quiet)
        fprintf(stderr, "\n");
    st = save_model(p, o, steps0 + step, cpu0 + cpu_seconds() - cpu_start, err);
    if (st == AEC_OK)
        st = rd_preview(p, &ph, o->threads, hist, o->quiet, steps0 + step, err);
    if (st == AEC_OK && !o->quiet)
        fprintf(stderr, "wrote %s (%s): %ld steps in all, %.0f CPU seconds in all\n", o->out, p->id,
                steps0 + step, cpu0 + cpu_seconds() - cpu_start);
done:
    if (hist)
        fclose(hist);
    photo_trainer_free(&t);
    train_photos_free(&ph);
    aec_photo_free(p);
    return st;
}
