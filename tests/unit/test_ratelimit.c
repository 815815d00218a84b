/* server/ratelimit: sliding windows driven by a fake clock (milliseconds
 * passed in). The expected numbers follow from the windows' definition:
 * a request counts for 60 s (minute windows, to the second) or 60 min (the
 * hour window, to the minute) after the unit it arrived in. */
#include "test_util.h"

#include "server/ratelimit.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define T0 1699999980000LL /* a whole minute, so seconds and minutes start together */
#define SEC 1000LL
#define MIN (60 * SEC)

static hs_ratelimit *make(int rpm, int rph, int tpm)
{
    struct hs_rate_limit l = {.requests_per_minute = rpm, .requests_per_hour = rph, .tokens_per_minute = tpm};
    hs_ratelimit *rl = NULL;
    assert_int_equal(hs_ratelimit_create(&l, &rl), HS_OK);
    assert_non_null(rl);
    return rl;
}

static bool admit(hs_ratelimit *rl, const char *who, int64_t t, struct hs_rl_verdict *v)
{
    return hs_ratelimit_admit(rl, who, t, v);
}

static void off_admits_everything(void **state)
{
    (void)state;
    hs_ratelimit *rl = make(0, 0, 0);
    assert_false(hs_ratelimit_enabled(rl));
    struct hs_rl_verdict v;
    for (int i = 0; i < 1000; i++)
        assert_true(admit(rl, "k", T0, &v));
    assert_int_equal(v.limit_requests, 0);
    assert_int_equal(v.limit_tokens, 0);
    assert_int_equal(hs_ratelimit_subjects(rl), 0); /* nothing remembered */
    hs_ratelimit_free(rl);
    assert_true(hs_ratelimit_admit(NULL, "k", T0, &v));
    assert_false(hs_ratelimit_enabled(NULL));
    struct hs_rate_limit bad = {.requests_per_minute = -1};
    assert_int_equal(hs_ratelimit_create(&bad, &rl), HS_EINVAL);
}

/* 10/min: the 11th request in a minute is refused until the first one's
 * second has left the window. */
static void minute_limit_and_retry_after(void **state)
{
    (void)state;
    hs_ratelimit *rl = make(10, 0, 0);
    assert_true(hs_ratelimit_enabled(rl));
    struct hs_rl_verdict v;
    for (int i = 0; i < 10; i++) {
        assert_true(admit(rl, "alice", T0 + i * 100, &v));
        assert_int_equal(v.limit_requests, 10);
        assert_int_equal(v.remaining_requests, 9 - i);
    }
    /* all ten arrived in second T0: they leave at T0 + 60 s */
    assert_false(admit(rl, "alice", T0 + 1500, &v));
    assert_false(v.allowed);
    assert_int_equal(v.retry_after_s, 59); /* 58.5 s, rounded up */
    assert_int_equal(v.remaining_requests, 0);
    assert_false(admit(rl, "alice", T0 + 59999, &v));
    assert_int_equal(v.retry_after_s, 1);
    /* another subject is not affected */
    assert_true(admit(rl, "bob", T0 + 59999, &v));
    assert_int_equal(v.remaining_requests, 9);
    /* refused requests were not counted: at T0+60s all ten slots are free */
    for (int i = 0; i < 10; i++)
        assert_true(admit(rl, "alice", T0 + 60 * SEC, &v));
    assert_false(admit(rl, "alice", T0 + 60 * SEC, &v));
    assert_int_equal(v.retry_after_s, 60);
    hs_ratelimit_free(rl);
}

/* The window slides: 5 at 0 s and 5 at 30 s; at 60 s the first five have
 * left, so five more pass, and the sixth waits for the 30 s group (30 s). */
static void window_slides(void **state)
{
    (void)state;
    hs_ratelimit *rl = make(10, 0, 0);
    struct hs_rl_verdict v;
    for (int i = 0; i < 5; i++)
        assert_true(admit(rl, "k", T0, &v));
    for (int i = 0; i < 5; i++)
        assert_true(admit(rl, "k", T0 + 30 * SEC, &v));
    assert_false(admit(rl, "k", T0 + 45 * SEC, &v));
    assert_int_equal(v.retry_after_s, 15);
    /* reset-requests: the window is empty once the newest (30 s) group leaves */
    assert_int_equal(v.reset_requests_s, 45);
    for (int i = 0; i < 5; i++)
        assert_true(admit(rl, "k", T0 + 60 * SEC, &v));
    assert_false(admit(rl, "k", T0 + 60 * SEC, &v));
    assert_int_equal(v.retry_after_s, 30);
    /* a long pause empties the window completely */
    assert_true(admit(rl, "k", T0 + 10 * MIN, &v));
    assert_int_equal(v.remaining_requests, 9);
    hs_ratelimit_free(rl);
}

