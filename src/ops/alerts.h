/* Alerts: what the monitor, drift jobs and experiments raise when a person
 * should look, and the sinks that carry them out: the store (always, when
 * one is given), a JSONL file, a Slack-compatible webhook, PagerDuty Events
 * API v2 and a generic webhook.
 *
 * Nothing here waits on a sink. hs_alert_raise decides throttling under a
 * short mutex and hands the alert to each sink's bounded queue; every sink
 * delivers from a thread of its own, one alert at a time and in order,
 * retrying a failure (connection refused, timeout, HTTP 5xx or 429) with
 * exponential backoff, so an alert is kept until it is delivered. It is lost
 * only when its sink's queue overflows (counted and logged; the least severe,
 * oldest alert goes first) or when hs_alerts_free runs out of time (the count
 * is returned and logged). A sink that refuses an alert for good (HTTP 4xx
 * other than 408 and 429: a wrong routing key, a malformed body) drops it,
 * counted as rejected and logged, because retrying cannot help.
 *
 * Throttling, per alert type ("high_latency", "error_rate", ...):
 *   - the first alert of a type goes out at once and opens a window of the
 *     type's throttle (default 3600 s);
 *   - further alerts of that type inside the window are counted, not sent;
 *   - when the window ends (hs_alerts_tick, which the alerts thread calls
 *     every tick_ms), the counted ones go out as ONE grouped alert,
 *     "12 high_latency alerts since 10:04 UTC (last: ...)", whose severity is
 *     the highest among them, and that alert opens the next window; a window
 *     that ends with nothing counted closes, and the next alert goes out at
 *     once again;
 *   - an alert more severe than anything sent in its window goes out at once
 *     (a warning that turns critical pages now, not an hour later) and raises
 *     the window's level; the window itself goes on.
 * A throttle of 0 s sends every alert of that type.
 *
 * Time: the manager reads a clock (unix ms) that the configuration may
 * replace, so tests drive windows with a fake clock and call hs_alerts_tick
 * themselves. Retry backoff always runs on the real monotonic clock.
 *
 * Threads: every function may be called from any thread, except that
 * hs_alerts_free must come last (no raise may run during or after it). */
#ifndef HS_OPS_ALERTS_H
#define HS_OPS_ALERTS_H

#include "base/err.h"
#include "ops/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hs_alerts hs_alerts;

enum hs_alert_severity { HS_ALERT_INFO = 0, HS_ALERT_WARNING = 1, HS_ALERT_CRITICAL = 2 };

/* "info", "warning", "critical" (the store's and PagerDuty's words). */
const char *hs_alert_severity_name(enum hs_alert_severity s);
/* HS_EINVAL for any other word. */
int hs_alert_severity_parse(const char *name, enum hs_alert_severity *out);

/* One alert as the sinks receive it. Strings are borrowed for the call. */
struct hs_alert {
    int64_t ts_ms;                   /* when it went out (unix ms, the manager's clock) */
    const char *type;                /* "high_latency": [a-z0-9_.-], 1..64 characters */
    enum hs_alert_severity severity; /* a group's: the highest among its alerts */
    const char *message;             /* one line of UTF-8 */
    int64_t count;                   /* 1, or the number of alerts a group stands for */
    int64_t first_ms;                /* the first of them (ts_ms for a single alert) */
    const char *details;             /* compact JSON object text, or NULL */
};

/* The alert as one compact JSON object, the form the JSONL file and the
 * generic webhook carry:
 *   {"type", "severity", "message", "ts_ms", "time" (ISO 8601 UTC, ms),
 *    "count", "first_ms", "first_time", "source", "details" (object or null)}
 * source is the configured source name ("hestia" by default). Returns a new
 * string (free with hs_free) or NULL when out of memory. */
char *hs_alert_to_json(const struct hs_alert *al, const char *source);

