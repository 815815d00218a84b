/* The server object: a configuration's models (local GGUFs, each with its
 * continuous-batching scheduler, or upstream OpenAI servers), the store, the
 * metrics, rate limits, and the HTTP transport, wired into one pipeline per
 * request:
 *
 *   auth -> rate limit -> size -> parse -> model -> local engine or upstream
 *
 * Life: create (store, metrics, limits) -> listen (HTTP up; /health says
 * "loading") -> load_models (/health says "ok") -> ... -> shutdown (stop
 * accepting, drain, flush) -> free. hs_server_handle is the transport-free
 * entry point that the HTTP layer calls for every request; tests and the
 * fuzz target call it directly. */
#ifndef HS_SERVER_SERVER_H
#define HS_SERVER_SERVER_H

#include "base/err.h"
#include "ops/metrics.h"
#include "ops/store.h"
#include "server/config.h"
#include "server/http.h"

#include <stdbool.h>

typedef struct hs_server hs_server;

struct hs_server_opts {
    int max_tokens_cap; /* > 0: no answer is longer (tests and fuzzing keep generation tiny) */
    bool no_http;       /* hs_server_listen does not bind (tests drive hs_server_handle) */
};

/* cfg is borrowed: it must outlive the server. opts may be NULL. Opens the
 * store at cfg->store_path. Loads no model yet. */
int hs_server_create(const struct hs_serve_config *cfg, const struct hs_server_opts *opts, hs_server **out,
                     hs_err *err);
/* Binds the HTTP transport. Refuses (HS_EINVAL, one-line message) a host
 * that is not loopback while the store has no active key, unless
 * cfg->insecure. */
int hs_server_listen(hs_server *s, hs_err *err);
/* The bound port (after hs_server_listen). */
int hs_server_port(const hs_server *s);
/* Loads every model of the configuration and starts their schedulers; logs
 * each. Until it returns, /health answers 503 "loading" and model requests
 * 503. */
int hs_server_load_models(hs_server *s, hs_err *err);

/* Answers one request. Thread-safe; any number at once. */
void hs_server_handle(hs_server *s, const struct hs_http_req *req, struct hs_http_resp *resp);

/* Graceful stop: stop accepting, /health 503 "draining", let running
 * answers finish for up to drain_ms (then cut them: a streamed answer ends
 * with an error event and [DONE]), close the transport, flush the store. */
void hs_server_shutdown(hs_server *s, int drain_ms);
/* Shuts down (drain 0) if still running, frees everything. NULL is fine. */
void hs_server_free(hs_server *s);

/* Borrowed, for tests and the start log. */
hs_store *hs_server_store(hs_server *s);
hs_metrics *hs_server_metrics(hs_server *s);

#endif
