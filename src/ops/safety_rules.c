/* unsafe_recommendation and overconfident: lists of phrases, regex patterns
 * and certainty words from the config (see safety.h, docs/ops.md).
 *
 * Phrases and words are literal: put in the normalised form, matched
 * caseless as whole words, a space in them matching any run of white space.
 * All phrases are one alternation (one pass over the answer whatever their
 * number); each alternative ends in (*MARK:i) so a match names its phrase.
 * Patterns are PCRE2 regexes (UTF, UCP, caseless) run on the answer as
 * written, one pass each. */
#include "ops/safety_impl.h"

#include "base/mem.h"

#include <stdio.h>
#include <string.h>

int hs_sfy_rules_compile(hs_safety *s, hs_err *err)
{
    int rc = hs_sfy_compile_terms(&s->re_phrases, &s->phrases, "unsafe_recommendation.phrases", err);
    /* "never ignore the warning": a negation, then at most two words */
    if (rc == HS_OK)
        rc = hs_sfy_compile_terms_ex(&s->re_negated, &s->negations, "(?:\\W+\\w+){0,2}\\W*$",
                                     "unsafe_recommendation.negations", err);
    if (rc == HS_OK)
        rc = hs_sfy_compile_terms(&s->re_words, &s->words, "overconfident.words", err);
    if (rc != HS_OK || s->patterns.n == 0)
        return rc;
    s->re_patterns = hs_calloc((size_t)s->patterns.n, sizeof(*s->re_patterns));
    if (!s->re_patterns)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    for (int i = 0; i < s->patterns.n; i++) {
        char what[256];
        snprintf(what, sizeof(what), "%.160s:%d: unsafe_recommendation.patterns[%d]", s->name,
                 s->patterns.lines[i], i);
        const char *p = s->patterns.items[i];
        rc = hs_sfy_compile(&s->re_patterns[i], p, strlen(p), false, what, err);
        if (rc != HS_OK)
            return rc;
    }
    return HS_OK;
}

/* {kind: rule, "text": the sentence around t[a, b)}; norm: t is x's
 * normalised text (quote the answer as written), else its original. */
static int add_hit(json_t **found, const char *kind, const char *rule, const struct hs_sfy_text *x, bool norm,
                   size_t a, size_t b)
{
    if (!*found && !(*found = json_array()))
        return HS_ENOMEM;
    if (json_array_size(*found) >= HS_SFY_MAX_FOUND)
        return HS_OK;
    const char *t = norm ? x->norm : x->orig;
    size_t len = norm ? x->nlen : x->olen;
    size_t sa, sb;
    hs_sfy_sentence(t, len, a, &sa, &sb);
    if (sb < b) /* a match across sentences: show all of it */
        sb = b;
    json_t *o = json_object();
    json_t *r = json_string(rule);
    json_t *q = norm ? hs_sfy_excerpt(x, sa, sb) : hs_sfy_quote(t, sa, sb);
    if (!o || !r || !q) {
        json_decref(o);
        json_decref(r);
        json_decref(q);
        return HS_ENOMEM;
    }
    if (json_object_set_new(o, kind, r) || json_object_set_new(o, "text", q) ||
        json_array_append_new(*found, o))
        return HS_ENOMEM; /* the set and append calls took their references */
    return HS_OK;
}

/* Whether the phrase at norm[a..] follows a negation in its sentence. The
 * match data is reused: the caller has read what it needs from it. */
static bool negated(const hs_safety *s, const struct hs_sfy_text *x, size_t a, pcre2_match_data *md)
{
    if (!s->re_negated)
        return false;
    size_t sa, sb;
    hs_sfy_sentence(x->norm, x->nlen, a, &sa, &sb);
    if (a - sa > 120) { /* a negation is close; no need to look far */
        sa = a - 120;
        while (sa < a && ((unsigned char)x->norm[sa] & 0xC0) == 0x80)
            sa++;
    }
    return pcre2_match(s->re_negated, (PCRE2_SPTR)x->norm, a, sa, PCRE2_NO_UTF_CHECK, md, s->mctx) >= 0;
}

int hs_sfy_check_unsafe(const hs_safety *s, const struct hs_sfy_text *x, pcre2_match_data *md, json_t **found)
{
    *found = NULL;
    size_t at = 0;
    int rc = 1;
    while (s->re_phrases && (rc = hs_sfy_next(s, s->re_phrases, x->norm, x->nlen, &at, md)) == HS_OK) {
        int i = hs_sfy_mark(md);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if (i < 0 || i >= s->phrases.n || negated(s, x, a, md))
            continue;
        if (add_hit(found, "rule", s->phrases.items[i], x, true, a, b))
            return HS_ENOMEM;
    }
    if (s->re_phrases && rc < 0)
        return rc;
    for (int p = 0; p < s->patterns.n; p++) {
        at = 0;
        /* one hit per pattern is enough to tell what fired */
        rc = hs_sfy_next(s, s->re_patterns[p], x->orig, x->olen, &at, md);
        if (rc < 0)
            return rc;
        if (rc == HS_OK) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (add_hit(found, "pattern", s->patterns.items[p], x, false, ov[0], ov[1]))
                return HS_ENOMEM;
        }
    }
    return HS_OK;
}

int hs_sfy_check_words(const hs_safety *s, const struct hs_sfy_text *x, pcre2_match_data *md, json_t **found)
{
    *found = NULL;
    if (!s->re_words)
        return HS_OK;
    size_t at = 0;
    int rc = 1;
    /* each configured word once, in the order they appear */
    while ((rc = hs_sfy_next(s, s->re_words, x->norm, x->nlen, &at, md)) == HS_OK) {
        int i = hs_sfy_mark(md);
        if (i < 0 || i >= s->words.n)
            continue;
        if (!*found && !(*found = json_array()))
            return HS_ENOMEM;
        bool seen = false;
        size_t k;
        json_t *w;
        json_array_foreach(*found, k, w) {
            if (strcmp(json_string_value(w), s->words.items[i]) == 0)
                seen = true;
        }
        if (!seen && json_array_size(*found) < HS_SFY_MAX_FOUND &&
            json_array_append_new(*found, json_string(s->words.items[i])))
            return HS_ENOMEM;
    }
    return rc < 0 ? rc : HS_OK;
}
