/* server/request: OpenAI request bodies. Each validation rule gets a bad
 * body and the error it must produce (status, type, code, param); good
 * bodies are checked field by field. The rules come from OpenAI's spec
 * (CreateChatCompletionRequest, CreateCompletionRequest,
 * CreateEmbeddingRequest) plus this server's documented choices. */
#include "test_util.h"

#include "server/request.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CHAT HS_REQ_CHAT
#define COMP HS_REQ_COMPLETION
#define EMB HS_REQ_EMBEDDING

static bool parse(enum hs_req_kind kind, const char *body, struct hs_gen_request *r, struct hs_api_error *e)
{
    memset(e, 0, sizeof(*e));
    return hs_req_parse(kind, body, strlen(body), NULL, r, e);
}

struct bad_case {
    enum hs_req_kind kind;
    const char *body;
    const char *code;  /* expected error code ("" = null) */
    const char *param; /* expected param ("" = null) */
};

#define M "\"model\":\"m\""
#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
#define CHATB(extra) "{" M "," MSGS extra "}"
#define COMPB(extra) "{" M ",\"prompt\":\"p\"" extra "}"

static const struct bad_case bad_cases[] = {
    /* the body */
    {CHAT, "{", "invalid_json", ""},
    {CHAT, "[1,2]", "invalid_type", ""},
    {CHAT, "\"text\"", "invalid_type", ""},
    {CHAT, "", "invalid_json", ""},
    /* model */
    {CHAT, "{" MSGS "}", "missing_required_parameter", "model"},
    {CHAT, "{\"model\":null," MSGS "}", "missing_required_parameter", "model"},
    {CHAT, "{\"model\":5," MSGS "}", "invalid_type", "model"},
    {CHAT, "{\"model\":\"\"," MSGS "}", "invalid_value", "model"},
    {EMB, "{\"input\":\"x\"}", "missing_required_parameter", "model"},
    /* messages */
    {CHAT, "{" M "}", "missing_required_parameter", "messages"},
    {CHAT, "{" M ",\"messages\":{}}", "invalid_type", "messages"},
    {CHAT, "{" M ",\"messages\":[]}", "invalid_value", "messages"},
    {CHAT, "{" M ",\"messages\":[\"hi\"]}", "invalid_type", "messages[0]"},
    {CHAT, "{" M ",\"messages\":[{\"content\":\"x\"}]}", "missing_required_parameter", "messages[0].role"},
    {CHAT, "{" M ",\"messages\":[{\"role\":1,\"content\":\"x\"}]}", "invalid_type", "messages[0].role"},
    {CHAT,
     "{" M ",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"robot\",\"content\":\"x\"}]}",
     "invalid_value", "messages[1].role"},
    {CHAT, "{" M ",\"messages\":[{\"role\":\"tool\",\"content\":\"x\",\"tool_call_id\":\"1\"}]}",
     "unsupported_value", "messages[0].role"},
    {CHAT, "{" M ",\"messages\":[{\"role\":\"function\",\"content\":\"x\",\"name\":\"f\"}]}",
     "unsupported_value", "messages[0].role"},
    {CHAT, "{" M ",\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"1\"}]}]}",
     "unsupported_value", "messages[0].tool_calls"},
    {CHAT, "{" M ",\"messages\":[{\"role\":\"user\"}]}", "missing_required_parameter", "messages[0].content"},
    {CHAT, "{" M ",\"messages\":[{\"role\":\"user\",\"content\":null}]}", "missing_required_parameter",
     "messages[0].content"},
    {CHAT, "{" M ",\"messages\":[{\"role\":\"user\",\"content\":7}]}", "invalid_type", "messages[0].content"},
    {CHAT, "{" M ",\"messages\":[{\"role\":\"user\",\"content\":[]}]}", "invalid_value",
     "messages[0].content"},
    {CHAT, "{" M ",\"messages\":[{\"role\":\"user\",\"content\":[\"x\"]}]}", "invalid_type",
     "messages[0].content[0]"},
    {CHAT, "{" M ",\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}",
     "missing_required_parameter", "messages[0].content[0].type"},
    {CHAT,
     "{" M ",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
     "{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://x/y.png\"}}]}]}",
     "unsupported_value", "messages[0].content[1].type"},
    {CHAT, "{" M ",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
     "missing_required_parameter", "messages[0].content[0].text"},
    {CHAT, "{" M ",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":3}]}]}",
     "invalid_type", "messages[0].content[0].text"},
    {CHAT, "{" M ",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":7,\"text\":\"a\"}]}]}",
     "invalid_type", "messages[0].content[0].type"},
    /* sampling: types and ranges */
    {CHAT, CHATB(",\"temperature\":\"hot\""), "invalid_type", "temperature"},
    {CHAT, CHATB(",\"temperature\":2.5"), "invalid_value", "temperature"},
    {CHAT, CHATB(",\"temperature\":-0.1"), "invalid_value", "temperature"},
    {CHAT, CHATB(",\"top_p\":1.01"), "invalid_value", "top_p"},
    {CHAT, CHATB(",\"top_p\":true"), "invalid_type", "top_p"},
    {CHAT, CHATB(",\"top_k\":-1"), "invalid_value", "top_k"},
    {CHAT, CHATB(",\"top_k\":2.5"), "invalid_type", "top_k"},
    {CHAT, CHATB(",\"min_p\":1.5"), "invalid_value", "min_p"},
    {CHAT, CHATB(",\"frequency_penalty\":-2.01"), "invalid_value", "frequency_penalty"},
    {CHAT, CHATB(",\"presence_penalty\":3"), "invalid_value", "presence_penalty"},
    {CHAT, CHATB(",\"presence_penalty\":[]"), "invalid_type", "presence_penalty"},
    {CHAT, CHATB(",\"repeat_penalty\":0"), "invalid_value", "repeat_penalty"},
    {CHAT, CHATB(",\"repeat_penalty\":-1"), "invalid_value", "repeat_penalty"},
    {CHAT, CHATB(",\"repeat_penalty\":1e-300"), "invalid_value", "repeat_penalty"},
    {CHAT, CHATB(",\"seed\":\"42\""), "invalid_type", "seed"},
    {CHAT, CHATB(",\"seed\":1.5"), "invalid_type", "seed"},
    /* shape of the answer */
    {CHAT, CHATB(",\"n\":0"), "invalid_value", "n"},
    {CHAT, CHATB(",\"n\":17"), "invalid_value", "n"},
    {CHAT, CHATB(",\"n\":\"2\""), "invalid_type", "n"},
    {CHAT, CHATB(",\"max_tokens\":0"), "invalid_value", "max_tokens"},
    {CHAT, CHATB(",\"max_tokens\":1.5"), "invalid_type", "max_tokens"},
    {CHAT, CHATB(",\"max_completion_tokens\":-3"), "invalid_value", "max_completion_tokens"},
    {CHAT, CHATB(",\"max_tokens\":3000000000"), "invalid_value", "max_tokens"},
    {COMP, COMPB(",\"max_tokens\":0"), "invalid_value", "max_tokens"},
    {CHAT, CHATB(",\"stop\":5"), "invalid_type", "stop"},
    {CHAT, CHATB(",\"stop\":\"\""), "invalid_value", "stop"},
    {CHAT, CHATB(",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]"), "invalid_value", "stop"},
    {CHAT, CHATB(",\"stop\":[\"a\",1]"), "invalid_type", "stop[1]"},
    {CHAT, CHATB(",\"stop\":[\"a\",\"\"]"), "invalid_value", "stop[1]"},
    {CHAT, CHATB(",\"stream\":\"yes\""), "invalid_type", "stream"},
    {CHAT, CHATB(",\"stream\":1"), "invalid_type", "stream"},
    {CHAT, CHATB(",\"stream_options\":{\"include_usage\":true}"), "invalid_value", "stream_options"},
    {CHAT, CHATB(",\"stream\":false,\"stream_options\":{\"include_usage\":true}"), "invalid_value",
     "stream_options"},
    {CHAT, CHATB(",\"stream\":true,\"stream_options\":true"), "invalid_type", "stream_options"},
    {CHAT, CHATB(",\"stream\":true,\"stream_options\":{\"include_usage\":\"y\"}"), "invalid_type",
     "stream_options.include_usage"},
    /* logprobs */
    {CHAT, CHATB(",\"logprobs\":1"), "invalid_type", "logprobs"},
    {CHAT, CHATB(",\"logprobs\":true,\"top_logprobs\":21"), "invalid_value", "top_logprobs"},
    {CHAT, CHATB(",\"logprobs\":true,\"top_logprobs\":-1"), "invalid_value", "top_logprobs"},
    {CHAT, CHATB(",\"top_logprobs\":3"), "invalid_value", "top_logprobs"},
    {CHAT, CHATB(",\"logprobs\":false,\"top_logprobs\":3"), "invalid_value", "top_logprobs"},
    {COMP, COMPB(",\"logprobs\":true"), "invalid_type", "logprobs"},
    {COMP, COMPB(",\"logprobs\":6"), "invalid_value", "logprobs"},
    {COMP, COMPB(",\"logprobs\":-1"), "invalid_value", "logprobs"},
    {COMP, COMPB(",\"echo\":\"yes\""), "invalid_type", "echo"},
    {CHAT, CHATB(",\"user\":5"), "invalid_type", "user"},
    {CHAT, CHATB(",\"ignore_eos\":\"no\""), "invalid_type", "ignore_eos"},
    /* what this server does not do: refused, not ignored */
    {CHAT, CHATB(",\"response_format\":{\"type\":\"json_schema\"}"), "missing_required_parameter",
     "response_format.json_schema"},
    {CHAT, CHATB(",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":[]}"), "invalid_type",
     "response_format.json_schema"},
    {CHAT, CHATB(",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":1}}"),
     "invalid_type", "response_format.json_schema.name"},
    {CHAT, CHATB(",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":true}}"),
     "invalid_type", "response_format.json_schema.schema"},
    /* adapters per request */
    {CHAT, CHATB(",\"lora\":{}"), "invalid_type", "lora"},
    {CHAT, CHATB(",\"lora\":[1]"), "invalid_type", "lora[0]"},
    {CHAT, CHATB(",\"lora\":[{\"scale\":1}]"), "missing_required_parameter", "lora[0].name"},
    {CHAT, CHATB(",\"lora\":[{\"name\":\"a\"},{\"name\":5}]"), "invalid_type", "lora[1].name"},
    {CHAT, CHATB(",\"lora\":[{\"name\":\"\"}]"), "invalid_value", "lora[0].name"},
    {CHAT, CHATB(",\"lora\":[{\"id\":-1}]"), "invalid_type", "lora[0].id"},
    {CHAT, CHATB(",\"lora\":[{\"name\":\"a\",\"scale\":\"1\"}]"), "invalid_type", "lora[0].scale"},
    {CHAT, CHATB(",\"lora\":[{\"name\":\"a\",\"scale\":11}]"), "invalid_value", "lora[0].scale"},
    {COMP, COMPB(",\"lora\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"},{\"name\":\"d\"},"
                 "{\"name\":\"e\"},{\"name\":\"f\"},{\"name\":\"g\"},{\"name\":\"h\"},{\"name\":\"i\"}]"),
     "invalid_value", "lora"},
    {CHAT, CHATB(",\"response_format\":{\"type\":\"xml\"}"), "invalid_value", "response_format.type"},
    {CHAT, CHATB(",\"response_format\":\"text\""), "invalid_type", "response_format"},
    {CHAT, CHATB(",\"response_format\":{}"), "missing_required_parameter", "response_format.type"},
    {CHAT, CHATB(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]"),
     "unsupported_parameter", "tools"},
    {CHAT, CHATB(",\"tools\":{}"), "invalid_type", "tools"},
    {CHAT, CHATB(",\"functions\":[{\"name\":\"f\"}]"), "unsupported_parameter", "functions"},
    {CHAT, CHATB(",\"logit_bias\":{\"50256\":-100}"), "unsupported_parameter", "logit_bias"},
    {CHAT, CHATB(",\"logit_bias\":[]"), "invalid_type", "logit_bias"},
    {COMP, COMPB(",\"suffix\":\"end\""), "unsupported_parameter", "suffix"},
    {COMP, COMPB(",\"best_of\":3"), "unsupported_parameter", "best_of"},
    {COMP, COMPB(",\"best_of\":21"), "invalid_value", "best_of"},
    /* prompt shapes */
    {COMP, "{" M "}", "missing_required_parameter", "prompt"},
    {COMP, "{" M ",\"prompt\":5}", "invalid_type", "prompt"},
    {COMP, "{" M ",\"prompt\":{}}", "invalid_type", "prompt"},
    {COMP, "{" M ",\"prompt\":[]}", "invalid_value", "prompt"},
    {COMP, "{" M ",\"prompt\":[\"a\",2]}", "invalid_type", "prompt[1]"},
    {COMP, "{" M ",\"prompt\":[1,\"a\"]}", "invalid_type", "prompt[1]"},
    {COMP, "{" M ",\"prompt\":[1,-2]}", "invalid_value", "prompt[1]"},
    {COMP, "{" M ",\"prompt\":[1,4294967296]}", "invalid_value", "prompt[1]"},
    {COMP, "{" M ",\"prompt\":[[1],[]]}", "invalid_value", "prompt[1]"},
    {COMP, "{" M ",\"prompt\":[[1],[2,\"x\"]]}", "invalid_type", "prompt[1][1]"},
    {COMP, "{" M ",\"prompt\":[[1],\"a\"]}", "invalid_type", "prompt[1]"},
    {COMP, "{" M ",\"prompt\":[true]}", "invalid_type", "prompt[0]"},
    {COMP, "{" M ",\"prompt\":[1.5]}", "invalid_type", "prompt[0]"},
    /* embeddings */
    {EMB, "{" M "}", "missing_required_parameter", "input"},
    {EMB, "{" M ",\"input\":\"\"}", "invalid_value", "input"},
    {EMB, "{" M ",\"input\":[\"a\",\"\"]}", "invalid_value", "input[1]"},
    {EMB, "{" M ",\"input\":[]}", "invalid_value", "input"},
    {EMB, "{" M ",\"input\":3}", "invalid_type", "input"},
    {EMB, "{" M ",\"input\":\"a\",\"encoding_format\":\"hex\"}", "invalid_value", "encoding_format"},
    {EMB, "{" M ",\"input\":\"a\",\"encoding_format\":1}", "invalid_type", "encoding_format"},
    {EMB, "{" M ",\"input\":\"a\",\"dimensions\":0}", "invalid_value", "dimensions"},
    {EMB, "{" M ",\"input\":\"a\",\"user\":[]}", "invalid_type", "user"},
};

