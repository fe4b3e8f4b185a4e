/* codec_eval.c - the engine's side of the rate-distortion benchmark
 * (bench/rd_bench.py): bytes per image and the decoded pictures.
 *
 *   aec-codec-eval --originals SIZE OUTDIR < files
 *       loads each photo as the trainer and aecd do (decode, resize to
 *       SIZE x SIZE) and writes it as OUTDIR/NNNNN.png: the 8-bit originals
 *       every codec of the benchmark starts from and is compared with.
 *   aec-codec-eval MODEL OUTDIR < pngs
 *       for each picture: encode -> binary latent v2 -> decode -> PNG in
 *       OUTDIR (same name); prints "name<TAB>bytes" per picture. Fails if a
 *       stream does not decode to exactly the symbols it was made from.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/codec.h"
#include "aec/image.h"
#include "aec/model.h"
#include "aec/safetensors.h"

static int write_png(const float *chw, int c, int h, int w, const char *path)
{
    uint8_t *png = NULL;
    size_t len = 0;
    aec_error err = {{0}};
    if (aec_image_encode_png(chw, c, h, w, &png, &len, &err) ||
        aec_write_file_atomic(path, png, len, &err)) {
        fprintf(stderr, "aec-codec-eval: %s: %s\n", path, err.msg);
        free(png);
        return -1;
    }
    free(png);
    return 0;
}

static int load(const char *path, int c, int h, int w, float *x)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    aec_error err = {{0}};
    int bad = aec_read_file(path, 64u << 20, &bytes, &len, &err) ||
              aec_image_load_tensor(bytes, len, 40000000, c, h, w, x, &err);
    if (bad)
        fprintf(stderr, "aec-codec-eval: %s: %s\n", path, err.msg);
    free(bytes);
    return bad ? -1 : 0;
}

static char *next_name(char *line, size_t cap)
{
    if (!fgets(line, (int)cap, stdin))
        return NULL;
    line[strcspn(line, "\r\n")] = 0;
    return line;
}

static int originals(int size, const char *outdir)
{
    float *x = malloc(sizeof(float) * 3 * (size_t)size * (size_t)size);
    char line[4096], out[8192];
    int n = 0;
    while (x && next_name(line, sizeof line)) {
        if (!*line || load(line, 3, size, size, x))
            continue;
        snprintf(out, sizeof out, "%s/%05d.png", outdir, n++);
        if (write_png(x, 3, size, size, out))
            return 1;
    }
    free(x);
    return 0;
}

static int code_all(const char *model_path, const char *outdir)
{
    aec_error err = {{0}};
    aec_model *m = NULL;
    aec_codec *codec = NULL;
    aec_workspace *ws = NULL;
    if (aec_model_load(&m, model_path, &err) || aec_codec_create(&codec, m, &err) ||
        aec_workspace_create(&ws, m, 1, 0, &err)) {
        fprintf(stderr, "aec-codec-eval: %s: %s\n", model_path, err.msg);
        return 1;
    }
    size_t in = aec_model_input_count(m), lat = aec_model_latent_count(m);
    float *x = malloc(sizeof(float) * in), *y = malloc(sizeof(float) * in);
    float *z = malloc(sizeof(float) * lat), *zq = malloc(sizeof(float) * lat);
    char line[4096], out[8192];
    int status = 0;
    while (x && y && z && zq && next_name(line, sizeof line)) {
        if (!*line || load(line, m->input.c, m->input.h, m->input.w, x))
            continue;
        aec_model_encode(m, ws, x, 1, z);
        uint8_t *stream = NULL;
        size_t len = 0;
        if (aec_codec_encode(codec, z, &stream, &len, &err) ||
            aec_codec_decode(codec, stream, len, zq, &err)) {
            fprintf(stderr, "aec-codec-eval: %s: %s\n", line, err.msg);
            status = 1;
            break;
        }
        free(stream);
        aec_model_decode(m, ws, zq, 1, y);
        snprintf(out, sizeof out, "%s/%s", outdir, basename(line));
        if (write_png(y, m->input.c, m->input.h, m->input.w, out)) {
            status = 1;
            break;
        }
        printf("%s\t%zu\n", basename(line), len);
    }
    free(x), free(y), free(z), free(zq);
    aec_workspace_free(ws);
    aec_codec_free(codec);
    aec_model_free(m);
    return status;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--originals") == 0)
        return originals(atoi(argv[2]), argv[3]);
    if (argc == 3)
        return code_all(argv[1], argv[2]);
    fprintf(stderr, "usage: aec-codec-eval --originals SIZE OUTDIR < files\n"
                    "       aec-codec-eval MODEL OUTDIR < pngs\n");
    return 2;
}
