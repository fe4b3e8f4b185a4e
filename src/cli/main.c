/* main.c - `aec`, the command-line tool for files (like cwebp / dwebp):
 *
 *   aec compress IN -o OUT [-q Q | --size BYTES] [--model FILE] [--threads N]
 *   aec decompress IN -o OUT.png [--model FILE] [--threads N]
 *   aec info IN [--model FILE]
 *
 * IN or OUT "-" is stdin / stdout. Files are written atomically. Errors name
 * the file and the problem; exit status 0 on success, 1 on failure, 2 on a
 * usage error.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aec/image.h"
#include "aec/photo.h"
#include "aec/safetensors.h"

#ifndef AEC_DEFAULT_PHOTO_MODEL
#define AEC_DEFAULT_PHOTO_MODEL "models/photo.safetensors"
#endif
#define INPUT_MAX_BYTES ((size_t)256 << 20)
#define DEFAULT_MAX_PIXELS 40000000L

typedef struct {
    const char *cmd, *in, *out, *model;
    int quality;
    long size; /* target bytes, 0 = use quality */
    int threads;
    long max_pixels;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: aec compress IN -o OUT [-q Q | --size BYTES] [options]\n"
            "       aec decompress IN -o OUT.png [options]\n"
            "       aec info IN [--model FILE]\n"
            "\n"
            "Compresses photos of any size with a learned codec (stream format 3) and\n"
            "decompresses them to PNG. IN or OUT - is standard input / output.\n"
            "\n"
            "  -q, --quality Q   1..100, higher is better and bigger (default %d)\n"
            "  --size BYTES      the best quality whose stream fits in BYTES\n"
            "  --model FILE      the photo codec (default $AEC_PHOTO_MODEL or\n"
            "                    %s)\n"
            "  --threads N       (default 2)\n"
            "  --max-pixels N    refuse larger images (default %ld)\n"
            "  --help, --version\n",
            AEC_PHOTO_QUALITY_DEFAULT, AEC_DEFAULT_PHOTO_MODEL, DEFAULT_MAX_PIXELS);
}

static int parse_long(const char *name, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "aec: %s wants an integer in [%ld, %ld], not \"%s\"\n", name, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    if (argc < 2) {
        usage(stderr);
        return -1;
    }
    o->cmd = argv[1];
    if (!strcmp(o->cmd, "--help") || !strcmp(o->cmd, "-h")) {
        usage(stdout);
        exit(0);
    }
    if (!strcmp(o->cmd, "--version")) {
        printf("aec %s\n", AEC_VERSION);
        exit(0);
    }
    if (strcmp(o->cmd, "compress") && strcmp(o->cmd, "decompress") && strcmp(o->cmd, "info")) {
        fprintf(stderr, "aec: unknown command \"%s\" (compress, decompress, info; see --help)\n",
                o->cmd);
        return -1;
    }
    long v;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int takes = !strcmp(a, "-o") || !strcmp(a, "-q") || !strcmp(a, "--quality") ||
                    !strcmp(a, "--size") || !strcmp(a, "--model") || !strcmp(a, "--threads") ||
                    !strcmp(a, "--max-pixels");
        if (takes && i + 1 >= argc) {
            fprintf(stderr, "aec: %s needs a value\n", a);
            return -1;
        }
        const char *val = takes ? argv[++i] : NULL;
        if (!strcmp(a, "-o"))
            o->out = val;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quality")) {
            if (parse_long(a, val, 1, 100, &v))
                return -1;
            o->quality = (int)v;
        } else if (!strcmp(a, "--size")) {
            if (parse_long(a, val, 1, LONG_MAX, &o->size))
                return -1;
        } else if (!strcmp(a, "--model"))
            o->model = val;
        else if (!strcmp(a, "--threads")) {
            if (parse_long(a, val, 1, 64, &v))
                return -1;
            o->threads = (int)v;
        } else if (!strcmp(a, "--max-pixels")) {
            if (parse_long(a, val, 1, 1L << 32, &o->max_pixels))
                return -1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "aec: unknown option %s (see --help)\n", a);
            return -1;
        } else if (!o->in)
            o->in = a;
        else {
            fprintf(stderr, "aec: one input only (\"%s\" and \"%s\")\n", o->in, a);
            return -1;
        }
    }
    if (!o->in) {
        fprintf(stderr, "aec %s: no input file\n", o->cmd);
        return -1;
    }
    if (strcmp(o->cmd, "info") && !o->out) {
        fprintf(stderr, "aec %s: -o OUT is required (- for standard output)\n", o->cmd);
        return -1;
    }
    if (o->size && o->quality) {
        fprintf(stderr, "aec compress: -q and --size exclude each other\n");
        return -1;
    }
    return 0;
}

