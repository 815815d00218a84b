/* Process and file facts: memory use, whole-file reads, read-only mappings. */
#ifndef HS_BASE_SYS_H
#define HS_BASE_SYS_H

#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>

/* Peak resident set size (VmHWM) and current RSS of this process, in bytes; 0 if unknown. */
size_t hs_peak_rss(void);
size_t hs_current_rss(void);

/* Reads a whole file. *data is NUL-terminated (not counted in *len); free with hs_free. */
int hs_read_file(const char *path, char **data, size_t *len, hs_err *err);

/* A read-only private mapping of a whole file. */
typedef struct hs_mapping {
    void *addr;
    size_t size;
} hs_mapping;

int hs_map_file(const char *path, hs_mapping *m, hs_err *err);
void hs_unmap(hs_mapping *m);

/* Whether regexes may be JIT-compiled (PCRE2): true unless HESTIA_NO_JIT is
 * set. Machine code written at run time is opaque to valgrind, which then
 * reports its reads as uninitialised; scripts/valgrind.sh sets it. The
 * interpreter gives the same matches. */
bool hs_jit_allowed(void);

#endif
