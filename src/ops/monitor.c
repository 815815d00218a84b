/* The monitor's windows: a ring of the last N requests, 60 one-minute
 * buckets for the last hour, and the capture of a deploy's baseline.
 *
 * observe and feedback run on the server's request threads, so they only
 * write a few numbers under the mutex: no allocation, no sorting, no sums
 * that would need the whole window. Everything that costs (collecting,
 * sorting, percentiles) happens in snapshot, on a copy taken under the lock,
 * in the monitor's own thread. */
#include "ops/monitor.h"

#include "base/clock.h"
#include "base/mem.h"
#include "base/rng.h"

#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#define N_BUCKETS 60
#define BUCKET_MS 60000

enum { F_ERROR = 1, F_SAFETY = 2 };

/* The last cap requests. lat and conf hold NaN for "not measured". */
struct ring {
    int cap, head, count; /* head: the next slot written */
    double *lat, *conf;
    unsigned char *flags;
};

/* The last cap feedback events (+1 / -1). */
struct fbring {
    int cap, head, count;
    signed char *v;
};

/* One minute of the hour window. Counts and sums are exact; samples is a
 * uniform reservoir of the minute's latencies (Vitter's algorithm R). */
struct bucket {
    int64_t minute; /* which minute it holds; -1 = none */
    int64_t count, n_lat, errors, safety, n_conf, up, down;
    double lat_sum, conf_sum;
    int kept;
    double *samples; /* hour_samples slots */
};

struct hs_monitor {
    struct hs_monitor_params p;
    pthread_mutex_t lock;
    hs_rng rng; /* reservoir draws; under lock */

    struct ring req;
    struct fbring fb;
    struct bucket buckets[N_BUCKETS];

    /* The baseline: explicit, captured, or none. While capturing, requests go
     * to cap (which never wraps) and feedback to cap_up / cap_down; gen
     * changes with every deploy or set, so a baseline computed from an old
     * capture is not installed over a newer state. */
    bool has_baseline;
    struct hs_monitor_stats baseline;
    bool capturing;
    struct ring cap;
    int64_t cap_up, cap_down;
    uint64_t gen;
};

void hs_monitor_params_default(struct hs_monitor_params *p)
{
    memset(p, 0, sizeof *p);
    p->window = 500;
    p->hour_samples = 256;
    p->baseline_requests = 200;
    p->seed = 1;
}

const char *hs_monitor_window_name(enum hs_monitor_window w)
{
    return w == HS_MON_HOUR ? "hour" : "requests";
}

static int64_t now_ms(const hs_monitor *m)
{
    if (m->p.clock)
        return m->p.clock(m->p.clock_user);
    return hs_now_ns() / 1000000;
}

/* ---- rings ---- */

static int ring_init(struct ring *r, int cap)
{
    memset(r, 0, sizeof *r);
    r->cap = cap;
    if (cap == 0)
        return HS_OK;
    r->lat = hs_malloc((size_t)cap * sizeof *r->lat);
    r->conf = hs_malloc((size_t)cap * sizeof *r->conf);
    r->flags = hs_malloc((size_t)cap);
    return r->lat && r->conf && r->flags ? HS_OK : HS_ENOMEM;
}

static void ring_free(struct ring *r)
{
    hs_free(r->lat);
    hs_free(r->conf);
    hs_free(r->flags);
}

static double or_nan(double x)
{
    return isnan(x) || x < 0 ? NAN : x;
}

static unsigned char obs_flags(const struct hs_monitor_obs *o)
{
    return (unsigned char)((o->error ? F_ERROR : 0) | (o->safety_flagged ? F_SAFETY : 0));
}

static void ring_push(struct ring *r, const struct hs_monitor_obs *o)
{
    r->lat[r->head] = or_nan(o->latency_ms);
    r->conf[r->head] = or_nan(o->confidence);
    r->flags[r->head] = obs_flags(o);
    r->head = r->head + 1 == r->cap ? 0 : r->head + 1;
    if (r->count < r->cap)
        r->count++;
}

