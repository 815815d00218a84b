/* JSONL export: one JSON object per request record, oldest first, with the
 * bodies when they were stored.
 *
 * The export reads through a connection of its own (read-only), so a long
 * export neither holds the lock that key verification needs nor stops the
 * writer: WAL gives it a stable snapshot while new records keep arriving. */
#include "ops/store_impl.h"

#include "base/buf.h"
#include "base/mem.h"

#include <jansson.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

/* The columns, in the order the SELECT names them. */
enum {
    C_ID,
    C_TS,
    C_ENDPOINT,
    C_KEY,
    C_CLIENT,
    C_USER,
    C_MODEL,
    C_BACKEND,
    C_STREAM,
    C_STATUS,
    C_ERROR,
    C_FINISH,
    C_TIN,
    C_TOUT,
    C_TCACHED,
    C_QUEUE,
    C_TTFT,
    C_LAT,
    C_REQ_BODY,
    C_RESP_BODY,
    C_AGENT,
    C_ADAPTERS,
    C_PARENT,
    C_CONFIDENCE,
    C_LOW_PROB,
    C_SAFETY,
    C_FB_VALUE,
    C_FB_COMMENT,
    C_FB_TS,
    C_FB_UPDATED,
    C_EXPERIMENT,
    C_VARIANT
};

static const char k_select[] =
    "SELECT r.id, r.ts_ms, r.endpoint, r.key_name, r.client, r.user, r.model, r.backend, r.stream, r.status,"
    " r.error, r.finish_reason, r.tokens_in, r.tokens_out, r.tokens_cached, r.queue_ms, r.ttft_ms,"
    " r.latency_ms, b.request, b.response, r.agent, r.adapters, r.parent_id, r.confidence,"
    " r.low_prob_share, r.safety_flags, f.feedback, f.comment, f.ts_ms, f.updated_ms,"
    " r.experiment, r.variant"
    " FROM requests r LEFT JOIN bodies b ON b.request_id = r.id"
    " LEFT JOIN feedback f ON f.request_id = r.id"
    " WHERE r.ts_ms >= ? ORDER BY r.ts_ms, r.rowid";

/* A JSON string from stored text. SQLite keeps whatever bytes it was given,
 * and jansson accepts only valid UTF-8, so invalid bytes become U+FFFD here
 * rather than losing the whole record. */
static json_t *jtext(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    const unsigned char *s = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    json_t *j = json_stringn((const char *)s, n);
    if (j)
        return j;
    hs_buf b = {0};
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k > 0 && cp != 0) {
            hs_buf_append(&b, s + i, (size_t)k);
            i += (size_t)k;
        } else {
            hs_buf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
    j = json_stringn(b.data ? b.data : "", b.len);
    hs_buf_free(&b);
    return j ? j : json_null();
}

static json_t *jint(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    return json_integer(sqlite3_column_int64(st, col));
}

static json_t *jreal(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    return json_real(sqlite3_column_double(st, col));
}

/* "2026-11-26T12:00:00.123Z" */
static json_t *jtime(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    int frac = (int)(ms % 1000);
    if (frac < 0) {
        frac += 1000;
        t -= 1;
    }
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return json_null();
    char date[32], full[48];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(full, sizeof full, "%s.%03dZ", date, frac);
    return json_string(full);
}

