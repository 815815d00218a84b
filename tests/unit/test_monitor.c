/* ops/monitor: the two windows, percentiles, the baseline, the rules and
 * the `monitor:` configuration.
 *
 * Percentiles are checked against the test's own computation: the window's
 * values kept apart, sorted with qsort, and interpolated by the rule the
 * header states (Hyndman and Fan type 7: position q(n-1), linear between
 * neighbours), written out here rather than taken from gsl. Time is a fake
 * clock the test moves by hand. */
#include "test_util.h"

#include "base/mem.h"
#include "base/rng.h"
#include "ops/drift.h"
#include "ops/monitor.h"
#include "ops/store_ops.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ---- */

static int64_t g_now_ms;
static int64_t fake_clock(void *user)
{
    (void)user;
    return __atomic_load_n(&g_now_ms, __ATOMIC_RELAXED);
}
static void set_minute(double minute)
{
    __atomic_store_n(&g_now_ms, (int64_t)(minute * 60000.0), __ATOMIC_RELAXED);
}

static hs_monitor *new_monitor(int window, int hour_samples, int baseline)
{
    struct hs_monitor_params p;
    hs_monitor_params_default(&p);
    p.window = window;
    p.hour_samples = hour_samples;
    p.baseline_requests = baseline;
    p.clock = fake_clock;
    hs_monitor *m = NULL;
    hs_err err = {0};
    if (hs_monitor_create(&p, &m, &err))
        fail_msg("monitor: %s", err.msg);
    return m;
}

static void observe(hs_monitor *m, double lat, bool error, bool safety, double conf)
{
    struct hs_monitor_obs o = {
        .latency_ms = lat, .error = error, .safety_flagged = safety, .confidence = conf};
    hs_monitor_observe(m, &o);
}

static struct hs_monitor_stats snap(hs_monitor *m, enum hs_monitor_window w)
{
    struct hs_monitor_stats s;
    hs_err err = {0};
    if (hs_monitor_snapshot(m, w, &s, &err))
        fail_msg("snapshot: %s", err.msg);
    return s;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Type 7 quantile of n values (copied and sorted here). */
static double quantile7(const double *v, size_t n, double q)
{
    double *s = malloc(n * sizeof *s);
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    double frac = pos - (double)lo;
    double r = lo + 1 < n ? s[lo] + frac * (s[lo + 1] - s[lo]) : s[lo];
    free(s);
    return r;
}

static double mean_of(const double *v, size_t n)
{
    double t = 0;
    for (size_t i = 0; i < n; i++)
        t += v[i];
    return t / (double)n;
}

static void assert_close(double got, double want, double tol, const char *what)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: got %.9g, want %.9g (tolerance %g)", what, got, want, tol);
}

/* ---- windows and percentiles ---- */

static void quantiles_of_five_values_by_hand(void **state)
{
    (void)state;
    set_minute(0);
    hs_monitor *m = new_monitor(500, 256, 0);
    const double v[] = {50, 10, 40, 20, 30};
    for (int i = 0; i < 5; i++)
        observe(m, v[i], false, false, -1);
    struct hs_monitor_stats s = snap(m, HS_MON_REQUESTS);
    assert_int_equal(s.count, 5);
    /* sorted 10 20 30 40 50: p50 at position 2 = 30; p95 at 3.8 = 40 + 0.8 * 10;
       p99 at 3.96 = 40 + 0.96 * 10 */
    assert_close(s.latency_p50, 30, 1e-12, "p50");
    assert_close(s.latency_p95, 48, 1e-12, "p95");
    assert_close(s.latency_p99, 49.6, 1e-12, "p99");
    assert_close(s.latency_mean, 30, 1e-12, "mean");
    assert_true(s.latency_exact);
    /* no confidence, no feedback: NaN, not 0 */
    assert_true(isnan(s.confidence_mean));
    assert_true(isnan(s.down_rate));
    struct hs_monitor_stats h = snap(m, HS_MON_HOUR);
    assert_close(h.latency_p95, 48, 1e-12, "hour p95");
    hs_monitor_free(m);
}

/* 1000 requests through a window of 300: the statistics are those of the
 * last 300, computed independently; unknown latencies and confidences are
 * left out of their averages but counted as requests. */
