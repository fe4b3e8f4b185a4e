/* stb_decode.c - the stb_image decoder, compiled here with a memory budget
 * per call (declarations in stb_decode.h).
 *
 * Owns the only stb_image implementation the project decodes with. It is
 * Debian's own header (libstb-dev's /usr/include/stb/stb_image.h, 2.27, the
 * source of libstb.so), built in this file with STB_IMAGE_STATIC so that
 * every stbi_* function and variable stays local to this object: libstb's
 * exported stbi_load* are never called, and stb_image_write and
 * stb_image_resize (other symbols) still come from libstb.
 *
 * Why: stb's inflater has no output cap. A PNG's zlib stream is inflated into
 * a buffer that starts at the size the header implies and doubles by realloc
 * for as long as the stream goes on, so a few KB declaring 1x1 pixels can
 * make it allocate gigabytes (deflate expands up to 1032:1, and the daemon
 * takes 32 MiB uploads). STBI_MALLOC/REALLOC/FREE are therefore ours: each
 * block carries its size in a small header, the live total of the current
 * call is kept in thread-local state, and an allocation that would take it
 * past the call's budget returns NULL, so stb fails with "outofmem" and
 * aec_stbi_budget_exceeded() says why.
 *
 * The budget for w x h declared pixels and len input bytes is
 *
 *     32*w*h + 512*(min(w,65535) + min(h,65535)) + 2*len + 1 MiB
 *
 * 32 bytes per pixel is above the largest amount any stb 2.27 loader holds
 * at once for a well-formed image, read off its allocations (req_comp 4):
 *   PNG, 16-bit RGBA interlaced (the worst case): the inflate buffer grows by
 *     doubling from stb's guess, 8 B/px + 1 B/row, which an interlaced image
 *     exceeds by its extra per-pass filter bytes, so it ends at 16 B/px + 2
 *     B/row; de-interlacing then adds the 8 B/px result and one pass (at most
 *     half the image, 4 B/px): 28 B/px + 2 B/row. 16-bit to 8-bit, palette
 *     and channel conversions each hold old + new <= 12 B/px. A non-
 *     interlaced PNG inflates to exactly stb's guess; 8-bit ones need half.
 *   JPEG: per component a sample plane (1 B) and, when progressive, a
 *     coefficient plane (2 B) per pixel of the image padded to whole MCUs, up
 *     to 4 components, then the 4 B/px output: 16 B/px + the padding.
 *   GIF 9 B/px, TGA 8 (+ a palette <= 256 KiB), PNM 7, BMP 4, PIC 4.
 * Per-row costs (PNG filter bytes) are at most a few bytes per pixel too,
 * since a row has at least one pixel. The padding term is JPEG's: each side
 * padded by up to 31 pixels (sides are 16-bit there) at 12 B per padded
 * pixel is 372 B per unit of w + h (a 1-pixel-wide 4-component strip sampled
 * 4x4 is nearly all padding). 2*len covers PNG's copy of the compressed IDAT
 * data, grown by doubling; 1 MiB covers fixed structures (stb's JPEG and GIF
 * state, the TGA palette, line buffers). tests/unit/test_image.c measures
 * the peaks: 86% of the budget for a 2048x2048 16-bit RGBA interlaced PNG,
 * 69% for that JPEG strip, at most about half for the rest. A realloc is
 * charged the difference, so the process may briefly hold old + new blocks;
 * the true peak stays below twice the budget.
 *
 * Being generous costs nothing: a valid all-zero 16-bit interlaced PNG of
 * max_pixels is a few KB and needs ~28 B/px anyway, so max_pixels already
 * sizes what one request can cost, and a bomb can now do no more than that
 * image. What the budget removes is memory beyond it.
 *
 * Other choices: STBI_NO_HDR and STBI_NO_PSD (both refused before stb sees
 * them, see sniff.c: a hang, and undefined behaviour in PSD's matte
 * removal), STBI_NO_LINEAR (no float output), STBI_NO_STDIO (memory only),
 * STBI_MAX_DIMENSIONS = AEC_IMAGE_MAX_SIDE, failure strings kept. In C11
 * stb makes its failure reason _Thread_local (checked below); nothing here
 * touches stb's global flags (flip, unpremultiply, iPhone conversion).
 */
#include "stb_decode.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "aec/image.h"

/* ---- the budget ------------------------------------------------------------------ */

typedef struct {
    int active;    /* inside an aec_stbi_* call on this thread */
    int refused;   /* an allocation was refused because of the budget */
    size_t budget; /* bytes the call may hold at once, headers included */
    size_t used, peak;
} budget_state;

static _Thread_local budget_state tl_budget;

/* Each block is [size_t size, padding][user bytes]; user bytes keep malloc's
 * alignment. */
#define HEAD                                                                                       \
    ((sizeof(size_t) + _Alignof(max_align_t) - 1) / _Alignof(max_align_t) * _Alignof(max_align_t))

static size_t *head_of(void *p)
{
    return (size_t *)(void *)((unsigned char *)p - HEAD);
}

/* Whether `more` bytes fit; records a refusal. Outside a call nothing fits
 * (stb is reachable only through the wrappers below). */
