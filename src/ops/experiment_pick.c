/* Which variant answers a request. A sticky key (the user, or the API key)
 * is hashed with the experiment's name into a point u in [0, 1), and B
 * answers when u < B's weight. Because each key keeps its point, a user
 * sees one variant, and raising the weight moves only the users between the
 * old and the new weight, always from A to B; the name in the hash makes
 * two experiments split the same users independently. */
#include "ops/experiment.h"

#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH64_state_t on the stack */
#include <xxhash.h>

/* The top 53 bits as a double in [0, 1): exact, and never 1. */
static double unit(uint64_t h)
{
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

double hs_exp_hash_unit(const char *name, const char *key)
{
    XXH64_state_t st;
    XXH64_reset(&st, 0);
    XXH64_update(&st, name, strlen(name) + 1); /* the NUL separates name from key */
    XXH64_update(&st, key, strlen(key));
    return unit(XXH64_digest(&st));
}

enum hs_exp_variant hs_experiment_pick(const struct hs_experiment *e, const struct hs_exp_state *st,
                                       const char *sticky_key, uint64_t rnd)
{
    if (st->status == HS_EXP_PROMOTED)
        return HS_EXP_B;
    if (st->status != HS_EXP_ACTIVE || e->mode == HS_EXP_SHADOW)
        return HS_EXP_A;
    double u = sticky_key && sticky_key[0] ? hs_exp_hash_unit(e->name, sticky_key) : unit(rnd);
    return u < st->weight_b ? HS_EXP_B : HS_EXP_A;
}
