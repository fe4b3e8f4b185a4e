/* layers.c - forward and backward passes of every layer type.
 *
 * Owns the arithmetic of the engine; knows nothing of models, files or
 * buffers it did not get as arguments. Shapes are explicit in every
 * signature (see include/aec/layers.h for the conventions: batch-major,
 * planar C x H x W samples; backward ACCUMULATES parameter gradients and
 * OVERWRITES input gradients).
 *
 * Matrix work is cblas_sgemm over whole batches; a batch of one goes through
 * sgemv, which runs several times faster than sgemm with M = 1.
 * Convolutions are im2col + sgemm per sample: the column matrix of one
 * sample is small enough to stay in cache, and each GEMM is big enough
 * (M = out channels, N = output pixels) to run near the BLAS peak.
 */
#include "aec/layers.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aec/gemm.h"

#include "parallel.h"

/* ---- linear ------------------------------------------------------------- */

void aec_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int n,
                        int in_f, int out_f)
{
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * out_f, bias, sizeof(float) * (size_t)out_f);
    if (n == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out_f, in_f, 1.0f, weight, in_f, inp, 1, 1.0f, out,
                    1);
        return;
    }
    /* out[n,out] += inp[n,in] x weight[out,in]^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out_f, in_f, 1.0f, inp, in_f, weight,
                in_f, 1.0f, out, out_f);
}

void aec_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int n, int in_f, int out_f)
{
    /* dweight[out,in] += dout[n,out]^T x inp[n,in] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out_f, in_f, n, 1.0f, dout, out_f, inp,
                in_f, 1.0f, dweight, in_f);
    for (int i = 0; i < n; i++) {
        const float *d = dout + (size_t)i * out_f;
        for (int o = 0; o < out_f; o++)
            dbias[o] += d[o];
    }
    if (dinp) /* dinp[n,in] = dout[n,out] x weight[out,in] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in_f, out_f, 1.0f, dout, out_f,
                    weight, in_f, 0.0f, dinp, in_f);
}

/* ---- activations --------------------------------------------------------- */

void aec_relu_forward(float *out, const float *inp, size_t count)
{
    for (size_t i = 0; i < count; i++)
        out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void aec_relu_backward(float *dinp, const float *dout, const float *out, size_t count)
{
    for (size_t i = 0; i < count; i++)
        dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

/* e^x from a fixed sequence of float operations (Cody-Waite reduction to
 * |r| <= ln2/2, a degree-6 Taylor polynomial, scaling by 2^n through the
 * exponent bits): within 2 ulp, and the same bits on every CPU, which libm's
 * expf does not promise (glibc picks an FMA variant on CPUs that have one).
 * Decoders end in a sigmoid, so this is what makes a decoded image the same
 * everywhere. */
static float exp_fixed(float x)
{
    if (x != x)
        return x;
    if (x > 88.0f)
        x = 88.0f;
    if (x < -87.0f)
        x = -87.0f;
    float n = floorf(x * 1.44269504f + 0.5f);
    float r = x - n * 0.693359375f; /* ln 2 split: the high part has 9 bits, so n * hi is exact */
    r = r - n * -2.12194440e-4f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int e = (int)n; /* in [-126, 127] after the clamps */
    uint32_t bits = (uint32_t)(e + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

void aec_sigmoid_forward(float *out, const float *inp, size_t count)
{
    for (size_t i = 0; i < count; i++)
        out[i] = 1.0f / (1.0f + exp_fixed(-inp[i]));
}

void aec_sigmoid_backward(float *dinp, const float *dout, const float *out, size_t count)
{
    for (size_t i = 0; i < count; i++)
        dinp[i] = dout[i] * out[i] * (1.0f - out[i]);
}

/* ---- batchnorm ------------------------------------------------------------ */

/* Per-channel mean and biased variance of inp [n, c, spatial], in double. */
static void channel_stats(double *mean, double *var, const float *inp, int n, int c, int spatial)
{
    double count = (double)n * spatial;
    memset(mean, 0, sizeof(double) * (size_t)c);
    memset(var, 0, sizeof(double) * (size_t)c);
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const float *x = inp + ((size_t)i * c + ch) * spatial;
            double s = 0;
            for (int k = 0; k < spatial; k++)
                s += x[k];
            mean[ch] += s;
        }
    for (int ch = 0; ch < c; ch++)
        mean[ch] /= count;
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const float *x = inp + ((size_t)i * c + ch) * spatial;
            double s = 0, m = mean[ch];
            for (int k = 0; k < spatial; k++)
                s += (x[k] - m) * (x[k] - m);
            var[ch] += s;
        }
    for (int ch = 0; ch < c; ch++)
        var[ch] /= count;
}

/* out = inp * scale[ch] + shift[ch] */
static void channel_affine(float *out, const float *inp, const float *scale, const float *shift,
                           int n, int c, int spatial)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            size_t base = ((size_t)i * c + ch) * spatial;
            float a = scale[ch], b = shift[ch];
            for (int k = 0; k < spatial; k++)
                out[base + k] = inp[base + k] * a + b;
        }
}

void aec_batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                                 float *running_var, const float *inp, const float *gamma,
                                 const float *beta, int n, int c, int spatial, float eps,
                                 float momentum)
{
    double *dm = malloc(sizeof(double) * 2 * (size_t)c);
    float *scale = malloc(sizeof(float) * 2 * (size_t)c);
    if (!dm || !scale)
        abort(); /* c is bounded by the model spec; this is a few KB */
    double *dv = dm + c;
    float *shift = scale + c;
    channel_stats(dm, dv, inp, n, c, spatial);
    double count = (double)n * spatial;
    double unbias = count > 1 ? count / (count - 1) : 1.0;
    for (int ch = 0; ch < c; ch++) {
        mean[ch] = (float)dm[ch];
        rstd[ch] = (float)(1.0 / sqrt(dv[ch] + eps));
        scale[ch] = gamma[ch] * rstd[ch];
        shift[ch] = beta[ch] - mean[ch] * scale[ch];
        running_mean[ch] = (1.0f - momentum) * running_mean[ch] + momentum * mean[ch];
        running_var[ch] = (1.0f - momentum) * running_var[ch] + momentum * (float)(dv[ch] * unbias);
    }
    channel_affine(out, inp, scale, shift, n, c, spatial);
    free(dm);
    free(scale);
}

void aec_batchnorm_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, int n, int c,
                                int spatial, float eps)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            size_t base = ((size_t)i * c + ch) * spatial;
            float a = gamma[ch] / sqrtf(running_var[ch] + eps);
            float b = beta[ch] - running_mean[ch] * a;
            for (int k = 0; k < spatial; k++)
                out[base + k] = inp[base + k] * a + b;
        }
}

