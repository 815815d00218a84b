/* The dashboard's history: aggregates of the inference records by time
 * bucket or by agent.
 *
 * One pass over the range's rows (by the requests_ts index, or a plain scan
 * when the range is most of the table: pick_plan) feeds a group per bucket
 * or agent: counts and sums as the rows go by, and each 2xx latency as a
 * (group, value) pair. At the end the pairs are laid out group by group and
 * each group's quantiles come from selection, not sorting, so 24 h of heavy
 * traffic costs one pass over the rows plus linear work, with memory for the
 * latencies only. The feedback is a second, smaller query: it is bucketed by
 * its own time, so it cannot ride along with its request's row. Both read
 * one WAL snapshot through a read-only connection, so the server's writer
 * and key checks never wait for a dashboard. */
#include "ops/store_timeseries.h"
#include "ops/store_impl.h"

#include "base/mem.h"

#include <stdlib.h>
#include <string.h>

/* What counts as an inference record: store_records.c's rule. */
#define INFERENCE_WHERE                                                                                    \
    " r.endpoint IN ('/v1/chat/completions', '/v1/completions', '/v1/embeddings')"                         \
    " AND r.backend IS NOT NULL"

/* The rows of the range, by one of two plans (see pick_plan). */
#define ROWS_SELECT                                                                                        \
    "SELECT r.ts_ms, r.status, r.latency_ms, r.confidence,"                                                \
    " r.safety_flags IS NOT NULL AND r.safety_flags <> '', r.agent FROM requests r "
#define ROWS_WHERE " WHERE r.ts_ms >= ?1 AND r.ts_ms < ?2 AND" INFERENCE_WHERE
static const char k_rows_by_index[] = ROWS_SELECT "INDEXED BY requests_ts" ROWS_WHERE;
static const char k_rows_by_scan[] = ROWS_SELECT "NOT INDEXED" ROWS_WHERE;
/* How many rows the range holds (the index alone answers) and about how
 * many the table holds (rowids are dense unless rows were deleted). */
static const char k_range_count[] = "SELECT count(*) FROM requests WHERE ts_ms >= ?1 AND ts_ms < ?2";
static const char k_table_size[] = "SELECT coalesce(max(rowid) - min(rowid) + 1, 0) FROM requests";
static const char k_feedback[] =
    "SELECT f.ts_ms, f.feedback, r.agent FROM feedback f JOIN requests r ON r.id = f.request_id"
    " WHERE f.ts_ms >= ?1 AND f.ts_ms < ?2 AND" INFERENCE_WHERE;

/* One 2xx latency and the group it belongs to. */
struct lat {
    uint32_t group;
    double ms;
};

/* Where a row goes: the caller's function maps it to a group index, or
 * returns false (out of memory). agent is the row's agent column (NULL for
 * none). */
typedef bool (*group_fn)(void *user, int64_t ts_ms, const unsigned char *agent, uint32_t *group);

/* The groups grow as the group function names new ones. */
struct scan {
    struct hs_ts_stats *groups;
    double *conf_sum; /* per group */
    size_t n_groups, cap_groups;
    struct hs_ts_stats totals;
    double totals_conf;
    struct lat *lat;
    size_t n_lat, cap_lat;
    group_fn group;
    void *user;
};

static bool ensure_group(struct scan *sc, size_t g)
{
    if (g >= sc->cap_groups) {
        size_t cap = sc->cap_groups * 2 > g + 1 ? sc->cap_groups * 2 : g + 1;
        struct hs_ts_stats *p = hs_realloc(sc->groups, cap * sizeof *p);
        if (p)
            sc->groups = p;
        double *c = p ? hs_realloc(sc->conf_sum, cap * sizeof *c) : NULL;
        if (!c)
            return false;
        sc->conf_sum = c;
        memset(sc->groups + sc->cap_groups, 0, (cap - sc->cap_groups) * sizeof *p);
        memset(sc->conf_sum + sc->cap_groups, 0, (cap - sc->cap_groups) * sizeof *c);
        sc->cap_groups = cap;
    }
    if (g >= sc->n_groups)
        sc->n_groups = g + 1;
    return true;
}

