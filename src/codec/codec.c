/* codec.c - the binary latent v2: quantization, per-channel probability
 * tables and the stream format (layout in include/aec/codec.h).
 *
 * Owns aec_codec (the tables of one model, validated, with cumulative
 * frequencies ready for the range coder) and aec_codec_builder (histograms
 * of rounded latents -> tables in the model file). The range coder itself
 * is in rangecoder.c.
 *
 * Nothing in a stream is trusted: the length is bounded by the model's
 * worst case before anything is read, the format byte and model tag are
 * checked, every decoded symbol must come from the table, the decoder must
 * consume every byte, and the symbols' CRC must match the header's.
 */
#include "aec/codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/hash.h"

#include "rangecoder.h"

#define TOTAL (1u << AEC_CODEC_PRECISION)
#define SYMBOLS_MAX (2 * AEC_CODEC_MAX_ABS + 1)

struct aec_codec {
    int channels, spatial;
    uint16_t model_tag; /* low 16 bits of the model id hash */
    int *lo, *nsym;     /* per channel: lowest symbol, symbol count */
    uint32_t **cum;     /* per channel: nsym + 1 cumulative frequencies */
    uint32_t *cum_store;
};

/* The latent's channels and values per channel (flat latents: one value per channel). */
static void latent_layout(const aec_model *m, int *channels, int *spatial)
{
    const aec_shape *s = &m->layers[m->latent_index].out_shape;
    *channels = s->c;
    *spatial = s->h * s->w;
}

/* The stream's model tag: FNV-1a over the model id hash and the tables, so
 * a stream is refused by a model with other weights or other tables. */
static uint16_t model_tag(const aec_model *m, const aec_extra_tensor *tables)
{
    uint64_t h = aec_hash64(AEC_HASH64_INIT, &m->id_hash, sizeof m->id_hash);
    h = aec_hash64(h, tables->data, tables->count * sizeof(float));
    return (uint16_t)((h >> 48) ^ (h & 0xFFFF));
}

/* CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over the symbols as int16 LE. */
static uint16_t crc16_symbols(const int16_t *sym, size_t n)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        uint8_t bytes[2] = {(uint8_t)((uint16_t)sym[i] & 0xFF), (uint8_t)((uint16_t)sym[i] >> 8)};
        for (int k = 0; k < 2; k++) {
            crc ^= (uint16_t)(bytes[k] << 8);
            for (int b = 0; b < 8; b++)
                crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
        }
    }
    return crc;
}

/* ---- tables ----------------------------------------------------------------------- */

int aec_model_has_codec(const aec_model *m)
{
    return aec_model_find_extra(m, AEC_CODEC_TABLES) != NULL;
}

void aec_codec_free(aec_codec *c)
{
    if (!c)
        return;
    free(c->lo);
    free(c->nsym);
    free(c->cum);
    free(c->cum_store);
    free(c);
}

static int is_int_in(float v, long lo, long hi)
{
    return isfinite(v) && v == floorf(v) && v >= (float)lo && v <= (float)hi;
}

/* Checks row j of the tables tensor (width floats) and fills the channel. */
static aec_status read_row(aec_codec *c, int j, const float *row, int width, uint32_t *cum,
                           aec_error *err)
{
    if (!is_int_in(row[0], -AEC_CODEC_MAX_ABS, AEC_CODEC_MAX_ABS) ||
        !is_int_in(row[1], 1, width - 2) || row[0] + row[1] - 1 > AEC_CODEC_MAX_ABS)
        return aec_fail(err, AEC_ERR_FORMAT,
                        "%s: channel %d: symbol range (lowest %g, count %g) is invalid",
                        AEC_CODEC_TABLES, j, row[0], row[1]);
    c->lo[j] = (int)row[0];
    c->nsym[j] = (int)row[1];
    cum[0] = 0;
    for (int s = 0; s < c->nsym[j]; s++) {
        if (!is_int_in(row[2 + s], 1, TOTAL))
            return aec_fail(err, AEC_ERR_FORMAT,
                            "%s: channel %d: frequency %d is %g (must be an integer 1..%u)",
                            AEC_CODEC_TABLES, j, s, row[2 + s], TOTAL);
        cum[s + 1] = cum[s] + (uint32_t)row[2 + s];
        if (cum[s + 1] > TOTAL)
            break;
    }
    if (cum[c->nsym[j]] != TOTAL)
        return aec_fail(err, AEC_ERR_FORMAT, "%s: channel %d: frequencies do not sum to %u",
                        AEC_CODEC_TABLES, j, TOTAL);
    for (int s = 2 + c->nsym[j]; s < width; s++)
        if (row[s] != 0.0f)
            return aec_fail(err, AEC_ERR_FORMAT, "%s: channel %d: padding is not zero",
                            AEC_CODEC_TABLES, j);
    return AEC_OK;
}