/* ---- configuration --------------------------------------------------------
 * YAML (hs_alerts_config_parse reads the `alerts:` section of a document and
 * ignores its other top-level keys, which belong to the server's config):
 *
 *   alerts:
 *     throttle_s: 3600          # default window per alert type; 0 = no throttling
 *     throttle:                 # per-type windows, in seconds
 *       high_latency: 600
 *       model_error: 0
 *     retry_initial_ms: 1000    # first retry delay; doubles per failure ...
 *     retry_max_ms: 300000      # ... up to this
 *     flush_timeout_ms: 5000    # how long hs_alerts_free keeps delivering
 *     source: hestia            # "source" in PagerDuty events and the alert JSON
 *     sinks:
 *       - kind: jsonl           # jsonl | slack | pagerduty | webhook
 *         path: ./alerts.jsonl
 *       - kind: slack
 *         url: https://hooks.slack.com/services/T000/B000/XXXX
 *         min_severity: warning # info (default) | warning | critical
 *       - kind: pagerduty
 *         routing_key: 0123456789abcdef0123456789abcdef
 *         url: https://events.pagerduty.com/v2/enqueue   # the default
 *         min_severity: critical
 *       - kind: webhook
 *         name: ops-hook        # in logs and stats (default: the kind)
 *         url: https://ops.example.org/hooks/hestia
 *         headers: {Authorization: "Bearer xyz"}
 *         timeout_ms: 10000     # per request (default 10000)
 *         queue: 256            # alerts waiting for this sink (default 256)
 *
 * The store needs no entry: hs_alerts_create given a store always writes
 * every alert there, so GET /api/alerts sees them whatever else is set. */

enum hs_alert_sink_kind {
    HS_ALERT_SINK_JSONL,
    HS_ALERT_SINK_SLACK,
    HS_ALERT_SINK_PAGERDUTY,
    HS_ALERT_SINK_WEBHOOK
};

/* "jsonl", "slack", "pagerduty", "webhook". */
const char *hs_alert_sink_kind_name(enum hs_alert_sink_kind k);

#define HS_ALERT_PAGERDUTY_URL "https://events.pagerduty.com/v2/enqueue"

struct hs_alert_header {
    char *name;  /* owned */
    char *value; /* owned */
};

/* Every string is owned by the configuration (hs_alerts_config_free). */
struct hs_alert_sink_config {
    enum hs_alert_sink_kind kind;
    char *name;        /* NULL = the kind's name */
    char *url;         /* slack, webhook (required); pagerduty (NULL = HS_ALERT_PAGERDUTY_URL) */
    char *routing_key; /* pagerduty (required) */
    char *path;        /* jsonl (required) */
    struct hs_alert_header *headers; /* sent with every request (slack, pagerduty, webhook) */
    int n_headers;
    enum hs_alert_severity min_severity; /* alerts below it skip this sink */
    int timeout_ms;                      /* per request; 0 = 10000 */
    int queue;                           /* queue length; 0 = 256 */
};

struct hs_alert_throttle {
    char *type; /* owned */
    int seconds;
};

/* The manager's clock: unix milliseconds. */
typedef int64_t (*hs_alerts_clock_fn)(void *user);

struct hs_alerts_config {
    int throttle_s;                      /* default 3600 */
    struct hs_alert_throttle *throttles; /* per-type overrides */
    int n_throttles;
    struct hs_alert_sink_config *sinks;
    int n_sinks;
    int retry_initial_ms; /* default 1000 */
    int retry_max_ms;     /* default 300000 (5 min) */
    int flush_timeout_ms; /* default 5000 */
    char *source;         /* NULL = "hestia" */
    /* Not read from YAML: */
    int tick_ms;              /* the alerts thread's period; default 1000; < 0: no thread
                                 (the caller calls hs_alerts_tick) */
    hs_alerts_clock_fn clock; /* NULL = the wall clock */
    void *clock_user;
};

/* Defaults as documented above; no sinks. */
void hs_alerts_config_default(struct hs_alerts_config *c);
/* Frees what the configuration owns and zeroes it. NULL is fine. */
void hs_alerts_config_free(struct hs_alerts_config *c);
/* Reads the `alerts:` section of the YAML document text (name is the file
 * name for messages) into c, over what it holds (start from
 * hs_alerts_config_default). Errors read "FILE:LINE: alerts.KEY.PATH: what"
 * (HS_EINVAL), or name the line of a YAML syntax error (HS_EFORMAT). Keys
 * under alerts: that are not known are errors; other top-level keys are
 * ignored. A document without alerts: leaves c as it was. On failure c keeps
 * what it held before the call. */
