/* An experiment's definition and state: names of the enums, defaults, the
 * checks every reader ends with, ISO times, and the state's JSON (what the
 * store keeps so that a restart resumes the same weights). */
#include "ops/experiment.h"

#include "base/mem.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const char *hs_exp_mode_name(enum hs_exp_mode m)
{
    switch (m) {
    case HS_EXP_AB:
        return "ab";
    case HS_EXP_SHADOW:
        return "shadow";
    case HS_EXP_CANARY:
        return "canary";
    }
    return "?";
}

const char *hs_exp_sticky_name(enum hs_exp_sticky s)
{
    return s == HS_EXP_STICKY_KEY ? "key" : "user";
}

const char *hs_exp_variant_name(enum hs_exp_variant v)
{
    return v == HS_EXP_B ? "B" : "A";
}

static const char *const k_status[] = {"active", "rolled_back", "promoted", "stopped"};

const char *hs_exp_status_name(enum hs_exp_status s)
{
    return (unsigned)s < 4 ? k_status[s] : "?";
}

int hs_exp_status_parse(const char *s, enum hs_exp_status *out)
{
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, k_status[i])) {
            *out = (enum hs_exp_status)i;
            return HS_OK;
        }
    return HS_EINVAL;
}

int hs_exp_variant_parse(const char *s, enum hs_exp_variant *out)
{
    if (s && (!strcasecmp(s, "A") || !strcasecmp(s, "B"))) {
        *out = (s[0] == 'A' || s[0] == 'a') ? HS_EXP_A : HS_EXP_B;
        return HS_OK;
    }
    return HS_EINVAL;
}

void hs_experiment_default(struct hs_experiment *e)
{
    memset(e, 0, sizeof *e);
    e->mode = HS_EXP_AB;
    e->sticky_by = HS_EXP_STICKY_USER;
    e->rules.error_ratio = (struct hs_exp_rule){true, 2.0, 50};
    e->rules.p95_margin = (struct hs_exp_rule){true, 500.0, 50};
    e->rules.safety_rate = (struct hs_exp_rule){true, 0.05, 50};
    e->rules.window_ms = 10 * 60 * 1000;
    e->shadow_queue = 64;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

static bool name_ok(const char *s)
{
    if (!s[0])
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-' || c == '.'))
            return false;
    }
    return true;
}

static int rule_problem(const struct hs_exp_rule *r, const char *what, double max, char *msg, size_t cap)
{
    if (!r->enabled)
        return 0;
    if (!(r->limit >= 0 && r->limit <= max))
        return snprintf(msg, cap, "rollback.%s: the limit must be in 0..%g", what, max);
    if (r->min_samples < 1 || r->min_samples > 100000000)
        return snprintf(msg, cap, "rollback.%s: min_samples must be in 1..100000000", what);
    return 0;
}

int hs_experiment_check(const struct hs_experiment *e, hs_err *err)
{
    char msg[200] = "";
    const char *nm = e->name;
    if (!name_ok(e->name) || strnlen(e->name, sizeof e->name) > HS_EXP_NAME_MAX)
        return hs_err_set(err, HS_EINVAL, "experiment: name must be 1..%d of [A-Za-z0-9_.-]",
                          HS_EXP_NAME_MAX);
    if (!e->route[0] || !printable(e->route))
        snprintf(msg, sizeof msg, "route: a model or agent name is needed (printable, 1..%d bytes)",
                 HS_EXP_ROUTE_MAX);
    else if ((unsigned)e->mode > HS_EXP_CANARY)
        snprintf(msg, sizeof msg, "mode must be ab, shadow or canary");
    else if (!e->target_a[0] || !printable(e->target_a))
        snprintf(msg, sizeof msg, "a: the control's target name is needed");
    else if (!e->target_b[0] || !printable(e->target_b))
        snprintf(msg, sizeof msg, "b: the candidate's target name is needed");
    else if (!strcmp(e->target_a, e->target_b))
        snprintf(msg, sizeof msg, "a and b name the same target '%.100s'", e->target_a);
    else if (!(e->weight_b >= 0 && e->weight_b <= 1))
        snprintf(msg, sizeof msg, "weight must be in 0..1 (or 0%%..100%%)");
    else if ((unsigned)e->sticky_by > HS_EXP_STICKY_KEY)
        snprintf(msg, sizeof msg, "sticky_by must be user or key");
    else if (e->mode == HS_EXP_CANARY && (e->n_steps < 1 || e->n_steps > HS_EXP_STEPS_MAX))
        snprintf(msg, sizeof msg, "canary: a canary needs 1..%d steps", HS_EXP_STEPS_MAX);
    else if (e->mode != HS_EXP_CANARY && e->n_steps)
        snprintf(msg, sizeof msg, "canary: steps are for mode canary");
    else if (e->shadow_queue < 1 || e->shadow_queue > HS_EXP_SHADOW_QUEUE_MAX)
        snprintf(msg, sizeof msg, "shadow_queue must be in 1..%d", HS_EXP_SHADOW_QUEUE_MAX);
    else if (e->rules.window_ms < 1000 || e->rules.window_ms > 30LL * 24 * 3600 * 1000)
        snprintf(msg, sizeof msg, "rollback.window must be between 1s and 30d");
    if (!msg[0] && !rule_problem(&e->rules.error_ratio, "error_ratio", 1e6, msg, sizeof msg) &&
        !rule_problem(&e->rules.p95_margin, "p95_margin_ms", 1e9, msg, sizeof msg))
        rule_problem(&e->rules.safety_rate, "safety_rate", 1, msg, sizeof msg);
    for (int i = 0; !msg[0] && e->mode == HS_EXP_CANARY && i < e->n_steps; i++) {
        const struct hs_exp_step *s = &e->steps[i];
        if (!(s->weight >= 0 && s->weight <= 1))
            snprintf(msg, sizeof msg, "canary[%d].weight must be in 0..1 (or 0%%..100%%)", i);
        else if (i == 0 && (s->after_ms >= 0 || s->at_ms >= 0))
            snprintf(msg, sizeof msg, "canary[0] applies from the start: it takes no after or at");
        else if (i > 0 && (s->after_ms >= 0) == (s->at_ms >= 0))
            snprintf(msg, sizeof msg, "canary[%d]: give either after (a duration) or at (a time)", i);
        else if (i > 0 && s->weight < e->steps[i - 1].weight)
            snprintf(msg, sizeof msg,
                     "canary[%d].weight %g is below the step before (%g): a canary only grows", i, s->weight,
                     e->steps[i - 1].weight);
    }
    if (msg[0])
        return hs_err_set(err, HS_EINVAL, "experiment '%s': %s", nm, msg);
    return HS_OK;
}

