/* The server's monitor (issue 6): every answered request is observed into
 * the rolling windows (O(1), under the monitor's own lock, never the disk);
 * a thread of its own evaluates the thresholds every interval_s against the
 * baseline and reports each breach. The baseline survives restarts: one
 * captured after start (the first baseline_requests requests) or set by
 * `hestia baseline set` is kept in the store as "default" and read back at
 * start and whenever the store's copy changes. GET /api/metrics shows the
 * windows and the baseline. */
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "ops/store_alerts.h"
#include "ops/store_ops.h"
#include "server/server_impl.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>

#define BASELINE_NAME "default"
#define MAX_BREACHES 16

/* The store's baseline, when it is newer than the one in use. */
static void load_baseline(hs_server *s)
{
    int64_t ts = 0;
    char *details = NULL;
    hs_err err = {0};
    if (hs_store_baseline_get(s->store, BASELINE_NAME, &ts, &details, &err))
        return;
    struct hs_monitor_stats b;
    if (ts != s->baseline_ts && hs_monitor_stats_from_json(&b, details, &err) == HS_OK) {
        hs_monitor_set_baseline(s->monitor, &b);
        s->baseline_ts = ts;
        hs_log_info("monitor.baseline", "source=store ts_ms=%lld requests=%lld", (long long)ts,
                    (long long)b.count);
    } else if (ts != s->baseline_ts) {
        hs_log_warn("monitor.baseline", "msg=\"the stored baseline is unreadable: %s\"", err.msg);
        s->baseline_ts = ts;
    }
    hs_free(details);
}

/* A baseline captured in this process goes to the store once. */
static void save_captured(hs_server *s)
{
    int captured = 0, target = 0;
    hs_monitor_capture_progress(s->monitor, &captured, &target);
    struct hs_monitor_stats b;
    hs_err err = {0};
    if (s->baseline_saved || target > 0 || hs_monitor_get_baseline(s->monitor, &b, &err))
        return;
    s->baseline_saved = true;
    if (s->baseline_ts) /* it came from the store */
        return;
    char *json = hs_monitor_stats_to_json(&b);
    int64_t now = hs_srv_unix_ms();
    if (json && hs_store_baseline_put(s->store, BASELINE_NAME, now, json, &err) == HS_OK) {
        s->baseline_ts = now;
        hs_log_info("monitor.baseline", "source=captured requests=%lld", (long long)b.count);
    }
    hs_free(json);
}

static void check_round(hs_server *s)
{
    load_baseline(s);
    save_captured(s);
    struct hs_monitor_breach br[MAX_BREACHES];
    hs_err err = {0};
    int n = hs_monitor_check(s->monitor, &s->cfg->monitor.thresholds, br, MAX_BREACHES, &err);
    if (n < 0)
        hs_log_warn("monitor.check", "msg=\"%s\"", err.msg);
    for (int i = 0; i < n && i < MAX_BREACHES; i++) {
        hs_log_warn("monitor.breach", "type=%s severity=%s window=%s value=%g limit=%g msg=\"%s\"", br[i].type,
                    hs_monitor_severity_name(br[i].severity), hs_monitor_window_name(br[i].window), br[i].value,
                    br[i].limit, br[i].message);
        char *details = hs_monitor_breach_details_json(&br[i]);
        /* the severities share their numbers (ops/monitor.h) */
        hs_alert_raise(s->alerts, br[i].type, (enum hs_alert_severity)br[i].severity, br[i].message, details);
        hs_free(details);
    }
}

static void *monitor_main(void *arg)
{
    hs_server *s = arg;
    int interval = s->cfg->monitor.interval_s > 0 ? s->cfg->monitor.interval_s : 10;
    pthread_mutex_lock(&s->mon_mu);
    while (!s->mon_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += interval;
        while (!s->mon_stop && pthread_cond_timedwait(&s->mon_cv, &s->mon_mu, &ts) != ETIMEDOUT)
            ;
        if (s->mon_stop)
            break;
        pthread_mutex_unlock(&s->mon_mu);
        check_round(s);
        pthread_mutex_lock(&s->mon_mu);
    }
    pthread_mutex_unlock(&s->mon_mu);
    return NULL;
}

int hs_srv_monitor_start(hs_server *s, hs_err *err)
{
    int rc = hs_alerts_create(&s->cfg->alerts, s->store, &s->alerts, err);
    if (rc)
        return rc;
    if (!s->cfg->monitor.enabled) { /* alerts still come from the safety checks and drift jobs */
        hs_log_info("monitor.off", "msg=\"monitor.enabled is false: no windows, no breach alerts\"");
        return HS_OK;
    }
    rc = hs_monitor_create(&s->cfg->monitor.params, &s->monitor, err);
    if (rc)
        return rc;
    load_baseline(s); /* a stored baseline wins over a capture */
    pthread_mutex_init(&s->mon_mu, NULL);
    pthread_cond_init(&s->mon_cv, NULL);
    if (pthread_create(&s->mon_thread, NULL, monitor_main, s)) {
        pthread_cond_destroy(&s->mon_cv);
        pthread_mutex_destroy(&s->mon_mu);
        return hs_err_set(err, HS_EIO, "cannot start the monitor thread");
    }
    s->mon_running = true;
    return HS_OK;
}

