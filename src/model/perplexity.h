/* Perplexity and KL divergence over a text, chunked as llama.cpp's
 * perplexity tool does, so that the numbers compare with its:
 *  - the whole text is tokenized once (BOS as the vocabulary says);
 *  - it is cut into chunks of n_ctx tokens, each decoded from an empty cache,
 *    whose first token is replaced by BOS when the vocabulary adds one;
 *  - only the second half of a chunk is scored: the logits at positions
 *    n_ctx/2 .. n_ctx-2 predict tokens n_ctx/2+1 .. n_ctx-1 (the first half
 *    only gives those positions context), n_ctx-1-n_ctx/2 tokens per chunk;
 *  - per token, the negative log-likelihood from a log-softmax in double.
 * Perplexity = exp(mean NLL); its standard error is ppl * the standard error
 * of the mean NLL (first-order propagation, as llama.cpp reports it).
 *
 * Memory stays small: logits are read batch by batch and never kept; kld keeps
 * one double per scored token (for the percentiles). */
#ifndef HS_MODEL_PERPLEXITY_H
#define HS_MODEL_PERPLEXITY_H

#include "base/err.h"
#include "model/context.h"
#include "model/model.h"

#include <stddef.h>

struct hs_ppl_params {
    int n_ctx;     /* tokens per chunk; 0 = 512 (llama.cpp's default), at most the model's train context */
    int n_batch;   /* tokens per hs_decode; 0 = n_ctx (at most 512) */
    int n_threads; /* 0 = number of CPUs */
    int n_chunks;  /* chunks to score; 0 = every whole chunk of the text */
    enum hs_kv_type kv_type; /* the context's KV cache type (default f16, as llama.cpp) */
};

/* A mean with its standard error. */
struct hs_ppl_stat {
    double mean;
    double err;
};

struct hs_ppl_result {
    int n_chunks;
    long n_tokens;          /* scored tokens */
    struct hs_ppl_stat nll; /* per-token NLL (nats) */
    double ppl;             /* exp(nll.mean) */
    double ppl_err;
};

struct hs_kld_result {
    int n_chunks;
    long n_tokens;
    struct hs_ppl_result base, quant; /* perplexity of each (n_chunks, n_tokens as above) */
    double ppl_ratio;                 /* quant / base = exp(mean(nll_quant - nll_base)) */
    double ppl_ratio_err;             /* from the paired per-token differences */
    struct hs_ppl_stat kld;           /* KL(base || quant) per token, nats */
    double kld_max, kld_median, kld_p90, kld_p99, kld_min;
    struct hs_ppl_stat top1; /* share of positions where both argmaxes agree (0..1) */
};

/* Called after each chunk with the running values over the chunks so far
 * (chunk counts from 1). For kld, r is the running hs_kld_result's base
 * perplexity and kld the running hs_kld_result (NULL for perplexity), whose
 * percentiles are 0 until the final result (they need every value sorted). */
typedef void (*hs_ppl_progress_fn)(void *user, int chunk, int n_chunks, const struct hs_ppl_result *r,
                                   const struct hs_kld_result *kld);

/* Tokens the text must have for n chunks of n_ctx (n * n_ctx). */
long hs_ppl_tokens_needed(int n_ctx, int n_chunks);

/* Perplexity of m over text (len bytes). HS_ERANGE with "the text has N
 * tokens; a chunk of n_ctx needs at least M" when not one chunk fits;
 * HS_EINVAL for bad params; errors of hs_ctx_create / hs_decode. p may be
 * NULL; progress may be NULL. */
int hs_perplexity(const hs_model *m, const char *text, size_t len, const struct hs_ppl_params *p,
                  hs_ppl_progress_fn progress, void *user, struct hs_ppl_result *out, hs_err *err);

/* KL(base || quant) and top-1 agreement of quant against base over the
 * same chunks (tokenized with base's vocabulary; the two must have the same
 * n_vocab, else HS_EINVAL). Two contexts, decoded batch by batch side by side. */
int hs_kld(const hs_model *base, const hs_model *quant, const char *text, size_t len,
           const struct hs_ppl_params *p, hs_ppl_progress_fn progress, void *user, struct hs_kld_result *out,
           hs_err *err);

/* Numerically stable log-softmax in double: out[i] = x[i] - logsumexp(x). */
void hs_log_softmax(double *out, const float *x, int n);

#endif