static void ring_keeps_the_last_n_requests(void **state)
{
    (void)state;
    set_minute(0);
    enum { N = 300, TOTAL = 1000 };
    hs_monitor *m = new_monitor(N, 256, 0);
    double lat[TOTAL], conf[TOTAL];
    bool err[TOTAL], saf[TOTAL];
    hs_rng rng;
    hs_rng_seed(&rng, 7);
    for (int i = 0; i < TOTAL; i++) {
        /* a skewed latency (exp of a normal) with some unknown ones */
        lat[i] = (i % 17 == 0) ? -1 : 100 * exp(0.6 * hs_rng_normal(&rng));
        conf[i] = (i % 5 == 0) ? -1 : hs_rng_f64(&rng);
        err[i] = hs_rng_f64(&rng) < 0.1;
        saf[i] = hs_rng_f64(&rng) < 0.03;
        observe(m, lat[i], err[i], saf[i], conf[i]);
        set_minute(i / 100.0); /* spread over 10 minutes */
    }
    double kept[N], csum = 0;
    size_t nk = 0;
    int nerr = 0, nsaf = 0, nconf = 0;
    for (int i = TOTAL - N; i < TOTAL; i++) {
        if (lat[i] >= 0)
            kept[nk++] = lat[i];
        if (conf[i] >= 0) {
            csum += conf[i];
            nconf++;
        }
        nerr += err[i];
        nsaf += saf[i];
    }
    struct hs_monitor_stats s = snap(m, HS_MON_REQUESTS);
    assert_int_equal(s.count, N);
    assert_int_equal(s.n_latency, nk);
    assert_close(s.latency_mean, mean_of(kept, nk), 1e-9, "mean");
    assert_close(s.latency_p50, quantile7(kept, nk, 0.50), 1e-9, "p50");
    assert_close(s.latency_p95, quantile7(kept, nk, 0.95), 1e-9, "p95");
    assert_close(s.latency_p99, quantile7(kept, nk, 0.99), 1e-9, "p99");
    assert_int_equal(s.errors, nerr);
    assert_close(s.error_rate, (double)nerr / N, 1e-12, "error rate");
    assert_int_equal(s.safety_flagged, nsaf);
    assert_int_equal(s.n_confidence, nconf);
    assert_close(s.confidence_mean, csum / nconf, 1e-12, "confidence");

    /* the hour window holds all 1000 (every minute under 256 requests:
       exact percentiles over every latency) */
    double all[TOTAL];
    size_t na = 0;
    for (int i = 0; i < TOTAL; i++)
        if (lat[i] >= 0)
            all[na++] = lat[i];
    struct hs_monitor_stats h = snap(m, HS_MON_HOUR);
    assert_int_equal(h.count, TOTAL);
    assert_true(h.latency_exact);
    assert_close(h.latency_p95, quantile7(all, na, 0.95), 1e-9, "hour p95");
    assert_close(h.latency_p99, quantile7(all, na, 0.99), 1e-9, "hour p99");
    assert_close(h.latency_mean, mean_of(all, na), 1e-9, "hour mean");
    hs_monitor_free(m);
}

/* The hour window is the current minute and the 59 before it: requests
 * expire a minute at a time, and feedback counts in the minute it arrives,
 * even for a request that has already left the window. */
static void hour_window_expires_by_the_clock(void **state)
{
    (void)state;
    set_minute(0.5);
    hs_monitor *m = new_monitor(500, 256, 0);
    for (int i = 0; i < 10; i++)
        observe(m, 100, i < 2, false, 0.9);
    set_minute(30.2);
    for (int i = 0; i < 5; i++)
        observe(m, 300, false, true, 0.5);
    hs_monitor_feedback(m, -1);

    set_minute(59.9);
    struct hs_monitor_stats h = snap(m, HS_MON_HOUR);
    assert_int_equal(h.count, 15);
    assert_int_equal(h.errors, 2);
    assert_int_equal(h.safety_flagged, 5);
    assert_close(h.latency_mean, (10 * 100 + 5 * 300) / 15.0, 1e-9, "mean at minute 59");

    set_minute(60.0); /* minute 0 leaves */
    h = snap(m, HS_MON_HOUR);
    assert_int_equal(h.count, 5);
    assert_int_equal(h.errors, 0);
    assert_close(h.latency_p50, 300, 1e-12, "p50 after expiry");
    assert_close(h.confidence_mean, 0.5, 1e-12, "confidence after expiry");
    assert_int_equal(h.thumbs_down, 1);

    /* late feedback for a minute-0 request: counted now, in minute 61 */
    set_minute(61.0);
    hs_monitor_feedback(m, 1);
    hs_monitor_feedback(m, 7); /* not a vote: ignored */
    h = snap(m, HS_MON_HOUR);
    assert_int_equal(h.thumbs_up, 1);
    assert_int_equal(h.thumbs_down, 1);
    assert_close(h.down_rate, 0.5, 1e-12, "down rate");

    set_minute(90.5); /* minute 30 leaves; minute 61's vote stays */
    h = snap(m, HS_MON_HOUR);
    assert_int_equal(h.count, 0);
    assert_true(isnan(h.latency_p95));
    assert_true(isnan(h.error_rate));
    assert_int_equal(h.thumbs_up, 1);
    assert_int_equal(h.thumbs_down, 0);

    set_minute(200); /* everything gone, including slots reused since */
    h = snap(m, HS_MON_HOUR);
    assert_int_equal(h.count + h.thumbs_up + h.thumbs_down, 0);
    /* the requests ring does not care about time */
    struct hs_monitor_stats r = snap(m, HS_MON_REQUESTS);
    assert_int_equal(r.count, 15);
    assert_int_equal(r.thumbs_up, 1);
    assert_int_equal(r.thumbs_down, 1);
    hs_monitor_free(m);
}

