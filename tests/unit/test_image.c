/* test_image.c - image decoding, tensor conversion, resizing and PNG output
 * (src/image/). Every image is made in memory: PNG/BMP/TGA/JPEG with
 * stb_image_write, GIFs and odd PNGs (palette + tRNS, 16-bit, a lying IHDR,
 * interlaced, zlib bombs) and progressive JPEGs assembled byte by byte here.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <stb_image_write.h>

#include "aec/image.h"
#include "testutil.h"

/* white-box: the decoder's memory budget and the peak it measured */
#include "../../src/image/stb_decode.h"

#define MP4 ((size_t)4 << 20)

/* ---- in-memory byte buffers ------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n;
    size_t cap; /* grows by doubling: stb_image_write's JPEG writer calls back
                   every 64 bytes */
} bytes;

static void bytes_put(bytes *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        REQUIRE(b->p, "oom");
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void bytes_be32(bytes *b, uint32_t v)
{
    uint8_t q[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    bytes_put(b, q, 4);
}

static void write_cb(void *ctx, void *data, int size)
{
    bytes_put(ctx, data, (size_t)size);
}

enum { FMT_PNG, FMT_BMP, FMT_TGA, FMT_JPG };

static bytes encode(int fmt, const uint8_t *pix, int w, int h, int comp)
{
    bytes b = {0};
    int ok = 0;
    switch (fmt) {
    case FMT_PNG: ok = stbi_write_png_to_func(write_cb, &b, w, h, comp, pix, w * comp); break;
    case FMT_BMP: ok = stbi_write_bmp_to_func(write_cb, &b, w, h, comp, pix); break;
    case FMT_TGA: ok = stbi_write_tga_to_func(write_cb, &b, w, h, comp, pix); break;
    case FMT_JPG: ok = stbi_write_jpg_to_func(write_cb, &b, w, h, comp, pix, 95); break;
    }
    REQUIRE(ok && b.n > 0, "stb_image_write failed for format %d", fmt);
    return b;
}

/* ---- hand-made PNGs ----------------------------------------------------------- */

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static void png_chunk(bytes *b, const char *type, const uint8_t *data, size_t n)
{
    bytes_be32(b, (uint32_t)n);
    size_t start = b->n;
    bytes_put(b, type, 4);
    if (n)
        bytes_put(b, data, n);
    bytes_be32(b, crc32_update(0, b->p + start, n + 4));
}

static void png_start_il(bytes *b, uint32_t w, uint32_t h, int depth, int color, int interlace)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    bytes_put(b, sig, 8);
    uint8_t ihdr[13] = {(uint8_t)(w >> 24),
                        (uint8_t)(w >> 16),
                        (uint8_t)(w >> 8),
                        (uint8_t)w,
                        (uint8_t)(h >> 24),
                        (uint8_t)(h >> 16),
                        (uint8_t)(h >> 8),
                        (uint8_t)h,
                        (uint8_t)depth,
                        (uint8_t)color,
                        0,
                        0,
                        (uint8_t)interlace};
    png_chunk(b, "IHDR", ihdr, 13);
}

static void png_start(bytes *b, uint32_t w, uint32_t h, int depth, int color)
{
    png_start_il(b, w, h, depth, color, 0);
}

/* IDAT holding raw (already filtered) scanlines in one stored deflate block. */
static void png_idat_stored(bytes *b, const uint8_t *raw, size_t n)
{
    bytes z = {0};
    uint8_t hdr[2] = {0x78, 0x01};
    bytes_put(&z, hdr, 2);
    uint8_t blk[5] = {1, (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)~n, (uint8_t)(~n >> 8)};
    bytes_put(&z, blk, 5);
    bytes_put(&z, raw, n);
    uint32_t a = 1, s = 0;
    for (size_t i = 0; i < n; i++) {
        a = (a + raw[i]) % 65521;
        s = (s + a) % 65521;
    }
    bytes_be32(&z, (s << 16) | a);
    png_chunk(b, "IDAT", z.p, z.n);
    free(z.p);
}

/* ---- zlib streams of zeros ----------------------------------------------------- */

/* Deflate's bit order: fixed fields LSB first, Huffman codes MSB first. */
typedef struct {
    uint8_t *p; /* zeroed; writing a 0 bit is just moving on */
    uint64_t bit;
} bitbuf;

static void bits_set(bitbuf *b, int v)
{
    if (v)
        b->p[b->bit >> 3] |= (uint8_t)(1u << (b->bit & 7));
    b->bit++;
}

static void bits_field(bitbuf *b, uint32_t v, int n)
{
    for (int i = 0; i < n; i++)
        bits_set(b, (int)(v >> i & 1));
}

static void bits_code(bitbuf *b, uint32_t code, int n)
{
    for (int i = n - 1; i >= 0; i--)
        bits_set(b, (int)(code >> i & 1));
}

/* A zlib stream that inflates to n >= 1 zero bytes at deflate's best ratio
 * (~1032:1): one dynamic-Huffman block whose only codes are literal 0 "10",
 * end of block "11", length 258 "0" and distance 1 "0". After the first
 * literal, every 258 bytes cost two 0 bits, so the body is zero bytes: 1 GB
 * takes 1 MB. Checked against Python's zlib when written. */
static bytes zlib_zeros(uint64_t n)
{
    uint64_t copies = (n - 1) / 258, tail = (n - 1) % 258;
    bitbuf b = {calloc((size_t)(128 + (2 * copies + 2 * tail) / 8), 1), 0};
    REQUIRE(b.p, "oom");
    bits_field(&b, 1, 1);         /* BFINAL */
    bits_field(&b, 2, 2);         /* BTYPE: dynamic Huffman */
    bits_field(&b, 286 - 257, 5); /* HLIT: literal/length codes 0..285 */
    bits_field(&b, 0, 5);         /* HDIST: one distance code */
    bits_field(&b, 18 - 4, 4);    /* HCLEN: the code-length code up to symbol 1 */
    static const uint8_t order[18] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1};
    for (int i = 0; i < 18; i++) /* code lengths 0, 1, 2 get codes "0", "10", "11" */
        bits_field(&b, order[i] == 0 ? 1 : order[i] <= 2 ? 2 : 0, 3);
    static const uint32_t cl_code[3] = {0, 2, 3};
    static const int cl_bits[3] = {1, 2, 2};
    for (int sym = 0; sym < 287; sym++) { /* 286 literal/length lengths, then distance 0 */
        int len = (sym == 0 || sym == 256) ? 2 : (sym == 285 || sym == 286) ? 1 : 0;
        bits_code(&b, cl_code[len], cl_bits[len]);
    }
    bits_code(&b, 2, 2); /* literal 0 */
    b.bit += 2 * copies; /* length 258, distance 1: "0" "0" */
    for (uint64_t i = 0; i < tail; i++)
        bits_code(&b, 2, 2);
    bits_code(&b, 3, 2); /* end of block */

    bytes z = {0};
    bytes_put(&z, "\x78\x01", 2);
    bytes_put(&z, b.p, (size_t)((b.bit + 7) / 8));
    bytes_be32(&z, (uint32_t)(n % 65521) << 16 | 1); /* Adler-32 of n zeros */
    free(b.p);
    return z;
}

