/* The last N inference records, oldest first, for `hestia baseline set`. */
#include "ops/store_records.h"
#include "ops/store_impl.h"

static const char k_recent[] =
    "SELECT ts_ms, status, latency_ms, confidence, safety_flags, feedback FROM ("
    "  SELECT r.rowid AS rid, r.ts_ms, r.status, r.latency_ms, r.confidence, r.safety_flags, f.feedback"
    "  FROM requests r LEFT JOIN feedback f ON f.request_id = r.id"
    "  WHERE r.endpoint IN ('/v1/chat/completions', '/v1/completions', '/v1/embeddings')"
    "    AND r.backend IS NOT NULL" /* a model answered (not a 404 for an unknown one) */
    "  ORDER BY r.ts_ms DESC, r.rowid DESC LIMIT ?)"
    " ORDER BY ts_ms, rid";

static double real_or(sqlite3_stmt *st, int col, double none)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? none : sqlite3_column_double(st, col);
}

int hs_store_recent_requests(hs_store *s, int limit, hs_record_obs_fn fn, void *user, hs_err *err)
{
    if (limit < 1)
        return hs_err_set(err, HS_EINVAL, "at least one request is needed");
    hs_store_flush(s);
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st = NULL;
    int rc = HS_OK;
    if (sqlite3_prepare_v2(s->db, k_recent, -1, &st, NULL) != SQLITE_OK) {
        rc = hs_store_sql_err(err, HS_EIO, s->db, "reading requests");
    } else {
        sqlite3_bind_int(st, 1, limit);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            const unsigned char *flags = sqlite3_column_text(st, 4);
            struct hs_record_obs r = {
                .ts_ms = sqlite3_column_int64(st, 0),
                .status = sqlite3_column_int(st, 1),
                .latency_ms = real_or(st, 2, -1),
                .confidence = real_or(st, 3, -1),
                .safety_flagged = flags && flags[0],
                .feedback = sqlite3_column_type(st, 5) == SQLITE_NULL ? 0 : sqlite3_column_int(st, 5),
            };
            fn(user, &r);
        }
        if (step != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "reading requests");
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->dblock);
    return rc;
}
