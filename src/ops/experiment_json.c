/* An experiment's definition as JSON: the one reader (hs_exp_read, also
 * behind the YAML form) and the writer. Unknown keys are errors, so that a
 * misspelt rule is not silently left at its default. */
#include "ops/experiment_impl.h"

#include "base/mem.h"
#include "base/parse.h"
#include "ops/drift.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- messages ---- */

static int line_of(const struct hs_exp_src *src, const char *path)
{
    /* the longest recorded prefix of path: "canary[1].after" falls back to
       "canary[1]" and then "canary" when a key has no line of its own */
    int best = -1;
    size_t best_len = 0;
    for (int i = 0; i < src->n_lines; i++) {
        size_t n = strlen(src->lines[i].path);
        if (n >= best_len && !strncmp(path, src->lines[i].path, n) &&
            (path[n] == 0 || path[n] == '.' || path[n] == '[')) {
            best = src->lines[i].line;
            best_len = n;
        }
    }
    return best > 0 ? best : src->item_line;
}

static int fail(const struct hs_exp_src *src, const struct hs_experiment *e, const char *path,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(const struct hs_exp_src *src, const struct hs_experiment *e, const char *path,
                const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (src->file) {
        int line = line_of(src, path);
        if (line > 0)
            return hs_err_set(src->err, HS_EINVAL, "%s:%d: experiments[%d].%s: %s", src->file, line,
                              src->index, path, msg);
        return hs_err_set(src->err, HS_EINVAL, "%s: experiments[%d].%s: %s", src->file, src->index, path,
                          msg);
    }
    if (e->name[0])
        return hs_err_set(src->err, HS_EINVAL, "experiment '%s': %s: %s", e->name, path, msg);
    return hs_err_set(src->err, HS_EINVAL, "experiment: %s: %s", path, msg);
}

/* ---- values ---- */

static int get_string(const struct hs_exp_src *src, const struct hs_experiment *e, const json_t *v,
                      const char *path, char *out, size_t cap)
{
    if (!json_is_string(v))
        return fail(src, e, path, "expected a string");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n >= cap || strlen(s) != n)
        return fail(src, e, path, "expected 1..%zu bytes of text", cap - 1);
    memcpy(out, s, n + 1);
    return HS_OK;
}

/* A number in [min, max]; "5%" means 0.05 when percent is allowed. */
static int get_number(const struct hs_exp_src *src, const struct hs_experiment *e, const json_t *v,
                      const char *path, double min, double max, bool percent, double *out)
{
    double x = NAN;
    if (json_is_number(v)) {
        x = json_number_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = strlen(s);
        char buf[64];
        if (percent && n > 1 && n < sizeof buf && s[n - 1] == '%') {
            memcpy(buf, s, n - 1);
            buf[n - 1] = 0;
            if (hs_parse_f64(buf, &x) != HS_OK)
                x = NAN;
            else
                x /= 100;
        } else if (src->lenient && hs_parse_f64(s, &x) != HS_OK) {
            x = NAN;
        } else if (!src->lenient) {
            x = NAN;
        }
    }
    if (!(x >= min && x <= max))
        return fail(src, e, path,
                    percent ? "expected a number in %g..%g (or a percentage such as 5%%)"
                            : "expected a number in %g..%g",
                    min, max);
    *out = x;
    return HS_OK;
}

static int get_int(const struct hs_exp_src *src, const struct hs_experiment *e, const json_t *v,
                   const char *path, int64_t min, int64_t max, int64_t *out)
{
    int64_t x = 0;
    bool ok = false;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
        ok = true;
    } else if (src->lenient && json_is_string(v)) {
        ok = hs_parse_i64(json_string_value(v), min, max, &x) == HS_OK;
    }
    if (!ok || x < min || x > max)
        return fail(src, e, path, "expected a whole number in %lld..%lld", (long long)min, (long long)max);
    *out = x;
    return HS_OK;
}

/* "45s", "30m", "1h", "7d", "2w" or "0". */
static int get_duration(const struct hs_exp_src *src, const struct hs_experiment *e, const json_t *v,
                        const char *path, int64_t *out)
{
    if (!json_is_string(v) || hs_drift_parse_every(json_string_value(v), out) != HS_OK)
        return fail(src, e, path, "expected a duration such as 45s, 30m, 1h, 7d or 2w");
    return HS_OK;
}