/* The bytes a PNG's pixels inflate to: a filter byte per row, per pass. */
static uint64_t png_raw_size(uint32_t w, uint32_t h, int bits_per_pixel, int interlace)
{
    if (!interlace)
        return (uint64_t)h * (1 + ((uint64_t)w * bits_per_pixel + 7) / 8);
    static const uint32_t xo[7] = {0, 4, 0, 2, 0, 1, 0}, yo[7] = {0, 0, 4, 0, 2, 0, 1};
    static const uint32_t xs[7] = {8, 8, 4, 4, 2, 2, 1}, ys[7] = {8, 8, 8, 4, 4, 2, 2};
    uint64_t n = 0;
    for (int p = 0; p < 7; p++) {
        uint64_t pw = w > xo[p] ? (w - xo[p] + xs[p] - 1) / xs[p] : 0;
        uint64_t ph = h > yo[p] ? (h - yo[p] + ys[p] - 1) / ys[p] : 0;
        if (pw && ph)
            n += ph * (1 + (pw * bits_per_pixel + 7) / 8);
    }
    return n;
}

/* A PNG whose single IDAT inflates to `inflated` zero bytes: exactly
 * png_raw_size is an all-zero image (filter 0 everywhere), more is a bomb. */
static bytes png_zeros(uint32_t w, uint32_t h, int depth, int color, int interlace,
                       uint64_t inflated)
{
    bytes b = {0};
    png_start_il(&b, w, h, depth, color, interlace);
    bytes z = zlib_zeros(inflated);
    png_chunk(&b, "IDAT", z.p, z.n);
    png_chunk(&b, "IEND", NULL, 0);
    free(z.p);
    return b;
}

/* ---- hand-made progressive JPEGs ---------------------------------------------- */

/* A progressive JPEG of a flat image: every DCT coefficient is 0 (all samples
 * 128), coded with one-symbol Huffman tables (DC difference category 0, AC
 * end-of-band), so each block costs one 0 bit per scan. A DC scan and an AC
 * scan (1..63) per component, non-interleaved. samp[i] is component i's
 * H << 4 | V. stb allocates for it what any progressive JPEG of that size
 * and sampling needs: per component a sample and a coefficient plane
 * covering whole MCUs. */
static bytes make_progressive_jpeg(int w, int h, int ncomp, const uint8_t *samp)
{
    bytes b = {0};
    bytes_put(&b, "\xff\xd8", 2);
    uint8_t dqt[69] = {0xff, 0xdb, 0, 67, 0};
    memset(dqt + 5, 1, 64);
    bytes_put(&b, dqt, sizeof dqt);
    uint8_t sof[10 + 3 * 4] = {0xff, 0xc2, 0, (uint8_t)(8 + 3 * ncomp), 8}; /* 8-bit samples */
    sof[5] = (uint8_t)(h >> 8), sof[6] = (uint8_t)h;
    sof[7] = (uint8_t)(w >> 8), sof[8] = (uint8_t)w;
    sof[9] = (uint8_t)ncomp;
    int hmax = 1, vmax = 1;
    for (int i = 0; i < ncomp; i++) {
        sof[10 + 3 * i] = (uint8_t)(i + 1);
        sof[11 + 3 * i] = samp[i];
        hmax = samp[i] >> 4 > hmax ? samp[i] >> 4 : hmax;
        vmax = (samp[i] & 15) > vmax ? samp[i] & 15 : vmax;
    }
    bytes_put(&b, sof, 10 + 3 * (size_t)ncomp);
    uint8_t dht[4 + 2 * 18] = {0xff, 0xc4, 0, 38};
    dht[4] = 0x00, dht[5] = 1;   /* DC table 0: one code of length 1, symbol 0 */
    dht[22] = 0x10, dht[23] = 1; /* AC table 0: one code of length 1, symbol 0 (EOB) */
    bytes_put(&b, dht, sizeof dht);
    for (int scan = 0; scan < 2; scan++)
        for (int i = 0; i < ncomp; i++) {
            uint8_t sos[10] = {0xff, 0xda, 0, 8, 1, (uint8_t)(i + 1), 0x00}; /* tables 0 */
            sos[7] = scan ? 1 : 0; /* spectral selection: DC, then AC 1..63 */
            sos[8] = scan ? 63 : 0;
            bytes_put(&b, sos, sizeof sos);
            size_t cw = ((size_t)w * (samp[i] >> 4) + (size_t)hmax - 1) / (size_t)hmax;
            size_t ch = ((size_t)h * (samp[i] & 15) + (size_t)vmax - 1) / (size_t)vmax;
            size_t n = ((cw + 7) / 8) * ((ch + 7) / 8) / 8 + 8; /* stb skips extra zeros */
            uint8_t *zero = calloc(n, 1);
            REQUIRE(zero, "oom");
            bytes_put(&b, zero, n);
            free(zero);
        }
    bytes_put(&b, "\xff\xd9", 2);
    return b;
}

/* ---- hand-made GIFs ------------------------------------------------------------ */

/* 2x2, global palette red, green, blue, white; pixels 0 1 / 2 3. The LZW
 * stream (min code size 2) is CLEAR 0 1 2 | 3 EOI, the last two at 4 bits
 * because the table reaches 8 entries after code 2. */
