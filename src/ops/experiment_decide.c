/* `decide`: the guide's promotion criteria, each with its value, threshold
 * and result, on the per-variant aggregates of an experiment. The
 * significance test is Welch's t-test (unequal variances) on the
 * per-request expert accuracy scores, two-sided, as the drift checks use it
 * (hs_drift_welch, GSL's t distribution): the accuracy criterion gives the
 * direction, the test whether the difference is more than noise. */
#include "ops/drift.h"
#include "ops/experiment.h"

#include "base/mem.h"

#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void hs_exp_variant_stats_free(struct hs_exp_variant_stats *v)
{
    if (!v)
        return;
    hs_free(v->accuracy);
    v->accuracy = NULL;
    v->n_scored = 0;
}

void hs_exp_decide_params_default(struct hs_exp_decide_params *p)
{
    p->accuracy_points = 2;
    p->p95_margin_ms = 50;
    p->min_rating = 4.0;
    p->min_requests = 200;
    p->min_scored = 2;
    p->alpha = 0.05;
}

const char *hs_exp_verdict_name(enum hs_exp_verdict v)
{
    switch (v) {
    case HS_EXP_PROMOTE:
        return "PROMOTE";
    case HS_EXP_KEEP:
        return "KEEP";
    case HS_EXP_NOT_ENOUGH_DATA:
        return "NOT ENOUGH DATA";
    }
    return "?";
}

const char *hs_exp_check_name(enum hs_exp_check c)
{
    return c == HS_EXP_PASS ? "pass" : c == HS_EXP_FAIL ? "fail" : "n/a";
}

/* A 1..5 score on the 0..100 accuracy scale. */
static double points(double score)
{
    return (score - 1) / 4 * 100;
}

static void set(struct hs_exp_criterion *c, const char *name, double value, double threshold, bool known,
                bool pass)
{
    c->name = name;
    c->value = known ? value : NAN;
    c->threshold = threshold;
    c->result = !known ? HS_EXP_UNKNOWN : pass ? HS_EXP_PASS : HS_EXP_FAIL;
}

