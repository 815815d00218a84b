/* The monitor's rules (statistics + baseline + thresholds -> breaches) and
 * the JSON form of a window's statistics that baselines are stored in. */
#include "ops/monitor.h"

#include "base/mem.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void hs_monitor_thresholds_default(struct hs_monitor_thresholds *t)
{
    t->min_samples = 20;
    t->latency_p95_ms = 800;
    t->latency_vs_baseline = 1.5;
    t->thumbs_down_rate = 0.20;
    t->safety_rate = 0.05;
    t->confidence_drop = 0.15;
    t->error_rate = 0.05;
}

const char *hs_monitor_severity_name(enum hs_monitor_severity s)
{
    switch (s) {
    case HS_SEV_CRITICAL:
        return "critical";
    case HS_SEV_WARNING:
        return "warning";
    case HS_SEV_INFO:
        break;
    }
    return "info";
}

/* ---- the rules ---- */

struct sink {
    struct hs_monitor_breach *out;
    int cap, n;
    enum hs_monitor_window window;
};

static void fire(struct sink *k, const char *type, double value, double limit, bool critical, const char *fmt,
                 ...) __attribute__((format(printf, 6, 7)));

static void fire(struct sink *k, const char *type, double value, double limit, bool critical, const char *fmt,
                 ...)
{
    if (k->n < k->cap) {
        struct hs_monitor_breach *b = &k->out[k->n];
        memset(b, 0, sizeof *b);
        snprintf(b->type, sizeof b->type, "%s", type);
        b->severity = critical ? HS_SEV_CRITICAL : HS_SEV_WARNING;
        b->window = k->window;
        b->value = value;
        b->limit = limit;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->message, sizeof b->message, fmt, ap);
        va_end(ap);
    }
    k->n++;
}

/* value > limit, both finite; a limit <= 0 (or NaN) turns the rule off. */
static bool above(double value, double limit)
{
    return isfinite(value) && isfinite(limit) && limit > 0 && value > limit;
}

int hs_monitor_evaluate(const struct hs_monitor_stats *s, const struct hs_monitor_stats *base,
                        const struct hs_monitor_thresholds *t, struct hs_monitor_breach *out, int cap)
{
    struct sink k = {out, out ? cap : 0, 0, s->window};
    /* "the last 500 requests" or "the last hour" */
    char win[48];
    if (s->window == HS_MON_HOUR)
        snprintf(win, sizeof win, "the last hour");
    else
        snprintf(win, sizeof win, "the last %lld requests", (long long)s->count);
    int64_t min = t->min_samples > 0 ? t->min_samples : 1;

    if (s->n_latency >= min && above(s->latency_p95, t->latency_p95_ms))
        fire(&k, "high_latency_p95", s->latency_p95, t->latency_p95_ms,
             s->latency_p95 >= 2 * t->latency_p95_ms,
             "p95 latency %.0f ms over %s (%lld timed) is above %.0f ms", s->latency_p95, win,
             (long long)s->n_latency, t->latency_p95_ms);

    if (base && s->n_latency >= min && base->n_latency >= min && isfinite(base->latency_p95) &&
        base->latency_p95 > 0) {
        double r = s->latency_p95 / base->latency_p95;
        if (above(r, t->latency_vs_baseline))
            fire(&k, "latency_vs_baseline", r, t->latency_vs_baseline, r >= 2 * t->latency_vs_baseline,
                 "p95 latency %.0f ms over %s is %.2fx the baseline's %.0f ms (limit %.2fx)", s->latency_p95,
                 win, r, base->latency_p95, t->latency_vs_baseline);
    }

    if (s->count >= min && above(s->error_rate, t->error_rate))
        fire(&k, "error_rate", s->error_rate, t->error_rate, s->error_rate >= 2 * t->error_rate,
             "%.1f%% of requests failed over %s (%lld of %lld), above %.1f%%", 100 * s->error_rate, win,
             (long long)s->errors, (long long)s->count, 100 * t->error_rate);

    int64_t n_fb = s->thumbs_up + s->thumbs_down;
    /* the requests window's feedback is the last N feedback events */
    if (n_fb >= min && above(s->down_rate, t->thumbs_down_rate))
        fire(&k, "thumbs_down", s->down_rate, t->thumbs_down_rate, s->down_rate >= 2 * t->thumbs_down_rate,
             "%.1f%% thumbs down %s (%lld of %lld feedback events), above %.1f%%", 100 * s->down_rate,
             s->window == HS_MON_HOUR ? "over the last hour" : "in the latest feedback",
             (long long)s->thumbs_down, (long long)n_fb, 100 * t->thumbs_down_rate);

    if (s->count >= min && above(s->safety_rate, t->safety_rate))
        fire(&k, "safety_rate", s->safety_rate, t->safety_rate, s->safety_rate >= 2 * t->safety_rate,
             "%.1f%% of answers raised a safety flag over %s (%lld of %lld), above %.1f%%",
             100 * s->safety_rate, win, (long long)s->safety_flagged, (long long)s->count,
             100 * t->safety_rate);

    if (base && s->n_confidence >= min && base->n_confidence >= min) {
        double drop = base->confidence_mean - s->confidence_mean;
        if (above(drop, t->confidence_drop))
            fire(&k, "confidence_drop", drop, t->confidence_drop, drop >= 2 * t->confidence_drop,
                 "mean confidence %.3f over %s is %.3f below the baseline's %.3f (limit %.3f)",
                 s->confidence_mean, win, drop, base->confidence_mean, t->confidence_drop);
    }
    return k.n;
}