/* Every bad body gives its 400 with the documented code and param, and leaves
 * the request empty (nothing to free, nothing half-built). */
static void each_rule_refuses_its_bad_body(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct hs_gen_request r;
        struct hs_api_error e;
        bool ok = parse(c->kind, c->body, &r, &e);
        if (ok || e.status != 400 || strcmp(e.code, c->code) != 0 || strcmp(e.param, c->param) != 0 ||
            strcmp(e.type, "invalid_request_error") != 0 || e.message[0] == 0)
            print_error("case %zu: %s\n  got ok=%d status=%d type=%s code=%s param=%s msg=%s\n", i, c->body,
                        ok, e.status, e.type, e.code, e.param, e.message);
        assert_false(ok);
        assert_int_equal(e.status, 400);
        assert_string_equal(e.type, "invalid_request_error");
        assert_string_equal(e.code, c->code);
        assert_string_equal(e.param, c->param);
        assert_true(strlen(e.message) > 10);
        assert_null(r.root);
        assert_null(r.msgs);
        assert_null(r.prompts);
        assert_null(r.stop);
        assert_null(r.model);
        hs_req_free(&r); /* harmless on an emptied request */
    }
}

/* Invalid JSON says where: jansson's line and column. */
static void invalid_json_names_line_and_column(void **state)
{
    (void)state;
    struct hs_gen_request r;
    struct hs_api_error e;
    assert_false(parse(CHAT, "{\"model\":\"m\",\n \"messages\": [,]}", &r, &e));
    assert_string_equal(e.code, "invalid_json");
    assert_non_null(strstr(e.message, "line 2"));
    assert_non_null(strstr(e.message, "column"));
}

