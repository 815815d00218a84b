/* The continuous-batching scheduler: its thread, its steps, and the calls
 * that feed it (create, submit, drain, free, stats).
 *
 * One thread owns the context. Each turn of its loop it takes what the other
 * threads handed over (new jobs, cancellations, embedding requests), admits
 * waiting jobs into free slots, and runs one step: a single hs_decode over
 * the next token of every generating job plus prompt chunks of the jobs
 * still reading theirs, as many prompt tokens as n_batch leaves room for (at
 * most PROMPT_CHUNK_WHILE_GENERATING per reading job while some job
 * generates), in the order
 * the jobs were admitted. Each row of logits then goes to its job
 * (sched_token.c). With nothing to do the thread sleeps on a condition
 * variable; submit, cancel, embed, drain and free wake it.
 *
 * With exact_batching (the default) the context is batch-invariant
 * (context.h): a job's tokens do not depend on which other jobs share its
 * steps, so batching changes nobody's answer, and a prefix reused from the
 * cache is bit for bit the one a fresh computation would give.
 *
 * Adapters (issue 5). A job names its own LoRA set; admission sets it on the
 * job's slot (hs_ctx_seq_set_loras), so one step mixes rows of any sets and
 * each row still gets its answer alone. The context borrows the adapters'
 * weights, so the slot holds a reference to each while they are set, and
 * the set is cleared when the job ends: an idle slot keeps no adapter alive
 * (an unloaded one is freed as soon as its last job ends), at the price of
 * setting the set again, B transposed, when the next job with it comes. The
 * prefix cache is keyed by the set (sched_prefix.c). A job with a schema
 * samples from its logits masked by its matcher (sched_token.c). */
#include "engine/sched_impl.h"

#include "base/log.h"
#include "base/mem.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>

#define DEFAULT_SLOTS 4
#define DEFAULT_QUEUE 64
#define DEFAULT_BATCH 512
/* Prompt tokens per step, per job still reading its prompt, while other
 * jobs are generating. A step costs the running jobs one token's wait, so a
 * long prompt taken whole would stall every stream for its full prefill
 * (seconds on a CPU); in chunks of 64 it stalls them a fraction of that, and
 * the chunks are still long enough that prefill stays compute-bound (each
 * weight is read once per 64 tokens). Several prompts waiting at once go
 * into one step together (up to n_batch): a prompt step pays a fixed cost
 * per weight matrix (the AMX path unpacks each one), so eight 53-token
 * prompts cost far less in one step than in eight. */
#define PROMPT_CHUNK_WHILE_GENERATING 64
#define DEFAULT_WAVE_WAIT_MS 30
/* How long after a wave's end a new arrival is taken for its return, and
 * the gap between arrivals that still counts as one fan-out. */
#define WAVE_REARM_MS 250
#define GATHER_GAP_MS 2.0

void hs_sched_params_default(struct hs_sched_params *p)
{
    memset(p, 0, sizeof *p);
    p->n_slots = DEFAULT_SLOTS;
    p->queue_max = DEFAULT_QUEUE;
    p->n_batch = DEFAULT_BATCH;
    p->prefix_cache = true;
    p->kv_type = HS_KV_F16;
    p->exact_batching = true;
    p->wave_wait_ms = DEFAULT_WAVE_WAIT_MS;
}

const hs_model *hs_sched_model(const hs_sched *s)
{
    return s->m;
}
int hs_sched_n_ctx(const hs_sched *s)
{
    return s->n_ctx;
}

/* ---- admission ---- */

/* Ends the slot's adapter set: the context forgets it (clearing a set
 * cannot fail) and the slot drops its references. Its key stays: it
 * describes the cached tokens, which stay too. */
void hs_sched_slot_clear_adapters(hs_sched *s, int slot)
{
    struct hs_slot *sl = &s->slots[slot];
    if (sl->n_held == 0)
        return;
    hs_ctx_seq_set_loras(s->ctx, slot, NULL, NULL, 0, NULL);
    for (int i = 0; i < sl->n_held; i++)
        hs_adapter_unref(sl->held[i]);
    hs_free(sl->held);
    sl->held = NULL;
    sl->n_held = 0;
}

