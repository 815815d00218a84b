/* The "messages" array of a chat completion request.
 *
 * Roles: system, user, assistant, and developer (OpenAI's newer name for the
 * system role; the chat templates know it as "system"). tool and function
 * messages, and assistant messages carrying tool_calls, are refused with a
 * clear 400: this server does not do tool calling, and silently dropping
 * them would change the conversation the model sees.
 *
 * Content: a string, or an array of {"type":"text","text":...} parts joined
 * with "\n" (as vLLM joins them). Other part types (image_url, input_audio,
 * file, refusal) are refused naming messages[i].content[j].type. */
#include "server/request_impl.h"

#include "base/buf.h"
#include "base/mem.h"

#include <stdio.h>
#include <string.h>

static bool parse_content(struct hs_api_error *e, const json_t *content, int i, char **out)
{
    char param[64];
    snprintf(param, sizeof(param), "messages[%d].content", i);
    if (json_is_string(content)) {
        *out = hs_strndup(json_string_value(content), json_string_length(content));
        if (!*out)
            return hs_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return true;
    }
    if (!json_is_array(content))
        return hs_req_bad_type(e, param, "a string or an array of content parts", content);
    if (json_array_size(content) == 0)
        return hs_req_bad_value(e, param, "'%s' must be a string or a non-empty array of content parts",
                                param);

    hs_buf text = {0};
    size_t j;
    const json_t *part;
    json_array_foreach(content, j, part)
    {
        char pp[64];
        snprintf(pp, sizeof(pp), "messages[%d].content[%zu]", i, j);
        if (!json_is_object(part)) {
            hs_buf_free(&text);
            return hs_req_bad_type(e, pp, "an object", part);
        }
        char tp[80];
        snprintf(tp, sizeof(tp), "%s.type", pp);
        const json_t *type = json_object_get(part, "type");
        if (!type || json_is_null(type)) {
            hs_buf_free(&text);
            return hs_req_missing(e, tp);
        }
        if (!json_is_string(type)) {
            hs_buf_free(&text);
            return hs_req_bad_type(e, tp, "a string", type);
        }
        if (strcmp(json_string_value(type), "text") != 0) {
            hs_buf_free(&text);
            return hs_req_unsupported(e, tp,
                                      "Content part type '%.64s' in %s is not supported: this server accepts "
                                      "text parts only ({\"type\": \"text\", \"text\": ...})",
                                      json_string_value(type), pp);
        }
        char xp[80];
        snprintf(xp, sizeof(xp), "%s.text", pp);
        const json_t *t = json_object_get(part, "text");
        if (!t || json_is_null(t)) {
            hs_buf_free(&text);
            return hs_req_missing(e, xp);
        }
        if (!json_is_string(t)) {
            hs_buf_free(&text);
            return hs_req_bad_type(e, xp, "a string", t);
        }
        if ((j > 0 && hs_buf_putc(&text, '\n') != 0) ||
            hs_buf_append(&text, json_string_value(t), json_string_length(t)) != 0) {
            hs_buf_free(&text);
            return hs_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        }
    }
    if (!text.data) { /* every part was "" */
        *out = hs_strdup("");
    } else {
        *out = hs_buf_steal(&text);
    }
    if (!*out)
        return hs_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return true;
}

/* The role as the chat templates name it, or NULL with e filled. */
static const char *parse_role(struct hs_api_error *e, const json_t *msg, int i)
{
    char param[64];
    snprintf(param, sizeof(param), "messages[%d].role", i);
    const json_t *role = json_object_get(msg, "role");
    if (!role || json_is_null(role)) {
        hs_req_missing(e, param);
        return NULL;
    }
    if (!json_is_string(role)) {
        hs_req_bad_type(e, param, "a string", role);
        return NULL;
    }
    const char *s = json_string_value(role);
    if (strcmp(s, "system") == 0 || strcmp(s, "developer") == 0)
        return "system";
    if (strcmp(s, "user") == 0)
        return "user";
    if (strcmp(s, "assistant") == 0)
        return "assistant";
    if (strcmp(s, "tool") == 0 || strcmp(s, "function") == 0) {
        hs_req_unsupported(
            e, param, "Role '%s' in %s is not supported: this server does not do tool or function calling", s,
            param);
        return NULL;
    }
    hs_req_bad_value(e, param,
                     "Invalid value for '%s': '%.64s'. Supported values are: 'system', 'developer', 'user' "
                     "and 'assistant'.",
                     param, s);
    return NULL;
}

static bool has_items(const json_t *v)
{
    return (json_is_array(v) && json_array_size(v) > 0) || json_is_object(v);
}

bool hs_req_parse_messages(struct hs_gen_request *r, const json_t *msgs, int max_messages,
                           struct hs_api_error *e)
{
    if (!msgs || json_is_null(msgs))
        return hs_req_missing(e, "messages");
    if (!json_is_array(msgs))
        return hs_req_bad_type(e, "messages", "an array", msgs);
    size_t n = json_array_size(msgs);
    if (n == 0)
        return hs_req_bad_value(e, "messages", "'messages' must contain at least one message");
    if (max_messages > 0 && n > (size_t)max_messages)
        return hs_req_bad_value(e, "messages", "Too many messages: %zu (this server accepts at most %d)", n,
                                max_messages);

    r->msgs = hs_calloc(n, sizeof(*r->msgs));
    if (!r->msgs)
        return hs_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t k = 0; k < n; k++) {
        int i = (int)k;
        const json_t *msg = json_array_get(msgs, k);
        if (!json_is_object(msg)) {
            char param[64];
            snprintf(param, sizeof(param), "messages[%d]", i);
            return hs_req_bad_type(e, param, "an object", msg);
        }
        const char *role = parse_role(e, msg, i);
        if (!role)
            return false;
        if (strcmp(role, "assistant") == 0 && (has_items(json_object_get(msg, "tool_calls")) ||
                                               has_items(json_object_get(msg, "function_call")))) {
            char param[64];
            snprintf(param, sizeof(param), "messages[%d].tool_calls", i);
            return hs_req_unsupported(e, param,
                                      "Assistant tool calls in %s are not supported: this server does "
                                      "not do tool or function calling",
                                      param);
        }
        const json_t *content = json_object_get(msg, "content");
        if (!content || json_is_null(content)) {
            char param[64];
            snprintf(param, sizeof(param), "messages[%d].content", i);
            return hs_req_missing(e, param);
        }
        char *text = NULL;
        if (!parse_content(e, content, i, &text))
            return false;
        r->msgs[k].role = role;
        r->msgs[k].content = text;
        r->n_msgs = i + 1; /* so that hs_req_free frees exactly what was filled */
    }
    return true;
}
