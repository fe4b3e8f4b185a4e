/* safetensors.c - the safetensors container: strict parsing, serializing,
 * and the atomic file write / bounded file read that model files use.
 *
 * Owns: aec_st_parse / aec_st_free / aec_st_find / aec_st_meta /
 * aec_st_dtype_size / aec_st_serialize / aec_write_file_atomic /
 * aec_read_file (include/aec/safetensors.h).
 *
 * Parsing trusts nothing: the header length is bounded before anything is
 * allocated, the JSON is parsed from a NUL-terminated copy, every number must
 * be a non-negative integer that a double holds exactly, sizes are multiplied
 * with overflow checks, and the data offsets must tile [0, data_len) exactly.
 * After a successful parse, tensors are sorted by name (aec_st_find is a
 * binary search) and every [begin, end) lies inside f->data.
 */
#include "aec/safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- dtypes ------------------------------------------------------------ */

typedef struct {
    const char *name;
    aec_st_dtype dt;
    size_t size;
} dtype_info;

static const dtype_info dtypes[] = {
    {"F32", AEC_DT_F32, 4},    {"F16", AEC_DT_F16, 2},       {"I64", AEC_DT_I64, 8},
    {"BF16", AEC_DT_OTHER, 2}, {"F64", AEC_DT_OTHER, 8},     {"I32", AEC_DT_OTHER, 4},
    {"I16", AEC_DT_OTHER, 2},  {"I8", AEC_DT_OTHER, 1},      {"U64", AEC_DT_OTHER, 8},
    {"U32", AEC_DT_OTHER, 4},  {"U16", AEC_DT_OTHER, 2},     {"U8", AEC_DT_OTHER, 1},
    {"BOOL", AEC_DT_OTHER, 1}, {"F8_E4M3", AEC_DT_OTHER, 1}, {"F8_E5M2", AEC_DT_OTHER, 1},
};

static const dtype_info *dtype_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, name) == 0)
            return &dtypes[i];
    return NULL;
}

size_t aec_st_dtype_size(aec_st_dtype dt)
{
    switch (dt) {
    case AEC_DT_F32: return 4;
    case AEC_DT_F16: return 2;
    case AEC_DT_I64: return 8;
    case AEC_DT_OTHER: return 0; /* depends on the name; see dtype_lookup */
    }
    return 0;
}

/* ---- small helpers ----------------------------------------------------- */

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static uint64_t load_u64_le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void store_u64_le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Largest integer a double represents exactly, and so the largest value a
 * shape entry or offset may have. */
#define MAX_EXACT_INT 9007199254740992.0 /* 2^53 */

/* A JSON number that is a non-negative integer <= 2^53. */
static int json_uint(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item))
        return 0;
    double d = item->valuedouble;
    if (!(d >= 0.0) || d > MAX_EXACT_INT || d != (double)(uint64_t)d)
        return 0;
    *out = (uint64_t)d;
    return 1;
}

static int mul_overflows(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a)
        return 1;
    *out = a * b;
    return 0;
}

/* ---- parsing ----------------------------------------------------------- */

void aec_st_free(aec_st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->ntensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    memset(f, 0, sizeof *f);
}

static aec_status parse_metadata(aec_st_file *f, const cJSON *meta, aec_error *err)
{
    if (!cJSON_IsObject(meta))
        return aec_fail(err, AEC_ERR_FORMAT, "__metadata__ is not a JSON object");
    int n = cJSON_GetArraySize(meta);
    if (n == 0)
        return AEC_OK;
    f->meta_keys = calloc((size_t)n, sizeof *f->meta_keys);
    f->meta_values = calloc((size_t)n, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory for %d metadata entries", n);
    for (const cJSON *kv = meta->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv) || !kv->valuestring)
            return aec_fail(err, AEC_ERR_FORMAT, "__metadata__ '%s': value is not a string",
                            kv->string);
        for (int i = 0; i < f->nmeta; i++)
            if (strcmp(f->meta_keys[i], kv->string) == 0)
                return aec_fail(err, AEC_ERR_FORMAT, "__metadata__ '%s': duplicate key",
                                kv->string);
        f->meta_keys[f->nmeta] = dup_str(kv->string);
        f->meta_values[f->nmeta] = dup_str(kv->valuestring);
        f->nmeta++; /* counted before the check so aec_st_free frees both */
        if (!f->meta_keys[f->nmeta - 1] || !f->meta_values[f->nmeta - 1])
            return aec_fail(err, AEC_ERR_NOMEM, "out of memory for metadata");
    }
    return AEC_OK;
}

