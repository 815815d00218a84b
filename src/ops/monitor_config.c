/* The `monitor:` and `drift:` sections of hestia.yaml (libfyaml's document
 * API), described by tables of fields like the server's own reader
 * (server/config.c), which this layer cannot include. Every error reads
 * "FILE:LINE: monitor.KEY: what is wrong" with the line of the offending key
 * or value; keys no table knows are errors, so a misspelt threshold is not
 * silently ignored. YAML aliases are refused. */
#include "ops/drift.h"
#include "ops/monitor.h"

#include "base/mem.h"
#include "base/parse.h"

#include <libfyaml.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <utf8proc.h>

void hs_monitor_config_default(struct hs_monitor_config *c)
{
    memset(c, 0, sizeof *c);
    hs_monitor_params_default(&c->params);
    hs_monitor_thresholds_default(&c->thresholds);
    c->interval_s = 10;
}

/* ---- the tables ---- */

enum ftype {
    T_INT,      /* int in [min, max] */
    T_DOUBLE,   /* double in [min, max] */
    T_U64,      /* uint64_t */
    T_DURATION, /* int64_t milliseconds from "7d", "12h", ... (hs_drift_parse_every) */
    T_STR,      /* char *, owned; null or empty = NULL */
    T_MAP,      /* a nested mapping; its fields' offsets are from the same base */
};

struct field {
    const char *key;
    enum ftype type;
    size_t off;
    double min, max;
    const struct field *sub;
};

#define MC(f) offsetof(struct hs_monitor_config, f)
#define DC(f) offsetof(struct hs_drift_config, f)

