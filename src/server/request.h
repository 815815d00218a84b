/* OpenAI request bodies, parsed and validated: every field's type and range
 * is checked and a failure names the field (the OpenAI error object's
 * "param"). Parsing never trusts the body: any bytes give either a request or
 * an error, never a crash. */
#ifndef HS_SERVER_REQUEST_H
#define HS_SERVER_REQUEST_H

#include "model/chat.h"
#include "model/sampler.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An error as the API returns it: {"error":{"message","type","param","code"}}. */
struct hs_api_error {
    int status;        /* HTTP status: 400, 401, 403, 404, 413, 429, 500, 503, ... */
    char type[40];     /* "invalid_request_error", "authentication_error", "permission_error",
                          "not_found_error", "rate_limit_error", "server_error", "service_unavailable" */
    char code[48];     /* "invalid_type", "missing_required_parameter", "invalid_value",
                          "context_length_exceeded", "invalid_api_key", "model_not_found",
                          "rate_limit_exceeded", "request_too_large", ...; "" = null */
    char param[64];    /* the field, e.g. "messages[2].role"; "" = null */
    char message[384];
};
/* Fills e; returns false so that parse functions can `return hs_api_error_set(...)`. */
bool hs_api_error_set(struct hs_api_error *e, int status, const char *type, const char *code, const char *param,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));

struct hs_req_limits {
    size_t max_body_bytes; /* checked by the HTTP layer before parsing (413) */
    int max_messages;      /* default 20; 0 = no limit */
    int max_input_tokens;  /* default 4000 (0 = no limit); checked after tokenizing (hs_req_check_tokens) */
};

enum hs_req_kind { HS_REQ_CHAT = 1, HS_REQ_COMPLETION, HS_REQ_EMBEDDING };

/* (issue 5) One adapter a request asks for ("lora": [{"name"|"id", "scale"}]). */
struct hs_req_lora {
    char *name;  /* by name; NULL when given by id */
    int id;      /* by position in the model's adapter list (llama.cpp's form); -1 when by name */
    float scale; /* NAN: the adapter's default */
};
#define HS_REQ_MAX_LORAS 8

/* A chat completion, text completion or embeddings request. Every string and
 * array it points to is owned by the request (copied out of root), so root
 * may be edited or released independently; roles and encoding_format are
 * static strings. "developer" messages come out with role "system". */
struct hs_gen_request {
    enum hs_req_kind kind;
    json_t *root;          /* the parsed body (owned); forwarded as is to upstreams */
    const char *model;     /* required */
    /* chat: messages with text content (content part arrays joined) */
    struct hs_chat_msg *msgs;
    int n_msgs;
    /* completion: one or more prompts (an array gives a choice block each);
       embedding: the inputs. Texts, or token-id arrays when given as such. */
    char **prompts;        /* n_prompts texts, or NULL entries where tokens are given */
    int32_t **prompt_tokens;
    int *prompt_n_tokens;
    int n_prompts;
    /* sampling and shape of the answer */
    int n;                 /* choices per prompt, 1..16 */
    int max_tokens;        /* max_tokens or max_completion_tokens; -1 = not given */
    struct hs_sampler_params sampling; /* OpenAI defaults: temperature 1, top_p 1, top_k off, min_p off */
    bool seed_given;
    char **stop;           /* 0..4 stop strings */
    int n_stop;
    bool stream;
    bool include_usage;    /* stream_options.include_usage */
    bool logprobs;         /* chat: logprobs true; completion: logprobs given */
    int top_logprobs;      /* 0..20 */
    bool echo;             /* completion: echo the prompt */
    bool ignore_eos;       /* extension (as llama.cpp's server): generate past end-of-text tokens */
    const char *user;
    const char *encoding_format; /* embeddings: "float" (default) or "base64" */
    int dimensions;        /* embeddings: the size asked for; 0 = not given (the model's own) */
    /* (issue 5) */
    bool temperature_given, top_p_given, top_k_given, min_p_given; /* else an agent's defaults apply */
    bool response_format_given; /* any response_format, {"type":"text"} included */
    bool json_mode;             /* response_format json_object or json_schema */
    char *json_schema;          /* json_schema.schema as compact JSON; NULL = any JSON object */
    struct hs_req_lora *loras;  /* "lora" */
    int n_loras;
};

/* Parses body as the given kind. On failure returns false with e filled
 * (status 400; type invalid_request_error; param names the field) and out
 * left empty (hs_req_free on it is harmless). lim NULL = the defaults. */
bool hs_req_parse(enum hs_req_kind kind, const char *body, size_t len, const struct hs_req_limits *lim,
                  struct hs_gen_request *out, struct hs_api_error *e);
void hs_req_free(struct hs_gen_request *r);
/* After tokenizing: n_tokens over the limit -> false with a 400
 * context_length_exceeded error naming "messages" / "prompt" / "input". */
bool hs_req_check_tokens(const struct hs_gen_request *r, int n_tokens, const struct hs_req_limits *lim,
                         struct hs_api_error *e);

#endif