/* Sets the job's adapters on its slot, the slot taking its own reference
 * to each while the context borrows their weights. */
static int slot_set_adapters(hs_sched *s, hs_job *j, hs_err *err)
{
    struct hs_slot *sl = &s->slots[j->slot];
    hs_sched_slot_clear_adapters(s, j->slot); /* cleared at every job's end: nothing to do, as a rule */
    if (j->n_adapters == 0)
        return HS_OK;
    sl->held = hs_calloc((size_t)j->n_adapters, sizeof *sl->held);
    if (!sl->held)
        return hs_err_set(err, HS_ENOMEM, "out of memory for the slot's adapters");
    const int rc = hs_ctx_seq_set_loras(s->ctx, j->slot, j->loras, j->adapter_scales, j->n_adapters, err);
    if (rc) {
        hs_free(sl->held);
        sl->held = NULL;
        return rc;
    }
    for (int i = 0; i < j->n_adapters; i++)
        sl->held[i] = hs_adapter_ref(j->adapters[i]);
    sl->n_held = j->n_adapters;
    return HS_OK;
}

/* The slot's cache key becomes the job's (its cache is about to hold the
 * job's tokens only). */
static int slot_set_key(struct hs_slot *sl, const struct hs_adapter_key *key)
{
    if (key->n > sl->cap_key) {
        uint64_t *u = hs_realloc_array(sl->key_uid, (size_t)key->n, sizeof *u);
        if (u)
            sl->key_uid = u;
        float *f = hs_realloc_array(sl->key_scale, (size_t)key->n, sizeof *f);
        if (f)
            sl->key_scale = f;
        if (!u || !f)
            return HS_ENOMEM;
        sl->cap_key = key->n;
    }
    if (key->n > 0) {
        memcpy(sl->key_uid, key->uid, (size_t)key->n * sizeof *key->uid);
        memcpy(sl->key_scale, key->scale, (size_t)key->n * sizeof *key->scale);
    }
    sl->n_key = key->n;
    return HS_OK;
}

/* A schema job's matcher, over the vocabulary's bytes built at the first
 * such job (a walk of the whole vocabulary: not worth doing for servers
 * that never see one). */
static int start_schema(hs_sched *s, hs_job *j, hs_err *err)
{
    if (!s->jvocab) {
        if (!s->masked && !(s->masked = hs_malloc((size_t)s->n_vocab * sizeof *s->masked)))
            return hs_err_set(err, HS_ENOMEM, "out of memory for the schema mask");
        const int rc = hs_jvocab_create(s->tok, &s->jvocab, err);
        if (rc)
            return rc;
    }
    return hs_jmatch_create(j->schema, s->jvocab, &j->jm, err);
}

/* Puts a job popped from the queue into a free slot, reusing the longest
 * prefix of its prompt cached under its adapter set (sched_prefix.c), and
 * sets that adapter set on the slot. */
