/* ops/store: schema, the writer queue, API keys, redaction, JSONL export.
 * What the store wrote is read back through a separate SQLite connection
 * (and libsodium for the key hash), not through the store's own queries. */
#include "test_util.h"
#include "store_util.h"

#include "base/clock.h"
#include "ops/store.h"

#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *query_text(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(st, 0);
    char *r = t ? strdup((const char *)t) : NULL;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return r;
}

static struct hs_request_record record(const char *id, int64_t ts)
{
    return (struct hs_request_record){
        .id = id,
        .ts_ms = ts,
        .endpoint = "/v1/chat/completions",
        .model = "m",
        .backend = "local",
        .status = 200,
        .finish_reason = "stop",
        .tokens_in = 5,
        .tokens_out = 7,
        .queue_ms = -1,
        .ttft_ms = 12.5,
        .latency_ms = 40.25,
    };
}

/* ---- schema ---------------------------------------------------------------- */

static void schema_is_created_versioned_and_reopened(void **state)
{
    (void)state;
    char *path = hs_test_fresh_path("schema.db");
    hs_store_close(hs_test_store_open(path));

    assert_true(hs_test_sql_i64(path, "PRAGMA user_version") >= 1);
    char *mode = query_text(path, "PRAGMA journal_mode");
    assert_string_equal(mode, "wal");
    free(mode);
    /* every column the issue names */
    static const char *const cols[] = {
        "id",        "ts_ms",      "endpoint",      "key_name", "client",  "user",
        "model",     "backend",    "stream",        "status",   "error",   "finish_reason",
        "tokens_in", "tokens_out", "tokens_cached", "queue_ms", "ttft_ms", "latency_ms"};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM pragma_table_info('requests') WHERE name = '%s'",
                 cols[i]);
        assert_int_equal(hs_test_sql_i64(path, sql), 1);
    }
    assert_int_equal(hs_test_sql_i64(path, "SELECT count(*) FROM pragma_table_info('bodies') WHERE name IN "
                                     "('request_id', 'request', 'response')"),
                     3);
    assert_int_equal(hs_test_sql_i64(path, "SELECT count(*) FROM pragma_table_info('api_keys') WHERE name IN "
                                     "('name', 'scope', 'hash', 'prefix', 'created_ms', 'revoked_ms')"),
                     6);
    int64_t v1 = hs_test_sql_i64(path, "PRAGMA user_version");

    /* reopening keeps the data and the version */
    hs_store *s = hs_test_store_open(path);
    struct hs_request_record r = record("a", 1000);
    assert_int_equal(hs_store_log_request(s, &r, NULL), HS_OK);
    hs_store_close(s);
    s = hs_test_store_open(path);
    assert_int_equal(hs_store_count_requests(s, NULL), 1);
    hs_store_close(s);
    assert_int_equal(hs_test_sql_i64(path, "PRAGMA user_version"), v1);

    /* a file from a newer hestia is refused, not damaged */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    hs_store *bad = NULL;
    hs_err err = {0};
    assert_int_equal(hs_store_open(path, &bad, &err), HS_EUNSUPPORTED);
    assert_null(bad);
    assert_non_null(strstr(err.msg, "999"));
    free(path);

    /* a file that is not a database */
    char *junk = hs_test_fresh_path("junk.db");
    FILE *f = fopen(junk, "w");
    assert_non_null(f);
    for (int i = 0; i < 512; i++)
        fputs("not sqlite ", f);
    fclose(f);
    assert_int_equal(hs_store_open(junk, &bad, &err), HS_EFORMAT);
    assert_null(bad);
    free(junk);

    assert_int_equal(hs_store_open(":memory:", &bad, &err), HS_EINVAL);
    hs_store_close(NULL);
    hs_store_flush(NULL);
}

/* ---- the writer ------------------------------------------------------------ */

#define N_THREADS 8
#define PER_THREAD 1250 /* 10,000 in all: more than twice the queue, so producers wait */

struct producer {
    hs_store *s;
    int t;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char id[32];
        snprintf(id, sizeof id, "t%d-%05d", p->t, i);
        struct hs_request_record r = record(id, 1000000 + i);
        r.tokens_in = p->t;
        r.tokens_out = i;
        if (hs_store_log_request(p->s, &r, NULL) != HS_OK)
            return (void *)1;
    }
    return NULL;
}

