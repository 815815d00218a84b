/* Internals shared by server.c, auth.c and the route_*.c files; nothing
 * outside src/server includes this. */
#ifndef HS_SERVER_SERVER_IMPL_H
#define HS_SERVER_SERVER_IMPL_H

#include "base/buf.h"
#include "engine/adapter.h"
#include "engine/sched.h"
#include "engine/upstream.h"
#include "engine/upstream_pool.h"
#include "model/chat.h"
#include "model/json_schema.h"
#include "model/model.h"
#include "ops/alerts.h"
#include "ops/metrics.h"
#include "ops/monitor.h"
#include "ops/safety.h"
#include "ops/store.h"
#include "server/config.h"
#include "server/http.h"
#include "server/ratelimit.h"
#include "server/request.h"
#include "server/server.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum srv_state { SRV_LOADING = 0, SRV_READY, SRV_DRAINING };

/* One entry of the configuration, loaded. Read-only once /health says ok. */
struct srv_model {
    char *name;
    const struct hs_model_entry *entry; /* borrowed from the config */
    bool upstream;
    int64_t created; /* unix seconds */
    /* local */
    hs_model *model;
    hs_sched *sched;
    const hs_tok *tok;
    enum hs_tmpl tmpl;
    char *bos_text, *eos_text; /* for the chat template */
    int n_ctx;
    int n_embd;
    int n_vocab;
    /* upstream: (issue 7) one or several members, load-balanced */
    hs_upstream_pool *pool;
    /* (issue 5) local: the LoRA adapters loaded over this model, by name */
    hs_adapter_reg *adapters;
};

/* (issue 5) An agent of the configuration, bound to its model. */
struct srv_agent {
    const struct hs_agent *cfg; /* borrowed from the config */
    struct srv_model *m;
    hs_jschema *schema; /* cfg->schema compiled; NULL = free text */
};

/* (issue 5) What a request's "model" and "lora" resolve to: the model that
 * answers, the agent it speaks as, the adapters (references held) and the
 * schema of a structured answer (a reference). */
#define SRV_MAX_ADAPTERS 16
struct srv_target {
    struct srv_model *m;
    const struct srv_agent *agent;
    hs_adapter *ad[SRV_MAX_ADAPTERS];
    float scale[SRV_MAX_ADAPTERS];
    int n_ad;
    hs_jschema *schema;
};

/* (issue 5) A request the server makes to itself (/v1/assess runs each
 * agent as one chat completion): it skips auth and limits (the outer request
 * passed them), carries the outer's key name and id, and reports back. */
struct srv_internal {
    const char *parent_id;
    bool keyed;
    const char *key_name;
    const char *client;
    atomic_bool *cancel; /* set when the outer client is gone */
    bool quiet;          /* (issue 7) a shadow copy: no record, no monitor, no experiment routing */
    /* filled when the inner call finishes */
    double ttft_ms, latency_ms, queue_ms;
    int tokens_in, tokens_out, tokens_cached;
};

struct hs_server {
    const struct hs_serve_config *cfg;
    struct hs_server_opts opts;
    struct hs_req_limits limits;
    hs_store *store;
    hs_metrics *metrics;
    hs_ratelimit *rl_key, *rl_addr;
    struct srv_model *models;
    int n_models;
    struct srv_agent *agents; /* (issue 5) */
    int n_agents;
    pthread_mutex_t admin_mu; /* (issue 5) serialises adapter loads and unloads (names stay unique) */
    /* (issue 6) the monitor and its thread (monitor.c) */
    hs_monitor *monitor;
    hs_alerts *alerts; /* (issue 6) breaches and other alerts go out here */
    hs_safety *safety; /* (issue 6) the answers' safety rules; NULL = checks off */
    pthread_t mon_thread;
    pthread_mutex_t mon_mu;
    pthread_cond_t mon_cv;
    bool mon_stop, mon_running;
    struct srv_exps *exps;   /* (issue 7) experiments, their thread and the shadow workers (experiments.c) */
    struct srv_drift *drift; /* (issue 6) the scheduled drift jobs (drift_jobs.c); NULL = none */
    int64_t baseline_ts;  /* the store's baseline in use (its time); 0 = none from the store */
    bool baseline_saved;  /* the captured baseline went to the store */
    hs_http *http;
    int port;
    _Atomic int state; /* enum srv_state */
    atomic_bool cut;   /* the drain time is over: answers still running stop now */
    bool shut_down;
    /* requests being answered (a streamed one until its stream ends) */
    pthread_mutex_t mu;
    pthread_cond_t idle;
    int in_flight;
    uint64_t *seen; /* SRV_SEEN_SLOTS hashes of recent client-chosen request ids (under mu) */
};

#define SRV_SEEN_SLOTS 65536

/* One request's bookkeeping: ids, the record, metrics, rate-limit tokens.
 * Created by the dispatcher; a route that streams takes it over and
 * finishes it when the stream ends. Finishing writes exactly one record. */