/* 10/min and 100/h (the guide's numbers): the hour window binds after ten
 * busy minutes; the reported window is the one with the fewest left. */
static void hour_limit(void **state)
{
    (void)state;
    hs_ratelimit *rl = make(10, 100, 0);
    struct hs_rl_verdict v;
    assert_true(admit(rl, "k", T0, &v));
    assert_int_equal(v.limit_requests, 10); /* 9 left in the minute, 99 in the hour */
    assert_int_equal(v.remaining_requests, 9);
    for (int m = 0; m < 10; m++)
        for (int i = (m == 0); i < 10; i++)
            assert_true(admit(rl, "k", T0 + m * MIN + i * SEC, &v));
    /* 100 requests in minutes 0..9; minute 10 has room per minute, not per hour */
    assert_false(admit(rl, "k", T0 + 10 * MIN, &v));
    assert_int_equal(v.limit_requests, 100);
    assert_int_equal(v.remaining_requests, 0);
    /* minute 0's ten requests leave the hour window at T0 + 60 min */
    assert_int_equal(v.retry_after_s, 50 * 60);
    assert_false(admit(rl, "k", T0 + 60 * MIN - 1, &v));
    assert_int_equal(v.retry_after_s, 1);
    for (int i = 0; i < 10; i++)
        assert_true(admit(rl, "k", T0 + 60 * MIN + i, &v));
    assert_false(admit(rl, "k", T0 + 60 * MIN + 10, &v));
    hs_ratelimit_free(rl);
}

/* Tokens per minute: finished requests add their tokens; a subject at or
 * over the limit is refused until enough tokens slide out. */
static void tokens_per_minute(void **state)
{
    (void)state;
    hs_ratelimit *rl = make(0, 0, 1000);
    struct hs_rl_verdict v;
    assert_true(admit(rl, "k", T0, &v));
    assert_int_equal(v.limit_requests, 0);
    assert_int_equal(v.limit_tokens, 1000);
    assert_int_equal(v.remaining_tokens, 1000);
    hs_ratelimit_add_tokens(rl, "k", T0 + 1 * SEC, 600);
    assert_true(admit(rl, "k", T0 + 2 * SEC, &v));
    assert_int_equal(v.remaining_tokens, 400);
    assert_int_equal(v.reset_tokens_s, 59); /* the 600 leave at T0 + 61 s */
    hs_ratelimit_add_tokens(rl, "k", T0 + 20 * SEC, 500);
    assert_false(admit(rl, "k", T0 + 21 * SEC, &v));
    assert_int_equal(v.remaining_tokens, 0);
    /* 1100 in the window; dropping the 600 (at 61 s) gets below 1000 */
    assert_int_equal(v.retry_after_s, 40);
    assert_true(admit(rl, "k", T0 + 61 * SEC, &v));
    assert_int_equal(v.remaining_tokens, 500);
    hs_ratelimit_add_tokens(rl, "k", T0 + 61 * SEC, 0);  /* nothing */
    hs_ratelimit_add_tokens(rl, "k", T0 + 61 * SEC, -5); /* ignored */
    assert_true(admit(rl, "k", T0 + 61 * SEC, &v));
    assert_int_equal(v.remaining_tokens, 500);
    hs_ratelimit_free(rl);
}

struct hdr {
    char names[8][40];
    char values[8][40];
    int n;
};

static void collect(void *user, const char *name, const char *value)
{
    struct hdr *h = user;
    assert_true(h->n < 8);
    snprintf(h->names[h->n], 40, "%s", name);
    snprintf(h->values[h->n], 40, "%s", value);
    h->n++;
}

static void headers_use_openai_names(void **state)
{
    (void)state;
    struct hs_rl_verdict v = {.allowed = true,
                              .limit_requests = 10,
                              .remaining_requests = 3,
                              .reset_requests_s = 75,
                              .limit_tokens = 1000,
                              .remaining_tokens = 0,
                              .reset_tokens_s = 7};
    struct hdr h = {0};
    hs_ratelimit_headers(&v, collect, &h);
    assert_int_equal(h.n, 6);
    assert_string_equal(h.names[0], "x-ratelimit-limit-requests");
    assert_string_equal(h.values[0], "10");
    assert_string_equal(h.names[1], "x-ratelimit-remaining-requests");
    assert_string_equal(h.values[1], "3");
    assert_string_equal(h.names[2], "x-ratelimit-reset-requests");
    assert_string_equal(h.values[2], "1m15s");
    assert_string_equal(h.names[3], "x-ratelimit-limit-tokens");
    assert_string_equal(h.names[4], "x-ratelimit-remaining-tokens");
    assert_string_equal(h.values[4], "0");
    assert_string_equal(h.names[5], "x-ratelimit-reset-tokens");
    assert_string_equal(h.values[5], "7s");
    /* limits that are off send no headers */
    struct hs_rl_verdict off = {.allowed = true, .limit_requests = 100, .reset_requests_s = 3725};
    memset(&h, 0, sizeof(h));
    hs_ratelimit_headers(&off, collect, &h);
    assert_int_equal(h.n, 3);
    assert_string_equal(h.values[2], "1h2m5s");
}

