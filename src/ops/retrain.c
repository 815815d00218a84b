/* The retraining criteria over the store: feedback and safety flags of the
 * recent window, the drift runs, and the model's age. */
#include "ops/retrain.h"
#include "ops/store_impl.h"
#include "ops/store_ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define DAY_MS (86400LL * 1000)

const char *hs_verdict_name(enum hs_verdict v)
{
    return v == HS_VERDICT_RETRAIN ? "retrain" : v == HS_VERDICT_OK ? "ok" : "unknown";
}

void hs_retrain_params_default(struct hs_retrain_params *p, int64_t now_ms)
{
    memset(p, 0, sizeof *p);
    p->now_ms = now_ms;
    p->window_days = 30;
    p->min_satisfaction = 0.60;
    p->max_safety_rate = 0.05;
    p->drift_weeks = 4;
    p->max_age_days = 183;
}

/* Two counts from one query with one time parameter. */
static int counts(hs_store *s, const char *sql, int64_t since, int64_t *a, int64_t *b, hs_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = HS_OK;
    *a = *b = 0;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return hs_store_sql_err(err, HS_EIO, s->db, "retrain report");
    sqlite3_bind_int64(st, 1, since);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *a = sqlite3_column_int64(st, 0);
        *b = sqlite3_column_int64(st, 1);
    } else {
        rc = hs_store_sql_err(err, HS_EIO, s->db, "retrain report");
    }
    sqlite3_finalize(st);
    return rc;
}

struct drift_scan {
    int64_t since;
    bool have_concept;
    bool concept_drifted;
    double concept_score;
    int64_t concept_ts;
    int n_data, n_data_drifted;
    int64_t oldest_data, newest_data;
};

static void scan_run(void *user, const struct hs_drift_run *r)
{
    struct drift_scan *d = user;
    if (!strcmp(r->kind, "concept")) {
        if (!d->have_concept) { /* newest first: the first is the latest */
            d->have_concept = true;
            d->concept_drifted = !strcmp(r->status, "DRIFTED");
            d->concept_score = r->score;
            d->concept_ts = r->ts_ms;
        }
        return;
    }
    if (r->ts_ms < d->since)
        return;
    d->n_data++;
    d->n_data_drifted += !strcmp(r->status, "DRIFTED");
    if (!d->oldest_data || r->ts_ms < d->oldest_data)
        d->oldest_data = r->ts_ms;
    if (r->ts_ms > d->newest_data)
        d->newest_data = r->ts_ms;
}

static void set(struct hs_retrain_criterion *c, const char *name, enum hs_verdict v, double value, double limit)
{
    c->name = name;
    c->verdict = v;
    c->value = value;
    c->limit = limit;
}