static void scan_free(struct scan *sc)
{
    hs_free(sc->groups);
    hs_free(sc->conf_sum);
    hs_free(sc->lat);
}

static int push_lat(struct scan *sc, uint32_t g, double ms)
{
    if (sc->n_lat == sc->cap_lat) {
        size_t cap = sc->cap_lat ? sc->cap_lat * 2 : 4096;
        struct lat *p = hs_realloc(sc->lat, cap * sizeof *p);
        if (!p)
            return HS_ENOMEM;
        sc->lat = p;
        sc->cap_lat = cap;
    }
    sc->lat[sc->n_lat++] = (struct lat){g, ms};
    return HS_OK;
}

static void add_row(struct hs_ts_stats *t, double *conf_sum, bool ok, bool has_lat, bool has_conf, double conf,
                    bool flagged)
{
    t->requests++;
    if (!ok)
        t->errors++;
    if (flagged)
        t->safety_flagged++;
    if (ok && has_lat)
        t->n_latency++;
    if (has_conf) {
        t->n_confidence++;
        *conf_sum += conf;
    }
}

static int64_t one_int(sqlite3 *db, const char *sql, int64_t from_ms, int64_t to_ms)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_bind_parameter_count(st) == 2) {
            sqlite3_bind_int64(st, 1, from_ms);
            sqlite3_bind_int64(st, 2, to_ms);
        }
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

/* The index finds a range's rows, but each one it finds is a lookup into
 * the table. Rows the server wrote sit in time order, so those lookups walk
 * the table in order; rows imported out of order (merged logs) make them
 * random reads, six times slower than reading the whole table at 500k rows.
 * So: the index for a range that holds a small share of the table, a plain
 * scan for one that holds most of it. Counting the range costs an
 * index-only scan, a few percent of the query. */
static const char *pick_plan(sqlite3 *db, int64_t from_ms, int64_t to_ms)
{
    int64_t in_range = one_int(db, k_range_count, from_ms, to_ms);
    int64_t table = one_int(db, k_table_size, 0, 0);
    if (in_range < 0 || table < 0)
        return k_rows_by_index;
    return in_range * 4 > table ? k_rows_by_scan : k_rows_by_index;
}

static int scan_rows(sqlite3 *db, struct scan *sc, int64_t from_ms, int64_t to_ms, hs_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, pick_plan(db, from_ms, to_ms), -1, &st, NULL) != SQLITE_OK)
        return hs_store_sql_err(err, HS_EIO, db, "reading the requests");
    sqlite3_bind_int64(st, 1, from_ms);
    sqlite3_bind_int64(st, 2, to_ms);
    int step, rc = HS_OK;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        uint32_t g;
        if (!sc->group(sc->user, sqlite3_column_int64(st, 0), sqlite3_column_text(st, 5), &g) ||
            !ensure_group(sc, g)) {
            rc = HS_ENOMEM;
            break;
        }
        int status = sqlite3_column_int(st, 1);
        bool ok = status >= 200 && status < 300;
        bool has_lat = sqlite3_column_type(st, 2) != SQLITE_NULL;
        bool has_conf = sqlite3_column_type(st, 3) != SQLITE_NULL;
        double conf = has_conf ? sqlite3_column_double(st, 3) : 0;
        bool flagged = sqlite3_column_int(st, 4) != 0;
        add_row(&sc->groups[g], &sc->conf_sum[g], ok, has_lat, has_conf, conf, flagged);
        add_row(&sc->totals, &sc->totals_conf, ok, has_lat, has_conf, conf, flagged);
        if (ok && has_lat && push_lat(sc, g, sqlite3_column_double(st, 2))) {
            rc = HS_ENOMEM;
            break;
        }
    }
    if (rc == HS_ENOMEM)
        rc = hs_err_set(err, HS_ENOMEM, "reading the requests: out of memory");
    else if (step != SQLITE_DONE)
        rc = hs_store_sql_err(err, HS_EIO, db, "reading the requests");
    sqlite3_finalize(st);
    return rc;
}

