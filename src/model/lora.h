/* LoRA adapters: PEFT folder -> GGUF in llama.cpp's adapter layout, loading
 * an adapter GGUF against its base model, and merging adapters into a base.
 *
 * The GGUF layout (what llama.cpp's convert_lora_to_gguf.py writes):
 * general.type = "adapter", adapter.type = "lora", adapter.lora.alpha (f32),
 * general.architecture as the base; for each adapted base tensor W (out, in),
 * "<W's name>.lora_a" with ne = [in, r] and "<W's name>.lora_b" with
 * ne = [r, out]. The adapted weight is
 *
 *   W' = W + scale * (alpha / r) * B @ A        (alpha 0: scale alone)
 *
 * For llama the rows of B of attn_q / attn_k are permuted like the base's
 * rows (the converter's Q/K permutation), so that B @ A lines up with W. */
#ifndef HS_MODEL_LORA_H
#define HS_MODEL_LORA_H

#include "base/err.h"
#include "gguf/gguf.h"

#include <stddef.h>
#include <stdint.h>

struct hs_lora_convert_opts {
    const char *peft_dir;  /* adapter_config.json + adapter_model.safetensors */
    const char *base_path; /* the base model's GGUF: names, shapes, head counts */
    const char *out_path;  /* written to "<out>.tmp-<pid>", renamed at the end */
    uint32_t outtype;      /* HS_TYPE_F32 or HS_TYPE_F16 (0 is F32) */
};

/* Converts and validates against the base: every adapted tensor exists in the
 * base and its A / B shapes agree with it ("adapter for another base model:
 * ..."). Errors name the file and the field or tensor; no output is left
 * behind on failure. */
int hs_lora_convert(const struct hs_lora_convert_opts *o, hs_err *err);

/* One adapted tensor of a loaded adapter: A (r, n_in) and B (n_out, r) as
 * row-major f32 (owned by the hs_lora). */
struct hs_lora_pair {
    char name[96]; /* the base tensor's name */
    int64_t r, n_in, n_out;
    float *a, *b;
};

typedef struct hs_lora hs_lora;

/* Loads an adapter GGUF and checks it against base (architecture, every
 * target tensor present, shapes). On failure *out is NULL. */
int hs_lora_load(const char *path, const hs_gguf *base, hs_lora **out, hs_err *err);
void hs_lora_free(hs_lora *l);

float hs_lora_alpha(const hs_lora *l);
const char *hs_lora_path(const hs_lora *l);
int64_t hs_lora_n_pairs(const hs_lora *l);
const struct hs_lora_pair *hs_lora_pair_at(const hs_lora *l, int64_t i);
const struct hs_lora_pair *hs_lora_find(const hs_lora *l, const char *name); /* NULL if not adapted */
/* The factor B @ A is multiplied by: scale * alpha / r (scale when alpha is 0). */
float hs_lora_pair_scale(const hs_lora *l, const struct hs_lora_pair *p, float scale);

/* "FILE" or "FILE:SCALE" (scale 1 when absent): path into path_out (cap bytes). */
int hs_lora_parse_spec(const char *arg, char *path_out, size_t cap, float *scale, hs_err *err);

struct hs_lora_spec {
    const char *path;
    float scale;
};

/* base + sum of adapters -> out: every adapted tensor dequantized to f32,
 * the adapters added, quantized back to its own type (the reference
 * quantizer); everything else copied. Streams one row at a time; temp file +
 * rename. */
int hs_lora_merge(const char *base_path, const struct hs_lora_spec *specs, int n_specs, const char *out_path,
                  hs_err *err);

#endif
