/* Agents and adapters in the server: binding the configured ones at start,
 * and resolving what a request names.
 *
 * "model" may name a model (or its alias), an agent or an adapter; "lora"
 * adds adapters by name or by position. An agent brings its persona (a system
 * message first, so that its prefix is cached once for every request), its
 * adapters, its default sampling and its schema; what the request says
 * itself wins. Adapters are looked up at request time, so one unloaded
 * through /admin/adapters is refused from then on while requests already
 * holding it finish with it. */
#include "base/log.h"
#include "base/mem.h"
#include "server/server_impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- start ---- */

static struct srv_model *first_local(hs_server *s)
{
    for (int i = 0; i < s->n_models; i++)
        if (!s->models[i].upstream)
            return &s->models[i];
    return NULL;
}

/* The model an adapter entry or agent names; the first (local) model when none. */
static struct srv_model *entry_model(hs_server *s, const char *name, bool local)
{
    if (name)
        return hs_srv_find_model(s, name);
    return local ? first_local(s) : (s->n_models > 0 ? &s->models[0] : NULL);
}

static int load_adapters(hs_server *s, hs_err *err)
{
    const struct hs_serve_config *cfg = s->cfg;
    for (int i = 0; i < cfg->n_adapters; i++) {
        const struct hs_adapter_entry *e = &cfg->adapters[i];
        struct srv_model *m = entry_model(s, e->model, true);
        if (!m || m->upstream)
            return hs_err_set(err, HS_EINVAL, "%s:%d: adapters (%s): model '%s' is not a local model",
                              e->file ? e->file : "config", e->line, e->name, e->model ? e->model : "(first)");
        hs_adapter *a = NULL;
        int rc = hs_adapter_load(e->name, e->path, m->model, e->scale, &a, err);
        if (rc)
            return hs_err_prefix(err, "%s:%d: adapters (%s): ", e->file ? e->file : "config", e->line, e->name);
        rc = hs_adapter_reg_add(m->adapters, a, err);
        hs_adapter_unref(a); /* the registry holds it now */
        if (rc)
            return hs_err_prefix(err, "%s:%d: adapters (%s): ", e->file ? e->file : "config", e->line, e->name);
        hs_log_info("serve.adapter", "name=%s model=%s path=%s scale=%g", e->name, m->name, e->path,
                    (double)e->scale);
    }
    return HS_OK;
}

int hs_srv_agents_load(hs_server *s, hs_err *err)
{
    int rc = load_adapters(s, err);
    if (rc)
        return rc;
    const struct hs_serve_config *cfg = s->cfg;
    if (cfg->n_agents <= 0)
        return HS_OK;
    s->agents = hs_calloc((size_t)cfg->n_agents, sizeof *s->agents);
    if (!s->agents)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    for (int i = 0; i < cfg->n_agents; i++) {
        const struct hs_agent *a = &cfg->agents[i];
        struct srv_agent *sa = &s->agents[i];
        s->n_agents = i + 1;
        sa->cfg = a;
        sa->m = entry_model(s, a->model, false);
        if (!sa->m)
            return hs_err_set(err, HS_EINVAL, "%s:%d: agents (%s): model '%s' is not configured",
                              a->file ? a->file : "config", a->line, a->id, a->model ? a->model : "(first)");
        if (sa->m->upstream && a->n_loras > 0)
            return hs_err_set(err, HS_EINVAL,
                              "%s:%d: agents (%s): adapters apply to local models; '%s' is an upstream",
                              a->file ? a->file : "config", a->line, a->id, sa->m->name);
        if (a->schema && (rc = hs_jschema_compile(a->schema, strlen(a->schema), &sa->schema, err)))
            return hs_err_prefix(err, "%s:%d: agents (%s): schema: ", a->file ? a->file : "config", a->line,
                                 a->id);
    }
    hs_log_info("serve.agents", "agents=%d adapters=%d", cfg->n_agents, cfg->n_adapters);
    return HS_OK;
}

