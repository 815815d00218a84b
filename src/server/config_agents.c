/* (issue 5) The configuration's adapters, agents and named schemas: reading
 * them from YAML (the walk of config.c, through config_impl.h), turning
 * schemas written as YAML into JSON text, and their part of
 * hs_serve_config_check.
 *
 * What a file declares is collected apart (struct hs_cfg_pending) and added
 * to the configuration once the whole file has been read: an agent may name
 * a schema written below it, and a file with a mistake adds nothing. Every
 * entry keeps its file and line, so that a mistake found later (an unknown
 * adapter, a missing file, an adapter for another base model) can still be
 * reported as "FILE:LINE: agents[I] (ID): ...". */
#include "server/config_impl.h"

#include "base/mem.h"
#include "base/parse.h"
#include "model/json_schema.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A LoRA scale beyond this is a typo, not a setting: deltas that large
 * swamp the base weights. */
#define SCALE_MAX 10.0
#define NAME_MAX_LEN 128
/* Nesting of a schema written as YAML; real schemas stay far below. */
#define SCHEMA_MAX_DEPTH 64

#define AGENT(f) offsetof(struct hs_agent, f)
#define ADAPTER(f) offsetof(struct hs_adapter_entry, f)
#define LORA(f) offsetof(struct hs_agent_lora, f)

