/* A growable byte buffer, always NUL-terminated (data[len] == 0) so it can be
 * used as a C string. Zero-initialise (`hs_buf b = {0};`) and release with
 * hs_buf_free. Append functions return HS_OK or HS_ENOMEM. */
#ifndef HS_BASE_BUF_H
#define HS_BASE_BUF_H

#include <stddef.h>

typedef struct hs_buf {
    char *data;
    size_t len;
    size_t cap;
} hs_buf;

int hs_buf_reserve(hs_buf *b, size_t extra);
int hs_buf_append(hs_buf *b, const void *data, size_t len);
int hs_buf_puts(hs_buf *b, const char *s);
int hs_buf_putc(hs_buf *b, char c);
int hs_buf_printf(hs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hs_buf_reset(hs_buf *b); /* len = 0, keeps memory */
/* Hands the data to the caller (free with hs_free) and empties b. */
char *hs_buf_steal(hs_buf *b);
void hs_buf_free(hs_buf *b);

#endif