/* A busy minute overflows its reservoir: percentiles become estimates in
 * which each kept latency stands for its minute's share of requests. 5000
 * requests at U(0,100) ms in one minute and 200 at U(1000,1100) ms in
 * another: the true p50 and p95 lie in the busy minute's range, the p99 in
 * the slow one's. Pooling the two reservoirs unweighted would put the p50
 * near the slow minute instead. */
static void busy_minutes_give_weighted_estimates(void **state)
{
    (void)state;
    enum { NA = 5000, NB = 200 };
    hs_monitor *m = new_monitor(500, 200, 0);
    hs_rng rng;
    hs_rng_seed(&rng, 11);
    double *all = malloc((NA + NB) * sizeof *all);
    set_minute(3.1);
    for (int i = 0; i < NA; i++) {
        all[i] = 100 * hs_rng_f64(&rng);
        observe(m, all[i], false, false, -1);
    }
    set_minute(4.1);
    for (int i = 0; i < NB; i++) {
        all[NA + i] = 1000 + 100 * hs_rng_f64(&rng);
        observe(m, all[NA + i], false, false, -1);
    }
    struct hs_monitor_stats h = snap(m, HS_MON_HOUR);
    assert_false(h.latency_exact);
    assert_int_equal(h.n_latency, NA + NB);
    /* the mean comes from exact sums */
    assert_close(h.latency_mean, mean_of(all, NA + NB), 1e-6, "mean");
    double t50 = quantile7(all, NA + NB, 0.50), t95 = quantile7(all, NA + NB, 0.95);
    double t99 = quantile7(all, NA + NB, 0.99);
    print_message(
        "hour window from reservoirs: p50 %.1f (true %.1f), p95 %.1f (true %.1f), p99 %.1f (true %.1f)\n",
        h.latency_p50, t50, h.latency_p95, t95, h.latency_p99, t99);
    /* 200 kept of 5000 uniform values: the p50 estimate's standard error is
       about 100 * sqrt(0.25 / 200) = 3.5 ms; the tolerances are 3 of those */
    assert_close(h.latency_p50, t50, 11, "p50 estimate");
    assert_close(h.latency_p95, t95, 5, "p95 estimate");
    /* the slow minute is kept whole, so its part of the tail is close */
    assert_close(h.latency_p99, t99, 15, "p99 estimate");
    free(all);
    hs_monitor_free(m);
}

/* ---- threads ---- */

struct thread_arg {
    hs_monitor *m;
    int n;
};

static void *observer(void *arg)
{
    struct thread_arg *a = arg;
    for (int i = 0; i < a->n; i++) {
        observe(a->m, i % 100, i % 10 == 0, false, 0.5);
        if (i % 4 == 0)
            hs_monitor_feedback(a->m, i % 8 == 0 ? 1 : -1);
    }
    return NULL;
}

static void *snapshotter(void *arg)
{
    struct thread_arg *a = arg;
    for (int i = 0; i < a->n; i++) {
        struct hs_monitor_stats s;
        hs_monitor_snapshot(a->m, i % 2 ? HS_MON_HOUR : HS_MON_REQUESTS, &s, NULL);
    }
    return NULL;
}

