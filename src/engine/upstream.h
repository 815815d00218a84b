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

/* Timeouts of 0 (or less) take the default. */
struct hs_upstream_params {
    const char *url;        /* base URL up to and including /v1, e.g. http://127.0.0.1:8080/v1;
                               http or https, a trailing '/' is ignored, a ?query is kept on
                               every request */
    const char *api_key;    /* sent as Authorization: Bearer; NULL or "" for none */
    const char *model;      /* the remote model name put in forwarded bodies; NULL keeps the client's */
    int connect_timeout_ms; /* default 5000 */
    int timeout_ms;         /* whole request; default 600000 */
    int idle_timeout_ms;    /* no byte for this long cuts the stream; default 60000. Counts
                               from the request's start, so a non-streamed answer that takes
                               longer than this to come is cut too. Time spent waiting for a
                               slow reader does not count. */
};

/* Copies what it needs from p (HS_EINVAL for a malformed URL, a scheme other
 * than http/https, a key with control characters). The upstream is read-only
 * afterwards: any number of threads may start streams on it at once. Streams
 * copy what they need when they start, so hs_upstream_free may come before
 * their hs_upstream_close. */
int hs_upstream_create(const struct hs_upstream_params *p, hs_upstream **out, hs_err *err);
void hs_upstream_free(hs_upstream *u);
/* The base URL as used: without a trailing '/' and without the ?query. */
const char *hs_upstream_url(const hs_upstream *u);

/* A stream has one consumer: status, header, read and close are called from
 * one thread at a time (hs_upstream_cancel from any thread). Its body is
 * buffered up to 64 KiB; beyond that the transfer waits for the reader, so a
 * slow client slows the upstream instead of filling memory. Timeouts below
 * (timeout_ms) are the caller's waits: < 0 waits without limit, 0 polls. */

/* Starts POST base+path ("/chat/completions") with body (a JSON object; its
 * "model" is replaced when the upstream has a remote name, and then a body
 * that is not a JSON object is HS_EINVAL; without a remote name the bytes go
 * out untouched). Sent with Content-Type: application/json and, when set,
 * Authorization: Bearer <api_key>. request_id, when not NULL, is sent as
 * x-request-id (HS_EINVAL if it holds control characters). The body is copied.
 * Returns once the transfer has started; connection errors surface from
 * hs_upstream_status and the reads. */
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
 * negative HS_E* when the transfer broke (err says why). The two timeouts
 * differ by err: when the caller's wait ran out, err is cleared
 * (err->code == HS_OK); when the upstream's idle or total timeout cut the
 * transfer, err->code is HS_ETIMEDOUT with a message ("reading from URL: no
 * data for 60000 ms"). Bytes that came before a failure are read first; the
 * end and failures are final (later reads return them again at once). */
long hs_upstream_read(hs_upstream_stream *st, char *buf, size_t cap, int timeout_ms, hs_err *err);
/* The consumer is gone: cuts the transfer (within milliseconds); waiting and
 * later reads return HS_ECANCELED once the queued bytes are read. Safe from
 * any thread, any number of times, until hs_upstream_close. */
void hs_upstream_cancel(hs_upstream_stream *st);
/* Cuts the transfer if still running (promptly: it does not wait for the
 * upstream), waits for its thread and frees the stream. NULL does nothing. */
void hs_upstream_close(hs_upstream_stream *st);

#endif
