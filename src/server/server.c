/* The server object and the dispatcher: one function per stage of the
 * pipeline, the routes in route_*.c, auth and limits in auth.c. */
#include "server/server.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/pool.h"
#include "server/openai.h"
#include "server/server_impl.h"

#include <errno.h>
#include <sodium.h>
#include <xxhash.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DEFAULT_ALIAS "default"

int64_t hs_srv_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool hs_srv_ready(const hs_server *s)
{
    return atomic_load(&s->state) == SRV_READY;
}

struct srv_model *hs_srv_find_model(hs_server *s, const char *name)
{
    if (!name)
        return NULL;
    for (int i = 0; i < s->n_models; i++) {
        const struct srv_model *m = &s->models[i];
        if (!strcmp(m->name, name) || (m->entry && m->entry->alias && !strcmp(m->entry->alias, name)))
            return &s->models[i];
    }
    if (s->n_models > 0 && !strcmp(name, DEFAULT_ALIAS))
        return &s->models[0];
    return NULL;
}

hs_store *hs_server_store(hs_server *s)
{
    return s->store;
}

hs_metrics *hs_server_metrics(hs_server *s)
{
    return s->metrics;
}

int hs_server_port(const hs_server *s)
{
    return s->port;
}

/* ---- JSON replies ---- */

int hs_srv_dump(hs_buf *out, const json_t *j)
{
    return j ? hs_oai_dump(out, j) : HS_ENOMEM;
}

void hs_srv_call_capture(struct srv_call *c, const char *data, size_t len)
{
    if (!c->srv->cfg->log_bodies || c->resp_body.len >= SRV_LOG_BODY_CAP)
        return;
    size_t room = SRV_LOG_BODY_CAP - c->resp_body.len;
    hs_buf_append(&c->resp_body, data, len < room ? len : room);
}

void hs_srv_call_set_error(struct srv_call *c, const char *msg)
{
    hs_free(c->error);
    c->error = msg ? hs_strdup(msg) : NULL;
}

void hs_srv_reply_json(struct srv_call *c, struct hs_http_resp *r, int status, json_t *body)
{
    hs_buf_reset(&r->body);
    if (hs_srv_dump(&r->body, body)) {
        hs_buf_reset(&r->body);
        hs_buf_puts(&r->body, "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                              "\"param\":null,\"code\":null}}");
        status = 500;
        hs_srv_call_set_error(c, "out of memory");
    }
    json_decref(body);
    r->status = status;
    c->status = status;
    hs_http_resp_header(r, "Content-Type", "application/json");
    hs_srv_call_capture(c, r->body.data, r->body.len);
}

void hs_srv_reply_error(struct srv_call *c, struct hs_http_resp *r, const struct hs_api_error *e)
{
    hs_srv_call_set_error(c, e->message);
    hs_srv_reply_json(c, r, e->status, hs_oai_error(e));
}

