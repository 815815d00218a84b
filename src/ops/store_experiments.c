/* Experiments, their history, shadow answers and expert scores in the
 * store (see store_experiments.h). Everything runs on the shared connection
 * under dblock; a change of state and its event are one transaction, so the
 * history never disagrees with the state a restart resumes. */
#include "ops/store_experiments.h"
#include "ops/store_impl.h"

#include "base/log.h"
#include "base/mem.h"

#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <string.h>

/* ---- small helpers ---- */

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_real(sqlite3_stmt *st, int i, double x, bool ok)
{
    if (ok && isfinite(x))
        sqlite3_bind_double(st, i, x);
    else
        sqlite3_bind_null(st, i);
}

static double col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static int prep(hs_store *s, const char *sql, sqlite3_stmt **st, hs_err *err, const char *what)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return hs_store_sql_err(err, HS_EIO, s->db, what);
    }
    return HS_OK;
}

static int begin(hs_store *s, hs_err *err, const char *what)
{
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return hs_store_sql_err(err, HS_EIO, s->db, what);
    return HS_OK;
}

static int end(hs_store *s, int rc, hs_err *err, const char *what)
{
    if (rc == HS_OK && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = hs_store_sql_err(err, HS_EIO, s->db, what);
    if (rc != HS_OK)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int add_event(hs_store *s, const char *name, int64_t ts, const char *kind, double weight,
                     const char *reason, hs_err *err)
{
    sqlite3_stmt *st;
    int rc = prep(s, "INSERT INTO experiment_events (name, ts_ms, kind, weight_b, reason) VALUES (?,?,?,?,?)",
                  &st, err, "recording an experiment event");
    if (rc)
        return rc;
    bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, ts);
    bind_text(st, 3, kind);
    bind_real(st, 4, weight, true);
    bind_text(st, 5, reason);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = hs_store_sql_err(err, HS_EIO, s->db, "recording an experiment event");
    sqlite3_finalize(st);
    return rc;
}

static int write_state(hs_store *s, const char *name, const struct hs_exp_state *stt, hs_err *err)
{
    char *js = hs_exp_state_to_json_text(stt);
    if (!js)
        return hs_err_set(err, HS_ENOMEM, "experiment state: out of memory");
    sqlite3_stmt *st;
    int rc = prep(s, "UPDATE experiments SET state = ?, status = ?, updated_ms = ? WHERE name = ?", &st, err,
                  "writing an experiment's state");
    if (!rc) {
        bind_text(st, 1, js);
        bind_text(st, 2, hs_exp_status_name(stt->status));
        sqlite3_bind_int64(st, 3, stt->updated_ms);
        bind_text(st, 4, name);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "writing an experiment's state");
        else if (sqlite3_changes(s->db) == 0)
            rc = hs_err_set(err, HS_ENOTFOUND, "no experiment is named '%s'", name);
        sqlite3_finalize(st);
    }
    hs_free(js);
    return rc;
}

/* Reads the definition and state columns of one row. */
static int read_row(sqlite3_stmt *st, struct hs_experiment *e, struct hs_exp_state *stt, hs_err *err)
{
    struct hs_experiment tmp;
    struct hs_exp_state tst;
    int rc = hs_experiment_from_json_text(e ? e : &tmp, col_text(st, 1), err);
    if (!rc)
        rc = hs_exp_state_from_json_text(stt ? stt : &tst, col_text(st, 2), err);
    if (rc)
        hs_err_prefix(err, "stored experiment '%.80s': ", col_text(st, 0) ? col_text(st, 0) : "");
    return rc;
}

/* ---- experiments ---- */

