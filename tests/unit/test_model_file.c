/* test_model_file.c - the model file (src/engine/model_file.c): save/load
 * round trips bit for bit, F16 parameters, strict rejection of files that do
 * not describe the model (each error starting with the file name), and, when
 * ../shared/testvectors is present, the PyTorch-written reference files.
 */
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "aec/half.h"
#include "aec/model.h"
#include "aec/safetensors.h"
#include "testutil.h"

static const char *MLP_LAYERS =
    "[{\"type\": \"flatten\"}, {\"type\": \"linear\", \"in\": 12, \"out\": 4}, "
    "{\"type\": \"relu\"}, {\"type\": \"batchnorm\", \"features\": 4, \"eps\": 0.001}, "
    "{\"type\": \"linear\", \"in\": 4, \"out\": 12}, {\"type\": \"sigmoid\"}, "
    "{\"type\": \"unflatten\", \"shape\": [3, 2, 2]}]";

static const char *CONV_LAYERS =
    "[{\"type\": \"conv2d\", \"in\": 3, \"out\": 4, \"kernel\": 3, \"stride\": 2, "
    "\"padding\": 1}, {\"type\": \"batchnorm\", \"features\": 4, \"eps\": 1e-05}, "
    "{\"type\": \"relu\"}, {\"type\": \"conv_transpose2d\", \"in\": 4, \"out\": 3, "
    "\"kernel\": 3, \"stride\": 2, \"padding\": 1, \"output_padding\": 1}, "
    "{\"type\": \"sigmoid\"}]";

#define BAD_NAME "bad.safetensors"

/* ---- helpers ------------------------------------------------------------- */

static char *dupstr(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    REQUIRE(d, "oom");
    return strcpy(d, s);
}

static aec_model *make_mlp(uint64_t seed)
{
    aec_model *m;
    aec_error err = {{0}};
    REQUIRE(aec_model_from_spec(&m, MLP_LAYERS, 3, 2, 2, 2, &err) == AEC_OK, "mlp: %s", err.msg);
    aec_model_init_weights(m, seed);
    /* non-trivial batchnorm parameters and statistics */
    aec_layer *bn = &m->layers[3];
    for (int p = 0; p < bn->nparams; p++)
        for (size_t i = 0; i < bn->params[p].count; i++)
            bn->params[p].data[i] = 0.25f + 0.5f * (float)p + 0.125f * (float)i;
    aec_model_update_id(m);
    return m;
}

static aec_model *make_conv(uint64_t seed)
{
    aec_model *m;
    aec_error err = {{0}};
    REQUIRE(aec_model_from_spec(&m, CONV_LAYERS, 3, 4, 4, 2, &err) == AEC_OK, "conv: %s", err.msg);
    aec_model_init_weights(m, seed);
    return m;
}

static const aec_param *find_param(const aec_model *m, int li, const char *suffix)
{
    for (int p = 0; p < m->layers[li].nparams; p++)
        if (strcmp(m->layers[li].params[p].suffix, suffix) == 0)
            return &m->layers[li].params[p];
    return NULL;
}