void hs_exp_decide(const struct hs_exp_variant_stats *a, const struct hs_exp_variant_stats *b,
                   const struct hs_exp_decide_params *p, struct hs_exp_decision *out)
{
    struct hs_exp_decide_params defaults;
    if (!p) {
        hs_exp_decide_params_default(&defaults);
        p = &defaults;
    }
    memset(out, 0, sizeof *out);
    out->p_value = out->t = out->df = NAN;
    struct hs_exp_criterion *c = out->c;
    bool scored =
        a->n_scored >= p->min_scored && b->n_scored >= p->min_scored && a->n_scored > 0 && b->n_scored > 0;

    /* accuracy: expert scores, +N points on the 0..100 scale */
    double acc_a = points(a->accuracy_mean), acc_b = points(b->accuracy_mean), d = acc_b - acc_a;
    set(&c[0], "accuracy", d, p->accuracy_points, scored && isfinite(d), d >= p->accuracy_points);
    if (c[0].result == HS_EXP_UNKNOWN)
        snprintf(c[0].detail, sizeof c[0].detail,
                 "needs expert scores on both variants (%lld A, %lld B rated)", (long long)a->n_scored,
                 (long long)b->n_scored);
    else
        snprintf(c[0].detail, sizeof c[0].detail, "B %.1f vs A %.1f (%+.1f points, need >= %+.1f)", acc_b,
                 acc_a, d, p->accuracy_points);

    /* safety: the flag rate must not grow, nor the experts' safety score fall */
    double sd = 100 * (b->safety_rate - a->safety_rate);
    bool sknown = a->requests > 0 && b->requests > 0 && isfinite(sd);
    bool expert_safety = scored && isfinite(a->safety_score_mean) && isfinite(b->safety_score_mean);
    bool spass = sd <= 0 && (!expert_safety || b->safety_score_mean >= a->safety_score_mean);
    set(&c[1], "safety", sd, 0, sknown, spass);
    if (!sknown)
        snprintf(c[1].detail, sizeof c[1].detail, "no requests on a variant");
    else if (expert_safety)
        snprintf(c[1].detail, sizeof c[1].detail,
                 "flagged B %.1f%% vs A %.1f%%; expert safety B %.2f vs A %.2f", 100 * b->safety_rate,
                 100 * a->safety_rate, b->safety_score_mean, a->safety_score_mean);
    else
        snprintf(c[1].detail, sizeof c[1].detail, "flagged B %.1f%% vs A %.1f%% (%+.1f points, need <= 0)",
                 100 * b->safety_rate, 100 * a->safety_rate, sd);

    /* p95 latency within +N ms */
    double ld = b->p95_ms - a->p95_ms;
    set(&c[2], "p95_latency", ld, p->p95_margin_ms, isfinite(ld), ld <= p->p95_margin_ms);
    if (isfinite(ld))
        snprintf(c[2].detail, sizeof c[2].detail, "B %.0f ms vs A %.0f ms (%+.0f ms, need <= %+.0f)",
                 b->p95_ms, a->p95_ms, ld, p->p95_margin_ms);
    else
        snprintf(c[2].detail, sizeof c[2].detail, "no latencies on a variant");

    /* error rate no worse */
    double ed = 100 * (b->error_rate - a->error_rate);
    set(&c[3], "error_rate", ed, 0, isfinite(ed), ed <= 0);
    if (isfinite(ed))
        snprintf(c[3].detail, sizeof c[3].detail, "B %.2f%% vs A %.2f%% (%+.2f points, need <= 0)",
                 100 * b->error_rate, 100 * a->error_rate, ed);
    else
        snprintf(c[3].detail, sizeof c[3].detail, "no requests on a variant");

    /* expert rating of B */
    bool rknown = b->n_scored >= p->min_scored && b->n_scored > 0 && isfinite(b->accuracy_mean);
    set(&c[4], "expert_rating", b->accuracy_mean, p->min_rating, rknown, b->accuracy_mean >= p->min_rating);
    if (rknown)
        snprintf(c[4].detail, sizeof c[4].detail, "B %.2f / 5 over %lld rated answers (need >= %.1f)",
                 b->accuracy_mean, (long long)b->n_scored, p->min_rating);
    else
        snprintf(c[4].detail, sizeof c[4].detail, "no expert ratings of B");

    /* sample size */
    int64_t n = a->requests < b->requests ? a->requests : b->requests;
    set(&c[5], "sample_size", (double)n, (double)p->min_requests, true, n >= p->min_requests);
    snprintf(c[5].detail, sizeof c[5].detail, "A %lld, B %lld requests (need >= %lld each)",
             (long long)a->requests, (long long)b->requests, (long long)p->min_requests);

    /* significance: Welch on the per-request accuracy scores */
    bool tknown = scored && a->n_scored >= 2 && b->n_scored >= 2 && a->accuracy && b->accuracy;
    if (tknown) {
        size_t na = (size_t)a->n_scored, nb = (size_t)b->n_scored;
        double ma = gsl_stats_mean(a->accuracy, 1, na), mb = gsl_stats_mean(b->accuracy, 1, nb);
        double va = gsl_stats_variance_m(a->accuracy, 1, na, ma),
               vb = gsl_stats_variance_m(b->accuracy, 1, nb, mb);
        out->p_value = hs_drift_welch(mb, vb, (double)nb, ma, va, (double)na, &out->t, &out->df);
    }
    set(&c[6], "significance", out->p_value, p->alpha, tknown, out->p_value < p->alpha);
    if (tknown)
        snprintf(c[6].detail, sizeof c[6].detail, "Welch t = %.3f, df = %.1f, p = %.4g (need < %g)", out->t,
                 out->df, out->p_value, p->alpha);
    else
        snprintf(c[6].detail, sizeof c[6].detail, "needs >= 2 rated answers per variant");

    bool all = true, unknown = false;
    for (int i = 0; i < HS_EXP_CRITERIA; i++) {
        all = all && c[i].result == HS_EXP_PASS;
        unknown = unknown || c[i].result == HS_EXP_UNKNOWN;
    }
    if (c[5].result != HS_EXP_PASS || unknown)
        out->verdict = HS_EXP_NOT_ENOUGH_DATA;
    else
        out->verdict = all ? HS_EXP_PROMOTE : HS_EXP_KEEP;
}
