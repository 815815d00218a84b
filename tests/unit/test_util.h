/* Helpers shared by the unit tests (linked into every test binary).
 * Tests run from the repository root (scripts/run-tests.sh sees to it). */
#ifndef HS_TEST_UTIL_H
#define HS_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Path of a file under ../shared (or $HESTIA_SHARED), or NULL when it is not
 * there. Returns a static buffer per call slot: copy it if you keep two. */
const char *hs_test_shared(const char *rel);

/* Skips the current test with a message when rel is missing in ../shared;
 * otherwise evaluates to its path. */
#define HS_SHARED_OR_SKIP(rel)                                                                     \
    ({                                                                                             \
        const char *p_ = hs_test_shared(rel);                                                      \
        if (!p_) {                                                                                 \
            print_message("[  SKIP    ] ../shared/%s is absent\n", rel);                         \
            skip();                                                                                \
        }                                                                                          \
        p_;                                                                                        \
    })

/* A fresh temporary directory for this test binary (removed at exit). */
const char *hs_test_tmpdir(void);

/* Path inside the temporary directory; returns a new string (free with free). */
char *hs_test_tmpfile(const char *name);

#endif
