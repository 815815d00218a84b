#include "base/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *hs_malloc(size_t size) { return malloc(size ? size : 1); }

void *hs_calloc(size_t n, size_t size) { return calloc(n ? n : 1, size ? size : 1); }

void *hs_realloc(void *p, size_t size) { return realloc(p, size ? size : 1); }

void *hs_realloc_array(void *p, size_t n, size_t size) {
    if (size && n > SIZE_MAX / size)
        return NULL;
    return hs_realloc(p, n * size);
}

void hs_free(void *p) { free(p); }

void *hs_aligned_alloc(size_t align, size_t size) {
    void *p = NULL;
    if (posix_memalign(&p, align, size ? size : 1) != 0)
        return NULL;
    memset(p, 0, size);
    return p;
}

void hs_aligned_free(void *p) { free(p); }

char *hs_strdup(const char *s) { return hs_strndup(s, strlen(s)); }

char *hs_strndup(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}
