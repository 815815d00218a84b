/* The server's configuration: defaults, then a YAML file (--config, libfyaml),
 * then command-line flags (the cli sets fields after loading; flags win).
 *
 *   server:   { host, port, parallel, ctx, threads, batch, queue, insecure,
 *               timeout_s, max_connections }
 *   store:    { path, log_bodies }
 *   limits:   { max_body_bytes, max_messages, max_input_tokens }
 *   rate_limits:
 *     per_key:     { requests_per_minute, requests_per_hour, tokens_per_minute }
 *     per_address: { ... same ... }
 *   models:
 *     - { name, alias, path, ctx, parallel, threads, chat_template }   # local GGUF
 *     - { name, alias, upstream: { url, api_key, model, timeout_s, connect_timeout_s,
 *         idle_timeout_s, retries, health_interval_s, breaker_failures,
 *         breaker_cooldown_s } }                                       # gateway
 *     - { name, alias, upstream: [ { url, api_key, model, weight }, ... ],
 *         timeout_s, connect_timeout_s, ... (as above) }   # (issue 7) a pool
 *
 *   adapters:   (issue 5)
 *     - { name, path, model, scale }      # a GGUF LoRA over a local model
 *   agents:     (issue 5; usually in their own file, see hs_serve_config_load_agents)
 *     - { id, name, role, expertise, model, system_prompt,
 *         adapters: [ name | { name, scale } ],
 *         sampling: { temperature, top_p, top_k, min_p, max_tokens },
 *         schema: a JSON Schema: a YAML mapping, a string holding a JSON
 *                 object, or the name of an entry of `schemas` }
 *   schemas:    (issue 5) { NAME: a YAML mapping or a JSON string, ... }
 *               named schemas that agents of the same file refer to
 *   agents_file: PATH   # loads adapters, agents and schemas from another file
 *
 * Names: a model's alias is a second name clients may use for it. Model
 * names and aliases, adapter names and agent ids are one name space: each
 * must be unique across all four (1..128 bytes, no spaces or control
 * characters for adapters and agents). Required: an adapter's name and path;
 * an agent's id and system_prompt. Optional fields left out are NULL (an
 * agent's model: the first model; an adapter's model: the first local
 * model), an adapter's scale 1, an agent's adapter scale the adapter's own,
 * sampling unset. Ranges: temperature 0..2, top_p and min_p 0..1, top_k
 * 0..1000000, max_tokens 1..16777216, scales -10..10.
 *
 * A schema given as a YAML mapping becomes compact JSON in the order written
 * (the order a constrained answer generates its properties in): mappings are
 * objects, sequences arrays; plain scalars that read as decimal numbers,
 * true/false or null become those, every other scalar (and any quoted one)
 * a string. A string value is taken as JSON text when it starts with '{',
 * as the name of a `schemas` entry otherwise.
 *
 * adapters and agents add to those already loaded (from an earlier file or
 * agents_file); the models list of a file replaces the earlier one. A file
 * that fails adds none of its adapters and agents.
 *
 * Unknown keys are errors naming the key and its line (a typo must not be
 * silently ignored); later issues add sections (ops). Relative paths,
 * agents_file's and those inside the agents file included, are relative to
 * the working directory, as on the command line: one rule for every path,
 * whichever file it is written in. */
#ifndef HS_SERVER_CONFIG_H
#define HS_SERVER_CONFIG_H

#include "base/err.h"
#include "engine/agent.h"
#include "ops/alerts.h"
#include "ops/drift.h"
#include "ops/experiment.h"
#include "ops/monitor.h"

#include <stdbool.h>
#include <stddef.h>

/* (issue 7) One member of an upstream list. */
struct hs_upstream_member {
    char *url;     /* base up to /v1 */
    char *api_key; /* NULL = none */
    char *model;   /* remote name; NULL = the model's name */
    int weight;    /* 0 = 1 */
    int line;      /* where it is written, for messages */
};

struct hs_model_entry {
    char *name;          /* what clients put in "model" */
    char *alias;         /* (issue 5) another name clients may use; NULL = none */
    char *path;          /* local GGUF; NULL for an upstream */
    char *chat_template; /* override of the GGUF's template; NULL = detect */
    int n_ctx, parallel, threads; /* 0 = the server's value */
    /* upstream (url non-NULL) */
    char *upstream_url;   /* base up to /v1 */
    char *upstream_key;   /* NULL = none */
    char *upstream_model; /* remote name; NULL = same as name */
    int upstream_timeout_s; /* 0 = default */
    /* (issue 7) several upstreams behind the name: `upstream:` as a list of
       {url, api_key, model, weight}. Then upstream_url is a copy of the first
       member's url (so "is an upstream" stays upstream_url != NULL) and
       upstream_key / upstream_model are unused. NULL for the mapping form. */
    struct hs_upstream_member *upstreams;
    int n_upstreams;
    /* (issue 7) timeouts and the pool's settings, in the upstream mapping or
       at the model's level (the list form): 0 = default, except retries */
    int upstream_connect_timeout_s; /* default 5 */
    int upstream_idle_timeout_s;    /* default: timeout_s, else 300 */
    int upstream_retries;           /* default 1, set by the parser; 0 = none */
    int upstream_health_interval_s; /* default 10 */
    int upstream_breaker_failures;  /* default 5 */
    int upstream_breaker_cooldown_s; /* default 30 */
};


