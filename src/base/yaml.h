/* Reading hand-written YAML files (libfyaml's document API) the same way in
 * every reader: the server's configuration, the agents file, the alerts,
 * monitor and drift sections, and the safety rules.
 *
 * libfyaml 0.7.12 mishandles some inputs (all found by fuzz_config): it loops
 * forever on some invalid UTF-8, writes through NULL on some explicit keys
 * ("? key"), and mis-reads single-quoted scalars with '' inside. So
 * hs_yaml_load checks the text before libfyaml sees it, and hs_yaml_scalar
 * refuses the quoted forms. Errors read "FILE:LINE: key.path: what is wrong"
 * (hs_yaml_fail), with the line of the offending key or value. */
#ifndef HS_BASE_YAML_H
#define HS_BASE_YAML_H

#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fy_document;
struct fy_node;

/* Message flags of a source (each keeps one reader's wording). */
#define HS_YAML_SAY_CONFIG 1u  /* the explicit-key refusal ends "in the configuration" */
#define HS_YAML_SAY_EXAMPLE 2u /* the '' refusal shows the double-quoted form ("it's") */
#define HS_YAML_NEED_BLANK 4u  /* a text libfyaml builds no document from must be blank */

/* The text being read, and where its messages go. All borrowed. */
typedef struct hs_yaml {
    const char *name; /* file name in messages */
    const char *text; /* the whole input; NULL when only nodes are at hand */
    size_t len;
    hs_err *err;
    unsigned flags; /* HS_YAML_* */
} hs_yaml;

/* Checks y->text (printable UTF-8, no explicit keys) and parses it. *doc is
 * NULL for a text holding no document (blank, comments only); otherwise free
 * it with fy_document_destroy. Errors are HS_EFORMAT "FILE:LINE[:COL]: ...". */
int hs_yaml_load(struct fy_document **doc, const hs_yaml *y);
/* The two checks of hs_yaml_load, on their own. */
int hs_yaml_check_text(const hs_yaml *y);
int hs_yaml_check_explicit_keys(const hs_yaml *y);

/* Sets "FILE:LINE: PATH: message" (without LINE when line <= 0); HS_EINVAL. */
int hs_yaml_fail(const hs_yaml *y, int line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* 1-based line of a scalar node; 0 for a collection or none (the caller then
 * uses its key's line). */
int hs_yaml_line(struct fy_node *n);
/* hs_yaml_line(n), or dflt when that is 0. */
int hs_yaml_line_or(struct fy_node *n, int dflt);
/* The line of a list item: that of its first key for a mapping, its own for
 * a scalar; else dflt. */
int hs_yaml_item_line(struct fy_node *item, int dflt);

/* The text of a scalar node; borrowed from the document. Single-quoted
 * scalars with '' inside are refused: judged on the raw source when y->text
 * is set, otherwise on the value (a quote inside came from ''). */
int hs_yaml_scalar(const hs_yaml *y, struct fy_node *n, const char *path, int line, const char **s,
                   size_t *len);
/* A missing value, an empty plain scalar, ~ or null (any of three cases). */
bool hs_yaml_plain_null(struct fy_node *v);
/* A non-empty plain scalar as a NUL-terminated string in buf (false when it
 * is not one or does not fit), for numbers and booleans. */
bool hs_yaml_plain_text(struct fy_node *v, char *buf, size_t cap);

/* Plain scalars read without a message (the caller words it). */
bool hs_yaml_read_i64(struct fy_node *v, int64_t min, int64_t max, int64_t *out);
bool hs_yaml_read_f64(struct fy_node *v, double min, double max, double *out);
bool hs_yaml_read_bool(struct fy_node *v, bool *out); /* true/True/TRUE, false/False/FALSE */

/* The same, failing with "expected a whole number in MIN..MAX", "expected a
 * number in [(]MIN..MAX" (lo_open: x > min), "expected true or false". */
int hs_yaml_int(const hs_yaml *y, struct fy_node *v, const char *path, int line, int64_t min, int64_t max,
                int64_t *out);
int hs_yaml_float(const hs_yaml *y, struct fy_node *v, const char *path, int line, double min, double max,
                  bool lo_open, double *out);
int hs_yaml_bool(const hs_yaml *y, struct fy_node *v, const char *path, int line, bool *out);
/* A string without NUL bytes; a plain null gives NULL. Replaces *out (the old
 * value is freed; the new one is freed with hs_free). */
int hs_yaml_string(const hs_yaml *y, struct fy_node *v, const char *path, int line, char **out);

#endif
