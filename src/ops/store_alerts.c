/* The alerts table: the store sink's own writing connection, and listing
 * through the store's shared connection (under dblock, like the key list). */
#include "ops/store_alerts.h"
#include "ops/store_impl.h"

#include "base/mem.h"

#include <string.h>

struct hs_store_alerts {
    sqlite3 *db;
    sqlite3_stmt *ins;
};

int hs_store_alerts_open(hs_store *s, hs_store_alerts **out, hs_err *err)
{
    *out = NULL;
    hs_store_alerts *w = hs_calloc(1, sizeof *w);
    if (!w)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    int rc = hs_store_connect(s->path, false, &w->db, err);
    if (!rc &&
        sqlite3_prepare_v2(w->db,
                           "INSERT INTO alerts (ts_ms, type, severity, message, count, first_ms, details)"
                           " VALUES (?,?,?,?,?,?,?)",
                           -1, &w->ins, NULL) != SQLITE_OK)
        rc = hs_store_sql_err(err, HS_EIO, w->db, "preparing the alerts insert");
    if (rc) {
        hs_store_alerts_close(w);
        return rc;
    }
    *out = w;
    return HS_OK;
}

void hs_store_alerts_close(hs_store_alerts *w)
{
    if (!w)
        return;
    sqlite3_finalize(w->ins);
    sqlite3_close(w->db);
    hs_free(w);
}

static bool severity_ok(const char *s)
{
    return s && (!strcmp(s, "critical") || !strcmp(s, "warning") || !strcmp(s, "info"));
}

int hs_store_alerts_insert(hs_store_alerts *w, const struct hs_alert_row *r, int64_t *id, hs_err *err)
{
    if (!r->type || !r->message || !severity_ok(r->severity))
        return hs_err_set(err, HS_EINVAL,
                          "an alert row needs a type, a message and a severity "
                          "(critical, warning or info)");
    sqlite3_stmt *st = w->ins;
    sqlite3_bind_int64(st, 1, r->ts_ms);
    sqlite3_bind_text(st, 2, r->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->severity, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->message, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, r->count);
    sqlite3_bind_int64(st, 6, r->first_ms);
    if (r->details)
        sqlite3_bind_text(st, 7, r->details, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 7);
    int step = sqlite3_step(st);
    int rc = HS_OK;
    if (step != SQLITE_DONE)
        rc = hs_store_sql_err(err, step == SQLITE_BUSY || step == SQLITE_LOCKED ? HS_EBUSY : HS_EIO, w->db,
                              "writing an alert");
    else if (id)
        *id = sqlite3_last_insert_rowid(w->db);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int hs_store_alerts_list(hs_store *s, int64_t since_ms, int limit, hs_alert_row_fn fn, void *user,
                         hs_err *err)
{
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st = NULL;
    int rc = HS_OK;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, ts_ms, type, severity, message, count, first_ms, details FROM alerts"
                           " WHERE ts_ms >= ? ORDER BY ts_ms DESC, id DESC LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = hs_store_sql_err(err, HS_EIO, s->db, "listing alerts");
    } else {
        sqlite3_bind_int64(st, 1, since_ms);
        sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1); /* a negative LIMIT is no limit */
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            struct hs_alert_row r = {
                .id = sqlite3_column_int64(st, 0),
                .ts_ms = sqlite3_column_int64(st, 1),
                .type = (const char *)sqlite3_column_text(st, 2),
                .severity = (const char *)sqlite3_column_text(st, 3),
                .message = (const char *)sqlite3_column_text(st, 4),
                .count = sqlite3_column_int64(st, 5),
                .first_ms = sqlite3_column_type(st, 6) == SQLITE_NULL ? sqlite3_column_int64(st, 1)
                                                                      : sqlite3_column_int64(st, 6),
                .details = (const char *)sqlite3_column_text(st, 7),
            };
            fn(user, &r);
        }
        if (step != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "listing alerts");
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->dblock);
    return rc;
}
