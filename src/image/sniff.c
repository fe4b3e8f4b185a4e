/* sniff.c - the few header fields we read ourselves, before or instead of
 * stb_image (declarations in sniff.h).
 *
 * Owns aec_sniff_declared_size and aec_sniff_stb_hazards. Both only look;
 * neither allocates.
 *
 * aec_sniff_declared_size reads the size a PNG or JPEG header claims, so that
 * an image stb refuses outright (stbi_info then says only "unknown image
 * type") can still be reported as too large, with its size.
 *
 * aec_sniff_stb_hazards turns away input that reaches a bug of stb_image 2.27,
 * the version Debian ships and stb_decode.c compiles (found by
 * tests/fuzz/fuzz_image.c, which fuzzes that code built with sanitizers, and
 * by reading the loaders). Each
 * check follows stb's own reading of the bytes, so a file stb would decode
 * correctly is never refused:
 *
 * JPEG, heap overflow: the DHT handler passes up to 16*255 code counts to
 * stbi__build_huffman, which stores one byte per code into size[257] and
 * code[256] without a bound (fixed upstream in 2.28). The walk mirrors how
 * stb moves through a JPEG (stbi__decode_jpeg_header / _image): after SOI,
 * markers (0xFF, fill bytes, the marker byte), segments skipped by their
 * length, entropy-coded data and junk scanned for the next 0xFF xx, 0xFF00
 * and restarts passed over, stopping at EOI. Where the two can differ, stb
 * has already failed, so the walk sees every DHT that stb would process; it
 * checks each table the way stb reads it, zeros past the end.
 *
 * PNG, memory blow-up: stb grows its IDAT buffer to the length a chunk header
 * declares before reading the data, so a 60-byte file claiming a 2 GB IDAT
 * costs a 2 GB allocation. We walk the chunks as stb does (length, type,
 * data, CRC, up to IEND) and refuse an IDAT longer than the bytes left. (The
 * decode budget of stb_decode.c would now stop it too, as AEC_ERR_LIMIT and
 * only at decode time; this says what is wrong with the file, before.) An
 * empty first IDAT is refused too: stb would compute NULL + 0.
 *
 * PNM (P5/P6): a 16-bit file (maxval > 255) converted to 4 channels is read
 * back as twice its size (heap over-read); a truncated file leaves the pixel
 * buffer uninitialised, i.e. earlier heap contents (other requests' images)
 * would come back as pixels. We parse the header as stbi__pnm_info does,
 * refuse 16-bit, and require the whole raster.
 *
 * TGA, uncompressed true-colour: the rows are read with stbi__getn, whose
 * failure is ignored, so a truncated file has the same uninitialised-heap
 * problem. We require 18 + id length + w*h*bytes.
 *
 * Radiance HDR: a truncated run-length file makes stb loop forever (a zero
 * run count read past the end never advances), and flat scanlines read past
 * the end leave stack bytes in the pixels. Refused as unsupported (and not
 * compiled: STBI_NO_HDR in stb_decode.c).
 *
 * Photoshop PSD: with 4 or more channels stb "removes the white matte" by
 * converting (c - 255) / alpha + 255 to unsigned char, undefined behaviour
 * for any pixel darker than the matte allows (fuzz_image, UBSan
 * float-cast-overflow). Refused as unsupported (and not compiled:
 * STBI_NO_PSD).
 */
#include "sniff.h"

#include <string.h>

static uint32_t be16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p)
{
    return be16(p) << 16 | be16(p + 2);
}

/* ---- JPEG walking ------------------------------------------------------------ */

/* Offset just past SOI as stb finds it (0xFF, any fill bytes, 0xD8), or 0. */
static size_t jpeg_soi_end(const uint8_t *b, size_t len)
{
    if (len < 2 || b[0] != 0xff)
        return 0;
    size_t i = 1;
    while (i < len && b[i] == 0xff)
        i++;
    return (i < len && b[i] == 0xd8) ? i + 1 : 0;
}

/* Index of the next marker byte at or after *i (0xFF, fills, then a byte that
 * is not 0x00 stuffing), or len. */
static size_t jpeg_next_marker(const uint8_t *b, size_t len, size_t i)
{
    while (i < len) {
        if (b[i++] != 0xff)
            continue;
        while (i < len && b[i] == 0xff)
            i++;
        if (i < len && b[i] != 0x00)
            return i;
    }
    return len;
}

static int has_length(uint8_t m)
{
    return !(m == 0x01 || (m >= 0xd0 && m <= 0xd8)); /* TEM, RSTn, SOI stand alone */
}