/* ---- the hour buckets ---- */

/* The bucket for minute, emptied first when it still holds an older one. */
static struct bucket *bucket_at(hs_monitor *m, int64_t minute)
{
    struct bucket *b = &m->buckets[minute % N_BUCKETS];
    if (b->minute != minute) {
        double *s = b->samples;
        memset(b, 0, sizeof *b);
        b->samples = s;
        b->minute = minute;
    }
    return b;
}

static int64_t minute_of(int64_t t_ms)
{
    return t_ms >= 0 ? t_ms / BUCKET_MS : 0;
}

static void bucket_add(hs_monitor *m, struct bucket *b, const struct hs_monitor_obs *o)
{
    b->count++;
    if (o->error)
        b->errors++;
    if (o->safety_flagged)
        b->safety++;
    double c = or_nan(o->confidence);
    if (!isnan(c)) {
        b->n_conf++;
        b->conf_sum += c;
    }
    double l = or_nan(o->latency_ms);
    if (isnan(l) || isinf(l))
        return;
    b->n_lat++;
    b->lat_sum += l;
    int k = m->p.hour_samples;
    if (b->kept < k) {
        b->samples[b->kept++] = l;
    } else {
        /* the n-th value replaces a random kept one with probability k/n */
        uint64_t j = hs_rng_u64(&m->rng) % (uint64_t)b->n_lat;
        if (j < (uint64_t)k)
            b->samples[j] = l;
    }
}

/* ---- create / free ---- */

int hs_monitor_create(const struct hs_monitor_params *params, hs_monitor **out, hs_err *err)
{
    *out = NULL;
    struct hs_monitor_params p;
    if (params)
        p = *params;
    else
        hs_monitor_params_default(&p);
    if (p.window < 1 || p.window > (1 << 24))
        return hs_err_set(err, HS_EINVAL, "monitor window must be 1..%d requests, not %d", 1 << 24, p.window);
    if (p.hour_samples < 1 || p.hour_samples > (1 << 20))
        return hs_err_set(err, HS_EINVAL, "monitor hour_samples must be 1..%d, not %d", 1 << 20,
                          p.hour_samples);
    if (p.baseline_requests < 0 || p.baseline_requests > (1 << 24))
        return hs_err_set(err, HS_EINVAL, "monitor baseline_requests must be 0..%d, not %d", 1 << 24,
                          p.baseline_requests);
    hs_monitor *m = hs_calloc(1, sizeof *m);
    if (!m)
        return hs_err_set(err, HS_ENOMEM, "monitor: out of memory");
    m->p = p;
    hs_rng_seed(&m->rng, p.seed);
    int rc = ring_init(&m->req, p.window);
    if (rc == HS_OK)
        rc = ring_init(&m->cap, p.baseline_requests);
    m->fb.cap = p.window;
    m->fb.v = hs_malloc((size_t)p.window);
    if (!m->fb.v)
        rc = HS_ENOMEM;
    for (int i = 0; i < N_BUCKETS; i++) {
        m->buckets[i].minute = -1;
        m->buckets[i].samples = hs_malloc((size_t)p.hour_samples * sizeof(double));
        if (!m->buckets[i].samples)
            rc = HS_ENOMEM;
    }
    if (rc == HS_OK && pthread_mutex_init(&m->lock, NULL) != 0)
        rc = HS_ENOMEM;
    else if (rc == HS_OK)
        m->capturing = p.baseline_requests > 0;
    if (rc != HS_OK) {
        ring_free(&m->req);
        ring_free(&m->cap);
        hs_free(m->fb.v);
        for (int i = 0; i < N_BUCKETS; i++)
            hs_free(m->buckets[i].samples);
        hs_free(m);
        return hs_err_set(err, HS_ENOMEM, "monitor: out of memory");
    }
    *out = m;
    return HS_OK;
}

void hs_monitor_free(hs_monitor *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    ring_free(&m->req);
    ring_free(&m->cap);
    hs_free(m->fb.v);
    for (int i = 0; i < N_BUCKETS; i++)
        hs_free(m->buckets[i].samples);
    hs_free(m);
}

