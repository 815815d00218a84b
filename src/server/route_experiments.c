/* (issue 7) The experiments' admin routes (admin key; the dispatcher checks):
 *
 *   GET  /admin/experiments                 every experiment: definition, state, live windows
 *   POST /admin/experiments                 a definition (JSON, as in the config) -> 201 new, 200 redefined
 *   GET  /admin/experiments/NAME            one, with per-variant statistics from the store and its history
 *   POST /admin/experiments/NAME/weight     {"weight": 0.25, "reason": "..."}: B's share by hand
 *   POST /admin/experiments/NAME/promote    {"reason"?}: B takes all the route's traffic
 *   POST /admin/experiments/NAME/stop       {"reason"?}: A takes it all; not resumed after a restart
 *   POST /admin/rollback                    {"experiment": NAME, "reason"?}: B to 0 %, a critical alert
 *   GET  /api/experiments                   every experiment in full, for the dashboard (loopback or admin)
 *
 * Every change goes to the store first (with the time and reason), then
 * into the running server (experiments.c). */
#include "base/mem.h"
#include "ops/store_experiments.h"
#include "server/experiments_impl.h"

#include <math.h>
#include <string.h>

static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *window_json(const struct hs_exp_window *w)
{
    return json_pack("{s:I,s:I,s:I,s:o}", "requests", (json_int_t)w->requests, "errors", (json_int_t)w->errors,
                     "safety_flagged", (json_int_t)w->safety_flagged, "p95_ms", num_or_null(w->p95_ms));
}

/* Definition, state, live windows and counters of one experiment. */
static json_t *exp_json(hs_server *s, struct srv_exp *e, float *scratch)
{
    struct srv_exps *x = s->exps;
    pthread_mutex_lock(&x->mu);
    struct hs_experiment def = e->def;
    struct hs_exp_state st = e->st;
    struct hs_exp_window w[2];
    int64_t since = hs_srv_unix_ms() - def.rules.window_ms;
    for (int v = 0; v < 2; v++)
        hs_srv_win_summary(&e->w[v], since, &w[v], scratch);
    json_t *counts = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "requests_a", (json_int_t)e->requests[0], "requests_b",
                               (json_int_t)e->requests[1], "fallbacks", (json_int_t)e->fallbacks, "shadow_done",
                               (json_int_t)e->shadow_done, "shadow_failed", (json_int_t)e->shadow_failed,
                               "shadow_dropped", (json_int_t)e->shadow_dropped);
    pthread_mutex_unlock(&x->mu);
    char *st_txt = hs_exp_state_to_json_text(&st);
    json_t *state = st_txt ? json_loads(st_txt, 0, NULL) : NULL;
    hs_free(st_txt);
    return json_pack("{s:s,s:o,s:o,s:{s:o,s:o},s:o}", "name", def.name, "definition", hs_experiment_to_json(&def),
                     "state", state ? state : json_null(), "window", "A", window_json(&w[0]), "B",
                     window_json(&w[1]), "counters", counts ? counts : json_null());
}

