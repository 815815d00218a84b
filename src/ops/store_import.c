/* JSONL import: the export's records back into a store, all or nothing.
 *
 * The import writes through a connection of its own inside one IMMEDIATE
 * transaction, so a bad line anywhere leaves the store as it was, and a
 * server writing beside it only waits (busy timeout) while it commits. Every
 * field is checked against the type the export writes for it; a field this
 * hestia does not know is an error rather than a silent loss. */
#include "ops/store_import.h"
#include "ops/store_impl.h"

#include "base/mem.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/types.h>

enum kind { K_TEXT, K_I64, K_INT, K_MS, K_UNIT, K_BOOL, K_NAME, K_VARIANT };

/* One column of the requests table as the export names it. col is its
 * parameter in k_ins_req; the order there is the order here. */
struct field {
    const char *name;
    enum kind kind;
    bool required;
};

static const struct field k_fields[] = {
    {"id", K_TEXT, true},        {"ts_ms", K_I64, true},        {"endpoint", K_TEXT, false},
    {"key_name", K_TEXT, false}, {"client", K_TEXT, false},     {"user", K_TEXT, false},
    {"model", K_TEXT, false},    {"backend", K_TEXT, false},    {"stream", K_BOOL, false},
    {"status", K_INT, true},     {"error", K_TEXT, false},      {"finish_reason", K_TEXT, false},
    {"tokens_in", K_INT, false}, {"tokens_out", K_INT, false},  {"tokens_cached", K_INT, false},
    {"queue_ms", K_MS, false},   {"ttft_ms", K_MS, false},      {"latency_ms", K_MS, false},
    {"agent", K_TEXT, false},    {"adapters", K_TEXT, false},   {"parent_id", K_TEXT, false},
    {"confidence", K_UNIT, false}, {"low_prob_share", K_UNIT, false}, {"safety_flags", K_TEXT, false},
    {"experiment", K_NAME, false}, {"variant", K_VARIANT, false},
};
#define N_FIELDS (sizeof k_fields / sizeof k_fields[0])

static const char k_ins_req[] =
    "INSERT INTO requests (id, ts_ms, endpoint, key_name, client, user, model, backend, stream,"
    " status, error, finish_reason, tokens_in, tokens_out, tokens_cached, queue_ms, ttft_ms, latency_ms,"
    " agent, adapters, parent_id, confidence, low_prob_share, safety_flags, experiment, variant)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
static const char k_ins_body[] = "INSERT INTO bodies (request_id, request, response) VALUES (?,?,?)";
static const char k_ins_fb[] =
    "INSERT INTO feedback (request_id, ts_ms, feedback, comment, updated_ms) VALUES (?,?,?,?,?)";
static const char k_exists[] = "SELECT 1 FROM requests WHERE id = ?";

struct importer {
    sqlite3 *db;
    sqlite3_stmt *req, *body, *fb, *exists;
    bool skip_existing;
    struct hs_import_stats st;
};

/* ---- checking one value ---------------------------------------------------- */

static int bad(hs_err *err, const char *field, const char *want)
{
    return hs_err_set(err, HS_EFORMAT, "\"%s\" must be %s", field, want);
}

/* Binds v (not null) as kind to parameter i, or explains why it cannot. */
static int bind_value(sqlite3_stmt *st, int i, const char *name, enum kind kind, const json_t *v, hs_err *err)
{
    switch (kind) {
    case K_TEXT:
        if (!json_is_string(v))
            return bad(err, name, "a string or null");
        sqlite3_bind_text(st, i, json_string_value(v), (int)json_string_length(v), SQLITE_STATIC);
        return HS_OK;
    case K_I64:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return bad(err, name, "a whole number of unix milliseconds");
        sqlite3_bind_int64(st, i, json_integer_value(v));
        return HS_OK;
    case K_INT: {
        bool status = !strcmp(name, "status");
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
        if (x < 0 || x > (status ? 999 : INT_MAX))
            return bad(err, name, status ? "an HTTP status (an integer 0..999)" : "a non-negative integer or null");
        sqlite3_bind_int64(st, i, x);
        return HS_OK;
    }
    case K_MS:
    case K_UNIT: {
        double x = json_is_number(v) ? json_number_value(v) : -1;
        if (!isfinite(x) || x < 0 || (kind == K_UNIT && x > 1))
            return bad(err, name, kind == K_UNIT ? "a number in [0, 1] or null" : "a non-negative number or null");
        sqlite3_bind_double(st, i, x);
        return HS_OK;
    }
    case K_BOOL:
        if (!json_is_boolean(v))
            return bad(err, name, "true or false");
        sqlite3_bind_int(st, i, json_is_true(v) ? 1 : 0);
        return HS_OK;
    case K_NAME:
        /* the per-variant statistics look records up by this name: an empty
         * one would be a record no experiment can ever claim */
        if (!json_is_string(v) || !json_string_length(v))
            return bad(err, name, "a non-empty string or null");
        sqlite3_bind_text(st, i, json_string_value(v), (int)json_string_length(v), SQLITE_STATIC);
        return HS_OK;
    case K_VARIANT: {
        const char *x = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(x, "A") && strcmp(x, "B"))
            return bad(err, name, "\"A\" or \"B\" or null");
        sqlite3_bind_text(st, i, x, 1, SQLITE_STATIC);
        return HS_OK;
    }
    }
    return HS_EINVAL;
}