static aec_status read_input(const char *path, uint8_t **buf, size_t *len, aec_error *err)
{
    if (strcmp(path, "-"))
        return aec_read_file(path, INPUT_MAX_BYTES, buf, len, err);
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    while (b) {
        size_t got = fread(b + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            if (cap >= INPUT_MAX_BYTES) {
                free(b);
                return aec_fail(err, AEC_ERR_LIMIT, "standard input: more than %zu bytes",
                                INPUT_MAX_BYTES);
            }
            uint8_t *nb = realloc(b, cap * 2);
            if (!nb)
                free(b);
            b = nb, cap *= 2;
        }
    }
    if (!b)
        return aec_fail(err, AEC_ERR_NOMEM, "standard input: out of memory");
    if (ferror(stdin)) {
        free(b);
        return aec_fail(err, AEC_ERR_IO, "standard input: read error");
    }
    *buf = b, *len = n;
    return AEC_OK;
}

static aec_status write_output(const char *path, const uint8_t *buf, size_t len, aec_error *err)
{
    if (strcmp(path, "-"))
        return aec_write_file_atomic(path, buf, len, err);
    if (fwrite(buf, 1, len, stdout) != len || fflush(stdout))
        return aec_fail(err, AEC_ERR_IO, "standard output: write error");
    return AEC_OK;
}

static const char *model_path(const options *o)
{
    if (o->model)
        return o->model;
    const char *env = getenv("AEC_PHOTO_MODEL");
    return env && *env ? env : AEC_DEFAULT_PHOTO_MODEL;
}

static const char *in_name(const options *o)
{
    return strcmp(o->in, "-") ? o->in : "standard input";
}

static aec_status run_compress(const options *o, aec_photo *p, const uint8_t *in, size_t len,
                               aec_error *err)
{
    aec_rgb_image img = {0};
    uint8_t *out = NULL;
    size_t out_len = 0;
    int quality = o->quality ? o->quality : AEC_PHOTO_QUALITY_DEFAULT;
    aec_status st = aec_image_decode(in, len, (size_t)o->max_pixels, &img, err);
    if (st) {
        aec_error_prefix(err, in_name(o));
        return st;
    }
    if (o->size)
        st = aec_photo_compress_size(p, img.rgb, img.width, img.height, (size_t)o->size, o->threads,
                                     &out, &out_len, &quality, err);
    else
        st = aec_photo_compress(p, img.rgb, img.width, img.height, quality, o->threads, &out,
                                &out_len, err);
    if (!st)
        st = write_output(o->out, out, out_len, err);
    if (!st)
        fprintf(stderr, "%s: %dx%d, quality %d: %zu bytes, %.4f bpp\n", in_name(o), img.width,
                img.height, quality, out_len, out_len * 8.0 / ((double)img.width * img.height));
    aec_image_free(&img);
    free(out);
    return st;
}

static aec_status run_decompress(const options *o, aec_photo *p, const uint8_t *in, size_t len,
                                 aec_error *err)
{
    uint8_t *rgb = NULL, *png = NULL;
    size_t png_len = 0;
    int w = 0, h = 0;
    aec_status st =
        aec_photo_decompress(p, in, len, (size_t)o->max_pixels, o->threads, &rgb, &w, &h, err);
    if (st)
        aec_error_prefix(err, in_name(o));
    if (!st)
        st = aec_image_encode_png_rgb(rgb, w, h, &png, &png_len, err);
    if (!st)
        st = write_output(o->out, png, png_len, err);
    free(rgb);
    free(png);
    return st;
}

static aec_status run_info(const options *o, const uint8_t *in, size_t len, aec_error *err)
{
    aec_photo_info info;
    aec_status st = aec_photo_stream_info(in, len, &info, err);
    if (st) {
        aec_error_prefix(err, in_name(o));
        return st;
    }
    aec_photo *p = NULL;
    const char *model = "unknown model";
    aec_error merr = {{0}};
    if (aec_photo_load(&p, model_path(o), &merr) == AEC_OK && aec_photo_tag(p) == info.tag)
        model = model_path(o);
    printf("format:   aec photo stream, version 3\n"
           "model:    tag %08x (%s)\n"
           "size:     %dx%d\n"
           "quality:  %d\n"
           "bytes:    %zu (z %zu, y %zu, header %d)\n"
           "bpp:      %.4f\n",
           info.tag, model, info.width, info.height, info.quality, info.total, info.z_bytes,
           info.y_bytes, AEC_PHOTO_HEADER, info.total * 8.0 / ((double)info.width * info.height));
    aec_photo_free(p);
    return AEC_OK;
}

int main(int argc, char **argv)
{
    options o = {.threads = 2, .max_pixels = DEFAULT_MAX_PIXELS};
    if (parse_args(argc, argv, &o))
        return 2;
    aec_error err = {{0}};
    uint8_t *in = NULL;
    size_t len = 0;
    aec_photo *p = NULL;
    aec_status st = read_input(o.in, &in, &len, &err);
    if (!st && strcmp(o.cmd, "info"))
        st = aec_photo_load(&p, model_path(&o), &err);
    if (!st && !strcmp(o.cmd, "compress"))
        st = run_compress(&o, p, in, len, &err);
    else if (!st && !strcmp(o.cmd, "decompress"))
        st = run_decompress(&o, p, in, len, &err);
    else if (!st)
        st = run_info(&o, in, len, &err);
    if (st)
        fprintf(stderr, "aec %s: %s\n", o.cmd, err.msg);
    free(in);
    aec_photo_free(p);
    return st ? 1 : 0;
}