static void admit(hs_sched *s, hs_job *j)
{
    const struct hs_adapter_key key = {
        .uid = j->adapter_uids, .scale = j->adapter_scales, .n = j->n_adapters};
    struct hs_slot_pick pk;
    hs_sched_pick_slot(s->slots, s->p.n_slots, j->prompt, j->n_prompt, &key, s->p.prefix_cache, &pk);
    struct hs_slot *sl = &s->slots[pk.slot];
    sl->job = j;
    j->slot = pk.slot;
    s->active[s->n_active++] = j;
    j->t_admit = hs_sched_now_ms();

    /* Failures here leave the slot's cache and key as they were. */
    hs_err err = {0};
    int rc = j->schema ? start_schema(s, j, &err) : HS_OK;
    if (!rc)
        rc = hs_sampler_create(&j->sampling, s->n_vocab, &j->smp, &err);
    if (!rc)
        rc = slot_set_adapters(s, j, &err);
    if (!rc && !hs_sched_slot_key_equal(sl, &key) && slot_set_key(sl, &key))
        rc = hs_err_set(&err, HS_ENOMEM, "out of memory for the slot's adapter key");
    if (rc) {
        hs_sched_end_job(s, j, NULL, rc, err.msg);
        return;
    }

    int n_reuse = pk.n_reuse;
    if (pk.src != pk.slot && n_reuse > 0) {
        if (hs_ctx_seq_copy(s->ctx, pk.src, pk.slot, n_reuse) == HS_OK)
            memcpy(sl->tokens, s->slots[pk.src].tokens, (size_t)n_reuse * sizeof *sl->tokens);
        else
            n_reuse = 0;
    }
    hs_ctx_seq_truncate(s->ctx, pk.slot, n_reuse);
    sl->n_tokens = n_reuse;
    sl->n_reusable = n_reuse;

    /* The penalties look at the prompt too, as llama.cpp's server does. */
    for (int i = 0; i < j->n_prompt; i++)
        hs_sampler_accept(j->smp, j->prompt[i]);
    j->n_past = n_reuse;
    j->n_cached = n_reuse;
    j->state = HS_JOB_PROMPT;

    pthread_mutex_lock(&s->mu);
    s->stats.prefix_queries_tokens += (uint64_t)j->n_prompt;
    s->stats.prefix_hits_tokens += (uint64_t)n_reuse;
    pthread_mutex_unlock(&s->mu);
}

/* ---- one step ---- */

/* Share of the slots' cells holding running jobs' tokens. */
static void update_kv_usage(hs_sched *s)
{
    size_t live = 0;
    for (int i = 0; i < s->n_active; i++)
        live += (size_t)s->slots[s->active[i]->slot].n_tokens;
    pthread_mutex_lock(&s->mu);
    s->stats.kv_usage = (double)live / ((double)s->p.n_slots * s->n_ctx);
    pthread_mutex_unlock(&s->mu);
}

static void add_row(hs_sched *s, int *n, hs_job *j, int32_t tok, int pos, bool logits)
{
    s->b_tok[*n] = tok;
    s->b_pos[*n] = pos;
    s->b_seq[*n] = j->slot;
    s->b_logits[*n] = logits;
    s->b_job[*n] = j;
    (*n)++;
}

/* The active jobs as they are now: ending a job edits s->active. */
static int snapshot_active(hs_sched *s)
{
    memcpy(s->tmp_jobs, s->active, (size_t)s->n_active * sizeof *s->active);
    return s->n_active;
}

static void step(hs_sched *s)
{
    int n = 0;
    for (int i = 0; i < s->n_active; i++) {
        hs_job *j = s->active[i];
        if (j->state == HS_JOB_GEN)
            add_row(s, &n, j, j->pending, j->n_past, true);
    }
    const int n_gen = n;
    int n_reading = 0;
    for (int i = 0; i < s->n_active; i++)
        n_reading += s->active[i]->state == HS_JOB_PROMPT;
    int budget = s->p.n_batch - n;
    if (n > 0 && budget > PROMPT_CHUNK_WHILE_GENERATING * n_reading)
        budget = PROMPT_CHUNK_WHILE_GENERATING * n_reading;
    for (int i = 0; i < s->n_active && budget > 0; i++) {
        hs_job *j = s->active[i];
        if (j->state != HS_JOB_PROMPT)
            continue;
        const int k = j->n_prompt - j->n_past < budget ? j->n_prompt - j->n_past : budget;
        for (int t = j->n_past; t < j->n_past + k; t++)
            add_row(s, &n, j, j->prompt[t], t, t == j->n_prompt - 1);
        budget -= k;
    }
    if (n == 0)
        return;

    /* generated tokens first, then prompt tokens: each kind takes its own kernels */
    const struct hs_batch b = {.n = n,
                               .tokens = s->b_tok,
                               .pos = s->b_pos,
                               .seq = s->b_seq,
                               .logits = s->b_logits,
                               .n_prompt = n - n_gen};
    hs_err err = {0};
    const int rc = hs_decode(s->ctx, &b, &err);
    s->step++;
    pthread_mutex_lock(&s->mu);
    s->stats.steps++;
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        /* The caches of the batch are as they were; the jobs in it cannot go on. */
        hs_log_error("sched.step", "rows=%d err=%s", n, err.msg);
        const int m = snapshot_active(s);
        for (int i = 0; i < m; i++) {
            hs_job *j = s->tmp_jobs[i];
            bool in_batch = false;
            for (int r = 0; r < n && !in_batch; r++)
                in_batch = s->b_job[r] == j;
            if (in_batch)
                hs_sched_end_job(s, j, NULL, rc, err.msg);
        }
        return;
    }
    for (int r = 0; r < n; r++) {
        hs_job *j = s->b_job[r];
        struct hs_slot *sl = &s->slots[j->slot];
        sl->tokens[s->b_pos[r]] = s->b_tok[r];
        sl->n_tokens = s->b_pos[r] + 1;
        if (r >= n_gen || !s->kinds_differ)
            sl->n_reusable = sl->n_tokens;
        j->n_past = s->b_pos[r] + 1;
    }
    update_kv_usage(s); /* before the events: a consumer that sees a token sees its cells */
    /* A job has at most one row with logits (its last), so ending it here
     * leaves no later row pointing at it. */
    for (int r = 0; r < n; r++)
        if (s->b_logits[r])
            hs_sched_on_logits(s, s->b_job[r], hs_ctx_logits(s->ctx, r));
}

