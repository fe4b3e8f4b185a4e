/* entropy.c - the entropy model (see include/aec/entropy.h): the factorized
 * logistic and Gaussian conditional densities with their training terms, the
 * 16-bit coding tables made from them, and the range-coded substreams.
 *
 * Bin probabilities are computed on the side of the location where they do
 * not cancel: for v above mu, F(-(v - 1/2)) - F(-(v + 1/2)), the same value
 * without subtracting two numbers close to 1. Training terms run in double.
 * Tables are built once (aec-train) and stored as integers, so decoding
 * never depends on this machine's libm.
 */
#include "aec/entropy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rangecoder.h"

#define RATE_MIN_P 9.313225746154785e-10 /* 2^-30 */

static double sigmoid(double t)
{
    return 1.0 / (1.0 + exp(-t));
}

/* P of the bin around v and, if grad, dP/dv and dP/ds (s the scale). */
static double bin_probability(double v, double mu, double s, double *dp_dv, double *dp_ds)
{
    double sign = v > mu ? -1.0 : 1.0; /* mirror the upper tail onto the lower */
    double a = sign * (v - mu + 0.5) / s, b = sign * (v - mu - 0.5) / s;
    double fa = sigmoid(a), fb = sigmoid(b);
    double p = sign > 0 ? fa - fb : fb - fa;
    if (dp_dv) {
        double ga = fa * (1.0 - fa), gb = fb * (1.0 - fb);
        /* d/dv of F(a) - F(b) with a, b linear in v (slope sign/s), mirrored back */
        *dp_dv = (ga - gb) / s;
        *dp_ds = sign > 0 ? -(ga * a - gb * b) / s : -(gb * b - ga * a) / s;
    }
    return p;
}

double aec_rate_forward(const float *inp, const float *mu, const float *log_s, int n, int c,
                        int spatial)
{
    double bits = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < c; j++) {
            const float *x = inp + ((size_t)i * c + j) * spatial;
            double s = exp(log_s[j]);
            for (int k = 0; k < spatial; k++) {
                double p = bin_probability(x[k], mu[j], s, NULL, NULL);
                bits -= log2(p > RATE_MIN_P ? p : RATE_MIN_P);
            }
        }
    return bits;
}

void aec_rate_backward(float *dinp, float *dmu, float *dlog_s, const float *inp, const float *mu,
                       const float *log_s, int n, int c, int spatial, float scale)
{
    for (int j = 0; j < c; j++) {
        double s = exp(log_s[j]), gmu = 0, gls = 0;
        for (int i = 0; i < n; i++) {
            const float *x = inp + ((size_t)i * c + j) * spatial;
            float *dx = dinp + ((size_t)i * c + j) * spatial;
            for (int k = 0; k < spatial; k++) {
                double dp_dv, dp_ds, d_bits_dv, d_bits_ds;
                double p = bin_probability(x[k], mu[j], s, &dp_dv, &dp_ds);
                if (p > RATE_MIN_P) {
                    d_bits_dv = -dp_dv / (p * M_LN2);
                    d_bits_ds = -dp_ds / (p * M_LN2);
                } else { /* the clamped tail: -log2 P grows as |v - mu| / (s ln 2) */
                    double t = x[k] - mu[j];
                    d_bits_dv = (t > 0 ? 1.0 : -1.0) / (s * M_LN2);
                    d_bits_ds = -fabs(t) / (s * s * M_LN2);
                }
                dx[k] += scale * (float)d_bits_dv;
                gmu -= d_bits_dv; /* P depends on v - mu */
                gls += d_bits_ds * s;
            }
        }
        dmu[j] += scale * (float)gmu;
        dlog_s[j] += scale * (float)gls;
    }
}

/* ---- Gaussian conditional --------------------------------------------------------- */

static double normal_cdf(double t)
{
    return 0.5 * erfc(-t * M_SQRT1_2);
}

static double normal_pdf(double t)
{
    return exp(-0.5 * t * t) * 0.3989422804014327; /* 1 / sqrt(2 pi) */
}

/* P of the bin around v (mean already subtracted) under N(0, s^2); with
 * grad, dP/d|v| and dP/ds. Computed for -|v|, where the two CDFs are small. */
