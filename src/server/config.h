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
 * Unknown keys are errors naming the key and its line (a typo must not be
 * silently ignored); later issues add sections (adapters, agents, ops). */
#ifndef HS_SERVER_CONFIG_H
#define HS_SERVER_CONFIG_H

#include "base/err.h"

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
};

void hs_serve_config_default(struct hs_serve_config *c);
/* Reads a YAML file over the current values (call after _default). Errors
 * name the file, line and key. */
int hs_serve_config_load(struct hs_serve_config *c, const char *path, hs_err *err);
/* Same from text in memory (tests, fuzzing); name is used in messages. */
int hs_serve_config_parse(struct hs_serve_config *c, const char *text, size_t len, const char *name, hs_err *err);
/* Adds or replaces a local model entry (the -m flag). */
int hs_serve_config_set_model(struct hs_serve_config *c, const char *name, const char *path, hs_err *err);
/* Checks the whole: unique model names, port range, one source per model, ... */
int hs_serve_config_check(const struct hs_serve_config *c, hs_err *err);
/* Sets a string field (frees the old value). */
int hs_serve_config_set_str(char **field, const char *value);
void hs_serve_config_free(struct hs_serve_config *c);

#endif