/* Subjects idle for over an hour are forgotten; a cap bounds the rest. */
static void idle_subjects_are_forgotten(void **state)
{
    (void)state;
    hs_ratelimit *rl = make(10, 100, 1000);
    struct hs_rl_verdict v;
    char name[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof(name), "10.0.%d.%d", i / 256, i % 256);
        assert_true(admit(rl, name, T0 + i, &v));
    }
    assert_int_equal(hs_ratelimit_subjects(rl), 20000);
    /* an hour on, their windows still hold the hour's requests: kept */
    assert_true(admit(rl, "late", T0 + 60 * MIN, &v));
    assert_int_equal(hs_ratelimit_subjects(rl), 20001);
    /* past the hour window: everyone but the latest is gone */
    assert_true(admit(rl, "later", T0 + 125 * MIN, &v));
    assert_int_equal(hs_ratelimit_subjects(rl), 1);
    /* a forgotten subject starts afresh */
    assert_true(admit(rl, "10.0.0.1", T0 + 125 * MIN, &v));
    assert_int_equal(v.remaining_requests, 9);

    /* the cap: the least recently active go first, the active keep their counts */
    hs_ratelimit_set_max_subjects(rl, 100);
    for (int i = 0; i < 10; i++)
        admit(rl, "busy", T0 + 126 * MIN, &v);
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "flood-%d", i);
        admit(rl, name, T0 + 126 * MIN, &v);
        if (i % 50 == 0)
            admit(rl, "busy", T0 + 126 * MIN, &v); /* stays recent; refused, still counted as active */
    }
    assert_true(hs_ratelimit_subjects(rl) <= 100);
    assert_false(admit(rl, "busy", T0 + 126 * MIN, &v));
    hs_ratelimit_free(rl);
}

/* The clock may step back a little between threads: no crash, no credit. */
static void clock_skew_is_harmless(void **state)
{
    (void)state;
    hs_ratelimit *rl = make(3, 0, 0);
    struct hs_rl_verdict v;
    assert_true(admit(rl, "k", T0 + 5 * SEC, &v));
    assert_true(admit(rl, "k", T0 + 4 * SEC, &v)); /* counted in the newer second */
    assert_true(admit(rl, "k", T0 - 90 * SEC, &v));
    assert_false(admit(rl, "k", T0 + 5 * SEC, &v));
    assert_int_equal(v.retry_after_s, 60);
    hs_ratelimit_free(rl);
    /* times before 1970 still index the rings correctly */
    rl = make(2, 0, 0);
    assert_true(admit(rl, "k", -1500, &v));
    assert_true(admit(rl, "k", -1400, &v));
    assert_false(admit(rl, "k", -1000, &v));
    assert_int_equal(v.retry_after_s, 59);
    assert_true(admit(rl, "k", 58 * SEC, &v));
    hs_ratelimit_free(rl);
}

struct worker {
    hs_ratelimit *rl;
    int admitted;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    struct hs_rl_verdict v;
    for (int i = 0; i < 2000; i++) {
        char name[16];
        snprintf(name, sizeof(name), "s%d", i % 7);
        if (hs_ratelimit_admit(w->rl, name, T0 + i, &v))
            w->admitted++;
        hs_ratelimit_add_tokens(w->rl, name, T0 + i, 1);
    }
    return NULL;
}

/* Four threads share seven subjects: exactly the limit passes per subject. */
static void thread_safe(void **state)
{
    (void)state;
    hs_ratelimit *rl = make(50, 0, 100000);
    pthread_t th[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){rl, 0};
        pthread_create(&th[i], NULL, hammer, &w[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += w[i].admitted;
    }
    assert_int_equal(total, 7 * 50); /* all within 2 s: 50 per subject */
    assert_int_equal(hs_ratelimit_subjects(rl), 7);
    hs_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(off_admits_everything),
        cmocka_unit_test(minute_limit_and_retry_after),
        cmocka_unit_test(window_slides),
        cmocka_unit_test(hour_limit),
        cmocka_unit_test(tokens_per_minute),
        cmocka_unit_test(headers_use_openai_names),
        cmocka_unit_test(idle_subjects_are_forgotten),
        cmocka_unit_test(clock_skew_is_harmless),
        cmocka_unit_test(thread_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