static double gaussian_bin(double v, double s, double *dp_da, double *dp_ds)
{
    double a = fabs(v);
    double u = (0.5 - a) / s, l = (-0.5 - a) / s;
    double p = normal_cdf(u) - normal_cdf(l);
    if (dp_da) {
        double pu = normal_pdf(u), pl = normal_pdf(l);
        *dp_da = (pl - pu) / s;
        *dp_ds = (l * pl - u * pu) / s;
    }
    return p;
}

double aec_gaussian_forward(const float *inp, const float *mu, const float *sigma, size_t count)
{
    double bits = 0;
    for (size_t i = 0; i < count; i++) {
        double s = sigma[i] > AEC_ENTROPY_SCALE_MIN ? sigma[i] : AEC_ENTROPY_SCALE_MIN;
        double p = gaussian_bin((double)inp[i] - mu[i], s, NULL, NULL);
        bits -= log2(p > RATE_MIN_P ? p : RATE_MIN_P);
    }
    return bits;
}

void aec_gaussian_backward(float *dinp, float *dmu, float *dsigma, const float *inp,
                           const float *mu, const float *sigma, size_t count, float scale)
{
    for (size_t i = 0; i < count; i++) {
        int bounded = !(sigma[i] > AEC_ENTROPY_SCALE_MIN);
        double s = bounded ? AEC_ENTROPY_SCALE_MIN : sigma[i];
        double v = (double)inp[i] - mu[i], da, ds, d_bits_da, d_bits_ds;
        double p = gaussian_bin(v, s, &da, &ds);
        if (p > RATE_MIN_P) {
            d_bits_da = -da / (p * M_LN2);
            d_bits_ds = -ds / (p * M_LN2);
        } else { /* the clamped tail: -ln P grows as v^2 / (2 s^2) */
            double a = fabs(v);
            d_bits_da = a / (s * s * M_LN2);
            d_bits_ds = -a * a / (s * s * s * M_LN2);
        }
        double d_bits_dv = v > 0 ? d_bits_da : -d_bits_da;
        dinp[i] += scale * (float)d_bits_dv;
        dmu[i] -= scale * (float)d_bits_dv;
        if (!bounded || d_bits_ds < 0) /* the lower bound lets sigma rise, never fall */
            dsigma[i] += scale * (float)d_bits_ds;
    }
}

/* ---- tables ----------------------------------------------------------------------- */

#define TOTAL (1u << 16)

typedef struct {
    int L;         /* symbols -L..L, then the escape at index 2L + 1 */
    uint32_t *cum; /* 2L + 3 cumulative frequencies, cum[0] = 0, cum[2L+2] = TOTAL */
} table;

struct aec_entropy {
    int channels;
    table *z; /* one per channel */
    table y[AEC_ENTROPY_SCALES];
    float scales[AEC_ENTROPY_SCALES];
    uint32_t *store; /* every cum array */
};

/* Frequencies >= 1 summing to TOTAL, closest to pmf (which sums to ~1). */
static void quantize_pmf(const double *pmf, int n, float *freq)
{
    long sum = 0;
    int top = 0;
    for (int i = 0; i < n; i++) {
        long f = lround(pmf[i] * TOTAL);
        freq[i] = (float)(f < 1 ? 1 : f);
        sum += (long)freq[i];
        if (freq[i] > freq[top])
            top = i;
    }
    long diff = (long)TOTAL - sum;
    if (diff >= 0) {
        freq[top] += (float)diff;
        return;
    }
    while (diff < 0) { /* take from the largest entries, keeping each >= 1 */
        int big = 0;
        for (int i = 1; i < n; i++)
            if (freq[i] > freq[big])
                big = i;
        long take = (long)freq[big] - 1 < -diff ? (long)freq[big] - 1 : -diff;
        freq[big] -= (float)take;
        diff += take;
    }
}

/* One row: L, then the frequencies of -L..L and the escape. cdf(x) is the
 * density's CDF (bin of symbol v: cdf(v + 1/2) - cdf(v - 1/2)). */
typedef double (*cdf_fn)(double x, double a, double b);

static double logistic_cdf(double x, double loc, double s)
{
    (void)loc;
    return 1.0 / (1.0 + exp(-x / s));
}

static double gauss_cdf(double x, double unused, double s)
{
    (void)unused;
    return normal_cdf(x / s);
}

