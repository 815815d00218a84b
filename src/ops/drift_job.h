/* Drift checks as jobs: the part of a data or concept drift run that talks
 * to a model (embeddings, answers) and to the store, shared by the command
 * `hestia drift` (any OpenAI-compatible server, through hs_client) and the
 * server's scheduled jobs (its own serving path, through internal requests).
 * The model is reached through a small backend of callbacks, so this layer
 * knows neither HTTP nor the server. The statistics are ops/drift.h's and
 * ops/drift_concept.h's. */
#ifndef HS_OPS_DRIFT_JOB_H
#define HS_OPS_DRIFT_JOB_H

#include "base/err.h"
#include "ops/drift.h"
#include "ops/drift_concept.h"
#include "ops/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Texts per embeddings request. */
#define HS_DRIFT_EMBED_BATCH 32
/* The store's baseline that holds the concept accuracy recorded at deploy. */
#define HS_DRIFT_BASELINE_NAME "concept_accuracy"

/* How a run reaches the model. Every callback may be called from more than
 * one thread at once (concept runs with parallel > 1). */
struct hs_drift_backend {
    void *user;
    /* In error messages, before the backend's own words: "backend URL",
     * "model 'm'". */
    const char *name;
    /* Embeds n texts: *vecs a new array of n * (*dim) floats (hs_free). */
    int (*embed)(void *user, const char *const *texts, int n, float **vecs, int *dim, hs_err *err);
    /* One question as a user message, greedy (temperature 0), at most
     * max_tokens: *answer a new string (hs_free). */
    int (*chat)(void *user, const char *question, int max_tokens, char **answer, hs_err *err);
    /* true when the run should give up (checked before every request);
     * NULL = never. A run that gives up returns HS_ECANCELED. */
    bool (*stopped)(void *user);
};

/* ---- prompt sets ---- */

struct hs_drift_texts {
    char **v; /* n owned strings */
    int n, cap;
};

/* Appends a copy of len bytes of s. HS_ENOMEM. */
int hs_drift_texts_push(struct hs_drift_texts *t, const char *s, size_t len);
void hs_drift_texts_free(struct hs_drift_texts *t);

/* Reads a prompt file: one text per line (.txt and anything else), or one
 * JSON object per line with a "prompt", "text" or "question" string (.jsonl,
 * .ndjson); blank lines are skipped. Errors read "PATH:LINE: what is wrong"
 * (HS_EFORMAT), HS_EIO when the file cannot be read; fewer than 2 texts is
 * not an error here (hs_drift_data refuses it). On error *t is empty. */
int hs_drift_texts_load(struct hs_drift_texts *t, const char *path, hs_err *err);

/* ---- data drift ---- */

/* Embeds every text of t in batches of HS_DRIFT_EMBED_BATCH: *out a new
 * array of t->n * (*dim) floats (hs_free). what names the set in errors
 * ("backend X: embedding WHAT: ..."). */
int hs_drift_embed(const struct hs_drift_backend *b, const struct hs_drift_texts *t, const char *what,
                   float **out, int *dim, hs_err *err);

/* One data-drift run: samples at most p->max_samples texts of each set
 * (seeded by p->seed, before embedding, so that a large reference file costs
 * no more than max_samples embeddings), embeds them, and compares them with
 * hs_drift_data. ref_name / cur_name name the sets in errors. *details is the
 * run's JSON (hs_drift_data_to_json; hs_free). p NULL = defaults. */
int hs_drift_run_data(const struct hs_drift_backend *b, const struct hs_drift_texts *ref, const char *ref_name,
                      const struct hs_drift_texts *cur, const char *cur_name, const struct hs_drift_params *p,
                      struct hs_drift_data_result *out, char **details, hs_err *err);

/* ---- concept drift ---- */

struct hs_concept_run {
    struct hs_concept_result r;
    char **answers;                  /* ref->n answers (owned) */
    struct hs_concept_score *scores; /* ref->n scores (owned) */
    int n;
    char *details; /* hs_concept_result_to_json (owned) */
};
void hs_concept_run_free(struct hs_concept_run *run);

/* Asks every question of ref (parallel at once, 1 = one after the other on
 * the calling thread), scores the answers and compares the accuracy with
 * recorded (NaN: no record). A failed request fails the run (a failed
 * request is not a wrong answer: the check could not run); its error names
 * "REF_NAME:LINE". p NULL = defaults. On error *out is empty. */
int hs_drift_run_concept(const struct hs_drift_backend *b, const struct hs_concept_ref *ref, const char *ref_name,
                         double recorded, const struct hs_concept_params *p, int max_tokens, int parallel,
                         struct hs_concept_run *out, hs_err *err);

/* ---- the store ---- */

/* The accuracy recorded at deploy (the HS_DRIFT_BASELINE_NAME baseline):
 * HS_ENOTFOUND when there is none, HS_EFORMAT when it has no accuracy from 0
 * to 100. */
int hs_drift_recorded_get(hs_store *s, double *accuracy, hs_err *err);
/* Keeps r's accuracy as the recorded one ({"accuracy","n","correct","model",
 * "reference"}); model and reference may be NULL. */
int hs_drift_recorded_put(hs_store *s, const struct hs_concept_result *r, const char *model,
                          const char *reference, hs_err *err);
/* Appends a run to drift_runs (ts_ms 0 = now); *id may be NULL. */
int hs_drift_store_run(hs_store *s, const char *kind, const char *status, double score, double p_value,
                       const char *details, int64_t ts_ms, int64_t *id, hs_err *err);
/* The time of the newest run of kind in the store (unix ms); 0 when none. */
int hs_drift_last_run_ms(hs_store *s, const char *kind, int64_t *ts_ms, hs_err *err);

/* ---- the schedule ----
 * When a job of period every_ms is due (unix ms): one period after its last
 * run (last_ms; 0 = none), so that a restart does not reset the schedule,
 * or one period after start_ms when it never ran. A last run stamped after
 * now (the clock went back) counts as now. A job whose due time has passed
 * (the server was down) runs as soon as it can. -1 when every_ms <= 0 (not
 * scheduled). */
int64_t hs_drift_due_ms(int64_t every_ms, int64_t last_ms, int64_t start_ms, int64_t now_ms);

#endif
