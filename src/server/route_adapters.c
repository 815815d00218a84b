/* GET /v1/agents, and the adapters' admin routes:
 *
 *   GET    /admin/adapters          every loaded adapter, its model, whether requests use it
 *                                   ("references": what requests in flight hold: a running
 *                                   request holds up to three, its own, its job's, its slot's)
 *   POST   /admin/adapters          {"name", "path", "model"?, "scale"?} loads one
 *   DELETE /admin/adapters/NAME     {"wait_s"?} unloads one
 *
 * Loading and unloading never disturb requests in flight: a new adapter is
 * visible to requests that arrive after it; an unloaded one is refused to
 * new requests at once, while those already holding it finish with it (the
 * adapter is reference counted; DELETE waits up to wait_s, default 30, for
 * them and says whether it is gone or still in use). */
#include "base/log.h"
#include "base/mem.h"
#include "server/server_impl.h"

#include <math.h>
#include <string.h>

#define DEFAULT_WAIT_S 30
#define MAX_WAIT_S 600

/* ---- /v1/agents ---- */

static json_t *num_or_null(double x)
{
    return isnan(x) ? json_null() : json_real(x);
}

static json_t *agent_obj(const struct srv_agent *sa)
{
    const struct hs_agent *a = sa->cfg;
    json_t *ads = json_array();
    for (int i = 0; ads && i < a->n_loras; i++)
        json_array_append_new(ads, json_pack("{s:s,s:o}", "name", a->loras[i].adapter, "scale",
                                             num_or_null(a->loras[i].scale)));
    json_t *schema = a->schema ? json_loads(a->schema, 0, NULL) : json_null();
    return json_pack("{s:s,s:s,s:s?,s:s?,s:s?,s:s,s:s?,s:o,s:{s:o,s:o,s:o,s:o,s:o},s:o}", "id", a->id, "object",
                     "agent", "name", a->name, "role", a->role, "expertise", a->expertise, "model", sa->m->name,
                     "system_prompt", a->system_prompt, "adapters", ads ? ads : json_null(), "sampling",
                     "temperature", num_or_null(a->temperature), "top_p", num_or_null(a->top_p), "min_p",
                     num_or_null(a->min_p), "top_k", a->top_k >= 0 ? json_integer(a->top_k) : json_null(),
                     "max_tokens", a->max_tokens > 0 ? json_integer(a->max_tokens) : json_null(), "schema",
                     schema ? schema : json_null());
}

void hs_route_agents(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    (void)req;
    hs_server *s = c->srv;
    json_t *data = json_array();
    for (int i = 0; data && hs_srv_ready(s) && i < s->n_agents; i++) {
        json_t *o = agent_obj(&s->agents[i]);
        if (!o || json_array_append_new(data, o)) {
            json_decref(data);
            data = NULL;
        }
    }
    hs_srv_reply_json(c, resp, 200, data ? json_pack("{s:s,s:o}", "object", "list", "data", data) : NULL);
}

/* ---- /admin/adapters ---- */

static json_t *adapter_obj(const struct srv_model *m, const hs_adapter *a)
{
    /* the caller's reference is one of the counted ones; the registry's another */
    int refs = hs_adapter_refs(a) - 2;
    if (refs < 0)
        refs = 0;
    return json_pack("{s:s,s:s,s:s,s:s,s:f,s:b,s:i}", "id", hs_adapter_name(a), "object", "adapter", "model",
                     m->name, "path", hs_adapter_path(a), "scale", (double)hs_adapter_default_scale(a), "in_use",
                     refs > 0, "references", refs);
}

static void list(struct srv_call *c, struct hs_http_resp *resp)
{
    hs_server *s = c->srv;
    json_t *data = json_array();
    bool ok = data != NULL;
    for (int i = 0; ok && i < s->n_models; i++) {
        struct srv_model *m = &s->models[i];
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
            json_t *o = ok ? adapter_obj(m, ads[k]) : NULL;
            ok = o && json_array_append_new(data, o) == 0;
            hs_adapter_unref(ads[k]);
        }
        hs_free(ads);
    }
    if (!ok) {
        json_decref(data);
        data = NULL;
    }
    hs_srv_reply_json(c, resp, 200, data ? json_pack("{s:s,s:o}", "object", "list", "data", data) : NULL);
}

static const char *str_field(const json_t *body, const char *key)
{
    const json_t *v = json_object_get(body, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *parse_body(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp,
                          bool optional)
{
    if (optional && req->body_len == 0)
        return json_object();
    json_error_t je;
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(body)) {
        json_decref(body);
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_json", NULL,
                    "the body must be a JSON object%s%s", body ? "" : ": ", body ? "" : je.text);
        return NULL;
    }
    return body;
}

