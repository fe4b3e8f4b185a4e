/* test_safetensors.c - the safetensors container (src/engine/safetensors.c):
 * serialize/parse round trip, strict rejection of malformed files (each with a
 * message that names the problem), every truncation of a valid file, and the
 * atomic file write / bounded read.
 */
#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "aec/half.h"
#include "aec/safetensors.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

/* A file with the given header length field, header text and data_len zero
 * bytes of data, in a buffer of exactly its size (so ASan sees over-reads). */
static uint8_t *make_raw(uint64_t hlen_field, const char *hdr, size_t data_len, size_t *len)
{
    size_t h = strlen(hdr);
    *len = 8 + h + data_len;
    uint8_t *buf = calloc(1, *len);
    REQUIRE(buf, "oom");
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(hlen_field >> (8 * i));
    memcpy(buf + 8, hdr, h);
    return buf;
}

static uint8_t *make(const char *hdr, size_t data_len, size_t *len)
{
    return make_raw(strlen(hdr), hdr, data_len, len);
}

static int parse_buf(const uint8_t *buf, size_t len, aec_error *err)
{
    aec_st_file f;
    aec_status st = aec_st_parse(&f, buf, len, err);
    if (st == AEC_OK)
        aec_st_free(&f);
    else
        CHECK(f.ntensors == 0 && f.tensors == NULL && f.nmeta == 0, "f not left empty");
    return st;
}

#define EXPECT_REJECT(hdr, data_len, substr)                                                       \
    do {                                                                                           \
        size_t len_;                                                                               \
        uint8_t *buf_ = make(hdr, data_len, &len_);                                                \
        aec_error err_ = {{0}};                                                                    \
        aec_status st_ = parse_buf(buf_, len_, &err_);                                             \
        CHECK(st_ != AEC_OK, "accepted: %s", hdr);                                                 \
        CHECK(strstr(err_.msg, substr) != NULL, "for %s: message '%s' lacks '%s'", hdr, err_.msg,  \
              substr);                                                                             \
        free(buf_);                                                                                \
    } while (0)

#define EXPECT_ACCEPT(hdr, data_len)                                                               \
    do {                                                                                           \
        size_t len_;                                                                               \
        uint8_t *buf_ = make(hdr, data_len, &len_);                                                \
        aec_error err_ = {{0}};                                                                    \
        CHECK(parse_buf(buf_, len_, &err_) == AEC_OK, "rejected %s: %s", hdr, err_.msg);           \
        free(buf_);                                                                                \
    } while (0)

/* A small valid file: two F32 tensors, one F16, one I64 scalar, metadata. */
static float data_a[6] = {1, 2, 3, 4, 5, 6};
static uint16_t data_h[4];
static int64_t data_i = 42;
static float data_z[1];

static aec_status small_file(uint8_t **out, size_t *len, aec_error *err)
{
    for (int i = 0; i < 4; i++)
        data_h[i] = aec_f32_to_f16(0.5f * (float)i - 1.0f);
    aec_st_out t[4] = {
        {"weight", "F32", 2, {2, 3}, data_a, sizeof data_a},
        {"b.half", "F16", 1, {4}, data_h, sizeof data_h},
        {"a.count", "I64", 0, {0}, &data_i, sizeof data_i},
        {"empty", "F32", 1, {0}, data_z, 0},
    };
    const char *keys[] = {"aec.format", "note"};
    const char *values[] = {"1", "quote \" backslash \\ newline \n tab \t unicode \xc3\xa9"};
    return aec_st_serialize(t, 4, keys, values, 2, out, len, err);
}

/* ---- round trip ---------------------------------------------------------- */

