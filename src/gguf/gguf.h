/* GGUF v2/v3 reader and writer.
 *
 * The reader maps the file read-only and validates all of it before handing
 * out anything: magic, version, counts, every string and array length, value
 * types, tensor dims and types, data offsets, alignment, overlaps and the file
 * size. The first problem is reported as "<path>: <what> at byte <offset>".
 * Everything it returns is borrowed from the mapping (or from the reader's
 * own tables) and stays valid until hs_gguf_close. Read-only use of one
 * hs_gguf from many threads is safe.
 *
 * The writer streams: header and metadata first, then each tensor's data in
 * order, so memory stays small whatever the model's size. Reading a file and
 * writing back its keys and tensors in order reproduces it byte for byte. */
#ifndef HS_GGUF_GGUF_H
#define HS_GGUF_GGUF_H

#include "base/err.h"
#include "gguf/gguf_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hs_gguf hs_gguf;

/* Metadata value types, numbered as in the file format. */
enum hs_gguf_vtype {
    HS_GGUF_UINT8 = 0,
    HS_GGUF_INT8 = 1,
    HS_GGUF_UINT16 = 2,
    HS_GGUF_INT16 = 3,
    HS_GGUF_UINT32 = 4,
    HS_GGUF_INT32 = 5,
    HS_GGUF_FLOAT32 = 6,
    HS_GGUF_BOOL = 7,
    HS_GGUF_STRING = 8,
    HS_GGUF_ARRAY = 9,
    HS_GGUF_UINT64 = 10,
    HS_GGUF_INT64 = 11,
    HS_GGUF_FLOAT64 = 12,
    HS_GGUF_VTYPE_COUNT
};

#define HS_GGUF_DEFAULT_ALIGNMENT 32
#define HS_GGUF_MAX_DIMS 4

/* One metadata pair. `key` is NUL-terminated (the reader's copy). For a scalar,
 * `data` points at the value in the mapping (unaligned: read with memcpy, or use
 * the getters). For a string, `data` points at its bytes and `n` is the length.
 * For an array, `arr_type` is the element type, `n` the count, and `data` the
 * first element (for string arrays use hs_gguf_arr_str). */
struct hs_gguf_kv {
    const char *key;
    enum hs_gguf_vtype type;
    enum hs_gguf_vtype arr_type;
    uint64_t n;
    const void *data;
};

/* One tensor. `name` is NUL-terminated. ne[0] is the row length (innermost);
 * dims past n_dims are 1. `offset` is relative to the start of the data
 * section; `data` points at the bytes in the mapping, `nbytes` long. */
struct hs_gguf_tensor {
    const char *name;
    uint32_t type; /* enum hs_ggml_type */
    uint32_t n_dims;
    int64_t ne[HS_GGUF_MAX_DIMS];
    uint64_t offset;
    uint64_t nbytes;
    const void *data;
};

/* Opens and validates a file. On failure *out is NULL and nothing needs freeing. */
int hs_gguf_open(const char *path, hs_gguf **out, hs_err *err);
/* Same over a caller's buffer (borrowed; must outlive the hs_gguf). `name` is
 * used in messages. Used by fuzzing and tests. */
int hs_gguf_open_mem(const void *data, size_t size, const char *name, hs_gguf **out, hs_err *err);
void hs_gguf_close(hs_gguf *g);

uint32_t hs_gguf_version(const hs_gguf *g);
size_t hs_gguf_alignment(const hs_gguf *g);
size_t hs_gguf_data_offset(const hs_gguf *g); /* byte offset of the data section */
size_t hs_gguf_file_size(const hs_gguf *g);
const void *hs_gguf_file_data(const hs_gguf *g); /* the whole mapping */

/* Metadata. */
int64_t hs_gguf_n_kv(const hs_gguf *g);
const struct hs_gguf_kv *hs_gguf_kv_at(const hs_gguf *g, int64_t i);
const struct hs_gguf_kv *hs_gguf_find_kv(const hs_gguf *g, const char *key); /* NULL if absent */

/* Typed getters. HS_ENOTFOUND when the key is absent (err untouched, so optional
 * keys are easy), HS_EFORMAT with a message when the type does not fit.
 * get_u32/get_i64/get_u64 accept any integer type whose value fits; get_f32
 * accepts float32 and float64. */
int hs_gguf_get_u32(const hs_gguf *g, const char *key, uint32_t *out, hs_err *err);
int hs_gguf_get_i64(const hs_gguf *g, const char *key, int64_t *out, hs_err *err);
int hs_gguf_get_u64(const hs_gguf *g, const char *key, uint64_t *out, hs_err *err);
int hs_gguf_get_f32(const hs_gguf *g, const char *key, float *out, hs_err *err);
int hs_gguf_get_bool(const hs_gguf *g, const char *key, bool *out, hs_err *err);
/* String value: pointer into the mapping (NOT NUL-terminated) and its length. */
int hs_gguf_get_str(const hs_gguf *g, const char *key, const char **s, size_t *len, hs_err *err);
/* Array value: the kv (its arr_type and n). expect_type < 0 accepts any element type. */
int hs_gguf_get_arr(const hs_gguf *g, const char *key, int expect_type, const struct hs_gguf_kv **kv,
                    hs_err *err);