/* ---- the thread ---- */

/* Prompts that arrive together should share one step: a prompt step pays a
 * fixed cost per weight matrix, and a prompt started alone makes the ones
 * arriving a moment later wait for all of it (a quarter of a second for a
 * 53-token prompt of a 1B model on 2 cores), then run in a step of their
 * own, with the first job a step ahead of the rest from then on. Two cases,
 * with the idle scheduler holding mu (released while it waits):
 *  - it just woke up for a new job: it waits while more keep coming, each
 *    within GATHER_GAP_MS of the last (a client's fan-out of requests), so
 *    a lone request waits GATHER_GAP_MS and no more;
 *  - closed-loop clients (an orchestrator's agents, a benchmark's clients)
 *    send their next requests when their answers end, a few milliseconds
 *    apart: when a wave of two or more jobs ended less than WAVE_REARM_MS
 *    ago, it waits until as many jobs as the wave had are queued (once per
 *    wave).
 * Never longer than wave_wait_ms in all (0: never), nor once the slots are
 * spoken for or something else needs the thread. */
static void deadline_ts(struct timespec *ts, double at_ms)
{
    const int64_t ns = (int64_t)(at_ms * 1e6);
    ts->tv_sec = (time_t)(ns / 1000000000);
    ts->tv_nsec = (long)(ns % 1000000000);
}

static void gather_arrivals(hs_sched *s, bool woke)
{
    int want = 0;
    if (s->wave_n >= 2 && hs_sched_now_ms() - s->wave_end_ms <= WAVE_REARM_MS)
        want = s->wave_n < s->p.n_slots ? s->wave_n : s->p.n_slots;
    s->wave_n = 0;
    if (s->p.wave_wait_ms <= 0 || (!woke && want == 0))
        return;
    const double t_end = hs_sched_now_ms() + s->p.wave_wait_ms;
    double t_gap = hs_sched_now_ms() + GATHER_GAP_MS;
    int seen = s->n_queued;
    while (!s->stopping && !s->cut && !s->emb_head && s->n_queued < s->p.n_slots &&
           (want == 0 || s->n_queued < want)) {
        struct timespec dl;
        deadline_ts(&dl, want > 0 || t_gap > t_end ? t_end : t_gap);
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT)
            break;
        if (s->n_queued > seen) {
            seen = s->n_queued;
            t_gap = hs_sched_now_ms() + GATHER_GAP_MS;
        }
    }
}

/* After a turn: a wave ends when the scheduler goes idle (its peak is
 * taken before each step, while the jobs that end in it still count). */
static void track_wave(hs_sched *s)
{
    if (s->n_active == 0 && s->wave_peak > 0) {
        s->wave_n = s->wave_peak;
        s->wave_end_ms = hs_sched_now_ms();
        s->wave_peak = 0;
    }
}

