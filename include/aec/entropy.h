/* entropy.h - the entropy model: densities of latents, their training terms,
 * the coding tables made from them, and the substreams they code.
 *
 * Densities (all over integer bins: a value v costs -log2 P(v) bits with
 * P(v) = F(v + 1/2) - F(v - 1/2), F a CDF; training feeds v = y + uniform
 * noise, as Balle et al. 2018; P is bounded below by 2^-30):
 *   - factorized logistic: channel j has location loc[j] and scale
 *     exp(log_s[j]) (the 48x48 codecs' latent, and the photo codec's side
 *     information z);
 *   - Gaussian conditional: every value has its own mean and scale, which
 *     the photo codec's hyper-synthesis predicts from z (Minnen et al. 2018).
 * forward returns the total bits; backward ADDS scale * d bits / d input
 * into the gradients (where the distortion's gradient already is).
 *
 * Coding tables (aec_entropy_tables_build, at the end of training) are 16-bit
 * frequencies, integers stored in the model file, so every machine decodes
 * the same symbols. The Gaussian scale is mapped to the first of
 * AEC_ENTROPY_SCALES log-spaced table scales (0.11 .. 256) that is not below
 * it; each table covers [-L, L] and one escape symbol, after which the value
 * is sent as a sign and an Elias-gamma code in equiprobable bits, so every
 * integer up to AEC_ENTROPY_MAX_ABS codes. Factorized tables are one per
 * channel, around the channel's location (symbols are round(z - loc)).
 */
#ifndef AEC_ENTROPY_H
#define AEC_ENTROPY_H

#include <stddef.h>
#include <stdint.h>

#include "aec/error.h"

#define AEC_ENTROPY_SCALES 64
#define AEC_ENTROPY_SCALE_MIN 0.11
#define AEC_ENTROPY_SCALE_MAX 256.0
#define AEC_ENTROPY_MAX_ABS (1 << 20) /* symbols lie in [-2^20, 2^20] */
#define AEC_ENTROPY_MAX_L 1500        /* the widest table: [-1500, 1500] */

/* ---- training terms -------------------------------------------------------------- */

/* Factorized logistic over inp [n, c, spatial]. */
double aec_rate_forward(const float *inp, const float *mu, const float *log_s, int n, int c,
                        int spatial);
void aec_rate_backward(float *dinp, float *dmu, float *dlog_s, const float *inp, const float *mu,
                       const float *log_s, int n, int c, int spatial, float scale);

/* Gaussian conditional over count values: value i has mean mu[i] and scale
 * max(sigma[i], AEC_ENTROPY_SCALE_MIN). backward adds into dinp, dmu and dsigma
 * (the bound passes a gradient only where it would raise sigma above it). */
double aec_gaussian_forward(const float *inp, const float *mu, const float *sigma, size_t count);
void aec_gaussian_backward(float *dinp, float *dmu, float *dsigma, const float *inp,
                           const float *mu, const float *sigma, size_t count, float scale);

/* ---- tables ------------------------------------------------------------------------
 * Layout of the two F32 tensors a photo codec file carries (every value an
 * integer or, for the scales, the table's float):
 *   aec.entropy.z : for each channel: L, then 2L + 2 frequencies (symbols
 *                   -L..L, escape), summing to 65536, each >= 1
 *   aec.entropy.y : the AEC_ENTROPY_SCALES scales, then for each scale the same
 *                   row as above */
typedef struct aec_entropy aec_entropy;

/* Builds both tensors from the factorized density (channels of z) and the
 * fixed scale table; *z_out, *y_out are malloc'd, *z_len, *y_len floats. */
aec_status aec_entropy_tables_build(const float *loc, const float *log_s, int channels,
                                    float **z_out, size_t *z_len, float **y_out, size_t *y_len,
                                    aec_error *err);
/* Validates the tensors (z for `channels` channels) and makes the coder. */
aec_status aec_entropy_create(aec_entropy **out, const float *z, size_t z_len, int channels,
                              const float *y, size_t y_len, aec_error *err);
void aec_entropy_free(aec_entropy *e);

/* The table of each Gaussian scale (the first table scale >= sigma). */
void aec_entropy_scale_index(const aec_entropy *e, const float *sigma, size_t count, uint8_t *idx);

/* ---- substreams ---------------------------------------------------------------------
 * z symbols are [channels, per_channel]; y symbols come with their table
 * index. encode returns a malloc'd substream; decode reads exactly count
 * symbols and fails with AEC_ERR_FORMAT on bytes no encoder writes. */
aec_status aec_entropy_encode_z(const aec_entropy *e, const int32_t *sym, size_t per_channel,
                                uint8_t **out, size_t *len, aec_error *err);
aec_status aec_entropy_decode_z(const aec_entropy *e, const uint8_t *buf, size_t len,
                                size_t per_channel, int32_t *sym, aec_error *err);
aec_status aec_entropy_encode_y(const aec_entropy *e, const int32_t *sym, const uint8_t *idx,
                                size_t count, uint8_t **out, size_t *len, aec_error *err);
aec_status aec_entropy_decode_y(const aec_entropy *e, const uint8_t *buf, size_t len,
                                const uint8_t *idx, size_t count, int32_t *sym, aec_error *err);

#endif