static bool is_off(const json_t *v)
{
    return json_is_false(v) || (json_is_string(v) && !strcmp(json_string_value(v), "off"));
}

/* ---- the pieces ---- */

static int read_step(struct hs_experiment *e, const json_t *v, int i, const struct hs_exp_src *src)
{
    char path[64];
    snprintf(path, sizeof path, "canary[%d]", i);
    if (!json_is_object(v))
        return fail(src, e, path, "expected a mapping with weight and after or at");
    struct hs_exp_step *s = &e->steps[i];
    s->weight = NAN;
    s->after_ms = -1;
    s->at_ms = -1;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        char sub[96];
        snprintf(sub, sizeof sub, "%.40s.%.40s", path, k);
        int rc = HS_OK;
        if (!strcmp(k, "weight")) {
            rc = get_number(src, e, x, sub, 0, 1, true, &s->weight);
        } else if (!strcmp(k, "after")) {
            rc = get_duration(src, e, x, sub, &s->after_ms);
        } else if (!strcmp(k, "after_ms")) {
            rc = get_int(src, e, x, sub, 0, INT64_MAX / 4, &s->after_ms);
        } else if (!strcmp(k, "at")) {
            if (!json_is_string(x) || hs_exp_parse_time(json_string_value(x), &s->at_ms) != HS_OK)
                rc = fail(src, e, sub, "expected a time such as 2026-12-01T09:00:00Z");
        } else {
            rc = fail(src, e, sub, "unknown key (known here: weight, after, after_ms, at)");
        }
        if (rc)
            return rc;
    }
    if (isnan(s->weight))
        return fail(src, e, path, "a step needs a weight");
    return HS_OK;
}

static int read_rule(struct hs_experiment *e, const json_t *v, const char *path, double max, bool percent,
                     struct hs_exp_rule *r, bool *min_given, const struct hs_exp_src *src)
{
    if (is_off(v)) {
        r->enabled = false;
        return HS_OK;
    }
    r->enabled = true;
    if (!json_is_object(v))
        return get_number(src, e, v, path, 0, max, percent, &r->limit);
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        char sub[96];
        snprintf(sub, sizeof sub, "%.40s.%.40s", path, k);
        int rc;
        int64_t n;
        if (!strcmp(k, "limit")) {
            rc = get_number(src, e, x, sub, 0, max, percent, &r->limit);
        } else if (!strcmp(k, "min_samples")) {
            rc = get_int(src, e, x, sub, 1, 100000000, &n);
            r->min_samples = (int)n;
            *min_given = true;
        } else if (!strcmp(k, "enabled")) {
            rc = json_is_boolean(x) || (src->lenient && json_is_string(x))
                     ? HS_OK
                     : fail(src, e, sub, "expected true or false");
            if (!rc && json_is_string(x)) {
                const char *t = json_string_value(x);
                if (strcmp(t, "true") && strcmp(t, "false"))
                    rc = fail(src, e, sub, "expected true or false");
                else
                    r->enabled = !strcmp(t, "true");
            } else if (!rc) {
                r->enabled = json_is_true(x);
            }
        } else {
            rc = fail(src, e, sub, "unknown key (known here: limit, min_samples, enabled)");
        }
        if (rc)
            return rc;
    }
    return HS_OK;
}

static int read_rollback(struct hs_experiment *e, const json_t *v, const struct hs_exp_src *src)
{
    if (json_is_null(v))
        return HS_OK;
    if (!json_is_object(v))
        return fail(src, e, "rollback", "expected a mapping of rules");
    bool given[3] = {false, false, false};
    int64_t shared = -1;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        char sub[96];
        snprintf(sub, sizeof sub, "rollback.%.40s", k);
        int rc;
        if (!strcmp(k, "error_ratio"))
            rc = read_rule(e, x, sub, 1e6, false, &e->rules.error_ratio, &given[0], src);
        else if (!strcmp(k, "p95_margin_ms"))
            rc = read_rule(e, x, sub, 1e9, false, &e->rules.p95_margin, &given[1], src);
        else if (!strcmp(k, "safety_rate"))
            rc = read_rule(e, x, sub, 1, true, &e->rules.safety_rate, &given[2], src);
        else if (!strcmp(k, "min_samples"))
            rc = get_int(src, e, x, sub, 1, 100000000, &shared);
        else if (!strcmp(k, "window"))
            rc = get_duration(src, e, x, sub, &e->rules.window_ms);
        else if (!strcmp(k, "window_ms"))
            rc = get_int(src, e, x, sub, 1, INT64_MAX / 4, &e->rules.window_ms);
        else
            rc = fail(
                src, e, sub,
                "unknown key (known here: error_ratio, p95_margin_ms, safety_rate, min_samples, window)");
        if (rc)
            return rc;
    }
    /* the shared min_samples is the default of every rule that has none of its own */
    if (shared > 0) {
        if (!given[0])
            e->rules.error_ratio.min_samples = (int)shared;
        if (!given[1])
            e->rules.p95_margin.min_samples = (int)shared;
        if (!given[2])
            e->rules.safety_rate.min_samples = (int)shared;
    }
    return HS_OK;
}

