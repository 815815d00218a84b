/* A binary heap of fixed-size elements, ordered by a `before` function: the
 * element for which before(a, b) holds against every other comes out first
 * (a min-heap with "less than", a max-heap with "greater than"). Elements are
 * copied in and out. Zero-initialise with hs_heap_init; free with hs_heap_free. */
#ifndef HS_BASE_HEAP_H
#define HS_BASE_HEAP_H

#include <stdbool.h>
#include <stddef.h>

typedef bool (*hs_heap_before_fn)(const void *a, const void *b);

typedef struct hs_heap {
    char *v;
    size_t n, cap, elem;
    hs_heap_before_fn before;
} hs_heap;

void hs_heap_init(hs_heap *h, size_t elem, hs_heap_before_fn before);
/* HS_OK or HS_ENOMEM (the heap is unchanged then). */
int hs_heap_push(hs_heap *h, const void *x);
/* Copies the first element to out and removes it; false when empty. */
bool hs_heap_pop(hs_heap *h, void *out);
void hs_heap_clear(hs_heap *h); /* n = 0, keeps memory */
void hs_heap_free(hs_heap *h);

#endif
