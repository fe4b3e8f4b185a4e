/* pipeline_eval.c - round-trip PSNR of 48x48 models on thumbnails made by
 * the pipelines users use (issue 14's table), in process:
 *
 *   aec-pipeline-eval DIR NAMES MODEL...
 *
 * For each photo DIR/NAME (NAMES: one base name per line; full-size
 * originals), five thumbnails of the model's input size, each the largest
 * centred square resized:
 *   bilinear-128jpeg  the photo to 128 px on its long side (Lanczos), saved as
 *                     JPEG q90 (how ../shared/data/cats was made), then bilinear
 *   bilinear-full     bilinear from the original
 *   box-full          box from the original
 *   lanczos-128jpeg   as the first, then Lanczos
 *   lanczos-full      Lanczos from the original
 * (Pillow's filters, antialiased: src/image/resample.c.) Each thumbnail is
 * the 48x48 PNG a user posts: encoded and decoded by each model (the f32
 * latent; for a codec model, its coded stream, whose bytes are counted),
 * and the PSNR taken against it. Also stb's JPEG at the quality whose bytes
 * come closest to the codec's without passing them. Prints a table: the
 * mean per-image PSNR per pipeline and model (and mean bytes for codecs).
 *
 * With AEC_PIPELINE_DUMP=DIR (an existing folder) it also writes every
 * thumbnail as DIR/PIPELINE/NAME.png and one line per thumbnail and codec
 * model to DIR/codec.tsv (pipeline, photo, model, bytes, PSNR): what
 * bench/pipeline_webp.py needs to put WebP at the same bytes beside them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aec/codec.h"
#include "aec/image.h"
#include "aec/model.h"
#include "aec/safetensors.h"

#define NPIPE 5
#define MAX_MODELS 16

static const char *const k_pipes[NPIPE] = {"bilinear-128jpeg", "bilinear-full", "box-full",
                                           "lanczos-128jpeg", "lanczos-full"};

typedef struct {
    const char *path;
    aec_model *m;
    aec_workspace *ws;
    aec_codec *codec;
    double psnr[NPIPE], bytes[NPIPE], jpeg_psnr[NPIPE], jpeg_bytes[NPIPE];
} model_row;

static double psnr_u8_f(const uint8_t *rgb, const float *chw, int h, int w)
{
    size_t np = (size_t)h * w;
    double se = 0;
    for (size_t k = 0; k < np; k++)
        for (int c = 0; c < 3; c++) {
            float v = chw[c * np + k];
            double q = v <= 0 ? 0 : v >= 1 ? 255 : lrintf(v * 255.0f); /* as the PNG holds it */
            double d = q - rgb[3 * k + c];
            se += d * d;
        }
    return se == 0 ? 99.0 : 10 * log10(255.0 * 255.0 * 3 * np / se);
}

/* The thumbnail of one pipeline: out (h x w x 3). */
static int thumbnail(const aec_rgb_image *photo, int pipe, int w, int h, uint8_t *out)
{
    aec_error err = {{0}};
    aec_rgb_image src = *photo, small = {0};
    if (pipe == 0 || pipe == 3) {
        int W = photo->width, H = photo->height, side = W > H ? W : H;
        int sw = side > 128 ? (int)lround((double)W * 128 / side) : W;
        int sh = side > 128 ? (int)lround((double)H * 128 / side) : H;
        small = (aec_rgb_image){sw, sh, malloc((size_t)sw * sh * 3)};
        if (!small.rgb ||
            aec_image_resample(photo, 0, 0, W, H, sw, sh, AEC_FILTER_LANCZOS, small.rgb, &err) ||
            aec_image_jpeg_roundtrip(&small, 90, &err)) {
            fprintf(stderr, "aec-pipeline-eval: %s\n", err.msg);
            aec_image_free(&small);
            return -1;
        }
        src = small;
    }
    aec_filter f = pipe == 2   ? AEC_FILTER_BOX
                   : pipe >= 3 ? AEC_FILTER_LANCZOS
                               : AEC_FILTER_BILINEAR;
    double side = src.width < src.height ? src.width : src.height;
    int rc = aec_image_resample(&src, (src.width - side) / 2, (src.height - side) / 2, side, side,
                                w, h, f, out, &err);
    aec_image_free(&small);
    if (rc)
        fprintf(stderr, "aec-pipeline-eval: %s\n", err.msg);
    return rc ? -1 : 0;
}

