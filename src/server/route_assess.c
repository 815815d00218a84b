/* POST /v1/assess: one scenario to many expert agents at once.
 *
 *   {"scenario": "text" | {...}, "agents": ["fire-commander", ...] (default all),
 *    "max_tokens", "temperature", "top_p", "seed" (for every agent), "stream"}
 *
 * Each agent's answer is an ordinary chat completion that the server makes
 * to itself (hs_srv_handle_internal): the agent's persona, adapters, sampling
 * and schema apply as for any request naming it, the scheduler batches the
 * agents together, and each leaves its own record (parent_id = this call).
 * One thread per agent waits for its answer. The reply holds every agent's
 * answer with its latency and tokens; streamed, each agent's result is one
 * SSE event as soon as it is ready, then a summary, then [DONE]. */
#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "server/openai.h"
#include "server/server_impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_AGENTS 64
#define POLL_MS 100

struct member {
    struct assess *as;
    const struct srv_agent *agent;
    pthread_t th;
    bool started;
    char req_id[200];
    char *body; /* the chat request */
    struct srv_internal in;
    /* results (written by the member's thread before done) */
    int status;
    json_t *answer; /* the chat completion or error object */
    double wall_ms;
    bool done;     /* under as->mu */
    bool reported; /* streamed already (the pulling thread's) */
};

struct assess {
    hs_server *srv;
    struct srv_call *c;
    char id[176];
    int64_t created;
    json_t *scenario; /* as given */
    struct member *mem;
    int n;
    atomic_bool cancel;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_done;
    double t0;
    /* streaming */
    hs_buf out;
    size_t out_off;
    bool ended;
    struct hs_http_probe gone;
};

/* ---- one agent ---- */

static const char *member_header(void *user, const char *name)
{
    struct member *mb = user;
    if (!strcasecmp(name, "x-request-id"))
        return mb->req_id;
    if (!strcasecmp(name, "content-type"))
        return "application/json";
    return NULL;
}

static bool member_gone(void *user)
{
    struct member *mb = user;
    return atomic_load(&mb->as->cancel);
}

static void *member_main(void *arg)
{
    struct member *mb = arg;
    struct assess *as = mb->as;
    double t0 = hs_now_s();
    struct hs_http_req req = {
        .method = "POST",
        .path = "/v1/chat/completions",
        .body = mb->body,
        .body_len = strlen(mb->body),
        .client = as->c->client,
        .loopback = true,
        .header = member_header,
        .header_user = mb,
        .gone = {member_gone, mb},
    };
    struct hs_http_resp resp;
    memset(&resp, 0, sizeof resp);
    hs_srv_handle_internal(as->srv, &req, &resp, &mb->in);
    mb->status = resp.status;
    mb->answer = resp.body.len ? json_loadb(resp.body.data, resp.body.len, 0, NULL) : NULL;
    mb->wall_ms = (hs_now_s() - t0) * 1000.0;
    hs_http_resp_free(&resp);
    pthread_mutex_lock(&as->mu);
    mb->done = true;
    as->n_done++;
    pthread_cond_broadcast(&as->cv);
    pthread_mutex_unlock(&as->mu);
    return NULL;
}

/* ---- results ---- */

static json_t *ms_or_null(double ms)
{
    return ms >= 0 ? json_real(round(ms * 10) / 10) : json_null();
}

static json_t *member_result(const struct member *mb)
{
    const struct hs_agent *a = mb->agent->cfg;
    json_t *o = json_pack("{s:s,s:s?,s:s,s:s,s:i}", "agent", a->id, "name", a->name, "model", mb->agent->m->name,
                          "request_id", mb->req_id, "status", mb->status);
    if (!o)
        return NULL;
    const json_t *ans = mb->answer;
    json_t *choice = json_array_get(json_object_get(ans, "choices"), 0);
    json_t *msg = json_object_get(choice, "message");
    json_t *content = json_object_get(msg, "content");
    if (mb->status == 200 && json_is_string(content)) {
        json_object_set(o, "content", content);
        json_object_set(o, "finish_reason", json_object_get(choice, "finish_reason"));
        /* a structured answer comes parsed too */
        json_t *parsed = mb->agent->schema ? json_loadb(json_string_value(content), json_string_length(content),
                                                        JSON_DECODE_ANY, NULL)
                                           : NULL;
        json_object_set_new(o, "parsed", parsed ? parsed : json_null());
        json_object_set_new(o, "error", json_null());
    } else {
        json_t *msgj = json_object_get(json_object_get(ans, "error"), "message");
        json_object_set_new(o, "content", json_null());
        json_object_set_new(o, "error", json_is_string(msgj) ? json_copy(msgj)
                                                             : json_string("the agent gave no answer"));
    }
    json_object_set_new(o, "usage",
                        json_pack("{s:i,s:i,s:i,s:i}", "prompt_tokens", mb->in.tokens_in, "completion_tokens",
                                  mb->in.tokens_out, "total_tokens", mb->in.tokens_in + mb->in.tokens_out,
                                  "cached_tokens", mb->in.tokens_cached));
    json_object_set_new(o, "latency_ms", ms_or_null(mb->in.latency_ms));
    json_object_set_new(o, "ttft_ms", ms_or_null(mb->in.ttft_ms));
    json_object_set_new(o, "queue_ms", ms_or_null(mb->in.queue_ms));
    return o;
}

