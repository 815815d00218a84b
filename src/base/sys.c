#include "base/sys.h"

#include "base/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    size_t kb = 0, flen = strlen(field);
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, field, flen) && line[flen] == ':') {
            unsigned long long v = 0;
            const char *p = line + flen + 1;
            while (*p == ' ' || *p == '\t')
                p++;
            while (*p >= '0' && *p <= '9')
                v = v * 10 + (unsigned long long)(*p++ - '0');
            kb = (size_t)v;
            break;
        }
    }
    fclose(f);
    return kb * 1024;
}

size_t hs_peak_rss(void) { return status_kb("VmHWM"); }
size_t hs_current_rss(void) { return status_kb("VmRSS"); }

int hs_read_file(const char *path, char **data, size_t *len, hs_err *err) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return hs_err_set(err, HS_EIO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = hs_malloc(cap);
    if (!buf) {
        fclose(f);
        return hs_err_set(err, HS_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = hs_realloc(buf, cap * 2);
            if (!nb) {
                hs_free(buf);
                fclose(f);
                return hs_err_set(err, HS_ENOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        hs_free(buf);
        return hs_err_set(err, HS_EIO, "%s: read error", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return HS_OK;
}

int hs_map_file(const char *path, hs_mapping *m, hs_err *err) {
    m->addr = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hs_err_set(err, HS_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return hs_err_set(err, HS_EIO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return hs_err_set(err, HS_EFORMAT, "%s: file is empty", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return hs_err_set(err, HS_EIO, "%s: mmap: %s", path, strerror(errno));
    m->addr = p;
    m->size = (size_t)st.st_size;
    return HS_OK;
}

void hs_unmap(hs_mapping *m) {
    if (m && m->addr) {
        munmap(m->addr, m->size);
        m->addr = NULL;
        m->size = 0;
    }
}

bool hs_jit_allowed(void)
{
    const char *v = getenv("HESTIA_NO_JIT");
    return !v || !v[0] || !strcmp(v, "0");
}
