/* Allocation helpers. hs_free(NULL) and hs_aligned_free(NULL) do nothing.
 * Sizes are checked for multiplication overflow (NULL on overflow). */
#ifndef HS_BASE_MEM_H
#define HS_BASE_MEM_H

#include <stddef.h>

void *hs_malloc(size_t size);
void *hs_calloc(size_t n, size_t size);
void *hs_realloc(void *p, size_t size);
/* Grows an array: returns p resized to n*size bytes, or NULL (p left intact). */
void *hs_realloc_array(void *p, size_t n, size_t size);
void hs_free(void *p);

/* Memory aligned to `align` (a power of two >= sizeof(void*)), zeroed.
 * Free with hs_aligned_free. */
void *hs_aligned_alloc(size_t align, size_t size);
void hs_aligned_free(void *p);

/* Returns a new NUL-terminated copy; free with hs_free. */
char *hs_strdup(const char *s);
char *hs_strndup(const char *s, size_t n);

#endif
