/* The store: opening the file, its schema and migrations, and the one writer
 * thread that turns queued request records into rows.
 *
 * Two connections per handle. The writer thread owns one and commits request
 * records in batches, one transaction per batch, so a busy server pays one
 * fsync per batch instead of one per request. The other serves keys and counts
 * to any thread under a mutex. WAL lets readers (the cli, an export, the key
 * cache) run beside the writer, and busy_timeout makes a second writer (the
 * cli creating a key while the server runs) wait instead of failing. */
#include "ops/store_impl.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- schema ---------------------------------------------------------------
 * One migration per schema version: k_migrations[v] takes a file at
 * user_version v to v+1. A later issue adds a table by appending one entry;
 * entries already shipped never change, because files in the field ran them. */
static const char *const k_migrations[] = {
    /* 0 -> 1: request records, their bodies, API keys. */
    "CREATE TABLE requests ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  ts_ms INTEGER NOT NULL,"
    "  endpoint TEXT, key_name TEXT, client TEXT, user TEXT, model TEXT, backend TEXT,"
    "  stream INTEGER NOT NULL DEFAULT 0,"
    "  status INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT, finish_reason TEXT,"
    "  tokens_in INTEGER, tokens_out INTEGER, tokens_cached INTEGER,"
    "  queue_ms REAL, ttft_ms REAL, latency_ms REAL);"
    "CREATE INDEX requests_ts ON requests(ts_ms);"
    "CREATE TABLE bodies ("
    "  request_id TEXT PRIMARY KEY NOT NULL REFERENCES requests(id),"
    "  request TEXT, response TEXT);"
    "CREATE TABLE api_keys ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  scope TEXT NOT NULL CHECK (scope IN ('user', 'admin')),"
    "  hash BLOB NOT NULL UNIQUE,"
    "  prefix TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  revoked_ms INTEGER);"
    /* names are unique among active keys; a revoked name may be reused */
    "CREATE UNIQUE INDEX api_keys_active_name ON api_keys(name) WHERE revoked_ms IS NULL;",
    /* 1 -> 2 (issue 5): which agent and adapters answered, and the
       /v1/assess call a request belongs to. */
    "ALTER TABLE requests ADD COLUMN agent TEXT;"
    "ALTER TABLE requests ADD COLUMN adapters TEXT;"
    "ALTER TABLE requests ADD COLUMN parent_id TEXT;"
    "CREATE INDEX requests_parent ON requests(parent_id) WHERE parent_id IS NOT NULL;",
    /* 2 -> 3 (issue 6): the answer's confidence and safety flags; user
       feedback (one row per request: a repeat updates it); alerts; drift
       runs; recorded baselines. */
    "ALTER TABLE requests ADD COLUMN confidence REAL;"
    "ALTER TABLE requests ADD COLUMN low_prob_share REAL;"
    "ALTER TABLE requests ADD COLUMN safety_flags TEXT;"
    "CREATE TABLE feedback ("
    "  request_id TEXT PRIMARY KEY NOT NULL,"
    "  ts_ms INTEGER NOT NULL,"
    "  feedback INTEGER NOT NULL CHECK (feedback IN (-1, 1)),"
    "  comment TEXT,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE TABLE alerts ("
    "  id INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL,"
    "  type TEXT NOT NULL,"
    "  severity TEXT NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),"
    "  message TEXT NOT NULL,"
    "  count INTEGER NOT NULL DEFAULT 1,"
    "  first_ms INTEGER,"
    "  details TEXT);"
    "CREATE INDEX alerts_ts ON alerts(ts_ms);"
    "CREATE TABLE drift_runs ("
    "  id INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('concept', 'data')),"
    "  status TEXT NOT NULL,"
    "  score REAL,"
    "  p_value REAL,"
    "  details TEXT);"
    "CREATE INDEX drift_runs_ts ON drift_runs(kind, ts_ms);"
    "CREATE TABLE baselines ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  ts_ms INTEGER NOT NULL,"
    "  details TEXT NOT NULL);",
    /* 3 -> 4 (issue 7): which experiment and variant answered a request;
       experiments with their run-time state (a restart resumes it) and
       history (every weight change, with time and reason); shadow answers
       side by side; expert scores (one row per request and rater). */
    "ALTER TABLE requests ADD COLUMN experiment TEXT;"
    "ALTER TABLE requests ADD COLUMN variant TEXT;"
    "CREATE INDEX requests_experiment ON requests(experiment, variant) WHERE experiment IS NOT NULL;"
    "CREATE TABLE experiments ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  definition TEXT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  status TEXT NOT NULL CHECK (status IN ('active', 'rolled_back', 'promoted', 'stopped')),"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE TABLE experiment_events ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  ts_ms INTEGER NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('created', 'weight', 'advance', 'rollback', 'promote', 'stop',"
    "    'resume')),"
    "  weight_b REAL,"
    "  reason TEXT);"
    "CREATE INDEX experiment_events_name ON experiment_events(name, ts_ms);"
    "CREATE TABLE shadow_results ("
    "  request_id TEXT PRIMARY KEY NOT NULL,"
    "  experiment TEXT NOT NULL,"
    "  ts_ms INTEGER NOT NULL,"
    "  latency_a_ms REAL, latency_b_ms REAL,"
    "  status_b INTEGER,"
    "  similarity REAL,"
    "  answer_a TEXT, answer_b TEXT);"
    "CREATE INDEX shadow_results_exp ON shadow_results(experiment, ts_ms);"
    "CREATE TABLE eval_scores ("
    "  request_id TEXT NOT NULL,"
    "  experiment TEXT NOT NULL,"
    "  variant TEXT NOT NULL CHECK (variant IN ('A', 'B')),"
    "  rater TEXT NOT NULL,"
    "  accuracy INTEGER NOT NULL CHECK (accuracy BETWEEN 1 AND 5),"
    "  safety INTEGER NOT NULL CHECK (safety BETWEEN 1 AND 5),"
    "  comment TEXT,"
    "  ts_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (request_id, rater));"
    "CREATE INDEX eval_scores_exp ON eval_scores(experiment, variant);",
};
#define SCHEMA_VERSION ((int)(sizeof k_migrations / sizeof k_migrations[0]))

int64_t hs_store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hs_store_sql_err(hs_err *err, int code, sqlite3 *db, const char *what)
{
    return hs_err_set(err, code, "%s: %s", what, db ? sqlite3_errmsg(db) : "sqlite error");
}

static int exec(sqlite3 *db, const char *sql, hs_err *err, const char *what)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int code = sqlite3_errcode(db) == SQLITE_NOTADB ? HS_EFORMAT : HS_EIO;
        hs_err_set(err, code, "%s: %s", what, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return code;
    }
    return HS_OK;
}