static aec_status parse_shape(aec_st_tensor *t, const cJSON *shape, uint64_t *count, aec_error *err)
{
    if (!cJSON_IsArray(shape))
        return aec_fail(err, AEC_ERR_FORMAT, "tensor '%s': shape is not an array", t->name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > AEC_ST_MAX_DIMS)
        return aec_fail(err, AEC_ERR_FORMAT, "tensor '%s': %d dimensions (at most %d)", t->name,
                        ndim, AEC_ST_MAX_DIMS);
    uint64_t n = 1;
    int d = 0;
    for (const cJSON *it = shape->child; it; it = it->next, d++) {
        uint64_t v;
        if (!json_uint(it, &v))
            return aec_fail(err, AEC_ERR_FORMAT,
                            "tensor '%s': shape[%d] is not a non-negative integer", t->name, d);
        if (mul_overflows(n, v, &n) || n > (uint64_t)INT64_MAX)
            return aec_fail(err, AEC_ERR_FORMAT, "tensor '%s': shape element count overflows",
                            t->name);
        t->shape[d] = (int64_t)v;
    }
    t->ndim = ndim;
    *count = n;
    return AEC_OK;
}

static aec_status parse_offsets(aec_st_tensor *t, const cJSON *offs, uint64_t nbytes,
                                size_t data_len, aec_error *err)
{
    uint64_t b = 0, e = 0;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(offs->child, &b) ||
        !json_uint(offs->child->next, &e))
        return aec_fail(err, AEC_ERR_FORMAT,
                        "tensor '%s': data_offsets is not [begin, end] of non-negative integers",
                        t->name);
    if (e < b)
        return aec_fail(err, AEC_ERR_FORMAT,
                        "tensor '%s': data_offsets [%" PRIu64 ",%" PRIu64 "] end before begin",
                        t->name, b, e);
    if (e > data_len)
        return aec_fail(err, AEC_ERR_FORMAT,
                        "tensor '%s': data_offsets [%" PRIu64 ",%" PRIu64
                        "] past the end of the data (%zu bytes)",
                        t->name, b, e, data_len);
    if (e - b != nbytes)
        return aec_fail(err, AEC_ERR_FORMAT,
                        "tensor '%s': data_offsets [%" PRIu64 ",%" PRIu64 "] hold %" PRIu64
                        " bytes but dtype %s and the shape need %" PRIu64,
                        t->name, b, e, e - b, t->dtype_name, nbytes);
    t->begin = (size_t)b;
    t->end = (size_t)e;
    return AEC_OK;
}

static aec_status parse_tensor(aec_st_tensor *t, const cJSON *entry, size_t data_len,
                               aec_error *err)
{
    if (!cJSON_IsObject(entry))
        return aec_fail(err, AEC_ERR_FORMAT, "tensor '%s': entry is not a JSON object", t->name);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *kv = entry->child; kv; kv = kv->next) {
        const cJSON **slot = strcmp(kv->string, "dtype") == 0          ? &dtype
                             : strcmp(kv->string, "shape") == 0        ? &shape
                             : strcmp(kv->string, "data_offsets") == 0 ? &offs
                                                                       : NULL;
        if (!slot)
            continue; /* unknown keys are ignored, as the reference reader does */
        if (*slot)
            return aec_fail(err, AEC_ERR_FORMAT, "tensor '%s': duplicate key '%s'", t->name,
                            kv->string);
        *slot = kv;
    }
    if (!dtype || !shape || !offs)
        return aec_fail(err, AEC_ERR_FORMAT, "tensor '%s': missing %s", t->name,
                        !dtype   ? "dtype"
                        : !shape ? "shape"
                                 : "data_offsets");
    if (!cJSON_IsString(dtype) || !dtype->valuestring)
        return aec_fail(err, AEC_ERR_FORMAT, "tensor '%s': dtype is not a string", t->name);
    const dtype_info *di = dtype_lookup(dtype->valuestring);
    if (!di)
        return aec_fail(err, AEC_ERR_UNSUPPORTED, "tensor '%s': unknown dtype '%.32s'", t->name,
                        dtype->valuestring);
    t->dtype = di->dt;
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", di->name);
    uint64_t count = 0, nbytes = 0;
    aec_status st = parse_shape(t, shape, &count, err);
    if (st != AEC_OK)
        return st;
    if (mul_overflows(count, di->size, &nbytes))
        return aec_fail(err, AEC_ERR_FORMAT, "tensor '%s': byte size overflows", t->name);
    return parse_offsets(t, offs, nbytes, data_len, err);
}

