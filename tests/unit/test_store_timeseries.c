/* ops/store_timeseries: per-bucket and per-agent aggregates of the
 * inference records. Records go in through the store's own write path
 * (the writer queue, hs_store_feedback_set with the feedback's time); the
 * expected numbers are worked out by hand for a small case and by a naive
 * recomputation (its own type-7 quantile, no gsl) for a random one. */
#include "test_util.h"

#include "ops/store.h"
#include "ops/store_feedback.h"
#include "ops/store_timeseries.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHAT "/v1/chat/completions"

static hs_store *fresh(const char *name)
{
    char *p = hs_test_tmpfile(name);
    unlink(p);
    hs_store *s = NULL;
    hs_err err = {0};
    int rc = hs_store_open(p, &s, &err);
    if (rc)
        print_message("open %s: %s\n", p, err.msg);
    assert_int_equal(rc, HS_OK);
    free(p);
    return s;
}

struct rec {
    const char *id;
    int64_t ts;
    const char *endpoint, *backend, *agent, *flags;
    int status;
    double lat, conf; /* < 0: none */
};

static void put(hs_store *s, const struct rec *r)
{
    struct hs_request_record x = {
        .id = r->id,
        .ts_ms = r->ts,
        .endpoint = r->endpoint,
        .backend = r->backend,
        .agent = r->agent,
        .safety_flags = r->flags,
        .status = r->status,
        .latency_ms = r->lat,
        .confidence = r->conf,
        .low_prob_share = -1,
        .queue_ms = -1,
        .ttft_ms = -1,
    };
    hs_err err = {0};
    assert_int_equal(hs_store_log_request(s, &x, &err), HS_OK);
}

static void feedback(hs_store *s, const char *id, int v, int64_t at)
{
    hs_err err = {0};
    int rc = hs_store_feedback_set(s, id, NULL, v, NULL, at, NULL, &err);
    if (rc)
        print_message("feedback %s: %s\n", id, err.msg);
    assert_int_equal(rc, HS_OK);
}

static void expect_stats(const struct hs_ts_stats *t, int64_t req, int64_t errs, int64_t n_lat, double p50, double p95,
                         int64_t n_conf, double conf, int64_t flagged, int64_t up, int64_t down)
{
    assert_int_equal(t->requests, req);
    assert_int_equal(t->errors, errs);
    assert_int_equal(t->n_latency, n_lat);
    if (n_lat) {
        assert_true(fabs(t->latency_p50 - p50) < 1e-9);
        assert_true(fabs(t->latency_p95 - p95) < 1e-9);
    } else {
        assert_true(t->latency_p50 < 0 && t->latency_p95 < 0);
    }
    assert_int_equal(t->n_confidence, n_conf);
    if (n_conf)
        assert_true(fabs(t->confidence_mean - conf) < 1e-9);
    else
        assert_true(t->confidence_mean < 0);
    assert_int_equal(t->safety_flagged, flagged);
    assert_int_equal(t->thumbs_up, up);
    assert_int_equal(t->thumbs_down, down);
}

/* Three one-minute buckets from F; records on the bucket edges, outside the
 * range, not inference; feedback counted by its own time. */