static void list(struct srv_call *c, struct hs_http_resp *resp)
{
    hs_server *s = c->srv;
    float *scratch = hs_malloc(SRV_WIN_CAP * sizeof *scratch);
    json_t *data = json_array();
    pthread_mutex_lock(&s->exps->mu);
    int n = s->exps->n;
    pthread_mutex_unlock(&s->exps->mu);
    for (int i = 0; scratch && data && i < n; i++)
        json_array_append_new(data, exp_json(s, s->exps->v[i], scratch));
    hs_free(scratch);
    if (!scratch || !data) {
        json_decref(data);
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    hs_srv_reply_json(c, resp, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

static json_t *stats_json(const struct hs_exp_variant_stats *v)
{
    return json_pack("{s:I,s:I,s:o,s:I,s:o,s:o,s:o,s:I,s:I,s:o,s:I,s:o,s:I,s:o,s:I,s:o,s:o}", "requests",
                     (json_int_t)v->requests, "errors", (json_int_t)v->errors, "error_rate",
                     num_or_null(v->error_rate), "n_latency", (json_int_t)v->n_latency, "p50_ms",
                     num_or_null(v->p50_ms), "p95_ms", num_or_null(v->p95_ms), "p99_ms", num_or_null(v->p99_ms),
                     "thumbs_up", (json_int_t)v->thumbs_up, "thumbs_down", (json_int_t)v->thumbs_down, "up_rate",
                     num_or_null(v->up_rate), "safety_flagged", (json_int_t)v->safety_flagged, "safety_rate",
                     num_or_null(v->safety_rate), "n_confidence", (json_int_t)v->n_confidence, "confidence_mean",
                     num_or_null(v->confidence_mean), "n_scored", (json_int_t)v->n_scored, "accuracy_mean",
                     num_or_null(v->accuracy_mean), "safety_score_mean", num_or_null(v->safety_score_mean));
}

static void add_event(void *user, const struct hs_exp_event *ev)
{
    json_array_append_new(user, json_pack("{s:I,s:I,s:s,s:o,s:s?}", "id", (json_int_t)ev->id, "ts_ms",
                                          (json_int_t)ev->ts_ms, "kind", ev->kind, "weight_b",
                                          num_or_null(ev->weight_b), "reason", ev->reason));
}

/* One experiment in full: exp_json plus the store's per-variant statistics
 * and its history. NULL with err set on a store error or out of memory. */
static json_t *exp_full_json(hs_server *s, struct srv_exp *e, float *scratch, hs_err *err)
{
    json_t *o = exp_json(s, e, scratch);
    json_t *variants = json_object(), *events = json_array();
    int rc = o && variants && events ? HS_OK : hs_err_set(err, HS_ENOMEM, "out of memory");
    for (int v = 0; !rc && v < 2; v++) {
        struct hs_exp_variant_stats st;
        memset(&st, 0, sizeof st);
        rc = hs_store_exp_variant_stats(s->store, e->def.name, (enum hs_exp_variant)v, 0, &st, err);
        if (!rc)
            json_object_set_new(variants, hs_exp_variant_name((enum hs_exp_variant)v), stats_json(&st));
        hs_exp_variant_stats_free(&st);
    }
    if (!rc)
        rc = hs_store_exp_events(s->store, e->def.name, add_event, events, err);
    if (rc) {
        json_decref(o);
        json_decref(variants);
        json_decref(events);
        return NULL;
    }
    json_object_set_new(o, "variants", variants);
    json_object_set_new(o, "events", events);
    return o;
}

static void show(struct srv_call *c, struct hs_http_resp *resp, struct srv_exp *e)
{
    float *scratch = hs_malloc(SRV_WIN_CAP * sizeof *scratch);
    hs_err err = {0};
    json_t *o = scratch ? exp_full_json(c->srv, e, scratch, &err) : NULL;
    hs_free(scratch);
    if (!o) {
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "cannot read the experiment: %s",
                    err.msg[0] ? err.msg : "out of memory");
        return;
    }
    hs_srv_reply_json(c, resp, 200, o);
}

void hs_route_api_experiments(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    (void)req;
    hs_server *s = c->srv;
    json_t *data = json_array();
    float *scratch = hs_malloc(SRV_WIN_CAP * sizeof *scratch);
    hs_err err = {0};
    int n = 0;
    if (s->exps) {
        pthread_mutex_lock(&s->exps->mu);
        n = s->exps->n;
        pthread_mutex_unlock(&s->exps->mu);
    }
    bool ok = data && scratch;
    for (int i = 0; ok && i < n; i++) {
        json_t *o = exp_full_json(s, s->exps->v[i], scratch, &err);
        ok = o && !json_array_append_new(data, o);
    }
    hs_free(scratch);
    if (!ok) {
        json_decref(data);
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "cannot read the experiments: %s",
                    err.msg[0] ? err.msg : "out of memory");
        return;
    }
    hs_srv_reply_json(c, resp, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

/* The body as a JSON object, or a 400 already sent (NULL). An empty body is {}. */
static json_t *body_object(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    if (!req->body_len)
        return json_object();
    json_error_t je;
    json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_json", NULL,
                    "the body must be a JSON object%s%s", o ? "" : ": ", o ? "" : je.text);
        return NULL;
    }
    return o;
}

/* The optional "reason" (a string), or a 400 already sent (false). */
static bool reason_of(struct srv_call *c, struct hs_http_resp *resp, json_t *o, const char *dflt, char *out,
                      size_t cap)
{
    json_t *r = json_object_get(o, "reason");
    if (r && !json_is_string(r)) {
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_type", "reason", "reason must be a string");
        return false;
    }
    snprintf(out, cap, "%s%s%s", dflt, r ? ": " : "", r ? json_string_value(r) : "");
    return true;
}

static void create(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    json_t *o = body_object(c, req, resp);
    if (!o)
        return;
    struct hs_experiment def;
    hs_err err = {0};
    int rc = hs_experiment_from_json(&def, o, &err);
    json_decref(o);
    bool created = false;
    struct srv_exp *e = NULL;
    if (!rc)
        rc = hs_srv_exp_put(c->srv, &def, &e, &created, &err);
    if (rc) {
        hs_srv_fail(c, resp, rc == HS_ENOMEM ? 500 : 400, rc == HS_ENOMEM ? "server_error" : "invalid_request_error",
                    rc == HS_ENOMEM ? NULL : "invalid_value", NULL, "%s", err.msg);
        return;
    }
    float *scratch = hs_malloc(SRV_WIN_CAP * sizeof *scratch);
    json_t *out = scratch ? exp_json(c->srv, e, scratch) : NULL;
    hs_free(scratch);
    if (!out) {
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    hs_srv_reply_json(c, resp, created ? 201 : 200, out);
}

/* weight, promote, stop on one experiment; rollback (by name in the body). */
static void change(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp, struct srv_exp *e,
                   const char *action)
{
    hs_server *s = c->srv;
    json_t *o = body_object(c, req, resp);
    if (!o)
        return;
    char reason[400];
    hs_err err = {0};
    int rc = HS_OK;
    if (!strcmp(action, "rollback")) {
        if (!reason_of(c, resp, o, "manual", reason, sizeof reason))
            goto out;
        rc = hs_srv_exp_rollback(s, e, reason, &err);
    } else {
        pthread_mutex_lock(&s->exps->mu);
        struct hs_exp_state next = e->st;
        pthread_mutex_unlock(&s->exps->mu);
        next.updated_ms = hs_srv_unix_ms();
        const char *kind;
        if (!strcmp(action, "weight")) {
            json_t *w = json_object_get(o, "weight");
            if (!json_is_number(w) || json_number_value(w) < 0 || json_number_value(w) > 1) {
                hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "weight",
                            "weight must be B's share, a number from 0 to 1");
                goto out;
            }
            if (!reason_of(c, resp, o, "manual", reason, sizeof reason))
                goto out;
            next.weight_b = json_number_value(w);
            next.status = HS_EXP_ACTIVE;
            kind = HS_EXP_EV_WEIGHT;
        } else if (!strcmp(action, "promote")) {
            if (!reason_of(c, resp, o, "manual", reason, sizeof reason))
                goto out;
            next.weight_b = 1;
            next.status = HS_EXP_PROMOTED;
            kind = HS_EXP_EV_PROMOTE;
        } else {
            if (!reason_of(c, resp, o, "manual", reason, sizeof reason))
                goto out;
            next.weight_b = 0;
            next.status = HS_EXP_STOPPED;
            kind = HS_EXP_EV_STOP;
        }
        rc = hs_srv_exp_change(s, e, &next, kind, reason, &err);
    }
    if (rc) {
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "cannot change the experiment: %s", err.msg);
        goto out;
    }
    float *scratch = hs_malloc(SRV_WIN_CAP * sizeof *scratch);
    json_t *res = scratch ? exp_json(s, e, scratch) : NULL;
    hs_free(scratch);
    if (res)
        hs_srv_reply_json(c, resp, 200, res);
    else
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
out:
    json_decref(o);
}

