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
 *     - { name, path, ctx, parallel, threads, chat_template }      # local GGUF
 *     - { name, upstream: { url, api_key, model, timeout_s } }      # gateway
 *
 *   adapters:   (issue 5)
 *     - { name, path, model, scale }      # a GGUF LoRA over a local model
 *   agents:     (issue 5; usually in their own file, see hs_serve_config_load_agents)
 *     - { id, name, role, expertise, model, system_prompt,
 *         adapters: [ name | { name, scale } ],
 *         sampling: { temperature, top_p, top_k, min_p, max_tokens },
 *         schema: a JSON Schema, as a YAML mapping or as JSON text }
 *   agents_file: PATH   # loads adapters and agents from another file
 *
 * Unknown keys are errors naming the key and its line (a typo must not be
 * silently ignored); later issues add sections (ops). Relative paths are
 * relative to the working directory, as on the command line. */
#ifndef HS_SERVER_CONFIG_H
#define HS_SERVER_CONFIG_H

#include "base/err.h"
#include "engine/agent.h"

#include <stdbool.h>
#include <stddef.h>

struct hs_model_entry {
    char *name;          /* what clients put in "model" */
    char *path;          /* local GGUF; NULL for an upstream */
    char *chat_template; /* override of the GGUF's template; NULL = detect */
    int n_ctx, parallel, threads; /* 0 = the server's value */
    /* upstream (url non-NULL) */
    char *upstream_url;   /* base up to /v1 */
    char *upstream_key;   /* NULL = none */
    char *upstream_model; /* remote name; NULL = same as name */
    int upstream_timeout_s; /* 0 = default */
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
};

void hs_serve_config_default(struct hs_serve_config *c);
/* Reads a YAML file over the current values (call after _default). Errors
 * name the file, line and key. */
int hs_serve_config_load(struct hs_serve_config *c, const char *path, hs_err *err);
/* Same from text in memory (tests, fuzzing); name is used in messages. */
int hs_serve_config_parse(struct hs_serve_config *c, const char *text, size_t len, const char *name, hs_err *err);
/* (issue 5) Appends the `adapters` and `agents` of a file that holds only
 * those two sections (config/agents.yaml; --agents FILE; `hestia assess`).
 * A duplicate id or name, an unknown key or a malformed schema fails with
 * "FILE:LINE: ...". */
int hs_serve_config_load_agents(struct hs_serve_config *c, const char *path, hs_err *err);
int hs_serve_config_parse_agents(struct hs_serve_config *c, const char *text, size_t len, const char *name,
                                 hs_err *err);
/* Adds or replaces a local model entry (the -m flag). */
int hs_serve_config_set_model(struct hs_serve_config *c, const char *name, const char *path, hs_err *err);
/* Checks the whole: unique model names, port range, one source per model,
 * and (issue 5) agents and adapters: ids unique across agents, adapters and
 * models; every adapter an agent names exists; an adapter's model is a local
 * model; an agent's model exists (not checked while there are no models:
 * `hestia assess` loads agents alone); adapter files exist. Errors about an
 * agent or adapter start with its "FILE:LINE: ". */
int hs_serve_config_check(const struct hs_serve_config *c, hs_err *err);
/* Sets a string field (frees the old value). */
int hs_serve_config_set_str(char **field, const char *value);
void hs_serve_config_free(struct hs_serve_config *c);

#endif
