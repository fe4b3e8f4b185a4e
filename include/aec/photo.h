/* photo.h - the photo codec: a learned image codec for photos of any size
 * (Minnen et al. 2018, "mbt2018-mean": a mean-scale hyperprior).
 *
 *   x  [3, H, W] in [0, 1], H and W padded to multiples of 64
 *   y  = g_a(x) * gain[q]           [M, H/16, W/16]   the latent
 *   z  = h_a(y)                     [N, H/64, W/64]   side information
 *   z^ = round(z - loc) + loc       coded with a factorized density per channel
 *   (mu, sigma) = h_s(z^)           [2M, H/16, W/16]
 *   y^ = round(y - mu) + mu         coded with a Gaussian conditional (aec/entropy.h)
 *   x^ = g_s(y^ / gain[q])          cropped back to the photo's size
 *
 * g_a: 4 x (conv 5x5 stride 2), GDN between them (3 -> N -> N -> N -> M);
 * g_s: 4 x (transposed conv 5x5 stride 2), inverse GDN between (M -> N -> N -> N -> 3);
 * h_a: conv 3x3 (M -> N), leaky ReLU, conv 5x5 s2, leaky ReLU, conv 5x5 s2;
 * h_s: transposed 5x5 s2 (N -> M), leaky ReLU, transposed 5x5 s2 (M -> 3M/2),
 *      leaky ReLU, conv 3x3 (3M/2 -> 2M): the first M channels are sigma, the rest mu.
 *
 * Variable rate (Cui et al. 2021): `levels` trained gain vectors on the latent,
 * one per rate-distortion trade-off lambda; a quality between two levels uses
 * the geometric interpolation of their gains.
 *
 * Every parameter lives in one float allocation (params), in the order of
 * aec_photo_tensor(); a model file stores them under their PyTorch names
 * ("g_a.0.weight", "g_a.1.beta", ...) with metadata aec.format "photo-1" and
 * aec.photo {"n": N, "m": M, "lambdas": [...]}, plus the coding tables
 * (aec/entropy.h). GDN's beta and gamma are stored reparametrized as in
 * CompressAI (stored = sqrt(value + 2^-36), value = max(stored, bound)^2 - 2^-36,
 * bounds 1e-6 for beta, 0 for gamma); `eff` holds the effective values that
 * the layers use.
 */
#ifndef AEC_PHOTO_H
#define AEC_PHOTO_H

#include <stddef.h>
#include <stdint.h>

#include "aec/entropy.h"
#include "aec/error.h"

#define AEC_PHOTO_MAX_LEVELS 8
#define AEC_PHOTO_MAX_TENSORS 48
#define AEC_PHOTO_STRIDE 64 /* images are padded to multiples of this */
#define AEC_PHOTO_MAX_SIDE 65536
#define AEC_PHOTO_MAX_CHANNELS 512

typedef struct {
    int n, m;   /* channels of the transforms and of the latent */
    int levels; /* gain vectors */
    float lambda[AEC_PHOTO_MAX_LEVELS];
} aec_photo_config;

typedef enum { AEC_ST_CONV, AEC_ST_DECONV, AEC_ST_GDN, AEC_ST_IGDN, AEC_ST_LRELU } aec_stage_kind;

/* One stage of a network: a convolution (weight, bias) or GDN (beta, gamma)
 * or an activation; param offsets index params / eff / gradients. */
typedef struct {
    aec_stage_kind kind;
    int cin, cout, k, stride;
    size_t w, b; /* offsets of weight / gamma and bias / beta */
    size_t ph;   /* transposed convolution: offset of its phase weights in phase */
} aec_stage;

typedef struct {
    int nstages;
    aec_stage st[8];
} aec_net;

typedef struct {
    char name[32];
    int ndim;
    int dims[4];
    size_t offset, count;
    int gdn; /* 1 beta, 2 gamma (reparametrized), 0 otherwise */
} aec_photo_tensor;

typedef struct aec_photo {
    aec_photo_config cfg;
    aec_net g_a, g_s, h_a, h_s;
    int ntensors;
    aec_photo_tensor tensors[AEC_PHOTO_MAX_TENSORS];
    size_t nparams;
    float *params;                             /* everything trainable, one allocation */
    float *eff;                                /* params with GDN's beta and gamma made effective */
    size_t gain, inv_gain, z_loc, z_log_scale; /* offsets */
    float *z_tables, *y_tables;                /* coding tables, or NULL */
    size_t z_tables_len, y_tables_len;
    aec_entropy *entropy; /* made from the tables */
    float *phase;         /* transposed convolutions' weights per output phase (serving) */
    size_t nphase;
    char *train_json; /* aec.train, or NULL */
    uint64_t id_hash;
    char id[24];
} aec_photo;

/* A model with the given shape; parameters initialized as PyTorch does from
 * the seed (conv: uniform +-1/sqrt(fan_in); GDN: beta 1, gamma 0.1 I; gains 1). */
aec_status aec_photo_create(aec_photo **out, const aec_photo_config *cfg, uint64_t seed,
                            aec_error *err);