int hs_store_connect(const char *path, bool readonly, sqlite3 **out, hs_err *err)
{
    *out = NULL;
    sqlite3 *db = NULL;
    int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    /* NOMUTEX: every connection is used by one thread at a time (the writer's
     * by the writer, the other under dblock), so SQLite's own mutex is waste. */
    flags |= SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        hs_err_set(err, HS_EIO, "%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        return HS_EIO;
    }
    sqlite3_busy_timeout(db, HS_STORE_BUSY_MS);
    sqlite3_extended_result_codes(db, 0);
    /* WAL is a property of the file and sticks once set; synchronous=NORMAL
     * in WAL mode keeps every committed transaction through a process crash
     * (only power loss can take the last few), at a fraction of FULL's fsyncs. */
    const char *pragmas = readonly ? "PRAGMA foreign_keys=ON;"
                                   : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                     "PRAGMA foreign_keys=ON;";
    int rc = exec(db, pragmas, err, path);
    if (rc) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return HS_OK;
}

static int user_version(sqlite3 *db, int *out, hs_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return hs_store_sql_err(err, HS_EIO, db, "reading the schema version");
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        int code = sqlite3_errcode(db) == SQLITE_NOTADB ? HS_EFORMAT : HS_EIO;
        hs_store_sql_err(err, code, db, "reading the schema version");
        sqlite3_finalize(st);
        return code;
    }
    *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return HS_OK;
}

/* Brings the file to SCHEMA_VERSION. BEGIN IMMEDIATE takes the write lock
 * before reading the version, so two processes opening a new file at once
 * (a server and the cli) cannot both run the same migration. */
static int migrate(sqlite3 *db, const char *path, hs_err *err)
{
    int rc = exec(db, "BEGIN IMMEDIATE", err, path);
    if (rc)
        return rc;
    int v = 0;
    rc = user_version(db, &v, err);
    if (!rc && v > SCHEMA_VERSION)
        rc = hs_err_set(err, HS_EUNSUPPORTED,
                        "%s: schema version %d is newer than this hestia knows (%d); upgrade hestia", path, v,
                        SCHEMA_VERSION);
    for (; !rc && v < SCHEMA_VERSION; v++) {
        char what[64], pragma[48];
        snprintf(what, sizeof what, "migrating the schema to version %d", v + 1);
        rc = exec(db, k_migrations[v], err, what);
        snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d", v + 1);
        if (!rc)
            rc = exec(db, pragma, err, what);
        if (!rc)
            hs_log_debug("store.migrate", "path=%s version=%d", path, v + 1);
    }
    if (rc) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return hs_err_prefix(err, "%s: ", path);
    }
    return exec(db, "COMMIT", err, path);
}

