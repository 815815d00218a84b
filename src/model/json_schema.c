/* Compiling a JSON Schema (the common subset) into the node array that the
 * validator walks and the automaton generates from; reference counting.
 *
 * Choices, each also a limit of what is generated:
 *  - Object properties are written in schema order. Required ones always,
 *    optional ones may be written or skipped. Only declared properties are
 *    generated, whatever additionalProperties says (the validator accepts
 *    extra ones unless it is false). An object without declared properties
 *    gets free keys, with values of additionalProperties' schema (any value
 *    when absent).
 *  - A required name missing from properties is declared with the schema of
 *    additionalProperties (an error when that is false).
 *  - Without "type", the type comes from the keywords present (properties ->
 *    object, items -> array, minLength -> string); with none, any value.
 *  - enum and const keep the values that also pass the rest of the schema;
 *    they are generated as their compact JSON text.
 *  - A type list or anyOf becomes alternatives chosen by the first byte of
 *    the value: at most one object, one array, one string (string enums
 *    count as strings), one number (integer folds into number).
 *  - Annotations (title, description, default, examples, ...) are ignored;
 *    every other keyword outside the subset is refused with HS_EUNSUPPORTED
 *    naming its place, rather than ignored. */
#include "model/json_impl.h"

#include "base/buf.h"
#include "base/mem.h"

#include <stdlib.h>
#include <string.h>

struct cctx {
    hs_jschema *s;
    hs_err *err;
    char path[256];
    size_t plen;
    int depth;
};

enum {
    T_OBJ = 1 << 0,
    T_ARR = 1 << 1,
    T_STR = 1 << 2,
    T_NUM = 1 << 3,
    T_INT = 1 << 4,
    T_BOOL = 1 << 5,
    T_NULL = 1 << 6,
};

static const char *const annotations[] = {
    "title",    "description", "default",  "examples",  "example", "$schema",     "$id",
    "$comment", "deprecated",  "readOnly", "writeOnly", "$defs",   "definitions",
};

static const char *const supported[] = {
    "type",     "enum",        "const",    "properties", "required",  "additionalProperties",
    "items",    "minItems",    "maxItems", "minLength",  "maxLength", "anyOf",
    "nullable", "uniqueItems",
};

static bool in_list(const char *k, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k, list[i]))
            return true;
    return false;
}

/* ---- paths ---- */

static size_t path_push(struct cctx *c, const char *fmt, const char *a)
{
    const size_t old = c->plen;
    if (c->plen < sizeof c->path) {
        const int w = snprintf(c->path + c->plen, sizeof c->path - c->plen, fmt, a);
        if (w > 0)
            c->plen += (size_t)w < sizeof c->path - c->plen ? (size_t)w : sizeof c->path - c->plen - 1;
    }
    return old;
}

static void path_pop(struct cctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = 0;
}

/* ---- nodes ---- */