/* ---- the request path ---- */

void hs_monitor_observe(hs_monitor *m, const struct hs_monitor_obs *o)
{
    int64_t t = now_ms(m);
    pthread_mutex_lock(&m->lock);
    ring_push(&m->req, o);
    bucket_add(m, bucket_at(m, minute_of(t)), o);
    if (m->capturing && m->cap.count < m->cap.cap)
        ring_push(&m->cap, o);
    pthread_mutex_unlock(&m->lock);
}

void hs_monitor_feedback(hs_monitor *m, int value)
{
    if (value != 1 && value != -1)
        return;
    int64_t t = now_ms(m);
    pthread_mutex_lock(&m->lock);
    struct fbring *f = &m->fb;
    f->v[f->head] = (signed char)value;
    f->head = f->head + 1 == f->cap ? 0 : f->head + 1;
    if (f->count < f->cap)
        f->count++;
    struct bucket *b = bucket_at(m, minute_of(t));
    if (value > 0)
        b->up++;
    else
        b->down++;
    if (m->capturing && m->cap.count < m->cap.cap) {
        if (value > 0)
            m->cap_up++;
        else
            m->cap_down++;
    }
    pthread_mutex_unlock(&m->lock);
}

/* ---- statistics ---- */

static double ratio(int64_t a, int64_t b)
{
    return b > 0 ? (double)a / (double)b : NAN;
}

static void set_feedback(struct hs_monitor_stats *s, int64_t up, int64_t down)
{
    s->thumbs_up = up;
    s->thumbs_down = down;
    s->up_rate = ratio(up, up + down);
    s->down_rate = ratio(down, up + down);
}

/* Percentiles of n sorted latencies (gsl's linear interpolation). */
static void set_quantiles(struct hs_monitor_stats *s, const double *sorted, size_t n)
{
    if (n == 0) {
        s->latency_p50 = s->latency_p95 = s->latency_p99 = NAN;
        return;
    }
    s->latency_p50 = gsl_stats_quantile_from_sorted_data(sorted, 1, n, 0.50);
    s->latency_p95 = gsl_stats_quantile_from_sorted_data(sorted, 1, n, 0.95);
    s->latency_p99 = gsl_stats_quantile_from_sorted_data(sorted, 1, n, 0.99);
}

/* Statistics of a copied ring: lat, conf and flags hold count entries in any
 * order; lat is reordered (its valid values are sorted to the front). */
static void ring_stats(struct hs_monitor_stats *s, double *lat, const double *conf,
                       const unsigned char *flags, int count)
{
    size_t n_lat = 0;
    double conf_sum = 0;
    for (int i = 0; i < count; i++) {
        if (flags[i] & F_ERROR)
            s->errors++;
        if (flags[i] & F_SAFETY)
            s->safety_flagged++;
        if (!isnan(conf[i])) {
            s->n_confidence++;
            conf_sum += conf[i];
        }
        if (!isnan(lat[i]) && !isinf(lat[i]))
            lat[n_lat++] = lat[i];
    }
    s->count = count;
    s->n_latency = (int64_t)n_lat;
    s->error_rate = ratio(s->errors, s->count);
    s->safety_rate = ratio(s->safety_flagged, s->count);
    s->confidence_mean = s->n_confidence ? conf_sum / (double)s->n_confidence : NAN;
    s->latency_mean = n_lat ? gsl_stats_mean(lat, 1, n_lat) : NAN;
    gsl_sort(lat, 1, n_lat);
    set_quantiles(s, lat, n_lat);
    s->latency_exact = true;
}

static void stats_clear(struct hs_monitor_stats *s, enum hs_monitor_window w)
{
    memset(s, 0, sizeof *s);
    s->window = w;
}

/* The q quantile of values with weights (each kept latency stands for
 * weight requests), by the rule gsl uses for unit weights: the value at
 * position q(W-1) of the expanded sorted list, interpolated linearly between
 * the two neighbouring positions. With every weight 1 it is gsl's result. */