int hs_retrain_evaluate(hs_store *s, const struct hs_retrain_params *p, struct hs_retrain_report *out,
                        hs_err *err)
{
    memset(out, 0, sizeof *out);
    const int64_t since = p->now_ms - (int64_t)p->window_days * DAY_MS;
    int64_t up = 0, down = 0, answered = 0, flagged = 0;
    struct drift_scan d = {.since = p->now_ms - (int64_t)p->drift_weeks * 7 * DAY_MS};
    hs_store_flush(s);
    pthread_mutex_lock(&s->dblock);
    int rc = counts(s,
                    "SELECT coalesce(sum(feedback = 1), 0), coalesce(sum(feedback = -1), 0) FROM feedback"
                    " WHERE updated_ms >= ?",
                    since, &up, &down, err);
    if (!rc)
        rc = counts(s,
                    "SELECT count(*), coalesce(sum(safety_flags IS NOT NULL AND safety_flags != ''), 0)"
                    " FROM requests WHERE ts_ms >= ? AND backend IS NOT NULL"
                    " AND endpoint IN ('/v1/chat/completions', '/v1/completions')",
                    since, &answered, &flagged, err);
    pthread_mutex_unlock(&s->dblock);
    if (!rc)
        rc = hs_store_drift_list(s, NULL, 0, scan_run, &d, err);
    if (rc)
        return rc;

    struct hs_retrain_criterion *c = out->c;
    /* concept drift: the latest run */
    if (!d.have_concept) {
        set(&c[0], "concept_drift", HS_VERDICT_UNKNOWN, NAN, 0);
        snprintf(c[0].text, sizeof c[0].text, "no concept drift run yet (hestia drift concept)");
    } else {
        set(&c[0], "concept_drift", d.concept_drifted ? HS_VERDICT_RETRAIN : HS_VERDICT_OK, d.concept_score, 0);
        snprintf(c[0].text, sizeof c[0].text, "latest run %s, accuracy %.1f%%, %.1f days ago",
                 d.concept_drifted ? "DRIFTED" : "STABLE", d.concept_score,
                 (double)(p->now_ms - d.concept_ts) / DAY_MS);
    }
    /* satisfaction */
    if (up + down == 0) {
        set(&c[1], "satisfaction", HS_VERDICT_UNKNOWN, NAN, p->min_satisfaction);
        snprintf(c[1].text, sizeof c[1].text, "no feedback in the last %d days", p->window_days);
    } else {
        double sat = (double)up / (double)(up + down);
        set(&c[1], "satisfaction", sat < p->min_satisfaction ? HS_VERDICT_RETRAIN : HS_VERDICT_OK, sat,
            p->min_satisfaction);
        snprintf(c[1].text, sizeof c[1].text, "%.1f%% thumbs up (%lld up, %lld down in %d days), limit %.0f%%",
                 100 * sat, (long long)up, (long long)down, p->window_days, 100 * p->min_satisfaction);
    }
    /* safety flags */
    if (answered == 0) {
        set(&c[2], "safety_flag_rate", HS_VERDICT_UNKNOWN, NAN, p->max_safety_rate);
        snprintf(c[2].text, sizeof c[2].text, "no answers in the last %d days", p->window_days);
    } else {
        double rate = (double)flagged / (double)answered;
        set(&c[2], "safety_flag_rate", rate > p->max_safety_rate ? HS_VERDICT_RETRAIN : HS_VERDICT_OK, rate,
            p->max_safety_rate);
        snprintf(c[2].text, sizeof c[2].text, "%.2f%% of %lld answers flagged in %d days, limit %.0f%%",
                 100 * rate, (long long)answered, p->window_days, 100 * p->max_safety_rate);
    }
    /* data drift sustained: every run of the period drifted, and the runs cover it (weekly runs) */
    double span_days = d.n_data ? (double)(d.newest_data - d.oldest_data) / DAY_MS : 0;
    double need_days = p->drift_weeks * 7.0 - 7.0; /* weekly runs: the first and last are 3 weeks apart */
    if (d.n_data == 0) {
        set(&c[3], "data_drift", HS_VERDICT_UNKNOWN, NAN, p->drift_weeks);
        snprintf(c[3].text, sizeof c[3].text, "no data drift run in the last %d weeks (hestia drift data)",
                 p->drift_weeks);
    } else {
        bool sustained = d.n_data_drifted == d.n_data && span_days >= need_days;
        set(&c[3], "data_drift", sustained ? HS_VERDICT_RETRAIN : HS_VERDICT_OK, d.n_data_drifted,
            p->drift_weeks);
        snprintf(c[3].text, sizeof c[3].text, "%d of %d runs DRIFTED over %.1f days (sustained: all, over %d weeks)",
                 d.n_data_drifted, d.n_data, span_days, p->drift_weeks);
    }
    /* age */
    if (p->trained_ms <= 0) {
        set(&c[4], "model_age", HS_VERDICT_UNKNOWN, NAN, p->max_age_days);
        snprintf(c[4].text, sizeof c[4].text, "training date unknown (--trained YYYY-MM-DD)");
    } else {
        double days = (double)(p->now_ms - p->trained_ms) / DAY_MS;
        set(&c[4], "model_age", days > p->max_age_days ? HS_VERDICT_RETRAIN : HS_VERDICT_OK, days,
            p->max_age_days);
        snprintf(c[4].text, sizeof c[4].text, "trained %.0f days ago, limit %d days", days, p->max_age_days);
    }
    for (int i = 0; i < HS_RETRAIN_N; i++)
        out->retrain |= c[i].verdict == HS_VERDICT_RETRAIN;
    return HS_OK;
}