int hs_monitor_check(hs_monitor *m, const struct hs_monitor_thresholds *t, struct hs_monitor_breach *out,
                     int cap, hs_err *err)
{
    struct hs_monitor_stats base, req, hour;
    bool have_base = hs_monitor_get_baseline(m, &base, NULL) == HS_OK;
    int rc = hs_monitor_snapshot(m, HS_MON_REQUESTS, &req, err);
    if (rc == HS_OK)
        rc = hs_monitor_snapshot(m, HS_MON_HOUR, &hour, err);
    if (rc != HS_OK)
        return rc;
    if (!out || cap < 0)
        cap = 0;
    int n = hs_monitor_evaluate(&req, have_base ? &base : NULL, t, out, cap);
    int written = n < cap ? n : cap;
    return n +
           hs_monitor_evaluate(&hour, have_base ? &base : NULL, t, out ? out + written : NULL, cap - written);
}

/* ---- JSON ---- */

/* A number, or null for NaN (JSON has no NaN). */
static json_t *num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

char *hs_monitor_breach_details_json(const struct hs_monitor_breach *b)
{
    json_t *o =
        json_pack("{s:s,s:s,s:o,s:o}", "window", hs_monitor_window_name(b->window), "severity",
                  hs_monitor_severity_name(b->severity), "value", num(b->value), "limit", num(b->limit));
    if (!o)
        return NULL;
    char *txt = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    char *copy = txt ? hs_strdup(txt) : NULL;
    free(txt);
    return copy;
}

char *hs_monitor_stats_to_json(const struct hs_monitor_stats *s)
{
    json_t *lat = json_pack("{s:I,s:o,s:o,s:o,s:o,s:b}", "n", (json_int_t)s->n_latency, "mean",
                            num(s->latency_mean), "p50", num(s->latency_p50), "p95", num(s->latency_p95),
                            "p99", num(s->latency_p99), "exact", s->latency_exact);
    json_t *fb =
        json_pack("{s:I,s:I,s:o,s:o}", "up", (json_int_t)s->thumbs_up, "down", (json_int_t)s->thumbs_down,
                  "up_rate", num(s->up_rate), "down_rate", num(s->down_rate));
    json_t *saf =
        json_pack("{s:I,s:o}", "flagged", (json_int_t)s->safety_flagged, "rate", num(s->safety_rate));
    json_t *conf = json_pack("{s:I,s:o}", "n", (json_int_t)s->n_confidence, "mean", num(s->confidence_mean));
    /* "o" steals each sub-object, also when the pack fails */
    json_t *o =
        json_pack("{s:s,s:I,s:I,s:o,s:o,s:o,s:o,s:o}", "window", hs_monitor_window_name(s->window), "count",
                  (json_int_t)s->count, "errors", (json_int_t)s->errors, "error_rate", num(s->error_rate),
                  "latency_ms", lat, "feedback", fb, "safety", saf, "confidence", conf);
    if (!o)
        return NULL;
    char *txt = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!txt)
        return NULL;
    char *copy = hs_strdup(txt);
    free(txt);
    return copy;
}

