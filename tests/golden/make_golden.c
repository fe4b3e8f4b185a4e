/* make_golden.c - makes the golden files of tests/golden/ (see golden.h).
 *
 * Run once, by hand, when a golden set is created:
 *     build/tests/aec-make-golden tests/golden
 * It refuses to overwrite a file that exists: goldens are made once and then
 * only checked (tests/unit/test_golden.c), on every commit and machine. A
 * format that changes on purpose gets a new version byte and new goldens
 * beside the old ones, which must keep decoding.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aec/codec.h"
#include "aec/image.h"
#include "aec/latent.h"
#include "aec/model.h"
#include "golden.h"
#include "testutil.h"

#define PIXELS (3 * GOLDEN_SIZE * GOLDEN_SIZE)

static const char *g_dir;

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "aec-make-golden: %s: %s\n", what, msg);
    exit(1);
}

static const char *path_of(const char *name)
{
    static char p[4096];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return p;
}

static void write_new(const char *name, const void *data, size_t len)
{
    struct stat st;
    const char *p = path_of(name);
    if (stat(p, &st) == 0)
        die(p, "exists; goldens are made once (remove it by hand to remake it)");
    if (test_write_file(p, data, len) != 0)
        die(p, "cannot write");
    printf("wrote %s (%zu bytes)\n", p, len);
}

static void write_png(const char *name, const float *chw)
{
    uint8_t *png = NULL;
    size_t len = 0;
    aec_error err = {{0}};
    if (aec_image_encode_png(chw, 3, GOLDEN_SIZE, GOLDEN_SIZE, &png, &len, &err) != AEC_OK)
        die(name, err.msg);
    write_new(name, png, len);
    free(png);
}

static void save_model(aec_model *m, const char *name)
{
    aec_error err = {{0}};
    struct stat st;
    if (stat(path_of(name), &st) == 0)
        die(path_of(name), "exists; goldens are made once");
    aec_model_update_id(m);
    if (aec_model_save(m, path_of(name), &err) != AEC_OK)
        die(name, err.msg);
    printf("wrote %s\n", path_of(name));
}

/* The codec model: seeded weights, the latent layer scaled so the symbols
 * spread over many values, tables from the latents of 200 synthetic images. */
static aec_model *make_codec(void)
{
    aec_error err = {{0}};
    aec_model *m = NULL;
    if (aec_model_from_spec(&m, GOLDEN_CODEC_SPEC, 3, GOLDEN_SIZE, GOLDEN_SIZE,
                            GOLDEN_CODEC_LATENT_INDEX, &err) != AEC_OK)
        die("codec spec", err.msg);
    aec_model_init_weights(m, 2026);
    aec_layer *lat = &m->layers[GOLDEN_CODEC_LATENT_INDEX];
    for (int p = 0; p < lat->nparams; p++)
        for (size_t i = 0; i < lat->params[p].count; i++)
            lat->params[p].data[i] *= 30.0f;
    aec_model_update_id(m);
    aec_workspace *ws = NULL;
    aec_codec_builder *b = NULL;
    float *img = malloc(sizeof(float) * PIXELS), *z = malloc(sizeof(float) * 96);
    if (!img || !z || aec_workspace_create(&ws, m, 1, 0, &err) != AEC_OK ||
        aec_codec_builder_create(&b, m, &err) != AEC_OK)
        die("codec tables", err.msg[0] ? err.msg : "out of memory");
    for (int i = 0; i < 200; i++) {
        test_synthetic_image(img, GOLDEN_SIZE, GOLDEN_SIZE, (uint64_t)(1000 + i));
        aec_model_encode(m, ws, img, 1, z);
        aec_codec_builder_add(b, z, 1);
    }
    if (aec_codec_builder_finish(b, m, "{\"format\":2,\"golden\":true}", &err) != AEC_OK)
        die("codec tables", err.msg);
    aec_codec_builder_free(b);
    aec_workspace_free(ws);
    free(img), free(z);
    return m;
}