static int cmp_by_offset(const void *a, const void *b)
{
    const aec_st_tensor *x = *(const aec_st_tensor *const *)a;
    const aec_st_tensor *y = *(const aec_st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(((const aec_st_tensor *)a)->name, ((const aec_st_tensor *)b)->name);
}

/* The offsets, sorted, must tile [0, data_len) with no hole or overlap. */
static aec_status check_layout(const aec_st_file *f, aec_error *err)
{
    if (f->ntensors == 0) {
        if (f->data_len != 0)
            return aec_fail(err, AEC_ERR_FORMAT, "no tensors but %zu bytes of data", f->data_len);
        return AEC_OK;
    }
    const aec_st_tensor **v = malloc((size_t)f->ntensors * sizeof *v);
    if (!v)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory sorting %d tensors", f->ntensors);
    for (int i = 0; i < f->ntensors; i++)
        v[i] = &f->tensors[i];
    qsort(v, (size_t)f->ntensors, sizeof *v, cmp_by_offset);
    aec_status st = AEC_OK;
    size_t pos = 0;
    for (int i = 0; i < f->ntensors && st == AEC_OK; i++) {
        const aec_st_tensor *t = v[i];
        if (t->begin < pos)
            st =
                aec_fail(err, AEC_ERR_FORMAT,
                         "tensor '%s': data_offsets [%zu,%zu] overlap previous tensor '%s' "
                         "[%zu,%zu]",
                         t->name, t->begin, t->end, v[i - 1]->name, v[i - 1]->begin, v[i - 1]->end);
        else if (t->begin > pos)
            st = aec_fail(err, AEC_ERR_FORMAT,
                          "tensor '%s': data_offsets [%zu,%zu] leave a hole after offset %zu",
                          t->name, t->begin, t->end, pos);
        pos = t->end;
    }
    if (st == AEC_OK && pos != f->data_len)
        st = aec_fail(err, AEC_ERR_FORMAT,
                      "tensors end at offset %zu but the data is %zu bytes (%zu trailing bytes)",
                      pos, f->data_len, f->data_len - pos);
    free(v);
    return st;
}

static aec_status check_names(aec_st_file *f, aec_error *err)
{
    qsort(f->tensors, (size_t)f->ntensors, sizeof *f->tensors, cmp_by_name);
    for (int i = 1; i < f->ntensors; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return aec_fail(err, AEC_ERR_FORMAT, "tensor '%s': duplicate name", f->tensors[i].name);
    return AEC_OK;
}

/* Walks the top-level object: metadata and tensor entries. */
static aec_status parse_entries(aec_st_file *f, const cJSON *root, aec_error *err)
{
    int n = cJSON_GetArraySize(root);
    f->tensors = calloc(n > 0 ? (size_t)n : 1, sizeof *f->tensors);
    if (!f->tensors)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory for %d tensors", n);
    int have_meta = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        aec_status st;
        if (strcmp(e->string, "__metadata__") == 0) {
            if (have_meta++)
                return aec_fail(err, AEC_ERR_FORMAT, "duplicate __metadata__");
            st = parse_metadata(f, e, err);
        } else if (e->string[0] == '\0') {
            return aec_fail(err, AEC_ERR_FORMAT, "tensor with an empty name");
        } else {
            aec_st_tensor *t = &f->tensors[f->ntensors++];
            t->name = dup_str(e->string);
            if (!t->name)
                return aec_fail(err, AEC_ERR_NOMEM, "out of memory for tensor names");
            st = parse_tensor(t, e, f->data_len, err);
        }
        if (st != AEC_OK)
            return st;
    }
    aec_status st = check_names(f, err);
    return st != AEC_OK ? st : check_layout(f, err);
}

/* Reads the length prefix; sets *hlen on success. */
static aec_status parse_prefix(const uint8_t *buf, size_t len, size_t *hlen, aec_error *err)
{
    if (len < 8)
        return aec_fail(err, AEC_ERR_FORMAT,
                        "file is %zu bytes, too short for the 8-byte header length", len);
    uint64_t n = load_u64_le(buf);
    if (n > AEC_ST_MAX_HEADER)
        return aec_fail(err, AEC_ERR_LIMIT, "header length %" PRIu64 " exceeds the limit of %u", n,
                        (unsigned)AEC_ST_MAX_HEADER);
    if (n > len - 8)
        return aec_fail(err, AEC_ERR_FORMAT,
                        "header length %" PRIu64 " runs past the end of the file (%zu bytes)", n,
                        len);
    if (n < 2)
        return aec_fail(err, AEC_ERR_FORMAT, "header length %" PRIu64 " is too short for JSON", n);
    *hlen = (size_t)n;
    return AEC_OK;
}

/* Parses the header JSON; only spaces may follow the object. */
static aec_status parse_header_json(const uint8_t *hdr, size_t hlen, cJSON **out, aec_error *err)
{
    char *text = malloc(hlen + 1);
    if (!text)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory for a %zu-byte header", hlen);
    memcpy(text, hdr, hlen);
    text[hlen] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 0);
    aec_status st = AEC_OK;
    if (!root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        st = aec_fail(err, AEC_ERR_FORMAT, "header is not valid JSON (error near byte %zu)", at);
    } else if (!cJSON_IsObject(root)) {
        st = aec_fail(err, AEC_ERR_FORMAT, "header is not a JSON object");
    } else {
        for (size_t i = (size_t)(end - text); i < hlen && st == AEC_OK; i++)
            if (text[i] != ' ')
                st = aec_fail(err, AEC_ERR_FORMAT,
                              "header has byte 0x%02x after the JSON object at offset %zu "
                              "(only space padding is allowed)",
                              (unsigned char)text[i], i);
    }
    free(text);
    if (st != AEC_OK) {
        cJSON_Delete(root);
        return st;
    }
    *out = root;
    return AEC_OK;
}