static void end_cancelled(hs_sched *s)
{
    const int m = snapshot_active(s);
    for (int i = 0; i < m; i++)
        if (atomic_load(&s->tmp_jobs[i]->cancel))
            hs_sched_end_job(s, s->tmp_jobs[i], NULL, HS_ECANCELED, "cancelled: the client is gone");
}

static void end_all(hs_sched *s, const char *why)
{
    const int m = snapshot_active(s);
    for (int i = 0; i < m; i++)
        hs_sched_end_job(s, s->tmp_jobs[i], NULL, HS_ECANCELED, why);
}

static void *sched_main(void *arg)
{
    hs_sched *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool woke = false;
        while (!s->stopping && !s->cut && !s->emb_head && !s->q_head && s->n_active == 0) {
            pthread_cond_wait(&s->cv, &s->mu);
            woke = true;
        }
        if (s->n_active == 0 && s->q_head)
            gather_arrivals(s, woke);
        const bool stopping = s->stopping, cut = s->cut || s->stopping;
        s->cut = false;
        struct hs_embed_req *emb = s->emb_head;
        s->emb_head = s->emb_tail = NULL;
        /* From the queue: the cancelled (or, when cutting, all) jobs to end,
         * and as many of the others as there are free slots, in order. */
        hs_job *drop = NULL, **drop_tail = &drop, *take = NULL, **take_tail = &take;
        int free_slots = s->p.n_slots - s->n_active;
        hs_job **pp = &s->q_head, *last = NULL;
        while (*pp) {
            hs_job *j = *pp;
            const bool gone = cut || atomic_load(&j->cancel);
            if (!gone && free_slots == 0) {
                last = j;
                pp = &j->next;
                continue;
            }
            *pp = j->next;
            j->next = NULL;
            s->n_queued--;
            if (gone) {
                *drop_tail = j;
                drop_tail = &j->next;
            } else {
                s->n_running++;
                free_slots--;
                *take_tail = j;
                take_tail = &j->next;
            }
        }
        s->q_tail = last;
        pthread_mutex_unlock(&s->mu);

        for (hs_job *j = drop, *nx; j; j = nx) {
            nx = j->next;
            hs_sched_end_job(s, j, NULL, HS_ECANCELED,
                             cut ? "cut: the scheduler is shutting down" : "cancelled: the client is gone");
        }
        if (cut)
            end_all(s, "cut: the scheduler is shutting down");
        for (struct hs_embed_req *r = emb, *nx; r; r = nx) {
            nx = r->next; /* r lives on its caller's stack: read it before done */
            if (stopping)
                r->rc = hs_err_set(&r->err, HS_ECANCELED, "the scheduler is shutting down");
            else
                hs_sched_run_embed(s, r);
            pthread_mutex_lock(&s->mu);
            r->done = true;
            pthread_cond_broadcast(&s->done_cv);
            pthread_mutex_unlock(&s->mu);
        }
        if (stopping)
            break;
        for (hs_job *j = take, *nx; j; j = nx) {
            nx = j->next;
            j->next = NULL;
            admit(s, j);
        }
        end_cancelled(s);
        if (s->n_active > s->wave_peak)
            s->wave_peak = s->n_active;
        if (s->n_active > 0)
            step(s);
        update_kv_usage(s); /* jobs that ended this turn no longer count */
        track_wave(s);
    }
    return NULL;
}

/* ---- create, free ---- */

static void free_parts(hs_sched *s)
{
    if (s->slots)
        for (int i = 0; i < s->p.n_slots; i++) {
            struct hs_slot *sl = &s->slots[i];
            for (int k = 0; k < sl->n_held; k++) /* none: every job ended first */
                hs_adapter_unref(sl->held[k]);
            hs_free(sl->held);
            hs_free(sl->key_uid);
            hs_free(sl->key_scale);
            hs_free(sl->tokens);
        }
    hs_jvocab_free(s->jvocab);
    hs_free(s->masked);
    hs_free(s->slots);
    hs_free(s->active);
    hs_free(s->tmp_jobs);
    hs_free(s->b_tok);
    hs_free(s->b_pos);
    hs_free(s->b_seq);
    hs_free(s->b_logits);
    hs_free(s->b_job);
    hs_free(s->emb_sum);
    hs_ctx_free(s->ctx);
    hs_free(s);
}