static int new_node(struct cctx *c, enum hs_jkind kind, int *out)
{
    hs_jschema *s = c->s;
    if (s->n_nodes >= HS_J_LEN_MAX)
        return hs_err_set(c->err, HS_EUNSUPPORTED, "%s: the schema is too large", c->path);
    if (s->n_nodes == s->cap_nodes) {
        const int cap = s->cap_nodes ? s->cap_nodes * 2 : 16;
        struct hs_jnode *n = hs_realloc_array(s->nodes, (size_t)cap, sizeof *n);
        if (!n)
            return hs_err_set(c->err, HS_ENOMEM, "out of memory");
        s->nodes = n;
        s->cap_nodes = cap;
    }
    struct hs_jnode *n = &s->nodes[s->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->addl = -1;
    n->items = -1;
    n->min_n = -1;
    n->max_n = -1;
    *out = s->n_nodes++;
    return HS_OK;
}

static void node_free(struct hs_jnode *n)
{
    for (int i = 0; i < n->n_props; i++) {
        hs_free(n->props[i].name);
        hs_free(n->props[i].lit);
    }
    hs_free(n->props);
    hs_free(n->tail_cost);
    hs_free(n->tail_count);
    hs_free(n->next_req);
    for (int i = 0; i < n->n_lits; i++) {
        hs_free(n->lits[i]);
        json_decref(n->values[i]);
    }
    hs_free(n->lits);
    hs_free(n->lit_lens);
    hs_free(n->values);
    hs_free(n->alts);
    hs_free(n->alt_of);
}

static int sat(int64_t v)
{
    return v > HS_J_COST_INF ? HS_J_COST_INF : (int)v;
}

/* The compact JSON text of v; a new string (free with hs_free). */
static char *dump(const json_t *v, int *len)
{
    const size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    if (n == 0 || n > HS_J_LEN_MAX)
        return NULL;
    char *t = hs_malloc(n + 1);
    if (!t)
        return NULL;
    json_dumpb(v, t, n, JSON_COMPACT | JSON_ENCODE_ANY);
    t[n] = 0;
    *len = (int)n;
    return t;
}

/* ---- literals ---- */

struct lit {
    char *text;
    int len;
    json_t *value;
};

static int lit_cmp(const void *a, const void *b)
{
    const struct lit *x = a, *y = b;
    const int n = x->len < y->len ? x->len : y->len;
    const int r = memcmp(x->text, y->text, (size_t)n);
    return r ? r : (x->len > y->len) - (x->len < y->len);
}

/* A literal node from values (borrowed; the node takes its own references).
 * Duplicates are dropped; the texts are sorted so that those sharing a prefix
 * are contiguous (the automaton narrows a range). */
static int make_literal(struct cctx *c, json_t *const *values, int n, int *out)
{
    if (n <= 0)
        return hs_err_set(c->err, HS_EINVAL, "%s: no value is allowed", c->path);
    if (n > HS_J_LEN_MAX)
        return hs_err_set(c->err, HS_EUNSUPPORTED, "%s: too many enum values", c->path);
    struct lit *l = hs_calloc((size_t)n, sizeof *l);
    if (!l)
        return hs_err_set(c->err, HS_ENOMEM, "out of memory");
    int rc = HS_OK;
    for (int i = 0; i < n; i++) {
        l[i].value = values[i];
        l[i].text = dump(values[i], &l[i].len);
        if (!l[i].text) {
            rc = hs_err_set(c->err, HS_EUNSUPPORTED, "%s: an enum value is too long", c->path);
            goto done;
        }
    }
    qsort(l, (size_t)n, sizeof *l, lit_cmp);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (k > 0 && lit_cmp(&l[k - 1], &l[i]) == 0) {
            hs_free(l[i].text);
            l[i].text = NULL;
            continue;
        }
        l[k++] = l[i];
    }
    n = k;
    int id;
    if ((rc = new_node(c, HS_JK_LITERAL, &id)))
        goto done;
    struct hs_jnode *nd = &c->s->nodes[id];
    nd->lits = hs_calloc((size_t)n, sizeof *nd->lits);
    nd->lit_lens = hs_calloc((size_t)n, sizeof *nd->lit_lens);
    nd->values = hs_calloc((size_t)n, sizeof *nd->values);
    if (!nd->lits || !nd->lit_lens || !nd->values) {
        rc = hs_err_set(c->err, HS_ENOMEM, "out of memory");
        goto done;
    }
    nd->minlen = HS_J_COST_INF;
    for (int i = 0; i < n; i++) {
        nd->lits[i] = l[i].text;
        l[i].text = NULL;
        nd->lit_lens[i] = l[i].len;
        nd->values[i] = json_incref(l[i].value);
        nd->n_lits++;
        if (l[i].len < nd->minlen)
            nd->minlen = l[i].len;
    }
    *out = id;
done:
    for (int i = 0; i < n; i++)
        hs_free(l[i].text);
    hs_free(l);
    return rc;
}

static int make_literal_texts(struct cctx *c, const char *const *texts, int n, int *out)
{
    json_t *v[4] = {NULL};
    for (int i = 0; i < n && i < 4; i++)
        v[i] = json_loads(texts[i], JSON_DECODE_ANY, NULL);
    const int rc = make_literal(c, v, n, out);
    for (int i = 0; i < n; i++)
        json_decref(v[i]);
    return rc;
}

/* ---- alternatives ---- */

