/* Sliding-window rate limits per subject.
 *
 * Each window is a ring of 60 counters: one per second for the per-minute
 * windows (requests and tokens), one per minute for the hourly one. A window
 * covers the current unit and the 59 before it, so a request counts for
 * 60 units after the unit it arrived in and then drops out: the minute
 * windows are exact to the second, the hour window to the minute. Memory per
 * subject is fixed (about 256 bytes per enabled window) whatever the limits,
 * where a ring of timestamps would grow with them.
 *
 * Subjects live in a hash table and in a list ordered by last activity, most
 * recent first. Each call drops subjects from the tail that have been idle
 * longer than the longest window (their counts are all zero by then, so
 * forgetting them changes no verdict), and the table holds at most
 * max_subjects: past that the least recently active subject is dropped,
 * which bounds memory against a flood of distinct subjects. */
#include "server/ratelimit.h"

#include "base/err.h"
#include "base/mem.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#define UNITS 60
#define SEC_MS 1000
#define MIN_MS 60000
/* After this long without a call every window of a subject is empty: its
 * last hourly unit drops out 60 minutes after the minute it began. */
#define IDLE_MS (61LL * MIN_MS)
#define DEFAULT_MAX_SUBJECTS 65536

enum { W_RPM, W_RPH, W_TPM, W_COUNT };

static const int64_t unit_ms[W_COUNT] = {SEC_MS, MIN_MS, SEC_MS};

struct window {
    int64_t head;          /* newest unit in the ring (now_ms / unit_ms, floored) */
    int64_t sum;           /* of count[] */
    uint32_t count[UNITS]; /* count[u % UNITS] for units head-59..head */
};

struct subject {
    struct subject *hnext;       /* hash chain */
    struct subject *prev, *next; /* activity list: prev is more recent */
    uint64_t hash;
    int64_t last_ms;
    char *name;
    struct window w[]; /* one per enabled limit, in W_ order */
};

struct hs_ratelimit {
    struct hs_rate_limit lim;
    int slot[W_COUNT]; /* index of each window in subject.w, -1 when off */
    int n_windows;
    pthread_mutex_t mu;
    struct subject **table;
    size_t n_buckets; /* power of two */
    size_t n_subjects, max_subjects;
    struct subject *newest, *oldest;
};

/* --- one window --- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Ring slot of a unit (units are negative only for clocks before 1970). */
static int slot_of(int64_t unit)
{
    int64_t m = unit % UNITS;
    return (int)(m < 0 ? m + UNITS : m);
}

static void window_init(struct window *w, int64_t unit)
{
    memset(w, 0, sizeof(*w));
    w->head = unit;
}

/* Moves the ring forward to unit, zeroing the units that slid out. A unit
 * before head (a caller's clock read just before another's) counts as head. */
static void window_advance(struct window *w, int64_t unit)
{
    if (unit <= w->head)
        return;
    if (unit - w->head >= UNITS) {
        memset(w->count, 0, sizeof(w->count));
        w->sum = 0;
    } else {
        for (int64_t u = w->head + 1; u <= unit; u++) {
            uint32_t *c = &w->count[slot_of(u)];
            w->sum -= *c;
            *c = 0;
        }
    }
    w->head = unit;
}

static void window_add(struct window *w, int64_t k)
{
    uint32_t *c = &w->count[slot_of(w->head)];
    if (k > (int64_t)(UINT32_MAX - *c)) /* saturate; a bucket this full refuses anyway */
        k = (int64_t)(UINT32_MAX - *c);
    *c += (uint32_t)k;
    w->sum += k;
}

/* Milliseconds from now until the window's sum drops below limit: the units
 * leave oldest first, each UNITS units after it began. */