/* Messages beyond limits.max_messages are refused; 0 means no limit. */
static void max_messages_is_enforced(void **state)
{
    (void)state;
    char body[4096];
    size_t o = (size_t)snprintf(body, sizeof(body), "{\"model\":\"m\",\"messages\":[");
    for (int i = 0; i < 21; i++)
        o += (size_t)snprintf(body + o, sizeof(body) - o, "%s{\"role\":\"user\",\"content\":\"m%d\"}",
                              i ? "," : "", i);
    snprintf(body + o, sizeof(body) - o, "]}");
    struct hs_gen_request r;
    struct hs_api_error e;
    struct hs_req_limits lim = {.max_body_bytes = 1 << 20, .max_messages = 20, .max_input_tokens = 4000};
    assert_false(hs_req_parse(CHAT, body, strlen(body), &lim, &r, &e));
    assert_string_equal(e.param, "messages");
    assert_non_null(strstr(e.message, "20"));
    assert_false(hs_req_parse(CHAT, body, strlen(body), NULL, &r, &e)); /* default 20 */
    lim.max_messages = 21;
    assert_true(hs_req_parse(CHAT, body, strlen(body), &lim, &r, &e));
    assert_int_equal(r.n_msgs, 21);
    assert_string_equal(r.msgs[20].content, "m20");
    hs_req_free(&r);
    lim.max_messages = 0;
    assert_true(hs_req_parse(CHAT, body, strlen(body), &lim, &r, &e));
    hs_req_free(&r);
}

