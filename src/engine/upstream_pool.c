/* Load balancing, health checks, circuit breakers and retries over several
 * upstreams (engine/upstream_pool.h).
 *
 * Locks: pool->mu guards every member's mutable state (health, breaker,
 * counts) and the round-robin weights; it is held only for bookkeeping,
 * never across I/O. pool->hmu guards the health thread's stop flag and the
 * health transfers in flight, so that hs_upstream_pool_free can cut them
 * instead of waiting out their timeout. A stream's own mu guards the swap of
 * its current transfer against hs_upstream_pool_cancel from another thread.
 *
 * Lifetime: the pool is reference-counted; each stream holds a reference,
 * so a server may free its pool while a stream it started still runs. */
#include "engine/upstream_pool.h"

#include "engine/upstream.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum {
    MAX_MEMBERS = 64, /* the tried set of a request is a 64-bit mask */
    DEFAULT_RETRIES = 1,
    DEFAULT_HEALTH_MS = 10000,
    DEFAULT_HEALTH_TIMEOUT_MS = 2000,
    DEFAULT_BREAKER_FAILURES = 5,
    DEFAULT_COOLDOWN_MS = 30000,
    DEFAULT_BACKOFF_MS = 50,
    DEFAULT_RA_CAP_MS = 2000,
};

struct member {
    hs_upstream *up;     /* requests */
    hs_upstream *health; /* GET /models with the short health timeout */
    int weight;
    /* under pool->mu */
    bool healthy;
    enum hs_breaker breaker;
    int64_t opened_ms; /* when the breaker last opened (the breaker's clock) */
    bool trial_busy;   /* half-open: the one trial request is in flight */
    int consecutive;   /* failures in a row */
    int outstanding;
    int64_t cw; /* smooth weighted round robin: current weight */
    uint64_t requests, failures, opens;
};

struct hs_upstream_pool {
    char *name;
    struct member *m;
    int n;
    int retries, health_ms, health_timeout_ms, breaker_failures, cooldown_ms, backoff_ms, ra_cap_ms;
    int64_t (*clock_ms)(void *user);
    void *clock_user;
    atomic_int refs;
    pthread_mutex_t mu;
    uint64_t retries_total; /* under mu */
    /* the health thread */
    pthread_mutex_t round_mu; /* one round at a time */
    pthread_mutex_t hmu;
    pthread_cond_t hcv;
    bool stop;                /* under hmu */
    hs_upstream_stream **hst; /* under hmu: the round's transfers, to cut on free */
    pthread_t thread;
    bool thread_started;
};

enum outcome { OUT_NONE, OUT_OK, OUT_FAIL };

struct hs_upstream_pool_stream {
    hs_upstream_pool *pool;
    char *path;
    char *body;
    size_t len;
    char *rid;
    pthread_mutex_t mu;     /* guards st against hs_upstream_pool_cancel */
    hs_upstream_stream *st; /* the current attempt; NULL during a backoff */
    int member;             /* of the current (or next, during a backoff) attempt */
    bool counted;           /* member's outstanding includes this stream */
    bool trial;             /* the attempt is its member's half-open trial */
    bool reported;          /* the attempt's outcome went to the breaker */
    uint64_t tried;         /* members tried, as bits */
    int attempts, retries_left;
    int64_t retry_at_ns;
    bool have_final;
    int final;
    hs_err final_err;
    atomic_bool cancel;
};