int hs_sched_create(const hs_model *m, const struct hs_sched_params *params, hs_sched **out, hs_err *err)
{
    *out = NULL;
    struct hs_sched_params p;
    if (params)
        p = *params;
    else
        hs_sched_params_default(&p);
    if (p.n_slots < 0 || p.queue_max < 0 || p.n_batch < 0 || p.n_ctx < 0 || p.n_threads < 0)
        return hs_err_set(err, HS_EINVAL, "scheduler: negative parameter");
    if (p.n_slots == 0)
        p.n_slots = DEFAULT_SLOTS;
    if (p.n_batch == 0)
        p.n_batch = DEFAULT_BATCH;
    if (p.n_batch < p.n_slots)
        return hs_err_set(err, HS_EINVAL, "scheduler: n_batch %d cannot hold one token of each of %d slots",
                          p.n_batch, p.n_slots);
    hs_sched *s = hs_calloc(1, sizeof *s);
    if (!s)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    const struct hs_ctx_params cp = {.n_ctx = p.n_ctx,
                                     .n_seq = p.n_slots + 1,
                                     .n_batch = p.n_batch,
                                     .n_threads = p.n_threads,
                                     .kv_type = p.kv_type,
                                     .batch_invariant = p.exact_batching};
    int rc = hs_ctx_create(m, &cp, &s->ctx, err);
    if (rc) {
        hs_free(s);
        return rc;
    }
    s->m = m;
    s->tok = hs_model_tok(m);
    s->n_ctx = hs_ctx_n_ctx(s->ctx);
    p.n_ctx = s->n_ctx;
    s->p = p;
    s->n_vocab = hs_model_hparams(m)->n_vocab;
    s->n_embd = hs_model_hparams(m)->n_embd;
    s->n_tok_vocab = hs_tok_n_vocab(s->tok) < s->n_vocab ? hs_tok_n_vocab(s->tok) : s->n_vocab;
    s->embd_seq = p.n_slots;
    s->kinds_differ = hs_ctx_kinds_differ(s->ctx);
    const size_t B = (size_t)p.n_batch;
    s->slots = hs_calloc((size_t)p.n_slots, sizeof *s->slots);
    s->active = hs_calloc((size_t)p.n_slots, sizeof *s->active);
    s->tmp_jobs = hs_calloc((size_t)p.n_slots, sizeof *s->tmp_jobs);
    s->b_tok = hs_calloc(B, sizeof *s->b_tok);
    s->b_pos = hs_calloc(B, sizeof *s->b_pos);
    s->b_seq = hs_calloc(B, sizeof *s->b_seq);
    s->b_logits = hs_calloc(B, sizeof *s->b_logits);
    s->b_job = hs_calloc(B, sizeof *s->b_job);
    s->emb_sum = hs_calloc((size_t)s->n_embd, sizeof *s->emb_sum);
    bool ok = s->slots && s->active && s->tmp_jobs && s->b_tok && s->b_pos && s->b_seq && s->b_logits &&
              s->b_job && s->emb_sum;
    for (int i = 0; ok && i < p.n_slots; i++)
        ok = (s->slots[i].tokens = hs_calloc((size_t)s->n_ctx, sizeof(int32_t))) != NULL;
    if (!ok) {
        free_parts(s);
        return hs_err_set(err, HS_ENOMEM, "out of memory for the scheduler's slots");
    }
    s->stats.n_slots = p.n_slots;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* drain's deadline, a wave's wait */
    pthread_cond_init(&s->cv, &ca);
    pthread_cond_init(&s->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        pthread_cond_destroy(&s->done_cv);
        free_parts(s);
        return hs_err_set(err, HS_ENOMEM, "cannot start the scheduler thread");
    }
    hs_log_info("sched.create", "slots=%d queue_max=%d n_ctx=%d n_batch=%d threads=%d prefix_cache=%d",
                p.n_slots, p.queue_max, s->n_ctx, p.n_batch, hs_pool_size(hs_ctx_pool(s->ctx)),
                (int)p.prefix_cache);
    *out = s;
    return HS_OK;
}