/* A minimal chat body gets the API's defaults. */
static void chat_defaults(void **state)
{
    (void)state;
    struct hs_gen_request r;
    struct hs_api_error e;
    assert_true(parse(CHAT, CHATB(""), &r, &e));
    assert_int_equal(r.kind, CHAT);
    assert_string_equal(r.model, "m");
    assert_int_equal(r.n_msgs, 1);
    assert_string_equal(r.msgs[0].role, "user");
    assert_string_equal(r.msgs[0].content, "hi");
    assert_int_equal(r.n, 1);
    assert_int_equal(r.max_tokens, -1);
    assert_true(r.sampling.temperature == 1.0f);
    assert_true(r.sampling.top_p == 1.0f);
    assert_int_equal(r.sampling.top_k, 0);
    assert_true(r.sampling.min_p == 0.0f);
    assert_true(r.sampling.repeat_penalty == 1.0f);
    assert_true(r.sampling.frequency_penalty == 0.0f);
    assert_true(r.sampling.presence_penalty == 0.0f);
    assert_false(r.seed_given);
    assert_int_equal(r.n_stop, 0);
    assert_false(r.stream);
    assert_false(r.include_usage);
    assert_false(r.logprobs);
    assert_int_equal(r.top_logprobs, 0);
    assert_false(r.ignore_eos);
    assert_null(r.user);
    assert_non_null(r.root);
    hs_req_free(&r);
}

