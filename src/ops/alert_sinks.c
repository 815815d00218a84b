/* What every alert sink shares: the shared alert item, the bounded queue,
 * the thread that delivers one alert at a time, and the retry with
 * exponential backoff. What a kind of sink does with one alert lives in
 * alert_sinks_file.c (JSONL, the store) and alert_sinks_http.c (Slack,
 * PagerDuty, webhooks).
 *
 * The queue is a ring of `queue` alerts plus the one being tried, which
 * leaves the ring while it is tried so that an overflow can never evict it.
 * Offering never waits for the thread: the mutex guards a few pointer moves
 * only, and the thread never holds it while it delivers or sleeps. */
#include "ops/alerts_impl.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the shared item ------------------------------------------------------- */

struct hs_alert_item *hs_alert_item_new(const struct hs_alert *al)
{
    size_t lt = strlen(al->type) + 1, lm = strlen(al->message) + 1;
    size_t ld = al->details ? strlen(al->details) + 1 : 0;
    struct hs_alert_item *it = hs_malloc(sizeof *it + lt + lm + ld);
    if (!it)
        return NULL;
    atomic_init(&it->refs, 1);
    it->al = *al;
    char *p = it->text;
    memcpy(p, al->type, lt);
    it->al.type = p;
    p += lt;
    memcpy(p, al->message, lm);
    it->al.message = p;
    p += lm;
    if (al->details) {
        memcpy(p, al->details, ld);
        it->al.details = p;
    }
    return it;
}

void hs_alert_item_unref(struct hs_alert_item *it)
{
    if (it && atomic_fetch_sub(&it->refs, 1) == 1)
        hs_free(it);
}

/* ---- the alert as JSON ------------------------------------------------------ */

void hs_alert_iso_time(char *buf, size_t cap, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    int frac = (int)(ms % 1000);
    if (frac < 0) {
        frac += 1000;
        t -= 1;
    }
    struct tm tm;
    char date[24];
    if (!gmtime_r(&t, &tm) || !strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm)) {
        snprintf(buf, cap, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(buf, cap, "%s.%03dZ", date, frac);
}

char *hs_alert_to_json(const struct hs_alert *al, const char *source)
{
    char ts[40], first[40];
    hs_alert_iso_time(ts, sizeof ts, al->ts_ms);
    hs_alert_iso_time(first, sizeof first, al->first_ms);
    /* details were checked to be a JSON object when the alert was raised */
    json_t *details = al->details ? json_loads(al->details, 0, NULL) : NULL;
    /* "o" steals details; NULL (absent or unparsable) becomes null via "o?" */
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:s, s:s, s:o?}", "type", al->type, "severity",
                          hs_alert_severity_name(al->severity), "message", al->message, "ts_ms",
                          (json_int_t)al->ts_ms, "time", ts, "count", (json_int_t)al->count, "first_ms",
                          (json_int_t)al->first_ms, "first_time", first, "source", source ? source : "hestia",
                          "details", details);
    if (!o)
        return NULL;
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        return NULL;
    char *copy = hs_strdup(text); /* callers free with hs_free, jansson's text with free */
    free(text);
    return copy;
}

/* ---- the sink --------------------------------------------------------------- */

struct hs_alert_sink {
    char name[64];
    enum hs_alert_severity min_severity;
    const struct hs_alert_sink_ops *ops;
    void *state;
    int64_t retry_initial_ms, retry_max_ms;
    pthread_t thread;

    pthread_mutex_t mu;
    pthread_cond_t wake; /* an alert came, or stop was asked (CLOCK_MONOTONIC) */
    struct hs_alert_item **ring;
    size_t cap, head, count;
    struct hs_alert_item *inflight; /* out of the ring while it is tried */

    /* read without the mutex by an HTTP transfer under way */
    _Atomic bool stopping;
    _Atomic int64_t deadline_ns;

    _Atomic uint64_t delivered, failures, rejected, dropped;
};

const char *hs_alert_sink_name(const hs_alert_sink *s)
{
    return s->name;
}

bool hs_alert_sink_should_abort(hs_alert_sink *s)
{
    return atomic_load(&s->stopping) && hs_now_ns() >= atomic_load(&s->deadline_ns);
}