aec_status aec_st_parse(aec_st_file *f, const uint8_t *buf, size_t len, aec_error *err)
{
    memset(f, 0, sizeof *f);
    size_t hlen = 0;
    aec_status st = parse_prefix(buf, len, &hlen, err);
    if (st != AEC_OK)
        return st;
    cJSON *root = NULL;
    st = parse_header_json(buf + 8, hlen, &root, err);
    if (st != AEC_OK)
        return st;
    f->data = buf + 8 + hlen;
    f->data_len = len - 8 - hlen;
    st = parse_entries(f, root, err);
    cJSON_Delete(root);
    if (st != AEC_OK)
        aec_st_free(f);
    return st;
}

const aec_st_tensor *aec_st_find(const aec_st_file *f, const char *name)
{
    int lo = 0, hi = f->ntensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->tensors[mid].name);
        if (c == 0)
            return &f->tensors[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *aec_st_meta(const aec_st_file *f, const char *key)
{
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}

/* ---- serializing ------------------------------------------------------- */

/* A growable byte buffer; on allocation failure `failed` is set and further
 * appends are ignored, so callers check once at the end. */
typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_append(strbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(strbuf *b, const char *s)
{
    sb_append(b, s, strlen(s));
}

static void sb_u64(strbuf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    sb_append(b, tmp, (size_t)n);
}

/* JSON string literal; bytes >= 0x80 are copied (UTF-8 passes through). */
static void sb_json_string(strbuf *b, const char *s)
{
    sb_append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            sb_append(b, esc, 2);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_append(b, esc, 6);
        } else {
            sb_append(b, (const char *)&c, 1);
        }
    }
    sb_append(b, "\"", 1);
}

static int cmp_out_name(const void *a, const void *b)
{
    const aec_st_out *x = *(const aec_st_out *const *)a;
    const aec_st_out *y = *(const aec_st_out *const *)b;
    return strcmp(x->name, y->name);
}

static aec_status check_out(const aec_st_out *t, aec_error *err)
{
    if (!t->name || !t->name[0] || strcmp(t->name, "__metadata__") == 0)
        return aec_fail(err, AEC_ERR_INVALID, "tensor name '%s' is not allowed",
                        t->name ? t->name : "(null)");
    const dtype_info *di = t->dtype_name ? dtype_lookup(t->dtype_name) : NULL;
    if (!di)
        return aec_fail(err, AEC_ERR_INVALID, "tensor '%s': unknown dtype '%s'", t->name,
                        t->dtype_name ? t->dtype_name : "(null)");
    if (t->ndim < 0 || t->ndim > AEC_ST_MAX_DIMS)
        return aec_fail(err, AEC_ERR_INVALID, "tensor '%s': %d dimensions", t->name, t->ndim);
    uint64_t n = di->size;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] < 0 || mul_overflows(n, (uint64_t)t->shape[d], &n))
            return aec_fail(err, AEC_ERR_INVALID, "tensor '%s': bad shape", t->name);
    if (n != t->nbytes)
        return aec_fail(err, AEC_ERR_INVALID,
                        "tensor '%s': %zu bytes given but dtype and shape need %" PRIu64, t->name,
                        t->nbytes, n);
    if (t->nbytes && !t->data)
        return aec_fail(err, AEC_ERR_INVALID, "tensor '%s': no data", t->name);
    return AEC_OK;
}