static void records_from_8_threads_are_all_stored_once(void **state)
{
    (void)state;
    char *path = hs_test_fresh_path("load.db");
    hs_store *s = hs_test_store_open(path);
    pthread_t th[N_THREADS];
    struct producer p[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        p[t] = (struct producer){s, t};
        assert_int_equal(pthread_create(&th[t], NULL, produce, &p[t]), 0);
    }
    for (int t = 0; t < N_THREADS; t++) {
        void *ret;
        pthread_join(th[t], &ret);
        assert_null(ret);
    }
    hs_store_flush(s);
    /* read by another connection: flush must mean committed */
    assert_int_equal(hs_test_sql_i64(path, "SELECT count(*) FROM requests"), N_THREADS * PER_THREAD);
    assert_int_equal(hs_test_sql_i64(path, "SELECT count(DISTINCT id) FROM requests"), N_THREADS * PER_THREAD);
    /* each thread's records, each with the numbers it was given */
    for (int t = 0; t < N_THREADS; t++) {
        char sql[200];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM requests WHERE id LIKE 't%d-%%' AND tokens_in = %d"
                 " AND tokens_out = CAST(substr(id, 4) AS INTEGER)",
                 t, t);
        assert_int_equal(hs_test_sql_i64(path, sql), PER_THREAD);
    }
    /* fields: a negative time is NULL, others as given */
    assert_int_equal(hs_test_sql_i64(path, "SELECT count(*) FROM requests WHERE queue_ms IS NULL AND ttft_ms = 12.5"
                                     " AND latency_ms = 40.25 AND status = 200 AND stream = 0"),
                     N_THREADS * PER_THREAD);
    assert_int_equal(hs_store_count_requests(s, NULL), N_THREADS * PER_THREAD);
    assert_int_equal(hs_store_count_requests(s, "/v1/chat/completions"), N_THREADS * PER_THREAD);
    assert_int_equal(hs_store_count_requests(s, "/v1/embeddings"), 0);
    hs_store_close(s);
    free(path);
}

static void duplicate_id_makes_one_row(void **state)
{
    (void)state;
    char *path = hs_test_fresh_path("dup.db");
    hs_store *s = hs_test_store_open(path);
    struct hs_request_record r = record("same-id", 1000);
    r.request_body = "first";
    assert_int_equal(hs_store_log_request(s, &r, NULL), HS_OK);
    hs_store_flush(s);
    r.status = 500;
    r.request_body = "second";
    assert_int_equal(hs_store_log_request(s, &r, NULL), HS_OK);
    /* and once more in the same batch */
    assert_int_equal(hs_store_log_request(s, &r, NULL), HS_OK);
    hs_store_flush(s);
    assert_int_equal(hs_test_sql_i64(path, "SELECT count(*) FROM requests WHERE id = 'same-id'"), 1);
    assert_int_equal(hs_test_sql_i64(path, "SELECT status FROM requests WHERE id = 'same-id'"), 200);
    assert_int_equal(hs_test_sql_i64(path, "SELECT count(*) FROM bodies"), 1);
    char *b = query_text(path, "SELECT request FROM bodies");
    assert_string_equal(b, "first");
    free(b);

    struct hs_request_record no_id = record(NULL, 1);
    hs_err err = {0};
    assert_int_equal(hs_store_log_request(s, &no_id, &err), HS_EINVAL);
    hs_store_close(s);
    free(path);
}

/* Closing without a flush still writes everything queued. */
static void close_flushes(void **state)
{
    (void)state;
    char *path = hs_test_fresh_path("close.db");
    hs_store *s = hs_test_store_open(path);
    for (int i = 0; i < 300; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%d", i);
        struct hs_request_record r = record(id, i);
        assert_int_equal(hs_store_log_request(s, &r, NULL), HS_OK);
    }
    hs_store_close(s);
    assert_int_equal(hs_test_sql_i64(path, "SELECT count(*) FROM requests"), 300);
    free(path);
}

/* ---- keys ------------------------------------------------------------------ */