static const struct hs_cfg_field adapter_fields[] = {
    {"name", F_STR, ADAPTER(name), 0, 0, NULL},
    {"path", F_STR, ADAPTER(path), 0, 0, NULL},
    {"model", F_STR, ADAPTER(model), 0, 0, NULL},
    {"scale", F_FLOAT, ADAPTER(scale), -SCALE_MAX, SCALE_MAX, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct hs_cfg_field lora_fields[] = {
    {"name", F_STR, LORA(adapter), 0, 0, NULL},
    {"scale", F_FLOAT, LORA(scale), -SCALE_MAX, SCALE_MAX, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

/* The ranges OpenAI's API and hestia's sampler accept. */
static const struct hs_cfg_field sampling_fields[] = {
    {"temperature", F_FLOAT, AGENT(temperature), 0, 2, NULL},   {"top_p", F_FLOAT, AGENT(top_p), 0, 1, NULL},
    {"top_k", F_INT, AGENT(top_k), 0, 1000000, NULL},           {"min_p", F_FLOAT, AGENT(min_p), 0, 1, NULL},
    {"max_tokens", F_INT, AGENT(max_tokens), 1, 1 << 24, NULL}, {NULL, 0, 0, 0, 0, NULL},
};

static const struct hs_cfg_field agent_fields[] = {
    {"id", F_STR, AGENT(id), 0, 0, NULL},       {"name", F_STR, AGENT(name), 0, 0, NULL},
    {"role", F_STR, AGENT(role), 0, 0, NULL},   {"expertise", F_STR, AGENT(expertise), 0, 0, NULL},
    {"model", F_STR, AGENT(model), 0, 0, NULL}, {"system_prompt", F_STR, AGENT(system_prompt), 0, 0, NULL},
    {"adapters", F_LORAS, 0, 0, 0, NULL},       {"sampling", F_MAP, 0, 0, 0, sampling_fields},
    {"schema", F_SCHEMA, 0, 0, 0, NULL},        {NULL, 0, 0, 0, 0, NULL},
};

const struct hs_cfg_field hs_cfg_agents_root[] = {
    {"adapters", F_ADAPTERS, 0, 0, 0, NULL},
    {"agents", F_AGENTS, 0, 0, 0, NULL},
    {"schemas", F_SCHEMAS, 0, 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

/* Adapter names and agent ids travel in JSON "model" fields and in log
 * lines: one visible word of reasonable length. */
static bool valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static const char *name_rule = "1..128 bytes without spaces or control characters";

/* --- schemas: YAML -> JSON text --- */

/* The fewest significant digits that give x back: jansson writes reals with
 * 17 digits, so 0.1 would read 0.10000000000000001 in the prompt-facing
 * schema text. */
static int real_digits(double x)
{
    char buf[40];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(buf, sizeof(buf), "%.*g", p, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    /* %g turns to an exponent once the integer part has more digits than
       the precision: 1000 would read 1e+03 */
    double a = fabs(x);
    int int_digits = a >= 1 ? (int)floor(log10(a)) + 1 : 1;
    if (int_digits > p && int_digits <= 17)
        p = int_digits;
    return p;
}

static int max_real_digits(const json_t *v)
{
    int m = 0;
    if (json_is_real(v)) {
        m = real_digits(json_real_value(v));
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            int d = max_real_digits(x);
            m = d > m ? d : m;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            int d = max_real_digits(x);
            m = d > m ? d : m;
        }
    }
    return m;
}

/* Compact JSON in the order written (the order a constrained answer
 * generates properties in). Returns a new string (hs_free) or NULL. */
static char *dump_json(const json_t *v)
{
    size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
    int digits = max_real_digits(v);
    if (digits > 0)
        flags |= JSON_REAL_PRECISION(digits);
    char *s = json_dumps(v, flags);
    if (!s)
        return NULL;
    char *copy = hs_strdup(s);
    free(s); /* jansson's allocator */
    return copy;
}

/* YAML 1.2 core-schema decimal numbers: an integer, or digits with a point
 * and/or an exponent. Hex, octal, .inf and .nan stay strings. */
static bool is_int_text(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static bool is_float_text(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    size_t digits = 0;
    while (*s >= '0' && *s <= '9') {
        s++;
        digits++;
    }
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            s++;
            digits++;
        }
    }
    if (digits == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        if (*s < '0' || *s > '9')
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == 0;
}

/* A plain scalar as JSON: null, a boolean, a number or a string. */
static json_t *plain_scalar_json(const char *s, size_t len)
{
    char buf[64];
    if (len < sizeof(buf)) {
        memcpy(buf, s, len);
        buf[len] = 0;
        if (len == 0 || strcmp(buf, "~") == 0 || strcmp(buf, "null") == 0 || strcmp(buf, "Null") == 0 ||
            strcmp(buf, "NULL") == 0)
            return json_null();
        if (strcmp(buf, "true") == 0 || strcmp(buf, "True") == 0 || strcmp(buf, "TRUE") == 0)
            return json_true();
        if (strcmp(buf, "false") == 0 || strcmp(buf, "False") == 0 || strcmp(buf, "FALSE") == 0)
            return json_false();
        int64_t i;
        double d;
        if (is_int_text(buf) && hs_parse_i64(buf, INT64_MIN, INT64_MAX, &i) == HS_OK)
            return json_integer((json_int_t)i);
        if ((is_int_text(buf) || is_float_text(buf)) && hs_parse_f64(buf, &d) == HS_OK)
            return json_real(d);
    }
    return json_stringn(s, len);
}

static int yaml_to_json(struct hs_cfg_walk *w, struct fy_node *n, const char *path, int line, int depth,
                        json_t **out)
{
    *out = NULL;
    int nline = hs_yaml_line(n) ? hs_yaml_line(n) : line;
    if (depth > SCHEMA_MAX_DEPTH)
        return hs_yaml_fail(&w->y, nline, path, "nested more than %d levels deep", SCHEMA_MAX_DEPTH);
    if (n && fy_node_is_alias(n))
        return hs_yaml_fail(&w->y, nline, path, "YAML aliases are not supported; write the value out");
    if (!n) {
        *out = json_null();
        return HS_OK;
    }
    if (fy_node_is_scalar(n)) {
        const char *s;
        size_t len;
        int rc = hs_yaml_scalar(&w->y, n, path, nline, &s, &len);
        if (rc != HS_OK)
            return rc;
        *out = fy_node_get_style(n) == FYNS_PLAIN ? plain_scalar_json(s, len) : json_stringn(s, len);
        if (!*out)
            return hs_yaml_fail(&w->y, nline, path, "not a JSON string (invalid UTF-8?)");
        return HS_OK;
    }
    if (fy_node_is_sequence(n)) {
        json_t *arr = json_array();
        if (!arr)
            return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
        void *it = NULL;
        struct fy_node *item;
        int i = 0;
        while ((item = fy_node_sequence_iterate(n, &it))) {
            char sub[240];
            snprintf(sub, sizeof(sub), "%.200s[%d]", path, i++);
            json_t *v;
            int rc = yaml_to_json(w, item, sub, nline, depth + 1, &v);
            if (rc == HS_OK && json_array_append_new(arr, v) != 0) /* steals v */
                rc = hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
            if (rc != HS_OK) {
                json_decref(arr);
                return rc;
            }
        }
        *out = arr;
        return HS_OK;
    }
    json_t *obj = json_object();
    if (!obj)
        return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(n, &it))) {
        struct fy_node *k = fy_node_pair_key(pair);
        int kline = hs_yaml_line(k) ? hs_yaml_line(k) : nline;
        const char *ks = NULL;
        size_t klen = 0;
        int rc = HS_OK;
        if (!k || !fy_node_is_scalar(k) || fy_node_is_alias(k))
            rc = hs_yaml_fail(&w->y, kline, path, "keys must be plain words");
        if (rc == HS_OK)
            rc = hs_yaml_scalar(&w->y, k, path, kline, &ks, &klen);
        char key[256];
        if (rc == HS_OK && (klen >= sizeof(key) || memchr(ks, 0, klen)))
            rc = hs_yaml_fail(&w->y, kline, path, "a key longer than %zu bytes or with a NUL byte",
                              sizeof(key) - 1);
        char sub[240];
        if (rc == HS_OK) {
            memcpy(key, ks, klen);
            key[klen] = 0;
            snprintf(sub, sizeof(sub), "%.160s.%.64s", path, key);
        }
        json_t *v = NULL;
        if (rc == HS_OK)
            rc = yaml_to_json(w, fy_node_pair_value(pair), sub, kline, depth + 1, &v);
        if (rc == HS_OK && json_object_set_new(obj, key, v) != 0) /* steals v */
            rc = hs_yaml_fail(&w->y, kline, sub, "not a JSON key (invalid UTF-8?)");
        if (rc != HS_OK) {
            json_decref(obj);
            return rc;
        }
    }
    *out = obj;
    return HS_OK;
}

/* A schema value: a YAML mapping, a JSON object in a string, or (when ref
 * is given) the name of a `schemas` entry. Sets *json (a new string) or
 * *ref (a new string); a null value sets neither. */
static int schema_value(struct hs_cfg_walk *w, struct fy_node *v, const char *path, int key_line, char **json,
                        char **ref)
{
    *json = NULL;
    if (ref)
        *ref = NULL;
    int line = hs_yaml_line(v) ? hs_yaml_line(v) : key_line;
    if (v && fy_node_is_alias(v))
        return hs_yaml_fail(&w->y, line, path, "YAML aliases are not supported; write the value out");
    if (hs_yaml_plain_null(v))
        return HS_OK;
    json_t *doc = NULL;
    if (fy_node_is_mapping(v)) {
        int rc = yaml_to_json(w, v, path, key_line, 0, &doc);
        if (rc != HS_OK)
            return rc;
    } else if (fy_node_is_scalar(v)) {
        const char *s;
        size_t len;
        int rc = hs_yaml_scalar(&w->y, v, path, line, &s, &len);
        if (rc != HS_OK)
            return rc;
        size_t lead = 0;
        while (lead < len && (s[lead] == ' ' || s[lead] == '\t' || s[lead] == '\n' || s[lead] == '\r'))
            lead++;
        if (lead < len && s[lead] == '{') {
            json_error_t je;
            doc = json_loadb(s, len, JSON_REJECT_DUPLICATES, &je);
            if (!doc)
                return hs_yaml_fail(&w->y, line, path, "not valid JSON (line %d of the text, column %d: %s)",
                                    je.line, je.column, je.text);
        } else if (ref) {
            char *name = hs_strndup(s, len);
            if (!name)
                return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
            if (!valid_name(name) || strlen(name) != len) {
                hs_free(name);
                return hs_yaml_fail(
                    &w->y, line, path,
                    "expected a JSON Schema: a mapping, a JSON object in a string, or the name "
                    "of a `schemas` entry");
            }
            *ref = name;
            return HS_OK;
        } else {
            return hs_yaml_fail(&w->y, line, path,
                                "expected a JSON Schema: a mapping or a JSON object in a string");
        }
    } else {
        return hs_yaml_fail(&w->y, line, path, "expected a JSON Schema (a mapping), not a list");
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        return hs_yaml_fail(&w->y, line, path, "a JSON Schema must be a JSON object");
    }
    *json = dump_json(doc);
    json_decref(doc);
    if (!*json)
        return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
    return HS_OK;
}

int hs_cfg_parse_schema(struct hs_cfg_walk *w, struct fy_node *v, struct hs_agent *a, const char *path,
                        int line)
{
    char *json, *ref;
    int rc = schema_value(w, v, path, line, &json, &ref);
    if (rc != HS_OK)
        return rc;
    hs_free(a->schema);
    a->schema = json;
    hs_free(w->p.cur_ref);
    w->p.cur_ref = ref;
    w->p.cur_ref_line = hs_yaml_line(v) ? hs_yaml_line(v) : line;
    return HS_OK;
}

int hs_cfg_parse_schemas(struct hs_cfg_walk *w, struct fy_node *map, const char *path, int line)
{
    if (hs_yaml_plain_null(map))
        return HS_OK;
    if (fy_node_is_alias(map) || !fy_node_is_mapping(map))
        return hs_yaml_fail(&w->y, hs_yaml_line(map) ? hs_yaml_line(map) : line, path,
                            "expected a mapping of names to JSON Schemas");
    int n = fy_node_mapping_item_count(map);
    if (n <= 0)
        return HS_OK;
    struct hs_cfg_schema *grown =
        hs_realloc_array(w->p.schemas, (size_t)w->p.n_schemas + (size_t)n, sizeof(*grown));
    if (!grown)
        return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
    w->p.schemas = grown;
    void *it = NULL;
    struct fy_node_pair *pair;
    int i = 0;
    while (i < n && (pair = fy_node_mapping_iterate(map, &it))) {
        i++;
        struct fy_node *k = fy_node_pair_key(pair);
        int kline = hs_yaml_line(k) ? hs_yaml_line(k) : line;
        const char *ks;
        size_t klen;
        if (!k || !fy_node_is_scalar(k) || fy_node_is_alias(k))
            return hs_yaml_fail(&w->y, kline, path, "keys must be plain words");
        int rc = hs_yaml_scalar(&w->y, k, path, kline, &ks, &klen);
        if (rc != HS_OK)
            return rc;
        char sub[240];
        snprintf(sub, sizeof(sub), "%.160s.%.*s", path, (int)(klen > 64 ? 64 : klen), ks);
        char *name = hs_strndup(ks, klen);
        if (!name)
            return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
        if (!valid_name(name) || strlen(name) != klen) {
            hs_free(name);
            return hs_yaml_fail(&w->y, kline, sub, "a schema name is %s", name_rule);
        }
        char *json;
        rc = schema_value(w, fy_node_pair_value(pair), sub, kline, &json, NULL);
        if (rc == HS_OK && !json)
            rc = hs_yaml_fail(&w->y, kline, sub, "expected a JSON Schema, not an empty value");
        if (rc != HS_OK) {
            hs_free(name);
            return rc;
        }
        struct hs_cfg_schema *e = &w->p.schemas[w->p.n_schemas++];
        e->name = name;
        e->json = json;
        e->line = kline;
    }
    return HS_OK;
}

/* --- adapters --- */

/* The name already used by an adapter or agent of this file, or NULL. */
static const char *pending_owner(const struct hs_cfg_pending *p, const char *name, int *line)
{
    for (int i = 0; i < p->n_adapters; i++)
        if (p->adapters[i].name && strcmp(p->adapters[i].name, name) == 0) {
            *line = p->adapters[i].line;
            return "adapter";
        }
    for (int i = 0; i < p->n_agents; i++)
        if (p->agents[i].id && strcmp(p->agents[i].id, name) == 0) {
            *line = p->agents[i].line;
            return "agent";
        }
    return NULL;
}

/* The items of a list: NULL (and *n 0) for an empty value, else checks it
 * is a sequence. */
static int list_items(struct hs_cfg_walk *w, struct fy_node *seq, const char *path, int line,
                      const char *what, int *n)
{
    *n = 0;
    if (hs_yaml_plain_null(seq))
        return HS_OK;
    if (fy_node_is_alias(seq) || !fy_node_is_sequence(seq))
        return hs_yaml_fail(&w->y, hs_yaml_line(seq) ? hs_yaml_line(seq) : line, path,
                            "expected a list of %s (lines starting with '-')", what);
    *n = fy_node_sequence_item_count(seq);
    return HS_OK;
}

int hs_cfg_parse_adapters(struct hs_cfg_walk *w, struct fy_node *seq, const char *path, int line)
{
    int n;
    int rc = list_items(w, seq, path, line, "adapters", &n);
    if (rc != HS_OK || n <= 0)
        return rc;
    struct hs_adapter_entry *grown =
        hs_realloc_array(w->p.adapters, (size_t)w->p.n_adapters + (size_t)n, sizeof(*grown));
    if (!grown)
        return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
    w->p.adapters = grown;
    void *it = NULL;
    struct fy_node *item;
    int prev_line = line;
    for (int i = 0; i < n && (item = fy_node_sequence_iterate(seq, &it)); i++) {
        char sub[200];
        snprintf(sub, sizeof(sub), "%.160s[%d]", path, i);
        int eline = hs_yaml_item_line(item, prev_line);
        prev_line = eline;
        if (!item || fy_node_is_alias(item) || !fy_node_is_mapping(item))
            return hs_yaml_fail(&w->y, eline, sub, "expected a mapping (name: ..., path: ...)");
        /* counted before it is filled, so that a failure frees what it holds */
        struct hs_adapter_entry *a = &w->p.adapters[w->p.n_adapters++];
        memset(a, 0, sizeof(*a));
        a->scale = 1.0f;
        a->line = eline;
        a->file = hs_strdup(w->y.name);
        if (!a->file)
            return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
        rc = hs_cfg_parse_mapping(w, item, adapter_fields, (char *)a, sub, eline);
        if (rc != HS_OK)
            return rc;
        if (!valid_name(a->name))
            return hs_yaml_fail(&w->y, eline, sub, "an adapter needs a name (%s)", name_rule);
        snprintf(sub, sizeof(sub), "%.100s[%d] (%.64s)", path, i, a->name);
        if (!a->path || !a->path[0])
            return hs_yaml_fail(&w->y, eline, sub, "an adapter needs a path (a GGUF LoRA file)");
        w->p.n_adapters--; /* not its own duplicate */
        int other = 0;
        const char *kind = pending_owner(&w->p, a->name, &other);
        w->p.n_adapters++;
        if (kind)
            return hs_yaml_fail(&w->y, eline, sub, "the name '%s' is already used by the %s at line %d",
                                a->name, kind, other);
    }
    return HS_OK;
}

/* --- agents --- */

int hs_cfg_parse_loras(struct hs_cfg_walk *w, struct fy_node *seq, struct hs_agent *a, const char *path,
                       int line)
{
    int n;
    int rc = list_items(w, seq, path, line, "adapter names or {name, scale}", &n);
    if (rc != HS_OK || n <= 0)
        return rc;
    a->loras = hs_calloc((size_t)n, sizeof(*a->loras));
    if (!a->loras)
        return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
    void *it = NULL;
    struct fy_node *item;
    int prev_line = line;
    for (int i = 0; i < n && (item = fy_node_sequence_iterate(seq, &it)); i++) {
        char sub[240];
        snprintf(sub, sizeof(sub), "%.200s[%d]", path, i);
        int eline = hs_yaml_item_line(item, prev_line);
        prev_line = eline;
        struct hs_agent_lora *l = &a->loras[a->n_loras++];
        l->scale = NAN;
        if (item && !fy_node_is_alias(item) && fy_node_is_scalar(item) && !hs_yaml_plain_null(item)) {
            const char *s;
            size_t len;
            rc = hs_yaml_scalar(&w->y, item, sub, eline, &s, &len);
            if (rc != HS_OK)
                return rc;
            l->adapter = hs_strndup(s, len);
            if (!l->adapter)
                return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
            if (strlen(l->adapter) != len)
                return hs_yaml_fail(&w->y, eline, sub, "an adapter name is %s", name_rule);
        } else if (item && !fy_node_is_alias(item) && fy_node_is_mapping(item)) {
            rc = hs_cfg_parse_mapping(w, item, lora_fields, (char *)l, sub, eline);
            if (rc != HS_OK)
                return rc;
        } else {
            return hs_yaml_fail(&w->y, eline, sub, "expected an adapter name or {name: ..., scale: ...}");
        }
        if (!valid_name(l->adapter))
            return hs_yaml_fail(&w->y, eline, sub, "an adapter name is %s", name_rule);
        for (int j = 0; j < i; j++)
            if (strcmp(a->loras[j].adapter, l->adapter) == 0)
                return hs_yaml_fail(&w->y, eline, sub, "adapter '%s' is named twice", l->adapter);
    }
    return HS_OK;
}

int hs_cfg_parse_agents(struct hs_cfg_walk *w, struct fy_node *seq, const char *path, int line)
{
    int n;
    int rc = list_items(w, seq, path, line, "agents", &n);
    if (rc != HS_OK || n <= 0)
        return rc;
    size_t total = (size_t)w->p.n_agents + (size_t)n;
    struct hs_agent *agents = hs_realloc_array(w->p.agents, total, sizeof(*agents));
    if (agents)
        w->p.agents = agents;
    char **refs = agents ? hs_realloc_array(w->p.schema_refs, total, sizeof(*refs)) : NULL;
    if (refs)
        w->p.schema_refs = refs;
    int *ref_lines = refs ? hs_realloc_array(w->p.schema_ref_lines, total, sizeof(*ref_lines)) : NULL;
    if (!ref_lines)
        return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
    w->p.schema_ref_lines = ref_lines;
    void *it = NULL;
    struct fy_node *item;
    int prev_line = line;
    for (int i = 0; i < n && (item = fy_node_sequence_iterate(seq, &it)); i++) {
        char sub[200];
        snprintf(sub, sizeof(sub), "%.160s[%d]", path, i);
        int eline = hs_yaml_item_line(item, prev_line);
        prev_line = eline;
        if (!item || fy_node_is_alias(item) || !fy_node_is_mapping(item))
            return hs_yaml_fail(&w->y, eline, sub, "expected a mapping (id: ..., system_prompt: ...)");
        int k = w->p.n_agents++;
        struct hs_agent *a = &w->p.agents[k];
        hs_agent_init(a);
        w->p.schema_refs[k] = NULL;
        w->p.schema_ref_lines[k] = 0;
        a->line = eline;
        a->file = hs_strdup(w->y.name);
        if (!a->file)
            return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
        hs_free(w->p.cur_ref);
        w->p.cur_ref = NULL;
        rc = hs_cfg_parse_mapping(w, item, agent_fields, (char *)a, sub, eline);
        w->p.schema_refs[k] = w->p.cur_ref;
        w->p.schema_ref_lines[k] = w->p.cur_ref_line;
        w->p.cur_ref = NULL;
        if (rc != HS_OK)
            return rc;
        if (!valid_name(a->id))
            return hs_yaml_fail(&w->y, eline, sub, "an agent needs an id (%s): what clients put in \"model\"",
                                name_rule);
        snprintf(sub, sizeof(sub), "%.100s[%d] (%.64s)", path, i, a->id);
        if (!a->system_prompt || !a->system_prompt[0])
            return hs_yaml_fail(&w->y, eline, sub, "an agent needs a system_prompt (its persona)");
        if (!a->name && !(a->name = hs_strdup(a->id))) /* the display name defaults to the id */
            return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
        w->p.n_agents--; /* not its own duplicate */
        int other = 0;
        const char *kind = pending_owner(&w->p, a->id, &other);
        w->p.n_agents++;
        if (kind)
            return hs_yaml_fail(&w->y, eline, sub, "the id '%s' is already used by the %s at line %d", a->id,
                                kind, other);
    }
    return HS_OK;
}

/* --- adding a file's entries to the configuration --- */

/* What already holds name in c, among the models, the first n_adapters
 * adapters and the first n_agents agents: "a model", "an adapter", "an agent"
 * or NULL; *where gets the holder's " (FILE:LINE)" when it has one. */
static const char *config_owner(const struct hs_serve_config *c, const char *name, int n_adapters,
                                int n_agents, char *where, size_t cap)
{
    where[0] = 0;
    if (hs_serve_config_find_model(c, name) >= 0)
        return "a model";
    for (int i = 0; i < n_adapters; i++)
        if (c->adapters[i].name && strcmp(c->adapters[i].name, name) == 0) {
            if (c->adapters[i].file)
                snprintf(where, cap, " (%.200s:%d)", c->adapters[i].file, c->adapters[i].line);
            return "an adapter";
        }
    for (int i = 0; i < n_agents; i++)
        if (c->agents[i].id && strcmp(c->agents[i].id, name) == 0) {
            if (c->agents[i].file)
                snprintf(where, cap, " (%.200s:%d)", c->agents[i].file, c->agents[i].line);
            return "an agent";
        }
    return NULL;
}

int hs_cfg_pending_commit(struct hs_cfg_walk *w)
{
    struct hs_cfg_pending *p = &w->p;
    struct hs_serve_config *c = w->c;
    char sub[200], where[240];
    for (int i = 0; i < p->n_agents; i++) {
        if (!p->schema_refs[i])
            continue;
        snprintf(sub, sizeof(sub), "agents[%d] (%.64s).schema", i, p->agents[i].id);
        const struct hs_cfg_schema *s = NULL;
        for (int j = 0; j < p->n_schemas && !s; j++)
            if (strcmp(p->schemas[j].name, p->schema_refs[i]) == 0)
                s = &p->schemas[j];
        if (!s)
            return hs_yaml_fail(&w->y, p->schema_ref_lines[i], sub,
                                "no schema named '%s' in this file's schemas:", p->schema_refs[i]);
        hs_free(p->agents[i].schema);
        if (!(p->agents[i].schema = hs_strdup(s->json)))
            return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
        hs_free(p->schema_refs[i]); /* resolved */
        p->schema_refs[i] = NULL;
    }
    /* the same file read twice (agents_file and --agents naming one file)
       shows as every name taken at its own place: say so plainly */
    char self[240];
    for (int i = 0; i < p->n_adapters; i++) {
        const char *kind =
            config_owner(c, p->adapters[i].name, c->n_adapters, c->n_agents, where, sizeof(where));
        snprintf(sub, sizeof(sub), "adapters[%d] (%.64s)", i, p->adapters[i].name);
        snprintf(self, sizeof(self), " (%.200s:%d)", w->y.name, p->adapters[i].line);
        if (kind && strcmp(where, self) == 0)
            return hs_yaml_fail(&w->y, p->adapters[i].line, sub, "this file is already loaded");
        if (kind)
            return hs_yaml_fail(&w->y, p->adapters[i].line, sub, "the name '%s' is already used by %s%s",
                                p->adapters[i].name, kind, where);
    }
    for (int i = 0; i < p->n_agents; i++) {
        const char *kind = config_owner(c, p->agents[i].id, c->n_adapters, c->n_agents, where, sizeof(where));
        snprintf(sub, sizeof(sub), "agents[%d] (%.64s)", i, p->agents[i].id);
        snprintf(self, sizeof(self), " (%.200s:%d)", w->y.name, p->agents[i].line);
        if (kind && strcmp(where, self) == 0)
            return hs_yaml_fail(&w->y, p->agents[i].line, sub, "this file is already loaded");
        if (kind)
            return hs_yaml_fail(&w->y, p->agents[i].line, sub, "the id '%s' is already used by %s%s",
                                p->agents[i].id, kind, where);
    }
    /* both arrays grown before anything moves: a failure changes nothing */
    if (p->n_adapters > 0) {
        struct hs_adapter_entry *a =
            hs_realloc_array(c->adapters, (size_t)c->n_adapters + (size_t)p->n_adapters, sizeof(*a));
        if (!a)
            return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
        c->adapters = a;
    }
    if (p->n_agents > 0) {
        struct hs_agent *a =
            hs_realloc_array(c->agents, (size_t)c->n_agents + (size_t)p->n_agents, sizeof(*a));
        if (!a)
            return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
        c->agents = a;
    }
    if (p->n_adapters > 0)
        memcpy(&c->adapters[c->n_adapters], p->adapters, (size_t)p->n_adapters * sizeof(*p->adapters));
    if (p->n_agents > 0)
        memcpy(&c->agents[c->n_agents], p->agents, (size_t)p->n_agents * sizeof(*p->agents));
    c->n_adapters += p->n_adapters;
    c->n_agents += p->n_agents;
    p->n_adapters = 0; /* moved: pending_free must not free them */
    p->n_agents = 0;
    return HS_OK;
}

void hs_cfg_pending_free(struct hs_cfg_pending *p)
{
    for (int i = 0; i < p->n_adapters; i++)
        hs_cfg_adapter_free(&p->adapters[i]);
    hs_free(p->adapters);
    for (int i = 0; i < p->n_agents; i++) {
        hs_agent_free(&p->agents[i]);
        hs_free(p->schema_refs[i]);
    }
    hs_free(p->agents);
    hs_free(p->schema_refs);
    hs_free(p->schema_ref_lines);
    for (int i = 0; i < p->n_schemas; i++) {
        hs_free(p->schemas[i].name);
        hs_free(p->schemas[i].json);
    }
    hs_free(p->schemas);
    hs_free(p->agents_file);
    hs_free(p->cur_ref);
    memset(p, 0, sizeof(*p));
}

/* --- the checks --- */

/* "FILE:LINE: KIND[I] (NAME)", I counting the entries of the same file
 * before this one (files are appended whole, so that is its index there). */
static void entry_where(char *buf, size_t cap, const char *kind, const char *file, int line, int index,
                        const char *name)
{
    if (file)
        snprintf(buf, cap, "%.200s:%d: %s[%d] (%.64s)", file, line, kind, index, name ? name : "?");
    else
        snprintf(buf, cap, "%s[%d] (%.64s)", kind, index, name ? name : "?");
}

static int file_index_adapter(const struct hs_serve_config *c, int i)
{
    int k = 0;
    for (int j = 0; j < i; j++)
        if (c->adapters[j].file && c->adapters[i].file &&
            strcmp(c->adapters[j].file, c->adapters[i].file) == 0)
            k++;
    return c->adapters[i].file ? k : i;
}

static int file_index_agent(const struct hs_serve_config *c, int i)
{
    int k = 0;
    for (int j = 0; j < i; j++)
        if (c->agents[j].file && c->agents[i].file && strcmp(c->agents[j].file, c->agents[i].file) == 0)
            k++;
    return c->agents[i].file ? k : i;
}

static bool unset_or_in(float x, double lo, double hi)
{
    return isnan(x) || (x >= lo && x <= hi);
}

/* The local model an adapter adapts: its `model`, or the first local one;
 * -1 when there is none. */
static int adapter_model(const struct hs_serve_config *c, const struct hs_adapter_entry *a)
{
    if (a->model)
        return hs_serve_config_find_model(c, a->model);
    for (int i = 0; i < c->n_models; i++)
        if (c->models[i].path)
            return i;
    return -1;
}

static int check_adapter(const struct hs_serve_config *c, int i, hs_err *err)
{
    const struct hs_adapter_entry *a = &c->adapters[i];
    char at[320], where[240];
    entry_where(at, sizeof(at), "adapters", a->file, a->line, file_index_adapter(c, i), a->name);
    if (!valid_name(a->name))
        return hs_err_set(err, HS_EINVAL, "%s: the name must be %s", at, name_rule);
    if (!a->path || !a->path[0])
        return hs_err_set(err, HS_EINVAL, "%s: an adapter needs a path (a GGUF LoRA file)", at);
    if (!(a->scale >= -SCALE_MAX && a->scale <= SCALE_MAX))
        return hs_err_set(err, HS_EINVAL, "%s: scale must be in %g..%g", at, -SCALE_MAX, SCALE_MAX);
    const char *kind = config_owner(c, a->name, i, 0, where, sizeof(where));
    if (kind)
        return hs_err_set(err, HS_EINVAL, "%s: the name '%s' is also used by %s%s", at, a->name, kind, where);
    if (c->n_models == 0) /* agents alone (hestia assess): nothing to adapt here */
        return HS_OK;
    int m = adapter_model(c, a);
    if (m < 0 && a->model)
        return hs_err_set(err, HS_EINVAL, "%s: model '%s' is not a configured model", at, a->model);
    if (m < 0)
        return hs_err_set(err, HS_EINVAL, "%s: there is no local model for it to adapt", at);
    if (!c->models[m].path)
        return hs_err_set(err, HS_EINVAL, "%s: model '%s' is an upstream; adapters apply to local models", at,
                          c->models[m].name);
    struct stat st;
    if (stat(a->path, &st) != 0)
        return hs_err_set(err, HS_EIO, "%s: %s: %s", at, a->path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return hs_err_set(err, HS_EIO, "%s: %s: not a regular file", at, a->path);
    return HS_OK;
}

static int check_schema(const char *at, const char *schema, hs_err *err)
{
    json_error_t je;
    json_t *doc = json_loads(schema, JSON_REJECT_DUPLICATES, &je);
    bool object = json_is_object(doc);
    json_decref(doc);
    if (!object)
        return hs_err_set(err, HS_EINVAL, "%s: schema: not a JSON object", at);
    hs_jschema *js = NULL;
    hs_err jerr;
    hs_err_clear(&jerr);
    int rc = hs_jschema_compile(schema, strlen(schema), &js, &jerr);
    hs_jschema_unref(js);
    if (rc != HS_OK)
        return hs_err_set(err, rc, "%s: schema: %s", at, jerr.msg[0] ? jerr.msg : hs_err_name(rc));
    return HS_OK;
}

static int check_agent(const struct hs_serve_config *c, int i, hs_err *err)
{
    const struct hs_agent *a = &c->agents[i];
    char at[320], where[240];
    entry_where(at, sizeof(at), "agents", a->file, a->line, file_index_agent(c, i), a->id);
    if (!valid_name(a->id))
        return hs_err_set(err, HS_EINVAL, "%s: the id must be %s", at, name_rule);
    if (!a->system_prompt || !a->system_prompt[0])
        return hs_err_set(err, HS_EINVAL, "%s: an agent needs a system_prompt", at);
    const char *kind = config_owner(c, a->id, c->n_adapters, i, where, sizeof(where));
    if (kind)
        return hs_err_set(err, HS_EINVAL, "%s: the id '%s' is also used by %s%s", at, a->id, kind, where);
    if (!unset_or_in(a->temperature, 0, 2) || !unset_or_in(a->top_p, 0, 1) || !unset_or_in(a->min_p, 0, 1) ||
        a->top_k < -1 || a->top_k > 1000000 || (a->max_tokens != -1 && a->max_tokens < 1))
        return hs_err_set(err, HS_EINVAL,
                          "%s: sampling out of range (temperature 0..2, top_p 0..1, min_p 0..1, top_k >= 0, "
                          "max_tokens >= 1)",
                          at);
    int model = -1;
    if (c->n_models > 0) {
        model = a->model ? hs_serve_config_find_model(c, a->model) : 0;
        if (model < 0)
            return hs_err_set(err, HS_EINVAL, "%s: model '%s' is not a configured model", at, a->model);
    }
    for (int j = 0; j < a->n_loras; j++) {
        const struct hs_agent_lora *l = &a->loras[j];
        int ad = hs_serve_config_find_adapter(c, l->adapter);
        if (ad < 0)
            return hs_err_set(err, HS_EINVAL, "%s: unknown adapter '%s' (not among the configured adapters)",
                              at, l->adapter ? l->adapter : "");
        for (int k = 0; k < j; k++)
            if (strcmp(a->loras[k].adapter, l->adapter) == 0)
                return hs_err_set(err, HS_EINVAL, "%s: adapter '%s' is named twice", at, l->adapter);
        if (!unset_or_in(l->scale, -SCALE_MAX, SCALE_MAX))
            return hs_err_set(err, HS_EINVAL, "%s: adapter '%s': scale must be in %g..%g", at, l->adapter,
                              -SCALE_MAX, SCALE_MAX);
        int am = model >= 0 ? adapter_model(c, &c->adapters[ad]) : -1;
        if (model >= 0 && am != model)
            return hs_err_set(
                err, HS_EINVAL,
                "%s: adapter '%s' is for model '%s' but the agent runs on model '%s' (an adapter "
                "for another base)",
                at, l->adapter, am >= 0 ? c->models[am].name : "?", c->models[model].name);
    }
    if (a->schema)
        return check_schema(at, a->schema, err);
    return HS_OK;
}

int hs_cfg_check_agents(const struct hs_serve_config *c, hs_err *err)
{
    for (int i = 0; i < c->n_adapters; i++) {
        int rc = check_adapter(c, i, err);
        if (rc != HS_OK)
            return rc;
    }
    for (int i = 0; i < c->n_agents; i++) {
        int rc = check_agent(c, i, err);
        if (rc != HS_OK)
            return rc;
    }
    return HS_OK;
}