static bytes make_gif(int transparent_index)
{
    static const uint8_t head[] = {'G',  'I', 'F', '8', '9',  'a', 2, 0, 2,    0,    0xf1, 0,   0,
                                   0xff, 0,   0,   0,   0xff, 0,   0, 0, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t image[] = {0x2c, 0, 0, 0,    0,    2,    0, 2,   0,
                                    0,    2, 3, 0x44, 0x34, 0x05, 0, 0x3b};
    bytes b = {0};
    bytes_put(&b, head, sizeof head);
    if (transparent_index >= 0) {
        uint8_t gce[] = {0x21, 0xf9, 4, 1, 0, 0, (uint8_t)transparent_index, 0};
        bytes_put(&b, gce, sizeof gce);
    }
    bytes_put(&b, image, sizeof image);
    return b;
}

/* ---- checks ------------------------------------------------------------------- */

static int rgb_equal(const aec_rgb_image *img, const uint8_t *want)
{
    return memcmp(img->rgb, want, (size_t)img->width * img->height * 3) == 0;
}

static aec_status decode(const bytes *b, aec_rgb_image *img)
{
    aec_error err = {{0}};
    aec_status st = aec_image_decode(b->p, b->n, MP4, img, &err);
    if (st != AEC_OK)
        fprintf(stderr, "  decode: %s: %s\n", aec_status_name(st), err.msg);
    return st;
}

static void test_lossless_formats(void)
{
    const int w = 13, h = 7; /* odd sizes catch stride mistakes */
    uint8_t rgb[13 * 7 * 3];
    test_synthetic_rgb(rgb, h, w, 1);
    const int fmts[] = {FMT_PNG, FMT_BMP, FMT_TGA};
    for (int f = 0; f < 3; f++) {
        bytes b = encode(fmts[f], rgb, w, h, 3);
        aec_rgb_image img;
        CHECK(decode(&b, &img) == AEC_OK, "format %d", f);
        CHECK(img.width == w && img.height == h, "format %d: %dx%d", f, img.width, img.height);
        CHECK(img.rgb && rgb_equal(&img, rgb), "format %d: pixels differ", f);
        aec_image_free(&img);
        CHECK(img.rgb == NULL && img.width == 0, "free resets the image");
        free(b.p);
    }
}

static void test_jpeg(void)
{
    const int w = 32, h = 24;
    uint8_t rgb[32 * 24 * 3];
    test_synthetic_rgb(rgb, h, w, 2);
    bytes b = encode(FMT_JPG, rgb, w, h, 3);
    aec_rgb_image img;
    REQUIRE(decode(&b, &img) == AEC_OK, "jpeg decode");
    CHECK(img.width == w && img.height == h, "jpeg size %dx%d", img.width, img.height);
    double sum = 0;
    int maxd = 0;
    for (int i = 0; i < w * h * 3; i++) {
        int d = abs((int)img.rgb[i] - (int)rgb[i]);
        sum += d;
        maxd = d > maxd ? d : maxd;
    }
    CHECK(sum / (w * h * 3) < 4.0, "jpeg mean abs error %.2f", sum / (w * h * 3));
    CHECK(maxd < 48, "jpeg max error %d", maxd);
    aec_image_free(&img);

    /* every truncation of a JPEG fails cleanly or decodes a partial image */
    for (size_t n = 0; n < b.n; n++) {
        aec_error err;
        aec_status st = aec_image_decode(b.p, n, MP4, &img, &err);
        if (st == AEC_OK) {
            CHECK(img.width == w && img.height == h, "truncated jpeg size");
            aec_image_free(&img);
        } else {
            CHECK(img.rgb == NULL, "no image on failure");
        }
    }
    free(b.p);
}

/* stb_image 2.27 writes past its Huffman tables when a DHT declares more than
 * 256 codes (found by fuzz_image); src/image/sniff.c rejects such files first.
 * libstb is not instrumented, so here we can only check the rejection. */
static void test_jpeg_bad_huffman(void)
{
    uint8_t rgb[16 * 16 * 3];
    test_synthetic_rgb(rgb, 16, 16, 9);
    bytes b = encode(FMT_JPG, rgb, 16, 16, 3);
    size_t dht = 0;
    for (size_t i = 2; i + 22 < b.n && !dht; i++)
        if (b.p[i] == 0xff && b.p[i + 1] == 0xc4)
            dht = i;
    REQUIRE(dht, "DHT in stb's jpeg");
    aec_rgb_image img;
    aec_error err;
    uint8_t *p = b.p + dht + 5; /* marker(2) length(2) class/id(1), then 16 counts */
    uint8_t saved[16];
    memcpy(saved, p, 16);
    memset(p, 17, 16); /* 272 codes */
    aec_status st = aec_image_decode(b.p, b.n, MP4, &img, &err);
    CHECK(st == AEC_ERR_FORMAT, "DHT with 272 codes: %s: %s", aec_status_name(st), err.msg);
    memset(p, 0, 16);
    p[15] = 255, p[14] = 2; /* 257 */
    CHECK(aec_image_decode(b.p, b.n, MP4, &img, &err) == AEC_ERR_FORMAT, "DHT with 257 codes");
    memcpy(p, saved, 16);
    REQUIRE(decode(&b, &img) == AEC_OK, "restored jpeg decodes");
    aec_image_free(&img);

    /* an APP segment whose payload looks like a bad DHT is skipped, not read */
    bytes c = {0};
    bytes_put(&c, b.p, 2); /* SOI */
    uint8_t app[4 + 24] = {0xff, 0xe1, 0, 26, 0xff, 0xc4, 0, 40, 0x00};
    memset(app + 9, 0xff, sizeof app - 9);
    bytes_put(&c, app, sizeof app);
    bytes_put(&c, b.p + 2, b.n - 2);
    REQUIRE(decode(&c, &img) == AEC_OK, "jpeg with an odd APP1 decodes");
    CHECK(img.width == 16 && img.height == 16, "size");
    aec_image_free(&img);

    /* the same bad table after junk, which stb skips between segments */
    bytes d = {0};
    size_t first = 4 + ((size_t)b.p[4] << 8 | b.p[5]); /* SOI + the first segment */
    bytes_put(&d, b.p, first);
    uint8_t junk[] = {0x12, 0x34, 0xff, 0xff, 0xc4, 0, 40, 0x00};
    bytes_put(&d, junk, sizeof junk);
    for (int i = 0; i < 16; i++)
        bytes_put(&d, "\x20", 1);
    bytes_put(&d, b.p + first, b.n - first);
    CHECK(aec_image_decode(d.p, d.n, MP4, &img, &err) == AEC_ERR_FORMAT, "hidden bad DHT");
    free(b.p);
    free(c.p);
    free(d.p);
}

/* stb_image 2.27 allocates the length an IDAT chunk header claims before
 * reading it (fuzz_image: a 150-byte PNG asking for 2 GB). */
static void test_png_idat_claim(void)
{
    bytes b = {0};
    png_start(&b, 8, 8, 8, 6);
    bytes_be32(&b, 0x60000000u);
    bytes_put(&b, "IDAT\x78\x5e\x63\x3d", 8);
    aec_rgb_image img;
    aec_error err;
    aec_status st = aec_image_decode(b.p, b.n, MP4, &img, &err);
    CHECK(st == AEC_ERR_FORMAT, "IDAT claiming 1.5 GB: %s: %s", aec_status_name(st), err.msg);
    free(b.p);

    /* the input fuzz_image found, verbatim: two IDATs, the second too long */
    static const uint8_t found[] = {
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
        0x44, 0x52, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x08, 0x06, 0x00, 0x00,
        0x00, 0xc4, 0x0f, 0xbe, 0x8b, 0x00, 0x00, 0x00, 0x1a, 0x49, 0x44, 0x41, 0x54, 0x78,
        0x5e, 0x63, 0x3d, 0xf8, 0x00, 0x00, 0x00, 0x40, 0x87, 0x01, 0x00, 0x61, 0x60, 0xfa,
        0x0b, 0x40, 0xd1, 0xfc, 0x15, 0x00, 0x00, 0x96, 0x00, 0x00, 0xc4, 0x0f, 0xbe, 0x8b,
        0x00, 0x60, 0x00, 0x00, 0x1a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x5e, 0x63, 0x3d, 0xf8,
        0x00, 0x00, 0x00, 0x40, 0x87, 0x01, 0x00, 0x61, 0x60, 0xfa, 0x0b, 0x40, 0xd1, 0xfc,
        0x15, 0x00, 0x00, 0x96, 0x28, 0x42, 0x5d, 0x87, 0x1a, 0x00, 0x00, 0xd0, 0x60, 0x00,
        0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x28, 0x42, 0x5d, 0xd6, 0xcb, 0x1a,
        0xb7, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
    st = aec_image_decode(found, sizeof found, MP4, &img, &err);
    CHECK(st == AEC_ERR_FORMAT, "fuzz_image oom input: %s: %s", aec_status_name(st), err.msg);
}

/* PNM, TGA, HDR and PSD inputs that reach stb_image 2.27 bugs (see sniff.c). */
static void test_stb_hazards(void)
{
    aec_rgb_image img;
    aec_error err;
    uint8_t px[6 * 4 * 3];
    for (int i = 0; i < 72; i++)
        px[i] = (uint8_t)(i * 3);

    bytes b = {0};
    const char *ppm = "P6\n# a comment\n6 4\n255\n";
    bytes_put(&b, ppm, strlen(ppm));
    bytes_put(&b, px, 72);
    REQUIRE(decode(&b, &img) == AEC_OK, "ppm");
    CHECK(img.width == 6 && img.height == 4 && rgb_equal(&img, px), "ppm pixels");
    aec_image_free(&img);
    for (size_t n = strlen(ppm); n < b.n; n++) {
        aec_status st = aec_image_decode(b.p, n, MP4, &img, &err);
        CHECK(st == AEC_ERR_FORMAT, "ppm cut at %zu: %s", n, aec_status_name(st));
    }
    free(b.p);

    b = (bytes){0};
    const char *pgm16 = "P5 2 1 65535\n";
    bytes_put(&b, pgm16, strlen(pgm16));
    bytes_put(&b, px, 4);
    aec_status st = aec_image_decode(b.p, b.n, MP4, &img, &err);
    CHECK(st == AEC_ERR_UNSUPPORTED, "16-bit pgm: %s: %s", aec_status_name(st), err.msg);
    free(b.p);
    /* what fuzz_image found: maxval 256, converted as 8-bit, read as 16 */
    static const char found[] =
        "P5\n# \0\0\0c\n6 4\n256\n\0\2\6\11\14\17\22\25\30\33\36!$'*-0369<?BE";
    st = aec_image_decode((const uint8_t *)found, sizeof found - 1, MP4, &img, &err);
    CHECK(st == AEC_ERR_UNSUPPORTED, "fuzz pgm: %s: %s", aec_status_name(st), err.msg);
    b = (bytes){0};
    const char *huge = "P5 99999 99999999999 255\n";
    bytes_put(&b, huge, strlen(huge));
    CHECK(aec_image_decode(b.p, b.n, MP4, &img, &err) == AEC_ERR_FORMAT, "11-digit pgm");
    free(b.p);

    /* uncompressed TGA: whole, then cut */
    stbi_write_tga_with_rle = 0;
    b = encode(FMT_TGA, px, 6, 4, 3);
    stbi_write_tga_with_rle = 1;
    REQUIRE(decode(&b, &img) == AEC_OK, "raw tga");
    CHECK(rgb_equal(&img, px), "raw tga pixels");
    aec_image_free(&img);
    int all = 1;
    for (size_t n = 18; n + 26 < b.n; n++) /* stb's TGA footer is 26 bytes */
        all &= aec_image_decode(b.p, n, MP4, &img, &err) == AEC_ERR_FORMAT;
    CHECK(all, "every truncated raw tga is refused");
    free(b.p);

    /* Radiance HDR: refused */
    float f[4 * 4 * 3] = {0};
    b = (bytes){0};
    REQUIRE(stbi_write_hdr_to_func(write_cb, &b, 4, 4, 3, f), "hdr");
    st = aec_image_decode(b.p, b.n, MP4, &img, &err);
    CHECK(st == AEC_ERR_UNSUPPORTED, "hdr: %s: %s", aec_status_name(st), err.msg);
    free(b.p);

    /* Photoshop PSD: refused. This one, 2x1 RGBA, black at alpha 1, is what
     * fuzz_image found: stb's white-matte removal converts -63750 to
     * unsigned char (UBSan float-cast-overflow). */
    static const uint8_t psd[] = {
        '8', 'B', 'P', 'S', 0, 1, 0, 0, 0, 0, 0, 0, /* signature, version 1, reserved */
        0,   4,   0,   0,   0, 1, 0, 0, 0, 2,       /* 4 channels, 1 row, 2 columns */
        0,   8,   0,   3,                           /* 8-bit, RGB */
        0,   0,   0,   0,   0, 0, 0, 0, 0, 0, 0, 0, /* no mode data, resources, layers */
        0,   0,                                     /* raw */
        0,   0,   0,   0,   0, 0, 1, 1};            /* planes R, G, B, A */
    st = aec_image_decode(psd, sizeof psd, MP4, &img, &err);
    CHECK(st == AEC_ERR_UNSUPPORTED && strstr(err.msg, "PSD"), "psd: %s: %s", aec_status_name(st),
          err.msg);

    /* PNG whose first IDAT is empty: stb computes NULL + 0 (UBSan, found by
     * fuzz_image; the fuzzer's file is tests/fuzz/corpus/image/regress-empty-idat.png).
     * stb does not check CRCs, so they are left zero here. */
    static const uint8_t empty_idat[] = {
        0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,  'I', 'H', 'D', 'R', 0, 0, 0,
        2,    0,   0,   0,   1,    8,    2,    0,    0, 0, 0, 0,   0,   0,   0,   0,   0, 0, 'I',
        'D',  'A', 'T', 0,   0,    0,    0,    0,    0, 0, 0, 'I', 'E', 'N', 'D', 0,   0, 0, 0};
    st = aec_image_decode(empty_idat, sizeof empty_idat, MP4, &img, &err);
    CHECK(st == AEC_ERR_FORMAT && strstr(err.msg, "empty first IDAT"), "empty IDAT: %s: %s",
          aec_status_name(st), err.msg);
}

static void test_grey_and_alpha(void)
{
    uint8_t grey[4] = {0, 77, 200, 255};
    bytes b = encode(FMT_PNG, grey, 2, 2, 1);
    aec_rgb_image img;
    REQUIRE(decode(&b, &img) == AEC_OK, "grey png");
    for (int i = 0; i < 4; i++)
        CHECK(img.rgb[3 * i] == grey[i] && img.rgb[3 * i + 1] == grey[i] &&
                  img.rgb[3 * i + 2] == grey[i],
              "grey pixel %d", i);
    aec_image_free(&img);
    free(b.p);

    /* RGBA: alpha 0 -> white, 255 -> the colour, 128 -> the rounded blend */
    uint8_t rgba[4 * 4] = {10, 20, 30, 0, 10, 20, 30, 255, 10, 20, 30, 128, 200, 0, 100, 128};
    uint8_t want[4 * 3];
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 3; c++) {
            uint32_t a = rgba[4 * i + 3];
            want[3 * i + c] = (uint8_t)((rgba[4 * i + c] * a + 255 * (255 - a) + 127) / 255);
        }
    CHECK(want[0] == 255 && want[3] == 10 && want[6] == 132, "blend reference");
    const int fmts[] = {FMT_PNG, FMT_TGA, FMT_BMP};
    for (int f = 0; f < 3; f++) {
        b = encode(fmts[f], rgba, 2, 2, 4);
        REQUIRE(decode(&b, &img) == AEC_OK, "rgba format %d", f);
        CHECK(rgb_equal(&img, want), "rgba format %d composited over white", f);
        aec_image_free(&img);
        free(b.p);
    }

    /* grey + alpha */
    uint8_t ga[4] = {0, 0, 100, 255};
    b = encode(FMT_PNG, ga, 2, 1, 2);
    REQUIRE(decode(&b, &img) == AEC_OK, "grey+alpha png");
    CHECK(img.rgb[0] == 255 && img.rgb[1] == 255 && img.rgb[2] == 255, "alpha 0 -> white");
    CHECK(img.rgb[3] == 100 && img.rgb[4] == 100 && img.rgb[5] == 100, "alpha 255 -> grey");
    aec_image_free(&img);
    free(b.p);
}

/* Paletted PNG with tRNS: IHDR says 1 channel, the pixels carry alpha. */
static void test_png_palette_trns(void)
{
    bytes b = {0};
    png_start(&b, 2, 1, 8, 3);
    uint8_t plte[6] = {255, 0, 0, 0, 0, 255};
    png_chunk(&b, "PLTE", plte, 6);
    uint8_t trns[2] = {0, 255};
    png_chunk(&b, "tRNS", trns, 2);
    uint8_t raw[3] = {0, 0, 1}; /* filter 0, index 0, index 1 */
    png_idat_stored(&b, raw, 3);
    png_chunk(&b, "IEND", NULL, 0);
    aec_rgb_image img;
    REQUIRE(decode(&b, &img) == AEC_OK, "palette png");
    uint8_t want[6] = {255, 255, 255, 0, 0, 255};
    CHECK(img.width == 2 && img.height == 1 && rgb_equal(&img, want),
          "transparent palette entry -> white, opaque -> blue");
    aec_image_free(&img);
    free(b.p);
}

static void test_png_16bit(void)
{
    bytes b = {0};
    png_start(&b, 1, 1, 16, 2);
    uint8_t raw[7] = {0, 0xff, 0xff, 0x80, 0x00, 0x00, 0x12};
    png_idat_stored(&b, raw, 7);
    png_chunk(&b, "IEND", NULL, 0);
    aec_rgb_image img;
    REQUIRE(decode(&b, &img) == AEC_OK, "16-bit png");
    CHECK(img.rgb[0] == 255 && img.rgb[1] == 128 && img.rgb[2] == 0, "16-bit -> 8-bit %d %d %d",
          img.rgb[0], img.rgb[1], img.rgb[2]);
    aec_image_free(&img);
    free(b.p);
}

static void test_gif(void)
{
    bytes b = make_gif(-1);
    aec_rgb_image img;
    REQUIRE(decode(&b, &img) == AEC_OK, "gif");
    uint8_t want[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255};
    CHECK(img.width == 2 && img.height == 2 && rgb_equal(&img, want), "gif pixels");
    aec_image_free(&img);
    for (size_t n = 0; n < b.n; n++) { /* every prefix: no crash */
        aec_error err;
        if (aec_image_decode(b.p, n, MP4, &img, &err) == AEC_OK)
            aec_image_free(&img);
    }
    free(b.p);

    b = make_gif(0); /* red is transparent -> white */
    REQUIRE(decode(&b, &img) == AEC_OK, "gif with transparency");
    uint8_t want_t[12] = {255, 255, 255, 0, 255, 0, 0, 0, 255, 255, 255, 255};
    CHECK(rgb_equal(&img, want_t), "transparent gif pixel -> white (%d %d %d)", img.rgb[0],
          img.rgb[1], img.rgb[2]);
    aec_image_free(&img);
    free(b.p);
}

static void test_limits(void)
{
    aec_rgb_image img;
    aec_error err;

    /* 100000 x 100000 declared, no pixel data: refused from the header */
    bytes b = {0};
    png_start(&b, 100000, 100000, 8, 2);
    clock_t t0 = clock();
    aec_status st = aec_image_decode(b.p, b.n, MP4, &img, &err);
    CHECK(st == AEC_ERR_LIMIT, "huge png: %s: %s", aec_status_name(st), err.msg);
    CHECK(img.rgb == NULL, "no image");
    st = aec_image_decode(b.p, b.n, (size_t)1 << 40, &img, &err); /* stb's own ceiling */
    CHECK(st == AEC_ERR_LIMIT, "huge png, huge limit: %s: %s", aec_status_name(st), err.msg);
    CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 1.0, "header check is instant");
    free(b.p);

    /* 10000 x 10000 grey: stb would decode it, our limit says no */
    b = (bytes){0};
    png_start(&b, 10000, 10000, 8, 0);
    st = aec_image_decode(b.p, b.n, MP4, &img, &err);
    CHECK(st == AEC_ERR_LIMIT, "100 MP png vs 4 MP: %s: %s", aec_status_name(st), err.msg);
    CHECK(strstr(err.msg, "10000x10000") != NULL, "message names the size: %s", err.msg);
    free(b.p);

    /* a JPEG whose frame header claims 65535x65535 (past stb's ceiling) or
     * 5000x5000 (within stb's, past ours) */
    uint8_t small[16 * 16 * 3];
    test_synthetic_rgb(small, 16, 16, 8);
    b = encode(FMT_JPG, small, 16, 16, 3);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < b.n && !sof; i++)
        if (b.p[i] == 0xff && b.p[i + 1] == 0xc0)
            sof = i;
    REQUIRE(sof, "SOF0 in stb's jpeg");
    const int sides[2] = {65535, 5000};
    for (int k = 0; k < 2; k++) {
        b.p[sof + 5] = b.p[sof + 7] = (uint8_t)(sides[k] >> 8);
        b.p[sof + 6] = b.p[sof + 8] = (uint8_t)sides[k];
        st = aec_image_decode(b.p, b.n, MP4, &img, &err);
        CHECK(st == AEC_ERR_LIMIT, "jpeg %d^2: %s: %s", sides[k], aec_status_name(st), err.msg);
    }
    free(b.p);

    /* exactly at the limit is fine, one pixel less is not */
    uint8_t rgb[6 * 5 * 3];
    test_synthetic_rgb(rgb, 5, 6, 3);
    b = encode(FMT_PNG, rgb, 6, 5, 3);
    CHECK(aec_image_decode(b.p, b.n, 30, &img, &err) == AEC_OK, "30 pixels, limit 30");
    aec_image_free(&img);
    CHECK(aec_image_decode(b.p, b.n, 29, &img, &err) == AEC_ERR_LIMIT, "30 pixels, limit 29");
    CHECK(aec_image_decode(b.p, b.n, 0, &img, &err) == AEC_ERR_LIMIT, "limit 0");
    free(b.p);
}

