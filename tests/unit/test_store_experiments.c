/* ops/store_experiments: experiments, their state and history survive a
 * close and reopen identically; request records carry experiment and
 * variant; the per-variant aggregates agree with figures computed here
 * from the records we wrote (percentiles by the type-7 formula by hand);
 * expert scores go in all or nothing; shadow results and their summary. */
#include "test_util.h"
#include "store_util.h"

#include "base/mem.h"
#include "ops/store_experiments.h"
#include "ops/store_feedback.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct hs_experiment canary_def(void)
{
    struct hs_experiment e;
    hs_err err = {0};
    int rc =
        hs_experiment_from_json_text(&e,
                                     "{\"name\":\"canary1\",\"route\":\"triage\",\"mode\":\"canary\","
                                     "\"a\":\"base\",\"b\":\"base+v2\",\"canary\":[{\"weight\":\"1%\"},"
                                     "{\"weight\":\"5%\",\"after\":\"1h\"},{\"weight\":1,\"after\":\"2h\"}]}",
                                     &err);
    if (rc)
        fail_msg("%s", err.msg);
    return e;
}

struct events {
    char text[2048];
    int n;
};

static void collect_event(void *user, const struct hs_exp_event *ev)
{
    struct events *e = user;
    size_t o = strlen(e->text);
    snprintf(e->text + o, sizeof e->text - o, "%s@%lld:%.2f:%s;", ev->kind, (long long)ev->ts_ms,
             ev->weight_b, ev->reason ? ev->reason : "-");
    e->n++;
}

static void state_and_history_survive_reopen(void **state)
{
    (void)state;
    char *path = hs_test_fresh_path("exp_state.db");
    hs_store *s = hs_test_store_open(path);
    assert_int_equal(hs_test_sql_i64(path, "PRAGMA user_version") >= 4, 1);
    struct hs_experiment e = canary_def();
    struct hs_exp_state st;
    bool created = false;
    hs_err err = {0};
    assert_int_equal(hs_store_exp_ensure(s, &e, 1000, &st, &created, &err), HS_OK);
    assert_true(created);
    assert_true(st.weight_b == 0.01 && st.step == 0 && st.step_ms == 1000 && st.status == HS_EXP_ACTIVE);

    /* the canary advances, then is rolled back */
    struct hs_exp_state nx;
    assert_true(hs_exp_canary_next(&e, &st, 1000 + 3600000, true, &nx));
    assert_int_equal(hs_store_exp_update(s, e.name, &nx, HS_EXP_EV_ADVANCE, "canary step 1", &err), HS_OK);
    struct hs_exp_state rb = nx;
    rb.weight_b = 0;
    rb.status = HS_EXP_ROLLED_BACK;
    rb.updated_ms = 1000 + 3600000 + 5000;
    assert_int_equal(hs_store_exp_update(s, e.name, &rb, HS_EXP_EV_ROLLBACK,
                                         "B error rate 12.0% > 2 x A's 3.0% (n=120)", &err),
                     HS_OK);
    assert_int_equal(hs_store_exp_update(s, "nope", &rb, HS_EXP_EV_ROLLBACK, NULL, &err), HS_ENOTFOUND);
    assert_int_equal(hs_store_exp_update(s, e.name, &rb, "explode", NULL, &err), HS_EINVAL);
    hs_store_close(s);

    /* as after a restart: the same definition is ensured again, and the
       stored state comes back, not a fresh one */
    s = hs_test_store_open(path);
    struct hs_exp_state back;
    created = true;
    assert_int_equal(hs_store_exp_ensure(s, &e, 999999999, &back, &created, &err), HS_OK);
    assert_false(created);
    assert_memory_equal(&back, &rb, sizeof rb);
    struct hs_experiment e2;
    assert_int_equal(hs_store_exp_get(s, "canary1", &e2, &back, &err), HS_OK);
    assert_memory_equal(&e2, &e, sizeof e);
    assert_memory_equal(&back, &rb, sizeof rb);
    assert_int_equal(hs_store_exp_get(s, "other", NULL, NULL, &err), HS_ENOTFOUND);

    struct events ev = {{0}, 0};
    assert_int_equal(hs_store_exp_events(s, "canary1", collect_event, &ev, &err), HS_OK);
    assert_string_equal(ev.text, "created@1000:0.01:-;advance@3601000:0.05:canary step 1;"
                                 "rollback@3606000:0.00:B error rate 12.0% > 2 x A's 3.0% (n=120);");
    hs_store_close(s);
    /* the columns a person queries agree with the state */
    assert_int_equal(hs_test_sql_i64(path, "SELECT count(*) FROM experiments WHERE status = 'rolled_back'"), 1);
    free(path);
}