/* ---- times ---- */

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int hs_exp_parse_time(const char *s, int64_t *ms)
{
    int Y, M, D, h, m, sec;
    if (!s || strlen(s) < 20 || !digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) || s[7] != '-' ||
        !digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) || s[13] != ':' ||
        !digits(s + 14, 2, &m) || s[16] != ':' || !digits(s + 17, 2, &sec))
        return HS_EINVAL;
    if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 59)
        return HS_EINVAL;
    const char *p = s + 19;
    int frac = 0;
    if (*p == '.') {
        p++;
        int scale = 100, nd = 0;
        while (*p >= '0' && *p <= '9') {
            if (nd < 3)
                frac += (*p - '0') * scale;
            scale /= 10;
            p++;
            nd++;
        }
        if (!nd)
            return HS_EINVAL;
    }
    int64_t off_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return HS_EINVAL;
        off_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return HS_EINVAL;
    }
    if (*p)
        return HS_EINVAL;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    /* timegm normalises 31 February into March; such a date is a typo */
    struct tm back;
    if (t == (time_t)-1 || !gmtime_r(&t, &back) || back.tm_mday != D || back.tm_mon != M - 1)
        return HS_EINVAL;
    *ms = ((int64_t)t - off_min * 60) * 1000 + frac;
    return HS_OK;
}

void hs_exp_format_time(char *out, size_t cap, int64_t ms)
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000));
    int frac = (int)(ms - (int64_t)t * 1000);
    struct tm tm;
    char base[32];
    if (!gmtime_r(&t, &tm) || !strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm)) {
        snprintf(out, cap, "%lld", (long long)ms);
        return;
    }
    if (frac)
        snprintf(out, cap, "%s.%03dZ", base, frac);
    else
        snprintf(out, cap, "%sZ", base);
}

/* ---- state ---- */

void hs_exp_state_init(struct hs_exp_state *st, const struct hs_experiment *e, int64_t now_ms)
{
    memset(st, 0, sizeof *st);
    st->status = HS_EXP_ACTIVE;
    st->step = 0;
    st->step_ms = now_ms;
    st->updated_ms = now_ms;
    if (e->mode == HS_EXP_CANARY && e->n_steps > 0)
        st->weight_b = e->steps[0].weight;
    else if (e->mode == HS_EXP_AB)
        st->weight_b = e->weight_b;
    else
        st->weight_b = 0;
}

char *hs_exp_state_to_json_text(const struct hs_exp_state *st)
{
    json_t *o = json_pack("{s:f,s:i,s:I,s:s,s:I}", "weight_b", st->weight_b, "step", st->step, "step_ms",
                          (json_int_t)st->step_ms, "status", hs_exp_status_name(st->status), "updated_ms",
                          (json_int_t)st->updated_ms);
    if (!o)
        return NULL;
    char *t = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!t)
        return NULL;
    char *r = hs_strdup(t);
    free(t);
    return r;
}

int hs_exp_state_from_json_text(struct hs_exp_state *st, const char *text, hs_err *err)
{
    memset(st, 0, sizeof *st);
    json_error_t je;
    json_t *o = text ? json_loads(text, 0, &je) : NULL;
    double w = NAN;
    json_int_t step = -1, step_ms = 0, upd = 0;
    const char *status = NULL;
    int rc = HS_OK;
    if (!json_is_object(o) ||
        json_unpack(o, "{s:F,s:I,s:I,s:s,s:I}", "weight_b", &w, "step", &step, "step_ms", &step_ms, "status",
                    &status, "updated_ms", &upd) != 0 ||
        !(w >= 0 && w <= 1) || step < 0 || step >= HS_EXP_STEPS_MAX ||
        hs_exp_status_parse(status, &st->status))
        rc = hs_err_set(err, HS_EFORMAT, "experiment state: not a valid state object");
    else {
        st->weight_b = w;
        st->step = (int)step;
        st->step_ms = step_ms;
        st->updated_ms = upd;
    }
    json_decref(o);
    return rc;
}