const char *hs_breaker_name(enum hs_breaker b)
{
    switch (b) {
    case HS_BREAKER_CLOSED:
        return "closed";
    case HS_BREAKER_OPEN:
        return "open";
    case HS_BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "?";
}

static int64_t pool_now_ms(const hs_upstream_pool *p)
{
    return p->clock_ms ? p->clock_ms(p->clock_user) : hs_now_ns() / 1000000;
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---------------------------------------------------------------------------
 * create, free */

static void pool_destroy(hs_upstream_pool *p)
{
    for (int i = 0; i < p->n; i++) {
        hs_upstream_free(p->m[i].up);
        hs_upstream_free(p->m[i].health);
    }
    hs_free(p->m);
    hs_free(p->hst);
    hs_free(p->name);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->round_mu);
    pthread_mutex_destroy(&p->hmu);
    pthread_cond_destroy(&p->hcv);
    hs_free(p);
}

static void pool_unref(hs_upstream_pool *p)
{
    if (atomic_fetch_sub(&p->refs, 1) == 1)
        pool_destroy(p);
}

static void *health_main(void *arg)
{
    hs_upstream_pool *p = arg;
    for (;;) {
        hs_upstream_pool_check_health(p);
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += p->health_ms / 1000;
        dl.tv_nsec += (long)(p->health_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&p->hmu);
        while (!p->stop && pthread_cond_timedwait(&p->hcv, &p->hmu, &dl) != ETIMEDOUT) {
        }
        bool stop = p->stop;
        pthread_mutex_unlock(&p->hmu);
        if (stop)
            return NULL;
    }
}

static int pick_default(int v, int def)
{
    return v > 0 ? v : def;
}

int hs_upstream_pool_create(const struct hs_upstream_pool_params *pp, hs_upstream_pool **out, hs_err *err)
{
    if (!out)
        return hs_err_set(err, HS_EINVAL, "hs_upstream_pool_create: out is NULL");
    *out = NULL;
    if (!pp || !pp->name || !pp->members || pp->n_members < 1)
        return hs_err_set(err, HS_EINVAL, "upstream pool: a name and at least one member are required");
    if (pp->n_members > MAX_MEMBERS)
        return hs_err_set(err, HS_EINVAL, "upstream pool '%s': %d members; at most %d", pp->name,
                          pp->n_members, MAX_MEMBERS);
    hs_upstream_pool *p = hs_calloc(1, sizeof *p);
    if (!p)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->round_mu, NULL);
    pthread_mutex_init(&p->hmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->hcv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&p->refs, 1);
    p->name = hs_strdup(pp->name);
    p->m = hs_calloc((size_t)pp->n_members, sizeof *p->m);
    p->hst = hs_calloc((size_t)pp->n_members, sizeof *p->hst);
    if (!p->name || !p->m || !p->hst) {
        pool_destroy(p);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    p->retries = pp->retries < 0 ? DEFAULT_RETRIES : pp->retries;
    p->health_ms = pp->health_interval_ms < 0 ? -1 : pick_default(pp->health_interval_ms, DEFAULT_HEALTH_MS);
    p->health_timeout_ms = pick_default(pp->health_timeout_ms, DEFAULT_HEALTH_TIMEOUT_MS);
    p->breaker_failures = pick_default(pp->breaker_failures, DEFAULT_BREAKER_FAILURES);
    p->cooldown_ms = pick_default(pp->breaker_cooldown_ms, DEFAULT_COOLDOWN_MS);
    p->backoff_ms = pick_default(pp->backoff_ms, DEFAULT_BACKOFF_MS);
    p->ra_cap_ms = pick_default(pp->retry_after_cap_ms, DEFAULT_RA_CAP_MS);
    p->clock_ms = pp->clock_ms;
    p->clock_user = pp->clock_user;
    for (int i = 0; i < pp->n_members; i++) {
        const struct hs_upstream_member_params *mp = &pp->members[i];
        struct hs_upstream_params up = {
            .url = mp->url,
            .api_key = mp->api_key,
            .model = mp->model,
            .connect_timeout_ms = pp->connect_timeout_ms,
            .timeout_ms = pp->timeout_ms,
            .idle_timeout_ms = pp->idle_timeout_ms,
        };
        struct hs_upstream_params hp = {
            .url = mp->url,
            .api_key = mp->api_key,
            .connect_timeout_ms = p->health_timeout_ms,
            .timeout_ms = p->health_timeout_ms,
            .idle_timeout_ms = p->health_timeout_ms,
        };
        p->n = i + 1; /* so that pool_destroy frees what was made */
        int rc = hs_upstream_create(&up, &p->m[i].up, err);
        if (!rc)
            rc = hs_upstream_create(&hp, &p->m[i].health, err);
        if (rc) {
            pool_destroy(p);
            return hs_err_prefix(err, "upstream %d of '%s': ", i + 1, pp->name);
        }
        p->m[i].weight = mp->weight > 0 ? mp->weight : 1;
        p->m[i].healthy = true;
    }
    if (p->health_ms > 0) {
        int prc = pthread_create(&p->thread, NULL, health_main, p);
        if (prc != 0) {
            pool_destroy(p);
            return hs_err_set(err, HS_EIO, "upstream pool '%s': starting the health thread: %s", pp->name,
                              strerror(prc));
        }
        p->thread_started = true;
    }
    *out = p;
    return HS_OK;
}

void hs_upstream_pool_free(hs_upstream_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->hmu);
    p->stop = true;
    for (int i = 0; i < p->n; i++)
        hs_upstream_cancel(p->hst[i]); /* NULL does nothing */
    pthread_cond_broadcast(&p->hcv);
    pthread_mutex_unlock(&p->hmu);
    if (p->thread_started)
        pthread_join(p->thread, NULL);
    p->thread_started = false;
    pool_unref(p);
}