void aec_photo_free(aec_photo *p);
/* Recomputes eff from params (after every change of params). */
void aec_photo_update_eff(aec_photo *p);
/* Chain rule of the reparametrization: turns d loss / d eff (in grad, the
 * same layout) into d loss / d params, in place. */
void aec_photo_reparam_backward(const aec_photo *p, float *grad);
/* Tabulates the entropy model (aec/entropy.h) from the current parameters
 * and makes the coder; recomputes the id. */
aec_status aec_photo_finalize(aec_photo *p, aec_error *err);

/* Files (safetensors). load refuses anything malformed, with the file name
 * in the message; save writes atomically. */
int aec_photo_is_file(const uint8_t *buf, size_t len); /* aec.format is photo-1 */
aec_status aec_photo_load(aec_photo **out, const char *path, aec_error *err);
aec_status aec_photo_load_memory(aec_photo **out, const uint8_t *buf, size_t len, const char *name,
                                 aec_error *err);
aec_status aec_photo_save(const aec_photo *p, const char *path, aec_error *err);

/* Output size of a stage on an h x w input. */
void aec_stage_out_size(const aec_stage *s, int h, int w, int *oh, int *ow);

/* ---- compressing (photo_codec.c) ----------------------------------------------------
 * Stream format version 3 (all integers little-endian):
 *   off size field
 *     0    4 magic "AEC" and the version byte 3
 *     4    4 model tag: the low 32 bits of the model's id hash
 *     8    4 width in pixels (>= 1)
 *    12    4 height in pixels (>= 1)
 *    16    1 quality, 1..100
 *    17    4 z substream length in bytes
 *    21    4 y substream length in bytes
 *    25    4 check: low 32 bits of FNV-1a 64 over the decoded symbols (z then y,
 *            each as int32 LE), so a corrupt stream is refused, not shown
 *    29    . the z substream, then the y substream (aec/entropy.h); the stream
 *            ends exactly there
 * z has N x ceil(H/64) x ceil(W/64) symbols, y has M x 4ceil(H/64) x 4ceil(W/64),
 * channel-major, rows top to bottom. */
#define AEC_PHOTO_MAGIC "AEC\x03"
#define AEC_PHOTO_HEADER 29
#define AEC_PHOTO_QUALITY_DEFAULT 75

typedef struct {
    uint32_t tag;
    int width, height, quality;
    size_t z_bytes, y_bytes, total;
} aec_photo_info;

/* Does buf start like a version-3 stream? */
int aec_photo_is_stream(const uint8_t *buf, size_t len);
/* The header of a stream (no model needed); AEC_ERR_FORMAT if it is not one. */
aec_status aec_photo_stream_info(const uint8_t *buf, size_t len, aec_photo_info *info,
                                 aec_error *err);
uint32_t aec_photo_tag(const aec_photo *p);

/* Peak bytes that compressing or decompressing a width x height photo
 * allocates (the budget a server reserves). */
size_t aec_photo_memory_bound(const aec_photo *p, int width, int height, int threads);

/* rgb: width x height interleaved 8-bit RGB. quality 1..100. The result is
 * the same bytes for any thread count. */
aec_status aec_photo_compress(const aec_photo *p, const uint8_t *rgb, int width, int height,
                              int quality, int threads, uint8_t **out, size_t *len, aec_error *err);
/* The highest quality whose stream fits in max_bytes (like cwebp -size); the
 * lowest quality's stream if none fits. *quality_out may be NULL. */
aec_status aec_photo_compress_size(const aec_photo *p, const uint8_t *rgb, int width, int height,
                                   size_t max_bytes, int threads, uint8_t **out, size_t *len,
                                   int *quality_out, aec_error *err);
/* A stream of this model -> malloc'd interleaved RGB (*width x *height).
 * AEC_ERR_LIMIT beyond max_pixels, AEC_ERR_MISMATCH for another model's
 * stream, AEC_ERR_FORMAT for anything corrupt, truncated or extended. */
aec_status aec_photo_decompress(const aec_photo *p, const uint8_t *buf, size_t len,
                                size_t max_pixels, int threads, uint8_t **rgb, int *width,
                                int *height, aec_error *err);

/* Lower-level pieces, for tests and benchmarks: the latent of a padded
 * image x [3, H, W] (H, W multiples of 64) computed in tiles of `tile`
 * pixels (0: the default), and the image from a latent in tiles of `tile`
 * latent pixels. */
aec_status aec_photo_analysis(const aec_photo *p, const float *x, int h, int w, int tile,
                              int threads, float *y, aec_error *err);
aec_status aec_photo_synthesis(const aec_photo *p, const float *y, int h, int w, int tile,
                               int threads, float *x, aec_error *err);
/* Rate the training model predicts for the photo at this quality (bits), next
 * to what the coder writes: the two must agree. */
aec_status aec_photo_estimate_bits(const aec_photo *p, const uint8_t *rgb, int width, int height,
                                   int quality, int threads, double *bits, aec_error *err);

#endif
