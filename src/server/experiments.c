/* Experiments in the server (issue 7): which variant answers a request,
 * the windows of recent outcomes per variant, and the thread that applies
 * the rollback rules and advances canaries.
 *
 * The decisions themselves are ops/experiment.h's pure functions; the state
 * lives in the store (ops/store_experiments.h): every change is written
 * there first, with its reason, and only then applied here, so a restart
 * (even after kill -9) resumes the state the store holds. The thread also
 * reads each experiment's stored state every round, so that a change made
 * by `hestia experiment rollback|promote` while the server runs takes
 * effect within a round.
 *
 * Locking: x->mu guards the list, every experiment's state and windows; it
 * is held for a few microseconds on the request path (pick, observe).
 * x->change_mu serialises changes (the thread's rules, the admin routes):
 * it is held across the store write, never on the request path. */
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "ops/store_experiments.h"
#include "server/experiments_impl.h"

#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 1000
#define ADOPT_EVERY 5 /* rounds between looks for experiments added to the store elsewhere */

static int adopt_stored(hs_server *s, hs_err *err);

const char *hs_srv_exp_name(const struct srv_exp *e)
{
    return e ? e->def.name : NULL;
}

struct srv_exp *hs_srv_exp_find(struct srv_exps *x, const char *name)
{
    for (int i = 0; i < x->n; i++)
        if (!strcmp(x->v[i]->def.name, name))
            return x->v[i];
    return NULL;
}

/* ---- windows ---- */