void aec_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                            const float *inp, const float *mean, const float *rstd,
                            const float *gamma, int n, int c, int spatial)
{
    /* Per channel, with xhat = (x - mean) * rstd and N = n * spatial:
     *   dbeta  = sum dout,  dgamma = sum dout * xhat
     *   dinp   = gamma * rstd / N * (N * dout - dbeta - xhat * dgamma) */
    double *sum_d = calloc(2 * (size_t)c, sizeof(double));
    if (!sum_d)
        abort();
    double *sum_dx = sum_d + c;
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            size_t base = ((size_t)i * c + ch) * spatial;
            double s = 0, sx = 0, m = mean[ch];
            for (int k = 0; k < spatial; k++) {
                s += dout[base + k];
                sx += dout[base + k] * (inp[base + k] - m);
            }
            sum_d[ch] += s;
            sum_dx[ch] += sx;
        }
    double count = (double)n * spatial;
    for (int ch = 0; ch < c; ch++) {
        sum_dx[ch] *= rstd[ch]; /* now sum dout * xhat */
        dbeta[ch] += (float)sum_d[ch];
        dgamma[ch] += (float)sum_dx[ch];
    }
    if (dinp) {
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++) {
                size_t base = ((size_t)i * c + ch) * spatial;
                float r = rstd[ch], m = mean[ch];
                float k1 = gamma[ch] * r;
                float mean_d = (float)(sum_d[ch] / count);
                float mean_dx = (float)(sum_dx[ch] / count);
                for (int k = 0; k < spatial; k++) {
                    float xhat = (inp[base + k] - m) * r;
                    dinp[base + k] = k1 * (dout[base + k] - mean_d - xhat * mean_dx);
                }
            }
    }
    free(sum_d);
}

/* ---- convolution helpers ------------------------------------------------------ */

size_t aec_conv2d_col_size(int cin, int k, int oh, int ow)
{
    return (size_t)cin * k * k * oh * ow;
}

/* Output columns ox whose input column ox*s - p + kx falls inside [0, w). */
static void valid_range(int kx, int s, int p, int w, int ow, int *lo, int *hi)
{
    int a = p - kx; /* need ox*s >= a */
    int first = a <= 0 ? 0 : (a + s - 1) / s;
    int b = w - 1 + p - kx; /* need ox*s <= b */
    int last = b < 0 ? -1 : b / s;
    *lo = first < ow ? first : ow;
    *hi = last + 1 < ow ? last + 1 : ow;
    if (*hi < *lo)
        *hi = *lo;
}

/* col[(c,ky,kx), (oy,ox)] = inp[c, oy*s - p + ky, ox*s - p + kx] (0 outside):
 * every output row is one band (im2col_band, below). */
static void im2col_band(float *col, const float *inp, int c, int h, int w, int k, int s, int p,
                        int oy0, int oy1, int ow);

static void im2col(float *col, const float *inp, int c, int h, int w, int k, int s, int p, int oh,
                   int ow)
{
    im2col_band(col, inp, c, h, w, k, s, p, 0, oh, ow);
}

/* The adjoint of im2col: out[c, oy*s-p+ky, ox*s-p+kx] += col[(c,ky,kx),(oy,ox)] */
static void col2im_add(float *out, const float *col, int c, int h, int w, int k, int s, int p,
                       int oh, int ow)
{
    for (int ch = 0; ch < c; ch++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                const float *row = col + ((size_t)(ch * k + ky) * k + kx) * oh * ow;
                int lo, hi;
                valid_range(kx, s, p, w, ow, &lo, &hi);
                for (int oy = 0; oy < oh; oy++) {
                    int iy = oy * s - p + ky;
                    if (iy < 0 || iy >= h)
                        continue;
                    float *dst = out + ((size_t)ch * h + iy) * w;
                    const float *src = row + (size_t)oy * ow;
                    int shift = kx - p;
                    for (int ox = lo; ox < hi; ox++)
                        dst[ox * s + shift] += src[ox];
                }
            }
}

static int is_pointwise(int k, int s, int p)
{
    return k == 1 && s == 1 && p == 0;
}

static void add_channel_bias(float *out, const float *bias, int c, int spatial)
{
    for (int ch = 0; ch < c; ch++) {
        float b = bias[ch];
        float *o = out + (size_t)ch * spatial;
        for (int k = 0; k < spatial; k++)
            o[k] += b;
    }
}

static void sum_channel_bias(float *dbias, const float *dout, int c, int spatial)
{
    for (int ch = 0; ch < c; ch++) {
        const float *d = dout + (size_t)ch * spatial;
        double s = 0;
        for (int k = 0; k < spatial; k++)
            s += d[k];
        dbias[ch] += (float)s;
    }
}

/* ---- parallel over samples -------------------------------------------------------
 * One sample's convolution is a small GEMM (M = out channels, N = output
 * pixels): OpenBLAS's own threads spend more time waking up than computing
 * on it. So convolutions split the batch across threads instead
 * (aec_parallel_range: the same split for the same thread count, so the same
 * bits), each thread running single-threaded BLAS on its samples with its own
 * im2col scratch and, in backward, its own weight-gradient partial sums, added
 * in thread order. */

typedef struct {
    /* geometry: inp [n, cin, h, w] -> out [n, cout, oh, ow] */
    int cin, h, w, cout, oh, ow, k, stride, pad, out_pad;
    const float *inp, *weight, *bias, *dout;
    float *out, *dinp, *col, *partial;
    size_t colsize, wsize, bsize;
} conv_job;

/* The geometry of a conv2d (transposed = 0) or conv_transpose2d layer, with
 * the column scratch size and weight/bias gradient sizes; the caller adds
 * the tensors. */
static conv_job conv_geometry(int cin, int h, int w, int cout, int k, int stride, int pad,
                              int out_pad, int transposed)
{
    conv_job j = {.cin = cin,
                  .h = h,
                  .w = w,
                  .cout = cout,
                  .k = k,
                  .stride = stride,
                  .pad = pad,
                  .out_pad = out_pad,
                  .wsize = (size_t)cout * cin * k * k,
                  .bsize = (size_t)cout};
    if (transposed) {
        j.oh = (h - 1) * stride - 2 * pad + k + out_pad;
        j.ow = (w - 1) * stride - 2 * pad + k + out_pad;
        j.colsize = aec_conv2d_col_size(cout, k, h, w);
    } else {
        j.oh = (h + 2 * pad - k) / stride + 1;
        j.ow = (w + 2 * pad - k) / stride + 1;
        j.colsize = aec_conv2d_col_size(cin, k, j.oh, j.ow);
    }
    return j;
}

