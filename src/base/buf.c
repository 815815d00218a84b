#include "base/buf.h"

#include "base/err.h"
#include "base/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int hs_buf_reserve(hs_buf *b, size_t extra) {
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return HS_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = hs_realloc(b->data, cap);
    if (!p)
        return HS_ENOMEM;
    b->data = p;
    b->cap = cap;
    return HS_OK;
}

int hs_buf_append(hs_buf *b, const void *data, size_t len) {
    if (hs_buf_reserve(b, len))
        return HS_ENOMEM;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return HS_OK;
}

int hs_buf_puts(hs_buf *b, const char *s) { return hs_buf_append(b, s, strlen(s)); }

int hs_buf_putc(hs_buf *b, char c) { return hs_buf_append(b, &c, 1); }

int hs_buf_printf(hs_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || hs_buf_reserve(b, (size_t)n)) {
        va_end(ap2);
        return HS_ENOMEM;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
    return HS_OK;
}

void hs_buf_reset(hs_buf *b) {
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *hs_buf_steal(hs_buf *b) {
    char *d = b->data;
    if (!d)
        d = hs_strdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void hs_buf_free(hs_buf *b) {
    hs_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
