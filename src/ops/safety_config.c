/* The safety rules' YAML (config/safety.yaml), read with libfyaml's
 * document API:
 *
 *   confidence:            { low_prob: 0.2 }
 *   hazmat:                { table, tolerance, window, idlh_terms, safe_terms, other_terms }
 *   unsafe_recommendation: { phrases, patterns, negations }
 *   overconfident:         { below: 0.5, words }
 *
 * Errors read "FILE:LINE: key.path: what", as the server's config does, and
 * keys nobody knows are errors (a misspelt list must not silently switch a
 * rule off). This file is hand-written by an operator, but it is parsed
 * with the same care as the server's: the text must be UTF-8 without
 * control characters, and YAML aliases, explicit keys ("? key") and
 * single-quoted strings with '' inside are refused, because libfyaml 0.7.12
 * mishandles some of them (base/yaml.h holds those guards; fuzzing the
 * server's config found them). */
#include "ops/safety_impl.h"

#include "base/mem.h"
#include "base/parse.h"
#include "base/yaml.h"

#include <libfyaml.h>
#include <stdio.h>
#include <string.h>

/* The line of a collection: that of its first scalar, else dflt. */
static int first_line(struct fy_node *n, int dflt)
{
    if (n && fy_node_is_sequence(n)) {
        void *it = NULL;
        struct fy_node *x = fy_node_sequence_iterate(n, &it);
        int l = x ? first_line(x, 0) : 0;
        return l ? l : dflt;
    }
    return hs_yaml_item_line(n, dflt);
}

/* A scalar's text; aliases are refused first. */
static int scalar(const hs_yaml *w, struct fy_node *n, const char *path, int line, const char **s,
                  size_t *len)
{
    if (fy_node_is_alias(n))
        return hs_yaml_fail(w, line, path, "YAML aliases are not supported; write the value out");
    return hs_yaml_scalar(w, n, path, line, s, len);
}

static int get_list(const hs_yaml *w, struct fy_node *v, const char *path, int line, struct hs_sfy_list *out)
{
    hs_sfy_list_free(out);
    if (hs_yaml_plain_null(v))
        return HS_OK;
    if (!fy_node_is_sequence(v) || fy_node_is_alias(v))
        return hs_yaml_fail(w, line, path, "expected a list of strings ([a, b] or lines starting with '-')");
    int n = fy_node_sequence_item_count(v);
    if (n <= 0)
        return HS_OK;
    out->items = hs_calloc((size_t)n, sizeof(char *));
    out->lines = hs_calloc((size_t)n, sizeof(int));
    if (!out->items || !out->lines) {
        hs_sfy_list_free(out);
        return hs_err_set(w->err, HS_ENOMEM, "out of memory");
    }
    void *it = NULL;
    struct fy_node *x;
    int prev = line;
    while (out->n < n && (x = fy_node_sequence_iterate(v, &it))) {
        char sub[200];
        snprintf(sub, sizeof(sub), "%.160s[%d]", path, out->n);
        int l = hs_yaml_line(x) ? hs_yaml_line(x) : prev;
        prev = l;
        size_t len;
        const char *s;
        if (!fy_node_is_scalar(x) || hs_yaml_plain_null(x))
            return hs_yaml_fail(w, l, sub, "expected a non-empty string");
        int rc = scalar(w, x, sub, l, &s, &len);
        if (rc != HS_OK)
            return rc;
        if (len == 0 || memchr(s, 0, len))
            return hs_yaml_fail(w, l, sub, "expected a non-empty string without NUL bytes");
        out->items[out->n] = hs_strndup(s, len);
        if (!out->items[out->n])
            return hs_err_set(w->err, HS_ENOMEM, "out of memory");
        out->lines[out->n++] = l;
    }
    return HS_OK;
}