static void first_bytes(const hs_jschema *s, int node, bool set[256])
{
    const struct hs_jnode *n = &s->nodes[node];
    memset(set, 0, 256);
    switch (n->kind) {
    case HS_JK_OBJECT:
        set['{'] = true;
        break;
    case HS_JK_ARRAY:
        set['['] = true;
        break;
    case HS_JK_STRING:
        set['"'] = true;
        break;
    case HS_JK_NUMBER:
    case HS_JK_INTEGER:
        set['-'] = true;
        for (int d = '0'; d <= '9'; d++)
            set[d] = true;
        break;
    case HS_JK_LITERAL:
        for (int i = 0; i < n->n_lits; i++)
            set[(uint8_t)n->lits[i][0]] = true;
        break;
    case HS_JK_ANY:
    case HS_JK_ANYOF:
        for (int b = 0; b < 256; b++)
            set[b] = n->alt_of[b] >= 0;
        break;
    }
}

/* An alternatives node over alts (node indices). Nested alternatives are
 * flattened, literals merged, integer folded into number; what remains must
 * be told apart by the first byte. */
static int make_anyof(struct cctx *c, const int *in, int n_in, int *out)
{
    hs_jschema *s = c->s;
    int alts[64];
    int n = 0;
    json_t *lits[256];
    int n_lits = 0;
    bool has_num = false;
    int rc = HS_OK;
    int stack[64];
    int sp = 0;
    for (int i = n_in - 1; i >= 0 && sp < 64; i--)
        stack[sp++] = in[i];
    while (sp > 0) {
        const int a = stack[--sp];
        const struct hs_jnode *na = &s->nodes[a];
        if (na->kind == HS_JK_ANY) {
            *out = s->any; /* one alternative takes anything: so does the whole */
            return HS_OK;
        }
        if (na->kind == HS_JK_ANYOF) {
            for (int k = na->n_alts - 1; k >= 0; k--) {
                if (sp >= 64)
                    return hs_err_set(c->err, HS_EUNSUPPORTED, "%s: too many alternatives", c->path);
                stack[sp++] = na->alts[k];
            }
            continue;
        }
        if (na->kind == HS_JK_LITERAL) {
            for (int k = 0; k < na->n_lits; k++) {
                if (n_lits >= 256)
                    return hs_err_set(c->err, HS_EUNSUPPORTED, "%s: too many values in alternatives",
                                      c->path);
                lits[n_lits++] = na->values[k];
            }
            continue;
        }
        if (na->kind == HS_JK_NUMBER)
            has_num = true;
        if (n >= 64)
            return hs_err_set(c->err, HS_EUNSUPPORTED, "%s: too many alternatives", c->path);
        alts[n++] = a;
    }
    /* integer and number alike: keep one number alternative */
    int k = 0;
    bool num_kept = false;
    for (int i = 0; i < n; i++) {
        const enum hs_jkind kd = s->nodes[alts[i]].kind;
        if (kd == HS_JK_INTEGER && has_num)
            continue;
        if (kd == HS_JK_NUMBER || kd == HS_JK_INTEGER) {
            if (num_kept)
                continue;
            num_kept = true;
        }
        alts[k++] = alts[i];
    }
    n = k;
    if (n_lits > 0) {
        int id;
        if ((rc = make_literal(c, lits, n_lits, &id)))
            return rc;
        alts[n++] = id;
    }
    if (n == 1) {
        *out = alts[0];
        return HS_OK;
    }
    int id;
    if ((rc = new_node(c, HS_JK_ANYOF, &id)))
        return rc;
    struct hs_jnode *nd = &s->nodes[id];
    nd->alts = hs_calloc((size_t)n, sizeof *nd->alts);
    nd->alt_of = hs_malloc(256 * sizeof *nd->alt_of);
    if (!nd->alts || !nd->alt_of)
        return hs_err_set(c->err, HS_ENOMEM, "out of memory");
    for (int b = 0; b < 256; b++)
        nd->alt_of[b] = -1;
    nd->minlen = HS_J_COST_INF;
    for (int i = 0; i < n; i++) {
        bool set[256];
        first_bytes(s, alts[i], set);
        for (int b = 0; b < 256; b++) {
            if (!set[b])
                continue;
            if (nd->alt_of[b] >= 0)
                return hs_err_set(c->err, HS_EUNSUPPORTED,
                                  "%s: alternatives that start alike are not supported (at most one "
                                  "object, one array, one string or string enum, one number)",
                                  c->path);
            nd->alt_of[b] = (int16_t)alts[i];
        }
        nd->alts[nd->n_alts++] = alts[i];
        if (s->nodes[alts[i]].minlen < nd->minlen)
            nd->minlen = s->nodes[alts[i]].minlen;
    }
    *out = id;
    return HS_OK;
}