static aec_model *make_mlp(void)
{
    aec_error err = {{0}};
    aec_model *m = NULL;
    if (aec_model_from_spec(&m, GOLDEN_MLP_SPEC, 3, GOLDEN_SIZE, GOLDEN_SIZE,
                            GOLDEN_MLP_LATENT_INDEX, &err) != AEC_OK)
        die("mlp spec", err.msg);
    aec_model_init_weights(m, 2027);
    uint64_t rng = 3; /* batchnorm statistics that are not the identity */
    aec_layer *bn = &m->layers[1];
    for (int p = 0; p < 4; p++)
        for (size_t i = 0; i < bn->params[p].count; i++)
            bn->params[p].data[i] = (p == 1 || p == 2 ? -0.3f : 0.6f) + test_rand_uniform(&rng);
    return m;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: aec-make-golden DIR\n");
        return 2;
    }
    g_dir = argv[1];
    aec_error err = {{0}};
    aec_model *codec_m = make_codec(), *mlp = make_mlp();
    save_model(codec_m, "codec-tiny.safetensors");
    save_model(mlp, "mlp-tiny.safetensors");
    aec_codec *codec = NULL;
    aec_workspace *wc = NULL, *wm = NULL;
    if (aec_codec_create(&codec, codec_m, &err) || aec_workspace_create(&wc, codec_m, 1, 0, &err) ||
        aec_workspace_create(&wm, mlp, 1, 0, &err))
        die("setup", err.msg);
    float img[PIXELS], out[PIXELS], z[96], zq[96], lat[16], latq[16];
    char name[256];
    for (int i = 0; i < GOLDEN_IMAGES; i++) {
        test_synthetic_image(img, GOLDEN_SIZE, GOLDEN_SIZE, (uint64_t)(7 + i));
        /* the source as 8-bit, so the test starts from exactly these pixels */
        for (int k = 0; k < PIXELS; k++)
            img[k] = (float)(int)(img[k] * 255.0f + 0.5f) / 255.0f;
        snprintf(name, sizeof name, "image-%d.png", i);
        write_png(name, img);

        uint8_t *stream = NULL;
        size_t len = 0;
        aec_model_encode(codec_m, wc, img, 1, z);
        if (aec_codec_encode(codec, z, &stream, &len, &err) ||
            aec_codec_decode(codec, stream, len, zq, &err))
            die("codec", err.msg);
        snprintf(name, sizeof name, "codec-tiny.%d.aec", i);
        write_new(name, stream, len);
        int16_t sym[96];
        for (int k = 0; k < 96; k++)
            sym[k] = (int16_t)zq[k]; /* little-endian on every machine we build for */
        snprintf(name, sizeof name, "codec-tiny.%d.sym", i);
        write_new(name, sym, sizeof sym);
        aec_model_decode(codec_m, wc, zq, 1, out);
        snprintf(name, sizeof name, "codec-tiny.%d.png", i);
        write_png(name, out);
        free(stream);

        aec_model_encode(mlp, wm, img, 1, lat);
        static const aec_latent_dtype dts[] = {AEC_LATENT_F32, AEC_LATENT_F16, AEC_LATENT_U8};
        for (int d = 0; d < 3; d++) {
            uint8_t *packed = NULL;
            size_t plen = 0;
            if (aec_latent_pack(lat, 16, mlp->id_hash, dts[d], &packed, &plen, &err) ||
                aec_latent_unpack(packed, plen, 16, mlp->id_hash, latq, &err))
                die("latent", err.msg);
            snprintf(name, sizeof name, "mlp-tiny.%d.%s.aecl", i, aec_latent_dtype_name(dts[d]));
            write_new(name, packed, plen);
            aec_model_decode(mlp, wm, latq, 1, out);
            snprintf(name, sizeof name, "mlp-tiny.%d.%s.png", i, aec_latent_dtype_name(dts[d]));
            write_png(name, out);
            free(packed);
        }
    }
    aec_codec_free(codec);
    aec_workspace_free(wc), aec_workspace_free(wm);
    aec_model_free(codec_m), aec_model_free(mlp);
    return 0;
}