/* The whole answer (with_agents) or the stream's closing summary. */
static json_t *summary(struct assess *as, bool with_agents)
{
    int in = 0, out = 0, failed = 0;
    json_t *agents = with_agents ? json_array() : NULL;
    for (int i = 0; i < as->n; i++) {
        const struct member *mb = &as->mem[i];
        in += mb->in.tokens_in;
        out += mb->in.tokens_out;
        failed += mb->status != 200;
        if (agents)
            json_array_append_new(agents, member_result(mb));
    }
    json_t *o = json_pack("{s:s,s:s,s:I,s:O,s:i,s:i,s:f,s:{s:i,s:i,s:i}}", "id", as->id, "object", "assessment",
                          "created", (json_int_t)as->created, "scenario", as->scenario, "agents_total", as->n,
                          "agents_failed", failed, "wall_ms", round((hs_now_s() - as->t0) * 10000) / 10,
                          "usage", "prompt_tokens", in, "completion_tokens", out, "total_tokens", in + out);
    if (o && agents)
        json_object_set_new(o, "agents", agents);
    else
        json_decref(agents);
    as->c->tokens_in = in;
    as->c->tokens_out = out;
    return o;
}

/* ---- life ---- */

static void assess_free(struct assess *as)
{
    if (!as)
        return;
    atomic_store(&as->cancel, true);
    for (int i = 0; i < as->n; i++) {
        struct member *mb = &as->mem[i];
        if (mb->started)
            pthread_join(mb->th, NULL);
        json_decref(mb->answer);
        hs_free(mb->body);
    }
    hs_free(as->mem);
    json_decref(as->scenario);
    hs_buf_free(&as->out);
    pthread_cond_destroy(&as->cv);
    pthread_mutex_destroy(&as->mu);
    hs_free(as);
}

/* Waits until an agent not yet reported is done (or POLL_MS); -1 when none. */
static int wait_next(struct assess *as)
{
    pthread_mutex_lock(&as->mu);
    for (int i = 0; i < as->n; i++)
        if (as->mem[i].done && !as->mem[i].reported) {
            as->mem[i].reported = true;
            pthread_mutex_unlock(&as->mu);
            return i;
        }
    if (as->n_done < as->n) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += POLL_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&as->cv, &as->mu, &ts);
    }
    pthread_mutex_unlock(&as->mu);
    return -1;
}

static bool all_reported(struct assess *as)
{
    pthread_mutex_lock(&as->mu);
    bool all = as->n_done == as->n;
    for (int i = 0; all && i < as->n; i++)
        all = as->mem[i].reported;
    pthread_mutex_unlock(&as->mu);
    return all;
}

static long stream_pull(void *user, char *buf, size_t cap)
{
    struct assess *as = user;
    while (as->out_off >= as->out.len) {
        if (as->ended)
            return 0;
        hs_buf_reset(&as->out);
        as->out_off = 0;
        if (hs_http_probe_gone(&as->gone)) {
            atomic_store(&as->cancel, true);
            return -1;
        }
        if (all_reported(as)) {
            json_t *sum = summary(as, false);
            hs_sse_append(&as->out, sum);
            json_decref(sum);
            hs_sse_done(&as->out);
            as->ended = true;
            break;
        }
        int i = wait_next(as);
        if (i < 0)
            continue;
        json_t *ev = json_pack("{s:s,s:s,s:i,s:o}", "id", as->id, "object", "assessment.agent", "index", i,
                               "result", member_result(&as->mem[i]));
        hs_sse_append(&as->out, ev);
        json_decref(ev);
    }
    size_t n = as->out.len - as->out_off;
    if (n > cap)
        n = cap;
    memcpy(buf, as->out.data + as->out_off, n);
    hs_srv_call_capture(as->c, as->out.data + as->out_off, n);
    as->out_off += n;
    return (long)n;
}

