/* The alerts manager: checking what is raised, throttling and grouping per
 * type, handing alerts to the sinks, and the thread that closes windows.
 *
 * One mutex guards the throttle table, the sink list and the counters. A
 * raise holds it for a table look-up and, when the alert goes out, for the
 * sinks' offers, which are pointer moves under each sink's own mutex; no
 * I/O ever happens under it, so a raise costs microseconds whatever the
 * sinks are doing. The table holds only types whose window is open: a
 * window that ends with nothing counted is closed by the next tick. */
#include "ops/alerts_impl.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

/* Types with an open window at once; beyond it alerts go out unthrottled
 * (types come from code, so this is a safety net, not a limit to tune). */
#define TYPES_MAX 1024

/* ---- names ------------------------------------------------------------------ */

const char *hs_alert_severity_name(enum hs_alert_severity s)
{
    switch (s) {
    case HS_ALERT_CRITICAL:
        return "critical";
    case HS_ALERT_WARNING:
        return "warning";
    default:
        return "info";
    }
}

int hs_alert_severity_parse(const char *name, enum hs_alert_severity *out)
{
    static const enum hs_alert_severity all[] = {HS_ALERT_INFO, HS_ALERT_WARNING, HS_ALERT_CRITICAL};
    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(name, hs_alert_severity_name(all[i]))) {
            *out = all[i];
            return HS_OK;
        }
    return HS_EINVAL;
}

const char *hs_alert_sink_kind_name(enum hs_alert_sink_kind k)
{
    switch (k) {
    case HS_ALERT_SINK_JSONL:
        return "jsonl";
    case HS_ALERT_SINK_SLACK:
        return "slack";
    case HS_ALERT_SINK_PAGERDUTY:
        return "pagerduty";
    case HS_ALERT_SINK_WEBHOOK:
        return "webhook";
    }
    return "unknown";
}

