/* GET /health, GET /v1/models (and /v1/models/{id}), GET /metrics. */
#include "base/mem.h"
#include "server/openai.h"
#include "server/server_impl.h"

#include <string.h>

void hs_route_health(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    (void)req;
    int st = atomic_load(&c->srv->state);
    const char *word = st == SRV_READY ? "ok" : st == SRV_LOADING ? "loading" : "draining";
    hs_http_resp_header(resp, "Cache-Control", "no-store");
    hs_srv_reply_json(c, resp, st == SRV_READY ? 200 : 503, json_pack("{s:s}", "status", word));
}

static json_t *model_obj(const struct srv_model *m)
{
    json_t *o = hs_oai_model(m->name, m->created, m->upstream ? "upstream" : "hestia");
    if (o && m->entry && m->entry->alias)
        json_object_set_new(o, "aliases", json_pack("[s]", m->entry->alias));
    return o;
}

/* An agent or adapter as a model entry, with its parent model (as vLLM
 * lists LoRA modules) and what it is. */
static json_t *child_obj(const char *id, const struct srv_model *m, const char *kind, const char *name)
{
    json_t *o = hs_oai_model(id, m->created, "hestia");
    if (!o)
        return NULL;
    json_object_set_new(o, "parent", json_string(m->name));
    json_object_set_new(o, "root", json_string(m->name));
    json_t *h = json_pack("{s:s}", "kind", kind);
    if (h && name)
        json_object_set_new(h, "name", json_string(name));
    json_object_set_new(o, "hestia", h);
    return o;
}

static json_t *lookup_one(hs_server *s, const char *id, const struct srv_model **m_out)
{
    struct srv_model *m = hs_srv_find_model(s, id);
    if (m) {
        *m_out = m;
        return model_obj(m);
    }
    const struct srv_agent *a = hs_srv_find_agent(s, id);
    if (a) {
        *m_out = a->m;
        return child_obj(a->cfg->id, a->m, "agent", a->cfg->name);
    }
    for (int i = 0; i < s->n_models; i++) {
        hs_adapter *ad = s->models[i].adapters ? hs_adapter_reg_get(s->models[i].adapters, id) : NULL;
        if (ad) {
            hs_adapter_unref(ad);
            *m_out = &s->models[i];
            return child_obj(id, &s->models[i], "adapter", NULL);
        }
    }
    return NULL;
}

static bool append(json_t *data, json_t *o)
{
    return o && json_array_append_new(data, o) == 0;
}

/* Models, then each local model's adapters, then the agents. */
static json_t *list_all(hs_server *s)
{
    json_t *data = json_array();
    bool ok = data != NULL;
    for (int i = 0; ok && i < s->n_models; i++)
        ok = append(data, model_obj(&s->models[i]));
    for (int i = 0; ok && i < s->n_models; i++) {
        const struct srv_model *m = &s->models[i];
        hs_adapter **ads = NULL;
        int n = 0;
        hs_err err = {0};
        if (!m->adapters)
            continue;
        if (hs_adapter_reg_list(m->adapters, &ads, &n, &err)) {
            ok = false;
            break;
        }
        for (int k = 0; k < n; k++) {
            if (ok)
                ok = append(data, child_obj(hs_adapter_name(ads[k]), m, "adapter", NULL));
            hs_adapter_unref(ads[k]);
        }
        hs_free(ads);
    }
    for (int i = 0; ok && i < s->n_agents; i++)
        ok = append(data, child_obj(s->agents[i].cfg->id, s->agents[i].m, "agent", s->agents[i].cfg->name));
    if (!ok) {
        json_decref(data);
        return NULL;
    }
    return data;
}

void hs_route_models(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp,
                     const char *one)
{
    (void)req;
    hs_server *s = c->srv;
    /* Nothing is listed until every model is loaded (and /health says ok). */
    bool ready = hs_srv_ready(s);
    if (one) {
        c->model = hs_strdup(one);
        const struct srv_model *m = NULL;
        json_t *o = ready ? lookup_one(s, one, &m) : NULL;
        if (o) {
            c->m = m;
            hs_srv_reply_json(c, resp, 200, o);
            return;
        }
        hs_srv_fail(c, resp, 404, "invalid_request_error", "model_not_found", "model",
                    "The model '%.200s' does not exist", one);
        return;
    }
    json_t *data = ready ? list_all(s) : json_array();
    hs_srv_reply_json(c, resp, 200, data ? json_pack("{s:s,s:o}", "object", "list", "data", data) : NULL);
}

void hs_route_metrics(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    (void)req;
    hs_buf_reset(&resp->body);
    if (hs_metrics_render(c->srv->metrics, &resp->body) || hs_srv_upstream_metrics(c->srv, &resp->body)) {
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "cannot render the metrics");
        return;
    }
    resp->status = 200;
    c->status = 200;
    hs_http_resp_header(resp, "Content-Type", HS_METRICS_CONTENT_TYPE);
}

/* ---- admin ---- */

struct key_list {
    json_t *data;
    bool oom;
};

static void add_key(void *user, const struct hs_key_info *k)
{
    struct key_list *l = user;
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:o}", "name", k->name, "scope", hs_key_scope_name(k->scope),
                          "prefix", k->prefix, "created_ms", (json_int_t)k->created_ms, "revoked_ms",
                          k->revoked_ms ? json_integer(k->revoked_ms) : json_null());
    if (!o || json_array_append_new(l->data, o))
        l->oom = true;
}

/* GET /admin/keys: every key's name, scope, prefix and dates; never a secret
 * (the store has none to give). */
void hs_route_admin(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    if (strcmp(req->path, "/admin/keys")) {
        hs_srv_fail(c, resp, 404, "not_found_error", "unknown_url", NULL, "Unknown admin route: %.16s %.200s",
                    req->method, req->path);
        return;
    }
    if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
        hs_http_resp_header(resp, "Allow", "GET, HEAD");
        hs_srv_fail(
            c, resp, 405, "invalid_request_error", "method_not_allowed", NULL,
            "%.16s is not allowed on /admin/keys (allowed: GET, HEAD; keys are made with 'hestia keys')",
            req->method);
        return;
    }
    struct key_list l = {json_array(), false};
    hs_err err = {0};
    if (!l.data || hs_store_key_list(c->srv->store, add_key, &l, &err) || l.oom) {
        json_decref(l.data);
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "cannot list the keys: %s",
                    err.msg[0] ? err.msg : "out of memory");
        return;
    }
    hs_srv_reply_json(c, resp, 200, json_pack("{s:s,s:o}", "object", "list", "data", l.data));
}