/* Threads for a batch of n: the BLAS thread count, at most n. */
static int conv_threads(int n)
{
    int t = openblas_get_num_threads();
    return t < 1 ? 1 : t > n ? n : t;
}

/* Runs fn over the batch with BLAS single-threaded inside each worker. */
static void run_parallel(int n, aec_range_fn fn, conv_job *job)
{
    int nt = conv_threads(n), blas = openblas_get_num_threads();
    if (nt > 1)
        openblas_set_num_threads(1);
    aec_parallel_range(nt, n, fn, job);
    if (nt > 1)
        openblas_set_num_threads(blas);
}

/* Scratch for thread t: the caller's buffer for thread 0, else malloc'd. */
static float *thread_scratch(const conv_job *j, int t)
{
    if (t == 0 || j->colsize == 0)
        return j->col;
    float *p = malloc(sizeof(float) * j->colsize);
    if (!p)
        abort(); /* a few hundred KB, bounded by the model spec */
    return p;
}

static void release_scratch(const conv_job *j, float *col)
{
    if (col != j->col)
        free(col);
}

/* Runs a backward range function over the batch: each thread accumulates its
 * own partial weight and bias gradients, which are then added into
 * dweight/dbias in thread order (deterministic). */
static void run_backward(int n, aec_range_fn fn, conv_job *j, float *dweight, float *dbias)
{
    int nthreads = conv_threads(n);
    j->partial = calloc((size_t)nthreads * (j->wsize + j->bsize), sizeof(float));
    if (!j->partial)
        abort(); /* a few weight tensors' worth, bounded by the model spec */
    run_parallel(n, fn, j);
    for (int t = 0; t < nthreads; t++) {
        const float *pw = j->partial + (size_t)t * (j->wsize + j->bsize);
        for (size_t i = 0; i < j->wsize; i++)
            dweight[i] += pw[i];
        for (size_t i = 0; i < j->bsize; i++)
            dbias[i] += pw[j->wsize + i];
    }
    free(j->partial);
    j->partial = NULL;
}

/* ---- conv2d -------------------------------------------------------------------- */

static void conv2d_forward_range(void *ctx, int t, long begin, long end)
{
    const conv_job *j = ctx;
    int ohw = j->oh * j->ow, ckk = j->cin * j->k * j->k;
    int pointwise = is_pointwise(j->k, j->stride, j->pad);
    float *col = thread_scratch(j, t);
    for (long i = begin; i < end; i++) {
        const float *x = j->inp + (size_t)i * j->cin * j->h * j->w;
        float *y = j->out + (size_t)i * j->cout * ohw;
        const float *cols = x;
        if (!pointwise) {
            im2col(col, x, j->cin, j->h, j->w, j->k, j->stride, j->pad, j->oh, j->ow);
            cols = col;
        }
        /* y[cout, ohw] = weight[cout, ckk] x cols[ckk, ohw] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, j->cout, ohw, ckk, 1.0f, j->weight,
                    ckk, cols, ohw, 0.0f, y, ohw);
        add_channel_bias(y, j->bias, j->cout, ohw);
    }
    release_scratch(j, col);
}

void aec_conv2d_forward(float *out, float *col, const float *inp, const float *weight,
                        const float *bias, int n, int cin, int h, int w, int cout, int k,
                        int stride, int pad)
{
    conv_job j = conv_geometry(cin, h, w, cout, k, stride, pad, 0, 0);
    j.inp = inp, j.weight = weight, j.bias = bias, j.out = out, j.col = col;
    run_parallel(n, conv2d_forward_range, &j);
}

static void conv2d_backward_range(void *ctx, int t, long begin, long end)
{
    const conv_job *j = ctx;
    int ohw = j->oh * j->ow, ckk = j->cin * j->k * j->k, hw = j->h * j->w;
    int pointwise = is_pointwise(j->k, j->stride, j->pad);
    float *col = thread_scratch(j, t);
    float *dweight = j->partial + (size_t)t * (j->wsize + j->bsize), *dbias = dweight + j->wsize;
    for (long i = begin; i < end; i++) {
        const float *x = j->inp + (size_t)i * j->cin * hw;
        const float *dy = j->dout + (size_t)i * j->cout * ohw;
        sum_channel_bias(dbias, dy, j->cout, ohw);
        const float *cols = x;
        if (!pointwise) {
            im2col(col, x, j->cin, j->h, j->w, j->k, j->stride, j->pad, j->oh, j->ow);
            cols = col;
        }
        /* dweight[cout, ckk] += dy[cout, ohw] x cols[ckk, ohw]^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->cout, ckk, ohw, 1.0f, dy, ohw, cols,
                    ohw, 1.0f, dweight, ckk);
        if (!j->dinp)
            continue;
        float *dx = j->dinp + (size_t)i * j->cin * hw;
        if (pointwise) { /* dx[cin, hw] = weight^T x dy */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, ohw, j->cout, 1.0f, j->weight,
                        ckk, dy, ohw, 0.0f, dx, ohw);
            continue;
        }
        /* dcol[ckk, ohw] = weight[cout, ckk]^T x dy[cout, ohw]; dx = col2im(dcol) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, ohw, j->cout, 1.0f, j->weight,
                    ckk, dy, ohw, 0.0f, col, ohw);
        memset(dx, 0, sizeof(float) * (size_t)j->cin * hw);
        col2im_add(dx, col, j->cin, j->h, j->w, j->k, j->stride, j->pad, j->oh, j->ow);
    }
    release_scratch(j, col);
}

void aec_conv2d_backward(float *dinp, float *dweight, float *dbias, float *col, const float *dout,
                         const float *inp, const float *weight, int n, int cin, int h, int w,
                         int cout, int k, int stride, int pad)
{
    conv_job j = conv_geometry(cin, h, w, cout, k, stride, pad, 0, 0);
    j.inp = inp, j.weight = weight, j.dout = dout, j.dinp = dinp, j.col = col;
    run_backward(n, conv2d_backward_range, &j, dweight, dbias);
}

/* ---- conv_transpose2d ------------------------------------------------------------ *
 * The transpose of conv2d: each input pixel scatters a k x k patch. With the
 * weight viewed as [cin, cout*k*k], col[cout*k*k, h*w] = weight^T x inp, then
 * col2im over the output grid. Backward gathers with im2col. */

