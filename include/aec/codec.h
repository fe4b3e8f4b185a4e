/* codec.h - the entropy-coded latent (binary latent v2): what /encode returns
 * for a model trained as a codec, a few hundred bytes per image.
 *
 * Encoding: every latent value is rounded to an integer symbol, clamped to
 * its channel's range, and range-coded with that channel's probability
 * table (16-bit frequencies). The tables are histograms of the rounded
 * latents of the training images, made by aec-train and stored in the model
 * file (tensor "aec.codec.tables", F32 [channels, 2 + max symbols]; row j =
 * lowest symbol, symbol count n, then n frequencies >= 1 summing to 65536).
 * Decoding reproduces the symbols bit for bit; the decoded latent value is
 * the symbol itself.
 *
 * Stream layout, version 2 (a version-1 binary latent starts with "AECL"):
 *   off size field
 *     0    1 0xA2: format 2
 *     1    2 model tag: 16 bits of a hash of the model's id and tables (LE)
 *     3    2 CRC-16/CCITT of the symbols (each as int16, little-endian),
 *            so corrupt or truncated streams are refused, not decoded
 *     5    . the range coder's bytes, trailing zero bytes dropped
 * The number of symbols (the latent size) and the channel of each symbol
 * (channel-major, as the latent is laid out) come from the model.
 */
#ifndef AEC_CODEC_H
#define AEC_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "aec/error.h"
#include "aec/model.h"

#define AEC_CODEC_FORMAT 0xA2
#define AEC_CODEC_HEADER 5
#define AEC_CODEC_PRECISION 16 /* frequencies sum to 1 << 16 */
#define AEC_CODEC_MAX_ABS 1023 /* symbols lie in [-1023, 1023] */
#define AEC_CODEC_TABLES "aec.codec.tables"

typedef struct aec_codec aec_codec;

/* Does the model carry codec tables? */
int aec_model_has_codec(const aec_model *m);
/* Validates the model's tables against its latent shape and builds the
 * coder. AEC_ERR_UNSUPPORTED if the model has no tables, AEC_ERR_FORMAT if
 * they are malformed. */
aec_status aec_codec_create(aec_codec **out, const aec_model *m, aec_error *err);
void aec_codec_free(aec_codec *c);
/* Upper bound of a stream's length for this model (header included). */
size_t aec_codec_max_bytes(const aec_codec *c);

/* latent (the model's latent count of floats, finite) -> malloc'd stream. */
aec_status aec_codec_encode(const aec_codec *c, const float *latent, uint8_t **out, size_t *len,
                            aec_error *err);
/* stream -> latent floats. AEC_ERR_FORMAT for a malformed, corrupt or
 * truncated stream, AEC_ERR_MISMATCH for another model's stream. */
aec_status aec_codec_decode(const aec_codec *c, const uint8_t *buf, size_t len, float *latent,
                            aec_error *err);
/* Does buf start like a version-2 stream? */
int aec_codec_is_stream(const uint8_t *buf, size_t len);
/* The model tag a stream carries (1), or 0 if buf is too short or not a
 * stream; and the tag of this coder's streams, to find the model of one. */
int aec_codec_stream_tag(const uint8_t *buf, size_t len, uint16_t *tag);
uint16_t aec_codec_tag(const aec_codec *c);

/* ---- building the tables (aec-train) ----------------------------------------
 * add() counts the rounded symbols of n latents; finish() turns the counts
 * into tables and stores them in the model (replacing any it had), with
 * info_json (an object, may be NULL) as the model's aec.codec metadata. */
typedef struct aec_codec_builder aec_codec_builder;

aec_status aec_codec_builder_create(aec_codec_builder **out, const aec_model *m, aec_error *err);
void aec_codec_builder_add(aec_codec_builder *b, const float *latents, int n);
aec_status aec_codec_builder_finish(aec_codec_builder *b, aec_model *m, const char *info_json,
                                    aec_error *err);
void aec_codec_builder_free(aec_codec_builder *b);

#endif