static void stream_free(void *user)
{
    struct assess *as = user;
    struct srv_call *c = as->c;
    if (!as->ended) {
        c->status = 499;
        hs_srv_call_set_error(c, "the client closed the connection");
    }
    assess_free(as);
    hs_srv_call_finish(c);
}

/* ---- the request ---- */

static bool bad(struct srv_call *c, struct hs_http_resp *resp, const char *code, const char *param,
                const char *msg)
{
    hs_srv_fail(c, resp, 400, "invalid_request_error", code, param, "%s", msg);
    return false;
}

/* The options every agent gets, copied from the body after checking them. */
static bool copy_options(struct srv_call *c, struct hs_http_resp *resp, const json_t *body, json_t *req)
{
    static const struct {
        const char *key;
        double lo, hi;
        bool integer;
    } k_opts[] = {
        {"max_tokens", 1, 1 << 20, true},
        {"temperature", 0, 2, false},
        {"top_p", 0, 1, false},
        {"seed", -9.2e18, 9.2e18, true},
    };
    for (size_t i = 0; i < sizeof k_opts / sizeof k_opts[0]; i++) {
        const json_t *v = json_object_get(body, k_opts[i].key);
        if (!v || json_is_null(v))
            continue;
        bool ok = k_opts[i].integer ? json_is_integer(v) : json_is_number(v);
        double x = ok ? json_number_value(v) : 0;
        if (!ok || !(x >= k_opts[i].lo && x <= k_opts[i].hi)) {
            char msg[160];
            snprintf(msg, sizeof msg, "'%s' must be %s in [%g, %g]", k_opts[i].key,
                     k_opts[i].integer ? "an integer" : "a number", k_opts[i].lo, k_opts[i].hi);
            return bad(c, resp, ok ? "invalid_value" : "invalid_type", k_opts[i].key, msg);
        }
        json_object_set(req, k_opts[i].key, (json_t *)v);
    }
    return true;
}

/* The agents asked for (default all), in the order given. */
static bool pick_agents(struct srv_call *c, struct hs_http_resp *resp, const json_t *body, struct assess *as)
{
    hs_server *s = c->srv;
    const json_t *list = json_object_get(body, "agents");
    if (list && !json_is_null(list) && !json_is_array(list))
        return bad(c, resp, "invalid_type", "agents", "'agents' must be an array of agent ids");
    int n = list && json_is_array(list) ? (int)json_array_size(list) : s->n_agents;
    if (s->n_agents == 0)
        return bad(c, resp, "invalid_value", "agents", "this server has no agents configured (--agents FILE)");
    if (n == 0 || n > MAX_AGENTS)
        return bad(c, resp, "invalid_value", "agents", "'agents' must name between 1 and 64 agents");
    as->mem = hs_calloc((size_t)n, sizeof *as->mem);
    if (!as->mem) {
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    for (int i = 0; i < n; i++) {
        const struct srv_agent *a = &s->agents[i < s->n_agents ? i : 0];
        if (list && json_is_array(list)) {
            const json_t *id = json_array_get(list, (size_t)i);
            char param[32];
            snprintf(param, sizeof param, "agents[%d]", i);
            if (!json_is_string(id))
                return bad(c, resp, "invalid_type", param, "an agent id must be a string");
            a = hs_srv_find_agent(s, json_string_value(id));
            if (!a) {
                hs_srv_fail(c, resp, 404, "invalid_request_error", "agent_not_found", param,
                            "no agent '%.200s' (GET /v1/agents lists them)", json_string_value(id));
                return false;
            }
            for (int k = 0; k < i; k++)
                if (as->mem[k].agent == a)
                    return bad(c, resp, "invalid_value", param, "an agent is named twice");
        }
        as->mem[i].agent = a;
        as->mem[i].as = as;
        as->n = i + 1;
    }
    return true;
}

/* Every agent's chat request: the scenario as the user's message. */
static bool build_requests(struct srv_call *c, struct hs_http_resp *resp, const json_t *body, struct assess *as)
{
    hs_buf text = {0};
    hs_err err = {0};
    const char *sc = json_is_string(as->scenario) ? json_string_value(as->scenario) : NULL;
    char *dumped = sc ? NULL : json_dumps(as->scenario, JSON_COMPACT | JSON_PRESERVE_ORDER);
    int rc = hs_agent_scenario_text(&text, sc ? sc : dumped, sc ? json_string_length(as->scenario)
                                                                : (dumped ? strlen(dumped) : 0),
                                    &err);
    hs_free(dumped);
    if (rc) {
        hs_buf_free(&text);
        return bad(c, resp, "invalid_value", "scenario", err.msg);
    }
    json_t *req = json_pack("{s:s,s:[{s:s,s:s%}]}", "model", "", "messages", "role", "user", "content",
                            text.data ? text.data : "", text.len);
    hs_buf_free(&text);
    bool ok = req && copy_options(c, resp, body, req);
    for (int i = 0; ok && i < as->n; i++) {
        struct member *mb = &as->mem[i];
        json_object_set_new(req, "model", json_string(mb->agent->cfg->id));
        mb->body = json_dumps(req, JSON_COMPACT);
        snprintf(mb->req_id, sizeof mb->req_id, "%s.%s", as->id, mb->agent->cfg->id);
        mb->in = (struct srv_internal){
            .parent_id = as->c->record_id,
            .keyed = c->keyed,
            .key_name = c->key_name,
            .client = c->client,
            .cancel = &as->cancel,
            .ttft_ms = -1,
            .latency_ms = -1,
            .queue_ms = -1,
        };
        if (!mb->body) {
            hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
            ok = false;
        }
    }
    json_decref(req);
    return ok;
}

static bool start(struct srv_call *c, struct hs_http_resp *resp, struct assess *as)
{
    for (int i = 0; i < as->n; i++) {
        struct member *mb = &as->mem[i];
        if (pthread_create(&mb->th, NULL, member_main, mb)) {
            hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "cannot start a thread for agent '%s'",
                        mb->agent->cfg->id);
            return false;
        }
        mb->started = true;
    }
    return true;
}

