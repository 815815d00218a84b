/* Serving metrics in the Prometheus text format, named and shaped as vLLM's
 * (with the hestia: prefix), every series labelled with model="...":
 *   hestia:request_success_total{finished_reason}  hestia:requests_total{status}
 *   hestia:prompt_tokens_total  hestia:generation_tokens_total
 *   hestia:time_to_first_token_seconds  hestia:inter_token_latency_seconds
 *   hestia:e2e_request_latency_seconds  hestia:request_queue_time_seconds (histograms)
 *   hestia:num_requests_running  hestia:num_requests_waiting  hestia:kv_cache_usage_perc (gauges)
 *   hestia:prefix_cache_queries_total  hestia:prefix_cache_hits_total (tokens)
 * Updates are lock-protected and cheap; rendering takes a consistent snapshot. */
#ifndef HS_OPS_METRICS_H
#define HS_OPS_METRICS_H

#include "base/buf.h"
#include "base/err.h"

#include <stdint.h>

typedef struct hs_metrics hs_metrics;

int hs_metrics_create(hs_metrics **out, hs_err *err);
void hs_metrics_free(hs_metrics *m);

/* One finished request (any status). Times in seconds; < 0 = not measured
 * (an error before the first token has no TTFT). finish_reason may be NULL. */
struct hs_metrics_request {
    const char *model;
    int status; /* HTTP status */
    const char *finish_reason;
    int prompt_tokens, generation_tokens;
    double queue_s, ttft_s, e2e_s;
};
void hs_metrics_observe_request(hs_metrics *m, const struct hs_metrics_request *r);
/* One gap between two streamed tokens of a request. */
void hs_metrics_observe_itl(hs_metrics *m, const char *model, double seconds);

/* Gauges and cumulative counters the engine keeps itself, read at render time. */
struct hs_metrics_engine {
    int running, waiting;
    double kv_usage; /* 0..1 */
    uint64_t prefix_queries, prefix_hits;
};
typedef void (*hs_metrics_engine_fn)(void *user, const char *model, struct hs_metrics_engine *out);
/* Registers a model whose engine gauges fn fills at render time (fn NULL for
 * an upstream: it gets counters and histograms only). */
int hs_metrics_add_model(hs_metrics *m, const char *model, hs_metrics_engine_fn fn, void *user);

/* The Content-Type of the exposition, for GET /metrics. */
#define HS_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Appends the whole exposition (# HELP, # TYPE, samples) to out. */
int hs_metrics_render(hs_metrics *m, hs_buf *out);

#endif
