/* Shared pieces of the YAML readers (see yaml.h for why the checks exist). */
#include "base/yaml.h"

#include "base/mem.h"
#include "base/parse.h"

#include <libfyaml.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <utf8proc.h>

/* --- before libfyaml --- */

/* YAML 1.2 (section 5.1) allows only printable Unicode: tab, LF, CR,
 * U+0020..U+007E, U+0085, U+00A0..U+D7FF, U+E000..U+FFFD and the planes above.
 * Checking this first is not only pedantry: libfyaml 0.7.12 loops forever on
 * some invalid UTF-8 inside a %directive (found by fuzz_config). */
int hs_yaml_check_text(const hs_yaml *y)
{
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)y->text;
    int line = 1;
    for (size_t i = 0; i < y->len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(u + i, (utf8proc_ssize_t)(y->len - i), &cp);
        if (k <= 0)
            return hs_err_set(y->err, HS_EFORMAT, "%s:%d: not UTF-8 text (byte %zu)", y->name, line, i);
        bool ok = cp == 0x09 || cp == 0x0A || cp == 0x0D || (cp >= 0x20 && cp <= 0x7E) || cp == 0x85 ||
                  (cp >= 0xA0 && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) || cp >= 0x10000;
        if (!ok)
            return hs_err_set(y->err, HS_EFORMAT, "%s:%d: control character U+%04X is not allowed in YAML",
                              y->name, line, (unsigned)cp);
        if (cp == 0x0A)
            line++;
        i += (size_t)k;
    }
    return HS_OK;
}

/* Explicit mapping keys ("? key") are refused before libfyaml sees them: a
 * hand-written file never needs them, and libfyaml 0.7.12 writes through a
 * NULL pointer on some of them (an explicit key, a tab, then a block scalar;
 * found by fuzz_config). A '?' is the indicator when a space, tab or line end
 * follows it and it starts a node: first on its line, or after '-', '{', '[',
 * ',' or ':'. Quoted scalars and comments are skipped. */
int hs_yaml_check_explicit_keys(const hs_yaml *y)
{
    const char *text = y->text;
    size_t len = y->len;
    int line = 1;
    char quote = 0;   /* inside a '...' or "..." scalar */
    char prev = '\n'; /* the last character outside quotes that is not a blank */
    char last = '\n'; /* the character just before, blank or not */
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (ch == '\n')
            line++;
        if (quote) {
            if (quote == '"' && ch == '\\' && i + 1 < len)
                i++; /* an escape, whatever follows */
            else if (ch == quote && !(quote == '\'' && i + 1 < len && text[i + 1] == '\''))
                quote = 0;
            else if (ch == '\'' && quote == '\'')
                i++; /* '' inside single quotes */
            last = ch;
            continue;
        }
        bool starts_node =
            last == ' ' || last == '\t' || last == '\n' || last == '{' || last == '[' || last == ',';
        if (ch == '#' && starts_node) {
            while (i + 1 < len && text[i + 1] != '\n')
                i++;
            continue;
        }
        if ((ch == '"' || ch == '\'') && starts_node)
            quote = ch;
        else if (ch == '?' && (i + 1 == len || strchr(" \t\n\r", text[i + 1])) && strchr("\n-{[,:", prev))
            return hs_err_set(y->err, HS_EFORMAT,
                              "%s:%d: explicit mapping keys ('? key') are not supported%s", y->name, line,
                              (y->flags & HS_YAML_SAY_CONFIG) ? " in the configuration" : "");
        if (ch != ' ' && ch != '\t' && ch != '\r')
            prev = ch;
        last = ch;
    }
    return HS_OK;
}

/* True when the text holds no YAML content: blank lines, comments and
 * document markers only (libfyaml builds no document for it). */
static bool blank_yaml(const char *text, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && text[e] != '\n')
            e++;
        size_t a = i;
        while (a < e && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r'))
            a++;
        bool ok = a == e || text[a] == '#' ||
                  (e - a >= 3 && (memcmp(text + a, "---", 3) == 0 || memcmp(text + a, "...", 3) == 0));
        if (!ok)
            return false;
        i = e + 1;
    }
    return true;
}

static void quiet_output(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    (void)diag;
    (void)user;
    (void)buf;
    (void)len;
}