int hs_alerts_config_parse(struct hs_alerts_config *c, const char *yaml_text, size_t len, const char *name,
                           hs_err *err);
/* Whole-configuration checks (hs_alerts_create runs them too): each sink has
 * what its kind needs, URLs are http(s), headers hold no control characters,
 * names are unique, numbers are in range. */
int hs_alerts_config_check(const struct hs_alerts_config *c, hs_err *err);

/* ---- the manager ---------------------------------------------------------- */

/* Starts the sinks of c (and the store sink when store is not NULL) and the
 * alerts thread. c is copied; store is borrowed and must outlive the
 * manager (call hs_alerts_free before hs_store_close). A JSONL file that
 * cannot be opened for appending is an error here, not later. */
int hs_alerts_create(const struct hs_alerts_config *c, hs_store *store, hs_alerts **out, hs_err *err);

/* Stops the alerts thread, sends the groups still counting (their windows
 * cut short), and lets each sink deliver what it holds for at most
 * flush_timeout_ms (an HTTP request under way when that time ends is cut
 * within 50 ms; a store write waits at most the store's 5 s lock timeout),
 * then frees everything. Returns the number of alerts left
 * undelivered (each sink's count, summed; also logged). NULL is fine (0). */
size_t hs_alerts_free(hs_alerts *a);

/* Raises an alert; returns at once (no I/O, no waiting on a sink). message
 * is one line (control characters and invalid UTF-8 become '?'; longer than
 * 4096 bytes is cut); details_json, when not NULL, must be a JSON object
 * (at most 64 KiB). Returns HS_OK when it went out or was counted for its
 * group, HS_EINVAL for a bad type, severity, message or details. Everything
 * is copied. A NULL manager ignores the alert (HS_OK), so callers need not
 * check whether alerts are configured. */
int hs_alert_raise(hs_alerts *a, const char *type, enum hs_alert_severity severity, const char *message,
                   const char *details_json);

/* Sends the groups whose window has ended by the manager's clock and closes
 * idle windows. The alerts thread calls it every tick_ms; tests with a fake
 * clock call it after moving time. Returns the number of groups sent. */
int hs_alerts_tick(hs_alerts *a);

/* Waits until every sink's queue is empty (delivered or rejected), at most
 * timeout_ms; true when they are. For tests and the cli. */
bool hs_alerts_flush(hs_alerts *a, int timeout_ms);

/* A sink of the caller's own (a dashboard feed, a test probe): deliver runs
 * on the sink's own thread, one alert at a time, and returns HS_OK when the
 * alert is delivered, HS_EINVAL to reject it for good, any other code to have
 * it retried with backoff (err, when set, is logged). user is borrowed until
 * hs_alerts_free. Alerts raised before the call do not reach it. */
typedef int (*hs_alert_deliver_fn)(void *user, const struct hs_alert *al, hs_err *err);
int hs_alerts_add_sink(hs_alerts *a, const char *name, enum hs_alert_severity min_severity,
                       hs_alert_deliver_fn deliver, void *user, hs_err *err);

/* Counters since hs_alerts_create. */
struct hs_alerts_stats {
    uint64_t raised;     /* hs_alert_raise calls that were accepted */
    uint64_t sent;       /* alerts handed to the sinks (single, escalated and grouped) */
    uint64_t suppressed; /* raised alerts counted into a group instead of sent */
    uint64_t groups;     /* grouped alerts sent */
};
void hs_alerts_stats(hs_alerts *a, struct hs_alerts_stats *out);

struct hs_alert_sink_stats {
    char name[64];
    uint64_t delivered; /* alerts the sink accepted (HTTP 2xx, row written, line written) */
    uint64_t failures;  /* attempts that failed and were retried */
    uint64_t rejected;  /* alerts refused for good (HTTP 4xx) */
    uint64_t dropped;   /* alerts lost to a full queue */
    uint64_t queued;    /* waiting now, the one being tried included */
};
/* Sinks are numbered from 0 in the order: the store (when given), the
 * configured ones, then those added. Returns their count. */
int hs_alerts_sink_count(hs_alerts *a);
/* HS_ENOTFOUND when i is out of range. */
int hs_alerts_sink_stats(hs_alerts *a, int i, struct hs_alert_sink_stats *out);

#endif
