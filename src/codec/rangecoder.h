/* rangecoder.h - a byte-oriented range coder over 16-bit frequency tables
 * (private to src/codec/). The carry handling is LZMA's: the encoder keeps
 * the last byte and a run of 0xFF bytes back until a carry can no longer
 * reach them. A symbol is (cum, freq) with cum + freq <= 1 << 16.
 */
#ifndef AEC_RANGECODER_H
#define AEC_RANGECODER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t low;
    uint32_t range;
    uint8_t cache;
    uint64_t pending; /* bytes held back: the cache and the 0xFF run after it */
    int first;        /* the first byte is always 0 and is not written */
    uint8_t *out;
    size_t len, cap;
    int overflow; /* more than cap bytes were needed */
} rc_encoder;

void rc_encoder_init(rc_encoder *e, uint8_t *out, size_t cap);
void rc_encode(rc_encoder *e, uint32_t cum, uint32_t freq);
/* Writes the final bytes; returns the length, trailing zeros dropped (the
 * decoder reads zeros past the end), or 0 with e->overflow set. */
size_t rc_encoder_finish(rc_encoder *e);

typedef struct {
    uint32_t range, code;
    const uint8_t *in;
    size_t len, pos; /* pos counts bytes read, including the zeros past len */
} rc_decoder;

void rc_decoder_init(rc_decoder *d, const uint8_t *in, size_t len);
/* Decodes one symbol of a table of n symbols with cumulative frequencies
 * cum[0..n] (cum[0] = 0, cum[n] = 1 << 16). Returns its index, or -1 when
 * the bytes cannot come from the encoder (a corrupt stream). */
int rc_decode(rc_decoder *d, const uint32_t *cum, int n);

#endif