static void test_garbage(void)
{
    aec_rgb_image img;
    aec_error err;
    CHECK(aec_image_decode(NULL, 0, MP4, &img, &err) == AEC_ERR_FORMAT, "NULL");
    uint8_t one = 0;
    CHECK(aec_image_decode(&one, 0, MP4, &img, &err) == AEC_ERR_FORMAT, "empty");
    CHECK(aec_image_decode(&one, 1, MP4, NULL, &err) == AEC_ERR_INVALID, "no output");

    uint64_t s = 42;
    uint8_t junk[4096];
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < sizeof junk; i++)
            junk[i] = (uint8_t)test_rand_u64(&s);
        junk[0] = 'x';  /* no format's magic */
        junk[1] = 0xff; /* and not a TGA (colour map type must be 0 or 1) */
        aec_status st = aec_image_decode(junk, sizeof junk, MP4, &img, &err);
        CHECK(st == AEC_ERR_FORMAT, "random bytes: %s: %s", aec_status_name(st), err.msg);
        CHECK(img.rgb == NULL, "no image");
    }
    CHECK(strlen(err.msg) > 0, "a message");

    /* every prefix of a real PNG, and a few bit flips: errors, never crashes */
    uint8_t rgb[8 * 8 * 3];
    test_synthetic_rgb(rgb, 8, 8, 4);
    bytes b = encode(FMT_PNG, rgb, 8, 8, 3);
    for (size_t n = 0; n < b.n; n++) {
        aec_status st = aec_image_decode(b.p, n, MP4, &img, &err);
        CHECK(st != AEC_OK || n + 12 >= b.n, "png prefix of %zu/%zu bytes decoded", n, b.n);
        if (st == AEC_OK)
            aec_image_free(&img);
    }
    for (size_t i = 0; i < b.n; i++) {
        b.p[i] ^= 0x10;
        if (aec_image_decode(b.p, b.n, MP4, &img, &err) == AEC_OK)
            aec_image_free(&img);
        b.p[i] ^= 0x10;
    }
    free(b.p);
}