static void conv_t_forward_range(void *ctx, int t, long begin, long end)
{
    const conv_job *j = ctx;
    int hw = j->h * j->w, ckk = j->cout * j->k * j->k, ohw = j->oh * j->ow;
    int pointwise = is_pointwise(j->k, j->stride, j->pad) && j->out_pad == 0;
    float *col = thread_scratch(j, t);
    for (long i = begin; i < end; i++) {
        const float *x = j->inp + (size_t)i * j->cin * hw;
        float *y = j->out + (size_t)i * j->cout * ohw;
        if (pointwise) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, hw, j->cin, 1.0f, j->weight,
                        ckk, x, hw, 0.0f, y, hw);
        } else {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, hw, j->cin, 1.0f, j->weight,
                        ckk, x, hw, 0.0f, col, hw);
            memset(y, 0, sizeof(float) * (size_t)j->cout * ohw);
            col2im_add(y, col, j->cout, j->oh, j->ow, j->k, j->stride, j->pad, j->h, j->w);
        }
        add_channel_bias(y, j->bias, j->cout, ohw);
    }
    release_scratch(j, col);
}

void aec_conv_transpose2d_forward(float *out, float *col, const float *inp, const float *weight,
                                  const float *bias, int n, int cin, int h, int w, int cout, int k,
                                  int stride, int pad, int out_pad)
{
    conv_job j = conv_geometry(cin, h, w, cout, k, stride, pad, out_pad, 1);
    j.inp = inp, j.weight = weight, j.bias = bias, j.out = out, j.col = col;
    run_parallel(n, conv_t_forward_range, &j);
}