int hs_exp_read(struct hs_experiment *e, const json_t *obj, const struct hs_exp_src *src)
{
    hs_experiment_default(e);
    if (!json_is_object(obj))
        return fail(src, e, "(definition)", "expected a mapping (an object)");
    /* the name first, so that later messages can carry it */
    const json_t *nv = json_object_get(obj, "name");
    if (!nv)
        return fail(src, e, "name", "an experiment needs a name");
    int rc = get_string(src, e, nv, "name", e->name, sizeof e->name);
    if (rc)
        return rc;
    bool weight_given = false, mode_given = false;
    const json_t *canary = NULL;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)obj, k, x)
    {
        if (!strcmp(k, "name")) {
            continue;
        } else if (!strcmp(k, "route")) {
            rc = get_string(src, e, x, k, e->route, sizeof e->route);
        } else if (!strcmp(k, "a")) {
            rc = get_string(src, e, x, k, e->target_a, sizeof e->target_a);
        } else if (!strcmp(k, "b")) {
            rc = get_string(src, e, x, k, e->target_b, sizeof e->target_b);
        } else if (!strcmp(k, "mode")) {
            const char *m = json_is_string(x) ? json_string_value(x) : "";
            mode_given = true;
            if (!strcmp(m, "ab"))
                e->mode = HS_EXP_AB;
            else if (!strcmp(m, "shadow"))
                e->mode = HS_EXP_SHADOW;
            else if (!strcmp(m, "canary"))
                e->mode = HS_EXP_CANARY;
            else
                rc = fail(src, e, k, "expected ab, shadow or canary");
        } else if (!strcmp(k, "weight")) {
            rc = get_number(src, e, x, k, 0, 1, true, &e->weight_b);
            weight_given = true;
        } else if (!strcmp(k, "sticky_by")) {
            const char *m = json_is_string(x) ? json_string_value(x) : "";
            if (!strcmp(m, "user"))
                e->sticky_by = HS_EXP_STICKY_USER;
            else if (!strcmp(m, "key"))
                e->sticky_by = HS_EXP_STICKY_KEY;
            else
                rc = fail(src, e, k, "expected user or key");
        } else if (!strcmp(k, "canary")) {
            canary = x;
        } else if (!strcmp(k, "rollback")) {
            rc = read_rollback(e, x, src);
        } else if (!strcmp(k, "shadow_queue")) {
            int64_t q;
            rc = get_int(src, e, x, k, 1, HS_EXP_SHADOW_QUEUE_MAX, &q);
            e->shadow_queue = (int)q;
        } else {
            rc =
                fail(src, e, k,
                     "unknown key (known here: name, route, mode, a, b, weight, sticky_by, canary, rollback, "
                     "shadow_queue)");
        }
        if (rc)
            return rc;
    }
    if (!mode_given && canary)
        e->mode = HS_EXP_CANARY;
    if (!e->route[0])
        return fail(src, e, "route", "the model or agent name the experiment applies to is needed");
    if (!e->target_a[0])
        return fail(src, e, "a",
                    "the control's target (a model, adapter, agent or upstream model) is needed");
    if (!e->target_b[0])
        return fail(src, e, "b", "the candidate's target is needed");
    if (e->mode == HS_EXP_CANARY) {
        if (!json_is_array(canary) || json_array_size(canary) < 1 ||
            json_array_size(canary) > HS_EXP_STEPS_MAX)
            return fail(src, e, "canary", "a canary needs a list of 1..%d steps", HS_EXP_STEPS_MAX);
        if (weight_given)
            return fail(src, e, "weight", "a canary's weight comes from its steps; leave weight out");
        e->n_steps = (int)json_array_size(canary);
        for (int i = 0; i < e->n_steps; i++)
            if ((rc = read_step(e, json_array_get(canary, (size_t)i), i, src)))
                return rc;
        e->weight_b = e->steps[0].weight;
    } else {
        if (canary && !json_is_null(canary))
            return fail(src, e, "canary", "a schedule needs mode: canary");
        if (e->mode == HS_EXP_AB && !weight_given)
            return fail(src, e, "weight", "an A/B test needs B's weight (0..1 or a percentage)");
        if (e->mode == HS_EXP_SHADOW && weight_given && e->weight_b != 0)
            return fail(src, e, "weight", "in a shadow every answer comes from A; leave weight out");
    }
    /* what remains are cross-field checks; their messages name the field */
    hs_err tmp = {0};
    if (hs_experiment_check(e, &tmp) != HS_OK) {
        const char *m = strstr(tmp.msg, "': ");
        const char *what = m ? m + 3 : !strncmp(tmp.msg, "experiment: ", 12) ? tmp.msg + 12 : tmp.msg;
        if (src->file)
            return hs_err_set(src->err, HS_EINVAL, "%s:%d: experiments[%d]: %s", src->file, src->item_line,
                              src->index, what);
        return hs_err_set(src->err, HS_EINVAL, "%s", tmp.msg);
    }
    return HS_OK;
}