static void win_push(struct srv_win *w, const struct srv_win_obs *o)
{
    w->v[w->head] = *o;
    w->head = (w->head + 1) % SRV_WIN_CAP;
    if (w->n < SRV_WIN_CAP)
        w->n++;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Type-7 quantile of n sorted values (ops/monitor.h's convention). */
static double quantile_sorted(const float *v, int n, double q)
{
    if (n <= 0)
        return NAN;
    double pos = q * (n - 1);
    int lo = (int)pos;
    if (lo >= n - 1)
        return v[n - 1];
    return v[lo] + (pos - lo) * (v[lo + 1] - v[lo]);
}

void hs_srv_win_summary(const struct srv_win *w, int64_t since_ms, struct hs_exp_window *out, float *scratch)
{
    memset(out, 0, sizeof *out);
    int n_lat = 0;
    for (int i = 0; i < w->n; i++) {
        const struct srv_win_obs *o = &w->v[(w->head - 1 - i + 2 * SRV_WIN_CAP) % SRV_WIN_CAP];
        if (o->ts_ms < since_ms)
            break; /* newest first: the rest are older */
        out->requests++;
        out->errors += o->error;
        out->safety_flagged += o->safety;
        if (o->latency_ms >= 0)
            scratch[n_lat++] = o->latency_ms;
    }
    qsort(scratch, (size_t)n_lat, sizeof *scratch, cmp_float);
    out->n_latency = n_lat;
    out->p95_ms = quantile_sorted(scratch, n_lat, 0.95);
}

/* ---- changes ---- */

int hs_srv_exp_change(hs_server *s, struct srv_exp *e, const struct hs_exp_state *next, const char *kind,
                      const char *reason, hs_err *err)
{
    struct srv_exps *x = s->exps;
    pthread_mutex_lock(&x->change_mu);
    int rc = hs_store_exp_update(s->store, e->def.name, next, kind, reason, err);
    if (rc == HS_OK) {
        pthread_mutex_lock(&x->mu);
        e->st = *next;
        pthread_mutex_unlock(&x->mu);
        hs_log_info("experiment.change", "name=%s kind=%s weight_b=%.4f status=%s reason=\"%s\"", e->def.name,
                    kind, next->weight_b, hs_exp_status_name(next->status), reason ? reason : "");
    } else {
        hs_log_error("experiment.change", "name=%s kind=%s msg=\"%s\"", e->def.name, kind, err->msg);
    }
    pthread_mutex_unlock(&x->change_mu);
    return rc;
}

int hs_srv_exp_rollback(hs_server *s, struct srv_exp *e, const char *reason, hs_err *err)
{
    pthread_mutex_lock(&s->exps->mu);
    struct hs_exp_state next = e->st;
    pthread_mutex_unlock(&s->exps->mu);
    next.weight_b = 0;
    next.status = HS_EXP_ROLLED_BACK;
    next.updated_ms = hs_srv_unix_ms();
    int rc = hs_srv_exp_change(s, e, &next, HS_EXP_EV_ROLLBACK, reason, err);
    if (rc == HS_OK && s->alerts) {
        char msg[512];
        snprintf(msg, sizeof msg, "experiment %s rolled back: B (%s) gets no traffic; %s", e->def.name,
                 e->def.target_b, reason ? reason : "");
        json_t *d = json_pack("{s:s,s:s,s:s,s:s}", "experiment", e->def.name, "a", e->def.target_a, "b",
                              e->def.target_b, "reason", reason ? reason : "");
        char *details = d ? json_dumps(d, JSON_COMPACT) : NULL;
        json_decref(d);
        hs_alert_raise(s->alerts, "experiment_rollback", HS_ALERT_CRITICAL, msg, details);
        free(details);
    }
    return rc;
}

/* A change made elsewhere (the CLI on the same store) is adopted. */
static void sync_from_store(hs_server *s, struct srv_exp *e)
{
    struct hs_exp_state st;
    hs_err err = {0};
    struct srv_exps *x = s->exps;
    /* read under change_mu: a change of ours between the read and the
       compare would otherwise be undone by the older stored state */
    pthread_mutex_lock(&x->change_mu);
    if (hs_store_exp_get(s->store, e->def.name, NULL, &st, &err)) {
        pthread_mutex_unlock(&x->change_mu);
        return;
    }
    pthread_mutex_lock(&x->mu);
    bool changed = st.updated_ms != e->st.updated_ms || st.status != e->st.status || st.weight_b != e->st.weight_b;
    if (changed)
        e->st = st;
    pthread_mutex_unlock(&x->mu);
    pthread_mutex_unlock(&x->change_mu);
    if (changed)
        hs_log_info("experiment.sync", "name=%s weight_b=%.4f status=%s", e->def.name, st.weight_b,
                    hs_exp_status_name(st.status));
}

static void check_one(hs_server *s, struct srv_exp *e, float *scratch)
{
    struct srv_exps *x = s->exps;
    sync_from_store(s, e);
    int64_t now = hs_srv_unix_ms();
    pthread_mutex_lock(&x->mu);
    struct hs_exp_state st = e->st;
    bool live = st.status == HS_EXP_ACTIVE && e->def.mode != HS_EXP_SHADOW;
    struct hs_exp_window wa, wb;
    if (live) {
        int64_t since = now - e->def.rules.window_ms;
        hs_srv_win_summary(&e->w[HS_EXP_A], since, &wa, scratch);
        hs_srv_win_summary(&e->w[HS_EXP_B], since, &wb, scratch);
    }
    pthread_mutex_unlock(&x->mu);
    if (!live)
        return;
    char reason[256];
    hs_err err = {0};
    if (hs_exp_rollback_check(&e->def.rules, &wa, &wb, reason, sizeof reason) != HS_EXP_RULE_NONE) {
        hs_srv_exp_rollback(s, e, reason, &err);
        return;
    }
    struct hs_exp_state next;
    if (e->def.mode == HS_EXP_CANARY && hs_exp_canary_next(&e->def, &st, now, true, &next)) {
        next.updated_ms = now;
        char why[128];
        snprintf(why, sizeof why, "step %d of %d: B's weight %.4g%% (B healthy: %lld requests in the window)",
                 next.step + 1, e->def.n_steps, next.weight_b * 100, (long long)wb.requests);
        hs_srv_exp_change(s, e, &next, HS_EXP_EV_ADVANCE, why, &err);
    }
}

static void *exps_main(void *arg)
{
    hs_server *s = arg;
    struct srv_exps *x = s->exps;
    float *scratch = hs_malloc(SRV_WIN_CAP * sizeof *scratch);
    unsigned round = 0;
    pthread_mutex_lock(&x->mu);
    while (!x->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)TICK_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&x->cv, &x->mu, &ts);
        if (x->stop)
            break;
        int n = x->n; /* experiments are only ever added, and never moved */
        pthread_mutex_unlock(&x->mu);
        for (int i = 0; i < n && scratch; i++)
            check_one(s, x->v[i], scratch);
        if (++round % ADOPT_EVERY == 0) {
            hs_err err = {0};
            if (adopt_stored(s, &err))
                hs_log_warn("experiment.load", "msg=\"cannot list the stored experiments: %s\"", err.msg);
        }
        pthread_mutex_lock(&x->mu);
    }
    pthread_mutex_unlock(&x->mu);
    hs_free(scratch);
    return NULL;
}