static void concurrent_observers_lose_nothing(void **state)
{
    (void)state;
    set_minute(5);
    enum { T = 4, PER = 5000 };
    hs_monitor *m = new_monitor(100000, 64, 0);
    pthread_t th[T + 1];
    struct thread_arg a = {m, PER}, b = {m, 50};
    for (int i = 0; i < T; i++)
        pthread_create(&th[i], NULL, observer, &a);
    pthread_create(&th[T], NULL, snapshotter, &b);
    for (int i = 0; i <= T; i++)
        pthread_join(th[i], NULL);
    struct hs_monitor_stats h = snap(m, HS_MON_HOUR), r = snap(m, HS_MON_REQUESTS);
    assert_int_equal(h.count, T * PER);
    assert_int_equal(r.count, T * PER);
    assert_int_equal(h.errors, T * PER / 10);
    assert_int_equal(h.thumbs_up + h.thumbs_down, T * PER / 4);
    assert_int_equal(r.thumbs_up, T * PER / 8);
    hs_monitor_free(m);
}

/* ---- the rules ---- */

static bool fired(const struct hs_monitor_breach *b, int n, const char *type, enum hs_monitor_severity *sev)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(b[i].type, type)) {
            if (sev)
                *sev = b[i].severity;
            return true;
        }
    return false;
}

static void rules_wait_for_min_samples_then_fire(void **state)
{
    (void)state;
    set_minute(0);
    hs_monitor *m = new_monitor(500, 256, 0);
    struct hs_monitor_thresholds t;
    hs_monitor_thresholds_default(&t);
    struct hs_monitor_breach b[8];
    /* 19 slow, failing, flagged requests and 19 thumbs down: below the
       minimum sample, nothing fires */
    for (int i = 0; i < 19; i++) {
        observe(m, 2000, true, true, 0.4);
        hs_monitor_feedback(m, -1);
    }
    struct hs_monitor_stats s = snap(m, HS_MON_REQUESTS);
    assert_int_equal(hs_monitor_evaluate(&s, NULL, &t, b, 8), 0);
    observe(m, 2000, true, true, 0.4);
    hs_monitor_feedback(m, -1);
    s = snap(m, HS_MON_REQUESTS);
    int n = hs_monitor_evaluate(&s, NULL, &t, b, 8);
    assert_int_equal(n, 4);
    enum hs_monitor_severity sev;
    assert_true(fired(b, n, "high_latency_p95", &sev));
    assert_int_equal(sev, HS_SEV_CRITICAL); /* 2000 >= 2 x 800 */
    assert_true(fired(b, n, "error_rate", NULL));
    assert_true(fired(b, n, "thumbs_down", NULL));
    assert_true(fired(b, n, "safety_rate", NULL));
    for (int i = 0; i < n; i++) {
        assert_true(b[i].value > b[i].limit);
        assert_int_equal(b[i].window, HS_MON_REQUESTS);
        print_message("breach %-18s %-8s %s\n", b[i].type, hs_monitor_severity_name(b[i].severity),
                      b[i].message);
    }
    assert_non_null(strstr(b[0].message, "2000 ms"));
    /* the monitor thread's round: the same four in each window */
    struct hs_monitor_breach both[16];
    hs_err err = {0};
    assert_int_equal(hs_monitor_check(m, &t, both, 16, &err), 8);
    assert_int_equal(both[0].window, HS_MON_REQUESTS);
    assert_int_equal(both[4].window, HS_MON_HOUR);
    assert_int_equal(hs_monitor_check(m, &t, both, 5, &err), 8);
    char *det = hs_monitor_breach_details_json(&both[4]);
    assert_string_equal(det,
                        "{\"window\":\"hour\",\"severity\":\"critical\",\"value\":2000.0,\"limit\":800.0}");
    hs_free(det);
    /* cap bounds what is written, not the count */
    assert_int_equal(hs_monitor_evaluate(&s, NULL, &t, b, 1), 4);
    assert_int_equal(hs_monitor_evaluate(&s, NULL, &t, NULL, 0), 4);
    hs_monitor_free(m);
}

/* Hand-made statistics around each limit: strictly above fires, at the
 * limit does not; the baseline rules need a baseline with enough samples. */