/* Every field set: each lands where it should. */
/* Structured output and adapters: what the body asks for is carried as is
 * (the schema compact and in its own order; adapters by name or position). */
static void chat_schema_and_lora(void **state)
{
    (void)state;
    struct hs_gen_request r;
    struct hs_api_error e;
    assert_true(parse(CHAT,
                      CHATB(",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\","
                            "\"schema\":{\"type\":\"object\",\"properties\":{\"z\":{\"type\":\"string\"},"
                            "\"a\":{\"type\":\"integer\"}}}}},\"lora\":[{\"name\":\"fire\",\"scale\":0.5},"
                            "{\"id\":2},{\"id\":\"police\"}],\"temperature\":0.2"),
                      &r, &e));
    assert_true(r.json_mode);
    assert_true(r.response_format_given);
    assert_string_equal(r.json_schema,
                        "{\"type\":\"object\",\"properties\":{\"z\":{\"type\":\"string\"},\"a\":{\"type\":"
                        "\"integer\"}}}");
    assert_int_equal(r.n_loras, 3);
    assert_string_equal(r.loras[0].name, "fire");
    assert_true(r.loras[0].scale == 0.5f);
    assert_null(r.loras[1].name);
    assert_int_equal(r.loras[1].id, 2);
    assert_true(isnan(r.loras[1].scale));
    assert_string_equal(r.loras[2].name, "police");
    assert_true(r.temperature_given);
    assert_false(r.top_p_given);
    hs_req_free(&r);

    assert_true(parse(CHAT, CHATB(",\"response_format\":{\"type\":\"json_object\"}"), &r, &e));
    assert_true(r.json_mode);
    assert_null(r.json_schema);
    assert_false(r.temperature_given);
    hs_req_free(&r);
    assert_true(parse(CHAT, CHATB(",\"response_format\":{\"type\":\"text\"}"), &r, &e));
    assert_false(r.json_mode);
    assert_true(r.response_format_given);
    hs_req_free(&r);
}