static void conv_t_backward_range(void *ctx, int t, long begin, long end)
{
    const conv_job *j = ctx;
    int hw = j->h * j->w, ckk = j->cout * j->k * j->k, ohw = j->oh * j->ow;
    int pointwise = is_pointwise(j->k, j->stride, j->pad) && j->out_pad == 0;
    float *col = thread_scratch(j, t);
    float *dweight = j->partial + (size_t)t * (j->wsize + j->bsize), *dbias = dweight + j->wsize;
    for (long i = begin; i < end; i++) {
        const float *x = j->inp + (size_t)i * j->cin * hw;
        const float *dy = j->dout + (size_t)i * j->cout * ohw;
        sum_channel_bias(dbias, dy, j->cout, ohw);
        const float *dcol = dy;
        if (!pointwise) {
            im2col(col, dy, j->cout, j->oh, j->ow, j->k, j->stride, j->pad, j->h, j->w);
            dcol = col;
        }
        /* dweight[cin, ckk] += x[cin, hw] x dcol[ckk, hw]^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->cin, ckk, hw, 1.0f, x, hw, dcol, hw,
                    1.0f, dweight, ckk);
        if (j->dinp) /* dx[cin, hw] = weight[cin, ckk] x dcol[ckk, hw] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, j->cin, hw, ckk, 1.0f, j->weight,
                        ckk, dcol, hw, 0.0f, j->dinp + (size_t)i * j->cin * hw, hw);
    }
    release_scratch(j, col);
}

void aec_conv_transpose2d_backward(float *dinp, float *dweight, float *dbias, float *col,
                                   const float *dout, const float *inp, const float *weight, int n,
                                   int cin, int h, int w, int cout, int k, int stride, int pad,
                                   int out_pad)
{
    conv_job j = conv_geometry(cin, h, w, cout, k, stride, pad, out_pad, 1);
    j.inp = inp, j.weight = weight, j.dout = dout, j.dinp = dinp, j.col = col;
    run_backward(n, conv_t_backward_range, &j, dweight, dbias);
}

/* ---- inference: fixed order of operations ------------------------------------------ *
 * The serving path. Every product goes through aec/gemm.h (the dot form for
 * linear layers, the sequential form for convolutions), whose bits do not
 * depend on the shape of the call, the thread or the CPU, so a sample's
 * output is the same in any batch and on any machine. The work is split into
 * units (samples, or bands of output rows of a sample); thread t uses slice t
 * of the caller's scratch. No allocation, no global setting. */

/* Output rows per band of a convolution: about BAND_FLOATS floats of
 * columns, at least one row. */
#define BAND_FLOATS (1 << 16)

static int band_rows(int ow, int ckk, int oh)
{
    size_t per_row = (size_t)ow * (size_t)ckk;
    size_t r = per_row ? BAND_FLOATS / per_row : 1;
    if (r < 1)
        r = 1;
    return r > (size_t)oh ? oh : (int)r;
}

/* im2col for output rows [oy0, oy1) only:
 * col[(c,ky,kx), (oy - oy0)*ow + ox] = inp[c, oy*s - p + ky, ox*s - p + kx] (0 outside). */
static void im2col_band(float *col, const float *inp, int c, int h, int w, int k, int s, int p,
                        int oy0, int oy1, int ow)
{
    size_t np = (size_t)(oy1 - oy0) * ow;
    for (int ch = 0; ch < c; ch++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                float *row = col + ((size_t)(ch * k + ky) * k + kx) * np;
                int lo, hi;
                valid_range(kx, s, p, w, ow, &lo, &hi);
                int shift = kx - p;
                for (int oy = oy0; oy < oy1; oy++) {
                    float *dst = row + (size_t)(oy - oy0) * ow;
                    int iy = oy * s - p + ky;
                    if (iy < 0 || iy >= h) {
                        memset(dst, 0, sizeof(float) * (size_t)ow);
                        continue;
                    }
                    const float *src = inp + ((size_t)ch * h + iy) * w;
                    for (int ox = 0; ox < lo; ox++)
                        dst[ox] = 0.0f;
                    if (s == 1 && hi > lo)
                        memcpy(dst + lo, src + lo + shift, sizeof(float) * (size_t)(hi - lo));
                    else
                        for (int ox = lo; ox < hi; ox++)
                            dst[ox] = src[ox * s + shift];
                    for (int ox = hi; ox < ow; ox++)
                        dst[ox] = 0.0f;
                }
            }
}

void aec_linear_infer(float *out, const float *inp, const float *weight, const float *bias, int n,
                      int in_f, int out_f, int threads)
{
    aec_gemm_fixed_parallel(out, (size_t)out_f, 1, inp, (size_t)in_f, weight, (size_t)in_f, bias, n,
                            out_f, in_f, threads);
}

size_t aec_conv2d_infer_scratch(int cin, int h, int w, int k, int stride, int pad, int threads)
{
    /* A band holds at most max(BAND_FLOATS, one row) floats of columns: a bound
     * that only grows with the image, so the scratch of a tile of some size
     * serves every smaller tile too. */
    conv_job j = conv_geometry(cin, h, w, 1, k, stride, pad, 0, 0);
    size_t row = (size_t)j.ow * cin * k * k;
    return (size_t)threads * (row > BAND_FLOATS ? row : BAND_FLOATS);
}

typedef struct {
    conv_job g;
    int rows; /* output rows per band */
    int bands;
    size_t slice; /* scratch floats per thread */
    float *scratch;
} infer_job;

static void conv2d_infer_range(void *ctx, int t, long begin, long end)
{
    const infer_job *q = ctx;
    const conv_job *j = &q->g;
    int ckk = j->cin * j->k * j->k, ohw = j->oh * j->ow;
    int pointwise = is_pointwise(j->k, j->stride, j->pad);
    float *col = q->scratch + (size_t)t * q->slice;
    for (long u = begin; u < end; u++) {
        long i = u / q->bands;
        int oy0 = (int)(u % q->bands) * q->rows;
        int oy1 = oy0 + q->rows < j->oh ? oy0 + q->rows : j->oh;
        int np = (oy1 - oy0) * j->ow;
        const float *x = j->inp + (size_t)i * j->cin * j->h * j->w;
        float *y = j->out + (size_t)i * j->cout * ohw + (size_t)oy0 * j->ow;
        const float *cols = x + (size_t)oy0 * j->ow;
        size_t ldb = (size_t)ohw;
        if (!pointwise) {
            im2col_band(col, x, j->cin, j->h, j->w, j->k, j->stride, j->pad, oy0, oy1, j->ow);
            cols = col, ldb = (size_t)np;
        }
        /* y[co, p] = bias[co] + sum over (c,ky,kx) in order of weight[co, .] * cols[., p] */
        aec_gemm_seq(y, (size_t)ohw, j->weight, (size_t)ckk, 1, cols, ldb, j->bias, j->cout, np,
                     ckk);
    }
}

void aec_conv2d_infer(float *out, float *scratch, const float *inp, const float *weight,
                      const float *bias, int n, int cin, int h, int w, int cout, int k, int stride,
                      int pad, int threads)
{
    infer_job q = {.g = conv_geometry(cin, h, w, cout, k, stride, pad, 0, 0), .scratch = scratch};
    q.g.inp = inp, q.g.weight = weight, q.g.bias = bias, q.g.out = out;
    q.rows = band_rows(q.g.ow, cin * k * k, q.g.oh);
    q.bands = (q.g.oh + q.rows - 1) / q.rows;
    q.slice = aec_conv2d_infer_scratch(cin, h, w, k, stride, pad, 1);
    aec_parallel_range(threads, (long)n * q.bands, conv2d_infer_range, &q);
}

/* Per thread: the columns [cout*k*k, h*w] of one sample. */
size_t aec_conv_transpose2d_infer_scratch(int cin, int h, int w, int cout, int k, int threads)
{
    (void)cin;
    return (size_t)threads * cout * k * k * h * w;
}

/* col[r, p] = sum over ci in order of weight[ci, r] * x[ci, p] for rows
 * [r0, r1) of the columns, r = (co, ky, kx). */
static void conv_t_columns(const conv_job *j, float *col, const float *x, int r0, int r1)
{
    int hw = j->h * j->w, ckk = j->cout * j->k * j->k;
    aec_gemm_seq(col + (size_t)r0 * hw, (size_t)hw, j->weight + r0, 1, (size_t)ckk, x, (size_t)hw,
                 NULL, r1 - r0, hw, j->cin);
}

static void conv_t_finish(const conv_job *j, float *y, const float *col)
{
    int ohw = j->oh * j->ow;
    memset(y, 0, sizeof(float) * (size_t)j->cout * ohw);
    col2im_add(y, col, j->cout, j->oh, j->ow, j->k, j->stride, j->pad, j->h, j->w);
    add_channel_bias(y, j->bias, j->cout, ohw);
}

static void conv_t_infer_range(void *ctx, int t, long begin, long end)
{
    const infer_job *q = ctx;
    const conv_job *j = &q->g;
    size_t hw = (size_t)j->h * j->w, ohw = (size_t)j->oh * j->ow;
    float *col = q->scratch + (size_t)t * q->slice;
    for (long i = begin; i < end; i++) {
        conv_t_columns(j, col, j->inp + (size_t)i * j->cin * hw, 0, j->cout * j->k * j->k);
        conv_t_finish(j, j->out + (size_t)i * j->cout * ohw, col);
    }
}

/* One sample on several threads: each computes a range of column rows. */
static void conv_t_rows_range(void *ctx, int t, long begin, long end)
{
    const infer_job *q = ctx;
    (void)t;
    conv_t_columns(&q->g, q->scratch, q->g.inp, (int)begin, (int)end);
}

void aec_conv_transpose2d_infer(float *out, float *scratch, const float *inp, const float *weight,
                                const float *bias, int n, int cin, int h, int w, int cout, int k,
                                int stride, int pad, int out_pad, int threads)
{
    infer_job q = {.g = conv_geometry(cin, h, w, cout, k, stride, pad, out_pad, 1),
                   .scratch = scratch};
    q.g.inp = inp, q.g.weight = weight, q.g.bias = bias, q.g.out = out;
    q.slice = aec_conv_transpose2d_infer_scratch(cin, h, w, cout, k, 1);
    if (n >= threads) {
        aec_parallel_range(threads, n, conv_t_infer_range, &q);
        return;
    }
    size_t hw = (size_t)h * w, ohw = (size_t)q.g.oh * q.g.ow;
    for (int i = 0; i < n; i++) {
        q.g.inp = inp + (size_t)i * cin * hw;
        aec_parallel_range(threads, (long)cout * k * k, conv_t_rows_range, &q);
        conv_t_finish(&q.g, out + (size_t)i * cout * ohw, scratch);
    }
}

/* ---- loss ------------------------------------------------------------------------- */

float aec_mse_forward_backward(float *dout, const float *out, const float *target, size_t count)
{
    double sum = 0;
    float g = 2.0f / (float)count;
    for (size_t i = 0; i < count; i++) {
        float d = out[i] - target[i];
        sum += (double)d * d;
        if (dout)
            dout[i] = g * d;
    }
    return (float)(sum / (double)count);
}

double aec_softmax_xent_forward_backward(float *dlogits, double *nll, const float *logits,
                                         const int *labels, int n, int classes)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)classes;
        double max = z[0], total = 0;
        for (int k = 1; k < classes; k++)
            max = z[k] > max ? z[k] : max;
        for (int k = 0; k < classes; k++)
            total += exp((double)z[k] - max);
        double log_total = log(total) + max, term = log_total - z[labels[i]];
        sum += term;
        if (nll)
            nll[i] = term;
        if (dlogits)
            for (int k = 0; k < classes; k++) {
                double pk = exp((double)z[k] - log_total);
                dlogits[(size_t)i * (size_t)classes + k] =
                    (float)((pk - (k == labels[i])) / (double)n);
            }
    }
    return n > 0 ? sum / n : 0;
}

double aec_mse_of(const float *a, const float *b, size_t count)
{
    double sum = 0;
    for (size_t i = 0; i < count; i++) {
        double d = (double)a[i] - b[i];
        sum += d * d;
    }
    return count ? sum / (double)count : 0.0;
}