static int64_t window_wait_ms(const struct window *w, int64_t limit, int64_t ums, int64_t now_ms)
{
    int64_t need = w->sum - limit + 1;
    if (need <= 0)
        return 0;
    int64_t removed = 0;
    for (int64_t u = w->head - (UNITS - 1); u <= w->head; u++) {
        removed += w->count[slot_of(u)];
        if (removed >= need)
            return (u + UNITS) * ums - now_ms;
    }
    return UNITS * ums; /* not reached: removing everything gets below any limit >= 0 */
}

/* Milliseconds until the window is empty again (OpenAI's reset-*). */
static int64_t window_reset_ms(const struct window *w, int64_t ums, int64_t now_ms)
{
    for (int64_t u = w->head; u > w->head - UNITS; u--)
        if (w->count[slot_of(u)])
            return (u + UNITS) * ums - now_ms;
    return 0;
}

static int ceil_s(int64_t ms)
{
    if (ms <= 0)
        return 0;
    int64_t s = (ms + 999) / 1000;
    return s > INT32_MAX ? INT32_MAX : (int)s;
}

/* --- subjects --- */

static void list_unlink(hs_ratelimit *rl, struct subject *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        rl->newest = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        rl->oldest = s->prev;
    s->prev = s->next = NULL;
}

static void list_push_front(hs_ratelimit *rl, struct subject *s)
{
    s->prev = NULL;
    s->next = rl->newest;
    if (rl->newest)
        rl->newest->prev = s;
    rl->newest = s;
    if (!rl->oldest)
        rl->oldest = s;
}

static void forget(hs_ratelimit *rl, struct subject *s)
{
    struct subject **pp = &rl->table[s->hash & (rl->n_buckets - 1)];
    while (*pp != s)
        pp = &(*pp)->hnext;
    *pp = s->hnext;
    list_unlink(rl, s);
    rl->n_subjects--;
    hs_free(s->name);
    hs_free(s);
}

static void forget_idle(hs_ratelimit *rl, int64_t now_ms)
{
    while (rl->oldest && now_ms - rl->oldest->last_ms > IDLE_MS)
        forget(rl, rl->oldest);
}

static void grow_table(hs_ratelimit *rl)
{
    size_t nb = rl->n_buckets * 2;
    struct subject **t = hs_calloc(nb, sizeof(*t));
    if (!t)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < rl->n_buckets; i++) {
        struct subject *s = rl->table[i];
        while (s) {
            struct subject *next = s->hnext;
            s->hnext = t[s->hash & (nb - 1)];
            t[s->hash & (nb - 1)] = s;
            s = next;
        }
    }
    hs_free(rl->table);
    rl->table = t;
    rl->n_buckets = nb;
}

/* The subject's state, created when new, moved to the front of the activity
 * list, its windows advanced to now. NULL only when out of memory. */
static struct subject *touch(hs_ratelimit *rl, const char *name, int64_t now_ms)
{
    forget_idle(rl, now_ms);
    size_t len = strlen(name);
    uint64_t h = XXH3_64bits(name, len);
    struct subject *s = rl->table[h & (rl->n_buckets - 1)];
    while (s && !(s->hash == h && strcmp(s->name, name) == 0))
        s = s->hnext;
    if (s) {
        list_unlink(rl, s);
    } else {
        while (rl->n_subjects >= rl->max_subjects && rl->oldest)
            forget(rl, rl->oldest);
        s = hs_calloc(1, sizeof(*s) + (size_t)rl->n_windows * sizeof(struct window));
        char *copy = hs_strndup(name, len);
        if (!s || !copy) {
            hs_free(s);
            hs_free(copy);
            return NULL;
        }
        s->name = copy;
        s->hash = h;
        s->last_ms = now_ms;
        for (int k = 0; k < W_COUNT; k++)
            if (rl->slot[k] >= 0)
                window_init(&s->w[rl->slot[k]], floor_div(now_ms, unit_ms[k]));
        s->hnext = rl->table[h & (rl->n_buckets - 1)];
        rl->table[h & (rl->n_buckets - 1)] = s;
        rl->n_subjects++;
        if (rl->n_subjects > rl->n_buckets)
            grow_table(rl);
    }
    list_push_front(rl, s);
    if (now_ms > s->last_ms)
        s->last_ms = now_ms;
    for (int k = 0; k < W_COUNT; k++)
        if (rl->slot[k] >= 0)
            window_advance(&s->w[rl->slot[k]], floor_div(now_ms, unit_ms[k]));
    return s;
}

