/* OpenAI request bodies: the top-level fields of chat completions,
 * completions and embeddings (CreateChatCompletionRequest,
 * CreateCompletionRequest and CreateEmbeddingRequest in OpenAI's OpenAPI
 * spec), with their types and ranges. The messages array is in
 * request_chat.c, prompt/input shapes in request_input.c.
 *
 * Conventions, as OpenAI's own API behaves:
 * - a field set to null is the same as a field left out (the spec marks
 *   almost every field nullable, and SDKs send null for "unset");
 * - unknown fields are ignored (clients send extras such as "metadata"), but a
 *   known field of the wrong type is a 400 whose "param" names it;
 * - features this server does not have (tools, logit_bias,
 *   suffix, best_of) are refused with a 400 rather than silently ignored
 *   when the request actually asks for them; their empty/default values pass.
 *
 * Every string the request keeps is an owned copy, so the server may edit or
 * drop root (e.g. rewrite "model" for an upstream) without dangling pointers. */
#include "server/request_impl.h"

#include "base/mem.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_MAX_MESSAGES 20
#define DEFAULT_MAX_INPUT_TOKENS 4000
#define MAX_N 16
#define MAX_STOPS 4

/* --- errors --- */

/* vsnprintf may cut a multi-byte character in two: drop the partial tail so
 * the message stays valid UTF-8. */
static void trim_partial_utf8(char *s)
{
    size_t len = strlen(s);
    size_t i = len;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80 && len - i < 3)
        i--;
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (lead >= 0xC0 && len - (i - 1) < need)
        s[i - 1] = 0;
}

bool hs_api_error_set(struct hs_api_error *e, int status, const char *type, const char *code,
                      const char *param, const char *fmt, ...)
{
    if (!e)
        return false;
    e->status = status;
    snprintf(e->type, sizeof(e->type), "%s", type ? type : "");
    snprintf(e->code, sizeof(e->code), "%s", code ? code : "");
    snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(e->message))
        trim_partial_utf8(e->message);
    return false;
}

const char *hs_req_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

bool hs_req_bad_type(struct hs_api_error *e, const char *param, const char *expected, const json_t *got)
{
    return hs_api_error_set(e, 400, "invalid_request_error", "invalid_type", param,
                            "Invalid type for '%s': expected %s, but got %s instead.", param, expected,
                            hs_req_json_kind(got));
}

static bool error_v(struct hs_api_error *e, const char *code, const char *param, const char *fmt, va_list ap)
{
    char msg[sizeof(e->message)];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    return hs_api_error_set(e, 400, "invalid_request_error", code, param, "%s", msg);
}

bool hs_req_bad_value(struct hs_api_error *e, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_v(e, "invalid_value", param, fmt, ap);
    va_end(ap);
    return false;
}

bool hs_req_unsupported(struct hs_api_error *e, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_v(e, "unsupported_value", param, fmt, ap);
    va_end(ap);
    return false;
}

bool hs_req_missing(struct hs_api_error *e, const char *param)
{
    return hs_api_error_set(e, 400, "invalid_request_error", "missing_required_parameter", param,
                            "Missing required parameter: '%s'.", param);
}

static bool oom(struct hs_api_error *e)
{
    return hs_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
}

/* --- typed field readers: absent or null leaves *given false and succeeds --- */

static const json_t *field(const json_t *root, const char *key)
{
    const json_t *v = json_object_get(root, key);
    return (v && !json_is_null(v)) ? v : NULL;
}

/* A number in [lo, hi]; lo_open makes the lower bound exclusive. */
static bool get_number(const json_t *root, const char *key, double lo, double hi, bool lo_open, float *out,
                       bool *given, struct hs_api_error *e)
{
    const json_t *v = field(root, key);
    if (given)
        *given = v != NULL;
    if (!v)
        return true;
    if (!json_is_number(v))
        return hs_req_bad_type(e, key, "a number", v);
    double d = json_number_value(v);
    if (!(lo_open ? d > lo : d >= lo) || !(d <= hi)) {
        if (isinf(hi))
            return hs_req_bad_value(e, key, "Invalid '%s': expected a number %s %g, got %g.", key,
                                    lo_open ? ">" : ">=", lo, d);
        return hs_req_bad_value(e, key, "Invalid '%s': expected a number between %g and %g, got %g.", key, lo,
                                hi, d);
    }
    *out = (float)d;
    return true;
}

