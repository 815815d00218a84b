/* Embeddings: the caller's side (queue a request, wait) and the scheduler's
 * (run it in the spare slot between two steps).
 *
 * An embedding is the mean over the input's tokens of the final hidden
 * states (after the output norm; the context's embeddings mode skips the
 * output matrix), L2-normalised, as llama.cpp's mean pooling gives for a
 * decoder model. The spare slot is cleared before and after, so running
 * sequences and the prefix cache never see it. */
#include "engine/sched_impl.h"

#include <math.h>
#include <string.h>

int hs_sched_embed(hs_sched *s, const int32_t *tokens, int n, float *out, hs_err *err)
{
    if (!tokens || n < 1 || !out)
        return hs_err_set(err, HS_EINVAL, "input: an embedding needs at least one token");
    if (n > s->n_ctx)
        return hs_err_set(err, HS_ERANGE, "input: %d tokens do not fit the context (%d)", n, s->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= s->n_vocab)
            return hs_err_set(err, HS_EINVAL, "input[%d]: token id %d is outside the vocabulary (%d)", i,
                              tokens[i], s->n_vocab);
    struct hs_embed_req r = {.tokens = tokens, .n = n, .out = out};
    pthread_mutex_lock(&s->mu);
    if (s->stopping || s->draining) {
        pthread_mutex_unlock(&s->mu);
        return hs_err_set(err, HS_ECANCELED, "the scheduler is shutting down");
    }
    if (s->emb_tail)
        s->emb_tail->next = &r;
    else
        s->emb_head = &r;
    s->emb_tail = &r;
    pthread_cond_signal(&s->cv);
    while (!r.done)
        pthread_cond_wait(&s->done_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    if (r.rc && err)
        *err = r.err;
    return r.rc;
}

/* Runs on the scheduler thread; the caller waits for r->done (set by the
 * scheduler once this returns). */
void hs_sched_run_embed(hs_sched *s, struct hs_embed_req *r)
{
    const int E = s->n_embd, seq = s->embd_seq;
    memset(s->emb_sum, 0, (size_t)E * sizeof *s->emb_sum);
    hs_ctx_seq_clear(s->ctx, seq);
    hs_ctx_set_embeddings(s->ctx, true);
    r->rc = HS_OK;
    for (int off = 0; off < r->n && r->rc == HS_OK; off += s->p.n_batch) {
        const int k = r->n - off < s->p.n_batch ? r->n - off : s->p.n_batch;
        for (int i = 0; i < k; i++) {
            s->b_tok[i] = r->tokens[off + i];
            s->b_pos[i] = off + i;
            s->b_seq[i] = seq;
            s->b_logits[i] = 1;
        }
        const struct hs_batch b = {.n = k,
                                   .tokens = s->b_tok,
                                   .pos = s->b_pos,
                                   .seq = s->b_seq,
                                   .logits = s->b_logits,
                                   .n_prompt = k};
        r->rc = hs_decode(s->ctx, &b, &r->err);
        pthread_mutex_lock(&s->mu);
        s->stats.steps++;
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < k && r->rc == HS_OK; i++) {
            const float *h = hs_ctx_embeddings(s->ctx, i);
            for (int d = 0; d < E; d++)
                s->emb_sum[d] += h[d];
        }
    }
    hs_ctx_set_embeddings(s->ctx, false);
    hs_ctx_seq_clear(s->ctx, seq);
    if (r->rc)
        return;
    double norm = 0.0;
    for (int d = 0; d < E; d++) {
        s->emb_sum[d] /= r->n;
        norm += s->emb_sum[d] * s->emb_sum[d];
    }
    norm = sqrt(norm);
    const double inv = norm > 0.0 ? 1.0 / norm : 0.0; /* an all-zero mean stays zero */
    for (int d = 0; d < E; d++)
        r->out[d] = (float)(s->emb_sum[d] * inv);
}