bool hs_alert_type_ok(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    if (n == 0 || n > HS_ALERT_TYPE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* ---- the manager ------------------------------------------------------------ */

/* One type with an open window. */
struct window {
    char type[HS_ALERT_TYPE_MAX + 1];
    int64_t start_ms, len_ms;
    enum hs_alert_severity level; /* the highest severity sent in this window */
    /* counted since the window opened */
    int64_t n, first_ms, last_ms;
    enum hs_alert_severity max;
    char *last_message, *last_details; /* of the last counted alert; owned */
};

struct hs_alerts {
    int64_t throttle_ms;
    struct hs_alert_throttle *throttles; /* copies */
    int n_throttles;
    int retry_initial_ms, retry_max_ms;
    int flush_timeout_ms;
    int tick_ms;
    char *source; /* owned */
    hs_alerts_clock_fn clock;
    void *clock_user;

    pthread_mutex_t mu;
    struct window *win;
    size_t n_win, cap_win;
    hs_alert_sink **sinks;
    int n_sinks, cap_sinks;
    struct hs_alerts_stats stats;

    /* the ticking thread */
    pthread_t ticker;
    bool have_ticker, stop;
    pthread_cond_t tick_cv; /* CLOCK_MONOTONIC */
};

static int64_t wall_ms(void *user)
{
    (void)user;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(hs_alerts *a)
{
    return a->clock(a->clock_user);
}

static int64_t window_len_ms(const hs_alerts *a, const char *type)
{
    for (int i = 0; i < a->n_throttles; i++)
        if (!strcmp(a->throttles[i].type, type))
            return (int64_t)a->throttles[i].seconds * 1000;
    return a->throttle_ms;
}

/* Hands one alert to every sink (a->mu held). */
static void dispatch(hs_alerts *a, const struct hs_alert *al)
{
    struct hs_alert_item *it = hs_alert_item_new(al);
    if (!it) {
        hs_log_error("alerts.lost", "type=%s reason=out_of_memory", al->type);
        return;
    }
    for (int i = 0; i < a->n_sinks; i++)
        hs_alert_sink_offer(a->sinks[i], it);
    hs_alert_item_unref(it);
    a->stats.sent++;
}

static void send_single(hs_alerts *a, int64_t now, const char *type, enum hs_alert_severity sev,
                        const char *msg, const char *details)
{
    struct hs_alert al = {now, type, sev, msg, 1, now, details};
    dispatch(a, &al);
}

/* "10:04 UTC", or "2026-11-25 10:04 UTC" when `ms` is on another day than now. */
static void since_text(char *buf, size_t cap, int64_t ms, int64_t now)
{
    time_t t = (time_t)(ms / 1000), tn = (time_t)(now / 1000);
    struct tm tm, tmn;
    if (!gmtime_r(&t, &tm) || !gmtime_r(&tn, &tmn)) {
        snprintf(buf, cap, "?");
        return;
    }
    bool same_day = tm.tm_year == tmn.tm_year && tm.tm_yday == tmn.tm_yday;
    if (!strftime(buf, cap, same_day ? "%H:%M UTC" : "%Y-%m-%d %H:%M UTC", &tm))
        snprintf(buf, cap, "?");
}

/* Sends the group w has counted and opens its next window at now (a->mu held). */
static void send_group(hs_alerts *a, struct window *w, int64_t now)
{
    char since[48];
    since_text(since, sizeof since, w->first_ms, now);
    hs_buf msg = {0};
    hs_buf_printf(&msg, "%lld %s alert%s since %s", (long long)w->n, w->type, w->n == 1 ? "" : "s", since);
    if (w->last_message && w->last_message[0])
        hs_buf_printf(&msg, " (last: %s)", w->last_message);
    if (msg.len > HS_ALERT_MESSAGE_MAX) {
        size_t cut = HS_ALERT_MESSAGE_MAX;
        while (cut > 0 && ((unsigned char)msg.data[cut] & 0xC0) == 0x80)
            cut--; /* on a whole UTF-8 character */
        msg.data[cut] = '\0';
        msg.len = cut;
    }
    json_t *last = w->last_details ? json_loads(w->last_details, 0, NULL) : NULL;
    json_t *d = json_pack("{s:b, s:I, s:I, s:I, s:s?, s:o?}", "grouped", 1, "count", (json_int_t)w->n,
                          "first_ms", (json_int_t)w->first_ms, "last_ms", (json_int_t)w->last_ms,
                          "last_message", w->last_message, "last_details", last);
    char *details = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    struct hs_alert al = {now, w->type, w->max, msg.data ? msg.data : "", w->n, w->first_ms, details};
    dispatch(a, &al);
    free(details); /* jansson's */
    hs_buf_free(&msg);
    a->stats.groups++;
    w->start_ms = now;
    w->level = w->max;
    w->n = 0;
    hs_free(w->last_message);
    hs_free(w->last_details);
    w->last_message = w->last_details = NULL;
}

static void count_into(struct window *w, int64_t now, enum hs_alert_severity sev, const char *msg,
                       const char *details)
{
    if (w->n == 0) {
        w->first_ms = now;
        w->max = sev;
    }
    w->n++;
    w->last_ms = now;
    if (sev > w->max)
        w->max = sev;
    /* kept for the group's text; a failed copy only loses that text */
    char *m = hs_strdup(msg), *d = details ? hs_strdup(details) : NULL;
    hs_free(w->last_message);
    hs_free(w->last_details);
    w->last_message = m;
    w->last_details = d;
}

static struct window *find_window(hs_alerts *a, const char *type)
{
    for (size_t i = 0; i < a->n_win; i++)
        if (!strcmp(a->win[i].type, type))
            return &a->win[i];
    return NULL;
}

static struct window *open_window(hs_alerts *a, const char *type, int64_t now, int64_t len,
                                  enum hs_alert_severity sev)
{
    if (a->n_win == a->cap_win) {
        if (a->cap_win >= TYPES_MAX)
            return NULL;
        size_t ncap = a->cap_win ? a->cap_win * 2 : 16;
        struct window *nw = hs_realloc_array(a->win, ncap, sizeof *nw);
        if (!nw)
            return NULL;
        a->win = nw;
        a->cap_win = ncap;
    }
    struct window *w = &a->win[a->n_win++];
    memset(w, 0, sizeof *w);
    snprintf(w->type, sizeof w->type, "%s", type);
    w->start_ms = now;
    w->len_ms = len;
    w->level = sev;
    return w;
}

/* The decision for one raised alert (a->mu held); see alerts.h. */
static void throttle(hs_alerts *a, int64_t now, const char *type, enum hs_alert_severity sev, const char *msg,
                     const char *details)
{
    int64_t len = window_len_ms(a, type);
    if (len <= 0) {
        send_single(a, now, type, sev, msg, details);
        return;
    }
    struct window *w = find_window(a, type);
    if (!w) {
        if (!open_window(a, type, now, len, sev))
            hs_log_warn("alerts.unthrottled", "type=%s reason=too_many_open_windows", type);
        send_single(a, now, type, sev, msg, details);
        return;
    }
    if (now >= w->start_ms + w->len_ms) {
        /* The window has ended but no tick has closed it yet. */
        if (w->n > 0) {
            count_into(w, now, sev, msg, details); /* the group goes out now, this one in it */
            a->stats.suppressed++;
            send_group(a, w, now);
        } else {
            w->start_ms = now;
            w->level = sev;
            send_single(a, now, type, sev, msg, details);
        }
        return;
    }
    if (sev > w->level) {
        w->level = sev; /* escalation: out now, and the window's level rises */
        send_single(a, now, type, sev, msg, details);
        return;
    }
    count_into(w, now, sev, msg, details);
    a->stats.suppressed++;
}

/* The message as one line of valid UTF-8, at most HS_ALERT_MESSAGE_MAX
 * bytes: control characters and invalid bytes become '?'. */
static char *clean_message(const char *m)
{
    size_t n = strnlen(m, HS_ALERT_MESSAGE_MAX + 4);
    hs_buf b = {0};
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)m;
    for (size_t i = 0; i < n && b.len < HS_ALERT_MESSAGE_MAX;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(u + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0 || cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
            hs_buf_putc(&b, '?');
            i += k > 0 ? (size_t)k : 1;
            continue;
        }
        if (b.len + (size_t)k > HS_ALERT_MESSAGE_MAX)
            break;
        hs_buf_append(&b, m + i, (size_t)k);
        i += (size_t)k;
    }
    if (!b.data && hs_buf_puts(&b, "") != HS_OK)
        return NULL;
    return hs_buf_steal(&b);
}

int hs_alert_raise(hs_alerts *a, const char *type, enum hs_alert_severity severity, const char *message,
                   const char *details_json)
{
    if (!a)
        return HS_OK;
    if (!hs_alert_type_ok(type) || (int)severity < HS_ALERT_INFO || severity > HS_ALERT_CRITICAL || !message)
        return HS_EINVAL;
    char *details = NULL;
    if (details_json) {
        if (strnlen(details_json, HS_ALERT_DETAILS_MAX + 1) > HS_ALERT_DETAILS_MAX)
            return HS_EINVAL;
        json_t *o = json_loads(details_json, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(o)) {
            json_decref(o);
            return HS_EINVAL;
        }
        char *t = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        details = t ? hs_strdup(t) : NULL;
        free(t);
        if (!details)
            return HS_ENOMEM;
    }
    char *msg = clean_message(message);
    if (!msg) {
        hs_free(details);
        return HS_ENOMEM;
    }
    int64_t now = now_ms(a);
    pthread_mutex_lock(&a->mu);
    a->stats.raised++;
    throttle(a, now, type, severity, msg, details);
    pthread_mutex_unlock(&a->mu);
    hs_free(msg);
    hs_free(details);
    return HS_OK;
}

static void close_window(hs_alerts *a, size_t i)
{
    hs_free(a->win[i].last_message);
    hs_free(a->win[i].last_details);
    a->win[i] = a->win[--a->n_win];
}

int hs_alerts_tick(hs_alerts *a)
{
    if (!a)
        return 0;
    int64_t now = now_ms(a);
    int sent = 0;
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->n_win;) {
        struct window *w = &a->win[i];
        if (now < w->start_ms + w->len_ms) {
            i++;
        } else if (w->n > 0) {
            send_group(a, w, now);
            sent++;
            i++;
        } else {
            close_window(a, i); /* moves the last one here: look at i again */
        }
    }
    pthread_mutex_unlock(&a->mu);
    return sent;
}

static void *ticker_main(void *arg)
{
    hs_alerts *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        int64_t at = hs_now_ns() + (int64_t)a->tick_ms * 1000000LL;
        struct timespec ts = {.tv_sec = (time_t)(at / 1000000000LL), .tv_nsec = (long)(at % 1000000000LL)};
        while (!a->stop && pthread_cond_timedwait(&a->tick_cv, &a->mu, &ts) == 0)
            ; /* woken early only to stop */
        if (a->stop)
            break;
        pthread_mutex_unlock(&a->mu);
        hs_alerts_tick(a);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* Appends a started sink (takes it; on failure stops it). */
static int add_started(hs_alerts *a, hs_alert_sink *s, hs_err *err)
{
    pthread_mutex_lock(&a->mu);
    if (a->n_sinks == a->cap_sinks) {
        int ncap = a->cap_sinks ? a->cap_sinks * 2 : 8;
        hs_alert_sink **ns = hs_realloc_array(a->sinks, (size_t)ncap, sizeof *ns);
        if (!ns) {
            pthread_mutex_unlock(&a->mu);
            hs_alert_sink_stop(s, 0);
            return hs_err_set(err, HS_ENOMEM, "out of memory");
        }
        a->sinks = ns;
        a->cap_sinks = ncap;
    }
    a->sinks[a->n_sinks++] = s;
    pthread_mutex_unlock(&a->mu);
    return HS_OK;
}

static int start_sink(hs_alerts *a, const struct hs_alert_sink_params *p, const struct hs_alert_sink_ops *ops,
                      void *state, hs_err *err)
{
    hs_alert_sink *s;
    int rc = hs_alert_sink_start(p, ops, state, &s, err);
    return rc ? rc : add_started(a, s, err);
}

/* A caller's sink: the function and its user pointer. */
struct fn_sink {
    hs_alert_deliver_fn fn;
    void *user;
};

static int fn_deliver(hs_alert_sink *s, void *state, const struct hs_alert *al, int64_t *retry_after_ms,
                      hs_err *err)
{
    (void)s;
    (void)retry_after_ms;
    struct fn_sink *f = state;
    return f->fn(f->user, al, err);
}

static void fn_destroy(void *state)
{
    hs_free(state);
}

static const struct hs_alert_sink_ops k_fn_ops = {fn_deliver, fn_destroy};

/* One sink's parameters: its own name, level and queue, the shared retry. */
static struct hs_alert_sink_params sink_params(const hs_alerts *a, const char *name,
                                               enum hs_alert_severity min, int queue)
{
    return (struct hs_alert_sink_params){name, min, queue > 0 ? queue : HS_ALERT_QUEUE_DEFAULT,
                                         a->retry_initial_ms, a->retry_max_ms};
}

int hs_alerts_add_sink(hs_alerts *a, const char *name, enum hs_alert_severity min_severity,
                       hs_alert_deliver_fn deliver, void *user, hs_err *err)
{
    if (!a || !deliver || !name || !name[0])
        return hs_err_set(err, HS_EINVAL, "an alert sink needs a name and a function");
    struct fn_sink *f = hs_malloc(sizeof *f);
    if (!f)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    f->fn = deliver;
    f->user = user;
    struct hs_alert_sink_params p = sink_params(a, name, min_severity, 0);
    return start_sink(a, &p, &k_fn_ops, f, err);
}

static void free_throttles(struct hs_alert_throttle *t, int n)
{
    for (int i = 0; i < n; i++)
        hs_free(t[i].type);
    hs_free(t);
}

/* Stops every sink (all draining together until one shared deadline) and
 * frees the manager; returns the alerts left. */
static size_t destroy(hs_alerts *a, int flush_ms)
{
    int64_t deadline = hs_now_ns() + (int64_t)flush_ms * 1000000LL;
    for (int i = 0; i < a->n_sinks; i++)
        hs_alert_sink_begin_stop(a->sinks[i], deadline);
    size_t left = 0;
    for (int i = 0; i < a->n_sinks; i++)
        left += hs_alert_sink_stop(a->sinks[i], deadline);
    hs_free(a->sinks);
    while (a->n_win)
        close_window(a, a->n_win - 1);
    hs_free(a->win);
    free_throttles(a->throttles, a->n_throttles);
    hs_free(a->source);
    pthread_cond_destroy(&a->tick_cv);
    pthread_mutex_destroy(&a->mu);
    hs_free(a);
    return left;
}

int hs_alerts_create(const struct hs_alerts_config *c, hs_store *store, hs_alerts **out, hs_err *err)
{
    *out = NULL;
    int rc = hs_alerts_config_check(c, err);
    if (rc)
        return rc;
    hs_alerts *a = hs_calloc(1, sizeof *a);
    if (!a)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    a->throttle_ms = (int64_t)c->throttle_s * 1000;
    a->retry_initial_ms = c->retry_initial_ms;
    a->retry_max_ms = c->retry_max_ms;
    a->flush_timeout_ms = c->flush_timeout_ms;
    a->tick_ms = c->tick_ms == 0 ? 1000 : c->tick_ms;
    a->clock = c->clock ? c->clock : wall_ms;
    a->clock_user = c->clock_user;
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->tick_cv, &ca);
    pthread_condattr_destroy(&ca);
    a->source = hs_strdup(c->source ? c->source : "hestia");
    if (c->n_throttles > 0)
        a->throttles = hs_calloc((size_t)c->n_throttles, sizeof *a->throttles);
    if (!a->source || (c->n_throttles > 0 && !a->throttles)) {
        destroy(a, 0);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    for (int i = 0; i < c->n_throttles; i++) {
        a->throttles[i].seconds = c->throttles[i].seconds;
        a->throttles[i].type = hs_strdup(c->throttles[i].type);
        a->n_throttles++;
        if (!a->throttles[i].type) {
            destroy(a, 0);
            return hs_err_set(err, HS_ENOMEM, "out of memory");
        }
    }
    if (store) {
        const struct hs_alert_sink_ops *ops;
        void *state;
        rc = hs_alert_sink_store_new(store, &ops, &state, err);
        if (!rc) {
            struct hs_alert_sink_params p = sink_params(a, "store", HS_ALERT_INFO, 0);
            rc = start_sink(a, &p, ops, state, err);
        }
    }
    for (int i = 0; !rc && i < c->n_sinks; i++) {
        const struct hs_alert_sink_config *sc = &c->sinks[i];
        const char *name = sc->name ? sc->name : hs_alert_sink_kind_name(sc->kind);
        const struct hs_alert_sink_ops *ops;
        void *state;
        if (sc->kind == HS_ALERT_SINK_JSONL)
            rc = hs_alert_sink_jsonl_new(sc, a->source, &ops, &state, err);
        else
            rc = hs_alert_sink_http_new(sc, a->source, &ops, &state, err);
        if (rc) {
            hs_err_prefix(err, "alerts.sinks[%d] (%s): ", i, name);
            break;
        }
        struct hs_alert_sink_params p = sink_params(a, name, sc->min_severity, sc->queue);
        rc = start_sink(a, &p, ops, state, err);
    }
    if (!rc && a->tick_ms > 0) {
        if (pthread_create(&a->ticker, NULL, ticker_main, a) != 0)
            rc = hs_err_set(err, HS_ENOMEM, "alerts: cannot start the alerts thread");
        else
            a->have_ticker = true;
    }
    if (rc) {
        destroy(a, 0);
        return rc;
    }
    hs_log_debug("alerts.start", "sinks=%d throttle_s=%d", a->n_sinks, c->throttle_s);
    *out = a;
    return HS_OK;
}

size_t hs_alerts_free(hs_alerts *a)
{
    if (!a)
        return 0;
    if (a->have_ticker) {
        pthread_mutex_lock(&a->mu);
        a->stop = true;
        pthread_cond_broadcast(&a->tick_cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->ticker, NULL);
    }
    /* What is still counting goes out now, its window cut short. */
    int64_t now = now_ms(a);
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->n_win; i++)
        if (a->win[i].n > 0)
            send_group(a, &a->win[i], now);
    pthread_mutex_unlock(&a->mu);
    size_t left = destroy(a, a->flush_timeout_ms);
    if (left)
        hs_log_warn("alerts.close", "undelivered=%zu", left);
    return left;
}

bool hs_alerts_flush(hs_alerts *a, int timeout_ms)
{
    if (!a)
        return true;
    int64_t deadline = hs_now_ns() + (int64_t)timeout_ms * 1000000LL;
    for (;;) {
        bool idle = true;
        pthread_mutex_lock(&a->mu);
        for (int i = 0; idle && i < a->n_sinks; i++)
            idle = hs_alert_sink_idle(a->sinks[i]);
        pthread_mutex_unlock(&a->mu);
        if (idle)
            return true;
        if (hs_now_ns() >= deadline)
            return false;
        struct timespec ts = {0, 2 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

void hs_alerts_stats(hs_alerts *a, struct hs_alerts_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    *out = a->stats;
    pthread_mutex_unlock(&a->mu);
}

int hs_alerts_sink_count(hs_alerts *a)
{
    if (!a)
        return 0;
    pthread_mutex_lock(&a->mu);
    int n = a->n_sinks;
    pthread_mutex_unlock(&a->mu);
    return n;
}

int hs_alerts_sink_stats(hs_alerts *a, int i, struct hs_alert_sink_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!a)
        return HS_ENOTFOUND;
    pthread_mutex_lock(&a->mu);
    hs_alert_sink *s = i >= 0 && i < a->n_sinks ? a->sinks[i] : NULL;
    if (s)
        hs_alert_sink_get_stats(s, out);
    pthread_mutex_unlock(&a->mu);
    return s ? HS_OK : HS_ENOTFOUND;
}
