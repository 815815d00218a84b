/* Expert agents as plain data: initialisation, copying, freeing, and the
 * user message a scenario becomes. */
#include "engine/agent.h"

#include "base/mem.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void hs_agent_init(struct hs_agent *a)
{
    memset(a, 0, sizeof(*a));
    a->temperature = NAN;
    a->top_p = NAN;
    a->min_p = NAN;
    a->top_k = -1;
    a->max_tokens = -1;
}

void hs_agent_free(struct hs_agent *a)
{
    if (!a)
        return;
    hs_free(a->id);
    hs_free(a->name);
    hs_free(a->role);
    hs_free(a->expertise);
    hs_free(a->system_prompt);
    hs_free(a->model);
    for (int i = 0; i < a->n_loras; i++)
        hs_free(a->loras[i].adapter);
    hs_free(a->loras);
    hs_free(a->schema);
    hs_free(a->file);
    hs_agent_init(a);
}

/* A copy of an optional string: false only when the allocation failed. */
static bool dup_opt(char **dst, const char *src)
{
    *dst = src ? hs_strdup(src) : NULL;
    return !src || *dst;
}

int hs_agent_copy(struct hs_agent *dst, const struct hs_agent *src)
{
    /* the numbers first; every pointer NULL until its own copy is made, so
       that a failure part-way frees only copies */
    hs_agent_init(dst);
    dst->temperature = src->temperature;
    dst->top_p = src->top_p;
    dst->min_p = src->min_p;
    dst->top_k = src->top_k;
    dst->max_tokens = src->max_tokens;
    dst->line = src->line;
    bool ok = dup_opt(&dst->id, src->id) && dup_opt(&dst->name, src->name) && dup_opt(&dst->role, src->role) &&
              dup_opt(&dst->expertise, src->expertise) && dup_opt(&dst->system_prompt, src->system_prompt) &&
              dup_opt(&dst->model, src->model) && dup_opt(&dst->schema, src->schema) &&
              dup_opt(&dst->file, src->file);
    if (ok && src->n_loras > 0) {
        dst->loras = hs_calloc((size_t)src->n_loras, sizeof(*dst->loras));
        ok = dst->loras != NULL;
        for (int i = 0; ok && i < src->n_loras; i++) {
            dst->loras[i].scale = src->loras[i].scale;
            ok = dup_opt(&dst->loras[i].adapter, src->loras[i].adapter);
            dst->n_loras = i + 1;
        }
    }
    if (!ok) {
        hs_agent_free(dst);
        return HS_ENOMEM;
    }
    return HS_OK;
}

/* ---------------------------------------------------------------------------
 * the scenario as a user message */

/* "affected_population" -> "Affected population": a field's name as a label. */
static int put_label(hs_buf *out, const char *key)
{
    size_t start = out->len;
    int rc = hs_buf_puts(out, key);
    for (size_t i = start; !rc && i < out->len; i++) {
        if (out->data[i] == '_')
            out->data[i] = ' ';
        else if (i == start && out->data[i] >= 'a' && out->data[i] <= 'z')
            out->data[i] = (char)(out->data[i] - 'a' + 'A');
    }
    return rc;
}

/* "Label: text" for a string or another scalar, "Label:" and the value as
 * JSON indented by two spaces below it for an object or an array. A long or
 * multi-line string (a description) gets its own paragraph. */
static int put_field(hs_buf *out, const char *key, const json_t *v)
{
    int rc = out->len ? hs_buf_putc(out, '\n') : HS_OK;
    if (!rc)
        rc = put_label(out, key);
    if (rc)
        return rc;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        bool paragraph = strchr(s, '\n') || json_string_length(v) > 200;
        if (paragraph)
            rc = hs_buf_puts(out, ":\n");
        else
            rc = hs_buf_puts(out, ": ");
        if (!rc)
            rc = hs_buf_append(out, s, json_string_length(v));
        if (!rc && paragraph)
            rc = hs_buf_putc(out, '\n');
        return rc;
    }
    bool nested = json_is_object(v) || json_is_array(v);
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_PRESERVE_ORDER | (nested ? JSON_INDENT(2) : 0));
    if (!text)
        return HS_ENOMEM;
    if (!nested) {
        rc = hs_buf_printf(out, ": %s", text);
    } else {
        rc = hs_buf_putc(out, ':');
        for (const char *p = text; !rc && *p;) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            rc = hs_buf_puts(out, "\n  ");
            if (!rc)
                rc = hs_buf_append(out, p, n);
            p += n + (nl ? 1 : 0);
        }
    }
    free(text); /* json_dumps: the C heap */
    return rc;
}

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

int hs_agent_scenario_text(hs_buf *out, const char *scenario, size_t len, hs_err *err)
{
    if (!out || (!scenario && len))
        return hs_err_set(err, HS_EINVAL, "hs_agent_scenario_text: out and scenario are required");
    if (!scenario || blank(scenario, len))
        return hs_err_set(err, HS_EINVAL, "the scenario is empty");
    json_t *root = json_loadb(scenario, len, JSON_PRESERVE_ORDER, NULL);
    if (!json_is_object(root)) {
        /* Plain text, or JSON that is not an object: the text as written. */
        json_decref(root);
        return hs_buf_append(out, scenario, len) ? hs_err_set(err, HS_ENOMEM, "out of memory") : HS_OK;
    }
    if (json_object_size(root) == 0) {
        json_decref(root);
        return hs_err_set(err, HS_EINVAL, "the scenario is an empty JSON object");
    }
    /* The fields a reader looks for first, then the rest in the file's order. */
    static const char *const first[] = {"title", "location", "time", "description"};
    enum { N_FIRST = sizeof first / sizeof first[0] };
    hs_buf text = {0};
    int rc = HS_OK;
    for (int i = 0; !rc && i < N_FIRST; i++) {
        const json_t *v = json_object_get(root, first[i]);
        if (v && !json_is_null(v))
            rc = put_field(&text, first[i], v);
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        bool done = false;
        for (int i = 0; i < N_FIRST; i++)
            done |= !strcmp(key, first[i]);
        if (!rc && !done && !json_is_null(v))
            rc = put_field(&text, key, v);
    }
    json_decref(root);
    if (!rc)
        rc = hs_buf_append(out, text.data ? text.data : "", text.len);
    hs_buf_free(&text);
    return rc ? hs_err_set(err, HS_ENOMEM, "out of memory") : HS_OK;
}
