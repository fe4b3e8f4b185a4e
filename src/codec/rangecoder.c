/* rangecoder.c - the range coder of the binary latent v2 (see rangecoder.h).
 *
 * The interval [low, low + range) shrinks by each symbol's share of 2^16;
 * whenever range drops below 2^24 the top byte of low is final (up to a
 * carry) and is shifted out. At the end any value of the last interval
 * identifies the stream, so the encoder picks the one with the most
 * trailing zero bytes and drops them: the decoder reads zeros past the end.
 */
#include "rangecoder.h"

#define RC_TOP (1u << 24)
#define RC_BITS 16

static void put_byte(rc_encoder *e, uint8_t b)
{
    if (e->first) { /* always 0: the interval never reaches 1.0 */
        e->first = 0;
        return;
    }
    if (e->len < e->cap)
        e->out[e->len++] = b;
    else
        e->overflow = 1;
}

static void shift_low(rc_encoder *e)
{
    if ((uint32_t)e->low < 0xFF000000u || (e->low >> 32) != 0) {
        uint8_t carry = (uint8_t)(e->low >> 32), b = e->cache;
        do {
            put_byte(e, (uint8_t)(b + carry));
            b = 0xFF;
        } while (--e->pending != 0);
        e->cache = (uint8_t)(e->low >> 24);
    }
    e->pending++;
    e->low = (e->low & 0x00FFFFFFu) << 8;
}

void rc_encoder_init(rc_encoder *e, uint8_t *out, size_t cap)
{
    *e = (rc_encoder){.range = 0xFFFFFFFFu, .pending = 1, .first = 1, .out = out, .cap = cap};
}

void rc_encode(rc_encoder *e, uint32_t cum, uint32_t freq)
{
    uint32_t r = e->range >> RC_BITS;
    e->low += (uint64_t)r * cum;
    e->range = r * freq;
    while (e->range < RC_TOP) {
        e->range <<= 8;
        shift_low(e);
    }
}

size_t rc_encoder_finish(rc_encoder *e)
{
    /* range >= 2^24, so rounding low up to a multiple of 2^24 stays inside */
    e->low = (e->low + (RC_TOP - 1)) & ~(uint64_t)(RC_TOP - 1);
    for (int i = 0; i < 5; i++)
        shift_low(e);
    if (e->overflow)
        return 0;
    while (e->len > 0 && e->out[e->len - 1] == 0)
        e->len--;
    return e->len;
}

static uint8_t next_byte(rc_decoder *d)
{
    uint8_t b = d->pos < d->len ? d->in[d->pos] : 0;
    d->pos++;
    return b;
}

void rc_decoder_init(rc_decoder *d, const uint8_t *in, size_t len)
{
    *d = (rc_decoder){.range = 0xFFFFFFFFu, .in = in, .len = len};
    for (int i = 0; i < 4; i++)
        d->code = (d->code << 8) | next_byte(d);
}

int rc_decode(rc_decoder *d, const uint32_t *cum, int n)
{
    uint32_t r = d->range >> RC_BITS;
    uint32_t v = d->code / r;
    if (v >= cum[n])
        return -1;
    int lo = 0, hi = n - 1; /* the last s with cum[s] <= v */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (cum[mid] <= v)
            lo = mid;
        else
            hi = mid - 1;
    }
    d->code -= r * cum[lo];
    d->range = r * (cum[lo + 1] - cum[lo]);
    while (d->range < RC_TOP) {
        d->code = (d->code << 8) | next_byte(d);
        d->range <<= 8;
    }
    return lo;
}
