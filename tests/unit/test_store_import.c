/* ops/store_import: the export's JSONL back into a store. Round trip
 * (export -> import -> export is byte-identical, feedback included), all or
 * nothing on a bad line (the store's rows counted through a connection of our
 * own), duplicate ids, --skip-existing, type checks. */
#include "test_util.h"
#include "store_util.h"

#include "ops/store.h"
#include "ops/store_feedback.h"
#include "ops/store_import.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t count(const char *path, const char *table)
{
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    return hs_test_sql_i64(path, sql);
}

/* Rows of requests matching a condition. */
static int64_t count_where(const char *path, const char *cond)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM requests WHERE %s", cond);
    return hs_test_sql_i64(path, sql);
}

/* Occurrences of needle in s. */
static int count_in(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static char *export_str(hs_store *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    hs_err err = {0};
    assert_int_equal(hs_store_export_jsonl(s, f, 0, &err), HS_OK);
    fclose(f);
    return buf;
}

static int import_str(hs_store *s, const char *text, bool skip, struct hs_import_stats *st, hs_err *err)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(f);
    int rc = hs_store_import_jsonl(s, f, "t.jsonl", skip, st, err);
    fclose(f);
    return rc;
}

static void export_import_export_is_identical(void **state)
{
    (void)state;
    char *pa = hs_test_fresh_path("imp_a.db"), *pb = hs_test_fresh_path("imp_b.db");
    hs_store *a = hs_test_store_open(pa);
    hs_err err = {0};
    struct hs_request_record r = {
        .id = "one", .ts_ms = 1700000000123, .endpoint = "/v1/chat/completions", .key_name = "alice",
        .client = "127.0.0.1", .user = "u1", .model = "tiny", .agent = "triage", .adapters = "med:0.5",
        .parent_id = "p1", .confidence = 0.8125, .low_prob_share = 0.1, .safety_flags = "overconfident",
        .backend = "local", .stream = true, .status = 200, .finish_reason = "stop", .tokens_in = 12,
        .tokens_out = 34, .tokens_cached = 5, .queue_ms = 1.25, .ttft_ms = 33.3, .latency_ms = 123.456,
        .request_body = "{\"q\":\"caf\xc3\xa9\"}", .response_body = "answer",
        .experiment = "triage-v2", .variant = "B",
    };
    assert_int_equal(hs_store_log_request(a, &r, &err), HS_OK);
    struct hs_request_record r2 = {.id = "two", .ts_ms = 1700000000999, .endpoint = "/v1/embeddings",
                                   .status = 500, .error = "boom", .confidence = -1, .low_prob_share = -1,
                                   .queue_ms = -1, .ttft_ms = -1, .latency_ms = -1};
    assert_int_equal(hs_store_log_request(a, &r2, &err), HS_OK);
    assert_int_equal(hs_store_feedback_set(a, "one", NULL, -1, "wrong \"units\"", 1700000005000, NULL, &err), HS_OK);
    assert_int_equal(hs_store_feedback_set(a, "one", NULL, 1, NULL, 1700000009000, NULL, &err), HS_OK);
    char *e1 = export_str(a);
    /* (issue 7) the experiment's fields on the record it routed, absent from the other */
    assert_non_null(strstr(e1, "\"experiment\":\"triage-v2\",\"variant\":\"B\""));
    assert_int_equal(count_in(e1, "\"experiment\""), 1);
    assert_int_equal(count_in(e1, "\"variant\""), 1);
    assert_non_null(strstr(e1, "\"feedback\":{\"value\":1,\"comment\":null,\"ts_ms\":1700000005000,"
                               "\"updated_ms\":1700000009000}"));

    hs_store *b = hs_test_store_open(pb);
    struct hs_import_stats st;
    assert_int_equal(import_str(b, e1, false, &st, &err), HS_OK);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.feedback, 1);
    char *e2 = export_str(b);
    assert_string_equal(e1, e2);
    assert_int_equal(count(pb, "bodies"), 1);
    assert_int_equal(count_where(pb, "experiment = 'triage-v2' AND variant = 'B' AND id = 'one'"), 1);
    assert_int_equal(count_where(pb, "experiment IS NULL AND variant IS NULL AND id = 'two'"), 1);

    /* again: the ids are there */
    assert_int_equal(import_str(b, e1, false, &st, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "t.jsonl:1:"));
    assert_non_null(strstr(err.msg, "'one'"));
    assert_int_equal(import_str(b, e1, true, &st, &err), HS_OK);
    assert_int_equal(st.skipped, 2);
    assert_int_equal(st.records, 0);
    assert_int_equal(count(pb, "requests"), 2);
    free(e1);
    free(e2);
    hs_store_close(a);
    hs_store_close(b);
    free(pa);
    free(pb);
}

