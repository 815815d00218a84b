/* "prompt" (completions) and "input" (embeddings): the four shapes of
 * CreateCompletionRequest.prompt / CreateEmbeddingRequest.input in OpenAI's
 * spec: a string, an array of strings, an array of token ids (one prompt),
 * or an array of token-id arrays (one prompt each). The kind of the first
 * element decides which of the array shapes it is; every other element must
 * match it. */
#include "server/request_impl.h"

#include "base/mem.h"

#include <stdio.h>

/* A token id: a JSON integer in [0, INT32_MAX] (the vocabulary bound is the
 * server's to check once it knows the model). */
static bool token_id(struct hs_api_error *e, const json_t *v, const char *param, int32_t *out)
{
    if (!json_is_integer(v))
        return hs_req_bad_type(e, param, "an integer token id", v);
    json_int_t t = json_integer_value(v);
    if (t < 0 || t > INT32_MAX)
        return hs_req_bad_value(e, param, "Invalid '%s': token ids are integers in 0..%d, got %lld", param,
                                INT32_MAX, (long long)t);
    *out = (int32_t)t;
    return true;
}

static bool alloc_inputs(struct hs_gen_request *r, size_t n, struct hs_api_error *e)
{
    r->prompts = hs_calloc(n, sizeof(*r->prompts));
    r->prompt_tokens = hs_calloc(n, sizeof(*r->prompt_tokens));
    r->prompt_n_tokens = hs_calloc(n, sizeof(*r->prompt_n_tokens));
    if (!r->prompts || !r->prompt_tokens || !r->prompt_n_tokens)
        return hs_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return true;
}

static bool set_text(struct hs_gen_request *r, int i, const json_t *s, const char *param, bool allow_empty,
                     struct hs_api_error *e)
{
    if (!allow_empty && json_string_length(s) == 0)
        return hs_req_bad_value(e, param, "Invalid '%s': the input must not be an empty string", param);
    r->prompts[i] = hs_strndup(json_string_value(s), json_string_length(s));
    if (!r->prompts[i])
        return hs_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return true;
}

/* arr: a non-empty array of token ids -> r->prompt_tokens[i]. */
static bool set_tokens(struct hs_gen_request *r, int i, const json_t *arr, const char *param,
                       struct hs_api_error *e)
{
    size_t n = json_array_size(arr);
    if (n == 0)
        return hs_req_bad_value(e, param, "Invalid '%s': a token array must not be empty", param);
    if (n > INT32_MAX)
        return hs_req_bad_value(e, param, "Invalid '%s': too many tokens", param);
    r->prompt_tokens[i] = hs_malloc(n * sizeof(int32_t));
    if (!r->prompt_tokens[i])
        return hs_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    r->prompt_n_tokens[i] = (int)n;
    for (size_t k = 0; k < n; k++) {
        char tp[64];
        snprintf(tp, sizeof(tp), "%s[%zu]", param, k);
        if (!token_id(e, json_array_get(arr, k), tp, &r->prompt_tokens[i][k]))
            return false;
    }
    return true;
}

bool hs_req_parse_inputs(struct hs_gen_request *r, const json_t *v, const char *param, bool allow_empty,
                         struct hs_api_error *e)
{
    if (!v || json_is_null(v))
        return hs_req_missing(e, param);
    if (json_is_string(v)) {
        if (!alloc_inputs(r, 1, e))
            return false;
        r->n_prompts = 1;
        return set_text(r, 0, v, param, allow_empty, e);
    }
    if (!json_is_array(v))
        return hs_req_bad_type(e, param,
                               "a string, an array of strings, an array of token ids or an array of "
                               "token-id arrays",
                               v);
    size_t n = json_array_size(v);
    if (n == 0)
        return hs_req_bad_value(e, param, "Invalid '%s': the array must not be empty", param);

    const json_t *first = json_array_get(v, 0);
    if (json_is_integer(first)) { /* one prompt given as token ids */
        if (!alloc_inputs(r, 1, e))
            return false;
        r->n_prompts = 1;
        return set_tokens(r, 0, v, param, e);
    }
    if (n > HS_REQ_MAX_INPUTS)
        return hs_req_bad_value(e, param, "Invalid '%s': at most %d inputs per request, got %zu", param,
                                HS_REQ_MAX_INPUTS, n);
    if (!json_is_string(first) && !json_is_array(first)) {
        char ep[64];
        snprintf(ep, sizeof(ep), "%s[0]", param);
        return hs_req_bad_type(e, ep, "a string, a token id or an array of token ids", first);
    }
    if (!alloc_inputs(r, n, e))
        return false;
    r->n_prompts = (int)n;
    bool texts = json_is_string(first);
    for (size_t k = 0; k < n; k++) {
        const json_t *item = json_array_get(v, k);
        char ep[64];
        snprintf(ep, sizeof(ep), "%s[%zu]", param, k);
        if (texts) {
            if (!json_is_string(item))
                return hs_req_bad_type(e, ep, "a string (like the other elements)", item);
            if (!set_text(r, (int)k, item, ep, allow_empty, e))
                return false;
        } else {
            if (!json_is_array(item))
                return hs_req_bad_type(e, ep, "an array of token ids (like the other elements)", item);
            if (!set_tokens(r, (int)k, item, ep, e))
                return false;
        }
    }
    return true;
}
