/* bench_encode.c - the engine's in-process encode rate: the roofline the
 * served rate is compared against (bench/serve_bench.sh), and the cost of
 * load independence.
 *
 *   aec-bench-encode MODEL [SECONDS] [THREADS]
 *
 * Encodes batches of 1, 8, 16, 32, 64 and 256 images already at the model's
 * size (pixels from a fixed generator) for SECONDS each, two ways in the
 * same run: the serving path (aec_model_infer: the fixed-order product of
 * aec/gemm.h, the same bits in any batch, on THREADS threads) and the same
 * layers through OpenBLAS (sgemv for one image, sgemm for a batch, on
 * THREADS BLAS threads), whose bits depend on the batch and the CPU: what
 * serving ran before. For a model whose encoder has linear layers, it also
 * times bare cblas_sgemv over those layers' weights alone: the memory bound
 * a batch of one cannot beat. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "aec/layers.h"
#include "aec/model.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* The encoder through the training-side layer functions (OpenBLAS), in
 * inference mode: batchnorm with running statistics. act holds two buffers
 * of the widest activation, col the largest im2col scratch. */
static void encode_blas(const aec_model *m, const float *x, int n, float *act[2], float *col)
{
    const float *cur = x;
    for (int i = 0; i <= m->latent_index; i++) {
        const aec_layer *L = &m->layers[i];
        const aec_param *P = L->params;
        const aec_shape *s = &L->in_shape;
        float *y = act[i % 2];
        size_t count = aec_shape_count(&L->out_shape) * (size_t)n;
        switch (L->type) {
        case AEC_LAYER_FLATTEN:
        case AEC_LAYER_UNFLATTEN: continue;
        case AEC_LAYER_LINEAR:
            aec_linear_forward(y, cur, P[0].data, P[1].data, n, L->in_f, L->out_f);
            break;
        case AEC_LAYER_RELU: aec_relu_forward(y, cur, count); break;
        case AEC_LAYER_SIGMOID: aec_sigmoid_forward(y, cur, count); break;
        case AEC_LAYER_BATCHNORM:
            aec_batchnorm_forward_eval(y, cur, P[0].data, P[1].data, P[2].data, P[3].data, n,
                                       L->in_f, s->h * s->w, L->eps);
            break;
        case AEC_LAYER_CONV2D:
            aec_conv2d_forward(y, col, cur, P[0].data, P[1].data, n, s->c, s->h, s->w, L->out_f,
                               L->kernel, L->stride, L->padding);
            break;
        case AEC_LAYER_CONV_TRANSPOSE2D:
            aec_conv_transpose2d_forward(y, col, cur, P[0].data, P[1].data, n, s->c, s->h, s->w,
                                         L->out_f, L->kernel, L->stride, L->padding,
                                         L->output_padding);
            break;
        }
        cur = y;
    }
}