/* ---- memory: compression bombs and large images ---------------------------------- */

static long peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024; /* KiB on Linux */
}

/* stb's inflater grows its output without bound: a PNG declaring a small
 * image whose zlib stream inflates to 1.2 GB must fail within the decode
 * budget (src/image/stb_decode.c), fast and without big allocations. Runs
 * first, so the process's peak RSS is still this test's. */
static void test_png_bomb(void)
{
    aec_rgb_image img;
    aec_error err;

    /* the generator: exactly the raw size is a valid all-zero image */
    bytes b = png_zeros(64, 48, 8, 2, 0, png_raw_size(64, 48, 24, 0));
    REQUIRE(decode(&b, &img) == AEC_OK, "all-zero png");
    int zero = img.width == 64 && img.height == 48;
    for (int i = 0; i < 64 * 48 * 3; i++)
        zero &= img.rgb[i] == 0;
    CHECK(zero, "all-zero png decodes to black");
    aec_image_free(&img);
    free(b.p);

    const uint64_t inflated = (uint64_t)1200 << 20;
    const struct {
        uint32_t w, h;
        int color;
    } decl[] = {{1, 1, 2}, {1, 1, 0}, {1000, 1000, 6}};
    for (size_t k = 0; k < sizeof decl / sizeof decl[0]; k++) {
        b = png_zeros(decl[k].w, decl[k].h, 8, decl[k].color, 0, inflated);
        CHECK(b.n < (size_t)1300 << 10, "bomb is %zu bytes", b.n);
        clock_t t0 = clock();
        aec_status st = aec_image_decode(b.p, b.n, MP4, &img, &err);
        double cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
        CHECK(st == AEC_ERR_LIMIT, "%ux%u bomb: %s: %s", decl[k].w, decl[k].h, aec_status_name(st),
              err.msg);
        CHECK(strstr(err.msg, "more memory") != NULL, "message: %s", err.msg);
        CHECK(img.rgb == NULL, "no image");
        CHECK(aec_stbi_peak() <= aec_stbi_decode_budget((int)decl[k].w, (int)decl[k].h, b.n),
              "stayed within the budget");
        CHECK(cpu < 5.0, "%ux%u bomb refused in %.2f s CPU", decl[k].w, decl[k].h, cpu);
        free(b.p);
    }
    long rss = peak_rss_mib();
    CHECK(rss < 200, "peak RSS %ld MiB after 1.2 GB bombs", rss);

    /* the daemon's path: decode + tensor */
    b = png_zeros(1, 1, 8, 2, 0, inflated);
    float t[3 * 8 * 8];
    aec_status st = aec_image_load_tensor(b.p, b.n, MP4, 3, 8, 8, t, &err);
    CHECK(st == AEC_ERR_LIMIT, "load_tensor bomb: %s: %s", aec_status_name(st), err.msg);
    free(b.p);

    /* declared at the pixel limit, the stream may grow only to the budget */
    b = png_zeros(2048, 2048, 8, 6, 0, inflated);
    st = aec_image_decode(b.p, b.n, MP4, &img, &err);
    CHECK(st == AEC_ERR_LIMIT, "2048x2048 bomb: %s: %s", aec_status_name(st), err.msg);
    CHECK(aec_stbi_peak() <= aec_stbi_decode_budget(2048, 2048, b.n), "within the budget");
    free(b.p);
}

