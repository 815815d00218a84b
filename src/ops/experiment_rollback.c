/* The automatic rollback rules, on the windows the server keeps per
 * variant. A rule below its minimum sample never fires: a handful of
 * requests says nothing about a rate, and a rollback is not free. */
#include "ops/experiment.h"

#include <math.h>
#include <stdio.h>

const char *hs_exp_rule_name(enum hs_exp_rule_kind k)
{
    switch (k) {
    case HS_EXP_RULE_NONE:
        return "none";
    case HS_EXP_RULE_ERROR:
        return "error_ratio";
    case HS_EXP_RULE_P95:
        return "p95_margin_ms";
    case HS_EXP_RULE_SAFETY:
        return "safety_rate";
    }
    return "?";
}

static double rate(int64_t k, int64_t n)
{
    return n > 0 ? (double)k / (double)n : NAN;
}

enum hs_exp_rule_kind hs_exp_rollback_check(const struct hs_exp_rules *r, const struct hs_exp_window *a,
                                            const struct hs_exp_window *b, char *reason, size_t cap)
{
    char dummy[8];
    if (!reason) {
        reason = dummy;
        cap = sizeof dummy;
    }
    reason[0] = 0;
    const struct hs_exp_rule *er = &r->error_ratio;
    if (er->enabled && a->requests >= er->min_samples && b->requests >= er->min_samples) {
        double ra = rate(a->errors, a->requests), rb = rate(b->errors, b->requests);
        /* with A at 0% any B error crosses the ratio: a healthy control that
           never fails makes every failure of the candidate stand out */
        if (rb > er->limit * ra) {
            snprintf(reason, cap, "B error rate %.1f%% > %g x A's %.1f%% (n=%lld)", 100 * rb, er->limit,
                     100 * ra, (long long)b->requests);
            return HS_EXP_RULE_ERROR;
        }
    }
    const struct hs_exp_rule *pr = &r->p95_margin;
    if (pr->enabled && a->n_latency >= pr->min_samples && b->n_latency >= pr->min_samples &&
        isfinite(a->p95_ms) && isfinite(b->p95_ms) && b->p95_ms > a->p95_ms + pr->limit) {
        snprintf(reason, cap, "B p95 %.0f ms > A's %.0f ms + %g ms (n=%lld)", b->p95_ms, a->p95_ms, pr->limit,
                 (long long)b->n_latency);
        return HS_EXP_RULE_P95;
    }
    const struct hs_exp_rule *sr = &r->safety_rate;
    if (sr->enabled && b->requests >= sr->min_samples) {
        double rb = rate(b->safety_flagged, b->requests);
        if (rb > sr->limit) {
            snprintf(reason, cap, "B safety-flag rate %.1f%% > %.1f%% (n=%lld)", 100 * rb, 100 * sr->limit,
                     (long long)b->requests);
            return HS_EXP_RULE_SAFETY;
        }
    }
    return HS_EXP_RULE_NONE;
}