/* stb reads 0 past the end of the buffer. */
static uint32_t at(const uint8_t *p, size_t n, size_t k)
{
    return k < n ? p[k] : 0;
}

/* One DHT segment, p at its length field, read as stbi__process_marker
 * reads it: tables of class/id, 16 counts and the values, while the
 * remaining length is positive. */
static int jpeg_dht_ok(const uint8_t *p, size_t n)
{
    long left = (long)(at(p, n, 0) << 8 | at(p, n, 1)) - 2;
    size_t k = 2;
    while (left > 0 && k < n) {
        uint32_t q = at(p, n, k++);
        if ((q >> 4) > 1 || (q & 15) > 3)
            return 1; /* stb stops at a bad table header */
        uint32_t codes = 0;
        for (int j = 0; j < 16; j++)
            codes += at(p, n, k++);
        if (codes > 256)
            return 0;
        k += codes;
        left -= 17 + (long)codes;
    }
    return 1; /* past the end only zero counts follow */
}

static int jpeg_tables_ok(const uint8_t *b, size_t len)
{
    size_t i = jpeg_soi_end(b, len);
    if (i == 0)
        return 1;
    for (i = jpeg_next_marker(b, len, i); i < len; i = jpeg_next_marker(b, len, i)) {
        uint8_t m = b[i++];
        if (m == 0xd9) /* EOI: stb reads no further */
            break;
        if (!has_length(m))
            continue;
        if (m == 0xc4 && !jpeg_dht_ok(b + i, len - i))
            return 0;
        if (i + 2 > len)
            break;
        uint32_t seg = be16(b + i);
        i += seg < 2 ? 2 : seg; /* after SOS the scan continues through the data */
    }
    return 1;
}

/* ---- PNG chunks -------------------------------------------------------------- */

static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* 0: fine (or not a PNG); 1: an IDAT longer than the bytes left; 2: an empty
 * IDAT before any data, where stb computes NULL + 0 (undefined behaviour, found
 * by fuzzing; no encoder writes one). */
static int png_idat_problem(const uint8_t *b, size_t len)
{
    if (len < 8 || memcmp(b, png_sig, 8) != 0)
        return 0;
    size_t i = 8;
    int seen_data = 0;
    while (i + 8 <= len) {
        uint32_t n = be32(b + i);
        const uint8_t *type = b + i + 4;
        i += 8;
        if (memcmp(type, "IEND", 4) == 0)
            break;
        if (memcmp(type, "IDAT", 4) == 0) {
            if (n > len - i)
                return 1;
            if (n == 0 && !seen_data)
                return 2;
            seen_data = 1;
        }
        if (n > len - i) /* stb skips to the end and fails there */
            break;
        i += (size_t)n + 4; /* data and CRC */
    }
    return 0;
}

/* ---- PNM ------------------------------------------------------------------------ */

/* stbi__context over memory: get8 gives 0 at the end, at_eof is pos >= len. */
typedef struct {
    const uint8_t *b;
    size_t len, pos;
} cursor;

static char cur_get8(cursor *c)
{
    return c->pos < c->len ? (char)c->b[c->pos++] : 0;
}

static int cur_eof(const cursor *c)
{
    return c->pos >= c->len;
}

static int pnm_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r';
}

/* stbi__pnm_skip_whitespace: blanks and '#' comments to the end of line. */
static void pnm_skip_space(cursor *c, char *ch)
{
    for (;;) {
        while (!cur_eof(c) && pnm_space(*ch))
            *ch = cur_get8(c);
        if (cur_eof(c) || *ch != '#')
            break;
        while (!cur_eof(c) && *ch != '\n' && *ch != '\r')
            *ch = cur_get8(c);
    }
}

/* stbi__pnm_getinteger, which overflows an int past 9 digits: -1 then. */
static long pnm_integer(cursor *c, char *ch)
{
    long v = 0;
    int digits = 0;
    while (!cur_eof(c) && *ch >= '0' && *ch <= '9') {
        v = v * 10 + (*ch - '0');
        if (++digits > 9)
            return -1;
        *ch = cur_get8(c);
    }
    return v;
}

static aec_status pnm_check(const uint8_t *b, size_t len, aec_error *err)
{
    if (len < 2 || b[0] != 'P' || (b[1] != '5' && b[1] != '6'))
        return AEC_OK;
    cursor c = {b, len, 2};
    char ch = cur_get8(&c);
    long dim[3];
    for (int k = 0; k < 3; k++) { /* width, height, maxval */
        pnm_skip_space(&c, &ch);
        dim[k] = pnm_integer(&c, &ch);
        if (dim[k] < 0)
            return aec_fail(err, AEC_ERR_FORMAT, "not a readable image: PNM number too long");
    }
    if (dim[2] > 255)
        return aec_fail(err, AEC_ERR_UNSUPPORTED, "16-bit PNM images are not supported");
    uint64_t need = (uint64_t)dim[0] * (uint64_t)dim[1] * (b[1] == '6' ? 3 : 1);
    if (need > len - c.pos) /* the raster starts where stb's header parse stopped */
        return aec_fail(err, AEC_ERR_FORMAT, "not a readable image: truncated PNM");
    return AEC_OK;
}