int hs_yaml_load(struct fy_document **doc, const hs_yaml *y)
{
    *doc = NULL;
    int rc = hs_yaml_check_text(y);
    if (rc == HS_OK)
        rc = hs_yaml_check_explicit_keys(y);
    if (rc != HS_OK)
        return rc;
    /* without HS_YAML_NEED_BLANK an empty text is simply no document */
    if (y->len == 0 && !(y->flags & HS_YAML_NEED_BLANK))
        return HS_OK;
    struct fy_diag_cfg dc;
    fy_diag_cfg_default(&dc);
    dc.fp = NULL;
    dc.output_fn = quiet_output;
    dc.level = FYET_ERROR;
    struct fy_diag *diag = fy_diag_create(&dc);
    if (!diag)
        return hs_err_set(y->err, HS_ENOMEM, "out of memory");
    fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg pc;
    memset(&pc, 0, sizeof(pc));
    pc.flags = FYPCF_QUIET;
    pc.diag = diag;
    *doc = fy_document_build_from_string(&pc, y->text, y->len);
    if (!*doc) {
        void *it = NULL;
        struct fy_diag_error *de = fy_diag_errors_iterate(diag, &it);
        if (de)
            rc = hs_err_set(y->err, HS_EFORMAT, "%s:%d:%d: %s", y->name, de->line, de->column,
                            de->msg ? de->msg : "YAML syntax error");
        else if ((y->flags & HS_YAML_NEED_BLANK) && !blank_yaml(y->text, y->len))
            rc = hs_err_set(y->err, HS_EFORMAT, "%s: not a YAML document", y->name);
        /* else: nothing but comments and blanks */
    }
    /* the document holds its own reference to the diag */
    fy_diag_destroy(diag);
    return rc;
}

/* --- messages and lines --- */

int hs_yaml_fail(const hs_yaml *y, int line, const char *path, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        return hs_err_set(y->err, HS_EINVAL, "%s:%d: %s: %s", y->name, line, path, msg);
    return hs_err_set(y->err, HS_EINVAL, "%s: %s: %s", y->name, path, msg);
}

int hs_yaml_line(struct fy_node *n)
{
    if (!n || !fy_node_is_scalar(n))
        return 0;
    struct fy_token *t = fy_node_get_scalar_token(n);
    const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
    return m ? m->line + 1 : 0;
}

int hs_yaml_line_or(struct fy_node *n, int dflt)
{
    int l = hs_yaml_line(n);
    return l ? l : dflt;
}

int hs_yaml_item_line(struct fy_node *item, int dflt)
{
    if (item && fy_node_is_mapping(item) && fy_node_mapping_item_count(item) > 0) {
        void *it = NULL;
        struct fy_node_pair *p = fy_node_mapping_iterate(item, &it);
        return hs_yaml_line_or(p ? fy_node_pair_key(p) : NULL, dflt);
    }
    return hs_yaml_line_or(item, dflt);
}

/* --- scalars --- */

int hs_yaml_scalar(const hs_yaml *y, struct fy_node *n, const char *path, int line, const char **s,
                   size_t *len)
{
    const char *refusal = (y->flags & HS_YAML_SAY_EXAMPLE)
                              ? "a single-quoted string with '' inside is not supported; use double quotes "
                                "(\"it's\")"
                              : "a single-quoted string with '' inside is not supported; use double quotes";
    bool single = fy_node_get_style(n) == FYNS_SINGLE_QUOTED;
    if (single && y->text) {
        struct fy_token *t = fy_node_get_scalar_token(n);
        const struct fy_mark *a = t ? fy_token_start_mark(t) : NULL;
        const struct fy_mark *b = t ? fy_token_end_mark(t) : NULL;
        if (!a || !b || a->input_pos >= b->input_pos || b->input_pos > y->len)
            return hs_yaml_fail(y, line, path, "unreadable quoted string");
        /* inside the outer quotes */
        const char *raw = y->text + a->input_pos + 1;
        size_t rlen = b->input_pos - a->input_pos;
        rlen = rlen >= 2 ? rlen - 2 : 0;
        if (memmem(raw, rlen, "''", 2))
            return hs_yaml_fail(y, line, path, "%s", refusal);
    }
    *s = fy_node_get_scalar(n, len);
    if (!*s)
        return hs_yaml_fail(y, line, path, "unreadable value");
    /* without the source, a quote in the value of a single-quoted scalar
       came from '' */
    if (single && !y->text && memchr(*s, '\'', *len))
        return hs_yaml_fail(y, line, path, "%s", refusal);
    return HS_OK;
}

