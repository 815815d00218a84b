/* ops/experiment: definitions (YAML and JSON), assignment, the canary
 * clock, the rollback rules and the promotion criteria.
 *
 * The split is checked against the binomial law: with 10,000 simulated
 * users and weight w, the share sent to B lies within 4 standard
 * deviations (4 sqrt(w(1-w)/n)) of w, which a correct split misses with
 * probability about 6e-5 per weight (the seed is fixed, so a pass stays a
 * pass). The Welch p-value of `decide` is checked against a computation
 * written out here: the textbook statistic and Welch-Satterthwaite degrees
 * of freedom by plain loops, and the two-sided tail of Student's t by
 * Simpson's rule over its density (lgamma from libm), independent of GSL;
 * and against R's printout of t.test on its `sleep` data. */
#include "test_util.h"

#include "base/mem.h"
#include "base/rng.h"
#include "ops/experiment.h"

#include <jansson.h>
#include <libfyaml.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR (3600 * 1000LL)

/* ---- definitions ---- */

/* Parses the first item of an `experiments:` list. */
static int parse_yaml(const char *text, struct hs_experiment *e, hs_err *err)
{
    struct fy_document *doc = fy_document_build_from_string(NULL, text, strlen(text));
    assert_non_null(doc);
    struct fy_node *list = fy_node_mapping_lookup_by_string(fy_document_root(doc), "experiments", 11);
    assert_non_null(list);
    void *it = NULL;
    struct fy_node *item = fy_node_sequence_iterate(list, &it);
    int rc = hs_experiment_parse_node(e, item, "hestia.yaml", 0, err);
    fy_document_destroy(doc);
    return rc;
}

static const char k_canary_yaml[] = "experiments:\n"                                    /* 1 */
                                    "  - name: triage-v2\n"                             /* 2 */
                                    "    route: triage\n"                               /* 3 */
                                    "    mode: canary\n"                                /* 4 */
                                    "    a: llama-3b\n"                                 /* 5 */
                                    "    b: llama-3b+triage-v2\n"                       /* 6 */
                                    "    sticky_by: key\n"                              /* 7 */
                                    "    canary:\n"                                     /* 8 */
                                    "      - weight: 1%\n"                              /* 9 */
                                    "      - {weight: 5%, after: 1h}\n"                 /* 10 */
                                    "      - weight: 0.10\n"                            /* 11 */
                                    "        at: 2026-12-01T09:00:00Z\n"                /* 12 */
                                    "      - {weight: 100%, after: 30m}\n"              /* 13 */
                                    "    rollback:\n"                                   /* 14 */
                                    "      error_ratio: {limit: 3, min_samples: 100}\n" /* 15 */
                                    "      p95_margin_ms: off\n"                        /* 16 */
                                    "      safety_rate: 2%\n"                           /* 17 */
                                    "      min_samples: 80\n"                           /* 18 */
                                    "      window: 5m\n"                                /* 19 */
                                    "    shadow_queue: 16\n";                           /* 20 */