/* ---- whole-batch layers, channel-major [c, n, h, w] ---------------------------------- *
 * The photo codec trains on batches of crops in channel-major layout: channel
 * c of all n samples is one contiguous [n, h, w] block. Then a convolution
 * over the whole batch is ONE im2col and ONE sgemm (M = out channels, N = n *
 * output pixels, K = in channels * k * k), big enough for OpenBLAS to run its
 * own threads near peak, and GDN is one sgemm over every pixel of the batch.
 * The caller provides every buffer; BLAS threads are whatever the caller set. */

size_t aec_bconv_col_size(int n, int c, int k, int oh, int ow)
{
    return (size_t)c * k * k * n * oh * ow;
}

/* col[(c,ky,kx), (i,oy,ox)] = inp[c, i, oy*s - p + ky, ox*s - p + kx] (0 outside). */
static void im2col_batch(float *col, const float *inp, int c, int n, int h, int w, int k, int s,
                         int p, int oh, int ow)
{
    size_t ohw = (size_t)oh * ow, hw = (size_t)h * w;
    for (int ch = 0; ch < c; ch++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                float *row = col + ((size_t)(ch * k + ky) * k + kx) * n * ohw;
                int lo, hi;
                valid_range(kx, s, p, w, ow, &lo, &hi);
                int shift = kx - p;
                for (int i = 0; i < n; i++)
                    for (int oy = 0; oy < oh; oy++) {
                        float *dst = row + (size_t)i * ohw + (size_t)oy * ow;
                        int iy = oy * s - p + ky;
                        if (iy < 0 || iy >= h) {
                            memset(dst, 0, sizeof(float) * (size_t)ow);
                            continue;
                        }
                        const float *src = inp + ((size_t)ch * n + i) * hw + (size_t)iy * w;
                        for (int ox = 0; ox < lo; ox++)
                            dst[ox] = 0.0f;
                        for (int ox = lo; ox < hi; ox++)
                            dst[ox] = src[ox * s + shift];
                        for (int ox = hi; ox < ow; ox++)
                            dst[ox] = 0.0f;
                    }
            }
}

/* The adjoint: out[c, i, oy*s-p+ky, ox*s-p+kx] += col[(c,ky,kx), (i,oy,ox)]. */
static void col2im_batch_add(float *out, const float *col, int c, int n, int h, int w, int k, int s,
                             int p, int oh, int ow)
{
    size_t ohw = (size_t)oh * ow, hw = (size_t)h * w;
    for (int ch = 0; ch < c; ch++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                const float *row = col + ((size_t)(ch * k + ky) * k + kx) * n * ohw;
                int lo, hi;
                valid_range(kx, s, p, w, ow, &lo, &hi);
                int shift = kx - p;
                for (int i = 0; i < n; i++)
                    for (int oy = 0; oy < oh; oy++) {
                        int iy = oy * s - p + ky;
                        if (iy < 0 || iy >= h)
                            continue;
                        float *dst = out + ((size_t)ch * n + i) * hw + (size_t)iy * w;
                        const float *src = row + (size_t)i * ohw + (size_t)oy * ow;
                        for (int ox = lo; ox < hi; ox++)
                            dst[ox * s + shift] += src[ox];
                    }
            }
}

void aec_bconv2d_forward(float *out, float *col, const float *inp, const float *weight,
                         const float *bias, int n, int cin, int h, int w, int cout, int k,
                         int stride, int pad)
{
    conv_job j = conv_geometry(cin, h, w, cout, k, stride, pad, 0, 0);
    int np = n * j.oh * j.ow, ckk = cin * k * k;
    im2col_batch(col, inp, cin, n, h, w, k, stride, pad, j.oh, j.ow);
    /* out[cout, n*ohw] = weight[cout, ckk] x col[ckk, n*ohw] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, np, ckk, 1.0f, weight, ckk, col,
                np, 0.0f, out, np);
    add_channel_bias(out, bias, cout, np);
}

void aec_bconv2d_backward(float *dinp, float *dweight, float *dbias, float *col, const float *dout,
                          const float *inp, const float *weight, int n, int cin, int h, int w,
                          int cout, int k, int stride, int pad)
{
    conv_job j = conv_geometry(cin, h, w, cout, k, stride, pad, 0, 0);
    int np = n * j.oh * j.ow, ckk = cin * k * k;
    sum_channel_bias(dbias, dout, cout, np);
    im2col_batch(col, inp, cin, n, h, w, k, stride, pad, j.oh, j.ow);
    /* dweight[cout, ckk] += dout[cout, np] x col[ckk, np]^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cout, ckk, np, 1.0f, dout, np, col, np,
                1.0f, dweight, ckk);
    if (!dinp)
        return;
    /* dcol[ckk, np] = weight^T x dout; dinp = col2im(dcol) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, np, cout, 1.0f, weight, ckk, dout, np,
                0.0f, col, np);
    memset(dinp, 0, sizeof(float) * (size_t)cin * n * h * w);
    col2im_batch_add(dinp, col, cin, n, h, w, k, stride, pad, j.oh, j.ow);
}

void aec_bdeconv2d_forward(float *out, float *col, const float *inp, const float *weight,
                           const float *bias, int n, int cin, int h, int w, int cout, int k,
                           int stride, int pad, int out_pad)
{
    conv_job j = conv_geometry(cin, h, w, cout, k, stride, pad, out_pad, 1);
    int np = n * h * w, ckk = cout * k * k;
    /* col[cout*k*k, n*hw] = weight[cin, ckk]^T x inp[cin, n*hw], scattered onto the output */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, np, cin, 1.0f, weight, ckk, inp, np,
                0.0f, col, np);
    memset(out, 0, sizeof(float) * (size_t)cout * n * j.oh * j.ow);
    col2im_batch_add(out, col, cout, n, j.oh, j.ow, k, stride, pad, h, w);
    add_channel_bias(out, bias, cout, n * j.oh * j.ow);
}

