/* safetensors.h - reading and writing the safetensors container.
 *
 * Layout: 8-byte little-endian header length N; N bytes of JSON (padded with
 * spaces to a multiple of 8); the tensor data, little-endian, row-major, with
 * data_offsets contiguous from 0, no holes, no overlaps, and the file ending
 * exactly at the last tensor. aec_st_parse checks all of that and never reads
 * outside the buffer it is given.
 */
#ifndef AEC_SAFETENSORS_H
#define AEC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "aec/error.h"

typedef enum { AEC_DT_F32, AEC_DT_F16, AEC_DT_I64, AEC_DT_OTHER } aec_st_dtype;

#define AEC_ST_MAX_DIMS 8
/* Header larger than this is refused before allocating it. */
#define AEC_ST_MAX_HEADER (64u << 20)

typedef struct {
    char *name;
    aec_st_dtype dtype;
    char dtype_name[12];
    int ndim;
    int64_t shape[AEC_ST_MAX_DIMS];
    size_t begin, end; /* offsets into data */
} aec_st_tensor;

typedef struct {
    int ntensors;
    aec_st_tensor *tensors;
    int nmeta;
    char **meta_keys; /* __metadata__, string -> string */
    char **meta_values;
    const uint8_t *data; /* points into the caller's buffer */
    size_t data_len;
} aec_st_file;

/* Parses buf (which must outlive f). On error f is left empty. */
aec_status aec_st_parse(aec_st_file *f, const uint8_t *buf, size_t len, aec_error *err);
void aec_st_free(aec_st_file *f);
const aec_st_tensor *aec_st_find(const aec_st_file *f, const char *name);
const char *aec_st_meta(const aec_st_file *f, const char *key);
size_t aec_st_dtype_size(aec_st_dtype dt);

/* One tensor to write. dtype_name is "F32", "F16" or "I64". */
typedef struct {
    const char *name;
    const char *dtype_name;
    int ndim;
    int64_t shape[AEC_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} aec_st_out;

/* Serializes to a malloc'd buffer. Tensors are written in name order
 * (as safetensors does); meta may be NULL. */
aec_status aec_st_serialize(const aec_st_out *tensors, int n, const char *const *meta_keys,
                            const char *const *meta_values, int nmeta, uint8_t **out,
                            size_t *out_len, aec_error *err);

/* Writes bytes to path atomically: temp file in the same folder, write,
 * fsync, rename. On any failure the old file is untouched and the temp file
 * removed. */
aec_status aec_write_file_atomic(const char *path, const void *data, size_t len, aec_error *err);
/* Model files (any kind) are refused beyond this size. */
#define AEC_MODEL_FILE_MAX ((size_t)1 << 30)
/* Reads a model file whole: aec_read_file with AEC_MODEL_FILE_MAX, and a
 * message saying so for a larger one. */
aec_status aec_read_model_file(const char *path, uint8_t **out, size_t *out_len, aec_error *err);
/* Reads a whole file, refusing files larger than max_len. */
aec_status aec_read_file(const char *path, size_t max_len, uint8_t **out, size_t *out_len,
                         aec_error *err);

#endif