int hs_store_exp_ensure(hs_store *s, const struct hs_experiment *e, int64_t now_ms, struct hs_exp_state *out,
                        bool *created, hs_err *err)
{
    if (created)
        *created = false;
    int rc = hs_experiment_check(e, err);
    if (rc)
        return rc;
    char *def = hs_experiment_to_json_text(e);
    if (!def)
        return hs_err_set(err, HS_ENOMEM, "experiment: out of memory");
    const char *what = "writing an experiment";
    pthread_mutex_lock(&s->dblock);
    rc = begin(s, err, what);
    if (rc) {
        pthread_mutex_unlock(&s->dblock);
        hs_free(def);
        return rc;
    }
    sqlite3_stmt *st;
    struct hs_exp_state stt;
    bool exists = false;
    rc = prep(s, "SELECT name, definition, state FROM experiments WHERE name = ?", &st, err, what);
    if (!rc) {
        bind_text(st, 1, e->name);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            exists = true;
            if (hs_exp_state_from_json_text(&stt, col_text(st, 2), err))
                rc = hs_err_prefix(err, "stored experiment '%s': ", e->name);
        } else if (step != SQLITE_DONE) {
            rc = hs_store_sql_err(err, HS_EIO, s->db, what);
        }
        sqlite3_finalize(st);
    }
    if (!rc && exists) {
        /* The stored state wins (a restart resumes it), with two exceptions
           that follow the new definition: a canary whose schedule shrank
           resumes on its last step, and an active A/B test whose weight was
           changed in the configuration takes the new weight (recorded). */
        bool changed = false;
        if (e->mode == HS_EXP_CANARY && stt.step >= e->n_steps) {
            stt.step = e->n_steps - 1;
            changed = true;
        }
        if (e->mode == HS_EXP_AB && stt.status == HS_EXP_ACTIVE && stt.weight_b != e->weight_b) {
            stt.weight_b = e->weight_b;
            stt.updated_ms = now_ms;
            changed = true;
            rc = add_event(s, e->name, now_ms, HS_EXP_EV_WEIGHT, stt.weight_b, "configuration changed", err);
        }
        if (!rc)
            rc = prep(s, "UPDATE experiments SET definition = ? WHERE name = ?", &st, err, what);
        if (!rc) {
            bind_text(st, 1, def);
            bind_text(st, 2, e->name);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = hs_store_sql_err(err, HS_EIO, s->db, what);
            sqlite3_finalize(st);
        }
        if (!rc && changed)
            rc = write_state(s, e->name, &stt, err);
    } else if (!rc) {
        hs_exp_state_init(&stt, e, now_ms);
        char *js = hs_exp_state_to_json_text(&stt);
        rc = js ? prep(s,
                       "INSERT INTO experiments (name, definition, state, status, updated_ms) VALUES "
                       "(?,?,?,?,?)",
                       &st, err, what)
                : hs_err_set(err, HS_ENOMEM, "experiment: out of memory");
        if (!rc) {
            bind_text(st, 1, e->name);
            bind_text(st, 2, def);
            bind_text(st, 3, js);
            bind_text(st, 4, hs_exp_status_name(stt.status));
            sqlite3_bind_int64(st, 5, now_ms);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = hs_store_sql_err(err, HS_EIO, s->db, what);
            sqlite3_finalize(st);
        }
        hs_free(js);
        if (!rc)
            rc = add_event(s, e->name, now_ms, HS_EXP_EV_CREATED, stt.weight_b, NULL, err);
    }
    rc = end(s, rc, err, what);
    pthread_mutex_unlock(&s->dblock);
    hs_free(def);
    if (!rc) {
        if (out)
            *out = stt;
        if (created)
            *created = !exists;
    }
    return rc;
}

int hs_store_exp_get(hs_store *s, const char *name, struct hs_experiment *e, struct hs_exp_state *stt,
                     hs_err *err)
{
    if (!name || !name[0])
        return hs_err_set(err, HS_EINVAL, "which experiment? (no name given)");
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT name, definition, state FROM experiments WHERE name = ?", &st, err,
                  "reading an experiment");
    if (!rc) {
        bind_text(st, 1, name);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            rc = read_row(st, e, stt, err);
        else if (step == SQLITE_DONE)
            rc = hs_err_set(err, HS_ENOTFOUND, "no experiment is named '%.80s'", name);
        else
            rc = hs_store_sql_err(err, HS_EIO, s->db, "reading an experiment");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->dblock);
    return rc;
}

int hs_store_exp_list(hs_store *s, hs_store_exp_fn fn, void *user, hs_err *err)
{
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT name, definition, state FROM experiments ORDER BY name", &st, err,
                  "reading experiments");
    if (!rc) {
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            struct hs_experiment e;
            struct hs_exp_state stt;
            hs_err e2 = {0};
            if (read_row(st, &e, &stt, &e2) == HS_OK)
                fn(user, &e, &stt);
            else
                hs_log_warn("store.experiment", "path=%s skipped=\"%s\"", s->path, e2.msg);
        }
        if (step != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "reading experiments");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->dblock);
    return rc;
}

