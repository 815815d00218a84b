/* What the store's tests share: a fresh store file, opening it (a failure
 * fails the test with the store's message), and reading one number back
 * through a read-only connection of the test's own. */
#ifndef HS_TEST_STORE_UTIL_H
#define HS_TEST_STORE_UTIL_H

#include "ops/store.h"

#include <stdint.h>

/* A path in the test's temporary directory with no file there yet (free with free). */
char *hs_test_fresh_path(const char *name);
hs_store *hs_test_store_open(const char *path);
/* The first column of the first row of sql. */
int64_t hs_test_sql_i64(const char *path, const char *sql);

#endif