void hs_sched_free(hs_sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->done_cv);
    free_parts(s);
}

void hs_sched_drain(hs_sched *s, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    const int t = timeout_ms > 0 ? timeout_ms : 0;
    dl.tv_sec += t / 1000;
    dl.tv_nsec += (long)(t % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    s->draining = true;
    bool cut_sent = false;
    while (s->n_live > 0) {
        if (cut_sent) {
            pthread_cond_wait(&s->done_cv, &s->mu);
        } else if (pthread_cond_timedwait(&s->done_cv, &s->mu, &dl) == ETIMEDOUT) {
            s->cut = true;
            cut_sent = true;
            pthread_cond_signal(&s->cv);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- submit, stats ---- */

static int check_job(const hs_sched *s, const struct hs_job_params *p, hs_err *err)
{
    if (!p || !p->prompt || p->n_prompt < 1)
        return hs_err_set(err, HS_EINVAL, "prompt: at least one token is needed");
    for (int i = 0; i < p->n_prompt; i++)
        if (p->prompt[i] < 0 || p->prompt[i] >= s->n_vocab)
            return hs_err_set(err, HS_EINVAL, "prompt[%d]: token id %d is outside the vocabulary (%d)", i,
                              p->prompt[i], s->n_vocab);
    if (p->n_prompt > s->n_ctx)
        return hs_err_set(err, HS_ERANGE, "prompt: %d tokens do not fit the context (%d)", p->n_prompt,
                          s->n_ctx);
    if (p->top_logprobs > HS_MAX_TOP_LOGPROBS)
        return hs_err_set(err, HS_EINVAL, "top_logprobs: at most %d (got %d)", HS_MAX_TOP_LOGPROBS,
                          p->top_logprobs);
    if (p->n_stop < 0 || (p->n_stop > 0 && !p->stop))
        return hs_err_set(err, HS_EINVAL, "stop: %d stop strings but no array", p->n_stop);
    if (p->n_adapters < 0)
        return hs_err_set(err, HS_EINVAL, "n_adapters: %d is negative", p->n_adapters);
    if (p->n_adapters > 0 && !p->adapters)
        return hs_err_set(err, HS_EINVAL, "adapters: %d adapters but no array", p->n_adapters);
    for (int i = 0; i < p->n_adapters; i++) {
        if (!p->adapters[i])
            return hs_err_set(err, HS_EINVAL, "adapters[%d]: no adapter", i);
        if (p->adapter_scales && !isfinite(p->adapter_scales[i]))
            return hs_err_set(err, HS_EINVAL, "adapter_scales[%d]: not a finite number", i);
    }
    return hs_sampler_params_check(&p->sampling, err);
}

int hs_sched_submit(hs_sched *s, const struct hs_job_params *p, hs_job **out, hs_err *err)
{
    *out = NULL;
    int rc = check_job(s, p, err);
    if (rc)
        return rc;
    hs_job *j;
    if ((rc = hs_job_create(p, &j, err)))
        return rc;
    j->t_submit = hs_sched_now_ms();
    pthread_mutex_lock(&s->mu);
    if (s->stopping || s->draining)
        rc = hs_err_set(err, HS_ECANCELED, "the scheduler is shutting down");
    else if (s->n_running + s->n_queued >= s->p.n_slots + s->p.queue_max)
        rc = hs_err_set(err, HS_EBUSY, "busy: %d jobs running and %d waiting", s->n_running, s->n_queued);
    if (rc) {
        pthread_mutex_unlock(&s->mu);
        hs_job_unref(j);
        hs_job_unref(j);
        return rc;
    }
    j->s = s;
    if (s->q_tail)
        s->q_tail->next = j;
    else
        s->q_head = j;
    s->q_tail = j;
    s->n_queued++;
    s->n_live++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    *out = j;
    return HS_OK;
}

void hs_sched_stats(hs_sched *s, struct hs_sched_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    out->n_slots = s->p.n_slots;
    out->running = s->n_running;
    out->waiting = s->n_queued;
    pthread_mutex_unlock(&s->mu);
}