static int find_field(const char *key)
{
    for (size_t i = 0; i < N_FIELDS; i++)
        if (!strcmp(k_fields[i].name, key))
            return (int)i;
    return -1;
}

static int step_done(struct importer *im, sqlite3_stmt *st, const char *what, hs_err *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return hs_store_sql_err(err, HS_EIO, im->db, what);
    return HS_OK;
}

/* ---- one record ------------------------------------------------------------ */

/* "feedback": {"value", "comment"?, "ts_ms"?, "updated_ms"?} for request id. */
static int put_feedback(struct importer *im, const char *id, int64_t rec_ts, const json_t *fb, hs_err *err)
{
    if (!json_is_object(fb))
        return bad(err, "feedback", "an object {\"value\": 1|-1, ...} or null");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)fb, key, v)
    {
        if (strcmp(key, "value") && strcmp(key, "comment") && strcmp(key, "ts_ms") && strcmp(key, "updated_ms"))
            return hs_err_set(err, HS_EFORMAT, "unknown field \"feedback.%.64s\"", key);
    }
    const json_t *val = json_object_get(fb, "value"), *com = json_object_get(fb, "comment");
    const json_t *ts = json_object_get(fb, "ts_ms"), *up = json_object_get(fb, "updated_ms");
    if (!json_is_integer(val) || (json_integer_value(val) != 1 && json_integer_value(val) != -1))
        return bad(err, "feedback.value", "1 or -1");
    if (com && !json_is_null(com) && !json_is_string(com))
        return bad(err, "feedback.comment", "a string or null");
    if ((ts && !json_is_null(ts) && (!json_is_integer(ts) || json_integer_value(ts) < 0)) ||
        (up && !json_is_null(up) && (!json_is_integer(up) || json_integer_value(up) < 0)))
        return bad(err, ts && !json_is_integer(ts) && !json_is_null(ts) ? "feedback.ts_ms" : "feedback.updated_ms",
                   "a whole number of unix milliseconds");
    /* Without its own time the feedback is taken to have come with the answer. */
    int64_t t = json_is_integer(ts) ? json_integer_value(ts) : rec_ts;
    int64_t u = json_is_integer(up) ? json_integer_value(up) : t;
    sqlite3_stmt *st = im->fb;
    sqlite3_clear_bindings(st);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, t);
    sqlite3_bind_int(st, 3, (int)json_integer_value(val));
    if (json_is_string(com))
        sqlite3_bind_text(st, 4, json_string_value(com), (int)json_string_length(com), SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, u);
    int rc = step_done(im, st, "storing the feedback", err);
    if (!rc)
        im->st.feedback++;
    return rc;
}

