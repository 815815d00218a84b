/* The monitor: rolling windows over the requests a server answers, the
 * statistics an operator watches (latency mean and percentiles, error rate,
 * thumbs-up/down, safety flags, confidence), a recorded baseline to compare
 * them with, and the rules that turn a comparison into alerts.
 *
 * Two windows, kept side by side:
 *   - the last N requests (a ring; N = window, default 500). Feedback has a
 *     ring of its own: the last N feedback events;
 *   - the last hour, as 60 one-minute buckets on the monitor's clock. A
 *     request or a feedback event lands in the bucket of the minute it
 *     ARRIVES in: feedback is counted when it comes, not back-dated to the
 *     request it is about (which may have left the window already). The hour
 *     window is the current minute and the 59 before it.
 * Latency percentiles are exact over the ring. In the hour window each
 * minute keeps a uniform reservoir of at most hour_samples latencies
 * (default 256) beside exact counts and sums: the mean and every rate are
 * exact, and the percentiles are exact as long as no minute saw more than
 * hour_samples requests; beyond that they are estimates from the weighted
 * reservoirs (hs_monitor_stats.latency_exact says which).
 *
 * Percentiles interpolate linearly between order statistics as
 * gsl_stats_quantile_from_sorted_data does: for n sorted values, the q
 * quantile sits at position q(n-1) (Hyndman and Fan's type 7, R's default).
 *
 * Thread-safe: hs_monitor_observe and hs_monitor_feedback take one mutex,
 * copy a few numbers and return (O(1), no allocation); the snapshot copies
 * the window under the lock and sorts outside it. */
#ifndef HS_OPS_MONITOR_H
#define HS_OPS_MONITOR_H

#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hs_monitor hs_monitor;

/* Milliseconds on some clock that never goes back (tests pass a fake one). */
typedef int64_t (*hs_monitor_clock_fn)(void *user);

struct hs_monitor_params {
    int window;                /* the last N requests (and feedback events); default 500 */
    int hour_samples;          /* latencies kept per minute of the hour window; default 256 */
    int baseline_requests;     /* the first N requests after create or a deploy become the
                                  baseline; 0 = only hs_monitor_set_baseline; default 200 */
    hs_monitor_clock_fn clock; /* NULL: the monotonic clock */
    void *clock_user;
    uint64_t seed; /* the reservoirs' random choices; default 1 */
};
void hs_monitor_params_default(struct hs_monitor_params *p);

/* One finished request. */
struct hs_monitor_obs {
    double latency_ms;   /* end to end; < 0 or NaN when not measured (not in latency stats) */
    bool error;          /* the request failed (any non-2xx answer) */
    bool safety_flagged; /* at least one safety flag was raised on the answer */
    double confidence;   /* 0..1; < 0 or NaN when unknown */
};

enum hs_monitor_window { HS_MON_REQUESTS = 0, HS_MON_HOUR = 1 };
const char *hs_monitor_window_name(enum hs_monitor_window w); /* "requests", "hour" */

/* What a window holds now. Rates are NaN (JSON null) when their
 * denominator is 0; latency figures are NaN without latency samples. */
struct hs_monitor_stats {
    enum hs_monitor_window window;
    int64_t count;                                              /* requests */
    int64_t n_latency;                                          /* of which with a latency */
    double latency_mean, latency_p50, latency_p95, latency_p99; /* ms */
    bool latency_exact; /* percentiles over every latency of the window */
    int64_t errors;
    double error_rate; /* errors / count */
    int64_t thumbs_up, thumbs_down;
    double up_rate, down_rate; /* of feedback events (up + down), not of requests */
    int64_t safety_flagged;
    double safety_rate; /* safety_flagged / count */
    int64_t n_confidence;
    double confidence_mean;
};

/* params NULL = defaults. HS_EINVAL for a window or hour_samples < 1 or a
 * negative baseline_requests. */
int hs_monitor_create(const struct hs_monitor_params *params, hs_monitor **out, hs_err *err);
void hs_monitor_free(hs_monitor *m);