static void rules_at_their_limits(void **state)
{
    (void)state;
    struct hs_monitor_thresholds t;
    hs_monitor_thresholds_default(&t);
    struct hs_monitor_stats base = {.window = HS_MON_REQUESTS,
                                    .count = 100,
                                    .n_latency = 100,
                                    .latency_p95 = 400,
                                    .n_confidence = 100,
                                    .confidence_mean = 0.80};
    struct hs_monitor_stats s = {.window = HS_MON_HOUR,
                                 .count = 100,
                                 .n_latency = 100,
                                 .latency_p95 = 600,
                                 .errors = 5,
                                 .error_rate = 0.05,
                                 .safety_flagged = 5,
                                 .safety_rate = 0.05,
                                 .thumbs_up = 80,
                                 .thumbs_down = 20,
                                 .down_rate = 0.20,
                                 .up_rate = 0.8,
                                 .n_confidence = 100,
                                 .confidence_mean = 0.65};
    struct hs_monitor_breach b[8];
    /* ratio 1.5, drop 0.15 (up to rounding), rates at their limits */
    base.confidence_mean = 0.65 + 0.15 - 1e-9;
    assert_int_equal(hs_monitor_evaluate(&s, &base, &t, b, 8), 0);

    s.latency_p95 = 601; /* 1.5025 x */
    s.down_rate = 0.21;
    s.confidence_mean = 0.60; /* drop 0.2 - 1e-9 */
    int n = hs_monitor_evaluate(&s, &base, &t, b, 8);
    assert_int_equal(n, 3);
    enum hs_monitor_severity sev;
    assert_true(fired(b, n, "latency_vs_baseline", &sev));
    assert_int_equal(sev, HS_SEV_WARNING);
    assert_true(fired(b, n, "thumbs_down", NULL));
    assert_true(fired(b, n, "confidence_drop", &sev));
    assert_int_equal(sev, HS_SEV_WARNING);
    assert_int_equal(b[0].window, HS_MON_HOUR);
    /* without a baseline the two comparisons cannot fire */
    assert_int_equal(hs_monitor_evaluate(&s, NULL, &t, b, 8), 1);
    /* a baseline on too few samples is not trusted */
    base.n_latency = base.n_confidence = 19;
    assert_int_equal(hs_monitor_evaluate(&s, &base, &t, b, 8), 1);
    /* a limit of 0 turns a rule off */
    t.thumbs_down_rate = 0;
    assert_int_equal(hs_monitor_evaluate(&s, NULL, &t, b, 8), 0);
}

/* ---- the baseline ---- */

static bool same_num(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

static void assert_same_stats(const struct hs_monitor_stats *a, const struct hs_monitor_stats *b)
{
    assert_int_equal(a->window, b->window);
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->n_latency, b->n_latency);
    assert_int_equal(a->errors, b->errors);
    assert_int_equal(a->thumbs_up, b->thumbs_up);
    assert_int_equal(a->thumbs_down, b->thumbs_down);
    assert_int_equal(a->safety_flagged, b->safety_flagged);
    assert_int_equal(a->n_confidence, b->n_confidence);
    assert_int_equal(a->latency_exact, b->latency_exact);
    const double x[] = {a->latency_mean, a->latency_p50, a->latency_p95, a->latency_p99,    a->error_rate,
                        a->up_rate,      a->down_rate,   a->safety_rate, a->confidence_mean};
    const double y[] = {b->latency_mean, b->latency_p50, b->latency_p95, b->latency_p99,    b->error_rate,
                        b->up_rate,      b->down_rate,   b->safety_rate, b->confidence_mean};
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        if (!same_num(x[i], y[i]))
            fail_msg("field %zu: %.17g != %.17g", i, x[i], y[i]);
}

static void baseline_json_round_trip(void **state)
{
    (void)state;
    set_minute(0);
    hs_monitor *m = new_monitor(500, 256, 0);
    hs_rng rng;
    hs_rng_seed(&rng, 3);
    for (int i = 0; i < 77; i++)
        observe(m, 10 + 1000 * hs_rng_f64(&rng), i % 9 == 0, i % 13 == 0, i % 3 ? hs_rng_f64(&rng) : -1);
    struct hs_monitor_stats s = snap(m, HS_MON_REQUESTS), back;
    /* no feedback yet: the rates are NaN and must come back NaN */
    char *js = hs_monitor_stats_to_json(&s);
    assert_non_null(js);
    assert_non_null(strstr(js, "\"down_rate\":null"));
    hs_err err = {0};
    assert_int_equal(hs_monitor_stats_from_json(&back, js, &err), HS_OK);
    assert_same_stats(&s, &back);
    hs_free(js);

    hs_monitor_feedback(m, 1);
    hs_monitor_feedback(m, -1);
    hs_monitor_feedback(m, 1);
    s = snap(m, HS_MON_HOUR);
    js = hs_monitor_stats_to_json(&s);
    assert_int_equal(hs_monitor_stats_from_json(&back, js, &err), HS_OK);
    assert_same_stats(&s, &back);
    hs_free(js);

    /* errors name the field */
    assert_int_equal(hs_monitor_stats_from_json(&back, "{\"window\":\"requests\",\"count\":-1}", &err),
                     HS_EFORMAT);
    assert_non_null(strstr(err.msg, "count"));
    assert_int_equal(hs_monitor_stats_from_json(&back, "[1]", &err), HS_EFORMAT);
    assert_int_equal(hs_monitor_stats_from_json(&back, "{", &err), HS_EFORMAT);
    hs_monitor_free(m);
}

