/* hs_client: a small C client for any OpenAI-compatible server (hestia,
 * vLLM, llama.cpp's server, Ollama, LM Studio) over libcurl: chat
 * completions (whole or streamed), embeddings and the model list, with
 * timeouts and retries with exponential backoff (and Retry-After) on 429,
 * 503 and connection failures before any answer byte arrived.
 *
 * One hs_client may be used by many threads at once: each call has its own
 * curl handle. Errors carry the server's OpenAI error message when it sent
 * one ("HTTP 400: messages[0].role: ..."). */
#ifndef HS_ENGINE_CLIENT_H
#define HS_ENGINE_CLIENT_H

#include "base/err.h"
#include "model/chat.h"

#include <stdbool.h>
#include <stddef.h>

struct hs_client_opts {
    const char *base_url;  /* up to and including /v1, e.g. http://127.0.0.1:8000/v1 */
    const char *api_key;   /* Bearer token; NULL = none */
    int connect_timeout_ms; /* default 5000 */
    int timeout_ms;        /* whole call; default 120000; for streams: longest silence */
    int max_retries;       /* on 429 / 503 / connection failure; default 3 */
    int backoff_ms;        /* first wait, doubled each retry (Retry-After wins); default 500 */
};
void hs_client_opts_default(struct hs_client_opts *o);
/* The API base for a URL a person typed: as given when it has a path, with
 * /v1 added when it has none ("http://127.0.0.1:8000" -> ".../v1"), since
 * every server here serves the API under /v1. A new string (hs_free), NULL
 * when out of memory. */
char *hs_client_api_base(const char *url);

typedef struct hs_client hs_client;
int hs_client_create(const struct hs_client_opts *o, hs_client **out, hs_err *err);
void hs_client_free(hs_client *c);

/* Messages are model/chat.h's struct hs_chat_msg {role, content}. */

struct hs_chat_req {
    const char *model;
    const struct hs_chat_msg *messages;
    int n_messages;
    int max_tokens;      /* <= 0: not sent */
    float temperature;   /* NAN: not sent */
    float top_p;         /* NAN: not sent */
    long long seed;      /* < 0: not sent */
    const char *response_format; /* a JSON object's text, sent as "response_format"; NULL: not sent */
    const char *extra;   /* a JSON object whose members are added to the body (e.g. "lora"); NULL: none */
};
/* Unset everything (NAN / -1 / NULL). */
void hs_chat_req_init(struct hs_chat_req *r);

struct hs_chat_resp {
    char *id;            /* the response's id (x-request-id on hestia) */
    char *content;       /* the assistant's text */
    char *finish_reason; /* "stop", "length", ... */
    int prompt_tokens, completion_tokens; /* from usage; -1 when the server sent none */
    double ttft_ms;      /* first content byte (streams) or the whole answer */
    double latency_ms;   /* the whole call, retries included */
    int http_status;     /* of the last attempt */
    int attempts;
};
void hs_chat_resp_free(struct hs_chat_resp *r);

/* out is filled whether or not the call succeeds (attempts, http_status,
 * latency; a stream's content delivered before a failure or a cancel):
 * free it with hs_chat_resp_free either way. */
int hs_client_chat(hs_client *c, const struct hs_chat_req *req, struct hs_chat_resp *out, hs_err *err);

/* Streams: on_delta gets each piece of content as it arrives (return false
 * to stop early: the call returns HS_ECANCELED). out is filled at the end
 * (usage when the server sends it with stream_options.include_usage). */
typedef bool (*hs_client_delta_fn)(void *ud, const char *text, size_t len);
int hs_client_chat_stream(hs_client *c, const struct hs_chat_req *req, hs_client_delta_fn on_delta, void *ud,
                          struct hs_chat_resp *out, hs_err *err);

/* Embeddings of n inputs: *vecs is a new array of n * (*dim) floats (hs_free). */
int hs_client_embed(hs_client *c, const char *model, const char *const *inputs, int n, float **vecs, int *dim,
                    hs_err *err);

/* The ids of GET /models: *names a new array of new strings (hs_client_names_free). */
int hs_client_models(hs_client *c, char ***names, int *n, hs_err *err);
void hs_client_names_free(char **names, int n);

#endif
