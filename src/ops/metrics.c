/* Serving metrics and their Prometheus text exposition (format 0.0.4).
 *
 * Every update takes one mutex for a few additions: cheap next to a forward
 * pass, and an inter-token observation per streamed token is still far below
 * contention. Rendering copies the counters under the lock (one consistent
 * snapshot), then calls the engines' gauge callbacks without it, so a
 * callback that takes the scheduler's lock can never deadlock against a
 * scheduler thread that is observing a request.
 *
 * Bucket boundaries follow vLLM's (vllm/engine/metrics.py) for the range it
 * covers, extended below it: hestia runs on CPUs and small models, where
 * tokens come in milliseconds and whole requests in tens of milliseconds, and
 * vLLM's GPU-sized first buckets would put everything in one of them.
 *   TTFT   vLLM's 0.001 .. 80 s as is
 *   ITL    vLLM's 0.01 .. 80 s, plus 0.001, 0.0025 and 0.005 below
 *   e2e    vLLM's 0.3 .. 7680 s, plus 0.01, 0.025, 0.05 and 0.1 below
 *   queue  the e2e boundaries, plus 0.001 and 0.005 (an idle server queues
 *          for microseconds) */
#include "ops/metrics.h"

#include "base/mem.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "hestia:"
#define MAX_AUTO_MODELS 64  /* unregistered model names (client-chosen) kept apart; the rest are "other" */
#define MAX_LABEL_VALUES 32 /* distinct statuses or finish reasons per model; the rest are "other" */
#define OTHER "other"

static const double k_ttft[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25, 0.5,
                                0.75,  1.0,   2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0};
static const double k_itl[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1,  0.15, 0.2,  0.3,
                               0.4,   0.5,    0.75,  1.0,  2.5,   5.0,  7.5,   10.0, 20.0, 40.0, 80.0};