static bool kind_ok(const char *k)
{
    static const char *const kinds[] = {HS_EXP_EV_CREATED,  HS_EXP_EV_WEIGHT,  HS_EXP_EV_ADVANCE,
                                        HS_EXP_EV_ROLLBACK, HS_EXP_EV_PROMOTE, HS_EXP_EV_STOP,
                                        HS_EXP_EV_RESUME};
    for (size_t i = 0; k && i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(k, kinds[i]))
            return true;
    return false;
}

int hs_store_exp_update(hs_store *s, const char *name, const struct hs_exp_state *stt, const char *kind,
                        const char *reason, hs_err *err)
{
    if (!name || !name[0])
        return hs_err_set(err, HS_EINVAL, "which experiment? (no name given)");
    if (!kind_ok(kind))
        return hs_err_set(err, HS_EINVAL, "experiment event kind '%s' is unknown", kind ? kind : "");
    if (!(stt->weight_b >= 0 && stt->weight_b <= 1))
        return hs_err_set(err, HS_EINVAL, "experiment '%s': weight must be in 0..1", name);
    const char *what = "updating an experiment";
    pthread_mutex_lock(&s->dblock);
    int rc = begin(s, err, what);
    if (!rc) {
        rc = write_state(s, name, stt, err);
        if (!rc)
            rc = add_event(s, name, stt->updated_ms, kind, stt->weight_b, reason, err);
        rc = end(s, rc, err, what);
    }
    pthread_mutex_unlock(&s->dblock);
    return rc;
}

int hs_store_exp_events(hs_store *s, const char *name, hs_store_exp_event_fn fn, void *user, hs_err *err)
{
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st;
    int rc = prep(s,
                  "SELECT id, ts_ms, name, kind, weight_b, reason FROM experiment_events WHERE name = ?"
                  " ORDER BY ts_ms, id",
                  &st, err, "reading experiment events");
    if (!rc) {
        bind_text(st, 1, name);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            struct hs_exp_event ev = {
                .id = sqlite3_column_int64(st, 0),
                .ts_ms = sqlite3_column_int64(st, 1),
                .name = col_text(st, 2),
                .kind = col_text(st, 3),
                .weight_b = col_real(st, 4),
                .reason = col_text(st, 5),
            };
            fn(user, &ev);
        }
        if (step != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "reading experiment events");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->dblock);
    return rc;
}

/* ---- shadow answers ---- */

int hs_store_shadow_add(hs_store *s, const struct hs_shadow_result *r, hs_err *err)
{
    if (!r->request_id || !r->request_id[0] || !r->experiment || !r->experiment[0])
        return hs_err_set(err, HS_EINVAL, "a shadow result needs a request id and an experiment");
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st;
    int rc = prep(
        s,
        "INSERT OR IGNORE INTO shadow_results (request_id, experiment, ts_ms, latency_a_ms, latency_b_ms,"
        " status_b, similarity, answer_a, answer_b) VALUES (?,?,?,?,?,?,?,?,?)",
        &st, err, "recording a shadow result");
    if (!rc) {
        bind_text(st, 1, r->request_id);
        bind_text(st, 2, r->experiment);
        sqlite3_bind_int64(st, 3, r->ts_ms ? r->ts_ms : hs_store_now_ms());
        bind_real(st, 4, r->latency_a_ms, r->latency_a_ms >= 0);
        bind_real(st, 5, r->latency_b_ms, r->latency_b_ms >= 0);
        sqlite3_bind_int(st, 6, r->status_b);
        bind_real(st, 7, r->similarity, r->similarity >= 0);
        bind_text(st, 8, r->answer_a);
        bind_text(st, 9, r->answer_b);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "recording a shadow result");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->dblock);
    return rc;
}

/* Percentile q of n sorted values, as ops/monitor.h (type 7); NaN for none. */
static double quantile(const double *v, size_t n, double q)
{
    return n ? gsl_stats_quantile_from_sorted_data(v, 1, n, q) : NAN;
}

/* Appends x to a growing array; false when out of memory. */
static bool push(double **v, size_t *n, size_t *cap, double x)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        double *nv = hs_realloc_array(*v, nc, sizeof *nv);
        if (!nv)
            return false;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = x;
    return true;
}

