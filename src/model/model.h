/* A loaded model: hyper-parameters, the tokenizer, and weight views into the
 * GGUF mapping (never copied). Read-only after load and shared by every thread
 * and every hs_ctx. Architectures: llama (Llama 1-3, Mistral-style, with
 * Llama-3 rope-freq factors) and qwen2 (QKV bias). */
#ifndef HS_MODEL_MODEL_H
#define HS_MODEL_MODEL_H

#include "base/err.h"
#include "gguf/gguf.h"
#include "model/tokenizer.h"
#include "tensor/matmul.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hs_model hs_model;

enum hs_rope_type {
    HS_ROPE_NORM = 0, /* pairs (2i, 2i+1): llama's GGUF layout (Q/K permuted by the converter) */
    HS_ROPE_NEOX = 2, /* pairs (i, i + n_rot/2): qwen2 */
};

struct hs_hparams {
    char arch[32];      /* general.architecture */
    int n_vocab;
    int n_ctx_train;
    int n_embd;
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;       /* n_embd / n_head unless attention.key_length says otherwise */
    int n_ff;
    int n_rot;          /* rope.dimension_count (default head_dim) */
    float rms_eps;
    float rope_freq_base;  /* default 10000 */
    float rope_freq_scale; /* 1 / rope.scaling.factor for linear scaling, else 1 */
    enum hs_rope_type rope_type;
    bool has_qkv_bias;
    bool tied_output;   /* no output.weight: token_embd is reused */
    int file_type;      /* general.file_type, -1 if absent */
};

struct hs_model_params {
    bool vocab_only; /* tokenizer and metadata only (vocab GGUFs have no tensors); any
                        architecture; hparams then holds arch, n_vocab and file_type */
};

/* Loads `path` (mapped, never copied: weights are views into the mapping).
 * Errors, each with a message naming the file and the tensor or key:
 *   HS_EUNSUPPORTED  architecture other than llama/qwen2 ("unsupported
 *                    architecture 'gpt2'"), a tensor type without kernels,
 *                    rope scaling other than linear;
 *   HS_EFORMAT       a missing key or tensor, a tensor of the wrong shape
 *                    ("tensor 'blk.0.attn_k.weight' has shape [64, 33],
 *                    expected [64, 32]"), a tokenizer larger than token_embd;
 *   HS_EIO / HS_EFORMAT from the GGUF reader (truncated or corrupt files).
 * On failure *out is NULL. params may be NULL. */
int hs_model_load(const char *path, const struct hs_model_params *params, hs_model **out, hs_err *err);
void hs_model_free(hs_model *m);

const struct hs_hparams *hs_model_hparams(const hs_model *m);
const hs_tok *hs_model_tok(const hs_model *m);  /* borrowed; lives as long as m */
const hs_gguf *hs_model_gguf(const hs_model *m); /* borrowed */
/* The tokenizer.chat_template string (NUL-terminated copy) or NULL. */
const char *hs_model_chat_template(const hs_model *m);
/* Bytes of all weight tensors (what a forward pass reads). */
size_t hs_model_weight_bytes(const hs_model *m);
/* Human-readable type summary, e.g. "q4_K/q6_K/f32". */
const char *hs_model_type_name(const hs_model *m);

#endif
