/* Hugging Face folder -> GGUF (LlamaForCausalLM, MistralForCausalLM,
 * Qwen2ForCausalLM), with the metadata keys and tensor names llama.cpp's
 * converter writes, the Q/K row permutation for llama (the inverse of HF's
 * rotary reordering; not for qwen2), and streaming: one tensor row at a time
 * goes from the safetensors mapping to the GGUF writer, so memory stays far
 * below the model's size. The output is written to "<out>.tmp-<pid>" and
 * renamed at the end; on any error no output file is left behind. */
#ifndef HS_MODEL_CONVERT_H
#define HS_MODEL_CONVERT_H

#include "base/err.h"

#include <stddef.h>
#include <stdint.h>

/* Called after each tensor: done of total tensors, the GGUF name just written. */
typedef void (*hs_convert_progress_fn)(void *ud, int64_t done, int64_t total, const char *name);

struct hs_convert_opts {
    const char *hf_dir;   /* config.json + model.safetensors[.index.json] */
    const char *out_path; /* the GGUF to write */
    /* HS_TYPE_F32, HS_TYPE_F16, HS_TYPE_BF16 or HS_TYPE_Q8_0: the type of
     * 2-D weights. 1-D tensors stay F32; q8_0 falls back to F16 for rows that
     * are not a whole number of blocks (as llama.cpp's converter does). */
    uint32_t outtype;
    /* A GGUF whose tokenizer.* keys are copied. NULL: HF_DIR/tokenizer.model
     * (SentencePiece) when present, else HF_DIR/tokenizer.json (byte-level
     * BPE; tokenizer.ggml.pre "qwen2" for Qwen2, "llama-bpe" for Llama),
     * else no tokenizer keys (a warning is logged). */
    const char *vocab_from;
    hs_convert_progress_fn progress;
    void *progress_ud;
};

int hs_convert_hf(const struct hs_convert_opts *o, hs_err *err);

/* llama.cpp's general.file_type for an outtype; -1 for an unsupported type. */
int hs_convert_file_type(uint32_t outtype);

/* Maps an HF tensor name to its GGUF name into out (cap bytes). Returns
 * HS_OK, HS_ENOTFOUND for a tensor the converter skips on purpose
 * (rotary_emb.inv_freq), or HS_EUNSUPPORTED for a name it cannot map.
 * *layer is the block number or -1. */
int hs_convert_map_name(const char *hf, char *out, size_t cap, int *layer);

#endif