int hs_upstream_pool_size(const hs_upstream_pool *p)
{
    return p ? p->n : 0;
}

int hs_upstream_pool_member(hs_upstream_pool *p, int i, struct hs_upstream_member_state *out)
{
    if (!p || !out || i < 0 || i >= p->n)
        return HS_EINVAL;
    const struct member *m = &p->m[i];
    pthread_mutex_lock(&p->mu);
    out->url = hs_upstream_url(m->up);
    out->weight = m->weight;
    out->up = m->healthy;
    out->breaker = m->breaker;
    out->outstanding = m->outstanding;
    out->consecutive_failures = m->consecutive;
    out->requests = m->requests;
    out->failures = m->failures;
    out->breaker_opens = m->opens;
    pthread_mutex_unlock(&p->mu);
    return HS_OK;
}

uint64_t hs_upstream_pool_retries(hs_upstream_pool *p)
{
    if (!p)
        return 0;
    pthread_mutex_lock(&p->mu);
    uint64_t r = p->retries_total;
    pthread_mutex_unlock(&p->mu);
    return r;
}

int hs_upstream_pool_retry_after_s(hs_upstream_pool *p)
{
    if (!p)
        return 1;
    int64_t now = pool_now_ms(p);
    int64_t best = p->health_ms > 0 ? p->health_ms : p->cooldown_ms;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        const struct member *m = &p->m[i];
        if (m->healthy && m->breaker == HS_BREAKER_OPEN) {
            int64_t left = m->opened_ms + p->cooldown_ms - now;
            if (left < best)
                best = left;
        }
    }
    pthread_mutex_unlock(&p->mu);
    int64_t s = (best + 999) / 1000;
    return s < 1 ? 1 : (s > 3600 ? 3600 : (int)s);
}

/* ---------------------------------------------------------------------------
 * health */

void hs_upstream_pool_check_health(hs_upstream_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->round_mu);
    /* All members at once: one slow member does not delay the verdict on
     * the others beyond the health timeout. */
    hs_upstream_stream *st[MAX_MEMBERS] = {0};
    hs_err errs[MAX_MEMBERS];
    int start_rc[MAX_MEMBERS];
    pthread_mutex_lock(&p->hmu);
    bool stop = p->stop;
    pthread_mutex_unlock(&p->hmu);
    for (int i = 0; i < p->n && !stop; i++) {
        hs_err_clear(&errs[i]);
        start_rc[i] = hs_upstream_get(p->m[i].health, "/models", &st[i], &errs[i]);
        pthread_mutex_lock(&p->hmu);
        p->hst[i] = st[i];
        if (p->stop)
            hs_upstream_cancel(st[i]); /* free came before it was published */
        pthread_mutex_unlock(&p->hmu);
    }
    for (int i = 0; i < p->n && !stop; i++) {
        int status = start_rc[i] ? start_rc[i] : hs_upstream_status(st[i], -1, &errs[i]);
        pthread_mutex_lock(&p->hmu);
        p->hst[i] = NULL;
        bool stopping = p->stop;
        pthread_mutex_unlock(&p->hmu);
        hs_upstream_close(st[i]);
        if (stopping)
            continue; /* a cut transfer says nothing about the member */
        /* Any answer but a server error is a live server: a 401 or a 429
         * still shows the process up and reachable. */
        bool ok = status > 0 && status < 500;
        struct member *m = &p->m[i];
        pthread_mutex_lock(&p->mu);
        bool was = m->healthy;
        m->healthy = ok;
        pthread_mutex_unlock(&p->mu);
        if (was && !ok) {
            char why[64];
            if (status > 0)
                snprintf(why, sizeof why, "HTTP %d", status);
            hs_log_info("upstream.down", "model=%s url=%s msg=\"%s\"", p->name, hs_upstream_url(m->up),
                        status > 0 ? why : (errs[i].msg[0] ? errs[i].msg : hs_err_name(status)));
        } else if (!was && ok) {
            hs_log_info("upstream.up", "model=%s url=%s status=%d", p->name, hs_upstream_url(m->up), status);
        }
    }
    pthread_mutex_unlock(&p->round_mu);
}