static void chat_all_fields(void **state)
{
    (void)state;
    const char *body =
        "{\"model\":\"llama\",\"messages\":["
        "{\"role\":\"developer\",\"content\":\"be brief\"},"
        "{\"role\":\"system\",\"content\":\"sys\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"part "
        "one\"},{\"type\":\"text\",\"text\":\"two\"}]},"
        "{\"role\":\"assistant\",\"content\":\"ok\",\"tool_calls\":[]},"
        "{\"role\":\"user\",\"content\":\"\\u00e9t\\u00e9\",\"name\":\"bob\"}],"
        "\"temperature\":0.5,\"top_p\":0.9,\"top_k\":40,\"min_p\":0.05,\"frequency_penalty\":-1.5,"
        "\"presence_penalty\":2,\"repeat_penalty\":1.1,\"repeat_last_n\":-1,\"seed\":-7,\"n\":16,"
        "\"max_tokens\":100,\"max_completion_tokens\":50,\"stop\":[\"\\n\\n\",\"END\"],\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true},\"logprobs\":true,\"top_logprobs\":20,\"user\":\"u-1\","
        "\"response_format\":{\"type\":\"text\"},\"ignore_eos\":true,\"tools\":[],\"logit_bias\":{},"
        "\"metadata\":{\"x\":1},\"store\":false,\"unknown_extra\":[1,2,3]}";
    struct hs_gen_request r;
    struct hs_api_error e;
    assert_true(parse(CHAT, body, &r, &e));
    assert_string_equal(r.model, "llama");
    assert_int_equal(r.n_msgs, 5);
    assert_string_equal(r.msgs[0].role, "system"); /* developer = system for the templates */
    assert_string_equal(r.msgs[0].content, "be brief");
    assert_string_equal(r.msgs[1].role, "system");
    assert_string_equal(r.msgs[2].role, "user");
    assert_string_equal(r.msgs[2].content, "part one\ntwo");
    assert_string_equal(r.msgs[3].role, "assistant");
    assert_string_equal(r.msgs[4].content, "\xc3\xa9t\xc3\xa9");
    assert_true(r.sampling.temperature == 0.5f);
    assert_true(r.sampling.top_p == 0.9f);
    assert_int_equal(r.sampling.top_k, 40);
    assert_true(r.sampling.min_p == 0.05f);
    assert_true(r.sampling.frequency_penalty == -1.5f);
    assert_true(r.sampling.presence_penalty == 2.0f);
    assert_true(r.sampling.repeat_penalty == 1.1f);
    assert_int_equal(r.sampling.repeat_last_n, -1);
    assert_true(r.seed_given);
    assert_true(r.sampling.seed == (uint64_t)(int64_t)-7);
    assert_int_equal(r.n, 16);
    assert_int_equal(r.max_tokens, 50); /* max_completion_tokens wins */
    assert_int_equal(r.n_stop, 2);
    assert_string_equal(r.stop[0], "\n\n");
    assert_string_equal(r.stop[1], "END");
    assert_true(r.stream);
    assert_true(r.include_usage);
    assert_true(r.logprobs);
    assert_int_equal(r.top_logprobs, 20);
    assert_string_equal(r.user, "u-1");
    assert_true(r.ignore_eos);
    /* the request owns its strings: dropping the JSON keeps them valid */
    json_object_clear(r.root);
    assert_string_equal(r.model, "llama");
    assert_string_equal(r.msgs[4].content, "\xc3\xa9t\xc3\xa9");
    assert_string_equal(r.stop[1], "END");
    assert_string_equal(r.user, "u-1");
    hs_req_free(&r);
}

/* null is "not given" (the spec marks these fields nullable); integral
 * floats count as integers; boundaries are inclusive. */
static void nulls_boundaries_and_integral_floats(void **state)
{
    (void)state;
    struct hs_gen_request r;
    struct hs_api_error e;
    assert_true(
        parse(CHAT,
              CHATB(",\"temperature\":null,\"top_p\":null,\"n\":null,\"max_tokens\":null,\"stop\":null,"
                    "\"stream\":null,\"stream_options\":null,\"logprobs\":null,\"top_logprobs\":null,"
                    "\"seed\":null,\"user\":null,\"response_format\":null,\"tools\":null"),
              &r, &e));
    assert_true(r.sampling.temperature == 1.0f);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.max_tokens, -1);
    assert_false(r.seed_given);
    hs_req_free(&r);

    assert_true(
        parse(CHAT,
              CHATB(",\"temperature\":0,\"top_p\":0,\"frequency_penalty\":-2,\"presence_penalty\":-2,"
                    "\"min_p\":1,\"n\":16.0,\"max_tokens\":1,\"top_k\":0,\"seed\":9223372036854775807"),
              &r, &e));
    assert_true(r.sampling.temperature == 0.0f);
    assert_true(r.sampling.top_p == 0.0f);
    assert_int_equal(r.n, 16);
    assert_int_equal(r.max_tokens, 1);
    assert_true(r.sampling.seed == (uint64_t)INT64_MAX);
    hs_req_free(&r);

    assert_true(parse(CHAT, CHATB(",\"temperature\":2,\"top_p\":1,\"stop\":\"###\",\"stop\":[]"), &r, &e));
    assert_true(r.sampling.temperature == 2.0f);
    assert_int_equal(r.n_stop, 0); /* the last duplicate key wins (jansson), an empty list is no stops */
    hs_req_free(&r);

    assert_true(parse(CHAT, CHATB(",\"stop\":\"###\",\"logprobs\":false,\"top_logprobs\":0"), &r, &e));
    assert_int_equal(r.n_stop, 1);
    assert_string_equal(r.stop[0], "###");
    hs_req_free(&r);
}

