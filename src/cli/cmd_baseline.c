/* 'hestia baseline set|show|clear': the monitor's baseline in the store.
 * `set` computes it from the last N answered requests on record (latency,
 * errors, feedback, safety flags, confidence) with the monitor's own
 * statistics (ops/monitor.h); a running server picks it up at its next
 * monitor round and compares its windows with it from then on. */
#include "cli/cli.h"

#include "base/mem.h"
#include "base/parse.h"
#include "ops/monitor.h"
#include "ops/store.h"
#include "ops/store_ops.h"
#include "ops/store_records.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CMD "baseline"
#define DEFAULT_STORE "./hestia.db"
#define NAME "default"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hestia baseline set [--last N] [--store FILE]\n"
            "       hestia baseline show [--store FILE]\n"
            "       hestia baseline clear [--store FILE]\n"
            "\n"
            "set:   the baseline becomes the statistics of the last N answered requests on record\n"
            "       (default 500): latency mean and percentiles, error rate, thumbs up/down, safety\n"
            "       flag rate, confidence. A running server compares its windows with it from its\n"
            "       next monitor round on.\n"
            "show:  the stored baseline as JSON.\n"
            "clear: removes it (a server then captures its first requests again after a restart).\n"
            "--store FILE  the store (default %s)\n",
            DEFAULT_STORE);
}

struct feed {
    hs_monitor *m;
    int n;
};

static void observe(void *user, const struct hs_record_obs *r)
{
    struct feed *f = user;
    struct hs_monitor_obs o = {
        .latency_ms = r->status >= 200 && r->status < 300 ? r->latency_ms : -1,
        .error = r->status < 200 || r->status >= 300,
        .safety_flagged = r->safety_flagged,
        .confidence = r->confidence,
    };
    hs_monitor_observe(f->m, &o);
    if (r->feedback)
        hs_monitor_feedback(f->m, r->feedback);
    f->n++;
}

static int cmd_set(hs_store *s, int last)
{
    struct hs_monitor_params p;
    hs_monitor_params_default(&p);
    p.window = last;
    p.baseline_requests = 0;
    hs_monitor *m = NULL;
    hs_err err = {0};
    if (hs_monitor_create(&p, &m, &err))
        return hs_cli_fail_err(CMD, &err);
    struct feed f = {m, 0};
    struct hs_monitor_stats st;
    char *json = NULL;
    int rc = hs_store_recent_requests(s, last, observe, &f, &err);
    if (!rc && f.n == 0)
        rc = hs_err_set(&err, HS_ENOTFOUND, "the store has no answered requests yet");
    if (!rc)
        rc = hs_monitor_snapshot(m, HS_MON_REQUESTS, &st, &err);
    if (!rc && !(json = hs_monitor_stats_to_json(&st)))
        rc = hs_err_set(&err, HS_ENOMEM, "out of memory");
    if (!rc)
        rc = hs_store_baseline_put(s, NAME, 0, json, &err);
    hs_monitor_free(m);
    if (rc) {
        hs_free(json);
        return hs_cli_fail_err(CMD, &err);
    }
    printf("%s\n", json);
    hs_free(json);
    fprintf(stderr, "hestia baseline: set from the last %d requests\n", f.n);
    return 0;
}

int hs_cmd_baseline(int argc, char **argv)
{
    const char *store = DEFAULT_STORE, *sub = argc > 1 ? argv[1] : NULL;
    int last = 500;
    if (!sub || !strcmp(sub, "-h") || !strcmp(sub, "--help")) {
        usage(sub ? stdout : stderr);
        return sub ? 0 : 2;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--store") || !strcmp(a, "--last")) && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(a, "--store"))
                store = v;
            else if (hs_parse_int(v, 1, 1000000, &last))
                return hs_cli_usage(CMD, "--last needs a whole number in [1, 1000000]");
        } else {
            return hs_cli_usage(CMD, "unknown or incomplete option '%s'", a);
        }
    }
    if (strcmp(sub, "set") && strcmp(sub, "show") && strcmp(sub, "clear"))
        return hs_cli_usage(CMD, "unknown subcommand '%s' (set, show or clear)", sub);
    if (access(store, F_OK) != 0)
        return hs_cli_fail(CMD, "%s: no store there (--store FILE names another)", store);
    hs_store *s = NULL;
    hs_err err = {0};
    if (hs_store_open(store, &s, &err))
        return hs_cli_fail_err(CMD, &err);
    int rc = 0;
    if (!strcmp(sub, "set")) {
        rc = cmd_set(s, last);
    } else if (!strcmp(sub, "show")) {
        char *details = NULL;
        int64_t ts = 0;
        if (hs_store_baseline_get(s, NAME, &ts, &details, &err))
            rc = hs_cli_fail_err(CMD, &err);
        else
            printf("%s\n", details);
        hs_free(details);
    } else if (hs_store_baseline_delete(s, NAME, &err)) {
        rc = hs_cli_fail_err(CMD, &err);
    } else {
        printf("cleared the baseline\n");
    }
    hs_store_close(s);
    return rc;
}