void hs_srv_agents_free(hs_server *s)
{
    for (int i = 0; i < s->n_agents; i++)
        hs_jschema_unref(s->agents[i].schema);
    hs_free(s->agents);
    s->agents = NULL;
    s->n_agents = 0;
}

const struct srv_agent *hs_srv_find_agent(hs_server *s, const char *id)
{
    for (int i = 0; id && i < s->n_agents; i++)
        if (!strcmp(s->agents[i].cfg->id, id))
            return &s->agents[i];
    return NULL;
}

/* A new reference to the adapter called name on any local model. */
static hs_adapter *find_adapter(hs_server *s, const char *name, struct srv_model **m_out)
{
    for (int i = 0; i < s->n_models; i++) {
        if (!s->models[i].adapters)
            continue;
        hs_adapter *a = hs_adapter_reg_get(s->models[i].adapters, name);
        if (a) {
            if (m_out)
                *m_out = &s->models[i];
            return a;
        }
    }
    return NULL;
}

bool hs_srv_name_taken(hs_server *s, const char *name)
{
    if (hs_srv_find_model(s, name) || hs_srv_find_agent(s, name))
        return true;
    hs_adapter *a = find_adapter(s, name, NULL);
    hs_adapter_unref(a);
    return a != NULL;
}

/* ---- a request's target ---- */

void hs_srv_target_clear(struct srv_target *t)
{
    for (int i = 0; i < t->n_ad; i++)
        hs_adapter_unref(t->ad[i]);
    hs_jschema_unref(t->schema);
    memset(t, 0, sizeof *t);
}

/* Adds a (whose reference it takes) with scale; an adapter already in the
 * set gets the later scale. false when the set is full (a is released). */
static bool add_adapter(struct srv_target *t, hs_adapter *a, float scale)
{
    if (isnan(scale))
        scale = hs_adapter_default_scale(a);
    for (int i = 0; i < t->n_ad; i++)
        if (t->ad[i] == a) {
            t->scale[i] = scale;
            hs_adapter_unref(a);
            return true;
        }
    if (t->n_ad == SRV_MAX_ADAPTERS) {
        hs_adapter_unref(a);
        return false;
    }
    t->ad[t->n_ad] = a;
    t->scale[t->n_ad++] = scale;
    return true;
}

/* The agent's persona as the first system message: merged into a system
 * message the client sent first, so that templates with one system slot
 * still take both (the agent's words first: the cached prefix). */
static bool persona_msgs(struct hs_gen_request *gr, const char *prompt)
{
    if (gr->n_msgs > 0 && !strcmp(gr->msgs[0].role, "system")) {
        const char *old = gr->msgs[0].content ? gr->msgs[0].content : "";
        size_t n = strlen(prompt) + 2 + strlen(old) + 1;
        char *merged = hs_malloc(n);
        if (!merged)
            return false;
        snprintf(merged, n, "%s\n\n%s", prompt, old);
        hs_free((char *)gr->msgs[0].content);
        gr->msgs[0].content = merged;
        return true;
    }
    struct hs_chat_msg *msgs = hs_realloc_array(gr->msgs, (size_t)gr->n_msgs + 1, sizeof *msgs);
    if (!msgs)
        return false;
    gr->msgs = msgs;
    char *copy = hs_strdup(prompt);
    if (!copy)
        return false;
    memmove(msgs + 1, msgs, (size_t)gr->n_msgs * sizeof *msgs);
    msgs[0].role = "system";
    msgs[0].content = copy;
    gr->n_msgs++;
    return true;
}

/* The same in the body forwarded to an upstream. */
static bool persona_root(json_t *root, const char *prompt)
{
    json_t *msgs = json_object_get(root, "messages");
    if (!json_is_array(msgs))
        return false;
    json_t *first = json_array_get(msgs, 0);
    json_t *role = first ? json_object_get(first, "role") : NULL;
    json_t *content = first ? json_object_get(first, "content") : NULL;
    if (json_is_string(role) && !strcmp(json_string_value(role), "system") && json_is_string(content)) {
        size_t n = strlen(prompt) + 2 + json_string_length(content) + 1;
        char *merged = hs_malloc(n);
        if (!merged)
            return false;
        snprintf(merged, n, "%s\n\n%s", prompt, json_string_value(content));
        int rc = json_object_set_new(first, "content", json_string(merged));
        hs_free(merged);
        return rc == 0;
    }
    return json_array_insert_new(msgs, 0, json_pack("{s:s,s:s}", "role", "system", "content", prompt)) == 0;
}

