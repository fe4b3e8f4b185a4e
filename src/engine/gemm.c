/* gemm.c - the fixed-order matrix product (see include/aec/gemm.h for the
 * exact sequence of operations every output element is).
 *
 * Speed comes from blocking, never from changing that sequence:
 *  - a register block of 2 rows of a x 4 rows of b (8 accumulators of 8
 *    lanes each), so each load of a chunk of a or b feeds 4 or 2 products;
 *  - a cache tile of TILE_I rows of a, walked against every row of b, so a
 *    batch of up to TILE_I samples streams the weights once;
 *  - one function compiled twice (target_clones): with AVX2 the 8 lanes
 *    are one register, without it two SSE registers. The same operations
 *    in the same order either way: the clone changes speed, not bits.
 * Edges (m or n not a multiple of the block) run the same chunk loop one
 * element at a time, which is the same arithmetic.
 */
#include "aec/gemm.h"

#include <string.h>

#include "parallel.h"

/* The helpers below pass 32-byte vectors by value; they are always inlined,
 * so no call ever crosses an ABI boundary with them. */
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

typedef float v8 __attribute__((vector_size(32)));

#define TILE_I 32

static inline __attribute__((always_inline)) v8 load8(const float *p)
{
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The last, partial chunk of a row: its r < 8 values, then zeros. */
static inline __attribute__((always_inline)) v8 load_tail(const float *p, int r)
{
    float t[8] = {0};
    memcpy(t, p, sizeof(float) * (size_t)r);
    return load8(t);
}

static inline __attribute__((always_inline)) float reduce8(v8 v)
{
    return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

static inline __attribute__((always_inline)) float finish(v8 acc, const float *bias, int j)
{
    float s = reduce8(acc);
    return bias ? s + bias[j] : s;
}

/* One element: the reference sequence. */
static inline __attribute__((always_inline)) float dot_one(const float *a, const float *b, int k)
{
    v8 acc = {0};
    int k8 = k & ~7;
    for (int p = 0; p < k8; p += 8)
        acc = acc + load8(a + p) * load8(b + p);
    if (k8 < k)
        acc = acc + load_tail(a + k8, k - k8) * load_tail(b + k8, k - k8);
    return reduce8(acc);
}

/* 2 rows of a x 4 rows of b. */
static inline __attribute__((always_inline)) void block_2x4(float *c, size_t ldc_i, size_t ldc_j,
                                                            const float *a, size_t lda,
                                                            const float *b, size_t ldb,
                                                            const float *bias, int j, int k)
{
    const float *a0 = a, *a1 = a + lda;
    const float *b0 = b, *b1 = b + ldb, *b2 = b + 2 * ldb, *b3 = b + 3 * ldb;
    v8 c00 = {0}, c01 = {0}, c02 = {0}, c03 = {0}, c10 = {0}, c11 = {0}, c12 = {0}, c13 = {0};
    int k8 = k & ~7;
    for (int p = 0; p < k8; p += 8) {
        v8 x0 = load8(a0 + p), x1 = load8(a1 + p);
        v8 w = load8(b0 + p);
        c00 = c00 + x0 * w, c10 = c10 + x1 * w;
        w = load8(b1 + p);
        c01 = c01 + x0 * w, c11 = c11 + x1 * w;
        w = load8(b2 + p);
        c02 = c02 + x0 * w, c12 = c12 + x1 * w;
        w = load8(b3 + p);
        c03 = c03 + x0 * w, c13 = c13 + x1 * w;
    }
    if (k8 < k) {
        int r = k - k8;
        v8 x0 = load_tail(a0 + k8, r), x1 = load_tail(a1 + k8, r);
        v8 w = load_tail(b0 + k8, r);
        c00 = c00 + x0 * w, c10 = c10 + x1 * w;
        w = load_tail(b1 + k8, r);
        c01 = c01 + x0 * w, c11 = c11 + x1 * w;
        w = load_tail(b2 + k8, r);
        c02 = c02 + x0 * w, c12 = c12 + x1 * w;
        w = load_tail(b3 + k8, r);
        c03 = c03 + x0 * w, c13 = c13 + x1 * w;
    }
    float *r0 = c + j * ldc_j, *r1 = r0 + ldc_i;
    r0[0] = finish(c00, bias, j), r0[ldc_j] = finish(c01, bias, j + 1);
    r0[2 * ldc_j] = finish(c02, bias, j + 2), r0[3 * ldc_j] = finish(c03, bias, j + 3);
    r1[0] = finish(c10, bias, j), r1[ldc_j] = finish(c11, bias, j + 1);
    r1[2 * ldc_j] = finish(c12, bias, j + 2), r1[3 * ldc_j] = finish(c13, bias, j + 3);
}

/* 1 row of a x 4 rows of b (an odd last row). */
static inline __attribute__((always_inline)) void block_1x4(float *c, size_t ldc_j, const float *a,
                                                            const float *b, size_t ldb,
                                                            const float *bias, int j, int k)
{
    const float *b0 = b, *b1 = b + ldb, *b2 = b + 2 * ldb, *b3 = b + 3 * ldb;
    v8 c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0};
    int k8 = k & ~7;
    for (int p = 0; p < k8; p += 8) {
        v8 x = load8(a + p);
        c0 = c0 + x * load8(b0 + p), c1 = c1 + x * load8(b1 + p);
        c2 = c2 + x * load8(b2 + p), c3 = c3 + x * load8(b3 + p);
    }
    if (k8 < k) {
        int r = k - k8;
        v8 x = load_tail(a + k8, r);
        c0 = c0 + x * load_tail(b0 + k8, r), c1 = c1 + x * load_tail(b1 + k8, r);
        c2 = c2 + x * load_tail(b2 + k8, r), c3 = c3 + x * load_tail(b3 + k8, r);
    }
    float *r0 = c + j * ldc_j;
    r0[0] = finish(c0, bias, j), r0[ldc_j] = finish(c1, bias, j + 1);
    r0[2 * ldc_j] = finish(c2, bias, j + 2), r0[3 * ldc_j] = finish(c3, bias, j + 3);
}

/* Rows [i0, i1) of a against rows [0, n) of b. */
__attribute__((target_clones("avx2", "default"))) static void
gemm_tile(float *c, size_t ldc_i, size_t ldc_j, const float *a, size_t lda, const float *b,
          size_t ldb, const float *bias, int i0, int i1, int n, int k)
{
    int n4 = n & ~3;
    for (int j = 0; j < n4; j += 4) {
        const float *bj = b + (size_t)j * ldb;
        int i = i0;
        for (; i + 2 <= i1; i += 2)
            block_2x4(c + (size_t)i * ldc_i, ldc_i, ldc_j, a + (size_t)i * lda, lda, bj, ldb, bias,
                      j, k);
        if (i < i1)
            block_1x4(c + (size_t)i * ldc_i, ldc_j, a + (size_t)i * lda, bj, ldb, bias, j, k);
    }
    for (int j = n4; j < n; j++)
        for (int i = i0; i < i1; i++) {
            float s = dot_one(a + (size_t)i * lda, b + (size_t)j * ldb, k);
            c[(size_t)i * ldc_i + (size_t)j * ldc_j] = bias ? s + bias[j] : s;
        }
}

void aec_gemm_fixed(float *c, size_t ldc_i, size_t ldc_j, const float *a, size_t lda,
                    const float *b, size_t ldb, const float *bias, int m, int n, int k)
{
    for (int i0 = 0; i0 < m; i0 += TILE_I) {
        int i1 = m - i0 < TILE_I ? m : i0 + TILE_I;
        gemm_tile(c, ldc_i, ldc_j, a, lda, b, ldb, bias, i0, i1, n, k);
    }
}

/* ---- the sequential form: c[i, j] = bias[i] + (((0 + a[i,0] b[0,j]) + a[i,1] b[1,j]) + ...) --
 * Lanes run over j (8 neighbouring columns at once), so each element is a
 * plain running sum over p in order: no reduction at the end. Register
 * block: 4 rows x 16 columns (8 accumulators). */

#define SEQ_A(i, p) a[(size_t)(i)*a_si + (size_t)(p)*a_sp]

static inline __attribute__((always_inline)) void
seq_block_4x16(float *c, size_t ldc, const float *a, size_t a_si, size_t a_sp, const float *b,
               size_t ldb, const float *bias, int i, int j, int k)
{
    v8 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
    const float *bj = b + j;
    for (int p = 0; p < k; p++) {
        v8 x0 = load8(bj + (size_t)p * ldb), x1 = load8(bj + (size_t)p * ldb + 8);
        float w0 = SEQ_A(i, p), w1 = SEQ_A(i + 1, p), w2 = SEQ_A(i + 2, p), w3 = SEQ_A(i + 3, p);
        c00 = c00 + x0 * w0, c01 = c01 + x1 * w0;
        c10 = c10 + x0 * w1, c11 = c11 + x1 * w1;
        c20 = c20 + x0 * w2, c21 = c21 + x1 * w2;
        c30 = c30 + x0 * w3, c31 = c31 + x1 * w3;
    }
    v8 acc[8] = {c00, c01, c10, c11, c20, c21, c30, c31};
    for (int r = 0; r < 4; r++) {
        float bv = bias ? bias[i + r] : 0.0f;
        v8 lo = acc[2 * r], hi = acc[2 * r + 1];
        if (bias)
            lo = lo + bv, hi = hi + bv;
        memcpy(c + (size_t)(i + r) * ldc + j, &lo, sizeof lo);
        memcpy(c + (size_t)(i + r) * ldc + j + 8, &hi, sizeof hi);
    }
}

static inline __attribute__((always_inline)) void
seq_block_1x16(float *c, size_t ldc, const float *a, size_t a_si, size_t a_sp, const float *b,
               size_t ldb, const float *bias, int i, int j, int k)
{
    v8 c0 = {0}, c1 = {0};
    const float *bj = b + j;
    for (int p = 0; p < k; p++) {
        float w = SEQ_A(i, p);
        c0 = c0 + load8(bj + (size_t)p * ldb) * w;
        c1 = c1 + load8(bj + (size_t)p * ldb + 8) * w;
    }
    if (bias)
        c0 = c0 + bias[i], c1 = c1 + bias[i];
    memcpy(c + (size_t)i * ldc + j, &c0, sizeof c0);
    memcpy(c + (size_t)i * ldc + j + 8, &c1, sizeof c1);
}

/* One element: the reference sequence. */
static inline __attribute__((always_inline)) float
seq_one(const float *a, size_t a_si, size_t a_sp, const float *b, size_t ldb, int i, int j, int k)
{
    float s = 0.0f;
    for (int p = 0; p < k; p++)
        s = s + SEQ_A(i, p) * b[(size_t)p * ldb + j];
    return s;
}

/* Rows [i0, i1) against columns [j0, j1). */
__attribute__((target_clones("avx2", "default"))) static void
seq_tile(float *c, size_t ldc, const float *a, size_t a_si, size_t a_sp, const float *b, size_t ldb,
         const float *bias, int i0, int i1, int j0, int j1, int k)
{
    int j16 = j0 + ((j1 - j0) & ~15);
    for (int j = j0; j < j16; j += 16) {
        int i = i0;
        for (; i + 4 <= i1; i += 4)
            seq_block_4x16(c, ldc, a, a_si, a_sp, b, ldb, bias, i, j, k);
        for (; i < i1; i++)
            seq_block_1x16(c, ldc, a, a_si, a_sp, b, ldb, bias, i, j, k);
    }
    for (int i = i0; i < i1; i++)
        for (int j = j16; j < j1; j++) {
            float s = seq_one(a, a_si, a_sp, b, ldb, i, j, k);
            c[(size_t)i * ldc + j] = bias ? s + bias[i] : s;
        }
}

#define SEQ_TILE_J 256 /* columns per tile: b's tile of k rows stays in cache */

void aec_gemm_seq(float *c, size_t ldc, const float *a, size_t a_si, size_t a_sp, const float *b,
                  size_t ldb, const float *bias, int m, int n, int k)
{
    for (int j0 = 0; j0 < n; j0 += SEQ_TILE_J) {
        int j1 = n - j0 < SEQ_TILE_J ? n : j0 + SEQ_TILE_J;
        seq_tile(c, ldc, a, a_si, a_sp, b, ldb, bias, 0, m, j0, j1, k);
    }
}

/* ---- threads: each takes a contiguous range of columns (j) or rows (i) ---- */

typedef struct {
    float *c;
    size_t ldc_i, ldc_j, lda, ldb;
    const float *a, *b, *bias;
    int m, n, k;
} gemm_job;

static void columns_range(void *ctx, int thread, long begin, long end)
{
    const gemm_job *g = ctx;
    (void)thread;
    /* ranges of whole blocks of 4 columns, so every column keeps its block */
    int j0 = (int)begin * 4, j1 = (int)end * 4 < g->n ? (int)end * 4 : g->n;
    aec_gemm_fixed(g->c + (size_t)j0 * g->ldc_j, g->ldc_i, g->ldc_j, g->a, g->lda,
                   g->b + (size_t)j0 * g->ldb, g->ldb, g->bias ? g->bias + j0 : NULL, g->m, j1 - j0,
                   g->k);
}

static void rows_range(void *ctx, int thread, long begin, long end)
{
    const gemm_job *g = ctx;
    (void)thread;
    aec_gemm_fixed(g->c + (size_t)begin * g->ldc_i, g->ldc_i, g->ldc_j,
                   g->a + (size_t)begin * g->lda, g->lda, g->b, g->ldb, g->bias, (int)(end - begin),
                   g->n, g->k);
}

void aec_gemm_fixed_parallel(float *c, size_t ldc_i, size_t ldc_j, const float *a, size_t lda,
                             const float *b, size_t ldb, const float *bias, int m, int n, int k,
                             int threads)
{
    gemm_job g = {c, ldc_i, ldc_j, lda, ldb, a, b, bias, m, n, k};
    long blocks = (n + 3) / 4;
    if (threads <= 1 || (long)m * n * k < 32768)
        aec_gemm_fixed(c, ldc_i, ldc_j, a, lda, b, ldb, bias, m, n, k);
    else if (blocks >= 4L * threads || m < 2L * threads)
        aec_parallel_range(threads, blocks, columns_range, &g);
    else
        aec_parallel_range(threads, m, rows_range, &g);
}