static void yaml_canary_definition_is_read(void **state)
{
    (void)state;
    struct hs_experiment e;
    hs_err err = {0};
    int rc = parse_yaml(k_canary_yaml, &e, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_string_equal(e.name, "triage-v2");
    assert_string_equal(e.route, "triage");
    assert_int_equal(e.mode, HS_EXP_CANARY);
    assert_string_equal(e.target_a, "llama-3b");
    assert_string_equal(e.target_b, "llama-3b+triage-v2");
    assert_int_equal(e.sticky_by, HS_EXP_STICKY_KEY);
    assert_int_equal(e.n_steps, 4);
    assert_true(fabs(e.steps[0].weight - 0.01) < 1e-12);
    assert_true(fabs(e.steps[1].weight - 0.05) < 1e-12);
    assert_int_equal(e.steps[1].after_ms, HOUR);
    assert_int_equal(e.steps[1].at_ms, -1);
    /* 2026-12-01T09:00:00Z = 1796115600 s (date -u -d ... +%s) */
    assert_int_equal(e.steps[2].at_ms, 1796115600000LL);
    assert_int_equal(e.steps[3].after_ms, 30 * 60 * 1000);
    assert_true(fabs(e.weight_b - 0.01) < 1e-12);
    assert_true(e.rules.error_ratio.enabled);
    assert_true(e.rules.error_ratio.limit == 3);
    assert_int_equal(e.rules.error_ratio.min_samples, 100);
    assert_false(e.rules.p95_margin.enabled);
    assert_true(fabs(e.rules.safety_rate.limit - 0.02) < 1e-12);
    assert_int_equal(e.rules.safety_rate.min_samples, 80); /* the shared default */
    assert_int_equal(e.rules.window_ms, 5 * 60 * 1000);
    assert_int_equal(e.shadow_queue, 16);
}

static void json_round_trip_is_identical(void **state)
{
    (void)state;
    struct hs_experiment e, back;
    hs_err err = {0};
    assert_int_equal(parse_yaml(k_canary_yaml, &e, &err), HS_OK);
    char *t1 = hs_experiment_to_json_text(&e);
    assert_non_null(t1);
    int rc = hs_experiment_from_json_text(&back, t1, &err);
    if (rc)
        fail_msg("%s\n%s", err.msg, t1);
    char *t2 = hs_experiment_to_json_text(&back);
    assert_string_equal(t1, t2);
    assert_memory_equal(&e, &back, sizeof e);
    hs_free(t1);
    hs_free(t2);
}

static void json_post_body_is_read(void **state)
{
    (void)state;
    struct hs_experiment e;
    hs_err err = {0};
    int rc = hs_experiment_from_json_text(
        &e, "{\"name\":\"ab1\",\"route\":\"chat\",\"mode\":\"ab\",\"a\":\"m1\",\"b\":\"m2\",\"weight\":0.2}",
        &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(e.mode, HS_EXP_AB);
    assert_true(e.weight_b == 0.2);
    assert_int_equal(e.sticky_by, HS_EXP_STICKY_USER);
    assert_true(e.rules.error_ratio.enabled && e.rules.error_ratio.limit == 2.0);
    assert_true(e.rules.p95_margin.limit == 500 && e.rules.safety_rate.limit == 0.05);
    assert_int_equal(e.rules.error_ratio.min_samples, 50);
    /* JSON is strict about types: a number in a string is not a number */
    assert_int_equal(
        hs_experiment_from_json_text(
            &e, "{\"name\":\"x\",\"route\":\"r\",\"a\":\"m1\",\"b\":\"m2\",\"weight\":\"0.2\"}", &err),
        HS_EINVAL);
    assert_non_null(strstr(err.msg, "experiment 'x': weight:"));
    assert_int_equal(
        hs_experiment_from_json_text(
            &e, "{\"name\":\"x\",\"route\":\"r\",\"a\":\"m1\",\"b\":\"m2\",\"weight\":0.2,\"wieght\":1}",
            &err),
        HS_EINVAL);
    assert_non_null(strstr(err.msg, "wieght: unknown key"));
    assert_int_equal(hs_experiment_from_json_text(&e, "[1]", &err), HS_EINVAL);
    assert_int_equal(hs_experiment_from_json_text(&e, "{", &err), HS_EINVAL);
}

/* One broken definition per row: the message must name the line and key. */
static void yaml_errors_name_file_line_and_key(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"experiments:\n  - name: x\n    route: r\n    a: m1\n    b: m2\n    weight: 1.5\n",
         "hestia.yaml:6: experiments[0].weight: expected a number in 0..1"},
        {"experiments:\n  - name: x\n    route: r\n    a: m1\n    b: m2\n    weight: 10%\n    mode: blue\n",
         "hestia.yaml:7: experiments[0].mode: expected ab, shadow or canary"},
        {"experiments:\n  - name: x\n    route: r\n    a: m1\n    b: m2\n    weight: 10%\n    colour: red\n",
         "hestia.yaml:7: experiments[0].colour: unknown key"},
        {"experiments:\n  - name: x\n    route: r\n    a: m1\n    b: m2\n    mode: canary\n    canary:\n"
         "      - weight: 1%\n      - weight: 5%\n        after: soon\n",
         "hestia.yaml:10: experiments[0].canary[1].after: expected a duration"},
        {"experiments:\n  - name: x\n    route: r\n    a: m1\n    b: m2\n    mode: canary\n    canary:\n"
         "      - weight: 1%\n      - weight: 5%\n        at: 2026-02-30T00:00:00Z\n",
         "hestia.yaml:10: experiments[0].canary[1].at: expected a time"},
        {"experiments:\n  - name: x\n    route: r\n    a: m1\n    b: m2\n    weight: 10%\n    rollback:\n"
         "      error_ratio: {limit: 2, min_samples: 0}\n",
         "hestia.yaml:8: experiments[0].rollback.error_ratio.min_samples: expected a whole number"},
        {"experiments:\n  - name: x\n    route: r\n    a: m1\n    b: m2\n",
         "experiments[0].weight: an A/B test needs B's weight"},
        {"experiments:\n  - name: x\n    a: m1\n    b: m2\n    weight: 1%\n", "experiments[0].route:"},
        {"experiments:\n  - name: bad name\n    route: r\n    a: m1\n    b: m2\n    weight: 1%\n",
         "hestia.yaml:2: experiments[0]: name must be"},
        {"experiments:\n  - name: x\n    route: r\n    a: m1\n    b: m2\n    mode: canary\n    canary:\n"
         "      - weight: 10%\n      - {weight: 5%, after: 1h}\n",
         "canary[1].weight 0.05 is below the step before"},
        {"experiments:\n  - name: x\n    route: r\n    a: m1\n    b: m2\n    mode: canary\n    canary:\n"
         "      - weight: 10%\n      - {weight: 50%}\n",
         "canary[1]: give either after"},
        {"experiments:\n  - name: x\n    route: r\n    a: &m m1\n    b: *m\n    weight: 1%\n", "aliases"},
        {"experiments:\n  - just a string\n", "hestia.yaml:2: experiments[0]: expected a mapping"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hs_experiment e;
        hs_err err = {0};
        int rc = parse_yaml(cases[i].text, &e, &err);
        if (rc != HS_EINVAL || !strstr(err.msg, cases[i].want))
            fail_msg("case %zu: rc %d, message '%s', want '%s'", i, rc, err.msg, cases[i].want);
    }
}

static void times_parse_and_format(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(hs_exp_parse_time("1970-01-01T00:00:00Z", &ms), HS_OK);
    assert_int_equal(ms, 0);
    assert_int_equal(hs_exp_parse_time("2026-12-01T10:00:00.250+01:00", &ms), HS_OK);
    assert_int_equal(ms, 1796115600250LL);
    char buf[40];
    hs_exp_format_time(buf, sizeof buf, 1796115600250LL);
    assert_string_equal(buf, "2026-12-01T09:00:00.250Z");
    assert_int_equal(hs_exp_parse_time("2026-12-01 09:00:00Z", &ms), HS_EINVAL);
    assert_int_equal(hs_exp_parse_time("2026-12-01T09:00:00", &ms), HS_EINVAL);
    assert_int_equal(hs_exp_parse_time("2026-13-01T09:00:00Z", &ms), HS_EINVAL);
}

static void state_json_round_trip(void **state)
{
    (void)state;
    struct hs_exp_state a = {0.25, 3, 1796115600123LL, HS_EXP_ROLLED_BACK, 1796115609999LL}, b;
    char *t = hs_exp_state_to_json_text(&a);
    assert_int_equal(hs_exp_state_from_json_text(&b, t, NULL), HS_OK);
    assert_true(b.weight_b == a.weight_b && b.step == a.step && b.step_ms == a.step_ms &&
                b.status == a.status && b.updated_ms == a.updated_ms);
    hs_free(t);
    assert_int_equal(hs_exp_state_from_json_text(&b, "{\"weight_b\":2}", NULL), HS_EFORMAT);
}

/* ---- assignment ---- */

static struct hs_experiment ab(double w)
{
    struct hs_experiment e;
    hs_experiment_default(&e);
    snprintf(e.name, sizeof e.name, "split-test");
    snprintf(e.route, sizeof e.route, "chat");
    snprintf(e.target_a, sizeof e.target_a, "m1");
    snprintf(e.target_b, sizeof e.target_b, "m2");
    e.weight_b = w;
    assert_int_equal(hs_experiment_check(&e, NULL), HS_OK);
    return e;
}

static void split_is_within_binomial_bounds(void **state)
{
    (void)state;
    const int n = 10000;
    const double weights[] = {0.01, 0.05, 0.10, 0.25, 0.50, 0.90};
    for (size_t k = 0; k < sizeof weights / sizeof weights[0]; k++) {
        double w = weights[k];
        struct hs_experiment e = ab(w);
        struct hs_exp_state st;
        hs_exp_state_init(&st, &e, 0);
        hs_rng rng;
        hs_rng_seed(&rng, 1234);
        int sticky_b = 0, random_b = 0;
        for (int i = 0; i < n; i++) {
            char user[32];
            snprintf(user, sizeof user, "user-%d", i);
            sticky_b += hs_experiment_pick(&e, &st, user, hs_rng_u64(&rng)) == HS_EXP_B;
            random_b += hs_experiment_pick(&e, &st, NULL, hs_rng_u64(&rng)) == HS_EXP_B;
        }
        double bound = 4 * sqrt(w * (1 - w) / n);
        print_message("weight %.2f: sticky %.4f, random %.4f (bound +-%.4f)\n", w, (double)sticky_b / n,
                      (double)random_b / n, bound);
        assert_true(fabs((double)sticky_b / n - w) <= bound);
        assert_true(fabs((double)random_b / n - w) <= bound);
    }
}

static void sticky_users_keep_their_variant_and_only_move_to_b(void **state)
{
    (void)state;
    struct hs_experiment e = ab(0.1);
    struct hs_exp_state lo, hi;
    hs_exp_state_init(&lo, &e, 0);
    hi = lo;
    hi.weight_b = 0.3;
    hs_rng rng;
    hs_rng_seed(&rng, 99);
    int moved = 0;
    for (int i = 0; i < 2000; i++) {
        char user[32];
        snprintf(user, sizeof user, "u%d", i);
        enum hs_exp_variant v = hs_experiment_pick(&e, &lo, user, hs_rng_u64(&rng));
        for (int r = 0; r < 5; r++) /* whatever the random number, the same user gets the same variant */
            assert_int_equal(hs_experiment_pick(&e, &lo, user, hs_rng_u64(&rng)), v);
        enum hs_exp_variant v2 = hs_experiment_pick(&e, &hi, user, hs_rng_u64(&rng));
        if (v == HS_EXP_B)
            assert_int_equal(v2, HS_EXP_B); /* never B -> A when the weight grows */
        moved += v == HS_EXP_A && v2 == HS_EXP_B;
    }
    assert_true(moved > 0);
    /* the hash is (name, key): another experiment splits the same users differently */
    assert_true(hs_exp_hash_unit("split-test", "u1") != hs_exp_hash_unit("other", "u1"));
    assert_true(hs_exp_hash_unit("split-test", "u1") == hs_exp_hash_unit("split-test", "u1"));
}

static void pick_follows_status_and_mode(void **state)
{
    (void)state;
    struct hs_experiment e = ab(1.0);
    struct hs_exp_state st;
    hs_exp_state_init(&st, &e, 0);
    assert_int_equal(hs_experiment_pick(&e, &st, "u", 0), HS_EXP_B);
    st.weight_b = 0;
    assert_int_equal(hs_experiment_pick(&e, &st, "u", UINT64_MAX), HS_EXP_A);
    assert_int_equal(hs_experiment_pick(&e, &st, NULL, 0), HS_EXP_A);
    st.weight_b = 1;
    st.status = HS_EXP_ROLLED_BACK;
    assert_int_equal(hs_experiment_pick(&e, &st, "u", 0), HS_EXP_A);
    st.status = HS_EXP_STOPPED;
    assert_int_equal(hs_experiment_pick(&e, &st, "u", 0), HS_EXP_A);
    st.status = HS_EXP_PROMOTED;
    st.weight_b = 0;
    assert_int_equal(hs_experiment_pick(&e, &st, "u", 0), HS_EXP_B);
    e.mode = HS_EXP_SHADOW;
    st.status = HS_EXP_ACTIVE;
    st.weight_b = 1;
    assert_int_equal(hs_experiment_pick(&e, &st, "u", 0), HS_EXP_A);
}

/* ---- canary ---- */

static void canary_advances_on_schedule_with_a_fake_clock(void **state)
{
    (void)state;
    struct hs_experiment e;
    hs_err err = {0};
    assert_int_equal(parse_yaml(k_canary_yaml, &e, &err), HS_OK);
    const int64_t t0 = 1796000000000LL; /* before the absolute step (1796115600000) */
    struct hs_exp_state st, nx;
    hs_exp_state_init(&st, &e, t0);
    assert_true(st.weight_b == 0.01 && st.step == 0);

    /* not yet an hour */
    assert_false(hs_exp_canary_next(&e, &st, t0 + HOUR - 1, true, &nx));
    assert_int_equal(nx.step, 0);
    /* an hour, but B unhealthy: waits */
    assert_false(hs_exp_canary_next(&e, &st, t0 + HOUR, false, &nx));
    assert_int_equal(nx.step, 0);
    /* healthy an hour and a half later: step 1, entered now */
    assert_true(hs_exp_canary_next(&e, &st, t0 + HOUR + HOUR / 2, true, &nx));
    assert_int_equal(nx.step, 1);
    assert_true(nx.weight_b == 0.05);
    assert_int_equal(nx.step_ms, t0 + HOUR + HOUR / 2);
    st = nx;
    /* step 2 waits for its absolute time however long passes */
    assert_false(hs_exp_canary_next(&e, &st, 1796115600000LL - 1, true, &nx));
    assert_true(hs_exp_canary_next(&e, &st, 1796115600000LL, true, &nx));
    assert_int_equal(nx.step, 2);
    assert_true(nx.weight_b == 0.10);
    st = nx;
    /* one step per call: step 3 is 30 minutes after step 2 was entered */
    assert_false(hs_exp_canary_next(&e, &st, st.step_ms + 30 * 60 * 1000 - 1, true, &nx));
    assert_true(hs_exp_canary_next(&e, &st, st.step_ms + 30 * 60 * 1000, true, &nx));
    assert_int_equal(nx.step, 3);
    assert_true(nx.weight_b == 1.0);
    st = nx;
    /* never past the end */
    assert_false(hs_exp_canary_next(&e, &st, st.step_ms + 100 * HOUR, true, &nx));
    assert_int_equal(nx.step, 3);

    /* a rollback stops it */
    hs_exp_state_init(&st, &e, t0);
    st.status = HS_EXP_ROLLED_BACK;
    st.weight_b = 0;
    assert_false(hs_exp_canary_next(&e, &st, t0 + 10 * HOUR, true, &nx));
    assert_int_equal(nx.step, 0);
    assert_true(nx.weight_b == 0);
    /* an A/B test has no schedule */
    struct hs_experiment a = ab(0.5);
    hs_exp_state_init(&st, &a, t0);
    assert_false(hs_exp_canary_next(&a, &st, t0 + 10 * HOUR, true, &nx));
}

/* ---- rollback ---- */

static struct hs_exp_window win(int64_t n, int64_t errors, int64_t flagged, double p95)
{
    return (struct hs_exp_window){n, errors, flagged, n, p95};
}

static void each_rollback_rule_fires_on_its_fault(void **state)
{
    (void)state;
    struct hs_experiment e = ab(0.5);
    const struct hs_exp_rules *r = &e.rules;
    char why[256];
    struct hs_exp_window a = win(200, 6, 2, 300);

    /* healthy B */
    struct hs_exp_window b = win(120, 4, 1, 400);
    assert_int_equal(hs_exp_rollback_check(r, &a, &b, why, sizeof why), HS_EXP_RULE_NONE);
    assert_string_equal(why, "");

    /* errors: 12% against A's 3% */
    b = win(120, 14, 1, 400);
    b.errors = 14; /* 11.7% */
    assert_int_equal(hs_exp_rollback_check(r, &a, &b, why, sizeof why), HS_EXP_RULE_ERROR);
    assert_string_equal(why, "B error rate 11.7% > 2 x A's 3.0% (n=120)");
    /* exactly twice is not more than twice */
    b = win(100, 6, 0, 300);
    assert_int_equal(hs_exp_rollback_check(r, &a, &b, NULL, 0), HS_EXP_RULE_NONE);
    /* the same fault below the minimum sample does not fire */
    b = win(49, 20, 0, 300);
    assert_int_equal(hs_exp_rollback_check(r, &a, &b, why, sizeof why), HS_EXP_RULE_NONE);
    struct hs_exp_window a_small = win(49, 1, 0, 300);
    b = win(120, 60, 0, 300);
    assert_int_equal(hs_exp_rollback_check(r, &a_small, &b, why, sizeof why), HS_EXP_RULE_NONE);

    /* latency: p95 more than 500 ms above A's */
    b = win(120, 3, 0, 801);
    assert_int_equal(hs_exp_rollback_check(r, &a, &b, why, sizeof why), HS_EXP_RULE_P95);
    assert_string_equal(why, "B p95 801 ms > A's 300 ms + 500 ms (n=120)");
    b = win(120, 3, 0, 800);
    assert_int_equal(hs_exp_rollback_check(r, &a, &b, why, sizeof why), HS_EXP_RULE_NONE);
    b = win(120, 3, 0, 5000);
    b.n_latency = 49;
    assert_int_equal(hs_exp_rollback_check(r, &a, &b, why, sizeof why), HS_EXP_RULE_NONE);

    /* safety: more than 5% flagged */
    b = win(120, 3, 9, 300);
    assert_int_equal(hs_exp_rollback_check(r, &a, &b, why, sizeof why), HS_EXP_RULE_SAFETY);
    assert_string_equal(why, "B safety-flag rate 7.5% > 5.0% (n=120)");
    b = win(49, 0, 40, 300);
    assert_int_equal(hs_exp_rollback_check(r, &a, &b, why, sizeof why), HS_EXP_RULE_NONE);

    /* the first rule wins; a disabled rule never fires */
    b = win(120, 30, 30, 5000);
    assert_int_equal(hs_exp_rollback_check(r, &a, &b, why, sizeof why), HS_EXP_RULE_ERROR);
    e.rules.error_ratio.enabled = false;
    assert_int_equal(hs_exp_rollback_check(r, &a, &b, why, sizeof why), HS_EXP_RULE_P95);
    e.rules.p95_margin.enabled = false;
    assert_int_equal(hs_exp_rollback_check(r, &a, &b, why, sizeof why), HS_EXP_RULE_SAFETY);
    e.rules.safety_rate.enabled = false;
    assert_int_equal(hs_exp_rollback_check(r, &a, &b, why, sizeof why), HS_EXP_RULE_NONE);

    /* a custom minimum counts per rule */
    e = ab(0.5);
    e.rules.safety_rate.min_samples = 200;
    b = win(120, 3, 30, 300);
    assert_int_equal(hs_exp_rollback_check(&e.rules, &a, &b, why, sizeof why), HS_EXP_RULE_NONE);
    b = win(200, 3, 30, 300);
    assert_int_equal(hs_exp_rollback_check(&e.rules, &a, &b, why, sizeof why), HS_EXP_RULE_SAFETY);
}

/* ---- decide ---- */

/* Student's t density, and the two-sided tail 2 P(T > |t|) =
 * 1 - 2 * integral_0^|t| f by composite Simpson on 200,000 intervals. */
static double t_density(double x, double df)
{
    double c = lgamma((df + 1) / 2) - lgamma(df / 2) - 0.5 * log(df * M_PI);
    return exp(c - (df + 1) / 2 * log1p(x * x / df));
}

static double two_sided_p(double t, double df)
{
    const int n = 200000;
    double a = fabs(t), h = a / n, s = t_density(0, df) + t_density(a, df);
    for (int i = 1; i < n; i++)
        s += (i % 2 ? 4 : 2) * t_density(i * h, df);
    return 1 - 2 * (s * h / 3);
}

/* The textbook Welch statistic and degrees of freedom by plain loops. */
static void welch_by_hand(const double *x, int nx, const double *y, int ny, double *t, double *df)
{
    double mx = 0, my = 0, vx = 0, vy = 0;
    for (int i = 0; i < nx; i++)
        mx += x[i] / nx;
    for (int i = 0; i < ny; i++)
        my += y[i] / ny;
    for (int i = 0; i < nx; i++)
        vx += (x[i] - mx) * (x[i] - mx) / (nx - 1);
    for (int i = 0; i < ny; i++)
        vy += (y[i] - my) * (y[i] - my) / (ny - 1);
    double sx = vx / nx, sy = vy / ny;
    *t = (my - mx) / sqrt(sx + sy);
    *df = (sx + sy) * (sx + sy) / (sx * sx / (nx - 1) + sy * sy / (ny - 1));
}

/* Aggregates of a variant with the given scores and otherwise healthy numbers. */
static struct hs_exp_variant_stats variant(int64_t requests, double error_rate, double p95,
                                           double safety_rate, double *scores, int n)
{
    struct hs_exp_variant_stats v = {0};
    v.requests = requests;
    v.errors = (int64_t)llround(error_rate * (double)requests);
    v.error_rate = error_rate;
    v.n_latency = requests;
    v.p50_ms = p95 / 2;
    v.p95_ms = p95;
    v.p99_ms = p95 * 1.2;
    v.safety_rate = safety_rate;
    v.up_rate = NAN;
    v.confidence_mean = NAN;
    v.n_scored = n;
    v.accuracy = scores;
    double m = 0;
    for (int i = 0; i < n; i++)
        m += scores[i] / n;
    v.accuracy_mean = n ? m : NAN;
    v.safety_score_mean = n ? 4.5 : NAN;
    return v;
}

static void decide_reproduces_welch_p_value(void **state)
{
    (void)state;
    double a[] = {3, 4, 3, 2, 4, 3, 3, 4, 2, 3, 4, 3, 5, 3};
    double b[] = {4, 5, 4, 4, 5, 3, 4, 5, 4, 4, 5, 4, 4, 5, 3, 4, 5};
    int na = sizeof a / sizeof a[0], nb = sizeof b / sizeof b[0];
    struct hs_exp_variant_stats va = variant(500, 0.01, 300, 0.01, a, na);
    struct hs_exp_variant_stats vb = variant(500, 0.01, 310, 0.01, b, nb);
    struct hs_exp_decision d;
    hs_exp_decide(&va, &vb, NULL, &d);
    double t, df;
    welch_by_hand(a, na, b, nb, &t, &df);
    double p = two_sided_p(t, df);
    print_message("Welch: t=%.6f df=%.6f p(hand)=%.9f p(decide)=%.9f\n", t, df, p, d.p_value);
    assert_true(fabs(d.t - t) < 1e-9);
    assert_true(fabs(d.df - df) < 1e-9);
    assert_true(fabs(d.p_value - p) < 1e-6);

    /* R: t.test(extra ~ group, data = sleep) prints
       t = -1.8608, df = 17.776, p-value = 0.07939 (group 1 minus group 2) */
    double g1[] = {0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0};
    double g2[] = {1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4};
    va = variant(500, 0.01, 300, 0.01, g2, 10);
    vb = variant(500, 0.01, 300, 0.01, g1, 10);
    hs_exp_decide(&va, &vb, NULL, &d);
    assert_true(fabs(d.t - -1.8608) < 5e-5);
    assert_true(fabs(d.df - 17.776) < 5e-4);
    assert_true(fabs(d.p_value - 0.07939) < 5e-6);
}

static const struct hs_exp_criterion *crit(const struct hs_exp_decision *d, const char *name)
{
    for (int i = 0; i < HS_EXP_CRITERIA; i++)
        if (!strcmp(d->c[i].name, name))
            return &d->c[i];
    fail_msg("no criterion %s", name);
    return NULL;
}

static void decide_verdicts(void **state)
{
    (void)state;
    /* A rated around 3.6, B around 4.4 on 40 answers each: a clear win */
    double a[40], b[40], lo[40];
    for (int i = 0; i < 40; i++) {
        a[i] = 3 + (i % 5 < 3 ? 1 : 0) - (i % 7 == 0 ? 1 : 0);
        b[i] = 4 + (i % 5 < 2 ? 1 : 0) - (i % 9 == 0 ? 1 : 0);
        lo[i] = 2 + (i % 3 == 0 ? 1 : 0);
    }
    struct hs_exp_variant_stats va = variant(400, 0.02, 300, 0.02, a, 40);
    struct hs_exp_variant_stats vb = variant(420, 0.01, 330, 0.01, b, 40);
    struct hs_exp_decision d;
    hs_exp_decide(&va, &vb, NULL, &d);
    for (int i = 0; i < HS_EXP_CRITERIA; i++)
        print_message("  %-14s %-4s %s\n", d.c[i].name, hs_exp_check_name(d.c[i].result), d.c[i].detail);
    assert_int_equal(d.verdict, HS_EXP_PROMOTE);
    for (int i = 0; i < HS_EXP_CRITERIA; i++)
        assert_int_equal(d.c[i].result, HS_EXP_PASS);
    assert_true(fabs(crit(&d, "p95_latency")->value - 30) < 1e-9);

    /* a clear loss: B rated lower, more errors, slower */
    vb = variant(420, 0.05, 500, 0.01, lo, 40);
    hs_exp_decide(&va, &vb, NULL, &d);
    assert_int_equal(d.verdict, HS_EXP_KEEP);
    assert_int_equal(crit(&d, "accuracy")->result, HS_EXP_FAIL);
    assert_int_equal(crit(&d, "p95_latency")->result, HS_EXP_FAIL);
    assert_int_equal(crit(&d, "error_rate")->result, HS_EXP_FAIL);
    assert_int_equal(crit(&d, "expert_rating")->result, HS_EXP_FAIL);
    assert_int_equal(crit(&d, "sample_size")->result, HS_EXP_PASS);

    /* one failing criterion is enough to keep A: a safety regression */
    vb = variant(420, 0.01, 330, 0.03, b, 40);
    hs_exp_decide(&va, &vb, NULL, &d);
    assert_int_equal(d.verdict, HS_EXP_KEEP);
    assert_int_equal(crit(&d, "safety")->result, HS_EXP_FAIL);

    /* the clear win on too few requests */
    va = variant(150, 0.02, 300, 0.02, a, 40);
    vb = variant(199, 0.01, 330, 0.01, b, 40);
    hs_exp_decide(&va, &vb, NULL, &d);
    assert_int_equal(d.verdict, HS_EXP_NOT_ENOUGH_DATA);
    assert_int_equal(crit(&d, "sample_size")->result, HS_EXP_FAIL);
    assert_true(crit(&d, "sample_size")->value == 150);

    /* enough requests but no expert scores: the tests cannot be judged */
    va = variant(400, 0.02, 300, 0.02, NULL, 0);
    vb = variant(400, 0.01, 300, 0.01, NULL, 0);
    hs_exp_decide(&va, &vb, NULL, &d);
    assert_int_equal(d.verdict, HS_EXP_NOT_ENOUGH_DATA);
    assert_int_equal(crit(&d, "significance")->result, HS_EXP_UNKNOWN);
    assert_true(isnan(d.p_value));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(yaml_canary_definition_is_read),
        cmocka_unit_test(json_round_trip_is_identical),
        cmocka_unit_test(json_post_body_is_read),
        cmocka_unit_test(yaml_errors_name_file_line_and_key),
        cmocka_unit_test(times_parse_and_format),
        cmocka_unit_test(state_json_round_trip),
        cmocka_unit_test(split_is_within_binomial_bounds),
        cmocka_unit_test(sticky_users_keep_their_variant_and_only_move_to_b),
        cmocka_unit_test(pick_follows_status_and_mode),
        cmocka_unit_test(canary_advances_on_schedule_with_a_fake_clock),
        cmocka_unit_test(each_rollback_rule_fires_on_its_fault),
        cmocka_unit_test(decide_reproduces_welch_p_value),
        cmocka_unit_test(decide_verdicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