/* --- public --- */

int hs_ratelimit_create(const struct hs_rate_limit *limits, hs_ratelimit **out)
{
    *out = NULL;
    if (!limits || limits->requests_per_minute < 0 || limits->requests_per_hour < 0 ||
        limits->tokens_per_minute < 0)
        return HS_EINVAL;
    hs_ratelimit *rl = hs_calloc(1, sizeof(*rl));
    if (!rl)
        return HS_ENOMEM;
    rl->lim = *limits;
    int on[W_COUNT] = {limits->requests_per_minute, limits->requests_per_hour, limits->tokens_per_minute};
    for (int k = 0; k < W_COUNT; k++)
        rl->slot[k] = on[k] > 0 ? rl->n_windows++ : -1;
    rl->n_buckets = 64;
    rl->max_subjects = DEFAULT_MAX_SUBJECTS;
    rl->table = hs_calloc(rl->n_buckets, sizeof(*rl->table));
    if (!rl->table || pthread_mutex_init(&rl->mu, NULL) != 0) {
        hs_free(rl->table);
        hs_free(rl);
        return HS_ENOMEM;
    }
    *out = rl;
    return HS_OK;
}

void hs_ratelimit_free(hs_ratelimit *rl)
{
    if (!rl)
        return;
    while (rl->oldest)
        forget(rl, rl->oldest);
    hs_free(rl->table);
    pthread_mutex_destroy(&rl->mu);
    hs_free(rl);
}

bool hs_ratelimit_enabled(const hs_ratelimit *rl)
{
    return rl && rl->n_windows > 0;
}

void hs_ratelimit_set_max_subjects(hs_ratelimit *rl, size_t max_subjects)
{
    pthread_mutex_lock(&rl->mu);
    rl->max_subjects = max_subjects > 0 ? max_subjects : 1;
    while (rl->n_subjects > rl->max_subjects)
        forget(rl, rl->oldest);
    pthread_mutex_unlock(&rl->mu);
}

size_t hs_ratelimit_subjects(hs_ratelimit *rl)
{
    pthread_mutex_lock(&rl->mu);
    size_t n = rl->n_subjects;
    pthread_mutex_unlock(&rl->mu);
    return n;
}

/* The request and token fields of v from s's windows as they stand. The
 * reported request window is the one with the fewest requests left (ties:
 * the shorter one). */
static void fill_verdict(const hs_ratelimit *rl, const struct subject *s, int64_t now_ms,
                         struct hs_rl_verdict *v)
{
    const int req_windows[2] = {W_RPM, W_RPH};
    const int limits[W_COUNT] = {rl->lim.requests_per_minute, rl->lim.requests_per_hour,
                                 rl->lim.tokens_per_minute};
    int best = -1;
    int64_t best_left = 0;
    for (int i = 0; i < 2; i++) {
        int k = req_windows[i];
        if (rl->slot[k] < 0)
            continue;
        int64_t left = limits[k] - s->w[rl->slot[k]].sum;
        if (best < 0 || left < best_left) {
            best = k;
            best_left = left;
        }
    }
    if (best >= 0) {
        const struct window *w = &s->w[rl->slot[best]];
        v->limit_requests = limits[best];
        v->remaining_requests = best_left > 0 ? (int)best_left : 0;
        v->reset_requests_s = ceil_s(window_reset_ms(w, unit_ms[best], now_ms));
    }
    if (rl->slot[W_TPM] >= 0) {
        const struct window *w = &s->w[rl->slot[W_TPM]];
        int64_t left = limits[W_TPM] - w->sum;
        v->limit_tokens = limits[W_TPM];
        v->remaining_tokens = left > 0 ? (int)left : 0;
        v->reset_tokens_s = ceil_s(window_reset_ms(w, SEC_MS, now_ms));
    }
}

