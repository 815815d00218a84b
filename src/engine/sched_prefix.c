/* The prefix cache's one decision: which free slot a new prompt goes to, and
 * where the part of it that is already computed comes from.
 *
 * Every slot remembers the tokens its cache holds, whether a job runs in it
 * or not, so an agent's system prompt (or a chat's earlier turns) is
 * computed once and then found where the last request left it. The longest
 * prefix of the prompt that any slot holds, free or busy, is reused: in
 * place when the prompt goes to that slot, else copied over (a memory copy
 * of its cache rows, far cheaper than recomputing).
 *
 * The slot the prompt goes to is the free one whose overwriting loses the
 * fewest cached positions that could still serve another prompt (those past
 * the prefix it shares with this one); among equals the one sharing the
 * longest prefix, then the one freed longest ago. So an empty slot is taken
 * before one holding another conversation, and a repeated prompt goes back
 * to its own slot. (Taking the free slot with the longest prefix instead
 * would overwrite, say, chat A's slot for a new chat with the same system
 * prompt while an empty slot waits, and A's next turn would find only the
 * system prompt.) The last prompt token is always recomputed: its logits
 * give the first answer token.
 *
 * Where prompt and generated tokens take different kernels (AMX for
 * prompts: hs_ctx_kinds_differ), a generated token's cache entry is not the
 * one a prompt would compute, so only the part of a slot computed as prompt
 * is reused (n_reusable): a chat's earlier answer is recomputed, and the
 * answer is the same with the cache as without.
 *
 * A cache entry depends on the adapter set it was computed under, so each
 * slot remembers that set's key ((uid, scale) pairs, in order: the order
 * the deltas add up in), and a prompt counts only the slots whose key is
 * its own: two requests to one agent share its system prompt, while the
 * same prompt under another adapter (or none) is computed afresh. A slot
 * holding another set's tokens is, for the choice of a destination, all
 * loss, like any other slot that shares nothing with the prompt. */
#include "engine/sched_impl.h"

#include <string.h>

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb)
{
    const int n = na < nb ? na : nb;
    int i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

bool hs_sched_slot_key_equal(const struct hs_slot *sl, const struct hs_adapter_key *key)
{
    if (sl->n_key != key->n)
        return false;
    /* Scales compare by their bits: the same bits give the same deltas. */
    return key->n == 0 || (!memcmp(sl->key_uid, key->uid, (size_t)key->n * sizeof *key->uid) &&
                           !memcmp(sl->key_scale, key->scale, (size_t)key->n * sizeof *key->scale));
}

void hs_sched_pick_slot(const struct hs_slot *slots, int n_slots, const int32_t *prompt, int n_prompt,
                        const struct hs_adapter_key *key, bool prefix_cache, struct hs_slot_pick *out)
{
    int src = -1, src_len = 0, dst = -1, dst_len = 0, dst_loss = 0;
    for (int i = 0; i < n_slots; i++) {
        const int len = prefix_cache && hs_sched_slot_key_equal(&slots[i], key)
                            ? common_prefix(slots[i].tokens, slots[i].n_reusable, prompt, n_prompt)
                            : 0;
        if (len > src_len) {
            src = i;
            src_len = len;
        }
        if (slots[i].job)
            continue;
        /* Without the cache nothing is kept, and the oldest slot goes. */
        const int loss = prefix_cache ? slots[i].n_reusable - len : 0;
        if (dst < 0 || loss < dst_loss ||
            (loss == dst_loss &&
             (len > dst_len || (len == dst_len && slots[i].last_used < slots[dst].last_used)))) {
            dst = i;
            dst_len = len;
            dst_loss = loss;
        }
    }
    /* At least one position is left to compute. */
    const int cap = n_prompt - 1;
    src_len = src_len < cap ? src_len : cap;
    dst_len = dst_len < cap ? dst_len : cap;
    out->slot = dst;
    if (src >= 0 && src_len > dst_len) {
        out->src = src;
        out->n_reuse = src_len;
    } else {
        out->src = dst;
        out->n_reuse = dst_len;
    }
}
