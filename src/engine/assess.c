/* One scenario to many agents at once (engine/assess.h).
 *
 * A few worker threads take the agents in order from a shared counter, so
 * at most `parallel` requests are in flight and a slow agent does not hold
 * up the ones behind it. Every request is streamed (hs_client_chat_stream)
 * so that the time to the first token is measured the same way on every
 * server. The scenario becomes the user message once, before the workers
 * start; each worker only reads the shared state and writes its own
 * results[i]. */
#include "engine/assess.h"

#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "model/json_schema.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum {
    DEFAULT_MAX_TOKENS = 512,
    MAX_WORKERS = 64,
    SCHEMA_NAME_MAX = 64, /* OpenAI's limit for json_schema.name: [A-Za-z0-9_-]{1,64} */
};

void hs_assess_opts_default(struct hs_assess_opts *o)
{
    memset(o, 0, sizeof *o);
    o->temperature = NAN;
    o->seed = -1;
}

struct run {
    hs_client *client;
    const struct hs_agent *agents;
    int n;
    const char *user; /* the scenario as a user message */
    const struct hs_assess_opts *opts;
    char **models; /* GET /models, when opts->model is NULL */
    int n_models;
    struct hs_assess_result *results;
    pthread_mutex_t mu;
    int next; /* under mu: the next agent to run */
};

static bool listed(const struct run *r, const char *name)
{
    for (int i = 0; name && i < r->n_models; i++)
        if (!strcmp(r->models[i], name))
            return true;
    return false;
}

/* The model an agent's request names: the option, else the agent itself
 * when the server lists it (a hestia serving these agents answers as the
 * agent, adapters and all), else the agent's base model when listed, else
 * the server's first model. */
static const char *choose_model(const struct run *r, const struct hs_agent *a)
{
    if (r->opts->model)
        return r->opts->model;
    if (listed(r, a->id))
        return a->id;
    if (listed(r, a->model))
        return a->model;
    return r->models[0];
}

const char *hs_assess_json_span(const char *content, size_t *len)
{
    const char *p = content ? content : "";
    const char *end = p + strlen(p);
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
        end--;
    /* ```json ... ``` around the document, as chat models like to write it. */
    if (end - p >= 6 && !strncmp(p, "```", 3) && !strncmp(end - 3, "```", 3)) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl && nl < end - 3) {
            p = nl + 1;
            end -= 3;
            while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
                end--;
        }
    }
    *len = (size_t)(end - p);
    return p;
}

/* {"type":"json_schema","json_schema":{"name":<id as [A-Za-z0-9_-]>,
 * "schema":<the agent's schema>}} as text (a new string, free()), or NULL
 * with err set. */
static char *response_format(const struct hs_agent *a, hs_err *err)
{
    json_error_t je;
    json_t *schema = json_loads(a->schema, 0, &je);
    if (!json_is_object(schema)) {
        json_decref(schema);
        hs_err_set(err, HS_EINVAL, "agent %s: its schema is not a JSON object (%s)", a->id, je.text);
        return NULL;
    }
    char name[SCHEMA_NAME_MAX + 1];
    size_t k = 0;
    for (const char *p = a->id ? a->id : ""; *p && k < SCHEMA_NAME_MAX; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '-';
        name[k++] = ok ? ch : '_';
    }
    if (!k)
        name[k++] = 'a';
    name[k] = '\0';
    /* "o" steals schema's reference. */
    json_t *rf = json_pack("{s:s, s:{s:s, s:o}}", "type", "json_schema", "json_schema", "name", name,
                           "schema", schema);
    char *text = rf ? json_dumps(rf, JSON_COMPACT) : NULL;
    json_decref(rf);
    if (!text)
        hs_err_set(err, HS_ENOMEM, "out of memory");
    return text;
}

/* The agent's top_k and min_p (extensions most local servers take) as an
 * "extra" object's text, or NULL when neither is set. */
