/* (issue 6) Reading request records back for the operator's commands:
 * the last N answered inference requests, with what the monitor needs. */
#ifndef HS_OPS_STORE_RECORDS_H
#define HS_OPS_STORE_RECORDS_H

#include "ops/store.h"

#include <stdbool.h>
#include <stdint.h>

struct hs_record_obs {
    int64_t ts_ms;
    int status;
    double latency_ms;  /* < 0 when not stored */
    double confidence;  /* < 0 when not stored */
    bool safety_flagged;
    int feedback;       /* 1, -1, or 0 when none */
};

typedef void (*hs_record_obs_fn)(void *user, const struct hs_record_obs *r);
/* Calls fn for the last `limit` inference requests that reached a model
 * (chat, completions, embeddings; not refusals before one was chosen, nor
 * the /v1/assess envelopes, whose agents are records of their own), oldest
 * first: what the server's monitor observes. Flushes this handle's queue first. fn runs with
 * the store's shared connection held: it must not call the store. */
int hs_store_recent_requests(hs_store *s, int limit, hs_record_obs_fn fn, void *user, hs_err *err);

#endif