/* DIR/PIPE/NAME.png (the folder made on first use). */
static int dump_thumb(const char *dir, const char *pipe, const char *name, const uint8_t *rgb,
                      int w, int h)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, pipe);
    mkdir(path, 0755); /* exists after the first photo */
    snprintf(path, sizeof path, "%s/%s/%s.png", dir, pipe, name);
    uint8_t *png = NULL;
    size_t len = 0;
    aec_error err = {{0}};
    int rc = aec_image_encode_png_rgb(rgb, w, h, &png, &len, &err) ||
             aec_write_file_atomic(path, png, len, &err);
    if (rc)
        fprintf(stderr, "aec-pipeline-eval: %s: %s\n", path, err.msg);
    free(png);
    return rc ? -1 : 0;
}

/* stb JPEG at the largest quality whose size is <= budget: its PSNR and bytes. */
static void jpeg_at(const uint8_t *rgb, int w, int h, double budget, double *psnr, double *bytes)
{
    *psnr = 0, *bytes = 0;
    aec_rgb_image img = {w, h, (uint8_t *)rgb};
    for (int q = 100; q >= 1; q--) {
        uint8_t *jpeg = NULL;
        size_t len = 0;
        aec_error err = {{0}};
        if (aec_image_encode_jpeg(&img, q, &jpeg, &len, &err) != AEC_OK)
            return;
        if (len <= budget || q == 1) {
            aec_rgb_image back;
            if (aec_image_decode(jpeg, len, (size_t)w * h, &back, &err) == AEC_OK) {
                double se = 0;
                for (size_t k = 0; k < (size_t)w * h * 3; k++)
                    se += (double)(back.rgb[k] - rgb[k]) * (back.rgb[k] - rgb[k]);
                *psnr = se == 0 ? 99.0 : 10 * log10(255.0 * 255.0 * w * h * 3 / se);
                *bytes = (double)len;
                aec_image_free(&back);
            }
            free(jpeg);
            return;
        }
        free(jpeg);
    }
}