struct srv_call {
    hs_server *srv;
    char id[160];        /* the x-request-id: the client's, or a new one */
    char record_id[176]; /* the store's id: id, made unique when a client reuses one */
    char endpoint[64];
    int64_t ts_ms; /* arrival, unix ms */
    double t0;     /* arrival, monotonic seconds */
    bool keyed;    /* a key was presented and verified */
    bool admin;    /* (issue 6) and it has the admin scope */
    char key_name[64];
    char client[64];
    char *user;
    char *model; /* the name the client asked for */
    const struct srv_model *m;
    struct srv_target tgt;       /* (issue 5) released at finish */
    struct srv_internal *parent; /* (issue 5) NULL for a request from the network */
    bool stream;
    bool log;       /* goes to the store (probes like /health and /metrics do not) */
    bool inference; /* a /v1 completion or embeddings request: counted in the metrics */
    int status;
    char *error;
    const char *finish_reason; /* a literal */
    int tokens_in, tokens_out, tokens_cached;
    double queue_ms, ttft_ms, latency_ms;
    double confidence, low_prob_share; /* (issue 6) < 0 unknown */
    char *safety_flags;                /* (issue 6) "a,b" of the answer; NULL = none */
    char *req_body;   /* with --log-bodies */
    hs_buf resp_body; /* with --log-bodies (capped) */
    char backend_url[256]; /* (issue 7) the upstream member that answered; "" = the model's first */
    /* (issue 7) the experiment that routed the request */
    struct srv_exp *exp;  /* NULL when none */
    int variant;          /* enum hs_exp_variant chosen */
    bool fallback;        /* B failed and A answered */
    char *shadow_body;    /* the request, kept for the shadow copy (shadow mode) */
    hs_buf answer;        /* the answer's text, kept for the shadow comparison */
    bool finished;
};

#define SRV_LOG_BODY_CAP (1 << 20)

/* ---- server.c ---- */
/* A model by its name or alias (not agents or adapters). */
struct srv_model *hs_srv_find_model(hs_server *s, const char *name);
/* Runs a request inside the server (see struct srv_internal); resp as for
 * hs_server_handle, never streamed. A chat completion, or embeddings when
 * req->path is /v1/embeddings (the drift jobs). */
void hs_srv_handle_internal(hs_server *s, const struct hs_http_req *req, struct hs_http_resp *resp,
                            struct srv_internal *parent);
bool hs_srv_ready(const hs_server *s);
int64_t hs_srv_unix_ms(void);
/* Writes the record and the metrics, adds the tokens to the rate limits,
 * frees the call. Once per call. */
void hs_srv_call_finish(struct srv_call *c);
void hs_srv_call_set_error(struct srv_call *c, const char *msg);
/* Appends text to the captured response body when bodies are logged. */
void hs_srv_call_capture(struct srv_call *c, const char *data, size_t len);

