/* 'hestia experiment list|show|add|report|shadow-report|decide|rollback|
 * promote': the operator's side of A/B tests, shadows and canaries, on the
 * store (ops/store_experiments.h does the work, ops/experiment.h the
 * statistics). A running server reads the store's state, so rollback and
 * promote made here reach it. */
#include "cli/cli.h"

#include "base/mem.h"
#include "base/parse.h"
#include "ops/experiment.h"
#include "ops/store_experiments.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CMD "experiment"
#define DEFAULT_STORE "./hestia.db"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: hestia experiment list [--store FILE] [--json]\n"
        "       hestia experiment show NAME [--store FILE] [--json]\n"
        "       hestia experiment add DEFINITION.json [--store FILE]\n"
        "       hestia experiment report NAME [--since TIME] [--store FILE] [--json]\n"
        "       hestia experiment shadow-report NAME [--threshold X] [--samples N] [--store FILE] [--json]\n"
        "       hestia experiment decide NAME [--since TIME] [--store FILE] [--json]\n"
        "       hestia experiment rollback NAME [--reason TEXT] [--store FILE]\n"
        "       hestia experiment promote NAME [--reason TEXT] [--store FILE]\n"
        "\n"
        "list      every experiment: mode, route, B's weight, status\n"
        "show      the definition, the state and the history of weight changes\n"
        "add       writes a definition (the /admin/experiments body, '-' = stdin); an existing\n"
        "          experiment keeps its state\n"
        "report    per variant: requests, error rate, latency p50/p95/p99, thumbs-up rate,\n"
        "          safety-flag rate, confidence, expert scores\n"
        "shadow-report  agreement rate (similarity >= X, default 0.8), latencies side by side,\n"
        "          the N least similar answers (default 5)\n"
        "decide    the promotion criteria, each with value and pass/fail, and the verdict;\n"
        "          exit 0 PROMOTE, 3 KEEP, 4 NOT ENOUGH DATA\n"
        "rollback  B's weight to 0, status rolled_back, recorded with the reason (default manual)\n"
        "promote   B's weight to 1, status promoted, recorded\n"
        "--since TIME  only records from then on (2026-12-01T00:00:00Z)\n"
        "--store FILE  the store (default %s)\n"
        "Exit status: 1 on errors, 2 for usage.\n",
        DEFAULT_STORE);
}

struct opts {
    const char *sub, *name, *store, *reason;
    bool json;
    int64_t since_ms;
    double threshold;
    int samples;
};

static int parse(int argc, char **argv, struct opts *o)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--store") || !strcmp(a, "--reason") || !strcmp(a, "--since") ||
                   !strcmp(a, "--threshold") || !strcmp(a, "--samples")) {
            if (i + 1 >= argc)
                return hs_cli_usage(CMD, "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--store"))
                o->store = v;
            else if (!strcmp(a, "--reason"))
                o->reason = v;
            else if (!strcmp(a, "--since") && hs_exp_parse_time(v, &o->since_ms))
                return hs_cli_usage(CMD, "--since '%s' is not a time such as 2026-12-01T00:00:00Z", v);
            else if (!strcmp(a, "--threshold") &&
                     (hs_parse_f64(v, &o->threshold) || !(o->threshold >= 0) || o->threshold > 1))
                return hs_cli_usage(CMD, "--threshold needs a number in [0, 1]");
            else if (!strcmp(a, "--samples") && hs_parse_int(v, 0, 1000, &o->samples))
                return hs_cli_usage(CMD, "--samples needs a whole number in [0, 1000]");
        } else if (a[0] == '-' && a[1]) {
            return hs_cli_usage(CMD, "unknown option '%s'", a);
        } else if (!o->name) {
            o->name = a;
        } else {
            return hs_cli_usage(CMD, "unexpected argument '%s'", a);
        }
    }
    return 0;
}