static size_t write_row(float *row, int L, cdf_fn cdf, double a, double b)
{
    int n = 2 * L + 2;
    double *pmf = malloc(sizeof(double) * (size_t)n);
    if (!pmf)
        return 0;
    double mass = 0;
    for (int v = -L; v <= L; v++) {
        pmf[v + L] = cdf(v + 0.5, a, b) - cdf(v - 0.5, a, b);
        mass += pmf[v + L];
    }
    pmf[n - 1] = mass < 1.0 ? 1.0 - mass : 0.0;
    row[0] = (float)L;
    quantize_pmf(pmf, n, row + 1);
    free(pmf);
    return (size_t)n + 1;
}

static int clamp_L(double want)
{
    int L = (int)ceil(want);
    return L < 1 ? 1 : L > AEC_ENTROPY_MAX_L ? AEC_ENTROPY_MAX_L : L;
}

static double table_scale(int i)
{
    double lo = log(AEC_ENTROPY_SCALE_MIN), hi = log(AEC_ENTROPY_SCALE_MAX);
    return exp(lo + (hi - lo) * i / (AEC_ENTROPY_SCALES - 1));
}

aec_status aec_entropy_tables_build(const float *loc, const float *log_s, int channels,
                                    float **z_out, size_t *z_len, float **y_out, size_t *y_len,
                                    aec_error *err)
{
    (void)loc; /* symbols are already centred on the location */
    size_t zcap = (size_t)channels * (2 * AEC_ENTROPY_MAX_L + 3), ycap = AEC_ENTROPY_SCALES;
    for (int i = 0; i < AEC_ENTROPY_SCALES; i++)
        ycap += 2 * (size_t)clamp_L(4.5 * table_scale(i)) + 3;
    float *z = malloc(sizeof(float) * zcap), *y = malloc(sizeof(float) * ycap);
    if (!z || !y) {
        free(z);
        free(y);
        return aec_fail(err, AEC_ERR_NOMEM, "entropy tables: out of memory");
    }
    size_t zn = 0, yn = AEC_ENTROPY_SCALES;
    for (int j = 0; j < channels; j++) {
        double s = exp(log_s[j]);
        size_t w = write_row(z + zn, clamp_L(12.0 * s), logistic_cdf, 0.0, s);
        if (!w)
            goto nomem;
        zn += w;
    }
    for (int i = 0; i < AEC_ENTROPY_SCALES; i++) {
        double s = table_scale(i);
        y[i] = (float)s;
        size_t w = write_row(y + yn, clamp_L(4.5 * s), gauss_cdf, 0.0, s);
        if (!w)
            goto nomem;
        yn += w;
    }
    *z_out = z, *z_len = zn, *y_out = y, *y_len = yn;
    return AEC_OK;
nomem:
    free(z);
    free(y);
    return aec_fail(err, AEC_ERR_NOMEM, "entropy tables: out of memory");
}

void aec_entropy_free(aec_entropy *e)
{
    if (!e)
        return;
    free(e->z);
    free(e->store);
    free(e);
}

/* Reads one row at *pos of src (len floats) into t, its cum array carved
 * from *store. */
static aec_status read_row(table *t, const float *src, size_t len, size_t *pos, uint32_t **store,
                           const char *what, int index, aec_error *err)
{
    if (*pos >= len)
        return aec_fail(err, AEC_ERR_FORMAT, "%s table %d: missing", what, index);
    float Lf = src[*pos];
    if (!(Lf >= 1 && Lf <= AEC_ENTROPY_MAX_L) || Lf != floorf(Lf))
        return aec_fail(err, AEC_ERR_FORMAT, "%s table %d: bad range %g", what, index, Lf);
    int L = (int)Lf, n = 2 * L + 2;
    if (len - *pos - 1 < (size_t)n)
        return aec_fail(err, AEC_ERR_FORMAT, "%s table %d: truncated", what, index);
    const float *f = src + *pos + 1;
    uint32_t *cum = *store;
    cum[0] = 0;
    for (int i = 0; i < n; i++) {
        if (!(f[i] >= 1 && f[i] <= TOTAL) || f[i] != floorf(f[i]))
            return aec_fail(err, AEC_ERR_FORMAT, "%s table %d: bad frequency", what, index);
        cum[i + 1] = cum[i] + (uint32_t)f[i];
        if (cum[i + 1] > TOTAL)
            return aec_fail(err, AEC_ERR_FORMAT, "%s table %d: frequencies exceed 2^16", what,
                            index);
    }
    if (cum[n] != TOTAL)
        return aec_fail(err, AEC_ERR_FORMAT, "%s table %d: frequencies do not sum to 2^16", what,
                        index);
    t->L = L;
    t->cum = cum;
    *store += n + 1;
    *pos += (size_t)n + 1;
    return AEC_OK;
}