static int scan_feedback(sqlite3 *db, struct scan *sc, int64_t from_ms, int64_t to_ms, hs_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, k_feedback, -1, &st, NULL) != SQLITE_OK)
        return hs_store_sql_err(err, HS_EIO, db, "reading the feedback");
    sqlite3_bind_int64(st, 1, from_ms);
    sqlite3_bind_int64(st, 2, to_ms);
    int step, rc = HS_OK;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        uint32_t g;
        if (!sc->group(sc->user, sqlite3_column_int64(st, 0), sqlite3_column_text(st, 2), &g) ||
            !ensure_group(sc, g)) {
            rc = hs_err_set(err, HS_ENOMEM, "reading the feedback: out of memory");
            break;
        }
        if (sqlite3_column_int(st, 1) > 0) {
            sc->groups[g].thumbs_up++;
            sc->totals.thumbs_up++;
        } else {
            sc->groups[g].thumbs_down++;
            sc->totals.thumbs_down++;
        }
    }
    if (!rc && step != SQLITE_DONE)
        rc = hs_store_sql_err(err, HS_EIO, db, "reading the feedback");
    sqlite3_finalize(st);
    return rc;
}

/* The k-th smallest of v[0..n) (0-based), by selection (Hoare's FIND, as
 * Wirth writes it): v is reordered so that v[k] holds it, everything before
 * is <= and everything after is >=. O(n) on average: a dashboard's
 * quantiles need two order statistics per bucket, not a sorted bucket (a
 * full sort was a fifth of the time at 500k rows). */
