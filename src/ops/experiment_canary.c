/* The canary's clock: one pure step function, so that the server's timer
 * and the tests' fake clock drive it the same way. */
#include "ops/experiment.h"

bool hs_exp_canary_next(const struct hs_experiment *e, const struct hs_exp_state *cur, int64_t now_ms,
                        bool healthy, struct hs_exp_state *next)
{
    struct hs_exp_state s = *cur;
    *next = s;
    /* a rolled-back, promoted or stopped canary stays where it is; an
       unhealthy B waits (the rollback rules decide whether it goes back) */
    if (e->mode != HS_EXP_CANARY || s.status != HS_EXP_ACTIVE || !healthy)
        return false;
    int i = s.step + 1;
    if (s.step < 0 || i >= e->n_steps)
        return false;
    const struct hs_exp_step *st = &e->steps[i];
    bool due =
        st->at_ms >= 0 ? now_ms >= st->at_ms : (st->after_ms >= 0 && now_ms - s.step_ms >= st->after_ms);
    if (!due)
        return false;
    s.step = i;
    s.step_ms = now_ms;
    s.weight_b = st->weight;
    s.updated_ms = now_ms;
    *next = s;
    return true;
}