static int charge(size_t more)
{
    budget_state *b = &tl_budget;
    if (!b->active || more > b->budget - b->used) {
        b->refused = 1;
        return 0;
    }
    b->used += more;
    if (b->used > b->peak)
        b->peak = b->used;
    return 1;
}

static void discharge(size_t less)
{
    budget_state *b = &tl_budget;
    if (b->active)
        b->used = less < b->used ? b->used - less : 0;
}

static void *aec_stbi_malloc(size_t n)
{
    if (n > SIZE_MAX - HEAD || !charge(n + HEAD))
        return NULL;
    size_t *h = malloc(n + HEAD);
    if (!h) {
        discharge(n + HEAD);
        return NULL;
    }
    *h = n + HEAD;
    return (unsigned char *)h + HEAD;
}

static void aec_stbi_free(void *p)
{
    if (!p)
        return;
    size_t *h = head_of(p);
    discharge(*h);
    free(h);
}

static void *aec_stbi_realloc(void *p, size_t n)
{
    if (!p)
        return aec_stbi_malloc(n);
    if (n > SIZE_MAX - HEAD)
        return NULL;
    size_t *h = head_of(p), old = *h, want = n + HEAD;
    if (want > old && !charge(want - old))
        return NULL;
    size_t *nh = realloc(h, want);
    if (!nh) {
        if (want > old)
            discharge(want - old);
        return NULL;
    }
    if (want < old)
        discharge(old - want);
    *nh = want;
    return (unsigned char *)nh + HEAD;
}

/* ---- stb_image, private to this file ------------------------------------------- */

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_HDR
#define STBI_NO_PSD
#define STBI_NO_LINEAR
#define STBI_NO_STDIO
#define STBI_MAX_DIMENSIONS AEC_IMAGE_MAX_SIDE
#define STBI_MALLOC(sz) aec_stbi_malloc(sz)
#define STBI_REALLOC(p, newsz) aec_stbi_realloc(p, newsz)
#define STBI_FREE(p) aec_stbi_free(p)

/* 2.27 declares stbi_set_unpremultiply_on_load_thread but defines it as
 * stbi__unpremultiply_on_load_thread; static, that is a declaration never
 * defined, which GCC reports at the end of the file, past any pragma. Naming
 * both the same keeps it a plain unused function (and is harmless once a
 * later stb spells it right). */
#define stbi_set_unpremultiply_on_load_thread stbi__unpremultiply_on_load_thread

/* Warnings silenced for stb's code only, and only these (GCC 12 and clang
 * 14, -O0..-O3/-Os, with and without sanitizers or -march=native):
 * -Wunused-function: STB_IMAGE_STATIC makes the whole public API static, and
 *   the functions we do not call are "defined but not used".
 * -Wmaybe-uninitialized (GCC -O3): stbi__refill_buffer reads the callback
 *   fields that stbi__start_mem leaves unset; it runs only for callback
 *   input, never for memory. clang has no such option. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <stb_image.h>
#pragma GCC diagnostic pop

#ifndef STBI_THREAD_LOCAL
#error "stb_image's failure reason must be thread-local (the daemon decodes in many threads)"
#endif

/* ---- the wrappers ------------------------------------------------------------------ */

static void begin(size_t budget)
{
    tl_budget = (budget_state){.active = 1, .budget = budget};
}

static void end(void)
{
    tl_budget.active = 0;
}

size_t aec_stbi_decode_budget(int w, int h, size_t len)
{
    uint64_t uw = w > 0 ? (uint64_t)w : 0, uh = h > 0 ? (uint64_t)h : 0;
    uint64_t jw = uw < 65535 ? uw : 65535, jh = uh < 65535 ? uh : 65535;
    /* 32*w*h could pass 2^64 only for sides far past stb's limit (2^24);
     * saturate anyway. */
    uint64_t b = (uint64_t)1 << 20;
    if (uw && uh > (UINT64_MAX / 32 - b) / uw)
        return SIZE_MAX;
    b += 32 * uw * uh + 512 * (jw + jh);
    uint64_t l = (uint64_t)len;
    if (l > (UINT64_MAX - b) / 2)
        return SIZE_MAX;
    b += 2 * l;
    return b > SIZE_MAX ? SIZE_MAX : (size_t)b;
}

int aec_stbi_info_from_memory(const uint8_t *buf, int len, int *w, int *h, int *comp)
{
    begin(AEC_STBI_INFO_BUDGET);
    int ok = stbi_info_from_memory(buf, len, w, h, comp);
    end();
    return ok;
}

uint8_t *aec_stbi_load_from_memory(const uint8_t *buf, int len, size_t budget, int *w, int *h,
                                   int *comp, int req_comp)
{
    begin(budget);
    uint8_t *pix = stbi_load_from_memory(buf, len, w, h, comp, req_comp);
    end();
    return pix;
}

const char *aec_stbi_failure_reason(void)
{
    return stbi_failure_reason();
}

int aec_stbi_budget_exceeded(void)
{
    return tl_budget.refused;
}

size_t aec_stbi_peak(void)
{
    return tl_budget.peak;
}

void aec_stbi_image_free(void *pixels)
{
    stbi_image_free(pixels);
}