static const double k_e2e[] = {0.01, 0.025, 0.05,  0.1,   0.3,   0.5,    0.8,   1.0,  1.5,
                               2.0,  2.5,   5.0,   10.0,  15.0,  20.0,   30.0,  40.0, 50.0,
                               60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
static const double k_queue[] = {0.001, 0.005, 0.01, 0.025, 0.05,  0.1,   0.3,   0.5,    0.8,
                                 1.0,   1.5,   2.0,  2.5,   5.0,   10.0,  15.0,  20.0,   30.0,
                                 40.0,  50.0,  60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

enum { H_TTFT, H_ITL, H_E2E, H_QUEUE, N_HIST };
#define MAX_BUCKETS 27 /* the longest list above */
_Static_assert(sizeof k_ttft / sizeof k_ttft[0] <= MAX_BUCKETS &&
                   sizeof k_itl / sizeof k_itl[0] <= MAX_BUCKETS &&
                   sizeof k_e2e / sizeof k_e2e[0] <= MAX_BUCKETS &&
                   sizeof k_queue / sizeof k_queue[0] <= MAX_BUCKETS,
               "MAX_BUCKETS holds every boundary list");

static const struct {
    const char *name, *help;
    const double *le;
    size_t n;
} k_hist[N_HIST] = {
    [H_TTFT] = {PREFIX "time_to_first_token_seconds", "Histogram of time to first token in seconds.", k_ttft,
                sizeof k_ttft / sizeof k_ttft[0]},
    [H_ITL] = {PREFIX "inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", k_itl,
               sizeof k_itl / sizeof k_itl[0]},
    [H_E2E] = {PREFIX "e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.",
               k_e2e, sizeof k_e2e / sizeof k_e2e[0]},
    [H_QUEUE] = {PREFIX "request_queue_time_seconds",
                 "Histogram of time spent waiting in the queue before a slot, in seconds.", k_queue,
                 sizeof k_queue / sizeof k_queue[0]},
};

/* counts[i] holds observations in (le[i-1], le[i]]; counts[n] those above
 * the last boundary. Cumulated only when rendered. */
struct hist {
    uint64_t counts[MAX_BUCKETS + 1];
    uint64_t n;
    double sum;
};

/* One value of a counter's second label and its count. value lives until
 * hs_metrics_free. */
struct labelled {
    const char *value;
    uint64_t n;
};

struct label_set {
    struct labelled *v;
    size_t n, cap;
};

struct model {
    char *name;
    hs_metrics_engine_fn fn;
    void *user;
    bool registered;
    uint64_t prompt_tokens, generation_tokens;
    struct label_set success; /* by finished_reason */
    struct label_set status;  /* by HTTP status */
    struct hist h[N_HIST];
};

struct hs_metrics {
    pthread_mutex_t lock;
    struct model *models;
    size_t n, cap, n_auto;
    /* every label value string ever used, freed at the end (snapshots point at them) */
    char **strings;
    size_t n_strings, cap_strings;
};

int hs_metrics_create(hs_metrics **out, hs_err *err)
{
    *out = NULL;
    hs_metrics *m = hs_calloc(1, sizeof *m);
    if (!m)
        return hs_err_set(err, HS_ENOMEM, "metrics: out of memory");
    pthread_mutex_init(&m->lock, NULL);
    *out = m;
    return HS_OK;
}

void hs_metrics_free(hs_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        hs_free(m->models[i].success.v);
        hs_free(m->models[i].status.v);
    }
    for (size_t i = 0; i < m->n_strings; i++)
        hs_free(m->strings[i]);
    hs_free(m->strings);
    hs_free(m->models);
    pthread_mutex_destroy(&m->lock);
    hs_free(m);
}

/* ---- updates (lock held) -------------------------------------------------- */

/* A copy of s owned by m, or NULL when memory ran out. */
static char *intern(hs_metrics *m, const char *s)
{
    if (m->n_strings == m->cap_strings) {
        size_t ncap = m->cap_strings ? m->cap_strings * 2 : 32;
        char **ns = hs_realloc_array(m->strings, ncap, sizeof *ns);
        if (!ns)
            return NULL;
        m->strings = ns;
        m->cap_strings = ncap;
    }
    char *d = hs_strdup(s);
    if (d)
        m->strings[m->n_strings++] = d;
    return d;
}

/* The counter cell for value in ls, created at 0 if new; NULL when out of
 * memory. Past MAX_LABEL_VALUES, new values share the "other" cell so that a
 * stream of odd values cannot grow the exposition without bound. */
static uint64_t *label_cell(hs_metrics *m, struct label_set *ls, const char *value)
{
    for (size_t i = 0; i < ls->n; i++)
        if (!strcmp(ls->v[i].value, value))
            return &ls->v[i].n;
    if (ls->n >= MAX_LABEL_VALUES && strcmp(value, OTHER))
        return label_cell(m, ls, OTHER);
    if (ls->n == ls->cap) {
        size_t ncap = ls->cap ? ls->cap * 2 : 8;
        struct labelled *nv = hs_realloc_array(ls->v, ncap, sizeof *nv);
        if (!nv)
            return NULL;
        ls->v = nv;
        ls->cap = ncap;
    }
    const char *s = intern(m, value);
    if (!s)
        return NULL;
    ls->v[ls->n] = (struct labelled){s, 0};
    return &ls->v[ls->n++].n;
}

static struct model *find_model(hs_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->models[i].name, name))
            return &m->models[i];
    return NULL;
}

static struct model *new_model(hs_metrics *m, const char *name)
{
    if (m->n == m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 4;
        struct model *nm = hs_realloc_array(m->models, ncap, sizeof *nm);
        if (!nm)
            return NULL;
        m->models = nm;
        m->cap = ncap;
    }
    char *s = intern(m, name);
    if (!s)
        return NULL;
    struct model *md = &m->models[m->n++];
    memset(md, 0, sizeof *md);
    md->name = s;
    /* The usual reasons exist from the start at 0, so that a rate() over
     * them works before the first request of each kind. */
    static const char *const reasons[] = {"stop", "length", "abort"};
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        label_cell(m, &md->success, reasons[i]);
    return md;
}