static int run_model(model_row *r, const uint8_t *thumb, int pipe, float *x, float *lat, float *y,
                     double *bytes_out, double *psnr_out)
{
    const aec_model *m = r->m;
    int h = m->input.h, w = m->input.w;
    size_t np = (size_t)h * w;
    for (size_t k = 0; k < np; k++)
        for (int c = 0; c < 3; c++)
            x[c * np + k] = thumb[3 * k + c] / 255.0f;
    aec_model_encode(m, r->ws, x, 1, lat);
    if (r->codec) {
        uint8_t *stream = NULL;
        size_t len = 0;
        aec_error err = {{0}};
        if (aec_codec_encode(r->codec, lat, &stream, &len, &err) ||
            aec_codec_decode(r->codec, stream, len, lat, &err)) {
            fprintf(stderr, "aec-pipeline-eval: %s: %s\n", r->path, err.msg);
            free(stream);
            return -1;
        }
        free(stream);
        r->bytes[pipe] += (double)len;
        *bytes_out = (double)len;
        double jp, jb;
        jpeg_at(thumb, w, h, (double)len, &jp, &jb);
        r->jpeg_psnr[pipe] += jp, r->jpeg_bytes[pipe] += jb;
    }
    aec_model_decode(m, r->ws, lat, 1, y);
    *psnr_out = psnr_u8_f(thumb, y, h, w);
    r->psnr[pipe] += *psnr_out;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc - 3 > MAX_MODELS) {
        fprintf(stderr, "usage: aec-pipeline-eval DIR NAMES MODEL... (at most %d models)\n",
                MAX_MODELS);
        return 2;
    }
    model_row rows[MAX_MODELS] = {{0}};
    int nm = argc - 3;
    aec_error err = {{0}};
    for (int i = 0; i < nm; i++) {
        rows[i].path = argv[3 + i];
        if (aec_model_load(&rows[i].m, rows[i].path, &err) ||
            aec_workspace_create(&rows[i].ws, rows[i].m, 1, 0, &err) ||
            (aec_model_has_codec(rows[i].m) && aec_codec_create(&rows[i].codec, rows[i].m, &err))) {
            fprintf(stderr, "aec-pipeline-eval: %s: %s\n", rows[i].path, err.msg);
            return 1;
        }
        if (rows[i].m->input.c != 3 || rows[i].m->input.h != rows[0].m->input.h ||
            rows[i].m->input.w != rows[0].m->input.w) {
            fprintf(stderr, "aec-pipeline-eval: %s: every model must take the same RGB size\n",
                    rows[i].path);
            return 1;
        }
    }
    int h = rows[0].m->input.h, w = rows[0].m->input.w;
    size_t np = (size_t)h * w, lat_max = 0;
    for (int i = 0; i < nm; i++)
        lat_max = aec_model_latent_count(rows[i].m) > lat_max ? aec_model_latent_count(rows[i].m)
                                                              : lat_max;
    float *x = malloc(np * 3 * sizeof(float)), *y = malloc(np * 3 * sizeof(float));
    float *lat = malloc(lat_max * sizeof(float));
    uint8_t *thumb = malloc(np * 3);
    FILE *names = fopen(argv[2], "r");
    if (!x || !y || !lat || !thumb || !names) {
        fprintf(stderr, "aec-pipeline-eval: %s: cannot read (or out of memory)\n", argv[2]);
        return 1;
    }
    const char *dump = getenv("AEC_PIPELINE_DUMP");
    FILE *tsv = NULL;
    if (dump) {
        char tp[2048];
        snprintf(tp, sizeof tp, "%s/codec.tsv", dump);
        if (!(tsv = fopen(tp, "w"))) {
            fprintf(stderr, "aec-pipeline-eval: %s: cannot write\n", tp);
            return 1;
        }
    }
    char line[1024];
    long photos = 0;
    while (fgets(line, sizeof line, names)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#')
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", argv[1], line);
        uint8_t *bytes = NULL;
        size_t len = 0;
        aec_rgb_image photo;
        if (aec_read_file(path, 64u << 20, &bytes, &len, &err) ||
            aec_image_decode(bytes, len, 40000000, &photo, &err)) {
            fprintf(stderr, "aec-pipeline-eval: skipping %s: %s\n", path, err.msg);
            free(bytes);
            continue;
        }
        free(bytes);
        for (int p = 0; p < NPIPE; p++) {
            if (thumbnail(&photo, p, w, h, thumb) != 0 ||
                (dump && dump_thumb(dump, k_pipes[p], line, thumb, w, h) != 0))
                return 1;
            for (int i = 0; i < nm; i++) {
                double b = 0, ps = 0;
                if (run_model(&rows[i], thumb, p, x, lat, y, &b, &ps) != 0)
                    return 1;
                if (tsv && rows[i].codec)
                    fprintf(tsv, "%s\t%s\t%s\t%.0f\t%.4f\n", k_pipes[p], line, rows[i].path, b, ps);
            }
        }
        aec_image_free(&photo);
        photos++;
    }
    fclose(names);
    if (tsv)
        fclose(tsv);
    if (!photos) {
        fprintf(stderr, "aec-pipeline-eval: no photos\n");
        return 1;
    }
    printf("%ld held-out photos, thumbnails %dx%d (centred square); mean per-image PSNR (dB)\n\n",
           photos, w, h);
    printf("| model |");
    for (int p = 0; p < NPIPE; p++)
        printf(" %s |", k_pipes[p]);
    printf("\n|---|");
    for (int p = 0; p < NPIPE; p++)
        printf("---|");
    printf("\n");
    for (int i = 0; i < nm; i++) {
        const char *base = strrchr(rows[i].path, '/');
        printf("| %s |", base ? base + 1 : rows[i].path);
        for (int p = 0; p < NPIPE; p++) {
            printf(" %.2f", rows[i].psnr[p] / photos);
            if (rows[i].codec)
                printf(" @ %.0f B (JPEG %.2f @ %.0f B)", rows[i].bytes[p] / photos,
                       rows[i].jpeg_psnr[p] / photos, rows[i].jpeg_bytes[p] / photos);
            printf(" |");
        }
        printf("\n");
    }
    for (int i = 0; i < nm; i++) {
        aec_codec_free(rows[i].codec);
        aec_workspace_free(rows[i].ws);
        aec_model_free(rows[i].m);
    }
    free(x), free(y), free(lat), free(thumb);
    return 0;
}