/* ---- responses (server.c) ---- */
/* JSON answer; steals body. Sets the status in the call too. */
void hs_srv_reply_json(struct srv_call *c, struct hs_http_resp *r, int status, json_t *body);
/* OpenAI error object; records e->message as the call's error. */
void hs_srv_reply_error(struct srv_call *c, struct hs_http_resp *r, const struct hs_api_error *e);
/* Shorthand for hs_api_error_set + hs_srv_reply_error. */
void hs_srv_fail(struct srv_call *c, struct hs_http_resp *r, int status, const char *type, const char *code,
                 const char *param, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
/* jansson -> buffer, compact. */
int hs_srv_dump(hs_buf *out, const json_t *j);

/* ---- auth.c ---- */
/* Authenticates and, for admin paths, authorizes; then rate-limits when
 * limited. Returns true to go on; false with resp filled (401/403/429). */
bool hs_srv_auth(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp, bool admin,
                 bool limited);
/* Adds a finished request's tokens to the limits of its key and address. */
void hs_srv_limits_add_tokens(struct srv_call *c, int tokens);

/* ---- agents.c (issue 5) ---- */
/* Binds the configured adapters (loaded into their model's registry; errors
 * start with the entry's "FILE:LINE: ") and agents (schemas compiled). */
int hs_srv_agents_load(hs_server *s, hs_err *err);
void hs_srv_agents_free(hs_server *s);
const struct srv_agent *hs_srv_find_agent(hs_server *s, const char *id);
/* Whether name is taken by a model, alias, agent or adapter. */
bool hs_srv_name_taken(hs_server *s, const char *name);
/* Resolves gr's model (a model, alias, agent or adapter), the agent's and
 * the request's adapters, the agent's defaults (system prompt, sampling)
 * and the structured-output schema into c->tgt and c->m, editing gr (and its
 * root, for upstreams) as the agent requires. false with resp filled. */
bool hs_srv_resolve(struct srv_call *c, struct hs_gen_request *gr, struct hs_http_resp *resp);
void hs_srv_target_clear(struct srv_target *t);
/* "name:scale,name:scale" of the target's adapters for the record; NULL when none. */
char *hs_srv_target_adapters(const struct srv_target *t);

/* ---- routes ---- */
void hs_route_health(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp);
void hs_route_models(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp,
                     const char *one /* NULL = the list */);
/* /admin/...: the caller has checked the admin scope. */
void hs_route_admin(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp);
void hs_route_metrics(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp);
/* Chat and text completions on a local model; takes over gr (frees it). */
void hs_route_generate(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp,
                       struct hs_gen_request *gr);
void hs_route_embeddings(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp,
                         struct hs_gen_request *gr);
/* ---- answer_checks.c (issue 6) ---- */
int hs_srv_safety_load(hs_server *s, hs_err *err);
/* Runs the safety rules over one finished answer of the call (after
 * c->confidence is set); adds its flags to c->safety_flags. */
void hs_srv_safety_check(struct srv_call *c, const char *text, size_t len);
/* The probability below which a token counts as unlikely (the rules' line). */
double hs_srv_low_prob(const hs_server *s);

/* ---- monitor.c (issue 6) ---- */
int hs_srv_monitor_start(hs_server *s, hs_err *err);
void hs_srv_monitor_stop(hs_server *s); /* joins the thread, frees the monitor */
/* Observes a finished call (answered inference requests only). */
void hs_srv_monitor_observe(struct srv_call *c);
/* GET /api/alerts: the store's alerts, newest first. */
void hs_route_api_alerts(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp);
/* GET /api/metrics. */
void hs_route_api_metrics(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp);

/* ---- experiments.c, shadow.c, route_experiments.c (issue 7) ---- */
/* Loads the configured experiments and those the store holds, resuming
 * their stored state; starts the thread that checks rollback rules and
 * advances canaries, and the shadow workers. Call after the models are
 * loaded (targets are checked). */
int hs_srv_exps_start(hs_server *s, hs_err *err);
void hs_srv_exps_stop(hs_server *s); /* joins the threads; idempotent */
void hs_srv_exps_free(hs_server *s);
/* When an experiment applies to gr->model: picks the variant, points
 * gr->model at its target and fills c->exp and c->variant. body is the
 * request (kept for a shadow copy). */
void hs_srv_exp_choose(struct srv_call *c, struct hs_gen_request *gr, const char *body, size_t len);
/* A's target of c's experiment (for the fallback), copied into out. */
bool hs_srv_exp_target_a(const struct srv_call *c, char *out, size_t cap);
/* At finish: the outcome into the variant's window; a shadow copy queued. */
void hs_srv_exp_observe(struct srv_call *c);
const char *hs_srv_exp_name(const struct srv_exp *e);
/* /admin/experiments[/NAME[/weight]], /admin/rollback */
void hs_route_experiments(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp);
/* GET /api/experiments: every experiment with its store statistics and history (the dashboard). */
void hs_route_api_experiments(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp);
/* shadow.c: queue a copy (takes nothing: copies what it needs); false when
 * the queue is full (the caller counts the drop). */
bool hs_srv_shadow_enqueue(hs_server *s, struct srv_exp *e, const struct srv_call *c);

/* ---- drift_jobs.c (issue 6): data and concept drift on a schedule ---- */
/* Starts the jobs the config's drift section schedules (none: s->drift
 * stays NULL). A job waits for the models before its first run. */
int hs_srv_drift_start(hs_server *s, hs_err *err);
/* Stops the jobs (a run in progress gives up) and frees them; idempotent. */
void hs_srv_drift_stop(hs_server *s);
/* Offers one incoming prompt's text to the data-drift sample of recent
 * prompts (copied; cheap, never blocks on a run). */
void hs_srv_drift_note_prompt(hs_server *s, const char *text, size_t len);
/* Offers a chat or completion request's prompt (the last user message, or
 * the first prompt) to that sample; not internal requests, not embeddings. */
void hs_srv_drift_note_request(struct srv_call *c, const struct hs_gen_request *gr);
/* GET /api/drift: the latest data and concept runs and the schedule. */
void hs_route_api_drift(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp);

/* ---- route_timeseries.c (issue 6): the dashboard's history from the store ---- */
/* GET /api/timeseries?hours=H&bucket=S */
void hs_route_api_timeseries(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp);
/* GET /api/agents?hours=H: the per-agent breakdown */
void hs_route_api_agents(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp);

/* ---- route_dashboard.c (issue 6): /dashboard and its assets, compiled in ---- */
void hs_route_dashboard(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp);

/* (issue 6) POST /v1/feedback. */
void hs_route_feedback(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp);
/* (issue 5) GET /v1/agents; POST /v1/assess; /admin/adapters. */
void hs_route_agents(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp);
void hs_route_assess(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp);
void hs_route_adapters(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp);
/* Any of the three on an upstream model: forwards req's body as is. */
void hs_route_upstream(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp,
                       struct hs_gen_request *gr, const char *upstream_path);
/* (issue 7) Appends the upstream pools' series to a /metrics exposition:
 * hestia:upstream_up{model,url} (health passed and breaker not open),
 * hestia:upstream_breaker_state{model,url} (0 closed, 1 open, 2 half-open),
 * hestia:upstream_outstanding{model,url}, counters
 * hestia:upstream_requests_total / _failures_total / _breaker_opens_total
 * {model,url} and hestia:upstream_retries_total{model}. Nothing when no
 * model is an upstream. HS_ENOMEM on a failed append. */
int hs_srv_upstream_metrics(hs_server *s, hs_buf *out);

#endif