static struct srv_exp *find(hs_server *s, const char *name, size_t len)
{
    struct srv_exps *x = s->exps;
    struct srv_exp *e = NULL;
    pthread_mutex_lock(&x->mu);
    for (int i = 0; i < x->n && !e; i++)
        if (strlen(x->v[i]->def.name) == len && !memcmp(x->v[i]->def.name, name, len))
            e = x->v[i];
    pthread_mutex_unlock(&x->mu);
    return e;
}

static void not_found(struct srv_call *c, struct hs_http_resp *resp, const char *name, size_t len)
{
    hs_srv_fail(c, resp, 404, "invalid_request_error", "experiment_not_found", NULL,
                "no experiment is called '%.*s'", (int)(len > 200 ? 200 : len), name);
}

static void method_not_allowed(struct srv_call *c, struct hs_http_resp *resp, const char *method, const char *path,
                               const char *allow)
{
    hs_http_resp_header(resp, "Allow", allow);
    hs_srv_fail(c, resp, 405, "invalid_request_error", "method_not_allowed", NULL, "%.16s is not allowed on %.200s",
                method, path);
}

void hs_route_experiments(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    const char *path = req->path;
    const char *method = req->method ? req->method : "";
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    bool post = !strcmp(method, "POST");
    if (!c->srv->exps) {
        hs_srv_fail(c, resp, 503, "service_unavailable", NULL, NULL, "the server is loading its models");
        return;
    }
    if (!strcmp(path, "/admin/rollback")) {
        if (!post)
            return method_not_allowed(c, resp, method, path, "POST");
        json_t *o = body_object(c, req, resp);
        if (!o)
            return;
        json_t *n = json_object_get(o, "experiment");
        if (!json_is_string(n)) {
            json_decref(o);
            hs_srv_fail(c, resp, 400, "invalid_request_error", "missing_field", "experiment",
                        "experiment (the experiment's name) is required");
            return;
        }
        struct srv_exp *e = find(c->srv, json_string_value(n), json_string_length(n));
        if (!e)
            not_found(c, resp, json_string_value(n), json_string_length(n));
        json_decref(o);
        if (e)
            change(c, req, resp, e, "rollback");
        return;
    }
    if (!strcmp(path, "/admin/experiments")) {
        if (get)
            list(c, resp);
        else if (post)
            create(c, req, resp);
        else
            method_not_allowed(c, resp, method, path, "GET, HEAD, POST");
        return;
    }
    const char *name = path + strlen("/admin/experiments/");
    const char *slash = strchr(name, '/');
    size_t len = slash ? (size_t)(slash - name) : strlen(name);
    struct srv_exp *e = len ? find(c->srv, name, len) : NULL;
    if (!e)
        return not_found(c, resp, name, len);
    if (!slash) {
        if (get)
            show(c, resp, e);
        else
            method_not_allowed(c, resp, method, path, "GET, HEAD");
        return;
    }
    const char *action = slash + 1;
    if (strcmp(action, "weight") && strcmp(action, "promote") && strcmp(action, "stop")) {
        hs_srv_fail(c, resp, 404, "invalid_request_error", "not_found", NULL, "no route %.200s", path);
        return;
    }
    if (!post)
        return method_not_allowed(c, resp, method, path, "POST");
    change(c, req, resp, e, action);
}