/* An integer in [lo, hi]. A number with no fractional part (16.0) counts as
 * an integer: some clients serialise every number as a float. */
static bool get_int64(const json_t *root, const char *key, int64_t lo, int64_t hi, int64_t *out, bool *given,
                      struct hs_api_error *e)
{
    const json_t *v = field(root, key);
    if (given)
        *given = v != NULL;
    if (!v)
        return true;
    int64_t x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) &&
               fabs(json_real_value(v)) <= 9007199254740992.0) {
        x = (int64_t)json_real_value(v);
    } else {
        return hs_req_bad_type(e, key, "an integer", v);
    }
    if (x < lo || x > hi) {
        if (hi == INT_MAX || hi == INT64_MAX)
            return hs_req_bad_value(e, key, "Invalid '%s': expected an integer >= %lld, got %lld.", key,
                                    (long long)lo, (long long)x);
        return hs_req_bad_value(e, key, "Invalid '%s': expected an integer between %lld and %lld, got %lld.",
                                key, (long long)lo, (long long)hi, (long long)x);
    }
    *out = x;
    return true;
}

static bool get_int(const json_t *root, const char *key, int lo, int hi, int *out, bool *given,
                    struct hs_api_error *e)
{
    int64_t x = 0;
    bool g = false;
    if (!get_int64(root, key, lo, hi, &x, &g, e))
        return false;
    if (g)
        *out = (int)x;
    if (given)
        *given = g;
    return true;
}

static bool get_bool(const json_t *root, const char *key, bool *out, struct hs_api_error *e)
{
    const json_t *v = field(root, key);
    if (!v)
        return true;
    if (!json_is_boolean(v))
        return hs_req_bad_type(e, key, "a boolean", v);
    *out = json_is_true(v);
    return true;
}

/* An owned copy of a string field; NULL when absent. */
static bool get_string(const json_t *root, const char *key, char **out, struct hs_api_error *e)
{
    const json_t *v = field(root, key);
    if (!v)
        return true;
    if (!json_is_string(v))
        return hs_req_bad_type(e, key, "a string", v);
    *out = hs_strndup(json_string_value(v), json_string_length(v));
    return *out ? true : oom(e);
}

/* --- fields --- */

static bool parse_model(struct hs_gen_request *r, struct hs_api_error *e)
{
    const json_t *v = field(r->root, "model");
    if (!v)
        return hs_api_error_set(e, 400, "invalid_request_error", "missing_required_parameter", "model",
                                "You must provide a model parameter.");
    if (!json_is_string(v))
        return hs_req_bad_type(e, "model", "a string", v);
    if (json_string_length(v) == 0)
        return hs_req_bad_value(e, "model", "Invalid 'model': the model name must not be empty.");
    char *m = hs_strndup(json_string_value(v), json_string_length(v));
    if (!m)
        return oom(e);
    r->model = m;
    return true;
}

/* "stop": a string or an array of up to 4 non-empty strings. An empty array
 * means no stop strings. */
static bool parse_stop(struct hs_gen_request *r, struct hs_api_error *e)
{
    const json_t *v = field(r->root, "stop");
    if (!v)
        return true;
    if (json_is_string(v)) {
        if (json_string_length(v) == 0)
            return hs_req_bad_value(e, "stop", "Invalid 'stop': a stop string must not be empty.");
        r->stop = hs_calloc(1, sizeof(*r->stop));
        if (!r->stop)
            return oom(e);
        r->stop[0] = hs_strndup(json_string_value(v), json_string_length(v));
        if (!r->stop[0])
            return oom(e);
        r->n_stop = 1;
        return true;
    }
    if (!json_is_array(v))
        return hs_req_bad_type(e, "stop", "a string or an array of strings", v);
    size_t n = json_array_size(v);
    if (n > MAX_STOPS)
        return hs_req_bad_value(e, "stop", "Invalid 'stop': at most %d stop strings, got %zu.", MAX_STOPS, n);
    if (n == 0)
        return true;
    r->stop = hs_calloc(n, sizeof(*r->stop));
    if (!r->stop)
        return oom(e);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(v, i);
        char param[32];
        snprintf(param, sizeof(param), "stop[%zu]", i);
        if (!json_is_string(s))
            return hs_req_bad_type(e, param, "a string", s);
        if (json_string_length(s) == 0)
            return hs_req_bad_value(e, param, "Invalid '%s': a stop string must not be empty.", param);
        r->stop[i] = hs_strndup(json_string_value(s), json_string_length(s));
        if (!r->stop[i])
            return oom(e);
        r->n_stop = (int)i + 1;
    }
    return true;
}