static void test_round_trip(void)
{
    uint8_t *buf;
    size_t len;
    aec_error err = {{0}};
    REQUIRE(small_file(&buf, &len, &err) == AEC_OK, "serialize: %s", err.msg);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    CHECK(hlen % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hlen);
    CHECK(len == 8 + hlen + sizeof data_a + sizeof data_h + sizeof data_i, "len %zu", len);

    aec_st_file f;
    REQUIRE(aec_st_parse(&f, buf, len, &err) == AEC_OK, "parse: %s", err.msg);
    CHECK(f.ntensors == 4, "ntensors %d", f.ntensors);
    /* sorted by name */
    for (int i = 1; i < f.ntensors; i++)
        CHECK(strcmp(f.tensors[i - 1].name, f.tensors[i].name) < 0, "not sorted");
    const aec_st_tensor *w = aec_st_find(&f, "weight");
    REQUIRE(w, "weight missing");
    CHECK(w->dtype == AEC_DT_F32 && strcmp(w->dtype_name, "F32") == 0, "dtype");
    CHECK(w->ndim == 2 && w->shape[0] == 2 && w->shape[1] == 3, "shape");
    CHECK(w->end - w->begin == sizeof data_a, "size");
    CHECK(memcmp(f.data + w->begin, data_a, sizeof data_a) == 0, "data");
    const aec_st_tensor *h = aec_st_find(&f, "b.half");
    REQUIRE(h, "b.half missing");
    CHECK(h->dtype == AEC_DT_F16 && h->ndim == 1 && h->shape[0] == 4, "f16 tensor");
    CHECK(memcmp(f.data + h->begin, data_h, sizeof data_h) == 0, "f16 data");
    const aec_st_tensor *c = aec_st_find(&f, "a.count");
    REQUIRE(c, "a.count missing");
    CHECK(c->dtype == AEC_DT_I64 && c->ndim == 0, "i64 scalar");
    CHECK(memcmp(f.data + c->begin, &data_i, 8) == 0, "i64 data");
    const aec_st_tensor *e = aec_st_find(&f, "empty");
    CHECK(e && e->ndim == 1 && e->shape[0] == 0 && e->begin == e->end, "empty tensor");
    CHECK(aec_st_find(&f, "nope") == NULL, "found a missing tensor");
    CHECK(f.nmeta == 2, "nmeta %d", f.nmeta);
    const char *note = aec_st_meta(&f, "note");
    CHECK(note && strcmp(note, "quote \" backslash \\ newline \n tab \t unicode \xc3\xa9") == 0,
          "metadata string: %s", note ? note : "(null)");
    CHECK(aec_st_meta(&f, "aec.format") && strcmp(aec_st_meta(&f, "aec.format"), "1") == 0,
          "aec.format");
    CHECK(aec_st_meta(&f, "missing") == NULL, "missing meta key");
    aec_st_free(&f);
    CHECK(f.ntensors == 0 && f.tensors == NULL, "free leaves f empty");
    aec_st_free(&f); /* twice is harmless */

    /* serialize(parse(x)) is byte-identical: tensors are in name order */
    free(buf);

    /* no tensors, no metadata */
    REQUIRE(aec_st_serialize(NULL, 0, NULL, NULL, 0, &buf, &len, &err) == AEC_OK, "%s", err.msg);
    CHECK(len == 16 && memcmp(buf + 8, "{}      ", 8) == 0, "empty file");
    REQUIRE(aec_st_parse(&f, buf, len, &err) == AEC_OK, "%s", err.msg);
    CHECK(f.ntensors == 0 && f.nmeta == 0, "empty file parse");
    aec_st_free(&f);
    free(buf);
}

static void test_serialize_rejects(void)
{
    uint8_t *buf = NULL;
    size_t len;
    aec_error err = {{0}};
    float x[2] = {0};
    aec_st_out dup[2] = {{"a", "F32", 1, {2}, x, 8}, {"a", "F32", 1, {2}, x, 8}};
    CHECK(aec_st_serialize(dup, 2, NULL, NULL, 0, &buf, &len, &err) != AEC_OK && !buf,
          "duplicate names serialized");
    CHECK(strstr(err.msg, "duplicate") != NULL, "msg: %s", err.msg);
    aec_st_out bad_size = {"a", "F32", 1, {3}, x, 8};
    CHECK(aec_st_serialize(&bad_size, 1, NULL, NULL, 0, &buf, &len, &err) != AEC_OK,
          "size mismatch serialized");
    aec_st_out bad_dtype = {"a", "Q8", 1, {2}, x, 8};
    CHECK(aec_st_serialize(&bad_dtype, 1, NULL, NULL, 0, &buf, &len, &err) != AEC_OK,
          "bad dtype serialized");
    aec_st_out meta_name = {"__metadata__", "F32", 1, {2}, x, 8};
    CHECK(aec_st_serialize(&meta_name, 1, NULL, NULL, 0, &buf, &len, &err) != AEC_OK,
          "__metadata__ tensor serialized");
    const char *k[] = {"k", "k"}, *v[] = {"1", "2"};
    CHECK(aec_st_serialize(NULL, 0, k, v, 2, &buf, &len, &err) != AEC_OK,
          "duplicate metadata keys serialized");
}

