/* The validator: a jansson parse and a walk of the compiled schema, apart
 * from the automaton, so tests (and clients) can check what generation made.
 * It checks the schema's own limits (minLength, maxItems, ...), not the caps
 * that generation adds, and accepts undeclared properties unless
 * additionalProperties is false. Strings are measured in code points as
 * JSON Schema says; an integer may be written as a real with no fraction
 * (1.0). Duplicate keys are accepted (the last wins, as in jansson and most
 * parsers). */
#include "model/json_impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct vpath {
    char buf[256];
    size_t len;
};

static size_t vpath_key(struct vpath *p, const char *key)
{
    const size_t old = p->len;
    if (p->len < sizeof p->buf - 1) {
        const int w = snprintf(p->buf + p->len, sizeof p->buf - p->len, ".%s", key);
        if (w > 0)
            p->len += (size_t)w < sizeof p->buf - p->len ? (size_t)w : sizeof p->buf - p->len - 1;
    }
    return old;
}

static size_t vpath_index(struct vpath *p, size_t i)
{
    const size_t old = p->len;
    if (p->len < sizeof p->buf - 1) {
        const int w = snprintf(p->buf + p->len, sizeof p->buf - p->len, "[%zu]", i);
        if (w > 0)
            p->len += (size_t)w < sizeof p->buf - p->len ? (size_t)w : sizeof p->buf - p->len - 1;
    }
    return old;
}

static void vpath_pop(struct vpath *p, size_t old)
{
    p->len = old;
    p->buf[old] = 0;
}

static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((uint8_t)s[i] & 0xC0) != 0x80;
    return c;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

static int check(const hs_jschema *s, int node, const json_t *v, struct vpath *p, hs_err *err);

static int check_object(const hs_jschema *s, const struct hs_jnode *n, const json_t *v, struct vpath *p,
                        hs_err *err)
{
    if (!json_is_object(v))
        return hs_err_set(err, HS_EINVAL, "%s: expected an object, got %s", p->buf, type_name(v));
    for (int i = 0; i < n->n_props; i++) {
        const struct hs_jprop *pr = &n->props[i];
        const json_t *x = json_object_get(v, pr->name);
        if (!x) {
            if (pr->required)
                return hs_err_set(err, HS_EINVAL, "%s: missing required property \"%s\"", p->buf, pr->name);
            continue;
        }
        const size_t old = vpath_key(p, pr->name);
        const int rc = check(s, pr->node, x, p, err);
        if (rc)
            return rc;
        vpath_pop(p, old);
    }
    const char *key;
    const json_t *x;
    json_object_foreach((json_t *)v, key, x)
    {
        bool declared = false;
        for (int i = 0; i < n->n_props && !declared; i++)
            declared = !strcmp(n->props[i].name, key);
        if (declared)
            continue;
        if (n->addl < 0)
            return hs_err_set(err, HS_EINVAL, "%s: property \"%s\" is not allowed", p->buf, key);
        const size_t old = vpath_key(p, key);
        const int rc = check(s, n->addl, x, p, err);
        if (rc)
            return rc;
        vpath_pop(p, old);
    }
    return HS_OK;
}

static int check_array(const hs_jschema *s, const struct hs_jnode *n, const json_t *v, struct vpath *p,
                       hs_err *err)
{
    if (!json_is_array(v))
        return hs_err_set(err, HS_EINVAL, "%s: expected an array, got %s", p->buf, type_name(v));
    const size_t k = json_array_size(v);
    if (n->min_n >= 0 && k < (size_t)n->min_n)
        return hs_err_set(err, HS_EINVAL, "%s: %zu items, fewer than minItems %lld", p->buf, k,
                          (long long)n->min_n);
    if (n->max_n >= 0 && k > (size_t)n->max_n)
        return hs_err_set(err, HS_EINVAL, "%s: %zu items, more than maxItems %lld", p->buf, k,
                          (long long)n->max_n);
    size_t i;
    const json_t *x;
    json_array_foreach(v, i, x)
    {
        const size_t old = vpath_index(p, i);
        const int rc = check(s, n->items, x, p, err);
        if (rc)
            return rc;
        vpath_pop(p, old);
    }
    return HS_OK;
}

static int check(const hs_jschema *s, int node, const json_t *v, struct vpath *p, hs_err *err)
{
    const struct hs_jnode *n = &s->nodes[node];
    switch (n->kind) {
    case HS_JK_ANY:
        return HS_OK;
    case HS_JK_OBJECT:
        return check_object(s, n, v, p, err);
    case HS_JK_ARRAY:
        return check_array(s, n, v, p, err);
    case HS_JK_STRING: {
        if (!json_is_string(v))
            return hs_err_set(err, HS_EINVAL, "%s: expected a string, got %s", p->buf, type_name(v));
        const size_t c = utf8_chars(json_string_value(v), json_string_length(v));
        if (n->min_n >= 0 && c < (size_t)n->min_n)
            return hs_err_set(err, HS_EINVAL, "%s: %zu characters, fewer than minLength %lld", p->buf, c,
                              (long long)n->min_n);
        if (n->max_n >= 0 && c > (size_t)n->max_n)
            return hs_err_set(err, HS_EINVAL, "%s: %zu characters, more than maxLength %lld", p->buf, c,
                              (long long)n->max_n);
        return HS_OK;
    }
    case HS_JK_NUMBER:
        if (!json_is_number(v))
            return hs_err_set(err, HS_EINVAL, "%s: expected a number, got %s", p->buf, type_name(v));
        return HS_OK;
    case HS_JK_INTEGER:
        if (json_is_integer(v))
            return HS_OK;
        if (json_is_real(v) && isfinite(json_real_value(v)) &&
            floor(json_real_value(v)) == json_real_value(v))
            return HS_OK;
        return hs_err_set(err, HS_EINVAL, "%s: expected an integer, got %s", p->buf,
                          json_is_real(v) ? "a fraction" : type_name(v));
    case HS_JK_LITERAL:
        for (int i = 0; i < n->n_lits; i++)
            if (json_equal(n->values[i], (json_t *)v))
                return HS_OK;
        return hs_err_set(err, HS_EINVAL, "%s: %s is not one of the allowed values", p->buf, type_name(v));
    case HS_JK_ANYOF:
        for (int i = 0; i < n->n_alts; i++) {
            const size_t old = p->len;
            const int rc = check(s, n->alts[i], v, p, NULL);
            vpath_pop(p, old); /* a failed alternative leaves its deeper path behind */
            if (rc == HS_OK)
                return HS_OK;
        }
        return hs_err_set(err, HS_EINVAL, "%s: %s matches none of the alternatives", p->buf, type_name(v));
    }
    return HS_OK;
}

int hs_jschema_check(const hs_jschema *s, int node, const json_t *v, hs_err *err)
{
    struct vpath p;
    p.len = (size_t)snprintf(p.buf, sizeof p.buf, "$");
    return check(s, node, v, &p, err);
}

int hs_jschema_validate(const hs_jschema *s, const char *doc, size_t len, hs_err *err)
{
    json_error_t je;
    json_t *j = json_loadb(doc, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!j)
        return hs_err_set(err, HS_EINVAL, "not valid JSON: %s (line %d, column %d)", je.text, je.line,
                          je.column);
    const int rc = hs_jschema_check(s, s->root, j, err);
    json_decref(j);
    return rc;
}
