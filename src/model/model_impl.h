/* Internal to model/: the layout of hs_model (weight views into the GGUF
 * mapping) that the forward pass and the context read. Only files in model/ include
 * this; everyone else goes through model.h. */
#ifndef HS_MODEL_MODEL_IMPL_H
#define HS_MODEL_MODEL_IMPL_H

#include "model/model.h"

/* One transformer block. Matrices are (n_rows, n_cols) = (out, in) as stored
 * in GGUF (ne0 = n_cols); vectors are F32 and point into the mapping. */
struct hs_layer {
    const float *attn_norm;      /* (n_embd) */
    struct hs_mat wq;            /* (n_head * head_dim, n_embd) */
    struct hs_mat wk;            /* (n_head_kv * head_dim, n_embd) */
    struct hs_mat wv;            /* (n_head_kv * head_dim, n_embd) */
    struct hs_mat wo;            /* (n_embd, n_head * head_dim) */
    const float *bq, *bk, *bv;   /* QKV biases (qwen2) or NULL */
    const float *ffn_norm;       /* (n_embd) */
    struct hs_mat w_gate;        /* (n_ff, n_embd) */
    struct hs_mat w_up;          /* (n_ff, n_embd) */
    struct hs_mat w_down;        /* (n_embd, n_ff) */
};

struct hs_model {
    struct hs_hparams hp;
    hs_gguf *gguf; /* owns the mapping every view points into */
    hs_tok *tok;
    char *chat_template;
    char type_name[64];
    size_t weight_bytes;

    struct hs_mat tok_embd;      /* (n_vocab, n_embd) */
    const float *output_norm;    /* (n_embd) */
    struct hs_mat output;        /* (n_vocab, n_embd); == tok_embd when tied */
    const float *rope_freqs;     /* (n_rot / 2) Llama-3 frequency factors, or NULL */
    struct hs_layer *layers;     /* n_layer */
};

#endif