/* The model an observation goes to. Names nobody registered come from
 * clients (a request for a model that does not exist still counts), so only
 * MAX_AUTO_MODELS of them get series of their own. */
static struct model *model_for(hs_metrics *m, const char *name)
{
    if (!name)
        name = "unknown";
    struct model *md = find_model(m, name);
    if (md)
        return md;
    if (m->n_auto >= MAX_AUTO_MODELS) {
        md = find_model(m, OTHER);
        return md ? md : new_model(m, OTHER);
    }
    md = new_model(m, name);
    if (md)
        m->n_auto++;
    return md;
}

static void observe(struct hist *h, const double *le, size_t n, double v)
{
    if (!(v >= 0) || isinf(v))
        return; /* not measured (< 0) or not a number */
    size_t i = 0;
    while (i < n && v > le[i])
        i++;
    h->counts[i]++;
    h->n++;
    h->sum += v;
}

static void observe_hist(struct model *md, int which, double v)
{
    observe(&md->h[which], k_hist[which].le, k_hist[which].n, v);
}

void hs_metrics_observe_request(hs_metrics *m, const struct hs_metrics_request *r)
{
    if (!m || !r)
        return;
    char status[16];
    snprintf(status, sizeof status, "%d", r->status);
    pthread_mutex_lock(&m->lock);
    struct model *md = model_for(m, r->model);
    if (md) {
        uint64_t *c = label_cell(m, &md->status, status);
        if (c)
            (*c)++;
        if (r->status >= 200 && r->status < 300) {
            c = label_cell(m, &md->success,
                           r->finish_reason && r->finish_reason[0] ? r->finish_reason : "none");
            if (c)
                (*c)++;
        }
        if (r->prompt_tokens > 0)
            md->prompt_tokens += (uint64_t)r->prompt_tokens;
        if (r->generation_tokens > 0)
            md->generation_tokens += (uint64_t)r->generation_tokens;
        observe_hist(md, H_TTFT, r->ttft_s);
        observe_hist(md, H_E2E, r->e2e_s);
        observe_hist(md, H_QUEUE, r->queue_s);
    }
    pthread_mutex_unlock(&m->lock);
}

void hs_metrics_observe_itl(hs_metrics *m, const char *model, double seconds)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    struct model *md = model_for(m, model);
    if (md)
        observe_hist(md, H_ITL, seconds);
    pthread_mutex_unlock(&m->lock);
}