int hs_store_shadow_summary(hs_store *s, const char *experiment, double threshold,
                            struct hs_shadow_summary *out, hs_err *err)
{
    memset(out, 0, sizeof *out);
    out->agreement_rate = out->similarity_mean = NAN;
    out->a_p50_ms = out->a_p95_ms = out->b_p50_ms = out->b_p95_ms = NAN;
    double *la = NULL, *lb = NULL;
    size_t na = 0, ca = 0, nb = 0, cb = 0;
    double sim_sum = 0;
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st;
    int rc = prep(
        s, "SELECT latency_a_ms, latency_b_ms, status_b, similarity FROM shadow_results WHERE experiment = ?",
        &st, err, "reading shadow results");
    if (!rc) {
        bind_text(st, 1, experiment);
        int step;
        while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
            double a = col_real(st, 0), b = col_real(st, 1), sim = col_real(st, 3);
            int status = sqlite3_column_int(st, 2);
            out->n++;
            if (status < 200 || status > 299)
                out->b_errors++;
            if (isfinite(sim)) {
                out->n_similarity++;
                sim_sum += sim;
                if (sim >= threshold)
                    out->agree++;
            }
            if (isfinite(a) && isfinite(b)) {
                if (!push(&la, &na, &ca, a) || !push(&lb, &nb, &cb, b))
                    rc = hs_err_set(err, HS_ENOMEM, "shadow summary: out of memory");
            }
        }
        if (!rc && step != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "reading shadow results");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->dblock);
    if (!rc) {
        if (out->n_similarity) {
            out->agreement_rate = (double)out->agree / (double)out->n_similarity;
            out->similarity_mean = sim_sum / (double)out->n_similarity;
        }
        out->n_latency = (int64_t)na;
        gsl_sort(la, 1, na);
        gsl_sort(lb, 1, nb);
        out->a_p50_ms = quantile(la, na, 0.5);
        out->a_p95_ms = quantile(la, na, 0.95);
        out->b_p50_ms = quantile(lb, nb, 0.5);
        out->b_p95_ms = quantile(lb, nb, 0.95);
    }
    hs_free(la);
    hs_free(lb);
    return rc;
}

int hs_store_shadow_disagreements(hs_store *s, const char *experiment, double threshold, int limit,
                                  hs_store_shadow_fn fn, void *user, hs_err *err)
{
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st;
    int rc = prep(
        s,
        "SELECT request_id, experiment, ts_ms, latency_a_ms, latency_b_ms, status_b, similarity, answer_a,"
        " answer_b FROM shadow_results WHERE experiment = ? AND similarity < ?"
        " ORDER BY similarity, ts_ms LIMIT ?",
        &st, err, "reading shadow results");
    if (!rc) {
        bind_text(st, 1, experiment);
        sqlite3_bind_double(st, 2, threshold);
        sqlite3_bind_int(st, 3, limit > 0 ? limit : -1);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            double a = col_real(st, 3), b = col_real(st, 4), sim = col_real(st, 6);
            struct hs_shadow_result r = {
                .request_id = col_text(st, 0),
                .experiment = col_text(st, 1),
                .ts_ms = sqlite3_column_int64(st, 2),
                .latency_a_ms = isfinite(a) ? a : -1,
                .latency_b_ms = isfinite(b) ? b : -1,
                .status_b = sqlite3_column_int(st, 5),
                .similarity = isfinite(sim) ? sim : -1,
                .answer_a = col_text(st, 7),
                .answer_b = col_text(st, 8),
            };
            fn(user, &r);
        }
        if (step != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "reading shadow results");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->dblock);
    return rc;
}

/* ---- expert scores ---- */

