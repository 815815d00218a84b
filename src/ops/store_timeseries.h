/* (issue 6) The dashboard's history from the store: per-bucket aggregates of
 * the inference records in a time range, their totals, and the same per
 * agent. Inference records are those of hs_store_recent_requests: chat,
 * completions and embeddings that reached a model (backend not null). */
#ifndef HS_OPS_STORE_TIMESERIES_H
#define HS_OPS_STORE_TIMESERIES_H

#include "ops/store.h"

#include <stddef.h>
#include <stdint.h>

/* One bucket's (or a whole range's) numbers. A value that has no data is
 * marked by its count: n_latency == 0 leaves the latencies < 0, n_confidence
 * == 0 leaves confidence_mean < 0. Rates are the caller's to divide. */
struct hs_ts_stats {
    int64_t requests;       /* inference records that arrived in the bucket */
    int64_t errors;         /* of them, status not 2xx */
    int64_t safety_flagged; /* of them, with a non-empty safety_flags */
    int64_t n_latency;      /* 2xx answers with a latency */
    double latency_p50, latency_p95; /* ms, type-7 quantiles (gsl's) of those; < 0 when none */
    int64_t n_confidence;   /* records with a confidence */
    double confidence_mean; /* < 0 when none */
    /* feedback on inference records, counted in the bucket the FEEDBACK
     * arrived in (its first ts_ms), not the request's: what the monitor does */
    int64_t thumbs_up, thumbs_down;
};

/* Buckets needed for [from_ms, to_ms) at bucket_ms each (the last may be
 * short); 0 when the range is empty or bucket_ms < 1. */
size_t hs_ts_bucket_count(int64_t from_ms, int64_t to_ms, int64_t bucket_ms);

/* Fills buckets[i] with the records in [from_ms + i*bucket_ms, from_ms +
 * (i+1)*bucket_ms) ∩ [from_ms, to_ms), for i < n_buckets, which must be
 * hs_ts_bucket_count(from_ms, to_ms, bucket_ms); totals (may be NULL) with
 * the whole range (its quantiles are of the whole range's latencies, not of
 * the buckets'). Flushes this handle's queue first and reads one snapshot
 * through a read-only connection of its own (the server goes on). */
int hs_store_timeseries(hs_store *s, int64_t from_ms, int64_t to_ms, int64_t bucket_ms, struct hs_ts_stats *buckets,
                        size_t n_buckets, struct hs_ts_stats *totals, hs_err *err);

struct hs_ts_agent {
    char *agent; /* NULL: the records without an agent */
    struct hs_ts_stats st;
};

/* The range [from_ms, to_ms) per agent (feedback by its request's agent),
 * sorted by requests, most first (ties: by name, the NULL agent last). An
 * agent appears when it has a request or a feedback in the range. *out is
 * a new array (NULL when empty); free with hs_ts_agents_free. Reads as
 * hs_store_timeseries does. */
int hs_store_agent_stats(hs_store *s, int64_t from_ms, int64_t to_ms, struct hs_ts_agent **out, size_t *n_out,
                         hs_err *err);
void hs_ts_agents_free(struct hs_ts_agent *a, size_t n);

#endif