aec_status aec_codec_create(aec_codec **out, const aec_model *m, aec_error *err)
{
    *out = NULL;
    const aec_extra_tensor *t = aec_model_find_extra(m, AEC_CODEC_TABLES);
    if (!t)
        return aec_fail(err, AEC_ERR_UNSUPPORTED,
                        "model %s has no codec tables (train it with aec-train --lambda)", m->id);
    int channels, spatial;
    latent_layout(m, &channels, &spatial);
    if (t->ndim != 2 || t->dims[0] != channels || t->dims[1] < 3 || t->dims[1] > SYMBOLS_MAX + 2)
        return aec_fail(err, AEC_ERR_FORMAT,
                        "%s: shape must be [%d, 3..%d] (latent channels, 2 + symbols)",
                        AEC_CODEC_TABLES, channels, SYMBOLS_MAX + 2);
    int width = t->dims[1];
    aec_codec *c = calloc(1, sizeof *c);
    if (!c)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    c->channels = channels;
    c->spatial = spatial;
    c->model_tag = model_tag(m, t);
    c->lo = calloc((size_t)channels, sizeof *c->lo);
    c->nsym = calloc((size_t)channels, sizeof *c->nsym);
    c->cum = calloc((size_t)channels, sizeof *c->cum);
    c->cum_store = calloc((size_t)channels * (size_t)(width - 1), sizeof *c->cum_store);
    if (!c->lo || !c->nsym || !c->cum || !c->cum_store) {
        aec_codec_free(c);
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    }
    for (int j = 0; j < channels; j++) {
        c->cum[j] = c->cum_store + (size_t)j * (size_t)(width - 1);
        aec_status st = read_row(c, j, t->data + (size_t)j * (size_t)width, width, c->cum[j], err);
        if (st) {
            aec_codec_free(c);
            return st;
        }
    }
    *out = c;
    return AEC_OK;
}

size_t aec_codec_max_bytes(const aec_codec *c)
{
    /* a symbol costs at most 16 bits; the coder adds at most 4 bytes */
    return AEC_CODEC_HEADER + 2 * (size_t)c->channels * (size_t)c->spatial + 8;
}

/* ---- streams ------------------------------------------------------------------------ */

int aec_codec_is_stream(const uint8_t *buf, size_t len)
{
    return len >= 1 && buf[0] == AEC_CODEC_FORMAT;
}

int aec_codec_stream_tag(const uint8_t *buf, size_t len, uint16_t *tag)
{
    if (len < 3 || !aec_codec_is_stream(buf, len))
        return 0;
    *tag = (uint16_t)(buf[1] | buf[2] << 8);
    return 1;
}

uint16_t aec_codec_tag(const aec_codec *c)
{
    return c->model_tag;
}