/* A weight changed in the configuration reaches an active A/B test at the
 * next start (recorded); a rolled-back one stays at 0. */
static void changed_weight_applies_to_an_active_ab_test(void **state)
{
    (void)state;
    char *path = hs_test_fresh_path("exp_weight.db");
    hs_store *s = hs_test_store_open(path);
    struct hs_experiment e;
    hs_err err = {0};
    assert_int_equal(
        hs_experiment_from_json_text(
            &e, "{\"name\":\"ab\",\"route\":\"r\",\"a\":\"m1\",\"b\":\"m2\",\"weight\":0.1}", &err),
        HS_OK);
    struct hs_exp_state st;
    assert_int_equal(hs_store_exp_ensure(s, &e, 1000, &st, NULL, &err), HS_OK);
    e.weight_b = 0.2;
    assert_int_equal(hs_store_exp_ensure(s, &e, 2000, &st, NULL, &err), HS_OK);
    assert_true(st.weight_b == 0.2 && st.updated_ms == 2000);
    struct hs_exp_state back;
    assert_int_equal(hs_store_exp_get(s, "ab", NULL, &back, &err), HS_OK);
    assert_memory_equal(&back, &st, sizeof st);
    struct events ev = {{0}, 0};
    assert_int_equal(hs_store_exp_events(s, "ab", collect_event, &ev, &err), HS_OK);
    assert_string_equal(ev.text, "created@1000:0.10:-;weight@2000:0.20:configuration changed;");

    st.weight_b = 0;
    st.status = HS_EXP_ROLLED_BACK;
    st.updated_ms = 3000;
    assert_int_equal(hs_store_exp_update(s, "ab", &st, HS_EXP_EV_ROLLBACK, "manual", &err), HS_OK);
    e.weight_b = 0.5;
    assert_int_equal(hs_store_exp_ensure(s, &e, 4000, &back, NULL, &err), HS_OK);
    assert_memory_equal(&back, &st, sizeof st);
    hs_store_close(s);
    free(path);
}

/* ---- records and aggregates ---- */

