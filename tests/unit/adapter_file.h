/* Test support: random LoRA adapter GGUFs (llama.cpp's adapter layout) for
 * any loaded base model, so that the adapter and scheduler tests need no
 * adapter files of their own. */
#ifndef HS_TEST_ADAPTER_FILE_H
#define HS_TEST_ADAPTER_FILE_H

#include "model/model.h"

#include <stdbool.h>
#include <stdint.h>

/* Writes a rank-r adapter of m to the temporary directory under name:
 * A and B on the projections of proj_mask (bit i: attn_q, attn_k, attn_v,
 * attn_output, ffn_gate, ffn_up, ffn_down) of every layer, entries
 * N(0, sd^2) from seed, alpha = r (so the factor is the request's scale);
 * tensors F16 when half (the values rounded to half floats), else F32.
 * Returns its path (free with free), or NULL when writing failed. */
char *adapter_file_write(const hs_model *m, const char *name, uint64_t seed, int r, unsigned proj_mask,
                         float sd, bool half);

#endif