bool hs_ratelimit_admit(hs_ratelimit *rl, const char *subject, int64_t now_ms, struct hs_rl_verdict *out)
{
    memset(out, 0, sizeof(*out));
    out->allowed = true;
    if (!hs_ratelimit_enabled(rl))
        return true;
    pthread_mutex_lock(&rl->mu);
    struct subject *s = touch(rl, subject ? subject : "", now_ms);
    if (!s) { /* out of memory: let the request through rather than refuse everyone */
        pthread_mutex_unlock(&rl->mu);
        return true;
    }
    const int limits[W_COUNT] = {rl->lim.requests_per_minute, rl->lim.requests_per_hour,
                                 rl->lim.tokens_per_minute};
    int64_t wait_ms = 0;
    for (int k = 0; k < W_COUNT; k++) {
        if (rl->slot[k] < 0)
            continue;
        int64_t ms = window_wait_ms(&s->w[rl->slot[k]], limits[k], unit_ms[k], now_ms);
        if (ms > wait_ms)
            wait_ms = ms;
    }
    /* wait_ms > 0 exactly when a window is full (its oldest unit still has
       at least a millisecond to go) */
    if (wait_ms > 0) {
        out->allowed = false;
        out->retry_after_s = ceil_s(wait_ms);
    } else {
        for (int k = W_RPM; k <= W_RPH; k++)
            if (rl->slot[k] >= 0)
                window_add(&s->w[rl->slot[k]], 1);
    }
    fill_verdict(rl, s, now_ms, out);
    pthread_mutex_unlock(&rl->mu);
    return out->allowed;
}

void hs_ratelimit_add_tokens(hs_ratelimit *rl, const char *subject, int64_t now_ms, int tokens)
{
    if (!rl || rl->slot[W_TPM] < 0 || tokens <= 0)
        return;
    pthread_mutex_lock(&rl->mu);
    struct subject *s = touch(rl, subject ? subject : "", now_ms);
    if (s)
        window_add(&s->w[rl->slot[W_TPM]], tokens);
    pthread_mutex_unlock(&rl->mu);
}

/* Durations as OpenAI writes them in x-ratelimit-reset-*: "6s", "1m0s", "1h2m3s". */
static void duration(char *buf, size_t n, int s)
{
    if (s >= 3600)
        snprintf(buf, n, "%dh%dm%ds", s / 3600, s % 3600 / 60, s % 60);
    else if (s >= 60)
        snprintf(buf, n, "%dm%ds", s / 60, s % 60);
    else
        snprintf(buf, n, "%ds", s);
}

void hs_ratelimit_headers(const struct hs_rl_verdict *v,
                          void (*fn)(void *user, const char *name, const char *value), void *user)
{
    char val[32];
    if (v->limit_requests > 0) {
        snprintf(val, sizeof(val), "%d", v->limit_requests);
        fn(user, "x-ratelimit-limit-requests", val);
        snprintf(val, sizeof(val), "%d", v->remaining_requests);
        fn(user, "x-ratelimit-remaining-requests", val);
        duration(val, sizeof(val), v->reset_requests_s);
        fn(user, "x-ratelimit-reset-requests", val);
    }
    if (v->limit_tokens > 0) {
        snprintf(val, sizeof(val), "%d", v->limit_tokens);
        fn(user, "x-ratelimit-limit-tokens", val);
        snprintf(val, sizeof(val), "%d", v->remaining_tokens);
        fn(user, "x-ratelimit-remaining-tokens", val);
        duration(val, sizeof(val), v->reset_tokens_s);
        fn(user, "x-ratelimit-reset-tokens", val);
    }
}