/* Completions: the four prompt shapes, logprobs as a count, echo. */
static void completion_prompt_shapes(void **state)
{
    (void)state;
    struct hs_gen_request r;
    struct hs_api_error e;
    assert_true(parse(COMP,
                      "{\"model\":\"m\",\"prompt\":\"Once\",\"logprobs\":3,\"echo\":true,\"max_tokens\":8,"
                      "\"suffix\":\"\",\"best_of\":1}",
                      &r, &e));
    assert_int_equal(r.kind, COMP);
    assert_int_equal(r.n_prompts, 1);
    assert_string_equal(r.prompts[0], "Once");
    assert_null(r.prompt_tokens[0]);
    assert_true(r.logprobs);
    assert_int_equal(r.top_logprobs, 3);
    assert_true(r.echo);
    assert_int_equal(r.max_tokens, 8);
    assert_null(r.msgs);
    hs_req_free(&r);

    assert_true(parse(COMP, "{\"model\":\"m\",\"prompt\":[\"a\",\"\",\"c\"],\"logprobs\":0}", &r, &e));
    assert_int_equal(r.n_prompts, 3);
    assert_string_equal(r.prompts[1], ""); /* completions accept an empty prompt (the spec's default) */
    assert_string_equal(r.prompts[2], "c");
    assert_true(r.logprobs);
    assert_int_equal(r.top_logprobs, 0);
    hs_req_free(&r);

    assert_true(parse(COMP, "{\"model\":\"m\",\"prompt\":[1,2,2147483647]}", &r, &e));
    assert_int_equal(r.n_prompts, 1);
    assert_null(r.prompts[0]);
    assert_int_equal(r.prompt_n_tokens[0], 3);
    assert_int_equal(r.prompt_tokens[0][0], 1);
    assert_int_equal(r.prompt_tokens[0][2], 2147483647);
    assert_false(r.logprobs);
    hs_req_free(&r);

    assert_true(parse(COMP, "{\"model\":\"m\",\"prompt\":[[5],[6,7]],\"n\":2,\"best_of\":2}", &r, &e));
    assert_int_equal(r.n_prompts, 2);
    assert_int_equal(r.prompt_n_tokens[0], 1);
    assert_int_equal(r.prompt_n_tokens[1], 2);
    assert_int_equal(r.prompt_tokens[1][1], 7);
    assert_int_equal(r.n, 2);
    hs_req_free(&r);

    /* max_completion_tokens is a chat field: completions ignore it as unknown */
    assert_true(parse(COMP, "{\"model\":\"m\",\"prompt\":\"x\",\"max_completion_tokens\":\"junk\"}", &r, &e));
    assert_int_equal(r.max_tokens, -1);
    hs_req_free(&r);
}

static void embedding_inputs(void **state)
{
    (void)state;
    struct hs_gen_request r;
    struct hs_api_error e;
    assert_true(parse(EMB, "{\"model\":\"e\",\"input\":\"hello\"}", &r, &e));
    assert_int_equal(r.kind, EMB);
    assert_int_equal(r.n_prompts, 1);
    assert_string_equal(r.prompts[0], "hello");
    assert_string_equal(r.encoding_format, "float");
    assert_int_equal(r.dimensions, 0);
    hs_req_free(&r);

    assert_true(
        parse(EMB,
              "{\"model\":\"e\",\"input\":[\"a\",\"b\"],\"encoding_format\":\"base64\",\"user\":\"x\","
              "\"dimensions\":64}",
              &r, &e));
    assert_int_equal(r.n_prompts, 2);
    assert_string_equal(r.prompts[1], "b");
    assert_string_equal(r.encoding_format, "base64");
    assert_string_equal(r.user, "x");
    assert_int_equal(r.dimensions, 64);
    hs_req_free(&r);

    assert_true(parse(EMB, "{\"model\":\"e\",\"input\":[[1,2],[3]]}", &r, &e));
    assert_int_equal(r.n_prompts, 2);
    assert_int_equal(r.prompt_tokens[0][1], 2);
    hs_req_free(&r);

    /* at most 2048 inputs (OpenAI's limit) */
    char *body = malloc(2049 * 4 + 64);
    size_t o = (size_t)snprintf(body, 64, "{\"model\":\"e\",\"input\":[");
    for (int i = 0; i < 2049; i++)
        o += (size_t)snprintf(body + o, 8, "%s\"a\"", i ? "," : "");
    memcpy(body + o, "]}", 3);
    assert_false(parse(EMB, body, &r, &e));
    assert_string_equal(e.param, "input");
    free(body);
}

