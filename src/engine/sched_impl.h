/* Internal to engine/: the layouts of hs_sched and hs_job, shared by
 * sched.c (the thread and its steps), sched_token.c (what happens to a row
 * of logits), sched_prefix.c (which slot a prompt goes to), sched_embed.c
 * (embeddings in the spare slot) and job.c (a job's events and lifetime).
 *
 * Threads and locks. The scheduler thread alone touches the context, the
 * slots and the fields of a job marked "scheduler thread". s->mu guards the
 * waiting queue, the counters, the flags and the embedding requests; j->mu
 * guards a job's event queue and its end. Lock order: j->mu, then s->mu
 * (hs_job_cancel wakes the scheduler while it holds its job); so the
 * scheduler never takes a job's lock while it holds s->mu. */
#ifndef HS_ENGINE_SCHED_IMPL_H
#define HS_ENGINE_SCHED_IMPL_H

#include "base/buf.h"
#include "engine/adapter.h"
#include "engine/sched.h"
#include "model/json_schema.h"
#include "model/tokenizer.h"

#include <pthread.h>
#include <stdatomic.h>

enum hs_job_state {
    HS_JOB_QUEUED, /* waiting for a slot */
    HS_JOB_PROMPT, /* in a slot, prompt not all in the cache yet */
    HS_JOB_GEN,    /* generating: `pending` goes into the next step */
    HS_JOB_ENDED,  /* DONE or ERROR sent */
};

struct hs_job {
    /* Guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* an event arrived */
    int refs;                 /* the consumer's and, until the job ends, the scheduler's */
    struct hs_job_event *evq; /* ring of events not yet taken */
    int ev_head, ev_len, ev_cap;
    bool ended;               /* the last event (DONE or ERROR) is queued */
    struct hs_job_event last; /* a copy of it, handed out again once the queue is empty */
    hs_sched *s;              /* NULL once ended: a cancel then has nobody to wake */
    atomic_bool cancel;       /* the consumer is gone; read by the scheduler each step */

    /* Set at submit, read-only afterwards. */
    int32_t *prompt;
    int n_prompt;
    int max_tokens;
    int top_logprobs;
    bool ignore_eos;
    struct hs_sampler_params sampling;
    double t_submit; /* ms */
    /* The adapter set, in the caller's order (the order the deltas add up
     * in), and the prefix cache's key for it. Each adapter holds a
     * reference, as does schema; hs_job_release drops them when the job ends
     * (or when a job refused at submit is freed). */
    hs_adapter **adapters;        /* (n_adapters) */
    const struct hs_lora **loras; /* (n_adapters) hs_adapter_lora of each */
    float *adapter_scales;        /* (n_adapters) */
    uint64_t *adapter_uids;       /* (n_adapters) */
    int n_adapters;
    hs_jschema *schema;

    /* Scheduler thread (and the submitting thread before the job is queued). */
    hs_job *next; /* waiting-queue link */
    enum hs_job_state state;
    int slot;
    int n_past;      /* tokens of the job's sequence in the cache */
    int n_cached;    /* of the prompt, reused from the prefix cache */
    int n_gen;       /* tokens sampled */
    int32_t pending; /* HS_JOB_GEN: the last sampled token, decoded next step */
    hs_sampler *smp; /* from admission to the end */
    hs_jmatch *jm;   /* schema jobs, from admission to the end */
    hs_stop *stop;
    hs_buf piece;            /* the text of one token */
    double t_admit, t_first; /* ms; 0 until then */
};

/* An adapter set as the prefix cache compares it: (uid, scale) pairs in
 * order. Uids are never reused, so a key naming a freed adapter matches no
 * new job. */
struct hs_adapter_key {
    const uint64_t *uid;
    const float *scale;
    int n;
};

/* One sequence slot of the context. What its cache holds stays after its job
 * ends: that is the prefix cache. */
struct hs_slot {
    int32_t *tokens;    /* (n_ctx) the tokens of positions 0 .. n_tokens-1 */
    int n_tokens;       /* equals hs_ctx_seq_len of the slot */
    int n_reusable;     /* leading positions a prompt may reuse: all of them, or, when
                           the context's kinds differ, those computed as prompt tokens */
    hs_job *job;        /* the running job, or NULL when free */
    uint64_t last_used; /* step of its last job's end: the oldest free slot goes first */
    /* The adapter set its cached tokens were computed under (n_key 0: none);
     * kept after the job ends, with the tokens. */
    uint64_t *key_uid; /* (cap_key) */
    float *key_scale;  /* (cap_key) */
    int n_key, cap_key;
    /* The adapters set on the context for this slot (hs_ctx_seq_set_loras
     * borrows their hs_lora), each a reference: from the admission of a job
     * to its end, when the slot's set is cleared, so an idle slot keeps no
     * adapter alive. */
    hs_adapter **held;
    int n_held;
};

