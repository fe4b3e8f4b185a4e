/* testutil.c - see testutil.h. */
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image_write.h>

#include "aec/random.h"

int test_passed, test_failed;

int test_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, test_passed, test_failed);
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

const char *test_shared_dir(void)
{
    static char buf[4096];
    const char *d = getenv("AEC_SHARED_DIR");
    if (!d || !*d)
        d = "../shared";
    struct stat st;
    if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode))
        return NULL;
    snprintf(buf, sizeof buf, "%s", d);
    return buf;
}

const char *test_shared_path_or_skip(const char *sub)
{
    static char buf[4096];
    const char *d = test_shared_dir();
    if (!d)
        SKIP("shared folder not found (set AEC_SHARED_DIR); needs %s", sub);
    snprintf(buf, sizeof buf, "%s/%s", d, sub);
    struct stat st;
    if (stat(buf, &st) != 0)
        SKIP("%s is missing", buf);
    return buf;
}

static char tmpdirs[16][256];
static int ntmpdirs;

static void cleanup_tmpdirs(void)
{
    for (int i = 0; i < ntmpdirs; i++) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdirs[i]);
        if (system(cmd) != 0)
            fprintf(stderr, "warning: could not remove %s\n", tmpdirs[i]);
    }
}

const char *test_tmpdir(void)
{
    REQUIRE(ntmpdirs < 16, "too many temp dirs");
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(tmpdirs[ntmpdirs], sizeof tmpdirs[0], "%s/aec-test-XXXXXX", base);
    REQUIRE(mkdtemp(tmpdirs[ntmpdirs]) != NULL, "mkdtemp failed");
    if (ntmpdirs == 0)
        atexit(cleanup_tmpdirs);
    return tmpdirs[ntmpdirs++];
}

uint64_t test_rand_u64(uint64_t *s)
{
    return aec_random_next(s); /* the project's one generator: splitmix64 */
}

float test_rand_uniform(uint64_t *s)
{
    return (float)(test_rand_u64(s) >> 40) / (float)(1ull << 24);
}

void test_synthetic_image(float *chw, int h, int w, uint64_t seed)
{
    uint64_t s = seed * 7919 + 17;
    float base[3], gx[3], gy[3];
    for (int c = 0; c < 3; c++) {
        base[c] = 0.2f + 0.6f * test_rand_uniform(&s);
        gx[c] = 0.4f * (test_rand_uniform(&s) - 0.5f);
        gy[c] = 0.4f * (test_rand_uniform(&s) - 0.5f);
    }
    float cx = test_rand_uniform(&s) * w, cy = test_rand_uniform(&s) * h;
    float r = (0.15f + 0.25f * test_rand_uniform(&s)) * (float)(h < w ? h : w);
    float col[3];
    for (int c = 0; c < 3; c++)
        col[c] = test_rand_uniform(&s);
    float freq = 0.1f + 0.3f * test_rand_uniform(&s);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float v = base[c] + gx[c] * ((float)x / w - 0.5f) + gy[c] * ((float)y / h - 0.5f);
                float dx = x - cx, dy = y - cy;
                if (dx * dx + dy * dy < r * r)
                    v = 0.5f * v + 0.5f * col[c];
                v += 0.08f * sinf(freq * (float)(x + 2 * y));
                if (v < 0)
                    v = 0;
                if (v > 1)
                    v = 1;
                chw[((size_t)c * h + y) * w + x] = v;
            }
}

void test_synthetic_rgb(uint8_t *rgb, int h, int w, uint64_t seed)
{
    float *chw = malloc(sizeof(float) * 3 * h * w);
    REQUIRE(chw, "oom");
    test_synthetic_image(chw, h, w, seed);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                rgb[((size_t)y * w + x) * 3 + c] =
                    (uint8_t)lrintf(chw[((size_t)c * h + y) * w + x] * 255.0f);
    free(chw);
}

int test_write_synthetic_pngs(const char *dir, int n, int h, int w, uint64_t seed)
{
    uint8_t *rgb = malloc((size_t)h * w * 3);
    REQUIRE(rgb, "oom");
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/img_%04d.png", dir, i);
        test_synthetic_rgb(rgb, h, w, seed + (uint64_t)i);
        if (!stbi_write_png(path, w, h, 3, rgb, w * 3)) {
            free(rgb);
            return -1;
        }
    }
    free(rgb);
    return 0;
}

uint8_t *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf && len)
        *len = (size_t)n;
    return buf;
}

int test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}