static int streq_or_null(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Compares structure, every parameter bit for bit, extras and metadata. */
static void check_same_model(const aec_model *a, const aec_model *b, const char *what)
{
    REQUIRE(a->nlayers == b->nlayers, "%s: nlayers %d vs %d", what, a->nlayers, b->nlayers);
    CHECK(a->latent_index == b->latent_index, "%s: latent", what);
    CHECK(a->input.c == b->input.c && a->input.h == b->input.h && a->input.w == b->input.w,
          "%s: input shape", what);
    CHECK(strcmp(a->layers_json, b->layers_json) == 0, "%s: layers_json", what);
    CHECK(streq_or_null(a->anomaly_json, b->anomaly_json), "%s: anomaly_json", what);
    CHECK(streq_or_null(a->train_json, b->train_json), "%s: train_json", what);
    CHECK(streq_or_null(a->codec_json, b->codec_json), "%s: codec_json", what);
    for (int li = 0; li < a->nlayers; li++) {
        const aec_layer *la = &a->layers[li], *lb = &b->layers[li];
        REQUIRE(la->type == lb->type && la->nparams == lb->nparams, "%s: layer %d", what, li);
        for (int p = 0; p < la->nparams; p++) {
            const aec_param *pa = &la->params[p], *pb = &lb->params[p];
            CHECK(pa->count == pb->count &&
                      memcmp(pa->data, pb->data, pa->count * sizeof(float)) == 0,
                  "%s: %d.%s differs", what, li, pa->suffix);
        }
    }
    REQUIRE(a->nextras == b->nextras, "%s: nextras %d vs %d", what, a->nextras, b->nextras);
    for (int i = 0; i < a->nextras; i++) {
        const aec_extra_tensor *x = &a->extras[i];
        const aec_extra_tensor *y = aec_model_find_extra(b, x->name);
        REQUIRE(y, "%s: extra %s missing", what, x->name);
        CHECK(x->ndim == y->ndim && x->count == y->count &&
                  memcmp(x->dims, y->dims, sizeof(int) * (size_t)x->ndim) == 0 &&
                  memcmp(x->data, y->data, x->count * sizeof(float)) == 0,
              "%s: extra %s differs", what, x->name);
    }
    CHECK(a->id_hash == b->id_hash && strcmp(a->id, b->id) == 0, "%s: id %s vs %s", what, a->id,
          b->id);
}

/* ---- a model file as a list of tensors and metadata we can tamper with ---- */

#define MAXT 64
typedef struct {
    aec_st_out t[MAXT];
    char names[MAXT][48];
    int n;
    const char *keys[16];
    const char *values[16];
    int nmeta;
    char latent[16], input[96];
} filedesc;

static const int64_t zero64 = 0;

static aec_st_out *desc_add(filedesc *d, const char *name, const char *dtype, int ndim,
                            const int64_t *shape, const void *data, size_t nbytes)
{
    REQUIRE(d->n < MAXT, "too many tensors");
    aec_st_out *o = &d->t[d->n];
    snprintf(d->names[d->n], sizeof d->names[0], "%s", name);
    memset(o, 0, sizeof *o);
    o->name = d->names[d->n];
    o->dtype_name = dtype;
    o->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        o->shape[i] = shape[i];
    o->data = data;
    o->nbytes = nbytes;
    d->n++;
    return o;
}

static aec_st_out *desc_find(filedesc *d, const char *name)
{
    for (int i = 0; i < d->n; i++)
        if (strcmp(d->names[i], name) == 0)
            return &d->t[i];
    REQUIRE(0, "no tensor %s", name);
    return NULL;
}

static void desc_remove(filedesc *d, const char *name)
{
    aec_st_out *o = desc_find(d, name);
    int i = (int)(o - d->t);
    for (int j = i; j < d->n - 1; j++) {
        d->t[j] = d->t[j + 1];
        memcpy(d->names[j], d->names[j + 1], sizeof d->names[0]);
        d->t[j].name = d->names[j];
    }
    d->n--;
}

/* value NULL removes the key */
static void desc_meta(filedesc *d, const char *key, const char *value)
{
    for (int i = 0; i < d->nmeta; i++)
        if (strcmp(d->keys[i], key) == 0) {
            if (value) {
                d->values[i] = value;
            } else {
                d->keys[i] = d->keys[d->nmeta - 1];
                d->values[i] = d->values[d->nmeta - 1];
                d->nmeta--;
            }
            return;
        }
    if (value) {
        d->keys[d->nmeta] = key;
        d->values[d->nmeta++] = value;
    }
}

/* What aec_model_save would write, built independently. */
static void desc_from_model(filedesc *d, const aec_model *m)
{
    memset(d, 0, sizeof *d);
    for (int li = 0; li < m->nlayers; li++) {
        const aec_layer *l = &m->layers[li];
        char name[48];
        for (int p = 0; p < l->nparams; p++) {
            const aec_param *pr = &l->params[p];
            int64_t shape[4];
            for (int k = 0; k < pr->ndim; k++)
                shape[k] = pr->dims[k];
            snprintf(name, sizeof name, "%d.%s", li, pr->suffix);
            desc_add(d, name, "F32", pr->ndim, shape, pr->data, pr->count * sizeof(float));
        }
        if (l->type == AEC_LAYER_BATCHNORM) {
            snprintf(name, sizeof name, "%d.num_batches_tracked", li);
            desc_add(d, name, "I64", 0, NULL, &zero64, 8);
        }
    }
    snprintf(d->latent, sizeof d->latent, "%d", m->latent_index);
    snprintf(d->input, sizeof d->input, "{\"channels\": %d, \"height\": %d, \"width\": %d}",
             m->input.c, m->input.h, m->input.w);
    desc_meta(d, "aec.format", "1");
    desc_meta(d, "aec.layers", m->layers_json);
    desc_meta(d, "aec.latent", d->latent);
    desc_meta(d, "aec.input", d->input);
}

static aec_status desc_load(const filedesc *d, aec_model **out, aec_error *err)
{
    uint8_t *buf;
    size_t len;
    aec_error serr = {{0}};
    REQUIRE(aec_st_serialize(d->t, d->n, d->keys, d->values, d->nmeta, &buf, &len, &serr) == AEC_OK,
            "serialize: %s", serr.msg);
    aec_status st = aec_model_load_memory(out, buf, len, BAD_NAME, err);
    free(buf);
    return st;
}

#define EXPECT_LOAD_FAIL(d, substr)                                                                \
    do {                                                                                           \
        aec_model *m_ = (aec_model *)1;                                                            \
        aec_error e_ = {{0}};                                                                      \
        aec_status st_ = desc_load(d, &m_, &e_);                                                   \
        CHECK(st_ != AEC_OK && m_ == NULL, "loaded, expected '%s'", substr);                       \
        CHECK(strncmp(e_.msg, BAD_NAME ": ", strlen(BAD_NAME ": ")) == 0,                          \
              "message does not start with the file name: %s", e_.msg);                            \
        CHECK(strstr(e_.msg, substr) != NULL, "message '%s' lacks '%s'", e_.msg, substr);          \
        if (st_ == AEC_OK)                                                                         \
            aec_model_free(m_);                                                                    \
    } while (0)

#define EXPECT_LOAD_OK(d)                                                                          \
    do {                                                                                           \
        aec_model *m_ = NULL;                                                                      \
        aec_error e_ = {{0}};                                                                      \
        CHECK(desc_load(d, &m_, &e_) == AEC_OK, "rejected: %s", e_.msg);                           \
        aec_model_free(m_);                                                                        \
    } while (0)

/* ---- round trips ----------------------------------------------------------- */

static void test_round_trip_mlp(void)
{
    const char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/mlp.safetensors", dir);
    aec_model *m = make_mlp(7);
    m->anomaly_json = dupstr("{\"factor\": 4, \"threshold\": 1.25, \"quantiles\": [0, 1]}");
    m->train_json = dupstr("{\"epochs\": 3, \"note\": \"quote \\\" and unicode \xc3\xa9\"}");
    m->codec_json = dupstr("{\"bits\": 8}");
    float stats[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
    int dims[2] = {2, 3};
    aec_error err = {{0}};
    REQUIRE(aec_model_set_extra(m, "aec.stats", stats, 2, dims, &err) == AEC_OK, "%s", err.msg);
    REQUIRE(aec_model_set_extra(m, "aec.one", stats, 1, (int[]){1}, &err) == AEC_OK, "%s", err.msg);
    aec_model_update_id(m);
    REQUIRE(aec_model_save(m, path, &err) == AEC_OK, "save: %s", err.msg);

    aec_model *l = NULL;
    REQUIRE(aec_model_load(&l, path, &err) == AEC_OK, "load: %s", err.msg);
    check_same_model(m, l, "mlp");

    /* the saved file: PyTorch names, num_batches_tracked, metadata, padding */
    size_t len;
    uint8_t *buf = test_read_file(path, &len);
    REQUIRE(buf, "read back");
    aec_st_file f;
    REQUIRE(aec_st_parse(&f, buf, len, &err) == AEC_OK, "%s", err.msg);
    CHECK((buf[0] | buf[1] << 8) % 8 == 0, "header not padded to 8");
    const aec_st_tensor *nbt = aec_st_find(&f, "3.num_batches_tracked");
    CHECK(nbt && nbt->dtype == AEC_DT_I64 && nbt->ndim == 0, "num_batches_tracked");
    const aec_st_tensor *w = aec_st_find(&f, "1.weight");
    CHECK(w && w->dtype == AEC_DT_F32 && w->ndim == 2 && w->shape[0] == 4 && w->shape[1] == 12,
          "1.weight [4,12]");
    CHECK(aec_st_find(&f, "aec.stats") != NULL, "extra written");
    CHECK(f.ntensors == 2 + 5 + 2 + 2, "ntensors %d", f.ntensors);
    CHECK(strcmp(aec_st_meta(&f, "aec.format"), "1") == 0, "aec.format");
    CHECK(strcmp(aec_st_meta(&f, "aec.latent"), "2") == 0, "aec.latent");
    CHECK(strcmp(aec_st_meta(&f, "aec.layers"), MLP_LAYERS) == 0, "aec.layers");
    CHECK(strcmp(aec_st_meta(&f, "aec.input"), "{\"channels\": 3, \"height\": 2, \"width\": 2}") ==
              0,
          "aec.input %s", aec_st_meta(&f, "aec.input"));
    aec_st_free(&f);

    /* load_memory on the same bytes, and saving again gives the same bytes */
    aec_model *l2 = NULL;
    REQUIRE(aec_model_load_memory(&l2, buf, len, "mem", &err) == AEC_OK, "%s", err.msg);
    check_same_model(m, l2, "mlp memory");
    char path2[600];
    snprintf(path2, sizeof path2, "%s/again.safetensors", dir);
    REQUIRE(aec_model_save(l2, path2, &err) == AEC_OK, "%s", err.msg);
    size_t len2;
    uint8_t *buf2 = test_read_file(path2, &len2);
    CHECK(buf2 && len2 == len && memcmp(buf, buf2, len) == 0, "save is not deterministic");
    free(buf2);
    free(buf);
    aec_model_free(l2);
    aec_model_free(l);
    aec_model_free(m);
}

static void test_round_trip_conv(void)
{
    const char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/conv.safetensors", dir);
    aec_model *m = make_conv(11);
    aec_error err = {{0}};
    REQUIRE(aec_model_save(m, path, &err) == AEC_OK, "save: %s", err.msg);
    /* saving over an existing file replaces it */
    aec_model_init_weights(m, 12);
    REQUIRE(aec_model_save(m, path, &err) == AEC_OK, "save: %s", err.msg);
    aec_model *l = NULL;
    REQUIRE(aec_model_load(&l, path, &err) == AEC_OK, "load: %s", err.msg);
    check_same_model(m, l, "conv");
    CHECK(!l->anomaly_json && !l->train_json && !l->codec_json && l->nextras == 0,
          "optional parts appeared");
    const aec_param *w = find_param(l, 3, "weight");
    CHECK(w && w->ndim == 4 && w->dims[0] == 4 && w->dims[1] == 3 && w->dims[2] == 3,
          "conv_transpose weight is [in,out,k,k]");
    aec_model_free(l);
    aec_model_free(m);

    /* saving into a folder that does not exist */
    m = make_conv(1);
    char bad[600];
    snprintf(bad, sizeof bad, "%s/nope/conv.safetensors", dir);
    CHECK(aec_model_save(m, bad, &err) == AEC_ERR_IO && strstr(err.msg, bad), "msg: %s", err.msg);
    aec_model_free(m);
}

/* ---- F16 ------------------------------------------------------------------- */

static void test_f16(void)
{
    aec_model *m = make_mlp(3);
    filedesc d;
    desc_from_model(&d, m);
    /* every float parameter as F16, except 4.bias which stays F32 (mixed is fine) */
    uint16_t *halves[MAXT] = {0};
    for (int i = 0; i < d.n; i++) {
        aec_st_out *o = &d.t[i];
        if (strcmp(o->dtype_name, "F32") != 0 || strcmp(o->name, "4.bias") == 0)
            continue;
        size_t n = o->nbytes / 4;
        halves[i] = malloc(n * 2 + 1);
        REQUIRE(halves[i], "oom");
        for (size_t k = 0; k < n; k++)
            halves[i][k] = aec_f32_to_f16(((const float *)o->data)[k]);
        o->dtype_name = "F16";
        o->data = halves[i];
        o->nbytes = n * 2;
    }
    uint16_t xh[3] = {aec_f32_to_f16(0.5f), aec_f32_to_f16(-65504.0f), 0x0001 /* subnormal */};
    desc_add(&d, "aec.half", "F16", 1, (int64_t[]){3}, xh, sizeof xh);
    aec_model *l = NULL;
    aec_error err = {{0}};
    REQUIRE(desc_load(&d, &l, &err) == AEC_OK, "f16 load: %s", err.msg);
    for (int li = 0; li < m->nlayers; li++)
        for (int p = 0; p < m->layers[li].nparams; p++) {
            const aec_param *a = &m->layers[li].params[p], *b = &l->layers[li].params[p];
            int f32 = li == 4 && strcmp(a->suffix, "bias") == 0;
            int same = 1;
            for (size_t k = 0; k < a->count; k++) {
                float want = f32 ? a->data[k] : aec_f16_to_f32(aec_f32_to_f16(a->data[k]));
                same &= memcmp(&want, &b->data[k], 4) == 0;
            }
            CHECK(same, "%d.%s not converted exactly", li, a->suffix);
        }
    const aec_extra_tensor *x = aec_model_find_extra(l, "aec.half");
    CHECK(x && x->count == 3 && x->data[0] == 0.5f && x->data[1] == -65504.0f &&
              x->data[2] == ldexpf(1.0f, -24),
          "F16 extra");
    aec_model_free(l);
    for (int i = 0; i < MAXT; i++)
        free(halves[i]);
    aec_model_free(m);
}

/* ---- rejection --------------------------------------------------------------- */

static void test_reject_tensors(void)
{
    aec_model *m = make_mlp(5);
    filedesc d;

    desc_from_model(&d, m);
    EXPECT_LOAD_OK(&d);

    desc_from_model(&d, m);
    desc_remove(&d, "3.num_batches_tracked"); /* optional */
    EXPECT_LOAD_OK(&d);

    desc_from_model(&d, m);
    desc_remove(&d, "1.bias");
    EXPECT_LOAD_FAIL(&d, "missing tensor '1.bias'");

    desc_from_model(&d, m);
    desc_remove(&d, "3.running_var");
    EXPECT_LOAD_FAIL(&d, "missing tensor '3.running_var'");

    float junk[12] = {0};
    desc_from_model(&d, m);
    desc_add(&d, "foo", "F32", 1, (int64_t[]){1}, junk, 4);
    EXPECT_LOAD_FAIL(&d, "unexpected tensor 'foo'");

    desc_from_model(&d, m);
    desc_add(&d, "2.weight", "F32", 1, (int64_t[]){1}, junk, 4);
    EXPECT_LOAD_FAIL(&d, "unexpected tensor '2.weight' (layer 2 (relu) has no parameter 'weight')");

    desc_from_model(&d, m);
    desc_add(&d, "1.running_mean", "F32", 1, (int64_t[]){4}, junk, 16);
    EXPECT_LOAD_FAIL(&d, "unexpected tensor '1.running_mean'");

    desc_from_model(&d, m);
    desc_add(&d, "1.num_batches_tracked", "I64", 0, NULL, &zero64, 8);
    EXPECT_LOAD_FAIL(&d, "unexpected tensor '1.num_batches_tracked'");

    desc_from_model(&d, m);
    desc_add(&d, "7.weight", "F32", 1, (int64_t[]){1}, junk, 4);
    EXPECT_LOAD_FAIL(&d, "unexpected tensor '7.weight'");

    desc_from_model(&d, m);
    desc_add(&d, "01.weight", "F32", 1, (int64_t[]){1}, junk, 4);
    EXPECT_LOAD_FAIL(&d, "unexpected tensor '01.weight'");

    desc_from_model(&d, m);
    desc_add(&d, "1.", "F32", 1, (int64_t[]){1}, junk, 4);
    EXPECT_LOAD_FAIL(&d, "unexpected tensor '1.'");

    /* wrong shape: transposed, wrong rank */
    desc_from_model(&d, m);
    aec_st_out *w = desc_find(&d, "1.weight");
    w->shape[0] = 12;
    w->shape[1] = 4;
    EXPECT_LOAD_FAIL(&d, "tensor '1.weight': shape [12,4] but layer 1 (linear) expects [4,12]");
    w->ndim = 1;
    w->shape[0] = 48;
    EXPECT_LOAD_FAIL(&d, "shape [48] but layer 1 (linear) expects [4,12]");

    /* wrong dtype */
    desc_from_model(&d, m);
    desc_find(&d, "1.bias")->dtype_name = "I32";
    EXPECT_LOAD_FAIL(&d, "tensor '1.bias': dtype I32, expected F32 or F16");
    desc_from_model(&d, m);
    aec_st_out *b = desc_find(&d, "4.bias");
    b->dtype_name = "F64";
    b->shape[0] = 6;
    EXPECT_LOAD_FAIL(&d, "dtype F64");
    desc_from_model(&d, m);
    desc_find(&d, "3.num_batches_tracked")->dtype_name = "F64";
    EXPECT_LOAD_FAIL(&d, "'3.num_batches_tracked': expected an I64 scalar");

    /* extras must be float */
    desc_from_model(&d, m);
    desc_add(&d, "aec.bad", "I64", 0, NULL, &zero64, 8);
    EXPECT_LOAD_FAIL(&d, "tensor 'aec.bad': dtype I64");
    desc_from_model(&d, m);
    desc_add(&d, "aec.big", "F32", 5, (int64_t[]){1, 1, 1, 1, 1}, junk, 4);
    EXPECT_LOAD_FAIL(&d, "'aec.big': 5 dimensions");

    aec_model_free(m);
}

static void test_reject_metadata(void)
{
    aec_model *m = make_mlp(5);
    filedesc d;

    desc_from_model(&d, m);
    desc_meta(&d, "aec.format", "2");
    EXPECT_LOAD_FAIL(&d, "aec.format '2' is not supported");
    desc_meta(&d, "aec.format", NULL);
    EXPECT_LOAD_FAIL(&d, "missing metadata aec.format");

    desc_from_model(&d, m);
    desc_meta(&d, "aec.layers", NULL);
    EXPECT_LOAD_FAIL(&d, "missing metadata aec.layers");
    desc_from_model(&d, m);
    desc_meta(&d, "aec.latent", NULL);
    EXPECT_LOAD_FAIL(&d, "missing metadata aec.latent");
    desc_from_model(&d, m);
    desc_meta(&d, "aec.input", NULL);
    EXPECT_LOAD_FAIL(&d, "missing metadata aec.input");

    /* unknown layer type (the model builder says so) */
    desc_from_model(&d, m);
    desc_meta(&d, "aec.layers",
              "[{\"type\": \"flatten\"}, {\"type\": \"linear\", \"in\": 12, \"out\": 4}, "
              "{\"type\": \"gelu\"}, {\"type\": \"batchnorm\", \"features\": 4}, "
              "{\"type\": \"linear\", \"in\": 4, \"out\": 12}, {\"type\": \"sigmoid\"}, "
              "{\"type\": \"unflatten\", \"shape\": [3, 2, 2]}]");
    EXPECT_LOAD_FAIL(&d, "gelu");
    desc_meta(&d, "aec.layers", "{\"type\": \"relu\"}");
    EXPECT_LOAD_FAIL(&d, "aec.layers is not a JSON array");
    desc_meta(&d, "aec.layers", "[");
    EXPECT_LOAD_FAIL(&d, "aec.layers is not a JSON array");

    /* latent index */
    const char *bad_latent[] = {"7", "99", "-1", "abc", "", "2 ", "02", "1e1", "99999999999"};
    for (size_t i = 0; i < sizeof bad_latent / sizeof bad_latent[0]; i++) {
        desc_from_model(&d, m);
        desc_meta(&d, "aec.latent", bad_latent[i]);
        EXPECT_LOAD_FAIL(&d, "latent");
    }
    desc_from_model(&d, m);
    desc_meta(&d, "aec.latent", "6"); /* the last layer cannot be the latent */
    EXPECT_LOAD_FAIL(&d, "latent");

    /* input shape */
    const char *bad_input[] = {"{\"channels\": 3, \"height\": 2}",
                               "{\"channels\": 3, \"height\": 2, \"width\": 0}",
                               "{\"channels\": 3, \"height\": 2, \"width\": 2.5}",
                               "{\"channels\": 3, \"height\": 2, \"width\": \"2\"}",
                               "[3, 2, 2]",
                               "nope"};
    for (size_t i = 0; i < sizeof bad_input / sizeof bad_input[0]; i++) {
        desc_from_model(&d, m);
        desc_meta(&d, "aec.input", bad_input[i]);
        EXPECT_LOAD_FAIL(&d, "aec.input");
    }
    desc_from_model(&d, m);
    desc_meta(&d, "aec.input", "{\"channels\": 3, \"height\": 4, \"width\": 4}");
    EXPECT_LOAD_FAIL(&d, BAD_NAME ": "); /* the layers do not fit 3x4x4 */

    /* optional JSON objects */
    const char *opt[] = {"aec.anomaly", "aec.train", "aec.codec"};
    for (int i = 0; i < 3; i++) {
        desc_from_model(&d, m);
        desc_meta(&d, opt[i], "[1, 2]");
        EXPECT_LOAD_FAIL(&d, opt[i]);
        desc_meta(&d, opt[i], "{\"a\": ");
        EXPECT_LOAD_FAIL(&d, opt[i]);
        desc_meta(&d, opt[i], "{}");
        EXPECT_LOAD_OK(&d);
    }
    /* unknown metadata keys are ignored (PyTorch writers add "format": "pt") */
    desc_from_model(&d, m);
    desc_meta(&d, "format", "pt");
    EXPECT_LOAD_OK(&d);
    aec_model_free(m);
}

/* A tiny file that declares a huge layer is refused before allocating it. */
static void test_reject_huge_spec(void)
{
    aec_model *m = make_mlp(5);
    filedesc d;
    desc_from_model(&d, m);
    desc_meta(&d, "aec.layers",
              "[{\"type\": \"flatten\"}, {\"type\": \"linear\", \"in\": 12, \"out\": 16384}, "
              "{\"type\": \"linear\", \"in\": 16384, \"out\": 16384}, "
              "{\"type\": \"linear\", \"in\": 16384, \"out\": 12}, "
              "{\"type\": \"unflatten\", \"shape\": [3, 2, 2]}]");
    EXPECT_LOAD_FAIL(&d, "declares at least");
    aec_model_free(m);
}

static void test_reject_files(void)
{
    aec_model *m = (aec_model *)1;
    aec_error err = {{0}};
    const char *missing = "/nonexistent-aec-dir/model.safetensors";
    CHECK(aec_model_load(&m, missing, &err) == AEC_ERR_IO && m == NULL, "missing file");
    CHECK(strncmp(err.msg, missing, strlen(missing)) == 0, "message: %s", err.msg);

    /* not a safetensors file at all */
    m = (aec_model *)1;
    CHECK(aec_model_load_memory(&m, "hello", 5, BAD_NAME, &err) == AEC_ERR_FORMAT && !m, "garbage");
    CHECK(strncmp(err.msg, BAD_NAME ": ", strlen(BAD_NAME) + 2) == 0, "message: %s", err.msg);
    /* a safetensors file without any aec metadata */
    uint8_t *buf;
    size_t len;
    REQUIRE(aec_st_serialize(NULL, 0, NULL, NULL, 0, &buf, &len, &err) == AEC_OK, "%s", err.msg);
    CHECK(aec_model_load_memory(&m, buf, len, BAD_NAME, &err) != AEC_OK &&
              strstr(err.msg, "aec.format"),
          "message: %s", err.msg);
    free(buf);

    /* larger than 1 GiB: refused without reading (a sparse file) */
    const char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/huge.safetensors", dir);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    REQUIRE(fd >= 0, "create %s", path);
    REQUIRE(ftruncate(fd, (off_t)(1ll << 30) + 1) == 0, "ftruncate");
    close(fd);
    CHECK(aec_model_load(&m, path, &err) == AEC_ERR_LIMIT, "1 GiB + 1 accepted");
    CHECK(strncmp(err.msg, path, strlen(path)) == 0 && strstr(err.msg, "1 GiB"), "message: %s",
          err.msg);
}

/* ---- the PyTorch-written reference files --------------------------------------- */

static void check_vector_shapes(const aec_model *m, const char *name)
{
    int mlp = strstr(name, "mlp") != NULL;
    CHECK(m->nlayers == (mlp ? 12 : 11), "%s: nlayers %d", name, m->nlayers);
    CHECK(m->latent_index == 5, "%s: latent %d", name, m->latent_index);
    CHECK(m->input.c == 3 && m->input.h == 8 && m->input.w == 8, "%s: input", name);
    if (m->nlayers < 10)
        return;
    const aec_param *p;
    if (mlp) {
        p = find_param(m, 2, "weight");
        CHECK(p && p->ndim == 2 && p->dims[0] == 96 && p->dims[1] == 192, "%s: 2.weight", name);
        p = find_param(m, 6, "running_var");
        CHECK(p && p->count == 48, "%s: 6.running_var", name);
        CHECK(aec_model_latent_count(m) == 48, "%s: latent count", name);
    } else {
        p = find_param(m, 6, "weight");
        CHECK(p && p->ndim == 4 && p->dims[0] == 4 && p->dims[1] == 8 && p->dims[2] == 3,
              "%s: 6.weight [4,8,3,3]", name);
        p = find_param(m, 9, "weight");
        CHECK(p && p->dims[0] == 3 && p->dims[1] == 8, "%s: 9.weight", name);
        CHECK(aec_model_latent_count(m) == 64, "%s: latent count", name);
    }
    CHECK(aec_model_output_count(m) == 192, "%s: output count", name);
}

static void test_vectors(void)
{
    const char *shared = test_shared_dir();
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/testvectors", shared ? shared : "");
    if (!shared || access(dir, R_OK) != 0) {
        fprintf(stderr, "note: %s missing; skipping the reference-file checks\n", dir);
        return;
    }
    const char *names[] = {"tiny_mlp", "tiny_conv"};
    for (int i = 0; i < 2; i++) {
        char p32[1200], p16[1200];
        snprintf(p32, sizeof p32, "%s/%s.safetensors", dir, names[i]);
        snprintf(p16, sizeof p16, "%s/%s.f16.safetensors", dir, names[i]);
        aec_model *a = NULL, *b = NULL;
        aec_error err = {{0}};
        CHECK(aec_model_load(&a, p32, &err) == AEC_OK, "%s: %s", p32, err.msg);
        CHECK(aec_model_load(&b, p16, &err) == AEC_OK, "%s: %s", p16, err.msg);
        if (!a || !b) {
            aec_model_free(a);
            aec_model_free(b);
            continue;
        }
        check_vector_shapes(a, p32);
        check_vector_shapes(b, p16);
        /* the F16 file holds the same weights rounded to F16 */
        long diff = 0;
        for (int li = 0; li < a->nlayers; li++)
            for (int p = 0; p < a->layers[li].nparams; p++) {
                const aec_param *x = &a->layers[li].params[p], *y = &b->layers[li].params[p];
                for (size_t k = 0; k < x->count; k++) {
                    float want = aec_f16_to_f32(aec_f32_to_f16(x->data[k]));
                    diff += memcmp(&want, &y->data[k], 4) != 0;
                }
            }
        CHECK(diff == 0, "%s: %ld values differ from f16(f32 weights)", names[i], diff);
        /* save and reload: identical */
        char out[1024];
        snprintf(out, sizeof out, "%s/%s.safetensors", test_tmpdir(), names[i]);
        aec_model *c = NULL;
        CHECK(aec_model_save(a, out, &err) == AEC_OK, "%s", err.msg);
        CHECK(aec_model_load(&c, out, &err) == AEC_OK, "%s", err.msg);
        if (c)
            check_same_model(a, c, names[i]);
        aec_model_free(a);
        aec_model_free(b);
        aec_model_free(c);
    }
}

/* The fuzzing seed corpus (tests/fuzz/corpus/model_load, made by
 * tests/fuzz/make_seeds.py) must stay loadable, or the fuzzer starts from
 * files that fail at the first check. Found next to this source file. */
static void test_fuzz_seeds(void)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *cut = strstr(dir, "unit/test_model_file.c");
    if (!cut || dir[0] != '/') {
        fprintf(stderr, "note: source path unknown; skipping the seed corpus check\n");
        return;
    }
    snprintf(cut, sizeof dir - (size_t)(cut - dir), "fuzz/corpus/model_load");
    const char *seeds[] = {"mlp", "conv", "conv_f16", "gray"};
    for (int i = 0; i < 4; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, seeds[i]);
        if (access(path, R_OK) != 0) {
            fprintf(stderr, "note: %s missing; skipping it\n", path);
            continue;
        }
        aec_model *m = NULL;
        aec_error err = {{0}};
        CHECK(aec_model_load(&m, path, &err) == AEC_OK, "seed: %s", err.msg);
        aec_model_free(m);
    }
}

int main(void)
{
    test_round_trip_mlp();
    test_round_trip_conv();
    test_f16();
    test_reject_tensors();
    test_reject_metadata();
    test_reject_huge_spec();
    test_reject_files();
    test_vectors();
    test_fuzz_seeds();
    return TEST_SUMMARY();
}
