/* The prefix cache's one decision: which free slot a new prompt goes to, and
 * where the part of it that is already computed comes from.
 *
 * Every slot remembers the tokens its cache holds, whether a job runs in it
 * or not. The prompt goes to the free slot that shares the longest prefix
 * with it, so an agent's system prompt (or a chat's earlier turns) is
 * computed once and then found where the last request left it. When another
 * slot, free or busy, shares a longer prefix, that prefix is copied over
 * (a memory copy of its cache rows, far cheaper than recomputing). Ties go
 * to the slot freed longest ago, so that the caches used most recently
 * survive. The last prompt token is always recomputed: its logits give the
 * first answer token. */
#include "engine/sched_impl.h"

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb)
{
    const int n = na < nb ? na : nb;
    int i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

void hs_sched_pick_slot(const struct hs_slot *slots, int n_slots, const int32_t *prompt, int n_prompt,
                        bool prefix_cache, struct hs_slot_pick *out)
{
    int best_free = -1, free_len = -1, best_any = -1, any_len = 0;
    for (int i = 0; i < n_slots; i++) {
        const int len =
            prefix_cache ? common_prefix(slots[i].tokens, slots[i].n_tokens, prompt, n_prompt) : 0;
        if (!slots[i].job &&
            (len > free_len || (len == free_len && slots[i].last_used < slots[best_free].last_used))) {
            best_free = i;
            free_len = len;
        }
        if (len > any_len) {
            best_any = i;
            any_len = len;
        }
    }
    /* At least one position is left to compute. */
    const int cap = n_prompt - 1;
    free_len = free_len < cap ? free_len : cap;
    any_len = any_len < cap ? any_len : cap;
    out->slot = best_free;
    if (best_any >= 0 && any_len > free_len) {
        out->src = best_any;
        out->n_reuse = any_len;
    } else {
        out->src = best_free;
        out->n_reuse = free_len > 0 ? free_len : 0;
    }
}