#define F 6000000LL
#define B 60000LL
static void hand_checked_buckets_totals_and_agents(void **state)
{
    (void)state;
    hs_store *s = fresh("ts_hand.db");
    const struct rec recs[] = {
        {"a1", F + 0, CHAT, "local", "a", NULL, 200, 10, 0.5},               /* bucket 0, first ms */
        {"a2", F + B - 1, "/v1/completions", "local", "a", "x", 200, 20, 0.7}, /* bucket 0, last ms */
        {"a3", F + 30000, "/v1/embeddings", "local", NULL, NULL, 200, 30, -1},
        {"a4", F + 1000, CHAT, "http://up", "b", NULL, 200, 40, 0.9},
        {"e1", F + B, CHAT, "local", "b", "", 503, 5, -1},          /* bucket 1; an error's latency is not counted */
        {"n1", F + B + 1, CHAT, NULL, NULL, NULL, 404, 1, -1},     /* no model answered: not inference */
        {"n2", F + B + 2, "/v1/assess", "local", NULL, NULL, 200, 1, -1}, /* the envelope: not inference */
        {"o1", F - 1, CHAT, "local", NULL, NULL, 200, 99, 0.1},     /* before the range */
        {"o2", F + 3 * B, CHAT, "local", "a", NULL, 200, 99, 0.1},  /* to_ms itself: after it */
    };
    for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++)
        put(s, &recs[i]);
    feedback(s, "a1", 1, F + 2 * B);  /* bucket 2, though a1 is in bucket 0 */
    feedback(s, "a4", -1, F + 10);    /* bucket 0 */
    feedback(s, "o1", 1, F + B + 1000); /* its request is outside, the feedback inside: bucket 1 */
    feedback(s, "n1", -1, F + 100);   /* not an inference record */
    feedback(s, "a2", -1, F + 3 * B); /* after the range */

    struct hs_ts_stats b[3], tot;
    hs_err err = {0};
    assert_int_equal(hs_ts_bucket_count(F, F + 3 * B, B), 3);
    assert_int_equal(hs_store_timeseries(s, F, F + 3 * B, B, b, 3, &tot, &err), HS_OK);
    /* latencies 10, 20, 30, 40: type 7 p50 = 25; p95 at h = 0.95*3 = 2.85 -> 30 + 0.85*10 */
    expect_stats(&b[0], 4, 0, 4, 25, 38.5, 3, (0.5 + 0.7 + 0.9) / 3, 1, 0, 1);
    expect_stats(&b[1], 1, 1, 0, 0, 0, 0, 0, 0, 1, 0);
    expect_stats(&b[2], 0, 0, 0, 0, 0, 0, 0, 0, 1, 0);
    expect_stats(&tot, 5, 1, 4, 25, 38.5, 3, (0.5 + 0.7 + 0.9) / 3, 1, 2, 1);

    struct hs_ts_agent *a = NULL;
    size_t n = 0;
    assert_int_equal(hs_store_agent_stats(s, F, F + 3 * B, &a, &n, &err), HS_OK);
    assert_int_equal(n, 3);
    /* a and b tie on 2 requests: by name; the records without an agent last */
    assert_string_equal(a[0].agent, "a");
    expect_stats(&a[0].st, 2, 0, 2, 15, 19.5, 2, 0.6, 1, 1, 0);
    assert_string_equal(a[1].agent, "b");
    expect_stats(&a[1].st, 2, 1, 1, 40, 40, 1, 0.9, 0, 0, 1);
    assert_null(a[2].agent);
    expect_stats(&a[2].st, 1, 0, 1, 30, 30, 0, 0, 0, 1, 0); /* o1's feedback: agent NULL */
    hs_ts_agents_free(a, n);

    /* a range that is not a whole number of buckets: the last one is short */
    struct hs_ts_stats c[2];
    assert_int_equal(hs_ts_bucket_count(F, F + B + 1, B), 2);
    assert_int_equal(hs_store_timeseries(s, F, F + B + 1, B, c, 2, NULL, &err), HS_OK);
    assert_int_equal(c[0].requests, 4);
    assert_int_equal(c[1].requests, 1);
    /* the wrong number of buckets is refused */
    assert_int_equal(hs_store_timeseries(s, F, F + 3 * B, B, b, 2, NULL, &err), HS_EINVAL);
    hs_store_close(s);
}