static void load(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    hs_server *s = c->srv;
    json_t *body = parse_body(c, req, resp, false);
    if (!body)
        return;
    const char *name = str_field(body, "name"), *path = str_field(body, "path");
    const char *model = str_field(body, "model");
    const json_t *sc = json_object_get(body, "scale");
    const json_t *mv = json_object_get(body, "model");
    if (!name || !name[0] || !path || !path[0]) {
        hs_srv_fail(c, resp, 400, "invalid_request_error", "missing_required_parameter", !name ? "name" : "path",
                    "'name' and 'path' are required strings");
    } else if (strlen(name) > 128 || strchr(name, '/')) {
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "name",
                    "an adapter name is at most 128 bytes, without '/'");
    } else if (sc && !json_is_null(sc) &&
               (!json_is_number(sc) || !isfinite(json_number_value(sc)) || fabs(json_number_value(sc)) > 10)) {
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "scale",
                    "'scale' must be a number in [-10, 10]");
    } else if (mv && !json_is_null(mv) && !model) {
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_type", "model", "'model' must be a string");
    } else {
        struct srv_model *m = NULL;
        for (int i = 0; !m && i < s->n_models; i++)
            if (!s->models[i].upstream && (!model || hs_srv_find_model(s, model) == &s->models[i]))
                m = &s->models[i];
        float scale = sc && json_is_number(sc) ? (float)json_number_value(sc) : 1.0f;
        if (!m) {
            hs_srv_fail(c, resp, 404, "invalid_request_error", "model_not_found", "model",
                        "no local model '%.200s' to load the adapter on", model ? model : "");
        } else {
            /* one admin change at a time, so that the name check holds until the add */
            pthread_mutex_lock(&s->admin_mu);
            hs_adapter *a = NULL;
            hs_err err = {0};
            if (hs_srv_name_taken(s, name)) {
                hs_srv_fail(c, resp, 409, "invalid_request_error", "name_taken", "name",
                            "'%.200s' already names a model, agent or adapter", name);
            } else if (hs_adapter_load(name, path, m->model, scale, &a, &err)) {
                hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_adapter", "path", "%s", err.msg);
            } else if (hs_adapter_reg_add(m->adapters, a, &err)) {
                hs_srv_fail(c, resp, 409, "invalid_request_error", "name_taken", "name", "%s", err.msg);
            } else {
                hs_log_info("serve.adapter", "event=loaded name=%s model=%s path=%s scale=%g", name, m->name,
                            path, (double)scale);
                hs_srv_reply_json(c, resp, 201, adapter_obj(m, a));
            }
            hs_adapter_unref(a);
            pthread_mutex_unlock(&s->admin_mu);
        }
    }
    json_decref(body);
}

static void unload(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp, const char *name)
{
    hs_server *s = c->srv;
    json_t *body = parse_body(c, req, resp, true);
    if (!body)
        return;
    const json_t *w = json_object_get(body, "wait_s");
    int wait_s = DEFAULT_WAIT_S;
    if (w && !json_is_null(w)) {
        if (!json_is_integer(w) || json_integer_value(w) < 0 || json_integer_value(w) > MAX_WAIT_S) {
            json_decref(body);
            hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "wait_s",
                        "'wait_s' must be an integer in [0, %d]", MAX_WAIT_S);
            return;
        }
        wait_s = (int)json_integer_value(w);
    }
    json_decref(body);
    struct srv_model *m = NULL;
    for (int i = 0; !m && i < s->n_models; i++) {
        hs_adapter *a = s->models[i].adapters ? hs_adapter_reg_get(s->models[i].adapters, name) : NULL;
        if (a)
            m = &s->models[i];
        hs_adapter_unref(a);
    }
    if (!m) {
        hs_srv_fail(c, resp, 404, "not_found_error", "adapter_not_found", NULL, "no adapter '%.200s' is loaded",
                    name);
        return;
    }
    int users = 0;
    hs_err err = {0};
    int rc = hs_adapter_reg_remove(m->adapters, name, wait_s * 1000, &users, &err);
    if (rc == HS_ENOTFOUND) { /* another DELETE got there first */
        hs_srv_fail(c, resp, 404, "not_found_error", "adapter_not_found", NULL, "no adapter '%.200s' is loaded",
                    name);
        return;
    }
    hs_log_info("serve.adapter", "event=unloaded name=%s model=%s users_left=%d", name, m->name, users);
    hs_srv_reply_json(c, resp, rc == HS_OK ? 200 : 202,
                      json_pack("{s:s,s:s,s:b,s:b,s:i}", "id", name, "object", "adapter", "unloaded", rc == HS_OK,
                                "in_use", rc != HS_OK, "references", rc == HS_OK ? 0 : users));
}

void hs_route_adapters(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    const char *path = req->path;
    const char *one = !strncmp(path, "/admin/adapters/", 16) ? path + 16 : NULL;
    const char *method = req->method ? req->method : "";
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (!one && get) {
        list(c, resp);
    } else if (!one && !strcmp(method, "POST")) {
        load(c, req, resp);
    } else if (one && *one && !strcmp(method, "DELETE")) {
        unload(c, req, resp, one);
    } else {
        hs_http_resp_header(resp, "Allow", one ? "DELETE" : "GET, HEAD, POST");
        hs_srv_fail(c, resp, 405, "invalid_request_error", "method_not_allowed", NULL,
                    "%.16s is not allowed on %.200s", method, path);
    }
}
