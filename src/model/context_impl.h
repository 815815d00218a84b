/* Internal to model/: the layout of hs_ctx, shared by context.c (creation,
 * batch checks, sequence operations) and forward.c (the forward pass). */
#ifndef HS_MODEL_CONTEXT_IMPL_H
#define HS_MODEL_CONTEXT_IMPL_H

#include "base/fp16.h"
#include "model/context.h"
#include "model/model_impl.h"

#include <stddef.h>

/* The KV cache. For sequence slot s and layer l, K and V are each kv_dim
 * rows of n_ctx positions (transposed: kv_dim = n_head_kv * head_dim), so
 * that both halves of attention run along positions: the scores of a block
 * of positions are a sum over dimensions of vectors (no horizontal sums),
 * and the weighted sum of values is a dot product of the softmax row with a
 * contiguous row of V. Each value is f16 or f32 (kv_type). */
struct hs_ctx {
    const hs_model *m;
    const struct hs_hparams *hp;
    int n_ctx, n_seq, n_batch, n_threads;
    hs_pool *pool;
    hs_mm_scratch mm; /* quantized activations for hs_matmul, sized at create */

    int kv_dim;
    enum hs_kv_type kv_type;
    size_t kv_elem; /* bytes per cached value */
    unsigned char *k, *v;
    size_t kv_bytes;
    int *seq_len;  /* positions held, per slot */
    int *seq_next; /* batch checks: next expected position per slot */
    int32_t *pos_buf, *seq_buf; /* (n_batch) positions and sequences a batch left implicit */

    /* Activations for up to n_batch tokens, row-major (token, feature). */
    float *x;      /* (n_batch, n_embd) the residual stream */
    float *xn;     /* (n_batch, n_embd) normed input of the next matmul */
    float *tmp;    /* (n_batch, n_embd) output of wo and w_down, added at the next norm */
    float *q;      /* (n_batch, n_head * head_dim) */
    float *kc;     /* (n_batch, kv_dim) new keys before they go to the cache */
    float *vc;     /* (n_batch, kv_dim) new values */
    float *att;    /* (n_batch, n_head * head_dim) attention output */
    float *gate;   /* (n_batch, n_ff) */
    float *up;     /* (n_batch, n_ff) */
    float *rope_cs; /* (n_batch, n_rot) cos, sin of each rotation angle */
    float *freq;   /* (n_rot / 2) angle per position of each pair */
    float *scores; /* (n_threads, HS_ATTN_MAX_HEADS, n_ctx) softmax rows of one attention task */

    /* Logits of the last decode: out_idx[i] is batch token i's row or -1. */
    int *out_idx;  /* (n_batch) */
    int *out_rows; /* (n_batch) batch index of each logits row */
    int n_out;
    float *logits; /* (logits_cap, n_vocab) */
    int logits_cap;

    struct hs_ctx_lora *lora; /* run-time adapters, or NULL */
    /* Per-sequence adapters (hs_ctx_seq_set_loras): a slot's own set, or
     * NULL for the context's set above. Allocated at the first set; then
     * each batch's rows find their set in row_lora (hs_ctx_lora_by_rows). */
    struct hs_ctx_lora **seq_lora;       /* (n_seq) */
    int n_seq_lora;                      /* slots with a set of their own */
    const struct hs_ctx_lora **row_lora; /* (n_batch) the set of each row of this batch's matmuls */
    int *lora_grp;                       /* (n_batch + 1) first rows of the groups of rows (lora_ctx.c) */
    float *lora_t;                       /* (n_batch, lora_t_r) A x of each row, every adapter */
    int lora_t_r;
    struct hs_lora_bt **bts;             /* the sets' B matrices transposed, shared (lora_ctx.c) */
    int n_bt, cap_bt;
    unsigned mm_flags;        /* hs_matmul_ex flags: HS_MM_BATCH_INVARIANT */
    bool kinds_differ;        /* hs_ctx_kinds_differ */
    int n_gen;                /* the batch's generated tokens come first: rows [0, n_gen) */
    bool embd_mode;           /* hidden states (left in xn) instead of logits */
    bool embd_out;            /* the last decode ran in embeddings mode */
};

/* Run-time LoRA (lora_ctx.c): one adapted projection of one adapter. */
enum hs_proj { HS_PROJ_Q, HS_PROJ_K, HS_PROJ_V, HS_PROJ_O, HS_PROJ_GATE, HS_PROJ_UP, HS_PROJ_DOWN, HS_PROJ_COUNT };
struct hs_lora_mat {
    int layer;
    enum hs_proj proj;
    struct hs_mat a, b; /* F32 views of the adapter's A (r, in) and B (out, r) */
    float scale;        /* user scale * alpha / r */
    struct hs_lora_bt *bt; /* run-time copies (B^T, maybe f16 A), shared with the context's other sets */
};
struct hs_ctx_lora {
    struct hs_lora_mat *mats; /* ordered by (layer, proj), the adapters' order within one */
    int n_mats;
    int max_r;
    /* mats[key_first[k] .. key_first[k + 1]) adapt key k = layer *
     * HS_PROJ_COUNT + proj; key_r[k] is the sum of their ranks (scale 0
     * left out), max_key_r the largest. */
    int *key_first; /* (n_layer * HS_PROJ_COUNT + 1) */
    int *key_r;     /* (n_layer * HS_PROJ_COUNT) */
    int max_key_r;
    float *t;  /* (n_batch, max_r) A x; the context's set only */
    float *u;  /* (n_batch, max out) B (A x); the context's set only */
};

/* y (n, ldy) += the adapters' deltas for projection proj of layer l applied to
 * x (n, ldx). No-op without adapters. */
int hs_ctx_lora_apply(hs_ctx *ctx, int layer, enum hs_proj proj, const float *x, size_t ldx, int n, float *y,
                      size_t ldy, hs_err *err);
/* The same with a set per row: row i takes ctx->row_lora[i] (NULL: none).
 * Each row's delta is computed alone, in an order of operations that does
 * not depend on the other rows, so it is batch-invariant. */
void hs_ctx_lora_apply_rows(hs_ctx *ctx, int layer, enum hs_proj proj, const float *x, size_t ldx, int n,
                            float *y, size_t ldy);
/* Whether this batch takes hs_ctx_lora_apply_rows: some slot has a set of its
 * own, or the context is batch-invariant and has a set. */
static inline bool hs_ctx_lora_by_rows(const hs_ctx *ctx) {
    return ctx->n_seq_lora > 0 || (ctx->lora && (ctx->mm_flags & HS_MM_BATCH_INVARIANT));
}
/* Every set of the context, and the per-row buffers (hs_ctx_free). */
void hs_ctx_loras_free(hs_ctx *ctx);

/* Runs the forward pass of a checked batch (n tokens, each with its sequence
 * and position) and fills the logits rows out_rows[0..n_out). Leaves
 * seq_len alone: the caller commits the new lengths on success. */
int hs_forward(hs_ctx *ctx, int n, const int32_t *tokens, const int32_t *pos, const int32_t *seq, hs_err *err);

/* Start of slot s, layer l in K or V (bytes; kv_elem per value). */
static inline size_t hs_ctx_kv_off(const hs_ctx *ctx, int s, int l) {
    return ((size_t)s * ctx->hp->n_layer + (size_t)l) * (size_t)ctx->n_ctx * (size_t)ctx->kv_dim * ctx->kv_elem;
}

#endif