/* ---- truncation ---------------------------------------------------------- */

static void test_every_prefix(void)
{
    uint8_t *full;
    size_t len;
    aec_error err = {{0}};
    REQUIRE(small_file(&full, &len, &err) == AEC_OK, "%s", err.msg);
    int rejected = 0;
    for (size_t n = 0; n < len; n++) {
        uint8_t *p = malloc(n ? n : 1); /* exact size: ASan catches any over-read */
        REQUIRE(p, "oom");
        memcpy(p, full, n);
        aec_status st = parse_buf(p, n, &err);
        rejected += st != AEC_OK;
        CHECK(st != AEC_OK, "prefix of %zu bytes accepted", n);
        CHECK(err.msg[0] != '\0', "prefix %zu: no message", n);
        free(p);
    }
    CHECK(rejected == (int)len, "%d of %zu prefixes rejected", rejected, len);
    /* and the full file still parses */
    CHECK(parse_buf(full, len, &err) == AEC_OK, "full file: %s", err.msg);
    free(full);
}

/* ---- malformed files ------------------------------------------------------ */

static void test_header_length(void)
{
    size_t len;
    aec_error err = {{0}};
    uint8_t *b = make_raw(100, "{}", 0, &len);
    CHECK(parse_buf(b, len, &err) != AEC_OK && strstr(err.msg, "past the end"), "msg: %s", err.msg);
    free(b);
    b = make_raw(1ull << 63, "{}", 0, &len);
    CHECK(parse_buf(b, len, &err) == AEC_ERR_LIMIT && strstr(err.msg, "limit"), "msg: %s", err.msg);
    free(b);
    b = make_raw(UINT64_MAX, "{}", 0, &len);
    CHECK(parse_buf(b, len, &err) != AEC_OK, "header length 2^64-1 accepted");
    free(b);
    b = make_raw(0, "", 0, &len);
    CHECK(parse_buf(b, len, &err) != AEC_OK, "empty header accepted");
    free(b);
    uint8_t tiny[3] = {1, 0, 0};
    CHECK(parse_buf(tiny, 3, &err) != AEC_OK && strstr(err.msg, "too short"), "msg: %s", err.msg);
}

static void test_bad_json(void)
{
    EXPECT_REJECT("{\"a\":", 0, "not valid JSON");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", 4,
                  "not valid JSON");
    EXPECT_REJECT("[1,2]", 0, "not a JSON object");
    EXPECT_REJECT("\"str\"", 0, "not a JSON object");
    EXPECT_REJECT("{} x", 0, "only space padding");
    EXPECT_REJECT("{}\n", 0, "only space padding");
    EXPECT_REJECT("{}{}", 0, "after the JSON object");
    /* a NUL byte inside the header */
    size_t len;
    aec_error err = {{0}};
    uint8_t *b = make("{}      ", 0, &len);
    b[8 + 3] = 0;
    CHECK(parse_buf(b, len, &err) != AEC_OK && strstr(err.msg, "0x00"), "msg: %s", err.msg);
    free(b);
    /* trailing spaces are padding; any header length is fine */
    EXPECT_ACCEPT("{}", 0);
    EXPECT_ACCEPT("{}   ", 0);
    EXPECT_ACCEPT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}  ", 4);
}

static void test_entries(void)
{
    EXPECT_REJECT("{\"a\":[1]}", 0, "tensor 'a': entry is not a JSON object");
    EXPECT_REJECT("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing dtype");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "missing shape");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing data_offsets");
    EXPECT_REJECT("{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                  "dtype is not a string");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                  "unknown dtype 'Q7'");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],"
                  "\"data_offsets\":[0,4]}}",
                  4, "duplicate key 'dtype'");
    EXPECT_REJECT("{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                  "empty name");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                  8, "tensor 'a': duplicate name");
    /* other dtypes parse, with their size */
    size_t len;
    aec_error err = {{0}};
    uint8_t *b = make("{\"x\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,6]},"
                      "\"y\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]},"
                      "\"z\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]}}",
                      16, &len);
    aec_st_file f;
    CHECK(aec_st_parse(&f, b, len, &err) == AEC_OK, "other dtypes: %s", err.msg);
    const aec_st_tensor *x = aec_st_find(&f, "x");
    CHECK(x && x->dtype == AEC_DT_OTHER && strcmp(x->dtype_name, "BF16") == 0, "BF16");
    aec_st_free(&f);
    free(b);
    /* unknown keys in an entry are ignored (as the reference reader does) */
    EXPECT_ACCEPT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4);
}

