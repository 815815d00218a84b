/* Perplexity and KL divergence, chunked as llama.cpp's perplexity tool (see
 * perplexity.h for the method). One loop serves both: it drives one context
 * (perplexity) or two side by side (kld), batch by batch, and scores each
 * position as soon as its logits exist, so no logits are ever kept. */
#include "model/perplexity.h"

#include "base/log.h"
#include "base/mem.h"
#include "model/tokenizer.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_N_CTX 512
#define MAX_N_BATCH 512

void hs_log_softmax(double *out, const float *x, int n)
{
    double mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    /* Subtracting the max keeps every exp() in (0, 1]: no overflow, and the
     * largest term is exactly 1, so the sum never underflows to 0. */
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)x[i] - mx);
    const double lse = mx + log(sum);
    for (int i = 0; i < n; i++)
        out[i] = (double)x[i] - lse;
}

long hs_ppl_tokens_needed(int n_ctx, int n_chunks)
{
    return (long)n_ctx * (n_chunks > 0 ? n_chunks : 1);
}

/* ---- running sums ---- */

struct acc {
    double sum, sum2;
    long n;
};

static void acc_add(struct acc *a, double x)
{
    a->sum += x;
    a->sum2 += x * x;
    a->n++;
}

/* Mean and the standard error of the mean (sample variance / n). */
static struct hs_ppl_stat acc_stat(const struct acc *a)
{
    struct hs_ppl_stat s = {0, 0};
    if (a->n == 0)
        return s;
    s.mean = a->sum / (double)a->n;
    if (a->n > 1) {
        double var = (a->sum2 / (double)a->n - s.mean * s.mean) * (double)a->n / (double)(a->n - 1);
        s.err = var > 0 ? sqrt(var / (double)a->n) : 0;
    }
    return s;
}