int hs_experiment_from_json(struct hs_experiment *e, const json_t *obj, hs_err *err)
{
    struct hs_exp_src src = {.err = err};
    return hs_exp_read(e, obj, &src);
}

int hs_experiment_from_json_text(struct hs_experiment *e, const char *text, hs_err *err)
{
    json_error_t je;
    json_t *o = json_loads(text ? text : "", JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        hs_experiment_default(e);
        return hs_err_set(err, HS_EINVAL, "experiment: not JSON: %s (line %d)", je.text, je.line);
    }
    int rc = hs_experiment_from_json(e, o, err);
    json_decref(o);
    return rc;
}

/* ---- writing ---- */

static json_t *rule_json(const struct hs_exp_rule *r)
{
    /* a rule switched off keeps its numbers, so the text reads back the same */
    return json_pack("{s:f,s:i,s:b}", "limit", r->limit, "min_samples", r->min_samples, "enabled",
                     r->enabled);
}

json_t *hs_experiment_to_json(const struct hs_experiment *e)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:i}", "name", e->name, "route", e->route, "mode",
                          hs_exp_mode_name(e->mode), "a", e->target_a, "b", e->target_b, "sticky_by",
                          hs_exp_sticky_name(e->sticky_by), "shadow_queue", e->shadow_queue);
    if (!o)
        return NULL;
    if (e->mode == HS_EXP_AB)
        json_object_set_new(o, "weight", json_real(e->weight_b));
    if (e->mode == HS_EXP_CANARY) {
        json_t *a = json_array();
        for (int i = 0; a && i < e->n_steps; i++) {
            const struct hs_exp_step *s = &e->steps[i];
            json_t *st = json_pack("{s:f}", "weight", s->weight);
            if (st && s->after_ms >= 0)
                json_object_set_new(st, "after_ms", json_integer(s->after_ms));
            if (st && s->at_ms >= 0) {
                char t[40];
                hs_exp_format_time(t, sizeof t, s->at_ms);
                json_object_set_new(st, "at", json_string(t));
            }
            json_array_append_new(a, st);
        }
        json_object_set_new(o, "canary", a);
    }
    json_t *rb = json_pack("{s:o,s:o,s:o,s:I}", "error_ratio", rule_json(&e->rules.error_ratio),
                           "p95_margin_ms", rule_json(&e->rules.p95_margin), "safety_rate",
                           rule_json(&e->rules.safety_rate), "window_ms", (json_int_t)e->rules.window_ms);
    if (!rb) {
        json_decref(o);
        return NULL;
    }
    json_object_set_new(o, "rollback", rb);
    return o;
}

char *hs_experiment_to_json_text(const struct hs_experiment *e)
{
    json_t *o = hs_experiment_to_json(e);
    if (!o)
        return NULL;
    /* 15 digits: what a person wrote (0.05) reads back as the same double and stays legible */
    char *t = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    json_decref(o);
    char *r = t ? hs_strdup(t) : NULL;
    free(t);
    return r;
}