static void test_shapes(void)
{
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                  "shape[0] is not a non-negative integer");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
                  "shape[0] is not a non-negative integer");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4,
                  "not a non-negative integer");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4,
                  "not a non-negative integer");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4,
                  "shape is not an array");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                  "\"data_offsets\":[0,4]}}",
                  4, "9 dimensions");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                  "\"data_offsets\":[0,4]}}",
                  4, "overflows");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"I64\",\"shape\":[4294967296,2147483648],"
                  "\"data_offsets\":[0,4]}}",
                  4, "overflows");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                  "tensor 'a': data_offsets [0,8] hold 8 bytes but dtype F32 and the shape "
                  "need 12");
    EXPECT_ACCEPT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,2],"
                  "\"data_offsets\":[0,8]}}",
                  8);
    EXPECT_ACCEPT("{\"a\":{\"dtype\":\"F32\",\"shape\":[5,0,1000000000],"
                  "\"data_offsets\":[0,0]}}",
                  0);
}

static void test_offsets(void)
{
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
                  "past the end of the data (4 bytes)");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
                  "end before begin");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
                  "data_offsets is not [begin, end]");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4,
                  "data_offsets is not [begin, end]");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
                  "data_offsets is not [begin, end]");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.5,4.5]}}", 5,
                  "data_offsets is not [begin, end]");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                  "\"data_offsets\":[18446744073709551612,18446744073709551616]}}",
                  4, "data_offsets");
    /* overlap */
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                  12, "tensor 'b': data_offsets [4,12] overlap previous tensor 'a' [0,8]");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                  4, "overlap");
    /* holes */
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                  12, "tensor 'b': data_offsets [8,12] leave a hole after offset 4");
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                  "hole after offset 0");
    /* extra trailing bytes */
    EXPECT_REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
                  "tensors end at offset 4 but the data is 8 bytes (4 trailing bytes)");
    EXPECT_REJECT("{}", 1, "no tensors but 1 bytes of data");
    /* out of order in the header is fine: only the offsets must tile */
    EXPECT_ACCEPT("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"c\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
                  8);
}