aec_status aec_codec_encode(const aec_codec *c, const float *latent, uint8_t **out, size_t *len,
                            aec_error *err)
{
    size_t count = (size_t)c->channels * (size_t)c->spatial, cap = aec_codec_max_bytes(c);
    int16_t *sym = malloc(sizeof(int16_t) * count);
    uint8_t *buf = malloc(cap);
    if (!sym || !buf) {
        free(sym), free(buf);
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    }
    rc_encoder e;
    rc_encoder_init(&e, buf + AEC_CODEC_HEADER, cap - AEC_CODEC_HEADER);
    for (int j = 0; j < c->channels; j++)
        for (int k = 0; k < c->spatial; k++) {
            size_t i = (size_t)j * (size_t)c->spatial + (size_t)k;
            if (!isfinite(latent[i])) {
                free(sym), free(buf);
                return aec_fail(err, AEC_ERR_INVALID, "latent value %zu is not finite", i);
            }
            float v = rintf(latent[i]); /* round half to even, as the trainer */
            int s = v < (float)c->lo[j]                      ? 0
                    : v > (float)(c->lo[j] + c->nsym[j] - 1) ? c->nsym[j] - 1
                                                             : (int)v - c->lo[j];
            sym[i] = (int16_t)(c->lo[j] + s);
            rc_encode(&e, c->cum[j][s], c->cum[j][s + 1] - c->cum[j][s]);
        }
    size_t n = rc_encoder_finish(&e);
    if (e.overflow) { /* cannot happen: cap is the worst case */
        free(sym), free(buf);
        return aec_fail(err, AEC_ERR_INVALID, "codec stream longer than its bound");
    }
    uint16_t crc = crc16_symbols(sym, count);
    buf[0] = AEC_CODEC_FORMAT;
    buf[1] = (uint8_t)(c->model_tag & 0xFF);
    buf[2] = (uint8_t)(c->model_tag >> 8);
    buf[3] = (uint8_t)(crc & 0xFF);
    buf[4] = (uint8_t)(crc >> 8);
    free(sym);
    *out = buf;
    *len = AEC_CODEC_HEADER + n;
    return AEC_OK;
}

aec_status aec_codec_decode(const aec_codec *c, const uint8_t *buf, size_t len, float *latent,
                            aec_error *err)
{
    size_t count = (size_t)c->channels * (size_t)c->spatial;
    if (len < AEC_CODEC_HEADER)
        return aec_fail(err, AEC_ERR_FORMAT,
                        "codec stream of %zu bytes is shorter than its %d-byte header", len,
                        AEC_CODEC_HEADER);
    if (buf[0] != AEC_CODEC_FORMAT)
        return aec_fail(err, AEC_ERR_FORMAT,
                        "not a version-2 latent (first byte 0x%02x, not 0x%02x)", buf[0],
                        AEC_CODEC_FORMAT);
    if (len > aec_codec_max_bytes(c))
        return aec_fail(err, AEC_ERR_FORMAT,
                        "codec stream of %zu bytes is longer than any this model writes (%zu)", len,
                        aec_codec_max_bytes(c));
    uint16_t tag = (uint16_t)(buf[1] | buf[2] << 8), crc = (uint16_t)(buf[3] | buf[4] << 8);
    if (tag != c->model_tag)
        return aec_fail(err, AEC_ERR_MISMATCH,
                        "latent was made by another model (tag %04x, this model's is %04x)", tag,
                        c->model_tag);
    int16_t *sym = malloc(sizeof(int16_t) * count);
    if (!sym)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    rc_decoder d;
    rc_decoder_init(&d, buf + AEC_CODEC_HEADER, len - AEC_CODEC_HEADER);
    for (int j = 0; j < c->channels; j++)
        for (int k = 0; k < c->spatial; k++) {
            size_t i = (size_t)j * (size_t)c->spatial + (size_t)k;
            int s = rc_decode(&d, c->cum[j], c->nsym[j]);
            if (s < 0) {
                free(sym);
                return aec_fail(err, AEC_ERR_FORMAT, "corrupt codec stream (at symbol %zu)", i);
            }
            sym[i] = (int16_t)(c->lo[j] + s);
            latent[i] = (float)sym[i];
        }
    int trailing = d.pos < d.len;
    uint16_t got = crc16_symbols(sym, count);
    free(sym);
    if (trailing)
        return aec_fail(err, AEC_ERR_FORMAT, "codec stream has %zu bytes after its end",
                        d.len - d.pos);
    if (got != crc)
        return aec_fail(err, AEC_ERR_FORMAT,
                        "codec stream is corrupt or truncated (checksum %04x, header says %04x)",
                        got, crc);
    return AEC_OK;
}

/* ---- building tables ------------------------------------------------------------------ */

struct aec_codec_builder {
    int channels, spatial;
    uint64_t *counts; /* channels x SYMBOLS_MAX, symbol s at s + MAX_ABS */
};

