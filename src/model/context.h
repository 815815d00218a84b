/* The seam between engine and server: a context holds the KV cache for S
 * sequence slots; one hs_decode runs one forward pass over a batch that may
 * mix prompt chunks of new sequences and next tokens of running ones.
 *
 * One thread at a time drives a context (the scheduler); the context's thread
 * pool parallelises each matmul inside. Many contexts may share one model. */
#ifndef HS_MODEL_CONTEXT_H
#define HS_MODEL_CONTEXT_H

#include "base/err.h"
#include "base/pool.h"
#include "model/model.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct hs_ctx hs_ctx;

/* KV cache element type. f16 halves the cache (and the attention's memory
 * traffic) at ~5e-4 relative error per value; f32 gives results identical
 * to a float reference (tests, perplexity comparisons). */
enum hs_kv_type { HS_KV_F16 = 0, HS_KV_F32 = 1 };

struct hs_ctx_params {
    int n_ctx;     /* positions per sequence (KV cells per slot); 0 = min(train ctx, 4096) */
    int n_seq;     /* sequence slots; default 1 */
    int n_batch;   /* most tokens one hs_decode takes; default 512 */
    int n_threads; /* thread pool size; 0 = number of CPUs */
    enum hs_kv_type kv_type; /* default (0) f16 */
    /* (addition) Every token's results (its cache entries, logits, hidden
     * state) are bit for bit the same whatever else is in its batch, so that
     * batching requests changes nobody's answer. The kernel of a matrix then
     * depends on the token's kind (hs_batch.n_prompt), never on the batch
     * size: generated tokens take the dot products, or tile kernels exact
     * against them (the K-quants with AVX-512); prompt tokens take AMX where
     * it serves the type, even a single one. Costs some speed: other types
     * batch generated tokens through dot products. The scheduler sets it;
     * default off. */
    bool batch_invariant;
};

/* One forward batch. Token i has id tokens[i], position pos[i] in sequence
 * seq[i] (0 <= seq < n_seq). Positions of a sequence must follow on from what
 * its cache holds (pos == its current length, then +1 per token). logits[i]
 * non-zero asks for token i's logits (NULL: only the last token's).
 * seq NULL means every token is in sequence 0; pos NULL means each token takes
 * the next position of its sequence. */
struct hs_batch {
    int n;
    const int32_t *tokens;
    const int32_t *pos;
    const int32_t *seq;
    const int8_t *logits;
    /* (addition) Batch-invariant contexts: the last n_prompt tokens are
     * prompt tokens and take the prompt kernels (AMX tiles where the CPU has
     * them), the others the generation kernels; so each token's results
     * depend on its own kind only, never on the rest of the batch. 0: every
     * token takes the generation kernels. Other contexts ignore it. */
    int n_prompt;
};

int hs_ctx_create(const hs_model *m, const struct hs_ctx_params *params, hs_ctx **out, hs_err *err);
void hs_ctx_free(hs_ctx *ctx);

int hs_ctx_n_ctx(const hs_ctx *ctx);
int hs_ctx_n_seq(const hs_ctx *ctx);
hs_pool *hs_ctx_pool(hs_ctx *ctx);
const hs_model *hs_ctx_model(const hs_ctx *ctx);
/* KV cache bytes (all slots). */
size_t hs_ctx_kv_bytes(const hs_ctx *ctx);

/* Runs the forward pass. HS_ERANGE (with a message) when a position would pass
 * n_ctx, HS_EINVAL for a bad token id, sequence or position. On error the
 * cache is unchanged for every sequence in the batch. */
int hs_decode(hs_ctx *ctx, const struct hs_batch *batch, hs_err *err);
/* Rows of logits the last hs_decode produced (0 after an error). */
int hs_ctx_n_logits(const hs_ctx *ctx);

/* n_vocab logits of batch token i (one that asked for logits) of the last
 * hs_decode; NULL if it did not ask. Valid until the next hs_decode. */
const float *hs_ctx_logits(hs_ctx *ctx, int i);

/* (addition) Whether a token's results in this batch-invariant context
 * depend on its kind: prompt and generated tokens take different kernels
 * for some matrix of the model (AMX serves it). When true, a cache entry
 * written for a generated token differs in its last bits from the one the
 * same token gets as part of a prompt. False for other contexts. */
bool hs_ctx_kinds_differ(const hs_ctx *ctx);

/* (addition) Embeddings mode: while on, hs_decode computes, for the tokens
 * that ask for logits, the final hidden state (after the output norm)
 * instead of logits, and hs_ctx_logits returns NULL. The cache is filled as
 * usual. Off by default; it may be switched between decodes. */
void hs_ctx_set_embeddings(hs_ctx *ctx, bool on);
/* n_embd floats: the final hidden state of batch token i of the last
 * hs_decode in embeddings mode; NULL if it did not ask for it or the mode was
 * off. Valid until the next hs_decode. */
const float *hs_ctx_embeddings(hs_ctx *ctx, int i);

/* LoRA adapters applied at run time, unmerged: each adapted projection
 * computes y = W x + sum_i scales[i] * (alpha_i / r) * B_i (A_i x). Replaces
 * the context's set (n 0 clears it): the set of every sequence that has none
 * of its own (hs_ctx_seq_set_loras). The adapters are borrowed: they must
 * outlive the context or the next call. HS_EUNSUPPORTED for an adapted
 * tensor other than the seven projections of a block, HS_EINVAL for an
 * adapter loaded against another model. (A batch-invariant context applies
 * it row by row, as it does the sequences' own sets, so that the two agree
 * bit for bit; an ordinary one through matrix products, until some slot
 * has a set of its own.) */
struct hs_lora;
int hs_ctx_set_loras(hs_ctx *ctx, const struct hs_lora *const *loras, const float *scales, int n, hs_err *err);

/* (addition) The adapter set of sequence slot seq alone, in place of the
 * context's set (n 0 clears it: the slot goes back to the context's set).
 * One batch may then mix sequences of different sets and of none: the base
 * product runs once for all rows, then each row gets its own set's low-rank
 * update, computed for that row alone, so in a batch-invariant context a
 * row's results are bit for bit those it gets alone, and those
 * hs_ctx_set_loras gives it with the same adapters. The set belongs to the
 * slot, not to its cache: the sequence operations leave it alone, and
 * entries cached before a change keep the old set's values. The context
 * keeps a transposed copy of each adapted B (r x out floats) while some set
 * uses it, shared by all the slots that do. Borrowed and checked as in
 * hs_ctx_set_loras; HS_EINVAL for a bad slot. On error the slot keeps its
 * set. Between decodes, like every context call. */
int hs_ctx_seq_set_loras(hs_ctx *ctx, int seq, const struct hs_lora *const *loras, const float *scales, int n,
                         hs_err *err);

/* Sequence operations (the prefix cache is built on these). */
int hs_ctx_seq_len(const hs_ctx *ctx, int seq);
void hs_ctx_seq_clear(hs_ctx *ctx, int seq);
/* Drops positions >= n_keep. */
void hs_ctx_seq_truncate(hs_ctx *ctx, int seq, int n_keep);
/* dst's cache becomes the first n positions of src's (n <= src's length;
 * src == dst truncates). HS_EINVAL for a bad slot or length. */
int hs_ctx_seq_copy(hs_ctx *ctx, int src, int dst, int n);

#endif