/* Records one request in both windows (and in the baseline being captured).
 * O(1); thread-safe. */
void hs_monitor_observe(hs_monitor *m, const struct hs_monitor_obs *o);
/* Records one feedback event (+1 thumbs up, -1 thumbs down; anything else is
 * ignored) at the time it arrives. Thread-safe. */
void hs_monitor_feedback(hs_monitor *m, int value);

/* The window's statistics now. HS_ENOMEM only. Thread-safe. */
int hs_monitor_snapshot(hs_monitor *m, enum hs_monitor_window w, struct hs_monitor_stats *out, hs_err *err);

/* ---- the baseline ----
 * One baseline at a time: the latest of an explicit hs_monitor_set_baseline
 * (`hestia baseline set`, or one read back from the store) and a capture of
 * the first baseline_requests requests after hs_monitor_mark_deploy (or after
 * create). A deploy drops the old baseline: it described the old model. */

/* Starts a new capture (no baseline until it completes; nothing happens when
 * baseline_requests is 0 except dropping the old baseline). Thread-safe. */
void hs_monitor_mark_deploy(hs_monitor *m);
/* Makes b the baseline and ends any capture. Thread-safe. */
void hs_monitor_set_baseline(hs_monitor *m, const struct hs_monitor_stats *b);
/* HS_OK with *out filled when there is a baseline, HS_ENOTFOUND while a
 * capture runs or none was set (out then untouched). The captured baseline's
 * feedback is the feedback that arrived while it was captured. */
int hs_monitor_get_baseline(hs_monitor *m, struct hs_monitor_stats *out, hs_err *err);
/* Requests captured so far and the target (0 when no capture runs). */
void hs_monitor_capture_progress(hs_monitor *m, int *captured, int *target);

/* The statistics as one JSON object (the `baselines` table's details):
 *   {"window":"requests","count":N,"errors":N,"error_rate":x,
 *    "latency_ms":{"n":N,"mean":x,"p50":x,"p95":x,"p99":x,"exact":true},
 *    "feedback":{"up":N,"down":N,"up_rate":x,"down_rate":x},
 *    "safety":{"flagged":N,"rate":x},"confidence":{"n":N,"mean":x}}
 * NaN is written as null. Doubles keep 17 significant digits, so parsing the
 * text back gives the same numbers. Returns a new string (free with hs_free)
 * or NULL when out of memory. */
char *hs_monitor_stats_to_json(const struct hs_monitor_stats *s);
/* Parses that object back (unknown keys are ignored; a missing or mistyped
 * known one is HS_EFORMAT naming it). */
int hs_monitor_stats_from_json(struct hs_monitor_stats *out, const char *text, hs_err *err);

/* ---- thresholds and breaches ---- */

struct hs_monitor_thresholds {
    int min_samples;            /* no rule fires on fewer samples; default 20 */
    double latency_p95_ms;      /* high_latency_p95: p95 above this; default 800 */
    double latency_vs_baseline; /* latency_vs_baseline: p95 above this times the baseline's; 1.5 */
    double thumbs_down_rate;    /* thumbs_down: share of down votes above this; 0.20 */
    double safety_rate;         /* safety_rate: share of flagged answers above this; 0.05 */
    double confidence_drop;     /* confidence_drop: baseline mean minus current above this; 0.15 */
    double error_rate;          /* error_rate: share of failed requests above this; 0.05 */
};
void hs_monitor_thresholds_default(struct hs_monitor_thresholds *t);

enum hs_monitor_severity { HS_SEV_INFO = 0, HS_SEV_WARNING = 1, HS_SEV_CRITICAL = 2 };
/* "info", "warning", "critical": the alerts table's words. */
const char *hs_monitor_severity_name(enum hs_monitor_severity s);