/* Checks that decoding a legitimate image left headroom under the budget
 * (the most stb needs is 86% of it, for 16-bit RGBA interlaced PNG), so a
 * change of stb or of the rule shows here before it refuses real images. */
static void check_headroom(const char *what, int w, int h, size_t len)
{
    size_t peak = aec_stbi_peak(), budget = aec_stbi_decode_budget(w, h, len);
    CHECK(peak > 0 && peak <= budget / 100 * 95, "%s: stb held %zu of %zu budget bytes (%.0f%%)",
          what, peak, budget, 100.0 * (double)peak / (double)budget);
}

/* The budget never refuses a legitimate image within the pixel limit,
 * including the formats that need the most memory per pixel. */
static void test_large_images(void)
{
    aec_rgb_image img;

    /* 2000x2000 PNG, 2000x1500 JPEG, as stb_image_write makes them */
    const int pw = 2000, ph = 2000;
    uint8_t *rgb = malloc((size_t)pw * ph * 3);
    REQUIRE(rgb, "oom");
    test_synthetic_rgb(rgb, ph, pw, 21);
    bytes b = encode(FMT_PNG, rgb, pw, ph, 3);
    REQUIRE(decode(&b, &img) == AEC_OK, "2000x2000 png");
    CHECK(img.width == pw && img.height == ph && rgb_equal(&img, rgb), "2000x2000 png pixels");
    check_headroom("2000x2000 png", pw, ph, b.n);
    aec_image_free(&img);
    free(b.p);

    const int jw = 2000, jh = 1500;
    b = encode(FMT_JPG, rgb, jw, jh, 3);
    REQUIRE(decode(&b, &img) == AEC_OK, "2000x1500 jpeg");
    CHECK(img.width == jw && img.height == jh, "jpeg size %dx%d", img.width, img.height);
    double sum = 0;
    for (size_t i = 0; i < (size_t)jw * jh * 3; i++)
        sum += abs((int)img.rgb[i] - (int)rgb[i]);
    CHECK(sum / ((double)jw * jh * 3) < 4.0, "jpeg mean abs error %.2f",
          sum / ((double)jw * jh * 3));
    check_headroom("2000x1500 jpeg", jw, jh, b.n);
    aec_image_free(&img);
    free(b.p);
    free(rgb);

    /* progressive JPEGs: 4:2:0 YCbCr; 4 components at full resolution, at
     * the pixel limit (the most JPEG needs per pixel); and a 1-pixel-wide
     * strip sampled 4x4 (the most MCU padding per pixel) */
    static const struct {
        int w, h, n;
        uint8_t samp[4];
        const char *what;
    } pj[] = {{2000, 1500, 3, {0x22, 0x11, 0x11}, "progressive 4:2:0 2000x1500"},
              {2048, 2048, 4, {0x11, 0x11, 0x11, 0x11}, "progressive 4-channel 2048x2048"},
              {1, 65535, 4, {0x44, 0x44, 0x44, 0x44}, "progressive 4x4-sampled 1x65535"}};
    for (size_t k = 0; k < sizeof pj / sizeof pj[0]; k++) {
        b = make_progressive_jpeg(pj[k].w, pj[k].h, pj[k].n, pj[k].samp);
        REQUIRE(decode(&b, &img) == AEC_OK, "%s", pj[k].what);
        int flat = img.width == pj[k].w && img.height == pj[k].h;
        for (size_t i = 0; flat && i < (size_t)img.width * img.height * 3; i++)
            flat &= img.rgb[i] == img.rgb[i % 3];
        CHECK(flat, "%s: a flat image", pj[k].what);
        if (pj[k].n == 3)
            CHECK(img.rgb[0] == 128 && img.rgb[1] == 128 && img.rgb[2] == 128,
                  "%s: mid grey, got %d %d %d", pj[k].what, img.rgb[0], img.rgb[1], img.rgb[2]);
        check_headroom(pj[k].what, pj[k].w, pj[k].h, b.n);
        aec_image_free(&img);
        free(b.p);
    }

    /* interlaced 16-bit PNGs at the pixel limit, the most any format needs:
     * the inflate buffer outgrows stb's guess and doubles, then the result
     * and one pass buffer come on top. All zero: RGBA is transparent, so
     * white; RGB black. Also 1-bit grey, 8-bit palette, and a tall strip. */
    static const struct {
        uint32_t w, h;
        int depth, color, bpp, interlace;
        uint8_t want;
    } pz[] = {{2048, 2048, 16, 6, 64, 1, 255}, {2048, 2048, 16, 2, 48, 1, 0},
              {2048, 2048, 16, 6, 64, 0, 255}, {2048, 2048, 1, 0, 1, 1, 0},
              {2048, 2048, 8, 3, 8, 1, 10},    {1, 4194304, 16, 6, 64, 1, 255}};
    for (size_t k = 0; k < sizeof pz / sizeof pz[0]; k++) {
        b = (bytes){0};
        png_start_il(&b, pz[k].w, pz[k].h, pz[k].depth, pz[k].color, pz[k].interlace);
        if (pz[k].color == 3)
            png_chunk(&b, "PLTE", (const uint8_t *)"\x0a\x0a\x0a", 3);
        bytes z = zlib_zeros(png_raw_size(pz[k].w, pz[k].h, pz[k].bpp, pz[k].interlace));
        png_chunk(&b, "IDAT", z.p, z.n);
        png_chunk(&b, "IEND", NULL, 0);
        free(z.p);
        char what[64];
        snprintf(what, sizeof what, "%ux%u png depth %d colour %d%s", pz[k].w, pz[k].h, pz[k].depth,
                 pz[k].color, pz[k].interlace ? " interlaced" : "");
        REQUIRE(decode(&b, &img) == AEC_OK, "%s", what);
        int ok = img.width == (int)pz[k].w && img.height == (int)pz[k].h;
        for (size_t i = 0; ok && i < (size_t)img.width * img.height * 3; i++)
            ok &= img.rgb[i] == pz[k].want;
        CHECK(ok, "%s: every value %d", what, pz[k].want);
        check_headroom(what, (int)pz[k].w, (int)pz[k].h, b.n);
        aec_image_free(&img);
        free(b.p);
    }
}