void hs_srv_monitor_stop(hs_server *s)
{
    if (s->mon_running) {
        pthread_mutex_lock(&s->mon_mu);
        s->mon_stop = true;
        pthread_cond_broadcast(&s->mon_cv);
        pthread_mutex_unlock(&s->mon_mu);
        pthread_join(s->mon_thread, NULL);
        pthread_cond_destroy(&s->mon_cv);
        pthread_mutex_destroy(&s->mon_mu);
        s->mon_running = false;
        save_captured(s);
    }
    hs_monitor_free(s->monitor);
    s->monitor = NULL;
    if (s->alerts) {
        size_t left = hs_alerts_free(s->alerts); /* before the store closes: it is a sink */
        if (left)
            hs_log_warn("alerts.shutdown", "undelivered=%zu", left);
        s->alerts = NULL;
    }
}

struct alert_list {
    json_t *data;
    bool oom;
};

static void add_alert(void *user, const struct hs_alert_row *r)
{
    struct alert_list *l = user;
    json_t *details = r->details ? json_loads(r->details, 0, NULL) : NULL;
    json_t *o = json_pack("{s:I,s:I,s:s,s:s,s:s,s:I,s:I,s:o}", "id", (json_int_t)r->id, "ts_ms",
                          (json_int_t)r->ts_ms, "type", r->type, "severity", r->severity, "message", r->message,
                          "count", (json_int_t)r->count, "first_ms", (json_int_t)r->first_ms, "details",
                          details ? details : json_null());
    if (!o || json_array_append_new(l->data, o))
        l->oom = true;
}

void hs_route_api_alerts(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    (void)req;
    struct alert_list l = {json_array(), false};
    hs_err err = {0};
    if (!l.data || hs_store_alerts_list(c->srv->store, 0, 100, add_alert, &l, &err) || l.oom) {
        json_decref(l.data);
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "cannot list the alerts: %s",
                    err.msg[0] ? err.msg : "out of memory");
        return;
    }
    hs_srv_reply_json(c, resp, 200, json_pack("{s:s,s:o}", "object", "list", "data", l.data));
}

void hs_srv_monitor_observe(struct srv_call *c)
{
    hs_server *s = c->srv;
    if (!s->monitor || !c->inference || !c->m || (c->parent && c->parent->quiet))
        return;
    struct hs_monitor_obs o = {
        .latency_ms = c->status >= 200 && c->status < 300 ? c->latency_ms : -1,
        .error = c->status < 200 || c->status >= 300,
        .safety_flagged = c->safety_flags != NULL,
        .confidence = c->confidence,
    };
    hs_monitor_observe(s->monitor, &o);
}

/* GET /api/metrics: both windows and the baseline, as the dashboard reads them. */
void hs_route_api_metrics(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    (void)req;
    hs_server *s = c->srv;
    if (!s->monitor) {
        hs_srv_reply_json(c, resp, 200,
                          json_pack("{s:b,s:n,s:n,s:n,s:n}", "enabled", 0, "requests", "hour", "baseline",
                                    "baseline_capture"));
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "enabled", json_true());
    hs_err err = {0};
    static const enum hs_monitor_window k_w[] = {HS_MON_REQUESTS, HS_MON_HOUR};
    for (size_t i = 0; o && i < 2; i++) {
        struct hs_monitor_stats st;
        char *txt = hs_monitor_snapshot(s->monitor, k_w[i], &st, &err) ? NULL : hs_monitor_stats_to_json(&st);
        json_t *j = txt ? json_loads(txt, 0, NULL) : NULL;
        hs_free(txt);
        json_object_set_new(o, hs_monitor_window_name(k_w[i]), j ? j : json_null());
    }
    struct hs_monitor_stats b;
    char *btxt = hs_monitor_get_baseline(s->monitor, &b, &err) ? NULL : hs_monitor_stats_to_json(&b);
    json_t *bj = btxt ? json_loads(btxt, 0, NULL) : NULL;
    hs_free(btxt);
    int captured = 0, target = 0;
    hs_monitor_capture_progress(s->monitor, &captured, &target);
    if (o) {
        json_object_set_new(o, "baseline", bj ? bj : json_null());
        json_object_set_new(o, "baseline_capture", target > 0 ? json_pack("{s:i,s:i}", "captured", captured,
                                                                           "target", target)
                                                              : json_null());
    }
    hs_srv_reply_json(c, resp, 200, o);
}
