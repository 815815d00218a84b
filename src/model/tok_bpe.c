/* Byte-level BPE with merge ranks ("gpt2"), as llama.cpp's llm_tokenizer_bpe:
 *
 * 1. The fragment is read as UTF-8 code points; each malformed byte becomes
 *    U+FFFD (llama.cpp does the same), so the regexes only ever see valid text.
 * 2. The pre-tokenizer regexes cut it into words (tok_pre.c).
 * 3. Each byte of a word becomes its GPT-2 character (printable bytes stand
 *    for themselves, the rest map to U+0100 and up), and the word's
 *    characters are merged pairwise, lowest merge rank first (leftmost on a
 *    tie), with a min-heap and stale entries skipped, O(n log n) per word.
 * 4. Each resulting piece is its token; a piece that is not in the vocabulary
 *    falls back to its single bytes that are tokens (others are dropped, as
 *    llama.cpp drops them). */
#include "model/tok_impl.h"

#include "base/heap.h"
#include "base/mem.h"

#include <string.h>

/* GPT-2's bytes_to_unicode: bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF keep
 * their value; the other 68 are numbered from 256 in byte order:
 * 0x00..0x20 -> 256..288, 0x7F..0xA0 -> 289..322, 0xAD -> 323. */
uint32_t tok_bpe_byte_to_cp(unsigned char b)
{
    if (b <= 0x20)
        return 256u + b;
    if (b >= 0x7f && b <= 0xa0)
        return 289u + (b - 0x7fu);
    if (b == 0xad)
        return 323;
    return b;
}

int tok_bpe_cp_to_byte(uint32_t cp)
{
    if (cp < 256)
        return tok_bpe_byte_to_cp((unsigned char)cp) == cp ? (int)cp : -1;
    if (cp <= 288)
        return (int)(cp - 256);
    if (cp <= 322)
        return (int)(0x7f + cp - 289);
    return cp == 323 ? 0xad : -1;
}

struct sym {
    int32_t prev, next;
    uint32_t off, n; /* bytes of the encoded word */
};

struct bigram {
    int32_t rank;
    int32_t left, right;
    uint32_t size;
};

struct work {
    char *word; /* the word in GPT-2 characters */
    size_t word_cap;
    struct sym *s;
    size_t s_cap;
    hs_heap h;
};

/* a comes out before b: lower rank, then the leftmost pair. */
static bool before(const void *pa, const void *pb)
{
    const struct bigram *a = pa, *b = pb;
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int try_pair(const hs_tok *t, struct work *w, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return HS_OK;
    const struct sym *s = w->s;
    int32_t rank = tok_merge_rank(t, w->word + s[l].off, s[l].n, w->word + s[r].off, s[r].n);
    if (rank < 0)
        return HS_OK;
    struct bigram bg = {rank, l, r, s[l].n + s[r].n};
    return hs_heap_push(&w->h, &bg);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return HS_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = hs_realloc_array(*p, c, elem);
    if (!q)
        return HS_ENOMEM;
    *p = q;
    *cap = c;
    return HS_OK;
}

/* Merges one word (raw bytes wb[0..wn)) and appends its tokens. */
static int encode_word(const hs_tok *t, struct work *w, const char *wb, size_t wn, struct tok_ids *out)
{
    if (grow((void **)&w->word, &w->word_cap, 2 * wn + 1, 1) ||
        grow((void **)&w->s, &w->s_cap, wn + 1, sizeof *w->s))
        return HS_ENOMEM;
    size_t len = 0;
    int32_t n = 0;
    for (size_t i = 0; i < wn; i++) {
        size_t cl = tok_utf8_put(tok_bpe_byte_to_cp((unsigned char)wb[i]), w->word + len);
        w->s[n] = (struct sym){n - 1, i + 1 == wn ? -1 : n + 1, (uint32_t)len, (uint32_t)cl};
        len += cl;
        n++;
    }
    if (n == 0)
        return HS_OK;
    if (t->ignore_merges) {
        int32_t id = tok_lookup(t, w->word, len);
        if (id >= 0)
            return tok_ids_push(out, id);
    }
    int rc = HS_OK;
    hs_heap_clear(&w->h);
    for (int32_t i = 1; i < n && !rc; i++)
        rc = try_pair(t, w, i - 1, i);
    struct bigram b;
    while (!rc && hs_heap_pop(&w->h, &b)) {
        struct sym *l = &w->s[b.left], *r = &w->s[b.right];
        /* live only while both halves are what the pair was built from */
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            w->s[r->next].prev = b.left;
        rc = try_pair(t, w, l->prev, b.left);
        if (!rc)
            rc = try_pair(t, w, b.left, l->next);
    }
    for (int32_t i = 0; i != -1 && !rc; i = w->s[i].next) {
        const char *p = w->word + w->s[i].off;
        int32_t id = tok_lookup(t, p, w->s[i].n);
        if (id >= 0) {
            rc = tok_ids_push(out, id);
            continue;
        }
        for (uint32_t j = 0; j < w->s[i].n && !rc; j++) {
            id = tok_lookup(t, p + j, 1);
            if (id >= 0)
                rc = tok_ids_push(out, id);
        }
    }
    return rc;
}

int tok_bpe_encode(const hs_tok *t, const char *text, size_t len, struct tok_ids *out)
{
    if (len > (size_t)INT32_MAX / 4)
        return HS_ERANGE;
    /* Two copies of the text as code points re-encoded: `raw` keeps what
     * llama.cpp keeps (surrogates included), `clean` is valid UTF-8 for the
     * regex engine (surrogates become U+FFFD, also 3 bytes), so byte offsets
     * agree between them. Malformed bytes are U+FFFD in both. */
    size_t cap = 3 * len + 4;
    char *raw = hs_malloc(cap), *clean = hs_malloc(cap);
    struct tok_spans sp = {0};
    struct work w = {0};
    hs_heap_init(&w.h, sizeof(struct bigram), before);
    int rc = HS_OK;
    if (!raw || !clean) {
        rc = HS_ENOMEM;
        goto done;
    }
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp = tok_utf8_next(text, len, &i);
        size_t k = tok_utf8_put(cp, raw + n);
        if (cp >= 0xd800 && cp <= 0xdfff)
            tok_utf8_put(0xfffd, clean + n);
        else
            memcpy(clean + n, raw + n, k);
        n += k;
    }
    if ((rc = tok_pre_split(t, clean, n, &sp)))
        goto done;
    for (size_t i = 0; i < sp.n && !rc; i++)
        rc = encode_word(t, &w, raw + sp.v[i].off, sp.v[i].len, out);
done:
    hs_free(raw);
    hs_free(clean);
    hs_free(sp.v);
    hs_free(w.word);
    hs_free(w.s);
    hs_heap_free(&w.h);
    return rc;
}