static void test_metadata(void)
{
    EXPECT_REJECT("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ 'k': value is not a string");
    EXPECT_REJECT("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, "not a string");
    EXPECT_REJECT("{\"__metadata__\":{\"k\":null}}", 0, "not a string");
    EXPECT_REJECT("{\"__metadata__\":[\"a\"]}", 0, "__metadata__ is not a JSON object");
    EXPECT_REJECT("{\"__metadata__\":\"a\"}", 0, "__metadata__ is not a JSON object");
    EXPECT_REJECT("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate key");
    EXPECT_REJECT("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate __metadata__");
    EXPECT_ACCEPT("{\"__metadata__\":{}}", 0);
    EXPECT_ACCEPT("{\"__metadata__\":{\"k\":\"\"}}", 0);
}

/* ---- files ---------------------------------------------------------------- */

static int count_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_atomic_write(void)
{
    const char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    aec_error err = {{0}};
    REQUIRE(test_write_file(path, "old contents", 12) == 0, "write old");
    struct stat st;
    REQUIRE(stat(path, &st) == 0, "stat");
    unsigned old_mode = (unsigned)(st.st_mode & 07777);
    const char *fresh = "new contents, longer than before";
    CHECK(aec_write_file_atomic(path, fresh, strlen(fresh), &err) == AEC_OK, "%s", err.msg);
    size_t len = 0;
    uint8_t *got = test_read_file(path, &len);
    CHECK(got && len == strlen(fresh) && memcmp(got, fresh, len) == 0, "content not replaced");
    free(got);
    CHECK(count_dir_entries(dir) == 1, "temp files left: %d entries", count_dir_entries(dir));
    CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == old_mode, "mode %o, was %o",
          (unsigned)(st.st_mode & 07777), old_mode);

    /* an empty file */
    CHECK(aec_write_file_atomic(path, "", 0, &err) == AEC_OK, "%s", err.msg);
    CHECK(stat(path, &st) == 0 && st.st_size == 0, "empty write");
    REQUIRE(aec_write_file_atomic(path, fresh, strlen(fresh), &err) == AEC_OK, "%s", err.msg);

    /* into a folder that does not exist: fails, names the path, old file intact */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/model.safetensors", dir);
    err.msg[0] = 0;
    CHECK(aec_write_file_atomic(bad, "x", 1, &err) == AEC_ERR_IO, "write into missing dir");
    CHECK(strstr(err.msg, bad) != NULL, "message does not name the path: %s", err.msg);
    got = test_read_file(path, &len);
    CHECK(got && len == strlen(fresh) && memcmp(got, fresh, len) == 0, "old file changed");
    free(got);

    /* rename fails (the target is a folder): temp removed, folder untouched */
    char sub[600];
    snprintf(sub, sizeof sub, "%s/adir", dir);
    REQUIRE(mkdir(sub, 0755) == 0, "mkdir");
    CHECK(aec_write_file_atomic(sub, "x", 1, &err) == AEC_ERR_IO, "rename over a folder");
    CHECK(strstr(err.msg, sub) != NULL && strstr(err.msg, "rename"), "msg: %s", err.msg);
    CHECK(count_dir_entries(dir) == 2, "temp file left behind: %d entries", count_dir_entries(dir));
    CHECK(count_dir_entries(sub) == 0, "folder changed");

    /* the write itself fails (file size limit: EFBIG): temp removed, old intact */
    struct rlimit old_lim, lim;
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old_lim) == 0, "getrlimit");
    lim = old_lim;
    lim.rlim_cur = 4096;
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    static uint8_t big[20000];
    aec_status st2 = aec_write_file_atomic(path, big, sizeof big, &err);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &old_lim) == 0, "restore rlimit");
    signal(SIGXFSZ, old_sig);
    CHECK(st2 == AEC_ERR_IO, "write past the size limit succeeded");
    CHECK(strstr(err.msg, path) && strstr(err.msg, "write failed"), "msg: %s", err.msg);
    got = test_read_file(path, &len);
    CHECK(got && len == strlen(fresh) && memcmp(got, fresh, len) == 0, "old file changed");
    free(got);
    CHECK(count_dir_entries(dir) == 2, "temp file left behind: %d entries", count_dir_entries(dir));
}

static void test_bounded_read(void)
{
    const char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/f.bin", dir);
    REQUIRE(test_write_file(path, "0123456789", 10) == 0, "write");
    uint8_t *buf = NULL;
    size_t len = 0;
    aec_error err = {{0}};
    CHECK(aec_read_file(path, 10, &buf, &len, &err) == AEC_OK, "%s", err.msg);
    CHECK(buf && len == 10 && memcmp(buf, "0123456789", 10) == 0, "content");
    free(buf);
    CHECK(aec_read_file(path, 9, &buf, &len, &err) == AEC_ERR_LIMIT && buf == NULL,
          "limit not enforced");
    CHECK(strstr(err.msg, path) && strstr(err.msg, "limit"), "msg: %s", err.msg);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing.bin", dir);
    CHECK(aec_read_file(missing, 100, &buf, &len, &err) == AEC_ERR_IO, "missing file");
    CHECK(strstr(err.msg, missing) != NULL, "msg: %s", err.msg);
    CHECK(aec_read_file(dir, 100, &buf, &len, &err) == AEC_ERR_IO, "a folder read as a file");
    snprintf(path, sizeof path, "%s/empty.bin", dir);
    REQUIRE(test_write_file(path, "", 0) == 0, "write");
    CHECK(aec_read_file(path, 100, &buf, &len, &err) == AEC_OK && len == 0, "empty file");
    free(buf);
}

int main(void)
{
    test_round_trip();
    test_serialize_rejects();
    test_every_prefix();
    test_header_length();
    test_bad_json();
    test_entries();
    test_shapes();
    test_offsets();
    test_metadata();
    test_atomic_write();
    test_bounded_read();
    return TEST_SUMMARY();
}