static int put_record(struct importer *im, const json_t *o, hs_err *err)
{
    if (!json_is_object(o))
        return hs_err_set(err, HS_EFORMAT, "a record must be a JSON object");
    sqlite3_stmt *st = im->req;
    sqlite3_clear_bindings(st);
    sqlite3_bind_int(st, 9, 0); /* stream: the column is NOT NULL */
    bool seen[N_FIELDS] = {0};
    const json_t *req_body = NULL, *resp_body = NULL, *fb = NULL;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v)
    {
        int f = find_field(key);
        if (f < 0) {
            if (!strcmp(key, "time")) {
                if (!json_is_string(v) && !json_is_null(v))
                    return bad(err, key, "an ISO 8601 string or null");
            } else if (!strcmp(key, "request_body") || !strcmp(key, "response_body")) {
                if (!json_is_string(v) && !json_is_null(v))
                    return bad(err, key, "a string or null");
                if (!strcmp(key, "request_body"))
                    req_body = json_is_string(v) ? v : NULL;
                else
                    resp_body = json_is_string(v) ? v : NULL;
            } else if (!strcmp(key, "feedback")) {
                fb = json_is_null(v) ? NULL : v;
            } else {
                return hs_err_set(err, HS_EFORMAT, "unknown field \"%.64s\"", key);
            }
            continue;
        }
        if (json_is_null(v)) {
            if (k_fields[f].required || k_fields[f].kind == K_BOOL)
                return bad(err, key, k_fields[f].kind == K_BOOL ? "true or false" : "present and not null");
            continue;
        }
        int rc = bind_value(st, f + 1, key, k_fields[f].kind, v, err);
        if (rc)
            return rc;
        seen[f] = true;
    }
    for (size_t i = 0; i < N_FIELDS; i++)
        if (k_fields[i].required && !seen[i])
            return hs_err_set(err, HS_EFORMAT, "\"%s\" is missing", k_fields[i].name);
    /* The server names both or neither; one without the other would count
     * towards no variant's statistics, or towards a variant of nothing. */
    bool has_exp = seen[find_field("experiment")], has_var = seen[find_field("variant")];
    if (has_exp != has_var)
        return hs_err_set(err, HS_EFORMAT, "\"%s\" needs \"%s\" (a record of an experiment names both)",
                          has_var ? "variant" : "experiment", has_var ? "experiment" : "variant");
    const char *id = json_string_value(json_object_get(o, "id"));
    if (!id[0])
        return bad(err, "id", "a non-empty string");

    sqlite3_bind_text(im->exists, 1, id, -1, SQLITE_STATIC);
    int ex = sqlite3_step(im->exists);
    sqlite3_reset(im->exists);
    if (ex != SQLITE_ROW && ex != SQLITE_DONE)
        return hs_store_sql_err(err, HS_EIO, im->db, "looking the id up");
    if (ex == SQLITE_ROW) {
        if (im->skip_existing) {
            im->st.skipped++;
            return HS_OK;
        }
        return hs_err_set(err, HS_EINVAL, "a record with the id '%.200s' is already in the store (--skip-existing skips such records)", id);
    }
    int rc = step_done(im, st, "storing the record", err);
    if (!rc && (req_body || resp_body)) {
        sqlite3_stmt *b = im->body;
        sqlite3_clear_bindings(b);
        sqlite3_bind_text(b, 1, id, -1, SQLITE_STATIC);
        if (req_body)
            sqlite3_bind_text(b, 2, json_string_value(req_body), (int)json_string_length(req_body), SQLITE_STATIC);
        if (resp_body)
            sqlite3_bind_text(b, 3, json_string_value(resp_body), (int)json_string_length(resp_body), SQLITE_STATIC);
        rc = step_done(im, b, "storing the bodies", err);
    }
    if (!rc && fb)
        rc = put_feedback(im, id, json_integer_value(json_object_get(o, "ts_ms")), fb, err);
    if (!rc)
        im->st.records++;
    return rc;
}

/* ---- the file ---------------------------------------------------------------- */

static bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    return true;
}

static int read_lines(struct importer *im, FILE *in, const char *name, hs_err *err)
{
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    ssize_t n;
    int rc = HS_OK;
    while (!rc && (n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if (blank(line, (size_t)n))
            continue;
        json_error_t jerr;
        json_t *o = json_loadb(line, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
        if (!o)
            rc = hs_err_set(err, HS_EFORMAT, "not JSON: %s (column %d)", jerr.text, jerr.column);
        else
            rc = put_record(im, o, err);
        json_decref(o);
        if (rc)
            hs_err_prefix(err, "%s:%ld: ", name, lineno);
    }
    if (!rc && ferror(in))
        rc = hs_err_set(err, HS_EIO, "%s: read failed", name);
    free(line); /* getline's buffer comes from malloc */
    return rc;
}

int hs_store_import_jsonl(hs_store *s, FILE *in, const char *name, bool skip_existing, struct hs_import_stats *stats,
                          hs_err *err)
{
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (!name)
        name = "input";
    hs_store_flush(s); /* ids this handle queued are seen by the duplicate check */
    struct importer im = {.skip_existing = skip_existing};
    int rc = hs_store_connect(s->path, false, &im.db, err);
    if (rc)
        return rc;
    if (sqlite3_prepare_v2(im.db, k_ins_req, -1, &im.req, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(im.db, k_ins_body, -1, &im.body, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(im.db, k_ins_fb, -1, &im.fb, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(im.db, k_exists, -1, &im.exists, NULL) != SQLITE_OK)
        rc = hs_store_sql_err(err, HS_EIO, im.db, "importing");
    /* IMMEDIATE: the write lock is taken now, so a commit at the end cannot
     * fail for a writer that came in between. */
    if (!rc && sqlite3_exec(im.db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        rc = hs_store_sql_err(err, HS_EIO, im.db, "importing");
    else if (!rc) {
        rc = read_lines(&im, in, name, err);
        if (!rc && sqlite3_exec(im.db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
            rc = hs_store_sql_err(err, HS_EIO, im.db, "importing: commit");
        if (rc)
            sqlite3_exec(im.db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_finalize(im.req);
    sqlite3_finalize(im.body);
    sqlite3_finalize(im.fb);
    sqlite3_finalize(im.exists);
    sqlite3_close(im.db);
    if (!rc && stats)
        *stats = im.st;
    return rc;
}