void hs_route_assess(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    hs_server *s = c->srv;
    if (req->body_too_large) {
        hs_srv_fail(c, resp, 413, "invalid_request_error", "request_too_large", NULL,
                    "the request body is larger than the limit of %zu bytes", s->limits.max_body_bytes);
        return;
    }
    if (!hs_srv_ready(s)) {
        hs_http_resp_header(resp, "Retry-After", "5");
        hs_srv_fail(c, resp, 503, "service_unavailable", NULL, NULL, "the server is not ready");
        return;
    }
    json_error_t je;
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(body)) {
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_json", NULL,
                    "the body must be a JSON object%s%.200s", body ? "" : ": ", body ? "" : je.text);
        json_decref(body);
        return;
    }
    struct assess *as = hs_calloc(1, sizeof *as);
    if (!as) {
        json_decref(body);
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    as->srv = s;
    as->c = c;
    as->created = (int64_t)time(NULL);
    as->t0 = hs_now_s();
    as->gone = req->gone;
    atomic_init(&as->cancel, false);
    pthread_mutex_init(&as->mu, NULL);
    pthread_cond_init(&as->cv, NULL);
    snprintf(as->id, sizeof as->id, "%s", c->id);
    const json_t *sc = json_object_get(body, "scenario");
    const json_t *st = json_object_get(body, "stream");
    bool stream = json_is_true(st);
    bool ok = true;
    if (!sc || json_is_null(sc))
        ok = bad(c, resp, "missing_required_parameter", "scenario", "'scenario' is required (a text or an object)");
    else if (!(json_is_string(sc) && json_string_length(sc) > 0) && !json_is_object(sc))
        ok = bad(c, resp, "invalid_type", "scenario", "'scenario' must be a non-empty string or an object");
    else if (st && !json_is_null(st) && !json_is_boolean(st))
        ok = bad(c, resp, "invalid_type", "stream", "'stream' must be a boolean");
    if (ok) {
        as->scenario = json_deep_copy(sc);
        ok = as->scenario && pick_agents(c, resp, body, as) && build_requests(c, resp, body, as);
    }
    json_decref(body);
    c->stream = stream;
    if (!ok || !start(c, resp, as)) {
        assess_free(as);
        return;
    }
    if (stream) {
        resp->status = 200;
        c->status = 200;
        hs_http_resp_header(resp, "Content-Type", "text/event-stream");
        hs_http_resp_header(resp, "Cache-Control", "no-cache");
        resp->pull = stream_pull;
        resp->pull_user = as;
        resp->pull_free = stream_free;
        return;
    }
    for (;;) {
        pthread_mutex_lock(&as->mu);
        bool all = as->n_done == as->n;
        pthread_mutex_unlock(&as->mu);
        if (all)
            break;
        if (hs_http_probe_gone(&as->gone)) {
            atomic_store(&as->cancel, true);
            resp->status = 499;
            c->status = 499;
            hs_srv_call_set_error(c, "the client closed the connection");
            assess_free(as); /* joins: the agents see the cancel and stop */
            return;
        }
        wait_next(as);
        /* wait_next marks one reported; a collected answer reports nothing */
    }
    hs_srv_reply_json(c, resp, 200, summary(as, true));
    assess_free(as);
}