static void ppl_fill(struct hs_ppl_result *r, const struct acc *nll, int n_chunks)
{
    r->n_chunks = n_chunks;
    r->n_tokens = nll->n;
    r->nll = acc_stat(nll);
    r->ppl = exp(r->nll.mean);
    r->ppl_err = r->ppl * r->nll.err;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Linear interpolation between the order statistics around p*(n-1). */
static double percentile(const double *sorted, long n, double p)
{
    if (n == 0)
        return 0;
    double at = p * (double)(n - 1);
    long lo = (long)at;
    if (lo >= n - 1)
        return sorted[n - 1];
    double f = at - (double)lo;
    return sorted[lo] * (1 - f) + sorted[lo + 1] * f;
}

/* ---- the chunk loop ---- */

struct run {
    const hs_model *m[2];
    hs_ctx *ctx[2];
    int n_models;
    int n_vocab;
    int n_ctx, n_batch, n_chunks;
    int32_t *tokens;
    size_t n_tokens;
    bool add_bos;
    int32_t bos;
    /* batch buffers */
    int32_t *btok, *bpos, *bseq;
    int8_t *bwant;
    double *lp[2]; /* log-softmax rows */
    /* results */
    struct acc nll[2], diff, kld, top1;
    double *klds; /* one per scored token (kld only) */
    double kld_min, kld_max;
};

static void run_free(struct run *r)
{
    for (int k = 0; k < 2; k++) {
        hs_ctx_free(r->ctx[k]);
        hs_free(r->lp[k]);
    }
    hs_free(r->tokens);
    hs_free(r->btok);
    hs_free(r->bpos);
    hs_free(r->bseq);
    hs_free(r->bwant);
    hs_free(r->klds);
}

static int run_init(struct run *r, const hs_model *base, const hs_model *quant, const char *text, size_t len,
                    const struct hs_ppl_params *pp, hs_err *err)
{
    struct hs_ppl_params p = pp ? *pp : (struct hs_ppl_params){0};
    if (p.n_ctx < 0 || p.n_batch < 0 || p.n_threads < 0 || p.n_chunks < 0)
        return hs_err_set(err, HS_EINVAL, "negative perplexity parameter");
    if (p.n_ctx == 0)
        p.n_ctx = DEFAULT_N_CTX;
    /* Half the chunk is context and at least one position must be scored. */
    if (p.n_ctx < 4)
        return hs_err_set(err, HS_EINVAL, "a context of %d tokens is too small: perplexity needs at least 4",
                          p.n_ctx);
    if (p.n_batch == 0)
        p.n_batch = p.n_ctx < MAX_N_BATCH ? p.n_ctx : MAX_N_BATCH;
    if (p.n_batch > p.n_ctx)
        p.n_batch = p.n_ctx;
    r->m[0] = base;
    r->m[1] = quant;
    r->n_models = quant ? 2 : 1;
    r->n_vocab = hs_model_hparams(base)->n_vocab;
    if (quant && hs_model_hparams(quant)->n_vocab != r->n_vocab)
        return hs_err_set(err, HS_EINVAL, "the models have different vocabularies (%d and %d tokens)",
                          r->n_vocab, hs_model_hparams(quant)->n_vocab);
    r->n_ctx = p.n_ctx;
    r->n_batch = p.n_batch;

    const hs_tok *tok = hs_model_tok(base);
    r->add_bos = hs_tok_add_bos(tok);
    r->bos = hs_tok_bos(tok);
    int rc = hs_tok_encode(tok, text, len, true, false, &r->tokens, &r->n_tokens, err);
    if (rc)
        return rc;
    long need = hs_ppl_tokens_needed(p.n_ctx, 1);
    if ((long)r->n_tokens < need)
        return hs_err_set(
            err, HS_ERANGE,
            "the text has %zu tokens; one chunk of a %d-token context needs at least %ld tokens", r->n_tokens,
            p.n_ctx, need);
    long avail = (long)r->n_tokens / p.n_ctx;
    r->n_chunks = p.n_chunks > 0 && p.n_chunks < avail ? p.n_chunks : (int)avail;

    const size_t B = (size_t)r->n_batch;
    r->btok = hs_malloc(B * sizeof *r->btok);
    r->bpos = hs_malloc(B * sizeof *r->bpos);
    r->bseq = hs_calloc(B, sizeof *r->bseq);
    r->bwant = hs_malloc(B * sizeof *r->bwant);
    if (!r->btok || !r->bpos || !r->bseq || !r->bwant)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    if (quant) {
        const long per_chunk = r->n_ctx - 1 - r->n_ctx / 2;
        r->klds = hs_malloc((size_t)(per_chunk * r->n_chunks) * sizeof *r->klds);
        if (!r->klds)
            return hs_err_set(err, HS_ENOMEM, "out of memory for %ld KLD values", per_chunk * r->n_chunks);
    }
    struct hs_ctx_params cp = {
        .n_ctx = r->n_ctx, .n_seq = 1, .n_batch = r->n_batch, .n_threads = p.n_threads, .kv_type = p.kv_type};
    for (int k = 0; k < r->n_models; k++) {
        r->lp[k] = hs_malloc((size_t)r->n_vocab * sizeof *r->lp[k]);
        if (!r->lp[k])
            return hs_err_set(err, HS_ENOMEM, "out of memory");
        rc = hs_ctx_create(r->m[k], &cp, &r->ctx[k], err);
        if (rc)
            return rc;
    }
    r->kld_min = INFINITY;
    r->kld_max = -INFINITY;
    hs_log_info("ppl.start", "tokens=%zu n_ctx=%d n_batch=%d chunks=%d models=%d", r->n_tokens, r->n_ctx,
                r->n_batch, r->n_chunks, r->n_models);
    return HS_OK;
}

static int argmax_d(const double *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* Scores batch position i (chunk position pos) whose next token is target. */
static void score(struct run *r, int i, int32_t target)
{
    for (int k = 0; k < r->n_models; k++)
        hs_log_softmax(r->lp[k], hs_ctx_logits(r->ctx[k], i), r->n_vocab);
    const double nll0 = -r->lp[0][target];
    acc_add(&r->nll[0], nll0);
    if (r->n_models == 1)
        return;
    const double nll1 = -r->lp[1][target];
    acc_add(&r->nll[1], nll1);
    acc_add(&r->diff, nll1 - nll0);
    const double *p = r->lp[0], *q = r->lp[1];
    double kl = 0;
    for (int v = 0; v < r->n_vocab; v++)
        kl += exp(p[v]) * (p[v] - q[v]);
    /* Rounding can leave a hair below zero for near-identical rows; KL >= 0. */
    if (kl < 0)
        kl = 0;
    r->klds[r->kld.n] = kl;
    acc_add(&r->kld, kl);
    if (kl < r->kld_min)
        r->kld_min = kl;
    if (kl > r->kld_max)
        r->kld_max = kl;
    acc_add(&r->top1, argmax_d(p, r->n_vocab) == argmax_d(q, r->n_vocab) ? 1.0 : 0.0);
}

static int run_chunk(struct run *r, int c, hs_err *err)
{
    const size_t start = (size_t)c * (size_t)r->n_ctx;
    const int first = r->n_ctx / 2;
    for (int k = 0; k < r->n_models; k++)
        hs_ctx_seq_clear(r->ctx[k], 0);
    for (int b0 = 0; b0 < r->n_ctx; b0 += r->n_batch) {
        const int nb = r->n_ctx - b0 < r->n_batch ? r->n_ctx - b0 : r->n_batch;
        int n_want = 0;
        for (int i = 0; i < nb; i++) {
            const int pos = b0 + i;
            r->btok[i] = r->tokens[start + (size_t)pos];
            r->bpos[i] = pos;
            r->bwant[i] = pos >= first && pos < r->n_ctx - 1;
            n_want += r->bwant[i];
        }
        /* Every chunk starts as a fresh document would. */
        if (b0 == 0 && r->add_bos && r->bos >= 0)
            r->btok[0] = r->bos;
        struct hs_batch batch = {
            .n = nb, .tokens = r->btok, .pos = r->bpos, .seq = r->bseq, .logits = r->bwant};
        for (int k = 0; k < r->n_models; k++) {
            int rc = hs_decode(r->ctx[k], &batch, err);
            if (rc)
                return hs_err_prefix(err, "chunk %d: ", c + 1);
        }
        if (!n_want)
            continue;
        for (int i = 0; i < nb; i++)
            if (r->bwant[i])
                score(r, i, r->tokens[start + (size_t)(b0 + i) + 1]);
    }
    return HS_OK;
}

static void kld_fill(struct hs_kld_result *o, const struct run *r, int n_chunks, bool final)
{
    memset(o, 0, sizeof *o);
    o->n_chunks = n_chunks;
    o->n_tokens = r->kld.n;
    ppl_fill(&o->base, &r->nll[0], n_chunks);
    ppl_fill(&o->quant, &r->nll[1], n_chunks);
    struct hs_ppl_stat d = acc_stat(&r->diff);
    o->ppl_ratio = exp(d.mean);
    o->ppl_ratio_err = o->ppl_ratio * d.err;
    o->kld = acc_stat(&r->kld);
    o->kld_min = r->kld.n ? r->kld_min : 0;
    o->kld_max = r->kld.n ? r->kld_max : 0;
    /* A share's standard error is the binomial one, sqrt(p(1-p)/(n-1)). */
    o->top1.mean = r->top1.n ? r->top1.sum / (double)r->top1.n : 0;
    o->top1.err = r->top1.n > 1 ? sqrt(o->top1.mean * (1 - o->top1.mean) / (double)(r->top1.n - 1)) : 0;
    if (final && r->kld.n) {
        /* The values are not needed in order after this: sort in place. */
        qsort(r->klds, (size_t)r->kld.n, sizeof *r->klds, cmp_double);
        o->kld_median = percentile(r->klds, r->kld.n, 0.5);
        o->kld_p90 = percentile(r->klds, r->kld.n, 0.9);
        o->kld_p99 = percentile(r->klds, r->kld.n, 0.99);
    }
}

static int run_all(const hs_model *base, const hs_model *quant, const char *text, size_t len,
                   const struct hs_ppl_params *p, hs_ppl_progress_fn progress, void *user,
                   struct hs_ppl_result *ppl_out, struct hs_kld_result *kld_out, hs_err *err)
{
    struct run r;
    memset(&r, 0, sizeof r);
    int rc = run_init(&r, base, quant, text, len, p, err);
    for (int c = 0; rc == HS_OK && c < r.n_chunks; c++) {
        rc = run_chunk(&r, c, err);
        if (rc || !progress)
            continue;
        struct hs_ppl_result pr;
        ppl_fill(&pr, &r.nll[0], c + 1);
        if (quant) {
            struct hs_kld_result kr;
            kld_fill(&kr, &r, c + 1, false);
            progress(user, c + 1, r.n_chunks, &pr, &kr);
        } else {
            progress(user, c + 1, r.n_chunks, &pr, NULL);
        }
    }
    if (rc == HS_OK) {
        if (ppl_out)
            ppl_fill(ppl_out, &r.nll[0], r.n_chunks);
        if (kld_out)
            kld_fill(kld_out, &r, r.n_chunks, true);
    }
    run_free(&r);
    return rc;
}

int hs_perplexity(const hs_model *m, const char *text, size_t len, const struct hs_ppl_params *p,
                  hs_ppl_progress_fn progress, void *user, struct hs_ppl_result *out, hs_err *err)
{
    memset(out, 0, sizeof *out);
    return run_all(m, NULL, text, len, p, progress, user, out, NULL, err);
}

int hs_kld(const hs_model *base, const hs_model *quant, const char *text, size_t len,
           const struct hs_ppl_params *p, hs_ppl_progress_fn progress, void *user, struct hs_kld_result *out,
           hs_err *err)
{
    memset(out, 0, sizeof *out);
    return run_all(base, quant, text, len, p, progress, user, NULL, out, err);
}
