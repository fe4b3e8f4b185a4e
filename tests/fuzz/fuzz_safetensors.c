/* fuzz_safetensors.c - libFuzzer target: arbitrary bytes as a safetensors
 * container. A successful parse must describe tensors that lie inside the
 * buffer, be findable by name, and serialize back to a file that parses to
 * the same tensors. Seeds: corpus/model_load/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aec/safetensors.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

static void reserialize(const aec_st_file *f)
{
    aec_st_out *out = calloc((size_t)f->ntensors + 1, sizeof *out);
    check(out != NULL);
    for (int i = 0; i < f->ntensors; i++) {
        const aec_st_tensor *t = &f->tensors[i];
        out[i].name = t->name;
        out[i].dtype_name = t->dtype_name;
        out[i].ndim = t->ndim;
        memcpy(out[i].shape, t->shape, sizeof t->shape);
        out[i].data = f->data + t->begin;
        out[i].nbytes = t->end - t->begin;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    aec_error err;
    aec_status st =
        aec_st_serialize(out, f->ntensors, (const char *const *)f->meta_keys,
                         (const char *const *)f->meta_values, f->nmeta, &buf, &len, &err);
    /* Names or metadata cut at an embedded NUL may collide; otherwise it must work. */
    if (st == AEC_OK) {
        aec_st_file g;
        check(aec_st_parse(&g, buf, len, &err) == AEC_OK);
        check(g.ntensors == f->ntensors && g.nmeta == f->nmeta);
        for (int i = 0; i < g.ntensors; i++) {
            const aec_st_tensor *a = &f->tensors[i], *b = &g.tensors[i];
            check(strcmp(a->name, b->name) == 0 && a->ndim == b->ndim);
            check(a->end - a->begin == b->end - b->begin);
            check(memcmp(f->data + a->begin, g.data + b->begin, a->end - a->begin) == 0);
        }
        aec_st_free(&g);
    }
    free(buf);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aec_st_file f;
    aec_error err;
    if (aec_st_parse(&f, data, size, &err) != AEC_OK)
        return 0;
    for (int i = 0; i < f.ntensors; i++) {
        const aec_st_tensor *t = &f.tensors[i];
        check(t->begin <= t->end && t->end <= f.data_len);
        check(f.data + f.data_len <= data + size);
        check(aec_st_find(&f, t->name) == t);
    }
    for (int i = 0; i < f.nmeta; i++)
        check(aec_st_meta(&f, f.meta_keys[i]) != NULL);
    reserialize(&f);
    aec_st_free(&f);
    return 0;
}
