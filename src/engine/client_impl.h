/* hs_client's insides, shared by client.c (requests, retries, whole
 * answers) and client_sse.c (streamed answers). Only engine/client*.c
 * include this. */
#ifndef HS_ENGINE_CLIENT_IMPL_H
#define HS_ENGINE_CLIENT_IMPL_H

#include "base/buf.h"
#include "engine/client.h"
#include "engine/upstream.h"

#include <jansson.h>
#include <stdint.h>

struct hs_client {
    /* The transport is engine/upstream (a curl easy handle per request, its
     * own thread, prompt cancel). Two of them because the timeouts differ:
     * a whole answer must come within timeout_ms, a stream may run as long
     * as it keeps talking (timeout_ms of silence at most). */
    hs_upstream *whole;
    hs_upstream *stream;
    int max_retries;
    int backoff_ms;
};

/* Where the body of a 2xx answer goes, attempt after attempt. */
struct hs_client_sink {
    /* A new attempt got a 2xx status: forget what an earlier one left. */
    void (*begin)(void *ud, hs_upstream_stream *st);
    /* Body bytes as they arrive; HS_OK or an error that ends the call (err set). */
    int (*feed)(void *ud, const char *data, size_t n, hs_err *err);
    /* The body is complete; HS_OK or an error (err set). */
    int (*end)(void *ud, hs_err *err);
    /* True once the caller has seen any of the answer: no retry after that. */
    bool (*delivered)(void *ud);
};

struct hs_client_call {
    bool post;
    bool stream; /* use the streaming transport (silence timeout) */
    const char *path;
    const char *body;
    size_t len;
    /* out: */
    int http_status; /* of the last attempt (0: none answered) */
    int attempts;
};

/* Runs the request with retries (429, 503, connection failures before any
 * of the answer reached the caller), feeding each 2xx body to sink. Non-2xx
 * answers become "HTTP <status>: <the server's message>". */
int hs_client_exchange(hs_client *c, struct hs_client_call *call, const struct hs_client_sink *sink, void *ud,
                       hs_err *err);

/* The message of an OpenAI-style error body ({"error":{"message":..}},
 * {"error":".."}, {"message":..}, {"detail":..}) or its first line; NULL
 * when there is none. Returns a new string (hs_free). */
char *hs_client_error_text(const char *body, size_t len);

/* Reads usage.prompt_tokens / completion_tokens of a response object into r
 * (left as they are when absent). */
void hs_client_read_usage(struct hs_chat_resp *r, const json_t *root);

/* A new copy of a JSON string value into *dst when dst is still NULL;
 * false only when out of memory. */
bool hs_client_take_str(char **dst, const json_t *v);

/* The streamed chat sink (client_sse.c): parses text/event-stream chunks
 * (or a whole JSON answer from a server that ignored "stream"). */
struct hs_client_sse {
    struct hs_chat_resp *out;
    hs_client_delta_fn on_delta;
    void *ud;
    int64_t t0_ns;
    hs_buf line;    /* an incomplete line */
    hs_buf data;    /* the current event's data lines */
    hs_buf content; /* the answer so far */
    hs_buf whole;   /* a non-SSE JSON body */
    bool json_body; /* the server answered with application/json */
    bool done;      /* data: [DONE] came */
    bool delivered;
};
void hs_client_sse_init(struct hs_client_sse *s, struct hs_chat_resp *out, hs_client_delta_fn fn, void *ud,
                        int64_t t0_ns);
void hs_client_sse_free(struct hs_client_sse *s);
extern const struct hs_client_sink hs_client_sse_sink; /* its ud is a struct hs_client_sse */

/* Fills r from a whole chat.completion object's text (content, id,
 * finish_reason, usage). */
int hs_client_parse_chat(struct hs_chat_resp *r, const char *body, size_t len, hs_err *err);

#endif
