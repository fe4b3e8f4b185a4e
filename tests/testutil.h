/* testutil.h - the small assertion and fixture kit shared by the C tests.
 *
 * CHECK(cond, ...) records a failure with file:line and a message and goes on;
 * a test's main() ends with `return TEST_SUMMARY();`, which prints
 * "N passed, M failed" and returns 1 on any failure. SKIP(...) exits 77, which
 * ctest reports as skipped (used when ../shared is missing).
 */
#ifndef AEC_TESTUTIL_H
#define AEC_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern int test_passed, test_failed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            test_passed++;                                                                         \
        } else {                                                                                   \
            test_failed++;                                                                         \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FATAL %s:%d: %s: ", __FILE__, __LINE__, #cond);                       \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define SKIP(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "SKIP: ");                                                                 \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        exit(77);                                                                                  \
    } while (0)

int test_summary(const char *name);
#define TEST_SUMMARY() test_summary(__FILE__)

/* ../shared (from AEC_SHARED_DIR), or NULL when the folder is missing. */
const char *test_shared_dir(void);
/* path under ../shared/<sub>, or SKIP with a message when missing. */
const char *test_shared_path_or_skip(const char *sub);

/* A fresh temp directory (removed by test_cleanup_tmpdirs at exit). */
const char *test_tmpdir(void);

/* Deterministic generator for synthetic data. */
uint64_t test_rand_u64(uint64_t *state);
float test_rand_uniform(uint64_t *state); /* [0,1) */

/* A synthetic "photo": smooth gradients, a few discs and stripes, planar
 * [3,h,w] in [0,1], different for each seed. */
void test_synthetic_image(float *chw, int h, int w, uint64_t seed);
/* The same as interleaved RGB u8 (w*h*3). */
void test_synthetic_rgb(uint8_t *rgb, int h, int w, uint64_t seed);
/* Writes n synthetic PNG files of size h x w into dir (names img_0000.png...). */
int test_write_synthetic_pngs(const char *dir, int n, int h, int w, uint64_t seed);

/* Reads a whole file (malloc'd), NULL on failure. */
uint8_t *test_read_file(const char *path, size_t *len);
int test_write_file(const char *path, const void *data, size_t len);

#endif
