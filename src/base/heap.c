#include "base/heap.h"

#include "base/err.h"
#include "base/mem.h"

#include <string.h>

/* Elements are small (the tokenizers' are 16 bytes): a stack buffer holds the
 * one being sifted. */
#define MAX_ELEM 64

void hs_heap_init(hs_heap *h, size_t elem, hs_heap_before_fn before) {
    memset(h, 0, sizeof *h);
    h->elem = elem;
    h->before = before;
}

static inline char *at(const hs_heap *h, size_t i) { return h->v + i * h->elem; }

int hs_heap_push(hs_heap *h, const void *x) {
    if (h->elem == 0 || h->elem > MAX_ELEM)
        return HS_EINVAL;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        char *v = hs_realloc_array(h->v, cap, h->elem);
        if (!v)
            return HS_ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!h->before(x, at(h, p)))
            break;
        memcpy(at(h, i), at(h, p), h->elem);
        i = p;
    }
    memcpy(at(h, i), x, h->elem);
    return HS_OK;
}

bool hs_heap_pop(hs_heap *h, void *out) {
    if (h->n == 0)
        return false;
    memcpy(out, at(h, 0), h->elem);
    char last[MAX_ELEM];
    memcpy(last, at(h, --h->n), h->elem);
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->before(at(h, c + 1), at(h, c)))
            c++;
        if (!h->before(at(h, c), last))
            break;
        memcpy(at(h, i), at(h, c), h->elem);
        i = c;
    }
    if (h->n)
        memcpy(at(h, i), last, h->elem);
    return true;
}

void hs_heap_clear(hs_heap *h) { h->n = 0; }

void hs_heap_free(hs_heap *h) {
    hs_free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