/* ---- the writer ----------------------------------------------------------- */

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_ms(sqlite3_stmt *st, int i, double ms)
{
    if (ms >= 0)
        sqlite3_bind_double(st, i, ms);
    else
        sqlite3_bind_null(st, i);
}

/* Inserts one record; a second record with the same id is ignored (the
 * first one stays), so retries and echoed x-request-ids never make two rows. */
static int insert_one(hs_store *s, const struct hs_request_record *r)
{
    sqlite3_stmt *st = s->ins_req;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    bind_text(st, 1, r->id);
    sqlite3_bind_int64(st, 2, r->ts_ms);
    bind_text(st, 3, r->endpoint);
    bind_text(st, 4, r->key_name);
    bind_text(st, 5, r->client);
    bind_text(st, 6, r->user);
    bind_text(st, 7, r->model);
    bind_text(st, 8, r->backend);
    sqlite3_bind_int(st, 9, r->stream ? 1 : 0);
    sqlite3_bind_int(st, 10, r->status);
    bind_text(st, 11, r->error);
    bind_text(st, 12, r->finish_reason);
    sqlite3_bind_int(st, 13, r->tokens_in);
    sqlite3_bind_int(st, 14, r->tokens_out);
    sqlite3_bind_int(st, 15, r->tokens_cached);
    bind_ms(st, 16, r->queue_ms);
    bind_ms(st, 17, r->ttft_ms);
    bind_ms(st, 18, r->latency_ms);
    bind_text(st, 19, r->agent);
    bind_text(st, 20, r->adapters);
    bind_text(st, 21, r->parent_id);
    bind_ms(st, 22, r->confidence);
    bind_ms(st, 23, r->low_prob_share);
    bind_text(st, 24, r->safety_flags);
    bind_text(st, 25, r->experiment);
    bind_text(st, 26, r->variant);
    if (sqlite3_step(st) != SQLITE_DONE)
        return HS_EIO;
    if (sqlite3_changes(s->wdb) == 0 || (!r->request_body && !r->response_body))
        return HS_OK;
    st = s->ins_body;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    bind_text(st, 1, r->id);
    bind_text(st, 2, r->request_body);
    bind_text(st, 3, r->response_body);
    return sqlite3_step(st) == SQLITE_DONE ? HS_OK : HS_EIO;
}