static bool parse_stream(struct hs_gen_request *r, struct hs_api_error *e)
{
    if (!get_bool(r->root, "stream", &r->stream, e))
        return false;
    const json_t *so = field(r->root, "stream_options");
    if (!so)
        return true;
    if (!json_is_object(so))
        return hs_req_bad_type(e, "stream_options", "an object", so);
    if (!r->stream)
        return hs_req_bad_value(e, "stream_options",
                                "The 'stream_options' parameter is only allowed when 'stream' is true.");
    const json_t *iu = field(so, "include_usage");
    if (iu) {
        if (!json_is_boolean(iu))
            return hs_req_bad_type(e, "stream_options.include_usage", "a boolean", iu);
        r->include_usage = json_is_true(iu);
    }
    return true;
}

/* Sampling: OpenAI's defaults (temperature 1, top_p 1) with llama.cpp's
 * extensions off unless asked for (top_k, min_p, repeat_penalty). The seed
 * keeps hs_sampler_params_default's clock-based value unless given. */
static bool parse_sampling(struct hs_gen_request *r, struct hs_api_error *e)
{
    struct hs_sampler_params *p = &r->sampling;
    hs_sampler_params_default(p);
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->top_k = 0;
    p->min_p = 0.0f;
    p->repeat_penalty = 1.0f;
    p->frequency_penalty = 0.0f;
    p->presence_penalty = 0.0f;

    const json_t *root = r->root;
    if (!get_number(root, "temperature", 0, 2, false, &p->temperature, &r->temperature_given, e) ||
        !get_number(root, "top_p", 0, 1, false, &p->top_p, &r->top_p_given, e) ||
        !get_int(root, "top_k", 0, INT_MAX, &p->top_k, &r->top_k_given, e) ||
        !get_number(root, "min_p", 0, 1, false, &p->min_p, &r->min_p_given, e) ||
        !get_number(root, "frequency_penalty", -2, 2, false, &p->frequency_penalty, NULL, e) ||
        !get_number(root, "presence_penalty", -2, 2, false, &p->presence_penalty, NULL, e) ||
        !get_number(root, "repeat_penalty", 0, INFINITY, true, &p->repeat_penalty, NULL, e) ||
        !get_int(root, "repeat_last_n", -1, INT_MAX, &p->repeat_last_n, NULL, e))
        return false;
    /* repeat_penalty was checked > 0 as a double; a tiny value can still
       round to 0 as a float, and the sampler divides by it. */
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return hs_req_bad_value(e, "repeat_penalty", "Invalid 'repeat_penalty': expected a number > 0.");
    int64_t seed = 0;
    if (!get_int64(root, "seed", INT64_MIN, INT64_MAX, &seed, &r->seed_given, e))
        return false;
    if (r->seed_given)
        p->seed = (uint64_t)seed;
    return true;
}

/* Fields this server does not implement: refused when the request really
 * uses them, accepted when they hold their "off" value. */
