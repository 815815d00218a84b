/* SentencePiece BPE with scores ("llama"), as llama.cpp's llm_tokenizer_spm:
 *
 * Spaces become "▁" (with one more in front when the fragment starts the text
 * or follows a special token and the vocabulary adds a dummy prefix). The
 * text is cut into UTF-8 characters (by the lead byte only, so malformed
 * input still makes progress), every adjacent pair that is a vocabulary entry
 * goes into a max-heap keyed by that entry's score, and the best pair is
 * merged until none is left. The heap holds stale pairs after a merge; a
 * pair is live only while both halves still have the lengths it was built
 * from. Each resulting piece is its token, or failing that one byte token
 * <0xNN> per byte (the unknown token when the vocabulary has no such byte).
 * The work is O(n log n) in the fragment length. */
#include "model/tok_impl.h"

#include "base/heap.h"
#include "base/mem.h"

#include <string.h>

struct sym {
    int32_t prev, next;
    uint32_t off, n; /* bytes of the escaped text */
};

struct bigram {
    float score;
    int32_t left, right;
    uint32_t size;
};


/* a comes out before b: higher score, then the leftmost pair. */
static bool before(const void *pa, const void *pb)
{
    const struct bigram *a = pa, *b = pb;
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int try_pair(const hs_tok *t, const char *text, const struct sym *s, int32_t l, int32_t r,
                    hs_heap *h)
{
    if (l < 0 || r < 0)
        return HS_OK;
    uint32_t size = s[l].n + s[r].n;
    int32_t id = tok_lookup(t, text + s[l].off, size);
    if (id < 0)
        return HS_OK;
    struct bigram bg = {t->tok[id].score, l, r, size};
    return hs_heap_push(h, &bg);
}

int tok_spm_encode(const hs_tok *t, const char *text, size_t len, bool prefix, struct tok_ids *out)
{
    /* escape: ' ' -> "▁" (3 bytes) */
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++)
        spaces += text[i] == ' ';
    if (len > (size_t)INT32_MAX / 4)
        return HS_ERANGE;
    size_t elen = len + 2 * spaces + (prefix ? 3 : 0);
    char *buf = hs_malloc(elen + 1);
    struct sym *s = hs_malloc((elen + 1) * sizeof *s);
    hs_heap h;
    hs_heap_init(&h, sizeof(struct bigram), before);
    int rc = HS_OK;
    if (!buf || !s) {
        rc = HS_ENOMEM;
        goto done;
    }
    size_t k = 0;
    if (prefix) {
        memcpy(buf, "\xe2\x96\x81", 3);
        k = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + k, "\xe2\x96\x81", 3);
            k += 3;
        } else {
            buf[k++] = text[i];
        }
    }

    int32_t n = 0;
    for (size_t off = 0; off < elen;) {
        size_t cl = tok_utf8_len((unsigned char)buf[off]);
        if (cl > elen - off)
            cl = elen - off;
        s[n] = (struct sym){n - 1, off + cl == elen ? -1 : n + 1, (uint32_t)off, (uint32_t)cl};
        off += cl;
        n++;
    }
    for (int32_t i = 1; i < n && !rc; i++)
        rc = try_pair(t, buf, s, i - 1, i, &h);
    struct bigram bg;
    while (!rc && hs_heap_pop(&h, &bg)) {
        struct sym *l = &s[bg.left], *r = &s[bg.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            s[r->next].prev = bg.left;
        rc = try_pair(t, buf, s, l->prev, bg.left, &h);
        if (!rc)
            rc = try_pair(t, buf, s, bg.left, l->next, &h);
    }
    for (int32_t i = n ? 0 : -1; i != -1 && !rc; i = s[i].next) {
        int32_t id = tok_lookup(t, buf + s[i].off, s[i].n);
        if (id >= 0) {
            rc = tok_ids_push(out, id);
            continue;
        }
        for (uint32_t j = 0; j < s[i].n && !rc; j++) {
            int32_t b = t->byte_tok[(unsigned char)buf[s[i].off + j]];
            if (b < 0)
                b = t->unk;
            if (b >= 0)
                rc = tok_ids_push(out, b);
        }
    }
done:
    hs_free(buf);
    hs_free(s);
    hs_heap_free(&h);
    return rc;
}
