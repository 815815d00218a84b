/* The `monitor:` and `drift:` sections of hestia.yaml (libfyaml's document
 * API), described by tables of fields like the server's own reader
 * (server/config.c), which this layer cannot include; the YAML pieces both
 * use are in base/yaml.h. Every error reads
 * "FILE:LINE: monitor.KEY: what is wrong" with the line of the offending key
 * or value; keys no table knows are errors, so a misspelt threshold is not
 * silently ignored. YAML aliases are refused. */
#include "ops/drift.h"
#include "ops/monitor.h"

#include "base/mem.h"
#include "base/parse.h"
#include "base/yaml.h"

#include <libfyaml.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

void hs_monitor_config_default(struct hs_monitor_config *c)
{
    memset(c, 0, sizeof *c);
    hs_monitor_params_default(&c->params);
    hs_monitor_thresholds_default(&c->thresholds);
    c->interval_s = 10;
    c->enabled = true;
}

/* ---- the tables ---- */

enum ftype {
    T_INT,      /* int in [min, max] */
    T_DOUBLE,   /* double in [min, max] */
    T_U64,      /* uint64_t */
    T_DURATION, /* int64_t milliseconds from "7d", "12h", ... (hs_drift_parse_every) */
    T_STR,      /* char *, owned; null or empty = NULL */
    T_MAP,      /* a nested mapping; its fields' offsets are from the same base */
    T_BOOL,     /* bool: true or false */
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
    {"enabled", T_BOOL, MC(enabled), 0, 0, NULL},
    {"window", T_INT, MC(params.window), 1, 1 << 24, NULL},
    {"hour_samples", T_INT, MC(params.hour_samples), 1, 1 << 20, NULL},
    {"baseline_requests", T_INT, MC(params.baseline_requests), 0, 1 << 24, NULL},
    {"interval_s", T_INT, MC(interval_s), 1, 86400, NULL},
    {"min_samples", T_INT, MC(thresholds.min_samples), 1, 1 << 30, NULL},
    {"thresholds", T_MAP, 0, 0, 0, threshold_fields},
    {NULL, 0, 0, 0, 0, NULL},
};

