/* Experiments (issue 7): a route's traffic split between a control A and a
 * candidate B, as an A/B test, a shadow (B sees a copy of every request and
 * answers nobody) or a canary (B's weight follows a schedule while B stays
 * healthy), with rules that roll B back and criteria that promote it.
 *
 * Everything here is pure and deterministic: no clock, no store, no threads.
 * The server owns the clock and the windows and calls these functions; the
 * store (ops/store_experiments.h) keeps definitions, states and history.
 *
 *   hs_experiment         the definition (config `experiments:` list or the
 *                         /admin/experiments POST body), value type, no heap;
 *   hs_exp_state          what changes at run time: B's weight, the canary
 *                         step, the status;
 *   hs_experiment_pick    A or B for one request (sticky by user or key);
 *   hs_exp_canary_next    the next canary state for a clock reading;
 *   hs_exp_rollback_check the first rollback rule that fires on two windows;
 *   hs_exp_decide         the promotion criteria on per-variant aggregates. */
#ifndef HS_OPS_EXPERIMENT_H
#define HS_OPS_EXPERIMENT_H

#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HS_EXP_NAME_MAX 63    /* [A-Za-z0-9_.-], 1..63 */
#define HS_EXP_ROUTE_MAX 127  /* a model or agent name */
#define HS_EXP_TARGET_MAX 255 /* a model, adapter, agent or upstream model name */
#define HS_EXP_STEPS_MAX 32   /* canary steps */
#define HS_EXP_SHADOW_QUEUE_MAX 100000

enum hs_exp_mode { HS_EXP_AB = 0, HS_EXP_SHADOW = 1, HS_EXP_CANARY = 2 };
enum hs_exp_sticky { HS_EXP_STICKY_USER = 0, HS_EXP_STICKY_KEY = 1 };
enum hs_exp_variant { HS_EXP_A = 0, HS_EXP_B = 1 };
enum hs_exp_status { HS_EXP_ACTIVE = 0, HS_EXP_ROLLED_BACK = 1, HS_EXP_PROMOTED = 2, HS_EXP_STOPPED = 3 };

const char *hs_exp_mode_name(enum hs_exp_mode m);       /* "ab", "shadow", "canary" */
const char *hs_exp_sticky_name(enum hs_exp_sticky s);   /* "user", "key" */
const char *hs_exp_variant_name(enum hs_exp_variant v); /* "A", "B" */
const char *hs_exp_status_name(enum hs_exp_status s);   /* "active", "rolled_back", "promoted", "stopped" */
int hs_exp_status_parse(const char *s, enum hs_exp_status *out);   /* HS_EINVAL when unknown */
int hs_exp_variant_parse(const char *s, enum hs_exp_variant *out); /* "A"/"B" (any case) */

/* One canary step. Step 0 applies from the start; step i > 0 is entered
 * `after_ms` after step i-1 was entered, or at the absolute time `at_ms`
 * (whichever was given: the other is -1), and only while B is healthy. */
struct hs_exp_step {
    double weight;    /* B's share, 0..1 */
    int64_t after_ms; /* -1 when not given */
    int64_t at_ms;    /* unix ms; -1 when not given */
};

/* One rollback rule: fires when its limit is crossed and both variants
 * (for the safety rule: B) have at least min_samples requests in the window. */
struct hs_exp_rule {
    bool enabled;
    double limit;
    int min_samples;
};

/* The rules, checked in this order; the window is the span of recent
 * requests the server keeps per variant for them. */
struct hs_exp_rules {
    struct hs_exp_rule error_ratio; /* B error rate > limit x A's; default 2.0 */
    struct hs_exp_rule p95_margin;  /* B p95 > A p95 + limit ms; default 500 */
    struct hs_exp_rule safety_rate; /* B safety-flag rate > limit; default 0.05 */
    int64_t window_ms;              /* default 10 minutes */
};

struct hs_experiment {
    char name[HS_EXP_NAME_MAX + 1];
    char route[HS_EXP_ROUTE_MAX + 1];
    enum hs_exp_mode mode;
    char target_a[HS_EXP_TARGET_MAX + 1]; /* control */
    char target_b[HS_EXP_TARGET_MAX + 1]; /* candidate */
    double weight_b;                      /* ab: B's share 0..1 (A gets the rest); canary: steps[0] */
    enum hs_exp_sticky sticky_by;         /* default user */
    struct hs_exp_step steps[HS_EXP_STEPS_MAX];
    int n_steps; /* canary only (>= 1 there, 0 otherwise) */
    struct hs_exp_rules rules;
    int shadow_queue; /* shadow: requests waiting for B before copies are dropped; default 64 */
};

