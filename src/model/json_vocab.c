/* The vocabulary as a byte trie for the masking walk (struct hs_jvocab in
 * json_impl.h). Sorting the tokens' bytes gives the trie's preorder directly:
 * each token adds nodes only past its common prefix with the one before, so
 * the trie is built in one pass with a stack of the current path. */
#include "model/json_impl.h"

#include "base/buf.h"
#include "base/mem.h"

#include <stdlib.h>
#include <string.h>

struct entry {
    const uint8_t *p;
    uint32_t len;
    int32_t id;
};

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    const uint32_t n = x->len < y->len ? x->len : y->len;
    const int r = memcmp(x->p, y->p, n);
    if (r)
        return r;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Length of the UTF-8 character at s[k] if it is whole and valid within
 * s[k..n) (RFC 3629 ranges), else 0. */
static int utf8_len(const uint8_t *s, size_t k, size_t n)
{
    const uint8_t b = s[k];
    int m;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF)
        m = 2;
    else if (b >= 0xE0 && b <= 0xEF)
        m = 3;
    else if (b >= 0xF0 && b <= 0xF4)
        m = 4;
    else
        return 0;
    if (b == 0xE0)
        lo = 0xA0;
    else if (b == 0xED)
        hi = 0x9F;
    else if (b == 0xF0)
        lo = 0x90;
    else if (b == 0xF4)
        hi = 0x8F;
    if (k + (size_t)m > n)
        return 0;
    if (s[k + 1] < lo || s[k + 1] > hi)
        return 0;
    for (int i = 2; i < m; i++)
        if (s[k + (size_t)i] < 0x80 || s[k + (size_t)i] > 0xBF)
            return 0;
    return m;
}

/* plain[k]: s[k..n) is whole characters of string text needing no escape. */
static void plain_suffixes(const uint8_t *s, size_t n, bool *plain)
{
    plain[n] = true;
    for (size_t k = n; k-- > 0;) {
        const uint8_t b = s[k];
        if (b < 0x80) {
            plain[k] = b >= 0x20 && b != '"' && b != '\\' && plain[k + 1];
        } else {
            const int m = utf8_len(s, k, n);
            plain[k] = m > 0 && plain[k + (size_t)m];
        }
    }
}

void hs_jvocab_free(hs_jvocab *v)
{
    if (!v)
        return;
    hs_free(v->tok_off);
    hs_free(v->blob);
    hs_free(v->eog);
    hs_free(v->byte);
    hs_free(v->end);
    hs_free(v->tok_lo);
    hs_free(v->sub_max);
    hs_free(v->plain);
    hs_free(v->toks);
    hs_free(v);
}

static int build_trie(hs_jvocab *v, struct entry *e, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += e[i].len;
    const size_t cap = total + 2;
    v->byte = hs_calloc(cap, 1);
    v->end = hs_calloc(cap, sizeof *v->end);
    v->tok_lo = hs_calloc(cap, sizeof *v->tok_lo);
    v->sub_max = hs_calloc(cap, sizeof *v->sub_max);
    v->plain = hs_malloc(cap);
    v->toks = hs_calloc((size_t)n + 1, sizeof *v->toks);
    uint32_t *path = hs_calloc((size_t)v->max_len + 1, sizeof *path);
    bool *plain = hs_calloc((size_t)v->max_len + 1, sizeof *plain);
    if (!v->byte || !v->end || !v->tok_lo || !v->sub_max || !v->plain || !v->toks || !path || !plain) {
        hs_free(path);
        hs_free(plain);
        return HS_ENOMEM;
    }
    memset(v->plain, 1, cap);
    uint32_t nodes = 1, ntok = 0, depth = 0;
    for (int i = 0; i < n; i++) {
        uint32_t lcp = 0;
        if (i > 0) {
            const uint32_t m = e[i - 1].len < e[i].len ? e[i - 1].len : e[i].len;
            while (lcp < m && e[i - 1].p[lcp] == e[i].p[lcp])
                lcp++;
        }
        while (depth > lcp)
            v->end[path[--depth]] = nodes;
        for (uint32_t k = lcp; k < e[i].len; k++) {
            v->byte[nodes] = e[i].p[k];
            v->tok_lo[nodes] = ntok;
            path[depth++] = nodes++;
        }
        v->toks[ntok++] = e[i].id;
        plain_suffixes(e[i].p, e[i].len, plain);
        for (uint32_t k = 0; k < e[i].len; k++) {
            const uint32_t c = path[k];
            if (!plain[k])
                v->plain[c] = 0;
            if (e[i].len - k > v->sub_max[c])
                v->sub_max[c] = (uint16_t)(e[i].len - k);
        }
    }
    while (depth > 0)
        v->end[path[--depth]] = nodes;
    v->end[0] = nodes;
    v->tok_lo[nodes] = ntok;
    v->n_nodes = nodes;
    hs_free(path);
    hs_free(plain);
    return HS_OK;
}

int hs_jvocab_create(const hs_tok *tok, hs_jvocab **out, hs_err *err)
{
    *out = NULL;
    const int n = hs_tok_n_vocab(tok);
    hs_jvocab *v = hs_calloc(1, sizeof *v);
    struct entry *e = NULL;
    hs_buf blob = {0}, piece = {0};
    int rc = HS_ENOMEM;
    if (!v)
        goto fail;
    v->n_vocab = n;
    v->tok_off = hs_calloc((size_t)n + 1, sizeof *v->tok_off);
    v->eog = hs_calloc((size_t)n > 0 ? (size_t)n : 1, sizeof *v->eog);
    e = hs_calloc((size_t)n > 0 ? (size_t)n : 1, sizeof *e);
    if (!v->tok_off || !v->eog || !e)
        goto fail;
    for (int id = 0; id < n; id++) {
        v->tok_off[id] = (uint32_t)blob.len;
        if (hs_tok_is_eog(tok, id)) {
            v->eog[v->n_eog++] = id;
            continue;
        }
        const enum hs_tok_type t = hs_tok_type(tok, id);
        if (t == HS_TOK_CONTROL || t == HS_TOK_UNUSED || t == HS_TOK_UNKNOWN)
            continue;
        hs_buf_reset(&piece);
        if (hs_tok_decode_token(tok, id, false, &piece) != HS_OK || piece.len == 0)
            continue;
        if (piece.len > HS_J_LEN_MAX)
            continue; /* sub_max is 16-bit; no real token is this long */
        if (hs_buf_append(&blob, piece.data, piece.len))
            goto fail;
        if ((int)piece.len > v->max_len)
            v->max_len = (int)piece.len;
    }
    v->tok_off[n] = (uint32_t)blob.len;
    v->blob = (uint8_t *)hs_buf_steal(&blob);
    if (!v->blob && (v->blob = hs_malloc(1)) == NULL)
        goto fail;
    int m = 0;
    for (int id = 0; id < n; id++) {
        const uint32_t len = v->tok_off[id + 1] - v->tok_off[id];
        if (len > 0)
            e[m++] = (struct entry){v->blob + v->tok_off[id], len, id};
    }
    qsort(e, (size_t)m, sizeof *e, entry_cmp);
    if ((rc = build_trie(v, e, m)))
        goto fail;
    hs_free(e);
    hs_buf_free(&piece);
    *out = v;
    return HS_OK;
fail:
    hs_free(e);
    hs_buf_free(&blob);
    hs_buf_free(&piece);
    hs_jvocab_free(v);
    return hs_err_set(err, rc, "structured output: building the vocabulary trie: %s", hs_err_name(rc));
}
