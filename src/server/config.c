/* The server's YAML configuration (libfyaml's document API): the table walk
 * and the main file. Adapters, agents and schemas (issue 5) are read by
 * config_agents.c through config_impl.h.
 *
 * The layout is described by tables of fields (key, type, where it goes,
 * range), one table per mapping, so a new setting is a new row. Every error
 * reads "FILE:LINE: KEY.PATH: what is wrong", with the line of the offending
 * key or value. Keys that no table knows are errors: a misspelt limit must
 * not be silently ignored.
 *
 * YAML aliases (*name) are refused rather than resolved: the file is small
 * and hand-written, and refusing them rules out "billion laughs" inputs. */
#include "server/config.h"
#include "server/config_impl.h"

#include "base/buf.h"
#include "base/mem.h"
#include "base/parse.h"

#include <libfyaml.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* --- defaults and small helpers --- */

void hs_serve_config_default(struct hs_serve_config *c)
{
    memset(c, 0, sizeof(*c));
    /* a failed strdup leaves NULL, which hs_serve_config_check reports */
    c->host = hs_strdup("127.0.0.1");
    c->port = 8000;
    c->parallel = 4;
    c->n_batch = 512;
    c->queue_max = 64;
    c->wave_wait_ms = 30;
    c->timeout_s = 30;
    c->max_connections = 256;
    c->store_path = hs_strdup("./hestia.db");
    c->max_body_bytes = 1u << 20;
    c->max_messages = 20;
    c->max_input_tokens = 4000;
    hs_monitor_config_default(&c->monitor);
    hs_drift_config_default(&c->drift);
    hs_alerts_config_default(&c->alerts);
    c->safety_rules = hs_strdup("config/safety.yaml");
}

int hs_serve_config_set_str(char **field, const char *value)
{
    char *copy = NULL;
    if (value) {
        copy = hs_strdup(value);
        if (!copy)
            return HS_ENOMEM;
    }
    hs_free(*field);
    *field = copy;
    return HS_OK;
}

/* (issue 7) The members of an upstream list. */
static void upstream_list_free(struct hs_model_entry *m)
{
    for (int i = 0; i < m->n_upstreams; i++) {
        hs_free(m->upstreams[i].url);
        hs_free(m->upstreams[i].api_key);
        hs_free(m->upstreams[i].model);
    }
    hs_free(m->upstreams);
    m->upstreams = NULL;
    m->n_upstreams = 0;
}

static void model_free(struct hs_model_entry *m)
{
    hs_free(m->name);
    hs_free(m->alias);
    hs_free(m->path);
    hs_free(m->chat_template);
    hs_free(m->upstream_url);
    hs_free(m->upstream_key);
    hs_free(m->upstream_model);
    upstream_list_free(m);
    memset(m, 0, sizeof(*m));
}

static void models_free(struct hs_model_entry *models, int n)
{
    for (int i = 0; i < n; i++)
        model_free(&models[i]);
    hs_free(models);
}

void hs_cfg_adapter_free(struct hs_adapter_entry *a)
{
    hs_free(a->name);
    hs_free(a->path);
    hs_free(a->model);
    hs_free(a->file);
    memset(a, 0, sizeof(*a));
}

void hs_serve_config_free(struct hs_serve_config *c)
{
    if (!c)
        return;
    hs_free(c->host);
    hs_free(c->store_path);
    models_free(c->models, c->n_models);
    for (int i = 0; i < c->n_adapters; i++)
        hs_cfg_adapter_free(&c->adapters[i]);
    hs_free(c->adapters);
    for (int i = 0; i < c->n_agents; i++)
        hs_agent_free(&c->agents[i]);
    hs_free(c->agents);
    hs_drift_config_free(&c->drift);
    hs_alerts_config_free(&c->alerts);
    hs_free(c->safety_rules);
    hs_free(c->experiments);
    memset(c, 0, sizeof(*c));
}

/* --- the tables --- */


#define CFG(f) offsetof(struct hs_serve_config, f)
#define RATE(f) offsetof(struct hs_rate_limit, f)
#define MODEL(f) offsetof(struct hs_model_entry, f)