/* ---- keywords ---- */

/* A non-negative integer keyword, or -1 when absent. */
static int get_count(struct cctx *c, const json_t *j, const char *kw, int64_t *out)
{
    const json_t *v = json_object_get(j, kw);
    *out = -1;
    if (!v)
        return HS_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return hs_err_set(c->err, HS_EINVAL, "%s.%s: must be a non-negative integer", c->path, kw);
    *out = json_integer_value(v);
    return HS_OK;
}

/* minX/maxX into the node's schema limits and generation limits. */
static int set_bounds(struct cctx *c, const json_t *j, const char *kmin, const char *kmax, int cap,
                      struct hs_jnode *tmp)
{
    int rc;
    if ((rc = get_count(c, j, kmin, &tmp->min_n)) || (rc = get_count(c, j, kmax, &tmp->max_n)))
        return rc;
    if (tmp->max_n >= 0 && tmp->min_n > tmp->max_n)
        return hs_err_set(c->err, HS_EINVAL, "%s: %s is above %s", c->path, kmin, kmax);
    if (tmp->min_n > HS_J_LEN_MAX)
        return hs_err_set(c->err, HS_EUNSUPPORTED, "%s.%s: above %d is not supported", c->path, kmin,
                          HS_J_LEN_MAX);
    tmp->gen_min = tmp->min_n > 0 ? (int)tmp->min_n : 0;
    if (tmp->max_n >= 0)
        tmp->gen_max = tmp->max_n > HS_J_LEN_MAX ? HS_J_LEN_MAX : (int)tmp->max_n;
    else
        tmp->gen_max = tmp->gen_min > cap ? tmp->gen_min : cap;
    return HS_OK;
}

static int compile_node(struct cctx *c, const json_t *j, int *out);

static int compile_string(struct cctx *c, const json_t *j, int *out)
{
    struct hs_jnode tmp;
    int rc = set_bounds(c, j, "minLength", "maxLength", HS_J_STR_CAP, &tmp);
    if (rc)
        return rc;
    int id;
    if ((rc = new_node(c, HS_JK_STRING, &id)))
        return rc;
    struct hs_jnode *n = &c->s->nodes[id];
    n->min_n = tmp.min_n;
    n->max_n = tmp.max_n;
    n->gen_min = tmp.gen_min;
    n->gen_max = tmp.gen_max;
    n->minlen = 2 + n->gen_min;
    *out = id;
    return HS_OK;
}

static int compile_array(struct cctx *c, const json_t *j, int *out)
{
    struct hs_jnode tmp;
    int rc = set_bounds(c, j, "minItems", "maxItems", HS_J_ITEMS_CAP, &tmp);
    if (rc)
        return rc;
    const json_t *items = json_object_get(j, "items");
    int item = c->s->any;
    if (items && json_is_false(items)) {
        if (tmp.gen_min > 0)
            return hs_err_set(c->err, HS_EINVAL, "%s: minItems with items false", c->path);
        tmp.max_n = 0; /* no item can pass: the same as maxItems 0 */
        tmp.gen_max = 0;
    } else if (items && json_is_array(items)) {
        return hs_err_set(c->err, HS_EUNSUPPORTED, "%s.items: tuple items (an array) are not supported",
                          c->path);
    } else if (items) {
        const size_t old = path_push(c, ".items", "");
        rc = compile_node(c, items, &item);
        if (rc)
            return rc;
        path_pop(c, old);
    }
    int id;
    if ((rc = new_node(c, HS_JK_ARRAY, &id)))
        return rc;
    struct hs_jnode *n = &c->s->nodes[id];
    n->items = item;
    n->min_n = tmp.min_n;
    n->max_n = tmp.max_n;
    n->gen_min = tmp.gen_min;
    n->gen_max = tmp.gen_max;
    const int64_t ml = c->s->nodes[item].minlen;
    n->minlen = sat(2 + (int64_t)n->gen_min * ml + (n->gen_min > 0 ? n->gen_min - 1 : 0));
    *out = id;
    return HS_OK;
}

