/* hs_jmatch: one sequence's automaton state, the mask before each draw and
 * the advance after it.
 *
 * The mask is a depth-first walk of the vocabulary trie carrying the
 * automaton's state: a child whose byte the automaton refuses is skipped with
 * its whole subtree. Inside a string, a subtree whose every suffix is plain
 * text (json_vocab.c's plain flag) and short enough for the room left is
 * accepted without walking it, which is where most of a large vocabulary
 * would otherwise be visited.
 *
 * Budget: a token is allowed only if the shortest completion after it fits
 * in the tokens left after it (one byte per token, an upper bound when the
 * vocabulary has single-byte tokens, as byte-fallback SentencePiece and
 * byte-level BPE do). Then some token always shortens the shortest completion
 * by one, so a document that fits at the first draw is whole by the last.
 * When nothing fits (no single-byte tokens, or a budget below the shortest
 * document) the mask falls back to validity alone. */
#include "model/json_impl.h"

#include "base/mem.h"

#include <math.h>
#include <string.h>

struct hs_jmatch {
    hs_jschema *s;
    const hs_jvocab *v;
    struct hs_jstate cur;
    struct hs_jstate *lv; /* [max_len + 1] states along the walk's path */
    uint8_t *allowed;     /* [n_vocab] */
    int limit;            /* the walk's bound on the distance after a token; < 0 none */
};

int hs_jmatch_create(const hs_jschema *s, const hs_jvocab *v, hs_jmatch **out, hs_err *err)
{
    *out = NULL;
    hs_jmatch *m = hs_calloc(1, sizeof *m);
    if (!m)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    m->lv = hs_calloc((size_t)v->max_len + 1, sizeof *m->lv);
    m->allowed = hs_calloc((size_t)v->n_vocab + 1, 1);
    if (!m->lv || !m->allowed) {
        hs_free(m->lv);
        hs_free(m->allowed);
        hs_free(m);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    /* The schema's count is atomic, so taking a reference through a const
     * pointer changes nothing else. */
    m->s = hs_jschema_ref((hs_jschema *)s);
    m->v = v;
    hs_jauto_init(s, &m->cur);
    *out = m;
    return HS_OK;
}

void hs_jmatch_free(hs_jmatch *m)
{
    if (!m)
        return;
    hs_jschema_unref(m->s);
    hs_free(m->lv);
    hs_free(m->allowed);
    hs_free(m);
}

static void allow_range(hs_jmatch *m, uint32_t lo, uint32_t hi)
{
    for (uint32_t k = lo; k < hi; k++)
        m->allowed[m->v->toks[k]] = 1;
}

/* Children of trie node p, with m->lv[depth] the state after p's bytes. */
static void walk(hs_jmatch *m, uint32_t p, int depth)
{
    const hs_jvocab *v = m->v;
    const struct hs_jstate *st = &m->lv[depth];
    const int room = hs_jauto_string_room(st);
    /* Plain text inside a string leaves the distance unchanged or smaller. */
    const bool bulk = room > 0 && (m->limit < 0 || hs_jauto_distance(m->s, st) <= m->limit);
    for (uint32_t c = p + 1; c < v->end[p]; c = v->end[c]) {
        if (bulk && v->plain[c] && v->sub_max[c] <= room) {
            allow_range(m, v->tok_lo[c], v->tok_lo[v->end[c]]);
            continue;
        }
        struct hs_jstate *next = &m->lv[depth + 1];
        hs_jauto_copy(next, st);
        if (!hs_jauto_step(m->s, next, v->byte[c]))
            continue;
        if (v->tok_lo[c] < v->tok_lo[c + 1] && (m->limit < 0 || hs_jauto_distance(m->s, next) <= m->limit))
            allow_range(m, v->tok_lo[c], v->tok_lo[c + 1]);
        if (v->end[c] > c + 1)
            walk(m, c, depth + 1);
    }
}

static int fill(hs_jmatch *m, int limit)
{
    memset(m->allowed, 0, (size_t)m->v->n_vocab);
    m->limit = limit;
    hs_jauto_copy(&m->lv[0], &m->cur);
    walk(m, 0, 0);
    if (hs_jauto_complete(m->s, &m->cur))
        for (int i = 0; i < m->v->n_eog; i++)
            m->allowed[m->v->eog[i]] = 1;
    int n = 0;
    for (int t = 0; t < m->v->n_vocab; t++)
        n += m->allowed[t];
    return n;
}

int hs_jmatch_mask(hs_jmatch *m, float *logits, int budget)
{
    int n = fill(m, budget > 0 ? budget - 1 : -1);
    if (n == 0 && budget > 0)
        n = fill(m, -1);
    for (int t = 0; t < m->v->n_vocab; t++)
        if (!m->allowed[t])
            logits[t] = -INFINITY;
    return n;
}

static bool is_eog(const hs_jvocab *v, int32_t tok)
{
    for (int i = 0; i < v->n_eog; i++)
        if (v->eog[i] == tok)
            return true;
    return false;
}

int hs_jmatch_accept(hs_jmatch *m, int32_t tok, hs_err *err)
{
    const hs_jvocab *v = m->v;
    if (tok < 0 || tok >= v->n_vocab)
        return hs_err_set(err, HS_EINVAL, "structured output: token %d is outside the vocabulary", tok);
    if (is_eog(v, tok)) {
        if (hs_jauto_complete(m->s, &m->cur))
            return HS_OK;
        return hs_err_set(err, HS_EINVAL, "structured output: end of generation before the JSON is whole");
    }
    const uint32_t lo = v->tok_off[tok], hi = v->tok_off[tok + 1];
    if (lo == hi)
        return hs_err_set(err, HS_EINVAL, "structured output: token %d has no text", tok);
    struct hs_jstate *next = &m->lv[0];
    hs_jauto_copy(next, &m->cur);
    for (uint32_t k = lo; k < hi; k++)
        if (!hs_jauto_step(m->s, next, v->blob[k]))
            return hs_err_set(err, HS_EINVAL,
                              "structured output: token %d cannot continue the JSON (byte %u of it)", tok,
                              k - lo);
    hs_jauto_copy(&m->cur, next);
    return HS_OK;
}

bool hs_jmatch_complete(const hs_jmatch *m)
{
    return hs_jauto_complete(m->s, &m->cur);
}