static struct timespec monotonic_at(int64_t ns)
{
    return (struct timespec){.tv_sec = (time_t)(ns / 1000000000LL), .tv_nsec = (long)(ns % 1000000000LL)};
}

/* The delay before retry number `attempt` (0-based): initial * 2^attempt,
 * capped, and at least what the receiver asked for (also capped). */
static int64_t backoff_ms(const hs_alert_sink *s, int attempt, int64_t asked_ms)
{
    int64_t d = s->retry_initial_ms;
    for (int i = 0; i < attempt && d < s->retry_max_ms; i++)
        d *= 2;
    if (asked_ms > d)
        d = asked_ms;
    return d < s->retry_max_ms ? d : s->retry_max_ms;
}

/* Tries one alert until it is delivered or refused, or until the sink stops
 * and its deadline passes. Returns false in that last case: the alert stays
 * in s->inflight and counts as left. */
static bool deliver_until_done(hs_alert_sink *s, const struct hs_alert *al)
{
    for (int attempt = 0;; attempt++) {
        hs_err err = {0};
        int64_t asked_ms = 0;
        int rc = s->ops->deliver(s, s->state, al, &asked_ms, &err);
        if (rc == HS_OK) {
            atomic_fetch_add(&s->delivered, 1);
            if (attempt > 0)
                hs_log_info("alerts.delivered", "sink=%s type=%s attempts=%d", s->name, al->type,
                            attempt + 1);
            return true;
        }
        if (rc == HS_EINVAL) {
            atomic_fetch_add(&s->rejected, 1);
            hs_log_error("alerts.rejected", "sink=%s type=%s error=\"%s\"", s->name, al->type,
                         err.msg[0] ? err.msg : hs_err_name(rc));
            return true;
        }
        atomic_fetch_add(&s->failures, 1);
        int64_t delay = backoff_ms(s, attempt, asked_ms);
        hs_log_warn("alerts.retry", "sink=%s type=%s attempt=%d retry_in_ms=%lld error=\"%s\"", s->name,
                    al->type, attempt + 1, (long long)delay, err.msg[0] ? err.msg : hs_err_name(rc));
        int64_t until = hs_now_ns() + delay * 1000000LL;
        pthread_mutex_lock(&s->mu);
        for (;;) {
            int64_t now = hs_now_ns();
            bool stopping = atomic_load(&s->stopping);
            int64_t deadline = atomic_load(&s->deadline_ns);
            if (stopping && now >= deadline) {
                pthread_mutex_unlock(&s->mu);
                return false;
            }
            if (now >= until)
                break;
            int64_t wake_at = stopping && deadline < until ? deadline : until;
            struct timespec ts = monotonic_at(wake_at);
            pthread_cond_timedwait(&s->wake, &s->mu, &ts);
        }
        pthread_mutex_unlock(&s->mu);
    }
}

static void *sink_main(void *arg)
{
    hs_alert_sink *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->count == 0 && !atomic_load(&s->stopping))
            pthread_cond_wait(&s->wake, &s->mu);
        if (s->count == 0)
            break; /* stopping with nothing left */
        if (atomic_load(&s->stopping) && hs_now_ns() >= atomic_load(&s->deadline_ns))
            break; /* out of time: what is queued stays, counted as left */
        struct hs_alert_item *it = s->ring[s->head];
        s->head = (s->head + 1) % s->cap;
        s->count--;
        s->inflight = it;
        pthread_mutex_unlock(&s->mu);

        bool done = deliver_until_done(s, &it->al);

        pthread_mutex_lock(&s->mu);
        if (!done)
            break;
        s->inflight = NULL;
        hs_alert_item_unref(it);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void sink_free(hs_alert_sink *s)
{
    if (s->ops && s->ops->destroy)
        s->ops->destroy(s->state);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->mu);
    hs_free(s->ring);
    hs_free(s);
}