static int open_store(const char *path, bool create, hs_store **out)
{
    if (!create && access(path, F_OK) != 0)
        return hs_cli_fail(CMD, "%s: no store there (--store FILE names another)", path);
    hs_err err = {0};
    if (hs_store_open(path, out, &err))
        return hs_cli_fail_err(CMD, &err);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *num_or_null(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static void print_json(json_t *o)
{
    json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    fputc('\n', stdout);
    json_decref(o);
}

/* "12.5%" or "-" */
static const char *pct(char *buf, size_t cap, double x)
{
    if (isfinite(x))
        snprintf(buf, cap, "%.1f%%", 100 * x);
    else
        snprintf(buf, cap, "-");
    return buf;
}

static const char *num(char *buf, size_t cap, double x, int decimals)
{
    if (isfinite(x))
        snprintf(buf, cap, "%.*f", decimals, x);
    else
        snprintf(buf, cap, "-");
    return buf;
}

static json_t *state_json(const struct hs_exp_state *st)
{
    char t[40];
    hs_exp_format_time(t, sizeof t, st->updated_ms);
    return json_pack("{s:s,s:f,s:i,s:I,s:s}", "status", hs_exp_status_name(st->status), "weight_b",
                     st->weight_b, "step", st->step, "step_ms", (json_int_t)st->step_ms, "updated", t);
}

/* ---- list ---- */

struct list_ctx {
    bool json;
    json_t *arr;
    int n;
};

static void list_one(void *user, const struct hs_experiment *e, const struct hs_exp_state *st)
{
    struct list_ctx *c = user;
    c->n++;
    if (c->json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o}", "name", e->name, "mode", hs_exp_mode_name(e->mode),
                              "route", e->route, "a", e->target_a, "b", e->target_b, "state", state_json(st));
        json_array_append_new(c->arr, o);
        return;
    }
    char w[16], t[40];
    hs_exp_format_time(t, sizeof t, st->updated_ms);
    char step[16] = "-";
    if (e->mode == HS_EXP_CANARY)
        snprintf(step, sizeof step, "%d/%d", st->step + 1, e->n_steps);
    printf("%-20s %-7s %-20s %8s %-6s %-12s %s\n", e->name, hs_exp_mode_name(e->mode), e->route,
           pct(w, sizeof w, st->weight_b), step, hs_exp_status_name(st->status), t);
}

static int cmd_list(hs_store *s, const struct opts *o)
{
    struct list_ctx c = {o->json, o->json ? json_array() : NULL, 0};
    if (!o->json)
        printf("%-20s %-7s %-20s %8s %-6s %-12s %s\n", "NAME", "MODE", "ROUTE", "WEIGHT_B", "STEP", "STATUS",
               "UPDATED");
    hs_err err = {0};
    if (hs_store_exp_list(s, list_one, &c, &err)) {
        json_decref(c.arr);
        return hs_cli_fail_err(CMD, &err);
    }
    if (o->json)
        print_json(c.arr);
    return 0;
}

/* ---- show ---- */

struct ev_ctx {
    bool json;
    json_t *arr;
};

static void show_event(void *user, const struct hs_exp_event *ev)
{
    struct ev_ctx *c = user;
    char t[40], w[16];
    hs_exp_format_time(t, sizeof t, ev->ts_ms);
    if (c->json)
        json_array_append_new(c->arr, json_pack("{s:s,s:s,s:o,s:s?}", "time", t, "kind", ev->kind, "weight_b",
                                                num_or_null(ev->weight_b), "reason", ev->reason));
    else
        printf("  %-24s %-9s %7s  %s\n", t, ev->kind, pct(w, sizeof w, ev->weight_b),
               ev->reason ? ev->reason : "");
}

