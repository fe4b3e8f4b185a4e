/* anomaly_eval.c - scores image files with a model, for measuring the
 * anomaly detector (bench/anomaly_auroc.py reads its output).
 *
 *   aec-anomaly-eval MODEL FILE...   (or file names on stdin with "-")
 *
 * Prints one line per image: label-free TSV of path, raw MSE, baseline MSE,
 * calibrated score. Unreadable files are reported on stderr and skipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/anomaly.h"
#include "aec/image.h"
#include "aec/model.h"
#include "aec/safetensors.h"

static void score_file(const aec_model *m, aec_workspace *ws, const aec_anomaly_calib *cal,
                       const char *path, float *x, float *y)
{
    aec_error err = {{0}};
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (aec_read_file(path, 64u << 20, &bytes, &len, &err) ||
        aec_image_load_tensor(bytes, len, 40000000, m->input.c, m->input.h, m->input.w, x, &err)) {
        fprintf(stderr, "skipping %s: %s\n", path, err.msg);
        free(bytes);
        return;
    }
    free(bytes);
    aec_model_reconstruct(m, ws, x, 1, y);
    aec_anomaly_result r;
    aec_anomaly_score(cal, x, y, m->input.c, m->input.h, m->input.w, -1, &r);
    double b2 = aec_anomaly_baseline_mse(x, m->input.c, m->input.h, m->input.w, 2);
    double b4 = aec_anomaly_baseline_mse(x, m->input.c, m->input.h, m->input.w, 4);
    double b8 = aec_anomaly_baseline_mse(x, m->input.c, m->input.h, m->input.w, 8);
    printf("%s\t%.8g\t%.8g\t%.8g\t%.8g\t%.8g\n", path, r.mse, b4, r.score, b2, b8);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: aec-anomaly-eval MODEL FILE... (or - to read names on stdin)\n");
        return 2;
    }
    aec_error err = {{0}};
    aec_model *m = NULL;
    aec_workspace *ws = NULL;
    aec_anomaly_calib cal;
    if (aec_model_load(&m, argv[1], &err) || aec_workspace_create(&ws, m, 1, 0, &err) ||
        aec_anomaly_calib_from_model(m, &cal, &err)) {
        fprintf(stderr, "aec-anomaly-eval: %s\n", err.msg);
        return 1;
    }
    size_t n = aec_model_input_count(m);
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    printf("path\tmse\tbaseline_mse\tscore\tbaseline2\tbaseline8\n");
    if (strcmp(argv[2], "-") == 0) {
        char line[4096];
        while (fgets(line, sizeof line, stdin)) {
            line[strcspn(line, "\n")] = 0;
            if (*line)
                score_file(m, ws, &cal, line, x, y);
        }
    } else {
        for (int i = 2; i < argc; i++)
            score_file(m, ws, &cal, argv[i], x, y);
    }
    free(x), free(y);
    aec_workspace_free(ws);
    aec_model_free(m);
    return 0;
}
