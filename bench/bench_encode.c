/* bench_encode.c - the engine's in-process encode rate: the roofline the
 * served rate is compared against (bench/serve_bench.sh).
 *
 *   aec-bench-encode MODEL [SECONDS] [THREADS]
 *
 * Encodes batches of 1, 8, 32, 64 and 256 images already at the model's
 * size (pixels from a fixed generator) for SECONDS each and prints images/s
 * and the time per batch. For a model whose encoder has linear layers, it
 * also times bare cblas_sgemv over those layers' weights alone: the memory
 * bound a batch of one cannot beat. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "aec/model.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: aec-bench-encode MODEL [SECONDS] [THREADS]\n");
        return 2;
    }
    double secs = argc > 2 ? atof(argv[2]) : 3.0;
    if (argc > 3)
        openblas_set_num_threads(atoi(argv[3]));
    aec_error err = {{0}};
    aec_model *m = NULL;
    if (aec_model_load(&m, argv[1], &err)) {
        fprintf(stderr, "aec-bench-encode: %s\n", err.msg);
        return 1;
    }
    static const int batches[] = {1, 8, 32, 64, 256};
    size_t in = aec_model_input_count(m), lat = aec_model_latent_count(m);
    float *x = malloc(sizeof(float) * in * 256), *z = malloc(sizeof(float) * lat * 256);
    unsigned s = 1;
    for (size_t i = 0; i < in * 256; i++)
        x[i] = (float)((s = s * 1103515245u + 12345u) >> 8 & 0xffff) / 65535.0f;
    printf("model %s (%s), input %dx%dx%d, latent %zu, BLAS threads %d\n", argv[1], m->id,
           m->input.c, m->input.h, m->input.w, lat, openblas_get_num_threads());
    printf("| batch | images/s | ms per batch |\n|---|---|---|\n");
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
        aec_workspace *ws = NULL;
        if (aec_workspace_create(&ws, m, batches[b], 0, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        aec_model_encode(m, ws, x, batches[b], z); /* warm up */
        long images = 0, calls = 0;
        double t0 = now(), t;
        do {
            aec_model_encode(m, ws, x, batches[b], z);
            images += batches[b];
            calls++;
        } while ((t = now() - t0) < secs);
        printf("| %d | %.0f | %.3f |\n", batches[b], images / t, 1000 * t / calls);
        aec_workspace_free(ws);
    }
    /* the sgemv bound: every linear layer of the encoder, one vector */
    double flops = 0;
    size_t widest = 1;
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
    free(x), free(z);
    aec_model_free(m);
    return 0;
}
