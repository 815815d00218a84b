/* (issue 7) Experiments in the store (schema 4): definitions with their
 * run-time state, so that a restart resumes the same weights; their history
 * (every weight change, advance, rollback and promotion with its time and
 * reason); shadow answers side by side; expert scores; and the per-variant
 * aggregates that `report` and `decide` read.
 *
 * Like baselines and drift runs, these go through the store's shared
 * connection under its lock, not the request writer's queue: they are rare
 * and the caller wants to know they are written. Functions that read
 * request records flush this handle's queue first. Callbacks run under the
 * store's lock with strings valid during the call only: they must not call
 * the store. Thread-safe. */
#ifndef HS_OPS_STORE_EXPERIMENTS_H
#define HS_OPS_STORE_EXPERIMENTS_H

#include "ops/experiment.h"
#include "ops/store.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- experiments and their state ---- */

/* What the server calls for each configured experiment at start (and the
 * admin route for a new one): when the store has no experiment of that
 * name, it is written with hs_exp_state_init(now_ms) and a "created" event,
 * and *created is true; when it has one, the definition is replaced and the
 * stored state comes back in *st, so a restart resumes where it stopped
 * (except that an active A/B test takes a weight changed in its definition,
 * with a "weight" event, and a canary whose schedule shrank stays on its
 * last step).
 * st and created may be NULL. */
int hs_store_exp_ensure(hs_store *s, const struct hs_experiment *e, int64_t now_ms, struct hs_exp_state *st,
                        bool *created, hs_err *err);
/* Reads one experiment (either out may be NULL). HS_ENOTFOUND when none. */
int hs_store_exp_get(hs_store *s, const char *name, struct hs_experiment *e, struct hs_exp_state *st,
                     hs_err *err);
typedef void (*hs_store_exp_fn)(void *user, const struct hs_experiment *e, const struct hs_exp_state *st);
/* Every experiment, by name. A row that no longer reads is skipped with a
 * warning in the log. */
int hs_store_exp_list(hs_store *s, hs_store_exp_fn fn, void *user, hs_err *err);

/* Event kinds. */
#define HS_EXP_EV_CREATED "created"
#define HS_EXP_EV_WEIGHT "weight"
#define HS_EXP_EV_ADVANCE "advance"
#define HS_EXP_EV_ROLLBACK "rollback"
#define HS_EXP_EV_PROMOTE "promote"
#define HS_EXP_EV_STOP "stop"
#define HS_EXP_EV_RESUME "resume"

/* Writes a new state and appends an event of that kind (one of the above)
 * with st->weight_b, st->updated_ms and the reason, in one transaction.
 * HS_ENOTFOUND when there is no such experiment, HS_EINVAL for an unknown
 * kind. */
int hs_store_exp_update(hs_store *s, const char *name, const struct hs_exp_state *st, const char *kind,
                        const char *reason, hs_err *err);

struct hs_exp_event {
    int64_t id;
    int64_t ts_ms;
    const char *name;
    const char *kind;
    double weight_b;    /* NaN when not recorded */
    const char *reason; /* may be NULL */
};
typedef void (*hs_store_exp_event_fn)(void *user, const struct hs_exp_event *ev);
/* An experiment's events, oldest first. */
int hs_store_exp_events(hs_store *s, const char *name, hs_store_exp_event_fn fn, void *user, hs_err *err);

/* ---- shadow answers ---- */

struct hs_shadow_result {
    const char *request_id; /* the primary (A) request's id */
    const char *experiment;
    int64_t ts_ms;                     /* 0 = now */
    double latency_a_ms, latency_b_ms; /* < 0 when unknown */
    int status_b;                      /* B's HTTP status (0: no answer, e.g. a timeout) */
    double similarity;                 /* 0..1 between the answers; < 0 when not computed */
    const char *answer_a, *answer_b;   /* may be NULL */
};
/* One row per request id (a repeat is ignored). HS_EINVAL without an id or experiment. */
int hs_store_shadow_add(hs_store *s, const struct hs_shadow_result *r, hs_err *err);

struct hs_shadow_summary {
    int64_t n;             /* shadow results */
    int64_t b_errors;      /* status_b outside 2xx */
    int64_t n_similarity;  /* with a similarity */
    int64_t agree;         /* similarity >= threshold */
    double agreement_rate; /* agree / n_similarity; NaN when 0 */
    double similarity_mean;
    int64_t n_latency;                             /* with both latencies */
    double a_p50_ms, a_p95_ms, b_p50_ms, b_p95_ms; /* over those rows; NaN when none */
};
int hs_store_shadow_summary(hs_store *s, const char *experiment, double threshold,
                            struct hs_shadow_summary *out, hs_err *err);
typedef void (*hs_store_shadow_fn)(void *user, const struct hs_shadow_result *r);
/* The results with a similarity below threshold, least similar first, at most limit. */
int hs_store_shadow_disagreements(hs_store *s, const char *experiment, double threshold, int limit,
                                  hs_store_shadow_fn fn, void *user, hs_err *err);

/* ---- expert scores ---- */

struct hs_eval_score {
    const char *request_id;
    const char *variant; /* what the sheet said ("A"/"B"), or NULL when blinded */
    const char *rater;
    int accuracy, safety; /* 1..5 */
    const char *comment;  /* may be NULL */
    int64_t ts_ms;        /* 0 = now */
};
/* Adds scores in one transaction: all or none. Each request must be a
 * record routed by an experiment (its experiment and variant are taken
 * from the record; a variant given here must agree). A second score by the
 * same rater for the same request replaces the first. On an error *bad
 * (may be NULL) is the index of the score at fault (or n when none is). */
int hs_store_eval_add(hs_store *s, const struct hs_eval_score *v, size_t n, size_t *bad, hs_err *err);

/* A record of the experiment with a stored body, for `eval export`. */
struct hs_eval_candidate {
    const char *request_id;
    const char *variant;
    int64_t ts_ms;
    const char *request_body, *response_body; /* may be NULL */
};
typedef void (*hs_store_eval_candidate_fn)(void *user, const struct hs_eval_candidate *c);
/* The experiment's records of one variant that have a stored body, oldest first. */
int hs_store_eval_candidates(hs_store *s, const char *experiment, enum hs_exp_variant v,
                             hs_store_eval_candidate_fn fn, void *user, hs_err *err);

/* ---- aggregates ---- */

/* Fills *out for one variant of an experiment from the records since
 * since_ms (0 = all): a request is an error when its status is not 2xx or
 * it has an error message (a B failure answered by A keeps B's error);
 * latency percentiles as ops/monitor.h; thumbs from feedback; safety from
 * the records' flags; expert scores from eval_scores, one value per request
 * (the mean of its raters). Free out with hs_exp_variant_stats_free. */
int hs_store_exp_variant_stats(hs_store *s, const char *experiment, enum hs_exp_variant v, int64_t since_ms,
                               struct hs_exp_variant_stats *out, hs_err *err);

#endif
