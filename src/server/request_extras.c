/* The request fields issue 5 added: "response_format" (structured output by
 * constrained sampling) and "lora" (adapters per request). The schema is
 * only carried here as text; compiling it (and refusing what the subset does
 * not cover) is the engine's, at submit. */
#include "base/mem.h"
#include "server/request_impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_SCHEMA_BYTES (64 * 1024)

bool hs_req_parse_response_format(struct hs_gen_request *r, const json_t *rf, struct hs_api_error *e)
{
    if (!json_is_object(rf))
        return hs_req_bad_type(e, "response_format", "an object", rf);
    r->response_format_given = true;
    const json_t *t = json_object_get(rf, "type");
    if (!t || json_is_null(t))
        return hs_req_missing(e, "response_format.type");
    if (!json_is_string(t))
        return hs_req_bad_type(e, "response_format.type", "a string", t);
    const char *ts = json_string_value(t);
    if (!strcmp(ts, "text"))
        return true;
    if (!strcmp(ts, "json_object")) {
        r->json_mode = true;
        return true;
    }
    if (strcmp(ts, "json_schema"))
        return hs_req_bad_value(e, "response_format.type",
                                "Invalid value for 'response_format.type': '%.64s'. Supported values are: "
                                "'text', 'json_object' and 'json_schema'.",
                                ts);
    const json_t *js = json_object_get(rf, "json_schema");
    if (!js || json_is_null(js))
        return hs_req_missing(e, "response_format.json_schema");
    if (!json_is_object(js))
        return hs_req_bad_type(e, "response_format.json_schema", "an object", js);
    const json_t *name = json_object_get(js, "name");
    if (name && !json_is_null(name) && !json_is_string(name))
        return hs_req_bad_type(e, "response_format.json_schema.name", "a string", name);
    const json_t *schema = json_object_get(js, "schema");
    r->json_mode = true;
    if (!schema || json_is_null(schema))
        return true; /* OpenAI allows it: any JSON object */
    if (!json_is_object(schema))
        return hs_req_bad_type(e, "response_format.json_schema.schema", "an object", schema);
    r->json_schema = json_dumps(schema, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!r->json_schema)
        return hs_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    if (strlen(r->json_schema) > MAX_SCHEMA_BYTES)
        return hs_req_bad_value(e, "response_format.json_schema.schema",
                                "the schema is larger than %d bytes", MAX_SCHEMA_BYTES);
    return true;
}

bool hs_req_parse_lora(struct hs_gen_request *r, const json_t *v, struct hs_api_error *e)
{
    if (!json_is_array(v))
        return hs_req_bad_type(e, "lora", "an array", v);
    size_t n = json_array_size(v);
    if (n == 0)
        return true;
    if (n > HS_REQ_MAX_LORAS)
        return hs_req_bad_value(e, "lora", "at most %d adapters per request, got %zu", HS_REQ_MAX_LORAS, n);
    r->loras = hs_calloc(n, sizeof *r->loras);
    if (!r->loras)
        return hs_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    char param[48];
    for (size_t i = 0; i < n; i++) {
        const json_t *it = json_array_get(v, i);
        struct hs_req_lora *l = &r->loras[i];
        l->id = -1;
        l->scale = NAN;
        r->n_loras = (int)i + 1;
        snprintf(param, sizeof param, "lora[%zu]", i);
        if (!json_is_object(it))
            return hs_req_bad_type(e, param, "an object", it);
        const json_t *nm = json_object_get(it, "name");
        const json_t *id = json_object_get(it, "id");
        if (nm && !json_is_null(nm)) {
            snprintf(param, sizeof param, "lora[%zu].name", i);
            if (!json_is_string(nm))
                return hs_req_bad_type(e, param, "a string", nm);
            if (json_string_length(nm) == 0 || strlen(json_string_value(nm)) != json_string_length(nm))
                return hs_req_bad_value(e, param, "the adapter name must be a non-empty string");
            l->name = hs_strdup(json_string_value(nm));
            if (!l->name)
                return hs_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        } else if (id && !json_is_null(id)) {
            snprintf(param, sizeof param, "lora[%zu].id", i);
            if (json_is_string(id)) { /* some clients send the name as "id" */
                if (json_string_length(id) == 0 || strlen(json_string_value(id)) != json_string_length(id))
                    return hs_req_bad_value(e, param, "the adapter id must be a non-empty string or a number");
                l->name = hs_strdup(json_string_value(id));
                if (!l->name)
                    return hs_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
            } else if (json_is_integer(id) && json_integer_value(id) >= 0 && json_integer_value(id) < 1 << 20) {
                l->id = (int)json_integer_value(id);
            } else {
                return hs_req_bad_type(e, param, "an adapter name or a non-negative integer", id);
            }
        } else {
            snprintf(param, sizeof param, "lora[%zu].name", i);
            return hs_req_missing(e, param);
        }
        const json_t *sc = json_object_get(it, "scale");
        if (sc && !json_is_null(sc)) {
            snprintf(param, sizeof param, "lora[%zu].scale", i);
            if (!json_is_number(sc))
                return hs_req_bad_type(e, param, "a number", sc);
            double x = json_number_value(sc);
            if (!isfinite(x) || x < -10 || x > 10)
                return hs_req_bad_value(e, param, "Invalid '%s': expected a number in [-10, 10].", param);
            l->scale = (float)x;
        }
    }
    return true;
}