static double weighted_quantile(const double *v, const double *w, const size_t *order, size_t n, double W,
                                double q)
{
    double pos = q * (W - 1);
    if (pos < 0)
        pos = 0;
    double lo = floor(pos), delta = pos - lo;
    /* the value at expanded position t: the first sample whose cumulative
       weight passes t */
    double a = v[order[n - 1]], b = v[order[n - 1]];
    double cum = 0;
    bool have_a = false;
    for (size_t i = 0; i < n; i++) {
        cum += w[order[i]];
        if (!have_a && cum > lo) {
            a = v[order[i]];
            have_a = true;
        }
        if (cum > lo + 1) {
            b = v[order[i]];
            break;
        }
    }
    return delta > 0 ? (1 - delta) * a + delta * b : a;
}

static int hour_stats(hs_monitor *m, struct hs_monitor_stats *s, hs_err *err)
{
    size_t cap = (size_t)N_BUCKETS * (size_t)m->p.hour_samples;
    double *v = hs_malloc(cap * sizeof *v);
    double *w = hs_malloc(cap * sizeof *w);
    size_t *order = hs_malloc(cap * sizeof *order);
    if (!v || !w || !order) {
        hs_free(v);
        hs_free(w);
        hs_free(order);
        return hs_err_set(err, HS_ENOMEM, "monitor snapshot: out of memory");
    }
    size_t n = 0;
    double lat_sum = 0, conf_sum = 0;
    int64_t up = 0, down = 0;
    bool exact = true;
    int64_t now = minute_of(now_ms(m));
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < N_BUCKETS; i++) {
        const struct bucket *b = &m->buckets[i];
        if (b->minute < 0 || b->minute > now || b->minute <= now - N_BUCKETS)
            continue;
        s->count += b->count;
        s->n_latency += b->n_lat;
        s->errors += b->errors;
        s->safety_flagged += b->safety;
        s->n_confidence += b->n_conf;
        up += b->up;
        down += b->down;
        lat_sum += b->lat_sum;
        conf_sum += b->conf_sum;
        if (b->n_lat > b->kept)
            exact = false;
        double weight = b->kept ? (double)b->n_lat / b->kept : 0;
        for (int k = 0; k < b->kept; k++) {
            v[n] = b->samples[k];
            w[n] = weight;
            n++;
        }
    }
    pthread_mutex_unlock(&m->lock);
    s->error_rate = ratio(s->errors, s->count);
    s->safety_rate = ratio(s->safety_flagged, s->count);
    s->confidence_mean = s->n_confidence ? conf_sum / (double)s->n_confidence : NAN;
    s->latency_mean = s->n_latency ? lat_sum / (double)s->n_latency : NAN;
    set_feedback(s, up, down);
    s->latency_exact = exact;
    if (exact) {
        gsl_sort(v, 1, n);
        set_quantiles(s, v, n);
    } else {
        gsl_sort_index(order, v, 1, n);
        double W = (double)s->n_latency;
        s->latency_p50 = weighted_quantile(v, w, order, n, W, 0.50);
        s->latency_p95 = weighted_quantile(v, w, order, n, W, 0.95);
        s->latency_p99 = weighted_quantile(v, w, order, n, W, 0.99);
    }
    hs_free(v);
    hs_free(w);
    hs_free(order);
    return HS_OK;
}

/* Statistics of a ring, copied under the lock: the last N requests with the
 * feedback ring (main_ring), or the baseline capture with the feedback that
 * arrived during it. *gen_out and *count_out (either may be NULL) tell what
 * state the copy was taken in. */