/* Defaults for everything but name, route and the targets. */
void hs_experiment_default(struct hs_experiment *e);
/* Checks a definition filled by hand: HS_EINVAL "experiment 'NAME': FIELD: ..." */
int hs_experiment_check(const struct hs_experiment *e, hs_err *err);

struct json_t;
struct fy_node;

/* From a JSON object (the /admin/experiments POST body, or the store's
 * definition column). Keys as in the YAML form below; unknown keys are
 * errors; numbers may also be written "5%". HS_EINVAL "experiment 'NAME':
 * KEY: what is wrong". */
int hs_experiment_from_json(struct hs_experiment *e, const struct json_t *obj, hs_err *err);
int hs_experiment_from_json_text(struct hs_experiment *e, const char *text, hs_err *err);
/* The definition as a new JSON object (every field written out, so that it
 * reads back identically with hs_experiment_from_json). NULL when out of
 * memory. */
struct json_t *hs_experiment_to_json(const struct hs_experiment *e);
/* The same as text; free with hs_free. */
char *hs_experiment_to_json_text(const struct hs_experiment *e);

/* One item of the server config's `experiments:` list (a mapping):
 *   - name: triage-v2
 *     route: triage              # the model or agent name clients ask for
 *     mode: canary               # ab | shadow | canary
 *     a: llama-3b                # control
 *     b: llama-3b+triage-v2      # candidate
 *     weight: 10%                # ab: B's share (0.1 or 10%)
 *     sticky_by: user            # user | key
 *     canary:                    # canary: the schedule
 *       - weight: 1%
 *       - {weight: 5%, after: 1h}
 *       - {weight: 25%, at: 2026-12-01T09:00:00Z}
 *     rollback:
 *       error_ratio: 2.0         # or {limit: 2.0, min_samples: 100}, or off
 *       p95_margin_ms: 500
 *       safety_rate: 0.05
 *       min_samples: 50          # the default of the three
 *       window: 10m
 *     shadow_queue: 64
 * file names the configuration in messages: "FILE:LINE: experiments[i].KEY:
 * what is wrong" (HS_EINVAL), index is i. */
int hs_experiment_parse_node(struct hs_experiment *e, struct fy_node *node, const char *file, int index,
                             hs_err *err);

/* "2026-12-01T09:00:00Z" (also with fractional seconds, or +hh:mm) ->
 * unix ms. HS_EINVAL otherwise. */
int hs_exp_parse_time(const char *s, int64_t *ms);
/* unix ms -> "2026-12-01T09:00:00Z" (whole seconds) or with ".123Z". */
void hs_exp_format_time(char *out, size_t cap, int64_t ms);

/* ---- run-time state ---- */

struct hs_exp_state {
    double weight_b;
    int step;        /* canary: the current step */
    int64_t step_ms; /* canary: when it was entered (unix ms) */
    enum hs_exp_status status;
    int64_t updated_ms; /* last change */
};

/* The state of a new experiment started at now_ms: weight_b from the
 * definition (canary: steps[0]; shadow: 0), status active. */
void hs_exp_state_init(struct hs_exp_state *st, const struct hs_experiment *e, int64_t now_ms);
/* {"weight_b":..,"step":..,"step_ms":..,"status":"active","updated_ms":..}.
 * New string (hs_free) or NULL. */
char *hs_exp_state_to_json_text(const struct hs_exp_state *st);
int hs_exp_state_from_json_text(struct hs_exp_state *st, const char *text, hs_err *err);

/* ---- assignment ---- */

/* Where key lands for this experiment: xxhash64 of (name, NUL, key) mapped
 * to [0, 1) with 53 bits. The same (name, key) always gives the same value. */
double hs_exp_hash_unit(const char *name, const char *key);

/* Which variant serves one request. With a sticky key (non-NULL, non-empty)
 * B iff hs_exp_hash_unit(name, key) < weight_b: one user sees one variant,
 * and raising the weight only moves users from A to B. Without one, rnd
 * decides (its top 53 bits as a number in [0, 1)). Shadow mode, and any
 * status but active, answer A, except promoted, which answers B. */
enum hs_exp_variant hs_experiment_pick(const struct hs_experiment *e, const struct hs_exp_state *st,
                                       const char *sticky_key, uint64_t rnd);

/* ---- canary ---- */

/* The state after a clock reading of now_ms: the next step when B is
 * healthy, the experiment is an active canary, a next step exists and it is
 * due (after_ms elapsed since step_ms, or at_ms reached). At most one step
 * per call (the server calls every few seconds, so each step gets a health
 * check); step_ms becomes now_ms and weight_b the step's weight. Returns
 * true when it advanced (*next then differs from *cur); otherwise *next is
 * *cur. next may be cur. */