/* The daemon decodes in many threads: stb's failure reason is thread-local
 * in Debian's libstb and nothing we call touches its global settings. */
typedef struct {
    bytes good, bad, bomb;
    const uint8_t *want;
    int failures;
} worker_job;

static void *decode_worker(void *arg)
{
    worker_job *job = arg;
    for (int i = 0; i < 40; i++) {
        aec_rgb_image img;
        aec_error err;
        if (aec_image_decode(job->good.p, job->good.n, MP4, &img, &err) != AEC_OK ||
            !rgb_equal(&img, job->want))
            job->failures++;
        aec_image_free(&img);
        if (aec_image_decode(job->bad.p, job->bad.n, MP4, &img, &err) != AEC_ERR_FORMAT ||
            strstr(err.msg, "image") == NULL)
            job->failures++;
        /* the budget is per thread: a bomb here fails, the others' images not */
        if (aec_image_decode(job->bomb.p, job->bomb.n, MP4, &img, &err) != AEC_ERR_LIMIT)
            job->failures++;
    }
    return NULL;
}

static void test_threads(void)
{
    enum { N = 4 };
    static uint8_t rgb[N][24 * 20 * 3];
    worker_job jobs[N];
    pthread_t th[N];
    for (int t = 0; t < N; t++) {
        test_synthetic_rgb(rgb[t], 20, 24, 10 + (uint64_t)t);
        jobs[t] =
            (worker_job){encode(t % 2 ? FMT_BMP : FMT_PNG, rgb[t], 24, 20, 3), {0}, {0}, rgb[t], 0};
        jobs[t].bomb = png_zeros(1 + (uint32_t)t, 1, 8, 2, 0, (uint64_t)64 << 20);
        jobs[t].bad = encode(FMT_PNG, rgb[t], 24, 20, 3);
        jobs[t].bad.n = 40 + (size_t)t; /* the header decodes, the pixels cannot */
        REQUIRE(pthread_create(&th[t], NULL, decode_worker, &jobs[t]) == 0, "pthread_create");
    }
    for (int t = 0; t < N; t++) {
        pthread_join(th[t], NULL);
        CHECK(jobs[t].failures == 0, "thread %d: %d failures", t, jobs[t].failures);
        free(jobs[t].good.p);
        free(jobs[t].bad.p);
        free(jobs[t].bomb.p);
    }
}

/* ---- tensors -------------------------------------------------------------------- */

static void test_to_tensor_same_size(void)
{
    const int w = 5, h = 4;
    uint8_t rgb[5 * 4 * 3];
    test_synthetic_rgb(rgb, h, w, 5);
    rgb[0] = 255, rgb[1] = 255, rgb[2] = 255;
    aec_rgb_image img = {w, h, rgb};
    float t[3 * 5 * 4], g[5 * 4];
    aec_error err;
    REQUIRE(aec_image_to_tensor(&img, 3, h, w, t, &err) == AEC_OK, "%s", err.msg);
    int exact = 1;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < w * h; i++)
            exact &= t[c * w * h + i] == (float)rgb[3 * i + c] / 255.0f;
    CHECK(exact, "same size is exactly u8/255, planar");
    REQUIRE(aec_image_to_tensor(&img, 1, h, w, g, &err) == AEC_OK, "%s", err.msg);
    CHECK(g[0] == 1.0f, "white luma is 1, got %.9g", g[0]);
    int lum = 1;
    for (int i = 0; i < w * h; i++) {
        float y = (0.299f * rgb[3 * i] + 0.587f * rgb[3 * i + 1] + 0.114f * rgb[3 * i + 2]) / 255;
        lum &= fabsf(g[i] - y) < 1e-6f;
    }
    CHECK(lum, "luma weights 0.299 0.587 0.114");

    CHECK(aec_image_to_tensor(&img, 2, h, w, t, &err) == AEC_ERR_INVALID, "2 channels");
    CHECK(aec_image_to_tensor(&img, 3, 0, w, t, &err) == AEC_ERR_INVALID, "height 0");
    CHECK(aec_image_to_tensor(&img, 3, 8193, w, t, &err) == AEC_ERR_INVALID, "height 8193");
    CHECK(aec_image_to_tensor(NULL, 3, h, w, t, &err) == AEC_ERR_INVALID, "no image");
}

static void test_to_tensor_resize(void)
{
    aec_error err;
    /* a constant image stays constant */
    const int w = 97, h = 61;
    uint8_t *rgb = malloc((size_t)w * h * 3);
    REQUIRE(rgb, "oom");
    for (int i = 0; i < w * h; i++)
        rgb[3 * i] = 40, rgb[3 * i + 1] = 128, rgb[3 * i + 2] = 251;
    aec_rgb_image img = {w, h, rgb};
    float t[3 * 48 * 48];
    REQUIRE(aec_image_to_tensor(&img, 3, 48, 48, t, &err) == AEC_OK, "%s", err.msg);
    const float want[3] = {40 / 255.0f, 128 / 255.0f, 251 / 255.0f};
    float maxd = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 48 * 48; i++)
            maxd = fmaxf(maxd, fabsf(t[c * 48 * 48 + i] - want[c]));
    CHECK(maxd <= 1.0f / 255 + 1e-6f, "constant image after downscale: max diff %g", maxd);
    /* and upscale */
    img.width = 7, img.height = 5;
    REQUIRE(aec_image_to_tensor(&img, 3, 48, 48, t, &err) == AEC_OK, "%s", err.msg);
    maxd = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 48 * 48; i++)
            maxd = fmaxf(maxd, fabsf(t[c * 48 * 48 + i] - want[c]));
    CHECK(maxd <= 1.0f / 255 + 1e-6f, "constant image after upscale: max diff %g", maxd);
    free(rgb);

    /* 96x96 checkerboard of 2x2 blocks -> 48x48: a point sampler would give
     * pure 0s and 1s (every output pixel hits one block), a filter ~0.5 */
    uint8_t *cb = malloc(96 * 96 * 3);
    REQUIRE(cb, "oom");
    for (int y = 0; y < 96; y++)
        for (int x = 0; x < 96; x++)
            memset(cb + (y * 96 + x) * 3, ((x / 2 + y / 2) & 1) ? 255 : 0, 3);
    img = (aec_rgb_image){96, 96, cb};
    REQUIRE(aec_image_to_tensor(&img, 3, 48, 48, t, &err) == AEC_OK, "%s", err.msg);
    double mean = 0;
    float lo = 1, hi = 0;
    for (int i = 0; i < 3 * 48 * 48; i++) {
        mean += t[i];
        lo = fminf(lo, t[i]);
        hi = fmaxf(hi, t[i]);
    }
    mean /= 3 * 48 * 48;
    CHECK(fabs(mean - 0.5) < 0.02, "checkerboard mean %.4f", mean);
    CHECK(lo > 0.2f && hi < 0.8f, "checkerboard is smoothed, not sampled: [%g, %g]", lo, hi);
    REQUIRE(aec_image_to_tensor(&img, 1, 48, 48, t, &err) == AEC_OK, "%s", err.msg);
    CHECK(fabsf(t[48 * 24 + 24] - 0.5f) < 0.3f, "grey checkerboard centre %g", t[48 * 24 + 24]);
    free(cb);

    /* extreme aspect ratios resize without trouble */
    uint8_t *line = calloc(65536 * 3, 1);
    REQUIRE(line, "oom");
    img = (aec_rgb_image){65536, 1, line};
    CHECK(aec_image_to_tensor(&img, 3, 48, 48, t, &err) == AEC_OK, "65536x1: %s", err.msg);
    img = (aec_rgb_image){1, 65536, line};
    CHECK(aec_image_to_tensor(&img, 3, 48, 48, t, &err) == AEC_OK, "1x65536: %s", err.msg);
    CHECK(t[0] == 0.0f && t[3 * 48 * 48 - 1] == 0.0f, "black stays black");
    free(line);
}