static const struct field threshold_fields[] = {
    {"latency_p95_ms", T_DOUBLE, MC(thresholds.latency_p95_ms), 0, 1e9, NULL},
    {"latency_vs_baseline", T_DOUBLE, MC(thresholds.latency_vs_baseline), 0, 1e6, NULL},
    {"thumbs_down_rate", T_DOUBLE, MC(thresholds.thumbs_down_rate), 0, 1, NULL},
    {"safety_rate", T_DOUBLE, MC(thresholds.safety_rate), 0, 1, NULL},
    {"confidence_drop", T_DOUBLE, MC(thresholds.confidence_drop), 0, 1, NULL},
    {"error_rate", T_DOUBLE, MC(thresholds.error_rate), 0, 1, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct field monitor_fields[] = {
    {"window", T_INT, MC(params.window), 1, 1 << 24, NULL},
    {"hour_samples", T_INT, MC(params.hour_samples), 1, 1 << 20, NULL},
    {"baseline_requests", T_INT, MC(params.baseline_requests), 0, 1 << 24, NULL},
    {"interval_s", T_INT, MC(interval_s), 1, 86400, NULL},
    {"min_samples", T_INT, MC(thresholds.min_samples), 1, 1 << 30, NULL},
    {"thresholds", T_MAP, 0, 0, 0, threshold_fields},
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct field drift_fields[] = {
    {"every", T_DURATION, DC(every_ms), 0, 0, NULL},
    {"alpha", T_DOUBLE, DC(data.alpha), 1e-12, 0.999999, NULL},
    {"centroid_threshold", T_DOUBLE, DC(data.centroid_threshold), 0, 2, NULL},
    {"permutations", T_INT, DC(data.permutations), 1, 1000000, NULL},
    {"seed", T_U64, DC(data.seed), 0, 0, NULL},
    {"max_samples", T_INT, DC(data.max_samples), 2, HS_DRIFT_MAX_SAMPLES, NULL},
    {"reference", T_STR, DC(reference), 0, 0, NULL},
    {"similarity_threshold", T_DOUBLE, DC(concept.similarity_threshold), 0, 1, NULL},
    {"accuracy_drop_points", T_DOUBLE, DC(concept.drop_points), 0, 100, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

/* ---- the walk ---- */

struct walk {
    const char *name;
    hs_err *err;
};

static int fail(struct walk *w, int line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct walk *w, int line, const char *path, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        return hs_err_set(w->err, HS_EINVAL, "%s:%d: %s: %s", w->name, line, path, msg);
    return hs_err_set(w->err, HS_EINVAL, "%s: %s: %s", w->name, path, msg);
}

/* 1-based line of a scalar node; 0 for a collection or none. */
static int node_line(struct fy_node *n)
{
    if (!n || !fy_node_is_scalar(n))
        return 0;
    struct fy_token *t = fy_node_get_scalar_token(n);
    const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
    return m ? m->line + 1 : 0;
}

static bool plain_null(struct fy_node *v)
{
    if (!v)
        return true;
    if (!fy_node_is_scalar(v) || fy_node_get_style(v) != FYNS_PLAIN)
        return false;
    size_t len;
    const char *s = fy_node_get_scalar(v, &len);
    return !s || len == 0 || (len == 1 && s[0] == '~') ||
           (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

/* A plain scalar as a NUL-terminated string, for numbers and durations. */
static bool plain_text(struct fy_node *v, char *buf, size_t cap)
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

static int parse_mapping(struct walk *w, struct fy_node *map, const struct field *fields, char *base,
                         const char *path, int line);

static int parse_value(struct walk *w, const struct field *f, struct fy_node *v, char *base, const char *path,
                       int key_line)
{
    int line = node_line(v) ? node_line(v) : key_line;
    if (v && fy_node_is_alias(v))
        return fail(w, line, path, "YAML aliases are not supported; write the value out");
    char buf[64];
    switch (f->type) {
    case T_INT: {
        int64_t x;
        if (!plain_text(v, buf, sizeof buf) ||
            hs_parse_i64(buf, (int64_t)f->min, (int64_t)f->max, &x) != HS_OK)
            return fail(w, line, path, "expected a whole number in %lld..%lld", (long long)f->min,
                        (long long)f->max);
        *(int *)(void *)(base + f->off) = (int)x;
        return HS_OK;
    }
    case T_DOUBLE: {
        double x;
        if (!plain_text(v, buf, sizeof buf) || hs_parse_f64(buf, &x) != HS_OK || !(x >= f->min) ||
            !(x <= f->max))
            return fail(w, line, path, "expected a number in %g..%g", f->min, f->max);
        *(double *)(void *)(base + f->off) = x;
        return HS_OK;
    }
    case T_U64: {
        uint64_t x;
        if (!plain_text(v, buf, sizeof buf) || hs_parse_u64(buf, &x) != HS_OK)
            return fail(w, line, path, "expected a whole number >= 0");
        *(uint64_t *)(void *)(base + f->off) = x;
        return HS_OK;
    }
    case T_DURATION: {
        int64_t ms;
        if (!plain_text(v, buf, sizeof buf) || hs_drift_parse_every(buf, &ms) != HS_OK)
            return fail(w, line, path, "expected a duration such as 45s, 30m, 12h, 7d or 2w (0 = never)");
        *(int64_t *)(void *)(base + f->off) = ms;
        return HS_OK;
    }
    case T_STR: {
        char **dst = (char **)(void *)(base + f->off);
        if (plain_null(v)) {
            hs_free(*dst);
            *dst = NULL;
            return HS_OK;
        }
        if (!fy_node_is_scalar(v))
            return fail(w, line, path, "expected a string");
        size_t len;
        const char *s = fy_node_get_scalar(v, &len);
        if (!s)
            return fail(w, line, path, "unreadable value");
        /* libfyaml 0.7.12 mis-reads some single-quoted '' escapes (see
           server/config.c); a value that came out of one holds a quote */
        if (fy_node_get_style(v) == FYNS_SINGLE_QUOTED && memchr(s, '\'', len))
            return fail(w, line, path,
                        "a single-quoted string with '' inside is not supported; use double quotes");
        if (memchr(s, 0, len))
            return fail(w, line, path, "expected a string without NUL bytes");
        char *copy = hs_strndup(s, len);
        if (!copy)
            return hs_err_set(w->err, HS_ENOMEM, "out of memory");
        hs_free(*dst);
        *dst = copy;
        return HS_OK;
    }
    case T_MAP:
        if (plain_null(v))
            return HS_OK;
        if (!fy_node_is_mapping(v))
            return fail(w, line, path, "expected a mapping (key: value lines)");
        return parse_mapping(w, v, f->sub, base, path, key_line);
    }
    return fail(w, line, path, "internal: unknown field type");
}

static void known_keys(const struct field *fields, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = 0;
    for (const struct field *f = fields; f->key && o < cap; f++) {
        int n = snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", f->key);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

static int parse_mapping(struct walk *w, struct fy_node *map, const struct field *fields, char *base,
                         const char *path, int line)
{
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(map, &it))) {
        struct fy_node *k = fy_node_pair_key(pair);
        struct fy_node *v = fy_node_pair_value(pair);
        int kline = node_line(k) ? node_line(k) : line;
        if (!k || !fy_node_is_scalar(k) || fy_node_is_alias(k))
            return fail(w, kline, path, "keys must be plain words");
        size_t klen = 0;
        const char *ks = fy_node_get_scalar(k, &klen);
        if (!ks)
            return fail(w, kline, path, "unreadable key");
        const struct field *f = fields;
        while (f->key && !(strlen(f->key) == klen && memcmp(f->key, ks, klen) == 0))
            f++;
        char sub[240];
        snprintf(sub, sizeof sub, "%.160s.%.*s", path, (int)(klen > 64 ? 64 : klen), ks);
        if (!f->key) {
            char known[320];
            known_keys(fields, known, sizeof known);
            return fail(w, kline, sub, "unknown key (known here: %s)", known);
        }
        int rc = parse_value(w, f, v, base, sub, kline);
        if (rc != HS_OK)
            return rc;
    }
    return HS_OK;
}

static int parse_section(struct fy_node *section, const struct field *fields, char *base, const char *path,
                         const char *name, int line, hs_err *err)
{
    struct walk w = {name ? name : "config", err};
    if (section && fy_node_is_alias(section))
        return fail(&w, line, path, "YAML aliases are not supported; write the value out");
    if (plain_null(section))
        return HS_OK;
    if (!fy_node_is_mapping(section))
        return fail(&w, node_line(section) ? node_line(section) : line, path,
                    "expected a mapping (key: value lines)");
    return parse_mapping(&w, section, fields, base, path, line);
}

int hs_monitor_config_parse_node(struct hs_monitor_config *mc, struct fy_node *section, const char *name,
                                 hs_err *err)
{
    return parse_section(section, monitor_fields, (char *)mc, "monitor", name, 0, err);
}

int hs_drift_config_parse_node(struct hs_drift_config *dc, struct fy_node *section, const char *name,
                               hs_err *err)
{
    return parse_section(section, drift_fields, (char *)dc, "drift", name, 0, err);
}

/* ---- the whole file ---- */

/* YAML allows only printable Unicode (YAML 1.2, 5.1); libfyaml 0.7.12 also
 * loops forever on some invalid UTF-8, so the text is checked first. */
static int check_text(const char *name, const char *text, size_t len, hs_err *err)
{
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)text;
    int line = 1;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(u + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0)
            return hs_err_set(err, HS_EFORMAT, "%s:%d: not UTF-8 text (byte %zu)", name, line, i);
        bool ok = cp == 0x09 || cp == 0x0A || cp == 0x0D || (cp >= 0x20 && cp <= 0x7E) || cp == 0x85 ||
                  (cp >= 0xA0 && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) || cp >= 0x10000;
        if (!ok)
            return hs_err_set(err, HS_EFORMAT, "%s:%d: control character U+%04X is not allowed in YAML", name,
                              line, (unsigned)cp);
        if (cp == 0x0A)
            line++;
        i += (size_t)k;
    }
    return HS_OK;
}

/* Explicit keys ("? key") are refused before libfyaml sees them: a
 * configuration never needs one and libfyaml 0.7.12 crashes on some. A '?'
 * followed by a blank or a line end is the indicator when it starts a node
 * (first on a line, or after '-', '{', '[', ',' or ':'); quoted scalars and
 * comments are skipped. */
static int check_explicit_keys(const char *name, const char *text, size_t len, hs_err *err)
{
    int line = 1;
    char quote = 0, prev = '\n', last = '\n';
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (ch == '\n')
            line++;
        if (quote) {
            if (quote == '"' && ch == '\\' && i + 1 < len)
                i++;
            else if (ch == quote && !(quote == '\'' && i + 1 < len && text[i + 1] == '\''))
                quote = 0;
            else if (ch == '\'' && quote == '\'')
                i++;
            last = ch;
            continue;
        }
        bool starts =
            last == ' ' || last == '\t' || last == '\n' || last == '{' || last == '[' || last == ',';
        if (ch == '#' && starts) {
            while (i + 1 < len && text[i + 1] != '\n')
                i++;
            continue;
        }
        if ((ch == '"' || ch == '\'') && starts)
            quote = ch;
        else if (ch == '?' && (i + 1 == len || strchr(" \t\r\n", text[i + 1])) && strchr("\n-{[,:", prev))
            return hs_err_set(err, HS_EFORMAT,
                              "%s:%d: explicit mapping keys ('? key') are not supported in the configuration",
                              name, line);
        if (ch != ' ' && ch != '\t' && ch != '\r')
            prev = ch;
        last = ch;
    }
    return HS_OK;
}

static void quiet_output(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    (void)diag;
    (void)user;
    (void)buf;
    (void)len;
}

int hs_monitor_config_parse(struct hs_monitor_config *mc, struct hs_drift_config *dc, const char *text,
                            size_t len, const char *name, hs_err *err)
{
    name = name ? name : "config";
    int rc = check_text(name, text, len, err);
    if (rc == HS_OK)
        rc = check_explicit_keys(name, text, len, err);
    if (rc != HS_OK)
        return rc;
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = quiet_output;
    dcfg.level = FYET_ERROR;
    struct fy_diag *diag = fy_diag_create(&dcfg);
    if (!diag)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg pc;
    memset(&pc, 0, sizeof pc);
    pc.flags = FYPCF_QUIET;
    pc.diag = diag;
    struct fy_document *doc = len ? fy_document_build_from_string(&pc, text, len) : NULL;
    if (!doc) {
        void *it = NULL;
        struct fy_diag_error *de = fy_diag_errors_iterate(diag, &it);
        if (de)
            rc = hs_err_set(err, HS_EFORMAT, "%s:%d:%d: %s", name, de->line, de->column,
                            de->msg ? de->msg : "YAML syntax error");
        fy_diag_destroy(diag);
        return rc; /* no document and no error: an empty or comment-only file */
    }
    struct fy_node *root = fy_document_root(doc);
    if (root && !plain_null(root)) {
        if (!fy_node_is_mapping(root)) {
            struct walk w = {name, err};
            rc = fail(&w, node_line(root) ? node_line(root) : 1, "(top level)",
                      "expected a mapping of sections");
        } else {
            void *it = NULL;
            struct fy_node_pair *pair;
            while (rc == HS_OK && (pair = fy_node_mapping_iterate(root, &it))) {
                struct fy_node *k = fy_node_pair_key(pair);
                size_t klen = 0;
                const char *ks = k && fy_node_is_scalar(k) ? fy_node_get_scalar(k, &klen) : NULL;
                if (!ks)
                    continue; /* the server's reader reports odd keys */
                int kline = node_line(k);
                if (mc && klen == 7 && !memcmp(ks, "monitor", 7))
                    rc = parse_section(fy_node_pair_value(pair), monitor_fields, (char *)mc, "monitor", name,
                                       kline, err);
                else if (dc && klen == 5 && !memcmp(ks, "drift", 5))
                    rc = parse_section(fy_node_pair_value(pair), drift_fields, (char *)dc, "drift", name,
                                       kline, err);
            }
        }
    }
    fy_document_destroy(doc);
    fy_diag_destroy(diag);
    return rc;
}