bool hs_yaml_plain_null(struct fy_node *v)
{
    if (!v)
        return true;
    if (!fy_node_is_scalar(v) || fy_node_get_style(v) != FYNS_PLAIN)
        return false;
    size_t len;
    const char *s = fy_node_get_scalar(v, &len);
    if (!s || len == 0)
        return true;
    return (len == 1 && s[0] == '~') ||
           (len == 4 &&
            (memcmp(s, "null", 4) == 0 || memcmp(s, "Null", 4) == 0 || memcmp(s, "NULL", 4) == 0));
}

bool hs_yaml_plain_text(struct fy_node *v, char *buf, size_t cap)
{
    if (!v || !fy_node_is_scalar(v) || fy_node_get_style(v) != FYNS_PLAIN)
        return false;
    size_t len;
    const char *s = fy_node_get_scalar(v, &len);
    if (!s || len == 0 || len >= cap)
        return false;
    memcpy(buf, s, len);
    buf[len] = 0;
    return true;
}

/* --- typed readers --- */

bool hs_yaml_read_i64(struct fy_node *v, int64_t min, int64_t max, int64_t *out)
{
    char buf[64];
    return hs_yaml_plain_text(v, buf, sizeof(buf)) && hs_parse_i64(buf, min, max, out) == HS_OK;
}

bool hs_yaml_read_f64(struct fy_node *v, double min, double max, double *out)
{
    char buf[64];
    double x;
    if (!hs_yaml_plain_text(v, buf, sizeof(buf)) || hs_parse_f64(buf, &x) != HS_OK || !(x >= min) ||
        !(x <= max))
        return false;
    *out = x;
    return true;
}

bool hs_yaml_read_bool(struct fy_node *v, bool *out)
{
    char buf[8];
    if (!hs_yaml_plain_text(v, buf, sizeof(buf)))
        return false;
    if (strcmp(buf, "true") == 0 || strcmp(buf, "True") == 0 || strcmp(buf, "TRUE") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(buf, "false") == 0 || strcmp(buf, "False") == 0 || strcmp(buf, "FALSE") == 0) {
        *out = false;
        return true;
    }
    return false;
}

int hs_yaml_int(const hs_yaml *y, struct fy_node *v, const char *path, int line, int64_t min, int64_t max,
                int64_t *out)
{
    if (!hs_yaml_read_i64(v, min, max, out))
        return hs_yaml_fail(y, line, path, "expected a whole number in %lld..%lld", (long long)min,
                            (long long)max);
    return HS_OK;
}

int hs_yaml_float(const hs_yaml *y, struct fy_node *v, const char *path, int line, double min, double max,
                  bool lo_open, double *out)
{
    double x;
    if (!hs_yaml_read_f64(v, min, max, &x) || (lo_open && !(x > min)))
        return hs_yaml_fail(y, line, path, "expected a number in %s%g..%g", lo_open ? "(" : "", min, max);
    *out = x;
    return HS_OK;
}

int hs_yaml_bool(const hs_yaml *y, struct fy_node *v, const char *path, int line, bool *out)
{
    if (!hs_yaml_read_bool(v, out))
        return hs_yaml_fail(y, line, path, "expected true or false");
    return HS_OK;
}

int hs_yaml_string(const hs_yaml *y, struct fy_node *v, const char *path, int line, char **out)
{
    if (hs_yaml_plain_null(v)) {
        hs_free(*out);
        *out = NULL;
        return HS_OK;
    }
    if (!fy_node_is_scalar(v))
        return hs_yaml_fail(y, line, path, "expected a string");
    const char *s;
    size_t len;
    int rc = hs_yaml_scalar(y, v, path, line, &s, &len);
    if (rc != HS_OK)
        return rc;
    if (memchr(s, 0, len))
        return hs_yaml_fail(y, line, path, "expected a string without NUL bytes");
    char *copy = hs_strndup(s, len);
    if (!copy)
        return hs_err_set(y->err, HS_ENOMEM, "out of memory");
    hs_free(*out);
    *out = copy;
    return HS_OK;
}
