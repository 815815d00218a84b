/* Response bodies in OpenAI's shapes (chat.completion, chat.completion.chunk,
 * text_completion, embeddings list, model list, error object), built with
 * jansson so every string is escaped and valid UTF-8 (bytes that are not, as
 * in a token that ends inside a character, become U+FFFD; logprobs carry the
 * raw "bytes" as well). All builders return a new reference or NULL when out
 * of memory. */
#ifndef HS_SERVER_OPENAI_H
#define HS_SERVER_OPENAI_H

#include "base/buf.h"
#include "server/request.h"

#include <jansson.h>
#include <stdint.h>

/* {"error":{"message","type","param","code"}} (param/code null when empty). */
json_t *hs_oai_error(const struct hs_api_error *e);

struct hs_oai_alt {
    const char *token; /* raw bytes of the token's text */
    size_t len;
    float logprob;
};
/* One generated token's log-probabilities. */
struct hs_oai_logprob {
    struct hs_oai_alt chosen;
    int n_top;
    const struct hs_oai_alt *top; /* n_top alternatives, best first */
};

struct hs_oai_usage {
    int prompt_tokens;
    int completion_tokens;
    int cached_tokens; /* usage.prompt_tokens_details.cached_tokens */
};

struct hs_oai_choice {
    int index;
    const char *text; /* the answer (chat: message.content; completion: text) */
    size_t len;
    const char *finish_reason; /* "stop", "length"; NULL = null */
    const struct hs_oai_logprob *logprobs; /* n_logprobs entries, NULL = "logprobs": null */
    int n_logprobs;
};

/* A whole answer: chat.completion or text_completion (kind). created is unix
 * seconds. usage NULL = no "usage" field. Log-probabilities below -9999 (or
 * -inf) are written as -9999.0, as OpenAI does. text_completion logprobs:
 * text_offset counts bytes from the start of the text in this object, and in
 * the top_logprobs maps a NUL byte in a token is written as U+FFFD (many JSON
 * parsers refuse NUL in keys; the "tokens" list keeps it as \u0000). */
json_t *hs_oai_completion(enum hs_req_kind kind, const char *id, int64_t created, const char *model,
                          const struct hs_oai_choice *choices, int n_choices, const struct hs_oai_usage *usage);

/* One streamed chunk for choice index: chat.completion.chunk (delta with
 * role "assistant" when first, content when text is non-NULL) or
 * text_completion; logprobs for the tokens this chunk carries (may be NULL);
 * finish_reason NULL = null. */
json_t *hs_oai_chunk(enum hs_req_kind kind, const char *id, int64_t created, const char *model, int index,
                     bool first, const char *text, size_t len, const struct hs_oai_logprob *logprobs,
                     int n_logprobs, const char *finish_reason);
/* The last chunk with stream_options.include_usage: "choices": [] and usage. */
json_t *hs_oai_usage_chunk(enum hs_req_kind kind, const char *id, int64_t created, const char *model,
                           const struct hs_oai_usage *usage);

/* {"object":"list","data":[{"object":"embedding","index":i,"embedding":[...] or base64}],
 *  "model", "usage":{"prompt_tokens","total_tokens"}} */
json_t *hs_oai_embeddings(const char *model, const float *const *vectors, int n, int dim, int prompt_tokens,
                          bool base64);

/* One entry of GET /v1/models: {"id","object":"model","created","owned_by"}. */
json_t *hs_oai_model(const char *id, int64_t created, const char *owned_by);

/* Text as a JSON string: bytes that are not valid UTF-8 become U+FFFD (one
 * per maximal invalid subpart, as the WHATWG decoder does). s NULL = "".
 * New reference, NULL when out of memory. */
json_t *hs_oai_text(const char *s, size_t len);
/* The same as a new NUL-terminated C string (free with hs_free); *out_len
 * (if non-NULL) gets its length. NULL when out of memory. */
char *hs_oai_utf8_clean(const char *s, size_t len, size_t *out_len);
/* Appends obj as compact JSON with floats at 9 significant digits (enough to
 * round-trip every float32; jansson's default prints 17). HS_OK / HS_ENOMEM. */
int hs_oai_dump(hs_buf *out, const json_t *obj);

/* Appends "data: <compact json>\n\n" (SSE); on failure appends nothing. */
int hs_sse_append(hs_buf *out, const json_t *obj);
/* Appends "data: [DONE]\n\n". */
int hs_sse_done(hs_buf *out);

#endif