/* (issue 5) A LoRA adapter over a local model. */
struct hs_adapter_entry {
    char *name;  /* unique among adapters, agents and models */
    char *path;  /* GGUF LoRA */
    char *model; /* the local model it adapts; NULL = the first local model */
    float scale; /* what a request naming no scale gets; default 1 */
    char *file;  /* where it is declared: "FILE:LINE: ..." in load errors */
    int line;
};

struct hs_rate_limit {
    int requests_per_minute; /* 0 = off */
    int requests_per_hour;
    int tokens_per_minute;   /* prompt + completion tokens */
};

struct hs_serve_config {
    char *host;          /* default 127.0.0.1 */
    int port;            /* default 8000; 0 = any free port (tests; the log says which) */
    int parallel;        /* slots per local model; default 4 */
    int n_ctx;           /* positions per slot; 0 = model default */
    int threads;         /* 0 = all CPUs */
    int n_batch;         /* default 512 */
    int queue_max;       /* waiting requests per model; default 64 */
    int wave_wait_ms;    /* hs_sched_params.wave_wait_ms; default 30 */
    bool insecure;       /* allow a non-loopback address without keys */
    int timeout_s;       /* a client that sends nothing for this long is cut; default 30 */
    int max_connections; /* default 256 */
    char *store_path;    /* default ./hestia.db */
    bool log_bodies;
    size_t max_body_bytes; /* default 1 MiB -> 413 above */
    int max_messages;      /* default 20 */
    int max_input_tokens;  /* default 4000 */
    struct hs_rate_limit per_key, per_address;
    struct hs_model_entry *models;
    int n_models;
    struct hs_adapter_entry *adapters; /* (issue 5) */
    int n_adapters;
    struct hs_agent *agents; /* (issue 5) */
    int n_agents;
    struct hs_monitor_config monitor; /* (issue 6) `monitor:`, see ops/monitor.h */
    struct hs_drift_config drift;     /* (issue 6) `drift:`, see ops/monitor.h */
    struct hs_alerts_config alerts;   /* (issue 6) `alerts:`, see ops/alerts.h */
    char *safety_rules;    /* (issue 6) `safety: {rules}`: the rules file (ops/safety.h); NULL = no checks;
                              default config/safety.yaml, skipped with a warning when it is missing */
    bool safety_rules_set; /* given in the file: then a missing file is an error */
    struct hs_experiment *experiments; /* (issue 7) `experiments:`, see ops/experiment.h */
    int n_experiments;
};

void hs_serve_config_default(struct hs_serve_config *c);
/* Reads a YAML file over the current values (call after _default). Errors
 * name the file, line and key. */
int hs_serve_config_load(struct hs_serve_config *c, const char *path, hs_err *err);
/* Same from text in memory (tests, fuzzing); name is used in messages. */
int hs_serve_config_parse(struct hs_serve_config *c, const char *text, size_t len, const char *name, hs_err *err);
/* (issue 5) Appends the `adapters` and `agents` of a file that holds only
 * those sections and `schemas` (config/agents.yaml; --agents FILE; `hestia
 * assess`). A duplicate id or name, an unknown key or a malformed schema
 * fails with "FILE:LINE: ..." and adds nothing. Only a regular file is read
 * (agents_file comes from a configuration's text). */
int hs_serve_config_load_agents(struct hs_serve_config *c, const char *path, hs_err *err);
int hs_serve_config_parse_agents(struct hs_serve_config *c, const char *text, size_t len, const char *name,
                                 hs_err *err);
/* (issue 5) Index of the model whose name or alias is name, of the adapter
 * and of the agent with that name / id; -1 when there is none. */
int hs_serve_config_find_model(const struct hs_serve_config *c, const char *name);
int hs_serve_config_find_adapter(const struct hs_serve_config *c, const char *name);
int hs_serve_config_find_agent(const struct hs_serve_config *c, const char *id);
/* Adds or replaces a local model entry (the -m flag). */
int hs_serve_config_set_model(struct hs_serve_config *c, const char *name, const char *path, hs_err *err);
/* Checks the whole: unique model names, port range, one source per model,
 * and (issue 5) agents and adapters: names unique across model names and
 * aliases, adapters and agents; every adapter an agent names exists, once;
 * sampling and scales in range; every schema a JSON object that
 * hs_jschema_compile accepts. With models configured (a server) also: an
 * adapter's model is a local model and its file exists; an agent's model
 * exists, and its adapters adapt that model ("adapter for another base").
 * Those are not checked while there are no models: `hestia assess` loads
 * agents alone, to send them to a server elsewhere. Errors about an agent or
 * adapter start with its "FILE:LINE: agents[I] (ID): ", I counting within
 * its file. */
int hs_serve_config_check(const struct hs_serve_config *c, hs_err *err);
/* Sets a string field (frees the old value). */
int hs_serve_config_set_str(char **field, const char *value);
void hs_serve_config_free(struct hs_serve_config *c);

#endif
