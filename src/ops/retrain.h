/* (issue 6) `hestia report retrain`: the guide's retraining criteria,
 * evaluated from the store, each with its value and verdict:
 *   concept_drift      the newest concept drift run is DRIFTED
 *   satisfaction       thumbs up / all feedback over the window < 60%
 *   safety_flag_rate   answers with a safety flag over the window > 5%
 *   data_drift         every data drift run of the last 4 weeks is DRIFTED, and they span 4 weeks
 *   model_age          time since training > 6 months (when the training date is known)
 * A criterion without data says so (UNKNOWN) rather than passing. */
#ifndef HS_OPS_RETRAIN_H
#define HS_OPS_RETRAIN_H

#include "ops/store.h"

#include <stdbool.h>
#include <stdint.h>

enum hs_verdict { HS_VERDICT_OK = 0, HS_VERDICT_RETRAIN = 1, HS_VERDICT_UNKNOWN = 2 };
const char *hs_verdict_name(enum hs_verdict v); /* "ok", "retrain", "unknown" */

struct hs_retrain_params {
    int64_t now_ms;
    int64_t trained_ms;      /* when the model was trained; 0 = unknown */
    int window_days;         /* feedback and safety over this many days; default 30 */
    double min_satisfaction; /* default 0.60 */
    double max_safety_rate;  /* default 0.05 */
    int drift_weeks;         /* data drift sustained this long; default 4 */
    int max_age_days;        /* default 183 (6 months) */
};
void hs_retrain_params_default(struct hs_retrain_params *p, int64_t now_ms);

#define HS_RETRAIN_N 5
struct hs_retrain_criterion {
    const char *name;  /* "concept_drift", ... */
    enum hs_verdict verdict;
    double value;      /* the measured value (share, days, ...); NaN when unknown */
    double limit;      /* what it is compared with */
    char text[192];    /* one line for people: the value, the limit, the data behind it */
};
struct hs_retrain_report {
    struct hs_retrain_criterion c[HS_RETRAIN_N];
    bool retrain; /* any criterion says retrain */
};

int hs_retrain_evaluate(hs_store *s, const struct hs_retrain_params *p, struct hs_retrain_report *out,
                        hs_err *err);

#endif
