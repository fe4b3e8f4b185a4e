/* test_float_format.c - aecd's float printer (src/server/buf.c), which writes
 * every latent value of a JSON /encode reply:
 * - every output reads back (strtof) as exactly the float printed, for
 *   special values and millions of random bit patterns of every exponent;
 * - the text is a JSON number in printf("%.9g")'s style, and equals %.9g's
 *   text except where the two differ only in the last digit's rounding (both
 *   then still read back exactly).
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/server/buf.h"
#include "testutil.h"

/* JSON number grammar: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)? */
static int is_json_number(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return 0;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == 0;
}

static int bad_round_trip, bad_grammar, differs_from_printf, differs_beyond_rounding;

static void check_value(float v)
{
    char ours[32], ref[64];
    size_t n = aecd_format_float9(ours, v);
    snprintf(ref, sizeof ref, "%.9g", (double)v);
    float back = strtof(ours, NULL);
    if (memcmp(&back, &v, sizeof v) != 0 || n != strlen(ours)) {
        if (bad_round_trip++ < 5)
            fprintf(stderr, "%.9g printed as %s reads back as %.9g\n", (double)v, ours,
                    (double)back);
    }
    if (!is_json_number(ours) && bad_grammar++ < 5)
        fprintf(stderr, "%s is not a JSON number\n", ours);
    if (strcmp(ours, ref) != 0) {
        differs_from_printf++;
        /* the same number of significant digits, off by one in the last */
        double a = strtod(ours, NULL), b = strtod(ref, NULL);
        double ulp9 = fabs(b) * 1.2e-8;
        if (fabs(a - b) > ulp9 && differs_beyond_rounding++ < 5)
            fprintf(stderr, "%s vs printf %s\n", ours, ref);
    }
}

int main(void)
{
    const float special[] = {0.0f,     -0.0f,      1.0f,          -1.0f,    0.1f,         1e-5f,
                             1e-4f,    0.0001234f, 123456789.0f,  1e9f,     999999999.0f, FLT_MAX,
                             -FLT_MAX, FLT_MIN,    1.4e-45f,      3.0e-39f, 0.5f,         100.0f,
                             1e10f,    12345.678f, 9.99999975e-5f};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++)
        check_value(special[i]);
    uint64_t rng = 12345;
    for (int i = 0; i < 3000000; i++) {
        uint32_t bits = (uint32_t)test_rand_u64(&rng);
        float v;
        memcpy(&v, &bits, sizeof v);
        if (isfinite(v))
            check_value(v);
    }
    for (int i = 0; i < 1000000; i++) { /* latent-like values */
        float v = (test_rand_uniform(&rng) - 0.5f) * 20.0f;
        check_value(v);
    }
    CHECK(bad_round_trip == 0, "%d values did not read back exactly", bad_round_trip);
    CHECK(bad_grammar == 0, "%d outputs are not JSON numbers", bad_grammar);
    CHECK(differs_beyond_rounding == 0, "%d outputs differ from %%.9g beyond the last digit",
          differs_beyond_rounding);
    fprintf(stderr, "%d of 4M differ from %%.9g in the last digit's rounding only\n",
            differs_from_printf);
    aecd_buf b;
    aecd_buf_init(&b);
    aecd_buf_json_float(&b, NAN);
    aecd_buf_json_float(&b, 2.5f);
    CHECK(b.data && strcmp(b.data, "null2.5") == 0, "json_float: NaN is null, then 2.5: %s",
          b.data ? b.data : "(null)");
    aecd_buf_free(&b);
    return TEST_SUMMARY();
}
