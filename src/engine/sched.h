/* The continuous-batching scheduler: one thread owns an hs_ctx with N slots
 * and, each step, puts the next token of every running sequence and a chunk
 * of each newly admitted prompt into one hs_decode. Jobs beyond the slots wait
 * in a bounded queue. A finished slot keeps its tokens in the KV cache, so a
 * new prompt that starts the same way (an agent's system prompt, a chat's
 * earlier turns) reuses them: from its own slot, or copied from another slot
 * (hs_ctx_seq_copy) when that one shares a longer prefix.
 *
 * Any thread may submit and consume jobs; events reach the consumer through
 * the job's own queue, so a slow reader never delays the batch. */
#ifndef HS_ENGINE_SCHED_H
#define HS_ENGINE_SCHED_H

#include "base/err.h"
#include "model/context.h"
#include "model/model.h"
#include "model/sampler.h"

struct hs_adapter;
struct hs_jschema;

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hs_sched hs_sched;
typedef struct hs_job hs_job;

struct hs_sched_params {
    int n_slots;       /* concurrent sequences (--parallel); default 4 */
    int queue_max;     /* jobs waiting beyond the slots; default 64; more -> HS_EBUSY */
    int n_ctx;         /* positions per slot; 0 = min(train ctx, 4096) */
    int n_batch;       /* most tokens in one step (prompt chunks included); default 512 */
    int n_threads;     /* thread pool size; 0 = all CPUs */
    bool prefix_cache; /* reuse cached prompt prefixes; hs_sched_params_default sets true */
    enum hs_kv_type kv_type;
    /* (addition) Batching changes no answer: every job's tokens are bit for
     * bit those it gets alone, and a prefix from the cache equals a fresh
     * computation (hs_ctx_params.batch_invariant: kernels chosen by a
     * token's kind, prompt or generated, never by the batch size).
     * hs_sched_params_default sets true. Off, kernels go by batch size as in
     * `hestia run`, and a batched answer may differ in its last bits from
     * the same request alone, so greedy choices between near-equal tokens
     * can change; speed is about the same (measured on the 1B Q4_K_M). */
    bool exact_batching;
    /* (addition) Prompts arriving together share one step (sched.c,
     * gather_arrivals). A job that wakes the idle scheduler waits while more
     * keep coming, each within 2 ms of the last; and when two or more jobs
     * ran together and the last of them ended moments ago (closed-loop
     * clients: an orchestrator's agents, a benchmark's clients), the next
     * arrivals wait for as many others as that wave had. Either wait ends
     * after this many milliseconds at most. 0: never wait.
     * hs_sched_params_default sets 30. */
    int wave_wait_ms;
};
void hs_sched_params_default(struct hs_sched_params *p);

#define HS_MAX_TOP_LOGPROBS 20

struct hs_job_params {
    const int32_t *prompt; /* copied at submit */
    int n_prompt;          /* >= 1 */
    int max_tokens;        /* <= 0: until the slot's context is full */
    struct hs_sampler_params sampling;
    const char *const *stop; /* stop strings, copied; the answer ends before one */
    int n_stop;
    int top_logprobs; /* < 0: no logprobs; 0..HS_MAX_TOP_LOGPROBS: the chosen token's
                         log-probability plus this many alternatives per token */
    bool ignore_eos;  /* keep going past end-of-generation tokens */
    /* (issue 5) The sequence's LoRA adapters and their scales: the job takes
     * a reference to each at submit and drops it when it ends, so an adapter
     * unloaded meanwhile stays alive for it. The slot's context set is
     * changed to these at admission; a cached prefix is reused only when it
     * was computed under the same set (adapter uids and scales). n 0: none. */
    struct hs_adapter *const *adapters;
    const float *adapter_scales;
    int n_adapters;
    /* (issue 5) Structured output: the answer is a JSON document valid under
     * this schema (hs_jmatch masks each draw); the job takes a reference.
     * The answer ends ("stop") as soon as the document is complete. NULL: free text. */
    struct hs_jschema *schema;
};

