/* Safetensors reader: one file over a read-only mapping, or a sharded set
 * named by model.safetensors.index.json.
 *
 * The whole header is validated before anything is handed out: the 8-byte
 * little-endian header length, well-formed JSON (an object, no duplicate
 * keys), every tensor's dtype (F32, F16, BF16; any other is HS_EUNSUPPORTED
 * naming the tensor), shapes (non-negative integers, at most
 * HS_ST_MAX_DIMS, no overflow), data_offsets inside the data section,
 * end - begin == elements * dtype size, and no two tensors overlapping.
 * "__metadata__" is allowed and ignored. Messages name the file and tensor.
 * Everything returned is borrowed and valid until the matching close. */
#ifndef HS_GGUF_SAFETENSORS_H
#define HS_GGUF_SAFETENSORS_H

#include "base/err.h"

#include <stddef.h>
#include <stdint.h>

#define HS_ST_MAX_DIMS 4

typedef struct hs_st hs_st;
typedef struct hs_st_set hs_st_set;

/* One tensor. shape[] is in the file's order (outermost first, as PyTorch
 * writes it); n_dims may be 0 (a scalar). `type` is the ggml type number
 * (HS_TYPE_F32, HS_TYPE_F16 or HS_TYPE_BF16). `file` is the name of the file
 * the tensor lives in (for messages). */
struct hs_st_tensor {
    const char *name;
    const char *file;
    uint32_t type;
    uint32_t n_dims;
    int64_t shape[HS_ST_MAX_DIMS];
    int64_t n_elements;
    uint64_t nbytes;
    const void *data;
    int mapped; /* 1 when data is in a file mapping this reader made */
};

/* Opens and validates one file. On failure *out is NULL. */
int hs_st_open(const char *path, hs_st **out, hs_err *err);
/* Same over a caller's buffer (borrowed; must outlive the hs_st). */
int hs_st_open_mem(const void *data, size_t size, const char *name, hs_st **out, hs_err *err);
void hs_st_close(hs_st *st);

/* Tensors, in the order of their data in the file. */
int64_t hs_st_n_tensors(const hs_st *st);
const struct hs_st_tensor *hs_st_tensor_at(const hs_st *st, int64_t i);
const struct hs_st_tensor *hs_st_find(const hs_st *st, const char *name); /* NULL if absent */

/* Tells the kernel that t's bytes will not be read again soon, so that a
 * converter streaming a large model keeps its resident memory small (the
 * pages come back from the file if they are read again). Any tensor of a
 * reader opened with hs_st_open / hs_st_set_open; no effect otherwise. */
void hs_st_release(const struct hs_st_tensor *t);

/* A model folder: model.safetensors.index.json when present (every file its
 * weight_map names, each tensor where the map says and nowhere else), else
 * model.safetensors. */
int hs_st_set_open(const char *dir, hs_st_set **out, hs_err *err);
void hs_st_set_close(hs_st_set *set);
int64_t hs_st_set_n_tensors(const hs_st_set *set);
/* Tensors file by file (in the index's order of first appearance), each file's in data order. */
const struct hs_st_tensor *hs_st_set_tensor_at(const hs_st_set *set, int64_t i);
const struct hs_st_tensor *hs_st_set_find(const hs_st_set *set, const char *name);

#endif
