/* Shared by src/server/request*.c only: field helpers that turn a bad JSON
 * value into an OpenAI error naming the field. */
#ifndef HS_SERVER_REQUEST_IMPL_H
#define HS_SERVER_REQUEST_IMPL_H

#include "server/request.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* At most this many prompts / embedding inputs in one request (the OpenAI
 * embeddings limit; completions get the same bound so that n_prompts * n
 * choices stays small). */
#define HS_REQ_MAX_INPUTS 2048

/* "a string", "an object", ... for messages like "got an array instead". */
const char *hs_req_json_kind(const json_t *v);

/* 400 invalid_type naming param; always returns false. */
bool hs_req_bad_type(struct hs_api_error *e, const char *param, const char *expected, const json_t *got);
/* 400 with code "invalid_value" naming param; always returns false. */
bool hs_req_bad_value(struct hs_api_error *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 400 with code "unsupported_value" naming param; always returns false. */
bool hs_req_unsupported(struct hs_api_error *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 400 missing_required_parameter; always returns false. */
bool hs_req_missing(struct hs_api_error *e, const char *param);

/* "messages": fills r->msgs / r->n_msgs (contents are owned copies). */
bool hs_req_parse_messages(struct hs_gen_request *r, const json_t *msgs, int max_messages,
                           struct hs_api_error *e);
/* "prompt" (completions) or "input" (embeddings): a string, an array of
 * strings, an array of token ids, or an array of token-id arrays. Fills
 * r->prompts / prompt_tokens / prompt_n_tokens / n_prompts. Empty texts are
 * refused when !allow_empty (embeddings). */
bool hs_req_parse_inputs(struct hs_gen_request *r, const json_t *v, const char *param, bool allow_empty,
                         struct hs_api_error *e);

/* (issue 5) "response_format" (chat): text, json_object or json_schema
 * (fills json_mode, json_schema). */
bool hs_req_parse_response_format(struct hs_gen_request *r, const json_t *rf, struct hs_api_error *e);
/* (issue 5) "lora": an array of {"name" or "id", "scale"}. */
bool hs_req_parse_lora(struct hs_gen_request *r, const json_t *v, struct hs_api_error *e);

#endif