enum hs_ev_kind {
    HS_EV_TOKEN = 1, /* one generated token (its text may be held back: see text) */
    HS_EV_DONE,      /* the answer is complete; the last event of a job */
    HS_EV_ERROR,     /* the job failed or was cut (shutdown); the last event */
};

struct hs_logprob {
    int32_t id;
    float logprob; /* natural log of the probability under the model's raw softmax */
};

struct hs_job_event {
    enum hs_ev_kind kind;
    /* TOKEN: the text now safe to send (whole UTF-8 characters, never part of a
     * stop string; may be empty, may include bytes held back earlier).
     * DONE: any held-back tail that turned out not to be a stop string.
     * Owned by the event; released by hs_job_event_clear. */
    char *text;
    size_t len;
    /* TOKEN only */
    int32_t token;
    struct hs_logprob chosen;                 /* valid when top_logprobs >= 0 */
    int n_top;                                /* alternatives in top[], best first */
    struct hs_logprob top[HS_MAX_TOP_LOGPROBS];
    /* DONE and ERROR: usage and timings so far */
    const char *finish_reason; /* DONE: "stop" (eog token or stop string) or "length" */
    int n_prompt;              /* prompt tokens */
    int n_cached;              /* of which reused from the prefix cache */
    int n_gen;                 /* generated tokens */
    double queue_ms;           /* submit -> admitted to a slot */
    double ttft_ms;            /* submit -> first token */
    double total_ms;           /* submit -> done */
    /* ERROR */
    int err_code; /* HS_E* */
    char message[256];
};
void hs_job_event_clear(struct hs_job_event *ev);

/* Loads nothing: the model is borrowed and must outlive the scheduler. Starts
 * the scheduler thread. */
int hs_sched_create(const hs_model *m, const struct hs_sched_params *p, hs_sched **out, hs_err *err);
/* Stops admitting, cuts every queued and running job (they get HS_EV_ERROR
 * with HS_ECANCELED), joins the thread, frees. Jobs not yet freed stay valid. */
void hs_sched_free(hs_sched *s);
/* Graceful stop: refuse new jobs (HS_ECANCELED), let running and queued jobs
 * finish for up to timeout_ms, then cut the rest. Returns when none is left. */
void hs_sched_drain(hs_sched *s, int timeout_ms);

const hs_model *hs_sched_model(const hs_sched *s);
int hs_sched_n_ctx(const hs_sched *s);

/* Queues a job. HS_EBUSY when the queue is full, HS_ERANGE when the prompt
 * does not fit the context, HS_EINVAL for bad parameters (message names the
 * field), HS_ECANCELED while draining. */
int hs_sched_submit(hs_sched *s, const struct hs_job_params *p, hs_job **out, hs_err *err);
/* Waits up to timeout_ms (< 0: forever) for the job's next event. Returns 1
 * with *ev filled, 0 on timeout. After DONE or ERROR it returns them again. */
int hs_job_next(hs_job *j, struct hs_job_event *ev, int timeout_ms);
/* The consumer is gone (client disconnected): the slot is freed at the next
 * step. Safe from any thread, any number of times. */
void hs_job_cancel(hs_job *j);
/* Cancels if still running and releases the consumer's reference. */
void hs_job_free(hs_job *j);

/* Embedding of one input: the final hidden states (after the output norm)
 * mean-pooled over the tokens and L2-normalised, n_embd floats. Runs in the
 * scheduler's thread between steps, in a slot of its own, so it never
 * disturbs running sequences. Blocks the caller until done. */
int hs_sched_embed(hs_sched *s, const int32_t *tokens, int n, float *out, hs_err *err);

struct hs_sched_stats {
    int n_slots;
    int running;  /* jobs in slots */
    int waiting;  /* jobs in the queue */
    double kv_usage; /* share of KV cells holding live sequences, 0..1 */
    uint64_t prefix_queries_tokens; /* prompt tokens looked up in the prefix cache */
    uint64_t prefix_hits_tokens;    /* of which found (not recomputed) */
    uint64_t steps;                 /* hs_decode calls */
};
void hs_sched_stats(hs_sched *s, struct hs_sched_stats *out);

#endif