int hs_store_eval_add(hs_store *s, const struct hs_eval_score *v, size_t n, size_t *bad, hs_err *err)
{
    if (bad)
        *bad = n;
    for (size_t i = 0; i < n; i++) {
        if (!v[i].request_id || !v[i].request_id[0] || !v[i].rater || !v[i].rater[0] || v[i].accuracy < 1 ||
            v[i].accuracy > 5 || v[i].safety < 1 || v[i].safety > 5) {
            if (bad)
                *bad = i;
            return hs_err_set(err, HS_EINVAL,
                              "a score needs a request id, a rater, and accuracy and safety in 1..5");
        }
    }
    hs_store_flush(s);
    const char *what = "recording expert scores";
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *look = NULL, *ins = NULL;
    int rc = begin(s, err, what);
    if (!rc)
        rc = prep(s, "SELECT experiment, variant FROM requests WHERE id = ?", &look, err, what);
    if (!rc)
        rc = prep(
            s,
            "INSERT OR REPLACE INTO eval_scores (request_id, experiment, variant, rater, accuracy, safety,"
            " comment, ts_ms) VALUES (?,?,?,?,?,?,?,?)",
            &ins, err, what);
    int64_t now = hs_store_now_ms();
    for (size_t i = 0; !rc && i < n; i++) {
        sqlite3_reset(look);
        bind_text(look, 1, v[i].request_id);
        int step = sqlite3_step(look);
        if (step != SQLITE_ROW) {
            rc = step == SQLITE_DONE
                     ? hs_err_set(err, HS_ENOTFOUND, "no request has the id '%.120s'", v[i].request_id)
                     : hs_store_sql_err(err, HS_EIO, s->db, what);
        } else if (!col_text(look, 0) || !col_text(look, 1)) {
            rc = hs_err_set(err, HS_EINVAL, "request '%.120s' was not routed by an experiment",
                            v[i].request_id);
        } else if (v[i].variant && v[i].variant[0] && strcasecmp(v[i].variant, col_text(look, 1))) {
            rc = hs_err_set(err, HS_EINVAL, "request '%.120s' was answered by variant %s, not %.8s",
                            v[i].request_id, col_text(look, 1), v[i].variant);
        } else {
            sqlite3_reset(ins);
            bind_text(ins, 1, v[i].request_id);
            sqlite3_bind_text(ins, 2, col_text(look, 0), -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(ins, 3, col_text(look, 1), -1, SQLITE_TRANSIENT);
            bind_text(ins, 4, v[i].rater);
            sqlite3_bind_int(ins, 5, v[i].accuracy);
            sqlite3_bind_int(ins, 6, v[i].safety);
            bind_text(ins, 7, v[i].comment);
            sqlite3_bind_int64(ins, 8, v[i].ts_ms ? v[i].ts_ms : now);
            if (sqlite3_step(ins) != SQLITE_DONE)
                rc = hs_store_sql_err(err, HS_EIO, s->db, what);
        }
        if (rc && bad)
            *bad = i;
    }
    sqlite3_finalize(look);
    sqlite3_finalize(ins);
    rc = end(s, rc, err, what);
    pthread_mutex_unlock(&s->dblock);
    return rc;
}

int hs_store_eval_candidates(hs_store *s, const char *experiment, enum hs_exp_variant v,
                             hs_store_eval_candidate_fn fn, void *user, hs_err *err)
{
    hs_store_flush(s);
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st;
    int rc = prep(s,
                  "SELECT r.id, r.variant, r.ts_ms, b.request, b.response FROM requests r"
                  " JOIN bodies b ON b.request_id = r.id WHERE r.experiment = ? AND r.variant = ?"
                  " ORDER BY r.ts_ms, r.rowid",
                  &st, err, "reading records");
    if (!rc) {
        bind_text(st, 1, experiment);
        bind_text(st, 2, hs_exp_variant_name(v));
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            struct hs_eval_candidate c = {col_text(st, 0), col_text(st, 1), sqlite3_column_int64(st, 2),
                                          col_text(st, 3), col_text(st, 4)};
            fn(user, &c);
        }
        if (step != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "reading records");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->dblock);
    return rc;
}

/* ---- aggregates ---- */

static const char k_counts[] =
    "SELECT count(*),"
    " coalesce(sum(r.status < 200 OR r.status > 299 OR r.error IS NOT NULL), 0),"
    " coalesce(sum(f.feedback = 1), 0), coalesce(sum(f.feedback = -1), 0),"
    " coalesce(sum(r.safety_flags IS NOT NULL AND r.safety_flags != ''), 0),"
    " count(CASE WHEN r.confidence >= 0 THEN 1 END), avg(CASE WHEN r.confidence >= 0 THEN r.confidence END)"
    " FROM requests r LEFT JOIN feedback f ON f.request_id = r.id"
    " WHERE r.experiment = ?1 AND r.variant = ?2 AND r.ts_ms >= ?3";