/* Element i of a string array (kv->arr_type == HS_GGUF_STRING): bytes in the
 * mapping, not NUL-terminated. O(1): the reader indexes string arrays. */
const char *hs_gguf_arr_str(const hs_gguf *g, const struct hs_gguf_kv *kv, uint64_t i, size_t *len);
/* Element i of a numeric array converted to double / int64 (any numeric type). */
double hs_gguf_arr_f64(const struct hs_gguf_kv *kv, uint64_t i);
int64_t hs_gguf_arr_i64(const struct hs_gguf_kv *kv, uint64_t i);

/* Tensors. */
int64_t hs_gguf_n_tensors(const hs_gguf *g);
const struct hs_gguf_tensor *hs_gguf_tensor_at(const hs_gguf *g, int64_t i);
const struct hs_gguf_tensor *hs_gguf_find_tensor(const hs_gguf *g, const char *name); /* NULL if absent */

/* Helpers (additions). The name given at open (path or caller's name). */
const char *hs_gguf_name(const hs_gguf *g);
/* Bytes of one scalar of type t; 0 for string, array and unknown types. */
size_t hs_gguf_vtype_size(enum hs_gguf_vtype t);
/* Short type name: "u32", "f32", "str", "arr", ...; "?" when unknown. */
const char *hs_gguf_vtype_name(enum hs_gguf_vtype t);
/* The value of kv exactly as encoded in the file (after its u32 type field:
 * for an array the element type, count and elements), borrowed from the
 * mapping. NULL with *len 0 when kv is not one of g's. */
const void *hs_gguf_kv_raw(const hs_gguf *g, const struct hs_gguf_kv *kv, size_t *len);
/* File offset of kv's encoded value (for messages); 0 when kv is not one of g's. */
size_t hs_gguf_kv_offset(const hs_gguf *g, const struct hs_gguf_kv *kv);

/* ---- writer ---- */
typedef struct hs_gguf_writer hs_gguf_writer;

/* Creates `path` (truncating). version is 3 unless set; alignment 32 unless a
 * general.alignment key (uint32) is added before the first tensor. */
int hs_gguf_writer_open(const char *path, hs_gguf_writer **out, hs_err *err);
/* Writes GGUF version 2 or 3 (addition; default 3). Before hs_gguf_w_begin_data. */
int hs_gguf_w_set_version(hs_gguf_writer *w, uint32_t version);

/* The hs_gguf_w_* functions below return HS_OK or an HS_E* code; the first
 * error sticks: every later call returns it and hs_gguf_w_begin_data /
 * hs_gguf_w_close report its message. */

/* Metadata, in the order added (keys must be unique). Values are copied. */
int hs_gguf_w_u32(hs_gguf_writer *w, const char *key, uint32_t v);
int hs_gguf_w_i32(hs_gguf_writer *w, const char *key, int32_t v);
int hs_gguf_w_u64(hs_gguf_writer *w, const char *key, uint64_t v);
int hs_gguf_w_f32(hs_gguf_writer *w, const char *key, float v);
int hs_gguf_w_bool(hs_gguf_writer *w, const char *key, bool v);
/* Any scalar type (addition): v points at its little-endian bytes as in the file. */
int hs_gguf_w_val(hs_gguf_writer *w, const char *key, enum hs_gguf_vtype type, const void *v);
int hs_gguf_w_str(hs_gguf_writer *w, const char *key, const char *s, size_t len);
/* Numeric array: n elements of arr_type, packed little-endian as in the file. */
int hs_gguf_w_arr(hs_gguf_writer *w, const char *key, enum hs_gguf_vtype arr_type, const void *data,
                  uint64_t n);
/* String array: strs[i] of lens[i] bytes (lens NULL: NUL-terminated). */
int hs_gguf_w_arr_str(hs_gguf_writer *w, const char *key, const char *const *strs, const size_t *lens,
                      uint64_t n);
/* Copies one pair from a reader (any type, arrays included). */
int hs_gguf_w_kv_from(hs_gguf_writer *w, const hs_gguf *src, const struct hs_gguf_kv *kv);

/* Declares a tensor; data offsets are assigned in order, each aligned. */
int hs_gguf_w_tensor(hs_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                     const int64_t *ne);

/* Writes header, metadata and tensor infos. After this no more keys or tensors. */
int hs_gguf_w_begin_data(hs_gguf_writer *w, hs_err *err);
/* Appends data for the next tensor in declaration order. A tensor's data may
 * come in several calls; the byte counts must add up to its size exactly. */
int hs_gguf_w_data(hs_gguf_writer *w, const void *data, size_t n, hs_err *err);
/* Checks that all data was written, flushes, closes. Frees w in all cases;
 * on error the partial file is removed. */
int hs_gguf_w_close(hs_gguf_writer *w, hs_err *err);
/* Abandons a writer (removes the partial file). */
void hs_gguf_w_abort(hs_gguf_writer *w);

#endif