static bool refuse_unsupported(struct hs_gen_request *r, struct hs_api_error *e)
{
    const json_t *root = r->root;
    static const char *const lists[] = {"tools", "functions"};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        const json_t *v = field(root, lists[i]);
        if (!v)
            continue;
        if (!json_is_array(v))
            return hs_req_bad_type(e, lists[i], "an array", v);
        if (json_array_size(v) > 0)
            return hs_api_error_set(
                e, 400, "invalid_request_error", "unsupported_parameter", lists[i],
                "'%s' is not supported: this server does not do tool or function calling.", lists[i]);
    }
    const json_t *lb = field(root, "logit_bias");
    if (lb) {
        if (!json_is_object(lb))
            return hs_req_bad_type(e, "logit_bias", "an object", lb);
        if (json_object_size(lb) > 0)
            return hs_api_error_set(e, 400, "invalid_request_error", "unsupported_parameter", "logit_bias",
                                    "'logit_bias' is not supported by this server yet.");
    }
    if (r->kind == HS_REQ_CHAT) {
        const json_t *rf = field(root, "response_format");
        if (rf && !hs_req_parse_response_format(r, rf, e))
            return false;
    }
    const json_t *lora = field(root, "lora");
    if (lora && !hs_req_parse_lora(r, lora, e))
        return false;
    if (r->kind == HS_REQ_COMPLETION) {
        const json_t *sfx = field(root, "suffix");
        if (sfx) {
            if (!json_is_string(sfx))
                return hs_req_bad_type(e, "suffix", "a string", sfx);
            if (json_string_length(sfx) > 0)
                return hs_api_error_set(e, 400, "invalid_request_error", "unsupported_parameter", "suffix",
                                        "'suffix' is not supported by this server.");
        }
        int best_of = 0;
        bool given = false;
        if (!get_int(root, "best_of", 0, 20, &best_of, &given, e))
            return false;
        /* best_of == n is the same as n; anything else needs ranking we do not do */
        if (given && best_of > 1 && best_of != r->n)
            return hs_api_error_set(e, 400, "invalid_request_error", "unsupported_parameter", "best_of",
                                    "'best_of' other than 1 or n is not supported by this server.");
    }
    return true;
}

static bool parse_logprobs(struct hs_gen_request *r, struct hs_api_error *e)
{
    if (r->kind == HS_REQ_COMPLETION) {
        /* completions: logprobs is the number of alternatives, 0..5 */
        bool given = false;
        if (!get_int(r->root, "logprobs", 0, 5, &r->top_logprobs, &given, e))
            return false;
        r->logprobs = given;
        return true;
    }
    if (!get_bool(r->root, "logprobs", &r->logprobs, e))
        return false;
    bool given = false;
    if (!get_int(r->root, "top_logprobs", 0, 20, &r->top_logprobs, &given, e))
        return false;
    if (given && r->top_logprobs > 0 && !r->logprobs)
        return hs_req_bad_value(e, "top_logprobs", "'top_logprobs' requires 'logprobs' to be true.");
    return true;
}

static bool parse_generation(struct hs_gen_request *r, const struct hs_req_limits *lim,
                             struct hs_api_error *e)
{
    const json_t *root = r->root;
    if (r->kind == HS_REQ_CHAT) {
        int max_messages = lim ? lim->max_messages : DEFAULT_MAX_MESSAGES;
        if (!hs_req_parse_messages(r, json_object_get(root, "messages"), max_messages, e))
            return false;
    } else if (!hs_req_parse_inputs(r, json_object_get(root, "prompt"), "prompt", true, e)) {
        return false;
    }
    r->n = 1;
    if (!get_int(root, "n", 1, MAX_N, &r->n, NULL, e))
        return false;
    int mt = -1, mct = -1;
    bool mct_given = false;
    if (!get_int(root, "max_tokens", 1, INT_MAX, &mt, NULL, e))
        return false;
    if (r->kind == HS_REQ_CHAT && !get_int(root, "max_completion_tokens", 1, INT_MAX, &mct, &mct_given, e))
        return false;
    r->max_tokens = mct_given ? mct : mt; /* the newer name wins when both are given */
    if (!parse_sampling(r, e) || !parse_stop(r, e) || !parse_stream(r, e) || !parse_logprobs(r, e))
        return false;
    if (r->kind == HS_REQ_COMPLETION && !get_bool(root, "echo", &r->echo, e))
        return false;
    if (!get_bool(root, "ignore_eos", &r->ignore_eos, e))
        return false;
    char *user = NULL;
    if (!get_string(root, "user", &user, e))
        return false;
    r->user = user;
    return refuse_unsupported(r, e);
}