static void a_bad_line_imports_nothing(void **state)
{
    (void)state;
    char *p = hs_test_fresh_path("imp_bad.db");
    hs_store *s = hs_test_store_open(p);
    hs_err err = {0};
    static const struct {
        const char *line, *msg;
    } k_bad[] = {
        {"{\"id\":\"b\",\"ts_ms\":\"5\",\"status\":200}", "\"ts_ms\""},
        {"{\"id\":\"b\",\"ts_ms\":5,\"status\":200.5}", "\"status\""},
        {"{\"id\":\"b\",\"ts_ms\":5}", "\"status\" is missing"},
        {"{\"id\":\"b\",\"ts_ms\":5,\"status\":200,\"latency_ms\":\"fast\"}", "\"latency_ms\""},
        {"{\"id\":\"b\",\"ts_ms\":5,\"status\":200,\"stream\":1}", "\"stream\""},
        {"{\"id\":\"b\",\"ts_ms\":5,\"status\":200,\"colour\":1}", "unknown field \"colour\""},
        {"{\"id\":\"b\",\"ts_ms\":5,\"status\":200,\"feedback\":{\"value\":0}}", "feedback.value"},
        {"{\"id\":\"b\",\"ts_ms\":5,\"status\":200,\"confidence\":1.5}", "\"confidence\""},
        {"{\"id\":\"b\",\"ts_ms\":5,\"status\":200,\"experiment\":\"x\",\"variant\":\"C\"}", "\"variant\""},
        {"{\"id\":\"b\",\"ts_ms\":5,\"status\":200,\"experiment\":\"x\",\"variant\":\"a\"}", "\"variant\""},
        {"{\"id\":\"b\",\"ts_ms\":5,\"status\":200,\"experiment\":7,\"variant\":\"A\"}", "\"experiment\""},
        {"{\"id\":\"b\",\"ts_ms\":5,\"status\":200,\"experiment\":\"\",\"variant\":\"A\"}", "\"experiment\""},
        {"{\"id\":\"b\",\"ts_ms\":5,\"status\":200,\"variant\":\"A\"}", "\"variant\" needs \"experiment\""},
        {"{\"id\":\"b\",\"ts_ms\":5,\"status\":200,\"experiment\":\"x\"}", "\"experiment\" needs \"variant\""},
        {"{\"id\":\"a\",\"ts_ms\":5,\"status\":200}", "'a'"}, /* repeated in the file */
        {"[1,2]", "object"},
        {"{\"id\":", "not JSON"},
    };
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "{\"id\":\"a\",\"ts_ms\":1,\"status\":200,\"feedback\":{\"value\":1}}\n\n%s\n"
                 "{\"id\":\"c\",\"ts_ms\":2,\"status\":200}\n",
                 k_bad[i].line);
        struct hs_import_stats st = {1, 1, 1};
        int rc = import_str(s, text, false, &st, &err);
        if (rc == HS_OK || !strstr(err.msg, k_bad[i].msg) || strncmp(err.msg, "t.jsonl:3: ", 11))
            print_message("line %s: rc %d: %s\n", k_bad[i].line, rc, err.msg);
        assert_int_not_equal(rc, HS_OK);
        assert_int_equal(strncmp(err.msg, "t.jsonl:3: ", 11), 0);
        assert_non_null(strstr(err.msg, k_bad[i].msg));
        assert_int_equal(st.records, 0);
        assert_int_equal(count(p, "requests"), 0);
        assert_int_equal(count(p, "feedback"), 0);
    }
    hs_store_close(s);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(export_import_export_is_identical),
        cmocka_unit_test(a_bad_line_imports_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
