/* Baselines and drift runs in the store (see store_ops.h). Statements run on
 * the shared connection under dblock, like the key functions: one short
 * statement each, so the request writer's transactions are never held up
 * for long (busy_timeout covers the overlap). */
#include "ops/store_ops.h"
#include "ops/store_impl.h"

#include "base/mem.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

static bool is_json_object(const char *text)
{
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;
    bool ok = json_is_object(o);
    json_decref(o);
    return ok;
}

/* ---- baselines ---- */

int hs_store_baseline_put(hs_store *s, const char *name, int64_t ts_ms, const char *details, hs_err *err)
{
    if (!name || !name[0])
        return hs_err_set(err, HS_EINVAL, "a baseline needs a name");
    if (!is_json_object(details))
        return hs_err_set(err, HS_EINVAL, "baseline '%s': details must be a JSON object", name);
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st = NULL;
    int rc = HS_OK;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO baselines (name, ts_ms, details) VALUES (?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = hs_store_sql_err(err, HS_EIO, s->db, "writing a baseline");
    } else {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, ts_ms ? ts_ms : hs_store_now_ms());
        sqlite3_bind_text(st, 3, details, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "writing a baseline");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->dblock);
    return rc;
}

int hs_store_baseline_get(hs_store *s, const char *name, int64_t *ts_ms, char **details, hs_err *err)
{
    if (details)
        *details = NULL;
    if (!name || !name[0])
        return hs_err_set(err, HS_EINVAL, "which baseline? (no name given)");
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st = NULL;
    int rc = HS_OK;
    if (sqlite3_prepare_v2(s->db, "SELECT ts_ms, details FROM baselines WHERE name = ?", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = hs_store_sql_err(err, HS_EIO, s->db, "reading a baseline");
    } else {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            if (ts_ms)
                *ts_ms = sqlite3_column_int64(st, 0);
            if (details) {
                const unsigned char *t = sqlite3_column_text(st, 1);
                *details = hs_strdup(t ? (const char *)t : "");
                if (!*details)
                    rc = hs_err_set(err, HS_ENOMEM, "reading a baseline: out of memory");
            }
        } else if (step == SQLITE_DONE) {
            rc = hs_err_set(err, HS_ENOTFOUND, "no baseline is named '%s'", name);
        } else {
            rc = hs_store_sql_err(err, HS_EIO, s->db, "reading a baseline");
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->dblock);
    return rc;
}

int hs_store_baseline_delete(hs_store *s, const char *name, hs_err *err)
{
    if (!name || !name[0])
        return hs_err_set(err, HS_EINVAL, "which baseline? (no name given)");
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st = NULL;
    int rc = HS_OK;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM baselines WHERE name = ?", -1, &st, NULL) != SQLITE_OK) {
        rc = hs_store_sql_err(err, HS_EIO, s->db, "deleting a baseline");
    } else {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "deleting a baseline");
        else if (sqlite3_changes(s->db) == 0)
            rc = hs_err_set(err, HS_ENOTFOUND, "no baseline is named '%s'", name);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->dblock);
    return rc;
}

/* ---- drift runs ---- */

static void bind_real_or_null(sqlite3_stmt *st, int i, double x)
{
    if (isfinite(x))
        sqlite3_bind_double(st, i, x);
    else
        sqlite3_bind_null(st, i);
}

int hs_store_drift_add(hs_store *s, const struct hs_drift_run *r, int64_t *id, hs_err *err)
{
    if (!r->kind || (strcmp(r->kind, "data") != 0 && strcmp(r->kind, "concept") != 0))
        return hs_err_set(err, HS_EINVAL, "drift run kind must be data or concept");
    if (!r->status || (strcmp(r->status, "STABLE") != 0 && strcmp(r->status, "DRIFTED") != 0))
        return hs_err_set(err, HS_EINVAL, "drift run status must be STABLE or DRIFTED");
    if (r->details && !is_json_object(r->details))
        return hs_err_set(err, HS_EINVAL, "drift run details must be a JSON object");
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st = NULL;
    int rc = HS_OK;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO drift_runs (ts_ms, kind, status, score, p_value, details)"
                           " VALUES (?, ?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = hs_store_sql_err(err, HS_EIO, s->db, "recording a drift run");
    } else {
        sqlite3_bind_int64(st, 1, r->ts_ms ? r->ts_ms : hs_store_now_ms());
        sqlite3_bind_text(st, 2, r->kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, r->status, -1, SQLITE_STATIC);
        bind_real_or_null(st, 4, r->score);
        bind_real_or_null(st, 5, r->p_value);
        if (r->details)
            sqlite3_bind_text(st, 6, r->details, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 6);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "recording a drift run");
        else if (id)
            *id = sqlite3_last_insert_rowid(s->db);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->dblock);
    return rc;
}

static double real_or_nan(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

int hs_store_drift_list(hs_store *s, const char *kind, int limit,
                        void (*fn)(void *user, const struct hs_drift_run *r), void *user, hs_err *err)
{
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st = NULL;
    int rc = HS_OK;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, ts_ms, kind, status, score, p_value, details FROM drift_runs"
                           " WHERE ?1 IS NULL OR kind = ?1 ORDER BY ts_ms DESC, id DESC LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = hs_store_sql_err(err, HS_EIO, s->db, "reading drift runs");
    } else {
        if (kind)
            sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 1);
        sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            struct hs_drift_run r = {
                .id = sqlite3_column_int64(st, 0),
                .ts_ms = sqlite3_column_int64(st, 1),
                .kind = (const char *)sqlite3_column_text(st, 2),
                .status = (const char *)sqlite3_column_text(st, 3),
                .score = real_or_nan(st, 4),
                .p_value = real_or_nan(st, 5),
                .details = (const char *)sqlite3_column_text(st, 6),
            };
            fn(user, &r);
        }
        if (step != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "reading drift runs");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->dblock);
    return rc;
}
