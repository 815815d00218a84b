/* RFC 4180 CSV: the writer quotes what needs quoting, the reader is a
 * small state machine over bytes (see csv.h). */
#include "ops/csv.h"

#include "base/mem.h"

#include <stdbool.h>
#include <string.h>

int hs_csv_field(hs_buf *out, const char *s)
{
    if (!s)
        s = "";
    /* a field starting with a byte-order mark is quoted too: first in a
       file, unquoted, the reader would take the mark for the file's */
    if (!s[strcspn(s, ",\"\r\n")] && strncmp(s, "\xEF\xBB\xBF", 3) != 0)
        return hs_buf_puts(out, s);
    if (hs_buf_putc(out, '"'))
        return HS_ENOMEM;
    for (const char *p = s; *p; p++) {
        if (*p == '"' && hs_buf_putc(out, '"'))
            return HS_ENOMEM;
        if (hs_buf_putc(out, *p))
            return HS_ENOMEM;
    }
    return hs_buf_putc(out, '"');
}

int hs_csv_row(hs_buf *out, const char *const *fields, int n)
{
    for (int i = 0; i < n; i++) {
        if ((i && hs_buf_putc(out, ',')) || hs_csv_field(out, fields[i]))
            return HS_ENOMEM;
    }
    return hs_buf_puts(out, "\r\n");
}

void hs_csv_free(struct hs_csv *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        for (int j = 0; j < c->rows[i].n; j++)
            hs_free(c->rows[i].fields[j]);
        hs_free(c->rows[i].fields);
    }
    hs_free(c->rows);
    c->rows = NULL;
    c->n = 0;
}

/* Arrays double when their count reaches a power of two (0, 1, 2, 4, ...),
 * so a file of many rows costs O(n) copies, not O(n^2). */
static bool grows(size_t n)
{
    return (n & (n - 1)) == 0;
}

/* The record being read. */
struct rec {
    char **fields;
    int n;
    hs_buf field;
};

static int end_field(struct rec *r)
{
    if (r->n == HS_CSV_MAX_FIELDS)
        return HS_ERANGE;
    if (grows((size_t)r->n)) {
        char **nf = hs_realloc_array(r->fields, r->n ? (size_t)r->n * 2 : 1, sizeof *nf);
        if (!nf)
            return HS_ENOMEM;
        r->fields = nf;
    }
    char *s = r->field.data ? hs_buf_steal(&r->field) : hs_strdup("");
    if (!s)
        return HS_ENOMEM;
    r->fields[r->n++] = s;
    return HS_OK;
}

static void rec_drop(struct rec *r)
{
    for (int i = 0; i < r->n; i++)
        hs_free(r->fields[i]);
    hs_free(r->fields);
    hs_buf_free(&r->field);
    memset(r, 0, sizeof *r);
}

static int end_record(struct hs_csv *c, struct rec *r, int line)
{
    int rc = end_field(r);
    if (rc)
        return rc;
    /* a line with nothing on it is skipped, not a record of one empty field */
    if (r->n == 1 && !r->fields[0][0]) {
        rec_drop(r);
        return HS_OK;
    }
    if (grows(c->n)) {
        struct hs_csv_record *nr = hs_realloc_array(c->rows, c->n ? c->n * 2 : 1, sizeof *nr);
        if (!nr)
            return HS_ENOMEM;
        c->rows = nr;
    }
    c->rows[c->n++] = (struct hs_csv_record){r->fields, r->n, line};
    hs_buf_free(&r->field);
    memset(r, 0, sizeof *r);
    return HS_OK;
}

int hs_csv_parse(const char *text, size_t len, const char *name, struct hs_csv *out, hs_err *err)
{
    memset(out, 0, sizeof *out);
    name = name ? name : "csv";
    if (len > HS_CSV_MAX_BYTES)
        return hs_err_set(err, HS_EFORMAT, "%s: larger than %u MiB", name, HS_CSV_MAX_BYTES >> 20);
    size_t i = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
        i = 3;
    struct rec r = {0};
    int line = 1, start = 1, rc = HS_OK;
    const char *what = NULL;
    enum { FIELD_START, UNQUOTED, QUOTED, AFTER_QUOTE } st = FIELD_START;
    while (i < len && !rc && !what) {
        char ch = text[i];
        if (ch == 0) {
            what = "a NUL byte";
            break;
        }
        switch (st) {
        case FIELD_START:
            if (ch == '"') {
                st = QUOTED;
                i++;
                continue;
            }
            st = UNQUOTED;
            /* fall through */
        case UNQUOTED:
        case AFTER_QUOTE:
            if (ch == ',') {
                rc = end_field(&r);
                st = FIELD_START;
                i++;
            } else if (ch == '\r' || ch == '\n') {
                rc = end_record(out, &r, start);
                st = FIELD_START;
                i += (ch == '\r' && i + 1 < len && text[i + 1] == '\n') ? 2 : 1;
                start = ++line;
            } else if (st == AFTER_QUOTE) {
                what = "text after a closing quote (a quote inside a quoted field is written \"\")";
            } else if (ch == '"') {
                what = "a quote inside an unquoted field (quote the whole field and double the quote)";
            } else {
                rc = hs_buf_putc(&r.field, ch);
                i++;
            }
            break;
        case QUOTED:
            if (ch == '"') {
                if (i + 1 < len && text[i + 1] == '"') {
                    rc = hs_buf_putc(&r.field, '"');
                    i += 2;
                } else {
                    st = AFTER_QUOTE;
                    i++;
                }
            } else {
                if (ch == '\n' || (ch == '\r' && !(i + 1 < len && text[i + 1] == '\n')))
                    line++;
                rc = hs_buf_putc(&r.field, ch);
                i++;
            }
            break;
        }
    }
    if (!rc && !what && st == QUOTED) {
        rec_drop(&r);
        hs_csv_free(out);
        return hs_err_set(err, HS_EFORMAT, "%s:%d: a quoted field is not closed before the end", name, start);
    }
    if (!rc && !what && (st != FIELD_START || r.n > 0))
        rc = end_record(out, &r, start);
    if (what || rc) {
        rec_drop(&r);
        hs_csv_free(out);
        if (what)
            return hs_err_set(err, HS_EFORMAT, "%s:%d: %s", name, line, what);
        if (rc == HS_ERANGE)
            return hs_err_set(err, HS_EFORMAT, "%s:%d: more than %d fields", name, start, HS_CSV_MAX_FIELDS);
        return hs_err_set(err, HS_ENOMEM, "%s: out of memory", name);
    }
    return HS_OK;
}
