/* What the scheduler does with a job's row of logits: log-probabilities when
 * asked, the job's own sampler, the token's text through its stop matcher,
 * the TOKEN event, and the checks that end the answer (end of generation,
 * a stop string, max_tokens, a full context). And the end itself. */
#include "engine/sched_impl.h"

#include "base/mem.h"
#include "model/ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ln of the softmax of the raw logits (before penalties and temperature) at
 * `chosen`, and the k most likely tokens (ties: lower id first), best first.
 * Every generated token takes this (the record's confidence), so the
 * normaliser is the vector kernel's (hs_log_sum_exp: summed in double). */
static void logprobs(const float *l, int n, int32_t chosen, int k, struct hs_job_event *ev)
{
    const double lse = hs_log_sum_exp(l, n);
    ev->chosen.id = chosen;
    ev->chosen.logprob = (float)((double)l[chosen] - lse);
    /* Insertion into a sorted array of at most k: most logits lose against
     * its last entry in one comparison. */
    int m = 0;
    for (int i = 0; i < n && k > 0; i++) {
        if (m == k && l[i] <= l[ev->top[m - 1].id])
            continue;
        int at = m < k ? m++ : k - 1;
        while (at > 0 && l[ev->top[at - 1].id] < l[i]) {
            ev->top[at] = ev->top[at - 1];
            at--;
        }
        ev->top[at].id = i;
    }
    for (int t = 0; t < m; t++)
        ev->top[t].logprob = (float)((double)l[ev->top[t].id] - lse);
    ev->n_top = m;
}

static char *dup_text(const char *p, size_t len)
{
    return hs_strndup(len ? p : "", len);
}

void hs_sched_end_job(hs_sched *s, hs_job *j, const char *finish_reason, int err_code, const char *msg)
{
    const double now = hs_sched_now_ms();
    struct hs_job_event ev = {.kind = finish_reason ? HS_EV_DONE : HS_EV_ERROR};
    if (finish_reason) {
        const char *tail;
        size_t tail_len;
        hs_stop_flush(j->stop, &tail, &tail_len); /* nothing after a stop string */
        ev.text = dup_text(tail, tail_len);
        ev.len = ev.text ? tail_len : 0;
        ev.finish_reason = finish_reason;
    } else {
        ev.text = dup_text("", 0); /* consumers may print every event's text */
        ev.err_code = err_code;
        snprintf(ev.message, sizeof ev.message, "%s", msg ? msg : hs_err_name(err_code));
    }
    ev.n_prompt = j->n_prompt;
    ev.n_cached = j->n_cached;
    ev.n_gen = j->n_gen;
    ev.queue_ms = (j->t_admit > 0 ? j->t_admit : now) - j->t_submit;
    ev.ttft_ms = j->t_first > 0 ? j->t_first - j->t_submit : 0.0;
    ev.total_ms = now - j->t_submit;

    /* Counted out before the consumer can see the end, so that stats read
     * after DONE do not show the job; drain waits for n_live, counted out
     * after, so that every last event is queued when it returns. */
    const bool was_running = j->slot >= 0;
    if (was_running) {
        pthread_mutex_lock(&s->mu);
        s->n_running--;
        pthread_mutex_unlock(&s->mu);
    }
    if (was_running) {
        struct hs_slot *sl = &s->slots[j->slot];
        hs_sched_slot_clear_adapters(s, j->slot);
        sl->job = NULL;
        sl->last_used = s->step;
        for (int i = 0; i < s->n_active; i++)
            if (s->active[i] == j) {
                memmove(&s->active[i], &s->active[i + 1], (size_t)(s->n_active - i - 1) * sizeof *s->active);
                s->n_active--;
                break;
            }
        j->slot = -1;
    }
    hs_sampler_free(j->smp);
    j->smp = NULL;
    /* Before the end is seen: a consumer that saw DONE and then unloads
     * an adapter finds no reference of this job left. */
    hs_job_release(j);
    j->state = HS_JOB_ENDED;
    hs_job_push_end(j, &ev);

    pthread_mutex_lock(&s->mu);
    s->n_live--;
    pthread_cond_broadcast(&s->done_cv);
    pthread_mutex_unlock(&s->mu);
    hs_job_unref(j);
}

/* A schema job's draw: its logits with every token that cannot continue
 * a valid document at -inf. The budget is what is left of max_tokens and of
 * the slot's context, this token included (it is sent before it needs a
 * position). Returns the row to sample from, or NULL when no token may
 * come (the budget cannot fit any completion). */
static const float *masked_row(hs_sched *s, hs_job *j, const float *logits)
{
    memcpy(s->masked, logits, (size_t)s->n_vocab * sizeof *s->masked);
    /* Rows past the tokenizer (padding of the output matrix) are no text. */
    for (int t = s->n_tok_vocab; t < s->n_vocab; t++)
        s->masked[t] = -INFINITY;
    int budget = s->n_ctx - j->n_past + 1;
    if (j->max_tokens > 0 && j->max_tokens - j->n_gen < budget)
        budget = j->max_tokens - j->n_gen;
    return hs_jmatch_mask(j->jm, s->masked, budget) > 0 ? s->masked : NULL;
}

void hs_sched_on_logits(hs_sched *s, hs_job *j, const float *logits)
{
    struct hs_job_event ev = {.kind = HS_EV_TOKEN};
    const float *draw = j->jm ? masked_row(s, j, logits) : logits;
    if (!draw) {
        hs_sched_end_job(s, j, "length", 0, NULL);
        return;
    }
    const int32_t tok = hs_sampler_sample(j->smp, draw, NULL);
    hs_sampler_accept(j->smp, tok);
    j->n_gen++;
    if (j->t_first <= 0)
        j->t_first = hs_sched_now_ms();
    if (!j->ignore_eos && hs_tok_is_eog(s->tok, tok)) {
        hs_sched_end_job(s, j, "stop", 0, NULL); /* the end-of-generation token has no text */
        return;
    }
    if (j->jm) {
        hs_err err = {0};
        const int rc = hs_jmatch_accept(j->jm, tok, &err);
        if (rc) { /* the mask let it through: a bug, not the client's doing */
            hs_sched_end_job(s, j, NULL, rc, err.msg);
            return;
        }
    }
    /* Logprobs are the model's own, before any mask. */
    if (j->top_logprobs >= 0)
        logprobs(logits, s->n_vocab, tok, j->top_logprobs, &ev);

    /* Tokens past the tokenizer's vocabulary (padding rows of the output
     * matrix) and control tokens have no text. */
    hs_buf_reset(&j->piece);
    if (hs_tok_decode_token(s->tok, tok, false, &j->piece) != HS_OK)
        hs_buf_reset(&j->piece);
    const char *emit;
    size_t emit_len;
    const bool hit =
        hs_stop_feed(j->stop, j->piece.data ? j->piece.data : "", j->piece.len, &emit, &emit_len);
    ev.token = tok;
    ev.text = dup_text(emit, emit_len);
    ev.len = ev.text ? emit_len : 0;
    hs_job_push(j, &ev);

    if (hit)
        hs_sched_end_job(s, j, "stop", 0, NULL);
    else if (j->jm && hs_jmatch_complete(j->jm))
        hs_sched_end_job(s, j, "stop", 0, NULL); /* the document is whole */
    else if (j->max_tokens > 0 && j->n_gen >= j->max_tokens)
        hs_sched_end_job(s, j, "length", 0, NULL);
    else if (j->n_past >= s->n_ctx)
        hs_sched_end_job(s, j, "length", 0, NULL); /* no position left to decode it in */
    else {
        j->pending = tok;
        j->state = HS_JOB_GEN;
    }
}