/* Bodies are bytes, not C strings: an embedded NUL is a JSON error, bytes
 * after the length are never read. */
static void length_is_respected(void **state)
{
    (void)state;
    struct hs_gen_request r;
    struct hs_api_error e;
    const char body[] = "{\"model\":\"m\",\"prompt\":\"x\"}GARBAGE";
    assert_true(hs_req_parse(COMP, body, strlen(body) - 7, NULL, &r, &e));
    hs_req_free(&r);
    assert_false(hs_req_parse(COMP, body, strlen(body), NULL, &r, &e));
    assert_string_equal(e.code, "invalid_json");
    const char nul[] = "{\"model\":\"m\",\0\"prompt\":\"x\"}";
    assert_false(hs_req_parse(COMP, nul, sizeof(nul) - 1, NULL, &r, &e));
    /* \u0000 inside a string would cut C strings short: jansson refuses it */
    const char *esc = "{\"model\":\"m\",\"prompt\":\"a\\u0000b\"}";
    assert_false(hs_req_parse(COMP, esc, strlen(esc), NULL, &r, &e));
    assert_int_equal(e.status, 400);
}

static void token_limit_names_the_field(void **state)
{
    (void)state;
    struct hs_req_limits lim = {.max_body_bytes = 1 << 20, .max_messages = 20, .max_input_tokens = 100};
    struct hs_gen_request r;
    struct hs_api_error e;
    const enum hs_req_kind kinds[3] = {CHAT, COMP, EMB};
    const char *params[3] = {"messages", "prompt", "input"};
    const char *bodies[3] = {CHATB(""), COMPB(""), "{\"model\":\"m\",\"input\":\"x\"}"};
    for (int k = 0; k < 3; k++) {
        assert_true(parse(kinds[k], bodies[k], &r, &e));
        assert_true(hs_req_check_tokens(&r, 100, &lim, &e));
        assert_false(hs_req_check_tokens(&r, 101, &lim, &e));
        assert_int_equal(e.status, 400);
        assert_string_equal(e.code, "context_length_exceeded");
        assert_string_equal(e.param, params[k]);
        assert_non_null(strstr(e.message, "101"));
        assert_non_null(strstr(e.message, "100"));
        assert_true(hs_req_check_tokens(&r, 4000, NULL, &e)); /* default 4000 */
        assert_false(hs_req_check_tokens(&r, 4001, NULL, &e));
        hs_req_free(&r);
    }
}

/* A long message is cut on a character boundary, never inside one. */
static void error_messages_stay_valid_utf8(void **state)
{
    (void)state;
    struct hs_api_error e;
    char big[1000];
    for (size_t i = 0; i + 2 < sizeof(big); i += 2)
        memcpy(big + i, "\xc3\xa9", 2);
    big[sizeof(big) - 2] = 0;
    for (int shift = 0; shift < 4; shift++) {
        hs_api_error_set(&e, 400, "invalid_request_error", NULL, NULL, "%.*s%s", shift, "xxx", big);
        size_t n = strlen(e.message);
        assert_true(n > 300 && n < sizeof(e.message));
        /* count continuation bytes after the last lead byte: a whole é */
        size_t i = n;
        while (i > 0 && ((unsigned char)e.message[i - 1] & 0xC0) == 0x80)
            i--;
        assert_true((unsigned char)e.message[i - 1] == 0xC3 ? n - i == 1 : n - i == 0);
    }
    assert_false(hs_api_error_set(&e, 429, "rate_limit_error", "rate_limit_exceeded", "", "slow down"));
    assert_int_equal(e.status, 429);
    assert_string_equal(e.param, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_rule_refuses_its_bad_body),
        cmocka_unit_test(invalid_json_names_line_and_column),
        cmocka_unit_test(max_messages_is_enforced),
        cmocka_unit_test(chat_defaults),
        cmocka_unit_test(chat_all_fields),
        cmocka_unit_test(chat_schema_and_lora),
        cmocka_unit_test(nulls_boundaries_and_integral_floats),
        cmocka_unit_test(completion_prompt_shapes),
        cmocka_unit_test(embedding_inputs),
        cmocka_unit_test(length_is_respected),
        cmocka_unit_test(token_limit_names_the_field),
        cmocka_unit_test(error_messages_stay_valid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