/* ---------------------------------------------------------------------------
 * picking a member, and the breaker */

/* Whether member m may take a request now (p->mu held). */
static bool usable(const hs_upstream_pool *p, const struct member *m, int64_t now)
{
    if (!m->healthy)
        return false;
    switch (m->breaker) {
    case HS_BREAKER_CLOSED:
        return true;
    case HS_BREAKER_OPEN:
        return !m->trial_busy && now - m->opened_ms >= p->cooldown_ms;
    case HS_BREAKER_HALF_OPEN:
        return !m->trial_busy;
    }
    return false;
}

/* Picks and reserves a member (its outstanding count and requests grow):
 * the fewest outstanding requests per unit of weight among the usable
 * members not in `tried` (any usable member when all were tried), ties by
 * smooth weighted round robin. Returns -1 when none is usable. */
static int pick(hs_upstream_pool *p, uint64_t tried, bool *trial)
{
    *trial = false;
    int64_t now = pool_now_ms(p);
    pthread_mutex_lock(&p->mu);
    uint64_t cand = 0;
    for (int pass = 0; pass < 2 && !cand; pass++)
        for (int i = 0; i < p->n; i++)
            if (usable(p, &p->m[i], now) && (pass == 1 || !(tried >> i & 1)))
                cand |= (uint64_t)1 << i;
    if (!cand) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    /* the least load: outstanding / weight, compared without division */
    int best = -1;
    for (int i = 0; i < p->n; i++) {
        if (!(cand >> i & 1))
            continue;
        if (best < 0 || (int64_t)p->m[i].outstanding * p->m[best].weight <
                            (int64_t)p->m[best].outstanding * p->m[i].weight)
            best = i;
    }
    int64_t total = 0;
    int chosen = -1;
    for (int i = 0; i < p->n; i++) {
        struct member *m = &p->m[i];
        if (!(cand >> i & 1) ||
            (int64_t)m->outstanding * p->m[best].weight != (int64_t)p->m[best].outstanding * m->weight)
            continue;
        m->cw += m->weight;
        total += m->weight;
        if (chosen < 0 || m->cw > p->m[chosen].cw)
            chosen = i;
    }
    struct member *m = &p->m[chosen];
    m->cw -= total;
    m->outstanding++;
    m->requests++;
    if (m->breaker != HS_BREAKER_CLOSED) {
        /* open and cooled down, or half-open and free: this is the trial */
        if (m->breaker == HS_BREAKER_OPEN)
            hs_log_info("upstream.breaker", "model=%s url=%s state=half_open", p->name,
                        hs_upstream_url(m->up));
        m->breaker = HS_BREAKER_HALF_OPEN;
        m->trial_busy = true;
        *trial = true;
    }
    pthread_mutex_unlock(&p->mu);
    return chosen;
}

static void report(hs_upstream_pool *p, int i, enum outcome o, bool trial)
{
    struct member *m = &p->m[i];
    int64_t now = pool_now_ms(p);
    pthread_mutex_lock(&p->mu);
    if (trial)
        m->trial_busy = false;
    const char *url = hs_upstream_url(m->up);
    if (o == OUT_OK) {
        m->consecutive = 0;
        if (trial && m->breaker == HS_BREAKER_HALF_OPEN) {
            m->breaker = HS_BREAKER_CLOSED;
            hs_log_info("upstream.breaker", "model=%s url=%s state=closed", p->name, url);
        }
    } else if (o == OUT_FAIL) {
        m->failures++;
        m->consecutive++;
        if ((trial && m->breaker == HS_BREAKER_HALF_OPEN) ||
            (m->breaker == HS_BREAKER_CLOSED && m->consecutive >= p->breaker_failures)) {
            m->breaker = HS_BREAKER_OPEN;
            m->opened_ms = now;
            m->opens++;
            hs_log_info("upstream.breaker", "model=%s url=%s state=open failures=%d cooldown_ms=%d", p->name,
                        url, m->consecutive, p->cooldown_ms);
        }
    }
    pthread_mutex_unlock(&p->mu);
}

