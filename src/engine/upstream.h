/* An upstream OpenAI-compatible server (vLLM, llama.cpp's server, Ollama,
 * LM Studio, another hestia) behind hestia's gateway. A request is forwarded
 * as JSON with its "model" replaced by the remote name; the response body
 * comes back as it arrives (SSE passed through chunk by chunk), read by the
 * caller with a pull interface like hs_job_next, so the HTTP thread that
 * serves the client drives the pace and a disconnect can cut the transfer.
 * libcurl does the HTTP; each stream runs its transfer in a thread of its own. */
#ifndef HS_ENGINE_UPSTREAM_H
#define HS_ENGINE_UPSTREAM_H

#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct hs_upstream hs_upstream;
typedef struct hs_upstream_stream hs_upstream_stream;

struct hs_upstream_params {
    const char *url;          /* base URL up to and including /v1, e.g. http://127.0.0.1:8080/v1 */
    const char *api_key;      /* sent as Authorization: Bearer; NULL or "" for none */
    const char *model;        /* the remote model name put in forwarded bodies; NULL keeps the client's */
    int connect_timeout_ms;   /* default 5000 */
    int timeout_ms;           /* whole request; default 600000 */
    int idle_timeout_ms;      /* no byte for this long cuts the stream; default 60000 */
};

int hs_upstream_create(const struct hs_upstream_params *p, hs_upstream **out, hs_err *err);
void hs_upstream_free(hs_upstream *u);
const char *hs_upstream_url(const hs_upstream *u);

/* Starts POST base+path ("/chat/completions") with body (a JSON object; its
 * "model" is replaced when the upstream has a remote name). request_id, when
 * not NULL, is sent as x-request-id. Returns once the transfer has started;
 * connection errors surface from the reads. */
int hs_upstream_post(hs_upstream *u, const char *path, const char *body, size_t len, const char *request_id,
                     hs_upstream_stream **out, hs_err *err);
/* Starts GET base+path ("/models"). */
int hs_upstream_get(hs_upstream *u, const char *path, hs_upstream_stream **out, hs_err *err);

/* Waits up to timeout_ms for the response status (after the headers came).
 * Returns the HTTP status (> 0), 0 on timeout, or a negative HS_E* when the
 * transfer failed before any header (err says why: refused, DNS, timeout). */
int hs_upstream_status(hs_upstream_stream *st, int timeout_ms, hs_err *err);
/* Response header value (case-insensitive name), or NULL. Valid after a
 * positive hs_upstream_status and until hs_upstream_close. */
const char *hs_upstream_header(hs_upstream_stream *st, const char *name);
/* Reads up to cap body bytes. Returns > 0 bytes read, 0 at the end of the
 * body, HS_ETIMEDOUT if nothing came within timeout_ms (try again), or a
 * negative HS_E* when the transfer broke (err says why). */
long hs_upstream_read(hs_upstream_stream *st, char *buf, size_t cap, int timeout_ms, hs_err *err);
/* Cuts the transfer if still running and frees the stream. */
void hs_upstream_close(hs_upstream_stream *st);

#endif