static void empty_store_and_empty_ranges(void **state)
{
    (void)state;
    hs_store *s = fresh("ts_empty.db");
    struct hs_ts_stats b[5], tot;
    hs_err err = {0};
    assert_int_equal(hs_store_timeseries(s, 0, 5 * B, B, b, 5, &tot, &err), HS_OK);
    for (int i = 0; i < 5; i++)
        expect_stats(&b[i], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    expect_stats(&tot, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    struct hs_ts_agent *a = (struct hs_ts_agent *)1;
    size_t n = 9;
    assert_int_equal(hs_store_agent_stats(s, 0, 5 * B, &a, &n, &err), HS_OK);
    assert_null(a);
    assert_int_equal(n, 0);
    assert_int_equal(hs_ts_bucket_count(10, 10, B), 0);
    assert_int_equal(hs_store_timeseries(s, 10, 10, B, b, 0, NULL, &err), HS_EINVAL);
    assert_int_equal(hs_store_agent_stats(s, 10, 10, &a, &n, &err), HS_EINVAL);
    /* records outside a range do not show in it */
    put(s, &(struct rec){"z", 10 * B, CHAT, "local", "a", NULL, 200, 5, 0.5});
    assert_int_equal(hs_store_timeseries(s, 0, 5 * B, B, b, 5, &tot, &err), HS_OK);
    assert_int_equal(tot.requests, 0);
    hs_store_close(s);
}

/* ---- a random store against a naive recomputation ---- */

static double q7(double *v, size_t n, double q)
{
    /* sorted by insertion (n is small per group) */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    double h = (double)(n - 1) * q;
    size_t lo = (size_t)floor(h);
    return lo + 1 < n ? v[lo] + (h - (double)lo) * (v[lo + 1] - v[lo]) : v[lo];
}

#define NR 1500
#define NB 8
static const char *const k_agents[] = {NULL, "x", "y", "zz"};
static const char *const k_endpoints[] = {CHAT, "/v1/completions", "/v1/embeddings", "/v1/assess"};

struct gen {
    char id[16];
    struct rec r;
    int fb;      /* 0 none */
    int64_t fts; /* feedback time */
};

static void naive(const struct gen *g, size_t n, int64_t from, int64_t to, int bucket /* -1 all */, int agent /* -2 any */,
                  struct hs_ts_stats *t)
{
    memset(t, 0, sizeof *t);
    double *lat = calloc(n + 1, sizeof *lat), conf = 0;
    size_t nl = 0;
    for (size_t i = 0; i < n; i++) {
        const struct rec *r = &g[i].r;
        bool inf = r->backend && strcmp(r->endpoint, "/v1/assess");
        int ai = 0;
        for (int k = 1; k < 4; k++)
            if (r->agent && !strcmp(r->agent, k_agents[k]))
                ai = k;
        if (!inf || (agent != -2 && agent != ai))
            continue;
        if (r->ts >= from && r->ts < to && (bucket < 0 || (r->ts - from) / B == bucket)) {
            t->requests++;
            bool ok = r->status / 100 == 2;
            t->errors += !ok;
            t->safety_flagged += r->flags && r->flags[0];
            if (ok && r->lat >= 0)
                lat[nl++] = r->lat;
            if (r->conf >= 0) {
                t->n_confidence++;
                conf += r->conf;
            }
        }
        if (g[i].fb && g[i].fts >= from && g[i].fts < to && (bucket < 0 || (g[i].fts - from) / B == bucket)) {
            if (g[i].fb > 0)
                t->thumbs_up++;
            else
                t->thumbs_down++;
        }
    }
    t->n_latency = (int64_t)nl;
    t->latency_p50 = nl ? q7(lat, nl, 0.5) : -1;
    t->latency_p95 = nl ? q7(lat, nl, 0.95) : -1;
    t->confidence_mean = t->n_confidence ? conf / (double)t->n_confidence : -1;
    free(lat);
}

static void same(const struct hs_ts_stats *got, const struct hs_ts_stats *want)
{
    expect_stats(got, want->requests, want->errors, want->n_latency, want->latency_p50, want->latency_p95,
                 want->n_confidence, want->confidence_mean, want->safety_flagged, want->thumbs_up, want->thumbs_down);
}

static void random_store_matches_naive_recomputation(void **state)
{
    (void)state;
    hs_store *s = fresh("ts_random.db");
    struct gen *g = calloc(NR, sizeof *g);
    srand(12345);
    const int64_t from = 42 * B, to = from + NB * B - 7000; /* the last bucket is short */
    for (size_t i = 0; i < NR; i++) {
        snprintf(g[i].id, sizeof g[i].id, "r%zu", i);
        int64_t ts = from - 2 * B + rand() % ((NB + 4) * B);
        int st = rand() % 10;
        g[i].r = (struct rec){
            .id = g[i].id,
            .ts = ts,
            .endpoint = k_endpoints[rand() % 4],
            .backend = rand() % 10 ? "local" : NULL,
            .agent = k_agents[rand() % 4],
            .flags = rand() % 7 == 0 ? "unsafe_recommendation" : (rand() % 5 == 0 ? "" : NULL),
            .status = st < 7 ? 200 : st == 7 ? 201 : st == 8 ? 429 : 500,
            .lat = rand() % 6 ? (double)(rand() % 100000) / 37.0 : -1,
            .conf = rand() % 4 ? (double)(rand() % 1000) / 1000.0 : -1,
        };
        put(s, &g[i].r);
    }
    for (size_t i = 0; i < NR; i += 1 + (size_t)(rand() % 3)) {
        g[i].fb = rand() % 3 ? 1 : -1;
        g[i].fts = from - B + rand() % ((NB + 2) * B);
        feedback(s, g[i].id, g[i].fb, g[i].fts);
    }
    struct hs_ts_stats b[NB], tot, want;
    hs_err err = {0};
    assert_int_equal(hs_ts_bucket_count(from, to, B), NB);
    assert_int_equal(hs_store_timeseries(s, from, to, B, b, NB, &tot, &err), HS_OK);
    for (int i = 0; i < NB; i++) {
        naive(g, NR, from, to, i, -2, &want);
        same(&b[i], &want);
    }
    naive(g, NR, from, to, -1, -2, &want);
    same(&tot, &want);
    assert_true(tot.requests > 500 && tot.thumbs_up > 50 && tot.thumbs_down > 20);

    struct hs_ts_agent *a = NULL;
    size_t n = 0;
    assert_int_equal(hs_store_agent_stats(s, from, to, &a, &n, &err), HS_OK);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        int ai = 0;
        for (int k = 1; k < 4; k++)
            if (a[i].agent && !strcmp(a[i].agent, k_agents[k]))
                ai = k;
        naive(g, NR, from, to, -1, ai, &want);
        same(&a[i].st, &want);
        if (i)
            assert_true(a[i - 1].st.requests >= a[i].st.requests);
    }
    hs_ts_agents_free(a, n);
    free(g);
    hs_store_close(s);
}

/* Latencies in order, in reverse, all equal, with many ties, one, two:
 * the quantiles by selection must still be gsl's type 7 (naive sort here). */
static void quantiles_with_ties_and_ordered_input(void **state)
{
    (void)state;
    hs_store *s = fresh("ts_ties.db");
    enum { NG = 6, PER = 101 };
    struct gen *g = calloc(NG * PER, sizeof *g);
    size_t n = 0;
    for (int b = 0; b < NG; b++) {
        int count = b == 4 ? 1 : b == 5 ? 2 : PER;
        for (int i = 0; i < count; i++, n++) {
            double lat = b == 0 ? i : b == 1 ? PER - i : b == 2 ? 7.5 : b == 3 ? (double)(i % 4) : 3.0 + i;
            snprintf(g[n].id, sizeof g[n].id, "q%zu", n);
            g[n].r = (struct rec){g[n].id, b * B + i, CHAT, "local", NULL, NULL, 200, lat, -1};
            put(s, &g[n].r);
        }
    }
    struct hs_ts_stats got[NG], tot, want;
    hs_err err = {0};
    assert_int_equal(hs_store_timeseries(s, 0, NG * B, B, got, NG, &tot, &err), HS_OK);
    for (int b = 0; b < NG; b++) {
        naive(g, n, 0, NG * B, b, -2, &want);
        same(&got[b], &want);
    }
    naive(g, n, 0, NG * B, -1, -2, &want);
    same(&tot, &want);
    assert_true(fabs(got[2].latency_p95 - 7.5) < 1e-12);
    assert_true(fabs(got[5].latency_p95 - 3.95) < 1e-12); /* 3 and 4: h = 0.95 */
    free(g);
    hs_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hand_checked_buckets_totals_and_agents),
        cmocka_unit_test(empty_store_and_empty_ranges),
        cmocka_unit_test(random_store_matches_naive_recomputation),
        cmocka_unit_test(quantiles_with_ties_and_ordered_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