/* ---- TGA ------------------------------------------------------------------------ */

/* Only the uncompressed true-colour/grey layout reads its raster with
 * stbi__getn; stb takes bytes as TGA only when no other format matched,
 * and every other format's magic has a byte 1 outside 0..1. */
static aec_status tga_check(const uint8_t *b, size_t len, aec_error *err)
{
    if (len < 18 || b[1] != 0 || (b[2] != 2 && b[2] != 3))
        return AEC_OK;
    uint32_t w = b[12] | (uint32_t)b[13] << 8, h = b[14] | (uint32_t)b[15] << 8;
    uint32_t bpp = b[16], comp;
    switch (bpp) {
    case 8: comp = 1; break;
    case 16: comp = b[2] == 3 ? 2 : 0; break; /* 16-bit colour is read per pixel */
    case 24: comp = 3; break;
    case 32: comp = 4; break;
    default: comp = 0;
    }
    size_t avail = len - 18 >= b[0] ? len - 18 - b[0] : 0; /* after the image ID */
    if (comp && (uint64_t)w * h * comp > avail)
        return aec_fail(err, AEC_ERR_FORMAT, "not a readable image: truncated TGA");
    return AEC_OK;
}

aec_status aec_sniff_stb_hazards(const uint8_t *b, size_t len, aec_error *err)
{
    if (!b)
        return AEC_OK;
    if (!jpeg_tables_ok(b, len))
        return aec_fail(err, AEC_ERR_FORMAT,
                        "not a readable image: corrupt JPEG (Huffman table of over 256 codes)");
    int png = png_idat_problem(b, len);
    if (png == 1)
        return aec_fail(err, AEC_ERR_FORMAT,
                        "not a readable image: truncated PNG (IDAT longer than the file)");
    if (png == 2)
        return aec_fail(err, AEC_ERR_FORMAT, "not a readable image: PNG with an empty first IDAT");
    if ((len >= 11 && memcmp(b, "#?RADIANCE\n", 11) == 0) ||
        (len >= 7 && memcmp(b, "#?RGBE\n", 7) == 0))
        return aec_fail(err, AEC_ERR_UNSUPPORTED, "Radiance HDR images are not supported");
    if (len >= 4 && memcmp(b, "8BPS", 4) == 0) /* stbi__psd_test's magic */
        return aec_fail(err, AEC_ERR_UNSUPPORTED, "Photoshop PSD images are not supported");
    aec_status st = pnm_check(b, len, err);
    if (st != AEC_OK)
        return st;
    return tga_check(b, len, err);
}

/* ---- declared sizes ---------------------------------------------------------- */

/* PNG: 8-byte signature, then the IHDR chunk: length, "IHDR", width, height. */
static int png_declared_size(const uint8_t *b, size_t len, uint32_t *w, uint32_t *h)
{
    if (len < 24 || memcmp(b, png_sig, 8) != 0 || memcmp(b + 12, "IHDR", 4) != 0)
        return 0;
    *w = be32(b + 16);
    *h = be32(b + 20);
    return 1;
}

/* JPEG: the first SOFn segment: length, precision, height, width. */
static int jpeg_declared_size(const uint8_t *b, size_t len, uint32_t *w, uint32_t *h)
{
    size_t i = jpeg_soi_end(b, len);
    if (i == 0)
        return 0;
    for (i = jpeg_next_marker(b, len, i); i < len; i = jpeg_next_marker(b, len, i)) {
        uint8_t m = b[i++];
        if (m == 0xda || m == 0xd9) /* a scan or the end before any frame header */
            return 0;
        if (!has_length(m))
            continue;
        if (i + 2 > len)
            return 0;
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
            if (i + 7 > len)
                return 0;
            *h = be16(b + i + 3);
            *w = be16(b + i + 5);
            return 1;
        }
        uint32_t seg = be16(b + i);
        i += seg < 2 ? 2 : seg;
    }
    return 0;
}

int aec_sniff_declared_size(const uint8_t *b, size_t len, uint32_t *w, uint32_t *h)
{
    if (!b)
        return 0;
    return png_declared_size(b, len, w, h) || jpeg_declared_size(b, len, w, h);
}
