/* One item of the configuration's `experiments:` list. The mapping is
 * turned into a jansson tree (every scalar a string, null for a plain null)
 * with the line of each key remembered, and read by the same code as the
 * JSON form (experiment_json.c), so both accept exactly the same
 * definitions. libfyaml's pitfalls are kept away as in every other reader
 * (base/yaml.h): aliases are refused, single-quoted '' scalars too. */
#include "ops/experiment_impl.h"

#include "base/mem.h"
#include "base/yaml.h"

#include <libfyaml.h>
#include <stdio.h>
#include <string.h>

#define MAX_LINES 256
#define MAX_DEPTH 8

struct walk {
    hs_yaml y;
    struct hs_exp_src src;
    char prefix[32]; /* "experiments[3]" */
};

static void note_line(struct walk *w, const char *path, int line)
{
    if (line <= 0 || w->src.n_lines >= MAX_LINES)
        return;
    struct hs_exp_line *l = &w->src.lines[w->src.n_lines++];
    snprintf(l->path, sizeof l->path, "%s", path);
    l->line = line;
}

static int to_json(struct walk *w, struct fy_node *n, const char *path, int line, int depth, json_t **out)
{
    *out = NULL;
    char full[160];
    snprintf(full, sizeof full, "%s.%s", w->prefix, path);
    if (depth > MAX_DEPTH)
        return hs_yaml_fail(&w->y, line, full, "nested too deeply");
    if (n && fy_node_is_alias(n))
        return hs_yaml_fail(&w->y, line, full, "YAML aliases are not supported; write the value out");
    if (hs_yaml_plain_null(n)) {
        *out = json_null();
        return HS_OK;
    }
    if (fy_node_is_scalar(n)) {
        const char *s;
        size_t len;
        int rc = hs_yaml_scalar(&w->y, n, full, line, &s, &len);
        if (rc)
            return rc;
        if (memchr(s, 0, len))
            return hs_yaml_fail(&w->y, line, full, "NUL bytes are not allowed");
        *out = json_stringn(s, len);
        return *out ? HS_OK : hs_yaml_fail(&w->y, line, full, "not valid UTF-8 text");
    }
    if (fy_node_is_sequence(n)) {
        json_t *a = json_array();
        void *it = NULL;
        struct fy_node *item;
        int i = 0;
        while ((item = fy_node_sequence_iterate(n, &it))) {
            char sub[96];
            snprintf(sub, sizeof sub, "%s[%d]", path, i++);
            int iline = hs_yaml_item_line(item, line);
            note_line(w, sub, iline);
            json_t *v;
            int rc = to_json(w, item, sub, iline, depth + 1, &v);
            if (rc) {
                json_decref(a);
                return rc;
            }
            json_array_append_new(a, v);
        }
        *out = a;
        return HS_OK;
    }
    json_t *o = json_object();
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(n, &it))) {
        struct fy_node *k = fy_node_pair_key(pair);
        int kline = hs_yaml_line_or(k, line);
        size_t klen = 0;
        const char *ks =
            k && fy_node_is_scalar(k) && !fy_node_is_alias(k) ? fy_node_get_scalar(k, &klen) : NULL;
        if (!ks || !klen || klen > 40 || memchr(ks, 0, klen)) {
            json_decref(o);
            return hs_yaml_fail(&w->y, kline, full, "keys must be plain words");
        }
        char key[48];
        memcpy(key, ks, klen);
        key[klen] = 0;
        char sub[96];
        if (path[0])
            snprintf(sub, sizeof sub, "%.40s.%s", path, key);
        else
            snprintf(sub, sizeof sub, "%s", key);
        if (json_object_get(o, key)) {
            json_decref(o);
            char kfull[160];
            snprintf(kfull, sizeof kfull, "%s.%s", w->prefix, sub);
            return hs_yaml_fail(&w->y, kline, kfull, "given twice");
        }
        note_line(w, sub, kline);
        json_t *v;
        int rc = to_json(w, fy_node_pair_value(pair), sub, hs_yaml_line_or(fy_node_pair_value(pair), kline),
                         depth + 1, &v);
        if (rc) {
            json_decref(o);
            return rc;
        }
        json_object_set_new(o, key, v);
    }
    *out = o;
    return HS_OK;
}

int hs_experiment_parse_node(struct hs_experiment *e, struct fy_node *node, const char *file, int index,
                             hs_err *err)
{
    hs_experiment_default(e);
    struct hs_exp_line lines[MAX_LINES];
    struct walk w = {
        .y = {file ? file : "config", NULL, 0, err, HS_YAML_SAY_CONFIG},
        .src = {.file = file ? file : "config", .index = index, .lenient = true, .lines = lines, .err = err},
    };
    snprintf(w.prefix, sizeof w.prefix, "experiments[%d]", index);
    w.src.item_line = hs_yaml_item_line(node, 0);
    if (node && fy_node_is_alias(node))
        return hs_yaml_fail(&w.y, w.src.item_line, w.prefix,
                            "YAML aliases are not supported; write the value out");
    if (!node || !fy_node_is_mapping(node))
        return hs_yaml_fail(&w.y, w.src.item_line, w.prefix,
                            "expected a mapping (name, route, mode, a, b, weight, ...)");
    json_t *o;
    int rc = to_json(&w, node, "", w.src.item_line, 0, &o);
    if (rc)
        return rc;
    rc = hs_exp_read(e, o, &w.src);
    json_decref(o);
    return rc;
}