/* One row as an object; every set_new below takes the value's reference. */
static json_t *row_object(sqlite3_stmt *st)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int64_t ts = sqlite3_column_int64(st, C_TS);
    json_object_set_new(o, "id", jtext(st, C_ID));
    json_object_set_new(o, "ts_ms", json_integer(ts));
    json_object_set_new(o, "time", jtime(ts));
    json_object_set_new(o, "endpoint", jtext(st, C_ENDPOINT));
    json_object_set_new(o, "key_name", jtext(st, C_KEY));
    json_object_set_new(o, "client", jtext(st, C_CLIENT));
    json_object_set_new(o, "user", jtext(st, C_USER));
    json_object_set_new(o, "model", jtext(st, C_MODEL));
    json_object_set_new(o, "backend", jtext(st, C_BACKEND));
    json_object_set_new(o, "agent", jtext(st, C_AGENT));
    json_object_set_new(o, "adapters", jtext(st, C_ADAPTERS));
    json_object_set_new(o, "parent_id", jtext(st, C_PARENT));
    json_object_set_new(o, "confidence", jreal(st, C_CONFIDENCE));
    json_object_set_new(o, "low_prob_share", jreal(st, C_LOW_PROB));
    json_object_set_new(o, "safety_flags", jtext(st, C_SAFETY));
    /* (issue 7) only on records an experiment routed, so that exports of
     * stores without experiments read as they did before */
    if (sqlite3_column_type(st, C_EXPERIMENT) != SQLITE_NULL)
        json_object_set_new(o, "experiment", jtext(st, C_EXPERIMENT));
    if (sqlite3_column_type(st, C_VARIANT) != SQLITE_NULL)
        json_object_set_new(o, "variant", jtext(st, C_VARIANT));
    json_object_set_new(o, "stream", json_boolean(sqlite3_column_int(st, C_STREAM) != 0));
    json_object_set_new(o, "status", jint(st, C_STATUS));
    json_object_set_new(o, "error", jtext(st, C_ERROR));
    json_object_set_new(o, "finish_reason", jtext(st, C_FINISH));
    json_object_set_new(o, "tokens_in", jint(st, C_TIN));
    json_object_set_new(o, "tokens_out", jint(st, C_TOUT));
    json_object_set_new(o, "tokens_cached", jint(st, C_TCACHED));
    json_object_set_new(o, "queue_ms", jreal(st, C_QUEUE));
    json_object_set_new(o, "ttft_ms", jreal(st, C_TTFT));
    json_object_set_new(o, "latency_ms", jreal(st, C_LAT));
    if (sqlite3_column_type(st, C_REQ_BODY) != SQLITE_NULL)
        json_object_set_new(o, "request_body", jtext(st, C_REQ_BODY));
    if (sqlite3_column_type(st, C_RESP_BODY) != SQLITE_NULL)
        json_object_set_new(o, "response_body", jtext(st, C_RESP_BODY));
    /* (issue 6) the user's feedback, in the shape `hestia logs import` reads */
    if (sqlite3_column_type(st, C_FB_VALUE) != SQLITE_NULL) {
        json_t *fb = json_object();
        if (fb) {
            json_object_set_new(fb, "value", jint(st, C_FB_VALUE));
            json_object_set_new(fb, "comment", jtext(st, C_FB_COMMENT));
            json_object_set_new(fb, "ts_ms", jint(st, C_FB_TS));
            json_object_set_new(fb, "updated_ms", jint(st, C_FB_UPDATED));
        }
        json_object_set_new(o, "feedback", fb ? fb : json_null());
    }
    return o;
}

int hs_store_export_jsonl(hs_store *s, FILE *out, int64_t since_ms, hs_err *err)
{
    hs_store_flush(s); /* what this handle queued before the call is in the export */
    sqlite3 *db = NULL;
    int rc = hs_store_connect(s->path, true, &db, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, k_select, -1, &st, NULL) != SQLITE_OK) {
        rc = hs_store_sql_err(err, HS_EIO, db, "exporting");
        sqlite3_close(db);
        return rc;
    }
    sqlite3_bind_int64(st, 1, since_ms);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *o = row_object(st);
        if (!o) {
            rc = hs_err_set(err, HS_ENOMEM, "exporting: out of memory");
            break;
        }
        int w = json_dumpf(o, out, JSON_COMPACT);
        json_decref(o);
        if (w != 0 || fputc('\n', out) == EOF) {
            rc = hs_err_set(err, HS_EIO, "exporting: write failed");
            break;
        }
    }
    if (!rc && step != SQLITE_DONE)
        rc = hs_store_sql_err(err, HS_EIO, db, "exporting");
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (!rc && fflush(out) != 0)
        rc = hs_err_set(err, HS_EIO, "exporting: write failed");
    return rc;
}