static int ring_snapshot(hs_monitor *m, struct ring *r, bool main_ring, struct hs_monitor_stats *s,
                         uint64_t *gen_out, int *count_out, hs_err *err)
{
    size_t cap = r->cap ? (size_t)r->cap : 1;
    double *lat = hs_malloc(cap * sizeof *lat);
    double *conf = hs_malloc(cap * sizeof *conf);
    unsigned char *flags = hs_malloc(cap);
    if (!lat || !conf || !flags) {
        hs_free(lat);
        hs_free(conf);
        hs_free(flags);
        return hs_err_set(err, HS_ENOMEM, "monitor snapshot: out of memory");
    }
    int64_t up = 0, down = 0;
    pthread_mutex_lock(&m->lock);
    int count = r->count;
    if (count) {
        memcpy(lat, r->lat, (size_t)count * sizeof *lat);
        memcpy(conf, r->conf, (size_t)count * sizeof *conf);
        memcpy(flags, r->flags, (size_t)count);
    }
    if (main_ring) {
        for (int i = 0; i < m->fb.count; i++) {
            if (m->fb.v[i] > 0)
                up++;
            else
                down++;
        }
    } else {
        up = m->cap_up;
        down = m->cap_down;
    }
    if (gen_out)
        *gen_out = m->gen;
    if (count_out)
        *count_out = count;
    pthread_mutex_unlock(&m->lock);
    ring_stats(s, lat, conf, flags, count);
    set_feedback(s, up, down);
    hs_free(lat);
    hs_free(conf);
    hs_free(flags);
    return HS_OK;
}

int hs_monitor_snapshot(hs_monitor *m, enum hs_monitor_window w, struct hs_monitor_stats *out, hs_err *err)
{
    struct hs_monitor_stats s;
    stats_clear(&s, w);
    int rc = w == HS_MON_HOUR ? hour_stats(m, &s, err) : ring_snapshot(m, &m->req, true, &s, NULL, NULL, err);
    if (rc == HS_OK)
        *out = s;
    return rc;
}

/* ---- the baseline ---- */

void hs_monitor_mark_deploy(hs_monitor *m)
{
    pthread_mutex_lock(&m->lock);
    m->gen++;
    m->has_baseline = false;
    m->capturing = m->cap.cap > 0;
    m->cap.head = m->cap.count = 0;
    m->cap_up = m->cap_down = 0;
    pthread_mutex_unlock(&m->lock);
}

void hs_monitor_set_baseline(hs_monitor *m, const struct hs_monitor_stats *b)
{
    pthread_mutex_lock(&m->lock);
    m->gen++;
    m->baseline = *b;
    m->has_baseline = true;
    m->capturing = false;
    pthread_mutex_unlock(&m->lock);
}

int hs_monitor_get_baseline(hs_monitor *m, struct hs_monitor_stats *out, hs_err *err)
{
    /* A complete capture is computed once, outside the lock, and kept unless
       a deploy or a set came in meanwhile (then look again). */
    for (int attempt = 0; attempt < 4; attempt++) {
        pthread_mutex_lock(&m->lock);
        if (m->has_baseline && !m->capturing) {
            *out = m->baseline;
            pthread_mutex_unlock(&m->lock);
            return HS_OK;
        }
        bool ready = m->capturing && m->cap.count == m->cap.cap;
        pthread_mutex_unlock(&m->lock);
        if (!ready)
            break;
        struct hs_monitor_stats s;
        stats_clear(&s, HS_MON_REQUESTS);
        uint64_t gen;
        int count;
        int rc = ring_snapshot(m, &m->cap, false, &s, &gen, &count, err);
        if (rc != HS_OK)
            return rc;
        pthread_mutex_lock(&m->lock);
        bool same = m->gen == gen && count == m->cap.cap;
        if (same) {
            m->baseline = s;
            m->has_baseline = true;
            m->capturing = false;
        }
        pthread_mutex_unlock(&m->lock);
        if (same) {
            *out = s;
            return HS_OK;
        }
    }
    return hs_err_set(err, HS_ENOTFOUND, "no baseline yet");
}

void hs_monitor_capture_progress(hs_monitor *m, int *captured, int *target)
{
    pthread_mutex_lock(&m->lock);
    *captured = m->capturing ? m->cap.count : 0;
    *target = m->capturing ? m->cap.cap : 0;
    pthread_mutex_unlock(&m->lock);
}