/* Seconds per call of fn, run for at least secs (after one warm-up call). */
#define TIME_CALLS(secs, per_call, body)                                                           \
    do {                                                                                           \
        body;                                                                                      \
        long calls_ = 0;                                                                           \
        double t0_ = now(), t_;                                                                    \
        do {                                                                                       \
            body;                                                                                  \
            calls_++;                                                                              \
        } while ((t_ = now() - t0_) < (secs));                                                     \
        per_call = t_ / calls_;                                                                    \
    } while (0)

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: aec-bench-encode MODEL [SECONDS] [THREADS]\n");
        return 2;
    }
    double secs = argc > 2 ? atof(argv[2]) : 3.0;
    int threads = argc > 3 ? atoi(argv[3]) : 2;
    if (threads < 1)
        threads = 1;
    openblas_set_num_threads(threads);
    aec_error err = {{0}};
    aec_model *m = NULL;
    if (aec_model_load(&m, argv[1], &err)) {
        fprintf(stderr, "aec-bench-encode: %s\n", err.msg);
        return 1;
    }
    static const int batches[] = {1, 8, 16, 32, 64, 256};
    size_t in = aec_model_input_count(m), lat = aec_model_latent_count(m);
    size_t widest = in, col = 0;
    for (int i = 0; i <= m->latent_index; i++) {
        const aec_layer *L = &m->layers[i];
        size_t c = aec_shape_count(&L->out_shape);
        widest = c > widest ? c : widest;
        if (L->type == AEC_LAYER_CONV2D)
            c = aec_conv2d_col_size(L->in_f, L->kernel, L->out_shape.h, L->out_shape.w);
        else if (L->type == AEC_LAYER_CONV_TRANSPOSE2D)
            c = aec_conv2d_col_size(L->out_f, L->kernel, L->in_shape.h, L->in_shape.w);
        else
            c = 0;
        col = c > col ? c : col;
    }
    float *x = malloc(sizeof(float) * in * 256), *z = malloc(sizeof(float) * lat * 256);
    float *act[2] = {malloc(sizeof(float) * widest * 256), malloc(sizeof(float) * widest * 256)};
    float *colbuf = malloc(sizeof(float) * (col ? col : 1));
    if (!x || !z || !act[0] || !act[1] || !colbuf) {
        fprintf(stderr, "aec-bench-encode: out of memory\n");
        return 1;
    }
    unsigned s = 1;
    for (size_t i = 0; i < in * 256; i++)
        x[i] = (float)((s = s * 1103515245u + 12345u) >> 8 & 0xffff) / 65535.0f;
    printf("model %s (%s), input %dx%dx%d, latent %zu, %d threads\n", argv[1], m->id, m->input.c,
           m->input.h, m->input.w, lat, threads);
    printf("| batch | serving path: images/s | ms per batch | OpenBLAS path: images/s | ms per "
           "batch | serving / OpenBLAS time |\n|---|---|---|---|---|---|\n");
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
        int n = batches[b];
        aec_workspace *ws = NULL;
        if (aec_workspace_create(&ws, m, n, 0, &err) ||
            aec_workspace_set_threads(ws, m, threads, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double fixed, blas;
        TIME_CALLS(secs, fixed, aec_model_encode(m, ws, x, n, z));
        TIME_CALLS(secs, blas, encode_blas(m, x, n, act, colbuf));
        printf("| %d | %.0f | %.3f | %.0f | %.3f | %.2f |\n", n, n / fixed, 1000 * fixed, n / blas,
               1000 * blas, fixed / blas);
        aec_workspace_free(ws);
    }
    /* the sgemv bound: every linear layer of the encoder, one vector */
    double flops = 0;
    widest = 1;
    for (int i = 0; i <= m->latent_index; i++)
        if (m->layers[i].type == AEC_LAYER_LINEAR) {
            flops += 2.0 * m->layers[i].in_f * m->layers[i].out_f;
            widest = (size_t)m->layers[i].in_f > widest ? (size_t)m->layers[i].in_f : widest;
            widest = (size_t)m->layers[i].out_f > widest ? (size_t)m->layers[i].out_f : widest;
        }
    if (flops > 0) {
        float *u = calloc(widest, sizeof(float)), *v = calloc(widest, sizeof(float));
        long calls = 0;
        double t0 = now(), t;
        do {
            for (int i = 0; i <= m->latent_index; i++) {
                const aec_layer *L = &m->layers[i];
                if (L->type == AEC_LAYER_LINEAR)
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, L->out_f, L->in_f, 1.0f,
                                L->params[0].data, L->in_f, u, 1, 0.0f, v, 1);
            }
            calls++;
        } while ((t = now() - t0) < secs);
        printf("\nsgemv bound: the encoder's linear layers alone, one vector: %.3f ms "
               "(%.1f GFLOP/s, %.1f GB/s of weights)\n",
               1000 * t / calls, flops * calls / t / 1e9, 2 * flops * calls / t / 1e9);
        free(u), free(v);
    }
    free(x), free(z), free(act[0]), free(act[1]), free(colbuf);
    aec_model_free(m);
    return 0;
}
