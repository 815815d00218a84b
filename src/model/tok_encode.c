/* Encoding: split off special tokens, then run the vocabulary's tokenizer on
 * the text between them.
 *
 * The split is llama.cpp's tokenizer_st_partition: special tokens (control,
 * user-defined and unknown ones; without parse_special only the
 * user-defined ones) are taken longest first, and each one in turn cuts every
 * remaining text fragment at all its non-overlapping occurrences, left to
 * right. So a longer token wins over a shorter one wherever they overlap,
 * whatever their positions. Tokens flagged LSTRIP/RSTRIP also swallow the
 * ASCII whitespace next to them. Cost: O(number of specials x text length)
 * memmem scans, skipped for tokens whose first byte is not in the text. */
#include "model/tok_impl.h"

#include "base/mem.h"

#include <string.h>

struct frag {
    int32_t tok; /* >= 0: a special token; -1: text[off, off+len) */
    size_t off, len;
};

struct frags {
    struct frag *v;
    size_t n, cap;
};

static int push_frag(struct frags *f, int32_t tok, size_t off, size_t len)
{
    if (tok < 0 && len == 0)
        return HS_OK;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct frag *v = hs_realloc_array(f->v, cap, sizeof *v);
        if (!v)
            return HS_ENOMEM;
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = (struct frag){tok, off, len};
    return HS_OK;
}

static bool is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Cuts text fragment f at every occurrence of special token id, into out. */
static int cut(const hs_tok *t, const char *text, const struct frag *f, int32_t id, struct frags *out)
{
    const char *ts = tok_str(t, id);
    size_t tl = t->tok[id].len;
    uint8_t flags = t->tok[id].flags;
    size_t pos = f->off, end = f->off + f->len;
    int rc = HS_OK;
    while (!rc && end - pos >= tl) {
        const char *m = memmem(text + pos, end - pos, ts, tl);
        if (!m)
            break;
        size_t at = (size_t)(m - text);
        size_t left = at - pos;
        if (flags & TOK_F_LSTRIP)
            while (left > 0 && is_space(text[pos + left - 1]))
                left--;
        rc = push_frag(out, -1, pos, left);
        if (!rc)
            rc = push_frag(out, id, 0, 0);
        pos = at + tl;
        if (flags & TOK_F_RSTRIP)
            while (pos < end && is_space(text[pos]))
                pos++;
    }
    if (!rc)
        rc = push_frag(out, -1, pos, end - pos);
    return rc;
}

static int partition(const hs_tok *t, const char *text, size_t len, bool parse_special, struct frags *a)
{
    struct frags b = {0};
    int rc = push_frag(a, -1, 0, len);
    bool present[256] = {false};
    for (size_t i = 0; i < len; i++)
        present[(unsigned char)text[i]] = true;
    for (size_t k = 0; k < t->n_special && !rc; k++) {
        int32_t id = t->special[k];
        int type = t->tok[id].type;
        if (!parse_special && (type == HS_TOK_CONTROL || type == HS_TOK_UNKNOWN))
            continue;
        if (!present[(unsigned char)tok_str(t, id)[0]] || t->tok[id].len > len)
            continue;
        /* most tokens occur nowhere: look before copying the fragment list */
        const char *ts = tok_str(t, id);
        size_t tl = t->tok[id].len, first = a->n;
        for (size_t i = 0; i < a->n && first == a->n; i++)
            if (a->v[i].tok < 0 && a->v[i].len >= tl && memmem(text + a->v[i].off, a->v[i].len, ts, tl))
                first = i;
        if (first == a->n)
            continue;
        b.n = 0;
        for (size_t i = 0; i < a->n && !rc; i++) {
            if (a->v[i].tok >= 0 || i < first)
                rc = push_frag(&b, a->v[i].tok, a->v[i].off, a->v[i].len);
            else
                rc = cut(t, text, &a->v[i], id, &b);
        }
        struct frags tmp = *a;
        *a = b;
        b = tmp;
    }
    hs_free(b.v);
    return rc;
}

int hs_tok_encode(const hs_tok *t, const char *text, size_t len, bool add_special, bool parse_special,
                  int32_t **ids, size_t *n, hs_err *err)
{
    *ids = NULL;
    *n = 0;
    if (!t || (!text && len))
        return hs_err_set(err, HS_EINVAL, "tokenize: no tokenizer or no text");
    struct frags f = {0};
    struct tok_ids out = {0};
    int rc = partition(t, text, len, parse_special, &f);
    bool bos = add_special && t->add_bos && t->bos >= 0;
    bool eos = add_special && t->add_eos && t->eos >= 0;
    if (!rc && bos)
        rc = tok_ids_push(&out, t->bos);
    /* SPM: a text fragment at the start or right after a special token gets
     * the dummy-prefix space (llama.cpp's is_prev_special). */
    bool prev_special = true;
    for (size_t i = 0; i < f.n && !rc; i++) {
        const struct frag *g = &f.v[i];
        if (g->tok >= 0) {
            rc = tok_ids_push(&out, g->tok);
            prev_special = true;
        } else if (t->kind == TOK_SPM) {
            rc = tok_spm_encode(t, text + g->off, g->len, t->add_space_prefix && prev_special, &out);
            prev_special = false;
        } else if (t->kind == TOK_BPE) {
            rc = tok_bpe_encode(t, text + g->off, g->len, &out);
        } else {
            rc = tok_wpm_encode(t, text + g->off, g->len, &out);
        }
    }
    if (!rc && eos)
        rc = tok_ids_push(&out, t->eos);
    if (!rc && add_special && t->add_sep && t->sep >= 0)
        rc = tok_ids_push(&out, t->sep);
    if (!rc && !out.v && !(out.v = hs_malloc(sizeof *out.v)))
        rc = HS_ENOMEM;
    hs_free(f.v);
    if (rc) {
        hs_free(out.v);
        if (rc == HS_ERANGE)
            return hs_err_set(err, rc, "tokenize: text of %zu bytes is too long", len);
        return hs_err_set(err, rc, "tokenize: out of memory");
    }
    *ids = out.v;
    *n = out.n;
    return HS_OK;
}
