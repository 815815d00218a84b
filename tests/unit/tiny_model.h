/* Test support: tiny llama / qwen2 GGUF files written with the GGUF writer
 * (random weights, an SPM vocabulary of a few hundred tokens), so that the
 * model and context tests run without ../shared. The weights are also handed
 * back as floats (exactly the values in the file) for reference computations. */
#ifndef HS_TEST_TINY_MODEL_H
#define HS_TEST_TINY_MODEL_H

#include <stdbool.h>
#include <stdint.h>

struct tiny_params {
    const char *arch; /* "llama" (default) or "qwen2" */
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx_train;
    int type;          /* matrices: HS_TYPE_F32 (default 0) or HS_TYPE_F16 */
    bool tied;         /* no output.weight */
    bool biases;       /* attn_q/k/v.bias (qwen2 needs them) */
    bool rope_freqs;   /* a rope_freqs.weight tensor (Llama-3 style factors) */
    float rope_scale;  /* rope.scaling.factor with type linear; 0 = none */
    float freq_base;   /* 0 = no key (10000) */
    uint64_t seed;
    /* Faults for the loader's checks: the tensor named bad_tensor gets type
     * bad_type (when >= 0) and/or bad_extra_rows more rows. */
    const char *bad_tensor;
    int bad_type;
    int bad_extra_rows;
    const char *arch_key_value; /* general.architecture written instead of arch */
};

/* The default shape: 300 tokens, 64 wide, 2 layers, 4 heads, 2 KV heads. */
void tiny_params_default(struct tiny_params *p);

struct tiny_layer {
    float *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *ffn_norm, *w_gate, *w_up, *w_down;
};

/* Row-major float copies: a matrix (rows, cols) as GGUF stores it (ne0 = cols). */
struct tiny_weights {
    float *tok_embd, *output_norm, *output, *rope_freqs;
    struct tiny_layer *layers;
};

/* Writes the model to path; returns 0 or an HS_E* code. w may be NULL. */
int tiny_model_write(const char *path, const struct tiny_params *p, struct tiny_weights *w);
void tiny_weights_free(struct tiny_weights *w, int n_layer);

#endif
