/* The store's tables for the monitor and drift jobs (schema 3): recorded
 * baselines (one JSON document per name) and drift runs (one row per run,
 * data or concept). Both go through the store's shared connection under its
 * lock, not the request writer's queue: they are rare, and the caller wants
 * the row id or the stored text back. Thread-safe. */
#ifndef HS_OPS_STORE_OPS_H
#define HS_OPS_STORE_OPS_H

#include "ops/store.h"

#include <stdint.h>

/* ---- baselines (name PK, ts_ms, details) ---- */

/* Writes (or replaces) the baseline called name. details is a JSON object's
 * text (hs_monitor_stats_to_json); ts_ms 0 = now. HS_EINVAL for an empty
 * name or details that are not a JSON object. */
int hs_store_baseline_put(hs_store *s, const char *name, int64_t ts_ms, const char *details, hs_err *err);
/* Reads it back: *details is a new string (free with hs_free), *ts_ms its
 * time (either out may be NULL). HS_ENOTFOUND when there is none. */
int hs_store_baseline_get(hs_store *s, const char *name, int64_t *ts_ms, char **details, hs_err *err);
/* HS_ENOTFOUND when there is none. */
int hs_store_baseline_delete(hs_store *s, const char *name, hs_err *err);

/* ---- drift runs ---- */

/* One row of drift_runs. score: the data run's MMD^2 or the concept run's
 * accuracy (percent); score and p_value NaN = NULL. */
struct hs_drift_run {
    int64_t id;
    int64_t ts_ms;
    const char *kind;   /* "data" or "concept" */
    const char *status; /* "STABLE" or "DRIFTED" */
    double score;
    double p_value;
    const char *details; /* JSON text (hs_drift_data_to_json, hs_concept_result_to_json) or NULL */
};

/* Appends a run (r->id is ignored; ts_ms 0 = now) and gives its id in *id
 * (may be NULL). HS_EINVAL for a kind other than data/concept or a status
 * other than STABLE/DRIFTED. */
int hs_store_drift_add(hs_store *s, const struct hs_drift_run *r, int64_t *id, hs_err *err);
/* Calls fn for the newest runs first, at most limit (<= 0: all), of one kind
 * (NULL: both). The strings are valid during the call only; fn runs
 * under the store's lock and must not call the store. */
int hs_store_drift_list(hs_store *s, const char *kind, int limit,
                        void (*fn)(void *user, const struct hs_drift_run *r), void *user, hs_err *err);

#endif