static char *sampling_extra(const struct hs_agent *a)
{
    if (a->top_k < 0 && !isfinite(a->min_p))
        return NULL;
    json_t *o = json_object();
    if (o && a->top_k >= 0)
        json_object_set_new(o, "top_k", json_integer(a->top_k));
    if (o && isfinite(a->min_p))
        json_object_set_new(o, "min_p", json_real(a->min_p));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

/* Whether the answer validates under the agent's schema (false when the
 * schema is outside what hs_jschema understands). */
static bool answer_valid(const struct hs_agent *a, const char *content)
{
    hs_jschema *s = NULL;
    hs_err e = {0};
    if (hs_jschema_compile(a->schema, strlen(a->schema), &s, &e) != HS_OK) {
        hs_log_debug("assess.schema", "agent=%s msg=\"%s\"", a->id, e.msg);
        return false;
    }
    size_t len;
    const char *doc = hs_assess_json_span(content, &len);
    bool ok = hs_jschema_validate(s, doc, len, &e) == HS_OK;
    if (!ok)
        hs_log_debug("assess.invalid", "agent=%s msg=\"%s\"", a->id, e.msg);
    hs_jschema_unref(s);
    return ok;
}

static void run_one(struct run *r, int i)
{
    const struct hs_agent *a = &r->agents[i];
    struct hs_assess_result *res = &r->results[i];
    const struct hs_assess_opts *o = r->opts;
    hs_err e = {0};
    res->agent = a;
    res->model = hs_strdup(choose_model(r, a));

    struct hs_chat_msg msgs[2];
    int n_msgs = 0;
    if (a->system_prompt && a->system_prompt[0])
        msgs[n_msgs++] = (struct hs_chat_msg){.role = "system", .content = a->system_prompt};
    msgs[n_msgs++] = (struct hs_chat_msg){.role = "user", .content = r->user};

    struct hs_chat_req req;
    hs_chat_req_init(&req);
    req.model = res->model;
    req.messages = msgs;
    req.n_messages = n_msgs;
    req.max_tokens = o->max_tokens > 0   ? o->max_tokens
                     : a->max_tokens > 0 ? a->max_tokens
                                         : DEFAULT_MAX_TOKENS;
    req.temperature = isfinite(o->temperature) ? o->temperature : a->temperature;
    req.top_p = a->top_p;
    req.seed = o->seed;
    char *rf = NULL, *extra = sampling_extra(a);
    int rc = res->model ? HS_OK : hs_err_set(&e, HS_ENOMEM, "out of memory");
    if (!rc && a->schema) {
        rf = response_format(a, &e);
        rc = rf ? HS_OK : e.code;
    }
    req.response_format = rf;
    req.extra = extra;
    if (!rc)
        rc = hs_client_chat_stream(r->client, &req, NULL, NULL, &res->resp, &e);
    free(rf); /* json_dumps: the C heap */
    free(extra);
    res->rc = rc;
    if (rc) {
        res->error = hs_strdup(e.msg[0] ? e.msg : hs_err_name(rc));
        hs_log_debug("assess.fail", "agent=%s msg=\"%s\"", a->id, e.msg);
    } else if (a->schema) {
        res->schema_valid = answer_valid(a, res->resp.content);
    }
}

static void *worker(void *arg)
{
    struct run *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int i = r->next < r->n ? r->next++ : -1;
        pthread_mutex_unlock(&r->mu);
        if (i < 0)
            return NULL;
        run_one(r, i);
    }
}

int hs_assess_run(hs_client *c, const struct hs_agent *agents, int n, const char *scenario, size_t len,
                  const struct hs_assess_opts *o, struct hs_assess_result **results, hs_err *err)
{
    if (!results)
        return hs_err_set(err, HS_EINVAL, "hs_assess_run: results is NULL");
    *results = NULL;
    if (!c || !o)
        return hs_err_set(err, HS_EINVAL, "hs_assess_run: a client and options are required");
    if (!agents || n < 1)
        return hs_err_set(err, HS_EINVAL, "assess: no agents");
    hs_buf user = {0};
    int rc = hs_agent_scenario_text(&user, scenario, len, err);
    if (rc) {
        hs_buf_free(&user);
        return rc;
    }
    struct run r = {.client = c, .agents = agents, .n = n, .user = user.data, .opts = o};
    if (!o->model) {
        rc = hs_client_models(c, &r.models, &r.n_models, err);
        if (rc)
            hs_err_prefix(err, "listing the server's models: ");
        if (!rc && r.n_models == 0)
            rc = hs_err_set(err, HS_ENOTFOUND, "the server lists no models (GET /models)");
        if (rc) {
            hs_client_names_free(r.models, r.n_models);
            hs_buf_free(&user);
            return rc;
        }
    }
    r.results = hs_calloc((size_t)n, sizeof *r.results);
    if (!r.results) {
        hs_client_names_free(r.models, r.n_models);
        hs_buf_free(&user);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&r.mu, NULL);
    int n_workers = o->parallel > 0 && o->parallel < n ? o->parallel : n;
    if (n_workers > MAX_WORKERS)
        n_workers = MAX_WORKERS;
    pthread_t th[MAX_WORKERS];
    int started = 0;
    for (; started < n_workers; started++)
        if (pthread_create(&th[started], NULL, worker, &r) != 0)
            break;
    if (started == 0)
        worker(&r); /* no thread to be had: run them one by one here */
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&r.mu);
    hs_client_names_free(r.models, r.n_models);
    hs_buf_free(&user);
    *results = r.results;
    return HS_OK;
}

void hs_assess_results_free(struct hs_assess_result *r, int n)
{
    if (!r)
        return;
    for (int i = 0; i < n; i++) {
        hs_free(r[i].model);
        hs_free(r[i].error);
        hs_chat_resp_free(&r[i].resp);
    }
    hs_free(r);
}
