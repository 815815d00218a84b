/* 'hestia report retrain': the guide's retraining criteria from the store
 * (ops/retrain.h), each with its value and verdict, as a table or JSON.
 * Exit 0 when no criterion calls for retraining, 3 when one does. */
#include "cli/cli.h"

#include "base/parse.h"
#include "ops/retrain.h"
#include "ops/store.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CMD "report"
#define DEFAULT_STORE "./hestia.db"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hestia report retrain [--store FILE] [--trained YYYY-MM-DD] [--days N] [--json]\n"
            "\n"
            "The retraining criteria, each with its value and verdict (ok, retrain, unknown):\n"
            "  concept_drift     the latest 'hestia drift concept' run drifted\n"
            "  satisfaction      thumbs up below 60%% of the feedback of the last N days (default 30)\n"
            "  safety_flag_rate  more than 5%% of the answers of the last N days flagged\n"
            "  data_drift        every 'hestia drift data' run of the last 4 weeks drifted\n"
            "  model_age         trained more than 6 months ago (--trained gives the date)\n"
            "Exit status: 0 when none says retrain, 3 when one does, 1 on errors, 2 for usage.\n"
            "--store FILE  the store (default %s)\n",
            DEFAULT_STORE);
}

/* "2026-05-01" -> unix ms (UTC midnight); -1 when malformed. */
static int64_t parse_date(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%Y-%m-%d", &tm);
    if (!end || *end)
        return -1;
    time_t t = timegm(&tm);
    return t < 0 ? -1 : (int64_t)t * 1000;
}

int hs_cmd_report(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL, *store = DEFAULT_STORE, *trained = NULL;
    int days = 30;
    bool as_json = false;
    if (!sub || !strcmp(sub, "-h") || !strcmp(sub, "--help")) {
        usage(sub ? stdout : stderr);
        return sub ? 0 : 2;
    }
    if (strcmp(sub, "retrain"))
        return hs_cli_usage(CMD, "unknown report '%s' (retrain)", sub);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            as_json = true;
        } else if ((!strcmp(a, "--store") || !strcmp(a, "--trained") || !strcmp(a, "--days")) && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(a, "--store"))
                store = v;
            else if (!strcmp(a, "--trained"))
                trained = v;
            else if (hs_parse_int(v, 1, 3650, &days))
                return hs_cli_usage(CMD, "--days needs a whole number in [1, 3650]");
        } else {
            return hs_cli_usage(CMD, "unknown or incomplete option '%s'", a);
        }
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct hs_retrain_params p;
    hs_retrain_params_default(&p, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    p.window_days = days;
    if (trained && (p.trained_ms = parse_date(trained)) < 0)
        return hs_cli_usage(CMD, "--trained '%s' is not a date (YYYY-MM-DD)", trained);
    if (access(store, F_OK) != 0)
        return hs_cli_fail(CMD, "%s: no store there (--store FILE names another)", store);
    hs_store *s = NULL;
    hs_err err = {0};
    if (hs_store_open(store, &s, &err))
        return hs_cli_fail_err(CMD, &err);
    struct hs_retrain_report r;
    int rc = hs_retrain_evaluate(s, &p, &r, &err);
    hs_store_close(s);
    if (rc)
        return hs_cli_fail_err(CMD, &err);
    if (as_json) {
        json_t *a = json_array();
        for (int i = 0; i < HS_RETRAIN_N; i++)
            json_array_append_new(a, json_pack("{s:s,s:s,s:o,s:f,s:s}", "criterion", r.c[i].name, "verdict",
                                               hs_verdict_name(r.c[i].verdict), "value",
                                               isnan(r.c[i].value) ? json_null() : json_real(r.c[i].value),
                                               "limit", r.c[i].limit, "detail", r.c[i].text));
        json_t *o = json_pack("{s:b,s:o}", "retrain", r.retrain, "criteria", a);
        json_dumpf(o, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(o);
    } else {
        printf("%-18s %-8s %s\n", "criterion", "verdict", "detail");
        for (int i = 0; i < HS_RETRAIN_N; i++)
            printf("%-18s %-8s %s\n", r.c[i].name, hs_verdict_name(r.c[i].verdict), r.c[i].text);
        printf("\n%s\n", r.retrain ? "retraining is recommended" : "no criterion calls for retraining");
    }
    return r.retrain ? 3 : 0;
}
