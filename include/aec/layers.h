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

/* ---- whole-batch layers for training, channel-major [c, n, h, w] ------------------
 * Channel c of all n samples is one [n, h, w] block, so a convolution over the
 * batch is one im2col and one sgemm. Same geometry and weight layouts as
 * conv2d / conv_transpose2d above (PyTorch's). col is scratch of
 * aec_bconv_col_size(n, cin, k, oh, ow) floats for conv2d, (n, cout, k, h, w)
 * for the transpose (h, w its input). */
size_t aec_bconv_col_size(int n, int c, int k, int oh, int ow);
void aec_bconv2d_forward(float *out, float *col, const float *inp, const float *weight,
                         const float *bias, int n, int cin, int h, int w, int cout, int k,
                         int stride, int pad);
void aec_bconv2d_backward(float *dinp, float *dweight, float *dbias, float *col, const float *dout,
                          const float *inp, const float *weight, int n, int cin, int h, int w,
                          int cout, int k, int stride, int pad);
void aec_bdeconv2d_forward(float *out, float *col, const float *inp, const float *weight,
                           const float *bias, int n, int cin, int h, int w, int cout, int k,
                           int stride, int pad, int out_pad);
void aec_bdeconv2d_backward(float *dinp, float *dweight, float *dbias, float *col,
                            const float *dout, const float *inp, const float *weight, int n,
                            int cin, int h, int w, int cout, int k, int stride, int pad,
                            int out_pad);

/* ---- GDN (Balle et al. 2016) over [c, count] (count = n*h*w pixels) ------------------
 * norm[i,p] = beta[i] + sum_j gamma[i,j] x[j,p]^2;  y = x / sqrt(norm), or with
 * inverse != 0 (IGDN, the decoder's) y = x * sqrt(norm). beta > 0 and gamma >= 0
 * are the effective values (the reparametrization that keeps them so is the
 * caller's). forward saves norm ([c, count]) for backward; backward takes
 * 2 * c * count floats of scratch. */
void aec_gdn_forward(float *out, float *norm, const float *inp, const float *beta,
                     const float *gamma, int c, size_t count, int inverse);
void aec_gdn_backward(float *dinp, float *dbeta, float *dgamma, float *scratch, const float *dout,
                      const float *inp, const float *norm, const float *gamma, int c, size_t count,
                      int inverse);
/* Fixed order of operations (the sequential form of aec/gemm.h, then sqrtf), the
 * same bits for any count, split or thread count. */
size_t aec_gdn_infer_scratch(int c, int threads);
void aec_gdn_infer(float *out, float *scratch, const float *inp, const float *beta,
                   const float *gamma, int c, size_t count, int inverse, int threads);

/* ---- transposed convolution for images of any size (serving) ----------------------
 * One sample [cin, h, w] -> [cout, h*s, w*s] (padding p, output padding s - 1, the
 * photo codec's geometry), fixed order of operations, banded: scratch of
 * aec_deconv2d_infer_scratch() floats whatever the image size along h. The
 * weights are first rearranged per output phase (aec_deconv2d_phase_weights:
 * PyTorch's [cin, cout, k, k] in, the same count out). Each output is the same
 * bits wherever it lies in the image, so tiles reproduce the whole image. */
size_t aec_deconv2d_phase_weights_size(int cin, int cout, int k);
void aec_deconv2d_phase_weights(float *dst, const float *weight, int cin, int cout, int k, int s,
                                int p);
size_t aec_deconv2d_infer_scratch(int cin, int h, int w, int cout, int k, int s, int threads);
void aec_deconv2d_infer(float *out, float *scratch, const float *inp, const float *phase_w,
                        const float *bias, int cin, int h, int w, int cout, int k, int s, int p,
                        int threads);

/* ---- leaky ReLU: y = x > 0 ? x : slope * x; backward uses the forward output --- */
void aec_leaky_relu_forward(float *out, const float *inp, size_t count, float slope);
void aec_leaky_relu_backward(float *dinp, const float *dout, const float *out, size_t count,
                             float slope);

/* ---- loss ----------------------------------------------------------------- */
/* mean over count elements of (out - target)^2; fills dout = d loss / d out */
float aec_mse_forward_backward(float *dout, const float *out, const float *target, size_t count);
/* softmax cross-entropy of n rows of `classes` logits against labels[n]:
 * the mean over rows of -log softmax(row)[label]; fills dlogits (when not
 * NULL) = (softmax - one_hot(label)) / n. Also the per-row term into nll
 * when not NULL. */
double aec_softmax_xent_forward_backward(float *dlogits, double *nll, const float *logits,
                                         const int *labels, int n, int classes);
/* mean over count elements of (a - b)^2, accumulated in double */
double aec_mse_of(const float *a, const float *b, size_t count);

#endif