static const char k_latencies[] =
    "SELECT latency_ms FROM requests WHERE experiment = ?1 AND variant = ?2 AND ts_ms >= ?3"
    " AND latency_ms IS NOT NULL ORDER BY latency_ms";
static const char k_scores[] =
    "SELECT avg(e.accuracy), avg(e.safety) FROM eval_scores e JOIN requests r ON r.id = e.request_id"
    " WHERE e.experiment = ?1 AND e.variant = ?2 AND r.ts_ms >= ?3 GROUP BY e.request_id ORDER BY "
    "e.request_id";

static int bind3(hs_store *s, const char *sql, sqlite3_stmt **st, const char *exp, const char *var,
                 int64_t since, hs_err *err)
{
    int rc = prep(s, sql, st, err, "reading experiment aggregates");
    if (!rc) {
        bind_text(*st, 1, exp);
        bind_text(*st, 2, var);
        sqlite3_bind_int64(*st, 3, since);
    }
    return rc;
}

static double ratio(int64_t k, int64_t n)
{
    return n > 0 ? (double)k / (double)n : NAN;
}

int hs_store_exp_variant_stats(hs_store *s, const char *experiment, enum hs_exp_variant v, int64_t since_ms,
                               struct hs_exp_variant_stats *out, hs_err *err)
{
    memset(out, 0, sizeof *out);
    out->error_rate = out->up_rate = out->safety_rate = out->confidence_mean = NAN;
    out->p50_ms = out->p95_ms = out->p99_ms = out->accuracy_mean = out->safety_score_mean = NAN;
    const char *var = hs_exp_variant_name(v);
    hs_store_flush(s);
    double *lat = NULL;
    size_t nl = 0, cl = 0, ns = 0, cs = 0, nsafe = 0, csafe = 0;
    double *acc = NULL, *safe = NULL;
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st;
    int rc = bind3(s, k_counts, &st, experiment, var, since_ms, err);
    if (!rc) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            out->requests = sqlite3_column_int64(st, 0);
            out->errors = sqlite3_column_int64(st, 1);
            out->thumbs_up = sqlite3_column_int64(st, 2);
            out->thumbs_down = sqlite3_column_int64(st, 3);
            out->safety_flagged = sqlite3_column_int64(st, 4);
            out->n_confidence = sqlite3_column_int64(st, 5);
            out->confidence_mean = col_real(st, 6);
        } else {
            rc = hs_store_sql_err(err, HS_EIO, s->db, "reading experiment aggregates");
        }
        sqlite3_finalize(st);
    }
    if (!rc && !(rc = bind3(s, k_latencies, &st, experiment, var, since_ms, err))) {
        int step;
        while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW)
            if (!push(&lat, &nl, &cl, sqlite3_column_double(st, 0)))
                rc = hs_err_set(err, HS_ENOMEM, "experiment aggregates: out of memory");
        if (!rc && step != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "reading experiment aggregates");
        sqlite3_finalize(st);
    }
    if (!rc && !(rc = bind3(s, k_scores, &st, experiment, var, since_ms, err))) {
        int step;
        while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW)
            if (!push(&acc, &ns, &cs, sqlite3_column_double(st, 0)) ||
                !push(&safe, &nsafe, &csafe, sqlite3_column_double(st, 1)))
                rc = hs_err_set(err, HS_ENOMEM, "experiment aggregates: out of memory");
        if (!rc && step != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "reading experiment aggregates");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->dblock);
    if (rc) {
        hs_free(lat);
        hs_free(acc);
        hs_free(safe);
        return rc;
    }
    out->error_rate = ratio(out->errors, out->requests);
    out->up_rate = ratio(out->thumbs_up, out->thumbs_up + out->thumbs_down);
    out->safety_rate = ratio(out->safety_flagged, out->requests);
    if (!out->n_confidence)
        out->confidence_mean = NAN;
    out->n_latency = (int64_t)nl;
    out->p50_ms = quantile(lat, nl, 0.50);
    out->p95_ms = quantile(lat, nl, 0.95);
    out->p99_ms = quantile(lat, nl, 0.99);
    hs_free(lat);
    out->n_scored = (int64_t)ns;
    if (ns) {
        out->accuracy_mean = gsl_stats_mean(acc, 1, ns);
        out->safety_score_mean = gsl_stats_mean(safe, 1, nsafe);
    }
    out->accuracy = acc;
    hs_free(safe);
    return HS_OK;
}
