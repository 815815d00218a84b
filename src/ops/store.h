/* The store: one SQLite file (WAL), opened at start. Request records are
 * queued to one writer thread that commits them in transactions, so a request
 * never waits on the disk; hs_store_flush and hs_store_close wait for the
 * queue to reach the file, so nothing acknowledged is lost. API keys are kept
 * as hashes only. Every statement is prepared with bound parameters. */
#ifndef HS_OPS_STORE_H
#define HS_OPS_STORE_H

#include "base/buf.h"
#include "base/err.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct hs_store hs_store;

/* Creates the file and its schema if needed (schema versioned; later
 * versions migrate), sets WAL, starts the writer thread. path is a file name
 * (not ":memory:": the handle opens the file more than once). A file from a
 * newer schema is HS_EUNSUPPORTED, one that is not SQLite HS_EFORMAT. */
int hs_store_open(const char *path, hs_store **out, hs_err *err);
/* Flushes queued writes, stops the writer, closes. NULL is fine. */
void hs_store_close(hs_store *s);
/* Returns when every record queued before the call is committed. */
void hs_store_flush(hs_store *s);

/* One request as the server saw it. Strings may be NULL; all are copied. */
struct hs_request_record {
    const char *id;         /* the x-request-id, unique */
    int64_t ts_ms;          /* arrival, unix milliseconds */
    const char *endpoint;   /* "/v1/chat/completions" */
    const char *key_name;   /* NULL when no key was needed */
    const char *client;     /* client address */
    const char *user;       /* OpenAI "user" field */
    const char *model;      /* the model name the client asked for */
    const char *agent;      /* (issue 5) the agent that answered; NULL when none */
    const char *adapters;   /* (issue 5) "name:scale,name:scale" of the LoRA set; NULL when none */
    const char *parent_id;  /* (issue 5) the /v1/assess request this one is part of; NULL when none */
    double confidence;      /* (issue 6) mean probability of the answer's tokens; < 0 when unknown */
    double low_prob_share;  /* (issue 6) share of its tokens below the low-probability line; < 0 unknown */
    const char *safety_flags; /* (issue 6) "hazmat_mismatch,overconfident"; NULL when none */
    const char *experiment; /* (issue 7) the experiment that routed it; NULL when none */
    const char *variant;    /* (issue 7) "A" or "B" of that experiment; NULL when none */
    const char *backend;    /* "local" or the upstream URL */
    bool stream;
    int status;             /* HTTP status sent */
    const char *error;      /* error message, NULL on success */
    const char *finish_reason;
    int tokens_in, tokens_out, tokens_cached;
    double queue_ms, ttft_ms, latency_ms; /* < 0 when not applicable */
    const char *request_body;  /* only with --log-bodies, after redaction */
    const char *response_body;
};

/* Queues one record (copied). Blocks only if the writer is far behind (the
 * queue is bounded so memory stays flat); never drops. The bodies go through
 * the redactor here, on the caller's thread, before they are queued: callers
 * need not call hs_store_redact themselves. A second record with an id already
 * stored is ignored (the first stays). HS_EINVAL without an id. Thread-safe. */
int hs_store_log_request(hs_store *s, const struct hs_request_record *r, hs_err *err);

/* Body redaction before storage (the hook): returns a malloc'd redacted copy
 * or NULL to keep the text as is. The default redactor (installed by
 * hs_store_open) masks bearer tokens and API keys (sk-..., hs-...) and e-mail
 * addresses. Called on the server's threads, not the writer's. */
typedef char *(*hs_redact_fn)(void *user, const char *text);
void hs_store_set_redactor(hs_store *s, hs_redact_fn fn, void *user);
char *hs_store_redact(hs_store *s, const char *text); /* applies the hook; malloc'd result */

/* Count of records (for tests and reports); endpoint NULL = all. Flushes
 * this handle's queue first; -1 when the file cannot be read. */
int64_t hs_store_count_requests(hs_store *s, const char *endpoint);
/* Writes every record as one JSON object per line, oldest first, bodies
 * included when stored. since_ms 0 = all. Flushes this handle's queue first
 * and reads a snapshot through a connection of its own (the server goes on).
 * Fields: id, ts_ms, time (ISO 8601 UTC), endpoint, key_name, client, user,
 * model, backend, stream, status, error, finish_reason, tokens_in, tokens_out,
 * tokens_cached, queue_ms, ttft_ms, latency_ms (null when absent), and
 * request_body / response_body only when stored; (issue 6) "feedback":
 * {"value", "comment", "ts_ms", "updated_ms"} only when the record has
 * feedback; (issue 7) "experiment" and "variant" only when an experiment
 * routed it. ops/store_import.h reads this format back. */
int hs_store_export_jsonl(hs_store *s, FILE *out, int64_t since_ms, hs_err *err);

/* ---- API keys ---- */
enum hs_key_scope { HS_SCOPE_USER = 0, HS_SCOPE_ADMIN = 1 };
const char *hs_key_scope_name(enum hs_key_scope s);
int hs_key_scope_parse(const char *name, enum hs_key_scope *out);

struct hs_key_info {
    char name[64];
    enum hs_key_scope scope;
    int64_t created_ms;
    int64_t revoked_ms; /* 0 while active */
    char prefix[16];    /* the key's first characters, for people to tell keys apart */
};

/* Bytes key_out needs in hs_store_key_create: "hs-" + 43 + NUL. */
#define HS_STORE_KEY_CAP 47

/* Creates a key: a random secret (libsodium), returned once in key_out as
 * "hs-" + 43 base64url characters; the store keeps only its hash. Names are
 * unique among active keys (HS_EINVAL otherwise). */
int hs_store_key_create(hs_store *s, const char *name, enum hs_key_scope scope, char *key_out, size_t cap,
                        hs_err *err);
/* HS_ENOTFOUND when no active key has that name. */
int hs_store_key_revoke(hs_store *s, const char *name, hs_err *err);
/* Calls fn for every key, active and revoked, oldest first. */
int hs_store_key_list(hs_store *s, void (*fn)(void *user, const struct hs_key_info *k), void *user, hs_err *err);
/* Active keys now (0 = the server runs open on loopback); a negative HS_E*
 * code when the file cannot be read. */
int hs_store_key_count(hs_store *s);
/* Checks a presented key in constant time against the active keys' hashes.
 * Keys created or revoked by another process (the cli) are seen within 2 s.
 * Returns true and fills *out when it is an active key. */
bool hs_store_key_verify(hs_store *s, const char *presented, struct hs_key_info *out);

#endif