static int find_prop(const struct hs_jprop *p, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(p[i].name, name))
            return i;
    return -1;
}

static int add_prop(struct cctx *c, struct hs_jprop *props, int *n, const char *name, int node)
{
    if (*n >= HS_J_MAX_PROPS)
        return hs_err_set(c->err, HS_EUNSUPPORTED, "%s: more than %d properties are not supported", c->path,
                          HS_J_MAX_PROPS);
    struct hs_jprop *p = &props[*n];
    json_t *js = json_string(name);
    p->name = hs_strdup(name);
    p->lit = js ? dump(js, &p->lit_len) : NULL;
    json_decref(js);
    p->node = node;
    p->required = false;
    (*n)++;
    if (!p->name || !p->lit)
        return hs_err_set(c->err, HS_EUNSUPPORTED, "%s: property name too long or out of memory", c->path);
    return HS_OK;
}

static int compile_object(struct cctx *c, const json_t *j, int *out)
{
    hs_jschema *s = c->s;
    struct hs_jprop props[HS_J_MAX_PROPS];
    int n = 0, rc = HS_OK;
    int addl = s->any;

    const json_t *ap = json_object_get(j, "additionalProperties");
    if (ap && json_is_false(ap)) {
        addl = -1;
    } else if (ap && !json_is_true(ap)) {
        const size_t old = path_push(c, ".additionalProperties", "");
        if ((rc = compile_node(c, ap, &addl)))
            goto fail;
        path_pop(c, old);
    }

    const json_t *pr = json_object_get(j, "properties");
    if (pr && !json_is_object(pr)) {
        rc = hs_err_set(c->err, HS_EINVAL, "%s.properties: must be an object", c->path);
        goto fail;
    }
    const char *key;
    const json_t *sub;
    json_object_foreach((json_t *)pr, key, sub)
    {
        const size_t old = path_push(c, ".properties.%s", key);
        int node;
        if ((rc = compile_node(c, sub, &node)))
            goto fail;
        path_pop(c, old);
        if ((rc = add_prop(c, props, &n, key, node)))
            goto fail;
    }

    const json_t *req = json_object_get(j, "required");
    if (req && !json_is_array(req)) {
        rc = hs_err_set(c->err, HS_EINVAL, "%s.required: must be an array of names", c->path);
        goto fail;
    }
    size_t ri;
    const json_t *rv;
    json_array_foreach(req, ri, rv)
    {
        if (!json_is_string(rv)) {
            rc = hs_err_set(c->err, HS_EINVAL, "%s.required[%zu]: must be a string", c->path, ri);
            goto fail;
        }
        int k = find_prop(props, n, json_string_value(rv));
        if (k < 0) {
            if (addl < 0) {
                rc = hs_err_set(c->err, HS_EINVAL,
                                "%s.required: \"%s\" is not in properties and additionalProperties is false",
                                c->path, json_string_value(rv));
                goto fail;
            }
            if ((rc = add_prop(c, props, &n, json_string_value(rv), addl)))
                goto fail;
            k = n - 1;
        }
        props[k].required = true;
    }

    int id;
    if ((rc = new_node(c, HS_JK_OBJECT, &id)))
        goto fail;
    struct hs_jnode *nd = &s->nodes[id];
    nd->props = hs_calloc((size_t)(n > 0 ? n : 1), sizeof *nd->props);
    nd->tail_cost = hs_calloc((size_t)n + 1, sizeof(int));
    nd->tail_count = hs_calloc((size_t)n + 1, sizeof(int));
    nd->next_req = hs_calloc((size_t)n + 1, sizeof(int));
    if (!nd->props || !nd->tail_cost || !nd->tail_count || !nd->next_req) {
        rc = hs_err_set(c->err, HS_ENOMEM, "out of memory");
        goto fail;
    }
    memcpy(nd->props, props, (size_t)n * sizeof *props);
    nd->n_props = n;
    n = 0; /* the node owns the names now */
    nd->addl = addl;
    nd->free_keys = nd->n_props == 0 && addl >= 0;
    nd->next_req[nd->n_props] = nd->n_props;
    for (int i = nd->n_props - 1; i >= 0; i--) {
        const struct hs_jprop *p = &nd->props[i];
        const int64_t cost = p->required ? (int64_t)p->lit_len + 1 + s->nodes[p->node].minlen : 0;
        nd->tail_cost[i] = sat(nd->tail_cost[i + 1] + cost);
        nd->tail_count[i] = nd->tail_count[i + 1] + p->required;
        nd->next_req[i] = p->required ? i : nd->next_req[i + 1];
    }
    const int k = nd->tail_count[0];
    nd->minlen = sat(2 + (int64_t)nd->tail_cost[0] + (k > 0 ? k - 1 : 0));
    *out = id;
    return HS_OK;
fail:
    for (int i = 0; i < n; i++) {
        hs_free(props[i].name);
        hs_free(props[i].lit);
    }
    return rc;
}