/* drift: {data: {...}, concept: {...}} (ops/drift.h) */
static const struct field drift_data_fields[] = {
    {"every", T_DURATION, DC(data.every_ms), 0, 0, NULL},
    {"reference", T_STR, DC(data.reference), 0, 0, NULL},
    {"model", T_STR, DC(data.model), 0, 0, NULL},
    {"alpha", T_DOUBLE, DC(data.params.alpha), 1e-12, 0.999999, NULL},
    {"centroid_threshold", T_DOUBLE, DC(data.params.centroid_threshold), 0, 2, NULL},
    {"permutations", T_INT, DC(data.params.permutations), 1, 1000000, NULL},
    {"seed", T_U64, DC(data.params.seed), 0, 0, NULL},
    {"max_samples", T_INT, DC(data.params.max_samples), 2, HS_DRIFT_MAX_SAMPLES, NULL},
    {"min_samples", T_INT, DC(data.min_samples), 2, HS_DRIFT_MAX_SAMPLES, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct field drift_concept_fields[] = {
    {"every", T_DURATION, DC(concept.every_ms), 0, 0, NULL},
    {"reference", T_STR, DC(concept.reference), 0, 0, NULL},
    {"model", T_STR, DC(concept.model), 0, 0, NULL},
    {"similarity_threshold", T_DOUBLE, DC(concept.params.similarity_threshold), 0, 1, NULL},
    {"accuracy_drop_points", T_DOUBLE, DC(concept.params.drop_points), 0, 100, NULL},
    {"max_tokens", T_INT, DC(concept.max_tokens), 1, 1 << 20, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct field drift_fields[] = {
    {"data", T_MAP, 0, 0, 0, drift_data_fields},
    {"concept", T_MAP, 0, 0, 0, drift_concept_fields},
    {NULL, 0, 0, 0, 0, NULL},
};

/* ---- the walk ---- */

static int parse_mapping(const hs_yaml *w, struct fy_node *map, const struct field *fields, char *base,
                         const char *path, int line);

static int parse_value(const hs_yaml *w, const struct field *f, struct fy_node *v, char *base,
                       const char *path, int key_line)
{
    int line = hs_yaml_line(v) ? hs_yaml_line(v) : key_line;
    if (v && fy_node_is_alias(v))
        return hs_yaml_fail(w, line, path, "YAML aliases are not supported; write the value out");
    char buf[64];
    switch (f->type) {
    case T_INT: {
        int64_t x;
        int rc = hs_yaml_int(w, v, path, line, (int64_t)f->min, (int64_t)f->max, &x);
        if (rc == HS_OK)
            *(int *)(void *)(base + f->off) = (int)x;
        return rc;
    }
    case T_DOUBLE:
        return hs_yaml_float(w, v, path, line, f->min, f->max, false, (double *)(void *)(base + f->off));
    case T_U64: {
        uint64_t x;
        if (!hs_yaml_plain_text(v, buf, sizeof buf) || hs_parse_u64(buf, &x) != HS_OK)
            return hs_yaml_fail(w, line, path, "expected a whole number >= 0");
        *(uint64_t *)(void *)(base + f->off) = x;
        return HS_OK;
    }
    case T_DURATION: {
        int64_t ms;
        if (!hs_yaml_plain_text(v, buf, sizeof buf) || hs_drift_parse_every(buf, &ms) != HS_OK)
            return hs_yaml_fail(w, line, path,
                                "expected a duration such as 45s, 30m, 12h, 7d or 2w (0 = never)");
        *(int64_t *)(void *)(base + f->off) = ms;
        return HS_OK;
    }
    case T_STR:
        /* the sections come as nodes without their text: hs_yaml_scalar
           judges single-quoted values on what libfyaml read */
        return hs_yaml_string(w, v, path, line, (char **)(void *)(base + f->off));
    case T_BOOL:
        return hs_yaml_bool(w, v, path, line, (bool *)(void *)(base + f->off));
    case T_MAP:
        if (hs_yaml_plain_null(v))
            return HS_OK;
        if (!fy_node_is_mapping(v))
            return hs_yaml_fail(w, line, path, "expected a mapping (key: value lines)");
        return parse_mapping(w, v, f->sub, base, path, key_line);
    }
    return hs_yaml_fail(w, line, path, "internal: unknown field type");
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

static int parse_mapping(const hs_yaml *w, struct fy_node *map, const struct field *fields, char *base,
                         const char *path, int line)
{
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(map, &it))) {
        struct fy_node *k = fy_node_pair_key(pair);
        struct fy_node *v = fy_node_pair_value(pair);
        int kline = hs_yaml_line(k) ? hs_yaml_line(k) : line;
        if (!k || !fy_node_is_scalar(k) || fy_node_is_alias(k))
            return hs_yaml_fail(w, kline, path, "keys must be plain words");
        size_t klen = 0;
        const char *ks = fy_node_get_scalar(k, &klen);
        if (!ks)
            return hs_yaml_fail(w, kline, path, "unreadable key");
        const struct field *f = fields;
        while (f->key && !(strlen(f->key) == klen && memcmp(f->key, ks, klen) == 0))
            f++;
        char sub[240];
        snprintf(sub, sizeof sub, "%.160s.%.*s", path, (int)(klen > 64 ? 64 : klen), ks);
        if (!f->key) {
            char known[320];
            known_keys(fields, known, sizeof known);
            return hs_yaml_fail(w, kline, sub, "unknown key (known here: %s)", known);
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
    hs_yaml w = {name ? name : "config", NULL, 0, err, HS_YAML_SAY_CONFIG};
    if (section && fy_node_is_alias(section))
        return hs_yaml_fail(&w, line, path, "YAML aliases are not supported; write the value out");
    if (hs_yaml_plain_null(section))
        return HS_OK;
    if (!fy_node_is_mapping(section))
        return hs_yaml_fail(&w, hs_yaml_line(section) ? hs_yaml_line(section) : line, path,
                            "expected a mapping (key: value lines)");
    return parse_mapping(&w, section, fields, base, path, line);
}

int hs_monitor_config_parse_node(struct hs_monitor_config *mc, struct fy_node *section, const char *name,
                                 hs_err *err)
{
    return parse_section(section, monitor_fields, (char *)mc, "monitor", name, 0, err);
}

/* The value of key in a mapping (NULL when absent or not a mapping); *line
 * the key's line. */
static struct fy_node *map_get(struct fy_node *map, const char *key, int *line)
{
    if (!map || !fy_node_is_mapping(map))
        return NULL;
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(map, &it))) {
        struct fy_node *k = fy_node_pair_key(pair);
        size_t klen = 0;
        const char *ks = k && fy_node_is_scalar(k) ? fy_node_get_scalar(k, &klen) : NULL;
        if (ks && klen == strlen(key) && !memcmp(ks, key, klen)) {
            *line = hs_yaml_line(k);
            return fy_node_pair_value(pair);
        }
    }
    return NULL;
}

/* After the keys: a job section that is there but gives no `every` runs at
 * its default period; a scheduled job needs its reference. */
static int drift_job_defaults(const hs_yaml *w, struct fy_node *section, const char *key, int64_t dflt_every,
                              int64_t *every_ms, const char *reference)
{
    int line = 0, every_line = 0;
    struct fy_node *job = map_get(section, key, &line);
    if (!job || hs_yaml_plain_null(job))
        return HS_OK;
    if (!map_get(job, "every", &every_line))
        *every_ms = dflt_every;
    if (*every_ms > 0 && !reference) {
        char path[32];
        snprintf(path, sizeof path, "drift.%s", key);
        return hs_yaml_fail(w, line, path, "a scheduled job needs its reference file (reference: PATH), "
                                           "or every: 0 to run it only by hand");
    }
    return HS_OK;
}

static int parse_drift(struct hs_drift_config *dc, struct fy_node *section, const char *name, int line,
                       hs_err *err)
{
    int rc = parse_section(section, drift_fields, (char *)dc, "drift", name, line, err);
    hs_yaml w = {name ? name : "config", NULL, 0, err, HS_YAML_SAY_CONFIG};
    if (rc == HS_OK)
        rc = drift_job_defaults(&w, section, "data", HS_DRIFT_DATA_EVERY_MS, &dc->data.every_ms,
                                dc->data.reference);
    if (rc == HS_OK)
        rc = drift_job_defaults(&w, section, "concept", HS_DRIFT_CONCEPT_EVERY_MS, &dc->concept.every_ms,
                                dc->concept.reference);
    return rc;
}

int hs_drift_config_parse_node(struct hs_drift_config *dc, struct fy_node *section, const char *name,
                               hs_err *err)
{
    return parse_drift(dc, section, name, 0, err);
}

/* ---- the whole file ---- */

int hs_monitor_config_parse(struct hs_monitor_config *mc, struct hs_drift_config *dc, const char *text,
                            size_t len, const char *name, hs_err *err)
{
    name = name ? name : "config";
    hs_yaml y = {name, text, len, err, HS_YAML_SAY_CONFIG};
    struct fy_document *doc;
    int rc = hs_yaml_load(&doc, &y);
    if (rc != HS_OK || !doc)
        return rc; /* no document and no error: an empty or comment-only file */
    struct fy_node *root = fy_document_root(doc);
    if (root && !hs_yaml_plain_null(root)) {
        if (!fy_node_is_mapping(root)) {
            rc = hs_yaml_fail(&y, hs_yaml_line_or(root, 1), "(top level)", "expected a mapping of sections");
        } else {
            void *it = NULL;
            struct fy_node_pair *pair;
            while (rc == HS_OK && (pair = fy_node_mapping_iterate(root, &it))) {
                struct fy_node *k = fy_node_pair_key(pair);
                size_t klen = 0;
                const char *ks = k && fy_node_is_scalar(k) ? fy_node_get_scalar(k, &klen) : NULL;
                if (!ks)
                    continue; /* the server's reader reports odd keys */
                int kline = hs_yaml_line(k);
                if (mc && klen == 7 && !memcmp(ks, "monitor", 7))
                    rc = parse_section(fy_node_pair_value(pair), monitor_fields, (char *)mc, "monitor", name,
                                       kline, err);
                else if (dc && klen == 5 && !memcmp(ks, "drift", 5))
                    rc = parse_drift(dc, fy_node_pair_value(pair), name, kline, err);
            }
        }
    }
    fy_document_destroy(doc);
    return rc;
}
