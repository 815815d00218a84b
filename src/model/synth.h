/* Synthetic models for tests and benchmarks: llama-shaped GGUF files of any
 * size with seeded random weights, written in any supported type or with a
 * llama.cpp-like type mix ("q4_k_m"), and a vocabulary copied from a vocab
 * GGUF or synthesized to the size asked for. Streams to disk: memory stays
 * small whatever the model's size. */
#ifndef HS_MODEL_SYNTH_H
#define HS_MODEL_SYNTH_H

#include "base/err.h"
#include "base/pool.h"

#include <stdbool.h>
#include <stdint.h>

struct hs_synth_params {
    const char *arch;      /* "llama" (default) or "qwen2" */
    int n_vocab;           /* ignored when vocab_from is set */
    int n_embd, n_layer, n_head, n_head_kv, n_ff;
    int n_ctx_train;       /* default 4096 */
    float rope_freq_base;  /* default 10000 (llama), 1e6 (qwen2) */
    bool tied_output;      /* no output.weight */
    const char *ftype;     /* "f32", "f16", "bf16", "q8_0", ..., or a mix: "q4_k_m", "q5_k_m", "q3_k_m" */
    const char *vocab_from;/* a GGUF whose tokenizer.* keys are copied, or NULL */
    uint64_t seed;
    /* progress: called with done/total weight count; may be NULL */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void *user;
};

void hs_synth_params_default(struct hs_synth_params *p);
int hs_synth_write(const char *path, const struct hs_synth_params *p, hs_pool *pool, hs_err *err);

#endif