static bool parse_embedding(struct hs_gen_request *r, struct hs_api_error *e)
{
    const json_t *root = r->root;
    if (!hs_req_parse_inputs(r, json_object_get(root, "input"), "input", false, e))
        return false;
    r->encoding_format = "float";
    const json_t *ef = field(root, "encoding_format");
    if (ef) {
        if (!json_is_string(ef))
            return hs_req_bad_type(e, "encoding_format", "a string", ef);
        if (strcmp(json_string_value(ef), "float") == 0)
            r->encoding_format = "float";
        else if (strcmp(json_string_value(ef), "base64") == 0)
            r->encoding_format = "base64";
        else
            return hs_req_bad_value(e, "encoding_format",
                                    "Invalid value for 'encoding_format': '%.64s'. Supported values are: "
                                    "'float' and 'base64'.",
                                    json_string_value(ef));
    }
    if (!get_int(root, "dimensions", 1, INT_MAX, &r->dimensions, NULL, e))
        return false;
    char *user = NULL;
    if (!get_string(root, "user", &user, e))
        return false;
    r->user = user;
    r->n = 1;
    r->max_tokens = -1;
    return true;
}

bool hs_req_parse(enum hs_req_kind kind, const char *body, size_t len, const struct hs_req_limits *lim,
                  struct hs_gen_request *out, struct hs_api_error *e)
{
    memset(out, 0, sizeof(*out));
    out->kind = kind;
    if (kind != HS_REQ_CHAT && kind != HS_REQ_COMPLETION && kind != HS_REQ_EMBEDDING)
        return hs_api_error_set(e, 500, "server_error", NULL, NULL, "unknown request kind %d", (int)kind);
    json_error_t je;
    out->root = json_loadb(body ? body : "", body ? len : 0, JSON_DECODE_ANY, &je);
    if (!out->root)
        return hs_api_error_set(e, 400, "invalid_request_error", "invalid_json", NULL,
                                "We could not parse the JSON body of your request: %s (line %d, column %d).",
                                je.text, je.line, je.column);
    bool ok;
    if (!json_is_object(out->root)) {
        ok = hs_api_error_set(e, 400, "invalid_request_error", "invalid_type", NULL,
                              "The request body must be a JSON object, but got %s instead.",
                              hs_req_json_kind(out->root));
    } else {
        ok = parse_model(out, e) &&
             (kind == HS_REQ_EMBEDDING ? parse_embedding(out, e) : parse_generation(out, lim, e));
    }
    if (!ok)
        hs_req_free(out);
    return ok;
}

void hs_req_free(struct hs_gen_request *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_msgs; i++)
        hs_free((char *)r->msgs[i].content);
    hs_free(r->msgs);
    for (int i = 0; i < r->n_prompts; i++) {
        if (r->prompts)
            hs_free(r->prompts[i]);
        if (r->prompt_tokens)
            hs_free(r->prompt_tokens[i]);
    }
    hs_free(r->prompts);
    hs_free(r->prompt_tokens);
    hs_free(r->prompt_n_tokens);
    for (int i = 0; i < r->n_stop; i++)
        hs_free(r->stop[i]);
    hs_free(r->stop);
    hs_free((char *)r->model);
    hs_free((char *)r->user);
    hs_free(r->json_schema);
    for (int i = 0; i < r->n_loras; i++)
        hs_free(r->loras[i].name);
    hs_free(r->loras);
    json_decref(r->root);
    enum hs_req_kind kind = r->kind;
    memset(r, 0, sizeof(*r));
    r->kind = kind;
}

bool hs_req_check_tokens(const struct hs_gen_request *r, int n_tokens, const struct hs_req_limits *lim,
                         struct hs_api_error *e)
{
    int max = lim ? lim->max_input_tokens : DEFAULT_MAX_INPUT_TOKENS;
    if (max <= 0 || n_tokens <= max)
        return true;
    const char *param = r->kind == HS_REQ_CHAT         ? "messages"
                        : r->kind == HS_REQ_COMPLETION ? "prompt"
                                                       : "input";
    return hs_api_error_set(
        e, 400, "invalid_request_error", "context_length_exceeded", param,
        "This server accepts at most %d input tokens per request, but your %s resulted in "
        "%d tokens. Please shorten the %s.",
        max, param, n_tokens, param);
}