void hs_srv_fail(struct srv_call *c, struct hs_http_resp *r, int status, const char *type, const char *code,
                 const char *param, const char *fmt, ...)
{
    struct hs_api_error e;
    char msg[sizeof e.message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hs_api_error_set(&e, status, type, code, param, "%s", msg);
    hs_srv_reply_error(c, r, &e);
}

/* ---- calls ---- */

static void random_chars(char *out, size_t n)
{
    static const char k_alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char rnd[32];
    if (n > sizeof rnd)
        n = sizeof rnd;
    randombytes_buf(rnd, n);
    for (size_t i = 0; i < n; i++)
        out[i] = k_alnum[rnd[i] % 62]; /* a slight bias is fine for an id */
}

/* The client's x-request-id when it is usable: printable ASCII without
 * spaces, cut at 128 characters; otherwise a new one with the route's
 * prefix. Returns true when the id is the client's. */
static bool make_id(char *out, size_t cap, const char *client_id, const char *prefix)
{
    size_t n = 0;
    if (client_id) {
        for (const char *p = client_id; *p && n < 128 && n + 1 < cap; p++)
            if (*p > 0x20 && *p < 0x7f)
                out[n++] = *p;
        out[n] = '\0';
        if (n)
            return true;
    }
    int w = snprintf(out, cap, "%s", prefix);
    n = w > 0 && (size_t)w < cap ? (size_t)w : 0;
    size_t k = cap - n - 1 < 24 ? cap - n - 1 : 24;
    random_chars(out + n, k);
    out[n + k] = '\0';
    return false;
}

/* Whether this client-chosen id was recorded recently: a table of id hashes,
 * one per slot, the newest winning a slot. A client that reuses an id must
 * not keep a request out of the store (the store keeps the first record of
 * an id), so a reused id is recorded under id + "." + random characters.
 * Ids older than the table remembers (evicted, or from before a restart)
 * are not caught here. */
static bool seen_before(hs_server *s, const char *id)
{
    uint64_t h = XXH3_64bits(id, strlen(id)) | 1; /* 0 marks an empty slot */
    size_t slot = (size_t)(h & (SRV_SEEN_SLOTS - 1));
    pthread_mutex_lock(&s->mu);
    bool dup = s->seen[slot] == h;
    s->seen[slot] = h;
    pthread_mutex_unlock(&s->mu);
    return dup;
}

static struct srv_call *call_new(hs_server *s, const struct hs_http_req *req, const char *prefix)
{
    struct srv_call *c = hs_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->srv = s;
    c->t0 = hs_now_s();
    c->ts_ms = hs_srv_unix_ms();
    c->log = true;
    c->queue_ms = c->ttft_ms = c->latency_ms = -1;
    c->confidence = c->low_prob_share = -1;
    snprintf(c->endpoint, sizeof c->endpoint, "%s", req->path ? req->path : "");
    snprintf(c->client, sizeof c->client, "%s", req->client ? req->client : "");
    bool client_id = make_id(c->id, sizeof c->id, hs_http_req_header(req, "x-request-id"), prefix);
    snprintf(c->record_id, sizeof c->record_id, "%s", c->id);
    if (client_id && s->seen && seen_before(s, c->id)) {
        size_t n = strlen(c->record_id);
        c->record_id[n] = '.';
        random_chars(c->record_id + n + 1, 12);
        c->record_id[n + 13] = '\0';
    }
    if (s->cfg->log_bodies && req->body_len && !req->body_too_large && s->store)
        c->req_body = hs_strndup(req->body, req->body_len); /* the store redacts */
    pthread_mutex_lock(&s->mu);
    s->in_flight++;
    pthread_mutex_unlock(&s->mu);
    return c;
}

void hs_srv_call_finish(struct srv_call *c)
{
    if (!c || c->finished)
        return;
    c->finished = true;
    hs_server *s = c->srv;
    if (c->latency_ms < 0)
        c->latency_ms = (hs_now_s() - c->t0) * 1000.0;
    if (c->parent) {
        struct srv_internal *p = c->parent;
        p->ttft_ms = c->ttft_ms;
        p->latency_ms = c->latency_ms;
        p->queue_ms = c->queue_ms;
        p->tokens_in = c->tokens_in;
        p->tokens_out = c->tokens_out;
        p->tokens_cached = c->tokens_cached;
    }
    char *adapters = hs_srv_target_adapters(&c->tgt);
    if (c->log && s->store) {
        struct hs_request_record r = {
            .id = c->record_id,
            .ts_ms = c->ts_ms,
            .endpoint = c->endpoint,
            .key_name = c->keyed ? c->key_name : NULL,
            .client = c->client,
            .user = c->user,
            .model = c->model,
            .agent = c->tgt.agent ? c->tgt.agent->cfg->id : NULL,
            .adapters = adapters,
            .parent_id = c->parent ? c->parent->parent_id : NULL,
            .confidence = c->confidence,
            .safety_flags = c->safety_flags,
            .low_prob_share = c->low_prob_share,
            .experiment = c->exp ? hs_srv_exp_name(c->exp) : NULL,
            .variant = c->exp ? hs_exp_variant_name((enum hs_exp_variant)c->variant) : NULL,
            .backend = !c->m              ? NULL
                       : !c->m->upstream  ? "local"
                       : c->backend_url[0] ? c->backend_url
                                           : c->m->entry->upstream_url,
            .stream = c->stream,
            .status = c->status,
            .error = c->error,
            .finish_reason = c->finish_reason,
            .tokens_in = c->tokens_in,
            .tokens_out = c->tokens_out,
            .tokens_cached = c->tokens_cached,
            .queue_ms = c->queue_ms,
            .ttft_ms = c->ttft_ms,
            .latency_ms = c->latency_ms,
            .request_body = c->req_body,
            .response_body = c->resp_body.len ? c->resp_body.data : NULL,
        };
        hs_err err = {0};
        if (hs_store_log_request(s->store, &r, &err))
            hs_log_error("serve.record", "id=%s msg=\"%s\"", c->id, err.msg);
    }
    if (c->inference && s->metrics) {
        struct hs_metrics_request mr = {
            .model = c->m ? c->m->name : "",
            .status = c->status,
            .finish_reason = c->finish_reason,
            .prompt_tokens = c->tokens_in,
            .generation_tokens = c->tokens_out,
            .queue_s = c->queue_ms >= 0 ? c->queue_ms / 1000.0 : -1,
            .ttft_s = c->ttft_ms >= 0 ? c->ttft_ms / 1000.0 : -1,
            .e2e_s = c->latency_ms / 1000.0,
        };
        hs_metrics_observe_request(s->metrics, &mr);
    }
    hs_srv_monitor_observe(c);
    hs_srv_exp_observe(c);
    /* an internal request's tokens count once, in the outer request's */
    if (c->tokens_in + c->tokens_out > 0 && !c->parent)
        hs_srv_limits_add_tokens(c, c->tokens_in + c->tokens_out);
    hs_free(adapters);
    hs_srv_target_clear(&c->tgt);
    hs_log_debug("serve.request", "id=%s endpoint=%s status=%d in=%d out=%d ms=%.1f", c->id, c->endpoint,
                 c->status, c->tokens_in, c->tokens_out, c->latency_ms);
    hs_free(c->user);
    hs_free(c->safety_flags);
    hs_free(c->model);
    hs_free(c->error);
    hs_free(c->req_body);
    hs_buf_free(&c->resp_body);
    hs_free(c->shadow_body);
    hs_buf_free(&c->answer);
    hs_free(c);
    pthread_mutex_lock(&s->mu);
    s->in_flight--;
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

/* ---- the dispatcher ---- */

enum route {
    R_NOT_FOUND,
    R_METHOD,
    R_HEALTH,
    R_METRICS,
    R_MODELS,
    R_MODEL,
    R_CHAT,
    R_COMPLETIONS,
    R_EMBEDDINGS,
    R_AGENTS,
    R_ASSESS,
    R_FEEDBACK,
    R_API_METRICS,
    R_API_ALERTS,
    R_API_TIMESERIES,
    R_API_AGENTS,
    R_API_DRIFT,
    R_API_EXPERIMENTS,
    R_DASHBOARD,
    R_ADMIN
};

static bool is_get(const char *m)
{
    return !strcmp(m, "GET") || !strcmp(m, "HEAD");
}

static enum route match(const char *method, const char *path, const char **allow, const char **one)
{
    static const struct {
        const char *path;
        bool post;
        enum route r;
    } k_routes[] = {
        {"/health", false, R_HEALTH},
        {"/metrics", false, R_METRICS},
        {"/v1/models", false, R_MODELS},
        {"/v1/chat/completions", true, R_CHAT},
        {"/v1/completions", true, R_COMPLETIONS},
        {"/v1/embeddings", true, R_EMBEDDINGS},
        {"/v1/agents", false, R_AGENTS},
        {"/v1/assess", true, R_ASSESS},
        {"/v1/feedback", true, R_FEEDBACK},
        {"/api/metrics", false, R_API_METRICS},
        {"/api/alerts", false, R_API_ALERTS},
        {"/api/timeseries", false, R_API_TIMESERIES},
        {"/api/agents", false, R_API_AGENTS},
        {"/api/drift", false, R_API_DRIFT},
        {"/api/experiments", false, R_API_EXPERIMENTS},
    };
    *one = NULL;
    for (size_t i = 0; i < sizeof k_routes / sizeof k_routes[0]; i++) {
        if (strcmp(path, k_routes[i].path))
            continue;
        bool ok = k_routes[i].post ? !strcmp(method, "POST") : is_get(method);
        *allow = k_routes[i].post ? "POST" : "GET, HEAD";
        return ok ? k_routes[i].r : R_METHOD;
    }
    if (!strncmp(path, "/v1/models/", 11) && path[11]) {
        *allow = "GET, HEAD";
        *one = path + 11;
        return is_get(method) ? R_MODEL : R_METHOD;
    }
    if (!strcmp(path, "/admin") || !strncmp(path, "/admin/", 7))
        return R_ADMIN;
    if (!strcmp(path, "/dashboard") || !strncmp(path, "/dashboard/", 11)) {
        *allow = "GET, HEAD";
        return is_get(method) ? R_DASHBOARD : R_METHOD;
    }
    return R_NOT_FOUND;
}

static const char *id_prefix(const char *path)
{
    if (!strcmp(path, "/v1/chat/completions"))
        return "chatcmpl-";
    if (!strcmp(path, "/v1/completions"))
        return "cmpl-";
    if (!strcmp(path, "/v1/embeddings"))
        return "embd-";
    if (!strcmp(path, "/v1/assess"))
        return "assess-";
    return "req-";
}

static void dispatch(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp,
                     struct hs_gen_request *gr, enum hs_req_kind kind)
{
    if (c->m->upstream) {
        const char *up = kind == HS_REQ_CHAT         ? "/chat/completions"
                         : kind == HS_REQ_COMPLETION ? "/completions"
                                                     : "/embeddings";
        hs_route_upstream(c, req, resp, gr, up);
    } else if (kind == HS_REQ_EMBEDDING) {
        hs_route_embeddings(c, req, resp, gr);
    } else {
        hs_route_generate(c, req, resp, gr);
    }
}

/* (issue 7) Variant B failed before a byte of its answer went out: the call
 * starts over on A, and the record keeps B as the variant with B's failure
 * as its error (an A failure replaces it). The latency counts from the
 * arrival, B's attempt included: that is what the client waited. */
static void fallback(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp,
                     enum hs_req_kind kind)
{
    hs_server *s = c->srv;
    char a[HS_EXP_TARGET_MAX + 1], why[512];
    hs_srv_exp_target_a(c, a, sizeof a);
    snprintf(why, sizeof why, "variant B (%.100s) failed with HTTP %d%s%.300s; answered by A (%.100s)",
             c->m ? c->m->name : "?", c->status, c->error ? ": " : "", c->error ? c->error : "", a);
    hs_log_warn("experiment.fallback", "id=%s experiment=%s msg=\"%s\"", c->id, hs_srv_exp_name(c->exp), why);
    hs_srv_target_clear(&c->tgt);
    c->m = NULL;
    c->status = 0;
    c->finish_reason = NULL;
    c->tokens_in = c->tokens_out = c->tokens_cached = 0;
    c->queue_ms = c->ttft_ms = -1;
    c->confidence = c->low_prob_share = -1;
    hs_free(c->safety_flags);
    c->safety_flags = NULL;
    c->resp_body.len = 0;
    c->answer.len = 0;
    c->backend_url[0] = '\0';
    c->fallback = true;
    hs_srv_call_set_error(c, why);
    hs_http_resp_free(resp);
    memset(resp, 0, sizeof *resp);
    hs_http_resp_header(resp, "x-request-id", c->id);
    hs_http_resp_header(resp, "x-hestia-variant", "A");
    hs_http_resp_header(resp, "x-hestia-fallback", "B");
    struct hs_gen_request gr;
    struct hs_api_error e;
    memset(&gr, 0, sizeof gr);
    if (!hs_req_parse(kind, req->body, req->body_len, &s->limits, &gr, &e)) { /* it parsed the first time */
        hs_srv_reply_error(c, resp, &e);
        return;
    }
    char *model = hs_strdup(a);
    if (!model) {
        hs_req_free(&gr);
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    hs_free((char *)gr.model);
    gr.model = model;
    if (!hs_srv_resolve(c, &gr, resp)) {
        hs_req_free(&gr);
        return;
    }
    dispatch(c, req, resp, &gr, kind);
}

static void inference(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp,
                      enum hs_req_kind kind)
{
    hs_server *s = c->srv;
    c->inference = true;
    if (!c->parent && !hs_srv_auth(c, req, resp, false, true))
        return;
    if (req->body_too_large) {
        hs_srv_fail(c, resp, 413, "invalid_request_error", "request_too_large", NULL,
                    "the request body is larger than the limit of %zu bytes", s->limits.max_body_bytes);
        return;
    }
    int st = atomic_load(&s->state);
    if (st != SRV_READY) {
        hs_http_resp_header(resp, "Retry-After", st == SRV_LOADING ? "5" : "30");
        hs_srv_fail(c, resp, 503, "service_unavailable", NULL, NULL,
                    st == SRV_LOADING ? "the server is loading its models; retry shortly"
                                      : "the server is shutting down");
        return;
    }
    struct hs_gen_request gr;
    struct hs_api_error e;
    memset(&gr, 0, sizeof gr);
    if (!hs_req_parse(kind, req->body, req->body_len, &s->limits, &gr, &e)) {
        hs_srv_reply_error(c, resp, &e);
        return;
    }
    c->stream = gr.stream;
    c->model = gr.model ? hs_strdup(gr.model) : NULL;
    c->user = gr.user ? hs_strdup(gr.user) : NULL;
    hs_srv_exp_choose(c, &gr, req->body, req->body_len);
    /* kept apart: once a stream owns the call, c may be gone when dispatch returns */
    bool b_chosen = c->exp && c->variant == HS_EXP_B;
    if (c->exp)
        hs_http_resp_header(resp, "x-hestia-variant", b_chosen ? "B" : "A");
    if (!hs_srv_resolve(c, &gr, resp)) {
        hs_req_free(&gr);
        if (b_chosen)
            fallback(c, req, resp, kind);
        return;
    }
    dispatch(c, req, resp, &gr, kind);
    if (b_chosen && !resp->pull && (resp->status < 200 || resp->status >= 300))
        fallback(c, req, resp, kind);
}

void hs_srv_handle_internal(hs_server *s, const struct hs_http_req *req, struct hs_http_resp *resp,
                            struct srv_internal *parent)
{
    const char *path = req->path ? req->path : "";
    struct srv_call *c = call_new(s, req, id_prefix(path));
    if (!c) {
        resp->status = 500;
        return;
    }
    c->parent = parent;
    c->log = !parent->quiet;
    c->keyed = parent->keyed;
    snprintf(c->key_name, sizeof c->key_name, "%s", parent->key_name ? parent->key_name : "");
    hs_http_resp_header(resp, "x-request-id", c->id);
    inference(c, req, resp,
              !strcmp(path, "/v1/embeddings")    ? HS_REQ_EMBEDDING
              : !strcmp(path, "/v1/completions") ? HS_REQ_COMPLETION
                                                 : HS_REQ_CHAT);
    if (resp->pull) { /* never asked for; a stream cannot be taken here */
        hs_http_resp_free(resp);
        resp->status = 500;
    }
    hs_srv_call_finish(c);
}

void hs_server_handle(hs_server *s, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    const char *path = req->path ? req->path : "";
    const char *method = req->method ? req->method : "";
    struct srv_call *c = call_new(s, req, id_prefix(path));
    if (!c) {
        resp->status = 500;
        hs_buf_puts(&resp->body, "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                                 "\"param\":null,\"code\":null}}");
        return;
    }
    hs_http_resp_header(resp, "x-request-id", c->id);
    const char *allow = NULL, *one = NULL;
    enum route r = match(method, path, &allow, &one);
    switch (r) {
    case R_HEALTH:
        c->log = false;
        hs_route_health(c, req, resp);
        break;
    case R_METRICS:
        /* A scraper on this machine needs no key (as vLLM's /metrics needs
         * none); from elsewhere it needs one like any route. */
        c->log = false;
        if (req->loopback || hs_srv_auth(c, req, resp, false, false))
            hs_route_metrics(c, req, resp);
        break;
    case R_MODELS:
    case R_MODEL:
        if (hs_srv_auth(c, req, resp, false, false))
            hs_route_models(c, req, resp, one);
        break;
    case R_CHAT:
        inference(c, req, resp, HS_REQ_CHAT);
        break;
    case R_COMPLETIONS:
        inference(c, req, resp, HS_REQ_COMPLETION);
        break;
    case R_EMBEDDINGS:
        inference(c, req, resp, HS_REQ_EMBEDDING);
        break;
    case R_AGENTS:
        if (hs_srv_auth(c, req, resp, false, false))
            hs_route_agents(c, req, resp);
        break;
    case R_ASSESS:
        c->inference = true;
        if (hs_srv_auth(c, req, resp, false, true))
            hs_route_assess(c, req, resp);
        break;
    case R_FEEDBACK:
        if (hs_srv_auth(c, req, resp, false, true))
            hs_route_feedback(c, req, resp);
        break;
    case R_API_METRICS:
        /* the dashboard's data: loopback, or an admin key from elsewhere */
        c->log = false;
        if (req->loopback || hs_srv_auth(c, req, resp, true, false))
            hs_route_api_metrics(c, req, resp);
        break;
    case R_API_ALERTS:
        c->log = false;
        if (req->loopback || hs_srv_auth(c, req, resp, true, false))
            hs_route_api_alerts(c, req, resp);
        break;
    case R_API_TIMESERIES:
        c->log = false;
        if (req->loopback || hs_srv_auth(c, req, resp, true, false))
            hs_route_api_timeseries(c, req, resp);
        break;
    case R_API_AGENTS:
        c->log = false;
        if (req->loopback || hs_srv_auth(c, req, resp, true, false))
            hs_route_api_agents(c, req, resp);
        break;
    case R_API_DRIFT:
        c->log = false;
        if (req->loopback || hs_srv_auth(c, req, resp, true, false))
            hs_route_api_drift(c, req, resp);
        break;
    case R_API_EXPERIMENTS:
        c->log = false;
        if (req->loopback || hs_srv_auth(c, req, resp, true, false))
            hs_route_api_experiments(c, req, resp);
        break;
    case R_DASHBOARD:
        /* The page and its scripts hold no data (that comes from the /api routes,
           loopback or admin key), so they are served to anyone. */
        c->log = false;
        hs_route_dashboard(c, req, resp);
        break;
    case R_ADMIN:
        if (hs_srv_auth(c, req, resp, true, false)) {
            if (!strcmp(path, "/admin/adapters") || !strncmp(path, "/admin/adapters/", 16))
                hs_route_adapters(c, req, resp);
            else if (!strcmp(path, "/admin/experiments") || !strncmp(path, "/admin/experiments/", 19) ||
                     !strcmp(path, "/admin/rollback"))
                hs_route_experiments(c, req, resp);
            else
                hs_route_admin(c, req, resp);
        }
        break;
    case R_METHOD:
        hs_http_resp_header(resp, "Allow", allow);
        hs_srv_fail(c, resp, 405, "invalid_request_error", "method_not_allowed", NULL,
                    "%.16s is not allowed on %.200s (allowed: %s)", method, path, allow);
        break;
    case R_NOT_FOUND:
    default:
        if (hs_srv_auth(c, req, resp, false, false))
            hs_srv_fail(c, resp, 404, "not_found_error", "unknown_url", NULL,
                        "Unknown request URL: %.16s %.200s", method, path);
        break;
    }
    /* A streamed answer owns the call until its stream ends. */
    if (!resp->pull)
        hs_srv_call_finish(c);
}

/* ---- life ---- */

static void http_handler(void *user, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    hs_server_handle(user, req, resp);
}

int hs_server_create(const struct hs_serve_config *cfg, const struct hs_server_opts *opts, hs_server **out,
                     hs_err *err)
{
    *out = NULL;
    if (sodium_init() < 0)
        return hs_err_set(err, HS_EIO, "libsodium failed to initialise");
    hs_server *s = hs_calloc(1, sizeof *s);
    if (!s)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    s->cfg = cfg;
    if (opts)
        s->opts = *opts;
    s->limits = (struct hs_req_limits){cfg->max_body_bytes, cfg->max_messages, cfg->max_input_tokens};
    atomic_init(&s->state, SRV_LOADING);
    atomic_init(&s->cut, false);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->admin_mu, NULL);
    pthread_cond_init(&s->idle, NULL);
    int rc = hs_store_open(cfg->store_path ? cfg->store_path : "hestia.db", &s->store, err);
    if (!rc)
        rc = hs_metrics_create(&s->metrics, err);
    if (!rc && (hs_ratelimit_create(&cfg->per_key, &s->rl_key) ||
                hs_ratelimit_create(&cfg->per_address, &s->rl_addr)))
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    if (!rc)
        rc = hs_srv_monitor_start(s, err);
    if (!rc)
        rc = hs_srv_safety_load(s, err);
    if (!rc)
        rc = hs_srv_drift_start(s, err);
    if (!rc) {
        s->seen = hs_calloc(SRV_SEEN_SLOTS, sizeof *s->seen);
        if (!s->seen)
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    if (!rc) {
        s->models = hs_calloc((size_t)(cfg->n_models > 0 ? cfg->n_models : 1), sizeof *s->models);
        if (!s->models)
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    if (rc) {
        s->shut_down = true;
        hs_server_free(s);
        return rc;
    }
    *out = s;
    return HS_OK;
}

int hs_server_listen(hs_server *s, hs_err *err)
{
    const struct hs_serve_config *cfg = s->cfg;
    const char *host = cfg->host && *cfg->host ? cfg->host : "127.0.0.1";
    if (!cfg->insecure && hs_store_key_count(s->store) <= 0 && !hs_http_host_is_loopback(host))
        return hs_err_set(
            err, HS_EINVAL,
            "refusing to listen on %s: the store has no API key, so anyone could use the server; "
            "create one ('hestia keys create --name NAME --store %s') or pass --insecure",
            host, cfg->store_path ? cfg->store_path : "hestia.db");
    if (s->opts.no_http)
        return HS_OK;
    struct hs_http_params hp = {
        .host = host,
        .port = cfg->port,
        .max_body_bytes = cfg->max_body_bytes,
        .timeout_s = cfg->timeout_s,
        .max_connections = cfg->max_connections,
        .handler = http_handler,
        .user = s,
    };
    int rc = hs_http_start(&hp, &s->http, err);
    if (rc)
        return rc;
    s->port = hs_http_port(s->http);
    return HS_OK;
}

static void engine_gauges(void *user, const char *model, struct hs_metrics_engine *out)
{
    (void)model;
    const struct srv_model *m = user;
    struct hs_sched_stats st;
    memset(&st, 0, sizeof st);
    hs_sched_stats(m->sched, &st);
    out->running = st.running;
    out->waiting = st.waiting;
    out->kv_usage = st.kv_usage;
    out->prefix_queries = st.prefix_queries_tokens;
    out->prefix_hits = st.prefix_hits_tokens;
}

static char *token_text(const hs_tok *t, int32_t id)
{
    hs_buf b = {0};
    if (id >= 0)
        hs_tok_decode_token(t, id, true, &b);
    char *s = hs_buf_steal(&b);
    return s ? s : hs_strdup("");
}

static uint64_t n_params(const hs_model *m)
{
    const hs_gguf *g = hs_model_gguf(m);
    uint64_t n = 0;
    for (int64_t i = 0; i < hs_gguf_n_tensors(g); i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        uint64_t e = 1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            e *= (uint64_t)t->ne[d];
        n += e;
    }
    return n;
}

static int load_local(hs_server *s, struct srv_model *m, hs_err *err)
{
    const struct hs_serve_config *cfg = s->cfg;
    const struct hs_model_entry *e = m->entry;
    double t0 = hs_now_s();
    int rc = hs_model_load(e->path, NULL, &m->model, err);
    if (rc)
        return hs_err_prefix(err, "model '%s': ", m->name);
    m->tok = hs_model_tok(m->model);
    const struct hs_hparams *hp = hs_model_hparams(m->model);
    m->n_embd = hp->n_embd;
    m->n_vocab = hs_tok_n_vocab(m->tok);

    const char *tmpl_src = hs_model_chat_template(m->model);
    const char *tmpl_note = "gguf";
    if (e->chat_template) {
        m->tmpl = hs_tmpl_from_name(e->chat_template);
        if (m->tmpl == HS_TMPL_UNKNOWN)
            return hs_err_set(err, HS_EINVAL, "model '%s': unknown chat template '%s' (known: %s)", m->name,
                              e->chat_template, hs_tmpl_names());
        tmpl_note = "configured";
    } else {
        m->tmpl = hs_tmpl_detect(tmpl_src);
        if (m->tmpl == HS_TMPL_UNKNOWN) {
            m->tmpl = HS_TMPL_CHATML;
            tmpl_note = tmpl_src ? "fallback (the GGUF's template is not one hestia knows)"
                                 : "fallback (the GGUF has none)";
            hs_log_warn("serve.template",
                        "model=%s template=chatml msg=\"%s; set chat_template to override\"", m->name,
                        tmpl_note);
        }
    }
    m->bos_text = token_text(m->tok, hs_tok_bos(m->tok));
    m->eos_text = token_text(m->tok, hs_tok_eos(m->tok));
    if (!m->bos_text || !m->eos_text)
        return hs_err_set(err, HS_ENOMEM, "out of memory");

    struct hs_sched_params sp;
    hs_sched_params_default(&sp);
    sp.n_slots = e->parallel > 0 ? e->parallel : cfg->parallel > 0 ? cfg->parallel : sp.n_slots;
    sp.n_ctx = e->n_ctx > 0 ? e->n_ctx : cfg->n_ctx;
    sp.n_threads = e->threads > 0 ? e->threads : cfg->threads;
    if (cfg->n_batch > 0)
        sp.n_batch = cfg->n_batch;
    if (cfg->queue_max > 0)
        sp.queue_max = cfg->queue_max;
    sp.wave_wait_ms = cfg->wave_wait_ms;
    rc = hs_adapter_reg_create(&m->adapters, err);
    if (!rc)
        rc = hs_sched_create(m->model, &sp, &m->sched, err);
    if (rc)
        return hs_err_prefix(err, "model '%s': ", m->name);
    m->n_ctx = hs_sched_n_ctx(m->sched);
    int threads = sp.n_threads > 0 ? sp.n_threads : hs_cpu_count();
    /* K and V per position, layer and KV head; f16 unless configured otherwise */
    double kv_bytes = (double)sp.n_slots * m->n_ctx * hp->n_layer * hp->n_head_kv * hp->head_dim * 2.0 *
                      (sp.kv_type == HS_KV_F32 ? 4 : 2);
    hs_log_info(
        "serve.model",
        "name=%s path=%s arch=%s type=%s params=%.2fM template=%s template_source=\"%s\" threads=%d ctx=%d "
        "slots=%d queue=%d batch=%d wave_wait_ms=%d weights_mib=%.1f kv_mib=%.1f load_s=%.2f",
        m->name, e->path, hp->arch, hs_model_type_name(m->model), (double)n_params(m->model) / 1e6,
        hs_tmpl_name(m->tmpl), tmpl_note, threads, m->n_ctx, sp.n_slots, sp.queue_max, sp.n_batch, sp.wave_wait_ms,
        (double)hs_model_weight_bytes(m->model) / (1 << 20), kv_bytes / (1 << 20), hs_now_s() - t0);
    return hs_metrics_add_model(s->metrics, m->name, engine_gauges, m)
               ? hs_err_set(err, HS_ENOMEM, "out of memory")
               : HS_OK;
}

static int load_upstream(hs_server *s, struct srv_model *m, hs_err *err)
{
    const struct hs_model_entry *e = m->entry;
    /* (issue 7) the mapping form is a pool of one */
    struct hs_upstream_member_params one = {e->upstream_url, e->upstream_key, e->upstream_model, 1};
    struct hs_upstream_member_params *mp = &one;
    int n = 1;
    if (e->n_upstreams > 0) {
        n = e->n_upstreams;
        mp = hs_calloc((size_t)n, sizeof *mp);
        if (!mp)
            return hs_err_set(err, HS_ENOMEM, "out of memory");
        for (int i = 0; i < n; i++)
            mp[i] = (struct hs_upstream_member_params){e->upstreams[i].url, e->upstreams[i].api_key,
                                                       e->upstreams[i].model, e->upstreams[i].weight};
    }
    for (int i = 0; i < n; i++)
        if (!mp[i].model)
            mp[i].model = e->name;
    int total_s = e->upstream_timeout_s;
    struct hs_upstream_pool_params pp = {
        .name = m->name,
        .members = mp,
        .n_members = n,
        .connect_timeout_ms = e->upstream_connect_timeout_s * 1000,
        .timeout_ms = total_s * 1000,
        /* A non-streamed answer sends nothing until it is complete, so silence
         * may last as long as the whole request: bound it by the same time. */
        .idle_timeout_ms = e->upstream_idle_timeout_s > 0 ? e->upstream_idle_timeout_s * 1000
                                                          : (total_s > 0 ? total_s * 1000 : 300000),
        .retries = e->upstream_retries,
        /* A lone upstream (the mapping form) gets no health thread unless
         * asked: there is nowhere else to send its traffic, so probes would
         * only add requests (and records, on another hestia); its breaker and
         * retries still guard it. */
        .health_interval_ms =
            e->upstream_health_interval_s > 0 ? e->upstream_health_interval_s * 1000 : (n > 1 ? 0 : -1),
        .breaker_failures = e->upstream_breaker_failures,
        .breaker_cooldown_ms = e->upstream_breaker_cooldown_s * 1000,
    };
    int rc = hs_upstream_pool_create(&pp, &m->pool, err);
    for (int i = 0; rc == HS_OK && i < n; i++)
        hs_log_info("serve.model", "name=%s upstream=%s remote_model=%s weight=%d", m->name, mp[i].url,
                    mp[i].model, mp[i].weight > 0 ? mp[i].weight : 1);
    if (mp != &one)
        hs_free(mp);
    if (rc)
        return hs_err_prefix(err, "model '%s': ", m->name);
    return hs_metrics_add_model(s->metrics, m->name, NULL, NULL) ? hs_err_set(err, HS_ENOMEM, "out of memory")
                                                                 : HS_OK;
}

int hs_server_load_models(hs_server *s, hs_err *err)
{
    const struct hs_serve_config *cfg = s->cfg;
    if (cfg->n_models <= 0)
        return hs_err_set(err, HS_EINVAL, "no model configured");
    int64_t created = hs_srv_unix_ms() / 1000;
    for (int i = 0; i < cfg->n_models; i++) {
        struct srv_model *m = &s->models[i];
        m->entry = &cfg->models[i];
        m->name = hs_strdup(cfg->models[i].name);
        if (!m->name)
            return hs_err_set(err, HS_ENOMEM, "out of memory");
        m->created = created;
        m->upstream = cfg->models[i].upstream_url != NULL;
        s->n_models = i + 1; /* so that hs_server_free releases what was loaded */
        int rc = m->upstream ? load_upstream(s, m, err) : load_local(s, m, err);
        if (rc)
            return rc;
    }
    int rc = hs_srv_agents_load(s, err);
    if (!rc)
        rc = hs_srv_exps_start(s, err); /* (issue 7) their targets exist by now */
    if (rc)
        return rc;
    atomic_store(&s->state, SRV_READY);
    return HS_OK;
}

/* Waits until no request is in flight or the deadline (monotonic seconds). */
static bool wait_idle(hs_server *s, double deadline)
{
    pthread_mutex_lock(&s->mu);
    while (s->in_flight > 0) {
        double left = deadline - hs_now_s();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double step = left < 0.25 ? left : 0.25;
        ts.tv_nsec += (long)(step * 1e9);
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->idle, &s->mu, &ts);
    }
    bool idle = s->in_flight == 0;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

void hs_server_shutdown(hs_server *s, int drain_ms)
{
    if (!s || s->shut_down)
        return;
    s->shut_down = true;
    hs_srv_drift_stop(s); /* a scheduled run in progress gives up now */
    hs_srv_exps_stop(s);  /* shadow copies waiting are dropped; one in flight gives up */
    double t0 = hs_now_s();
    double deadline = t0 + (drain_ms > 0 ? drain_ms : 0) / 1000.0;
    atomic_store(&s->state, SRV_DRAINING);
    pthread_mutex_lock(&s->mu);
    int running = s->in_flight;
    pthread_mutex_unlock(&s->mu);
    hs_log_info("serve.shutdown", "drain_ms=%d in_flight=%d", drain_ms, running);
    if (s->http)
        hs_http_quiesce(s->http);
    for (int i = 0; i < s->n_models; i++) {
        if (!s->models[i].sched)
            continue;
        double left = deadline - hs_now_s();
        hs_sched_drain(s->models[i].sched, left > 0 ? (int)(left * 1000) : 0);
    }
    bool idle = wait_idle(s, deadline);
    if (!idle) {
        /* Time is up: upstream transfers and anything else still running stop now. */
        atomic_store(&s->cut, true);
        idle = wait_idle(s, hs_now_s() + 5.0);
    }
    if (s->http) {
        hs_http_stop(s->http);
        s->http = NULL;
    }
    if (s->store)
        hs_store_flush(s->store);
    pthread_mutex_lock(&s->mu);
    running = s->in_flight;
    pthread_mutex_unlock(&s->mu);
    hs_log_info("serve.stopped", "drain_s=%.2f left=%d", hs_now_s() - t0, running);
}

void hs_server_free(hs_server *s)
{
    if (!s)
        return;
    hs_server_shutdown(s, 0);
    for (int i = 0; i < s->n_models; i++) {
        struct srv_model *m = &s->models[i];
        if (m->sched)
            hs_sched_free(m->sched);
        hs_adapter_reg_free(m->adapters); /* after the scheduler: its jobs are gone */
        if (m->model)
            hs_model_free(m->model);
        hs_upstream_pool_free(m->pool); /* streams still open keep it alive */
        hs_free(m->bos_text);
        hs_free(m->eos_text);
        hs_free(m->name);
    }
    hs_srv_exps_free(s); /* before the models: a shadow copy may hold one */
    hs_srv_agents_free(s);
    hs_srv_drift_stop(s);
    hs_srv_monitor_stop(s);
    hs_safety_free(s->safety);
    hs_free(s->models);
    hs_free(s->seen);
    hs_ratelimit_free(s->rl_key);
    hs_ratelimit_free(s->rl_addr);
    hs_metrics_free(s->metrics);
    hs_store_close(s->store);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->admin_mu);
    pthread_mutex_destroy(&s->mu);
    hs_free(s);
}