/* Which key of a mapping this is; fails naming the known ones. */
static int key_of(const hs_yaml *w, struct fy_node_pair *p, const char *path, int dflt_line,
                  const char *const *known, int *which, int *line, char *sub, size_t sub_cap)
{
    struct fy_node *k = fy_node_pair_key(p);
    *line = hs_yaml_line(k) ? hs_yaml_line(k) : dflt_line;
    const char *where = path[0] ? path : "(top level)";
    if (!k || !fy_node_is_scalar(k) || fy_node_is_alias(k))
        return hs_yaml_fail(w, *line, where, "keys must be plain words");
    size_t len;
    const char *s;
    int rc = scalar(w, k, where, *line, &s, &len);
    if (rc != HS_OK)
        return rc;
    snprintf(sub, sub_cap, "%s%s%.*s", path, path[0] ? "." : "", (int)(len > 64 ? 64 : len), s);
    for (int i = 0; known[i]; i++)
        if (strlen(known[i]) == len && memcmp(known[i], s, len) == 0) {
            *which = i;
            return HS_OK;
        }
    char list[200] = "";
    for (int i = 0; known[i]; i++) {
        size_t o = strlen(list);
        snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", known[i]);
    }
    return hs_yaml_fail(w, *line, sub, "unknown key (known here: %s)", list);
}

static const char *const root_keys[] = {"confidence", "hazmat", "unsafe_recommendation", "overconfident",
                                        NULL};
static const char *const conf_keys[] = {"low_prob", NULL};
static const char *const hazmat_keys[] = {"table",      "tolerance",   "window", "idlh_terms",
                                          "safe_terms", "other_terms", NULL};
static const char *const unsafe_keys[] = {"phrases", "patterns", "negations", NULL};
static const char *const over_keys[] = {"below", "words", NULL};

static int section(const hs_yaml *w, hs_safety *s, int sec, struct fy_node *map, const char *path, int line)
{
    static const char *const *const keys[] = {conf_keys, hazmat_keys, unsafe_keys, over_keys};
    if (hs_yaml_plain_null(map))
        return HS_OK;
    if (!fy_node_is_mapping(map) || fy_node_is_alias(map))
        return hs_yaml_fail(w, line, path, "expected a mapping (key: value lines)");
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(map, &it))) {
        int which, kl;
        char sub[240];
        int rc = key_of(w, p, path, line, keys[sec], &which, &kl, sub, sizeof(sub));
        if (rc != HS_OK)
            return rc;
        struct fy_node *v = fy_node_pair_value(p);
        int vl = first_line(v, kl);
        if (v && fy_node_is_alias(v))
            return hs_yaml_fail(w, vl, sub, "YAML aliases are not supported; write the value out");
        double x;
        switch (sec * 10 + which) {
        case 0: /* confidence.low_prob */
            rc = hs_yaml_float(w, v, sub, vl, 0, 1, true, &s->low_prob);
            break;
        case 10: { /* hazmat.table */
            hs_free(s->table_path);
            s->table_path = NULL;
            s->table_line = vl;
            if (hs_yaml_plain_null(v))
                break;
            size_t len;
            const char *t;
            if (!fy_node_is_scalar(v))
                return hs_yaml_fail(w, vl, sub,
                                    "expected the path of a CSV file, or null to switch the check off");
            rc = scalar(w, v, sub, vl, &t, &len);
            if (rc == HS_OK && memchr(t, 0, len))
                rc = hs_yaml_fail(w, vl, sub, "expected a path without NUL bytes");
            if (rc == HS_OK && len && !(s->table_path = hs_strndup(t, len)))
                rc = hs_err_set(w->err, HS_ENOMEM, "out of memory");
            break;
        }
        case 11:
            rc = hs_yaml_float(w, v, sub, vl, 0, 1, false, &s->tolerance);
            break;
        case 12:
            rc = hs_yaml_float(w, v, sub, vl, 1, 10000, false, &x);
            if (rc == HS_OK && x != (double)(int)x)
                rc = hs_yaml_fail(w, vl, sub, "expected a whole number of characters");
            s->window = (int)x;
            break;
        case 13:
            rc = get_list(w, v, sub, vl, &s->idlh_terms);
            break;
        case 14:
            rc = get_list(w, v, sub, vl, &s->safe_terms);
            break;
        case 15:
            rc = get_list(w, v, sub, vl, &s->other_terms);
            break;
        case 20:
            rc = get_list(w, v, sub, vl, &s->phrases);
            break;
        case 21:
            rc = get_list(w, v, sub, vl, &s->patterns);
            break;
        case 22:
            rc = get_list(w, v, sub, vl, &s->negations);
            break;
        case 30:
            rc = hs_yaml_float(w, v, sub, vl, 0, 1, false, &s->below);
            break;
        case 31:
            rc = get_list(w, v, sub, vl, &s->words);
            break;
        }
        if (rc != HS_OK)
            return rc;
    }
    return HS_OK;
}