/* The agent's defaults where the request gave nothing. */
static void agent_sampling(struct hs_gen_request *gr, const struct hs_agent *a, bool upstream)
{
    json_t *root = gr->root;
    if (!gr->temperature_given && !isnan(a->temperature)) {
        gr->sampling.temperature = a->temperature;
        if (upstream)
            json_object_set_new(root, "temperature", json_real(a->temperature));
    }
    if (!gr->top_p_given && !isnan(a->top_p)) {
        gr->sampling.top_p = a->top_p;
        if (upstream)
            json_object_set_new(root, "top_p", json_real(a->top_p));
    }
    if (!gr->min_p_given && !isnan(a->min_p)) {
        gr->sampling.min_p = a->min_p;
        if (upstream)
            json_object_set_new(root, "min_p", json_real(a->min_p));
    }
    if (!gr->top_k_given && a->top_k >= 0) {
        gr->sampling.top_k = a->top_k;
        if (upstream)
            json_object_set_new(root, "top_k", json_integer(a->top_k));
    }
    if (gr->max_tokens < 0 && a->max_tokens > 0) {
        gr->max_tokens = a->max_tokens;
        if (upstream)
            json_object_set_new(root, "max_tokens", json_integer(a->max_tokens));
    }
}

static bool oom(struct srv_call *c, struct hs_http_resp *resp)
{
    hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
    return false;
}

/* The request's own "lora" entries, on model m. */
static bool request_adapters(struct srv_call *c, struct hs_gen_request *gr, struct hs_http_resp *resp)
{
    struct srv_target *t = &c->tgt;
    if (gr->n_loras == 0)
        return true;
    if (t->m->upstream) {
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "lora",
                    "adapters apply to local models; '%.200s' is served by an upstream", t->m->name);
        return false;
    }
    char param[48];
    for (int i = 0; i < gr->n_loras; i++) {
        const struct hs_req_lora *l = &gr->loras[i];
        hs_adapter *a = NULL;
        if (l->name) {
            a = hs_adapter_reg_get(t->m->adapters, l->name);
            snprintf(param, sizeof param, "lora[%d].name", i);
            if (!a) {
                hs_srv_fail(c, resp, 404, "invalid_request_error", "adapter_not_found", param,
                            "The adapter '%.200s' is not loaded on model '%.200s'", l->name, t->m->name);
                return false;
            }
        } else {
            hs_adapter **all = NULL;
            int n = 0;
            hs_err err = {0};
            if (hs_adapter_reg_list(t->m->adapters, &all, &n, &err))
                return oom(c, resp);
            if (l->id < n)
                a = hs_adapter_ref(all[l->id]);
            for (int k = 0; k < n; k++)
                hs_adapter_unref(all[k]);
            hs_free(all);
            snprintf(param, sizeof param, "lora[%d].id", i);
            if (!a) {
                hs_srv_fail(c, resp, 404, "invalid_request_error", "adapter_not_found", param,
                            "model '%.200s' has %d adapters; id %d does not exist", t->m->name, n, l->id);
                return false;
            }
        }
        if (!add_adapter(t, a, l->scale)) {
            hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "lora",
                        "at most %d adapters in one request, the agent's included", SRV_MAX_ADAPTERS);
            return false;
        }
    }
    return true;
}