static int cmd_show(hs_store *s, const struct opts *o)
{
    struct hs_experiment e;
    struct hs_exp_state st;
    hs_err err = {0};
    if (hs_store_exp_get(s, o->name, &e, &st, &err))
        return hs_cli_fail_err(CMD, &err);
    struct ev_ctx c = {o->json, o->json ? json_array() : NULL};
    if (!o->json) {
        char *def = hs_experiment_to_json_text(&e);
        char w[16], t[40];
        hs_exp_format_time(t, sizeof t, st.updated_ms);
        printf("experiment %s: %s on route %s, A = %s, B = %s, sticky by %s\n", e.name,
               hs_exp_mode_name(e.mode), e.route, e.target_a, e.target_b, hs_exp_sticky_name(e.sticky_by));
        printf("state:      %s, B weight %s", hs_exp_status_name(st.status), pct(w, sizeof w, st.weight_b));
        if (e.mode == HS_EXP_CANARY)
            printf(", canary step %d of %d", st.step + 1, e.n_steps);
        printf(", updated %s\n", t);
        printf("definition: %s\nhistory:\n", def ? def : "(out of memory)");
        hs_free(def);
    }
    if (hs_store_exp_events(s, o->name, show_event, &c, &err)) {
        json_decref(c.arr);
        return hs_cli_fail_err(CMD, &err);
    }
    if (o->json)
        print_json(json_pack("{s:o,s:o,s:o}", "definition", hs_experiment_to_json(&e), "state",
                             state_json(&st), "history", c.arr));
    return 0;
}

/* ---- add ---- */

