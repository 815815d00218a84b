/* CSV as RFC 4180 has it, for the expert evaluation sheets: fields
 * separated by commas, records by CRLF (LF is read too); a field holding a
 * comma, a quote, CR or LF is quoted, with each quote doubled. Text is
 * passed through as bytes (UTF-8 in, UTF-8 out). A spreadsheet saves with a
 * UTF-8 byte-order mark now and then: the reader skips one at the start. */
#ifndef HS_OPS_CSV_H
#define HS_OPS_CSV_H

#include "base/buf.h"
#include "base/err.h"

#include <stddef.h>

/* Appends one field, quoted when it needs to be (NULL = empty). HS_ENOMEM. */
int hs_csv_field(hs_buf *out, const char *s);
/* Appends n fields and the CRLF that ends the record. */
int hs_csv_row(hs_buf *out, const char *const *fields, int n);

#define HS_CSV_MAX_FIELDS 256
#define HS_CSV_MAX_BYTES (64u << 20)

struct hs_csv_record {
    char **fields; /* n NUL-terminated strings (a field with a NUL byte inside is an error) */
    int n;
    int line; /* 1-based line where the record starts */
};

struct hs_csv {
    struct hs_csv_record *rows;
    size_t n;
};

/* Reads a whole text. A record of one empty field (an empty line, or a
 * line holding only "") is skipped: a sheet edited by hand often ends with
 * a few empty lines. Errors are HS_EFORMAT
 * "NAME:LINE: ..." for an unterminated quoted field, a quote inside an
 * unquoted field, text after a closing quote, a NUL byte, more than
 * HS_CSV_MAX_FIELDS fields, or more than HS_CSV_MAX_BYTES of input; *out is
 * then empty. Free with hs_csv_free. */
int hs_csv_parse(const char *text, size_t len, const char *name, struct hs_csv *out, hs_err *err);
void hs_csv_free(struct hs_csv *c);

#endif