void aec_bdeconv2d_backward(float *dinp, float *dweight, float *dbias, float *col,
                            const float *dout, const float *inp, const float *weight, int n,
                            int cin, int h, int w, int cout, int k, int stride, int pad,
                            int out_pad)
{
    conv_job j = conv_geometry(cin, h, w, cout, k, stride, pad, out_pad, 1);
    int np = n * h * w, ckk = cout * k * k;
    sum_channel_bias(dbias, dout, cout, n * j.oh * j.ow);
    im2col_batch(col, dout, cout, n, j.oh, j.ow, k, stride, pad, h, w);
    /* dweight[cin, ckk] += inp[cin, np] x dcol[ckk, np]^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cin, ckk, np, 1.0f, inp, np, col, np, 1.0f,
                dweight, ckk);
    if (dinp) /* dinp[cin, np] = weight[cin, ckk] x dcol[ckk, np] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cin, np, ckk, 1.0f, weight, ckk, col,
                    np, 0.0f, dinp, np);
}

/* ---- GDN and inverse GDN over [c, count] --------------------------------------------- *
 * norm[i, p] = beta[i] + sum_j gamma[i, j] * x[j, p]^2; GDN: y = x / sqrt(norm), inverse
 * GDN: y = x * sqrt(norm). With a = norm^(-1/2) (GDN) or norm^(1/2) (inverse) and
 * g[i, p] = dy[i, p] * x[i, p] * da/dnorm:
 *   dx[j, p] = dy[j, p] * a[j, p] + 2 x[j, p] * sum_i gamma[i, j] g[i, p]
 *   dgamma[i, j] += sum_p g[i, p] x[j, p]^2,   dbeta[i] += sum_p g[i, p]. */

static void gdn_norm(float *norm, float *sq, const float *inp, const float *beta,
                     const float *gamma, int c, size_t count)
{
    for (size_t q = 0; q < (size_t)c * count; q++)
        sq[q] = inp[q] * inp[q];
    for (int i = 0; i < c; i++)
        for (size_t p = 0; p < count; p++)
            norm[(size_t)i * count + p] = beta[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c, (int)count, c, 1.0f, gamma, c, sq,
                (int)count, 1.0f, norm, (int)count);
}

void aec_gdn_forward(float *out, float *norm, const float *inp, const float *beta,
                     const float *gamma, int c, size_t count, int inverse)
{
    gdn_norm(norm, out, inp, beta, gamma, c, count); /* out holds x^2 until overwritten */
    size_t total = (size_t)c * count;
    if (inverse)
        for (size_t q = 0; q < total; q++)
            out[q] = inp[q] * sqrtf(norm[q]);
    else
        for (size_t q = 0; q < total; q++)
            out[q] = inp[q] / sqrtf(norm[q]);
}

void aec_gdn_backward(float *dinp, float *dbeta, float *dgamma, float *scratch, const float *dout,
                      const float *inp, const float *norm, const float *gamma, int c, size_t count,
                      int inverse)
{
    size_t total = (size_t)c * count;
    float *g = scratch, *sq = scratch + total;
    for (size_t q = 0; q < total; q++) {
        float r = sqrtf(norm[q]);
        float da = inverse ? 0.5f / r : -0.5f / (norm[q] * r);
        g[q] = dout[q] * inp[q] * da;
        sq[q] = inp[q] * inp[q];
    }
    for (int i = 0; i < c; i++) {
        double s = 0;
        for (size_t p = 0; p < count; p++)
            s += g[(size_t)i * count + p];
        dbeta[i] += (float)s;
    }
    /* dgamma[c, c] += g[c, count] x sq[c, count]^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c, c, (int)count, 1.0f, g, (int)count, sq,
                (int)count, 1.0f, dgamma, c);
    if (!dinp)
        return;
    /* dinp[j, p] = sum_i gamma[i, j] g[i, p], then the pointwise terms */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c, (int)count, c, 1.0f, gamma, c, g,
                (int)count, 0.0f, dinp, (int)count);
    for (size_t q = 0; q < total; q++) {
        float r = sqrtf(norm[q]);
        float a = inverse ? r : 1.0f / r;
        dinp[q] = dout[q] * a + 2.0f * inp[q] * dinp[q];
    }
}

typedef struct {
    float *out, *scratch;
    const float *inp, *beta, *gamma;
    int c, inverse;
    size_t count, chunk;
} gdn_job;

/* Columns [begin, end) of chunk pixels each: norm by the sequential form, then y. */
static void gdn_infer_range(void *ctx, int t, long begin, long end)
{
    const gdn_job *q = ctx;
    int c = q->c;
    float *sq = q->scratch + (size_t)t * 2 * c * q->chunk, *norm = sq + (size_t)c * q->chunk;
    for (long u = begin; u < end; u++) {
        size_t p0 = (size_t)u * q->chunk;
        size_t np = p0 + q->chunk < q->count ? q->chunk : q->count - p0;
        for (int j = 0; j < c; j++)
            for (size_t p = 0; p < np; p++) {
                float x = q->inp[(size_t)j * q->count + p0 + p];
                sq[(size_t)j * np + p] = x * x;
            }
        aec_gemm_seq(norm, np, q->gamma, (size_t)c, 1, sq, np, q->beta, c, (int)np, c);
        for (int i = 0; i < c; i++)
            for (size_t p = 0; p < np; p++) {
                size_t at = (size_t)i * q->count + p0 + p;
                float r = sqrtf(norm[(size_t)i * np + p]);
                q->out[at] = q->inverse ? q->inp[at] * r : q->inp[at] / r;
            }
    }
}

#define GDN_CHUNK 256

size_t aec_gdn_infer_scratch(int c, int threads)
{
    return (size_t)threads * 2 * c * GDN_CHUNK;
}

void aec_gdn_infer(float *out, float *scratch, const float *inp, const float *beta,
                   const float *gamma, int c, size_t count, int inverse, int threads)
{
    gdn_job q = {.out = out,
                 .scratch = scratch,
                 .inp = inp,
                 .beta = beta,
                 .gamma = gamma,
                 .c = c,
                 .inverse = inverse,
                 .count = count,
                 .chunk = GDN_CHUNK};
    aec_parallel_range(threads, (long)((count + GDN_CHUNK - 1) / GDN_CHUNK), gdn_infer_range, &q);
}

/* ---- leaky ReLU ------------------------------------------------------------------------ */

void aec_leaky_relu_forward(float *out, const float *inp, size_t count, float slope)
{
    for (size_t i = 0; i < count; i++)
        out[i] = inp[i] > 0.0f ? inp[i] : inp[i] * slope;
}

void aec_leaky_relu_backward(float *dinp, const float *dout, const float *out, size_t count,
                             float slope)
{
    for (size_t i = 0; i < count; i++)
        dinp[i] = out[i] > 0.0f ? dout[i] : dout[i] * slope;
}

/* ---- transposed convolution for any size: a gather per output phase ------------------ *
 * Output pixel (Y, X) of a transposed convolution with stride s receives
 * weight[ci, co, ky, kx] * inp[ci, (Y + p - ky) / s, (X + p - kx) / s] for
 * the taps where both divisions are exact. For the phase (Y mod s, X mod s)
 * those taps are fixed, so each phase is an ordinary stride-1 convolution of
 * the input with a sub-kernel (phase weights, rearranged once by
 * aec_deconv2d_phase_weights). Done in bands of output rows with the
 * sequential form of aec/gemm.h: bounded scratch, and each output element is
 * the same sum in the same order wherever it lies, so a tile of an image gives
 * the same bits as the whole image. */