/* A caller of hs_sched_embed waits on done_cv until `done`. */
struct hs_embed_req {
    const int32_t *tokens;
    int n;
    float *out;
    int rc;
    hs_err err;
    bool done;
    struct hs_embed_req *next;
};

struct hs_sched {
    const hs_model *m;
    const hs_tok *tok;
    struct hs_sched_params p; /* with the defaults filled in */
    int n_ctx, n_vocab, n_embd;
    hs_ctx *ctx;       /* n_slots + 1 sequences; the last one computes embeddings */
    bool kinds_differ; /* hs_ctx_kinds_differ: generated tokens' cache entries are not reused */
    int embd_seq;      /* = p.n_slots */
    pthread_t thread;

    /* Guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* wakes the scheduler thread */
    pthread_cond_t done_cv; /* a job ended or an embedding is done */
    hs_job *q_head, *q_tail;
    int n_queued, n_running;
    int n_live; /* accepted and not yet ended (their last event queued) */
    struct hs_embed_req *emb_head, *emb_tail;
    bool stopping; /* hs_sched_free: cut everything and exit */
    bool draining; /* refuse new work */
    bool cut;      /* drain ran out of time: cut what is left */
    struct hs_sched_stats stats;

    /* Scheduler thread. */
    struct hs_slot *slots; /* (n_slots) */
    hs_job **active;       /* (n_slots) running jobs in the order they were admitted */
    int n_active;
    hs_job **tmp_jobs;              /* (n_slots) a copy of active to walk while jobs end */
    int32_t *b_tok, *b_pos, *b_seq; /* (n_batch) the step's batch */
    int8_t *b_logits;
    hs_job **b_job;    /* (n_batch) the job of each row */
    double *emb_sum;   /* (n_embd) pooling accumulator */
    uint64_t step;     /* steps run */
    int wave_peak;     /* most jobs running at once since the scheduler was last idle */
    int wave_n;        /* the last wave's peak, while its next one may still be coming */
    double wave_end_ms; /* when that wave's last job ended */
    hs_jvocab *jvocab; /* built at the first job with a schema */
    float *masked;     /* (n_vocab) a schema job's logits after its mask */
    int n_tok_vocab;   /* tokens the tokenizer (and so jvocab) knows; rows past it never pass a mask */
};

/* ---- job.c ---- */

/* A job with a copy of the prompt and a stop matcher; refs 2. NULL on
 * HS_ENOMEM / HS_EINVAL (stop strings), with err set. */
int hs_job_create(const struct hs_job_params *p, hs_job **out, hs_err *err);
/* Drops one reference; the last one frees the job. */
void hs_job_unref(hs_job *j);
/* Drops what the job holds of others: its adapters, its schema and its
 * matcher. Idempotent; the scheduler calls it when the job ends, the last
 * unref in any case. */
void hs_job_release(hs_job *j);
/* Queues a TOKEN event; takes ownership of ev->text. */
void hs_job_push(hs_job *j, struct hs_job_event *ev);
/* Queues the last event (DONE or ERROR; takes ownership of ev->text), so the
 * job ends for its consumer. Does not drop the scheduler's reference. */
void hs_job_push_end(hs_job *j, struct hs_job_event *ev);
double hs_sched_now_ms(void);

/* ---- sched.c ---- */

/* Clears the slot's adapter set on the context and drops the slot's
 * references to the adapters (a job's end). */
void hs_sched_slot_clear_adapters(hs_sched *s, int slot);

/* ---- sched_token.c ---- */

/* Samples the job's next token from its row of logits and sends it; may end
 * the job (hs_sched_end_job). */
void hs_sched_on_logits(hs_sched *s, hs_job *j, const float *logits);
/* Ends a running or queued job: sends DONE (finish_reason non-NULL) or ERROR
 * (err_code, msg), frees its slot, drops the scheduler's reference. */
void hs_sched_end_job(hs_sched *s, hs_job *j, const char *finish_reason, int err_code, const char *msg);

/* ---- sched_prefix.c ---- */

struct hs_slot_pick {
    int slot;    /* the free slot the job goes to */
    int src;     /* the slot whose cache gives the reused prefix (may be slot) */
    int n_reuse; /* positions reused: at most n_prompt - 1 */
};
/* Chooses a slot for a prompt computed under the adapter set key (at least
 * one slot must be free). Only a slot's n_reusable leading positions count,
 * and only in slots whose key equals key. */
void hs_sched_pick_slot(const struct hs_slot *slots, int n_slots, const int32_t *prompt, int n_prompt,
                        const struct hs_adapter_key *key, bool prefix_cache, struct hs_slot_pick *out);
/* Whether slot sl's cache was computed under key. */
bool hs_sched_slot_key_equal(const struct hs_slot *sl, const struct hs_adapter_key *key);

/* ---- sched_embed.c ---- */

/* Runs one embedding request in the spare slot (scheduler thread). */
void hs_sched_run_embed(hs_sched *s, struct hs_embed_req *r);

#endif