/* Type-7 quantile of sorted v by the formula: position q (n - 1). */
static double q7(const double *v, int n, double q)
{
    double pos = q * (n - 1);
    int lo = (int)floor(pos);
    int hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void log_one(hs_store *s, const char *id, const char *variant, int status, const char *error,
                    double latency, const char *flags, double conf, const char *req, const char *resp)
{
    struct hs_request_record r = {
        .id = id,
        .ts_ms = 1000,
        .endpoint = "/v1/chat/completions",
        .model = "triage",
        .backend = "local",
        .status = status,
        .error = error,
        .latency_ms = latency,
        .queue_ms = -1,
        .ttft_ms = -1,
        .confidence = conf,
        .low_prob_share = -1,
        .safety_flags = flags,
        .experiment = variant ? "canary1" : NULL,
        .variant = variant,
        .request_body = req,
        .response_body = resp,
    };
    hs_err err = {0};
    if (hs_store_log_request(s, &r, &err))
        fail_msg("%s", err.msg);
}

static void aggregates_match_the_records(void **state)
{
    (void)state;
    char *path = hs_test_fresh_path("exp_stats.db");
    hs_store *s = hs_test_store_open(path);
    /* B: 30 requests, latencies 100, 117, 134, ... (a step of 17), every 10th
       an error, every 6th flagged, confidence 0.5 + i/100 */
    double lat[30];
    for (int i = 0; i < 30; i++) {
        char id[32];
        snprintf(id, sizeof id, "b-%02d", i);
        lat[i] = 100 + 17 * ((i * 7) % 30); /* a permutation, so the store must sort */
        log_one(s, id, "B", i % 10 == 0 ? 500 : 200, NULL, lat[i], i % 6 == 0 ? "overconfident" : NULL,
                0.5 + i / 100.0, i < 4 ? "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}" : NULL,
                i < 4 ? "{\"choices\":[]}" : NULL);
    }
    /* a fallback: status 200 but B's error kept */
    log_one(s, "b-fallback", "B", 200, "B timed out; answered by A", -1, NULL, -1, NULL, NULL);
    /* A: 5 requests; a record of no experiment */
    for (int i = 0; i < 5; i++) {
        char id[32];
        snprintf(id, sizeof id, "a-%02d", i);
        log_one(s, id, "A", 200, NULL, 50 + i, NULL, -1, NULL, NULL);
    }
    log_one(s, "plain", NULL, 200, NULL, 10, NULL, -1, NULL, NULL);
    hs_store_flush(s);
    hs_err err = {0};
    assert_int_equal(hs_store_feedback_set(s, "b-01", NULL, 1, NULL, 2000, NULL, &err), HS_OK);
    assert_int_equal(hs_store_feedback_set(s, "b-02", NULL, 1, NULL, 2000, NULL, &err), HS_OK);
    assert_int_equal(hs_store_feedback_set(s, "b-03", NULL, -1, NULL, 2000, NULL, &err), HS_OK);

    /* expert scores: one rater on b-01, two on b-02 (their mean counts once) */
    struct hs_eval_score sc[] = {
        {"b-01", "B", "alice", 4, 5, "good", 0},
        {"b-02", NULL, "alice", 2, 4, NULL, 0},
        {"b-02", "b", "bob", 3, 3, "meh", 0},
        {"a-01", "A", "alice", 1, 2, NULL, 0},
    };
    size_t bad = 99;
    assert_int_equal(hs_store_eval_add(s, sc, 4, &bad, &err), HS_OK);
    assert_int_equal(bad, 4);
    /* all or nothing: an unknown id, a wrong variant, a record outside any experiment */
    struct hs_eval_score worse[] = {{"a-02", "A", "carol", 5, 5, NULL, 0},
                                    {"missing", NULL, "carol", 3, 3, NULL, 0}};
    assert_int_equal(hs_store_eval_add(s, worse, 2, &bad, &err), HS_ENOTFOUND);
    assert_int_equal(bad, 1);
    worse[1] = (struct hs_eval_score){"a-03", "B", "carol", 3, 3, NULL, 0};
    assert_int_equal(hs_store_eval_add(s, worse, 2, &bad, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "variant A"));
    worse[1] = (struct hs_eval_score){"plain", NULL, "carol", 3, 3, NULL, 0};
    assert_int_equal(hs_store_eval_add(s, worse, 2, &bad, &err), HS_EINVAL);
    worse[1] = (struct hs_eval_score){"a-03", NULL, "carol", 6, 3, NULL, 0};
    assert_int_equal(hs_store_eval_add(s, worse, 2, &bad, &err), HS_EINVAL);
    assert_int_equal(bad, 1);
    assert_int_equal(hs_test_sql_i64(path, "SELECT count(*) FROM eval_scores WHERE rater = 'carol'"), 0);
    /* a second score by the same rater replaces the first */
    struct hs_eval_score again = {"b-01", NULL, "alice", 5, 5, NULL, 0};
    assert_int_equal(hs_store_eval_add(s, &again, 1, NULL, &err), HS_OK);

    struct hs_exp_variant_stats b;
    assert_int_equal(hs_store_exp_variant_stats(s, "canary1", HS_EXP_B, 0, &b, &err), HS_OK);
    assert_int_equal(b.requests, 31);
    assert_int_equal(b.errors, 4); /* i = 0, 10, 20 and the fallback */
    assert_true(fabs(b.error_rate - 4.0 / 31) < 1e-12);
    assert_int_equal(b.safety_flagged, 5); /* i = 0, 6, 12, 18, 24 */
    assert_int_equal(b.thumbs_up, 2);
    assert_int_equal(b.thumbs_down, 1);
    assert_true(fabs(b.up_rate - 2.0 / 3) < 1e-12);
    assert_int_equal(b.n_confidence, 30);
    double cm = 0;
    for (int i = 0; i < 30; i++)
        cm += (0.5 + i / 100.0) / 30;
    assert_true(fabs(b.confidence_mean - cm) < 1e-9);
    qsort(lat, 30, sizeof lat[0], cmp_double);
    assert_int_equal(b.n_latency, 30);
    assert_true(fabs(b.p50_ms - q7(lat, 30, 0.5)) < 1e-9);
    assert_true(fabs(b.p95_ms - q7(lat, 30, 0.95)) < 1e-9);
    assert_true(fabs(b.p99_ms - q7(lat, 30, 0.99)) < 1e-9);
    assert_int_equal(b.n_scored, 2);
    /* b-01: 5 (replaced); b-02: (2 + 3) / 2 */
    assert_true(fabs(b.accuracy_mean - (5 + 2.5) / 2) < 1e-12);
    assert_true(fabs(b.safety_score_mean - (5 + 3.5) / 2) < 1e-12);
    double got[2] = {b.accuracy[0], b.accuracy[1]};
    qsort(got, 2, sizeof got[0], cmp_double);
    assert_true(got[0] == 2.5 && got[1] == 5);
    hs_exp_variant_stats_free(&b);

    struct hs_exp_variant_stats a;
    assert_int_equal(hs_store_exp_variant_stats(s, "canary1", HS_EXP_A, 0, &a, &err), HS_OK);
    assert_int_equal(a.requests, 5);
    assert_int_equal(a.errors, 0);
    assert_true(a.p50_ms == 52);
    assert_true(isnan(a.up_rate) && isnan(a.confidence_mean));
    assert_int_equal(a.n_scored, 1);
    hs_exp_variant_stats_free(&a);
    /* since_ms after every record */
    assert_int_equal(hs_store_exp_variant_stats(s, "canary1", HS_EXP_A, 5000, &a, &err), HS_OK);
    assert_int_equal(a.requests, 0);
    assert_true(isnan(a.error_rate) && isnan(a.p95_ms));
    hs_exp_variant_stats_free(&a);
    hs_store_close(s);
    assert_int_equal(
        hs_test_sql_i64(path, "SELECT count(*) FROM requests WHERE experiment = 'canary1' AND variant = 'B'"), 31);
    free(path);
}

struct cands {
    int n;
    char ids[8][32];
};

static void collect_cand(void *user, const struct hs_eval_candidate *c)
{
    struct cands *k = user;
    if (k->n < 8)
        snprintf(k->ids[k->n], sizeof k->ids[0], "%s", c->request_id);
    k->n++;
    assert_non_null(c->request_body);
}

static void candidates_are_records_with_bodies(void **state)
{
    (void)state;
    char *path = hs_test_fresh_path("exp_cand.db");
    hs_store *s = hs_test_store_open(path);
    log_one(s, "x1", "B", 200, NULL, 10, NULL, -1, "{\"q\":1}", "{\"a\":1}");
    log_one(s, "x2", "B", 200, NULL, 10, NULL, -1, NULL, NULL);
    log_one(s, "x3", "A", 200, NULL, 10, NULL, -1, "{\"q\":3}", NULL);
    struct cands k = {0};
    hs_err err = {0};
    assert_int_equal(hs_store_eval_candidates(s, "canary1", HS_EXP_B, collect_cand, &k, &err), HS_OK);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.ids[0], "x1");
    k.n = 0;
    assert_int_equal(hs_store_eval_candidates(s, "canary1", HS_EXP_A, collect_cand, &k, &err), HS_OK);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.ids[0], "x3");
    hs_store_close(s);
    free(path);
}