aec_status aec_entropy_create(aec_entropy **out, const float *z, size_t z_len, int channels,
                              const float *y, size_t y_len, aec_error *err)
{
    *out = NULL;
    aec_status st = AEC_OK;
    if (channels < 1 || channels > 4096 || y_len < AEC_ENTROPY_SCALES)
        return aec_fail(err, AEC_ERR_FORMAT, "entropy tables: bad sizes");
    aec_entropy *e = calloc(1, sizeof *e);
    if (e) {
        e->z = calloc((size_t)channels, sizeof(table));
        e->store = malloc(sizeof(uint32_t) * (z_len + y_len + 1));
    }
    if (!e || !e->z || !e->store) {
        st = aec_fail(err, AEC_ERR_NOMEM, "entropy tables: out of memory");
        goto fail;
    }
    e->channels = channels;
    uint32_t *store = e->store;
    size_t pos = 0;
    for (int j = 0; j < channels && st == AEC_OK; j++)
        st = read_row(&e->z[j], z, z_len, &pos, &store, "z", j, err);
    if (st == AEC_OK && pos != z_len)
        st = aec_fail(err, AEC_ERR_FORMAT, "z tables: %zu extra values", z_len - pos);
    for (int i = 0; i < AEC_ENTROPY_SCALES && st == AEC_OK; i++) {
        e->scales[i] = y[i];
        if (!(y[i] > 0 && isfinite(y[i])) || (i > 0 && !(y[i] > y[i - 1])))
            st = aec_fail(err, AEC_ERR_FORMAT, "y tables: scales must increase");
    }
    pos = AEC_ENTROPY_SCALES;
    for (int i = 0; i < AEC_ENTROPY_SCALES && st == AEC_OK; i++)
        st = read_row(&e->y[i], y, y_len, &pos, &store, "y", i, err);
    if (st == AEC_OK && pos != y_len)
        st = aec_fail(err, AEC_ERR_FORMAT, "y tables: %zu extra values", y_len - pos);
    if (st != AEC_OK)
        goto fail;
    *out = e;
    return AEC_OK;
fail:
    aec_entropy_free(e);
    return st;
}

void aec_entropy_scale_index(const aec_entropy *e, const float *sigma, size_t count, uint8_t *idx)
{
    for (size_t i = 0; i < count; i++) {
        int lo = 0, hi = AEC_ENTROPY_SCALES - 1; /* the first scale >= sigma, else the last */
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (e->scales[mid] >= sigma[i])
                hi = mid;
            else
                lo = mid + 1;
        }
        idx[i] = (uint8_t)lo;
    }
}

/* ---- substreams ------------------------------------------------------------------- */

#define HALF (TOTAL / 2)

static void put_bit(rc_encoder *rc, int bit)
{
    rc_encode(rc, bit ? HALF : 0, HALF);
}

static int get_bit(rc_decoder *rc)
{
    static const uint32_t cum[3] = {0, HALF, TOTAL};
    return rc_decode(rc, cum, 2);
}

/* A symbol under table t; beyond [-L, L] the escape, a sign and
 * Elias-gamma(|s| - L). */
static void put_symbol(rc_encoder *rc, const table *t, int32_t s)
{
    int32_t a = s < 0 ? -s : s;
    if (a <= t->L) {
        int k = s + t->L;
        rc_encode(rc, t->cum[k], t->cum[k + 1] - t->cum[k]);
        return;
    }
    int esc = 2 * t->L + 1;
    rc_encode(rc, t->cum[esc], t->cum[esc + 1] - t->cum[esc]);
    put_bit(rc, s < 0);
    uint32_t m = (uint32_t)(a - t->L); /* >= 1 */
    int nbits = 0;
    while ((m >> nbits) > 1)
        nbits++;
    for (int i = 0; i < nbits; i++)
        put_bit(rc, 1);
    put_bit(rc, 0);
    for (int i = nbits - 1; i >= 0; i--)
        put_bit(rc, (int)(m >> i) & 1);
}