bool hs_exp_canary_next(const struct hs_experiment *e, const struct hs_exp_state *cur, int64_t now_ms,
                        bool healthy, struct hs_exp_state *next);

/* ---- rollback ---- */

/* What the server's window holds for one variant. */
struct hs_exp_window {
    int64_t requests;
    int64_t errors;
    int64_t safety_flagged;
    int64_t n_latency; /* requests with a latency */
    double p95_ms;     /* over those; NaN when none */
};

enum hs_exp_rule_kind {
    HS_EXP_RULE_NONE = 0,
    HS_EXP_RULE_ERROR = 1,
    HS_EXP_RULE_P95 = 2,
    HS_EXP_RULE_SAFETY = 3
};
const char *
hs_exp_rule_name(enum hs_exp_rule_kind k); /* "none", "error_ratio", "p95_margin_ms", "safety_rate" */

/* The first rule (error, p95, safety) that fires on A's and B's windows,
 * with a reason such as "B error rate 12.0% > 2 x A's 3.0% (n=120)" in
 * reason (may be NULL); HS_EXP_RULE_NONE (and "") when none does, which
 * includes every rule below its minimum sample. */
enum hs_exp_rule_kind hs_exp_rollback_check(const struct hs_exp_rules *r, const struct hs_exp_window *a,
                                            const struct hs_exp_window *b, char *reason, size_t cap);

/* ---- decide ---- */

/* Per-variant aggregates over an experiment's records (filled by
 * hs_store_exp_variant_stats). Rates and means are NaN when undefined. */
struct hs_exp_variant_stats {
    int64_t requests, errors;
    double error_rate;
    int64_t n_latency;
    double p50_ms, p95_ms, p99_ms;
    int64_t thumbs_up, thumbs_down;
    double up_rate; /* up / (up + down) */
    int64_t safety_flagged;
    double safety_rate;
    int64_t n_confidence;
    double confidence_mean;
    /* expert scores (eval import), one value per rated request (the mean of
     * its raters), 1..5 */
    int64_t n_scored;
    double accuracy_mean, safety_score_mean;
    double *accuracy; /* n_scored per-request accuracy scores; owned (hs_exp_variant_stats_free) */
};
void hs_exp_variant_stats_free(struct hs_exp_variant_stats *v);

/* The guide's promotion criteria. Accuracy is the expert accuracy score on
 * a 0..100 scale: (score - 1) / 4 x 100, so "+2 points" is 0.08 of a score. */
struct hs_exp_decide_params {
    double accuracy_points; /* B's accuracy - A's >= this; default 2 */
    double p95_margin_ms;   /* B p95 - A p95 <= this; default 50 */
    double min_rating;      /* B's mean expert accuracy score >= this (1..5); default 4.0 */
    int64_t min_requests;   /* per variant; default 200 */
    int64_t min_scored;     /* rated requests per variant for the test; default 2 */
    double alpha;           /* Welch p < alpha; default 0.05 */
};
void hs_exp_decide_params_default(struct hs_exp_decide_params *p);

enum hs_exp_verdict { HS_EXP_PROMOTE = 0, HS_EXP_KEEP = 1, HS_EXP_NOT_ENOUGH_DATA = 2 };
const char *hs_exp_verdict_name(enum hs_exp_verdict v); /* "PROMOTE", "KEEP", "NOT ENOUGH DATA" */

enum hs_exp_check { HS_EXP_PASS = 0, HS_EXP_FAIL = 1, HS_EXP_UNKNOWN = 2 };
const char *hs_exp_check_name(enum hs_exp_check c); /* "pass", "fail", "n/a" */

#define HS_EXP_CRITERIA 7
struct hs_exp_criterion {
    const char *name; /* "accuracy", "safety", "p95_latency", "error_rate", "expert_rating",
                         "sample_size", "significance" */
    double value;     /* NaN when unknown */
    double threshold;
    enum hs_exp_check result;
    char detail[160]; /* "B 86.0 vs A 80.0 (+6.0 points, need >= +2.0)" */
};

struct hs_exp_decision {
    struct hs_exp_criterion c[HS_EXP_CRITERIA];
    enum hs_exp_verdict verdict;
    double p_value, t, df; /* Welch on the accuracy scores; NaN when not computed */
};

/* PROMOTE when every criterion passes; NOT ENOUGH DATA when a variant has
 * fewer than min_requests requests or fewer than min_scored rated ones
 * (the tests cannot be judged); KEEP otherwise. p NULL = defaults. */
void hs_exp_decide(const struct hs_exp_variant_stats *a, const struct hs_exp_variant_stats *b,
                   const struct hs_exp_decide_params *p, struct hs_exp_decision *out);

#endif