static void write_tensor_entry(strbuf *b, const aec_st_out *t, size_t begin)
{
    sb_json_string(b, t->name);
    sb_puts(b, ":{\"dtype\":");
    sb_json_string(b, t->dtype_name);
    sb_puts(b, ",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) {
        if (d)
            sb_puts(b, ",");
        sb_u64(b, (uint64_t)t->shape[d]);
    }
    sb_puts(b, "],\"data_offsets\":[");
    sb_u64(b, begin);
    sb_puts(b, ",");
    sb_u64(b, begin + t->nbytes);
    sb_puts(b, "]}");
}

static void write_metadata(strbuf *b, const char *const *keys, const char *const *values, int nmeta)
{
    sb_puts(b, "\"__metadata__\":{");
    for (int i = 0; i < nmeta; i++) {
        if (i)
            sb_puts(b, ",");
        sb_json_string(b, keys[i]);
        sb_puts(b, ":");
        sb_json_string(b, values[i]);
    }
    sb_puts(b, "}");
}

/* Builds the header JSON (unpadded) for tensors already sorted by name. */
static aec_status build_header(strbuf *b, const aec_st_out *const *v, int n,
                               const char *const *meta_keys, const char *const *meta_values,
                               int nmeta, size_t *data_len, aec_error *err)
{
    for (int i = 0; i < nmeta; i++) {
        if (!meta_keys || !meta_values || !meta_keys[i] || !meta_values[i])
            return aec_fail(err, AEC_ERR_INVALID, "metadata entry %d is NULL", i);
        for (int j = 0; j < i; j++)
            if (strcmp(meta_keys[i], meta_keys[j]) == 0)
                return aec_fail(err, AEC_ERR_INVALID, "metadata key '%s' given twice",
                                meta_keys[i]);
    }
    sb_puts(b, "{");
    if (nmeta > 0)
        write_metadata(b, meta_keys, meta_values, nmeta);
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && strcmp(v[i - 1]->name, v[i]->name) == 0)
            return aec_fail(err, AEC_ERR_INVALID, "tensor '%s': duplicate name", v[i]->name);
        if (i > 0 || nmeta > 0)
            sb_puts(b, ",");
        write_tensor_entry(b, v[i], pos);
        pos += v[i]->nbytes;
    }
    sb_puts(b, "}");
    while (b->len % 8 != 0)
        sb_puts(b, " ");
    if (b->failed)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory building the header");
    *data_len = pos;
    return AEC_OK;
}

aec_status aec_st_serialize(const aec_st_out *tensors, int n, const char *const *meta_keys,
                            const char *const *meta_values, int nmeta, uint8_t **out,
                            size_t *out_len, aec_error *err)
{
    *out = NULL;
    *out_len = 0;
    if (n < 0 || nmeta < 0)
        return aec_fail(err, AEC_ERR_INVALID, "negative tensor or metadata count");
    for (int i = 0; i < n; i++) {
        aec_status st = check_out(&tensors[i], err);
        if (st != AEC_OK)
            return st;
    }
    const aec_st_out **v = malloc((n > 0 ? (size_t)n : 1) * sizeof *v);
    if (!v)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        v[i] = &tensors[i];
    qsort(v, (size_t)n, sizeof *v, cmp_out_name);
    strbuf hdr = {0};
    size_t data_len = 0;
    aec_status st = build_header(&hdr, v, n, meta_keys, meta_values, nmeta, &data_len, err);
    uint8_t *buf = NULL;
    if (st == AEC_OK) {
        buf = malloc(8 + hdr.len + data_len);
        if (!buf)
            st = aec_fail(err, AEC_ERR_NOMEM, "out of memory for a %zu-byte file",
                          8 + hdr.len + data_len);
    }
    if (st == AEC_OK) {
        store_u64_le(buf, hdr.len);
        memcpy(buf + 8, hdr.p, hdr.len);
        size_t pos = 8 + hdr.len;
        for (int i = 0; i < n; i++) {
            if (v[i]->nbytes)
                memcpy(buf + pos, v[i]->data, v[i]->nbytes);
            pos += v[i]->nbytes;
        }
        *out = buf;
        *out_len = pos;
    }
    free(hdr.p);
    free(v);
    return st;
}