struct dis {
    int n;
    double sims[8];
};

static void collect_dis(void *user, const struct hs_shadow_result *r)
{
    struct dis *d = user;
    if (d->n < 8)
        d->sims[d->n++] = r->similarity;
}

static void shadow_results_and_summary(void **state)
{
    (void)state;
    char *path = hs_test_fresh_path("exp_shadow.db");
    hs_store *s = hs_test_store_open(path);
    hs_err err = {0};
    const double sims[] = {0.95, 0.9, 0.3, 0.85, 0.1, -1};
    for (int i = 0; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        struct hs_shadow_result r = {id,        "shadow1",      1000 + i,
                                     100.0 + i, 200.0 + 10 * i, i == 5 ? 0 : 200,
                                     sims[i],   "answer A",     "answer B"};
        assert_int_equal(hs_store_shadow_add(s, &r, &err), HS_OK);
    }
    struct hs_shadow_result dup = {"s0", "shadow1", 1, 1, 1, 500, 0, NULL, NULL};
    assert_int_equal(hs_store_shadow_add(s, &dup, &err), HS_OK); /* ignored */
    struct hs_shadow_summary sum;
    assert_int_equal(hs_store_shadow_summary(s, "shadow1", 0.8, &sum, &err), HS_OK);
    assert_int_equal(sum.n, 6);
    assert_int_equal(sum.b_errors, 1);
    assert_int_equal(sum.n_similarity, 5);
    assert_int_equal(sum.agree, 3);
    assert_true(fabs(sum.agreement_rate - 0.6) < 1e-12);
    assert_true(fabs(sum.similarity_mean - (0.95 + 0.9 + 0.3 + 0.85 + 0.1) / 5) < 1e-12);
    assert_int_equal(sum.n_latency, 6);
    assert_true(fabs(sum.a_p50_ms - 102.5) < 1e-9);
    assert_true(fabs(sum.b_p50_ms - 225) < 1e-9);
    struct dis d = {0};
    assert_int_equal(hs_store_shadow_disagreements(s, "shadow1", 0.8, 5, collect_dis, &d, &err), HS_OK);
    assert_int_equal(d.n, 2);
    assert_true(d.sims[0] == 0.1 && d.sims[1] == 0.3);
    hs_store_close(s);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(state_and_history_survive_reopen),
        cmocka_unit_test(changed_weight_applies_to_an_active_ab_test),
        cmocka_unit_test(aggregates_match_the_records),
        cmocka_unit_test(candidates_are_records_with_bodies),
        cmocka_unit_test(shadow_results_and_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