int hs_metrics_add_model(hs_metrics *m, const char *model, hs_metrics_engine_fn fn, void *user)
{
    if (!m || !model || !model[0])
        return HS_EINVAL;
    int rc = HS_OK;
    pthread_mutex_lock(&m->lock);
    struct model *md = find_model(m, model);
    if (md && !md->registered && m->n_auto > 0)
        m->n_auto--; /* it was counted as a client-chosen name until now */
    if (!md)
        md = new_model(m, model);
    if (md) {
        md->registered = true;
        md->fn = fn;
        md->user = user;
    } else {
        rc = HS_ENOMEM;
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* ---- rendering ------------------------------------------------------------ */

/* The shortest decimal form that reads back as the same double (what Go's
 * client prints: 0.1, 80, 1e-05), and Prometheus' spellings of the rest. */
static void format_float(char *s, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(s, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(s, cap, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(s, cap, "%.*g", prec, v);
        if (strtod(s, NULL) == v)
            break;
    }
}

static int put_float(hs_buf *b, double v)
{
    char s[40];
    format_float(s, sizeof s, v);
    return hs_buf_puts(b, s);
}

/* A label value with \, " and newline escaped (exposition format 0.0.4). */
static int put_label_value(hs_buf *b, const char *v)
{
    int rc = hs_buf_putc(b, '"');
    for (const char *p = v; *p && !rc; p++) {
        if (*p == '\\')
            rc = hs_buf_puts(b, "\\\\");
        else if (*p == '"')
            rc = hs_buf_puts(b, "\\\"");
        else if (*p == '\n')
            rc = hs_buf_puts(b, "\\n");
        else
            rc = hs_buf_putc(b, *p);
    }
    return rc ? rc : hs_buf_putc(b, '"');
}

static int put_header(hs_buf *b, const char *name, const char *type, const char *help)
{
    return hs_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{model="...",key="value"} — key NULL for no second label. */
static int put_series(hs_buf *b, const char *name, const char *suffix, const char *model, const char *key,
                      const char *value)
{
    int rc = hs_buf_printf(b, "%s%s{model=", name, suffix);
    rc |= put_label_value(b, model);
    if (key) {
        rc |= hs_buf_printf(b, ",%s=", key);
        rc |= put_label_value(b, value);
    }
    rc |= hs_buf_puts(b, "} ");
    return rc;
}

static int put_u64(hs_buf *b, uint64_t v)
{
    return hs_buf_printf(b, "%" PRIu64 "\n", v);
}

static int put_f64(hs_buf *b, double v)
{
    int rc = put_float(b, v);
    return rc ? rc : hs_buf_putc(b, '\n');
}

/* A model's counters as they were when the lock was held. */
struct snap {
    struct model md; /* its label_set arrays are this snapshot's own copies */
    bool has_engine;
    struct hs_metrics_engine eng;
};

static int copy_labels(struct label_set *dst, const struct label_set *src)
{
    dst->v = NULL;
    dst->cap = dst->n = 0;
    if (!src->n)
        return HS_OK;
    dst->v = hs_malloc(src->n * sizeof *dst->v);
    if (!dst->v)
        return HS_ENOMEM;
    memcpy(dst->v, src->v, src->n * sizeof *dst->v);
    dst->n = dst->cap = src->n;
    return HS_OK;
}

static void free_snaps(struct snap *sn, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        hs_free(sn[i].md.success.v);
        hs_free(sn[i].md.status.v);
    }
    hs_free(sn);
}

static int take_snapshot(hs_metrics *m, struct snap **out, size_t *n_out)
{
    pthread_mutex_lock(&m->lock);
    size_t n = m->n;
    struct snap *sn = hs_calloc(n ? n : 1, sizeof *sn);
    int rc = sn ? HS_OK : HS_ENOMEM;
    for (size_t i = 0; i < n && !rc; i++) {
        sn[i].md = m->models[i];
        sn[i].md.success.v = sn[i].md.status.v = NULL;
        rc = copy_labels(&sn[i].md.success, &m->models[i].success);
        if (!rc)
            rc = copy_labels(&sn[i].md.status, &m->models[i].status);
    }
    pthread_mutex_unlock(&m->lock);
    if (rc) {
        if (sn)
            free_snaps(sn, n);
        return rc;
    }
    *out = sn;
    *n_out = n;
    return HS_OK;
}

enum gauge { G_RUNNING, G_WAITING, G_KV, G_PQ, G_PH, N_ENGINE };

static const struct {
    const char *name, *type, *help;
} k_engine[N_ENGINE] = {
    [G_RUNNING] = {PREFIX "num_requests_running", "gauge", "Number of requests in model execution batches."},
    [G_WAITING] = {PREFIX "num_requests_waiting", "gauge", "Number of requests waiting to be processed."},
    [G_KV] = {PREFIX "kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage."},
    [G_PQ] = {PREFIX "prefix_cache_queries_total", "counter",
              "Prefix cache queries, in terms of number of queried tokens."},
    [G_PH] = {PREFIX "prefix_cache_hits_total", "counter",
              "Prefix cache hits, in terms of number of cached tokens."},
};

static int render_engine(hs_buf *b, const struct snap *sn, size_t n)
{
    int rc = HS_OK;
    for (int g = 0; g < N_ENGINE && !rc; g++) {
        rc = put_header(b, k_engine[g].name, k_engine[g].type, k_engine[g].help);
        for (size_t i = 0; i < n && !rc; i++) {
            if (!sn[i].has_engine)
                continue;
            const struct hs_metrics_engine *e = &sn[i].eng;
            rc = put_series(b, k_engine[g].name, "", sn[i].md.name, NULL, NULL);
            if (g == G_RUNNING)
                rc |= put_f64(b, e->running);
            else if (g == G_WAITING)
                rc |= put_f64(b, e->waiting);
            else if (g == G_KV)
                rc |= put_f64(b, e->kv_usage);
            else if (g == G_PQ)
                rc |= put_u64(b, e->prefix_queries);
            else
                rc |= put_u64(b, e->prefix_hits);
        }
    }
    return rc;
}

static int render_counters(hs_buf *b, const struct snap *sn, size_t n)
{
    const char *name = PREFIX "requests_total";
    int rc = put_header(b, name, "counter", "Number of finished requests by HTTP status.");
    for (size_t i = 0; i < n && !rc; i++)
        for (size_t k = 0; k < sn[i].md.status.n && !rc; k++) {
            rc = put_series(b, name, "", sn[i].md.name, "status", sn[i].md.status.v[k].value);
            rc |= put_u64(b, sn[i].md.status.v[k].n);
        }
    name = PREFIX "request_success_total";
    rc |= put_header(b, name, "counter", "Count of successfully processed requests.");
    for (size_t i = 0; i < n && !rc; i++)
        for (size_t k = 0; k < sn[i].md.success.n && !rc; k++) {
            rc = put_series(b, name, "", sn[i].md.name, "finished_reason", sn[i].md.success.v[k].value);
            rc |= put_u64(b, sn[i].md.success.v[k].n);
        }
    name = PREFIX "prompt_tokens_total";
    rc |= put_header(b, name, "counter", "Number of prefill tokens processed.");
    for (size_t i = 0; i < n && !rc; i++) {
        rc = put_series(b, name, "", sn[i].md.name, NULL, NULL);
        rc |= put_u64(b, sn[i].md.prompt_tokens);
    }
    name = PREFIX "generation_tokens_total";
    rc |= put_header(b, name, "counter", "Number of generation tokens processed.");
    for (size_t i = 0; i < n && !rc; i++) {
        rc = put_series(b, name, "", sn[i].md.name, NULL, NULL);
        rc |= put_u64(b, sn[i].md.generation_tokens);
    }
    return rc;
}

static int render_histograms(hs_buf *b, const struct snap *sn, size_t n)
{
    int rc = HS_OK;
    char le[40];
    for (int w = 0; w < N_HIST && !rc; w++) {
        const char *name = k_hist[w].name;
        rc = put_header(b, name, "histogram", k_hist[w].help);
        for (size_t i = 0; i < n && !rc; i++) {
            const struct hist *h = &sn[i].md.h[w];
            uint64_t cum = 0;
            for (size_t k = 0; k <= k_hist[w].n && !rc; k++) {
                cum += h->counts[k];
                format_float(le, sizeof le, k < k_hist[w].n ? k_hist[w].le[k] : INFINITY);
                rc = put_series(b, name, "_bucket", sn[i].md.name, "le", le);
                rc |= put_u64(b, cum);
            }
            rc |= put_series(b, name, "_sum", sn[i].md.name, NULL, NULL);
            rc |= put_f64(b, h->sum);
            rc |= put_series(b, name, "_count", sn[i].md.name, NULL, NULL);
            rc |= put_u64(b, h->n);
        }
    }
    return rc;
}

int hs_metrics_render(hs_metrics *m, hs_buf *out)
{
    struct snap *sn;
    size_t n;
    int rc = take_snapshot(m, &sn, &n);
    if (rc)
        return rc;
    /* The callbacks run without the lock (see the top of the file); fn and
     * user stay valid because models are never removed. */
    for (size_t i = 0; i < n; i++) {
        if (sn[i].md.fn) {
            sn[i].md.fn(sn[i].md.user, sn[i].md.name, &sn[i].eng);
            sn[i].has_engine = true;
        }
    }
    rc = render_engine(out, sn, n);
    if (!rc)
        rc = render_counters(out, sn, n);
    if (!rc)
        rc = render_histograms(out, sn, n);
    free_snaps(sn, n);
    return rc ? HS_ENOMEM : HS_OK;
}
