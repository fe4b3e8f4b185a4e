/* layers.h - the neural-network layers as plain forward/backward functions.
 *
 * In the style of llm.c: every layer is a pair of functions with the shapes in
 * the signature and no hidden state. Tensors are float arrays, batch-major:
 * a batch of N samples of shape C x H x W is N*C*H*W floats, planar (all of
 * channel 0, then channel 1, ...). Flat features are the same with H = W = 1.
 *
 * Backward functions ACCUMULATE (+=) into parameter gradients (dweight, dbias)
 * and OVERWRITE the input gradient (dinp). dinp may be NULL when not needed
 * (the first layer).
 *
 * Training matrix work goes through cblas_sgemm on whole batches (a batch of
 * one uses sgemv). Inference has its own functions (*_infer, below) with a
 * fixed order of operations.
 */
#ifndef AEC_LAYERS_H
#define AEC_LAYERS_H

#include <stddef.h>

/* ---- linear: out[n,o] = sum_i inp[n,i] * weight[o,i] + bias[o] ------------ */
void aec_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int n,
                        int in_f, int out_f);
void aec_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int n, int in_f, int out_f);

/* ---- elementwise activations (count = number of floats) ------------------ */
void aec_relu_forward(float *out, const float *inp, size_t count);
/* uses the forward output: dinp = dout where out > 0 */
void aec_relu_backward(float *dinp, const float *dout, const float *out, size_t count);
void aec_sigmoid_forward(float *out, const float *inp, size_t count);
/* uses the forward output: dinp = dout * out * (1 - out) */
void aec_sigmoid_backward(float *dinp, const float *dout, const float *out, size_t count);

/* ---- batchnorm over channels: inp is [n, c, spatial] ---------------------
 * Flat input: c = features, spatial = 1. Conv input: c = channels, spatial = H*W.
 * Training: normalize with the batch mean and biased variance, save mean and
 * rstd = 1/sqrt(var+eps) per channel for backward, and update the running
 * averages as PyTorch does: running = (1-m)*running + m*batch, with the
 * unbiased (n/(n-1)) variance. momentum m = 0.01 is Keras' momentum 0.99. */
void aec_batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                                 float *running_var, const float *inp, const float *gamma,
                                 const float *beta, int n, int c, int spatial, float eps,
                                 float momentum);
void aec_batchnorm_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, int n, int c,
                                int spatial, float eps);
void aec_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                            const float *inp, const float *mean, const float *rstd,
                            const float *gamma, int n, int c, int spatial);

/* ---- conv2d: inp [n, cin, h, w] -> out [n, cout, oh, ow] -------------------
 * weight [cout, cin, k, k], bias [cout]; oh = (h + 2p - k)/s + 1.
 * col is scratch of aec_conv2d_col_size() floats. */
size_t aec_conv2d_col_size(int cin, int k, int oh, int ow);
void aec_conv2d_forward(float *out, float *col, const float *inp, const float *weight,
                        const float *bias, int n, int cin, int h, int w, int cout, int k,
                        int stride, int pad);
void aec_conv2d_backward(float *dinp, float *dweight, float *dbias, float *col, const float *dout,
                         const float *inp, const float *weight, int n, int cin, int h, int w,
                         int cout, int k, int stride, int pad);

/* ---- conv_transpose2d: inp [n, cin, h, w] -> out [n, cout, oh, ow] ---------
 * weight [cin, cout, k, k], bias [cout]; oh = (h-1)*s - 2p + k + output_padding.
 * col is scratch of aec_conv2d_col_size(cout, k, h, w) floats. */
void aec_conv_transpose2d_forward(float *out, float *col, const float *inp, const float *weight,
                                  const float *bias, int n, int cin, int h, int w, int cout, int k,
                                  int stride, int pad, int out_pad);
void aec_conv_transpose2d_backward(float *dinp, float *dweight, float *dbias, float *col,
                                   const float *dout, const float *inp, const float *weight, int n,
                                   int cin, int h, int w, int cout, int k, int stride, int pad,
                                   int out_pad);

/* ---- inference with a fixed order of operations ------------------------------
 * What serving runs. Each output is the same bits whatever the batch size n,
 * the thread count or the CPU (every product is one of the fixed-order
 * forms of aec/gemm.h). threads > 1 splits samples (and bands of rows) over threads.
 * scratch is *_infer_scratch(..., threads) floats; nothing is allocated. */
void aec_linear_infer(float *out, const float *inp, const float *weight, const float *bias, int n,
                      int in_f, int out_f, int threads);
size_t aec_conv2d_infer_scratch(int cin, int h, int w, int k, int stride, int pad, int threads);
void aec_conv2d_infer(float *out, float *scratch, const float *inp, const float *weight,
                      const float *bias, int n, int cin, int h, int w, int cout, int k, int stride,
                      int pad, int threads);
size_t aec_conv_transpose2d_infer_scratch(int cin, int h, int w, int cout, int k, int threads);
void aec_conv_transpose2d_infer(float *out, float *scratch, const float *inp, const float *weight,
                                const float *bias, int n, int cin, int h, int w, int cout, int k,
                                int stride, int pad, int out_pad, int threads);

/* ---- rate: bits of a latent under a factorized logistic prior -----------------
 * inp [n, c, spatial]; channel j has location mu[j] and scale exp(log_s[j]).
 * A value v costs -log2 P(v) bits with P(v) = F(v + 1/2) - F(v - 1/2), F the
 * logistic CDF: the probability of v's integer bin, which is what an
 * entropy coder pays once v is rounded (training feeds v = y + uniform noise,
 * as in Balle et al. 2018). P is bounded below by 2^-30 (30 bits).
 * forward returns the total bits of the batch.
 * backward ADDS scale * d bits / d inp into dinp (where the distortion's
 * gradient already is) and scale * d bits / d (mu, log_s) into dmu, dlog_s. */
double aec_rate_forward(const float *inp, const float *mu, const float *log_s, int n, int c,
                        int spatial);
void aec_rate_backward(float *dinp, float *dmu, float *dlog_s, const float *inp, const float *mu,
                       const float *log_s, int n, int c, int spatial, float scale);

/* ---- loss ----------------------------------------------------------------- */
/* mean over count elements of (out - target)^2; fills dout = d loss / d out */
float aec_mse_forward_backward(float *dout, const float *out, const float *target, size_t count);
/* mean over count elements of (a - b)^2, accumulated in double */
double aec_mse_of(const float *a, const float *b, size_t count);

#endif
