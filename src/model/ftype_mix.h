/* File types ("ftypes") and the per-tensor type each one gives: the pure types
 * (f32, f16, bf16, q8_0, q4_0, ...: every weight matrix in one type) and
 * llama.cpp's mixes (q4_k_m, q3_k_m, ...), which spend more bits where a model
 * is most sensitive (the output matrix, attn_v and ffn_down of some layers).
 *
 * The choice for each tensor follows llama.cpp's llama_tensor_get_type
 * (src/llama-quant.cpp) for dense llama-family models, so that a file written
 * here has the same tensor types, and the same size, as llama-quantize's:
 *  - only weight matrices are quantized: 1-D tensors, norms and biases keep
 *    their type (f32);
 *  - in a quantized ftype the output matrix (and token_embd when the output is
 *    tied to it) becomes q6_K, or q8_0 when its row length does not divide
 *    into the base type's blocks;
 *  - a row length that is not a whole number of blocks falls back to a type
 *    with 32-element blocks (q4_K -> q5_0, q6_K -> q8_0, ...), and to f16 when
 *    even that does not divide.
 * synth and quantize both use this, so they agree. Everything here is pure
 * computation over names and shapes: thread-safe. */
#ifndef HS_MODEL_FTYPE_MIX_H
#define HS_MODEL_FTYPE_MIX_H

#include "base/err.h"

#include <stdbool.h>
#include <stdint.h>

/* One file type. */
struct hs_ftype {
    const char *name; /* "q4_k_m", lower case */
    int file_type;    /* general.file_type: llama.cpp's llama_ftype number */
    int base_type;    /* enum hs_ggml_type most weight matrices get */
    bool mix;         /* llama.cpp's per-tensor rules apply (false: base_type everywhere) */
};

/* The file type named `name` (case-insensitive: "Q4_K_M", "q4_k_m"), or NULL.
 * "q2_k" and "q6_k" name llama.cpp's mixes; "q3_k", "q4_k" and "q5_k" are
 * pure (every matrix in that type). */
const struct hs_ftype *hs_ftype_find(const char *name);
/* All known file types, for help texts: hs_ftype_at(0 .. hs_ftype_count()-1). */
int hs_ftype_count(void);
const struct hs_ftype *hs_ftype_at(int i);

/* The model facts the rules look at. */
struct hs_ftype_model {
    const char *arch; /* "llama", "qwen2", ...; NULL = "llama" */
    int n_layer;
    int n_head; /* n_head / n_head_kv is the GQA factor (q2_k's attn_v) */
    int n_head_kv;
    bool tied_output; /* no output.weight: token_embd is the output matrix too */
    bool pure;        /* llama-quantize --pure: no per-tensor rules, only the fallbacks */
};

/* True when llama.cpp would quantize this tensor at all: 2-D or more, a name
 * ending in "weight", not a norm. Others keep their type. */
bool hs_ftype_quantizable(const char *tensor_name, int n_dims);

/* The type tensor `tensor_name` (n_dims dims, ne[0] the row length) gets in
 * file type `ft`. src_type is the tensor's type now: what a tensor that is not
 * quantized keeps (synth passes HS_TYPE_F32). Returns the enum hs_ggml_type
 * number (>= 0), or HS_EINVAL / HS_EUNSUPPORTED with a message. */
int hs_ftype_tensor_type_of(const struct hs_ftype *ft, const char *tensor_name, int n_dims, const int64_t *ne,
                            int src_type, const struct hs_ftype_model *m, hs_err *err);

/* Same, looking the file type up by name (HS_EINVAL when unknown). */
int hs_ftype_tensor_type(const char *ftype, const char *tensor_name, int n_dims, const int64_t *ne,
                         int src_type, const struct hs_ftype_model *m, hs_err *err);

#endif