struct hs_monitor_breach {
    char type[32]; /* "high_latency_p95", "latency_vs_baseline", "thumbs_down",
                      "safety_rate", "confidence_drop", "error_rate" */
    enum hs_monitor_severity severity;
    enum hs_monitor_window window;
    double value;      /* what was measured (ms, a share, a ratio or a drop) */
    double limit;      /* the threshold it passed */
    char message[224]; /* one line with the numbers, for people */
};

/* The rules, over one window's statistics and the baseline (NULL: the two
 * baseline rules are skipped). Each rule needs min_samples of its own kind:
 * requests for latency, errors and safety; latency samples for the latency
 * rules (the baseline's too); confidence values on both sides for
 * confidence_drop; feedback events for thumbs_down. A rule fires when its
 * value is strictly above the limit; severity is critical from twice the
 * limit on (for latency_vs_baseline: a ratio of twice the factor), warning
 * below. Writes at most cap breaches to out (out may be NULL with cap 0) and
 * returns how many rules fired. */
int hs_monitor_evaluate(const struct hs_monitor_stats *s, const struct hs_monitor_stats *baseline,
                        const struct hs_monitor_thresholds *t, struct hs_monitor_breach *out, int cap);
/* One round of the monitor thread: snapshots both windows, reads the
 * baseline (none is fine) and evaluates each window; the requests window's
 * breaches come first. Returns how many rules fired in all (at most cap
 * written to out) or a negative HS_E* code (HS_ENOMEM). Thread-safe. */
int hs_monitor_check(hs_monitor *m, const struct hs_monitor_thresholds *t, struct hs_monitor_breach *out,
                     int cap, hs_err *err);
/* {"window":"hour","severity":"warning","value":x,"limit":x}: an alert's
 * details. New string (hs_free) or NULL when out of memory. The severities'
 * numbers are those of enum hs_alert_severity (ops/alerts.h). */
char *hs_monitor_breach_details_json(const struct hs_monitor_breach *b);

/* ---- configuration (monitor_config.c) ----
 * The `monitor:` section of hestia.yaml:
 *   monitor:
 *     window: 500               # the last N requests
 *     hour_samples: 256         # latencies kept per minute of the hour window
 *     baseline_requests: 200    # the first N requests after a deploy (0: only `baseline set`)
 *     interval_s: 10            # how often the monitor thread evaluates
 *     min_samples: 20
 *     thresholds:
 *       latency_p95_ms: 800
 *       latency_vs_baseline: 1.5
 *       thumbs_down_rate: 0.20
 *       safety_rate: 0.05
 *       confidence_drop: 0.15
 *       error_rate: 0.05 */
struct hs_monitor_config {
    bool enabled; /* false: no windows, no thread, no breach alerts; default true */
    struct hs_monitor_params params; /* clock and seed are not in the file */
    struct hs_monitor_thresholds thresholds;
    int interval_s; /* default 10 */
};
void hs_monitor_config_default(struct hs_monitor_config *c);

struct hs_drift_config; /* ops/drift.h */
struct fy_node;         /* libfyaml */

/* Reads the `monitor:` and `drift:` sections of a whole configuration file
 * (other top-level keys belong to the server's reader and are skipped); mc
 * or dc may be NULL to skip that section. Fields absent from the file keep
 * the values already in the structs. Errors read "NAME:LINE: monitor.KEY:
 * what is wrong" (HS_EINVAL), or "NAME:LINE:COL: ..." for YAML syntax
 * (HS_EFORMAT). On error the structs may be partly updated. */
int hs_monitor_config_parse(struct hs_monitor_config *mc, struct hs_drift_config *dc, const char *text,
                            size_t len, const char *name, hs_err *err);
/* The same for one section's node, for a caller that walks the document
 * itself (the server's reader); name is the file name for messages. */
int hs_monitor_config_parse_node(struct hs_monitor_config *mc, struct fy_node *section, const char *name,
                                 hs_err *err);
int hs_drift_config_parse_node(struct hs_drift_config *dc, struct fy_node *section, const char *name,
                               hs_err *err);

#endif