static int parse_types(struct cctx *c, const json_t *j, unsigned *types)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {
        {"object", T_OBJ},  {"array", T_ARR},    {"string", T_STR}, {"number", T_NUM},
        {"integer", T_INT}, {"boolean", T_BOOL}, {"null", T_NULL},
    };
    const json_t *t = json_object_get(j, "type");
    *types = 0;
    if (!t)
        return HS_OK;
    const size_t n = json_is_array(t) ? json_array_size(t) : 1;
    if (!json_is_array(t) && !json_is_string(t))
        return hs_err_set(c->err, HS_EINVAL, "%s.type: must be a string or an array of strings", c->path);
    if (n == 0)
        return hs_err_set(c->err, HS_EINVAL, "%s.type: must not be empty", c->path);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_is_array(t) ? json_array_get(t, i) : t;
        const char *name = json_string_value(e);
        unsigned bit = 0;
        for (size_t k = 0; name && k < sizeof names / sizeof names[0]; k++)
            if (!strcmp(name, names[k].name))
                bit = names[k].bit;
        if (!bit)
            return hs_err_set(c->err, HS_EINVAL, "%s.type: unknown type %s%s%s", c->path, name ? "\"" : "",
                              name ? name : "(not a string)", name ? "\"" : "");
        *types |= bit;
    }
    return HS_OK;
}

/* Without "type": the types the keywords present speak of. */
static unsigned infer_types(const json_t *j)
{
    unsigned t = 0;
    if (json_object_get(j, "properties") || json_object_get(j, "required") ||
        json_object_get(j, "additionalProperties"))
        t |= T_OBJ;
    if (json_object_get(j, "items") || json_object_get(j, "minItems") || json_object_get(j, "maxItems"))
        t |= T_ARR;
    if (json_object_get(j, "minLength") || json_object_get(j, "maxLength"))
        t |= T_STR;
    return t;
}

/* enum and const: the values that pass the rest of the schema (node base). */
static int compile_enum(struct cctx *c, const json_t *j, int base, int *out)
{
    const json_t *en = json_object_get(j, "enum");
    const json_t *cn = json_object_get(j, "const");
    if (en && (!json_is_array(en) || json_array_size(en) == 0))
        return hs_err_set(c->err, HS_EINVAL, "%s.enum: must be a non-empty array", c->path);
    const size_t n = en ? json_array_size(en) : 1;
    if (n > HS_J_LEN_MAX)
        return hs_err_set(c->err, HS_EUNSUPPORTED, "%s.enum: too many values", c->path);
    json_t **keep = hs_calloc(n, sizeof *keep);
    if (!keep)
        return hs_err_set(c->err, HS_ENOMEM, "out of memory");
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *v = en ? json_array_get(en, i) : (json_t *)cn;
        if (cn && !json_equal(v, cn))
            continue;
        if (hs_jschema_check(c->s, base, v, NULL) == HS_OK)
            keep[k++] = v;
    }
    int rc;
    if (k == 0)
        rc = hs_err_set(c->err, HS_EINVAL, "%s: no value of %s passes the rest of the schema", c->path,
                        en ? "enum" : "const");
    else
        rc = make_literal(c, keep, k, out);
    hs_free(keep);
    return rc;
}