static bool agent_apply(struct srv_call *c, struct hs_gen_request *gr, struct hs_http_resp *resp)
{
    struct srv_target *t = &c->tgt;
    const struct srv_agent *ag = t->agent;
    const struct hs_agent *a = ag->cfg;
    for (int i = 0; i < a->n_loras; i++) {
        hs_adapter *ad = hs_adapter_reg_get(t->m->adapters, a->loras[i].adapter);
        if (!ad) {
            hs_http_resp_header(resp, "Retry-After", "30");
            hs_srv_fail(c, resp, 503, "service_unavailable", "adapter_not_loaded", "model",
                        "agent '%.100s' uses the adapter '%.100s', which is not loaded", a->id,
                        a->loras[i].adapter);
            return false;
        }
        if (!add_adapter(t, ad, a->loras[i].scale))
            return oom(c, resp);
    }
    if (gr->kind != HS_REQ_CHAT) {
        agent_sampling(gr, a, t->m->upstream);
        return true;
    }
    if (a->system_prompt && a->system_prompt[0]) {
        if (!persona_msgs(gr, a->system_prompt))
            return oom(c, resp);
        if (t->m->upstream && !persona_root(gr->root, a->system_prompt))
            return oom(c, resp);
    }
    agent_sampling(gr, a, t->m->upstream);
    if (ag->schema && !gr->response_format_given) {
        if (t->m->upstream) {
            json_t *schema = json_loads(a->schema, 0, NULL);
            json_t *rf = schema ? json_pack("{s:s,s:{s:s,s:o}}", "type", "json_schema", "json_schema", "name",
                                            a->id, "schema", schema)
                                : NULL;
            if (!rf || json_object_set_new(gr->root, "response_format", rf))
                return oom(c, resp);
        } else {
            t->schema = hs_jschema_ref(ag->schema);
        }
    }
    return true;
}

static bool request_schema(struct srv_call *c, struct hs_gen_request *gr, struct hs_http_resp *resp)
{
    struct srv_target *t = &c->tgt;
    if (!gr->json_mode || t->m->upstream)
        return true; /* an upstream enforces its own */
    hs_err err = {0};
    const char *schema = gr->json_schema;
    int rc = hs_jschema_compile(schema, schema ? strlen(schema) : 0, &t->schema, &err);
    if (rc == HS_ENOMEM)
        return oom(c, resp);
    if (rc) {
        hs_srv_fail(c, resp, 400, "invalid_request_error",
                    rc == HS_EUNSUPPORTED ? "unsupported_value" : "invalid_value",
                    "response_format.json_schema.schema", "%s", err.msg);
        return false;
    }
    return true;
}

bool hs_srv_resolve(struct srv_call *c, struct hs_gen_request *gr, struct hs_http_resp *resp)
{
    hs_server *s = c->srv;
    struct srv_target *t = &c->tgt;
    const char *name = gr->model ? gr->model : "";
    struct srv_model *m = hs_srv_find_model(s, name);
    hs_adapter *named = NULL;
    if (!m && (t->agent = hs_srv_find_agent(s, name)))
        m = t->agent->m;
    if (!m)
        named = find_adapter(s, name, &m);
    if (!m) {
        hs_srv_fail(c, resp, 404, "invalid_request_error", "model_not_found", "model",
                    "The model '%.200s' does not exist", name);
        return false;
    }
    t->m = m;
    c->m = m;
    if (gr->kind == HS_REQ_EMBEDDING && (named || t->agent || gr->n_loras > 0)) {
        hs_adapter_unref(named);
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", gr->n_loras ? "lora" : "model",
                    "embeddings come from the base model: ask for '%.200s' without adapters", m->name);
        return false;
    }
    if (named && !add_adapter(t, named, NAN))
        return oom(c, resp);
    if (t->agent && !agent_apply(c, gr, resp))
        return false;
    return request_adapters(c, gr, resp) && request_schema(c, gr, resp);
}

/* "name:scale,name:scale" for the record; NULL when there are none. */
char *hs_srv_target_adapters(const struct srv_target *t)
{
    if (t->n_ad == 0)
        return NULL;
    hs_buf b = {0};
    for (int i = 0; i < t->n_ad; i++)
        hs_buf_printf(&b, "%s%s:%g", i ? "," : "", hs_adapter_name(t->ad[i]), (double)t->scale[i]);
    return hs_buf_steal(&b);
}