static const struct hs_cfg_field server_fields[] = {
    {"host", F_STR, CFG(host), 0, 0, NULL},
    {"port", F_INT, CFG(port), 0, 65535, NULL},
    {"parallel", F_INT, CFG(parallel), 1, 1024, NULL},
    {"ctx", F_INT, CFG(n_ctx), 0, 1 << 24, NULL},
    {"threads", F_INT, CFG(threads), 0, 4096, NULL},
    {"batch", F_INT, CFG(n_batch), 1, 1 << 20, NULL},
    {"queue", F_INT, CFG(queue_max), 0, 1 << 20, NULL},
    {"wave_wait_ms", F_INT, CFG(wave_wait_ms), 0, 10000, NULL},
    {"insecure", F_BOOL, CFG(insecure), 0, 0, NULL},
    {"timeout_s", F_INT, CFG(timeout_s), 1, 86400, NULL},
    {"max_connections", F_INT, CFG(max_connections), 1, 1 << 20, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct hs_cfg_field store_fields[] = {
    {"path", F_STR, CFG(store_path), 0, 0, NULL},
    {"log_bodies", F_BOOL, CFG(log_bodies), 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct hs_cfg_field limits_fields[] = {
    {"max_body_bytes", F_SIZE, CFG(max_body_bytes), 1, 1LL << 30, NULL},
    {"max_messages", F_INT, CFG(max_messages), 0, 1 << 20, NULL},
    {"max_input_tokens", F_INT, CFG(max_input_tokens), 0, 1 << 24, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct hs_cfg_field rate_fields[] = {
    {"requests_per_minute", F_INT, RATE(requests_per_minute), 0, 1000000000, NULL},
    {"requests_per_hour", F_INT, RATE(requests_per_hour), 0, 1000000000, NULL},
    {"tokens_per_minute", F_INT, RATE(tokens_per_minute), 0, 1000000000, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct hs_cfg_field rate_limits_fields[] = {
    {"per_key", F_MAP, CFG(per_key), 0, 0, rate_fields},
    {"per_address", F_MAP, CFG(per_address), 0, 0, rate_fields},
    {NULL, 0, 0, 0, 0, NULL},
};

/* (issue 7) Timeouts and the pool's settings: inside the upstream mapping,
 * or at the model's level (where the list form puts them). */
/* clang-format off */
#define UPSTREAM_SETTINGS                                                                    \
    {"connect_timeout_s", F_INT, MODEL(upstream_connect_timeout_s), 0, 3600, NULL},          \
    {"idle_timeout_s", F_INT, MODEL(upstream_idle_timeout_s), 0, 86400, NULL},               \
    {"retries", F_INT, MODEL(upstream_retries), 0, 10, NULL},                                \
    {"health_interval_s", F_INT, MODEL(upstream_health_interval_s), 0, 86400, NULL},         \
    {"breaker_failures", F_INT, MODEL(upstream_breaker_failures), 0, 1000000, NULL},         \
    {"breaker_cooldown_s", F_INT, MODEL(upstream_breaker_cooldown_s), 0, 86400, NULL}
/* clang-format on */

static const struct hs_cfg_field upstream_fields[] = {
    {"url", F_STR, MODEL(upstream_url), 0, 0, NULL},
    {"api_key", F_STR, MODEL(upstream_key), 0, 0, NULL},
    {"model", F_STR, MODEL(upstream_model), 0, 0, NULL},
    {"timeout_s", F_INT, MODEL(upstream_timeout_s), 0, 86400, NULL},
    UPSTREAM_SETTINGS,
    {NULL, 0, 0, 0, 0, NULL},
};

/* (issue 7) One member of an upstream list. */
#define MEMBER(f) offsetof(struct hs_upstream_member, f)
static const struct hs_cfg_field upstream_member_fields[] = {
    {"url", F_STR, MEMBER(url), 0, 0, NULL},
    {"api_key", F_STR, MEMBER(api_key), 0, 0, NULL},
    {"model", F_STR, MEMBER(model), 0, 0, NULL},
    {"weight", F_INT, MEMBER(weight), 1, 1000000, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct hs_cfg_field model_fields[] = {
    {"name", F_STR, MODEL(name), 0, 0, NULL},
    {"alias", F_STR, MODEL(alias), 0, 0, NULL},
    {"path", F_STR, MODEL(path), 0, 0, NULL},
    {"ctx", F_INT, MODEL(n_ctx), 0, 1 << 24, NULL},
    {"parallel", F_INT, MODEL(parallel), 0, 1024, NULL},
    {"threads", F_INT, MODEL(threads), 0, 4096, NULL},
    {"chat_template", F_STR, MODEL(chat_template), 0, 0, NULL},
    {"upstream", F_UPSTREAM, 0, 0, 0, upstream_fields},
    {"timeout_s", F_INT, MODEL(upstream_timeout_s), 0, 86400, NULL},
    UPSTREAM_SETTINGS,
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct hs_cfg_field safety_fields[] = {
    {"rules", F_SAFETY_RULES, CFG(safety_rules), 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct hs_cfg_field root_fields[] = {
    {"server", F_MAP, 0, 0, 0, server_fields},     {"store", F_MAP, 0, 0, 0, store_fields},
    {"limits", F_MAP, 0, 0, 0, limits_fields},     {"rate_limits", F_MAP, 0, 0, 0, rate_limits_fields},
    {"models", F_MODELS, 0, 0, 0, NULL},           {"adapters", F_ADAPTERS, 0, 0, 0, NULL},
    {"agents", F_AGENTS, 0, 0, 0, NULL},           {"schemas", F_SCHEMAS, 0, 0, 0, NULL},
    {"agents_file", F_AGENTS_FILE, 0, 0, 0, NULL}, {"monitor", F_MONITOR, 0, 0, 0, NULL},
    {"drift", F_DRIFT, 0, 0, 0, NULL},             {"alerts", F_ALERTS, 0, 0, 0, NULL},
    {"safety", F_MAP, 0, 0, 0, safety_fields},     {"experiments", F_EXPERIMENTS, 0, 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

/* --- the walk --- */

/* The server's wording of the shared refusals, and a text that holds no
 * document must be blank. */
#define CFG_YAML (HS_YAML_SAY_CONFIG | HS_YAML_SAY_EXAMPLE | HS_YAML_NEED_BLANK)

static int parse_models(struct hs_cfg_walk *w, struct fy_node *seq, const char *path, int line);
static int parse_experiments(struct hs_cfg_walk *w, struct fy_node *seq, const char *path, int line);
static int parse_upstream(struct hs_cfg_walk *w, struct fy_node *v, char *base, const char *path, int line);

static int parse_value(struct hs_cfg_walk *w, const struct hs_cfg_field *f, struct fy_node *v, char *base,
                       const char *path, int key_line)
{
    int line = hs_yaml_line(v) ? hs_yaml_line(v) : key_line;
    if (v && fy_node_is_alias(v))
        return hs_yaml_fail(&w->y, line, path, "YAML aliases are not supported; write the value out");
    switch (f->type) {
    case F_SAFETY_RULES:
        w->c->safety_rules_set = true;
        /* fall through - the path itself is a string */
    case F_STR:
        return hs_yaml_string(&w->y, v, path, line, (char **)(base + f->off));
    case F_INT:
    case F_SIZE: {
        int64_t x;
        if (!hs_yaml_read_i64(v, (int64_t)f->min, (int64_t)f->max, &x))
            return hs_yaml_fail(&w->y, line, path, "expected an integer in %lld..%lld", (long long)f->min,
                                (long long)f->max);
        if (f->type == F_INT)
            *(int *)(base + f->off) = (int)x;
        else
            *(size_t *)(base + f->off) = (size_t)x;
        return HS_OK;
    }
    case F_BOOL:
        return hs_yaml_bool(&w->y, v, path, line, (bool *)(base + f->off));
    case F_FLOAT: {
        double x;
        if (!hs_yaml_read_f64(v, f->min, f->max, &x))
            return hs_yaml_fail(&w->y, line, path, "expected a number in %g..%g", f->min, f->max);
        *(float *)(base + f->off) = (float)x;
        return HS_OK;
    }
    case F_MAP:
        if (hs_yaml_plain_null(v)) /* "store:" with nothing under it */
            return HS_OK;
        if (!fy_node_is_mapping(v))
            return hs_yaml_fail(&w->y, line, path, "expected a mapping (key: value lines)");
        return hs_cfg_parse_mapping(w, v, f->sub, base + f->off, path, key_line);
    case F_MODELS:
        return parse_models(w, v, path, key_line);
    case F_ADAPTERS:
        return hs_cfg_parse_adapters(w, v, path, key_line);
    case F_AGENTS:
        return hs_cfg_parse_agents(w, v, path, key_line);
    case F_SCHEMAS:
        return hs_cfg_parse_schemas(w, v, path, key_line);
    case F_LORAS:
        return hs_cfg_parse_loras(w, v, (struct hs_agent *)(void *)base, path, key_line);
    case F_SCHEMA:
        return hs_cfg_parse_schema(w, v, (struct hs_agent *)(void *)base, path, key_line);
    case F_MONITOR:
        return hs_monitor_config_parse_node(&w->c->monitor, v, w->y.name, w->y.err);
    case F_DRIFT:
        return hs_drift_config_parse_node(&w->c->drift, v, w->y.name, w->y.err);
    case F_ALERTS:
        /* its reader takes the whole text and finds its own section */
        return hs_alerts_config_parse(&w->c->alerts, w->y.text, w->y.len, w->y.name, w->y.err);
    case F_EXPERIMENTS:
        return parse_experiments(w, v, path, key_line);
    case F_UPSTREAM:
        return parse_upstream(w, v, base, path, key_line);
    case F_AGENTS_FILE: {
        if (hs_yaml_plain_null(v))
            return hs_yaml_fail(&w->y, line, path, "expected the path of an agents file");
        if (!fy_node_is_scalar(v))
            return hs_yaml_fail(&w->y, line, path, "expected a path");
        size_t len;
        const char *s;
        int rc = hs_yaml_scalar(&w->y, v, path, line, &s, &len);
        if (rc != HS_OK)
            return rc;
        if (memchr(s, 0, len))
            return hs_yaml_fail(&w->y, line, path, "expected a path without NUL bytes");
        char *copy = hs_strndup(s, len);
        if (!copy)
            return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
        hs_free(w->p.agents_file);
        w->p.agents_file = copy;
        w->p.agents_file_line = line;
        return HS_OK;
    }
    }
    return hs_yaml_fail(&w->y, line, path, "internal: unknown field type");
}

static void known_keys(const struct hs_cfg_field *fields, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = 0;
    for (const struct hs_cfg_field *f = fields; f->key && o < cap; f++) {
        int n = snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", f->key);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

int hs_cfg_parse_mapping(struct hs_cfg_walk *w, struct fy_node *map, const struct hs_cfg_field *fields,
                         char *base, const char *path, int line)
{
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(map, &it))) {
        struct fy_node *k = fy_node_pair_key(pair);
        struct fy_node *v = fy_node_pair_value(pair);
        int kline = hs_yaml_line(k) ? hs_yaml_line(k) : line;
        size_t klen = 0;
        const char *ks = NULL;
        if (!k || !fy_node_is_scalar(k) || fy_node_is_alias(k))
            return hs_yaml_fail(&w->y, kline, path[0] ? path : "(top level)", "keys must be plain words");
        int krc = hs_yaml_scalar(&w->y, k, path[0] ? path : "(top level)", kline, &ks, &klen);
        if (krc != HS_OK)
            return krc;
        const struct hs_cfg_field *f = fields;
        while (f->key && !(strlen(f->key) == klen && memcmp(f->key, ks, klen) == 0))
            f++;
        char sub[240];
        snprintf(sub, sizeof(sub), "%.160s%s%.*s", path, path[0] ? "." : "", (int)(klen > 64 ? 64 : klen),
                 ks);
        if (!f->key) {
            char known[256];
            known_keys(fields, known, sizeof(known));
            return hs_yaml_fail(&w->y, kline, sub, "unknown key (known here: %s)", known);
        }
        int rc = parse_value(w, f, v, base, sub, kline);
        if (rc != HS_OK)
            return rc;
    }
    return HS_OK;
}

/* Checks of one model entry that need its line: a name, and exactly one of
 * path / upstream.url. The same rules run again in hs_serve_config_check. */
static int check_model(struct hs_cfg_walk *w, const struct hs_model_entry *m, const char *path, int line)
{
    if (!m->name || !m->name[0])
        return hs_yaml_fail(&w->y, line, path, "a model needs a name (what clients put in \"model\")");
    if (m->path && m->upstream_url)
        return hs_yaml_fail(&w->y, line, path, "model '%s' has both a path and an upstream; give one",
                            m->name);
    if (!m->path && !m->upstream_url)
        return hs_yaml_fail(&w->y, line, path,
                            "model '%s' needs a path (a local GGUF) or an upstream with a url", m->name);
    if (m->upstream_url && strncmp(m->upstream_url, "http://", 7) != 0 &&
        strncmp(m->upstream_url, "https://", 8) != 0)
        return hs_yaml_fail(&w->y, line, path, "upstream url '%s' must start with http:// or https://",
                            m->upstream_url);
    if (m->alias && strcmp(m->alias, m->name) == 0)
        return hs_yaml_fail(&w->y, line, path, "model '%s': the alias is the name itself", m->name);
    if (m->path && (m->upstream_timeout_s || m->upstream_connect_timeout_s || m->upstream_idle_timeout_s ||
                    m->upstream_retries != 1 || m->upstream_health_interval_s ||
                    m->upstream_breaker_failures || m->upstream_breaker_cooldown_s))
        return hs_yaml_fail(&w->y, line, path,
                            "model '%s': timeout_s, connect_timeout_s, idle_timeout_s, retries, "
                            "health_interval_s and breaker_* apply to an upstream, not a local model",
                            m->name);
    return HS_OK;
}

/* (issue 7) `upstream:` as one mapping {url, api_key, model, timeout_s, ...}
 * or as a list of members {url, api_key, model, weight}, load-balanced. A
 * member needs an http(s) url; the same url twice is refused (it would only
 * skew the balance: give it a weight). */
static int parse_upstream(struct hs_cfg_walk *w, struct fy_node *v, char *base, const char *path, int line)
{
    struct hs_model_entry *me = (struct hs_model_entry *)(void *)base;
    int vline = hs_yaml_line(v) ? hs_yaml_line(v) : line;
    if (hs_yaml_plain_null(v))
        return HS_OK;
    if (fy_node_is_mapping(v))
        return hs_cfg_parse_mapping(w, v, upstream_fields, base, path, line);
    if (!fy_node_is_sequence(v))
        return hs_yaml_fail(&w->y, vline, path,
                            "expected a mapping (url: ..., api_key: ...) or a list of them (lines starting "
                            "with '-')");
    int n = fy_node_sequence_item_count(v);
    if (n < 1)
        return hs_yaml_fail(&w->y, vline, path, "the list of upstreams is empty");
    if (n > 64)
        return hs_yaml_fail(&w->y, vline, path, "%d upstreams; at most 64", n);
    struct hs_upstream_member *ms = hs_calloc((size_t)n, sizeof *ms);
    if (!ms)
        return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
    int rc = HS_OK, i = 0, prev_line = vline;
    void *it = NULL;
    struct fy_node *item;
    while (rc == HS_OK && i < n && (item = fy_node_sequence_iterate(v, &it))) {
        char sub[240];
        snprintf(sub, sizeof sub, "%.200s[%d]", path, i);
        int eline = hs_yaml_item_line(item, prev_line);
        prev_line = eline;
        ms[i].line = eline;
        if (fy_node_is_alias(item) || !fy_node_is_mapping(item)) {
            rc = hs_yaml_fail(&w->y, eline, sub, "expected a mapping (url: ..., api_key: ..., weight: ...)");
            break;
        }
        rc = hs_cfg_parse_mapping(w, item, upstream_member_fields, (char *)&ms[i], sub, eline);
        if (rc == HS_OK && (!ms[i].url || !ms[i].url[0]))
            rc = hs_yaml_fail(&w->y, eline, sub, "an upstream needs a url (the base up to /v1)");
        if (rc == HS_OK && strncmp(ms[i].url, "http://", 7) != 0 && strncmp(ms[i].url, "https://", 8) != 0)
            rc = hs_yaml_fail(&w->y, eline, sub, "upstream url '%s' must start with http:// or https://",
                              ms[i].url);
        for (int j = 0; rc == HS_OK && j < i; j++)
            if (!strcmp(ms[i].url, ms[j].url))
                rc = hs_yaml_fail(&w->y, eline, sub,
                                  "upstream url '%s' is listed twice (give it a weight instead)", ms[i].url);
        i++;
    }
    char *first = rc == HS_OK ? hs_strdup(ms[0].url) : NULL;
    if (rc == HS_OK && !first)
        rc = hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
    if (rc != HS_OK) {
        struct hs_model_entry tmp = {.upstreams = ms, .n_upstreams = n};
        upstream_list_free(&tmp);
        return rc;
    }
    upstream_list_free(me);
    me->upstreams = ms;
    me->n_upstreams = n;
    hs_free(me->upstream_url);
    me->upstream_url = first;
    return HS_OK;
}

/* Whether model a's name or alias is also one of model b's names. */
static const char *model_clash(const struct hs_model_entry *a, const struct hs_model_entry *b)
{
    const char *an[2] = {a->name, a->alias};
    const char *bn[2] = {b->name, b->alias};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            if (an[i] && bn[j] && strcmp(an[i], bn[j]) == 0)
                return an[i];
    return NULL;
}

/* The file's list replaces the models set so far; it is built apart and
 * swapped in whole, so a bad entry leaves c->models as it was. */
/* (issue 7) Each item is read by ops/experiment.h; names must differ. The
 * list replaces an earlier one (a later file, or null to clear). */
static int parse_experiments(struct hs_cfg_walk *w, struct fy_node *seq, const char *path, int line)
{
    if (hs_yaml_plain_null(seq)) {
        hs_free(w->c->experiments);
        w->c->experiments = NULL;
        w->c->n_experiments = 0;
        return HS_OK;
    }
    if (!fy_node_is_sequence(seq))
        return hs_yaml_fail(&w->y, hs_yaml_line(seq) ? hs_yaml_line(seq) : line, path,
                            "expected a list of experiments (lines starting with '-')");
    int n = fy_node_sequence_item_count(seq);
    struct hs_experiment *e = n > 0 ? hs_calloc((size_t)n, sizeof *e) : NULL;
    if (n > 0 && !e)
        return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        struct fy_node *item = fy_node_sequence_get_by_index(seq, i);
        int rc = hs_experiment_parse_node(&e[i], item, w->y.name, i, w->y.err);
        for (int j = 0; !rc && j < i; j++)
            if (!strcmp(e[i].name, e[j].name))
                rc = hs_yaml_fail(&w->y, hs_yaml_line(item), path, "[%d]: a second experiment named '%s'", i,
                                  e[i].name);
        if (rc) {
            hs_free(e);
            return rc;
        }
    }
    hs_free(w->c->experiments);
    w->c->experiments = e;
    w->c->n_experiments = n;
    return HS_OK;
}

static int parse_models(struct hs_cfg_walk *w, struct fy_node *seq, const char *path, int line)
{
    if (hs_yaml_plain_null(seq)) {
        models_free(w->c->models, w->c->n_models);
        w->c->models = NULL;
        w->c->n_models = 0;
        return HS_OK;
    }
    if (!fy_node_is_sequence(seq))
        return hs_yaml_fail(&w->y, hs_yaml_line(seq) ? hs_yaml_line(seq) : line, path,
                            "expected a list of models (lines starting with '-')");
    int n = fy_node_sequence_item_count(seq);
    struct hs_model_entry *models = n > 0 ? hs_calloc((size_t)n, sizeof(*models)) : NULL;
    if (n > 0 && !models)
        return hs_err_set(w->y.err, HS_ENOMEM, "out of memory");
    int rc = HS_OK;
    void *it = NULL;
    struct fy_node *item;
    int i = 0;
    int prev_line = line;
    while (rc == HS_OK && i < n && (item = fy_node_sequence_iterate(seq, &it))) {
        char sub[200];
        snprintf(sub, sizeof(sub), "%.160s[%d]", path, i);
        /* the entry's own line: that of its first key */
        int eline = hs_yaml_item_line(item, prev_line);
        prev_line = eline;
        if (!item || fy_node_is_alias(item) || !fy_node_is_mapping(item)) {
            rc =
                hs_yaml_fail(&w->y, eline, sub, "expected a mapping (name: ..., path: ... or upstream: ...)");
            break;
        }
        models[i].upstream_retries = 1; /* (issue 7) the default; 0 is a setting of its own */
        rc = hs_cfg_parse_mapping(w, item, model_fields, (char *)&models[i], sub, eline);
        if (rc == HS_OK)
            rc = check_model(w, &models[i], sub, eline);
        for (int j = 0; rc == HS_OK && j < i; j++) {
            const char *twice = model_clash(&models[i], &models[j]);
            if (twice)
                rc = hs_yaml_fail(&w->y, eline, sub,
                                  "model name '%s' is used twice (names and aliases are one list)", twice);
        }
        i++;
    }
    if (rc != HS_OK) {
        models_free(models, n);
        return rc;
    }
    models_free(w->c->models, w->c->n_models);
    w->c->models = models;
    w->c->n_models = i;
    return HS_OK;
}

int hs_cfg_parse_doc(struct hs_cfg_walk *w, const struct hs_cfg_field *root_table, const char *root_hint)
{
    struct fy_document *doc;
    int rc = hs_yaml_load(&doc, &w->y);
    if (rc != HS_OK || !doc)
        return rc;
    struct fy_node *root = fy_document_root(doc);
    if (root && !hs_yaml_plain_null(root)) {
        if (!fy_node_is_mapping(root))
            rc = hs_yaml_fail(&w->y, hs_yaml_line(root) ? hs_yaml_line(root) : 1, "(top level)",
                              "expected a mapping of sections (%s)", root_hint);
        else
            rc = hs_cfg_parse_mapping(w, root, root_table, (char *)w->c, "", 1);
    }
    fy_document_destroy(doc);
    return rc;
}

int hs_serve_config_parse(struct hs_serve_config *c, const char *text, size_t len, const char *name,
                          hs_err *err)
{
    struct hs_cfg_walk w = {{name ? name : "config", text, len, err, CFG_YAML}, c, {0}};
    int rc = hs_cfg_parse_doc(&w, root_fields,
                              "server:, store:, limits:, rate_limits:, models:, adapters:, agents:, ...");
    if (rc == HS_OK)
        rc = hs_cfg_pending_commit(&w);
    /* the agents file comes after this file's own adapters and agents */
    if (rc == HS_OK && w.p.agents_file) {
        rc = hs_serve_config_load_agents(c, w.p.agents_file, err);
        if (rc == HS_EIO)
            hs_err_prefix(err, "%s:%d: agents_file: ", w.y.name, w.p.agents_file_line);
    }
    hs_cfg_pending_free(&w.p);
    return rc;
}

int hs_serve_config_parse_agents(struct hs_serve_config *c, const char *text, size_t len, const char *name,
                                 hs_err *err)
{
    struct hs_cfg_walk w = {{name ? name : "agents", text, len, err, CFG_YAML}, c, {0}};
    int rc = hs_cfg_parse_doc(&w, hs_cfg_agents_root, "adapters:, agents:, schemas:");
    if (rc == HS_OK)
        rc = hs_cfg_pending_commit(&w);
    hs_cfg_pending_free(&w.p);
    return rc;
}

int hs_cfg_read_file(const char *path, bool regular_only, char **out, size_t *out_len, hs_err *err)
{
    *out = NULL;
    *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return hs_err_set(err, HS_EIO, "%s: cannot open: %m", path);
    struct stat st;
    if (regular_only && (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))) {
        fclose(f);
        return hs_err_set(err, HS_EIO, "%s: not a regular file", path);
    }
    hs_buf text = {0};
    int rc = HS_OK;
    char chunk[8192];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (text.len + got > (64u << 20)) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: larger than 64 MiB; not a config file", path);
            break;
        }
        if (hs_buf_append(&text, chunk, got) != 0) {
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
            break;
        }
    }
    if (rc == HS_OK && ferror(f))
        rc = hs_err_set(err, HS_EIO, "%s: read error", path);
    fclose(f);
    if (rc == HS_OK) {
        *out = hs_strndup(text.data ? text.data : "", text.len);
        *out_len = text.len;
        if (!*out)
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    hs_buf_free(&text);
    return rc;
}

int hs_serve_config_load(struct hs_serve_config *c, const char *path, hs_err *err)
{
    char *text;
    size_t len;
    int rc = hs_cfg_read_file(path, false, &text, &len, err);
    if (rc == HS_OK)
        rc = hs_serve_config_parse(c, text, len, path, err);
    hs_free(text);
    return rc;
}

/* Only a regular file: the path may come from a configuration's text
 * (agents_file), which must not make the server read a device or a FIFO. */
int hs_serve_config_load_agents(struct hs_serve_config *c, const char *path, hs_err *err)
{
    char *text;
    size_t len;
    int rc = hs_cfg_read_file(path, true, &text, &len, err);
    if (rc == HS_OK)
        rc = hs_serve_config_parse_agents(c, text, len, path, err);
    hs_free(text);
    return rc;
}

int hs_serve_config_find_model(const struct hs_serve_config *c, const char *name)
{
    for (int i = 0; name && i < c->n_models; i++)
        if ((c->models[i].name && strcmp(c->models[i].name, name) == 0) ||
            (c->models[i].alias && strcmp(c->models[i].alias, name) == 0))
            return i;
    return -1;
}

int hs_serve_config_find_adapter(const struct hs_serve_config *c, const char *name)
{
    for (int i = 0; name && i < c->n_adapters; i++)
        if (c->adapters[i].name && strcmp(c->adapters[i].name, name) == 0)
            return i;
    return -1;
}

int hs_serve_config_find_agent(const struct hs_serve_config *c, const char *id)
{
    for (int i = 0; id && i < c->n_agents; i++)
        if (c->agents[i].id && strcmp(c->agents[i].id, id) == 0)
            return i;
    return -1;
}

int hs_serve_config_set_model(struct hs_serve_config *c, const char *name, const char *path, hs_err *err)
{
    if (!name || !name[0] || !path || !path[0])
        return hs_err_set(err, HS_EINVAL, "a model needs a name and a path");
    for (int i = 0; i < c->n_models; i++) {
        struct hs_model_entry *m = &c->models[i];
        if (strcmp(m->name, name) != 0)
            continue;
        /* the flag names the file; settings from the config (ctx, parallel,
           template) stay, an upstream becomes local */
        if (hs_serve_config_set_str(&m->path, path) != HS_OK)
            return hs_err_set(err, HS_ENOMEM, "out of memory");
        hs_serve_config_set_str(&m->upstream_url, NULL);
        hs_serve_config_set_str(&m->upstream_key, NULL);
        hs_serve_config_set_str(&m->upstream_model, NULL);
        upstream_list_free(m);
        m->upstream_timeout_s = 0;
        m->upstream_connect_timeout_s = m->upstream_idle_timeout_s = 0;
        m->upstream_health_interval_s = m->upstream_breaker_failures = m->upstream_breaker_cooldown_s = 0;
        m->upstream_retries = 1;
        return HS_OK;
    }
    struct hs_model_entry *grown = hs_realloc_array(c->models, (size_t)c->n_models + 1, sizeof(*grown));
    if (!grown)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    c->models = grown;
    struct hs_model_entry *m = &c->models[c->n_models];
    memset(m, 0, sizeof(*m));
    m->name = hs_strdup(name);
    m->path = hs_strdup(path);
    if (!m->name || !m->path) {
        model_free(m);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    c->n_models++;
    return HS_OK;
}

int hs_serve_config_check(const struct hs_serve_config *c, hs_err *err)
{
    if (!c->host || !c->host[0])
        return hs_err_set(err, HS_EINVAL, "server.host must not be empty");
    if (c->port < 0 || c->port > 65535)
        return hs_err_set(err, HS_EINVAL, "server.port must be in 0..65535 (got %d)", c->port);
    if (c->parallel < 1)
        return hs_err_set(err, HS_EINVAL, "server.parallel must be at least 1 (got %d)", c->parallel);
    if (c->n_ctx < 0 || c->threads < 0 || c->queue_max < 0)
        return hs_err_set(err, HS_EINVAL, "server.ctx, threads and queue must not be negative");
    if (c->n_batch < 1)
        return hs_err_set(err, HS_EINVAL, "server.batch must be at least 1 (got %d)", c->n_batch);
    if (c->timeout_s < 1)
        return hs_err_set(err, HS_EINVAL, "server.timeout_s must be at least 1 (got %d)", c->timeout_s);
    if (c->max_connections < 1)
        return hs_err_set(err, HS_EINVAL, "server.max_connections must be at least 1 (got %d)",
                          c->max_connections);
    if (!c->store_path || !c->store_path[0])
        return hs_err_set(err, HS_EINVAL, "store.path must not be empty");
    if (c->max_body_bytes < 1)
        return hs_err_set(err, HS_EINVAL, "limits.max_body_bytes must be at least 1");
    if (c->max_messages < 0 || c->max_input_tokens < 0)
        return hs_err_set(err, HS_EINVAL, "limits.max_messages and max_input_tokens must not be negative");
    const struct hs_rate_limit *rls[2] = {&c->per_key, &c->per_address};
    for (int i = 0; i < 2; i++)
        if (rls[i]->requests_per_minute < 0 || rls[i]->requests_per_hour < 0 || rls[i]->tokens_per_minute < 0)
            return hs_err_set(err, HS_EINVAL, "rate_limits.%s: limits must not be negative (0 = off)",
                              i == 0 ? "per_key" : "per_address");
    for (int i = 0; i < c->n_models; i++) {
        const struct hs_model_entry *m = &c->models[i];
        if (!m->name || !m->name[0])
            return hs_err_set(err, HS_EINVAL, "models[%d]: a model needs a name", i);
        if ((m->path != NULL) == (m->upstream_url != NULL))
            return hs_err_set(err, HS_EINVAL, "models[%d] ('%s'): give exactly one of path and upstream.url",
                              i, m->name);
        if (m->upstream_url && strncmp(m->upstream_url, "http://", 7) != 0 &&
            strncmp(m->upstream_url, "https://", 8) != 0)
            return hs_err_set(err, HS_EINVAL,
                              "models[%d] ('%s'): upstream url must start with http:// or https://", i,
                              m->name);
        for (int k = 0; k < m->n_upstreams; k++) {
            const char *u = m->upstreams[k].url;
            if (!u || (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0))
                return hs_err_set(
                    err, HS_EINVAL,
                    "models[%d] ('%s'): upstream[%d]: the url must start with http:// or https://", i,
                    m->name, k);
            if (m->upstreams[k].weight < 0)
                return hs_err_set(err, HS_EINVAL, "models[%d] ('%s'): upstream[%d]: weight must be positive",
                                  i, m->name, k);
        }
        if (m->upstream_connect_timeout_s < 0 || m->upstream_idle_timeout_s < 0 || m->upstream_retries < 0 ||
            m->upstream_health_interval_s < 0 || m->upstream_breaker_failures < 0 ||
            m->upstream_breaker_cooldown_s < 0)
            return hs_err_set(err, HS_EINVAL, "models[%d] ('%s'): upstream settings must not be negative", i,
                              m->name);
        if (m->n_ctx < 0 || m->parallel < 0 || m->threads < 0 || m->upstream_timeout_s < 0)
            return hs_err_set(err, HS_EINVAL,
                              "models[%d] ('%s'): ctx, parallel, threads, timeout_s must not be "
                              "negative",
                              i, m->name);
        if (m->alias && (!m->alias[0] || strcmp(m->alias, m->name) == 0))
            return hs_err_set(err, HS_EINVAL, "models[%d] ('%s'): the alias must be another, non-empty name",
                              i, m->name);
        for (int j = 0; j < i; j++) {
            const char *twice = c->models[j].name ? model_clash(m, &c->models[j]) : NULL;
            if (twice)
                return hs_err_set(
                    err, HS_EINVAL,
                    "model name '%s' is used twice (models[%d] and models[%d]; names and aliases "
                    "are one list)",
                    twice, j, i);
        }
    }
    return hs_cfg_check_agents(c, err);
}
