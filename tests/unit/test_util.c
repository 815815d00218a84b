#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *hs_test_shared(const char *rel) {
    static char bufs[8][1024];
    static int slot;
    char *buf = bufs[slot++ % 8];
    const char *root = getenv("HESTIA_SHARED");
    snprintf(buf, sizeof bufs[0], "%s/%s", root ? root : "../shared", rel);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

static char g_tmp[256];

static void rm_tmp(void) {
    if (!g_tmp[0])
        return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_tmp);
}

const char *hs_test_tmpdir(void) {
    if (!g_tmp[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(g_tmp, sizeof g_tmp, "%s/hestia-test-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(g_tmp)) {
            perror("mkdtemp");
            abort();
        }
        atexit(rm_tmp);
    }
    return g_tmp;
}

char *hs_test_tmpfile(const char *name) {
    const char *d = hs_test_tmpdir();
    size_t n = strlen(d) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", d, name);
    return p;
}