static char *read_all(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = hs_malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n < cap - 1)
            break;
        char *nb = cap < (64u << 20) ? hs_realloc(buf, cap * 2) : NULL;
        if (!nb) {
            hs_free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    bool bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (!buf || bad) {
        hs_free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int cmd_add(const struct opts *o)
{
    size_t len;
    char *text = read_all(o->name, &len);
    if (!text)
        return hs_cli_fail(CMD, "%s: cannot read it", o->name);
    struct hs_experiment e;
    hs_err err = {0};
    int rc = hs_experiment_from_json_text(&e, text, &err);
    hs_free(text);
    if (rc)
        return hs_cli_fail(CMD, "%s: %s", o->name, err.msg);
    hs_store *s;
    if ((rc = open_store(o->store, true, &s)))
        return rc;
    struct hs_exp_state st;
    bool created;
    rc = hs_store_exp_ensure(s, &e, now_ms(), &st, &created, &err);
    hs_store_close(s);
    if (rc)
        return hs_cli_fail_err(CMD, &err);
    char w[16];
    printf("%s experiment '%s' (%s, B weight %s, %s)\n", created ? "created" : "updated", e.name,
           hs_exp_mode_name(e.mode), pct(w, sizeof w, st.weight_b), hs_exp_status_name(st.status));
    return 0;
}

/* ---- report ---- */

static json_t *variant_json(const char *target, const struct hs_exp_variant_stats *v)
{
    return json_pack("{s:s,s:I,s:I,s:o,s:o,s:o,s:o,s:I,s:I,s:o,s:I,s:o,s:o,s:I,s:o,s:o}", "target", target,
                     "requests", (json_int_t)v->requests, "errors", (json_int_t)v->errors, "error_rate",
                     num_or_null(v->error_rate), "latency_p50_ms", num_or_null(v->p50_ms), "latency_p95_ms",
                     num_or_null(v->p95_ms), "latency_p99_ms", num_or_null(v->p99_ms), "thumbs_up",
                     (json_int_t)v->thumbs_up, "thumbs_down", (json_int_t)v->thumbs_down, "thumbs_up_rate",
                     num_or_null(v->up_rate), "safety_flagged", (json_int_t)v->safety_flagged,
                     "safety_flag_rate", num_or_null(v->safety_rate), "confidence_mean",
                     num_or_null(v->confidence_mean), "rated", (json_int_t)v->n_scored, "expert_accuracy",
                     num_or_null(v->accuracy_mean), "expert_safety", num_or_null(v->safety_score_mean));
}

static void variant_row(const char *name, const struct hs_exp_variant_stats *v)
{
    char b[10][24];
    printf("%-7s %8lld %7s %7s %7s %7s %9s %8s %10s %6lld %8s %8s\n", name, (long long)v->requests,
           pct(b[0], 24, v->error_rate), num(b[1], 24, v->p50_ms, 0), num(b[2], 24, v->p95_ms, 0),
           num(b[3], 24, v->p99_ms, 0), pct(b[4], 24, v->up_rate), pct(b[5], 24, v->safety_rate),
           num(b[6], 24, v->confidence_mean, 3), (long long)v->n_scored, num(b[7], 24, v->accuracy_mean, 2),
           num(b[8], 24, v->safety_score_mean, 2));
}

/* Reads the experiment and both variants' aggregates. */
static int load_both(hs_store *s, const struct opts *o, struct hs_experiment *e, struct hs_exp_state *st,
                     struct hs_exp_variant_stats *a, struct hs_exp_variant_stats *b)
{
    hs_err err = {0};
    memset(a, 0, sizeof *a);
    memset(b, 0, sizeof *b);
    if (hs_store_exp_get(s, o->name, e, st, &err) ||
        hs_store_exp_variant_stats(s, o->name, HS_EXP_A, o->since_ms, a, &err) ||
        hs_store_exp_variant_stats(s, o->name, HS_EXP_B, o->since_ms, b, &err)) {
        hs_exp_variant_stats_free(a);
        hs_exp_variant_stats_free(b);
        return hs_cli_fail_err(CMD, &err);
    }
    return 0;
}

static int cmd_report(hs_store *s, const struct opts *o)
{
    struct hs_experiment e;
    struct hs_exp_state st;
    struct hs_exp_variant_stats a, b;
    int rc = load_both(s, o, &e, &st, &a, &b);
    if (rc)
        return rc;
    if (o->json) {
        print_json(json_pack("{s:s,s:s,s:s,s:o,s:{s:o,s:o}}", "name", e.name, "mode",
                             hs_exp_mode_name(e.mode), "route", e.route, "state", state_json(&st), "variants",
                             "A", variant_json(e.target_a, &a), "B", variant_json(e.target_b, &b)));
    } else {
        char w[16];
        printf("experiment %s (%s on %s): A = %s, B = %s; B weight %s, %s\n\n", e.name,
               hs_exp_mode_name(e.mode), e.route, e.target_a, e.target_b, pct(w, sizeof w, st.weight_b),
               hs_exp_status_name(st.status));
        printf("%-7s %8s %7s %7s %7s %7s %9s %8s %10s %6s %8s %8s\n", "VARIANT", "REQUESTS", "ERRORS",
               "P50_MS", "P95_MS", "P99_MS", "THUMBS_UP", "SAFETY", "CONFIDENCE", "RATED", "ACCURACY",
               "SAFETY/5");
        variant_row("A", &a);
        variant_row("B", &b);
    }
    hs_exp_variant_stats_free(&a);
    hs_exp_variant_stats_free(&b);
    return 0;
}

/* ---- shadow-report ---- */

struct dis_ctx {
    bool json;
    json_t *arr;
};

/* The first line of an answer, cut to fit a terminal. */
static void excerpt(char *out, size_t cap, const char *s)
{
    size_t n = s ? strcspn(s, "\r\n") : 0;
    if (n > cap - 4)
        n = cap - 4;
    snprintf(out, cap, "%.*s%s", (int)n, s ? s : "", s && s[n] ? "..." : "");
}

static void show_disagreement(void *user, const struct hs_shadow_result *r)
{
    struct dis_ctx *c = user;
    if (c->json) {
        json_array_append_new(c->arr, json_pack("{s:s,s:f,s:i,s:s?,s:s?}", "request_id", r->request_id,
                                                "similarity", r->similarity, "status_b", r->status_b,
                                                "answer_a", r->answer_a, "answer_b", r->answer_b));
        return;
    }
    char a[100], b[100];
    excerpt(a, sizeof a, r->answer_a);
    excerpt(b, sizeof b, r->answer_b);
    printf("  %s  similarity %.2f  B status %d\n    A: %s\n    B: %s\n", r->request_id, r->similarity,
           r->status_b, a, b);
}

static int cmd_shadow_report(hs_store *s, const struct opts *o)
{
    struct hs_experiment e;
    hs_err err = {0};
    if (hs_store_exp_get(s, o->name, &e, NULL, &err))
        return hs_cli_fail_err(CMD, &err);
    struct hs_shadow_summary m;
    if (hs_store_shadow_summary(s, o->name, o->threshold, &m, &err))
        return hs_cli_fail_err(CMD, &err);
    struct dis_ctx c = {o->json, o->json ? json_array() : NULL};
    if (!o->json) {
        char b[6][24];
        printf("shadow %s: A = %s, B = %s\n", e.name, e.target_a, e.target_b);
        printf("results %lld, B errors %lld, agreement %s (similarity >= %.2f over %lld compared), mean "
               "similarity "
               "%s\n",
               (long long)m.n, (long long)m.b_errors, pct(b[0], 24, m.agreement_rate), o->threshold,
               (long long)m.n_similarity, num(b[1], 24, m.similarity_mean, 3));
        printf("latency ms   p50 A %s  B %s   p95 A %s  B %s   (over %lld pairs)\n",
               num(b[2], 24, m.a_p50_ms, 0), num(b[3], 24, m.b_p50_ms, 0), num(b[4], 24, m.a_p95_ms, 0),
               num(b[5], 24, m.b_p95_ms, 0), (long long)m.n_latency);
        if (o->samples)
            printf("least similar answers:\n");
    }
    if (o->samples &&
        hs_store_shadow_disagreements(s, o->name, o->threshold, o->samples, show_disagreement, &c, &err)) {
        json_decref(c.arr);
        return hs_cli_fail_err(CMD, &err);
    }
    if (o->json)
        print_json(json_pack("{s:s,s:I,s:I,s:I,s:I,s:o,s:o,s:f,s:{s:o,s:o,s:o,s:o},s:o}", "name", e.name,
                             "results", (json_int_t)m.n, "b_errors", (json_int_t)m.b_errors, "compared",
                             (json_int_t)m.n_similarity, "agree", (json_int_t)m.agree, "agreement_rate",
                             num_or_null(m.agreement_rate), "similarity_mean", num_or_null(m.similarity_mean),
                             "threshold", o->threshold, "latency_ms", "a_p50", num_or_null(m.a_p50_ms),
                             "a_p95", num_or_null(m.a_p95_ms), "b_p50", num_or_null(m.b_p50_ms), "b_p95",
                             num_or_null(m.b_p95_ms), "disagreements", c.arr ? c.arr : json_array()));
    return 0;
}

/* ---- decide ---- */

static int cmd_decide(hs_store *s, const struct opts *o)
{
    struct hs_experiment e;
    struct hs_exp_state st;
    struct hs_exp_variant_stats a, b;
    int rc = load_both(s, o, &e, &st, &a, &b);
    if (rc)
        return rc;
    struct hs_exp_decision d;
    hs_exp_decide(&a, &b, NULL, &d);
    hs_exp_variant_stats_free(&a);
    hs_exp_variant_stats_free(&b);
    if (o->json) {
        json_t *arr = json_array();
        for (int i = 0; i < HS_EXP_CRITERIA; i++)
            json_array_append_new(arr, json_pack("{s:s,s:o,s:f,s:s,s:s}", "criterion", d.c[i].name, "value",
                                                 num_or_null(d.c[i].value), "threshold", d.c[i].threshold,
                                                 "result", hs_exp_check_name(d.c[i].result), "detail",
                                                 d.c[i].detail));
        print_json(json_pack("{s:s,s:s,s:o,s:o,s:o,s:o}", "name", e.name, "verdict",
                             hs_exp_verdict_name(d.verdict), "p_value", num_or_null(d.p_value), "t",
                             num_or_null(d.t), "df", num_or_null(d.df), "criteria", arr));
    } else {
        printf("%-14s %12s %10s  %-6s %s\n", "CRITERION", "VALUE", "THRESHOLD", "RESULT", "DETAIL");
        for (int i = 0; i < HS_EXP_CRITERIA; i++) {
            char v[24];
            if (isfinite(d.c[i].value))
                snprintf(v, sizeof v, "%.4g", d.c[i].value);
            else
                snprintf(v, sizeof v, "-");
            printf("%-14s %12s %10g  %-6s %s\n", d.c[i].name, v, d.c[i].threshold,
                   hs_exp_check_name(d.c[i].result), d.c[i].detail);
        }
        printf("\nverdict: %s\n", hs_exp_verdict_name(d.verdict));
    }
    return d.verdict == HS_EXP_PROMOTE ? 0 : d.verdict == HS_EXP_KEEP ? 3 : 4;
}

/* ---- rollback / promote ---- */

static int cmd_change(hs_store *s, const struct opts *o, bool promote)
{
    struct hs_experiment e;
    struct hs_exp_state st;
    hs_err err = {0};
    if (hs_store_exp_get(s, o->name, &e, &st, &err))
        return hs_cli_fail_err(CMD, &err);
    enum hs_exp_status to = promote ? HS_EXP_PROMOTED : HS_EXP_ROLLED_BACK;
    if (st.status == to)
        return hs_cli_fail(CMD, "'%s' is already %s", e.name, hs_exp_status_name(to));
    st.status = to;
    st.weight_b = promote ? 1 : 0;
    st.updated_ms = now_ms();
    char reason[300];
    if (o->reason)
        snprintf(reason, sizeof reason, "manual: %.280s", o->reason);
    else
        snprintf(reason, sizeof reason, "manual");
    if (hs_store_exp_update(s, e.name, &st, promote ? HS_EXP_EV_PROMOTE : HS_EXP_EV_ROLLBACK, reason, &err))
        return hs_cli_fail_err(CMD, &err);
    if (promote)
        printf("promoted '%s': B (%s) now answers every request\n", e.name, e.target_b);
    else
        printf("rolled back '%s': A (%s) answers every request\n", e.name, e.target_a);
    return 0;
}

int hs_cmd_experiment(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    struct opts o = {.sub = argv[1], .store = DEFAULT_STORE, .threshold = 0.8, .samples = 5};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    static const char *const subs[] = {"list",   "show",          "add",      "report",
                                       "decide", "shadow-report", "rollback", "promote"};
    bool known = false;
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        known = known || !strcmp(o.sub, subs[i]);
    if (!known)
        return hs_cli_usage(
            CMD,
            "unknown subcommand '%s' (list, show, add, report, shadow-report, decide, rollback, "
            "promote)",
            o.sub);
    bool is_list = !strcmp(o.sub, "list");
    if (is_list && o.name)
        return hs_cli_usage(CMD, "list takes no name");
    if (!is_list && !o.name)
        return hs_cli_usage(CMD, "%s needs %s", o.sub,
                            strcmp(o.sub, "add") ? "an experiment's NAME" : "a FILE");
    if (!strcmp(o.sub, "add"))
        return cmd_add(&o);
    hs_store *s;
    if ((rc = open_store(o.store, false, &s)))
        return rc;
    if (is_list)
        rc = cmd_list(s, &o);
    else if (!strcmp(o.sub, "show"))
        rc = cmd_show(s, &o);
    else if (!strcmp(o.sub, "report"))
        rc = cmd_report(s, &o);
    else if (!strcmp(o.sub, "shadow-report"))
        rc = cmd_shadow_report(s, &o);
    else if (!strcmp(o.sub, "decide"))
        rc = cmd_decide(s, &o);
    else
        rc = cmd_change(s, &o, !strcmp(o.sub, "promote"));
    hs_store_close(s);
    return rc;
}