int hs_alert_sink_start(const struct hs_alert_sink_params *p, const struct hs_alert_sink_ops *ops,
                        void *state, hs_alert_sink **out, hs_err *err)
{
    *out = NULL;
    hs_alert_sink *s = hs_calloc(1, sizeof *s);
    struct hs_alert_item **ring = hs_calloc((size_t)p->queue, sizeof *ring);
    if (!s || !ring) {
        hs_free(s);
        hs_free(ring);
        if (ops->destroy)
            ops->destroy(state);
        return hs_err_set(err, HS_ENOMEM, "alert sink '%s': out of memory", p->name);
    }
    snprintf(s->name, sizeof s->name, "%s", p->name);
    s->min_severity = p->min_severity;
    s->ops = ops;
    s->state = state;
    s->retry_initial_ms = p->retry_initial_ms;
    s->retry_max_ms = p->retry_max_ms;
    s->ring = ring;
    s->cap = (size_t)p->queue;
    atomic_init(&s->stopping, false);
    atomic_init(&s->deadline_ns, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->thread, NULL, sink_main, s) != 0) {
        sink_free(s);
        return hs_err_set(err, HS_ENOMEM, "alert sink '%s': cannot start its thread", p->name);
    }
    *out = s;
    return HS_OK;
}

void hs_alert_sink_offer(hs_alert_sink *s, struct hs_alert_item *it)
{
    if (it->al.severity < s->min_severity)
        return;
    atomic_fetch_add(&it->refs, 1);
    struct hs_alert_item *victim = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->count == s->cap) {
        /* Full: the oldest of the least severe queued alerts makes room,
           provided it is not more severe than the newcomer. */
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < s->count; i++) {
            enum hs_alert_severity sv = s->ring[(s->head + i) % s->cap]->al.severity;
            if (sv <= it->al.severity &&
                (best == SIZE_MAX || sv < s->ring[(s->head + best) % s->cap]->al.severity))
                best = i;
        }
        if (best == SIZE_MAX) {
            victim = it;
        } else {
            victim = s->ring[(s->head + best) % s->cap];
            for (size_t i = best; i + 1 < s->count; i++)
                s->ring[(s->head + i) % s->cap] = s->ring[(s->head + i + 1) % s->cap];
            s->count--;
        }
    }
    if (victim != it) {
        s->ring[(s->head + s->count) % s->cap] = it;
        s->count++;
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->mu);
    if (victim) {
        uint64_t n = atomic_fetch_add(&s->dropped, 1) + 1;
        if (n == 1 || n % 100 == 0) /* a flood would otherwise flood the log too */
            hs_log_warn("alerts.dropped", "sink=%s type=%s severity=%s dropped_total=%llu reason=queue_full",
                        s->name, victim->al.type, hs_alert_severity_name(victim->al.severity),
                        (unsigned long long)n);
        hs_alert_item_unref(victim);
    }
}

bool hs_alert_sink_idle(hs_alert_sink *s)
{
    pthread_mutex_lock(&s->mu);
    bool idle = s->count == 0 && !s->inflight;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

static void sink_drain(hs_alert_sink *s, int64_t deadline_ns)
{
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->deadline_ns, deadline_ns);
    atomic_store(&s->stopping, true);
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->mu);
}

size_t hs_alert_sink_stop(hs_alert_sink *s, int64_t deadline_ns)
{
    if (!atomic_load(&s->stopping))
        sink_drain(s, deadline_ns);
    pthread_join(s->thread, NULL);
    size_t left = s->count + (s->inflight ? 1 : 0);
    for (size_t i = 0; i < s->count; i++)
        hs_alert_item_unref(s->ring[(s->head + i) % s->cap]);
    hs_alert_item_unref(s->inflight);
    if (left)
        hs_log_warn("alerts.undelivered", "sink=%s left=%zu delivered=%llu", s->name, left,
                    (unsigned long long)atomic_load(&s->delivered));
    sink_free(s);
    return left;
}

void hs_alert_sink_begin_stop(hs_alert_sink *s, int64_t deadline_ns)
{
    sink_drain(s, deadline_ns);
}

void hs_alert_sink_get_stats(hs_alert_sink *s, struct hs_alert_sink_stats *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", s->name);
    out->delivered = atomic_load(&s->delivered);
    out->failures = atomic_load(&s->failures);
    out->rejected = atomic_load(&s->rejected);
    out->dropped = atomic_load(&s->dropped);
    pthread_mutex_lock(&s->mu);
    out->queued = s->count + (s->inflight ? 1 : 0);
    pthread_mutex_unlock(&s->mu);
}