/* Taps of one phase along one axis: ky = first + s * t for t < count, input
 * offset (phase + p - ky) / s. */
static void phase_taps(int phase, int k, int s, int p, int *first, int *count)
{
    int f = (phase + p) % s;
    *first = f;
    *count = f < k ? (k - f + s - 1) / s : 0;
}

size_t aec_deconv2d_phase_weights_size(int cin, int cout, int k)
{
    return (size_t)cin * cout * k * k;
}

void aec_deconv2d_phase_weights(float *dst, const float *weight, int cin, int cout, int k, int s,
                                int p)
{
    /* phase (py, px): [cout][cin * ny * nx], (ci, ty, tx) in order */
    for (int py = 0; py < s; py++)
        for (int px = 0; px < s; px++) {
            int fy, ny, fx, nx;
            phase_taps(py, k, s, p, &fy, &ny);
            phase_taps(px, k, s, p, &fx, &nx);
            size_t kk = (size_t)cin * ny * nx;
            for (int co = 0; co < cout; co++)
                for (int ci = 0; ci < cin; ci++)
                    for (int ty = 0; ty < ny; ty++)
                        for (int tx = 0; tx < nx; tx++) {
                            int ky = fy + s * ty, kx = fx + s * tx;
                            dst[(size_t)co * kk + ((size_t)ci * ny + ty) * nx + tx] =
                                weight[(((size_t)ci * cout + co) * k + ky) * k + kx];
                        }
            dst += (size_t)cout * kk;
        }
}

/* Rows of one band (phase rows), at least 1. */
static int deconv_band_rows(int cin, int k, int s, int w)
{
    int taps = (k + s - 1) / s;
    size_t per_row = (size_t)cin * taps * taps * w;
    size_t r = per_row ? BAND_FLOATS / per_row : 1;
    return r < 1 ? 1 : (int)r;
}

size_t aec_deconv2d_infer_scratch(int cin, int h, int w, int cout, int k, int s, int threads)
{
    /* a band is rows * w <= max(w, BAND_FLOATS / (cin * taps^2)) pixels (see
     * deconv_band_rows): a bound that only grows with w */
    (void)h;
    int taps = (k + s - 1) / s;
    size_t kk = (size_t)cin * taps * taps, np = BAND_FLOATS / kk;
    if (np < (size_t)w)
        np = (size_t)w;
    return (size_t)threads * np * (kk + cout);
}

typedef struct {
    const float *inp, *phase_w, *bias;
    float *out, *scratch;
    int cin, h, w, cout, k, s, p, rows, bands;
    size_t slice;
} deconv_job;

static void deconv_infer_range(void *ctx, int t, long begin, long end)
{
    const deconv_job *q = ctx;
    int s = q->s, w = q->w, h = q->h, ow = w * s;
    float *col = q->scratch + (size_t)t * q->slice;
    for (long u = begin; u < end; u++) {
        int phase = (int)(u / q->bands), band = (int)(u % q->bands);
        int py = phase / s, px = phase % s;
        int fy, ny, fx, nx;
        phase_taps(py, q->k, s, q->p, &fy, &ny);
        phase_taps(px, q->k, s, q->p, &fx, &nx);
        int i0 = band * q->rows, i1 = i0 + q->rows < h ? i0 + q->rows : h;
        int np = (i1 - i0) * w;
        size_t kk = (size_t)q->cin * ny * nx;
        float *res = col + kk * np;
        /* col[(ci,ty,tx), (i,j)] = inp[ci, i + (py+p-ky)/s, j + (px+p-kx)/s] */
        for (int ci = 0; ci < q->cin; ci++)
            for (int ty = 0; ty < ny; ty++)
                for (int tx = 0; tx < nx; tx++) {
                    int dy = (py + q->p - (fy + s * ty)) / s, dx = (px + q->p - (fx + s * tx)) / s;
                    float *row = col + (((size_t)ci * ny + ty) * nx + tx) * np;
                    for (int i = i0; i < i1; i++) {
                        int iy = i + dy;
                        float *dst = row + (size_t)(i - i0) * w;
                        if (iy < 0 || iy >= h) {
                            memset(dst, 0, sizeof(float) * (size_t)w);
                            continue;
                        }
                        /* dst[j] = src[j + dx] where 0 <= j + dx < w, else 0 */
                        const float *src = q->inp + ((size_t)ci * h + iy) * w;
                        int j0 = dx < 0 ? (-dx < w ? -dx : w) : 0, j1 = dx > 0 ? w - dx : w;
                        if (j1 < j0)
                            j1 = j0;
                        memset(dst, 0, sizeof(float) * (size_t)j0);
                        memcpy(dst + j0, src + j0 + dx, sizeof(float) * (size_t)(j1 - j0));
                        memset(dst + j1, 0, sizeof(float) * (size_t)(w - j1));
                    }
                }
        const float *pw = q->phase_w;
        for (int ph = 0; ph < phase; ph++) {
            int a, na, b, nb;
            phase_taps(ph / s, q->k, s, q->p, &a, &na);
            phase_taps(ph % s, q->k, s, q->p, &b, &nb);
            pw += (size_t)q->cout * q->cin * na * nb;
        }
        aec_gemm_seq(res, (size_t)np, pw, kk, 1, col, (size_t)np, q->bias, q->cout, np, (int)kk);
        for (int co = 0; co < q->cout; co++)
            for (int i = i0; i < i1; i++) {
                float *dst = q->out + ((size_t)co * h * s + (size_t)i * s + py) * ow + px;
                const float *src = res + (size_t)co * np + (size_t)(i - i0) * w;
                for (int j = 0; j < w; j++)
                    dst[(size_t)j * s] = src[j];
            }
    }
}

void aec_deconv2d_infer(float *out, float *scratch, const float *inp, const float *phase_w,
                        const float *bias, int cin, int h, int w, int cout, int k, int s, int p,
                        int threads)
{
    deconv_job q = {.inp = inp,
                    .phase_w = phase_w,
                    .bias = bias,
                    .out = out,
                    .scratch = scratch,
                    .cin = cin,
                    .h = h,
                    .w = w,
                    .cout = cout,
                    .k = k,
                    .s = s,
                    .p = p};
    q.rows = deconv_band_rows(cin, k, s, w);
    if (q.rows > h)
        q.rows = h;
    q.bands = (h + q.rows - 1) / q.rows;
    q.slice = aec_deconv2d_infer_scratch(cin, h, w, cout, k, s, 1);
    aec_parallel_range(threads, (long)s * s * q.bands, deconv_infer_range, &q);
}
