/* The alerts module's insides, shared by alerts.c (the manager),
 * alert_sinks.c (the queue, worker and retry every sink shares) and
 * alert_sinks_*.c (what each kind of sink does with one alert). Nothing
 * outside src/ops/alert*.c includes this. */
#ifndef HS_OPS_ALERTS_IMPL_H
#define HS_OPS_ALERTS_IMPL_H

#include "ops/alerts.h"

#include <stdatomic.h>

#define HS_ALERT_TYPE_MAX 64           /* bytes of a type, without the NUL */
#define HS_ALERT_MESSAGE_MAX 4096      /* bytes of a message kept */
#define HS_ALERT_DETAILS_MAX 65536     /* bytes of details accepted */
#define HS_ALERT_QUEUE_DEFAULT 256     /* alerts a sink holds by default */
#define HS_ALERT_TIMEOUT_DEFAULT 10000 /* ms per HTTP request by default */

/* One alert shared by the sinks that queued it: the strings of al point into
 * text[] (one allocation), and the last sink to let go frees it. */
struct hs_alert_item {
    _Atomic int refs;
    struct hs_alert al;
    char text[];
};

/* Builds an item from al (strings copied); refs starts at 1. NULL when out
 * of memory. */
struct hs_alert_item *hs_alert_item_new(const struct hs_alert *al);
void hs_alert_item_unref(struct hs_alert_item *it);

typedef struct hs_alert_sink hs_alert_sink;

/* What a kind of sink does. deliver returns HS_OK (delivered), HS_EINVAL
 * (refused for good: drop it) or another code (retry); it may set
 * *retry_after_ms to a delay the receiver asked for (HTTP Retry-After). It
 * runs on the sink's own thread only. destroy frees state (after the thread
 * has ended). */
struct hs_alert_sink_ops {
    int (*deliver)(hs_alert_sink *s, void *state, const struct hs_alert *al, int64_t *retry_after_ms,
                   hs_err *err);
    void (*destroy)(void *state);
};

struct hs_alert_sink_params {
    const char *name;
    enum hs_alert_severity min_severity;
    int queue;            /* capacity; >= 1 */
    int retry_initial_ms; /* >= 1 */
    int retry_max_ms;     /* >= retry_initial_ms */
};

/* Starts a sink's thread. Takes ownership of state (destroyed by
 * hs_alert_sink_stop, or here on failure). */
int hs_alert_sink_start(const struct hs_alert_sink_params *p, const struct hs_alert_sink_ops *ops,
                        void *state, hs_alert_sink **out, hs_err *err);
/* Queues it (adding a reference) when its severity reaches the sink's
 * minimum. Never waits for the sink's thread: a full queue drops the oldest
 * of the least severe alerts, or it when none is less severe. */
void hs_alert_sink_offer(hs_alert_sink *s, struct hs_alert_item *it);
/* True when nothing is queued or being tried. */
bool hs_alert_sink_idle(hs_alert_sink *s);
/* Tells the thread to stop once its queue is empty or deadline_ns
 * (monotonic) has passed, whichever comes first; returns at once. Calling it
 * on every sink before stopping any lets them all drain at the same time. */
void hs_alert_sink_begin_stop(hs_alert_sink *s, int64_t deadline_ns);
/* begin_stop (unless done already), waits for the thread, frees the sink and
 * returns how many alerts it still held. */
size_t hs_alert_sink_stop(hs_alert_sink *s, int64_t deadline_ns);
void hs_alert_sink_get_stats(hs_alert_sink *s, struct hs_alert_sink_stats *out);
const char *hs_alert_sink_name(const hs_alert_sink *s);
/* True once the sink is stopping and its deadline has passed: a request
 * under way should give up (the HTTP sinks ask between polls). */
bool hs_alert_sink_should_abort(hs_alert_sink *s);

/* Each kind's constructor: checks its configuration and builds its state
 * and ops (alert_sinks_file.c, alert_sinks_http.c). */
int hs_alert_sink_jsonl_new(const struct hs_alert_sink_config *c, const char *source,
                            const struct hs_alert_sink_ops **ops, void **state, hs_err *err);
int hs_alert_sink_store_new(hs_store *store, const struct hs_alert_sink_ops **ops, void **state, hs_err *err);
int hs_alert_sink_http_new(const struct hs_alert_sink_config *c, const char *source,
                           const struct hs_alert_sink_ops **ops, void **state, hs_err *err);

/* A valid alert type: [a-z0-9_.-], 1..HS_ALERT_TYPE_MAX bytes. */
bool hs_alert_type_ok(const char *t);

/* "2026-11-26T12:00:00.123Z" into buf (at least 32 bytes). */
void hs_alert_iso_time(char *buf, size_t cap, int64_t ms);

#endif