static void release(hs_upstream_pool *p, int i)
{
    pthread_mutex_lock(&p->mu);
    p->m[i].outstanding--;
    pthread_mutex_unlock(&p->mu);
}

/* ---------------------------------------------------------------------------
 * streams */

static void stream_free(hs_upstream_pool_stream *s)
{
    hs_upstream_close(s->st);
    if (s->counted) {
        if (!s->reported)
            report(s->pool, s->member, OUT_NONE, s->trial); /* frees a trial slot */
        release(s->pool, s->member);
    }
    hs_free(s->path);
    hs_free(s->body);
    hs_free(s->rid);
    pthread_mutex_destroy(&s->mu);
    hs_upstream_pool *p = s->pool;
    hs_free(s);
    pool_unref(p);
}

/* Starts the attempt on the member already reserved (s->member). */
static int start_attempt(hs_upstream_pool_stream *s, hs_err *err)
{
    hs_upstream_stream *st = NULL;
    s->attempts++;
    s->tried |= (uint64_t)1 << s->member;
    s->reported = false;
    int rc = hs_upstream_post(s->pool->m[s->member].up, s->path, s->body, s->len, s->rid, &st, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->mu);
    bool cut = atomic_load(&s->cancel);
    s->st = st;
    if (cut)
        hs_upstream_cancel(st);
    pthread_mutex_unlock(&s->mu);
    return HS_OK;
}