/* The first N requests after a deploy become the baseline; requests after
 * them do not change it; a new deploy starts over; an explicit set wins. */
static void baseline_from_the_first_requests_after_deploy(void **state)
{
    (void)state;
    set_minute(0);
    enum { NB = 50 };
    hs_monitor *m = new_monitor(500, 256, NB);
    struct hs_monitor_stats b;
    hs_err err = {0};
    double lat[NB];
    int captured, target;
    for (int i = 0; i < NB; i++) {
        assert_int_equal(hs_monitor_get_baseline(m, &b, &err), HS_ENOTFOUND);
        lat[i] = 100 + 3 * i;
        observe(m, lat[i], false, false, 0.9);
        if (i == 10)
            hs_monitor_feedback(m, 1);
    }
    hs_monitor_capture_progress(m, &captured, &target);
    assert_int_equal(captured, NB);
    assert_int_equal(target, NB);
    for (int i = 0; i < 100; i++)
        observe(m, 5000, true, false, 0.1);
    hs_monitor_feedback(m, -1);
    assert_int_equal(hs_monitor_get_baseline(m, &b, &err), HS_OK);
    assert_int_equal(b.count, NB);
    assert_int_equal(b.errors, 0);
    assert_int_equal(b.thumbs_up, 1);
    assert_int_equal(b.thumbs_down, 0);
    assert_close(b.latency_p95, quantile7(lat, NB, 0.95), 1e-9, "baseline p95");
    assert_close(b.confidence_mean, 0.9, 1e-12, "baseline confidence");
    hs_monitor_capture_progress(m, &captured, &target);
    assert_int_equal(target, 0);

    /* the current window against it: latency and confidence both breach */
    struct hs_monitor_thresholds t;
    hs_monitor_thresholds_default(&t);
    struct hs_monitor_stats s = snap(m, HS_MON_REQUESTS);
    struct hs_monitor_breach br[8];
    int n = hs_monitor_evaluate(&s, &b, &t, br, 8);
    assert_true(fired(br, n, "latency_vs_baseline", NULL));
    assert_true(fired(br, n, "confidence_drop", NULL));

    hs_monitor_mark_deploy(m);
    assert_int_equal(hs_monitor_get_baseline(m, &b, &err), HS_ENOTFOUND);
    observe(m, 1, false, false, -1);
    hs_monitor_capture_progress(m, &captured, &target);
    assert_int_equal(captured, 1);
    assert_int_equal(target, NB);

    /* `hestia baseline set`: the current window, made the baseline */
    hs_monitor_set_baseline(m, &s);
    assert_int_equal(hs_monitor_get_baseline(m, &b, &err), HS_OK);
    assert_same_stats(&b, &s);
    hs_monitor_free(m);
}

static void baseline_stored_and_read_back(void **state)
{
    (void)state;
    char *path = hs_test_tmpfile("monitor.db");
    unlink(path);
    hs_store *st = NULL;
    hs_err err = {0};
    assert_int_equal(hs_store_open(path, &st, &err), HS_OK);
    set_minute(0);
    hs_monitor *m = new_monitor(500, 256, 0);
    for (int i = 0; i < 30; i++)
        observe(m, 50 + i, false, i == 3, 0.7);
    struct hs_monitor_stats s = snap(m, HS_MON_REQUESTS), back;
    char *js = hs_monitor_stats_to_json(&s);
    assert_int_equal(hs_store_baseline_put(st, "llama-1b", 1234, js, &err), HS_OK);
    hs_free(js);
    int64_t ts = 0;
    char *got = NULL;
    assert_int_equal(hs_store_baseline_get(st, "llama-1b", &ts, &got, &err), HS_OK);
    assert_int_equal(ts, 1234);
    assert_int_equal(hs_monitor_stats_from_json(&back, got, &err), HS_OK);
    assert_same_stats(&s, &back);
    hs_free(got);
    /* a second put replaces it */
    assert_int_equal(hs_store_baseline_put(st, "llama-1b", 0, "{\"window\":\"hour\"}", &err), HS_OK);
    assert_int_equal(hs_store_baseline_get(st, "llama-1b", &ts, &got, &err), HS_OK);
    assert_true(ts > 1234);
    assert_string_equal(got, "{\"window\":\"hour\"}");
    hs_free(got);
    assert_int_equal(hs_store_baseline_get(st, "other", NULL, &got, &err), HS_ENOTFOUND);
    assert_null(got);
    assert_int_equal(hs_store_baseline_put(st, "x", 0, "not json", &err), HS_EINVAL);
    assert_int_equal(hs_store_baseline_delete(st, "llama-1b", &err), HS_OK);
    assert_int_equal(hs_store_baseline_delete(st, "llama-1b", &err), HS_ENOTFOUND);
    hs_monitor_free(m);
    hs_store_close(st);
    free(path);
}