static bool is_key_text(const char *k)
{
    if (strncmp(k, "hs-", 3) || strlen(k) != 46)
        return false;
    for (const char *p = k + 3; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_'))
            return false;
    return true;
}

struct listed {
    struct hs_key_info k[8];
    int n;
};

static void collect(void *user, const struct hs_key_info *k)
{
    struct listed *l = user;
    if (l->n < 8)
        l->k[l->n++] = *k;
}

/* The file holds text only as SQLite wrote it; a plain search finds a key
 * stored in clear wherever it sits. */
static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    bool found = memmem(buf, got, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

static void keys_create_verify_revoke(void **state)
{
    (void)state;
    char *path = hs_test_fresh_path("keys.db");
    hs_store *s = hs_test_store_open(path);
    hs_err err = {0};
    assert_int_equal(hs_store_key_count(s), 0);

    char k1[HS_STORE_KEY_CAP], k2[HS_STORE_KEY_CAP];
    assert_int_equal(hs_store_key_create(s, "alice", HS_SCOPE_ADMIN, k1, sizeof k1, &err), HS_OK);
    assert_int_equal(hs_store_key_create(s, "bob", HS_SCOPE_USER, k2, sizeof k2, &err), HS_OK);
    assert_true(is_key_text(k1));
    assert_true(is_key_text(k2));
    assert_string_not_equal(k1, k2);
    assert_int_equal(hs_store_key_count(s), 2);

    struct hs_key_info info;
    assert_true(hs_store_key_verify(s, k1, &info));
    assert_string_equal(info.name, "alice");
    assert_int_equal(info.scope, HS_SCOPE_ADMIN);
    assert_int_equal(info.revoked_ms, 0);
    assert_true(info.created_ms > 1700000000000LL);
    assert_int_equal(strncmp(info.prefix, k1, strlen(info.prefix)), 0);
    assert_true(strlen(info.prefix) >= 6 && strlen(info.prefix) < 16);
    assert_true(hs_store_key_verify(s, k2, &info));
    assert_string_equal(info.name, "bob");
    assert_int_equal(info.scope, HS_SCOPE_USER);

    /* wrong keys of the right shape, truncated, extended, empty */
    char wrong[HS_STORE_KEY_CAP];
    memcpy(wrong, k1, sizeof wrong);
    wrong[20] = wrong[20] == 'A' ? 'B' : 'A';
    assert_false(hs_store_key_verify(s, wrong, &info));
    memcpy(wrong, k1, sizeof wrong);
    wrong[45] = '\0';
    assert_false(hs_store_key_verify(s, wrong, NULL));
    char longer[64];
    snprintf(longer, sizeof longer, "%sx", k1);
    assert_false(hs_store_key_verify(s, longer, NULL));
    assert_false(hs_store_key_verify(s, "", NULL));
    assert_false(hs_store_key_verify(s, NULL, NULL));

    /* the file holds the BLAKE2b hash, never the key */
    unsigned char h[32];
    crypto_generichash(h, sizeof h, (const unsigned char *)k1, strlen(k1), NULL, 0);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM api_keys WHERE name = 'alice' AND lower(hex(hash)) = '%s'", hex);
    assert_int_equal(hs_test_sql_i64(path, sql), 1);

    /* names: unique among active keys, checked characters, scopes */
    char k3[HS_STORE_KEY_CAP];
    assert_int_equal(hs_store_key_create(s, "alice", HS_SCOPE_USER, k3, sizeof k3, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "alice"));
    assert_int_equal(hs_store_key_create(s, "", HS_SCOPE_USER, k3, sizeof k3, &err), HS_EINVAL);
    assert_int_equal(hs_store_key_create(s, "a b", HS_SCOPE_USER, k3, sizeof k3, &err), HS_EINVAL);
    assert_int_equal(hs_store_key_create(s, "carol", HS_SCOPE_USER, k3, 20, &err), HS_EINVAL);
    assert_int_equal(hs_store_key_create(s, "carol", (enum hs_key_scope)7, k3, sizeof k3, &err), HS_EINVAL);

    /* revoke: the key stops at once in this handle; a second revoke finds nothing */
    assert_int_equal(hs_store_key_revoke(s, "alice", &err), HS_OK);
    assert_false(hs_store_key_verify(s, k1, &info));
    assert_true(hs_store_key_verify(s, k2, &info));
    assert_int_equal(hs_store_key_revoke(s, "alice", &err), HS_ENOTFOUND);
    assert_int_equal(hs_store_key_revoke(s, "nobody", &err), HS_ENOTFOUND);
    assert_int_equal(hs_store_key_count(s), 1);

    /* a revoked name can be used again, with a new secret */
    assert_int_equal(hs_store_key_create(s, "alice", HS_SCOPE_USER, k3, sizeof k3, &err), HS_OK);
    assert_true(hs_store_key_verify(s, k3, &info));
    assert_int_equal(info.scope, HS_SCOPE_USER);
    assert_false(hs_store_key_verify(s, k1, NULL));

    struct listed l = {0};
    assert_int_equal(hs_store_key_list(s, collect, &l, &err), HS_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.k[0].name, "alice");
    assert_true(l.k[0].revoked_ms >= l.k[0].created_ms && l.k[0].revoked_ms > 0);
    assert_string_equal(l.k[1].name, "bob");
    assert_int_equal(l.k[1].revoked_ms, 0);
    assert_string_equal(l.k[2].name, "alice");
    assert_int_equal(l.k[2].revoked_ms, 0);

    hs_store_close(s);
    assert_false(file_contains(path, k1));
    assert_false(file_contains(path, k2));
    assert_false(file_contains(path, k3));

    enum hs_key_scope sc;
    assert_int_equal(hs_key_scope_parse("admin", &sc), HS_OK);
    assert_int_equal(sc, HS_SCOPE_ADMIN);
    assert_string_equal(hs_key_scope_name(sc), "admin");
    assert_int_equal(hs_key_scope_parse("root", &sc), HS_EINVAL);
    free(path);
}

/* Polls verify on s until it answers want, at most max_s; returns the seconds taken. */
static double wait_for_verify(hs_store *s, const char *key, bool want, double max_s)
{
    double t0 = hs_now_s();
    while (hs_store_key_verify(s, key, NULL) != want) {
        if (hs_now_s() - t0 > max_s)
            return -1;
        usleep(20000);
    }
    return hs_now_s() - t0;
}

/* The cli writes keys through a handle of its own while a server runs. */
static void key_from_another_handle_is_seen_within_2s(void **state)
{
    (void)state;
    char *path = hs_test_fresh_path("keys2.db");
    hs_store *server = hs_test_store_open(path);
    assert_false(hs_store_key_verify(server, "hs-nothing-yet", NULL));

    hs_store *cli = hs_test_store_open(path);
    char key[HS_STORE_KEY_CAP];
    assert_int_equal(hs_store_key_create(cli, "ci", HS_SCOPE_USER, key, sizeof key, NULL), HS_OK);
    hs_store_close(cli);
    double t = wait_for_verify(server, key, true, 3.0);
    print_message("new key seen after %.2f s\n", t);
    assert_true(t >= 0 && t <= 2.6);

    cli = hs_test_store_open(path);
    assert_int_equal(hs_store_key_revoke(cli, "ci", NULL), HS_OK);
    hs_store_close(cli);
    t = wait_for_verify(server, key, false, 3.0);
    print_message("revocation seen after %.2f s\n", t);
    assert_true(t >= 0 && t <= 2.6);
    hs_store_close(server);
    free(path);
}

struct verifier {
    hs_store *s;
    const char *good, *bad;
    int wrong;
};

static void *verify_many(void *arg)
{
    struct verifier *v = arg;
    for (int i = 0; i < 2000; i++) {
        if (!hs_store_key_verify(v->s, v->good, NULL))
            v->wrong++;
        if (hs_store_key_verify(v->s, v->bad, NULL))
            v->wrong++;
    }
    return NULL;
}

/* HTTP threads verify at once while keys come and go. */
static void verify_is_thread_safe(void **state)
{
    (void)state;
    char *path = hs_test_fresh_path("keys3.db");
    hs_store *s = hs_test_store_open(path);
    char good[HS_STORE_KEY_CAP], other[HS_STORE_KEY_CAP];
    assert_int_equal(hs_store_key_create(s, "good", HS_SCOPE_USER, good, sizeof good, NULL), HS_OK);
    char bad[HS_STORE_KEY_CAP];
    memcpy(bad, good, sizeof bad);
    bad[10] = bad[10] == 'x' ? 'y' : 'x';
    pthread_t th[4];
    struct verifier v[4];
    for (int i = 0; i < 4; i++) {
        v[i] = (struct verifier){s, good, bad, 0};
        pthread_create(&th[i], NULL, verify_many, &v[i]);
    }
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "tmp%d", i);
        assert_int_equal(hs_store_key_create(s, name, HS_SCOPE_USER, other, sizeof other, NULL), HS_OK);
        assert_int_equal(hs_store_key_revoke(s, name, NULL), HS_OK);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(v[i].wrong, 0);
    }
    hs_store_close(s);
    free(path);
}