static int parse_yaml(const hs_yaml *w, hs_safety *s)
{
    struct fy_document *doc;
    int rc = hs_yaml_load(&doc, w);
    if (rc != HS_OK || !doc)
        return rc; /* no document: nothing but comments and blanks, every default stands */
    struct fy_node *root = fy_document_root(doc);
    if (root && !hs_yaml_plain_null(root)) {
        if (!fy_node_is_mapping(root)) {
            rc = hs_yaml_fail(w, first_line(root, 1), "(top level)",
                              "expected a mapping of sections (confidence:, hazmat:, unsafe_recommendation:, "
                              "overconfident:)");
        } else {
            void *it = NULL;
            struct fy_node_pair *p;
            while (rc == HS_OK && (p = fy_node_mapping_iterate(root, &it))) {
                int which, kl;
                char sub[240];
                rc = key_of(w, p, "", 1, root_keys, &which, &kl, sub, sizeof(sub));
                if (rc == HS_OK)
                    rc = section(w, s, which, fy_node_pair_value(p), sub, kl);
            }
        }
    }
    fy_document_destroy(doc);
    return rc;
}

int hs_safety_parse(const char *text, size_t len, const char *name, hs_safety **out, hs_err *err)
{
    *out = NULL;
    if (!text && len)
        return hs_err_set(err, HS_EINVAL, "safety rules: no text");
    hs_safety *s = hs_calloc(1, sizeof(*s));
    if (!s)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    s->name = hs_strdup(name ? name : "safety.yaml");
    s->low_prob = 0.2;
    s->below = 0.5;
    s->tolerance = 0.10;
    s->window = 160;
    s->table_path = hs_strdup("data/hazmat/idlh.csv");
    s->mctx = pcre2_match_context_create(NULL);
    if (!s->name || !s->table_path || !s->mctx) {
        hs_safety_free(s);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    /* No answer may cost more than this much regex work, whatever a
     * configured pattern does (a check runs on every answer). */
    pcre2_set_match_limit(s->mctx, 200000);
    pcre2_set_depth_limit(s->mctx, 5000);
    pcre2_set_heap_limit(s->mctx, 20000); /* KiB */

    hs_yaml w = {s->name, text ? text : "", len, err, 0};
    int rc = parse_yaml(&w, s);
    if (rc == HS_OK && s->table_path) {
        rc = hs_sfy_hazmat_load(s, err);
        if (rc == HS_EIO && s->table_line > 0)
            hs_err_prefix(err, "%s:%d: hazmat.table: ", s->name, s->table_line);
        else if (rc == HS_EIO)
            hs_err_prefix(err, "%s: hazmat.table (the default; null switches the check off): ", s->name);
    }
    if (rc == HS_OK)
        rc = hs_sfy_hazmat_compile(s, err);
    if (rc == HS_OK)
        rc = hs_sfy_rules_compile(s, err);
    if (rc != HS_OK) {
        hs_safety_free(s);
        return rc;
    }
    *out = s;
    return HS_OK;
}

int hs_safety_load(const char *path, hs_safety **out, hs_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return hs_err_set(err, HS_EIO, "%s: cannot open: %m", path);
    hs_buf text = {0};
    int rc = HS_OK;
    char chunk[8192];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (text.len + got > (4u << 20)) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: larger than 4 MiB; not a safety rules file", path);
            break;
        }
        if (hs_buf_append(&text, chunk, got) != HS_OK) {
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
            break;
        }
    }
    if (rc == HS_OK && ferror(f))
        rc = hs_err_set(err, HS_EIO, "%s: read error", path);
    fclose(f);
    if (rc == HS_OK)
        rc = hs_safety_parse(text.data ? text.data : "", text.len, path, out, err);
    hs_buf_free(&text);
    return rc;
}