static int check_keywords(struct cctx *c, const json_t *j)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        if (in_list(key, annotations, sizeof annotations / sizeof annotations[0]))
            continue;
        if (!in_list(key, supported, sizeof supported / sizeof supported[0]))
            return hs_err_set(c->err, HS_EUNSUPPORTED, "%s: %s is not supported", c->path, key);
        if (!strcmp(key, "uniqueItems") && json_is_true(v))
            return hs_err_set(c->err, HS_EUNSUPPORTED, "%s: uniqueItems is not supported", c->path);
        if (!strcmp(key, "anyOf")) {
            const char *k2;
            const json_t *v2;
            json_object_foreach((json_t *)j, k2, v2)
            {
                if (strcmp(k2, "anyOf") &&
                    !in_list(k2, annotations, sizeof annotations / sizeof annotations[0]))
                    return hs_err_set(c->err, HS_EUNSUPPORTED, "%s: %s beside anyOf is not supported",
                                      c->path, k2);
            }
        }
    }
    return HS_OK;
}

static int compile_anyof(struct cctx *c, const json_t *list, int *out)
{
    if (!json_is_array(list) || json_array_size(list) == 0)
        return hs_err_set(c->err, HS_EINVAL, "%s.anyOf: must be a non-empty array", c->path);
    if (json_array_size(list) > 64)
        return hs_err_set(c->err, HS_EUNSUPPORTED, "%s.anyOf: too many alternatives", c->path);
    int alts[64];
    int n = 0;
    size_t i;
    const json_t *sub;
    json_array_foreach(list, i, sub)
    {
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", i);
        const size_t old = path_push(c, ".anyOf[%s]", idx);
        const int rc = compile_node(c, sub, &alts[n++]);
        if (rc)
            return rc;
        path_pop(c, old);
    }
    const size_t old = path_push(c, ".anyOf", "");
    const int rc = make_anyof(c, alts, n, out);
    if (rc == HS_OK)
        path_pop(c, old);
    return rc;
}

static int compile_node(struct cctx *c, const json_t *j, int *out)
{
    hs_jschema *s = c->s;
    if (json_is_true(j)) {
        *out = s->any;
        return HS_OK;
    }
    if (json_is_false(j))
        return hs_err_set(c->err, HS_EUNSUPPORTED, "%s: the schema false is not supported", c->path);
    if (!json_is_object(j))
        return hs_err_set(c->err, HS_EINVAL, "%s: a schema must be an object", c->path);
    if (c->depth >= HS_J_SCHEMA_DEPTH)
        return hs_err_set(c->err, HS_EUNSUPPORTED, "%s: schemas nested deeper than %d are not supported",
                          c->path, HS_J_SCHEMA_DEPTH);
    int rc = check_keywords(c, j);
    if (rc)
        return rc;
    c->depth++;
    const json_t *any_of = json_object_get(j, "anyOf");
    if (any_of) {
        rc = compile_anyof(c, any_of, out);
        c->depth--;
        return rc;
    }

    unsigned types;
    if ((rc = parse_types(c, j, &types)))
        goto out;
    if (!types)
        types = infer_types(j);
    if (json_is_true(json_object_get(j, "nullable")) && types)
        types |= T_NULL;

    int parts[8];
    int n = 0;
    if (!types) {
        parts[n++] = s->any;
    } else {
        if ((types & T_OBJ) && (rc = compile_object(c, j, &parts[n++])))
            goto out;
        if ((types & T_ARR) && (rc = compile_array(c, j, &parts[n++])))
            goto out;
        if ((types & T_STR) && (rc = compile_string(c, j, &parts[n++])))
            goto out;
        if (types & (T_NUM | T_INT)) {
            if ((rc = new_node(c, (types & T_NUM) ? HS_JK_NUMBER : HS_JK_INTEGER, &parts[n])))
                goto out;
            s->nodes[parts[n++]].minlen = 1;
        }
        if ((types & T_BOOL) &&
            (rc = make_literal_texts(c, (const char *const[]){"false", "true"}, 2, &parts[n++])))
            goto out;
        if ((types & T_NULL) && (rc = make_literal_texts(c, (const char *const[]){"null"}, 1, &parts[n++])))
            goto out;
    }
    int node = parts[0];
    if (n > 1 && (rc = make_anyof(c, parts, n, &node)))
        goto out;
    if (json_object_get(j, "enum") || json_object_get(j, "const"))
        rc = compile_enum(c, j, node, &node);
    if (rc == HS_OK)
        *out = node;
out:
    c->depth--;
    return rc;
}