/* ---- the list ---- */

int hs_srv_exp_check_targets(hs_server *s, const struct hs_experiment *e, hs_err *err)
{
    if (!hs_srv_name_taken(s, e->target_a))
        return hs_err_set(err, HS_EINVAL, "experiment '%s': a: no model, agent or adapter is called '%s'", e->name,
                          e->target_a);
    if (!hs_srv_name_taken(s, e->target_b))
        return hs_err_set(err, HS_EINVAL, "experiment '%s': b: no model, agent or adapter is called '%s'", e->name,
                          e->target_b);
    return HS_OK;
}

int hs_srv_exp_put(hs_server *s, const struct hs_experiment *def, struct srv_exp **out, bool *created, hs_err *err)
{
    struct srv_exps *x = s->exps;
    int rc = hs_srv_exp_check_targets(s, def, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&x->change_mu);
    struct hs_exp_state st;
    bool fresh = false;
    rc = hs_store_exp_ensure(s->store, def, hs_srv_unix_ms(), &st, &fresh, err);
    struct srv_exp *e = NULL;
    if (!rc) {
        pthread_mutex_lock(&x->mu);
        e = hs_srv_exp_find(x, def->name);
        if (e) {
            e->def = *def;
            e->st = st;
        } else if (x->n == x->cap) {
            int cap = x->cap ? x->cap * 2 : 8;
            struct srv_exp **v = hs_realloc(x->v, (size_t)cap * sizeof *v);
            if (v) {
                x->v = v;
                x->cap = cap;
            }
        }
        if (!e && x->n < x->cap && (e = hs_calloc(1, sizeof *e))) {
            e->def = *def;
            e->st = st;
            x->v[x->n++] = e;
        }
        pthread_mutex_unlock(&x->mu);
        if (!e)
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(&x->change_mu);
    if (!rc) {
        hs_log_info("experiment.load", "name=%s route=%s mode=%s a=%s b=%s weight_b=%.4f status=%s%s", def->name,
                    def->route, hs_exp_mode_name(def->mode), def->target_a, def->target_b, st.weight_b,
                    hs_exp_status_name(st.status), fresh ? " created=true" : "");
        if (out)
            *out = e;
        if (created)
            *created = fresh;
    }
    return rc;
}

struct stored_list {
    struct hs_experiment *v;
    int n, cap;
};

static void collect_stored(void *user, const struct hs_experiment *e, const struct hs_exp_state *st)
{
    struct stored_list *l = user;
    (void)st;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        struct hs_experiment *v = hs_realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *e;
}

/* Experiments the store holds and this server does not run yet (created
 * before a restart through /admin/experiments, or by `hestia experiment
 * add` on the same store) are taken up; one whose targets this server
 * lacks is logged and left alone. A stopped one keeps its route answering
 * from A. */
static int adopt_stored(hs_server *s, hs_err *err)
{
    struct stored_list l = {0};
    int rc = hs_store_exp_list(s->store, collect_stored, &l, err);
    for (int i = 0; !rc && i < l.n; i++) {
        pthread_mutex_lock(&s->exps->mu);
        bool known = hs_srv_exp_find(s->exps, l.v[i].name) != NULL;
        pthread_mutex_unlock(&s->exps->mu);
        if (known)
            continue;
        hs_err e2 = {0};
        if (hs_srv_exp_put(s, &l.v[i], NULL, NULL, &e2))
            hs_log_warn("experiment.load", "name=%s msg=\"not taken up: %s\"", l.v[i].name, e2.msg);
    }
    hs_free(l.v);
    return rc;
}

int hs_srv_exps_start(hs_server *s, hs_err *err)
{
    struct srv_exps *x = hs_calloc(1, sizeof *x);
    if (!x)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    pthread_mutex_init(&x->mu, NULL);
    pthread_mutex_init(&x->change_mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    s->exps = x;
    const struct hs_serve_config *cfg = s->cfg;
    int rc = HS_OK;
    for (int i = 0; !rc && i < cfg->n_experiments; i++)
        rc = hs_srv_exp_put(s, &cfg->experiments[i], NULL, NULL, err);
    if (!rc)
        rc = adopt_stored(s, err);
    if (!rc)
        rc = hs_srv_shadow_start(s, err);
    if (!rc) {
        if (pthread_create(&x->thread, NULL, exps_main, s))
            rc = hs_err_set(err, HS_EIO, "cannot start the experiments thread");
        else
            x->running = true;
    }
    return rc;
}

void hs_srv_exps_stop(hs_server *s)
{
    struct srv_exps *x = s->exps;
    if (!x)
        return;
    if (x->running) {
        pthread_mutex_lock(&x->mu);
        x->stop = true;
        pthread_cond_broadcast(&x->cv);
        pthread_mutex_unlock(&x->mu);
        pthread_join(x->thread, NULL);
        x->running = false;
    }
    hs_srv_shadow_stop(s);
}

void hs_srv_exps_free(hs_server *s)
{
    struct srv_exps *x = s->exps;
    if (!x)
        return;
    hs_srv_exps_stop(s);
    for (int i = 0; i < x->n; i++)
        hs_free(x->v[i]);
    hs_free(x->v);
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->change_mu);
    pthread_mutex_destroy(&x->mu);
    hs_free(x);
    s->exps = NULL;
}

/* ---- the request path ---- */

void hs_srv_exp_choose(struct srv_call *c, struct hs_gen_request *gr, const char *body, size_t len)
{
    struct srv_exps *x = c->srv->exps;
    if (!x || !gr->model || (c->parent && c->parent->quiet))
        return;
    const char *key = gr->user && *gr->user ? gr->user : NULL;
    pthread_mutex_lock(&x->mu);
    struct srv_exp *e = NULL;
    for (int i = 0; i < x->n && !e; i++)
        if (!strcmp(x->v[i]->def.route, gr->model))
            e = x->v[i];
    if (!e) {
        pthread_mutex_unlock(&x->mu);
        return;
    }
    if (e->def.sticky_by == HS_EXP_STICKY_KEY || !key)
        key = c->keyed ? c->key_name : c->client; /* no user: the key, or the address, keeps one variant */
    uint64_t rnd = (uint64_t)randombytes_random() << 32 | randombytes_random();
    enum hs_exp_variant v = hs_experiment_pick(&e->def, &e->st, key, rnd);
    char target[HS_EXP_TARGET_MAX + 1];
    memcpy(target, v == HS_EXP_B ? e->def.target_b : e->def.target_a, sizeof target);
    bool shadow = e->def.mode == HS_EXP_SHADOW && e->st.status == HS_EXP_ACTIVE && gr->kind != HS_REQ_EMBEDDING;
    pthread_mutex_unlock(&x->mu);
    c->exp = e;
    c->variant = v;
    char *model = hs_strdup(target);
    if (!model) {
        c->exp = NULL; /* out of memory: the route's own name answers */
        return;
    }
    hs_free((char *)gr->model);
    gr->model = model;
    if (shadow && body)
        c->shadow_body = hs_strndup(body, len);
}

bool hs_srv_exp_target_a(const struct srv_call *c, char *out, size_t cap)
{
    if (!c->exp)
        return false;
    snprintf(out, cap, "%s", c->exp->def.target_a); /* definitions change only under change_mu; a copy */
    return true;
}

void hs_srv_exp_observe(struct srv_call *c)
{
    struct srv_exp *e = c->exp;
    hs_server *s = c->srv;
    if (!e || !s->exps)
        return;
    bool ok = c->status >= 200 && c->status < 300 && !c->fallback;
    struct srv_win_obs o = {
        .ts_ms = hs_srv_unix_ms(),
        .latency_ms = ok && c->latency_ms >= 0 ? (float)c->latency_ms : -1.0f,
        .error = !ok,
        .safety = c->safety_flags != NULL,
    };
    pthread_mutex_lock(&s->exps->mu);
    win_push(&e->w[c->variant], &o);
    e->requests[c->variant]++;
    if (c->fallback)
        e->fallbacks++;
    pthread_mutex_unlock(&s->exps->mu);
    if (c->shadow_body && ok && !hs_srv_shadow_enqueue(s, e, c)) {
        pthread_mutex_lock(&s->exps->mu);
        e->shadow_dropped++;
        pthread_mutex_unlock(&s->exps->mu);
    }
}