static int commit_batch(hs_store *s, struct hs_store_item **items, size_t n)
{
    if (sqlite3_exec(s->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return HS_EIO;
    for (size_t i = 0; i < n; i++) {
        if (insert_one(s, &items[i]->r)) {
            sqlite3_reset(s->ins_req);
            sqlite3_reset(s->ins_body);
            sqlite3_exec(s->wdb, "ROLLBACK", NULL, NULL, NULL);
            return HS_EIO;
        }
    }
    sqlite3_reset(s->ins_req);
    sqlite3_reset(s->ins_body);
    if (sqlite3_exec(s->wdb, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(s->wdb, "ROLLBACK", NULL, NULL, NULL);
        return HS_EIO;
    }
    return HS_OK;
}

/* A failed batch (disk full, a lock held past the busy timeout) is retried
 * with a growing pause; the callers keep queueing meanwhile and wait once the
 * queue is full. After this many tries the batch is logged as lost, so that a
 * broken disk cannot hang the server forever. */
#define COMMIT_TRIES 8

static void *writer_main(void *arg)
{
    hs_store *s = arg;
    struct hs_store_item **batch = s->batch;
    pthread_mutex_lock(&s->qlock);
    for (;;) {
        while (s->count == 0 && !s->stopping)
            pthread_cond_wait(&s->q_nonempty, &s->qlock);
        if (s->count == 0 && s->stopping)
            break;
        size_t n = 0;
        while (s->count && n < HS_STORE_BATCH_MAX) {
            batch[n++] = s->ring[s->head];
            s->head = (s->head + 1) % HS_STORE_QUEUE_CAP;
            s->count--;
        }
        pthread_cond_broadcast(&s->q_nonfull);
        pthread_mutex_unlock(&s->qlock);

        int rc = HS_EIO;
        for (int t = 0; t < COMMIT_TRIES && rc; t++) {
            if (t) {
                hs_log_warn("store.commit", "path=%s records=%zu try=%d error=\"%s\"", s->path, n, t,
                            sqlite3_errmsg(s->wdb));
                usleep((useconds_t)(50000u << (t - 1)));
            }
            rc = commit_batch(s, batch, n);
        }
        if (rc)
            hs_log_error("store.lost", "path=%s records=%zu error=\"%s\"", s->path, n,
                         sqlite3_errmsg(s->wdb));
        for (size_t i = 0; i < n; i++)
            hs_free(batch[i]);

        pthread_mutex_lock(&s->qlock);
        s->committed += n;
        pthread_cond_broadcast(&s->q_done);
    }
    pthread_mutex_unlock(&s->qlock);
    return NULL;
}

/* ---- open / close --------------------------------------------------------- */

static const char k_ins_req[] =
    "INSERT OR IGNORE INTO requests (id, ts_ms, endpoint, key_name, client, user, model, backend, stream,"
    " status, error, finish_reason, tokens_in, tokens_out, tokens_cached, queue_ms, ttft_ms, latency_ms,"
    " agent, adapters, parent_id, confidence, low_prob_share, safety_flags, experiment, variant)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
static const char k_ins_body[] =
    "INSERT OR IGNORE INTO bodies (request_id, request, response) VALUES (?,?,?)";

static void free_handle(hs_store *s)
{
    sqlite3_finalize(s->ins_req);
    sqlite3_finalize(s->ins_body);
    sqlite3_close(s->wdb);
    sqlite3_close(s->db);
    hs_store_keys_free(s);
    hs_free(s->ring);
    hs_free(s->path);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->q_nonempty);
    pthread_cond_destroy(&s->q_nonfull);
    pthread_cond_destroy(&s->q_done);
    pthread_mutex_destroy(&s->dblock);
    pthread_mutex_destroy(&s->keylock);
    pthread_mutex_destroy(&s->redlock);
    hs_free(s);
}

int hs_store_open(const char *path, hs_store **out, hs_err *err)
{
    *out = NULL;
    if (!path || !path[0])
        return hs_err_set(err, HS_EINVAL, "store: no file name");
    /* Each handle opens the file twice and an export a third time, so an
     * in-memory database (a different one per connection) cannot work. */
    if (!strcmp(path, ":memory:") || !strncmp(path, "file:", 5))
        return hs_err_set(err, HS_EINVAL, "store: '%s' is not a plain file name", path);
    hs_store *s = hs_calloc(1, sizeof *s);
    if (!s)
        return hs_err_set(err, HS_ENOMEM, "store: out of memory");
    pthread_mutex_init(&s->qlock, NULL);
    pthread_cond_init(&s->q_nonempty, NULL);
    pthread_cond_init(&s->q_nonfull, NULL);
    pthread_cond_init(&s->q_done, NULL);
    pthread_mutex_init(&s->dblock, NULL);
    pthread_mutex_init(&s->keylock, NULL);
    pthread_mutex_init(&s->redlock, NULL);
    s->redact = hs_store_redact_default;
    s->path = hs_strdup(path);
    s->ring = hs_calloc(HS_STORE_QUEUE_CAP, sizeof *s->ring);
    if (!s->path || !s->ring) {
        free_handle(s);
        return hs_err_set(err, HS_ENOMEM, "store: out of memory");
    }
    int rc = hs_store_connect(path, false, &s->db, err);
    if (!rc)
        rc = migrate(s->db, path, err);
    if (!rc)
        rc = hs_store_connect(path, false, &s->wdb, err);
    if (!rc && (sqlite3_prepare_v3(s->wdb, k_ins_req, -1, SQLITE_PREPARE_PERSISTENT, &s->ins_req, NULL) ||
                sqlite3_prepare_v3(s->wdb, k_ins_body, -1, SQLITE_PREPARE_PERSISTENT, &s->ins_body, NULL))) {
        rc = hs_store_sql_err(err, HS_EIO, s->wdb, path);
    }
    if (!rc)
        rc = hs_store_keys_reload(s, err);
    if (!rc && pthread_create(&s->writer, NULL, writer_main, s) != 0)
        rc = hs_err_set(err, HS_EIO, "%s: cannot start the writer thread: %s", path, strerror(errno));
    if (rc) {
        free_handle(s);
        return rc;
    }
    hs_log_debug("store.open", "path=%s schema=%d keys=%zu", path, SCHEMA_VERSION, s->n_keys);
    *out = s;
    return HS_OK;
}

void hs_store_flush(hs_store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->qlock);
    uint64_t target = s->queued;
    while (s->committed < target)
        pthread_cond_wait(&s->q_done, &s->qlock);
    pthread_mutex_unlock(&s->qlock);
}

void hs_store_close(hs_store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->qlock);
    s->stopping = true;
    pthread_cond_broadcast(&s->q_nonempty);
    pthread_mutex_unlock(&s->qlock);
    /* the writer drains the queue before it returns */
    pthread_join(s->writer, NULL);
    free_handle(s);
}