/* ---- redaction ------------------------------------------------------------- */

static void expect_redacted(hs_store *s, const char *in, const char *want)
{
    char *got = hs_store_redact(s, in);
    assert_non_null(got);
    if (strcmp(got, want))
        print_message("in:   %s\ngot:  %s\nwant: %s\n", in, got, want);
    assert_string_equal(got, want);
    free(got);
}

static char *upper_redactor(void *user, const char *text)
{
    (*(int *)user)++;
    char *r = strdup(text);
    for (char *p = r; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    return r;
}

static void default_redactor_masks_tokens_keys_and_mail(void **state)
{
    (void)state;
    char *path = hs_test_fresh_path("redact.db");
    hs_store *s = hs_test_store_open(path);
    expect_redacted(s, "Authorization: Bearer abcDEF123456._-~+/=", "Authorization: Bearer [REDACTED]");
    expect_redacted(s, "{\"h\":\"bearer  tok3nTok3nTok3n\"}", "{\"h\":\"bearer  [REDACTED]\"}");
    expect_redacted(s, "use sk-proj-AbCdEfGhIjKlMnOpQrSt12 now", "use [REDACTED] now");
    expect_redacted(s, "key=hs-cRr2mEV1RipQL7h9jzopzSWi2P-_4IGUJN89eErivQs;", "key=[REDACTED];");
    expect_redacted(s, "mail john.doe+tag@example.co.uk, or ME@X.ORG.", "mail [REDACTED], or [REDACTED].");
    expect_redacted(s, "{\"content\":\"I am bob@mail.example.com\"}", "{\"content\":\"I am [REDACTED]\"}");
    expect_redacted(s, "two: a@b.io sk-ABCDEFGHIJKLMNOPQRST", "two: [REDACTED] [REDACTED]");
    /* things that only look alike stay */
    static const char *const keep[] = {
        "pip install sk-learn and hs-code",
        "the bearer of bad news",
        "task-0123456789abcdefghij is a task id",
        "an @ alone, user@localhost, 2 @ 3",
        "",
        "caf\xc3\xa9 \xff\xfe bytes",
    };
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        expect_redacted(s, keep[i], keep[i]);
    assert_null(hs_store_redact(s, NULL));

    /* bodies go through the hook before they are stored; the hook can be replaced */
    struct hs_request_record r = record("r1", 1);
    r.request_body = "{\"messages\":[{\"content\":\"mail me: a.b@example.com\"}]}";
    r.response_body = "ok sk-ABCDEFGHIJKLMNOPQRSTUV";
    assert_int_equal(hs_store_log_request(s, &r, NULL), HS_OK);
    int calls = 0;
    hs_store_set_redactor(s, upper_redactor, &calls);
    r.id = "r2";
    r.request_body = "quiet";
    r.response_body = NULL;
    assert_int_equal(hs_store_log_request(s, &r, NULL), HS_OK);
    assert_int_equal(calls, 1);
    hs_store_flush(s);
    char *b = query_text(path, "SELECT request FROM bodies WHERE request_id = 'r1'");
    assert_string_equal(b, "{\"messages\":[{\"content\":\"mail me: [REDACTED]\"}]}");
    free(b);
    b = query_text(path, "SELECT response FROM bodies WHERE request_id = 'r1'");
    assert_string_equal(b, "ok [REDACTED]");
    free(b);
    b = query_text(path, "SELECT request FROM bodies WHERE request_id = 'r2'");
    assert_string_equal(b, "QUIET");
    free(b);
    assert_int_equal(
        hs_test_sql_i64(path, "SELECT count(*) FROM bodies WHERE request_id = 'r2' AND response IS NULL"), 1);
    hs_store_close(s);
    free(path);
}

/* ---- export ---------------------------------------------------------------- */

static void export_round_trips_through_json(void **state)
{
    (void)state;
    char *path = hs_test_fresh_path("export.db");
    hs_store *s = hs_test_store_open(path);
    /* logged out of time order; exported oldest first */
    struct hs_request_record a = record("late", 3000);
    a.key_name = "alice";
    a.client = "127.0.0.1";
    a.user = "u\"1\n";
    a.stream = true;
    a.tokens_cached = 3;
    a.queue_ms = 0.5;
    a.request_body = "{\"q\":1}";
    a.response_body = "{\"a\":\"caf\xc3\xa9\"}";
    struct hs_request_record b = record("early", 1000);
    b.status = 429;
    b.error = "rate limited";
    b.finish_reason = NULL;
    b.model = "bad \xff byte";
    b.ttft_ms = -1;
    struct hs_request_record c = record("middle", 2000);
    c.endpoint = "/v1/embeddings";
    assert_int_equal(hs_store_log_request(s, &a, NULL), HS_OK);
    assert_int_equal(hs_store_log_request(s, &b, NULL), HS_OK);
    assert_int_equal(hs_store_log_request(s, &c, NULL), HS_OK);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    hs_err err = {0};
    assert_int_equal(hs_store_export_jsonl(s, f, 0, &err), HS_OK);
    fclose(f);

    const char *want_order[] = {"early", "middle", "late"};
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o)
            print_message("line %d: %s: %s\n", n, je.text, line);
        assert_non_null(o);
        assert_true(n < 3);
        assert_string_equal(json_string_value(json_object_get(o, "id")), want_order[n]);
        if (n == 0) { /* early */
            assert_int_equal(json_integer_value(json_object_get(o, "ts_ms")), 1000);
            assert_int_equal(json_integer_value(json_object_get(o, "status")), 429);
            assert_string_equal(json_string_value(json_object_get(o, "error")), "rate limited");
            assert_true(json_is_null(json_object_get(o, "finish_reason")));
            assert_true(json_is_null(json_object_get(o, "ttft_ms")));
            assert_true(json_is_null(json_object_get(o, "key_name")));
            assert_string_equal(json_string_value(json_object_get(o, "model")), "bad \xef\xbf\xbd byte");
            assert_null(json_object_get(o, "request_body"));
            assert_string_equal(json_string_value(json_object_get(o, "time")), "1970-01-01T00:00:01.000Z");
        } else if (n == 1) {
            assert_string_equal(json_string_value(json_object_get(o, "endpoint")), "/v1/embeddings");
            assert_true(json_is_false(json_object_get(o, "stream")));
        } else { /* late: every field */
            assert_string_equal(json_string_value(json_object_get(o, "endpoint")), "/v1/chat/completions");
            assert_string_equal(json_string_value(json_object_get(o, "key_name")), "alice");
            assert_string_equal(json_string_value(json_object_get(o, "client")), "127.0.0.1");
            assert_string_equal(json_string_value(json_object_get(o, "user")), "u\"1\n");
            assert_string_equal(json_string_value(json_object_get(o, "model")), "m");
            assert_string_equal(json_string_value(json_object_get(o, "backend")), "local");
            assert_true(json_is_true(json_object_get(o, "stream")));
            assert_int_equal(json_integer_value(json_object_get(o, "status")), 200);
            assert_true(json_is_null(json_object_get(o, "error")));
            assert_string_equal(json_string_value(json_object_get(o, "finish_reason")), "stop");
            assert_int_equal(json_integer_value(json_object_get(o, "tokens_in")), 5);
            assert_int_equal(json_integer_value(json_object_get(o, "tokens_out")), 7);
            assert_int_equal(json_integer_value(json_object_get(o, "tokens_cached")), 3);
            assert_true(json_real_value(json_object_get(o, "queue_ms")) == 0.5);
            assert_true(json_real_value(json_object_get(o, "ttft_ms")) == 12.5);
            assert_true(json_real_value(json_object_get(o, "latency_ms")) == 40.25);
            assert_string_equal(json_string_value(json_object_get(o, "request_body")), "{\"q\":1}");
            assert_string_equal(json_string_value(json_object_get(o, "response_body")),
                                "{\"a\":\"caf\xc3\xa9\"}");
        }
        json_decref(o);
    }
    assert_int_equal(n, 3);
    free(buf);

    /* since: from that millisecond on */
    buf = NULL;
    f = open_memstream(&buf, &len);
    assert_int_equal(hs_store_export_jsonl(s, f, 2000, &err), HS_OK);
    fclose(f);
    assert_non_null(strstr(buf, "\"middle\""));
    assert_non_null(strstr(buf, "\"late\""));
    assert_null(strstr(buf, "\"early\""));
    int lines = 0;
    for (char *p = buf; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2);
    free(buf);
    hs_store_close(s);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(schema_is_created_versioned_and_reopened),
        cmocka_unit_test(records_from_8_threads_are_all_stored_once),
        cmocka_unit_test(duplicate_id_makes_one_row),
        cmocka_unit_test(close_flushes),
        cmocka_unit_test(keys_create_verify_revoke),
        cmocka_unit_test(key_from_another_handle_is_seen_within_2s),
        cmocka_unit_test(verify_is_thread_safe),
        cmocka_unit_test(default_redactor_masks_tokens_keys_and_mail),
        cmocka_unit_test(export_round_trips_through_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
