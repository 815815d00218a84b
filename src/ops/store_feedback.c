/* User feedback: written at once through the store's second connection (a
 * client that sends feedback waits for the answer "stored"), after the
 * writer has committed what was queued, so the request it names is there. */
#include "ops/store_feedback.h"
#include "ops/store_impl.h"

#include <stdio.h>
#include <string.h>

#define COMMENT_MAX 4096

/* Whether the query (one text parameter) finds a row. */
static bool exists(hs_store *s, const char *sql, const char *id, const char *key, int *rc, hs_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        *rc = hs_store_sql_err(err, HS_EIO, s->db, "feedback");
        return false;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(st) > 1) {
        if (key)
            sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 2);
    }
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        *rc = hs_store_sql_err(err, HS_EIO, s->db, "feedback");
    return step == SQLITE_ROW;
}

int hs_store_feedback_set(hs_store *s, const char *request_id, const char *key_name, int value,
                          const char *comment, int64_t now_ms, bool *updated, hs_err *err)
{
    if (updated)
        *updated = false;
    if (!request_id || !request_id[0])
        return hs_err_set(err, HS_EINVAL, "feedback needs a request id");
    if (value != 1 && value != -1)
        return hs_err_set(err, HS_EINVAL, "feedback is 1 or -1, not %d", value);
    if (comment && strlen(comment) > COMMENT_MAX)
        return hs_err_set(err, HS_EINVAL, "the comment is longer than %d bytes", COMMENT_MAX);
    hs_store_flush(s);
    pthread_mutex_lock(&s->dblock);
    int rc = HS_OK;
    if (!exists(s, "SELECT 1 FROM requests WHERE id = ?1 AND (?2 IS NULL OR key_name = ?2)", request_id, key_name,
                &rc, err)) {
        pthread_mutex_unlock(&s->dblock);
        return rc ? rc : hs_err_set(err, HS_ENOTFOUND, "no request has the id '%.200s'", request_id);
    }
    bool had = exists(s, "SELECT 1 FROM feedback WHERE request_id = ?", request_id, NULL, &rc, err);
    if (rc) {
        pthread_mutex_unlock(&s->dblock);
        return rc;
    }
    sqlite3_stmt *st = NULL;
    const char *sql = "INSERT INTO feedback (request_id, ts_ms, feedback, comment, updated_ms) VALUES (?,?,?,?,?)"
                      " ON CONFLICT(request_id) DO UPDATE SET feedback = excluded.feedback,"
                      " comment = excluded.comment, updated_ms = excluded.updated_ms";
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = hs_store_sql_err(err, HS_EIO, s->db, "feedback");
    } else {
        sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now_ms);
        sqlite3_bind_int(st, 3, value);
        if (comment)
            sqlite3_bind_text(st, 4, comment, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 4);
        sqlite3_bind_int64(st, 5, now_ms);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = hs_store_sql_err(err, HS_EIO, s->db, "feedback");
        else if (updated)
            *updated = had;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->dblock);
    return rc;
}

int hs_store_feedback_get(hs_store *s, const char *request_id, struct hs_feedback *out, hs_err *err)
{
    memset(out, 0, sizeof *out);
    hs_store_flush(s);
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st = NULL;
    int rc = HS_OK;
    if (sqlite3_prepare_v2(s->db, "SELECT ts_ms, updated_ms, feedback, comment FROM feedback WHERE request_id = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = hs_store_sql_err(err, HS_EIO, s->db, "feedback");
    } else {
        sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            snprintf(out->request_id, sizeof out->request_id, "%s", request_id);
            out->ts_ms = sqlite3_column_int64(st, 0);
            out->updated_ms = sqlite3_column_int64(st, 1);
            out->value = sqlite3_column_int(st, 2);
            const unsigned char *c = sqlite3_column_text(st, 3);
            snprintf(out->comment, sizeof out->comment, "%s", c ? (const char *)c : "");
        } else if (step == SQLITE_DONE) {
            rc = hs_err_set(err, HS_ENOTFOUND, "no feedback for '%.200s'", request_id);
        } else {
            rc = hs_store_sql_err(err, HS_EIO, s->db, "feedback");
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->dblock);
    return rc;
}