/* ---- configuration ---- */

static const char k_yaml[] = "server:\n"
                             "  port: 8080\n"
                             "monitor:\n"
                             "  window: 1000\n"
                             "  min_samples: 50\n"
                             "  baseline_requests: 0\n"
                             "  thresholds:\n"
                             "    latency_p95_ms: 1200\n"
                             "    thumbs_down_rate: 0.3\n"
                             "drift:\n"
                             "  data:\n"
                             "    every: 12h\n"
                             "    alpha: 0.01\n"
                             "    reference: \"data/ref.txt\"\n"
                             "  concept:\n"
                             "    reference: \"data/ref.jsonl\"\n"
                             "    accuracy_drop_points: 10\n";

static void config_reads_monitor_and_drift_sections(void **state)
{
    (void)state;
    struct hs_monitor_config mc;
    struct hs_drift_config dc;
    hs_monitor_config_default(&mc);
    hs_drift_config_default(&dc);
    /* the defaults are the guide's */
    assert_true(mc.enabled);
    assert_int_equal(mc.params.window, 500);
    assert_int_equal(mc.thresholds.min_samples, 20);
    assert_close(mc.thresholds.latency_p95_ms, 800, 0, "default p95");
    assert_close(mc.thresholds.latency_vs_baseline, 1.5, 0, "default ratio");
    assert_close(mc.thresholds.thumbs_down_rate, 0.20, 0, "default thumbs");
    assert_close(mc.thresholds.safety_rate, 0.05, 0, "default safety");
    assert_close(mc.thresholds.confidence_drop, 0.15, 0, "default confidence");
    assert_int_equal(dc.data.every_ms, 0); /* nothing scheduled without a section */
    hs_err err = {0};
    int rc = hs_monitor_config_parse(&mc, &dc, k_yaml, strlen(k_yaml), "hestia.yaml", &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(mc.params.window, 1000);
    assert_int_equal(mc.thresholds.min_samples, 50);
    assert_int_equal(mc.params.baseline_requests, 0);
    assert_close(mc.thresholds.latency_p95_ms, 1200, 0, "p95");
    assert_close(mc.thresholds.thumbs_down_rate, 0.3, 0, "thumbs");
    assert_close(mc.thresholds.safety_rate, 0.05, 0, "untouched safety");
    assert_int_equal(dc.data.every_ms, 12LL * 3600 * 1000);
    assert_close(dc.data.params.alpha, 0.01, 0, "alpha");
    assert_string_equal(dc.data.reference, "data/ref.txt");
    assert_int_equal(dc.concept.every_ms, 30LL * 86400 * 1000); /* the section's default */
    assert_string_equal(dc.concept.reference, "data/ref.jsonl");
    assert_close(dc.concept.params.drop_points, 10, 0, "drop points");
    hs_drift_config_free(&dc);
}

static void config_switches_the_monitor_off(void **state)
{
    (void)state;
    struct hs_monitor_config mc;
    hs_monitor_config_default(&mc);
    hs_err err = {0};
    const char *off = "monitor:\n  enabled: false\n  window: 30\n";
    assert_int_equal(hs_monitor_config_parse(&mc, NULL, off, strlen(off), "c.yaml", &err), HS_OK);
    assert_false(mc.enabled);
    assert_int_equal(mc.params.window, 30);
    const char *bad = "monitor:\n  enabled: maybe\n";
    assert_int_not_equal(hs_monitor_config_parse(&mc, NULL, bad, strlen(bad), "c.yaml", &err), HS_OK);
    assert_non_null(strstr(err.msg, "c.yaml:2: monitor.enabled"));
}

static void expect_config_error(const char *yaml, const char *want)
{
    struct hs_monitor_config mc;
    struct hs_drift_config dc;
    hs_monitor_config_default(&mc);
    hs_drift_config_default(&dc);
    hs_err err = {0};
    int rc = hs_monitor_config_parse(&mc, &dc, yaml, strlen(yaml), "cfg.yaml", &err);
    hs_drift_config_free(&dc);
    if (rc == HS_OK)
        fail_msg("accepted: %s", yaml);
    if (!strstr(err.msg, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err.msg, want);
}

static void config_errors_name_file_line_and_key(void **state)
{
    (void)state;
    expect_config_error("monitor:\n  thresholds:\n    latency_p95_ms: fast\n",
                        "cfg.yaml:3: monitor.thresholds.latency_p95_ms: expected a number");
    expect_config_error("monitor:\n  window: 10\n  windw: 5\n", "cfg.yaml:3: monitor.windw: unknown key");
    expect_config_error("monitor:\n  thresholds:\n    safety_rate: 1.5\n",
                        "cfg.yaml:3: monitor.thresholds.safety_rate: expected a number in 0..1");
    expect_config_error("monitor:\n  window: 0\n", "cfg.yaml:2: monitor.window: expected a whole number");
    expect_config_error("drift:\n  data:\n    every: weekly\n", "cfg.yaml:3: drift.data.every: expected a duration");
    expect_config_error("drift:\n  data:\n    max_samples: 100000\n", "cfg.yaml:3: drift.data.max_samples");
    expect_config_error("monitor: [1, 2]\n", "cfg.yaml:1: monitor: expected a mapping");
    expect_config_error("monitor:\n  window: [1\n", "cfg.yaml:");
    expect_config_error("monitor:\n  ? window\n  : 5\n", "explicit mapping keys");
    /* other sections are the server's business */
    struct hs_monitor_config mc;
    hs_monitor_config_default(&mc);
    hs_err err = {0};
    const char *other = "agents:\n  - name: x\n# only a comment\n";
    assert_int_equal(hs_monitor_config_parse(&mc, NULL, other, strlen(other), "c", &err), HS_OK);
    assert_int_equal(hs_monitor_config_parse(&mc, NULL, "", 0, "c", &err), HS_OK);
    assert_int_equal(hs_monitor_config_parse(&mc, NULL, "# nothing\n", 10, "c", &err), HS_OK);
    int64_t ms;
    assert_int_equal(hs_drift_parse_every("7d", &ms), HS_OK);
    assert_int_equal(ms, 7LL * 86400000);
    assert_int_equal(hs_drift_parse_every("0", &ms), HS_OK);
    assert_int_equal(ms, 0);
    assert_int_equal(hs_drift_parse_every("5", &ms), HS_EINVAL);
    assert_int_equal(hs_drift_parse_every("d", &ms), HS_EINVAL);
}

static void create_rejects_bad_params(void **state)
{
    (void)state;
    struct hs_monitor_params p;
    hs_monitor_params_default(&p);
    p.window = 0;
    hs_monitor *m = NULL;
    hs_err err = {0};
    assert_int_equal(hs_monitor_create(&p, &m, &err), HS_EINVAL);
    assert_null(m);
    assert_non_null(strstr(err.msg, "window"));
    assert_int_equal(hs_monitor_create(NULL, &m, &err), HS_OK);
    hs_monitor_free(m);
    hs_monitor_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quantiles_of_five_values_by_hand),
        cmocka_unit_test(ring_keeps_the_last_n_requests),
        cmocka_unit_test(hour_window_expires_by_the_clock),
        cmocka_unit_test(busy_minutes_give_weighted_estimates),
        cmocka_unit_test(concurrent_observers_lose_nothing),
        cmocka_unit_test(rules_wait_for_min_samples_then_fire),
        cmocka_unit_test(rules_at_their_limits),
        cmocka_unit_test(baseline_json_round_trip),
        cmocka_unit_test(baseline_from_the_first_requests_after_deploy),
        cmocka_unit_test(baseline_stored_and_read_back),
        cmocka_unit_test(config_reads_monitor_and_drift_sections),
        cmocka_unit_test(config_switches_the_monitor_off),
        cmocka_unit_test(config_errors_name_file_line_and_key),
        cmocka_unit_test(create_rejects_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