static void test_load_tensor(void)
{
    uint8_t rgb[48 * 48 * 3];
    test_synthetic_rgb(rgb, 48, 48, 6);
    bytes b = encode(FMT_PNG, rgb, 48, 48, 3);
    float t[3 * 48 * 48];
    aec_error err;
    REQUIRE(aec_image_load_tensor(b.p, b.n, MP4, 3, 48, 48, t, &err) == AEC_OK, "%s", err.msg);
    CHECK(t[48 * 48 + 5] == rgb[5 * 3 + 1] / 255.0f, "green plane, pixel 5");
    CHECK(aec_image_load_tensor(b.p, b.n, 100, 3, 48, 48, t, &err) == AEC_ERR_LIMIT, "limit");
    CHECK(aec_image_load_tensor(b.p, b.n, MP4, 4, 48, 48, t, &err) == AEC_ERR_INVALID, "4 ch");
    CHECK(aec_image_load_tensor(b.p, 10, MP4, 3, 48, 48, t, &err) == AEC_ERR_FORMAT, "cut");
    free(b.p);
}

static void test_tensor_resize(void)
{
    aec_error err;
    enum { H = 20, W = 30 };
    static float src[2 * H * W], dst[2 * 40 * 15], back[2 * H * W];
    for (int i = 0; i < H * W; i++)
        src[i] = 0.25f, src[H * W + i] = 0.75f;
    REQUIRE(aec_tensor_resize(src, 2, H, W, dst, 40, 15, &err) == AEC_OK, "%s", err.msg);
    float maxd = 0;
    for (int i = 0; i < 40 * 15; i++)
        maxd = fmaxf(maxd, fmaxf(fabsf(dst[i] - 0.25f), fabsf(dst[40 * 15 + i] - 0.75f)));
    CHECK(maxd < 1e-5f, "constant planes stay constant and separate: %g", maxd);
    REQUIRE(aec_tensor_resize(src, 2, H, W, back, H, W, &err) == AEC_OK, "%s", err.msg);
    CHECK(memcmp(src, back, sizeof src) == 0, "same size is a copy");

    /* a horizontal ramp stays a ramp (monotone) after downscale */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            src[y * W + x] = (float)x / (W - 1);
    REQUIRE(aec_tensor_resize(src, 1, H, W, dst, 10, 10, &err) == AEC_OK, "%s", err.msg);
    int mono = 1;
    for (int y = 0; y < 10; y++)
        for (int x = 1; x < 10; x++)
            mono &= dst[y * 10 + x] > dst[y * 10 + x - 1];
    CHECK(mono, "ramp stays monotone");

    CHECK(aec_tensor_resize(src, 1, H, W, dst, 0, 10, &err) == AEC_ERR_INVALID, "oh 0");
    CHECK(aec_tensor_resize(src, 1, H, W, dst, 10, 8193, &err) == AEC_ERR_INVALID, "ow 8193");
    CHECK(aec_tensor_resize(src, 0, H, W, dst, 10, 10, &err) == AEC_ERR_INVALID, "c 0");
    CHECK(aec_tensor_resize(src, 1, -1, W, dst, 10, 10, &err) == AEC_ERR_INVALID, "h -1");
}

static void test_encode_png(void)
{
    aec_error err;
    enum { H = 9, W = 11 };
    static float chw[3 * H * W], grey[H * W];
    uint64_t s = 7;
    for (int i = 0; i < 3 * H * W; i++)
        chw[i] = (float)(test_rand_u64(&s) % 256) / 255.0f;
    uint8_t *png = NULL;
    size_t len = 0;
    REQUIRE(aec_image_encode_png(chw, 3, H, W, &png, &len, &err) == AEC_OK, "%s", err.msg);
    float back[3 * H * W];
    REQUIRE(aec_image_load_tensor(png, len, MP4, 3, H, W, back, &err) == AEC_OK, "%s", err.msg);
    CHECK(memcmp(chw, back, sizeof back) == 0, "k/255 values round-trip exactly");
    free(png);

    for (int i = 0; i < H * W; i++)
        grey[i] = (float)i / (H * W - 1);
    grey[0] = -3.0f, grey[1] = 7.0f, grey[2] = NAN; /* clamped; NaN -> 0 */
    REQUIRE(aec_image_encode_png(grey, 1, H, W, &png, &len, &err) == AEC_OK, "%s", err.msg);
    aec_rgb_image img;
    REQUIRE(aec_image_decode(png, len, MP4, &img, &err) == AEC_OK, "%s", err.msg);
    CHECK(img.width == W && img.height == H, "grey png size");
    CHECK(img.rgb[0] == 0 && img.rgb[3] == 255 && img.rgb[6] == 0, "clamped: %d %d %d", img.rgb[0],
          img.rgb[3], img.rgb[6]);
    int ok = 1;
    for (int i = 3; i < H * W; i++)
        ok &= img.rgb[3 * i] == (uint8_t)lrintf(grey[i] * 255.0f) &&
              img.rgb[3 * i + 1] == img.rgb[3 * i] && img.rgb[3 * i + 2] == img.rgb[3 * i];
    CHECK(ok, "grey values rounded to nearest");
    aec_image_free(&img);
    free(png);

    CHECK(aec_image_encode_png(chw, 2, H, W, &png, &len, &err) == AEC_ERR_INVALID, "c 2");
    CHECK(png == NULL && len == 0, "outputs cleared on failure");
    CHECK(aec_image_encode_png(chw, 3, 0, W, &png, &len, &err) == AEC_ERR_INVALID, "h 0");
    CHECK(aec_image_encode_png(chw, 3, 1 << 20, 1 << 20, &png, &len, &err) == AEC_ERR_INVALID,
          "too large");
}

int main(void)
{
    test_png_bomb(); /* first: it checks the process's peak RSS */
    test_lossless_formats();
    test_jpeg();
    test_jpeg_bad_huffman();
    test_png_idat_claim();
    test_stb_hazards();
    test_grey_and_alpha();
    test_png_palette_trns();
    test_png_16bit();
    test_gif();
    test_limits();
    test_garbage();
    test_large_images();
    test_threads();
    test_to_tensor_same_size();
    test_to_tensor_resize();
    test_load_tensor();
    test_tensor_resize();
    test_encode_png();
    return TEST_SUMMARY();
}