aec_status aec_codec_builder_create(aec_codec_builder **out, const aec_model *m, aec_error *err)
{
    aec_codec_builder *b = calloc(1, sizeof *b);
    if (!b)
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    latent_layout(m, &b->channels, &b->spatial);
    b->counts = calloc((size_t)b->channels * SYMBOLS_MAX, sizeof *b->counts);
    if (!b->counts) {
        free(b);
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory for codec histograms");
    }
    *out = b;
    return AEC_OK;
}

void aec_codec_builder_free(aec_codec_builder *b)
{
    if (b)
        free(b->counts);
    free(b);
}

void aec_codec_builder_add(aec_codec_builder *b, const float *latents, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < b->channels; j++) {
            const float *x = latents + ((size_t)i * b->channels + j) * b->spatial;
            uint64_t *h = b->counts + (size_t)j * SYMBOLS_MAX;
            for (int k = 0; k < b->spatial; k++) {
                float v = isfinite(x[k]) ? rintf(x[k]) : 0.0f;
                v = v < -AEC_CODEC_MAX_ABS ? -AEC_CODEC_MAX_ABS
                                           : (v > AEC_CODEC_MAX_ABS ? AEC_CODEC_MAX_ABS : v);
                h[(int)v + AEC_CODEC_MAX_ABS]++;
            }
        }
}

/* One channel's counts -> lowest symbol, count and frequencies (>= 1 each,
 * summing to TOTAL). The range is what was seen, widened by one symbol on
 * each side for latents a little outside the training set's. */
static int channel_table(const uint64_t *h, int *lo_out, uint32_t *freq)
{
    int first = -1, last = -1;
    uint64_t total = 0;
    for (int s = 0; s < SYMBOLS_MAX; s++)
        if (h[s]) {
            if (first < 0)
                first = s;
            last = s;
            total += h[s];
        }
    if (first < 0)
        first = last = AEC_CODEC_MAX_ABS; /* never seen: symbol 0 */
    if (first > 0)
        first--;
    if (last < SYMBOLS_MAX - 1)
        last++;
    int n = last - first + 1, mode = first;
    uint64_t spread = TOTAL - (uint64_t)n, sum = 0;
    for (int s = first; s <= last; s++) {
        uint64_t f = 1 + (total ? h[s] * spread / total : (s == AEC_CODEC_MAX_ABS ? spread : 0));
        freq[s - first] = (uint32_t)f;
        sum += f;
        if (h[s] > h[mode])
            mode = s;
    }
    freq[mode - first] += (uint32_t)(TOTAL - sum); /* rounding remainder to the mode */
    *lo_out = first - AEC_CODEC_MAX_ABS;
    return n;
}

aec_status aec_codec_builder_finish(aec_codec_builder *b, aec_model *m, const char *info_json,
                                    aec_error *err)
{
    int width = 3;
    int *lo = malloc(sizeof(int) * (size_t)b->channels);
    int *n = malloc(sizeof(int) * (size_t)b->channels);
    uint32_t *freq = malloc(sizeof(uint32_t) * (size_t)b->channels * SYMBOLS_MAX);
    if (!lo || !n || !freq) {
        free(lo), free(n), free(freq);
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    }
    for (int j = 0; j < b->channels; j++) {
        n[j] = channel_table(b->counts + (size_t)j * SYMBOLS_MAX, &lo[j],
                             freq + (size_t)j * SYMBOLS_MAX);
        if (n[j] + 2 > width)
            width = n[j] + 2;
    }
    float *t = calloc((size_t)b->channels * (size_t)width, sizeof(float));
    aec_status st = AEC_OK;
    if (!t)
        st = aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    for (int j = 0; !st && j < b->channels; j++) {
        float *row = t + (size_t)j * (size_t)width;
        row[0] = (float)lo[j];
        row[1] = (float)n[j];
        for (int s = 0; s < n[j]; s++)
            row[2 + s] = (float)freq[(size_t)j * SYMBOLS_MAX + (size_t)s];
    }
    int dims[2] = {b->channels, width};
    if (!st)
        st = aec_model_set_extra(m, AEC_CODEC_TABLES, t, 2, dims, err);
    if (!st) {
        char *info = strdup(info_json ? info_json : "{}");
        if (!info)
            st = aec_fail(err, AEC_ERR_NOMEM, "out of memory");
        else {
            free(m->codec_json);
            m->codec_json = info;
        }
    }
    free(t), free(lo), free(n), free(freq);
    return st;
}