/* ---- files ------------------------------------------------------------- */

static aec_status io_fail(aec_error *err, const char *path, const char *what, int e)
{
    if (e == ENOSPC || e == EDQUOT)
        return aec_fail(err, AEC_ERR_IO, "%s: disk full (%s: %s)", path, what, strerror(e));
    return aec_fail(err, AEC_ERR_IO, "%s: %s: %s", path, what, strerror(e));
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) { /* should not happen for regular files; treat as full */
            errno = ENOSPC;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* fsync the folder holding path so the rename is durable. Best effort:
 * some file systems refuse fsync on folders, and the rename already happened. */
static void fsync_parent(const char *path)
{
    char *copy = dup_str(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return;
    while (fsync(fd) != 0 && errno == EINTR) {
    }
    close(fd);
}

/* The new file keeps the old file's permissions, or gets 0644. */
static void set_mode(int fd, const char *path)
{
    struct stat st;
    mode_t mode = 0644;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        mode = st.st_mode & 07777;
    (void)fchmod(fd, mode);
}

aec_status aec_write_file_atomic(const char *path, const void *data, size_t len, aec_error *err)
{
    if (!path || !*path)
        return aec_fail(err, AEC_ERR_INVALID, "empty path");
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof ".tmp.XXXXXX");
    if (!tmp)
        return aec_fail(err, AEC_ERR_NOMEM, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    int fd = mkstemp(tmp);
    if (fd < 0) {
        aec_status st = io_fail(err, path, "cannot create a temp file next to it", errno);
        free(tmp);
        return st;
    }
    set_mode(fd, path);
    aec_status st = AEC_OK;
    if (write_all(fd, data, len) != 0)
        st = io_fail(err, path, "write failed", errno);
    else if (fsync(fd) != 0)
        st = io_fail(err, path, "fsync failed", errno);
    if (close(fd) != 0 && st == AEC_OK)
        st = io_fail(err, path, "close failed", errno);
    if (st == AEC_OK && rename(tmp, path) != 0)
        st = io_fail(err, path, "rename failed", errno);
    if (st != AEC_OK)
        unlink(tmp);
    else
        fsync_parent(path);
    free(tmp);
    return st;
}

static aec_status read_fd(int fd, const char *path, size_t max_len, size_t hint, uint8_t **out,
                          size_t *out_len, aec_error *err)
{
    size_t cap = hint < max_len ? hint + 1 : max_len + 1, len = 0;
    if (cap < 4096)
        cap = 4096;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return aec_fail(err, AEC_ERR_NOMEM, "%s: out of memory for %zu bytes", path, cap);
    for (;;) {
        if (len == cap) {
            size_t ncap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                return aec_fail(err, AEC_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            return aec_fail(err, AEC_ERR_IO, "%s: read failed: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > max_len) {
            free(buf);
            return aec_fail(err, AEC_ERR_LIMIT, "%s: file is larger than the limit of %zu bytes",
                            path, max_len);
        }
    }
    *out = buf;
    *out_len = len;
    return AEC_OK;
}

aec_status aec_read_file(const char *path, size_t max_len, uint8_t **out, size_t *out_len,
                         aec_error *err)
{
    *out = NULL;
    *out_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return aec_fail(err, AEC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return aec_fail(err, AEC_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return aec_fail(err, AEC_ERR_IO, "%s: is a directory", path);
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max_len) {
        close(fd);
        return aec_fail(err, AEC_ERR_LIMIT, "%s: file is %lld bytes, larger than the limit of %zu",
                        path, (long long)st.st_size, max_len);
    }
    size_t hint = S_ISREG(st.st_mode) ? (size_t)st.st_size : 0;
    aec_status s = read_fd(fd, path, max_len, hint, out, out_len, err);
    close(fd);
    return s;
}

aec_status aec_read_model_file(const char *path, uint8_t **out, size_t *out_len, aec_error *err)
{
    aec_status st = aec_read_file(path, AEC_MODEL_FILE_MAX, out, out_len, err);
    if (st == AEC_ERR_LIMIT)
        return aec_fail(err, st, "%s: larger than 1 GiB, the limit for model files", path);
    return st; /* aec_read_file's messages start with the path */
}