static double select_kth(double *v, int64_t n, int64_t k)
{
    int64_t l = 0, m = n - 1;
    while (l < m) {
        double x = v[k];
        int64_t i = l, j = m;
        do {
            while (v[i] < x)
                i++;
            while (x < v[j])
                j--;
            if (i <= j) {
                double t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        } while (i <= j);
        if (j < k)
            l = i;
        if (k < i)
            m = j;
    }
    return v[k];
}

/* The q quantile of v[0..n) by gsl_stats_quantile_from_sorted_data's
 * definition (type 7: the order statistics around (n-1)q, linearly
 * interpolated, computed as gsl does), without sorting v. Reorders v. */
static double quantile7(double *v, int64_t n, double q)
{
    double h = (double)(n - 1) * q;
    int64_t lo = (int64_t)h;
    double delta = h - (double)lo;
    double a = select_kth(v, n, lo);
    if (lo + 1 >= n || delta == 0)
        return a;
    double b = v[lo + 1]; /* the next order statistic: the least of what follows */
    for (int64_t i = lo + 2; i < n; i++)
        if (v[i] < b)
            b = v[i];
    return (1 - delta) * a + delta * b;
}

static void set_quantiles(struct hs_ts_stats *t, double *v, size_t n)
{
    t->latency_p50 = t->latency_p95 = -1;
    if (n) {
        t->latency_p95 = quantile7(v, (int64_t)n, 0.95);
        t->latency_p50 = quantile7(v, (int64_t)n, 0.50);
    }
}

/* The quantiles and means, once every row is in. */
static int finish(struct scan *sc, hs_err *err)
{
    for (size_t g = 0; g < sc->n_groups; g++) {
        struct hs_ts_stats *t = &sc->groups[g];
        t->confidence_mean = t->n_confidence ? sc->conf_sum[g] / (double)t->n_confidence : -1;
        t->latency_p50 = t->latency_p95 = -1;
    }
    sc->totals.confidence_mean = sc->totals.n_confidence ? sc->totals_conf / (double)sc->totals.n_confidence : -1;
    sc->totals.latency_p50 = sc->totals.latency_p95 = -1;
    if (!sc->n_lat)
        return HS_OK;
    /* Each group's latencies made contiguous (a counting sort by group: the
     * groups' n_latency are their sizes), then selected in place; the whole
     * array is every latency of the range, for the totals. */
    double *v = hs_malloc(sc->n_lat * sizeof *v);
    size_t *at = hs_calloc(sc->n_groups + 1, sizeof *at);
    if (!v || !at) {
        hs_free(v);
        hs_free(at);
        return hs_err_set(err, HS_ENOMEM, "latency quantiles: out of memory");
    }
    for (size_t g = 0; g < sc->n_groups; g++)
        at[g + 1] = at[g] + (size_t)sc->groups[g].n_latency;
    for (size_t i = 0; i < sc->n_lat; i++)
        v[at[sc->lat[i].group]++] = sc->lat[i].ms;
    for (size_t g = 0, start = 0; g < sc->n_groups; g++) {
        size_t n = (size_t)sc->groups[g].n_latency; /* at[g] is now the group's end */
        set_quantiles(&sc->groups[g], v + start, n);
        start += n;
    }
    set_quantiles(&sc->totals, v, sc->n_lat);
    hs_free(v);
    hs_free(at);
    return HS_OK;
}

/* Opens the snapshot, runs both scans, finishes. */
static int run(hs_store *s, struct scan *sc, int64_t from_ms, int64_t to_ms, hs_err *err)
{
    hs_store_flush(s); /* what this handle queued before the call is counted */
    sqlite3 *db = NULL;
    int rc = hs_store_connect(s->path, true, &db, err);
    if (rc)
        return rc;
    /* Reads through the OS page cache (no copy into SQLite's small cache of
     * a fresh connection); one read transaction: the rows and the feedback
     * are of the same moment. */
    sqlite3_exec(db, "PRAGMA mmap_size=1073741824", NULL, NULL, NULL);
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        rc = hs_store_sql_err(err, HS_EIO, db, "reading the store");
    if (!rc)
        rc = scan_rows(db, sc, from_ms, to_ms, err);
    if (!rc)
        rc = scan_feedback(db, sc, from_ms, to_ms, err);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    if (!rc)
        rc = finish(sc, err);
    return rc;
}

/* ---- by time ------------------------------------------------------------------ */

size_t hs_ts_bucket_count(int64_t from_ms, int64_t to_ms, int64_t bucket_ms)
{
    if (bucket_ms < 1 || to_ms <= from_ms)
        return 0;
    return (size_t)((to_ms - from_ms - 1) / bucket_ms + 1);
}

struct by_time {
    int64_t from_ms, bucket_ms;
    size_t n;
};

static bool time_group(void *user, int64_t ts_ms, const unsigned char *agent, uint32_t *group)
{
    (void)agent;
    const struct by_time *bt = user;
    size_t i = (size_t)((ts_ms - bt->from_ms) / bt->bucket_ms);
    *group = (uint32_t)(i < bt->n ? i : bt->n - 1); /* the queries keep ts_ms in range */
    return true;
}

int hs_store_timeseries(hs_store *s, int64_t from_ms, int64_t to_ms, int64_t bucket_ms, struct hs_ts_stats *buckets,
                        size_t n_buckets, struct hs_ts_stats *totals, hs_err *err)
{
    size_t want = hs_ts_bucket_count(from_ms, to_ms, bucket_ms);
    if (!want || n_buckets != want || want > UINT32_MAX)
        return hs_err_set(err, HS_EINVAL, "timeseries: [%lld, %lld) by %lld ms needs %zu buckets, not %zu",
                          (long long)from_ms, (long long)to_ms, (long long)bucket_ms, want, n_buckets);
    struct by_time bt = {from_ms, bucket_ms, n_buckets};
    struct scan sc = {.group = time_group, .user = &bt};
    int rc = ensure_group(&sc, n_buckets - 1) ? HS_OK : hs_err_set(err, HS_ENOMEM, "timeseries: out of memory");
    if (!rc)
        rc = run(s, &sc, from_ms, to_ms, err);
    if (!rc) {
        memcpy(buckets, sc.groups, n_buckets * sizeof *buckets);
        if (totals)
            *totals = sc.totals;
    }
    scan_free(&sc);
    return rc;
}

/* ---- by agent ----------------------------------------------------------------- */

/* The agents seen so far, found through an open-addressing table of their
 * indices: a busy range has few agents but many rows, so one hash per row. */
struct by_agent {
    char **names; /* names[i] of group i; NULL for the records without an agent */
    size_t n, cap;
    int64_t null_group; /* -1 until seen */
    uint32_t *slots;    /* index + 1; 0 = empty */
    size_t n_slots;     /* a power of two, at least four times cap */
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The slot that holds name, or the empty one where it would go. */
static size_t find_slot(const struct by_agent *ba, const char *name)
{
    size_t k = hash(name) & (ba->n_slots - 1);
    while (ba->slots[k] && strcmp(ba->names[ba->slots[k] - 1], name))
        k = (k + 1) & (ba->n_slots - 1);
    return k;
}

static bool grow(struct by_agent *ba)
{
    size_t cap = ba->cap ? ba->cap * 2 : 16;
    char **names = hs_realloc(ba->names, cap * sizeof *names);
    if (!names)
        return false;
    ba->names = names;
    uint32_t *slots = hs_calloc(cap * 4, sizeof *slots);
    if (!slots)
        return false;
    hs_free(ba->slots);
    ba->slots = slots;
    ba->n_slots = cap * 4;
    ba->cap = cap;
    for (size_t i = 0; i < ba->n; i++)
        if (ba->names[i])
            ba->slots[find_slot(ba, ba->names[i])] = (uint32_t)i + 1;
    return true;
}

static bool agent_group(void *user, int64_t ts_ms, const unsigned char *agent, uint32_t *group)
{
    (void)ts_ms;
    struct by_agent *ba = user;
    const char *name = (const char *)agent;
    if (!name && ba->null_group >= 0) {
        *group = (uint32_t)ba->null_group;
        return true;
    }
    if (name && ba->n_slots) {
        size_t k = find_slot(ba, name);
        if (ba->slots[k]) {
            *group = ba->slots[k] - 1;
            return true;
        }
    }
    if (ba->n == ba->cap && !grow(ba))
        return false;
    char *copy = NULL;
    if (name && !(copy = hs_strdup(name)))
        return false;
    *group = (uint32_t)ba->n;
    ba->names[ba->n++] = copy;
    if (copy)
        ba->slots[find_slot(ba, copy)] = *group + 1;
    else
        ba->null_group = *group;
    return true;
}

static int cmp_agent(const void *a, const void *b)
{
    const struct hs_ts_agent *x = a, *y = b;
    if (x->st.requests != y->st.requests)
        return x->st.requests > y->st.requests ? -1 : 1;
    if (!x->agent || !y->agent)
        return !x->agent - !y->agent; /* the NULL agent last */
    return strcmp(x->agent, y->agent);
}

void hs_ts_agents_free(struct hs_ts_agent *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++)
        hs_free(a[i].agent);
    hs_free(a);
}

int hs_store_agent_stats(hs_store *s, int64_t from_ms, int64_t to_ms, struct hs_ts_agent **out, size_t *n_out,
                         hs_err *err)
{
    *out = NULL;
    *n_out = 0;
    if (to_ms <= from_ms)
        return hs_err_set(err, HS_EINVAL, "agents: the range [%lld, %lld) is empty", (long long)from_ms,
                          (long long)to_ms);
    struct by_agent ba = {.null_group = -1};
    struct scan sc = {.group = agent_group, .user = &ba};
    int rc = run(s, &sc, from_ms, to_ms, err);
    struct hs_ts_agent *a = NULL;
    if (!rc && ba.n && !(a = hs_calloc(ba.n, sizeof *a)))
        rc = hs_err_set(err, HS_ENOMEM, "agents: out of memory");
    if (!rc) {
        for (size_t i = 0; i < ba.n; i++)
            a[i] = (struct hs_ts_agent){.agent = ba.names[i], .st = sc.groups[i]};
        if (ba.n)
            qsort(a, ba.n, sizeof *a, cmp_agent);
        *out = a;
        *n_out = ba.n;
    } else {
        for (size_t i = 0; i < ba.n; i++)
            hs_free(ba.names[i]);
    }
    hs_free(ba.names);
    hs_free(ba.slots);
    scan_free(&sc);
    return rc;
}