/* ---- free-form building blocks ---- */

static int build_free(struct cctx *c)
{
    hs_jschema *s = c->s;
    int rc;
    if ((rc = new_node(c, HS_JK_ANY, &s->any)) || (rc = new_node(c, HS_JK_OBJECT, &s->any_obj)) ||
        (rc = new_node(c, HS_JK_ARRAY, &s->any_arr)) || (rc = new_node(c, HS_JK_STRING, &s->any_str)) ||
        (rc = new_node(c, HS_JK_STRING, &s->any_key)) || (rc = new_node(c, HS_JK_NUMBER, &s->any_num)))
        return rc;
    if ((rc = make_literal_texts(c, (const char *const[]){"false", "null", "true"}, 3, &s->any_lit)))
        return rc;

    struct hs_jnode *o = &s->nodes[s->any_obj];
    o->addl = s->any;
    o->free_keys = true;
    o->minlen = 2;
    o->tail_cost = hs_calloc(1, sizeof(int));
    o->tail_count = hs_calloc(1, sizeof(int));
    o->next_req = hs_calloc(1, sizeof(int));
    if (!o->tail_cost || !o->tail_count || !o->next_req)
        return hs_err_set(c->err, HS_ENOMEM, "out of memory");

    struct hs_jnode *a = &s->nodes[s->any_arr];
    a->items = s->any;
    a->gen_max = HS_J_ITEMS_CAP;
    a->minlen = 2;

    s->nodes[s->any_str].gen_max = HS_J_STR_CAP;
    s->nodes[s->any_str].minlen = 2;
    s->nodes[s->any_key].gen_max = HS_J_KEY_CAP;
    s->nodes[s->any_key].minlen = 2;
    s->nodes[s->any_num].minlen = 1;

    struct hs_jnode *y = &s->nodes[s->any];
    y->minlen = 1;
    y->alt_of = hs_malloc(256 * sizeof *y->alt_of);
    if (!y->alt_of)
        return hs_err_set(c->err, HS_ENOMEM, "out of memory");
    for (int b = 0; b < 256; b++) {
        int alt = -1;
        if (b == '{')
            alt = s->any_obj;
        else if (b == '[')
            alt = s->any_arr;
        else if (b == '"')
            alt = s->any_str;
        else if (b == '-' || (b >= '0' && b <= '9'))
            alt = s->any_num;
        else if (b == 'f' || b == 'n' || b == 't')
            alt = s->any_lit;
        y->alt_of[b] = (int16_t)alt;
    }
    return HS_OK;
}

/* ---- public ---- */

static void schema_free(hs_jschema *s)
{
    for (int i = 0; i < s->n_nodes; i++)
        node_free(&s->nodes[i]);
    hs_free(s->nodes);
    hs_free(s);
}

int hs_jschema_compile(const char *schema, size_t len, hs_jschema **out, hs_err *err)
{
    *out = NULL;
    hs_jschema *s = hs_calloc(1, sizeof *s);
    if (!s)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    atomic_init(&s->refs, 1);
    struct cctx c = {.s = s, .err = err};
    c.plen = (size_t)snprintf(c.path, sizeof c.path, "schema");
    int rc = build_free(&c);
    if (rc == HS_OK && (!schema || len == 0)) {
        s->root = s->any_obj;
    } else if (rc == HS_OK) {
        json_error_t je;
        json_t *j = json_loadb(schema, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
        if (!j) {
            rc = hs_err_set(err, HS_EINVAL, "schema: not valid JSON: %s (line %d, column %d)", je.text,
                            je.line, je.column);
        } else {
            rc = compile_node(&c, j, &s->root);
            json_decref(j);
        }
    }
    if (rc) {
        schema_free(s);
        return rc;
    }
    *out = s;
    return HS_OK;
}

hs_jschema *hs_jschema_ref(hs_jschema *s)
{
    if (s)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

void hs_jschema_unref(hs_jschema *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        schema_free(s);
}
