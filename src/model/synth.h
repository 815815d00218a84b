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
    const char *arch; /* "llama" (default) or "qwen2" */
    int n_vocab;      /* ignored when vocab_from is set */
    int n_embd, n_layer, n_head, n_head_kv, n_ff;
    int n_ctx_train;        /* default 4096 */
    float rope_freq_base;   /* default 10000 (llama), 1e6 (qwen2) */
    bool tied_output;       /* no output.weight */
    const char *ftype;      /* "f32", "f16", "bf16", "q8_0", ..., or a mix: "q4_k_m", "q5_k_m", "q3_k_m" */
    const char *vocab_from; /* a GGUF whose tokenizer.* keys are copied, or NULL */
    uint64_t seed;
    /* progress: called with done/total weight count; may be NULL */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void *user;
    /* Additions (hs_synth_params_default sets them): */
    float init_scale; /* std of the weight matrices; default 0.02 */
    bool vocab_only;  /* write metadata and tokenizer only, no tensors (a vocab GGUF) */
};

/* Defaults: the "tiny" shape, llama, tied output, f32, seed 42, scale 0.02. */
void hs_synth_params_default(struct hs_synth_params *p);

/* Sets the shape fields (n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab,
 * tied_output) for a named shape:
 *   "1b"   Llama-3.2-1B: 2048 embd, 16 layers, 32/8 heads, ff 8192, vocab 128256
 *   "360m" SmolLM2-360M: 960 embd, 32 layers, 15/5 heads, ff 2560, vocab 49152
 *   "tiny" for tests: 256 embd, 2 layers, 4/2 heads, ff 512, vocab 512
 * HS_EINVAL for another name. */
int hs_synth_shape(struct hs_synth_params *p, const char *shape, hs_err *err);

/* Bytes of tensor data (without metadata or padding) and number of weights the
 * file would hold, computed from the shape and the type mix without writing
 * anything. The vocabulary size is p->n_vocab (vocab_from is not read). */
int hs_synth_data_bytes(const struct hs_synth_params *p, uint64_t *bytes, uint64_t *n_weights, hs_err *err);

/* Writes the model to `path`. Quantization runs on `pool` (NULL: the calling
 * thread only); the result does not depend on the number of threads. A type
 * without a quantizer in the qtype table is HS_EUNSUPPORTED. On failure the
 * partial file is removed. */
int hs_synth_write(const char *path, const struct hs_synth_params *p, hs_pool *pool, hs_err *err);

/* (issue 5) A random LoRA adapter for the base model at base_path (any
 * size), in llama.cpp's adapter layout (see model/lora.h): rank r on the
 * seven projections of every block, A and B entries N(0, std^2), alpha = r
 * (so the adapter's factor is the scale it is used with), stored as F32 or
 * (f16) F16, as hestia lora convert writes them. For tests and benchmarks of
 * adapter serving. A failure leaves no partial output. */
int hs_synth_lora_write(const char *path, const char *base_path, int r, float std, uint64_t seed, bool f16,
                        hs_err *err);

#endif
