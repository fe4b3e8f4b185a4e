/* gemm.h - matrix products with a fixed order of operations.
 *
 * Every inference pass of the engine (linear and convolution layers) and
 * everything the entropy decoder derives from a network go through this
 * product instead of BLAS, because BLAS picks its kernels and its blocking
 * by CPU, thread count and matrix shape: the same row could round
 * differently when it shares a batch with others, and differently on
 * another machine.
 *
 * Here each output element is defined as one exact sequence of IEEE-754
 * single-precision operations, whatever the shape of the call, the block the
 * element falls in, the thread that computes it or the CPU. Two forms: the
 * dot form (linear layers, below) and the sequential form (convolutions,
 * aec_gemm_seq). The dot form:
 *
 *     lane[l] = 0                               for l = 0..7
 *     for each chunk of 8 along k (the last one padded with zeros):
 *         lane[l] = lane[l] + a[c*8 + l] * b[c*8 + l]   (a multiply, then an add)
 *     s = ((lane0 + lane4) + (lane2 + lane6)) + ((lane1 + lane5) + (lane3 + lane7))
 *     c = s + bias          (bias absent: c = s)
 *
 * No fused multiply-add (the build sets -ffp-contract=off; see CMakeLists.txt),
 * no reassociation. The compiler may run the 8 lanes as one AVX register or
 * two SSE registers: lanes are independent, so the bits are the same.
 * A stream encoded on one machine therefore decodes on any other to the same
 * numbers, and a request's answer does not depend on what else is batched
 * with it.
 */
#ifndef AEC_GEMM_H
#define AEC_GEMM_H

#include <stddef.h>

/* c[i*ldc_i + j*ldc_j] = dot(a[i*lda .. +k], b[j*ldb .. +k]) (+ bias[j])
 * for i < m, j < n. bias may be NULL. Single-threaded: callers split the
 * rows or columns over threads (any split gives the same bits). */
void aec_gemm_fixed(float *c, size_t ldc_i, size_t ldc_j, const float *a, size_t lda,
                    const float *b, size_t ldb, const float *bias, int m, int n, int k);

/* The same over `threads` threads (split over j when n is large enough,
 * else over i). */
void aec_gemm_fixed_parallel(float *c, size_t ldc_i, size_t ldc_j, const float *a, size_t lda,
                             const float *b, size_t ldb, const float *bias, int m, int n, int k,
                             int threads);

/* The sequential form, for convolutions (lanes over pixels, no reduction):
 *
 *     s = 0; for p = 0..k-1: s = s + a[i, p] * b[p, j];   c = s + bias[i]
 *
 * c[i*ldc + j] for i < m, j < n; a[i, p] is a[i*a_si + p*a_sp] (so a
 * transposed weight needs no copy), b[p, j] is b[p*ldb + j]. bias may be
 * NULL. Single-threaded; any split of rows or columns gives the same bits. */
void aec_gemm_seq(float *c, size_t ldc, const float *a, size_t a_si, size_t a_sp, const float *b,
                  size_t ldb, const float *bias, int m, int n, int k);

#endif