/* The inverse; 0 and the symbol in *s, or -1 for bytes no encoder writes. */
static int get_symbol(rc_decoder *rc, const table *t, int32_t *s)
{
    int k = rc_decode(rc, t->cum, 2 * t->L + 2);
    if (k < 0)
        return -1;
    if (k <= 2 * t->L) {
        *s = k - t->L;
        return 0;
    }
    int neg = get_bit(rc), nbits = 0, b;
    while ((b = get_bit(rc)) == 1)
        if (++nbits > 21)
            return -1;
    if (b < 0 || neg < 0)
        return -1;
    uint32_t m = 1;
    for (int i = 0; i < nbits; i++) {
        if ((b = get_bit(rc)) < 0)
            return -1;
        m = (m << 1) | (uint32_t)b;
    }
    int64_t a = (int64_t)t->L + m;
    if (a > AEC_ENTROPY_MAX_ABS)
        return -1;
    *s = (int32_t)(neg ? -a : a);
    return 0;
}

/* Worst case per symbol: 16 bits, escape bits (1 + 2 * 21 + 1), and slack. */
static size_t stream_cap(size_t count)
{
    return count * 8 + 64;
}

typedef struct {
    const aec_entropy *e;
    const uint8_t *idx; /* y: table per symbol */
    size_t per_channel; /* z: symbols per channel */
} table_map;

static const table *table_of(const table_map *m, size_t i)
{
    return m->idx ? &m->e->y[m->idx[i]] : &m->e->z[i / m->per_channel];
}

static aec_status encode_all(const table_map *m, const int32_t *sym, size_t count, uint8_t **out,
                             size_t *len, aec_error *err)
{
    *out = NULL, *len = 0;
    size_t cap = stream_cap(count);
    uint8_t *buf = malloc(cap);
    if (!buf)
        return aec_fail(err, AEC_ERR_NOMEM, "entropy coder: out of memory");
    rc_encoder rc;
    rc_encoder_init(&rc, buf, cap);
    for (size_t i = 0; i < count; i++) {
        if (sym[i] > AEC_ENTROPY_MAX_ABS || sym[i] < -AEC_ENTROPY_MAX_ABS) {
            free(buf);
            return aec_fail(err, AEC_ERR_INVALID, "entropy coder: symbol %ld out of range",
                            (long)sym[i]);
        }
        put_symbol(&rc, table_of(m, i), sym[i]);
    }
    size_t n = rc_encoder_finish(&rc);
    if (rc.overflow) {
        free(buf);
        return aec_fail(err, AEC_ERR_LIMIT, "entropy coder: stream exceeds its bound");
    }
    *out = buf, *len = n;
    return AEC_OK;
}

static aec_status decode_all(const table_map *m, const uint8_t *buf, size_t len, int32_t *sym,
                             size_t count, const char *what, aec_error *err)
{
    rc_decoder rc;
    rc_decoder_init(&rc, buf, len);
    for (size_t i = 0; i < count; i++) {
        if (get_symbol(&rc, table_of(m, i), &sym[i]) < 0)
            return aec_fail(err, AEC_ERR_FORMAT, "%s substream: corrupt at symbol %zu", what, i);
        if (rc.pos > len + 8)
            return aec_fail(err, AEC_ERR_FORMAT, "%s substream: truncated", what);
    }
    return AEC_OK;
}

aec_status aec_entropy_encode_z(const aec_entropy *e, const int32_t *sym, size_t per_channel,
                                uint8_t **out, size_t *len, aec_error *err)
{
    table_map m = {.e = e, .per_channel = per_channel};
    return encode_all(&m, sym, per_channel * (size_t)e->channels, out, len, err);
}

aec_status aec_entropy_decode_z(const aec_entropy *e, const uint8_t *buf, size_t len,
                                size_t per_channel, int32_t *sym, aec_error *err)
{
    table_map m = {.e = e, .per_channel = per_channel};
    return decode_all(&m, buf, len, sym, per_channel * (size_t)e->channels, "z", err);
}

aec_status aec_entropy_encode_y(const aec_entropy *e, const int32_t *sym, const uint8_t *idx,
                                size_t count, uint8_t **out, size_t *len, aec_error *err)
{
    table_map m = {.e = e, .idx = idx};
    return encode_all(&m, sym, count, out, len, err);
}

aec_status aec_entropy_decode_y(const aec_entropy *e, const uint8_t *buf, size_t len,
                                const uint8_t *idx, size_t count, int32_t *sym, aec_error *err)
{
    table_map m = {.e = e, .idx = idx};
    return decode_all(&m, buf, len, sym, count, "y", err);
}