/* ---- queueing a record ---------------------------------------------------- */

static size_t slen(const char *p)
{
    return p ? strlen(p) + 1 : 0;
}

/* Copies p into *cursor and returns the copy (NULL stays NULL). */
static const char *put(char **cursor, const char *p)
{
    if (!p)
        return NULL;
    size_t n = strlen(p) + 1;
    char *d = *cursor;
    memcpy(d, p, n);
    *cursor += n;
    return d;
}

int hs_store_log_request(hs_store *s, const struct hs_request_record *r, hs_err *err)
{
    assert(s && r);
    if (!r->id || !r->id[0])
        return hs_err_set(err, HS_EINVAL, "store: a request record needs an id");

    /* Bodies are redacted here, on the caller's thread, so that a secret in a
     * body never reaches the queue or the file. */
    char *req_body = r->request_body ? hs_store_redact(s, r->request_body) : NULL;
    char *resp_body = r->response_body ? hs_store_redact(s, r->response_body) : NULL;
    if ((r->request_body && !req_body) || (r->response_body && !resp_body)) {
        hs_free(req_body);
        hs_free(resp_body);
        return hs_err_set(err, HS_ENOMEM, "store: out of memory");
    }

    size_t text = slen(r->id) + slen(r->endpoint) + slen(r->key_name) + slen(r->client) + slen(r->user) +
                  slen(r->model) + slen(r->backend) + slen(r->error) + slen(r->finish_reason) +
                  slen(req_body) + slen(resp_body) + slen(r->agent) + slen(r->adapters) + slen(r->parent_id) +
                  slen(r->safety_flags) + slen(r->experiment) + slen(r->variant);
    struct hs_store_item *it = hs_malloc(sizeof *it + text);
    if (!it) {
        hs_free(req_body);
        hs_free(resp_body);
        return hs_err_set(err, HS_ENOMEM, "store: out of memory");
    }
    it->r = *r;
    char *cur = it->text;
    it->r.id = put(&cur, r->id);
    it->r.endpoint = put(&cur, r->endpoint);
    it->r.key_name = put(&cur, r->key_name);
    it->r.client = put(&cur, r->client);
    it->r.user = put(&cur, r->user);
    it->r.model = put(&cur, r->model);
    it->r.backend = put(&cur, r->backend);
    it->r.error = put(&cur, r->error);
    it->r.finish_reason = put(&cur, r->finish_reason);
    it->r.agent = put(&cur, r->agent);
    it->r.adapters = put(&cur, r->adapters);
    it->r.parent_id = put(&cur, r->parent_id);
    it->r.safety_flags = put(&cur, r->safety_flags);
    it->r.experiment = put(&cur, r->experiment);
    it->r.variant = put(&cur, r->variant);
    it->r.request_body = put(&cur, req_body);
    it->r.response_body = put(&cur, resp_body);
    hs_free(req_body);
    hs_free(resp_body);

    pthread_mutex_lock(&s->qlock);
    assert(!s->stopping);
    while (s->count == HS_STORE_QUEUE_CAP)
        pthread_cond_wait(&s->q_nonfull, &s->qlock);
    s->ring[(s->head + s->count) % HS_STORE_QUEUE_CAP] = it;
    s->count++;
    s->queued++;
    pthread_cond_signal(&s->q_nonempty);
    pthread_mutex_unlock(&s->qlock);
    return HS_OK;
}

int64_t hs_store_count_requests(hs_store *s, const char *endpoint)
{
    hs_store_flush(s);
    pthread_mutex_lock(&s->dblock);
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    const char *sql =
        endpoint ? "SELECT count(*) FROM requests WHERE endpoint = ?" : "SELECT count(*) FROM requests";
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (endpoint)
            sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
    }
    if (n < 0)
        hs_log_error("store.count", "path=%s error=\"%s\"", s->path, sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->dblock);
    return n;
}