/* Reads obj[key] (path for messages) as a count. */
static int get_count(json_t *obj, const char *key, const char *path, int64_t *out, hs_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return hs_err_set(err, HS_EFORMAT, "baseline: %s%s must be a count (a whole number >= 0)", path, key);
    *out = (int64_t)json_integer_value(v);
    return HS_OK;
}

/* Reads obj[key] as a number or null (NaN). */
static int get_num(json_t *obj, const char *key, const char *path, double *out, hs_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_null(v)) {
        *out = NAN;
        return HS_OK;
    }
    if (!json_is_number(v))
        return hs_err_set(err, HS_EFORMAT, "baseline: %s%s must be a number or null", path, key);
    *out = json_number_value(v);
    return HS_OK;
}

static int get_obj(json_t *obj, const char *key, json_t **out, hs_err *err)
{
    *out = json_object_get(obj, key);
    if (!json_is_object(*out))
        return hs_err_set(err, HS_EFORMAT, "baseline: %s must be an object", key);
    return HS_OK;
}

int hs_monitor_stats_from_json(struct hs_monitor_stats *out, const char *text, hs_err *err)
{
    json_error_t je;
    json_t *o = json_loads(text ? text : "", JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return hs_err_set(err, HS_EFORMAT, "baseline: not JSON (line %d: %s)", je.line, je.text);
    struct hs_monitor_stats s;
    memset(&s, 0, sizeof s);
    json_t *lat, *fb, *saf, *conf;
    int rc = HS_OK;
    if (!json_is_object(o)) {
        rc = hs_err_set(err, HS_EFORMAT, "baseline: expected a JSON object");
        goto done;
    }
    const char *w = json_string_value(json_object_get(o, "window"));
    if (!w || (strcmp(w, "requests") != 0 && strcmp(w, "hour") != 0)) {
        rc = hs_err_set(err, HS_EFORMAT, "baseline: window must be \"requests\" or \"hour\"");
        goto done;
    }
    s.window = strcmp(w, "hour") == 0 ? HS_MON_HOUR : HS_MON_REQUESTS;
    if ((rc = get_count(o, "count", "", &s.count, err)) ||
        (rc = get_count(o, "errors", "", &s.errors, err)) ||
        (rc = get_num(o, "error_rate", "", &s.error_rate, err)) ||
        (rc = get_obj(o, "latency_ms", &lat, err)) || (rc = get_obj(o, "feedback", &fb, err)) ||
        (rc = get_obj(o, "safety", &saf, err)) || (rc = get_obj(o, "confidence", &conf, err)))
        goto done;
    if ((rc = get_count(lat, "n", "latency_ms.", &s.n_latency, err)) ||
        (rc = get_num(lat, "mean", "latency_ms.", &s.latency_mean, err)) ||
        (rc = get_num(lat, "p50", "latency_ms.", &s.latency_p50, err)) ||
        (rc = get_num(lat, "p95", "latency_ms.", &s.latency_p95, err)) ||
        (rc = get_num(lat, "p99", "latency_ms.", &s.latency_p99, err)) ||
        (rc = get_count(fb, "up", "feedback.", &s.thumbs_up, err)) ||
        (rc = get_count(fb, "down", "feedback.", &s.thumbs_down, err)) ||
        (rc = get_num(fb, "up_rate", "feedback.", &s.up_rate, err)) ||
        (rc = get_num(fb, "down_rate", "feedback.", &s.down_rate, err)) ||
        (rc = get_count(saf, "flagged", "safety.", &s.safety_flagged, err)) ||
        (rc = get_num(saf, "rate", "safety.", &s.safety_rate, err)) ||
        (rc = get_count(conf, "n", "confidence.", &s.n_confidence, err)) ||
        (rc = get_num(conf, "mean", "confidence.", &s.confidence_mean, err)))
        goto done;
    json_t *ex = json_object_get(lat, "exact");
    if (ex && !json_is_boolean(ex)) {
        rc = hs_err_set(err, HS_EFORMAT, "baseline: latency_ms.exact must be true or false");
        goto done;
    }
    s.latency_exact = ex ? json_is_true(ex) : true;
    *out = s;
done:
    json_decref(o);
    return rc;
}
