/* Matrix products over the thread pool: the engine's hot path.
 *
 *   y (n_tok, n_rows) = x (n_tok, n_cols) @ W^T,  W (n_rows, n_cols) of any type
 *
 * W is stored row-major as in GGUF (ne0 = n_cols is the row length). The
 * activations are first quantized to W's vec_dot_type (once per call, split
 * over the threads), then each thread takes a share of W's rows and computes
 * them for every token, so each weight row is read from memory once per call
 * whatever the batch size. */
#ifndef HS_TENSOR_MATMUL_H
#define HS_TENSOR_MATMUL_H

#include "base/pool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A weight matrix: a view, not an owner (usually into the model's mmap). */
struct hs_mat {
    int type;          /* enum hs_ggml_type */
    int64_t n_cols;    /* ne0: row length */
    int64_t n_rows;    /* ne1 */
    size_t row_bytes;  /* bytes between rows */
    const void *data;
};

/* Scratch space for the quantized activations, reused across calls (grows as
 * needed). One per thread that calls hs_matmul. Zero-initialise. */
typedef struct hs_mm_scratch {
    void *buf;
    size_t cap;
} hs_mm_scratch;

void hs_mm_scratch_free(hs_mm_scratch *s);

/* y[t * ldy + r] = dot(W row r, x[t * ldx ...]) for t < n_tok, r < n_rows.
 * Returns HS_OK or HS_ENOMEM / HS_EUNSUPPORTED (type without kernels). */
int hs_matmul(hs_pool *pool, hs_mm_scratch *scratch, const struct hs_mat *w, const float *x, size_t ldx,
              int n_tok, float *y, size_t ldy);

/* (addition) hs_matmul with a choice of kernels.
 *
 * HS_MM_BATCH_INVARIANT: each token's row of y comes out bit for bit the
 * same whatever the other tokens of the call (how many, which, where this
 * one sits). The kernel then depends on the type only, never on n_tok: the
 * dot products, or tiles where the tile kernel is exact against them
 * (hs_qtype_kernels: gemm_exact). A server needs it, so that batching
 * requests changes nobody's answer.
 *
 * HS_MM_PROMPT, with HS_MM_BATCH_INVARIANT: the tokens are prompt tokens,
 * and the types AMX serves take the AMX tiles whatever n_tok (AMX's results
 * are per token too, but its activations are Q8_0, so its bits differ from
 * the dot products'). Prompts thus keep their fast kernels, and a token's
 * results depend only on its kind (prompt or generated). */
enum { HS_MM_BATCH_INVARIANT = 1, HS_MM_PROMPT = 2 };
int hs_matmul_ex(hs_pool *pool, hs_mm_scratch *scratch, const struct hs_mat *w, const float *x, size_t ldx,
                 int n_tok, float *y, size_t ldy, unsigned flags);
/* (addition) Whether HS_MM_PROMPT changes the kernel for this type (AMX
 * serves it on this CPU). */
bool hs_matmul_prompt_kernels(int type);

/* Copies row `row` of W into out (n_cols floats): embedding lookups. */
int hs_mat_get_row(const struct hs_mat *w, int64_t row, float *out);

#endif