int hs_upstream_pool_post(hs_upstream_pool *p, const char *path, const char *body, size_t len,
                          const char *request_id, hs_upstream_pool_stream **out, hs_err *err)
{
    if (!out)
        return hs_err_set(err, HS_EINVAL, "upstream pool: out is NULL");
    *out = NULL;
    if (!p || !path || (!body && len))
        return hs_err_set(err, HS_EINVAL, "upstream pool: pool, path and body are required");
    hs_upstream_pool_stream *s = hs_calloc(1, sizeof *s);
    if (!s)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    atomic_fetch_add(&p->refs, 1);
    s->pool = p;
    s->path = hs_strdup(path);
    s->body = hs_malloc(len + 1);
    s->rid = request_id ? hs_strdup(request_id) : NULL;
    if (!s->path || !s->body || (request_id && !s->rid)) {
        stream_free(s);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    if (len)
        memcpy(s->body, body, len);
    s->body[len] = '\0';
    s->len = len;
    s->retries_left = p->retries;
    s->member = pick(p, 0, &s->trial);
    if (s->member < 0) {
        stream_free(s);
        return hs_err_set(err, HS_EBUSY, "no healthy upstream for '%s'", p->name);
    }
    s->counted = true;
    int rc = start_attempt(s, err);
    if (rc) {
        stream_free(s);
        return rc;
    }
    *out = s;
    return HS_OK;
}

static int finish(hs_upstream_pool_stream *s, int status, const hs_err *e, hs_err *err)
{
    s->have_final = true;
    s->final = status;
    if (status < 0) {
        if (e && e->code)
            s->final_err = *e;
        else
            hs_err_set(&s->final_err, status, "%s", hs_err_name(status));
        if (err)
            *err = s->final_err;
    }
    return status;
}

/* The backoff before a retry on member next after a failure with status. */
static int64_t backoff_ms(const hs_upstream_pool_stream *s, int next, int status)
{
    const hs_upstream_pool *p = s->pool;
    int64_t ms = (int64_t)p->backoff_ms * s->attempts;
    if (next == s->member && status > 0 && s->st) {
        /* The member asked for a pause; honoured up to the cap (a retry on
         * another member needs no such wait). */
        const char *ra = hs_upstream_header(s->st, "Retry-After");
        int64_t secs;
        if (ra && hs_parse_i64(ra, 0, 86400, &secs) == HS_OK) {
            int64_t want = secs * 1000 < p->ra_cap_ms ? secs * 1000 : p->ra_cap_ms;
            if (want > ms)
                ms = want;
        }
    }
    return ms;
}

int hs_upstream_pool_status(hs_upstream_pool_stream *s, int timeout_ms, hs_err *err)
{
    if (!s)
        return hs_err_set(err, HS_EINVAL, "hs_upstream_pool_status: stream is NULL");
    if (s->have_final) {
        if (s->final < 0 && err)
            *err = s->final_err;
        return s->final;
    }
    hs_upstream_pool *p = s->pool;
    int64_t deadline = timeout_ms > 0 ? hs_now_ns() + (int64_t)timeout_ms * 1000000 : 0;
    for (;;) {
        int64_t left_ms = timeout_ms < 0 ? -1 : (timeout_ms == 0 ? 0 : (deadline - hs_now_ns()) / 1000000);
        if (timeout_ms > 0 && left_ms < 0)
            left_ms = 0;
        if (!s->st) {
            if (atomic_load(&s->cancel)) {
                hs_err e;
                hs_err_set(&e, HS_ECANCELED, "request to the upstream for '%s' canceled", p->name);
                return finish(s, HS_ECANCELED, &e, err);
            }
            int64_t wait = (s->retry_at_ns - hs_now_ns() + 999999) / 1000000;
            if (wait > 0) {
                if (left_ms >= 0 && left_ms < wait) {
                    sleep_ms(left_ms);
                    return 0;
                }
                sleep_ms(wait);
                continue; /* the cancel flag again, then the attempt */
            }
            hs_err e = {0};
            int rc = start_attempt(s, &e);
            if (rc)
                return finish(s, rc, &e, err);
            continue;
        }
        hs_err e = {0};
        int status = hs_upstream_status(s->st, (int)left_ms, &e);
        if (status == 0)
            return 0;
        bool failed = status < 0 || status >= 500 || status == 429;
        enum outcome o = !failed ? OUT_OK : (status == HS_ECANCELED ? OUT_NONE : OUT_FAIL);
        report(p, s->member, o, s->trial);
        s->reported = true;
        s->trial = false;
        if (o == OUT_FAIL && s->retries_left > 0 && !atomic_load(&s->cancel)) {
            bool trial;
            int next = pick(p, s->tried, &trial);
            if (next >= 0) {
                int64_t pause = backoff_ms(s, next, status);
                char why[64];
                if (status > 0)
                    snprintf(why, sizeof why, "HTTP %d", status);
                hs_log_info("upstream.retry", "model=%s url=%s next=%s attempt=%d msg=\"%s\" backoff_ms=%lld",
                            p->name, hs_upstream_url(p->m[s->member].up), hs_upstream_url(p->m[next].up),
                            s->attempts + 1, status > 0 ? why : e.msg, (long long)pause);
                pthread_mutex_lock(&s->mu);
                hs_upstream_stream *old = s->st;
                s->st = NULL;
                pthread_mutex_unlock(&s->mu);
                hs_upstream_close(old);
                release(p, s->member);
                s->member = next;
                s->trial = trial;
                s->reported = false; /* a close during the backoff frees a trial slot */
                s->retries_left--;
                s->retry_at_ns = hs_now_ns() + pause * 1000000;
                pthread_mutex_lock(&p->mu);
                p->retries_total++;
                pthread_mutex_unlock(&p->mu);
                continue;
            }
        }
        return finish(s, status, &e, err);
    }
}

const char *hs_upstream_pool_header(hs_upstream_pool_stream *s, const char *name)
{
    if (!s || !s->have_final || s->final <= 0)
        return NULL;
    return hs_upstream_header(s->st, name);
}

long hs_upstream_pool_read(hs_upstream_pool_stream *s, char *buf, size_t cap, int timeout_ms, hs_err *err)
{
    if (!s || !s->have_final || s->final <= 0 || !s->st)
        return hs_err_set(err, HS_EINVAL, "hs_upstream_pool_read: no answer to read (status first)");
    return hs_upstream_read(s->st, buf, cap, timeout_ms, err);
}

const char *hs_upstream_pool_stream_url(const hs_upstream_pool_stream *s)
{
    return s && s->member >= 0 ? hs_upstream_url(s->pool->m[s->member].up) : NULL;
}

int hs_upstream_pool_stream_attempts(const hs_upstream_pool_stream *s)
{
    return s ? s->attempts : 0;
}

void hs_upstream_pool_cancel(hs_upstream_pool_stream *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->cancel, true);
    hs_upstream_cancel(s->st);
    pthread_mutex_unlock(&s->mu);
}

void hs_upstream_pool_close(hs_upstream_pool_stream *s)
{
    if (s)
        stream_free(s);
}
